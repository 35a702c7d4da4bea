"""The pipeline's work queue on PostgreSQL (schema 009_work): what ingest stored and the
pipeline has not processed yet. Rows are written by :func:`events.record_work` in the batch's
transaction and deleted by :func:`finish_work` in the transaction that stores the decisions,
notices and outbox rows they caused, so a crash anywhere loses nothing.

The SQL is the pipeline's (``service/pipeline.py`` runs it on SQLite today), as functions of a
connection. One thing is PostgreSQL's own: :func:`claim_work` locks an item for the caller's
transaction with ``FOR UPDATE SKIP LOCKED``, so a deposed leader still finishing an item and
the new leader starting on the queue never process the same event at once; the second one
skips it, and finds it gone (done) or back (rolled back) on its next round.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg.rows import tuple_row

_NEXT_SQL = (
    "SELECT event_id, trigger, received_at, priority FROM work"
    " WHERE priority IS NULL OR priority >= 0"
    # NULLS LAST: SQLite orders NULL below every number, so not-yet-placed items come last.
    " ORDER BY priority DESC NULLS LAST, origin_at, event_id LIMIT %s"
)


def _tuples(conn: psycopg.Connection[Any], query: str, params: Any = ()) -> list[tuple[Any, ...]]:
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(query, params).fetchall()


def next_work(conn: psycopg.Connection[Any],
              limit: int = 200) -> list[tuple[str, str, float, int | None]]:
    """Queued items, those that can concern residents first, then by origin time:
    (event_id, trigger, received_at, priority). Parked items (priority -1) are left out."""
    return [(r[0], r[1], r[2], r[3]) for r in _tuples(conn, _NEXT_SQL, (int(limit),))]


def unprioritised(conn: psycopg.Connection[Any], limit: int = 50_000,
                  ) -> list[tuple[str, str, float, float, float | None, float | None]]:
    """Items the pipeline has not placed yet, with where their event is:
    (event_id, trigger, latitude, longitude, depth_km, magnitude)."""
    return [(r[0], r[1], r[2], r[3], r[4], r[5]) for r in _tuples(
        conn, "SELECT w.event_id, w.trigger, e.latitude, e.longitude, e.depth_km, e.magnitude"
        " FROM work w JOIN events e ON e.id = w.event_id WHERE w.priority IS NULL"
        " ORDER BY w.origin_at, w.event_id LIMIT %s", (int(limit),))]


def set_priorities(conn: psycopg.Connection[Any], levels: Iterable[tuple[str, int]]) -> int:
    """Place items: (event_id, priority) with 2 near residents or a region, 1 large elsewhere,
    0 far from everyone. Returns how many were placed (items finished meanwhile are not)."""
    pairs = [(str(e), int(p)) for e, p in levels]
    if not pairs:
        return 0
    cur = conn.execute(
        "UPDATE work w SET priority = u.priority FROM unnest(%s::text[], %s::bigint[])"
        " AS u(event_id, priority) WHERE w.event_id = u.event_id",
        ([e for e, _ in pairs], [p for _, p in pairs]))
    return max(cur.rowcount, 0)


def claim_work(conn: psycopg.Connection[Any], event_id: str) -> str | None:
    """Lock one queued item until the caller's transaction ends and return its trigger; None
    when it is gone (finished) or another connection is processing it. Call it inside the
    transaction that will :func:`finish_work` the item."""
    rows = _tuples(conn, "SELECT trigger FROM work WHERE event_id = %s FOR UPDATE SKIP LOCKED",
                   (event_id,))
    return rows[0][0] if rows else None


def finish_work(conn: psycopg.Connection[Any], event_ids: Iterable[str]) -> int:
    """End items (in the transaction that stored what they caused); returns how many."""
    ids = list(event_ids)
    if not ids:
        return 0
    cur = conn.execute("DELETE FROM work WHERE event_id = ANY(%s::text[])", (ids,))
    return max(cur.rowcount, 0)


def fail_work(conn: psycopg.Connection[Any], event_id: str, error: str, *,
              max_failures: int) -> None:
    """Count a failed attempt; park the item (priority -1) after ``max_failures``."""
    conn.execute(
        "UPDATE work SET failures = failures + 1, last_error = %s, priority = CASE WHEN"
        " failures + 1 >= %s THEN -1 ELSE priority END WHERE event_id = %s",
        (error[:500], int(max_failures), event_id))


def pending_work(conn: psycopg.Connection[Any]) -> int:
    """How many items wait for the pipeline (parked ones not counted)."""
    return int(_tuples(conn, "SELECT count(*) FROM work"
                             " WHERE priority IS NULL OR priority >= 0")[0][0])


def parked_work(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Items given up on after repeated failures, oldest event first, with the last error."""
    return [{"event_id": r[0], "trigger": r[1], "failures": int(r[2]), "last_error": r[3]}
            for r in _tuples(conn, "SELECT event_id, trigger, failures, last_error FROM work"
                                   " WHERE priority < 0 ORDER BY origin_at, event_id")]
