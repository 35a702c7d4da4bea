"""Shared row checks for every wire-format reader: value ranges, numbers, times, skipped-row reasons."""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from quakealert.errors import ParseError
from quakealert.logs import scrub
from quakealert.model import ParseResult, Report

log = logging.getLogger(__name__)


# Row limits (issue 2 §2). Depth may be slightly negative: SeisComP reports above sea level.
LAT_RANGE = (-90.0, 90.0)


LON_RANGE = (-180.0, 180.0)


DEPTH_KM_RANGE = (-10.0, 800.0)


MAG_RANGE = (-3.0, 10.5)


# Origin times outside this range are poison, not history: a 9999-12-01 row once stored made
# every start fail (issue 9). Parsers are pure and use these static bounds; the poller also
# drops rows more than FUTURE_SLACK ahead of its clock (:func:`screen_future`).
EARLIEST_AT = datetime(1900, 1, 1, tzinfo=UTC)


LATEST_AT = datetime(2200, 1, 1, tzinfo=UTC)


FUTURE_SLACK = timedelta(days=1)


TEXT_MAX_CHARS = 256  # place names, agencies, magnitude and event types


ID_MAX_CHARS = 128  # an agency's event id


# Exceptions that mean "this row is unreadable" inside a parser's row loop (never the batch).
ROW_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


# C0/C1 controls, lone surrogates, noncharacters, line/paragraph separators and bidi overrides:
# none belongs in a place name, and most are not even allowed in XML 1.0.
_UNSAFE_TEXT = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff\ufdd0-\ufdef\ufffe\uffff]"
)


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
    """A float, or None for an empty field. ValueError for garbage or NaN/inf, TypeError for
    anything that is neither text nor a number (a list, an object, a boolean)."""
    if text is None:
        return None
    if isinstance(text, bool) or not isinstance(text, (int, float, str)):
        raise TypeError(f"expected a number, got {type(text).__name__}")
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

    Accepts ``T`` or a space, ``Z``, 1-6 fraction digits, and SCEDC's slash dates. A time that
    cannot be expressed in UTC (0001-01-01T00:00:00+14:00) is a ValueError too, never an
    OverflowError that escapes a parser's row loop.
    """
    if not isinstance(text, str):
        raise TypeError(f"expected a time, got {type(text).__name__}")
    text = text.strip()
    if not text:
        raise ValueError("time missing")
    if "/" in text[:10]:
        text = text[:10].replace("/", "-") + text[10:]
    when = datetime.fromisoformat(text)
    try:
        if when.tzinfo is None:
            return (when - timedelta(hours=offset_h)).replace(tzinfo=UTC)
        return when.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"time {text!r} out of range") from None


def check_time(at: datetime, what: str = "origin time") -> str | None:
    """None for an instant in [EARLIEST_AT, LATEST_AT], else what is wrong with it."""
    if at.tzinfo is None:
        return f"{what} {at.isoformat()} has no time zone"
    if not EARLIEST_AT <= at <= LATEST_AT:
        return f"{what} {at.isoformat()} out of range"
    return None


def clean_text(value: object, what: str, max_chars: int = TEXT_MAX_CHARS) -> str | None:
    """Text safe to store and to serve in XML/JSON: controls, surrogates, noncharacters and
    bidi overrides become spaces (then whitespace runs collapse), at most ``max_chars``.
    None for empty; TypeError for anything that is not text (a list or object as a place)."""
    if value is None:
        return None
    if type(value) is str and len(value) <= max_chars and value.isprintable() and (
            value[:1] != " " and value[-1:] != " "):
        return value or None  # the common case, without a copy
    if not isinstance(value, str):
        raise TypeError(f"{what}: expected text, got {type(value).__name__}")
    if not value.isprintable():
        value = " ".join(_UNSAFE_TEXT.sub(" ", value).split())
    value = value.strip()
    if len(value) > max_chars:
        value = value[: max_chars - 1].rstrip() + "…"
    return value or None


def clean_id(value: object) -> str:
    """An agency's event id: text (or an integer), no controls, at most ID_MAX_CHARS."""
    if type(value) is str and 0 < len(value) <= ID_MAX_CHARS and value.isprintable() and (
            value[0] != " " and value[-1] != " "):
        return value  # the common case
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise TypeError(f"id: expected text, got {type(value).__name__}")
    text = _UNSAFE_TEXT.sub("", value).strip()
    if not text:
        raise ValueError("id missing")
    if len(text) > ID_MAX_CHARS:
        raise ValueError(f"id of {len(text)} characters (at most {ID_MAX_CHARS})")
    return text


