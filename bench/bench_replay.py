"""Replay timing and the start-up back-fill; prints `key: value` lines.

1. Lateness of ReplaySource.run on the wall clock: the bundled swarm (34 rows from 2024-10-20)
   played at a speed that fits it into a few seconds; each row's delivery time minus its scaled
   origin time (issue 12 §7: a replay keeps time, independent of interval_s).
2. Absorbing the bundled background (166 quakes, 2015-2024) into an empty pipeline: store,
   sequence and type, as `make run` does before play.
3. Parsing CENC catalogue pages (formats/cenc_subao.py): rows per second.

    .venv/bin/python bench/bench_replay.py [--seconds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quakealert.config import DEFAULT_SCENARIO, DEFAULT_SCENARIO_START, Settings, SourceConfig
from quakealert.formats.catalog import read_catalog_file
from quakealert.formats.cenc_subao import parse_subao_html
from quakealert.formats.rows import parse_utc
from quakealert.service.pipeline import Pipeline
from quakealert.sources.replay import ReplaySource
from quakealert.store.sqlite import Store
from tests.sources.fake_subao import page_html, scenario_rows


async def lateness(seconds: float) -> list[float]:
    start = parse_utc(DEFAULT_SCENARIO_START)
    last = max(r.origin_at for r in read_catalog_file(DEFAULT_SCENARIO).reports)
    span_s = (last - start).total_seconds()
    speed = span_s / seconds
    src = ReplaySource(SourceConfig(name="bench", kind="replay", path=str(DEFAULT_SCENARIO),
                                    speed=speed, interval_s=60.0,
                                    params={"start": DEFAULT_SCENARIO_START}))
    loop = asyncio.get_running_loop()
    late: list[float] = []
    begun: list[float] = []

    async def poll() -> None:
        body = await src.fetch(None, None)
        now = loop.time()
        if not begun:
            begun.append(now)
        for r in src.parse(body).reports:
            due = (r.origin_at - start).total_seconds() / speed
            late.append(now - begun[0] - due)

    await src.run(poll, asyncio.Event())
    print(f"replay_speed_x: {speed:.0f}")
    return late


def absorb_s() -> tuple[float, int]:
    start = parse_utc(DEFAULT_SCENARIO_START)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "q.sqlite")
        pipeline = Pipeline(store, Settings(store_path=Path(tmp) / "q.sqlite", var_dir=Path(tmp)))
        src = ReplaySource(SourceConfig(name="b", kind="replay", path=str(DEFAULT_SCENARIO),
                                        params={"start": DEFAULT_SCENARIO_START}))
        t = time.perf_counter()
        parsed = asyncio.run(src.backfill(None, start, start))
        pipeline.absorb(store.ingest(parsed.reports, now=start), at=start)
        took = time.perf_counter() - t
        store.close()
    return took, len(parsed.reports)


def parse_rate() -> float:
    rows = scenario_rows()
    pages = [page_html(rows[i:i + 20], i // 20 + 1, 10).encode() for i in range(0, 200, 20)]
    t = time.perf_counter()
    n = 0
    for _ in range(20):
        for body in pages:
            n += len(parse_subao_html(body).result.reports)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=6.0)
    args = ap.parse_args()
    late = asyncio.run(lateness(args.seconds))
    print(f"replay_rows: {len(late)}")
    print(f"replay_lateness_median_ms: {statistics.median(late) * 1000:.2f}")
    print(f"replay_lateness_max_ms: {max(late) * 1000:.2f}")
    print(f"replay_early_rows: {sum(1 for x in late if x < -0.001)}")
    took, n = absorb_s()
    print(f"absorb_background_events: {n}")
    print(f"absorb_background_s: {took:.2f}")
    print(f"subao_parse_rows_per_s: {parse_rate():.0f}")


if __name__ == "__main__":
    main()
