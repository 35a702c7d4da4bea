"""Shared row checks for every wire-format reader: value ranges, numbers, times, skipped-row reasons."""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime, timedelta

from quakealert.errors import ParseError
from quakealert.model import ParseResult, Report

log = logging.getLogger(__name__)


# Row limits (issue 2 §2). Depth may be slightly negative: SeisComP reports above sea level.
LAT_RANGE = (-90.0, 90.0)


LON_RANGE = (-180.0, 180.0)


DEPTH_KM_RANGE = (-10.0, 800.0)


MAG_RANGE = (-3.0, 10.5)


BODY_URL = "(body)"  # ParseError.url when a pure parser has no URL to name


LOG_SKIPPED_MAX = 10  # per body; the rest is counted, not logged one by one


def decode_text(body: bytes) -> str:
    """UTF-8 (with or without BOM), falling back to Latin-1 rather than failing a whole feed."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError:
        return body.decode("latin-1")


def check_values(
    latitude: float, longitude: float, depth_km: float | None, magnitude: float | None
) -> tuple[float, str | None]:
    """(longitude normalised to [-180, 180], None) or (longitude, "what is wrong")."""
    if not LAT_RANGE[0] <= latitude <= LAT_RANGE[1]:  # also false for NaN
        return longitude, f"latitude {latitude} out of range"
    if 180.0 < longitude <= 360.0:  # some feeds use 0..360
        longitude -= 360.0
    if not LON_RANGE[0] <= longitude <= LON_RANGE[1]:
        return longitude, f"longitude {longitude} out of range"
    if depth_km is not None and not DEPTH_KM_RANGE[0] <= depth_km <= DEPTH_KM_RANGE[1]:
        return longitude, f"depth_km {depth_km} out of range"
    if magnitude is not None and not MAG_RANGE[0] <= magnitude <= MAG_RANGE[1]:
        return longitude, f"magnitude {magnitude} out of range"
    return longitude, None


def opt_float(text: str | float | None) -> float | None:
    """A float, or None for an empty field. Raises ValueError for garbage or NaN/inf."""
    if text is None:
        return None
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        text = text.strip()
        if not text:
            return None
        value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def req_float(text: str | float | None, what: str) -> float:
    """A float that must be there."""
    value = opt_float(text)
    if value is None:
        raise ValueError(f"{what} missing")
    return value


def parse_utc(text: str, *, offset_h: float = 0.0) -> datetime:
    """An ISO-8601-ish time as aware UTC. Naive times are in UTC+``offset_h`` (8 for Beijing).

    Accepts ``T`` or a space, ``Z``, 1-6 fraction digits, and SCEDC's slash dates.
    """
    text = text.strip()
    if not text:
        raise ValueError("time missing")
    if "/" in text[:10]:
        text = text[:10].replace("/", "-") + text[10:]
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        return (when - timedelta(hours=offset_h)).replace(tzinfo=UTC)
    return when.astimezone(UTC)


def row_reason(row: int, source_id: str | None, problem: str) -> str:
    """The skipped-row reason in the one format duty staff see everywhere."""
    ident = source_id if source_id else "?"
    return f"row {row} (id {ident}): {problem}"


def finish(source: str, reports: list[Report], skipped: list[str]) -> ParseResult:
    """Log what was skipped (with the source name) and wrap the result."""
    for reason in skipped[:LOG_SKIPPED_MAX]:
        log.warning("source=%s skipped %s", source, reason)
    if len(skipped) > LOG_SKIPPED_MAX:
        log.warning(
            "source=%s skipped %d more rows (not logged one by one)",
            source,
            len(skipped) - LOG_SKIPPED_MAX,
        )
    return ParseResult(reports=reports, skipped=skipped)


def sniff_not_html(body: bytes, source: str, expected: str, url: str = BODY_URL) -> None:
    """ParseError for an HTML page served where ``expected`` was (proxies, captive portals)."""
    head = body[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:200]:
        raise ParseError(source, url, f"got an HTML page where {expected} was expected")


def split_ids(text: str | None) -> tuple[str, ...]:
    """USGS ``ids`` (",us1,ci2,") as a tuple without empties."""
    if not text:
        return ()
    return tuple(part for part in text.split(",") if part)
