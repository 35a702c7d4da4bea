"""One fetch per source kind against a local aiohttp server, and the faults a poller must see
as the right exception type (so health records say what went wrong)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web

from quakealert.config import SourceConfig
from quakealert.errors import ParseError, SourceRejected, SourceUnavailable
from quakealert.sources import make_source
from quakealert.sources.base import Source
from tests.conftest import load_fixture

INGV = load_fixture("fdsn/fdsn-text-ingv-sample.txt")
EMSC_TEXT = load_fixture("fdsn/fdsn-text-emsc-2017.txt")
ALL_HOUR = load_fixture("usgs/usgs-geojson-all_hour-2017-12-03.geojson")
CENC = load_fixture("cenc/cenc-speedsearch-response-2019-12.json")


class Upstream:
    """A fake catalogue server: records query strings and serves what the test sets."""

    def __init__(self) -> None:
        self.queries: list[dict[str, list[str]]] = []
        self.paths: list[str] = []
        self.reply: Callable[[], web.Response] | None = None  # a fresh response per request
        self.handler: Callable[[web.Request], Awaitable[web.StreamResponse]] | None = None
        self.base = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(parse_qs(request.query_string))
        self.paths.append(request.path)
        if self.handler is not None:
            return await self.handler(request)
        assert self.reply is not None
        return self.reply()


@pytest.fixture
async def upstream(aiohttp_server):  # type: ignore[no-untyped-def]
    up = Upstream()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", up.handle)
    server = await aiohttp_server(app)
    up.base = str(server.make_url("/")).rstrip("/")
    return up


def source(kind: str, url: str, **kw: object) -> Source:
    kw.setdefault("timeout_s", 2.0)
    return make_source(SourceConfig(name=kind if kind != "fdsn" else "ingv", kind=kind, url=url,
                                    **kw))  # type: ignore[arg-type]


async def fetch_parse(src: Source, since: datetime | None = None):  # type: ignore[no-untyped-def]
    async with aiohttp.ClientSession() as session:
        body = await src.fetch(session, since)
    return body, src.parse(body)


# --- one fetch per kind -----------------------------------------------------------------------


async def test_fdsn_fetch_asks_updatedafter_with_overlap(upstream: Upstream) -> None:
    """FDSN: format=text, orderby=time, updatedafter = since - overlap_s; configured params sent."""
    upstream.reply = lambda: web.Response(body=INGV, content_type="text/plain")
    src = source("fdsn", upstream.base + "/fdsnws/event/1/query", overlap_s=600,
                 params={"minmagnitude": 2, "latitude": 29.65, "longitude": 91.13,
                         "maxradius": 5.0})
    since = datetime(2024, 8, 30, 19, 30, 15, tzinfo=UTC)
    _, result = await fetch_parse(src, since)
    assert [r.source_id for r in result.reports][:2] == ["40271581", "40271671"]
    assert all(r.source == "ingv" for r in result.reports)
    q = upstream.queries[-1]
    assert upstream.paths[-1] == "/fdsnws/event/1/query"
    assert q["format"] == ["text"] and q["orderby"] == ["time"]
    assert q["updatedafter"] == ["2024-08-30T19:20:15"] and "starttime" not in q
    assert q["minmagnitude"] == ["2"] and q["maxradius"] == ["5.0"]


async def test_fdsn_without_updatedafter_uses_starttime(upstream: Upstream) -> None:
    """A node configured with updatedafter = false is asked starttime = since - overlap_s."""
    upstream.reply = lambda: web.Response(body=INGV, content_type="text/plain")
    src = source("fdsn", upstream.base + "/query", overlap_s=7200,
                 params={"updatedafter": False})
    await fetch_parse(src, datetime(2024, 11, 6, 20, 0, tzinfo=UTC))
    q = upstream.queries[-1]
    assert q["starttime"] == ["2024-11-06T18:00:00"] and "updatedafter" not in q


async def test_fdsn_first_poll_looks_back_one_day(upstream: Upstream) -> None:
    """Without `since` the node is asked for the last day, never for its whole catalogue."""
    upstream.reply = lambda: web.Response(body=INGV, content_type="text/plain")
    before = datetime.now(UTC)
    await fetch_parse(source("fdsn", upstream.base + "/query"))
    start = datetime.fromisoformat(upstream.queries[-1]["starttime"][0]).replace(tzinfo=UTC)
    assert before - timedelta(days=1, seconds=2) <= start <= before - timedelta(hours=23)


async def test_usgs_fetch(upstream: Upstream) -> None:
    """USGS: the summary feed is fetched as configured while the last poll is recent."""
    upstream.reply = lambda: web.Response(body=ALL_HOUR, content_type="application/json")
    url = upstream.base + "/earthquakes/feed/v1.0/summary/all_hour.geojson"
    _, result = await fetch_parse(source("usgs", url), datetime.now(UTC) - timedelta(minutes=1))
    assert len(result.reports) == 8 and result.reports[0].status == "automatic"
    assert upstream.paths[-1].endswith("/all_hour.geojson")
    await fetch_parse(source("usgs", url), datetime.now(UTC) - timedelta(hours=3))
    assert upstream.paths[-1].endswith("/all_day.geojson")


async def test_emsc_backfill_fetch(upstream: Upstream) -> None:
    """EMSC's fetch is its fdsnws back-fill, named "emsc", with unid-style EventIDs."""
    upstream.reply = lambda: web.Response(body=EMSC_TEXT, content_type="text/plain")
    src = source("emsc", upstream.base + "/fdsnws/event/1/query", overlap_s=3600)
    _, result = await fetch_parse(src, datetime(2017, 11, 1, 0, 0, tzinfo=UTC))
    assert result.reports[0].source == "emsc" and result.reports[0].source_id == "20171031_0000002"
    assert upstream.queries[-1]["updatedafter"] == ["2017-10-31T23:00:00"]


