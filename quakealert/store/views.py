"""Read-only aggregates in SQLite for the duty console, /metrics and the drill report.

Counts per area, reason and state across decisions, notices, outbox and subscribers: shapes
only those pages need, kept here so the views hold no SQL.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from quakealert.store.outbox import unexpanded


def sequence_known(conn: sqlite3.Connection, seq_id: str) -> bool:
    """Whether a sequence, or a notice or decision naming it, is stored."""
    return bool(conn.execute(
        "SELECT EXISTS (SELECT 1 FROM sequences WHERE id = ?)"
        " OR EXISTS (SELECT 1 FROM notices WHERE sequence_id = ?)"
        " OR EXISTS (SELECT 1 FROM decisions WHERE sequence_id = ?)",
        (seq_id, seq_id, seq_id)).fetchone()[0])


def any_exercise(conn: sqlite3.Connection) -> bool:
    """Whether any stored notice is an exercise (drill) notice."""
    return bool(conn.execute(
        "SELECT EXISTS (SELECT 1 FROM notices WHERE exercise = 1)").fetchone()[0])


def newest_felt_event(conn: sqlite3.Connection, felt_degree: int) -> str | None:
    """The newest event someone was notified about or predicted to feel (degree ≥ felt)."""
    row = conn.execute(
        "SELECT d.event_id FROM decisions d JOIN events e ON e.id = d.event_id"
        " WHERE d.send = 1 OR d.degree >= ? ORDER BY e.origin_at DESC LIMIT 1",
        (felt_degree,)).fetchone()
    return None if row is None else str(row[0])


def event_decisions_by_area(conn: sqlite3.Connection, event_id: str) -> list[dict[str, Any]]:
    """One event's decisions per (area, send, reason): degree, count and the reason's words."""
    return [dict(r) for r in conn.execute(
        "SELECT area, send, max(degree) AS degree, sum(count) AS n, reason_code,"
        " max(reason_zh) AS zh, max(reason_en) AS en FROM decisions WHERE event_id = ?"
        " GROUP BY area, send, reason_code", (event_id,))]


def event_deliveries_by_area(conn: sqlite3.Connection, event_id: str) -> list[dict[str, Any]]:
    """Outbox rows of one event's notices per (subscriber area, state)."""
    return [dict(r) for r in conn.execute(
        "SELECT s.area, o.state, count(*) AS n FROM outbox o JOIN notices n ON"
        " n.id = o.notice_id LEFT JOIN subscribers s ON s.id = o.subscriber_id"
        " WHERE n.event_id = ? GROUP BY s.area, o.state", (event_id,))]


def sequence_of_event(conn: sqlite3.Connection, event_id: str) -> str | None:
    """A stored sequence the event is a member of, or None."""
    row = conn.execute("SELECT sequence_id FROM sequence_members WHERE event_id = ?"
                       " LIMIT 1", (event_id,)).fetchone()
    return None if row is None else str(row[0])


def sequence_decisions(conn: sqlite3.Connection, seq_id: str) -> list[dict[str, Any]]:
    """A sequence's decisions per (event, area, send, reason), areas in order."""
    return [dict(r) for r in conn.execute(
        "SELECT event_id, area, send, max(degree) AS degree, sum(count) AS n,"
        " max(reason_zh) AS zh, max(reason_en) AS en FROM decisions WHERE sequence_id = ?"
        " GROUP BY event_id, area, send, reason_code ORDER BY area", (seq_id,))]


def sequences_by_type(conn: sqlite3.Connection) -> dict[str, int]:
    """Stored sequences per type."""
    return {str(kind): int(n) for kind, n in conn.execute(
        "SELECT type, count(*) FROM sequences GROUP BY type")}


def outbox_depth(conn: sqlite3.Connection) -> int:
    """Deliveries not finished yet: outbox rows pending or in flight, plus the recipients still
    folded in fan-out rows."""
    depth = conn.execute(
        "SELECT count(*) FROM outbox WHERE state IN ('pending', 'in_flight')").fetchone()[0]
    return int(depth) + unexpanded(conn)


def notice_sent_areas(conn: sqlite3.Connection, notice_id: str) -> list[dict[str, Any]]:
    """Who a notice went to, per area: count, reason codes (comma-joined), the reason's words."""
    return [dict(r) for r in conn.execute(
        "SELECT area, sum(count) AS n, group_concat(DISTINCT reason_code) AS why,"
        " max(reason_zh) AS why_zh, max(reason_en) AS why_en FROM"
        " decisions WHERE notice_id = ? AND send = 1 GROUP BY area ORDER BY area",
        (notice_id,)).fetchall()]


def not_sent_reasons(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every not-sent decision per (event, reason, area, moment), in time order."""
    return [dict(r) for r in conn.execute(
        "SELECT event_id, reason_code, reason_en, reason_zh, area, at, sum(count) AS n"
        " FROM decisions WHERE send = 0"
        " GROUP BY event_id, reason_code, reason_en, reason_zh, area, at ORDER BY at, area")]


def subscribers_per_area(conn: sqlite3.Connection) -> list[tuple[str | None, int]]:
    """(area key or None, subscriber count), areas in order."""
    return [(r[0], int(r[1])) for r in conn.execute(
        "SELECT area, count(*) FROM subscribers GROUP BY area ORDER BY area")]


def decided_sequences(conn: sqlite3.Connection) -> set[str]:
    """Ids of the sequences residents were decided about (a decision or a notice names them)."""
    return {r[0] for r in conn.execute(
        "SELECT DISTINCT sequence_id FROM decisions UNION SELECT sequence_id FROM notices")}
