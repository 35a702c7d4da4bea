"""EMSC websocket messages, and EmscSource.listen against a local websocket server."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from quakealert.config import SourceConfig
from quakealert.errors import ParseError
from quakealert.formats.emsc import emsc_event_type, parse_emsc_message
from quakealert.model import ParseResult
from quakealert.sources.emsc import EmscSource, backoff_delay
from tests.conftest import load_fixture

MESSAGE = load_fixture("emsc/emsc-seismicportal-ws-message-create.json")


def test_create_message() -> None:
    """The recorded create message: unid as id, properties.depth (positive km), auth as agency."""
    [r] = parse_emsc_message(MESSAGE).reports
    assert r.source == "emsc" and r.source_id == "20250305_0000090"
    assert r.origin_at == datetime(2025, 3, 5, 9, 45, 7, tzinfo=UTC)
    assert r.updated_at == datetime(2025, 3, 5, 10, 6, 56, 102425, tzinfo=UTC)
    assert (r.latitude, r.longitude, r.depth_km) == (40.115, 28.5381, 7.0)
    assert (r.magnitude, r.mag_type) == (1.4, "ml")
    assert r.place == "WESTERN TURKEY" and r.agency == "AFAD"
    assert r.event_type == "earthquake" and r.status == "reviewed"


def _message(**props: object) -> bytes:
    doc = json.loads(MESSAGE)
    doc["data"]["properties"].update(props)
    return json.dumps(doc).encode()


def test_status_fields() -> None:
    """An `automatic` flag, if EMSC sends one, is honoured; action delete is deleted."""
    assert parse_emsc_message(_message(automatic=True)).reports[0].status == "automatic"
    assert parse_emsc_message(_message(evaluation_mode="manual")).reports[0].status == "reviewed"
    doc = json.loads(MESSAGE)
    doc["action"] = "delete"
    assert parse_emsc_message(json.dumps(doc)).reports[0].status == "deleted"


@pytest.mark.parametrize("code, kind", [("ke", "earthquake"), ("se", "earthquake"),
                                        ("fe", "earthquake"), ("km", "mining explosion"),
                                        ("sq", "quarry blast"), ("kn", "nuclear explosion"),
                                        ("ls", "landslide"), ("", None), ("uk", None),
                                        ("zz", "zz")])
def test_event_type_codes(code: str, kind: str | None) -> None:
    """ISC/NEIC/EMSC two-letter event types map to QuakeML's; empty is fine."""
    assert emsc_event_type(code) == kind


def test_bad_values_skipped_with_reason() -> None:
    """Out-of-range latitude: no report, a reason with the unid."""
    result = parse_emsc_message(_message(lat=95.0))
    assert result.reports == []
    assert result.skipped == ["row 1 (id 20250305_0000090): latitude 95.0 out of range"]
    bad_time = parse_emsc_message(_message(time="soon"))
    assert bad_time.skipped == ["row 1 (id 20250305_0000090): unparseable time 'soon'"]


@pytest.mark.parametrize("body", [b"{not json", b'{"action": "create"}', b"[]",
                                  b'{"action": "create", "data": {"type": "Feature"}}'])
def test_malformed_message_is_parse_error(body: bytes) -> None:
    """A message that is not JSON or has no data/properties: ParseError."""
    with pytest.raises(ParseError):
        parse_emsc_message(body)


def test_backoff_is_capped_and_jittered() -> None:
    """Delays double from the base, stay within [d/2, d], and never pass the cap."""
    rng = random.Random(1)
    delays = [backoff_delay(n, 1.0, 60.0, rng) for n in range(12)]
    for n, d in enumerate(delays):
        ceiling = min(60.0, 2.0 ** n)
        assert ceiling / 2 <= d <= ceiling
    assert max(delays) <= 60.0 and len(set(delays)) == len(delays)


class FakePortal:
    """A local seismicportal: each connection gets the next script of messages, then closes."""

    def __init__(self, scripts: list[list[str]]) -> None:
        self.scripts = scripts
        self.connections = 0
        self.done = asyncio.Event()

    async def handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        script = self.scripts[self.connections] if self.connections < len(self.scripts) else None
        self.connections += 1
        if script is None:  # last connection: stay open until the client stops
            self.done.set()
            async for _ in ws:
                pass
            return ws
        for text in script:
            await ws.send_str(text)
        await ws.close()  # the server drops the connection
        return ws


