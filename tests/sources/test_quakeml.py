"""parse_quakeml (obspy.read_events on the bytes) on recorded QuakeML 1.2 documents."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from quakealert.errors import ParseError
from quakealert.formats.quakeml import parse_quakeml
from tests.conftest import load_fixture


def test_ingv_full_event_preferred_origin_and_magnitude() -> None:
    """INGV's full document (picks, arrivals, station magnitudes): preferred origin, metres->km."""
    body = load_fixture("fdsn/quakeml-1.2-ingv-event-25883521-full.xml")
    [r] = parse_quakeml(body, "ingv").reports
    assert r.source == "ingv" and r.source_id == "25883521"
    assert r.origin_at == datetime(2021, 1, 1, 1, 9, 10, 220000, tzinfo=UTC)
    assert (r.latitude, r.longitude, r.depth_km) == (42.8343, 13.1877, 8.4)
    assert (r.magnitude, r.mag_type) == (1.3, "ML")
    assert r.status == "reviewed" and r.agency == "INGV" and r.event_type == "earthquake"
    assert r.place == "7 km SE Castelsantangelo sul Nera (MC)"
    assert r.updated_at == datetime(2021, 1, 1, 2, 55, 39, tzinfo=UTC)


def test_ingv_minimal_event() -> None:
    """A Pozzuoli event: 1640 m deep is 1.64 km; the latest creation time is `updated_at`."""
    [r] = parse_quakeml(load_fixture("fdsn/quakeml-1.2-ingv-event-25883901-minimal.xml"),
                        "ingv").reports
    assert r.source_id == "25883901" and r.depth_km == 1.64
    assert (r.magnitude, r.mag_type, r.place) == (1.0, "Md", "4 km SE Pozzuoli (NA)")
    assert r.updated_at == datetime(2021, 1, 5, 8, 54, 3, tzinfo=UTC)


def test_iris_events() -> None:
    """The old IRIS service: eventId from the publicID query, Flinn-Engdahl region as place.

    Its depth element holds 29.0 for Tohoku, i.e. km written into a metres field; we follow
    QuakeML (metres), so the report says 0.029 km. Live QuakeML comes from fdsnws nodes that
    write metres (INGV, USGS above)."""
    reports = parse_quakeml(load_fixture("fdsn/quakeml-1.2-iris-events.xml"), "iris").reports
    tohoku, sulu = reports
    assert tohoku.source_id == "3279407"
    assert tohoku.origin_at == datetime(2011, 3, 11, 5, 46, 24, 120000, tzinfo=UTC)
    assert (tohoku.magnitude, tohoku.mag_type) == (9.1, "MW")
    assert tohoku.place == "NEAR EAST COAST OF HONSHU, JAPAN" and tohoku.agency == "NEIC"
    assert tohoku.depth_km == pytest.approx(0.029)
    assert sulu.source_id == "2318174" and sulu.place == "SULU SEA"


def test_usgs_comcat_catalog() -> None:
    """ComCat QuakeML: 16 events, ids from eventid=, mww/mwb magnitudes, China's Minxian quake."""
    reports = parse_quakeml(load_fixture("fdsn/quakeml-1.2-usgs-comcat-2013-07-m5.5.xml"),
                            "usgs").reports
    assert len(reports) == 16
    ids = {r.source_id: r for r in reports}
    tonga = ids["usb000ief4"]
    assert tonga.origin_at == datetime(2013, 7, 15, 13, 59, 4, 590000, tzinfo=UTC)
    assert (tonga.magnitude, tonga.mag_type, tonga.depth_km) == (5.8, "mww", 15.0)
    assert tonga.updated_at == datetime(2022, 5, 3, 16, 23, 9, 967000, tzinfo=UTC)
    minxian = ids["usb000ije3"]
    assert minxian.place == "60 km W of Mawu, China" and minxian.magnitude == 5.9
    assert ids["usb000ilce"].depth_km == 155.5
    assert {r.status for r in reports} == {"reviewed"}


def test_automatic_origin_and_deleted_event() -> None:
    """evaluationMode automatic -> automatic; event type "not existing" -> deleted."""
    body = load_fixture("fdsn/quakeml-1.2-ingv-event-25883901-minimal.xml")
    automatic = body.replace(b"<evaluationMode>manual</evaluationMode>",
                             b"<evaluationMode>automatic</evaluationMode>", 1)
    assert parse_quakeml(automatic, "ingv").reports[0].status == "automatic"
    deleted = body.replace(b"<type>earthquake</type>", b"<type>not existing</type>", 1)
    assert parse_quakeml(deleted, "ingv").reports[0].status == "deleted"


def test_event_without_origin_is_skipped() -> None:
    """An event with no origin cannot be placed: skipped with a reason, not fatal."""
    body = (b'<?xml version="1.0"?><q:quakeml xmlns:q="http://quakeml.org/xmlns/quakeml/1.2" '
            b'xmlns="http://quakeml.org/xmlns/bed/1.2"><eventParameters publicID="smi:x">'
            b'<event publicID="smi:x/query?eventid=e1"><type>earthquake</type></event>'
            b"</eventParameters></q:quakeml>")
    result = parse_quakeml(body, "x")
    assert result.reports == [] and result.skipped == ["row 1 (id e1): no origin"]


@pytest.mark.parametrize("body", [
    b"<q:quakeml xmlns:q='http://quakeml.org/xmlns/quakeml/1.2'><eventParam",  # truncated
    b"<?xml version='1.0'?><oops",
    b"hello, not xml",
    b"<html><body>Service Unavailable</body></html>",
    b"<root><child/></root>",  # XML, not QuakeML
])
def test_invalid_quakeml_is_parse_error(body: bytes) -> None:
    """Whatever obspy raises on bad XML becomes ParseError."""
    with pytest.raises(ParseError):
        parse_quakeml(body, "x")


def test_truncated_recorded_document_is_parse_error() -> None:
    """The recorded ComCat document cut in half is ParseError, not a partial catalogue."""
    body = load_fixture("fdsn/quakeml-1.2-usgs-comcat-2013-07-m5.5.xml")
    with pytest.raises(ParseError):
        parse_quakeml(body[: len(body) // 2], "usgs")