async def test_cenc_fetch_jsonp_served_as_html(upstream: Upstream) -> None:
    """CENC's PHP endpoint serves JSONP as text/html; it is accepted and unwrapped."""
    jsonp = b"jQuery1123(" + CENC + b")"
    upstream.reply = lambda: web.Response(body=jsonp, content_type="text/html")
    _, result = await fetch_parse(source("cenc", upstream.base + "/ajax/speedsearch?num=1"))
    assert len(result.reports) == 10
    assert result.reports[0].origin_at == datetime(2019, 12, 12, 2, 8, 23, tzinfo=UTC)
    assert upstream.queries[-1]["num"] == ["1"]


async def test_cenc_html_error_page_is_parse_error(upstream: Upstream) -> None:
    """An HTML page from CENC (block page, maintenance) is a ParseError at parse time."""
    upstream.reply = lambda: web.Response(text="<!DOCTYPE html><html><body>维护中</body></html>",
                                  content_type="text/html")
    src = source("cenc", upstream.base + "/ajax/speedsearch")
    async with aiohttp.ClientSession() as session:
        body = await src.fetch(session, None)
    with pytest.raises(ParseError):
        src.parse(body)


# --- faults -----------------------------------------------------------------------------------


async def test_http_500_is_unavailable(upstream: Upstream) -> None:
    """5xx: SourceUnavailable, with the fdsnws error text in the detail."""
    error = "Error 500: Internal Server Error\n\ndb down"
    upstream.reply = lambda: web.Response(status=500, text=error)
    with pytest.raises(SourceUnavailable, match="HTTP 500") as info:
        await fetch_parse(source("fdsn", upstream.base + "/query"))
    assert "db down" in info.value.detail and info.value.retry_after_s is None


@pytest.mark.parametrize("header, expected", [("120", 120.0), ("date", 300.0)])
async def test_503_retry_after(upstream: Upstream, header: str, expected: float) -> None:
    """503 with Retry-After in seconds or as an HTTP-date: retry_after_s carries it."""
    value = header if header != "date" else format_datetime(
        datetime.now(UTC) + timedelta(seconds=300), usegmt=True)
    upstream.reply = lambda: web.Response(status=503, text="busy", headers={"Retry-After": value})
    with pytest.raises(SourceUnavailable) as info:
        await fetch_parse(source("usgs", upstream.base + "/feed.geojson"))
    assert info.value.retry_after_s == pytest.approx(expected, abs=2)


@pytest.mark.parametrize("status, error", [(400, SourceRejected), (403, SourceRejected),
                                           (404, SourceRejected), (413, SourceRejected),
                                           (429, SourceUnavailable), (502, SourceUnavailable)])
async def test_status_mapping(upstream: Upstream, status: int, error: type) -> None:
    """Other 4xx: SourceRejected (retrying will not help); 429 and 5xx: SourceUnavailable."""
    upstream.reply = lambda: web.Response(status=status, text="Error")
    with pytest.raises(error):
        await fetch_parse(source("fdsn", upstream.base + "/query"))


async def test_204_is_no_reports(upstream: Upstream) -> None:
    """fdsnws 204: an empty body that parses to no reports."""
    upstream.reply = lambda: web.Response(status=204)
    body, result = await fetch_parse(source("fdsn", upstream.base + "/query"))
    assert body == b"" and result.reports == [] and result.skipped == []


async def test_404_is_no_data_when_node_is_asked_nodata_404(upstream: Upstream) -> None:
    """With params nodata = 404 the node's 404 means "no events", and nodata=404 is sent."""
    upstream.reply = lambda: web.Response(status=404, text="Error 404: No data")
    src = source("fdsn", upstream.base + "/query", params={"nodata": 404})
    body, result = await fetch_parse(src)
    assert body == b"" and result.reports == []
    assert upstream.queries[-1]["nodata"] == ["404"]


async def test_slow_server_times_out(upstream: Upstream) -> None:
    """A server slower than timeout_s: SourceUnavailable within about timeout_s."""
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(body=INGV, content_type="text/plain")

    upstream.handler = slow
    src = source("fdsn", upstream.base + "/query", timeout_s=0.2)
    started = asyncio.get_running_loop().time()
    with pytest.raises(SourceUnavailable, match="timed out"):
        await asyncio.wait_for(fetch_parse(src), timeout=5)
    assert asyncio.get_running_loop().time() - started < 1.5


