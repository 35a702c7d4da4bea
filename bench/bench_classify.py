"""Sequence engine benchmarks; prints `key: value` lines.

1. Classify the whole Ridgecrest file end to end (read + group + type).
2. Membership: batch grouping (``build_sequences``) vs. the event-by-event engine vs. a plain
   O(n^2) implementation of the same rule (identical output), and batch vs. event by event on
   the real Ridgecrest + Cahuilla catalogues and on the first --compare synthetic events.
3. Incremental upsert of one new event into an engine holding 5 years of regional background.
4. 1,000,000 synthetic events resampled from the real catalogues across many regions, grouped
   in one batch and every sequence typed (issue 3 goal: <= 60 s and <= 2 GB).

    .venv/bin/python bench/bench_classify.py [--events 1000000] [--compare 100000]
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import resource
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from quakealert.core.classify import classify_events, classify_in
from quakealert.core.sequences import (
    SequenceParams,
    build_sequences,
    build_sequences_incremental,
    events_from_reports,
    link_pairs_bruteforce,
)
from quakealert.formats.catalog import read_catalog_file

CATALOGS = ROOT / "tests" / "fixtures" / "catalogs"


GOAL_S = 60.0
GOAL_MB = 2048.0


def out(key: str, value: object) -> None:
    print(f"{key}: {value}", flush=True)


def membership(engine) -> list[list[str]]:
    return sorted(sorted(e.id for e in s.events) for s in engine.sequences())


def batch_vs_incremental(name: str, events: list) -> None:
    """Group ``events`` both ways: times, speed-up and whether the sequences are identical."""
    t0 = time.perf_counter()
    batch = build_sequences(events)
    t1 = time.perf_counter()
    incr = build_sequences_incremental(events)
    t2 = time.perf_counter()
    same = membership(batch) == membership(incr) and batch.sequence_ids() == incr.sequence_ids()
    out(f"{name}_events", len(events))
    out(f"{name}_batch_s", round(t1 - t0, 3))
    out(f"{name}_incremental_s", round(t2 - t1, 3))
    out(f"{name}_speedup", round((t2 - t1) / (t1 - t0), 1))
    out(f"{name}_identical", same)


def load(name: str):
    return events_from_reports(read_catalog_file(CATALOGS / name).reports)


def bench_ridgecrest() -> list:
    t0 = time.perf_counter()
    events = load("scedc-ridgecrest-2019.csv")
    t1 = time.perf_counter()
    now = max(e.origin_at for e in events)
    results = classify_events(events, SequenceParams(), now)
    t2 = time.perf_counter()
    big = max(results, key=lambda r: len(r[0].events))
    out("ridgecrest_events", len(events))
    out("ridgecrest_read_s", round(t1 - t0, 3))
    out("ridgecrest_group_and_classify_s", round(t2 - t1, 3))
    out("ridgecrest_end_to_end_s", round(t2 - t0, 3))
    out("ridgecrest_type", big[1].type)
    return events


def synthetic(base: list, n: int, seed: int = 1) -> list:
    """Resample real events into many regions: each copy is shifted in space and time, jittered."""
    rng = random.Random(seed)
    per = len(base)
    copies = (n + per - 1) // per
    evs = []
    for k in range(copies):
        dlat, dlon = rng.uniform(-50, 50), rng.uniform(-170, 170)
        dt = timedelta(days=rng.uniform(0, 3650))
        for e in base:
            if len(evs) >= n:
                break
            lat = max(-80.0, min(80.0, e.latitude + dlat + rng.gauss(0, 0.01)))
            lon = (e.longitude + dlon + rng.gauss(0, 0.01) + 180) % 360 - 180
            evs.append(dataclasses.replace(
                e, id=f"s{k}-{e.id}", latitude=lat, longitude=lon,
                origin_at=e.origin_at + dt + timedelta(seconds=rng.gauss(0, 60))))
    return evs


def bench_million(base: list, n: int, compare: int) -> None:
    evs = synthetic(base, n)
    if compare:
        batch_vs_incremental("synthetic_subset", evs[:compare])
    t0 = time.perf_counter()
    engine = build_sequences(evs)
    t1 = time.perf_counter()
    seqs = engine.sequence_ids()
    # type every sequence (forecast/context only where M1 is large enough, by the params)
    end = max(e.origin_at for e in evs)
    for sid in seqs:
        classify_in(engine, sid, end)
    t2 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out("million_events", len(engine))
    out("million_sequences", len(seqs))
    out("million_group_s", round(t1 - t0, 2))
    out("million_classify_s", round(t2 - t1, 2))
    out("million_total_s", round(t2 - t0, 2))
    out("peak_rss_mb", round(rss, 1))
    out("goal", f"<= {GOAL_S:.0f} s and <= {GOAL_MB:.0f} MB")
    out("goal_met", "yes" if t2 - t0 <= GOAL_S and rss <= GOAL_MB else "no")


def bench_incremental(base_cenc: list, ridge: list) -> None:
    # 5 years of regional background: Ridgecrest events spread over 5 years in the same box
    rng = random.Random(7)
    start = min(e.origin_at for e in ridge)
    bg = [dataclasses.replace(e, id=f"bg-{e.id}",
                              origin_at=start + timedelta(days=rng.uniform(0, 5 * 365.25)))
          for e in ridge]
    engine = build_sequences(bg)
    end = max(e.origin_at for e in bg)
    times = []
    for i in range(300):
        e = ridge[rng.randrange(len(ridge))]
        new = dataclasses.replace(e, id=f"new-{i}", origin_at=end + timedelta(minutes=i))
        t0 = time.perf_counter()
        engine.upsert(new)
        times.append(time.perf_counter() - t0)
    out("incremental_background_events", len(bg))
    out("incremental_upsert_median_ms", round(statistics.median(times) * 1000, 3))
    out("incremental_upsert_p95_ms", round(sorted(times)[int(0.95 * len(times))] * 1000, 3))
    sid = engine.sequence_of("new-0")
    t0 = time.perf_counter()
    classify_in(engine, sid, end + timedelta(hours=6))
    out("incremental_classify_touched_sequence_ms", round((time.perf_counter() - t0) * 1000, 1))
    out("incremental_touched_sequence_events", len(engine.sequence(sid).events))


def bench_bruteforce(ridge: list) -> None:
    subset = sorted(ridge, key=lambda e: e.origin_at)[::5][:4000]
    params = SequenceParams()
    t0 = time.perf_counter()
    engine = build_sequences(subset, params)
    t1 = time.perf_counter()
    incr = build_sequences_incremental(subset, params)
    t2 = time.perf_counter()
    brute = link_pairs_bruteforce(subset, params)
    t3 = time.perf_counter()
    want = sorted(sorted(g) for g in brute)
    out("bruteforce_subset_events", len(subset))
    out("membership_batch_s", round(t1 - t0, 3))
    out("membership_incremental_s", round(t2 - t1, 3))
    out("membership_bruteforce_s", round(t3 - t2, 3))
    out("membership_speedup_batch_vs_bruteforce", round((t3 - t2) / (t1 - t0), 1))
    out("membership_identical", membership(engine) == want == membership(incr))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="synthetic events (1,000,000)")
    ap.add_argument("--compare", type=int, default=100_000,
                    help="synthetic events also grouped event by event (0: skip)")
    args = ap.parse_args()
    ridge = bench_ridgecrest()
    bench_bruteforce(ridge)
    cah = load("scedc-cahuilla-swarm-2016-2019.csv")
    batch_vs_incremental("real", ridge + cah)
    bench_incremental(load("cenc-tibet-events-from-news.csv"), ridge)
    bench_million(ridge + cah, args.events, args.compare)


if __name__ == "__main__":
    main()
