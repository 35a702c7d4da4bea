"""The daemon as users run it: replay scenario in, events and notices out, a failing source
beside it, and a clean exit on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from quakealert.config import DEFAULT_SCENARIO, DEFAULT_SCENARIO_START, load_settings
from quakealert.service.daemon import serve
from quakealert.store.sqlite import Store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, port: int, *, dead_port: int | None = None) -> Path:
    extra = ""
    if dead_port is not None:
        extra = f"""
[[sources]]
name = "broken-node"
kind = "fdsn"
url = "http://127.0.0.1:{dead_port}/fdsnws/event/1/query"
interval_s = 1
jitter_s = 0
timeout_s = 1
"""
    path = tmp / "quakealert.toml"
    path.write_text(f"""
[store]
path = "{tmp / 'q.sqlite'}"
var_dir = "{tmp / 'var'}"

[api]
host = "127.0.0.1"
port = {port}

[[sources]]
name = "replay"
kind = "replay"
path = "{DEFAULT_SCENARIO}"
speed = 0
interval_s = 1
jitter_s = 0
params = {{ source_as = "cenc", label = "REPLAY test", start = "{DEFAULT_SCENARIO_START}" }}
{extra}
[demo]
subscriber = true

[backfill]
enabled = false  # the replay's background is its own back-fill; the live node has none here
""")
    return path


async def wait_for_rows(db: Path, sql: str, at_least: int, timeout_s: float = 30.0) -> int:
    """Poll the store (read-only, WAL) until ``sql`` counts ``at_least``."""
    deadline = time.monotonic() + timeout_s
    store = Store.open(db)
    try:
        while True:
            n = int(store.conn.execute(sql).fetchone()[0])
            if n >= at_least or time.monotonic() > deadline:
                return n
            await asyncio.sleep(0.1)
    finally:
        store.close()


async def wait_for(url: str, check, timeout_s: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        body = await resp.json()
                        if check(body):
                            return body
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError(f"{url} never satisfied the check")


async def test_daemon_serves_replayed_events_despite_a_dead_source(tmp_path: Path) -> None:
    """Scenario events arrive while another source fails; health says which. The years before
    the swarm come first as back-fill (history: never notified), then the swarm is played."""
    port, dead = free_port(), free_port()
    settings = load_settings(write_config(tmp_path, port, dead_port=dead))
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        # Stored (events) a moment before the poll's health record says so (off the loop).
        health = await wait_for(f"http://127.0.0.1:{port}/healthz",
                                lambda b: b["events"] == 200 and b["status"] == "degraded"
                                and any(s["name"] == "replay" and s["ok"] for s in b["sources"]),
                                60)
        by_name = {s["name"]: s for s in health["sources"]}
        # 34 rows played from 2024-10-20 on; the 166 before it came as back-fill
        assert by_name["replay"]["ok"] and by_name["replay"]["reports_total"] == 34
        assert health["backfill"]["state"] == "complete"
        assert health["backfill"]["sources"]["replay"]["reports"] == 166
        assert by_name["broken-node"]["consecutive_failures"] >= 1
        assert "SourceUnavailable" in by_name["broken-node"]["last_error"]
        assert health["mode"] == "REPLAY test"
        body = await wait_for(f"http://127.0.0.1:{port}/api/v1/events?limit=500",
                              lambda b: len(b["events"]) >= 100)
        assert all(e["sources"][0]["source"] == "cenc" for e in body["events"])
        # The pipeline works on its own thread: the events are served before it has decided.
        await wait_for_rows(tmp_path / "q.sqlite", "SELECT count(*) FROM outbox WHERE"
                            " channel = 'console' AND state = 'sent'", 2)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    store = Store.open(tmp_path / "q.sqlite")
    rows = store.conn.execute(
        "SELECT n.kind, e.origin_at FROM notices n JOIN events e ON e.id = n.event_id"
        " ORDER BY n.created_at").fetchall()
    delivered = store.conn.execute(
        "SELECT count(*) FROM outbox WHERE channel = 'console' AND state = 'sent'").fetchone()[0]
    store.close()
    assert [r[0] for r in rows][:2] == ["official_report+felt_guidance", "swarm_advisory"]
    start = datetime(2024, 10, 20, tzinfo=UTC).timestamp()
    assert all(r[1] >= start for r in rows)  # nothing about the background
    assert delivered >= 2


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    """`quakealert run` exits 0 on SIGTERM after draining, and says so in its log."""
    port = free_port()
    cfg = write_config(tmp_path, port)
    proc = subprocess.Popen([sys.executable, "-m", "quakealert", "run", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        body = asyncio.run(wait_for(f"http://127.0.0.1:{port}/healthz",
                                    lambda b: b["events"] == 200, 30))
        assert body["backfill"]["state"] == "complete"
        sent = asyncio.run(wait_for_rows(tmp_path / "q.sqlite", "SELECT count(*) FROM outbox"
                                         " WHERE state = 'sent'", 1))
        assert sent >= 1
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"stopped cleanly" in err
    assert "演练".encode() in out  # the demo resident's console notices are marked EXERCISE
    json.dumps(body)


def test_embedded_default_starts_from_an_empty_store(tmp_path: Path) -> None:
    """`quakealert run` without --config replays the scenario afresh: the demo store is reset;
    a store named by a config is never touched (tested above: events persist across runs)."""
    from quakealert.cli.run import reset_demo_store

    db = tmp_path / "quakealert.sqlite"
    Store.open(db).close()
    Path(f"{db}-wal").write_bytes(b"")
    reset_demo_store(db)
    assert not db.exists() and not Path(f"{db}-wal").exists()


def test_bad_policy_table_stops_start_up_with_exit_2(tmp_path: Path) -> None:
    """A config a subsystem rejects ends `quakealert run` with a one-line error and status 2."""
    cfg = write_config(tmp_path, free_port())
    cfg.write_text(cfg.read_text() + "\n[policy]\nquiet_hours = '23:00-07:00'\n")
    proc = subprocess.run([sys.executable, "-m", "quakealert", "run", "--config", str(cfg)],
                          check=False, capture_output=True, timeout=60)
    assert proc.returncode == 2
    assert b"policy.quiet_hours: unknown key" in proc.stderr and proc.stderr.count(b"\n") == 1
    assert b"Traceback" not in proc.stderr


async def test_emsc_websocket_pushes_reach_the_store(tmp_path: Path, aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    """The daemon listens on an EMSC socket: a pushed message becomes an event, and the
    back-fill poll after the (re)connect asks the FDSN endpoint."""
    from aiohttp import web

    from tests.conftest import load_fixture

    message = load_fixture("emsc/emsc-seismicportal-ws-message-create.json").decode()
    backfills: list[str] = []

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        await sock.send_str(message)
        async for _ in sock:  # keep the connection until the client leaves
            pass
        return sock

    async def fdsn(request: web.Request) -> web.Response:
        backfills.append(request.query_string)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/ws", ws)
    app.router.add_get("/fdsnws/event/1/query", fdsn)
    server = await aiohttp_server(app)
    port = free_port()
    cfg = tmp_path / "q.toml"
    cfg.write_text(f"""
[store]
path = "{tmp_path / 'q.sqlite'}"
var_dir = "{tmp_path / 'var'}"
[api]
port = {port}
[[sources]]
name = "emsc"
kind = "emsc"
url = "{server.make_url('/fdsnws/event/1/query')}"
interval_s = 3600
jitter_s = 0
params = {{ ws_url = "{str(server.make_url('/ws')).replace('http', 'ws')}" }}
""")
    stop = asyncio.Event()
    task = asyncio.create_task(serve(load_settings(cfg), stop))
    try:
        body = await wait_for(f"http://127.0.0.1:{port}/api/v1/events",
                              lambda b: len(b["events"]) == 1)
        assert body["events"][0]["sources"][0]["source"] == "emsc"
        assert backfills  # the scheduled poll and/or the post-connect back-fill
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
