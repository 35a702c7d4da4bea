"""USGS GeoJSON (summary feeds and event detail) into reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from quakealert.errors import ParseError
from quakealert.formats.eventtypes import quakeml_event_type
from quakealert.formats.rows import (
    BODY_URL,
    ROW_ERRORS,
    clean_id,
    finish,
    keep_checked,
    load_json,
    opt_float,
    req_float,
    row_reason,
    sniff_not_html,
    split_ids,
)
from quakealert.model import STATUSES, ParseResult, Report, ReportStatus


def _ms(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError(f"expected epoch milliseconds, got {type(value).__name__}")
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(value))


def _status(props: dict[str, Any]) -> ReportStatus:
    raw = str(props.get("status") or "").lower()
    if raw in STATUSES:
        return raw  # type: ignore[return-value]
    return "automatic"  # unknown status: treat as preliminary, never as reviewed


def parse_geojson(body: bytes, source: str) -> ParseResult:
    """A GeoJSON FeatureCollection (summary feed, fdsnws ``format=geojson``) or one Feature
    (event detail) to reports. ``time``/``updated`` are epoch milliseconds; depth is km."""
    if not body.strip():
        return ParseResult()
    sniff_not_html(body, source, "GeoJSON")
    doc = load_json(body, source, "JSON")
    if not isinstance(doc, dict):
        raise ParseError(source, BODY_URL, "GeoJSON is not an object")
    if doc.get("type") == "Feature":
        features = [doc]
    elif doc.get("type") == "FeatureCollection" and isinstance(doc.get("features"), list):
        features = doc["features"]
    else:
        kind = doc.get("type")
        raise ParseError(source, BODY_URL, f"not a GeoJSON Feature(Collection): {kind!r}")
    reports: list[Report] = []
    skipped: list[str] = []
    for row, feature in enumerate(features, start=1):
        raw_id = feature.get("id") if isinstance(feature, dict) else None
        sid = raw_id if isinstance(raw_id, str) and len(raw_id) <= 64 else ""
        try:
            report = _feature_report(feature, source)
        except ROW_ERRORS as err:
            skipped.append(row_reason(row, sid, f"unreadable feature ({err})"))
            continue
        keep_checked(report, row, sid, reports, skipped)
    return finish(source, reports, skipped)


def _feature_report(feature: dict[str, Any], source: str) -> Report:
    if not isinstance(feature, dict):
        raise TypeError(f"feature is {type(feature).__name__}, not an object")
    props = feature.get("properties")
    if not isinstance(props, dict):
        raise TypeError(f"properties is {type(props).__name__}, not an object")
    raw_id = feature.get("id")
    if raw_id not in (None, ""):
        sid = clean_id(raw_id)
    else:
        net, code = props.get("net"), props.get("code")
        if not (isinstance(net, str) and isinstance(code, str) and net and code):
            raise ValueError("feature id missing")
        sid = clean_id(f"{net}{code}")
    geometry = feature.get("geometry")
    if not isinstance(geometry, dict) or not geometry.get("coordinates"):
        raise ValueError("geometry missing")
    coords = geometry["coordinates"]
    if not isinstance(coords, list) or len(coords) < 2:
        raise ValueError("coordinates are not a [lon, lat, depth] list")
    origin_at = _ms(props.get("time"))
    if origin_at is None:
        raise ValueError("time missing")
    return Report(
        source=source,
        source_id=sid,
        origin_at=origin_at,
        latitude=req_float(coords[1], "latitude"),
        longitude=req_float(coords[0], "longitude"),
        depth_km=opt_float(coords[2]) if len(coords) > 2 else None,
        magnitude=opt_float(props.get("mag")),
        mag_type=props.get("magType") or None,
        status=_status(props),
        updated_at=_ms(props.get("updated")),
        place=props.get("place") or None,
        agency=props.get("net") or None,
        event_type=quakeml_event_type(props.get("type")),
        other_ids=tuple(i for i in split_ids(props.get("ids")) if i != sid),
    )
