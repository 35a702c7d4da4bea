"""The outbox on PostgreSQL, shared by the delivery workers of every instance.

The same operations, arguments and results as :mod:`quakealert.store.outbox` (SQLite), so the
store-contract tests run one suite on both. What differs is how workers share the table: a claim
takes due rows with ``FOR UPDATE SKIP LOCKED`` (concurrent claimers never wait on, nor take, each
other's rows) and leases them; an expired lease is reclaimed by :func:`recover`, which any
instance may run. Enqueuing sends ``NOTIFY quakealert_outbox`` on commit, which wakes the workers
waiting in :class:`OutboxWaker`; they also poll, so a lost notification only delays a delivery.

A notice for more than ``FANOUT_INLINE`` residents is one ``outbox_fanout`` row (its members as
little-endian int64 bytes), as on SQLite; a claim that finds fewer due rows than it wants first
expands due fan-out rows a chunk at a time. The fan-out rows it expands are locked with
``FOR UPDATE SKIP LOCKED`` and the chunk is committed before the claim, so workers on every
instance expand different rows (or chunks, one after the other) and then claim the outbox rows
like any others. :func:`counts` counts recipients: members not yet expanded are ``pending``.
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

import numpy as np
import psycopg
from psycopg.rows import dict_row, tuple_row

from quakealert.store.instants import epoch as _ts
from quakealert.store.instants import iso_epoch as _iso
from quakealert.store.outbox import (
    DEFAULT_LEASE_S,
    FANOUT_CHUNK,
    FANOUT_INLINE,
    FINAL_STATES,
    OutboxRow,
)

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
    """Enqueue a notice for subscribers by internal id, on each one's own channel and target.

    Up to FANOUT_INLINE of them get their rows at once; beyond that the whole list is one
    ``outbox_fanout`` row that :func:`claim` expands a chunk at a time. Returns how many rows
    or members were new.
    """
    ids = [int(i) for i in subscriber_ids]
    if not ids:
        return 0
    if len(ids) > FANOUT_INLINE:
        return enqueue_fanout(conn, notice_id, ids, now=now)
    at = _ts(now)
    with conn.transaction():
        cur = conn.execute(_INSERT_SUBSCRIBERS_SQL, (notice_id, at, at, at, ids))
        added = max(cur.rowcount, 0)
        if added:
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, notice_id))
    return added


# Outbox rows for subscribers by id (those deleted meanwhile get none), in id order.
_INSERT_SUBSCRIBERS_SQL = (
    "INSERT INTO outbox (notice_id, subscriber_id, channel, target, state,"
    " next_attempt_at, created_at, updated_at)"
    " SELECT %s, id, channel, target, 'pending', %s, %s, %s FROM subscribers"
    " WHERE id = ANY(%s::bigint[]) ORDER BY id"
    " ON CONFLICT (notice_id, subscriber_id, channel) DO NOTHING"
)


def enqueue_fanout(conn: psycopg.Connection[Any], notice_id: str, subscriber_ids: Iterable[int],
                   *, now: datetime) -> int:
    """One row for all of a notice's recipients, expanded into outbox rows by :func:`claim`."""
    members = np.asarray(list(subscriber_ids), dtype="<i8")
    at = _ts(now)
    with conn.transaction():
        conn.execute("INSERT INTO outbox_fanout (notice_id, members, next_attempt_at, created_at)"
                     " VALUES (%s, %s, %s, %s)", (notice_id, members.tobytes(), at, at))
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, notice_id))
    return len(members)


def expand_fanout(conn: psycopg.Connection[Any], now: datetime, *,
                  limit: int = FANOUT_CHUNK) -> int:
    """Write up to ``limit`` outbox rows from due fan-out rows, in a transaction of its own (a
    savepoint inside the caller's); fan-out rows another worker is expanding are skipped.
    Returns how many rows were written."""
    at = _ts(now)
    written = 0
    with conn.transaction(), conn.cursor(row_factory=tuple_row) as cur:
        due = cur.execute(
            "SELECT id, notice_id, members, done, next_attempt_at FROM outbox_fanout"
            " WHERE next_attempt_at <= %s ORDER BY next_attempt_at, id"
            " FOR UPDATE SKIP LOCKED", (at,)).fetchall()
        for fid, notice_id, blob, done, due_at in due:
            members = np.frombuffer(blob, dtype="<i8")
            take = members[done : done + limit - written].tolist()
            added = cur.execute(_INSERT_SUBSCRIBERS_SQL,
                                (notice_id, due_at, at, at, take)).rowcount
            written += max(added, 0)
            if done + len(take) >= len(members):
                cur.execute("DELETE FROM outbox_fanout WHERE id = %s", (fid,))
            else:
                cur.execute("UPDATE outbox_fanout SET done = %s WHERE id = %s",
                            (done + len(take), fid))
            if written >= limit or len(take) >= limit:
                break
        if written:
            cur.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
    return written


