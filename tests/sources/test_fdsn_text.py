"""parse_fdsn_text on recorded fdsnws-event text bodies (13 and 14 columns, several nodes)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from quakealert.errors import ParseError
from quakealert.formats.fdsntext import parse_fdsn_text
from quakealert.model import Report
from tests.conftest import load_fixture


def by_id(body: bytes, source: str = "node") -> dict[str, Report]:
    result = parse_fdsn_text(body, source)
    assert result.skipped == []
    return {r.source_id: r for r in result.reports}


def test_emsc_2017_spaced_header() -> None:
    """EMSC's tutorial output (spaces around the header pipes, 13 columns) parses every row."""
    reports = parse_fdsn_text(load_fixture("fdsn/fdsn-text-emsc-2017.txt"), "emsc").reports
    assert [r.source_id for r in reports] == [
        "20171031_0000002", "20171024_0000031", "20171010_0000169",
        "20171008_0000103", "20170919_0000091", "20170908_0000020",
    ]
    first, chiapas = reports[0], reports[-1]
    assert first.source == "emsc"
    assert first.origin_at == datetime(2017, 10, 31, 0, 42, 12, 400000, tzinfo=UTC)
    assert (first.latitude, first.longitude, first.depth_km) == (-21.71, 169.11, 25.0)
    assert (first.magnitude, first.mag_type) == (6.8, "mw")
    assert first.place == "SOUTHEAST OF LOYALTY ISLANDS"
    assert first.agency == "EMSC" and first.event_type is None and first.status == "reviewed"
    assert (chiapas.magnitude, chiapas.depth_km, chiapas.place) == (
        8.1, 72.0, "OFFSHORE CHIAPAS, MEXICO")
    assert reports[1].depth_km == 548.0


def test_ingv_sample_14_columns() -> None:
    """INGV rows: naive times are UTC, empty Contributor falls back to Author, EventType kept."""
    reports = by_id(load_fixture("fdsn/fdsn-text-ingv-sample.txt"), "ingv")
    assert len(reports) == 5
    cf = reports["40271581"]
    assert cf.origin_at == datetime(2024, 8, 30, 19, 23, 15, 940000, tzinfo=UTC)
    assert (cf.latitude, cf.longitude, cf.depth_km) == (40.831333, 14.147833, 2.4)
    assert (cf.magnitude, cf.mag_type, cf.place) == (3.7, "Md", "Campi Flegrei")
    assert cf.agency == "SURVEY-INGV-OV#SiSmi" and cf.event_type == "earthquake"
    assert cf.source == "ingv" and cf.status == "reviewed"
    assert reports["40277191"].depth_km == 120.5


def test_mixed_nodes_empty_fields() -> None:
    """EMSC's empty EventType and GEOFON's empty Author/Catalog/MagAuthor are fine."""
    reports = by_id(load_fixture("fdsn/fdsn-text-mixed-nodes-emsc-gfz-ingv.txt"))
    emsc, gfz, ingv = (reports["20260604_0000095"], reports["gfz2026kvsq"], reports["46128882"])
    assert emsc.event_type is None and emsc.agency == "CSN"
    assert emsc.origin_at == datetime(2026, 6, 4, 6, 7, 17, tzinfo=UTC)
    assert (emsc.magnitude, emsc.mag_type) == (3.3, "m")
    assert gfz.agency == "GFZ" and (gfz.magnitude, gfz.mag_type) == (4.79, "mb")
    assert gfz.origin_at == datetime(2026, 6, 4, 4, 37, 28, 820000, tzinfo=UTC)
    assert gfz.place == "West Papua Region, Indonesia"
    assert ingv.place == "1 km NW Nocera Umbra (PG)" and ingv.depth_km == 10.3


def test_seiscomp_negative_depth_and_quarry_blast() -> None:
    """SeisComP (SED): full-precision floats, a depth above sea level, a quarry blast row."""
    reports = by_id(load_fixture("fdsn/fdsn-text-seiscomp-sed-sample.txt"), "sed")
    above = reports["smi:ch.ethz.sed/sc25a/Event/2026eqvwbu"]
    assert above.depth_km == -2.30263671875
    assert above.origin_at == datetime(2026, 3, 7, 19, 56, 21, 243367, tzinfo=UTC)
    assert above.agency == "SED" and above.place == "Muerren BE"
    blast = reports["smi:ch.ethz.sed/sc25a/Event/2026eogyqj"]
    assert blast.event_type == "quarry blast" and blast.place == "Roveredo GR"
    assert blast.magnitude == 0.7111092380241185 and blast.mag_type == "MLhc"


def test_usgs_rows_13_columns() -> None:
    """USGS text has no EventType column; depth written as an integer is km."""
    reports = by_id(load_fixture("fdsn/fdsn-text-usgs-rows.txt"), "usgs")
    jurm = reports["us70006p18"]
    assert jurm.origin_at == datetime(2019, 12, 20, 11, 39, 52, 874000, tzinfo=UTC)
    assert (jurm.depth_km, jurm.magnitude, jurm.mag_type) == (212.0, 6.1, "mww")
    assert jurm.event_type is None and jurm.agency == "us"
    assert reports["us7000bn4e"].longitude == -115.2201


def test_campi_flegrei_file_every_row() -> None:
    """The 1207-row INGV Campi Flegrei export parses without a skipped row."""
    result = parse_fdsn_text(load_fixture("catalogs/ingv-campi-flegrei-2018-2024-fdsn-text.txt"),
                             "ingv")
    assert len(result.reports) == 1207 and result.skipped == []
    assert max(r.magnitude or 0 for r in result.reports) == 4.4


