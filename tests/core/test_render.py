"""Message rendering: every kind in zh, bo and en (syrupy snapshots), formats, budgets, glossary status."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pytest

from quakealert.core.render import (
    KINDS,
    MESSAGES_DIR,
    PUSH_LIMITS,
    CatalogError,
    NotableEvent,
    NoticeContext,
    RecentActivity,
    RegionalContext,
    RenderOptions,
    bo_genitive,
    bo_locative,
    check_budget,
    fit_push,
    fit_title,
    has_cjk,
    load_catalog,
    nearest_place,
    render_notice,
    review_entries,
    shake_key,
    sms_segments,
    to_tibetan_digits,
    webpush_payload,
)
from quakealert.model import Message

NOW = datetime(2024, 11, 6, 20, 30, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


def ctx_for(kind: str, m45: NoticeContext, outlook, previous) -> NoticeContext:  # type: ignore[no-untyped-def]
    if kind == "swarm_advisory":
        return dataclasses.replace(m45, outlook=outlook)
    if kind == "strong_guidance":
        return dataclasses.replace(m45, recipient_degree=6, outlook=outlook)
    if kind in ("update", "cancel"):
        return dataclasses.replace(m45, previous=previous)
    if kind == "quick_report":
        return dataclasses.replace(
            m45, status="automatic", magnitude=4.8, sequence_type="undetermined"
        )
    return m45


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lang", ["zh", "bo", "en"])
def test_every_kind_and_language_snapshot(
    kind: str, lang: str, m45, outlook, previous, snapshot
) -> None:  # type: ignore[no-untyped-def]
    """Each kind renders in each language for the Maizhokunggar M4.5 (review the snapshot on change)."""
    (msg,) = render_notice(kind, ctx_for(kind, m45, outlook, previous), (lang,), now=NOW)
    assert msg.lang == lang and msg.title and msg.body
    assert "{" not in msg.title + msg.body  # every placeholder filled
    assert msg == snapshot


def test_combined_report_and_felt_guidance_snapshot(m45, snapshot) -> None:  # type: ignore[no-untyped-def]
    """The first felt notice: K2 + K3 in one message per language, intensity line not repeated."""
    msgs = render_notice(("official_report", "felt_guidance"), m45, ("zh", "bo", "en"), now=NOW)
    zh = msgs[0]
    assert zh.body.count("城关区估计烈度Ⅲ度") == 1
    assert msgs == snapshot


def test_bo_hold_mode_snapshot(m45, snapshot) -> None:  # type: ignore[no-untyped-def]
    """bo_composed='hold': only sourced Tibetan sentences plus one Tibetan line to the full notice."""
    opts = RenderOptions(bo_composed="hold")
    sent = render_notice(("official_report", "felt_guidance"), m45, ("bo",), now=NOW)[0]
    held = render_notice(("official_report", "felt_guidance"), m45, ("bo",), now=NOW,
                         options=opts)[0]
    cat = load_catalog()
    sourced = {k for k, e in cat.glossary["bo"].items() if e.status == "sourced"}
    assert "ཀྲུང་གོ་ས་ཡོམ་ལས་ཁུངས་ཀྱི་དྲ་བའི་ཚད་འཇལ་གཏན་འཁེལ" in held.body  # S1, sourced
    assert "s.report_official" in sourced and "s.check_home" not in sourced
    composed_line = cat.glossary["bo"]["s.felt_low"].text.split("{")[0]
    assert composed_line in sent.body and composed_line not in held.body
    assert held.body.splitlines()[-1].endswith(m45.url)  # the pointer to /n/
    assert held.push_body.endswith(m45.url)
    assert not has_cjk(held.title + held.body + held.push_title + held.push_body)
    assert held == snapshot


def test_bo_composed_option_is_checked() -> None:
    """An unknown bo_composed value is a configuration error, not a silent default."""
    with pytest.raises(ValueError, match="bo_composed"):
        RenderOptions(bo_composed="zh")  # type: ignore[arg-type]


def test_zh_report_reads_like_cenc(m45) -> None:  # type: ignore[no-untyped-def]
    """zh K2 follows the CENC 正式测定 slot structure: 04时19分, 千米, the count includes the quake."""
    (zh,) = render_notice("official_report", m45, ("zh",), now=NOW)
    assert zh.body.startswith(
        "据中国地震台网正式测定，北京时间11月7日04时19分在西藏拉萨市墨竹工卡县（北纬29.85度，东经92.25度）"
        "发生4.5级地震，震源深度10千米。"
    )
    assert "震中距拉萨市约110千米。" in zh.body
    assert ("震中周边200千米内近5年来发生3级以上地震共11次，本次地震是其中最大的一次。"
            "\n此前最大为2024年10月31日4.1级地震。") in zh.body
    assert "公里" not in zh.body
    assert "自动初判" in zh.body  # our own type is labelled (seismology.md §8.4 rule 1)


def test_context_left_out_when_unknown(m45) -> None:  # type: ignore[no-untyped-def]
    """No context (back-fill incomplete): no count at all rather than a wrong one."""
    for lang in ("zh", "bo", "en"):
        with_ctx = render_notice("official_report", m45, (lang,), now=NOW)[0].body
        without = render_notice("official_report", dataclasses.replace(m45, context=None),
                                (lang,), now=NOW)[0].body
        assert len(without.splitlines()) == len(with_ctx.splitlines()) - 2
    zh = render_notice("official_report", dataclasses.replace(m45, context=None), ("zh",),
                       now=NOW)[0]
    assert "共" not in zh.body and "近5年" not in zh.body


def test_context_largest_other_names_its_date(m45) -> None:  # type: ignore[no-untyped-def]
    """When an earlier quake was larger, the line names it with its date, in every language."""
    ctx = dataclasses.replace(m45, magnitude=4.0, context=RegionalContext(
        200, 5, 3.0, 12, 4.5, False, largest_at=datetime(2024, 11, 6, 20, 19, tzinfo=UTC)))
    zh, bo, en = render_notice("official_report", ctx, ("zh", "bo", "en"), now=NOW)
    assert "共12次，其中最大为2024年11月7日4.5级地震。" in zh.body
    assert "༢༠༢༤ལོའི་ཟླ་༡༡པའི་ཚེས་༧ཉིན་གྱི་ས་ཡོམ་རིམ་པ་༤.༥" in bo.body
    assert "12 earthquakes of M3 or larger" in en.body and "M4.5 on 7 Nov 2024" in en.body


def test_bo_report_follows_the_cenc_bilingual_text(m45) -> None:  # type: ignore[no-untyped-def]
    """bo K2 reproduces the sourced CENC sentence (S1) with the attested Beijing-time pattern."""
    (bo,) = render_notice("official_report", m45, ("bo",), now=NOW)
    assert bo.body.startswith(
        "ཀྲུང་གོ་ས་ཡོམ་ལས་ཁུངས་ཀྱི་དྲ་བའི་ཚད་འཇལ་གཏན་འཁེལ་བྱས་པར་གཞིགས་ན། "
        "པེ་ཅིང་དུས་ཚོད་ཀྱི་ཕྱི་ཟླ་༡༡པའི་ཚེས་༧ཉིན་གྱི་ཆུ་ཚོད་༤དང་སྐར་མ་༡༩སྟེང་། "
        "བོད་ལྗོངས་ལྷ་ས་གྲོང་ཁྱེར་མལ་གྲོ་གུང་དཀར་རྫོང་དུ་ས་ཡོམ་རིམ་པ་༤.༥བརྒྱབ་པ་དང་། ཡོམ་ཁུངས་ཀྱི་གཏིང་ཚད་ལ་སྤྱི་ལེ་༡༠ཡོད་ལ། "
        "ས་ཡོམ་གྱི་ལྟེ་བ་བྱང་གི་འཕྲེད་ཐིག་ཏུའུ་༢༩.༨༥དང་། ཤར་གྱི་གཞུང་ཐིག་ཏུའུ་༩༢.༢༥ལ་ཡིན་པ་རེད།"
    )
    assert "ས་ཡོམ་གྱི་ལྟེ་བ་དེ་ལྷ་ས་གྲོང་ཁྱེར་དང་བར་ཐག་སྤྱི་ལེ་༡༡༠ཙམ་ཡོད།" in bo.body  # S3 frame
    arabic = render_notice(
        "official_report", m45, ("bo",), now=NOW, options=RenderOptions(tibetan_digits=False)
    )[0]
    assert "ས་ཡོམ་རིམ་པ་4.5བརྒྱབ" in arabic.body


def test_en_shows_utc_offset_and_drop_cover_hold_on(m45) -> None:  # type: ignore[no-untyped-def]
    """en gives Beijing time with its UTC offset and plain DCHO guidance (band IV-V)."""
    ctx = dataclasses.replace(m45, recipient_degree=4)
    (en,) = render_notice(("official_report", "felt_guidance"), ctx, ("en",), now=NOW)
    assert "04:19 on 7 Nov 2024, Beijing time (UTC+8)" in en.body
    assert "Drop, Cover, Hold On" in en.body


@pytest.mark.parametrize(
    ("degree", "present", "absent"),
    [
        (3, "此次地震在城关区不会造成破坏，请保持冷静。", "裂缝"),
        (4, "请检查房屋有无新裂缝", "部分房屋可能受损"),
        (5, "伏地、遮挡、手抓牢", "不会造成破坏，请保持冷静"),
    ],
)
def test_felt_guidance_matches_the_shaking(m45, degree: int, present: str, absent: str) -> None:  # type: ignore[no-untyped-def]
    """≤ III reassures only; IV-V adds what to check at home and what to do if it shakes again."""
    ctx = dataclasses.replace(m45, recipient_degree=degree)
    zh, bo = render_notice(("official_report", "felt_guidance"), ctx, ("zh", "bo"), now=NOW)
    assert present in zh.body and absent not in zh.body
    cracks = "གས་ཆག"  # cracks (CM:…-8294): only from IV
    assert (cracks in bo.body) == (degree >= 4)


def test_strong_guidance_winter_block_depends_on_month(m45) -> None:  # type: ignore[no-untyped-def]
    """The cold-weather block appears for a November quake and not for a July one."""
    nov = render_notice("strong_guidance", m45, ("zh",), now=NOW)[0]
    july = dataclasses.replace(m45, origin_at=datetime(2024, 7, 1, 4, 0, tzinfo=UTC))
    jul = render_notice("strong_guidance", july, ("zh",), now=NOW)[0]
    assert "一氧化碳" in nov.body and "一氧化碳" not in jul.body
    assert "紫外线" in nov.body and "紫外线" in jul.body


def test_official_type_is_attributed_and_our_forecast_stays_off(m45, outlook) -> None:  # type: ignore[no-untyped-def]
    """An official type is attributed; our numeric forecast is shown only if configured."""
    ctx = dataclasses.replace(
        m45,
        type_official=True,
        type_source="tibet_ea",
        outlook=outlook,
        forecast={"zh": "未来7天发生4级以上地震的概率约为10%"},
        recent=RecentActivity(24, 3, 4.0),
        summary=True,
    )
    (zh,) = render_notice("swarm_advisory", ctx, ("zh",), now=NOW)
    assert "据西藏自治区地震局判定，此次地震序列为震群型。" in zh.body
    assert "自动初判" not in zh.body
    assert "西藏自治区地震局：“不必过度担忧”" in zh.body
    assert "概率" not in zh.body
    assert zh.title.startswith("【震群动态】")
    shown = render_notice(
        "swarm_advisory", ctx, ("zh", "bo"), now=NOW, options=RenderOptions(public_forecast=True)
    )
    assert "本系统自动估算，非官方预测：未来7天" in shown[0].body
    # the Chinese outlook and forecast never appear under bo: the bo text points to the statement
    assert not has_cjk(shown[1].body) and "ཁྱབ་བསྒྲགས" in shown[1].body


def test_update_lists_changes(m45, previous) -> None:  # type: ignore[no-untyped-def]
    """K6 names the earlier notice and what changed."""
    (zh,) = render_notice("update", dataclasses.replace(m45, previous=previous), ("zh",), now=NOW)
    assert "此前北京时间11月7日04时21分发布的墨竹工卡县4.8级地震信息" in zh.body
    assert "震级4.8级→4.5级" in zh.body and "震中位置移动约12千米" in zh.body


def test_exercise_is_labelled_once_per_title_in_its_language(m45) -> None:  # type: ignore[no-untyped-def]
    """A drill says so once in each title (full and push), in that title's language, and in the body."""
    kinds = ("official_report", "felt_guidance")
    zh, bo, en = render_notice(kinds, dataclasses.replace(m45, exercise=True),
                               ("zh", "bo", "en"), now=NOW)
    for title in (zh.title, zh.push_title):
        assert title.startswith("【演练】") and title.count("演练") == 1
    for title in (bo.title, bo.push_title):
        assert title.startswith("༼ལག་ལེན་ཚོད་ལྟ༽") and title.count("ལག་ལེན་ཚོད་ལྟ") == 1
        assert not has_cjk(title)
    for title in (en.title, en.push_title):
        assert title.startswith("EXERCISE: ") and title.count("EXERCISE") == 1
    assert "本信息为演练" in zh.body and "ལག་ལེན་ཚོད་ལྟ་ཡིན" in bo.body and "EXERCISE" in en.body


