"""What every catalogue source shares: the Source protocol, HTTP status mapping, capped reads,
row validation.

The status mapping follows obspy's ``raise_on_error`` for fdsnws: 204 (and 404 where a node is
asked for ``nodata=404``) means "no events", 5xx / timeouts / refused connections are transient
(:class:`SourceUnavailable`), any other 4xx means our request is wrong (:class:`SourceRejected`).
A body that cannot be read at all is a :class:`ParseError`; a single bad row is only skipped.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol, runtime_checkable

import aiohttp

from quakealert.config import SourceConfig
from quakealert.errors import ParseError, SourceRejected, SourceUnavailable
from quakealert.model import ParseResult

ERROR_DETAIL_BYTES = 2048  # how much of an error page we quote in the exception

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


