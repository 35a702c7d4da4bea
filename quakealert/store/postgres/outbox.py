"""The outbox on PostgreSQL, shared by the delivery workers of every instance.

The same operations, arguments and results as :mod:`quakealert.store.outbox` (SQLite), so the
store-contract tests run one suite on both. What differs is how workers share the table: a claim
takes due rows with ``FOR UPDATE SKIP LOCKED`` (concurrent claimers never wait on, nor take, each
other's rows) and leases them; an expired lease is reclaimed by :func:`recover`, which any
instance may run. Enqueuing sends ``NOTIFY quakealert_outbox`` on commit, which wakes the workers
waiting in :class:`OutboxWaker`; they also poll, so a lost notification only delays a delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.rows import dict_row, tuple_row

from quakealert.store.instants import epoch as _ts
from quakealert.store.instants import iso_epoch as _iso
from quakealert.store.outbox import DEFAULT_LEASE_S, FINAL_STATES, OutboxRow

log = logging.getLogger(__name__)

CHANNEL = "quakealert_outbox"

_CLAIM_SQL = """
WITH due AS (
    SELECT id FROM outbox
    WHERE state = 'pending' AND next_attempt_at <= %(at)s
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE outbox o SET state = 'in_flight', lease_until = %(lease_until)s,
        attempts = o.attempts + 1, updated_at = %(at)s
    FROM due WHERE o.id = due.id
    RETURNING o.id, o.notice_id, o.subscriber_id, o.channel, o.target, o.attempts, o.created_at
)
SELECT c.*, s.public_id, s.languages, s.p256dh, s.auth, s.secret
FROM claimed c LEFT JOIN subscribers s ON s.id = c.subscriber_id
ORDER BY c.id
"""

_FINISH_SQL = """
UPDATE outbox o SET state = m.state, status = m.status, last_error = m.error,
    updated_at = %(at)s, lease_until = NULL,
    sent_at = CASE WHEN m.state = 'sent' THEN %(at)s ELSE o.sent_at END,
    next_attempt_at = coalesce(m.next_at, o.next_attempt_at)
FROM unnest(%(ids)s::bigint[], %(states)s::text[], %(statuses)s::bigint[], %(errors)s::text[],
            %(next_at)s::float8[]) AS m(id, state, status, error, next_at)
WHERE o.id = m.id AND o.state = 'in_flight'
"""


def transaction(conn: psycopg.Connection[Any]) -> AbstractContextManager[psycopg.Transaction]:
    """BEGIN ... COMMIT (ROLLBACK on error), as ``store.outbox.transaction`` on SQLite."""
    return conn.transaction()


def enqueue(
    conn: psycopg.Connection[Any],
    notice_id: str,
    rows: Iterable[tuple[int, str, str]],
    *,
    now: datetime | None = None,
) -> int:
    """Add (subscriber_id, channel, target) rows for a notice; existing ones are kept as they are.

    Returns how many rows were new. Idempotent on UNIQUE(notice_id, subscriber_id, channel).
    """
    at = _ts(now or datetime.now(UTC))
    items = [(int(sid), ch, target) for sid, ch, target in rows]
    if not items:
        return 0
    sids, channels, targets = (list(col) for col in zip(*items, strict=True))
    with conn.transaction():
        cur = conn.execute(
            "INSERT INTO outbox (notice_id, subscriber_id, channel, target, state,"
            " next_attempt_at, created_at, updated_at)"
            " SELECT %s, u.s, u.c, u.t, 'pending', %s, %s, %s"
            " FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS u(s, c, t)"
            " ON CONFLICT (notice_id, subscriber_id, channel) DO NOTHING",
            (notice_id, at, at, at, sids, channels, targets))
        added = max(cur.rowcount, 0)
        if added:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, notice_id))
    return added


def enqueue_subscribers(
    conn: psycopg.Connection[Any], notice_id: str, subscriber_ids: Iterable[int], *,
    now: datetime,
) -> int:
    """Enqueue a notice for subscribers by internal id, on each one's own channel and target."""
    at = _ts(now)
    ids = [int(i) for i in subscriber_ids]
    if not ids:
        return 0
    with conn.transaction():
        cur = conn.execute(
            "INSERT INTO outbox (notice_id, subscriber_id, channel, target, state,"
            " next_attempt_at, created_at, updated_at)"
            " SELECT %s, id, channel, target, 'pending', %s, %s, %s FROM subscribers"
            " WHERE id = ANY(%s::bigint[]) ORDER BY id"
            " ON CONFLICT (notice_id, subscriber_id, channel) DO NOTHING",
            (notice_id, at, at, at, ids))
        added = max(cur.rowcount, 0)
        if added:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, notice_id))
    return added