def test_unknown_kind_or_language_is_an_error(m45) -> None:  # type: ignore[no-untyped-def]
    """Unknown kinds and languages fail loudly."""
    with pytest.raises(ValueError):
        render_notice("eew", m45, ("zh",), now=NOW)
    with pytest.raises(ValueError):
        render_notice("test", m45, ("fr",), now=NOW)


def test_templates_are_strict(tmp_path: Path, m45) -> None:  # type: ignore[no-untyped-def]
    """A template using a variable render.py does not provide raises instead of printing nothing."""
    import shutil

    shutil.copytree(MESSAGES_DIR, tmp_path / "messages")
    (tmp_path / "messages" / "templates" / "test.j2").write_text(
        "{% block title %}{{ v.nonexistent }}{% endblock %}{% block body %}x{% endblock %}",
        encoding="utf-8",
    )
    cat = load_catalog(tmp_path / "messages")
    with pytest.raises(jinja2.UndefinedError):
        render_notice("test", m45, ("zh",), now=NOW, catalog=cat)


def test_templates_have_no_arithmetic() -> None:
    """Templates only branch and print: no arithmetic operators inside {{ }} (STYLE.md)."""
    import re

    for path in (MESSAGES_DIR / "templates").glob("*.j2"):
        for expr in re.findall(r"{{(.*?)}}", path.read_text(encoding="utf-8")):
            assert not re.search(r"[+*/%]|\s-\s", expr), f"{path.name}: {expr}"


