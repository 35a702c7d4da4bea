"""Issue 12 §5 log audit: every line about a source, notice or resident carries its id as a
logfmt key, and no line names a place, an endpoint, an upstream host or a client's address.

Representative paths run for real on 127.0.0.1 (a catalogue answering 503, a closed port, an
EMSC websocket that refuses, a wrong login and bearer token, webhooks that answer 400, refuse
the connection or make the channel raise) while every quakealert log line is captured through
the daemon's own logfmt formatter.
"""

from __future__ import annotations

import asyncio
import io
import logging
import random
import re
import shlex
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from quakealert.api.app import make_app
from quakealert.channels.base import DeliveryResult, Recipient
from quakealert.channels.webhook import WebhookChannel
from quakealert.config import Settings, SourceConfig
from quakealert.logs import Formatter, client_ref, scrub
from quakealert.model import Message, Notice
from quakealert.service.dispatch import Outbox, OutboxSettings, RetryPolicy
from quakealert.service.poller import Poller
from quakealert.sources.emsc import EmscSource
from quakealert.sources.fdsn import FdsnSource
from quakealert.store import outbox as ob
from quakealert.store.notices import save_notice
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import NewSubscriber, add_subscribers

NOW = datetime(2024, 11, 6, 20, 25, tzinfo=UTC)
KEY = re.compile(r"^[a-z_]+$")
# what must never appear: addresses, URLs, host names, and the residents' place and area
FORBIDDEN = ("127.0.0.1", "http://", "https://", "ws://", "localhost", "upstream.example",
             "29.65", "91.13", "chengguan", "拉萨")


class Captured:
    """Every line the quakealert loggers write, formatted as the daemon formats them."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[dict[str, str]]:
        """Each line parsed as logfmt; fails on anything that is not ``key=value`` pairs."""
        out = []
        for line in self.stream.getvalue().splitlines():
            fields = {}
            for token in shlex.split(line, posix=True):
                key, sep, value = token.partition("=")
                assert sep and KEY.match(key), f"not logfmt: {token!r} in {line!r}"
                fields[key] = value
            assert {"ts", "level", "logger", "msg"} <= set(fields), line
            out.append(fields)
        return out

    def text(self) -> str:
        return self.stream.getvalue()


@pytest.fixture
def captured() -> Iterator[Captured]:
    cap = Captured()
    handler = logging.StreamHandler(cap.stream)
    handler.setFormatter(Formatter("logfmt"))
    logger = logging.getLogger("quakealert")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield cap
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_clean(cap: Captured) -> list[dict[str, str]]:
    lines = cap.lines()
    assert lines
    text = cap.text().lower()
    for word in FORBIDDEN:
        assert word.lower() not in text, f"{word!r} logged:\n{cap.text()}"
    return lines


async def test_failed_polls_log_the_source_name_only(store: Store, aiohttp_server,
                                                     captured: Captured) -> None:
    """A 503, a refused connection and an EMSC websocket that cannot connect: each warning
    carries ``source=`` and the error's kind, never the upstream's URL or host."""
    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, text="busy at http://upstream.example/x")

    app = web.Application()
    app.router.add_get("/query", busy)
    server = await aiohttp_server(app)
    sources = [FdsnSource(SourceConfig(name=name, kind="fdsn", url=url, timeout_s=2.0))
               for name, url in (("ingv", str(server.make_url("/query"))),
                                 ("geofon", f"http://127.0.0.1:{closed_port()}/query"))]
    emsc = EmscSource(SourceConfig(
        name="emsc", kind="emsc", url="http://127.0.0.1:9/unused", timeout_s=1.0,
        params={"ws_url": f"ws://127.0.0.1:{closed_port()}/ws", "ws_backoff_s": 0.01,
                "ws_backoff_max_s": 0.02}))
    async with aiohttp.ClientSession() as session:
        poller = Poller(store=store, session=session)
        for source in sources:
            assert not (await poller.poll_once(source)).ok
        stop = asyncio.Event()

        async def nothing(_: object) -> None:
            raise AssertionError("no message expected")

        task = asyncio.create_task(emsc.listen(session, nothing, stop=stop))
        for _ in range(200):  # bounded: until the first refused connect is logged
            if "websocket connect failed" in captured.text():
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, timeout=5)
    lines = assert_clean(captured)
    failed = {f["source"]: f for f in lines if f["msg"] == "poll failed"}
    assert set(failed) == {"ingv", "geofon"}
    assert failed["ingv"]["error"].startswith("SourceUnavailable: HTTP 503")
    assert failed["geofon"]["error"].startswith("SourceUnavailable: connection failed")
    ws = [f for f in lines if f["msg"] == "websocket connect failed"]
    assert ws and all(f["source"] == "emsc" for f in ws)
    # the duty view still has the whole error: health keeps it, only the log line is scrubbed
    assert "127.0.0.1" in (store.load_health()["geofon"]["last_error"] or "")


async def test_failed_logins_log_a_client_reference(tmp_path, store: Store, aiohttp_client,
                                                    captured: Captured) -> None:
    """A wrong login and a wrong bearer token: ``client=`` is a keyed hash (docs/security.md),
    the same for the same address, never the address itself."""
    settings = Settings(store_path=tmp_path / "q.sqlite", var_dir=tmp_path,
                        sections={"ratelimit": {"enabled": False}})
    client = await aiohttp_client(make_app(settings, store=store))
    resp = await client.post("/login", data={"token": "not-a-token"}, allow_redirects=False)
    assert resp.status == 401
    resp = await client.get("/api/v1/sources", headers={"Authorization": "Bearer nope"})
    assert resp.status == 401
    lines = assert_clean(captured)
    login = [f for f in lines if f["msg"] == "failed login"]
    bearer = [f for f in lines if f["msg"] == "rejected bearer credentials"]
    assert len(login) == 1 and len(bearer) == 1
    assert login[0]["client"] == bearer[0]["client"] == client_ref("127.0.0.1")
    assert re.fullmatch(r"c-[0-9a-f]{10}", login[0]["client"])


class RaisingChannel:
    """A channel with a bug whose exception text holds the resident's endpoint."""

    name = "webpush"

    async def deliver(self, notice: Notice, recipient: Recipient, session: object, *,
                      now: datetime) -> DeliveryResult:
        raise RuntimeError(f"bug while posting to {recipient.target}")


