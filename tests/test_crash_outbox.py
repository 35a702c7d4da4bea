"""kill -9 in the middle of a fan-out: after a restart everyone has the notice, and at most the
rows that were in flight were sent twice."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from quakealert.model import Message, Notice
from quakealert.store import outbox as ob
from quakealert.store.notices import save_notice
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import NewSubscriber, add_subscribers

REPO = Path(__file__).resolve().parent.parent
RECIPIENTS = 200
CONCURRENCY = 10


async def test_kill_9_mid_fanout_loses_nothing(tmp_path, aiohttp_server):
    got: Counter[str] = Counter()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        got[request.match_info["name"]] += 1
        await asyncio.sleep(0.05)  # slow enough to be killed in the middle
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook/{name}", hook)
    server = await aiohttp_server(app)

    db = tmp_path / "crash.sqlite"
    now = datetime.now(UTC)
    store = Store.open(db)
    add_subscribers(store.conn, [
        NewSubscriber(latitude=29.65, longitude=91.13, languages=("zh", "bo"), channel="webhook",
                      target=str(server.make_url(f"/hook/r{i}")), secret="x" * 20)
        for i in range(RECIPIENTS)], now=now)
    save_notice(store.conn, Notice(
        id="n-crash", sequence_id="s", event_id="e", kind="felt_guidance", msg_type="Alert",
        messages=(Message("zh", "地震", "请保持冷静"),), created_at=now), "released")
    ids = [r[0] for r in store.conn.execute("SELECT id FROM subscribers")]
    assert ob.enqueue_subscribers(store.conn, "n-crash", ids, now=now) == RECIPIENTS

    config = tmp_path / "dispatch.toml"  # the receiver is on 127.0.0.1 (channels.guard)
    config.write_text(f'[store]\npath = "{db}"\n[webpush]\nallow_insecure_endpoints = true\n')
    cmd = [sys.executable, "-m", "quakealert.service.dispatch", "--db", str(db),
           "--config", str(config), "--concurrency", str(CONCURRENCY), "--until-empty"]
    deadline = time.monotonic() + 25
    proc = await asyncio.create_subprocess_exec(*cmd, cwd=REPO, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.DEVNULL)
    try:
        while sum(got.values()) < RECIPIENTS // 4:
            assert time.monotonic() < deadline, "the first run delivered too little"
            assert proc.returncode is None, "the first run ended before it was killed"
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    before = sum(got.values())
    assert before < RECIPIENTS, "killed too late to test anything"
    in_flight = store.conn.execute(
        "SELECT count(*) FROM outbox WHERE state = 'in_flight'").fetchone()[0]
    assert 0 < in_flight <= CONCURRENCY

    proc = await asyncio.create_subprocess_exec(*cmd, cwd=REPO, stdout=asyncio.subprocess.DEVNULL,
                                                stderr=asyncio.subprocess.PIPE)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), timeout=deadline - time.monotonic())
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()[-2000:]

    assert set(got) == {f"r{i}" for i in range(RECIPIENTS)}  # nobody lost
    duplicates = sum(got.values()) - RECIPIENTS
    assert duplicates <= CONCURRENCY
    assert ob.counts(store.conn, "n-crash") == {"webhook": {"sent": RECIPIENTS}}
    store.close()
