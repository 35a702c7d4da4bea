"""The pipeline's durable work queue in SQLite: one row per changed event nobody processed yet.

Ingest writes the rows in the batch's own transaction (``sqlite.record_work``); the pipeline
places them (priority 2 near residents, 1 large elsewhere, 0 far from everyone, -1 parked after
repeated failures) and finishes each in the transaction that stores what it caused. The names
and shapes are those of ``store/postgres/work.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any


def next_work(conn: sqlite3.Connection, limit: int = 200
              ) -> list[tuple[str, str, float, int | None]]:
    """(event_id, trigger, received_at, priority) of the next items: most urgent, then oldest;
    parked items (priority -1) are left out."""
    return [(r[0], r[1], r[2], r[3]) for r in conn.execute(
        "SELECT event_id, trigger, received_at, priority FROM work WHERE priority IS NULL"
        " OR priority >= 0 ORDER BY priority DESC, origin_at, event_id LIMIT ?",
        (int(limit),)).fetchall()]


def unprioritised(conn: sqlite3.Connection, limit: int = 50_000
                  ) -> list[tuple[str, str, float, float, float | None, float | None]]:
    """Items not placed yet, with where their event is:
    (event_id, trigger, latitude, longitude, depth_km, magnitude)."""
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in conn.execute(
        "SELECT w.event_id, w.trigger, e.latitude, e.longitude, e.depth_km, e.magnitude"
        " FROM work w JOIN events e ON e.id = w.event_id WHERE w.priority IS NULL"
        f" LIMIT {int(limit):d}").fetchall()]


def set_priorities(conn: sqlite3.Connection, levels: Iterable[tuple[str, int]]) -> int:
    """Place items: (event_id, priority) pairs; returns how many were placed."""
    return max(conn.executemany("UPDATE work SET priority = ? WHERE event_id = ?",
                                [(int(p), e) for e, p in levels]).rowcount, 0)


def claim_work(conn: sqlite3.Connection, event_id: str) -> str | None:
    """The item's trigger, or None when it is gone. SQLite has one writer: the transaction
    itself (BEGIN IMMEDIATE) is the claim; PostgreSQL locks the row (SKIP LOCKED)."""
    row = conn.execute("SELECT trigger FROM work WHERE event_id = ?", (event_id,)).fetchone()
    return None if row is None else str(row[0])


def finish_work(conn: sqlite3.Connection, event_ids: Iterable[str]) -> int:
    """End items (in the transaction that stored what they caused); returns how many."""
    return max(conn.executemany("DELETE FROM work WHERE event_id = ?",
                                [(e,) for e in event_ids]).rowcount, 0)


def fail_work(conn: sqlite3.Connection, event_id: str, error: str, *, max_failures: int) -> None:
    """Count a failed attempt; park the item (priority -1) after ``max_failures``."""
    conn.execute(
        "UPDATE work SET failures = failures + 1, last_error = ?, priority = CASE WHEN"
        " failures + 1 >= ? THEN -1 ELSE priority END WHERE event_id = ?",
        (error[:500], max_failures, event_id))


def pending_work(conn: sqlite3.Connection) -> int:
    """How many items wait (parked ones not counted)."""
    return int(conn.execute(
        "SELECT count(*) FROM work WHERE priority IS NULL OR priority >= 0").fetchone()[0])


def parked_work(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Items given up on after repeated failures, oldest event first, with the last error."""
    return [{"event_id": r[0], "trigger": r[1], "failures": int(r[2]), "last_error": r[3]}
            for r in conn.execute("SELECT event_id, trigger, failures, last_error FROM work"
                                  " WHERE priority < 0 ORDER BY origin_at, event_id")]
