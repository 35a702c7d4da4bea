"""The durable outbox: one row per (notice, subscriber, channel), written before sending.

States: ``pending`` -> ``in_flight`` (claimed with a lease) -> ``sent`` | ``pending`` (retry
later) | ``failed`` | ``gone`` (the subscription no longer exists). A crash leaves rows
``in_flight``; :func:`recover` puts them back to ``pending``, so at most the rows that were in
flight are sent twice. Receivers can drop those duplicates by the delivery id (the row id).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from quakealert.store.instants import epoch as _ts
from quakealert.store.instants import iso_epoch as _iso

DEFAULT_LEASE_S = 120.0
FANOUT_INLINE = 1000  # recipients written as outbox rows at once; more become a fan-out row
FANOUT_CHUNK = 2000  # outbox rows one claim writes from fan-out rows at most (about 25 ms)
# How long a claim waits for a write lock held elsewhere. The claim runs on the event loop's
# connection, so the connection's 5 s busy timeout stalled /healthz and every request behind
# it while another process held the lock (issue 12); the outbox claims again after poll_s.
CLAIM_BUSY_MS = 100


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A claimed row plus what its channel needs about the subscriber (None when deleted)."""

    id: int
    notice_id: str
    subscriber_id: int
    channel: str
    target: str
    attempts: int  # including the one just claimed
    created_at: datetime
    languages: tuple[str, ...] | None = None
    p256dh: str | None = None
    auth: str | None = None
    secret: str | None = None
    public_id: str | None = None

    def __repr__(self) -> str:  # endpoints are capability URLs; keys and secrets are private
        return (f"OutboxRow(id={self.id}, notice_id={self.notice_id!r}, "
                f"subscriber_id={self.subscriber_id}, channel={self.channel!r})")

    @property
    def subscriber_exists(self) -> bool:
        return self.languages is not None




