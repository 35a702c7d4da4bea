"""EMSC seismicportal websocket messages (``create``/``update``) into reports."""

from __future__ import annotations

from typing import Any

from quakealert.errors import ParseError
from quakealert.formats.rows import (
    BODY_URL,
    ROW_ERRORS,
    check_report,
    finish,
    load_json,
    opt_float,
    parse_utc,
    req_float,
    row_reason,
)
from quakealert.model import ParseResult, Report, ReportStatus

# ISC/NEIC/EMSC event-type nomenclature (Storchak et al. 2012): first letter certainty
# (k known, s suspected, f felt, d damaging), second letter type.
_EVTYPE = {
    "e": "earthquake",
    "i": "induced or triggered event",
    "r": "rock burst",
    "m": "mining explosion",
    "h": "chemical explosion",
    "x": "experimental explosion",
    "n": "nuclear explosion",
    "q": "quarry blast",
}


_EVTYPE_WHOLE = {"ls": "landslide", "uk": None, "": None}


def emsc_event_type(code: str | None) -> str | None:
    """QuakeML event type for an EMSC ``evtype`` code ("ke" -> "earthquake"); unknown codes kept."""
    code = (code or "").strip().lower()
    if code in _EVTYPE_WHOLE:
        return _EVTYPE_WHOLE[code]
    if len(code) == 2 and code[0] in "ksfd" and code[1] in _EVTYPE:
        return _EVTYPE[code[1]]
    return code


def _opt_text(value: Any, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{what}: expected text, got {type(value).__name__}")
    return value


def parse_emsc_message(
    body: bytes | str, source: str = "emsc", *, default_status: ReportStatus = "reviewed"
) -> ParseResult:
    """One seismicportal websocket message to (at most one) report.

    Status: ``action == "delete"`` -> deleted; an ``automatic`` property (true/false) or an
    ``evaluation_mode`` property is honoured if EMSC sends one; otherwise ``default_status``,
    the same as EMSC's fdsnws text rows get, so back-fill and push never flip an event's status.
    """
    msg = load_json(body, source, "EMSC message JSON")
    if not isinstance(msg, dict) or not isinstance(msg.get("data"), dict):
        raise ParseError(source, BODY_URL, "EMSC message has no 'data' object")
    action = str(msg.get("action") or "").lower()
    feature = msg["data"]
    props = feature.get("properties")
    if not isinstance(props, dict):
        raise ParseError(source, BODY_URL, "EMSC message has no properties")
    raw_id = props.get("unid") or feature.get("id") or ""
    sid = raw_id if isinstance(raw_id, str) else ""
    try:
        report = _report(props, raw_id, action, source, default_status)
    except ROW_ERRORS as err:
        return finish(source, [], [row_reason(1, sid, str(err))])
    report, problem = check_report(report)
    if problem:
        return finish(source, [], [row_reason(1, sid, problem)])
    return ParseResult(reports=[report])


def _report(
    props: dict[str, Any], sid: Any, action: str, source: str, default_status: ReportStatus
) -> Report:
    if not sid:
        raise ValueError("unid missing")
    try:
        origin_at = parse_utc(props.get("time") or "")
    except ValueError as err:
        raise ValueError(f"unparseable time {str(props.get('time'))[:40]!r}") from err
    updated = props.get("lastupdate") or ""
    status: ReportStatus = default_status
    automatic = props.get("automatic")
    mode = str(props.get("evaluation_mode") or "").lower()
    if action == "delete":
        status = "deleted"
    elif automatic is True or mode == "automatic":
        status = "automatic"
    elif automatic is False or mode == "manual":
        status = "reviewed"
    return Report(
        source=source,
        source_id=sid,
        origin_at=origin_at,
        latitude=req_float(props.get("lat"), "latitude"),
        longitude=req_float(props.get("lon"), "longitude"),
        depth_km=opt_float(props.get("depth")),
        magnitude=opt_float(props.get("mag")),
        mag_type=props.get("magtype") or None,
        status=status,
        updated_at=parse_utc(updated) if updated else None,
        place=props.get("flynn_region") or None,
        agency=props.get("auth") or None,
        event_type=emsc_event_type(_opt_text(props.get("evtype"), "evtype")),
    )