def test_every_composed_bo_entry_is_listed_for_review() -> None:
    """Each composed bo entry appears in docs/tibetan-review.md with the sources of its terms."""
    review = (REPO / "docs" / "tibetan-review.md").read_text(encoding="utf-8")
    pending = review_entries()
    assert "type.swarm" in pending and "s.if_shaking" in pending
    for key, entry in pending.items():
        assert f"`{key}`" in review, key
        assert entry.terms and all(t in review for t in entry.terms), key


def test_every_entry_has_tibetan_with_provenance() -> None:
    """Every zh entry has a bo entry: Tibetan text, sourced or composed, composed ones cite terms."""
    cat = load_catalog()
    assert set(cat.glossary["zh"]) <= set(cat.glossary["bo"])
    assert set(cat.glossary["zh"]) == set(cat.glossary["en"])
    for key, e in cat.glossary["bo"].items():
        assert e.text.strip() and not has_cjk(e.text), key
        assert e.status in ("sourced", "composed"), key
        assert e.source if e.status == "sourced" else e.terms, key


@pytest.mark.parametrize("bad", ["地震", "【演练】", "ས་ཡོམ།《》"])
def test_catalog_refuses_chinese_under_bo(tmp_path: Path, bad: str) -> None:
    """A bo entry holding Chinese characters or CJK punctuation stops the catalogue from loading."""
    import shutil

    shutil.copytree(MESSAGES_DIR, tmp_path / "messages")
    path = tmp_path / "messages" / "glossary" / "bo.toml"
    path.write_text(path.read_text(encoding="utf-8").replace(
        'text = "ས་ཡོམ།"', f'text = "{bad}"', 1), encoding="utf-8")
    with pytest.raises(CatalogError, match="bo text must be Tibetan"):
        load_catalog(tmp_path / "messages")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("hold", ["send", "hold"])
