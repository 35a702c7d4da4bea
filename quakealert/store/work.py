"""The pipeline's durable work queue in SQLite: one row per changed event nobody processed yet.

Ingest writes the rows in the batch's own transaction (``sqlite.record_work``); the pipeline
places them (priority 2 near residents, 1 large elsewhere, 0 far from everyone, -1 parked after
repeated failures) and deletes each in the transaction that processes it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable


def next_items(conn: sqlite3.Connection, limit: int = 200
               ) -> list[tuple[str, str, float, int | None]]:
    """(event_id, trigger, received_at, priority) of the next items: most urgent, then oldest."""
    return [tuple(r) for r in conn.execute(  # type: ignore[misc]
        "SELECT event_id, trigger, received_at, priority FROM work WHERE priority IS NULL"
        " OR priority >= 0 ORDER BY priority DESC, origin_at, event_id"
        f" LIMIT {int(limit):d}").fetchall()]


def unprioritised(conn: sqlite3.Connection, limit: int
                  ) -> list[tuple[str, str, float, float, float | None, float | None]]:
    """(event_id, trigger, latitude, longitude, depth_km, magnitude) of items not placed yet."""
    return [tuple(r) for r in conn.execute(  # type: ignore[misc]
        "SELECT w.event_id, w.trigger, e.latitude, e.longitude, e.depth_km, e.magnitude"
        " FROM work w JOIN events e ON e.id = w.event_id WHERE w.priority IS NULL"
        f" LIMIT {int(limit):d}").fetchall()]


def set_priorities(conn: sqlite3.Connection, levels: Iterable[tuple[int, str]]) -> None:
    """Place items: (priority, event_id) pairs."""
    conn.executemany("UPDATE work SET priority = ? WHERE event_id = ?", levels)


def done(conn: sqlite3.Connection, event_ids: Iterable[str]) -> None:
    """The items of these events are processed."""
    conn.executemany("DELETE FROM work WHERE event_id = ?", [(e,) for e in event_ids])


def failed(conn: sqlite3.Connection, event_id: str, error: str, *, max_failures: int) -> None:
    """Count a failed attempt; park the item (priority -1) after ``max_failures``."""
    conn.execute(
        "UPDATE work SET failures = failures + 1, last_error = ?, priority = CASE WHEN"
        " failures + 1 >= ? THEN -1 ELSE priority END WHERE event_id = ?",
        (error, max_failures, event_id))


def pending(conn: sqlite3.Connection) -> int:
    """How many items wait (parked ones not counted)."""
    return int(conn.execute(
        "SELECT count(*) FROM work WHERE priority IS NULL OR priority >= 0").fetchone()[0])
