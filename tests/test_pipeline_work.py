"""Durable processing (issue 9): ingest queues the pipeline's work in its own transaction, the
pipeline ends it in the transaction of its decisions, and whatever is left is resumed; events
that can concern residents go first, far ones are typed without the resident policy."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quakealert.config import DEFAULT_SCENARIO, Settings
from quakealert.core.classify import classify_in
from quakealert.errors import ConfigError
from quakealert.formats.catalog import read_catalog_file
from quakealert.model import Report
from quakealert.service.pipeline import Pipeline, WorkParams
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import NewSubscriber, add_subscribers

FIXTURES = Path(__file__).parent / "fixtures" / "catalogs"
LHASA = (29.65, 91.13)
NOW = datetime(2024, 11, 9, tzinfo=UTC)


def maizhokunggar() -> list[Report]:
    """The 2024 Maizhokunggar swarm's three M>=4 quakes (M4.1 10-31, M4.5 11-06 UTC, M4.0
    11-08) from the bundled real CENC list."""
    rows = [r for r in read_catalog_file(DEFAULT_SCENARIO).reports
            if datetime(2024, 10, 30, tzinfo=UTC) <= r.origin_at < datetime(2024, 11, 9, tzinfo=UTC)
            and (r.magnitude or 0) >= 4.0]
    assert [r.magnitude for r in rows] == [4.1, 4.5, 4.0]
    return rows


def scenario() -> list[Report]:
    return maizhokunggar()


def ridgecrest(n: int) -> list[Report]:
    return read_catalog_file(FIXTURES / "scedc-ridgecrest-2019.csv").reports[:n]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store.open(tmp_path / "q.sqlite")
    add_subscribers(s.conn, [NewSubscriber(*LHASA, ("zh", "bo"), "webhook",
                                           f"https://hooks.example.org/{i}", secret="s" * 20)
                             for i in range(3)], now=NOW)
    return s


def pipeline(store: Store) -> Pipeline:
    p = Pipeline(store, Settings(store_path=Path(str(store.path)), var_dir=Path("/nonexistent")),
                 exercise=True)
    p.load()
    p.clock = NOW  # live, as the daemon runs it: old events are decided now, not replayed
    return p


def count(store: Store, sql: str) -> int:
    return int(store.conn.execute(sql).fetchone()[0])


def test_ingest_queues_each_changed_event_in_its_transaction(store: Store) -> None:
    """Every created event is queued "new" with the batch; an unchanged re-send queues nothing."""
    result = store.ingest(scenario(), now=NOW)
    rows = store.conn.execute("SELECT event_id, trigger FROM work ORDER BY origin_at").fetchall()
    assert [(r[0], r[1]) for r in rows] == [(e, "new") for e in sorted(
        result.created, key=lambda e: store.event(e).origin_at)]
    store.conn.execute("DELETE FROM work")
    assert store.ingest(scenario(), now=NOW).unchanged == 3
    assert count(store, "SELECT count(*) FROM work") == 0


def test_a_failed_batch_queues_nothing(store: Store) -> None:
    """The work rows are part of the batch's transaction: a batch that fails leaves neither."""
    bad = [*scenario(), replace(scenario()[0], source_id="x", latitude=float("nan"))]
    with pytest.raises(sqlite3.Error):
        store.conn.execute("CREATE TRIGGER fail BEFORE INSERT ON work BEGIN"
                           " SELECT RAISE(ABORT, 'disk full'); END")
        store.ingest(bad, now=NOW)
    assert count(store, "SELECT count(*) FROM events") == 0
    assert count(store, "SELECT count(*) FROM work") == 0


def test_work_left_by_a_crash_is_resumed_as_new(store: Store) -> None:
    """Stored, never processed (the process died): a new pipeline over the same store decides
    it as a new quake, the residents' first felt report, and the queue ends empty."""
    store.ingest(scenario(), now=NOW)
    assert count(store, "SELECT count(*) FROM decisions") == 0
    p = pipeline(store)  # load() already holds the events, as after a restart
    p.process_work(now=NOW)
    kinds = [r[0] for r in store.conn.execute(
        "SELECT kind FROM notices ORDER BY created_at")]
    assert kinds[:2] == ["official_report+felt_guidance", "swarm_advisory"]
    assert count(store, "SELECT count(*) FROM work") == 0
    assert count(store, "SELECT count(*) FROM outbox") == 3 * len(kinds)


def test_a_failure_in_processing_keeps_the_work(store: Store) -> None:
    """Decisions, notices and outbox rows are committed with the end of the work item, or not
    at all: an error mid-way leaves the item queued and nothing half-written."""
    store.ingest(scenario(), now=NOW)
    p = pipeline(store)
    store.conn.execute("CREATE TRIGGER fail BEFORE INSERT ON outbox BEGIN"
                       " SELECT RAISE(ABORT, 'disk full'); END")
    p.process_work(now=NOW)
    # The M4.1 (felt by nobody: no notice, no outbox row) is done; the M4.5 failed and stays.
    failed = store.conn.execute("SELECT event_id, failures, last_error FROM work").fetchall()
    assert [r[0][:16] for r in failed] == ["qa20241106201953"]
    assert failed[0][1] == 1 and "disk full" in failed[0][2]
    assert count(store, "SELECT count(*) FROM notices") == 0
    assert count(store, "SELECT count(*) FROM decisions WHERE send = 1") == 0
    store.conn.execute("DROP TRIGGER fail")
    p.process_work(now=NOW)
    assert count(store, "SELECT count(*) FROM work") == 0
    assert count(store, "SELECT count(*) FROM outbox") > 0