@pytest.mark.parametrize("exercise", [False, True])
def test_bo_never_carries_chinese_and_pushes_fit(kind: str, hold: str, exercise: bool, m45,
                                                 outlook, previous) -> None:  # type: ignore[no-untyped-def]
    """Every kind: bo title, body and push are Tibetan; each language's push fits its limits."""
    ctx = dataclasses.replace(ctx_for(kind, m45, outlook, previous), exercise=exercise)
    msgs = render_notice(kind, ctx, ("zh", "bo", "en"), now=NOW,
                         options=RenderOptions(bo_composed=hold))  # type: ignore[arg-type]
    for m in msgs:
        max_title, max_body = PUSH_LIMITS[m.lang]
        assert 0 < len(m.push_title) <= max_title, (m.lang, m.push_title)
        assert 0 < len(m.push_body) <= max_body, (m.lang, m.push_body)
        assert "{" not in m.push_title + m.push_body
    bo = msgs[1]
    assert not has_cjk(bo.title + bo.body + bo.push_title + bo.push_body), bo


def test_push_leads_with_the_residents_shaking_and_one_action(m45) -> None:  # type: ignore[no-untyped-def]
    """The issue's example: the title names the quake and the resident's own shaking; the body
    opens with that shaking and its one action (what a collapsed notification shows), then the
    official report and the distance, in zh, bo and en alike."""
    zh, bo, en = render_notice(("official_report", "felt_guidance"), m45, ("zh", "bo", "en"),
                               now=NOW)
    assert zh.push_title == "【有感地震】墨竹工卡县4.5级地震，城关区震感轻微"
    assert zh.push_body == (
        "城关区估计烈度Ⅲ度，不会造成破坏。请保持冷静。"
        "中国地震台网正式测定：11月7日04时19分墨竹工卡县发生4.5级地震，震源深度10千米。"
        "震中距拉萨市约110千米。")
    assert bo.push_title == ("མལ་གྲོ་གུང་དཀར་རྫོང་ས་ཡོམ་རིམ་པ་༤.༥། "
                             "ཁྲེང་ཀོན་ཆུས་སུ་འགུལ་སྐྱོམ་ཅུང་ཙམ་བྱུང་།")
    assert bo.push_body.startswith("ཁྲེང་ཀོན་ཆུས་སུ་འགུལ་སྐྱོམ་ཅུང་ཙམ་ལས་མེད་པས་")
    assert en.push_title == "M4.5 quake, Maizhokunggar County; weak shaking in Chengguan District"
    assert en.push_body.startswith("Estimated intensity in Chengguan District: III; no damage. "
                                   "Stay calm. Official, CENC: M4.5 earthquake")
    # the first screenful (about 40 characters of zh) already holds the own shaking and action
    assert "城关区" in zh.push_body[:40] and "请保持冷静" in zh.push_body[:40]


