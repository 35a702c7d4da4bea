"""The daemon's start-up back-fill against local catalogue servers: /healthz says "running"
until the five years are in, then "complete"; a restart with the record does not redo it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from aiohttp import web

from quakealert.config import load_settings
from quakealert.service.daemon import serve
from tests.conftest import load_fixture
from tests.sources.fake_subao import FakeSubao
from tests.test_daemon import free_port, wait_for


def write_config(tmp: Path, port: int, base: str, *, region: bool = True) -> Path:
    where = "latitude = 29.65\nlongitude = 91.13\nradius_km = 400\n" if region else ""
    path = tmp / "q.toml"
    path.write_text(f"""
[store]
path = "{tmp / 'q.sqlite'}"
var_dir = "{tmp / 'var'}"
[api]
port = {port}
[[sources]]
name = "cenc"
kind = "cenc"
url = "{base}/speedsearch?num=1"
interval_s = 3600
jitter_s = 0
timeout_s = 5
params = {{ catalog_url = "{base}/datashare/report.shtml" }}
[backfill]
{where}chunk_days = 400
""")
    return path


async def catalogue(aiohttp_server, fake: FakeSubao, gate: asyncio.Event):  # type: ignore[no-untyped-def]
    quick = load_fixture("cenc/cenc-speedsearch-response-2019-12.json")

    async def speedsearch(request: web.Request) -> web.Response:
        return web.Response(body=quick, content_type="application/json")

    async def subao(request: web.Request) -> web.Response:
        await asyncio.wait_for(gate.wait(), 20)
        return await fake.handle(request)

    app = web.Application()
    app.router.add_get("/speedsearch", speedsearch)
    app.router.add_post("/datashare/report.shtml", subao)
    return await aiohttp_server(app)


async def test_backfill_runs_then_completes_and_is_not_redone(tmp_path: Path,
                                                              aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    """First start: "running" while CENC's catalogue answers slowly, polls meanwhile; then
    "complete" with the five years stored. Second start: the record says it is whole."""
    fake, gate = FakeSubao(), asyncio.Event()
    server = await catalogue(aiohttp_server, fake, gate)
    port = free_port()
    base = str(server.make_url("")).rstrip("/")
    settings = load_settings(write_config(tmp_path, port, base))
    health = f"http://127.0.0.1:{port}/healthz"
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        running = await wait_for(health, lambda b: b["events"] == 10)  # the live poll's 10
        assert running["backfill"]["state"] == "running"
        assert running["backfill"]["sources"]["cenc"]["state"] == "running"
        gate.set()
        done = await wait_for(health, lambda b: b["backfill"]["state"] == "complete")
        got = done["backfill"]["sources"]["cenc"]["reports"]
        assert got > 0 and done["events"] == 10 + got
        assert len(fake.forms) >= 5  # 5 years in 400-day chunks, page by page
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    record = json.loads((tmp_path / "var" / "backfill.json").read_text(encoding="utf-8"))
    assert set(record) == {"cenc"}

    asked = len(fake.forms)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        again = await wait_for(health, lambda b: b["status"] == "ok")
        assert again["backfill"] == {"state": "complete", "started_at": None,
                                     "finished_at": None, "sources": {}}
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    assert len(fake.forms) == asked


async def test_no_region_means_no_count_and_healthz_says_why(tmp_path: Path,
                                                             aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    """Without [backfill] latitude/longitude a live source cannot be back-filled: the state
    is "failed" with what to set, and the daemon keeps polling."""
    fake, gate = FakeSubao(), asyncio.Event()
    gate.set()
    server = await catalogue(aiohttp_server, fake, gate)
    port = free_port()
    base = str(server.make_url("")).rstrip("/")
    settings = load_settings(write_config(tmp_path, port, base, region=False))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        body = await wait_for(f"http://127.0.0.1:{port}/healthz", lambda b: b["events"] == 10)
        assert body["backfill"]["state"] == "failed"
        assert body["backfill"]["sources"]["cenc"]["note"] == (
            "no region: set [backfill] latitude and longitude")
        assert fake.forms == []
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
