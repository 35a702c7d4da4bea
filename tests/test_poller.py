"""poll_once against a local FDSN node that misbehaves: faults show in health, nothing stored is
lost, and after recovery the events published during the outage are ingested."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import aiohttp
import pytest
from aiohttp import web

from quakealert.config import SourceConfig
from quakealert.service.poller import Poller
from quakealert.sources.fdsn import FdsnSource
from quakealert.store.sqlite import Store
from tests.conftest import load_fixture

INGV = load_fixture("poller/fdsn-text-ingv-sample.txt").decode()
HEADER, *ROWS = INGV.strip().splitlines()


class Node:
    """A fake fdsnws-event node: serves the recorded rows, or the fault a test asks for."""

    def __init__(self) -> None:
        self.rows = ROWS[:2]
        self.fault: str | None = None
        self.queries: list[dict[str, list[str]]] = []

    async def query(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(parse_qs(request.query_string))
        body = "\n".join([HEADER, *self.rows]) + "\n"
        match self.fault:
            case None:
                return web.Response(text=body, content_type="text/plain")
            case "500":
                return web.Response(status=500, text="Internal Server Error")
            case "503":
                return web.Response(status=503, text="busy", headers={"Retry-After": "120"})
            case "timeout":
                await asyncio.sleep(2)
                return web.Response(text=body, content_type="text/plain")
            case "truncated":
                resp = web.StreamResponse(headers={"Content-Length": str(len(body) + 500),
                                                   "Content-Type": "text/plain"})
                await resp.prepare(request)
                await resp.write(body[: len(body) // 2].encode())
                request.transport.close()  # type: ignore[union-attr]
                return resp
            case "garbage":
                return web.Response(text="<?xml version='1.0'?><oops", content_type="text/plain")
            case "html":
                return web.Response(text="<html><body>Maintenance</body></html>",
                                    content_type="text/html")
            case "huge":
                return web.Response(text=body + ("#" * 70 + "\n") * 2000, content_type="text/plain")
            case "badrows":
                bad = [ROWS[2].replace("|38.3687|", "|123.0|"),
                       ROWS[3].replace("2024-08-31T11:10:10.920000", "yesterday"),
                       ROWS[4].replace("|2.1|", "|42|")]
                return web.Response(text="\n".join([HEADER, *self.rows, *bad]) + "\n",
                                    content_type="text/plain")
        raise AssertionError(self.fault)


@pytest.fixture
async def node(aiohttp_server):  # type: ignore[no-untyped-def]
    n = Node()
    app = web.Application()
    app.router.add_get("/fdsnws/event/1/query", n.query)
    server = await aiohttp_server(app)
    n.url = str(server.make_url("/fdsnws/event/1/query"))  # type: ignore[attr-defined]
    return n


def source_for(url: str, **kw: object) -> FdsnSource:
    cfg = SourceConfig(name="ingv", kind="fdsn", url=url, timeout_s=0.5, max_bytes=50_000,
                       overlap_s=600, **kw)  # type: ignore[arg-type]
    return FdsnSource(cfg)


@pytest.mark.parametrize("fault, error", [
    ("500", "SourceUnavailable"),
    ("503", "SourceUnavailable"),
    ("timeout", "SourceUnavailable"),
    ("truncated", "Source"),
    ("garbage", "ParseError"),
    ("html", "ParseError"),
    ("huge", "ParseError"),
])
async def test_fault_is_recorded_and_loses_nothing(node: Node, store: Store, fault: str,
                                                  error: str) -> None:
    """A failing poll keeps what is stored, shows in health, and backs off; recovery resets it."""
    async with aiohttp.ClientSession() as session:
        poller = Poller(store=store, session=session)
        src = source_for(node.url)  # type: ignore[attr-defined]
        ok = await poller.poll_once(src)
        assert ok.ok and ok.new == 2
        before = [(e.id, e.magnitude) for e in store.events()]

        node.fault = fault
        now = datetime.now(UTC)
        bad = await poller.poll_once(src, now=now)
        assert not bad.ok and bad.error is not None and bad.error.startswith(error)
        h = store.load_health()["ingv"]
        assert h["consecutive_failures"] == 1 and h["last_error"].startswith(error)
        assert h["backoff_until"] > now.timestamp()
        if fault == "503":  # Retry-After: 120 is honoured
            assert h["backoff_until"] >= now.timestamp() + 120
        assert [(e.id, e.magnitude) for e in store.events()] == before

        skipped = await poller.poll_once(src, now=now + timedelta(seconds=1))
        assert skipped.skipped_backoff and len(node.queries) == 2

        node.fault = None
        recovered = await poller.poll_once(src, force=True)
        assert recovered.ok
        assert store.load_health()["ingv"]["consecutive_failures"] == 0


async def test_connection_refused_is_recorded(store: Store) -> None:
    """A closed port on 127.0.0.1 is SourceUnavailable, recorded in health."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with aiohttp.ClientSession() as session:
        poller = Poller(store=store, session=session)
        status = await poller.poll_once(source_for(f"http://127.0.0.1:{port}/query"))
    assert not status.ok and status.error.startswith("SourceUnavailable")  # type: ignore[union-attr]
    assert store.load_health()["ingv"]["consecutive_failures"] == 1


