"""Delivery hardening (issue 9 §5): deliveries connect to public addresses only, checked at the
address a socket connects to (so DNS names and numeric spellings of 127.0.0.1 are caught), never
follow redirects, and read at most 64 KB of an answer. Hostile servers listen on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import tracemalloc
from datetime import UTC, datetime
from typing import Self

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from quakealert.channels.base import Recipient
from quakealert.channels.guard import (
    MAX_RESPONSE_BYTES,
    BlockedEndpoint,
    GuardedConnector,
    check_endpoint,
    delivery_session,
    literal_address,
)
from quakealert.channels.webhook import WebhookChannel
from quakealert.model import Message, Notice

NOW = datetime(2024, 11, 6, 20, 25, tzinfo=UTC)
NOTICE = Notice(id="n1", sequence_id="s1", event_id="e1", kind="felt_guidance",
                msg_type="Alert", messages=(Message("en", "M4.5", "Stay calm"),),
                created_at=NOW)


def hook(url: str) -> Recipient:
    return Recipient(subscriber_id=1, channel="webhook", target=url, languages=("en",),
                     secret="s" * 20)


class StubResolver(AbstractResolver):
    """A DNS that maps names to the addresses a test chooses (no network)."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.asked.append(host)
        addr = self.table[host]
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        return [{"hostname": host, "host": addr, "port": port, "family": fam, "proto": 0,
                 "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        pass


class Listener:
    """A raw TCP listener on 127.0.0.1 that counts connections (and answers nothing useful)."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.base_events.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Self:
        async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self.server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.mark.parametrize("url", [
    "https://0x7f000001/hook", "https://2130706433/hook", "https://0177.0.0.1/hook",
    "https://127.1/hook", "https://localhost./hook", "https://LOCALHOST/hook",
    "https://api.localhost/hook", "https://[::1]/hook", "https://[::ffff:127.0.0.1]/hook",
    "https://[::ffff:7f00:1]/hook", "https://169.254.169.254/latest", "https://10.1.2.3/",
    "https://192.168.0.1/", "https://100.64.0.1/", "https://224.0.0.1/", "https://0.0.0.0/",
    "https://240.0.0.1/", "https://[fe80::1]/", "https://[fc00::1]/", "https://[::]/",
    "https://[2002:7f00:1::]/", "http://push.example.org/",
])
def test_urls_that_are_plainly_not_public_are_refused(url: str) -> None:
    """Loopback, private, link-local, multicast, reserved and unspecified addresses in every
    spelling resolvers accept, localhost names, and plain http."""
    with pytest.raises(BlockedEndpoint):
        check_endpoint(url)


def test_public_targets_pass_the_url_check() -> None:
    """Names pass (they are checked at connect time); public literals pass."""
    for url in ("https://fcm.googleapis.com/fcm/send/x", "https://93.184.216.34/h",
                "https://[2606:4700::1111]/h"):
        check_endpoint(url)
    assert str(literal_address("0x7f000001")) == "127.0.0.1"
    assert literal_address("push.example.org") is None


async def test_ssrf_by_dns_name_never_connects() -> None:
    """A name that resolves to 127.0.0.1 is refused at connect time: the listener sees no
    connection, the delivery is a BlockedEndpoint (final, not retried). The same request
    through an unguarded connector does connect: the guard is what stops it."""
    async with Listener() as listener:
        url = f"https://push.evil.example:{listener.port}/hook"
        resolver = StubResolver({"push.evil.example": "127.0.0.1"})
        async with aiohttp.ClientSession(connector=GuardedConnector(resolver=resolver)) as s:
            with pytest.raises(BlockedEndpoint, match="127.0.0.1 is loopback"):
                await WebhookChannel().deliver(NOTICE, hook(url), s, now=NOW)
        assert resolver.asked == ["push.evil.example"] and listener.connections == 0
        plain = aiohttp.TCPConnector(resolver=StubResolver({"push.evil.example": "127.0.0.1"}))
        async with aiohttp.ClientSession(connector=plain) as s:
            with pytest.raises(aiohttp.ClientError):
                await s.post(url, data=b"x")
        await asyncio.sleep(0.05)
        assert listener.connections == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "0x7f000001", "2130706433", "0177.0.0.1",
                                  "127.1", "localhost", "[::ffff:127.0.0.1]"])
async def test_guarded_session_refuses_numeric_forms_at_connect(host: str) -> None:
    """Even without the URL check, the guarded session never opens a socket to 127.0.0.1,
    however the host is spelt."""
    async with Listener() as listener, delivery_session() as session:
        with pytest.raises((aiohttp.ClientError, OSError)):
            await session.post(f"http://{host}:{listener.port}/", data=b"x")
        await asyncio.sleep(0.05)
        assert listener.connections == 0


async def test_plain_session_is_refused_unless_insecure_allowed() -> None:
    """A channel refuses to send through a session that does not check addresses."""
    async with aiohttp.ClientSession() as session:
        with pytest.raises(BlockedEndpoint, match="does not check addresses"):
            await WebhookChannel().deliver(NOTICE, hook("https://gw.example.org/h"), session,
                                           now=NOW)


async def test_redirects_are_not_followed(aiohttp_server) -> None:
    """A 307 to another URL is the result (a failure), not a second request."""
    hits: list[str] = []

    async def redirect(request: web.Request) -> web.Response:
        hits.append(request.path)
        raise web.HTTPTemporaryRedirect("/internal-admin")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", redirect)
    server = await aiohttp_server(app)
    async with delivery_session(allow_insecure=True) as session:
        result = await WebhookChannel(allow_insecure=True).deliver(
            NOTICE, hook(str(server.make_url("/hook"))), session, now=NOW)
    assert not result.ok and result.status == 307
    assert hits == ["/hook"]


async def test_a_300_mb_answer_costs_at_most_64_kb(aiohttp_server) -> None:
    """A receiver streaming 300 MB: the channel reads 64 KB, drops the connection, and its
    memory peak stays a few MB (it read the whole body: a 749 MB peak)."""
    chunk = b"x" * (1 << 20)
    sent = {"bytes": 0}

    async def flood(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(status=200)
        resp.content_length = 300 * len(chunk)
        await resp.prepare(request)
        try:
            for _ in range(300):
                await resp.write(chunk)
                sent["bytes"] += len(chunk)
        except (ConnectionResetError, ConnectionError):
            pass
        return resp

    app = web.Application()
    app.router.add_post("/hook", flood)
    server = await aiohttp_server(app)
    tracemalloc.start()
    try:
        async with delivery_session(allow_insecure=True) as session:
            result = await asyncio.wait_for(WebhookChannel(allow_insecure=True).deliver(
                NOTICE, hook(str(server.make_url("/hook"))), session, now=NOW), 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok and result.status == 200
    assert peak < 16 * (1 << 20), f"peak {peak / 2**20:.1f} MiB"
    await asyncio.sleep(0.1)
    assert sent["bytes"] < 100 * len(chunk), "the client kept reading"
    assert MAX_RESPONSE_BYTES == 64 * 1024
