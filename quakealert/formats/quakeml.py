"""QuakeML 1.2 (read through obspy) into reports."""

from __future__ import annotations

import io
import logging
import warnings
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from quakealert.errors import ParseError
from quakealert.formats.eventtypes import quakeml_event_type
from quakealert.formats.rows import (
    BODY_URL,
    ROW_ERRORS,
    finish,
    keep_checked,
    row_reason,
    sniff_not_html,
)
from quakealert.model import ParseResult, Report, ReportStatus

log = logging.getLogger(__name__)


_PLACE_TYPES = ("region name", "Flinn-Engdahl region", "earthquake name", "nearest cities")


def parse_quakeml(body: bytes, source: str) -> ParseResult:
    """QuakeML 1.2 through ``obspy.read_events``; preferred origin/magnitude, else the first.

    Depth is metres in QuakeML and km in reports. Status: event type "not existing" -> deleted,
    origin evaluationMode automatic -> automatic, otherwise reviewed.
    """
    if not body.strip():
        return ParseResult()
    sniff_not_html(body, source, "QuakeML")
    with warnings.catch_warnings():
        # obspy 1.5 imports entry points through a deprecated importlib API
        warnings.simplefilter("ignore", DeprecationWarning)
        from obspy import read_events  # type: ignore[import-untyped]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            catalog = read_events(io.BytesIO(body), format="QUAKEML")
        except Exception as err:  # obspy raises bare Exception, ValueError, lxml errors ...
            raise ParseError(source, BODY_URL, f"invalid QuakeML: {err}") from err
    for w in caught:
        log.debug("obspy warning: %s", w.message, extra={"source": source})
    reports: list[Report] = []
    skipped: list[str] = []
    for row, event in enumerate(catalog, start=1):
        try:
            sid = quakeml_event_id(event)
        except ROW_ERRORS as err:
            skipped.append(row_reason(row, None, f"unreadable event id ({err})"))
            continue
        try:
            report: Report | str = _event_report(event, sid, source)
        except ROW_ERRORS as err:
            report = f"unreadable event ({err})"
        if isinstance(report, str):
            skipped.append(row_reason(row, sid, report))
            continue
        keep_checked(report, row, sid, reports, skipped)
    return finish(source, reports, skipped)


def _event_report(event: Any, sid: str, source: str) -> Report | str:
    """The report of one QuakeML event, or why there is none."""
    origin = event.preferred_origin() or (event.origins[0] if event.origins else None)
    if origin is None or origin.time is None:
        return "no origin"
    if origin.latitude is None or origin.longitude is None:
        return "origin without epicentre"
    magnitude = event.preferred_magnitude() or (
        event.magnitudes[0] if event.magnitudes else None
    )
    depth_km = origin.depth / 1000.0 if origin.depth is not None else None
    mag = float(magnitude.mag) if magnitude is not None and magnitude.mag is not None else None
    event_type = str(event.event_type) if event.event_type else None
    if event_type == "not existing":
        status: ReportStatus = "deleted"
    elif origin.evaluation_mode == "automatic":
        status = "automatic"
    else:
        status = "reviewed"
    return Report(
        source=source,
        source_id=sid,
        origin_at=origin.time.datetime.replace(tzinfo=UTC),
        latitude=float(origin.latitude),
        longitude=float(origin.longitude),
        depth_km=depth_km,
        magnitude=mag,
        mag_type=(magnitude.magnitude_type or None) if magnitude is not None else None,
        status=status,
        updated_at=_latest_creation(event, origin, magnitude),
        place=_place(event),
        agency=_agency(event, origin),
        event_type=quakeml_event_type(event_type),
        other_ids=_anss_ids(event, sid),
    )


def _anss_ids(event: Any, sid: str) -> tuple[str, ...]:
    """ANSS ``catalog:eventsource`` + ``catalog:eventid`` (network + code) when it is not the
    id already used: a shared id for association (§6.1)."""
    extra = getattr(event, "extra", None) or {}
    src, eid = extra.get("eventsource"), extra.get("eventid")
    if src and eid:
        key = f"{src['value']}{eid['value']}"
        if key != sid:
            return (key,)
    return ()


def quakeml_event_id(event: Any) -> str:
    """The node's own event id: ``eventid=`` in the publicID's query (INGV, USGS, IRIS, EMSC),
    else ANSS ``catalog:eventsource`` + ``catalog:eventid``, else the whole publicID (SeisComP's
    ``smi:ch.ethz.sed/...`` is also what its text output puts in EventID)."""
    public_id = str(event.resource_id)
    if "?" in public_id:
        for key, value in parse_qsl(public_id.split("?", 1)[1]):
            if key.lower() == "eventid" and value:
                return value
    extra = getattr(event, "extra", None) or {}
    src, eid = extra.get("eventsource"), extra.get("eventid")
    if src and eid:
        return f"{src['value']}{eid['value']}"
    return public_id


def _latest_creation(*objs: Any) -> datetime | None:
    times = [
        o.creation_info.creation_time.datetime.replace(tzinfo=UTC)
        for o in objs
        if o is not None and o.creation_info is not None and o.creation_info.creation_time
    ]
    return max(times) if times else None


def _place(event: Any) -> str | None:
    descriptions = list(event.event_descriptions)
    for kind in _PLACE_TYPES:
        for d in descriptions:
            if d.type == kind and d.text:
                return str(d.text)
    return next((str(d.text) for d in descriptions if d.text), None)


def _agency(event: Any, origin: Any) -> str | None:
    for obj in (origin, event):
        info = obj.creation_info
        if info is not None and (info.agency_id or info.author):
            return str(info.agency_id or info.author)
    return None
