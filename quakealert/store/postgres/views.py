"""Read-only aggregates on PostgreSQL for the duty console, /metrics and the drill report: the
functions of :mod:`quakealert.store.views` with the same arguments and results (booleans are
columns here, ``group_concat`` is ``string_agg``, NULL areas sort first as in SQLite)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row

from quakealert.store.postgres.outbox import unexpanded


def _rows(conn: psycopg.Connection[Any], query: str, params: Any = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def _tuples(conn: psycopg.Connection[Any], query: str, params: Any = ()) -> list[tuple[Any, ...]]:
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(query, params).fetchall()


def sequence_known(conn: psycopg.Connection[Any], seq_id: str) -> bool:
    """Whether a sequence, or a notice or decision naming it, is stored."""
    return bool(_tuples(
        conn, "SELECT EXISTS (SELECT 1 FROM sequences WHERE id = %s)"
        " OR EXISTS (SELECT 1 FROM notices WHERE sequence_id = %s)"
        " OR EXISTS (SELECT 1 FROM decisions WHERE sequence_id = %s)",
        (seq_id, seq_id, seq_id))[0][0])


def any_exercise(conn: psycopg.Connection[Any]) -> bool:
    """Whether any stored notice is an exercise (drill) notice."""
    return bool(_tuples(conn, "SELECT EXISTS (SELECT 1 FROM notices WHERE exercise)")[0][0])


def newest_felt_event(conn: psycopg.Connection[Any], felt_degree: int) -> str | None:
    """The newest event someone was notified about or predicted to feel (degree ≥ felt)."""
    rows = _tuples(
        conn, "SELECT d.event_id FROM decisions d JOIN events e ON e.id = d.event_id"
        " WHERE d.send OR d.degree >= %s ORDER BY e.origin_at DESC LIMIT 1", (felt_degree,))
    return str(rows[0][0]) if rows else None


def event_decisions_by_area(conn: psycopg.Connection[Any], event_id: str) -> list[dict[str, Any]]:
    """One event's decisions per (area, send, reason): degree, count and the reason's words."""
    return [{**r, "send": int(r["send"]), "n": int(r["n"])} for r in _rows(
        conn, "SELECT area, send, max(degree) AS degree, sum(count) AS n, reason_code,"
        " max(reason_zh) AS zh, max(reason_en) AS en FROM decisions WHERE event_id = %s"
        " GROUP BY area, send, reason_code", (event_id,))]


def event_deliveries_by_area(conn: psycopg.Connection[Any],
                             event_id: str) -> list[dict[str, Any]]:
    """Outbox rows of one event's notices per (subscriber area, state)."""
    return _rows(
        conn, "SELECT s.area, o.state, count(*) AS n FROM outbox o JOIN notices n ON"
        " n.id = o.notice_id LEFT JOIN subscribers s ON s.id = o.subscriber_id"
        " WHERE n.event_id = %s GROUP BY s.area, o.state", (event_id,))


def sequence_of_event(conn: psycopg.Connection[Any], event_id: str) -> str | None:
    """A stored sequence the event is a member of, or None."""
    rows = _tuples(conn, "SELECT sequence_id FROM sequence_members WHERE event_id = %s"
                         " LIMIT 1", (event_id,))
    return str(rows[0][0]) if rows else None


def sequence_decisions(conn: psycopg.Connection[Any], seq_id: str) -> list[dict[str, Any]]:
    """A sequence's decisions per (event, area, send, reason), areas in order."""
    return [{**r, "send": int(r["send"]), "n": int(r["n"])} for r in _rows(
        conn, "SELECT event_id, area, send, max(degree) AS degree, sum(count) AS n,"
        " max(reason_zh) AS zh, max(reason_en) AS en FROM decisions WHERE sequence_id = %s"
        " GROUP BY event_id, area, send, reason_code ORDER BY area NULLS FIRST", (seq_id,))]


def sequences_by_type(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Stored sequences per type."""
    return {str(kind): int(n) for kind, n in _tuples(
        conn, "SELECT type, count(*) FROM sequences GROUP BY type")}


def outbox_depth(conn: psycopg.Connection[Any]) -> int:
    """Deliveries not finished yet: outbox rows pending or in flight, plus the recipients still
    folded in fan-out rows."""
    depth = _tuples(conn, "SELECT count(*) FROM outbox"
                          " WHERE state IN ('pending', 'in_flight')")[0][0]
    return int(depth) + unexpanded(conn)


def notice_sent_areas(conn: psycopg.Connection[Any], notice_id: str) -> list[dict[str, Any]]:
    """Who a notice went to, per area: count, reason codes (comma-joined), the reason's words."""
    return [{**r, "n": int(r["n"])} for r in _rows(
        conn, "SELECT area, sum(count) AS n, string_agg(DISTINCT reason_code, ',') AS why,"
        " max(reason_zh) AS why_zh, max(reason_en) AS why_en FROM"
        " decisions WHERE notice_id = %s AND send GROUP BY area ORDER BY area NULLS FIRST", (notice_id,))]


def not_sent_reasons(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Every not-sent decision per (event, reason, area, moment), in time order."""
    return [{**r, "n": int(r["n"])} for r in _rows(
        conn, "SELECT event_id, reason_code, reason_en, reason_zh, area, at, sum(count) AS n"
        " FROM decisions WHERE NOT send"
        " GROUP BY event_id, reason_code, reason_en, reason_zh, area, at ORDER BY at, area NULLS FIRST")]


def subscribers_per_area(conn: psycopg.Connection[Any]) -> list[tuple[str | None, int]]:
    """(area key or None, subscriber count), areas in order."""
    return [(r[0], int(r[1])) for r in _tuples(
        conn, "SELECT area, count(*) FROM subscribers GROUP BY area ORDER BY area NULLS FIRST")]


def decided_sequences(conn: psycopg.Connection[Any]) -> set[str]:
    """Ids of the sequences residents were decided about (a decision or a notice names them)."""
    return {r[0] for r in _tuples(
        conn, "SELECT DISTINCT sequence_id FROM decisions UNION SELECT sequence_id FROM notices")}
