"""Poison rows in every wire format (issue 9 §4): a bad row or feature is skipped with its reason,
the good rows of the same body are kept, and what is kept is safe to store and to serve."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

import pytest

from quakealert.errors import ParseError
from quakealert.formats.catalog import parse_csv_catalog
from quakealert.formats.cenc import parse_cenc
from quakealert.formats.emsc import parse_emsc_message
from quakealert.formats.fdsntext import parse_fdsn_text
from quakealert.formats.geojson import parse_geojson
from quakealert.formats.quakeml import parse_quakeml
from quakealert.formats.rows import (
    EARLIEST_AT,
    LATEST_AT,
    check_report,
    clean_text,
    opt_float,
    parse_utc,
    screen_future,
)
from quakealert.model import ParseResult, Report
from tests.conftest import load_fixture

USGS = json.loads(load_fixture("usgs/usgs-geojson-all_hour-2017-12-03.geojson"))
CENC = json.loads(load_fixture("cenc/cenc-speedsearch-response-2019-12.json"))
FDSN = load_fixture("fdsn/fdsn-text-usgs-rows.txt").decode()
EMSC = json.loads(load_fixture("emsc/emsc-seismicportal-ws-message-create.json"))
BAD_PLACE = "Lhasa\x00\x07 \u202eevil\x1b[31m\ud800 county"


def _safe(text: str | None) -> bool:
    return text is None or (text.isprintable() and not any(c in text for c in "\u202e\ud800"))


def geojson_with(*poison: dict) -> bytes:
    doc = copy.deepcopy(USGS)
    doc["features"] = doc["features"][:2] + list(poison)
    return json.dumps(doc).encode()


def usgs_feature(**props: object) -> dict:
    feature = copy.deepcopy(USGS["features"][2])
    feature["properties"].update(props)
    return feature


@pytest.mark.parametrize(("poison", "reason"), [
    ({**USGS["features"][3], "properties": []}, "properties is list"),
    (usgs_feature(place=["a", "list"]), "place: expected text, got list"),
    (usgs_feature(time=253370764800000), "out of range"),  # 9999-01-01
    (usgs_feature(time=-62135596800000), "out of range"),  # 0001-01-01
    (usgs_feature(time=10**30), "unreadable"),
    (usgs_feature(time=True), "expected epoch milliseconds"),
    (usgs_feature(mag={"value": 5}), "expected a number"),
    (usgs_feature(ids=[1, 2]), "ids: expected text"),
    ({**USGS["features"][4], "geometry": "here"}, "geometry missing"),
    ({**USGS["features"][5], "id": {"x": 1}}, "id: expected text"),
    ("a string, not a feature", "not an object"),
])
def test_geojson_poison_feature_is_skipped_good_ones_kept(poison: object, reason: str) -> None:
    """One poisoned feature costs only itself, with its reason; the two good ones stay."""
    parsed = parse_geojson(geojson_with(poison), "usgs")  # type: ignore[arg-type]
    assert [r.source_id for r in parsed.reports] == [f["id"] for f in USGS["features"][:2]]
    assert len(parsed.skipped) == 1 and reason in parsed.skipped[0], parsed.skipped


def test_geojson_control_characters_are_stripped_from_text() -> None:
    """A place name with NUL, ESC, a bidi override and a lone surrogate is kept, cleaned."""
    parsed = parse_geojson(geojson_with(usgs_feature(place=BAD_PLACE, magType="m\x00l")), "usgs")
    assert len(parsed.reports) == 3 and not parsed.skipped
    place = parsed.reports[2].place
    assert place == "Lhasa evil [31m county" and _safe(place)
    assert parsed.reports[2].mag_type == "m l"


@pytest.mark.parametrize("depth", [100, 5000])
def test_deeply_nested_json_is_a_parse_error_not_a_crash(depth: int) -> None:
    """Nesting deep enough to exhaust the JSON parser's recursion is a ParseError (the poller
    records it); shallower nesting inside a field only skips that feature."""
    nested = "[" * depth + "]" * depth
    body = geojson_with(usgs_feature(place="x")).replace(b'"x"', nested.encode())
    if depth > 1000:
        with pytest.raises(ParseError, match="nested too deeply"):
            parse_geojson(body, "usgs")
        with pytest.raises(ParseError, match="nested too deeply"):
            parse_cenc(b'{"shuju": ' + nested.encode() + b"}")
    else:
        parsed = parse_geojson(body, "usgs")
        assert len(parsed.reports) == 2 and "expected text" in parsed.skipped[0]


def fdsn_with(*rows: str) -> bytes:
    header, *good = FDSN.strip().splitlines()
    return ("\n".join([header, *good[:2], *rows]) + "\n").encode()


@pytest.mark.parametrize(("row", "reason"), [
    ("x1|9999-12-01T00:00:00|29.8|92.2|10|us|us|us|x1|mb|4.5|us|far future", "out of range"),
    ("x2|0001-01-01T00:00:00+14:00|29.8|92.2|10|us|us|us|x2|mb|4.5|us|overflow",
     "unparseable time"),
    ("x3|1899-12-31T23:59:59|29.8|92.2|10|us|us|us|x3|mb|4.5|us|too old", "out of range"),
    ("x4|2019-12-20T11:39:52|nan|92.2|10|us|us|us|x4|mb|4.5|us|nan", "latitude nan"),
    ("x5|2019-12-20T11:39:52|29.8|92.2|inf|us|us|us|x5|mb|4.5|us|inf", "depth_km inf"),
    ("x" * 300 + "|2019-12-20T11:39:52|29.8|92.2|10|us|us|us|x|mb|4.5|us|long id", "id of 300"),
])
def test_fdsn_text_poison_row_is_skipped(row: str, reason: str) -> None:
    """9999, 0001 with a +14:00 offset (overflows UTC), pre-1900, NaN, inf and absurd ids."""
    parsed = parse_fdsn_text(fdsn_with(row), "usgs")
    assert [r.source_id for r in parsed.reports] == ["us70006p18", "us7000bn4e"]
    assert len(parsed.skipped) == 1 and reason in parsed.skipped[0], parsed.skipped


def test_fdsn_text_control_characters_are_stripped() -> None:
    """A control character in EventLocationName is removed; the row is kept."""
    row = "x6|2019-12-20T11:39:52|29.8|92.2|10|us|us|us|x6|mb|4.5|us|Nyingchi\x02\x01 Tibet"
    parsed = parse_fdsn_text(fdsn_with(row), "usgs")
    assert len(parsed.reports) == 3 and parsed.reports[2].place == "Nyingchi Tibet"


def cenc_with(**fields: object) -> bytes:
    doc = copy.deepcopy(CENC)
    bad = {**doc["shuju"][0], **fields}
    doc["shuju"] = [doc["shuju"][1], bad, doc["shuju"][2], "not a row", None]
    return json.dumps(doc, ensure_ascii=False).encode()


@pytest.mark.parametrize(("fields", "reason"), [
    ({"O_TIME": "9999-12-01 00:00:00"}, "out of range"),
    ({"O_TIME": "0001-01-01 00:00:00"}, "unparseable time"),  # minus 8 h overflows
    ({"O_TIME": ["2019-12-12"]}, "unparseable time"),
    ({"LOCATION_C": ["拉萨"]}, "LOCATION_C: expected text"),
    ({"NEW_DID": {"id": 1}}, "NEW_DID: expected text"),
    ({"EPI_LAT": [33]}, "expected a number"),
])
def test_cenc_poison_row_is_skipped(fields: dict, reason: str) -> None:
    """Wrong types and impossible times in one CENC row; the rows around it are kept."""
    parsed = parse_cenc(cenc_with(**fields))
    assert [r.source_id for r in parsed.reports] == [
        CENC["shuju"][1]["NEW_DID"], CENC["shuju"][2]["NEW_DID"]]
    assert len(parsed.skipped) == 3 and reason in parsed.skipped[0], parsed.skipped
    assert all("not an object" in s for s in parsed.skipped[1:])


def test_cenc_control_characters_in_place_are_stripped() -> None:
    """LOCATION_C with controls is kept, cleaned (it reaches CAP, Atom and QuakeML)."""
    parsed = parse_cenc(cenc_with(LOCATION_C="西藏\x00拉萨\x1f市"))
    places = [r.place for r in parsed.reports]
    assert "西藏 拉萨 市" in places and all(_safe(p) for p in places)


def test_emsc_wrong_types_are_one_skipped_row() -> None:
    """An EMSC message with a list as region or a 9999 time is skipped, not raised."""
    for props in ({"flynn_region": ["X"]}, {"time": "9999-01-01T00:00:00Z"},
                  {"evtype": 7}, {"mag": "NaN"}):
        msg = copy.deepcopy(EMSC)
        msg["data"]["properties"].update(props)
        parsed = parse_emsc_message(json.dumps(msg))
        assert parsed.reports == [] and len(parsed.skipped) == 1, (props, parsed)
    assert len(parse_emsc_message(json.dumps(EMSC)).reports) == 1


def test_csv_catalogue_poison_rows() -> None:
    """ComCat CSV: a 9999 row and a 0001+14:00 row are skipped; the good row is kept."""
    body = (
        b"time,latitude,longitude,depth,mag,magType,net,id,updated,place\n"
        b"2024-11-06T20:19:53Z,29.85,92.25,10,4.5,mb,us,good1,,Tibet\n"
        b"9999-12-01T00:00:00Z,29.85,92.25,10,4.5,mb,us,bad1,,Tibet\n"
        b"0001-01-01T00:00:00+14:00,29.85,92.25,10,4.5,mb,us,bad2,,Tibet\n"
        b"2024-11-06T20:20:53Z,29.85,92.25,10,4.5,mb,us,good2,9999-01-01T00:00:00Z,Ti\x00bet\n"
    )
    parsed = parse_csv_catalog(body)
    assert [r.source_id for r in parsed.reports] == ["good1", "good2"]
    assert parsed.reports[1].updated_at is None  # a bad revision time is dropped, not the row
    assert parsed.reports[1].place == "Ti bet"
    assert len(parsed.skipped) == 2


def test_quakeml_out_of_range_origin_is_skipped() -> None:
    """A QuakeML event dated 9999 is skipped; the other events of the document are kept."""
    body = load_fixture("fdsn/quakeml-1.2-iris-events.xml")
    good = parse_quakeml(body, "iris")
    first = good.reports[0].origin_at.strftime("%Y-%m-%dT%H:%M:%S")
    poisoned = body.replace(first.encode(), b"9999-12-01T00:00:00", 1)
    assert poisoned != body
    parsed = parse_quakeml(poisoned, "iris")
    assert len(parsed.reports) == len(good.reports) - 1
    assert len(parsed.skipped) == len(good.skipped) + 1 and "out of range" in parsed.skipped[-1]


def test_parse_utc_never_overflows() -> None:
    """Times that cannot be expressed in UTC are ValueErrors (a parser's row error)."""
    for text in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"):
        with pytest.raises(ValueError, match="out of range"):
            parse_utc(text)
    with pytest.raises(ValueError):
        parse_utc("0001-01-01 00:00:00", offset_h=8)


def test_helpers_reject_wrong_types() -> None:
    """Numbers are numbers (not booleans, lists or dicts); text is text."""
    for bad in (True, [1], {"a": 1}):
        with pytest.raises(TypeError):
            opt_float(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        clean_text(["x"], "place")
    assert clean_text("ས་ཡོམ།\u200d ok", "place") == "ས་ཡོམ།\u200d ok"  # ZWJ is not a control
    assert clean_text("x" * 1000, "place") == "x" * 255 + "…"


def report(at: datetime, **kw: object) -> Report:
    return Report("t", "id1", at, 29.8, 92.2, 10.0, 4.5, "M", **kw)  # type: ignore[arg-type]


def test_check_report_bounds() -> None:
    """The static bounds are inclusive; outside them the row is refused with its reason."""
    assert check_report(report(EARLIEST_AT))[1] is None
    assert check_report(report(LATEST_AT))[1] is None
    assert "out of range" in str(check_report(report(datetime(1899, 1, 1, tzinfo=UTC)))[1])
    assert "no time zone" in str(check_report(report(datetime(2020, 1, 1)))[1])


def test_screen_future_moves_future_rows_to_skipped() -> None:
    """The poller's clock bound: more than a day ahead of now is refused, with its reason."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    ok = report(datetime(2026, 1, 1, 23, tzinfo=UTC))
    future = report(datetime(2026, 1, 3, tzinfo=UTC), place="x")
    screened = screen_future(ParseResult([ok, future], ["earlier"]), now)
    assert screened.reports == [ok]
    assert screened.skipped[0] == "earlier" and "in the future" in screened.skipped[1]


QUAKEML_HEAD = (b'<?xml version="1.0"?><q:quakeml xmlns:q="http://quakeml.org/xmlns/quakeml/1.2"'
                b' xmlns="http://quakeml.org/xmlns/bed/1.2"><eventParameters publicID="smi:x">')


def test_quakeml_deep_nesting_and_entity_bombs_are_parse_errors() -> None:
    """Deeply nested elements and a billion-laughs entity are refused by the XML parser's own
    limits: a ParseError (the poller records it), not a crash or a memory blow-up."""
    deep = QUAKEML_HEAD + b"<a>" * 10_000 + b"</a>" * 10_000 + b"</eventParameters></q:quakeml>"
    entities = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    bomb = (b'<?xml version="1.0"?><!DOCTYPE q [<!ENTITY l0 "lol">' + entities.encode()
            + b"]>" + QUAKEML_HEAD[QUAKEML_HEAD.index(b"<q:"):]
            + b'<event publicID="smi:e"><description><text>&l9;</text></description></event>'
            + b"</eventParameters></q:quakeml>")
    for body in (deep, bomb):
        with pytest.raises(ParseError, match="invalid QuakeML"):
            parse_quakeml(body, "x")