async def test_slow_body_times_out(upstream: Upstream) -> None:
    """Headers in time but the body stalls: still a timeout, not a hang."""
    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await resp.prepare(request)
        await resp.write(INGV[:100])
        await asyncio.sleep(2)
        return resp

    upstream.handler = stall
    src = source("fdsn", upstream.base + "/query", timeout_s=0.3)
    with pytest.raises(SourceUnavailable, match="timed out"):
        await asyncio.wait_for(fetch_parse(src), timeout=5)


async def test_connection_refused() -> None:
    """Nothing listening on the port: SourceUnavailable."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for kind in ("fdsn", "usgs", "cenc", "emsc"):
        with pytest.raises(SourceUnavailable, match="connection failed"):
            await fetch_parse(source(kind, f"http://127.0.0.1:{port}/query"))


async def test_body_cut_off_mid_transfer(upstream: Upstream) -> None:
    """The server closes before Content-Length is reached: SourceUnavailable (retry later)."""
    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": str(len(ALL_HOUR)),
                                           "Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(ALL_HOUR[: len(ALL_HOUR) // 2])
        request.transport.close()  # type: ignore[union-attr]
        return resp

    upstream.handler = cut
    with pytest.raises(SourceUnavailable, match="cut off"):
        await fetch_parse(source("usgs", upstream.base + "/feed.geojson"))


async def test_truncated_json_body(upstream: Upstream) -> None:
    """A complete HTTP response whose JSON is truncated: ParseError."""
    upstream.reply = lambda: web.Response(body=ALL_HOUR[:1000], content_type="application/json")
    with pytest.raises(ParseError, match="invalid JSON"):
        await fetch_parse(source("usgs", upstream.base + "/feed.geojson"))


async def test_invalid_json_and_xml(upstream: Upstream) -> None:
    """Invalid JSON from a JSON source and XML garbage from an FDSN text node: ParseError."""
    upstream.reply = lambda: web.Response(text="{'features': [}", content_type="application/json")
    with pytest.raises(ParseError):
        await fetch_parse(source("usgs", upstream.base + "/feed.geojson"))
    garbage = "<?xml version='1.0'?><oops"
    upstream.reply = lambda: web.Response(text=garbage, content_type="text/plain")
    with pytest.raises(ParseError):
        await fetch_parse(source("fdsn", upstream.base + "/query"))


@pytest.mark.parametrize("kind, content_type", [("fdsn", "text/html"), ("usgs", "text/html"),
                                                ("usgs", "application/xml"),
                                                ("fdsn", "application/json")])
async def test_wrong_content_type(upstream: Upstream, kind: str, content_type: str) -> None:
    """An HTML error page (or another format) where JSON or text was asked for: ParseError."""
    upstream.reply = lambda: web.Response(text="<html><body>Maintenance</body></html>",
                                  content_type=content_type)
    with pytest.raises(ParseError, match="wrong content type"):
        await fetch_parse(source(kind, upstream.base + "/query"))


async def test_body_over_max_bytes(upstream: Upstream) -> None:
    """Over max_bytes: ParseError, whether Content-Length says so or the stream runs long."""
    upstream.reply = lambda: web.Response(body=ALL_HOUR, content_type="application/json")
    with pytest.raises(ParseError, match="max_bytes"):
        await fetch_parse(source("usgs", upstream.base + "/f.geojson", max_bytes=1000))

    async def chunked(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for _ in range(50):
            await resp.write(INGV)
        return resp

    upstream.handler = chunked
    with pytest.raises(ParseError, match="max_bytes"):
        await fetch_parse(source("fdsn", upstream.base + "/query", max_bytes=10_000))


async def test_bad_rows_skipped_over_http(upstream: Upstream) -> None:
    """Out-of-range lat/lon/depth/magnitude and an unparseable time: those rows are skipped
    with reasons, the others kept."""
    header, *rows = INGV.decode().splitlines()
    bad = [rows[0].replace("|40.831333|", "|91.5|"),
           rows[1].replace("|14.148667|", "|-200|"),
           rows[2].replace("|114.8|", "|900|"),
           rows[3].replace("|2.0|", "|11.2|"),
           rows[4].replace("2024-08-31T13:24:42.910000", "2024-13-45T99:00:00")]
    body = "\n".join([header, *rows, *bad]) + "\n"
    upstream.reply = lambda: web.Response(text=body, content_type="text/plain")
    _, result = await fetch_parse(source("fdsn", upstream.base + "/query"))
    assert len(result.reports) == 5
    assert [s.split(":", 1)[0] for s in result.skipped] == [
        "row 6 (id 40271581)", "row 7 (id 40271671)", "row 8 (id 40273591)",
        "row 9 (id 40276151)", "row 10 (id 40277191)"]
    assert "latitude 91.5 out of range" in result.skipped[0]
    assert "longitude -200.0 out of range" in result.skipped[1]
    assert "depth_km 900.0 out of range" in result.skipped[2]
    assert "magnitude 11.2 out of range" in result.skipped[3]
    assert "unparseable time" in result.skipped[4]