async def test_listen_reconnects_fires_gap_and_survives_bad_message(
    aiohttp_server, caplog: pytest.LogCaptureFixture  # type: ignore[no-untyped-def]
) -> None:
    """Messages arrive; the server drops; the client reconnects and the gap hook fires with the
    time the stream was last complete; a malformed message is skipped and logged."""
    second = _message(unid="20250305_0000091", mag=2.1).decode()
    portal = FakePortal([[MESSAGE.decode(), "{this is not json"], [second]])
    app = web.Application()
    app.router.add_get("/standing_order/websocket", portal.handler)
    server = await aiohttp_server(app)
    cfg = SourceConfig(name="emsc", kind="emsc", url="http://127.0.0.1:9/unused", timeout_s=2.0,
                       params={"ws_url": str(server.make_url("/standing_order/websocket")),
                               "ws_backoff_s": 0.01, "ws_backoff_max_s": 0.05})
    source = EmscSource(cfg, rng=random.Random(0))
    got: list[ParseResult] = []
    gaps: list[datetime] = []
    stop = asyncio.Event()

    async def on_reports(result: ParseResult) -> None:
        got.append(result)

    async def on_gap(since: datetime) -> None:
        gaps.append(since)

    started = datetime.now(UTC)
    async with aiohttp.ClientSession() as session:
        with caplog.at_level(logging.WARNING):
            task = asyncio.create_task(source.listen(session, on_reports, stop=stop, on_gap=on_gap))
            await asyncio.wait_for(portal.done.wait(), timeout=5)
            await asyncio.sleep(0.05)
            stop.set()
            await asyncio.wait_for(task, timeout=5)
    ids = [r.source_id for res in got for r in res.reports]
    assert ids == ["20250305_0000090", "20250305_0000091"]
    assert portal.connections == 3
    assert len(gaps) == 2 and all(started <= g <= datetime.now(UTC) for g in gaps)
    assert gaps[0] <= gaps[1]
    assert any(getattr(r, "source", None) == "emsc" and r.getMessage().startswith(
        "skipped websocket message: invalid EMSC message JSON") for r in caplog.records)
    assert source.state.reconnects == 2 and source.state.skipped == 1
    assert source.state.messages == 3 and not source.state.connected


async def test_listen_retries_refused_connection_until_stopped() -> None:
    """With nothing listening, the listener backs off and retries, and returns on stop."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = SourceConfig(name="emsc", kind="emsc", url="http://127.0.0.1:9/unused", timeout_s=1.0,
                       params={"ws_url": f"ws://127.0.0.1:{port}/ws", "ws_backoff_s": 0.01,
                               "ws_backoff_max_s": 0.02})
    source = EmscSource(cfg)
    stop = asyncio.Event()

    async def nothing(_: object) -> None:
        raise AssertionError("no message expected")

    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(source.listen(session, nothing, stop=stop))
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(task, timeout=2)
    assert source.state.connects == 0 and source.state.last_error is not None
    assert "connect failed" in source.state.last_error


async def test_failing_pipeline_does_not_kill_listener(
    aiohttp_server,  # type: ignore[no-untyped-def]
) -> None:
    """An exception in on_reports is logged; the next message is still delivered."""
    second = _message(unid="20250305_0000092").decode()
    portal = FakePortal([[MESSAGE.decode(), second]])
    app = web.Application()
    app.router.add_get("/ws", portal.handler)
    server = await aiohttp_server(app)
    cfg = SourceConfig(name="emsc", kind="emsc", url="http://127.0.0.1:9/unused",
                       params={"ws_url": str(server.make_url("/ws")), "ws_backoff_s": 0.01})
    source = EmscSource(cfg)
    calls: list[str] = []
    stop = asyncio.Event()

    async def flaky(result: ParseResult) -> None:
        calls.append(result.reports[0].source_id)
        if len(calls) == 1:
            raise RuntimeError("store is down")

    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(source.listen(session, flaky, stop=stop))
        await asyncio.wait_for(portal.done.wait(), timeout=5)
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    assert calls == ["20250305_0000090", "20250305_0000092"]


async def test_cancelling_the_listener_closes_cleanly(
    aiohttp_server,  # type: ignore[no-untyped-def]
) -> None:
    """Cancelling the listen task (daemon shutdown) closes the socket and leaves no state."""
    portal = FakePortal([])  # the first connection stays open
    app = web.Application()
    app.router.add_get("/ws", portal.handler)
    server = await aiohttp_server(app)
    cfg = SourceConfig(name="emsc", kind="emsc", url="http://127.0.0.1:9/unused",
                       params={"ws_url": str(server.make_url("/ws"))})
    source = EmscSource(cfg)

    async def ignore(_: ParseResult) -> None:
        return None

    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(source.listen(session, ignore, stop=asyncio.Event()))
        await asyncio.wait_for(portal.done.wait(), timeout=5)
        # The server has accepted; the client may not have read the 101 answer yet.
        async with asyncio.timeout(5):
            while not source.state.connected:
                await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert not source.state.connected and source.state.connects == 1