@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) on an autocommit connection; inside a
    transaction already open (the pipeline's, durable processing), part of that one."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def short_busy_wait(conn: sqlite3.Connection, wait_ms: int) -> Iterator[None]:
    """The connection's busy timeout lowered to ``wait_ms`` for a block (unchanged inside an
    open transaction: the lock is already held)."""
    if conn.in_transaction:
        yield
        return
    (before,) = conn.execute("PRAGMA busy_timeout").fetchone()
    conn.execute(f"PRAGMA busy_timeout={min(int(before), int(wait_ms)):d}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA busy_timeout={int(before):d}")


def enqueue(
    conn: sqlite3.Connection,
    notice_id: str,
    rows: Iterable[tuple[int, str, str]],
    *,
    now: datetime | None = None,
) -> int:
    """Add (subscriber_id, channel, target) rows for a notice; existing ones are kept as they are.

    Returns how many rows were new. Idempotent on UNIQUE(notice_id, subscriber_id, channel).
    """
    at = _ts(now or datetime.now(UTC))
    with transaction(conn):
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO outbox (notice_id, subscriber_id, channel, target, state,"
            " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
            ((notice_id, int(sid), ch, target, at, at, at) for sid, ch, target in rows),
        )
        return conn.total_changes - before


def enqueue_subscribers(
    conn: sqlite3.Connection, notice_id: str, subscriber_ids: Iterable[int], *, now: datetime
) -> int:
    """Enqueue a notice for subscribers by internal id, on each one's own channel and target.

    Up to FANOUT_INLINE of them get their rows at once; beyond that the whole list is one
    ``outbox_fanout`` row that :func:`claim` expands a chunk at a time (100,000 rows cost over
    a second to write; one row costs a millisecond). Returns how many rows or members were new.
    """
    ids = [int(i) for i in subscriber_ids]
    if len(ids) > FANOUT_INLINE:
        return enqueue_fanout(conn, notice_id, ids, now=now)
    return enqueue(conn, notice_id, _subscriber_rows(conn, ids), now=now)


def _subscriber_rows(conn: sqlite3.Connection, ids: list[int]) -> list[tuple[int, str, str]]:
    rows: list[tuple[int, str, str]] = []
    for i in range(0, len(ids), 900):
        chunk = ids[i : i + 900]
        marks = ",".join("?" * len(chunk))
        rows += [(r[0], r[1], r[2]) for r in conn.execute(
            f"SELECT id, channel, target FROM subscribers WHERE id IN ({marks})", chunk)]
    return rows


def enqueue_fanout(conn: sqlite3.Connection, notice_id: str, subscriber_ids: Sequence[int], *,
                   now: datetime) -> int:
    """One row for all of a notice's recipients, expanded into outbox rows by :func:`claim`."""
    members = np.asarray(subscriber_ids, dtype="<i8")
    at = _ts(now)
    with transaction(conn):
        conn.execute("INSERT INTO outbox_fanout (notice_id, members, next_attempt_at, created_at)"
                     " VALUES (?, ?, ?, ?)", (notice_id, members.tobytes(), at, at))
    return len(members)


def expand_fanout(conn: sqlite3.Connection, now: datetime, *, limit: int = FANOUT_CHUNK) -> int:
    """Write up to ``limit`` outbox rows from due fan-out rows (inside the caller's
    transaction); returns how many were written."""
    at = _ts(now)
    written = 0
    for fid, notice_id, blob, done, due in conn.execute(
            "SELECT id, notice_id, members, done, next_attempt_at FROM outbox_fanout"
            " WHERE next_attempt_at <= ? ORDER BY next_attempt_at, id", (at,)).fetchall():
        members = np.frombuffer(blob, dtype="<i8")
        take = members[done : done + limit - written].tolist()
        before = conn.total_changes
        conn.executemany(
            "INSERT OR IGNORE INTO outbox (notice_id, subscriber_id, channel, target, state,"
            " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
            ((notice_id, sid, ch, target, due, at, at)
             for sid, ch, target in _subscriber_rows(conn, take)))
        written += conn.total_changes - before
        if done + len(take) >= len(members):
            conn.execute("DELETE FROM outbox_fanout WHERE id = ?", (fid,))
        else:
            conn.execute("UPDATE outbox_fanout SET done = ? WHERE id = ?",
                         (done + len(take), fid))
        if written >= limit or len(take) >= limit:
            break
    return written


def unexpanded(conn: sqlite3.Connection, notice_id: str | None = None) -> int:
    """Recipients still waiting in fan-out rows (not yet outbox rows)."""
    total = 0
    sql = "SELECT members, done FROM outbox_fanout"
    args: tuple[Any, ...] = ()
    if notice_id is not None:
        sql += " WHERE notice_id = ?"
        args = (notice_id,)
    for blob, done in conn.execute(sql, args):
        total += len(blob) // 8 - int(done)
    return total


def claim(
    conn: sqlite3.Connection, limit: int, now: datetime, *, lease_s: float = DEFAULT_LEASE_S
) -> list[OutboxRow]:
    """Take up to ``limit`` due pending rows, oldest first, and lease them as in_flight."""
    if limit <= 0:
        return []
    at = _ts(now)
    with short_busy_wait(conn, CLAIM_BUSY_MS), transaction(conn):
        due = conn.execute("SELECT count(*) FROM (SELECT 1 FROM outbox WHERE state = 'pending'"
                           " AND next_attempt_at <= ? LIMIT ?)", (at, int(limit))).fetchone()[0]
        if due < limit:
            expand_fanout(conn, now, limit=max(FANOUT_CHUNK, int(limit)))
        claimed = conn.execute(
            "UPDATE outbox SET state = 'in_flight', lease_until = ?, attempts = attempts + 1,"
            " updated_at = ? WHERE id IN (SELECT id FROM outbox WHERE state = 'pending'"
            " AND next_attempt_at <= ? ORDER BY next_attempt_at, id LIMIT ?)"
            " RETURNING id, notice_id, subscriber_id, channel, target, attempts, created_at",
            (at + lease_s, at, at, int(limit)),
        ).fetchall()
    if not claimed:
        return []
    subs: dict[int, sqlite3.Row] = {}
    ids = sorted({r["subscriber_id"] for r in claimed})
    for i in range(0, len(ids), 900):
        chunk = ids[i : i + 900]
        for s in conn.execute(
            "SELECT id, public_id, languages, p256dh, auth, secret FROM subscribers"
            f" WHERE id IN ({','.join('?' * len(chunk))})", chunk
        ):
            subs[s["id"]] = s
    out = []
    for r in sorted(claimed, key=lambda r: r["id"]):
        s = subs.get(r["subscriber_id"])
        out.append(OutboxRow(
            id=r["id"], notice_id=r["notice_id"], subscriber_id=r["subscriber_id"],
            channel=r["channel"], target=r["target"], attempts=r["attempts"],
            created_at=datetime.fromtimestamp(r["created_at"], UTC),
            languages=tuple(s["languages"].split(",")) if s is not None else None,
            p256dh=s["p256dh"] if s is not None else None,
            auth=s["auth"] if s is not None else None,
            secret=s["secret"] if s is not None else None,
            public_id=s["public_id"] if s is not None else None,
        ))
    return out


_FINISH_SQL = (
    "UPDATE outbox SET state = ?, status = ?, last_error = ?, updated_at = ?,"
    " lease_until = NULL, sent_at = CASE WHEN ? THEN ? ELSE sent_at END,"
    " next_attempt_at = coalesce(?, next_attempt_at)"
    " WHERE id = ? AND state = 'in_flight'"
)
FINAL_STATES = ("sent", "pending", "gone", "failed")


def _finish(conn: sqlite3.Connection, row_id: int, state: str, at: datetime,
            status: int | None, error: str | None, *,
            next_attempt_at: datetime | None = None) -> bool:
    return finish_many(conn, [(row_id, state, status, error, next_attempt_at)], at=at) > 0


def finish_many(
    conn: sqlite3.Connection,
    marks: Iterable[tuple[int, str, int | None, str | None, datetime | None]],
    *,
    at: datetime,
) -> int:
    """Mark many in-flight rows at once: (row_id, state, status, error, next_attempt_at) with
    state ``sent`` | ``pending`` (retry at next_attempt_at) | ``gone`` | ``failed``; the same
    UPDATE as ``mark_*`` run as one executemany. Returns how many rows changed (rows no longer
    in flight are left alone). Call it inside :func:`transaction` to make one commit of it."""
    ts = _ts(at)
    params = []
    for row_id, state, status, error, next_attempt_at in marks:
        if state not in FINAL_STATES:
            raise ValueError(f"unknown outbox state {state!r}")
        params.append((state, status, error, ts, state == "sent", ts,
                       _ts(next_attempt_at) if next_attempt_at else None, row_id))
    if not params:
        return 0
    before = conn.total_changes
    conn.executemany(_FINISH_SQL, params)
    return conn.total_changes - before


def mark_sent(conn: sqlite3.Connection, row_id: int, *, at: datetime,
              status: int | None = None) -> bool:
    """The receiver accepted the row."""
    return _finish(conn, row_id, "sent", at, status, None)


def mark_retry(conn: sqlite3.Connection, row_id: int, *, next_attempt_at: datetime,
               error: str, at: datetime, status: int | None = None) -> bool:
    """Back to pending until ``next_attempt_at`` (429, 5xx, network errors)."""
    return _finish(conn, row_id, "pending", at, status, error, next_attempt_at=next_attempt_at)


def mark_gone(conn: sqlite3.Connection, row_id: int, *, at: datetime,
              status: int | None = None, error: str = "subscription gone") -> bool:
    """The subscription no longer exists (404/410); the row is kept for the record."""
    return _finish(conn, row_id, "gone", at, status, error)


def mark_failed(conn: sqlite3.Connection, row_id: int, *, at: datetime, error: str,
                status: int | None = None) -> bool:
    """Given up: other 4xx, too many attempts, or the notice expired."""
    return _finish(conn, row_id, "failed", at, status, error)


def recover(conn: sqlite3.Connection, now: datetime, *, all_in_flight: bool = False) -> int:
    """Return in-flight rows whose lease expired (all of them at a dispatcher's start, when it is
    the only one on this database) to pending; returns how many."""
    at = _ts(now)
    with transaction(conn):
        if all_in_flight:
            cur = conn.execute(
                "UPDATE outbox SET state = 'pending', lease_until = NULL, updated_at = ?,"
                " last_error = coalesce(last_error, 'recovered after a restart')"
                " WHERE state = 'in_flight'", (at,))
        else:
            cur = conn.execute(
                "UPDATE outbox SET state = 'pending', lease_until = NULL, updated_at = ?,"
                " last_error = coalesce(last_error, 'lease expired')"
                " WHERE state = 'in_flight' AND lease_until <= ?", (at, at))
        return cur.rowcount


def next_due_at(conn: sqlite3.Connection) -> datetime | None:
    """When the earliest pending row (or fan-out row) becomes due, or None when none is left."""
    row = conn.execute(
        "SELECT min(t) FROM (SELECT min(next_attempt_at) AS t FROM outbox WHERE state = 'pending'"
        " UNION ALL SELECT min(next_attempt_at) FROM outbox_fanout)").fetchone()
    return None if row[0] is None else datetime.fromtimestamp(row[0], UTC)


def counts(conn: sqlite3.Connection, notice_id: str | None = None) -> dict[str, dict[str, int]]:
    """Recipients by channel and state (``{"webpush": {"sent": 10, "gone": 1}}``): outbox rows,
    plus the recipients still folded in fan-out rows, counted ``pending`` on their channel."""
    sql = "SELECT channel, state, count(*) FROM outbox"
    args: tuple[Any, ...] = ()
    if notice_id is not None:
        sql += " WHERE notice_id = ?"
        args = (notice_id,)
    out: dict[str, dict[str, int]] = {}
    for channel, state, n in conn.execute(sql + " GROUP BY channel, state", args):
        out.setdefault(channel, {})[state] = int(n)
    for channel, n in _unexpanded_by_channel(conn, notice_id).items():
        by = out.setdefault(channel, {})
        by["pending"] = by.get("pending", 0) + n
    return out


def _unexpanded_by_channel(conn: sqlite3.Connection, notice_id: str | None) -> dict[str, int]:
    """Recipients waiting in fan-out rows, by their subscription's channel (a recipient deleted
    since gets no row when expanded, so is not counted)."""
    sql = "SELECT members, done FROM outbox_fanout"
    args: tuple[Any, ...] = ()
    if notice_id is not None:
        sql += " WHERE notice_id = ?"
        args = (notice_id,)
    parts = [np.frombuffer(blob, dtype="<i8")[int(done):] for blob, done in conn.execute(sql, args)]
    if not parts:
        return {}
    members = np.concatenate(parts)
    out: dict[str, int] = {}
    for (channel,) in conn.execute("SELECT DISTINCT channel FROM subscribers").fetchall():
        ids = np.fromiter((r[0] for r in conn.execute(
            "SELECT id FROM subscribers WHERE channel = ?", (channel,))), dtype=np.int64)
        n = int(np.isin(members, ids).sum())
        if n:
            out[channel] = n
    return out


def deliveries(conn: sqlite3.Connection, notice_id: str, *, limit: int = 100,
               state: str | None = None) -> list[dict[str, Any]]:
    """Per-row results for duty staff: channel, state, status, attempts, last error, sent time.

    Targets are shown as their origin only: a push endpoint is a capability URL.
    """
    sql = ("SELECT o.id, o.channel, o.state, o.status, o.attempts, o.last_error, o.sent_at,"
           " o.updated_at, o.target, s.public_id FROM outbox o"
           " LEFT JOIN subscribers s ON s.id = o.subscriber_id WHERE o.notice_id = ?")
    args: list[Any] = [notice_id]
    if state is not None:
        sql += " AND o.state = ?"
        args.append(state)
    sql += f" ORDER BY o.id LIMIT {int(limit):d}"
    out = []
    for r in conn.execute(sql, args):
        parts = urlsplit(r["target"])
        out.append({
            "delivery_id": r["id"], "channel": r["channel"], "state": r["state"],
            "status": r["status"], "attempts": r["attempts"], "last_error": r["last_error"],
            "sent_at": _iso(r["sent_at"]), "updated_at": _iso(r["updated_at"]),
            "target": f"{parts.scheme}://{parts.netloc}" if parts.netloc else r["channel"],
            "subscriber": r["public_id"],
        })
    return out




def any_in_flight(conn: sqlite3.Connection) -> bool:
    """Whether any row is claimed and not finished yet."""
    return conn.execute(
        "SELECT 1 FROM outbox WHERE state = 'in_flight' LIMIT 1").fetchone() is not None
