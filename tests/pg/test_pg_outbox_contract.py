"""The outbox contract, run on both backends: what the delivery workers rely on, whichever store
is underneath. The PostgreSQL cases need a throwaway cluster (they skip, saying so, without
initdb); the SQLite cases always run."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from quakealert.store import outbox as lite_outbox
from quakealert.store.postgres import outbox as pg_outbox
from quakealert.store.sqlite import Store

NOW = datetime(2024, 11, 6, 20, 25, tzinfo=UTC)


@dataclass
class Backend:
    """One store under test: its outbox module and a way to open more connections."""

    name: str
    ops: Any
    connect: Any
    conns: list[Any]

    def conn(self) -> Any:
        c = self.connect()
        self.conns.append(c)
        return c

    def add_subscribers(self, n: int, *, channel: str = "webhook") -> list[int]:
        conn = self.conn()
        mark = "?" if self.name == "sqlite" else "%s"
        sql = (f"INSERT INTO subscribers (id, public_id, token_hash, latitude, longitude,"
               f" languages, channel, target, secret, created_at) VALUES ({mark}, {mark}, 'h',"
               f" 29.65, 91.1, 'zh,bo', {mark}, {mark}, 's3', 0)")
        ids = list(range(1, n + 1))
        if self.name == "sqlite":
            conn.executemany(sql, [(i, f"p{i}", channel, f"https://gw.example/{i}") for i in ids])
        else:
            with conn.cursor() as cur:
                cur.executemany(sql, [(i, f"p{i}", channel, f"https://gw.example/{i}")
                                      for i in ids])
        return ids


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "contract.sqlite"
        Store.open(path).close()
        b = Backend("sqlite", lite_outbox, lambda: Store.open(path).conn, [])
    else:
        url = request.getfixturevalue("pg_url")
        b = Backend("postgresql", pg_outbox,
                    lambda: psycopg.connect(url, autocommit=True, row_factory=dict_row), [])
    yield b
    for c in b.conns:
        c.close()


def test_enqueue_is_exactly_once_per_notice_recipient_channel(backend):
    """Enqueueing the same (notice, subscriber, channel) again, in one call or later, or by
    subscriber id, adds nothing; a second notice gets rows of its own."""
    ids = backend.add_subscribers(300)
    conn, ob = backend.conn(), backend.ops
    rows = [(i, "webhook", f"https://gw.example/{i}") for i in ids]
    assert ob.enqueue(conn, "n1", rows + rows[:10], now=NOW) == 300
    assert ob.enqueue(conn, "n1", rows, now=NOW) == 0
    assert ob.enqueue_subscribers(conn, "n1", ids, now=NOW) == 0
    assert ob.enqueue_subscribers(conn, "n2", ids[:50], now=NOW) == 50
    assert ob.counts(conn) == {"webhook": {"pending": 350}}
    assert ob.counts(conn, "n2") == {"webhook": {"pending": 50}}
    assert ob.next_due_at(conn) == NOW


def test_two_concurrent_claimers_never_claim_the_same_row(backend):
    """Two workers on their own connections claim batches at the same time until nothing is
    left: together they take every row, and no row twice."""
    ids = backend.add_subscribers(600)
    ob = backend.ops
    ob.enqueue_subscribers(backend.conn(), "n1", ids, now=NOW)
    conns = [backend.conn(), backend.conn()]
    start = threading.Barrier(2)

    def work(k: int) -> list[int]:
        got: list[int] = []
        start.wait()
        while rows := ob.claim(conns[k], 20, NOW + timedelta(seconds=1)):
            got.extend(r.id for r in rows)
        return got

    with ThreadPoolExecutor(2) as ex:
        got = [f.result(timeout=60) for f in [ex.submit(work, k) for k in range(2)]]
    assert not set(got[0]) & set(got[1])
    assert len(got[0]) + len(got[1]) == 600
    assert ob.counts(conns[0]) == {"webhook": {"in_flight": 600}}


def test_claim_returns_what_the_channel_needs(backend):
    """A claimed row carries its subscriber's languages and secret, oldest first, with the
    attempt counted; a deleted subscriber shows as not existing."""
    ids = backend.add_subscribers(3)
    conn, ob = backend.conn(), backend.ops
    ob.enqueue_subscribers(conn, "n1", ids, now=NOW)
    conn.execute("DELETE FROM subscribers WHERE id = 3")
    rows = ob.claim(conn, 10, NOW)
    assert [r.subscriber_id for r in rows] == [1, 2, 3]
    assert rows[0].languages == ("zh", "bo") and rows[0].secret == "s3"
    assert rows[0].public_id == "p1" and rows[0].attempts == 1
    assert rows[0].created_at == NOW
    assert rows[2].subscriber_exists is False
    assert ob.claim(conn, 10, NOW) == []


def test_expired_lease_is_reclaimed(backend):
    """A worker that dies holding rows: before the lease ends nothing is reclaimed, after it the
    rows are pending again and the next claim takes them (second attempt)."""
    ids = backend.add_subscribers(30)
    conn, ob = backend.conn(), backend.ops
    ob.enqueue_subscribers(conn, "n1", ids, now=NOW)
    dead = ob.claim(conn, 10, NOW, lease_s=30)
    assert ob.recover(conn, NOW + timedelta(seconds=10)) == 0
    assert ob.recover(conn, NOW + timedelta(seconds=31)) == 10
    again = ob.claim(backend.conn(), 100, NOW + timedelta(seconds=31))
    assert {r.id for r in dead} <= {r.id for r in again}
    assert {r.attempts for r in again if r.id in {d.id for d in dead}} == {2}
    assert ob.counts(conn) == {"webhook": {"in_flight": 30}}


def test_finish_marks_done_and_retry_waits(backend):
    """finish_many marks sent, gone and failed for good, and a retry comes back only when due;
    a row no longer in flight is left alone."""
    ids = backend.add_subscribers(5)
    conn, ob = backend.conn(), backend.ops
    ob.enqueue_subscribers(conn, "n1", ids, now=NOW)
    r = ob.claim(conn, 5, NOW)
    later = NOW + timedelta(seconds=60)
    changed = ob.finish_many(conn, [
        (r[0].id, "sent", 200, None, None), (r[1].id, "sent", 202, None, None),
        (r[2].id, "pending", 503, "busy", later), (r[3].id, "gone", 410, "gone", None),
        (r[4].id, "failed", 400, "bad", None)], at=NOW)
    assert changed == 5
    assert ob.finish_many(conn, [(r[0].id, "failed", 500, "late", None)], at=NOW) == 0
    assert ob.counts(conn) == {"webhook": {"sent": 2, "pending": 1, "gone": 1, "failed": 1}}
    assert ob.claim(conn, 10, NOW + timedelta(seconds=59)) == []
    assert ob.next_due_at(conn) == later
    retried = ob.claim(conn, 10, later)
    assert [x.id for x in retried] == [r[2].id] and retried[0].attempts == 2
    assert ob.mark_sent(conn, r[2].id, at=later, status=200)
    shown = {d["delivery_id"]: d for d in ob.deliveries(conn, "n1")}
    assert shown[r[0].id]["state"] == "sent" and shown[r[0].id]["target"] == "https://gw.example"
    assert shown[r[3].id]["status"] == 410
    with pytest.raises(ValueError):
        ob.finish_many(conn, [(r[0].id, "in_flight", None, None, None)], at=NOW)


async def test_enqueue_wakes_a_waiting_worker(pg_url):
    """PostgreSQL: a worker waiting on LISTEN wakes as soon as another connection enqueues
    (well before its polling timeout); with nothing enqueued it wakes at the timeout."""
    waker = pg_outbox.OutboxWaker(pg_url)
    try:
        assert await waker.wait(0.1) is True  # first call connects and says "look now"
        t0 = time.monotonic()
        assert await waker.wait(0.3) is False
        assert time.monotonic() - t0 >= 0.25

        def enqueue_later() -> None:
            time.sleep(0.3)
            with psycopg.connect(pg_url, autocommit=True) as conn:
                conn.execute("INSERT INTO subscribers (id, public_id, token_hash, latitude,"
                             " longitude, languages, channel, target, created_at)"
                             " VALUES (1, 'p', 'h', 0, 0, 'zh', 'console', 'c', 0)")
                pg_outbox.enqueue_subscribers(conn, "n1", [1], now=NOW)

        t0 = time.monotonic()
        task = asyncio.create_task(asyncio.to_thread(enqueue_later))
        assert await waker.wait(10.0) is True
        woke_s = time.monotonic() - t0
        await task
        assert woke_s < 5.0
    finally:
        await waker.close()
