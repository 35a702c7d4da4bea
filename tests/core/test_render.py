"""Message rendering: every kind in zh, bo and en (syrupy snapshots), formats, budgets, glossary status."""

from __future__ import annotations

import dataclasses
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pytest

from quakealert.core.render import (
    KINDS,
    MESSAGES_DIR,
    NoticeContext,
    RecentActivity,
    RenderOptions,
    bo_locative,
    check_budget,
    load_catalog,
    nearest_place,
    render_notice,
    sms_segments,
    to_tibetan_digits,
    unverified_terms,
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
    assert zh.body.count("预计烈度约Ⅲ度") == 1
    assert "伏地、遮挡、手抓牢" in zh.body
    assert msgs == snapshot


def test_bo_candidate_mode_for_review_snapshot(m45, snapshot) -> None:  # type: ignore[no-untyped-def]
    """With bo_unverified='candidate' the unverified Tibetan appears (for the native reader only)."""
    opts = RenderOptions(bo_unverified="candidate")
    default = render_notice("official_report", m45, ("bo",), now=NOW)[0]
    review = render_notice("official_report", m45, ("bo",), now=NOW, options=opts)[0]
    assert "པེ་ཅིང་དུས་ཚོད" in review.body and "པེ་ཅིང་དུས་ཚོད" not in default.body
    assert "བར་ཐག་སྤྱི་ལེ་༡༡༠" in review.body and "震中距拉萨市约110公里" in default.body
    assert review == snapshot


def test_zh_report_reads_like_cenc(m45) -> None:  # type: ignore[no-untyped-def]
    """zh K2 follows the CENC 正式测定 slot structure in Beijing time (messages.md §1.1)."""
    (zh,) = render_notice("official_report", m45, ("zh",), now=NOW)
    assert zh.body.startswith(
        "据中国地震台网正式测定，北京时间11月7日4时19分在西藏拉萨市墨竹工卡县（北纬29.85度，东经92.25度）"
        "发生4.5级地震，震源深度10千米。"
    )
    assert "震中距拉萨市约110公里。" in zh.body
    assert "近5年来发生3级以上地震共18次，本次地震是其中最大的一次" in zh.body
    assert "自动初判" in zh.body  # our own type is labelled (seismology.md §8.4 rule 1)


def test_bo_report_follows_the_cenc_bilingual_text(m45) -> None:  # type: ignore[no-untyped-def]
    """bo K2 reproduces the sourced CENC sentence (tibetan-terms.md S1) with Tibetan digits."""
    (bo,) = render_notice("official_report", m45, ("bo",), now=NOW)
    assert bo.body.startswith(
        "ཀྲུང་གོ་ས་ཡོམ་ལས་ཁུངས་ཀྱི་དྲ་བའི་ཚད་འཇལ་གཏན་འཁེལ་བྱས་པར་གཞིགས་ན། ཟླ་༡༡པའི་ཚེས་༧ཉིན་གྱི་མཚན་དཀྱིལ་ཆུ་ཚོད་༤དང་སྐར་མ་༡༩སྟེང་། "
        "བོད་ལྗོངས་ལྷ་ས་གྲོང་ཁྱེར་མལ་གྲོ་གུང་དཀར་རྫོང་དུ་ས་ཡོམ་རིམ་པ་༤.༥བརྒྱབ་པ་དང་། ཡོམ་ཁུངས་ཀྱི་གཏིང་ཚད་ལ་སྤྱི་ལེ་༡༠ཡོད་ལ། "
        "ས་ཡོམ་གྱི་ལྟེ་བ་བྱང་གི་འཕྲེད་ཐིག་ཏུའུ་༢༩.༨༥དང་། ཤར་གྱི་གཞུང་ཐིག་ཏུའུ་༩༢.༢༥ལ་ཡིན་པ་རེད།"
    )
    arabic = render_notice(
        "official_report", m45, ("bo",), now=NOW, options=RenderOptions(tibetan_digits=False)
    )[0]
    assert "ས་ཡོམ་རིམ་པ་4.5བརྒྱབ" in arabic.body


def test_en_shows_utc_offset_and_drop_cover_hold_on(m45) -> None:  # type: ignore[no-untyped-def]
    """en gives Beijing time with its UTC offset and plain DCHO guidance."""
    (en,) = render_notice(("official_report", "felt_guidance"), m45, ("en",), now=NOW)
    assert "04:19 on 7 Nov 2024, Beijing time (UTC+8)" in en.body
    assert "Drop, Cover, Hold On" in en.body


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
        "swarm_advisory", ctx, ("zh",), now=NOW, options=RenderOptions(public_forecast=True)
    )[0]
    assert "本系统自动估算，非官方预测：未来7天" in shown.body


def test_update_lists_changes(m45, previous) -> None:  # type: ignore[no-untyped-def]
    """K6 names the earlier notice and what changed."""
    (zh,) = render_notice("update", dataclasses.replace(m45, previous=previous), ("zh",), now=NOW)
    assert "此前北京时间11月7日4时21分发布的拉萨市墨竹工卡县4.8级地震信息" in zh.body
    assert "震级4.8级→4.5级" in zh.body and "震中位置移动约12公里" in zh.body


def test_exercise_is_labelled(m45) -> None:  # type: ignore[no-untyped-def]
    """Exercise notices say so in the title and the body, in every language."""
    msgs = render_notice(
        "official_report", dataclasses.replace(m45, exercise=True), ("zh", "bo", "en"), now=NOW
    )
    assert msgs[0].title.startswith("【演练】") and "演练" in msgs[0].body
    assert msgs[2].title.startswith("EXERCISE: ")


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


def test_every_unverified_bo_entry_is_listed_for_review() -> None:
    """Each non-sourced bo glossary key and each unverified bo place name appears in docs/tibetan-review.md."""
    review = (REPO / "docs" / "tibetan-review.md").read_text(encoding="utf-8")
    pending = unverified_terms()
    assert "type.swarm" in pending and "s.if_shaking" in pending
    for key in pending:
        assert f"`{key}`" in review, key
    places = tomllib.loads((MESSAGES_DIR / "places.toml").read_text(encoding="utf-8"))
    for key, p in places.items():
        if p["bo_status"] != "sourced":
            assert p["bo"] in review, key


def test_zh_glossary_covers_every_bo_key() -> None:
    """Every bo entry the templates can reach has a zh fallback, so no missing Tibetan leaves a hole."""
    cat = load_catalog()
    bo_only = set(cat.glossary["bo"]) - set(cat.glossary["zh"])
    assert all(k.startswith(("term.", "period.", "attrib.official.")) for k in bo_only), bo_only


def test_tibetan_digits_and_locative() -> None:
    """Digits become ༠-༩ with an ASCII decimal point; the locative follows the final letter."""
    assert to_tibetan_digits("4.5 10") == "༤.༥ ༡༠"
    assert bo_locative("མལ་གྲོ་གུང་དཀར་རྫོང") == "མལ་གྲོ་གུང་དཀར་རྫོང་དུ་"
    assert bo_locative("ཁྲེང་ཀོན་ཆུས") == "ཁྲེང་ཀོན་ཆུས་སུ་"


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
