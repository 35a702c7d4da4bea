"""Priority under backlog (issue 9 item 2): a real daemon polls a catalogue on 127.0.0.1 that
answers 20,000 distant events (the real SCSN Ridgecrest 2019 catalogue, tests/fixtures) and an
M6.0 near Lhasa in one response; 50 residents in Lhasa have webhooks on a local receiver.

Measures, from the moment the response was served: the M6.0's notice stored, the first resident's
webhook received, every resident's; /healthz asked every 100 ms throughout (worst and median
answer time); all far events processed; SIGTERM to exit. Goals: notice <= 10 s, /healthz <= 1 s.
`--rows 100000` repeats the 100k-row case (the Ridgecrest rows cycled with new ids).
Prints plain ``key: value`` lines.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web

from quakealert.formats.catalog import read_catalog_file
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import NewSubscriber, add_subscribers

REPO = Path(__file__).resolve().parent.parent
RIDGECREST = REPO / "tests" / "fixtures" / "catalogs" / "scedc-ridgecrest-2019.csv"
RESIDENTS = 50
HEADER = ("#EventID|Time|Latitude|Longitude|Depth/km|Author|Catalog|Contributor|ContributorID|"
          "MagType|Magnitude|MagAuthor|EventLocationName|EventType")


def body(rows: int, m6_at: datetime) -> bytes:
    base = read_catalog_file(RIDGECREST).reports
    lines = [HEADER]
    for k in range(rows):
        r = base[k % len(base)]
        t = r.origin_at + timedelta(days=150 * (k // len(base)))
        lines.append(f"{r.source_id}-{k}|{t.strftime('%Y-%m-%dT%H:%M:%S.%f')}|{r.latitude}|"
                     f"{r.longitude}|{r.depth_km}|SCSN|SCEDC|SCEDC|{r.source_id}-{k}|"
                     f"{r.mag_type}|{r.magnitude}|SCSN|Ridgecrest, CA|earthquake")
    lines.append(f"qa2026m6|{m6_at.strftime('%Y-%m-%dT%H:%M:%S.%f')}|29.85|92.25|10|QA|QA|QA|"
                 "qa2026m6|Mw|6.0|QA|Maizhokunggar, Xizang|earthquake")
    return ("\n".join(lines) + "\n").encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scalar(db: Path, sql: str) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return int(conn.execute(sql).fetchone()[0] or 0)
    except sqlite3.OperationalError:  # not migrated yet
        return 0
    finally:
        conn.close()


async def run(rows: int, tmp: Path) -> dict[str, float]:
    payload = body(rows, datetime.now(UTC) - timedelta(minutes=1))
    served: list[float] = []
    hooks: dict[str, float] = {}

    async def fdsn(request: web.Request) -> web.Response:
        served.append(time.monotonic())
        return web.Response(body=payload, content_type="text/plain")

    async def hook(request: web.Request) -> web.Response:
        data = json.loads(await request.read())
        if data["event_id"]:
            hooks.setdefault(request.match_info["name"], time.monotonic())
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/q", fdsn)
    app.router.add_post("/hook/{name}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    cat_port, api_port = free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", cat_port).start()
    db = tmp / f"b{rows}.sqlite"
    store = Store.open(db)
    add_subscribers(store.conn, [NewSubscriber(29.65, 91.13, ("zh", "bo"), "webhook",
                                               f"http://127.0.0.1:{cat_port}/hook/r{i}",
                                               secret="s" * 20) for i in range(RESIDENTS)],
                    now=datetime.now(UTC))
    store.close()
    cfg = tmp / f"b{rows}.toml"
    cfg.write_text(f'[store]\npath = "{db}"\nvar_dir = "{tmp}"\n[api]\nport = {api_port}\n'
                   f'[[sources]]\nname = "node"\nkind = "fdsn"\n'
                   f'url = "http://127.0.0.1:{cat_port}/q"\ninterval_s = 3600\njitter_s = 0\n'
                   "timeout_s = 60\n[webpush]\nallow_insecure_endpoints = true\n")
    log = (tmp / f"b{rows}.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "quakealert", "run", "--config", str(cfg), cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=asyncio.subprocess.DEVNULL,
        stderr=log)
    health: list[float] = []
    out: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + 600
            far_done = None
            while time.monotonic() < deadline:
                t = time.monotonic()
                try:
                    async with session.get(f"http://127.0.0.1:{api_port}/healthz",
                                           timeout=aiohttp.ClientTimeout(total=30)) as resp:
                        await resp.read()
                    if served:
                        health.append(time.monotonic() - t)
                except aiohttp.ClientConnectorError:
                    pass
                if served and "notice_s" not in out and scalar(
                        db, "SELECT count(*) FROM notices") > 0:
                    out["notice_s"] = time.monotonic() - served[0]
                if len(hooks) == RESIDENTS and "all_hooks_s" not in out:
                    out["first_hook_s"] = min(hooks.values()) - served[0]
                    out["all_hooks_s"] = max(hooks.values()) - served[0]
                if (served and far_done is None and "all_hooks_s" in out
                        and scalar(db, "SELECT count(*) FROM work") == 0):
                    far_done = time.monotonic() - served[0]
                    break
                await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - t)))
            out["backlog_done_s"] = far_done if far_done is not None else float("nan")
        t = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
        out["sigterm_exit_s"] = time.monotonic() - t
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
        await runner.cleanup()
    out["healthz_max_s"] = max(health, default=float("nan"))
    out["healthz_median_s"] = statistics.median(health) if health else float("nan")
    out["healthz_samples"] = len(health)
    out["exit_code"] = float(proc.returncode or 0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default="20000", help="comma-separated distant row counts")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        for rows in [int(x) for x in args.rows.split(",")]:
            r = asyncio.run(run(rows, Path(d)))
            for k, v in r.items():
                print(f"rows_{rows}_{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
            print(f"rows_{rows}_goal_notice_10s_met: {r.get('notice_s', 1e9) <= 10}")
            print(f"rows_{rows}_goal_healthz_1s_met: {r['healthz_max_s'] <= 1}")
    print(f"at: {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")


if __name__ == "__main__":
    main()