HEADER = ("#EventID|Time|Latitude|Longitude|Depth/km|Author|Catalog|Contributor|ContributorID|"
          "MagType|Magnitude|MagAuthor|EventLocationName|EventType")
GOOD = "ok1|2024-11-06T20:19:00|29.85|92.25|10|CENC||||M|4.5||Xizang|earthquake"


@pytest.mark.parametrize("row, reason", [
    ("bad1|2024-11-06T20:19:00|123.0|92.25|10|x||||M|4.5||p|earthquake",
     "row 2 (id bad1): latitude 123.0 out of range"),
    ("bad2|2024-11-06T20:19:00|29.8|-181.5|10|x||||M|4.5||p|earthquake",
     "row 2 (id bad2): longitude -181.5 out of range"),
    ("bad3|2024-11-06T20:19:00|29.8|92.2|801|x||||M|4.5||p|earthquake",
     "row 2 (id bad3): depth_km 801.0 out of range"),
    ("bad4|2024-11-06T20:19:00|29.8|92.2|10|x||||M|42||p|earthquake",
     "row 2 (id bad4): magnitude 42.0 out of range"),
    ("bad5|yesterday|29.8|92.2|10|x||||M|4.0||p|earthquake",
     "row 2 (id bad5): unparseable time 'yesterday'"),
    ("bad6|2024-11-06T20:19:00|north|92.2|10|x||||M|4.0||p|earthquake",
     "row 2 (id bad6): unparseable number"),
    ("bad7|2024-11-06T20:19:00|29.8|92.2|10",
     "row 2 (id bad7): 5 columns, header has 14"),
    ("bad8|2024-11-06T20:19:00|nan|92.2|10|x||||M|4.0||p|earthquake",
     "row 2 (id bad8): latitude nan out of range"),
])
def test_bad_row_is_skipped_with_reason(row: str, reason: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    """One bad row is skipped with a reason naming row and id, logged with the source; the
    rows around it are kept."""
    body = "\n".join([HEADER, GOOD, row, GOOD.replace("ok1", "ok2")]).encode()
    with caplog.at_level(logging.WARNING):
        result = parse_fdsn_text(body, "ingv")
    assert [r.source_id for r in result.reports] == ["ok1", "ok2"]
    assert len(result.skipped) == 1 and result.skipped[0].startswith(reason)
    assert any(getattr(r, "source", None) == "ingv" and reason in r.getMessage()
               for r in caplog.records)


def test_longitude_0_360_is_normalised() -> None:
    """A feed writing longitudes in 0..360 gets them back in -180..180."""
    body = f"{HEADER}\n{GOOD.replace('|92.25|', '|267.5|')}\n".encode()
    assert parse_fdsn_text(body, "x").reports[0].longitude == -92.5


def test_truncated_last_row_is_skipped_rest_kept() -> None:
    """A body cut mid-row loses that row only."""
    body = load_fixture("fdsn/fdsn-text-ingv-sample.txt")
    cut = body[: body.rindex(b"|120.5|") + 3]
    result = parse_fdsn_text(cut, "ingv")
    assert len(result.reports) == 4
    assert result.skipped[0].startswith("row 5 (id 40277191): ")


def test_scedc_spaced_pipes_and_slash_date() -> None:
    """SCEDC writes spaces around every pipe and a slash date."""
    body = (b"#EventID | Time | Latitude | Longitude | Depth/km | Author | Catalog | Contributor |"
            b" ContributorID | MagType | Magnitude | MagAuthor | EventLocationName\n"
            b"38457511 | 2019/07/06 03:19:53.040 | 35.7695 | -117.5993 | 8.0 | SCSN | SCEDC |"
            b" SCEDC | 38457511 | w | 7.1 | SCSN | 17 km NNE of Ridgecrest, CA\n")
    [r] = parse_fdsn_text(body, "scedc").reports
    assert r.origin_at == datetime(2019, 7, 6, 3, 19, 53, 40000, tzinfo=UTC)
    assert (r.magnitude, r.mag_type, r.agency) == (7.1, "w", "SCEDC")


def test_not_existing_event_type_is_deleted() -> None:
    """EventType "not existing" (QuakeML's deleted event) becomes status deleted."""
    body = f"{HEADER}\n{GOOD.replace('|earthquake', '|not existing')}\n".encode()
    assert parse_fdsn_text(body, "x").reports[0].status == "deleted"


@pytest.mark.parametrize("body", [b"", b"\n\n", b"   "])
def test_empty_body_is_no_reports(body: bytes) -> None:
    """A 204's empty body parses to nothing."""
    assert parse_fdsn_text(body, "x").reports == []


@pytest.mark.parametrize("body", [
    b"<html><body><h1>502 Bad Gateway</h1></body></html>",
    b"Error 400: Bad Request\n\nUnknown parameter: foo\n",
    b'{"type": "FeatureCollection", "features": []}',
    b"#Time|Latitude|Longitude\n2024-01-01T00:00:00|1|2\n",
])
def test_not_fdsn_text_is_parse_error(body: bytes) -> None:
    """An HTML page, an fdsnws error text, JSON, or a header without EventID: ParseError."""
    with pytest.raises(ParseError):
        parse_fdsn_text(body, "x")
