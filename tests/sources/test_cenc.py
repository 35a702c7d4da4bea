"""parse_cenc on the recorded CENC speedsearch response, plain and JSONP-wrapped."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from quakealert.errors import ParseError
from quakealert.formats.cenc import cenc_event_id, parse_cenc, strip_jsonp
from tests.conftest import load_fixture

BODY = load_fixture("cenc/cenc-speedsearch-response-2019-12.json")


def test_recorded_response() -> None:
    """10 official (AUTO_FLAG M) rows; ids are NEW_DID; Chinese place names decoded."""
    reports = parse_cenc(BODY).reports
    assert len(reports) == 10
    first = reports[0]
    assert first.source == "cenc" and first.source_id == "CC20191212100824"
    assert (first.latitude, first.longitude, first.depth_km) == (33.06, 121.37, 10.0)
    assert (first.magnitude, first.mag_type, first.status) == (3.5, "M", "reviewed")
    assert first.place == "江苏盐城市东台市海域" and first.agency == "CENC"
    assert [r.source_id for r in reports][-1] == "CC20191210164041"
    assert {r.status for r in reports} == {"reviewed"}


def test_beijing_time_to_utc() -> None:
    """O_TIME 2019-12-11 01:04:59 (Beijing) is 2019-12-10 17:04:59 UTC; SAVE_TIME likewise."""
    japan = {r.source_id: r for r in parse_cenc(BODY).reports}["CC20191211010460"]
    assert japan.origin_at == datetime(2019, 12, 10, 17, 4, 59, tzinfo=UTC)
    assert japan.updated_at == datetime(2019, 12, 10, 17, 27, 25, tzinfo=UTC)
    assert japan.place == "日本本州东南海域" and japan.magnitude == 5.9


@pytest.mark.parametrize("wrap", [b"jQuery1123(%s)", b"(%s)", b"jQuery_1_2.cb(%s);\n",
                                  b"  (%s)  "])
def test_jsonp_wrapped(wrap: bytes) -> None:
    """The live service wraps the JSON in a callback or bare parentheses."""
    wrapped = wrap.replace(b"%s", BODY)
    assert strip_jsonp(wrapped).strip() == BODY.strip()
    assert [r.source_id for r in parse_cenc(wrapped).reports] == [
        r.source_id for r in parse_cenc(BODY).reports]


def _with(changes: dict[str, object], row: int = 0) -> bytes:
    doc = json.loads(BODY)
    doc["shuju"][row].update(changes)
    return json.dumps(doc, ensure_ascii=False).encode()


@pytest.mark.parametrize("flag, status", [("M", "reviewed"), ("A", "automatic"),
                                          ("AU", "automatic"), ("", "automatic")])
def test_auto_flag(flag: str, status: str) -> None:
    """AUTO_FLAG M (正式测定) is reviewed; any other flag is automatic (preliminary)."""
    assert parse_cenc(_with({"AUTO_FLAG": flag})).reports[0].status == status


def test_is_del_is_deleted() -> None:
    """IS_DEL set marks the report deleted."""
    assert parse_cenc(_with({"IS_DEL": "1"})).reports[0].status == "deleted"


def test_source_id_fallbacks() -> None:
    """NEW_DID, else CATA_ID without .00, else the row id."""
    row = {"id": "38461", "CATA_ID": "CC20191212100824.00", "NEW_DID": "CC20191212100824"}
    assert cenc_event_id(row) == "CC20191212100824"
    assert cenc_event_id({**row, "NEW_DID": ""}) == "CC20191212100824"
    assert cenc_event_id({"id": "38461", "CATA_ID": "", "NEW_DID": ""}) == "38461"


def test_suspected_explosion() -> None:
    """CENC marks suspected explosions in the place name."""
    r = parse_cenc(_with({"LOCATION_C": "河北唐山市(疑爆)"})).reports[0]
    assert r.event_type == "explosion"


def test_bad_rows_skipped() -> None:
    """Latitude out of range and an unparseable O_TIME skip only their rows."""
    doc = json.loads(BODY)
    doc["shuju"][0]["EPI_LAT"] = "133.06"
    doc["shuju"][1]["O_TIME"] = "2019-12-12 25:99"
    result = parse_cenc(json.dumps(doc).encode())
    assert len(result.reports) == 8
    assert result.skipped == [
        "row 1 (id CC20191212100824): latitude 133.06 out of range",
        "row 2 (id CD20191212084919): unparseable time '2019-12-12 25:99'",
    ]


@pytest.mark.parametrize("body", [
    BODY[:2000],  # truncated
    b"jQuery123({\"shuju\": [",
    b"<html><head><title>403 Forbidden</title></head></html>",
    b'{"jieguo": "x"}',
])
def test_unreadable_is_parse_error(body: bytes) -> None:
    """Truncated or invalid JSON, an HTML page, or no 'shuju' list: ParseError."""
    with pytest.raises(ParseError):
        parse_cenc(body)
