"""CENC's catalogue export as an xlsx workbook (issue 11): the real 2024 rows of the speed-report
list written as CENC's export writes them (sheet 速报目录, Chinese headers, Beijing time as Excel
dates, numbers as numbers) read through the same layouts as the CSV and give the same events;
``classify`` and the replay source take the workbook; bad rows and unreadable files are named.

The workbook is generated here from tests/fixtures/catalogs/cenc-export-lhasa-300km-2024.csv
(27 real rows; its README says where they come from), so no binary fixture is committed.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from quakealert.cli import main
from quakealert.config import SourceConfig
from quakealert.errors import ParseError
from quakealert.formats.catalog import parse_catalog_bytes, read_catalog_file
from quakealert.sources.replay import ReplaySource
from tests.conftest import FIXTURES

EXPORT = FIXTURES / "catalogs" / "cenc-export-lhasa-300km-2024.csv"
TIME = "发震日期（北京时间）"
EXCEL_EPOCH = datetime(1899, 12, 30)


def export_rows() -> tuple[list[str], list[dict[str, str]]]:
    with EXPORT.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def typed(header: str, text: str, *, serial: bool) -> Any:
    """A CSV cell as CENC's workbook holds it: dates as Excel dates, numbers as numbers."""
    if header == TIME:
        when = datetime.fromisoformat(text)
        return (when - EXCEL_EPOCH).total_seconds() / 86400 if serial else when
    if header == "序号":
        return int(text)
    if header.startswith(("经度", "纬度", "震源深度", "震级")):
        try:
            return float(text) if "." in text else int(text)
        except ValueError:
            return text  # a typing error in the sheet, kept as the text it is
    return text


def write_workbook(path: Path, rows: list[dict[str, str]] | None = None, *, serial: bool = False,
                   sheet: str = "速报目录", leading_blank: bool = False) -> Path:
    header, real = export_rows()
    book = Workbook()
    ws = book.active
    ws.title = sheet
    if leading_blank:
        ws.append([])
    ws.append(header)
    for row in real if rows is None else rows:
        ws.append([typed(h, row[h], serial=serial) for h in header])
        if not serial:
            ws.cell(ws.max_row, header.index(TIME) + 1).number_format = "yyyy-mm-dd hh:mm:ss"
    book.save(path)
    return path


@pytest.mark.parametrize("serial", [False, True], ids=["date-cells", "serial-numbers"])
def test_xlsx_export_gives_the_same_reports_as_the_csv(tmp_path: Path, serial: bool) -> None:
    """The 27 rows from a workbook equal the CSV's, field by field: Beijing time -> UTC to the
    second (date cells, or bare Excel serials), the same ids, places, types and magnitudes."""
    xlsx = write_workbook(tmp_path / "cenc.xlsx", serial=serial)
    from_csv = read_catalog_file(EXPORT)
    from_xlsx = read_catalog_file(xlsx)
    assert from_xlsx.skipped == [] and len(from_xlsx.reports) == 27
    assert from_xlsx.reports == from_csv.reports
    m45 = next(r for r in from_xlsx.reports if r.magnitude == 4.5)
    assert m45.source_id == "cenc-sb-20241107041953" and m45.source == "cenc"
    assert m45.origin_at.isoformat() == "2024-11-06T20:19:53+00:00"


def test_bad_row_is_named_by_its_worksheet_row(tmp_path: Path) -> None:
    """A row whose latitude is text is skipped with the worksheet's own row number (header in
    row 2 after a blank row: the 3rd data row is row 5); the others are read."""
    _, rows = export_rows()
    rows[2] = {**rows[2], "纬度(°)": "北纬29度"}
    xlsx = write_workbook(tmp_path / "bad.xlsx", rows, leading_blank=True)
    result = read_catalog_file(xlsx)
    assert len(result.reports) == 26
    (reason,) = result.skipped
    assert reason.startswith("row 5 (id cenc-sb-") and "latitude" in reason


def test_unknown_sheet_layout_is_refused_with_its_columns(tmp_path: Path) -> None:
    """A workbook whose header names no time column is refused, naming the sheet and columns."""
    book = Workbook()
    book.active.title = "Sheet1"
    book.active.append(["站名", "经度", "纬度", "震级"])
    book.active.append(["LSA", 91.1, 29.6, 3.0])
    book.save(tmp_path / "stations.xlsx")
    with pytest.raises(ParseError, match=r"no time column among \['站名'.*\(sheet 'Sheet1'\)"):
        read_catalog_file(tmp_path / "stations.xlsx")


def test_xls_and_broken_workbooks_are_refused_clearly(tmp_path: Path) -> None:
    """An Excel 97-2003 file (OLE2 header) and a truncated xlsx are refused with what to do."""
    with pytest.raises(ParseError, match="Excel 97-2003 .xls"):
        parse_catalog_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 504, default_name="x")
    body = write_workbook(tmp_path / "cenc.xlsx").read_bytes()
    with pytest.raises(ParseError, match="unreadable xlsx workbook"):
        parse_catalog_bytes(body[: len(body) // 2], default_name="cut")


def test_classify_reads_the_workbook_as_the_csv(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`quakealert classify FILE.xlsx` types the 2024 Maizhokunggar swarm as it does the CSV."""
    xlsx = write_workbook(tmp_path / "cenc.xlsx")
    out = []
    for path in (EXPORT, xlsx):
        assert main(["classify", str(path), "--json"]) == 0
        out.append(json.loads(capsys.readouterr().out))
    assert out[0] == out[1]
    swarm = next(s for s in out[1]["sequences"]
                 if s["largest"]["id"] == "cenc-sb-20241107041953")
    assert swarm["type"] == "swarm"


async def test_replay_source_plays_the_workbook(tmp_path: Path) -> None:
    """A replay source configured with the workbook releases its 27 quakes (speed 0)."""
    xlsx = write_workbook(tmp_path / "cenc.xlsx")
    src = ReplaySource(SourceConfig(name="cenc-xlsx", kind="replay", path=str(xlsx), speed=0,
                                    params={}))
    reports = src.parse(await src.fetch(None, None)).reports  # type: ignore[arg-type]
    assert len(reports) == 27 and {r.source for r in reports} == {"cenc"}
    assert {r.source_id for r in reports} == {r.source_id for r in read_catalog_file(EXPORT).reports}