def claim(
    conn: psycopg.Connection[Any], limit: int, now: datetime, *,
    lease_s: float = DEFAULT_LEASE_S,
) -> list[OutboxRow]:
    """Take up to ``limit`` due pending rows, oldest first, and lease them as in_flight; rows
    another worker is claiming at the same moment are skipped, never waited for."""
    if limit <= 0:
        return []
    at = _ts(now)
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_CLAIM_SQL, {"at": at, "limit": int(limit),
                                        "lease_until": at + lease_s}).fetchall()
    return [OutboxRow(
        id=r["id"], notice_id=r["notice_id"], subscriber_id=r["subscriber_id"],
        channel=r["channel"], target=r["target"], attempts=r["attempts"],
        created_at=datetime.fromtimestamp(r["created_at"], UTC),
        languages=tuple(r["languages"].split(",")) if r["languages"] is not None else None,
        p256dh=r["p256dh"], auth=r["auth"], secret=r["secret"], public_id=r["public_id"],
    ) for r in rows]


def finish_many(
    conn: psycopg.Connection[Any],
    marks: Iterable[tuple[int, str, int | None, str | None, datetime | None]],
    *,
    at: datetime,
) -> int:
    """Mark many in-flight rows in one statement: (row_id, state, status, error,
    next_attempt_at) with state ``sent`` | ``pending`` (retry at next_attempt_at) | ``gone`` |
    ``failed``. Returns how many rows changed (rows no longer in flight are left alone)."""
    ids: list[int] = []
    states: list[str] = []
    statuses: list[int | None] = []
    errors: list[str | None] = []
    next_at: list[float | None] = []
    for row_id, state, status, error, next_attempt_at in marks:
        if state not in FINAL_STATES:
            raise ValueError(f"unknown outbox state {state!r}")
        ids.append(int(row_id))
        states.append(state)
        statuses.append(status)
        errors.append(error)
        next_at.append(_ts(next_attempt_at) if next_attempt_at else None)
    if not ids:
        return 0
    cur = conn.execute(_FINISH_SQL, {"at": _ts(at), "ids": ids, "states": states,
                                     "statuses": statuses, "errors": errors, "next_at": next_at})
    return max(cur.rowcount, 0)


def mark_sent(conn: psycopg.Connection[Any], row_id: int, *, at: datetime,
              status: int | None = None) -> bool:
    """The receiver accepted the row."""
    return finish_many(conn, [(row_id, "sent", status, None, None)], at=at) > 0


def mark_retry(conn: psycopg.Connection[Any], row_id: int, *, next_attempt_at: datetime,
               error: str, at: datetime, status: int | None = None) -> bool:
    """Back to pending until ``next_attempt_at`` (429, 5xx, network errors)."""
    return finish_many(conn, [(row_id, "pending", status, error, next_attempt_at)], at=at) > 0


def mark_gone(conn: psycopg.Connection[Any], row_id: int, *, at: datetime,
              status: int | None = None, error: str = "subscription gone") -> bool:
    """The subscription no longer exists (404/410); the row is kept for the record."""
    return finish_many(conn, [(row_id, "gone", status, error, None)], at=at) > 0


def mark_failed(conn: psycopg.Connection[Any], row_id: int, *, at: datetime, error: str,
                status: int | None = None) -> bool:
    """Given up: other 4xx, too many attempts, or the notice expired."""
    return finish_many(conn, [(row_id, "failed", status, error, None)], at=at) > 0


