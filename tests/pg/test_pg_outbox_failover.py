"""Two delivery processes on one PostgreSQL outbox; SIGKILL one mid fan-out: the other finishes
the fan-out, nothing is lost, and at most what the killed one had in flight is sent twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from aiohttp import web

from quakealert.store.postgres import outbox as ob
from quakealert.store.postgres.throwaway import free_port

ROOT = Path(__file__).resolve().parents[2]
ROWS = 1500
BATCH = 50
LEASE_S = 2.0


async def test_sigkill_of_a_delivery_process_loses_nothing(pg_url, capsys):
    """Every row reaches the receiver; duplicates <= one batch (the killed process's in-flight
    rows, reclaimed when their lease expires); every row ends sent."""
    posts: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        posts.append(request.headers["X-Delivery-Id"])
        await asyncio.sleep(0.02)  # a gateway's round trip: the fan-out takes seconds
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook/{sid}", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    procs: list[asyncio.subprocess.Process] = []
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            with conn.cursor().copy(
                    "COPY subscribers (id, public_id, token_hash, latitude, longitude, languages,"
                    " channel, target, created_at) FROM STDIN") as copy:
                for i in range(1, ROWS + 1):
                    copy.write_row((i, f"p{i}", "h", 29.65, 91.1, "zh", "webhook",
                                    f"http://127.0.0.1:{port}/hook/{i}", 0.0))
            assert ob.enqueue_subscribers(conn, "n1", range(1, ROWS + 1),
                                          now=datetime.now(UTC)) == ROWS
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for _ in range(2):
            procs.append(await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "tests/pg/deliver_proc.py"), pg_url, str(LEASE_S),
                str(BATCH), stdout=asyncio.subprocess.DEVNULL, env=env, cwd=ROOT))
        t0 = time.monotonic()
        while len(posts) < ROWS // 4:
            assert time.monotonic() - t0 < 120, "fan-out did not start"
            await asyncio.sleep(0.01)
        procs[0].send_signal(signal.SIGKILL)
        await procs[0].wait()
        killed_at = len(posts)
        await asyncio.wait_for(procs[1].wait(), 120)
        assert procs[1].returncode == 0
        with psycopg.connect(pg_url) as conn:
            assert ob.counts(conn) == {"webhook": {"sent": ROWS}}
        assert len(set(posts)) == ROWS  # nothing lost
        duplicates = len(posts) - ROWS
        assert 0 <= duplicates <= BATCH
        assert killed_at < ROWS  # the kill really was mid fan-out
        with capsys.disabled():
            print(f"\n  outbox failover: killed after {killed_at}/{ROWS} posts,"
                  f" {duplicates} duplicates (limit {BATCH}), done in"
                  f" {time.monotonic() - t0:.1f} s")
    finally:
        for p in procs:
            if p.returncode is None:
                p.kill()
                await p.wait()
        await runner.cleanup()
