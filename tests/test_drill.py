"""`quakealert drill`: the real CENC list through the whole pipeline, as an exercise.

Every test runs the real command (cli.main) on real catalogue files; nothing is sent anywhere.
The bundled list is played with ``--start`` (the years before the 2024 swarm are background
history) and, to keep the tests short, ``--until`` 2024-11-09 (after the M4.5 and the M4.0).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from lxml import etree

from quakealert.cli import drill, main
from quakealert.config import DEFAULT_SCENARIO, DEFAULT_SCENARIO_START
from quakealert.core.cap import CAP_NS
from quakealert.store.sqlite import Store

FIXTURES = Path(__file__).parent / "fixtures"
LHASA_AREAS = {"chengguan", "doilungdeqen", "dagze", "lhunzhub", "damxung", "maizhokunggar"}
SWARM = [str(DEFAULT_SCENARIO), "--start", DEFAULT_SCENARIO_START, "--until", "2024-11-09T00:00Z"]


@pytest.fixture(autouse=True)
def own_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The drill's throw-away store goes under tmp_path/tmp, so tests can see it is gone."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:  # type: ignore[type-arg]
    assert main(["drill", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def by_kind(report: dict, kind: str) -> list[dict]:  # type: ignore[type-arg]
    return [n for n in report["sent"] if n["kind"] == kind]


def test_scenario_text_report(capsys: pytest.CaptureFixture[str]) -> None:
    """The text report names the background, the M4.5 report to Lhasa's districts with its
    full text, the swarm advisory 30 min later ("30 min", not seconds), and why Chengdu got
    nothing, between EXERCISE banners."""
    assert main(["drill", *SWARM]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == lines[-1] == drill.BANNER
    assert ("166 reports before 2024-10-20 00:00:00 UTC = 2024-10-20 08:00:00 Beijing time loaded"
            " as background history (stored, sequenced, never notified)") in out
    m45 = out.index("2024-11-06 20:19:53 UTC = 2024-11-07 04:19:53 Beijing time  "
                    "official report + felt guidance (Alert, CAP Exercise)")
    advisory = out.index("2024-11-06 20:49:54 UTC = 2024-11-07 04:49:54 Beijing time  "
                         "swarm advisory (Update, CAP Exercise)")
    assert m45 < advisory
    assert "Chengguan District: 1 (First felt event of the sequence: M4.5" in out[m45:advisory]
    assert "[zh] 【演练】【正式测定】墨竹工卡县4.5级地震" in out[m45:advisory]
    # the bodies, not only the titles
    assert "据中国地震台网正式测定，北京时间11月7日04时19分" in out[m45:advisory]
    # and what the phone shows: the resident's own shaking and its action first
    assert ("on the phone: 【演练】【有感地震】墨竹工卡县4.5级地震，城关区震感轻微 / "
            "城关区估计烈度Ⅲ度，不会造成破坏。请保持冷静。中国地震台网正式测定：") in out[m45:advisory]
    phone_en = ("on the phone: EXERCISE: M4.5 quake, Maizhokunggar County; weak shaking in "
                "Chengguan District / Estimated intensity in Chengguan District: III; no damage."
                " Stay calm.")
    assert phone_en in out[m45:advisory]
    assert "latency: 30 min after the origin (scenario time)" in out[advisory:]
    assert "1801 s" not in out and "1801.0" not in out
    not_sent = out[out.index("NOT SENT"):out.index("SEQUENCE TYPE HISTORY")]
    assert "(below_threshold)" in not_sent and "Chengdu (control) 1" in not_sent
    history = out[out.index("SEQUENCE TYPE HISTORY"):]
    assert "undetermined" in history and "swarm" in history and "ΔM = M1 − M2" in history


def test_scenario_text_report_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    """--lang zh: the report reads in Chinese (kinds, times, districts, reasons, durations)."""
    assert main(["drill", *SWARM, "--lang", "zh"]) == 0
    out = capsys.readouterr().out
    assert "地震应急演练报告" in out and "将会发出的通知" in out and "未发送" in out
    assert "2024-10-20 08:00:00 北京时间（00:00:00 UTC）以前的166条速报作为背景历史载入" in out
    assert "2024-11-07 04:19:53 北京时间（20:19:53 UTC）  正式速报、有感提示 (首发, CAP Exercise)" in out
    assert "城关区：1 (序列中首次有感地震" in out
    assert "时延：发震后30分钟（场景时间）" in out
    assert "默认演练居民：8个县（区）政府驻地各一人" in out
    body = out[out.index(drill.LABELS["zh"]["sent"].split("（")[0]):out.index("序列类型判定历史")]
    for raw in ("official_report", "felt_guidance", "first_felt", "below_threshold",
                "WOULD HAVE BEEN SENT", "residents"):
        assert raw not in body, raw


def test_bo_text_that_is_chinese_is_flagged() -> None:
    """A bo text equal to its zh text is flagged with the notice id; a bo text with Chinese
    lines is flagged with their number; the flags reach the text and HTML reports."""
    from quakealert.model import Message

    zh = Message("zh", "【演练】墨竹工卡县4.5级地震", "请保持冷静。\n远离危险建筑。")
    assert drill._same_text(Message("bo", zh.title, zh.body + " "), zh)
    assert not drill._same_text(Message("bo", "ས་ཡོམ།", "ས་ཡོམ་བྱུང་།"), zh)
    report = {**_minimal_report(), "sent": [{
        **_minimal_sent(), "bo_same_as_zh": ["qa-n-1"], "bo_chinese_lines": 2}]}
    text = drill.format_text(report, "en")
    assert "WARNING: the bo text equals the zh text" in text and "qa-n-1" in text
    assert "藏文文本与中文文本相同" in drill.format_text(report, "zh")
    report["sent"][0]["bo_same_as_zh"] = []
    assert "WARNING: 2 lines of the bo text are Chinese" in drill.format_text(report, "en")
    assert "藏文文本中有2行是中文" in drill.format_html(report, "zh")


def _minimal_sent() -> dict:  # type: ignore[type-arg]
    at = {"utc": "2024-11-06T20:19:00Z", "beijing": "2024-11-07T04:19:00+08:00"}
    return {"at": at, "kind": "felt_guidance", "msg_type": "Alert", "cap_status": "Exercise",
            "event": {"magnitude": 4.5, "origin": at}, "residents": 1,
            "areas": [{"key": "chengguan", "zh": "城关区", "en": "Chengguan District",
                       "residents": 1, "reasons": ["first_felt"], "reason_zh": "首次有感",
                       "reason_en": "first felt"}],
            "channels": {"webhook": 1}, "held_for_approval_s": 86401.0,
            "latency": {"scenario_delay_s": 86401.0, "trigger": "tick", "processing_ms": 3.2,
                        "since_ingest_ms": None},
            "texts": [{"lang": "zh", "title": "标题", "body": "正文", "areas": []}],
            "bo_same_as_zh": [], "bo_chinese_lines": 0}


def _minimal_report() -> dict:  # type: ignore[type-arg]
    at = {"utc": "2024-11-07T20:19:00Z", "beijing": "2024-11-08T04:19:00+08:00"}
    return {"banner": drill.BANNER, "file": "x.csv", "speed": 0, "until": at, "wall_s": 1.5,
            "reports": {"played": 1, "after_until": 0, "skipped": 0, "skipped_rows": []},
            "population": {"residents": 1, "description": "one", "description_zh": "一人",
                           "areas": [], "rejected_rows": []},
            "events": [], "sent": [], "not_sent": [], "sequences": [],
            "totals": {"dispatches": 1, "notices": 1, "deliveries": {"webhook": 1},
                       "residents_reached": 1, "not_sent_decisions": 0,
                       "processing_ms_median": 3.2, "processing_ms_max": 3.2}}


def test_durations_read_as_people_say_them() -> None:
    """A held-for and a delay of 86401.0 s read "24 h" / "24小时", never seconds."""
    report = {**_minimal_report(), "sent": [_minimal_sent()]}
    en, zh = drill.format_text(report, "en"), drill.format_text(report, "zh")
    assert "latency: 24 h after the origin" in en and "as its 24 h timeout would" in en
    assert "发震后24小时" in zh and "按其24小时时限" in zh
    assert "86401" not in en + zh


def test_scenario_json_facts(capsys: pytest.CaptureFixture[str]) -> None:
    """JSON: who got what when (UTC and Beijing), not-sent reasons per area, latency, types.
    The M4.1 of 10-31 reaches only Dagze and Maizhokunggar; the M4.5 all six Lhasa areas."""
    r = run_json(capsys, *SWARM)
    assert r["exercise"] is True and r["reports"]["played"] == 9
    assert r["background"]["reports"] == 166
    m41 = next(n for n in by_kind(r, "official_report+felt_guidance")
               if n["event"]["magnitude"] == 4.1)
    assert m41["at"]["utc"] == "2024-10-31T01:32:38Z"
    assert {a["key"] for a in m41["areas"]} == {"dagze", "maizhokunggar"}
    m45 = next(n for n in by_kind(r, "official_report+felt_guidance")
               if n["event"]["magnitude"] == 4.5)
    assert m45["at"] == {"utc": "2024-11-06T20:19:53Z", "beijing": "2024-11-07T04:19:53+08:00"}
    assert {a["key"] for a in m45["areas"]} == LHASA_AREAS
    assert m45["residents"] == 6 and m45["channels"] == {"webhook": 6}
    chengguan = next(a for a in m45["areas"] if a["key"] == "chengguan")
    assert (chengguan["zh"], chengguan["en"]) == ("城关区", "Chengguan District")
    assert chengguan["reasons"] == ["first_felt"]
    assert m45["latency"]["scenario_delay_s"] == 0 and m45["latency"]["trigger"] == "new"
    assert 0 < m45["latency"]["processing_ms"] < 10_000
    assert m45["titles"]["zh"].startswith("【演练】") and m45["titles"]["en"].startswith("EXERCISE")

    advisory = next(n for n in by_kind(r, "swarm_advisory")
                    if n["reasons"] == ["type_changed"] and n["event"]["magnitude"] == 4.5)
    assert advisory["at"]["utc"] == "2024-11-06T20:49:54Z" and advisory["msg_type"] == "Update"
    # Dagze and Maizhokunggar were told of the swarm at 10-31; the others learn it now
    assert {a["key"] for a in advisory["areas"]} == LHASA_AREAS - {"dagze", "maizhokunggar"}
    assert advisory["latency"]["scenario_delay_s"] == 30 * 60 + 1
    assert advisory["latency"]["trigger"] == "tick"
    assert all(n["cap_status"] == "Exercise" and n["exercise"] for n in r["sent"])
    assert all(n["at"]["utc"] >= "2024-10-20" for n in r["sent"])  # nothing about the background

    sent_areas = {a["key"] for n in r["sent"] for a in n["areas"]}
    assert drill.CONTROL_KEY not in sent_areas
    control = [g for g in r["not_sent"]
               if any(a["key"] == drill.CONTROL_KEY for a in g["areas"])]
    assert {g["reason_code"] for g in control} == {"below_threshold"}
    assert {g["event"]["magnitude"] for g in control} == {3.0, 3.1, 3.2, 3.6, 3.9, 4.0, 4.1, 4.5}

    [seq] = [s for s in r["sequences"] if s["events"] == 8]
    assert seq["type"] == "swarm" and seq["delta_m"] == 0.4
    history = [h["type"] for h in seq["history"]]
    assert history[0] == "undetermined" and history[-1] == "swarm"
    t = r["totals"]
    assert t["deliveries"] == {"webhook": t["notices"]}
    assert t["outbox"] == {"webhook": {"sent": t["notices"]}}


def test_html_is_marked_exercise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The HTML page carries the EXERCISE/演练 banner, the exercise-marked titles and the
    bodies, in the console's look (its header bar)."""
    page = tmp_path / "drill.html"
    assert main(["drill", *SWARM, "--html", str(page)]) == 0
    html = page.read_text(encoding="utf-8")
    assert html.count(drill.BANNER) == 2 and "<title>[EXERCISE] 演练" in html
    assert "【演练】【震群提示】墨竹工卡县地震活动" in html
    assert "Chengdu (control)" in html and "M4.1 at 51 km: predicted intensity III" in html
    assert '<header class="top">' in html and "Earthquake drill report" in html


