"""The pure pieces of fetching: query URLs, status mapping, Retry-After, content types."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from quakealert.errors import ParseError, SourceRejected, SourceUnavailable
from quakealert.formats.rows import check_values
from quakealert.sources.base import (
    JSON_TYPES,
    TEXT_TYPES,
    check_content_type,
    check_status,
    parse_retry_after,
)
from quakealert.sources.fdsn import build_query_url

NOW = datetime(2024, 11, 7, 0, 0, tzinfo=UTC)
BASE = "https://webservices.ingv.it/fdsnws/event/1/query"


def test_query_url_updatedafter_with_overlap() -> None:
    """updatedafter is `since` minus the overlap, in UTC, to the second."""
    since = datetime(2024, 11, 6, 20, 19, 30, 500000, tzinfo=UTC)
    url = build_query_url(BASE, since, 3600, {})
    assert url == (BASE + "?format=text&orderby=time&updatedafter=2024-11-06T19:19:30")


def test_query_url_params_and_options() -> None:
    """Configured params are sent (and override defaults); quakealert's own options are not."""
    params = {"updatedafter": True, "minmag": 2.5, "includeallorigins": False,
              "orderby": "time-asc", "ws_url": "wss://x", "lookback_s": 60,
              "eventtype": ["earthquake", "quarry blast"]}
    url = build_query_url(BASE + "?catalog=INGV", None, 600, params, now=NOW)
    assert url == (BASE + "?catalog=INGV&format=text&orderby=time-asc"
                   "&starttime=2024-11-06T23:59:00&minmag=2.5&includeallorigins=false"
                   "&eventtype=earthquake,quarry+blast")


def test_query_url_starttime_fallback_and_zones() -> None:
    """updatedafter = false asks starttime; a non-UTC `since` is converted to UTC."""
    beijing = timezone(timedelta(hours=8))
    since = datetime(2024, 11, 7, 4, 19, tzinfo=beijing)
    url = build_query_url(BASE, since, 0, {"updatedafter": False})
    assert url.endswith("&starttime=2024-11-06T20:19:00")
    with pytest.raises(ValueError):
        build_query_url(BASE, datetime(2024, 1, 1), 0, {})


@pytest.mark.parametrize("status, nodata, expected", [
    (200, (204,), False), (204, (204,), True), (404, (204, 404), True)])
def test_check_status_ok_and_no_data(status: int, nodata: tuple[int, ...], expected: bool) -> None:
    """2xx passes; 204 (and 404 where asked nodata=404) means no data."""
    assert check_status(status, {}, "s", "u", nodata=nodata) is expected


@pytest.mark.parametrize("status, error", [
    (500, SourceUnavailable), (502, SourceUnavailable), (503, SourceUnavailable),
    (504, SourceUnavailable), (408, SourceUnavailable), (429, SourceUnavailable),
    (400, SourceRejected), (401, SourceRejected), (404, SourceRejected),
    (413, SourceRejected), (301, SourceRejected)])
def test_check_status_errors(status: int, error: type) -> None:
    """As obspy's raise_on_error: 5xx transient; other 4xx our fault; 408/429 transient too."""
    with pytest.raises(error) as info:
        check_status(status, {}, "ingv", "http://x/q", detail="Error 400: bad minmag")
    assert info.value.source == "ingv" and info.value.url == "http://x/q"  # type: ignore[attr-defined]


@pytest.mark.parametrize("value, expected", [
    ("120", 120.0), (" 5 ", 5.0), ("Thu, 07 Nov 2024 00:02:00 GMT", 120.0),
    ("Wed, 06 Nov 2024 23:00:00 GMT", 0.0), ("soon", None), ("", None), (None, None)])
def test_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After as delay-seconds or an HTTP-date (past dates mean now)."""
    assert parse_retry_after(value, NOW) == expected


def test_503_carries_retry_after() -> None:
    """The value reaches the exception the poller records."""
    with pytest.raises(SourceUnavailable) as info:
        check_status(503, {"Retry-After": "Thu, 07 Nov 2024 00:10:00 GMT"}, "s", "u", now=NOW)
    assert info.value.retry_after_s == 600.0


@pytest.mark.parametrize("content_type, accept, ok", [
    ("text/plain; charset=utf-8", TEXT_TYPES, True),
    ("", TEXT_TYPES, True),
    ("application/octet-stream", JSON_TYPES, True),
    ("application/vnd.unknown", JSON_TYPES, True),  # unknown: the parser decides
    ("text/html; charset=utf-8", TEXT_TYPES, False),
    ("text/html", JSON_TYPES, False),
    ("application/json", TEXT_TYPES, False),
    ("application/xml", JSON_TYPES, False),
    ("application/geo+json", JSON_TYPES, True),
])
def test_content_type(content_type: str, accept: frozenset[str], ok: bool) -> None:
    """Clearly another format is a ParseError; unknown or missing types pass to the parser."""
    if ok:
        check_content_type(content_type, accept, "s", "u")
    else:
        with pytest.raises(ParseError):
            check_content_type(content_type, accept, "s", "u")


@pytest.mark.parametrize("values, result", [
    ((90.0, 180.0, -10.0, 10.5), (180.0, None)),
    ((-90.0, -180.0, 800.0, -3.0), (-180.0, None)),
    ((29.85, 272.25, 10.0, 4.5), (-87.75, None)),
    ((29.85, 92.25, None, None), (92.25, None)),
    ((90.1, 0.0, 0.0, 1.0), (0.0, "latitude 90.1 out of range")),
    ((0.0, 360.5, 0.0, 1.0), (360.5, "longitude 360.5 out of range")),
    ((0.0, 0.0, -10.5, 1.0), (0.0, "depth_km -10.5 out of range")),
    ((0.0, 0.0, 5.0, -3.1), (0.0, "magnitude -3.1 out of range")),
])
def test_row_limits(values: tuple[float, float, float | None, float | None],
                    result: tuple[float, str | None]) -> None:
    """Limits are inclusive; 180..360 longitudes are normalised, beyond that rejected."""
    assert check_values(*values) == result