async def test_bad_rows_are_skipped_rest_kept(node: Node, store: Store) -> None:
    """Out-of-range latitude/magnitude and an unparseable time skip only those rows."""
    node.fault = "badrows"
    async with aiohttp.ClientSession() as session:
        status = await Poller(store=store, session=session).poll_once(source_for(node.url))  # type: ignore[attr-defined]
    assert status.ok and status.new == 2 and status.skipped == 3
    assert store.load_health()["ingv"]["skipped_total"] == 3


async def test_outage_gap_is_back_filled(node: Node, store: Store) -> None:
    """Events published while the node was down arrive on recovery: `since` is the last success."""
    async with aiohttp.ClientSession() as session:
        poller = Poller(store=store, session=session)
        src = source_for(node.url)  # type: ignore[attr-defined]
        t_ok = datetime.now(UTC)
        await poller.poll_once(src, now=t_ok)
        node.fault = "500"
        for _ in range(3):
            await poller.poll_once(src, force=True)
        assert store.load_health()["ingv"]["consecutive_failures"] == 3
        node.fault, node.rows = None, ROWS  # three more events published during the outage
        status = await poller.poll_once(src, force=True)
    assert status.ok and status.new == 3 and store.count_events() == 5
    asked = datetime.fromisoformat(node.queries[-1]["updatedafter"][0]).replace(tzinfo=UTC)
    assert asked <= t_ok - timedelta(seconds=600) + timedelta(seconds=1)


async def test_restart_resumes_from_stored_health(node: Node, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A new Poller on the same database continues from the stored `since`, duplicating nothing."""
    path = tmp_path / "q.sqlite"
    async with aiohttp.ClientSession() as session:
        s1 = Store.open(path)
        await Poller(store=s1, session=session).poll_once(source_for(node.url))  # type: ignore[attr-defined]
        s1.close()
        s2 = Store.open(path)
        status = await Poller(store=s2, session=session).poll_once(source_for(node.url))  # type: ignore[attr-defined]
        assert status.ok and status.new == 0 and status.unchanged == 2
        assert "updatedafter" in node.queries[-1]
        assert s2.count_reports() == 2
        s2.close()


async def test_big_batch_is_stored_on_its_own_connection(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A batch over BIG_BATCH is ingested off the loop on another connection: the loop's
    connection, which serves the API meanwhile, is never inside the ingest's transaction."""
    from quakealert.model import ParseResult, Report
    from quakealert.service.poller import BIG_BATCH

    store = Store.open(tmp_path / "q.sqlite")
    t0 = datetime(2019, 7, 6, tzinfo=UTC)
    reports = [Report("ci", f"ci{k}", t0 + timedelta(seconds=30 * k), 35.7, -117.5, 8.0, 2.0,
                      "ml") for k in range(BIG_BATCH * 5)]
    async with aiohttp.ClientSession() as session:
        poller = Poller(store=store, session=session)
        task = asyncio.create_task(poller.store_reports("ci", ParseResult(reports), now=t0))
        seen_in_transaction = False
        while not task.done():
            seen_in_transaction |= store.conn.in_transaction
            await asyncio.sleep(0.001)
        status = task.result()
    assert not seen_in_transaction
    assert status.ok and status.new == BIG_BATCH * 5
    assert store.count_events() == BIG_BATCH * 5
    store.close()
