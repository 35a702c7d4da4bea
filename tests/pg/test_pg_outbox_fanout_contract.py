"""Fan-out rows (schema 010): a notice for more than FANOUT_INLINE residents is one row that
claims expand into outbox rows a chunk at a time. One contract on both backends: every
recipient exactly once, also with two workers claiming at once; a resident deleted meanwhile
gets nothing; the due time holds; ``counts`` counts recipients."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from quakealert.store.outbox import FANOUT_CHUNK, FANOUT_INLINE

NOW = datetime(2024, 11, 6, 20, 25, tzinfo=UTC)
N = FANOUT_INLINE + FANOUT_CHUNK + 500  # more than one claim's chunk


def drain(b, conn, now: datetime, limit: int = 700) -> list:
    """Claim until nothing is due. A SQLite claim gives up after CLAIM_BUSY_MS when another
    connection holds the write lock; like the dispatcher, claim again."""
    got = []
    while True:
        try:
            rows = b.outbox.claim(conn, limit, now)
        except sqlite3.OperationalError as err:
            assert "locked" in str(err)
            continue
        if not rows:
            return got
        got += rows


def test_a_big_notice_is_one_row_expanded_by_claims(store_backend):
    """N residents: one fan-out row, nothing due before its time, then every resident exactly
    once (in id order, on their channel and target), the row gone, a deleted resident left
    out; a small notice still gets its rows at once."""
    b = store_backend
    ids = b.add_subscribers(N)
    conn = b.conn()
    later = NOW + timedelta(minutes=10)
    assert b.outbox.enqueue_subscribers(conn, "big", ids, now=later) == N
    assert b.outbox.enqueue_subscribers(conn, "small", ids[:10], now=NOW) == 10
    assert b.sql(conn, "SELECT count(*) FROM outbox_fanout") == [(1,)]
    assert b.sql(conn, "SELECT count(*) FROM outbox") == [(10,)]
    assert b.outbox.unexpanded(conn) == N == b.outbox.unexpanded(conn, "big")
    assert b.outbox.next_due_at(conn) == NOW
    assert [r.notice_id for r in drain(b, conn, NOW)] == ["small"] * 10
    assert b.outbox.next_due_at(conn) == later
    b.sql(conn, "DELETE FROM subscribers WHERE id = ?", (ids[7],))
    first = b.outbox.claim(conn, 100, later)
    assert [r.subscriber_id for r in first] == ids[:7] + ids[8:101]
    assert first[0].target == f"https://gw.example/{ids[0]}" and first[0].channel == "webhook"
    assert first[0].languages == ("zh", "bo")
    assert 0 < b.outbox.unexpanded(conn, "big") < N
    rest = drain(b, conn, later)
    got = [r.subscriber_id for r in first + rest]
    assert len(got) == len(set(got)) == N - 1 and ids[7] not in got
    assert b.outbox.unexpanded(conn) == 0
    assert b.sql(conn, "SELECT count(*) FROM outbox_fanout") == [(0,)]
    assert b.outbox.counts(conn, "big") == {"webhook": {"in_flight": N - 1}}
    assert b.outbox.next_due_at(conn) is None


def test_two_workers_expand_and_claim_without_duplicates(store_backend):
    """Two workers on their own connections claim a big notice and a second one at the same
    time: together every (notice, resident) once, and nothing left."""
    b = store_backend
    ids = b.add_subscribers(N)
    conn = b.conn()
    b.outbox.enqueue_subscribers(conn, "n1", ids, now=NOW)
    b.outbox.enqueue_subscribers(conn, "n2", ids[: FANOUT_INLINE + 1], now=NOW)
    conns = [b.conn(), b.conn()]
    start = threading.Barrier(2)

    def work(k: int) -> list[tuple[str, int]]:
        start.wait()
        return [(r.notice_id, r.subscriber_id) for r in drain(b, conns[k], NOW, limit=300)]

    with ThreadPoolExecutor(2) as ex:
        got = [f.result(timeout=120) for f in [ex.submit(work, k) for k in range(2)]]
    both = got[0] + got[1]
    assert len(both) == len(set(both)) == N + FANOUT_INLINE + 1
    assert b.outbox.unexpanded(conn) == 0
    assert b.outbox.counts(conn) == {"webhook": {"in_flight": N + FANOUT_INLINE + 1}}


def test_counts_count_recipients_not_yet_expanded(store_backend):
    """Before any claim, a big notice's residents are counted as pending on their channel, so
    a worker (or duty staff) never sees "nothing left" while recipients wait."""
    b = store_backend
    ids = b.add_subscribers(N)
    b.add_subscribers(5, channel="webpush", start=N + 1)
    conn = b.conn()
    b.outbox.enqueue_subscribers(conn, "big", [*ids, *range(N + 1, N + 6)], now=NOW)
    assert b.outbox.counts(conn) == {"webhook": {"pending": N}, "webpush": {"pending": 5}}
    b.outbox.claim(conn, 100, NOW)
    assert b.outbox.counts(conn, "big") == {
        "webhook": {"pending": N - 100, "in_flight": 100}, "webpush": {"pending": 5}}