@pytest.mark.parametrize("degree", [3, 4, 5, 6, 7])
@pytest.mark.parametrize("status", ["automatic", "reviewed"])
@pytest.mark.parametrize("place", ["chengguan", "doilungdeqen", "damxung"])
@pytest.mark.parametrize("exercise", [False, True])
def test_push_title_never_drops_the_residents_shaking(degree: int, status: str, place: str,
                                                       exercise: bool, m45) -> None:  # type: ignore[no-untyped-def]
    """Whatever the district, degree, drill marker or solution status, every language's push
    title ends (zh, en, bo) with the resident's own shaking, whole, within the title limit."""
    cat = load_catalog()
    ctx = dataclasses.replace(m45, recipient_degree=degree, status=status,
                              recipient_place_key=place, exercise=exercise)
    kinds = ("official_report", "strong_guidance" if degree >= 6 else "felt_guidance")
    for m in render_notice(kinds, ctx, ("zh", "bo", "en"), now=NOW):
        g = cat.glossary[m.lang]
        recipient = getattr(cat.places[place], m.lang)
        own = g["push.shake_suffix"].text.format(
            recipient_place=recipient, shake=g[shake_key(degree)].text,
            recipient_place_loc=bo_locative(recipient) if m.lang == "bo" else recipient)
        assert m.push_title.endswith(own), (m.lang, m.push_title, own)
        assert len(m.push_title) <= PUSH_LIMITS[m.lang][0]
        assert m.push_body.startswith(recipient) or m.push_body.startswith(
            "Estimated intensity in " + recipient), (m.lang, m.push_body)