def recover(conn: psycopg.Connection[Any], now: datetime) -> int:
    """Return in-flight rows whose lease expired to pending; returns how many.

    Unlike SQLite's, there is no "all in flight" variant: other instances' workers hold live
    leases on the same table, so only an expired lease says a worker is gone.
    """
    at = _ts(now)
    cur = conn.execute(
        "UPDATE outbox SET state = 'pending', lease_until = NULL, updated_at = %s,"
        " last_error = coalesce(last_error, 'lease expired')"
        " WHERE id IN (SELECT id FROM outbox WHERE state = 'in_flight' AND lease_until <= %s"
        " FOR UPDATE SKIP LOCKED)", (at, at))
    recovered = max(cur.rowcount, 0)
    if recovered:
        conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
    return recovered


def next_due_at(conn: psycopg.Connection[Any]) -> datetime | None:
    """When the earliest pending row becomes due, or None when nothing is pending."""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(
            "SELECT min(next_attempt_at) FROM outbox WHERE state = 'pending'").fetchone()
    return None if row is None or row[0] is None else datetime.fromtimestamp(row[0], UTC)


def counts(conn: psycopg.Connection[Any],
           notice_id: str | None = None) -> dict[str, dict[str, int]]:
    """Row counts by channel and state (``{"webpush": {"sent": 10, "gone": 1}}``)."""
    sql = "SELECT channel, state, count(*) FROM outbox"
    args: tuple[Any, ...] = ()
    if notice_id is not None:
        sql += " WHERE notice_id = %s"
        args = (notice_id,)
    out: dict[str, dict[str, int]] = {}
    with conn.cursor(row_factory=tuple_row) as cur:
        for channel, state, n in cur.execute(sql + " GROUP BY channel, state", args):
            out.setdefault(channel, {})[state] = int(n)
    return out


def deliveries(conn: psycopg.Connection[Any], notice_id: str, *, limit: int = 100,
               state: str | None = None) -> list[dict[str, Any]]:
    """Per-row results for duty staff; targets shown as their origin only."""
    sql = ("SELECT o.id, o.channel, o.state, o.status, o.attempts, o.last_error, o.sent_at,"
           " o.updated_at, o.target, s.public_id FROM outbox o"
           " LEFT JOIN subscribers s ON s.id = o.subscriber_id WHERE o.notice_id = %s")
    args: list[Any] = [notice_id]
    if state is not None:
        sql += " AND o.state = %s"
        args.append(state)
    sql += " ORDER BY o.id LIMIT %s"
    args.append(int(limit))
    out = []
    with conn.cursor(row_factory=dict_row) as cur:
        for r in cur.execute(sql, args):
            parts = urlsplit(r["target"])
            out.append({
                "delivery_id": r["id"], "channel": r["channel"], "state": r["state"],
                "status": r["status"], "attempts": r["attempts"], "last_error": r["last_error"],
                "sent_at": _iso(r["sent_at"]), "updated_at": _iso(r["updated_at"]),
                "target": f"{parts.scheme}://{parts.netloc}" if parts.netloc else r["channel"],
                "subscriber": r["public_id"],
            })
    return out


class OutboxWaker:
    """Wakes a delivery worker when rows are enqueued anywhere (LISTEN on a connection of its
    own), with polling as the fallback: :meth:`wait` returns after ``timeout_s`` regardless, and
    a lost connection is reopened on the next wait (which then returns at once, so the worker
    looks at the table instead of trusting a notification it may have missed)."""

    def __init__(self, url: str):
        self.url = url
        self._conn: psycopg.AsyncConnection[Any] | None = None

    async def wait(self, timeout_s: float) -> bool:
        """True when woken by a notification (or a reconnect), False on timeout."""
        if self._conn is None or self._conn.closed:
            try:
                self._conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, application_name="quakealert outbox waker",
                    connect_timeout=5)
                await self._conn.execute(f"LISTEN {CHANNEL}")
            except (psycopg.Error, OSError) as err:
                log.warning("outbox waker cannot listen error=%s", type(err).__name__)
                self._conn = None
                await asyncio.sleep(timeout_s)
            return True
        try:
            async for _ in self._conn.notifies(timeout=timeout_s, stop_after=1):
                return True
        except (psycopg.Error, OSError) as err:
            log.warning("outbox waker connection lost error=%s", type(err).__name__)
            await self.close()
            return True
        return False

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