def test_an_event_that_always_fails_is_parked(store: Store) -> None:
    """After MAX_FAILURES attempts a poison event is parked with its error; later work goes on."""
    from quakealert.service.pipeline import MAX_FAILURES

    store.ingest(scenario(), now=NOW)
    p = pipeline(store)
    store.conn.execute("CREATE TRIGGER fail BEFORE INSERT ON outbox BEGIN"
                       " SELECT RAISE(ABORT, 'poison'); END")
    for _ in range(MAX_FAILURES):
        p.process_work(now=NOW)
    assert p.pending_work() == 0
    parked = store.conn.execute("SELECT failures, priority FROM work").fetchall()
    assert [tuple(r) for r in parked] == [(MAX_FAILURES, -1)]


def test_near_events_first_far_ones_typed_without_policy(store: Store) -> None:
    """Behind 1,500 real Ridgecrest events, the Maizhokunggar quakes are processed first; the
    far ones are still grouped and typed into stored sequences, with no resident decisions."""
    store.ingest([*ridgecrest(1500), *scenario()], now=NOW)
    p = pipeline(store)
    p.prioritise()
    first = {r[0] for r in store.conn.execute("SELECT event_id FROM work WHERE priority = 2")}
    assert first == {r[0] for r in store.conn.execute(
        "SELECT id FROM events WHERE id LIKE 'qa2024%'")}
    # Large elsewhere: after the near ones, before the far ones.
    large = {r[0] for r in store.conn.execute("SELECT event_id FROM work WHERE priority = 1")}
    assert large == {r[0] for r in store.conn.execute(
        "SELECT id FROM events WHERE magnitude >= 6")}
    assert len(large) == 1  # the Ridgecrest M6.4 foreshock (2019-07-04) is among the 1,500
    assert count(store, "SELECT count(*) FROM work WHERE priority = 0") == 1499
    p.process_work(now=NOW, budget_s=1.0)
    assert count(store, "SELECT count(*) FROM notices") >= 1
    while p.pending_work():
        p.process_work(now=NOW, budget_s=1.0)
    far = count(store, "SELECT count(*) FROM sequences WHERE id NOT LIKE 'seq-qa2024%'")
    assert far >= 1
    # Only the large one was put to the resident policy (not felt in Lhasa: one aggregate row).
    decided = {r[0] for r in store.conn.execute(
        "SELECT DISTINCT event_id FROM decisions WHERE event_id NOT LIKE 'qa2024%'")}
    assert decided == large


def test_a_far_sequence_typed_now_and_then_is_stored_whole_at_the_end(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A far sequence growing through a backlog is typed at most every FAR_RETYPE_S (here:
    once, then never again during the backlog), yet once the queue is empty its stored row has
    every member and the type the engine gives it."""
    monkeypatch.setattr("quakealert.service.pipeline.work.FAR_RETYPE_S", 3600.0)
    store.ingest(ridgecrest(1500), now=NOW)
    p = pipeline(store)
    typed: list[str] = []
    batches = []
    process_far = p.process_far
    monkeypatch.setattr(p, "process_far", lambda *a, **k: (
        batches.append(1), process_far(*a, **k))[1])
    evaluate = p.evaluate
    monkeypatch.setattr(p, "evaluate", lambda seq_id, *a, **k: (
        typed.append(seq_id), evaluate(seq_id, *a, **k))[1])
    while p.pending_work():
        p.process_work(now=NOW, budget_s=0.2)
    largest = max(p.engine.sequence_ids(), key=lambda i: len(p.engine.sequence(i).events))
    # once by process_far, once for the M6.4 (large: the policy's path); not once per batch
    assert typed.count(largest) <= 2 and len(batches) > 5
    row = store.conn.execute("SELECT type, n_events FROM sequences WHERE id = ?",
                             (largest,)).fetchone()
    assert row["n_events"] == len(p.engine.sequence(largest).events) > 1000
    assert row["type"] == classify_in(p.engine, largest, p.clock).type


def test_large_and_regional_events_count_wherever_residents_are(tmp_path: Path) -> None:
    """Without residents, an M6 anywhere and an event inside a configured region go first."""
    s = Store.open(tmp_path / "q.sqlite")
    settings = Settings(store_path=tmp_path / "q.sqlite", var_dir=tmp_path, sections={
        "pipeline": {"regions": [{"latitude": 29.65, "longitude": 91.13, "radius_km": 300}]}})
    p = Pipeline(s, settings)
    import numpy as np
    got = p.concerns(np.array([35.7, 29.85, 35.7]), np.array([-117.5, 92.25, -117.5]),
                     np.array([8.0, 10.0, 8.0]), np.array([7.1, 3.0, 4.0]))
    assert got.tolist() == [True, True, False]
    s.close()


@pytest.mark.parametrize("section", [
    {"regions": [{"latitude": 29.6}]}, {"chunk_s": 0}, {"chunk": 3},
    {"regions": [{"latitude": 1, "longitude": 2, "radius_km": -5}]}])
def test_bad_pipeline_table_is_a_config_error(section: dict[str, object]) -> None:
    """A misspelt or impossible [pipeline] setting stops start-up."""
    with pytest.raises(ConfigError):
        WorkParams.from_section(section)


def test_time_order_is_kept_among_near_events(store: Store) -> None:
    """Near events are processed oldest first, whatever order they were stored in."""
    reports = scenario()
    for r in reversed(reports):
        store.ingest([r], now=NOW + timedelta(seconds=1))
    p = pipeline(store)
    p.process_work(now=NOW)
    kinds = [r[0] for r in store.conn.execute("SELECT kind FROM notices ORDER BY created_at")]
    assert kinds[:2] == ["official_report+felt_guidance", "swarm_advisory"]