def test_push_shortens_instead_of_dropping(m45) -> None:  # type: ignore[no-untyped-def]
    """Optional sentences go first and an ellipsis ends what is still too long; in a title the
    label goes first, then the quake's name is cut, and the resident's shaking stays whole."""
    title, body = fit_push("zh", [("【有感地震】", 2), ("很长的地名" * 8, 1), ("，城关区震感轻微", 0)],
                           [("正式测定" * 30 + "。", True), ("震中距拉萨市约110千米。", False),
                            ("城关区估计烈度Ⅲ度。", True)])
    assert len(title) == 30 and title.endswith("…，城关区震感轻微")
    assert "【有感地震】" not in title
    assert len(body) == 120 and "距拉萨" not in body and body.endswith("…")
    assert fit_title([("【演练】", 0), ("【自动测定】", 2), ("墨竹工卡县4.8级左右地震", 1),
                      ("，城关区震感轻微", 0)], 30) == "【演练】墨竹工卡县4.8级左右地震，城关区震感轻微"
    assert fit_title([("【有感地震】", 2), ("墨竹工卡县4.5级地震", 1), ("，城关区震感轻微", 0)],
                     30) == "【有感地震】墨竹工卡县4.5级地震，城关区震感轻微"


def test_folded_felt_quakes_are_named_in_the_next_notice(m45) -> None:  # type: ignore[no-untyped-def]
    """The M4.1 of 2024-11-18 15:06, folded by the hourly budget, is named in the next notice:
    its time and magnitude when it is one, the count and the largest when there are more."""
    m41 = NotableEvent(datetime(2024, 11, 18, 7, 6, 40, tzinfo=UTC), 4.1)
    one = dataclasses.replace(m45, folded_count=1, folded_largest=m41)
    zh, bo, en = render_notice("swarm_advisory", dataclasses.replace(one, summary=True),
                               ("zh", "bo", "en"), now=NOW)
    assert zh.push_body.startswith("此前还有1次有感地震（11月18日15时06分，4.1级），属同一震群活动。")
    assert "此前还有1次有感地震" in zh.body
    assert bo.push_body.startswith("དེའི་སྔོན་དུ་ཟླ་༡༡པའི་ཚེས་༡༨ཉིན་གྱི་ཆུ་ཚོད་༡༥དང་སྐར་མ་༦སྟེང་")
    assert not has_cjk(bo.push_body + bo.body)
    assert en.push_body.startswith("Earlier, one more felt earthquake (15:06 Beijing time, 18 Nov,"
                                   " M4.1) was part of the same swarm.")
    three = dataclasses.replace(m45, folded_count=3, folded_largest=m41, same_swarm=True)
    zh, en = render_notice(("official_report", "felt_guidance"), three, ("zh", "en"), now=NOW)
    assert "此前还有3次有感地震（最大4.1级），属同一震群活动。" in zh.push_body
    assert zh.push_body.startswith("城关区估计烈度Ⅲ度")  # the own shaking still leads
    assert "Earlier, 3 more felt earthquakes (largest M4.1)" in en.push_body
    for m in render_notice(("official_report", "felt_guidance"), three, ("zh", "bo", "en"),
                           now=NOW):
        assert len(m.push_body) <= PUSH_LIMITS[m.lang][1] and not m.push_body.endswith("…")


