"""CENC's public speed-report catalogue query (data.earthquake.cn) for the start-up back-fill.

The live CENC source polls the 48-hour quick-report list, which cannot look five years back. The
National Earthquake Data Center serves the same speed-report list as a form query: a date range
(Beijing time), a magnitude range and a box, answered 20 rows a page as an HTML table
(formats/cenc_subao.py). The back-fill asks it chunk by chunk and page by page, and stops where
the live list begins (``live_window_h``), so no quake arrives twice under two CENC ids (the
quick-report list names quakes by ``NEW_DID``, this catalogue by origin time).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp

from quakealert.config import SourceConfig
from quakealert.errors import SourceError, SourceUnavailable
from quakealert.formats.cenc_subao import BEIJING, parse_subao_html
from quakealert.model import ParseResult, Report
from quakealert.sources.base import HTML_TYPES, TEXT_TYPES, check_content_type, check_status
from quakealert.sources.base import read_capped as _read_capped

log = logging.getLogger(__name__)

SUBAO_URL = "https://data.earthquake.cn/datashare/report.shtml"
LIVE_WINDOW_H = 48.0  # catalogs/cenc.toml polls num=1, the last 48 hours
MAX_PAGES = 400  # per chunk: 8,000 rows; a box around one region never comes near it


@dataclass(frozen=True, slots=True)
class Box:
    """A latitude/longitude box (degrees) around the region the back-fill covers."""

    min_lat: float
    max_lat: float
    min_lon: float
    max_lon: float


def subao_form(start_bjt: datetime, end_bjt: datetime, *, min_magnitude: float, box: Box,
               page: int) -> dict[str, str]:
    """The form fields of one catalogue query (pure): dates are Beijing time, both inclusive."""
    return {
        "DISPLAY_TYPE": "1",
        "PAGEID": "earthquake_subao",
        "begtime": start_bjt.strftime("%Y-%m-%d"),
        "endtime": end_bjt.strftime("%Y-%m-%d"),
        "minM": f"{min_magnitude:g}",
        "maxM": "10",
        "minLat": f"{box.min_lat:.2f}",
        "maxLat": f"{box.max_lat:.2f}",
        "minLon": f"{box.min_lon:.2f}",
        "maxLon": f"{box.max_lon:.2f}",
        "minDepths": "0",
        "maxDepths": "1000",
        "locationselect": "world",
        "location": "",
        "catalog_PAGENO": str(page),
        "WX_ISAJAXLOAD": "true",
        "refreshComponentGuid": "earthquake_subao_guid_catalog",
    }


class CencCatalogBackfill:
    """Back-fills CENC's speed-report list over a window, in chunks of days, page by page."""

    accept = HTML_TYPES | TEXT_TYPES

    def __init__(self, config: SourceConfig, *, box: Box, min_magnitude: float,
                 chunk_days: float, url: str | None = None,
                 live_window_h: float = LIVE_WINDOW_H) -> None:
        self.name = config.name
        self.config = config
        self.url = url or str(config.params.get("catalog_url") or SUBAO_URL)
        self.box = box
        self.min_magnitude = min_magnitude
        self.chunk_days = chunk_days
        self.live_window_h = live_window_h
        self.chunks_done = 0

    async def backfill(self, session: aiohttp.ClientSession | None, start: datetime,
                       end: datetime) -> ParseResult:
        """Every M >= min_magnitude quake in the box from ``start`` to where the live list
        begins; SourceError when a page cannot be had (the caller marks the back-fill failed)."""
        if session is None:
            raise SourceUnavailable(self.name, self.url, "no HTTP session")
        stop = end - timedelta(hours=self.live_window_h)
        found: dict[str, Report] = {}
        skipped: list[str] = []
        chunk = timedelta(days=self.chunk_days)
        at = start
        while at < stop:
            upto = min(at + chunk, stop)
            # the form takes whole Beijing dates, both ends inclusive: ask the dates that hold
            # [at, upto] and keep only what lies inside (a boundary day comes twice, same ids)
            await self._chunk(session, at + BEIJING, upto + BEIJING, found, skipped)
            self.chunks_done += 1
            at = upto
        reports = [r for r in found.values() if start <= r.origin_at < stop]
        return ParseResult(reports=sorted(reports, key=lambda r: r.origin_at), skipped=skipped)

    async def _chunk(self, session: aiohttp.ClientSession, a_bjt: datetime, b_bjt: datetime,
                     found: dict[str, Report], skipped: list[str]) -> None:
        page, pages = 1, 1
        while page <= pages:
            form = subao_form(a_bjt, b_bjt, min_magnitude=self.min_magnitude, box=self.box,
                              page=page)
            body = await self._post(session, form)
            got = parse_subao_html(body, self.name, self.url)
            for report in got.result.reports:
                found[report.source_id] = report
            skipped += got.result.skipped
            if got.pages is not None:
                pages = min(got.pages, MAX_PAGES)
            page += 1

    async def _post(self, session: aiohttp.ClientSession, form: Mapping[str, str]) -> bytes:
        """POST one query under the source's timeout and byte cap; SourceError on failure."""
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_s)
        try:
            async with session.post(self.url, data=dict(form), timeout=timeout) as response:
                if response.status != 200:
                    check_status(response.status, response.headers, self.name, self.url)
                    return b""
                check_content_type(response.headers.get("Content-Type", ""), self.accept,
                                   self.name, self.url)
                return await _read_capped(response, self.config.max_bytes, self.name, self.url)
        except SourceError:
            raise
        except TimeoutError as err:
            raise SourceUnavailable(self.name, self.url,
                                    f"timed out after {self.config.timeout_s} s") from err
        except aiohttp.ClientError as err:
            raise SourceUnavailable(self.name, self.url, f"HTTP client error: {err}") from err
