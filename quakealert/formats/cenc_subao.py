"""The CENC speed-report catalogue query (中国地震台网速报目录) of the National Earthquake Data
Center, data.earthquake.cn ``datashare/report.shtml`` with ``PAGEID=earthquake_subao``.

The service answers a form POST with an HTML fragment: a table ``#earthquake_subao_guid_catalog_data``
whose rows are 序号, 发震时间 (Beijing time, dates sometimes unpadded: ``2025-1-06 00:51:18``),
经度, 纬度, 深度 (km), 震级 (M), 震中位置, 事件类型, and a pager ``span.cls-navigate-info`` that
says ``共 N 页`` (20 rows a page). Interface as used by the public scraper behind
``data/cenc-lhasa-300km-2024-11-25-2025-11-25.csv`` (GitHub ``maple-red/Crawlweb``,
``earthquake_crawler_v2.py``).

Rows become reports with the ids of the bundled scenario (``cenc-sb-`` + BJT yyyymmddHHMMSS), so a
back-fill and the scenario name the same quake the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import lxml.html
from lxml import etree

from quakealert.errors import ParseError
from quakealert.formats.rows import BODY_URL, check_values, decode_text, finish, row_reason
from quakealert.model import ParseResult, Report

TABLE_ID = "earthquake_subao_guid_catalog_data"
BEIJING = timedelta(hours=8)
# 事件类型 as CENC writes it; anything else is kept as written
EVENT_TYPES = {"天然地震": "earthquake", "爆破": "explosion", "塌陷": "collapse"}
_PAGES = re.compile(r"共\s*(\d+)\s*页")
_BJT = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2}):(\d{2})$")


@dataclass(frozen=True, slots=True)
class SubaoPage:
    """One page of the catalogue query: its reports and, when the pager says, the page count."""

    result: ParseResult
    pages: int | None


def subao_id(bjt: datetime) -> str:
    """The report id of a speed-report row: ``cenc-sb-`` + its Beijing time (to the second)."""
    return "cenc-sb-" + bjt.strftime("%Y%m%d%H%M%S")


def parse_bjt(text: str) -> datetime:
    """A 发震时间 (Beijing time, padded or not) as naive Beijing time."""
    m = _BJT.match(text.strip())
    if m is None:
        raise ValueError(f"unparseable time {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups())
    return datetime(year, month, day, hour, minute, second)


def parse_subao_html(body: bytes, source: str = "cenc", url: str = BODY_URL) -> SubaoPage:
    """One response of the catalogue query to reports (UTC) and the page count."""
    text = decode_text(body)
    if not text.strip():
        return SubaoPage(ParseResult(), None)
    try:
        doc = lxml.html.fromstring(text)
    except (etree.ParserError, ValueError) as err:
        raise ParseError(source, url, f"unreadable CENC catalogue page: {err}") from err
    tables = doc.xpath(f"//table[@id='{TABLE_ID}']")
    pager = " ".join(doc.xpath("//span[contains(@class, 'cls-navigate-info')]//text()"))
    found = _PAGES.search(pager)
    pages = int(found.group(1)) if found else None
    if not tables:
        if pages == 0 or "没有" in text or "无数据" in text:
            return SubaoPage(ParseResult(), 0)
        raise ParseError(source, url, f"no table #{TABLE_ID} in the CENC catalogue page")
    reports: list[Report] = []
    skipped: list[str] = []
    for n, tr in enumerate(tables[0].xpath("./tr|./tbody/tr"), start=1):
        cells = [" ".join(td.text_content().split()) for td in tr.xpath("./td")]
        if len(cells) < 9:
            continue  # the header row (th) or a layout row
        try:
            report = _row(cells, source)
        except ValueError as err:
            skipped.append(row_reason(n, None, str(err)))
            continue
        lon, problem = check_values(report.latitude, report.longitude, report.depth_km,
                                    report.magnitude)
        if problem:
            skipped.append(row_reason(n, report.source_id, problem))
            continue
        reports.append(report if lon == report.longitude else replace(report, longitude=lon))
    return SubaoPage(finish(source, reports, skipped), pages)


def _row(cells: list[str], source: str) -> Report:
    """Cells: [selector], 序号, 发震时间, 经度, 纬度, 深度, 震级, 震中位置, 事件类型."""
    bjt = parse_bjt(cells[2])
    try:
        lon, lat, depth, mag = (float(cells[i]) for i in (3, 4, 5, 6))
    except ValueError as err:
        raise ValueError(f"not a number in {cells[3:7]}") from err
    kind = cells[8]
    return Report(
        source=source,
        source_id=subao_id(bjt),
        origin_at=(bjt - BEIJING).replace(tzinfo=UTC),
        latitude=lat,
        longitude=lon,
        depth_km=depth,
        magnitude=mag,
        mag_type="M",  # the speed-report list gives CENC's M only
        status="reviewed",  # the catalogue holds the official (正式测定) determinations
        place=cells[7] or None,
        agency="CENC",
        event_type=EVENT_TYPES.get(kind, kind) or "earthquake",
    )