def test_place_is_named_everywhere_never_by_coordinates() -> None:
    """The 2017 Mainling M6.9 (29.75°N 95.02°E) is named by its county in zh, bo and en."""
    ctx = NoticeContext(event_id="e", origin_at=datetime(2017, 11, 17, 22, 34, tzinfo=UTC),
                        latitude=29.75, longitude=95.02, depth_km=10.0, magnitude=6.9,
                        place_text="西藏林芝市米林县")
    zh, bo, en = render_notice("official_report", ctx, ("zh", "bo", "en"), now=NOW)
    assert zh.title == "【正式测定】米林市6.9级地震"
    assert "°" not in zh.title + bo.title + en.title
    assert "སྨིན་གླིང" in bo.title and not has_cjk(bo.title + bo.body)
    assert "Mainling" in en.title or "Milin" in en.title


def test_tibetan_digits_and_locative() -> None:
    """Digits become ༠-༩ with an ASCII decimal point; the locative follows the final letter."""
    assert to_tibetan_digits("4.5 10") == "༤.༥ ༡༠"
    assert bo_locative("མལ་གྲོ་གུང་དཀར་རྫོང") == "མལ་གྲོ་གུང་དཀར་རྫོང་དུ་"
    assert bo_locative("ཁྲེང་ཀོན་ཆུས") == "ཁྲེང་ཀོན་ཆུས་སུ་"
    assert bo_locative("ལྷ་ས") == "ལྷ་སར་"  # an open syllable takes ར
    assert bo_genitive("ཀྲུང་གོ་ས་ཡོམ་ལས་ཁུངས་ཀྱི་དྲ་བ") == "ཀྲུང་གོ་ས་ཡོམ་ལས་ཁུངས་ཀྱི་དྲ་བའི་"  # S1
    assert bo_genitive("ལྷ་ས་གྲོང་ཁྱེར") == "ལྷ་ས་གྲོང་ཁྱེར་གྱི་"
    assert bo_genitive("མལ་གྲོ་གུང་དཀར་རྫོང") == "མལ་གྲོ་གུང་དཀར་རྫོང་གི་"


def test_nearest_place() -> None:
    """The M4.5 epicentre is nearest to the Maizhokunggar seat among Lhasa's counties."""
    key, km = nearest_place(29.85, 92.25)
    assert key == "maizhokunggar" and 45 < km < 55


