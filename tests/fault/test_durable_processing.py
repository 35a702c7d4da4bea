"""SIGKILL at the awkward moments of the alert path (issue 9): a real daemon polls a catalogue on
127.0.0.1 that answers 20,000 distant events (the real SCSN Ridgecrest 2019 catalogue) and an M6.0
near Lhasa in one response; residents in Lhasa have webhooks on a local receiver. Killed after the
batch is stored and before the pipeline ran, right after the M6.0's notice was committed, or in
the middle of the fan-out, then restarted: the M6.0 has its decisions and notice, every resident
got it, and at most what was in flight was sent twice."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from quakealert.formats.catalog import read_catalog_file
from quakealert.service.faults import ENV
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import NewSubscriber, add_subscribers

REPO = Path(__file__).resolve().parents[2]
RIDGECREST = REPO / "tests" / "fixtures" / "catalogs" / "scedc-ridgecrest-2019.csv"
DISTANT = 20_000
RESIDENTS = 40
CONCURRENCY = 8  # [outbox] concurrency: rows in flight at once, the duplicate bound on a crash
M6_ID = "qa2026m6"
HEADER = ("#EventID|Time|Latitude|Longitude|Depth/km|Author|Catalog|Contributor|ContributorID|"
          "MagType|Magnitude|MagAuthor|EventLocationName|EventType")


def catalogue_body(m6_at: datetime) -> bytes:
    """20,000 real Ridgecrest rows, then the M6.0 at the Maizhokunggar epicentre (hypothetical
    magnitude: the real 2024 event was M4.5), as one fdsnws-event text response."""
    reports = read_catalog_file(RIDGECREST).reports[:DISTANT]
    lines = [HEADER]
    for r in reports:
        lines.append(f"{r.source_id}|{r.origin_at.strftime('%Y-%m-%dT%H:%M:%S.%f')}|{r.latitude}|"
                     f"{r.longitude}|{r.depth_km}|SCSN|SCEDC|SCEDC|{r.source_id}|{r.mag_type}|"
                     f"{r.magnitude}|SCSN|Ridgecrest, CA|earthquake")
    lines.append(f"{M6_ID}|{m6_at.strftime('%Y-%m-%dT%H:%M:%S.%f')}|29.85|92.25|10|QA|QA|QA|"
                 f"{M6_ID}|Mw|6.0|QA|Maizhokunggar, Xizang|earthquake")
    return ("\n".join(lines) + "\n").encode()


class Receiver:
    """A webhook gateway on 127.0.0.1: which resident got which notice, how many times."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.got: Counter[tuple[str, str]] = Counter()  # (resident, notice id)

    async def hook(self, request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        self.got[(request.match_info["name"], body["notice_id"])] += 1
        await asyncio.sleep(self.delay_s)
        return web.Response(status=204)

    def residents_with(self, notice_id: str) -> set[str]:
        return {who for who, nid in self.got if nid == notice_id}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(tmp: Path, catalogue_url: str, port: int) -> Path:
    cfg = tmp / "quakealert.toml"
    cfg.write_text(f"""
[store]
path = "{tmp / 'q.sqlite'}"
var_dir = "{tmp / 'var'}"

[api]
host = "127.0.0.1"
port = {port}

[[sources]]
name = "node"
kind = "fdsn"
url = "{catalogue_url}"
interval_s = 3600
jitter_s = 0
timeout_s = 60

[outbox]
concurrency = {CONCURRENCY}

[webpush]
allow_insecure_endpoints = true  # the receiver is on 127.0.0.1
""")
    return cfg


def query(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return [tuple(r) for r in conn.execute(sql, args)]
    finally:
        conn.close()


async def until(check: Callable[[], bool], what: str, timeout_s: float,
                proc: asyncio.subprocess.Process | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout_s:.0f} s: {what}"
        assert proc is None or proc.returncode is None, f"the daemon exited before: {what}"
        await asyncio.sleep(0.1)


def m6_notice(db: Path) -> str | None:
    rows = query(db, "SELECT id FROM notices WHERE event_id = ?", _m6_event(db))
    return str(rows[0][0]) if rows else None


def _m6_event(db: Path) -> str:
    rows = query(db, "SELECT event_id FROM report_current WHERE source_id = ?", M6_ID)
    return str(rows[0][0]) if rows else ""


async def start_daemon(cfg: Path, kill_at: str | None, log: Path) -> asyncio.subprocess.Process:
    """``quakealert run`` from this checkout; its log goes to a file (a pipe nobody reads
    would fill and stall the daemon)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    env.pop(ENV, None)
    if kill_at is not None:
        env[ENV] = kill_at
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "quakealert", "run", "--config", str(cfg), cwd=REPO, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=out)


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def healthz(port: int, timeout_s: float = 60.0) -> int:
    """/healthz's status once the API listens (start-up loads the store first)."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz",
                                       timeout=aiohttp.ClientTimeout(total=30)) as resp:
                    return resp.status
            except aiohttp.ClientConnectorError:
                assert time.monotonic() < deadline, "the API never listened"
                await asyncio.sleep(0.2)


@pytest.mark.parametrize("kill", ["ingested", "decided", "mid-fanout"])
async def test_sigkill_loses_no_alert(kill: str, tmp_path: Path, aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    """Killed at ``kill``, restarted: the M6.0 is decided and noticed, every resident has it,
    duplicates are at most the rows that were in flight, and the daemon stops on SIGTERM."""
    receiver = Receiver(delay_s=0.2 if kill == "mid-fanout" else 0.0)
    body = catalogue_body(datetime.now(UTC) - timedelta(minutes=2))

    async def fdsn(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/fdsnws/event/1/query", fdsn)
    app.router.add_post("/hook/{name}", receiver.hook)
    server = await aiohttp_server(app)

    db = tmp_path / "q.sqlite"
    store = Store.open(db)
    add_subscribers(store.conn, [
        NewSubscriber(latitude=29.65, longitude=91.13, languages=("zh", "bo"), channel="webhook",
                      target=str(server.make_url(f"/hook/r{i}")), secret="s" * 20)
        for i in range(RESIDENTS)], now=datetime.now(UTC))
    store.close()
    port = free_port()
    cfg = write_config(tmp_path, str(server.make_url("/fdsnws/event/1/query")), port)
    everyone = {f"r{i}" for i in range(RESIDENTS)}

    log = tmp_path / "daemon.log"
    proc = await start_daemon(cfg, None if kill == "mid-fanout" else kill, log)
    try:
        if kill == "mid-fanout":
            await until(lambda: (m6_notice(db) is not None
                                 and len(receiver.residents_with(m6_notice(db) or "")) >= 10),
                        "a quarter of the residents reached", 120, proc)
            proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL, tail(log)

    m6 = _m6_event(db)
    assert m6, "the M6.0 was not stored before the kill"
    before = sum(receiver.got.values())
    if kill == "ingested":
        # Stored, not processed: this is the state that used to stay so for good.
        assert query(db, "SELECT count(*) FROM decisions WHERE event_id = ?", m6) == [(0,)]
        assert query(db, "SELECT count(*) FROM work WHERE event_id = ?", m6) == [(1,)]
    elif kill == "decided":
        assert m6_notice(db) is not None
        assert query(db, "SELECT count(*) FROM work WHERE event_id = ?", m6) == [(0,)]
        assert query(db, "SELECT count(*) FROM outbox WHERE notice_id = ?",
                     m6_notice(db)) == [(RESIDENTS,)]
        assert before == 0
    else:
        assert 10 <= len(receiver.residents_with(m6_notice(db) or "")) < RESIDENTS

    proc = await start_daemon(cfg, None, log)
    try:
        await until(lambda: m6_notice(db) is not None, "the M6.0 notice", 120, proc)
        notice = m6_notice(db) or ""
        assert await healthz(port) == 200
        await until(lambda: receiver.residents_with(notice) == everyone,
                    "every resident has the M6.0 notice", 120, proc)
        assert await healthz(port) == 200
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, tail(log)

    sent = query(db, "SELECT count(*), sum(send), sum(count) FROM decisions WHERE event_id = ?"
                 " AND send = 1", m6)
    assert sent[0][2] == RESIDENTS  # one decision per resident, however it is stored
    copies = [receiver.got[(who, notice)] for who in everyone]
    duplicates = sum(copies) - RESIDENTS
    if kill == "mid-fanout":
        assert duplicates <= CONCURRENCY
    else:
        assert duplicates == 0  # nothing was in flight when it died
    assert len({nid for _, nid in receiver.got}) == 1  # one notice, not a second one on resume
