"""What every catalogue source shares: the Source protocol, HTTP status mapping, capped reads,
row validation.

The status mapping follows obspy's ``raise_on_error`` for fdsnws: 204 (and 404 where a node is
asked for ``nodata=404``) means "no events", 5xx / timeouts / refused connections are transient
(:class:`SourceUnavailable`), any other 4xx means our request is wrong (:class:`SourceRejected`).
A body that cannot be read at all is a :class:`ParseError`; a single bad row is only skipped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Protocol, runtime_checkable

import aiohttp

from quakealert.config import SourceConfig
from quakealert.errors import ParseError, SourceRejected, SourceUnavailable
from quakealert.model import ParseResult, Report

log = logging.getLogger(__name__)

# Row limits (issue 2 §2). Depth may be slightly negative: SeisComP reports above sea level.
LAT_RANGE = (-90.0, 90.0)
LON_RANGE = (-180.0, 180.0)
DEPTH_KM_RANGE = (-10.0, 800.0)
MAG_RANGE = (-3.0, 10.5)

BODY_URL = "(body)"  # ParseError.url when a pure parser has no URL to name
ERROR_DETAIL_BYTES = 2048  # how much of an error page we quote in the exception
LOG_SKIPPED_MAX = 10  # per body; the rest is counted, not logged one by one

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
JSON_TYPES = frozenset({"application/json", "application/geo+json", "text/json"})
XML_TYPES = frozenset({"application/xml", "text/xml", "application/quakeml+xml"})
TEXT_TYPES = frozenset({"text/plain", "text/csv", "text/tab-separated-values"})
JSONP_TYPES = frozenset({"application/javascript", "text/javascript", "application/x-javascript"})


@runtime_checkable
class Source(Protocol):
    """A catalogue: ``fetch`` moves bytes, ``parse`` (pure) turns them into reports."""

    name: str
    config: SourceConfig

    async def fetch(self, session: aiohttp.ClientSession, since: datetime | None) -> bytes: ...

    def parse(self, body: bytes) -> ParseResult: ...


# --- HTTP -----------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a Retry-After header (RFC 9110: delay-seconds or an HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" dates parse naive; HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def check_status(
    status: int,
    headers: Mapping[str, str],
    source: str,
    url: str,
    *,
    detail: str = "",
    nodata: Collection[int] = (204,),
    now: datetime | None = None,
) -> bool:
    """Raise the SourceError an HTTP status means; return True for "no data", False for 2xx.

    ``nodata`` holds 204 and, for an fdsnws node queried with ``nodata=404``, 404 too.
    """
    if status in nodata:
        return True
    if 200 <= status < 300:
        return False
    text = f"HTTP {status}" + (f": {detail.strip()[:300]}" if detail.strip() else "")
    if status >= 500 or status in (408, 429):
        retry = parse_retry_after(headers.get("Retry-After"), now or datetime.now(UTC))
        raise SourceUnavailable(source, url, text, retry_after_s=retry)
    if status >= 400:
        raise SourceRejected(source, url, text)
    # 1xx/3xx that aiohttp did not resolve (redirect loops end as ClientError, not here)
    raise SourceRejected(source, url, f"unexpected {text}")


def check_content_type(
    content_type: str, accept: Collection[str], source: str, url: str
) -> None:
    """Reject a body whose Content-Type is clearly another format (an HTML error page where
    JSON, XML or text was asked for). Unknown or missing types pass; the parser sniffs them."""
    mime = content_type.split(";", 1)[0].strip().lower()
    if not mime or mime in accept or mime == "application/octet-stream":
        return
    families = (HTML_TYPES, JSON_TYPES | JSONP_TYPES, XML_TYPES, TEXT_TYPES)
    if any(mime in fam for fam in families) or mime.endswith(("+xml", "+json")):
        raise ParseError(source, url, f"wrong content type {mime!r}, expected {sorted(accept)}")


async def read_capped(
    response: aiohttp.ClientResponse, max_bytes: int, source: str, url: str
) -> bytes:
    """The response body, or ParseError as soon as it exceeds ``max_bytes`` (never buffers more)."""
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise ParseError(source, url, f"body of {declared} bytes over max_bytes={max_bytes}")
    chunks: list[bytes] = []
    total = 0
    try:
        async for chunk in response.content.iter_chunked(65536):
            total += len(chunk)
            if total > max_bytes:
                raise ParseError(source, url, f"body over max_bytes={max_bytes}")
            chunks.append(chunk)
    except aiohttp.ClientPayloadError as err:
        # the server closed before Content-Length / the last chunk: transport, not content
        raise SourceUnavailable(source, url, f"body cut off: {err}") from err
    return b"".join(chunks)


async def http_get(
    session: aiohttp.ClientSession,
    url: str,
    config: SourceConfig,
    *,
    accept: Collection[str],
    nodata: Collection[int] = (204,),
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """GET ``url`` under ``config.timeout_s`` and ``config.max_bytes``; b"" when there is no data.

    Every failure becomes a SourceError subclass so that the poller catches exactly one type.
    """
    source = config.name
    timeout = aiohttp.ClientTimeout(total=config.timeout_s)
    try:
        async with session.get(url, timeout=timeout, headers=headers) as response:
            if response.status != 200:
                detail = ""
                if response.status >= 400:
                    detail = await _error_detail(response)
                if check_status(
                    response.status, response.headers, source, url, detail=detail, nodata=nodata
                ):
                    return b""
            check_content_type(response.headers.get("Content-Type", ""), accept, source, url)
            return await read_capped(response, config.max_bytes, source, url)
    except TimeoutError as err:
        raise SourceUnavailable(source, url, f"timed out after {config.timeout_s} s") from err
    except aiohttp.ClientResponseError as err:
        raise SourceUnavailable(source, url, f"bad HTTP response: {err.message}") from err
    except aiohttp.ClientConnectionError as err:
        raise SourceUnavailable(source, url, f"connection failed: {err}") from err
    except aiohttp.ClientError as err:
        raise SourceUnavailable(source, url, f"HTTP client error: {err}") from err


async def _error_detail(response: aiohttp.ClientResponse) -> str:
    """The first lines of an error body (fdsnws puts the reason there), never the whole page."""
    try:
        raw = await response.content.read(ERROR_DETAIL_BYTES)
    except (aiohttp.ClientError, TimeoutError):
        return ""
    text = raw.decode("utf-8", "replace")
    if "<html" in text[:200].lower():
        return ""
    return " ".join(text.split())


# --- Rows -----------------------------------------------------------------------------------


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
