"""CSV layouts (issue 11): CENC's own export (Chinese headers, Beijing time), any CSV that names
its columns by common synonyms or with --columns, and files that match nothing are refused with
the columns they have — never read as another layout."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from quakealert.errors import ParseError
from quakealert.formats.catalog import parse_catalog_bytes, parse_columns, read_catalog_file
from tests.conftest import FIXTURES

EXPORT = FIXTURES / "catalogs" / "cenc-export-lhasa-300km-2024.csv"
BOMBAY = FIXTURES / "catalogs" / "scedc-bombay-beach-swarm-2016.csv"


def test_cenc_export_chinese_headers_beijing_time() -> None:
    """The 27 real 2024 rows of CENC's speed-report export: Beijing time -> UTC, the M4.5."""
    result = read_catalog_file(EXPORT)
    assert result.skipped == [] and len(result.reports) == 27
    m45 = next(r for r in result.reports if r.magnitude == 4.5)
    assert m45.source == "cenc" and m45.origin_at == datetime(2024, 11, 6, 20, 19, 53, tzinfo=UTC)
    assert (m45.latitude, m45.longitude, m45.depth_km, m45.mag_type) == (29.85, 92.25, 10.0, "M")
    assert m45.place == "西藏拉萨市墨竹工卡县" and m45.event_type == "earthquake"
    assert m45.source_id == "cenc-sb-20241107041953"  # the id the shared CENC extracts use


def test_cenc_export_every_row_is_beijing_time_minus_8_h() -> None:
    """Each row's UTC time is its 发震日期（北京时间） minus 8 h; its id is that BJT instant."""
    reports = read_catalog_file(EXPORT).reports
    with EXPORT.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(reports)
    for row, rep in zip(rows, reports, strict=True):
        bjt = datetime.fromisoformat(row["发震日期（北京时间）"])
        assert rep.origin_at == (bjt - timedelta(hours=8)).replace(tzinfo=UTC)
        assert rep.source_id == "cenc-sb-" + bjt.strftime("%Y%m%d%H%M%S")
        assert rep.magnitude == float(row["震级(M)"])


def _csv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def _bombay_rows() -> list[dict[str, str]]:
    with BOMBAY.open(newline="") as f:
        return list(csv.DictReader(f))


def test_synonym_headers_without_id_are_read_not_taken_for_scedc() -> None:
    """Real Bombay Beach rows under other header names and no id: every row read (the old
    detector took this for SCEDC and skipped every row, "id missing")."""
    rows = _bombay_rows()
    body = _csv([["Origin Time", "Lat", "Lon", "Depth (km)", "Mag"]]
                + [[r["time"], r["latitude"], r["longitude"], r["depth"], r["mag"]] for r in rows])
    result = parse_catalog_bytes(body, default_name="swarm")
    assert result.skipped == [] and len(result.reports) == 340
    assert len({r.source_id for r in result.reports}) == 340
    first = result.reports[0]
    assert first.source == "swarm" and first.magnitude == float(rows[0]["mag"])
    assert first.origin_at == datetime.fromisoformat(rows[0]["time"]).astimezone(UTC)


def test_chinese_synonyms_in_utc() -> None:
    """发震时刻/纬度/经度/深度/震级 headers without 北京时间 are read as UTC."""
    r0 = _bombay_rows()[0]
    body = _csv([["发震时刻", "纬度", "经度", "深度", "震级"],
                 [r0["time"], r0["latitude"], r0["longitude"], r0["depth"], r0["mag"]]])
    (rep,) = parse_catalog_bytes(body).reports
    assert rep.origin_at == datetime.fromisoformat(r0["time"]).astimezone(UTC)


def test_columns_option_maps_the_rest() -> None:
    """--columns names columns no synonym covers; without it the file is refused."""
    r0 = _bombay_rows()[0]
    body = _csv([["t0", "y", "x", "z", "size"],
                 [r0["time"], r0["latitude"], r0["longitude"], r0["depth"], r0["mag"]]])
    with pytest.raises(ParseError) as err:
        parse_catalog_bytes(body)
    assert "['t0', 'y', 'x', 'z', 'size']" in str(err.value)
    cols = parse_columns("time=t0,latitude=y,longitude=x,depth=z,magnitude=size")
    (rep,) = parse_catalog_bytes(body, columns=cols).reports
    assert (rep.latitude, rep.longitude, rep.depth_km) == (33.219, -115.65, 2.2)


def test_unknown_layout_is_refused_with_its_columns() -> None:
    """A CSV with a time but no coordinates names the columns it found in the error."""
    body = _csv([["time", "mag", "station"], ["2016-09-24T20:04:33Z", "1.5", "BOM"]])
    with pytest.raises(ParseError) as err:
        parse_catalog_bytes(body)
    text = str(err.value)
    assert "no latitude, longitude" in text and "'station'" in text


def test_bad_columns_option_is_refused() -> None:
    """--columns naming a column the file lacks, or an unknown role, is an error."""
    body = _csv([["time", "lat", "lon", "mag"], ["2016-09-24T20:04:33Z", "33", "-115", "1"]])
    with pytest.raises(ParseError, match="not a column"):
        parse_catalog_bytes(body, columns={"depth": "dep_km"})
    with pytest.raises(ParseError, match="unknown role"):
        parse_catalog_bytes(body, columns={"colour": "lat"})
    with pytest.raises(ValueError):
        parse_columns("time")


def test_known_layouts_unchanged() -> None:
    """SCEDC, ComCat and the reformatted CENC extracts keep their own readers."""
    assert read_catalog_file(BOMBAY).reports[0].source == "scedc"
    assert read_catalog_file(FIXTURES / "catalogs" /
                             "usgs-santorini-amorgos-swarm-2025.tsv").reports[0].source == "usgs"
