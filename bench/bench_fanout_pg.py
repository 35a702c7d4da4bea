"""Fan one notice out to N webhook residents from a PostgreSQL outbox, with 1 and then 2 delivery
processes claiming from the same table and POSTing to the same receiver on 127.0.0.1.

Each delivery process is a real subprocess: claim a batch (``FOR UPDATE SKIP LOCKED`` with a
lease), POST every row (HMAC-SHA256 signed JSON, ``concurrency`` requests in flight over one
ClientSession), mark the batch in one statement, wait on LISTEN/NOTIFY when the table is empty.
The receiver (its own process) answers 200 after ``--delay-ms`` (a stand-in for a gateway's round
trip) and counts delivery ids, so duplicates show. PostgreSQL is a throwaway cluster (initdb in a
temp dir, a free port), unless ``--url`` names one.

    .venv/bin/python bench/bench_fanout_pg.py [--rows 20000] [--delay-ms 0] [--url postgresql://…]

Prints ``key: value`` lines: rows/s with 1 and 2 processes, the ratio, duplicates, lost rows.
Without initdb (and no --url) it says so and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BATCH = 200


# -- the receiver (subprocess) ----------------------------------------------------------------


def serve(port: int, delay_ms: float) -> None:
    """200 for every POST after ``delay_ms``; GET /stats: posts received and distinct ids."""
    from aiohttp import web

    seen: set[str] = set()
    posts = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal posts
        await request.read()
        posts += 1
        seen.add(request.headers.get("X-Delivery-Id", ""))
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        return web.Response(status=200)

    async def stats(_: web.Request) -> web.Response:
        return web.json_response({"posts": posts, "distinct": len(seen)})

    app = web.Application()
    app.router.add_post("/hook/{sid}", hook)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None,
                handle_signals=True)


# -- a delivery process (subprocess) ----------------------------------------------------------


async def deliver(url: str, concurrency: int) -> None:
    """Claim, POST, mark until the outbox has nothing pending; print rows delivered."""
    import aiohttp
    import psycopg

    from quakealert.store.postgres import outbox as ob

    conn = psycopg.connect(url, autocommit=True)
    waker = ob.OutboxWaker(url)
    limit = asyncio.Semaphore(concurrency)
    sent = 0
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)  # "go"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:

        async def post(row: ob.OutboxRow) -> tuple[int, str, int | None, str | None, None]:
            body = json.dumps({"notice": row.notice_id, "subscriber": row.public_id}).encode()
            sig = hmac.new((row.secret or "").encode(), body, hashlib.sha256).hexdigest()
            async with limit:
                try:
                    async with http.post(row.target, data=body, headers={
                            "Content-Type": "application/json", "X-Delivery-Id": str(row.id),
                            "X-Signature": f"sha256={sig}"}) as resp:
                        await resp.read()
                        if resp.status < 300:
                            return (row.id, "sent", resp.status, None, None)
                        return (row.id, "failed", resp.status, "http", None)
                except aiohttp.ClientError as err:
                    return (row.id, "failed", None, type(err).__name__, None)

        while True:
            rows = await asyncio.to_thread(ob.claim, conn, BATCH, datetime.now(UTC))
            if not rows:
                if not ob.counts(conn).get("webhook", {}).get("pending"):
                    break
                await waker.wait(0.5)
                continue
            marks = await asyncio.gather(*(post(r) for r in rows))
            await asyncio.to_thread(ob.finish_many, conn, marks, at=datetime.now(UTC))
            sent += sum(1 for m in marks if m[1] == "sent")
    await waker.close()
    conn.close()
    print(f"sent {sent}", flush=True)


# -- the parent -------------------------------------------------------------------------------


def _fill(url: str, rows: int, port: int) -> None:
    import psycopg

    from quakealert.store.postgres import outbox as ob

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE outbox, outbox_fanout, subscribers")
        with conn.cursor().copy(
                "COPY subscribers (id, public_id, token_hash, latitude, longitude, languages,"
                " channel, target, secret, created_at) FROM STDIN") as copy:
            for i in range(1, rows + 1):
                copy.write_row((i, f"p{i}", "h", 29.65, 91.1, "zh,bo", "webhook",
                                f"http://127.0.0.1:{port}/hook/{i}", "s3cret", 0.0))
        added = ob.enqueue_subscribers(conn, "n-bench", range(1, rows + 1), now=datetime.now(UTC))
        assert added == rows, added


def _stats(port: int) -> dict[str, int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=10) as resp:
        return dict(json.loads(resp.read()))


def run_round(url: str, processes: int, rows: int, port: int, concurrency: int) -> dict[str, float]:
    """Enqueue ``rows`` and let ``processes`` delivery processes drain them; returns numbers."""
    import psycopg

    from quakealert.store.postgres import outbox as ob

    before = _stats(port)
    _fill(url, rows, port)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen(
        [sys.executable, __file__, "--worker", url, "--concurrency", str(concurrency)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
        for _ in range(processes)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        t0 = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        per_process = []
        for p in procs:
            out, _ = p.communicate(timeout=900)
            per_process.append(int(out.split()[-1]))
            assert p.returncode == 0, p.returncode
        elapsed = time.perf_counter() - t0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    after = _stats(port)
    with psycopg.connect(url) as conn:
        done = ob.counts(conn, "n-bench").get("webhook", {})
    return {"rows_per_s": rows / elapsed, "elapsed_s": elapsed,
            "posts": after["posts"] - before["posts"],
            "duplicates": (after["posts"] - before["posts"]) - rows,
            "not_sent": rows - done.get("sent", 0),
            "min_share": min(per_process) / rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight per process")
    parser.add_argument("--url", default=None, help="an existing, migrated-or-empty database")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--receiver", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver is not None:
        serve(args.receiver, args.delay_ms)
        return 0
    if args.worker is not None:
        asyncio.run(deliver(args.worker, args.concurrency))
        return 0

    from quakealert.store.postgres import throwaway
    from quakealert.store.postgres.db import PgStore

    cluster = None
    url = args.url
    if url is None:
        if throwaway.find_bin("initdb") is None:
            print("skipped: initdb not found (Debian: apt-get install postgresql)")
            return 0
        cluster = throwaway.start()
        url = cluster.url()
    port = throwaway.free_port()
    receiver = subprocess.Popen(
        [sys.executable, __file__, "--receiver", str(port), "--delay-ms", str(args.delay_ms)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT)
    try:
        PgStore.open(url).close()  # migrate
        deadline = time.monotonic() + 30
        while True:
            try:
                _stats(port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        print(f"rows: {args.rows}")
        print(f"receiver_delay_ms: {args.delay_ms:g}")
        print(f"concurrency_per_process: {args.concurrency}")
        print(f"load_1min: {os.getloadavg()[0]:.2f}")
        results = {}
        for n in (1, 2):
            r = run_round(url, n, args.rows, port, args.concurrency)
            results[n] = r
            print(f"processes_{n}_rows_per_s: {r['rows_per_s']:.0f}")
            print(f"processes_{n}_elapsed_s: {r['elapsed_s']:.2f}")
            print(f"processes_{n}_duplicates: {r['duplicates']}")
            print(f"processes_{n}_not_sent: {r['not_sent']}")
            print(f"processes_{n}_smallest_share: {r['min_share']:.2f}")
        print(f"ratio_2_over_1: {results[2]['rows_per_s'] / results[1]['rows_per_s']:.2f}")
        bad = any(r["duplicates"] or r["not_sent"] for r in results.values())
        return 1 if bad else 0
    finally:
        receiver.terminate()
        receiver.wait(10)
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