def unexpanded(conn: psycopg.Connection[Any], notice_id: str | None = None) -> int:
    """Recipients still waiting in fan-out rows (not yet outbox rows)."""
    query = "SELECT coalesce(sum(length(members) / 8 - done), 0)::bigint FROM outbox_fanout"
    args: tuple[Any, ...] = ()
    if notice_id is not None:
        query += " WHERE notice_id = %s"
        args = (notice_id,)
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(query, args).fetchone()
    return int(row[0]) if row else 0


def claim(
    conn: psycopg.Connection[Any], limit: int, now: datetime, *,
    lease_s: float = DEFAULT_LEASE_S,
) -> list[OutboxRow]:
    """Take up to ``limit`` due pending rows, oldest first, and lease them as in_flight; rows
    another worker is claiming at the same moment are skipped, never waited for."""
    if limit <= 0:
        return []
    at = _ts(now)
    with conn.cursor(row_factory=tuple_row) as cur:
        due = cur.execute("SELECT count(*) FROM (SELECT 1 FROM outbox WHERE state = 'pending'"
                          " AND next_attempt_at <= %s LIMIT %s) d", (at, int(limit))).fetchone()
    if due is not None and due[0] < limit:
        expand_fanout(conn, now, limit=max(FANOUT_CHUNK, int(limit)))
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


def recover(conn: psycopg.Connection[Any], now: datetime, *, all_in_flight: bool = False) -> int:
    """Return in-flight rows whose lease expired to pending; returns how many.

    ``all_in_flight`` (SQLite's "this process is the only worker, so every claim is stale")
    is accepted and ignored: other instances' workers hold live leases on the same table, so
    only an expired lease says a worker is gone.
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


def any_in_flight(conn: psycopg.Connection[Any]) -> bool:
    """Whether any row is claimed and not finished yet (by any instance)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute("SELECT 1 FROM outbox WHERE state = 'in_flight' LIMIT 1"
                           ).fetchone() is not None


def next_due_at(conn: psycopg.Connection[Any]) -> datetime | None:
    """When the earliest pending row (or fan-out row) becomes due, or None when none is left."""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(
            "SELECT min(t) FROM (SELECT min(next_attempt_at) AS t FROM outbox"
            " WHERE state = 'pending' UNION ALL SELECT min(next_attempt_at)"
            " FROM outbox_fanout) d").fetchone()
    return None if row is None or row[0] is None else datetime.fromtimestamp(row[0], UTC)


def counts(conn: psycopg.Connection[Any],
           notice_id: str | None = None) -> dict[str, dict[str, int]]:
    """Recipients by channel and state (``{"webpush": {"sent": 10, "gone": 1}}``), counting
    those still in fan-out rows as ``pending`` on their channel."""
    where, args = "", ()
    if notice_id is not None:
        where, args = " WHERE notice_id = %s", (notice_id,)
    out: dict[str, dict[str, int]] = {}
    with conn.cursor(row_factory=tuple_row) as cur:
        for channel, state, n in cur.execute(
                "SELECT channel, state, count(*) FROM outbox" + where + " GROUP BY channel, state",
                args):
            out.setdefault(channel, {})[state] = int(n)
        waiting = [np.frombuffer(blob, dtype="<i8")[done:] for blob, done in cur.execute(
            "SELECT members, done FROM outbox_fanout" + where, args)]
        if waiting:
            # A resident may wait in two fan-out rows (two notices): count each membership.
            members, times = np.unique(np.concatenate(waiting), return_counts=True)
            for channel, sids in cur.execute(
                    "SELECT channel, array_agg(id) FROM subscribers WHERE id = ANY(%s::bigint[])"
                    " GROUP BY channel", (members.tolist(),)):
                n = int(times[np.searchsorted(members, np.asarray(sids, dtype=np.int64))].sum())
                by_state = out.setdefault(channel, {})
                by_state["pending"] = by_state.get("pending", 0) + n
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
                log.warning("outbox waker cannot listen", extra={"error": type(err).__name__})
                self._conn = None
                await asyncio.sleep(timeout_s)
            return True
        try:
            async for _ in self._conn.notifies(timeout=timeout_s, stop_after=1):
                return True
        except (psycopg.Error, OSError) as err:
            log.warning("outbox waker connection lost", extra={"error": type(err).__name__})
            await self.close()
            return True
        return False

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
