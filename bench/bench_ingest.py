"""Ingest speed (issue 2): parse + associate + store a 100,000-event FDSN text body, and the
poll-to-stored latency of a 100-event response through the real poller over HTTP on 127.0.0.1.

Rows are the real SCSN Ridgecrest 2019 catalogue (tests/fixtures/catalogs, 25,565 events) repeated
four times, each copy shifted by 150 days and given its own ids: 100,000 distinct events with the
real catalogue's density in space, time and magnitude (resampling with the same origin times
would instead stack four copies of each quake in one association window).
Targets: 100k in <= 3 s; 100 events <= 100 ms.
Prints plain ``key: value`` lines.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_parse import FIXTURE, HEADER, SEED, fdsn_text

from quakealert.config import SourceConfig
from quakealert.formats.catalog import read_catalog_file
from quakealert.formats.fdsntext import parse_fdsn_text
from quakealert.service.poller import Poller, gc_paused
from quakealert.sources.fdsn import FdsnSource
from quakealert.store.sqlite import Store

ROWS = 100_000
POLLS = 20


def shifted_copies(base: list, n: int) -> bytes:
    """``n`` rows: the catalogue, then copies shifted by 150 days each, with unique ids."""
    lines = [HEADER]
    for k in range(n):
        r = base[k % len(base)]
        t = (r.origin_at + timedelta(days=150 * (k // len(base)))).strftime("%Y-%m-%dT%H:%M:%S.%f")
        lines.append(f"{r.source_id}-{k}|{t}|{r.latitude}|{r.longitude}|{r.depth_km}|SCSN|SCEDC|"
                     f"SCEDC|{r.source_id}|{r.mag_type}|{r.magnitude}|SCSN|Ridgecrest, CA|earthquake")
    return ("\n".join(lines) + "\n").encode()


def bulk(base: list, tmp: Path) -> None:
    body = shifted_copies(base, ROWS)
    store = Store.open(tmp / "bulk.sqlite")
    t0 = time.perf_counter()
    with gc_paused():  # as the poller parses big bodies
        parsed = parse_fdsn_text(body, "scsn")
    t1 = time.perf_counter()
    result = store.ingest(parsed.reports, now=datetime.now(UTC))
    t2 = time.perf_counter()
    assert len(result.created) == ROWS, len(result.created)
    print(f"rows: {ROWS}")
    print(f"parse_s: {t1 - t0:.3f}")
    print(f"associate_store_s: {t2 - t1:.3f}")
    print(f"total_s: {t2 - t0:.3f}")
    print(f"target_total_3s: {'yes' if t2 - t0 <= 3.0 else 'NO'}")
    t3 = time.perf_counter()
    again = store.ingest(parsed.reports, now=datetime.now(UTC))
    print(f"reingest_unchanged_s: {time.perf_counter() - t3:.3f}")
    assert again.unchanged == ROWS
    store.close()


async def latency(base: list, tmp: Path) -> None:
    bodies = [fdsn_text(base, 100, random.Random(SEED + k)).replace(b"|ci", f"|p{k}ci".encode())
              for k in range(POLLS)]
    state = {"k": 0}

    async def query(request: web.Request) -> web.Response:
        return web.Response(body=bodies[state["k"]], content_type="text/plain")

    app = web.Application()
    app.router.add_get("/fdsnws/event/1/query", query)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    store = Store.open(tmp / "poll.sqlite")
    src = FdsnSource(SourceConfig(name="scsn", kind="fdsn",
                                  url=f"http://127.0.0.1:{port}/fdsnws/event/1/query"))
    samples = []
    async with aiohttp.ClientSession() as session:
        poller = Poller(store=store, session=session)
        for k in range(POLLS):
            state["k"] = k
            t0 = time.perf_counter()
            status = await poller.poll_once(src, force=True)
            samples.append(time.perf_counter() - t0)
            assert status.ok and status.new == 100, status
    await runner.cleanup()
    store.close()
    med = statistics.median(samples)
    print(f"poll_100_events_median_ms: {med * 1000:.1f}")
    print(f"poll_100_events_max_ms: {max(samples) * 1000:.1f}")
    print(f"target_poll_100ms: {'yes' if med <= 0.1 else 'NO'}")


def main() -> int:
    base = read_catalog_file(FIXTURE).reports
    with tempfile.TemporaryDirectory() as tmp:
        bulk(base, Path(tmp))
        asyncio.run(latency(base, Path(tmp)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
