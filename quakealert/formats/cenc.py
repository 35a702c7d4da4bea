"""CENC quick-report JSON (``O_TIME`` in Beijing time, ``AUTO_FLAG``) into reports."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from quakealert.errors import ParseError
from quakealert.formats.eventtypes import quakeml_event_type
from quakealert.formats.rows import (
    BODY_URL,
    ROW_ERRORS,
    finish,
    keep_checked,
    load_json,
    opt_float,
    parse_utc,
    req_float,
    row_reason,
    sniff_not_html,
)
from quakealert.model import ParseResult, Report, ReportStatus

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
    doc = load_json(strip_jsonp(body), source, "CENC JSON")
    rows = doc.get("shuju") if isinstance(doc, dict) else doc
    if not isinstance(rows, list):
        raise ParseError(source, BODY_URL, "CENC JSON has no 'shuju' list")
    reports: list[Report] = []
    skipped: list[str] = []
    for row, item in enumerate(rows, start=1):
        try:
            sid = cenc_event_id(item) if isinstance(item, dict) else ""
        except ROW_ERRORS as err:
            skipped.append(row_reason(row, None, str(err)))
            continue
        try:
            report = _row_report(item, sid, source)
        except ROW_ERRORS as err:
            skipped.append(row_reason(row, sid, str(err)))
            continue
        keep_checked(report, row, sid, reports, skipped)
    return finish(source, reports, skipped)


def cenc_event_id(item: dict[str, Any]) -> str:
    """NEW_DID, else CATA_ID without ``.00``, else the row id (see the module docstring)."""
    new_did = _text(item.get("NEW_DID"), "NEW_DID")
    if new_did:
        return new_did
    cata = _text(item.get("CATA_ID"), "CATA_ID")
    if cata:
        return cata.split(".", 1)[0]
    return _text(item.get("id"), "id") or ""


def _row_report(item: dict[str, Any], sid: str, source: str) -> Report:
    if not isinstance(item, dict):
        raise TypeError(f"row is {type(item).__name__}, not an object")
    if not sid:
        raise ValueError("no NEW_DID, CATA_ID or id")
    try:
        origin_at = parse_utc(str(item.get("O_TIME") or ""), offset_h=BEIJING_OFFSET_H)
    except ValueError as err:
        raise ValueError(f"unparseable time {str(item.get('O_TIME'))[:40]!r}") from err
    saved = _bjt(item.get("SAVE_TIME")) or _bjt(item.get("SYNC_TIME"))
    flag = str(item.get("AUTO_FLAG") or "").strip().upper()
    deleted = str(item.get("IS_DEL") or "").strip().upper() in {"1", "Y", "YES", "TRUE", "D"}
    status: ReportStatus = (
        "deleted" if deleted else "reviewed" if flag in _REVIEWED_FLAGS else "automatic"
    )
    place = _text(item.get("LOCATION_C"), "LOCATION_C")
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


def _text(value: Any, what: str) -> str | None:
    """A text field (numbers allowed, as CENC sometimes sends them); TypeError for lists and
    objects, whose ``str()`` would otherwise become a place name."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(f"{what}: expected text, got {type(value).__name__}")
    return str(value).strip() or None


def _event_type(eq_type: str, place: str) -> str | None:
    # CENC marks suspected explosions and collapses in the place name: "...(疑爆)", "(塌陷)";
    # an automatic 疑爆 later published as 天然地震 is an ordinary revision of the report.
    for label in ("疑爆", "爆破", "塌陷"):
        if label in place:
            return quakeml_event_type(label)
    if eq_type in ("", "M"):
        return "earthquake"
    return quakeml_event_type(eq_type)


def _bjt(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return parse_utc(value, offset_h=BEIJING_OFFSET_H)
    except ValueError:
        return None
