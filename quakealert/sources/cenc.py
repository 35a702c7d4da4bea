"""CENC (China Earthquake Networks Center, ceic.ac.cn) quick-report list, ``ajax/speedsearch``.

The body is ``{"shuju": [...], "jieguo": ..., "page": ..., "num": ...}``; the live service wraps it
in a JSONP callback, ``jQuery123(...)`` or bare ``(...)``. Times (``O_TIME``, ``SAVE_TIME``) are
Beijing time, UTC+8, without a zone.

Source id: ``NEW_DID`` (e.g. ``CC20191212100824``), falling back to ``CATA_ID`` without its
``.00`` suffix, then to ``id``. ``id`` is a row serial of the web database (38452..38461 in the
sample, one per list entry), so an automatic report and the official one that replaces it are
two rows with two ``id`` values. ``CATA_ID``/``NEW_DID`` is the catalogue event code (network
prefix + origin time rounded to the second; ``NEW_DID`` = ``CATA_ID`` minus ``.00``); it names
the event rather than the row, so it is the one that can survive the automatic -> official
revision. Caveat (not verifiable from one sample with only official rows): the code embeds the
origin time, so if CENC re-codes an event whose official time differs by a second, the
association step must still merge the two reports by time and place (seismology.md §6.3 rule 5).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime
from typing import Any

import aiohttp

from quakealert.config import SourceConfig
from quakealert.errors import ConfigError, ParseError
from quakealert.model import ParseResult, Report, ReportStatus
from quakealert.sources.base import (
    BODY_URL,
    HTML_TYPES,
    JSON_TYPES,
    JSONP_TYPES,
    TEXT_TYPES,
    check_values,
    finish,
    http_get,
    opt_float,
    parse_utc,
    req_float,
    row_reason,
    sniff_not_html,
)

BEIJING_OFFSET_H = 8.0
CENC_MAG_TYPE = "M"  # CENC's published magnitude; the M_ML/M_MS/... columns are 0 in the feed
# AUTO_FLAG: "M" (manual) = 正式测定, official, reviewed. Every row of the recorded response
# has "M". Automatic reports (自动测定) carry another flag; anything other than "M" is treated
# as automatic, which only ever makes a notice more cautious ("preliminary").
_REVIEWED_FLAGS = frozenset({"M"})
_JSONP = re.compile(rb"^\s*[\w$.]*\s*\((?P<json>.*)\)\s*;?\s*$", re.DOTALL)


def strip_jsonp(body: bytes) -> bytes:
    """The JSON inside ``callback(...)`` / ``(...)``, or the body unchanged."""
    match = _JSONP.match(body)
    return match["json"] if match else body


def parse_cenc(body: bytes, source: str = "cenc") -> ParseResult:
    """A CENC speedsearch body (JSON or JSONP) to reports; O_TIME Beijing time -> UTC."""
    body = body.lstrip(b"\xef\xbb\xbf")
    if not body.strip():
        return ParseResult()
    sniff_not_html(body, source, "CENC JSON")
    try:
        doc = json.loads(strip_jsonp(body))
    except (ValueError, UnicodeDecodeError) as err:
        raise ParseError(source, BODY_URL, f"invalid CENC JSON: {err}") from err
    rows = doc.get("shuju") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise ParseError(source, BODY_URL, "CENC JSON has no 'shuju' list")
    reports: list[Report] = []
    skipped: list[str] = []
    for row, item in enumerate(rows, start=1):
        sid = cenc_event_id(item) if isinstance(item, dict) else ""
        try:
            report = _row_report(item, sid, source)
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            skipped.append(row_reason(row, sid, str(err)))
            continue
        lon, problem = check_values(
            report.latitude, report.longitude, report.depth_km, report.magnitude
        )
        if problem:
            skipped.append(row_reason(row, sid, problem))
            continue
        reports.append(report if lon == report.longitude else replace(report, longitude=lon))
    return finish(source, reports, skipped)


def cenc_event_id(item: dict[str, Any]) -> str:
    """NEW_DID, else CATA_ID without ``.00``, else the row id (see the module docstring)."""
    new_did = str(item.get("NEW_DID") or "").strip()
    if new_did:
        return new_did
    cata = str(item.get("CATA_ID") or "").strip()
    if cata:
        return cata.split(".", 1)[0]
    return str(item.get("id") or "").strip()


def _row_report(item: dict[str, Any], sid: str, source: str) -> Report:
    if not sid:
        raise ValueError("no NEW_DID, CATA_ID or id")
    try:
        origin_at = parse_utc(str(item.get("O_TIME") or ""), offset_h=BEIJING_OFFSET_H)
    except ValueError as err:
        raise ValueError(f"unparseable time {item.get('O_TIME')!r}") from err
    saved = _bjt(item.get("SAVE_TIME")) or _bjt(item.get("SYNC_TIME"))
    flag = str(item.get("AUTO_FLAG") or "").strip().upper()
    deleted = str(item.get("IS_DEL") or "").strip().upper() in {"1", "Y", "YES", "TRUE", "D"}
    status: ReportStatus = (
        "deleted" if deleted else "reviewed" if flag in _REVIEWED_FLAGS else "automatic"
    )
    place = str(item.get("LOCATION_C") or "").strip() or None
    return Report(
        source=source,
        source_id=sid,
        origin_at=origin_at,
        latitude=req_float(item.get("EPI_LAT"), "latitude"),
        longitude=req_float(item.get("EPI_LON"), "longitude"),
        depth_km=opt_float(item.get("EPI_DEPTH")),
        magnitude=opt_float(item.get("M")),
        mag_type=CENC_MAG_TYPE,
        status=status,
        updated_at=saved,
        place=place,
        agency="CENC",
        event_type=_event_type(str(item.get("EQ_TYPE") or "").strip(), place or ""),
    )


def _event_type(eq_type: str, place: str) -> str | None:
    # CENC marks suspected explosions and collapses in the place name: "...(疑爆)", "(塌陷)"
    if "疑爆" in place or "爆破" in place:
        return "explosion"
    if "塌陷" in place:
        return "collapse"
    return "earthquake" if eq_type in ("", "M") else None


def _bjt(value: Any) -> datetime | None:
    text = str(value or "").strip()
    if not text:
        return None
    try:
        return parse_utc(text, offset_h=BEIJING_OFFSET_H)
    except ValueError:
        return None


class CencSource:
    """Polls the CENC quick-report list (a rolling window; ``since`` is not sent)."""

    # the live endpoint is a PHP page: text/html or javascript for a JSON(P) body
    accept = JSON_TYPES | JSONP_TYPES | TEXT_TYPES | HTML_TYPES

    def __init__(self, config: SourceConfig) -> None:
        if not config.url:
            raise ConfigError(f"source {config.name}: cenc needs url")
        self.name = config.name
        self.config = config

    async def fetch(self, session: aiohttp.ClientSession, since: datetime | None) -> bytes:
        return await http_get(session, self.config.url or "", self.config, accept=self.accept)

    def parse(self, body: bytes) -> ParseResult:
        return parse_cenc(body, self.name)
