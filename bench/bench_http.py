"""HTTP load benchmark (issue 5): the sequences (or events) list, an FDSN text query, a ceiling.

Fills a store with 5,000 real events (Tibet, Santorini, Campi Flegrei, Ridgecrest 2019) and
their typed sequences, serves ``make_app`` from a subprocess on
127.0.0.1 (rate limiting off, no access log, as the daemon runs it), and drives it with
``wrk -t2 -c64 -d30s``: (a) /api/v1/sequences, or /api/v1/events?limit=100 while there is no
sequences route; (b) one FDSN text query of 1,000 events, repeated (served from the response
cache); (b2) 1,000-event FDSN text queries from random start times (cache misses);
(c) a trivial aiohttp handler in its own subprocess, the ceiling.

    .venv/bin/python bench/bench_http.py [--duration 30] [--events 5000]

Prints ``key: value`` lines. Goal: >= 2,000 req/s and p99 <= 50 ms on the sequences list.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "fixtures" / "catalogs"
# Several real regions (many sequences), then Ridgecrest 2019 up to the event count.
REGIONS = ("cenc-tibet-events-from-news.csv", "usgs-lhasa-300km-m5-1905-2018.csv",
           "usgs-santorini-amorgos-swarm-2025.tsv", "ingv-campi-flegrei-2018-2024-fdsn-text.txt")
FILLER = "scedc-ridgecrest-2019.csv"
GOAL_RPS = 2000.0
GOAL_P99_MS = 50.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fill_store(db: Path, n_events: int) -> str:
    """Ingest real catalogues up to ``n_events`` reports, type sequences; returns a read token."""
    sys.path.insert(0, str(ROOT))
    from quakealert.formats.catalog import read_catalog_file
    from quakealert.store.auth import create_token
    from quakealert.store.sqlite import Store

    reports = []
    for name in REGIONS:
        reports += read_catalog_file(DATA / name).reports
    reports = reports[:n_events]
    reports += read_catalog_file(DATA / FILLER, source="scedc").reports[: n_events - len(reports)]
    store = Store.open(db)
    now = datetime.now(UTC)
    store.ingest(reports, now=now)
    try:
        from quakealert.core.classify import classify_events, sequence_to_json
        from quakealert.core.sequences import SequenceParams
        from quakealert.store.sequences import save_sequence
    except ImportError as err:
        print(f"note: no sequences ({err})")
    else:
        t0 = time.perf_counter()
        typed = classify_events(store.events(limit=None), SequenceParams(), now)
        for seq, cls in typed:
            save_sequence(store.conn, sequence_to_json(seq, cls, now), now)
        print(f"sequences: {len(typed)}")
        print(f"sequences_build_s: {time.perf_counter() - t0:.1f}")
    _, secret = create_token(store.conn, "read", "bench", now=now)
    store.close()
    return secret


def serve_app(db: str, port: int) -> None:
    """Subprocess: the quakealert app over ``db`` (rate limiting off, no access log)."""
    sys.path.insert(0, str(ROOT))
    from aiohttp import web

    from quakealert.api.app import make_app
    from quakealert.config import Settings

    settings = Settings(store_path=Path(db), sections={"ratelimit": {"enabled": False}})
    web.run_app(make_app(settings), host="127.0.0.1", port=port, access_log=None,
                print=None)


def serve_trivial(port: int) -> None:
    """Subprocess: one aiohttp handler returning a short JSON body, the ceiling."""
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/", hello)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, __file__, *args, "--port", str(port)])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server {args[0]} exited with {proc.returncode}") from None
            time.sleep(0.1)
    proc.terminate()
    raise SystemExit(f"server {args[0]} did not listen on {port}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def fetch(url: str, token: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


# Each wrk thread asks for 1,000 events from a random start time: distinct queries, so the
# service's response cache rarely hits and the store + writer cost is measured.
VARYING_LUA = """
local counter = 0
function setup(thread) counter = counter + 1; thread:set("id", counter) end
function init(args) math.randomseed(os.time() * 1000 + id) end
local starts = {%s}
function request()
  return wrk.format("GET", "%s" .. starts[math.random(1, #starts)])
end
"""


def varying_script(path: Path, prefix: str, starts: list[str]) -> Path:
    body = VARYING_LUA % (",".join(f'"{s}"' for s in starts), prefix)
    path.write_text(body, encoding="utf-8")
    return path


def run_wrk(url: str, duration_s: int, threads: int, connections: int,
            token: str | None = None, script: Path | None = None) -> dict[str, float]:
    """One wrk run: requests/s, p50/p99 latency (ms), non-2xx count."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s", "--latency",
           "--timeout", "10s"]
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True,
                         timeout=duration_s + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {"rps": rps, "p50_ms": p50, "p99_ms": p99, "non_2xx": float(bad.group(1)) if bad else 0.0,
            "socket_errors": 0.0 if errors is None else float(sum(
                int(x) for x in re.findall(r"\d+", errors.group(0))))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=30, help="seconds per wrk run (default 30)")
    ap.add_argument("--events", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)  # the parsers log skipped rows as warnings
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk")

    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp:
        db = Path(tmp) / "bench.sqlite"
        t0 = time.perf_counter()
        token = fill_store(db, args.events)
        print(f"store_fill_s: {time.perf_counter() - t0:.1f}")
        app_port, trivial_port = free_port(), free_port()
        app = start(["serve-app", str(db)], app_port)
        trivial = start(["serve-trivial"], trivial_port)
        try:
            base = f"http://127.0.0.1:{app_port}"
            status, body = fetch(f"{base}/healthz")
            print(f"events: {json.loads(body)['events']}")
            seq_url = f"{base}/api/v1/sequences"
            status, body = fetch(seq_url, token)
            if status == 200:
                list_name, list_url = "sequences", seq_url
            else:
                list_name, list_url = "events_limit_100", f"{base}/api/v1/events?limit=100"
                print(f"note: /api/v1/sequences answered {status}; measuring "
                      "/api/v1/events?limit=100 instead")
                status, body = fetch(list_url, token)
            print(f"a_target: {list_url.removeprefix(base)}")
            print(f"a_body_bytes: {len(body)}")
            fdsn_url = f"{base}/fdsnws/event/1/query?format=text&limit=1000"
            status, body = fetch(fdsn_url)
            rows = len(body.decode().splitlines()) - 1
            print(f"b_target: {fdsn_url.removeprefix(base)}")
            print(f"b_rows: {rows}")
            print(f"b_body_bytes: {len(body)}")
            if status != 200 or rows != min(1000, args.events):
                raise SystemExit(f"FDSN query gave {status} with {rows} rows")
            # Start times of events that still have >= 1,000 events after them (time-asc).
            status, body = fetch(f"{base}/fdsnws/event/1/query?format=text&orderby=time-asc")
            times = [ln.split("|")[1] for ln in body.decode().splitlines()[1:]]
            starts = times[: max(1, len(times) - 1000)]
            prefix = "/fdsnws/event/1/query?format=text&orderby=time-asc&limit=1000&starttime="
            script = varying_script(Path(tmp) / "varying.lua", prefix, starts)
            print(f"b2_target: {prefix}<one of {len(starts)} event times>")
            results = {}
            for key, url, tok, lua in (
                ("a", list_url, token, None),
                ("b", fdsn_url, None, None),
                ("b2", base, None, script),
                ("c", f"http://127.0.0.1:{trivial_port}/", None, None),
            ):
                results[key] = r = run_wrk(url, args.duration, args.threads, args.connections,
                                           tok, lua)
                # Handlers queued by the last run still finish after wrk hangs up; let them
                # drain so they do not count against the next target.
                time.sleep(2)
                fetch(f"{base}/healthz")
                for k, v in r.items():
                    print(f"{key}_{k}: {v:.1f}")
        finally:
            stop(app)
            stop(trivial)
    a, c = results["a"], results["c"]
    print(f"a_name: {list_name}")
    for key in ("a", "b", "b2"):
        print(f"ratio_{key}_to_ceiling: {results[key]['rps'] / c['rps']:.3f}")
    met = a["rps"] >= GOAL_RPS and a["p99_ms"] <= GOAL_P99_MS and a["non_2xx"] == 0
    print(f"goal_a: >= {GOAL_RPS:.0f} req/s and p99 <= {GOAL_P99_MS:.0f} ms")
    print(f"goal_a_met: {'yes' if met else 'no'}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve-app":
        serve_app(sys.argv[2], int(sys.argv[sys.argv.index("--port") + 1]))
    elif len(sys.argv) > 1 and sys.argv[1] == "serve-trivial":
        serve_trivial(int(sys.argv[sys.argv.index("--port") + 1]))
    else:
        main()