async def test_delivery_failures_log_ids_only(store: Store, aiohttp_server, aiohttp_client,
                                              captured: Captured) -> None:
    """A webhook answering 400, one whose port refuses (given up at once), and a channel that
    raises: each line carries ``notice_id`` and ``subscriber_id``, never the target or place."""
    async def bad(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=400)

    app = web.Application()
    app.router.add_post("/hook/bad", bad)
    server = await aiohttp_server(app)
    subs = [NewSubscriber(29.65, 91.13, ("zh",), "webhook", url, secret="0123456789abcdef0123")
            for url in (str(server.make_url("/hook/bad")),
                        f"http://127.0.0.1:{closed_port()}/hook/refused")]
    subs.append(NewSubscriber(29.65, 91.13, ("zh",), "webpush",
                              f"http://127.0.0.1:{closed_port()}/push/abc", p256dh="k",
                              auth="a"))
    add_subscribers(store.conn, subs, now=NOW)
    ids = [int(r[0]) for r in store.conn.execute("SELECT id FROM subscribers ORDER BY id")]
    save_notice(store.conn, Notice(id="n1", sequence_id="s1", event_id="e1",
                                   kind="felt_guidance", msg_type="Alert", created_at=NOW,
                                   messages=(Message("zh", "地震", "请保持冷静"),)), "released")
    ob.enqueue_subscribers(store.conn, "n1", ids, now=NOW)
    session_holder = await aiohttp_client(web.Application())
    box = Outbox(store, {"webhook": WebhookChannel(timeout_s=5, allow_insecure=True),
                              "webpush": RaisingChannel()},  # type: ignore[dict-item]
                 session_holder.session,
                 settings=OutboxSettings(retry=RetryPolicy(max_attempts=1)),
                 rng=random.Random(0))
    assert await box.drain_once(NOW) == 3
    lines = assert_clean(captured)
    failed = [f for f in lines if f["msg"] == "delivery failed"]
    raised = [f for f in lines if f["msg"].startswith("delivery raised")]
    assert {f["subscriber_id"] for f in failed} == {str(i) for i in ids}
    assert all(f["notice_id"] == "n1" and f["delivery_id"] for f in failed)
    assert {f["status"] for f in failed if f["channel"] == "webhook"} >= {"400"}
    assert len(raised) == 1 and raised[0]["subscriber_id"] == str(ids[2])
    assert raised[0]["trace"].endswith("RuntimeError") and "push/abc" not in raised[0]["trace"]


@pytest.mark.parametrize(("text", "kept"), [
    (("connection failed: Cannot connect to host www.seismicportal.eu:443 ssl:default "
      "[Connect call failed ('192.0.2.7', 443)]"), "connection failed: Cannot connect to host"),
    ("HTTP 503 from https://earthquake.usgs.gov/fdsnws/event/1/query?x=1", "HTTP 503 from"),
    ("ConnectionKey(host='gateway.example', port=443)", "port=443"),
    ("[2001:db8::1]:443 refused", "refused"),
    ("row 3 (id us7000abcd): origin 2024-11-06T12:30:45Z out of range",
     "row 3 (id us7000abcd): origin 2024-11-06T12:30:45Z out of range"),
])
def test_scrub_cuts_hosts_and_addresses(text: str, kept: str) -> None:
    """scrub() removes URLs, host names and IP addresses from an error text and keeps the rest
    (ids and times in a skipped row's reason stay readable)."""
    out = scrub(text)
    assert kept in out
    for gone in ("seismicportal", "192.0.2.7", "usgs.gov", "gateway.example", "2001:db8"):
        assert gone not in out
