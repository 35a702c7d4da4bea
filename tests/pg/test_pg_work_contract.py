"""The pipeline's work queue (schema 009): one contract on both backends — what ingest queues,
the order the pipeline takes it in, failures and parking, the end of an item — and, on
PostgreSQL, that an item being processed on one connection is skipped by another."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from quakealert.formats.catalog import read_catalog_file
from quakealert.model import Report
from quakealert.store.postgres import events as pg_events
from quakealert.store.postgres import work as pg_work
from tests.conftest import FIXTURES

CENC_LHASA = FIXTURES / "catalogs" / "cenc-export-lhasa-300km-2024.csv"
NOW = datetime(2024, 11, 20, tzinfo=UTC)


def queued(b, conn) -> list[str]:
    reports = [r for r in read_catalog_file(CENC_LHASA).reports
               if datetime(2024, 10, 20, tzinfo=UTC) <= r.origin_at < NOW]
    result = b.events.ingest(conn, reports, now=NOW)
    assert len(result.created) == len(reports) >= 10
    return sorted(result.created, key=lambda e: b.events.event(conn, e).origin_at)


def test_order_priorities_and_parking(store_backend):
    """Items come oldest first until placed; then near (2), large (1), far (0), with unplaced
    ones last; an item failing max_failures times is parked and leaves the queue."""
    b = store_backend
    conn = b.conn()
    ids = queued(b, conn)
    assert [r[0] for r in b.work.next_work(conn, 1000)] == ids
    assert {r[1] for r in b.work.next_work(conn, 1000)} == {"new"}
    assert [r[0] for r in b.work.unprioritised(conn, 3)] == ids[:3]
    first = b.work.unprioritised(conn, 1)[0]
    e = b.events.event(conn, ids[0])
    assert first[1:] == ("new", e.latitude, e.longitude, e.depth_km, e.magnitude)
    placed = {ids[0]: 0, ids[1]: 2, ids[2]: 1, ids[3]: 2}
    assert b.work.set_priorities(conn, list(placed.items())) == 4
    order = [(r[0], r[3]) for r in b.work.next_work(conn, 1000)]
    assert order[:4] == [(ids[1], 2), (ids[3], 2), (ids[2], 1), (ids[0], 0)]
    assert [p for _, p in order[4:]] == [None] * (len(ids) - 4)
    assert [r[0] for r in b.work.unprioritised(conn)] == ids[4:]
    for k in range(3):
        b.work.fail_work(conn, ids[1], f"ValueError: bad {k}", max_failures=3)
    assert ids[1] not in [r[0] for r in b.work.next_work(conn, 1000)]
    assert b.work.pending_work(conn) == len(ids) - 1
    assert b.work.parked_work(conn) == [{"event_id": ids[1], "trigger": "new", "failures": 3,
                                         "last_error": "ValueError: bad 2"}]


def test_finish_and_requeue(store_backend):
    """Ending items removes them; a revision of a finished event queues it again as
    "revised" and unplaced, while a revision of an event still queued keeps "new"."""
    b = store_backend
    conn = b.conn()
    ids = queued(b, conn)
    b.work.set_priorities(conn, [(ids[0], 2), (ids[1], 2)])
    with b.begin(conn):
        assert b.work.claim_work(conn, ids[0]) == "new"
        assert b.work.finish_work(conn, [ids[0]]) == 1
    assert b.work.claim_work(conn, ids[0]) is None
    assert b.work.finish_work(conn, []) == 0
    e0, e1 = b.events.event(conn, ids[0]), b.events.event(conn, ids[1])
    reports = [Report(c.source, c.source_id, c.origin_at, c.latitude, c.longitude, c.depth_km,
                      (c.magnitude or 0) + 0.2, c.mag_type, status=c.status, updated_at=NOW,
                      event_type=c.event_type) for e in (e0, e1) for c in e.contributors]
    b.events.ingest(conn, reports, now=NOW + timedelta(hours=1))
    rows = {r[0]: (r[1], r[2], r[3]) for r in b.work.next_work(conn, 1000)}
    assert rows[ids[0]] == ("revised", (NOW + timedelta(hours=1)).timestamp(), None)
    assert rows[ids[1]] == ("new", (NOW + timedelta(hours=1)).timestamp(), None)
    assert b.work.pending_work(conn) == len(ids)


def test_an_item_in_process_is_skipped_by_another_leader(pg_url):
    """PostgreSQL: while one connection processes an item (its transaction holds it), another
    connection's claim skips it without waiting; once ended, it is gone for both."""
    with psycopg.connect(pg_url, autocommit=True) as a, \
            psycopg.connect(pg_url, autocommit=True) as other:
        reports = read_catalog_file(CENC_LHASA).reports[:3]
        ids = pg_events.ingest(a, reports, now=NOW).created
        other.execute("SET lock_timeout = '5s'")  # a hang guard: SKIP LOCKED never waits
        with a.transaction():
            assert pg_work.claim_work(a, ids[0]) == "new"
            assert pg_work.claim_work(other, ids[0]) is None
            assert pg_work.claim_work(other, ids[1]) == "new"
            pg_work.finish_work(a, [ids[0]])
        assert pg_work.claim_work(other, ids[0]) is None
        assert pg_work.pending_work(other) == 2


@pytest.mark.parametrize("limit", [1, 500])
def test_next_work_limit(store_backend, limit):
    """``limit`` bounds one round."""
    b = store_backend
    conn = b.conn()
    ids = queued(b, conn)
    assert len(b.work.next_work(conn, limit)) == min(limit, len(ids))