def keep_checked(report: Report, row: int, sid: str | None, reports: list[Report],
                 skipped: list[str]) -> None:
    """The end of every parser's row loop: the checked report kept, or its reason skipped."""
    report, problem = check_report(report)
    if problem:
        skipped.append(row_reason(row, sid, problem))
    else:
        reports.append(report)


def check_report(report: Report) -> tuple[Report, str | None]:
    """Every field of a freshly parsed report checked: (report with normalised longitude and
    cleaned text, None) or (report, "what is wrong"). The one gate before a row is kept."""
    try:
        lon, problem = check_values(
            report.latitude, report.longitude, report.depth_km, report.magnitude
        )
        if problem:
            return report, problem
        problem = check_time(report.origin_at)
        if problem:
            return report, problem
        changes: dict[str, object] = {}
        if lon != report.longitude:
            changes["longitude"] = lon
        if report.updated_at is not None and check_time(report.updated_at, "updated"):
            changes["updated_at"] = None  # a bad revision time is dropped, not the quake
        sid = clean_id(report.source_id)
        if sid != report.source_id:
            changes["source_id"] = sid
        for name in ("place", "mag_type", "agency", "event_type"):
            value = getattr(report, name)
            if value is not None:
                cleaned = clean_text(value, name)
                if cleaned != value:
                    changes[name] = cleaned
        if report.other_ids:
            others = tuple(clean_id(i) for i in report.other_ids)
            if others != report.other_ids:
                changes["other_ids"] = others
    except ROW_ERRORS as err:
        return report, str(err)
    return (replace(report, **changes) if changes else report), None  # type: ignore[arg-type]


def screen_future(parsed: ParseResult, now: datetime) -> ParseResult:
    """``parsed`` without reports whose origin is more than FUTURE_SLACK after ``now`` (they
    join the skipped rows with their reason)."""
    latest = now + FUTURE_SLACK
    if all(r.origin_at <= latest for r in parsed.reports):
        return parsed
    kept = [r for r in parsed.reports if r.origin_at <= latest]
    skipped = list(parsed.skipped) + [
        f"id {r.source_id}: origin time {r.origin_at.isoformat()} is in the future"
        for r in parsed.reports
        if r.origin_at > latest
    ]
    return ParseResult(reports=kept, skipped=skipped)


def load_json(body: bytes | str, source: str, what: str) -> Any:
    """``json.loads`` whose every failure is a ParseError naming ``what``: invalid JSON, bad
    UTF-8, and nesting deep enough to exhaust the parser's recursion (RecursionError)."""
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise ParseError(source, BODY_URL, f"invalid {what}: {err}") from err
    except RecursionError:
        raise ParseError(source, BODY_URL, f"invalid {what}: nested too deeply") from None


def row_reason(row: int, source_id: str | None, problem: str) -> str:
    """The skipped-row reason in the one format duty staff see everywhere."""
    ident = _UNSAFE_TEXT.sub("?", source_id)[:ID_MAX_CHARS] if source_id else "?"
    return f"row {row} (id {ident}): {problem}"


def finish(source: str, reports: list[Report], skipped: list[str]) -> ParseResult:
    """Log what was skipped (with the source name) and wrap the result."""
    for reason in skipped[:LOG_SKIPPED_MAX]:
        log.warning("skipped row: %s", scrub(reason), extra={"source": source})
    if len(skipped) > LOG_SKIPPED_MAX:
        log.warning("skipped more rows (not logged one by one)",
                    extra={"source": source, "rows": len(skipped) - LOG_SKIPPED_MAX})
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
    if not isinstance(text, str):
        raise TypeError(f"ids: expected text, got {type(text).__name__}")
    return tuple(part for part in text.split(",") if part)