@pytest.mark.parametrize(
    ("text", "encoding", "units", "segments"),
    [
        ("a" * 160, "gsm7", 160, 1),
        ("a" * 161, "gsm7", 161, 2),
        ("地" * 70, "ucs2", 70, 1),
        ("地" * 71, "ucs2", 71, 2),
        ("地" * 135, "ucs2", 135, 3),
        ("ས" * 67 * 2, "ucs2", 134, 2),
        ("{}" * 80, "gsm7", 320, 3),
    ],
)
def test_sms_segments(text: str, encoding: str, units: int, segments: int) -> None:
    """SMS: GSM-7 160/153 (extension characters cost 2), UCS-2 70/67 per segment."""
    assert sms_segments(text) == (encoding, units, segments)


def test_check_budget_sms_counts_title_and_body() -> None:
    """The SMS budget counts title, newline and body."""
    b = check_budget(Message(lang="zh", title="地" * 30, body="地" * 39), "sms")
    assert (b.ok, b.chars, b.segments, b.encoding) == (True, 70, 1, "ucs2")
    b2 = check_budget(
        Message(lang="zh", title="地" * 30, body="地" * 40), "sms", max_sms_segments=1
    )
    assert (b2.ok, b2.segments) == (False, 2)


def test_sms_budget_limit_and_webpush(m45) -> None:  # type: ignore[no-untyped-def]
    """Long messages exceed a small SMS segment budget; all rendered kinds fit a Web Push payload."""
    msgs = render_notice(("official_report", "felt_guidance"), m45, ("zh", "bo", "en"), now=NOW)
    zh = check_budget(msgs[0], "sms", max_sms_segments=3)
    assert not zh.ok and zh.segments > 3 and "segment" in zh.reason
    for m in msgs:
        wp = check_budget(m, "webpush")
        assert wp.ok, wp.reason
        assert wp.chars == len(webpush_payload(m)) + 256
    huge = Message(lang="bo", title="t", body="ས" * 1400)
    assert not check_budget(huge, "webpush").ok


def test_english_counts_are_singular_for_one() -> None:
    """'1 earthquake', never '1 earthquakes', in English sentences."""
    from quakealert.core.render import quakes_en

    assert (quakes_en(1), quakes_en(0), quakes_en(18)) == (
        "1 earthquake", "0 earthquakes", "18 earthquakes")


def test_felt_quake_of_the_swarm_is_explained_in_a_short_notice(m45) -> None:  # type: ignore[no-untyped-def]
    """'That shaking was an M4.4 of the same swarm': the push says so in each language."""
    ctx = dataclasses.replace(m45, event_id="e44", magnitude=4.4, same_swarm=True, context=None,
                              origin_at=datetime(2024, 11, 18, 7, 1, 56, tzinfo=UTC))
    zh, bo, en = render_notice(("official_report", "felt_guidance"), ctx, ("zh", "bo", "en"),
                               now=NOW)
    assert zh.push_title == "【有感地震】墨竹工卡县4.4级地震，城关区震感轻微"
    assert zh.push_body.startswith("城关区估计烈度Ⅲ度，不会造成破坏。请保持冷静。"
                                   "11月18日15时01分墨竹工卡县发生4.4级地震，属同一震群活动。")
    assert "此次地震属同一震群活动。" in zh.body
    assert "part of the same swarm" in en.push_body
    assert "ས་ཡོམ་ཐེངས་མང་པོའི་ནང་གི་གཅིག" in bo.push_body and not has_cjk(bo.push_body)


def test_context_of_a_first_quake_says_it_is_the_only_one(m45) -> None:  # type: ignore[no-untyped-def]
    """共1次: the notice says it is this quake, as the dashboard's line does (core.context)."""
    ctx = dataclasses.replace(m45, context=RegionalContext(200, 5, 3.0, 1, 4.5, True))
    zh, bo, en = render_notice("official_report", ctx, ("zh", "bo", "en"), now=NOW)
    assert "震中周边200千米内近5年来发生3级以上地震共1次，即本次地震。" in zh.body
    assert "this is the only earthquake of M3 or larger in the past 5 years." in en.body
    assert "ཐེངས་འདི་ཁོ་ན་ཡིན" in bo.body