def test_html_in_chinese(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--lang zh --html: a Chinese page (zh-Hans) with the bodies and no raw codes."""
    from lxml import html as lhtml

    page = tmp_path / "drill.html"
    assert main(["drill", *SWARM, "--lang", "zh", "--html", str(page)]) == 0
    doc = lhtml.fromstring(page.read_text(encoding="utf-8"))
    assert doc.get("lang") == "zh-Hans"
    for div in doc.xpath("//div[@class='msgtext'][@lang != 'zh']"):
        div.drop_tree()  # the messages' own bo/en texts
    main_text = doc.xpath("//main")[0].text_content()
    assert "将会发出的通知" in main_text and "据中国地震台网正式测定" in main_text
    assert "成都（对照）" in main_text and "发震后30分钟" in main_text
    for raw in ("official_report", "felt_guidance", "below_threshold", "first_felt",
                "Would have been sent", "residents"):
        assert raw not in main_text, raw


def test_real_store_is_never_touched(tmp_path: Path, own_tempdir: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The configured store is never created and the throw-away store is deleted afterwards."""
    real = tmp_path / "real"
    cfg = tmp_path / "q.toml"
    cfg.write_text(f'[store]\npath = "{real}/q.sqlite"\nvar_dir = "{real}"\n', encoding="utf-8")
    r = run_json(capsys, *SWARM, "--config", str(cfg))
    assert r["totals"]["notices"] > 0
    assert not real.exists()
    assert list(own_tempdir.iterdir()) == []


def test_keep_dir_holds_store_and_exercise_cap(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """--keep DIR keeps the drill store and each notice's CAP, valid and with status Exercise."""
    keep = tmp_path / "kept"
    r = run_json(capsys, *SWARM, "--keep", str(keep))
    store = Store.open(keep / "drill.sqlite")
    try:
        rows = store.conn.execute("SELECT count(*), sum(exercise) FROM notices").fetchone()
    finally:
        store.close()
    assert tuple(rows) == (r["totals"]["notices"], r["totals"]["notices"])
    schema = etree.XMLSchema(etree.parse(str(FIXTURES / "cap" / "cap-1.2.xsd")))
    caps = sorted((keep / "cap").glob("*.xml"))
    assert len(caps) == r["totals"]["notices"]
    for path in caps:
        doc = etree.parse(str(path))
        schema.assertValid(doc)
        assert doc.findtext(f"{{{CAP_NS}}}status") == "Exercise"
    assert main(["drill", *SWARM, "--keep", str(keep)]) == 2
    assert "exists" in capsys.readouterr().err


def test_far_events_follow_the_daemons_rule(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """A quake far from every resident (M4.8 in Xinjiang, 1,300 km from Lhasa) is sequenced but
    never decided about, as in the daemon (Pipeline.prioritise/process_far); the type history
    lists only the sequences residents were decided about, the rest (background history, the
    far quake) are one count."""
    scenario = tmp_path / "with-far.csv"
    scenario.write_text(DEFAULT_SCENARIO.read_text(encoding="utf-8").rstrip("\n") + "\n"
                        "2024-11-07T10:00:00Z,40.00,80.00,10,4.8,M,cenc-sb-far,"
                        "2024-11-07 18:00:00,新疆喀什地区,天然地震,0,1300.0\n", encoding="utf-8")
    keep = tmp_path / "keep"
    r = run_json(capsys, str(scenario), *SWARM[1:], "--keep", str(keep))
    assert any(e["magnitude"] == 4.8 for e in r["events"])
    assert all(g["event"]["magnitude"] != 4.8 for g in r["not_sent"])
    assert all(n["event"]["magnitude"] != 4.8 for n in r["sent"])
    store = Store.open(keep / "drill.sqlite")
    try:
        total = store.conn.execute("SELECT count(*) FROM sequences").fetchone()[0]
        decided = {row[0] for row in store.conn.execute(
            "SELECT DISTINCT sequence_id FROM decisions WHERE sequence_id != ''")}
        [(far,)] = store.conn.execute(
            "SELECT id FROM sequences WHERE largest_magnitude = 4.8 AND latitude > 35").fetchall()
    finally:
        store.close()
    listed = {sq["id"] for sq in r["sequences"]}
    assert listed == decided and far not in listed
    assert r["other_sequences"] == total - len(listed) > 1
    text = drill.format_text(r, "en")
    assert f"{r['other_sequences']} other sequences concern no resident" in text


def test_subscribers_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--subscribers: the office's CSV; a bad row is reported, Chengdu falls in no area."""
    csv_file = tmp_path / "residents.csv"
    csv_file.write_text(
        "latitude,longitude,languages,channel,url,min_intensity\n"
        "29.65,91.13,zh;bo,webhook,https://gw.example.org/lhasa,3\n"
        "30.66,104.07,zh,webhook,https://gw.example.org/chengdu,\n"
        "95,91.1,zh,webhook,https://gw.example.org/x,3\n", encoding="utf-8")
    r = run_json(capsys, *SWARM, "--subscribers", str(csv_file))
    pop = r["population"]
    assert pop["residents"] == 2 and len(pop["rejected_rows"]) == 1
    assert pop["rejected_rows"][0].startswith("line 4: latitude")
    assert {a["key"] for a in pop["areas"]} == {"chengguan", None}
    assert [(n["kind"], n["residents"]) for n in r["sent"]][:2] == [
        ("official_report+felt_guidance", 1), ("swarm_advisory", 1)]
    assert {a["key"] for n in r["sent"] for a in n["areas"]} == {"chengguan"}
    nowhere = [g for g in r["not_sent"] if any(a["key"] is None for a in g["areas"])]
    assert {g["reason_code"] for g in nowhere} == {"below_threshold"}
    assert nowhere[0]["areas"][0]["en"] == drill.NO_AREA_NAMES[1]


def test_subscribers_csv_without_good_rows(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A CSV in which no row is usable stops the drill with exit code 2."""
    csv_file = tmp_path / "residents.csv"
    csv_file.write_text("name,phone\nA,123\n", encoding="utf-8")
    assert main(["drill", *SWARM, "--subscribers", str(csv_file)]) == 2
    assert "no usable subscriber rows" in capsys.readouterr().err


@pytest.mark.parametrize(("name", "content", "message"), [
    ("missing.csv", None, "cannot read"),
    ("notes.csv", "# minutes of the drill meeting\nnothing here\n", "unknown CSV layout"),
    ("broken.xml", "<q:quakeml xmlns:q='x'><eventParameters>", "not a catalogue we can read"),
    ("empty-rows.csv", "time,latitude,longitude,depth,mag,net,id\nyesterday,29.8,92.2,10,4.5,us,x1\n",
     "no earthquakes to replay"),
])
def test_bad_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   name: str, content: str | None, message: str) -> None:
    """A file that cannot be replayed: one error line naming it, exit code 2, no report."""
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["drill", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ") and str(path) in err and message in err


def test_until_stops_the_clock(capsys: pytest.CaptureFixture[str]) -> None:
    """--until before the M4.0: it is not played, and nothing is sent after that time."""
    r = run_json(capsys, str(DEFAULT_SCENARIO), "--start", DEFAULT_SCENARIO_START,
                 "--until", "2024-11-08 12:00+08:00")
    assert r["reports"] == {"played": 8, "after_until": 26, "skipped": 0, "skipped_rows": []}
    assert r["until"]["utc"] == "2024-11-08T04:00:00Z"
    assert max(n["at"]["utc"] for n in r["sent"]) == "2024-11-06T20:49:54Z"


def test_start_after_every_row_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    """--start after the last row leaves nothing to play: exit 2 with one line."""
    assert main(["drill", str(DEFAULT_SCENARIO), "--start", "2030-01-01T00:00Z"]) == 2
    assert "no earthquakes after --start" in capsys.readouterr().err


def test_real_time_speed_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    """--speed 1 on two quakes a week apart: the gap is capped on the wall clock, the swarm
    rule fires while waiting, and the decisions are those of an as-fast-as-possible drill."""
    monkeypatch.setattr(drill.replay, "MAX_GAP_S", 0.4)  # play() reads it from there
    rows = DEFAULT_SCENARIO.read_text(encoding="utf-8").splitlines()
    short = tmp_path / "two.csv"
    # the M4.1 of 10-31 and the M4.5 of 11-07 (BJT): ΔM 0.4, a swarm after 24 h (§8.2)
    keep = [r for r in rows[1:] if ",cenc-sb-20241031093238," in r or ",cenc-sb-20241107041953," in r]
    assert len(keep) == 2
    short.write_text("\n".join([rows[0], *keep]) + "\n", encoding="utf-8")
    until = "2024-11-07T21:00Z"
    slow = run_json(capsys, str(short), "--speed", "1", "--until", until)
    fast = run_json(capsys, str(short), "--until", until)
    assert 0.4 <= slow["wall_s"] < 5.0
    assert [(n["at"], n["kind"], n["residents"]) for n in slow["sent"]] == [
        (n["at"], n["kind"], n["residents"]) for n in fast["sent"]]
    advisory = by_kind(slow, "swarm_advisory")[0]
    # Enqueued during the last capped gap: the wait shows in the time since the M4.5's ingest.
    assert advisory["latency"]["since_ingest_ms"] >= 100.0
    assert advisory["latency"]["processing_ms"] < advisory["latency"]["since_ingest_ms"]


def test_speed_must_be_a_non_negative_number(capsys: pytest.CaptureFixture[str]) -> None:
    """--speed -1 is refused by the argument parser (exit code 2)."""
    with pytest.raises(SystemExit) as exc:
        main(["drill", str(DEFAULT_SCENARIO), "--speed", "-1"])
    assert exc.value.code == 2
    assert "speed must be a number >= 0" in capsys.readouterr().err


def test_held_notices_are_released_as_their_timeout_would(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """[approvals] swarm_advisory = 600: the advisory is held, then counted as delivered."""
    cfg = tmp_path / "q.toml"
    cfg.write_text("[approvals]\nswarm_advisory = 600\n", encoding="utf-8")
    r = run_json(capsys, *SWARM, "--config", str(cfg))
    (report,) = [n for n in by_kind(r, "official_report+felt_guidance")
                 if n["event"]["magnitude"] == 4.5]
    advisory = next(n for n in by_kind(r, "swarm_advisory")
                    if n["event"]["magnitude"] == 4.5 and n["reasons"] == ["type_changed"])
    assert report["held_for_approval_s"] is None
    assert advisory["held_for_approval_s"] == 600.0 and advisory["channels"] == {"webhook": 4}
    assert [n["at"]["utc"] for n in r["sent"]] == sorted(n["at"]["utc"] for n in r["sent"])
