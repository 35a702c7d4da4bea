"""Policy decisions and residents' threads on PostgreSQL: the functions of
:mod:`quakealert.store.decisions` with the same arguments and results (group rows carry their
members as little-endian int64 bytes, as on SQLite). Checked by
tests/pg/test_pg_decisions_contract.py on both backends."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row, tuple_row

from quakealert.store.decisions import DecisionRow
from quakealert.store.instants import iso_epoch as _iso


def _rows(conn: psycopg.Connection[Any], query: str, params: Any = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def _tuples(conn: psycopg.Connection[Any], query: str, params: Any = ()) -> list[tuple[Any, ...]]:
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(query, params).fetchall()


def save_decisions(conn: psycopg.Connection[Any], rows: Iterable[DecisionRow]) -> int:
    """Append decisions (the caller holds the transaction); returns how many rows were written."""
    data = [
        (r.at.timestamp(), r.sequence_id, r.event_id, r.subscriber_id, r.area, bool(r.send),
         r.kind, r.msg_type, r.urgency, r.reason_code, r.reason_en, r.reason_zh, r.notice_id,
         r.degree, r.count, r.members)
        for r in rows
    ]
    if not data:
        return 0
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO decisions (at, sequence_id, event_id, subscriber_id, area, send, kind,"
            " msg_type, urgency, reason_code, reason_en, reason_zh, notice_id, degree, count,"
            " members) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", data)
    return len(data)


def _decision(r: dict[str, Any]) -> dict[str, Any]:
    return {"at": _iso(r["at"]), "sequence_id": r["sequence_id"], "event_id": r["event_id"],
            "send": bool(r["send"]), "kind": r["kind"], "msg_type": r["msg_type"],
            "urgency": r["urgency"], "reason_code": r["reason_code"], "reason_en": r["reason_en"],
            "reason_zh": r["reason_zh"], "notice_id": r["notice_id"], "area": r["area"],
            "degree": r["degree"]}


def list_decisions(
    conn: psycopg.Connection[Any], *, sequence_id: str | None = None,
    notice_id: str | None = None, send: bool | None = None, limit: int = 500,
) -> list[dict[str, Any]]:
    """Decisions, oldest first; never a subscriber's place (only the county/district key)."""
    where, args = [], []
    for column, value in (("sequence_id", sequence_id), ("notice_id", notice_id),
                          ("send", None if send is None else bool(send))):
        if value is not None:
            where.append(f"{column} = %s")
            args.append(value)
    query = "SELECT * FROM decisions"
    if where:
        query += " WHERE " + " AND ".join(where)
    query += f" ORDER BY at, id LIMIT {int(limit):d}"
    return [{**_decision(r), "count": r["count"]} for r in _rows(conn, query, args)]


def decision_summary(conn: psycopg.Connection[Any], sequence_id: str) -> list[dict[str, Any]]:
    """Counts of residents per (decision, reason, area) for one sequence."""
    return [
        {"send": bool(r["send"]), "reason_code": r["reason_code"], "area": r["area"],
         "residents": int(r["n"])}
        for r in _rows(
            conn, "SELECT send, reason_code, area, sum(count)::bigint AS n FROM decisions"
            " WHERE sequence_id = %s GROUP BY send, reason_code, area"
            " ORDER BY send DESC, n DESC", (sequence_id,))
    ]


def resident_decisions(conn: psycopg.Connection[Any], subscriber_id: int, *,
                       sequence_id: str | None = None) -> list[dict[str, Any]]:
    """One resident's own decisions, oldest first: their individual rows and the group rows
    that count them among their members."""
    query = ("SELECT * FROM decisions WHERE (subscriber_id = %s OR members IS NOT NULL)"
             + (" AND sequence_id = %s" if sequence_id is not None else "") + " ORDER BY at, id")
    args: list[Any] = [subscriber_id] + ([sequence_id] if sequence_id is not None else [])
    out = []
    for r in _rows(conn, query, args):
        if r["subscriber_id"] != subscriber_id and not (
                np.frombuffer(r["members"], dtype="<i8") == subscriber_id).any():
            continue
        out.append({**_decision(r), "decided_with": int(r["count"])})
    return out


def load_thread(conn: psycopg.Connection[Any], subscriber_id: int,
                sequence_id: str) -> str | None:
    """One resident's thread state: their own, else the latest group state naming them."""
    raw = threads_for(conn, sequence_id).get(subscriber_id)
    if raw is None:
        return None
    return thread_states(conn, sequence_id)[int(raw[1:])] if raw.startswith("@") else raw


def threads_for(conn: psycopg.Connection[Any], sequence_id: str) -> dict[int, str]:
    """Every thread of one sequence: subscriber id -> their own serialised state, or '@<id>'
    for the latest group state that names them (:func:`thread_states`)."""
    own = {int(r[0]): str(r[1]) for r in _tuples(
        conn, "SELECT subscriber_id, state FROM threads WHERE sequence_id = %s", (sequence_id,))}
    groups = _tuples(conn, "SELECT id, members FROM thread_states WHERE sequence_id = %s"
                           " ORDER BY id", (sequence_id,))
    if not groups:
        return own
    members = [np.frombuffer(g[1], dtype="<i8") for g in groups]
    sids = np.concatenate(members)
    gids = np.repeat(np.array([g[0] for g in groups], dtype=np.int64), [len(m) for m in members])
    last = len(sids) - 1 - np.unique(sids[::-1], return_index=True)[1]
    shared = dict(zip(sids[last].tolist(), (f"@{g}" for g in gids[last].tolist()), strict=True))
    shared.update(own)
    return shared


def thread_states(conn: psycopg.Connection[Any], sequence_id: str) -> dict[int, str]:
    """The shared thread states of one sequence: id -> serialised state."""
    return {int(r[0]): str(r[1]) for r in _tuples(
        conn, "SELECT id, state FROM thread_states WHERE sequence_id = %s", (sequence_id,))}


def save_group_thread(conn: psycopg.Connection[Any], subscriber_ids: Sequence[int],
                      sequence_id: str, state: str, at: datetime) -> int:
    """One state for a whole group's threads, one row (the caller holds the transaction);
    returns its id. Residents with a thread of their own are never in a group."""
    return int(_tuples(
        conn, "INSERT INTO thread_states (sequence_id, state, members, updated_at)"
        " VALUES (%s, %s, %s, %s) RETURNING id",
        (sequence_id, state, np.asarray(subscriber_ids, dtype="<i8").tobytes(),
         at.timestamp()))[0][0])


def save_thread(conn: psycopg.Connection[Any], subscriber_id: int, sequence_id: str,
                state: str, at: datetime) -> None:
    conn.execute(
        "INSERT INTO threads (subscriber_id, sequence_id, state, updated_at)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (subscriber_id, sequence_id)"
        " DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        (subscriber_id, sequence_id, state, at.timestamp()))


def event_decisions(conn: psycopg.Connection[Any], event_id: str) -> list[dict[str, Any]]:
    """Decisions about one event, oldest first, grouped by (decision, reason, sequence, kind)
    (see :func:`quakealert.store.decisions.event_decisions`)."""
    return [
        {"send": bool(r["send"]), "reason_code": r["reason_code"], "reason_en": r["reason_en"],
         "reason_zh": r["reason_zh"], "sequence_id": r["sequence_id"], "kind": r["kind"],
         "msg_type": r["msg_type"], "count": int(r["n"]), "first_at": _iso(r["first_at"]),
         "last_at": _iso(r["last_at"])}
        for r in _rows(
            conn, "SELECT g.*, l.reason_en, l.reason_zh, l.msg_type FROM ("
            " SELECT send, reason_code, sequence_id, kind, sum(count) AS n, max(id) AS last,"
            " min(at) AS first_at, max(at) AS last_at FROM decisions"
            " WHERE event_id = %s GROUP BY send, reason_code, sequence_id, kind) g"
            " JOIN decisions l ON l.id = g.last ORDER BY g.first_at, g.last", (event_id,))
    ]


def not_earthquakes(conn: psycopg.Connection[Any], *, limit: int = 20) -> list[dict[str, Any]]:
    """The latest "not sent: not an earthquake" decisions, newest first, with the event and
    how many residents got a Cancel for it (see the SQLite module)."""
    return [
        {"at": _iso(r["at"]), "event_id": r["event_id"], "sequence_id": r["sequence_id"],
         "reason_en": r["reason_en"], "reason_zh": r["reason_zh"], "event_type": r["event_type"],
         "time": _iso(r["origin_at"]), "magnitude": r["magnitude"],
         "latitude": r["latitude"], "longitude": r["longitude"], "place": r["place"],
         "cancelled_for": int(r["cancelled"] or 0)}
        for r in _rows(
            conn, "SELECT d.at, d.event_id, d.sequence_id, d.reason_en, d.reason_zh,"
            " e.event_type, e.origin_at, e.magnitude, e.latitude, e.longitude, e.place,"
            " (SELECT sum(c.count) FROM decisions c WHERE c.event_id = d.event_id AND c.send"
            "  AND c.reason_code = 'event_not_earthquake') AS cancelled"
            " FROM decisions d LEFT JOIN events e ON e.id = d.event_id"
            " WHERE d.reason_code = 'not_earthquake'"
            " ORDER BY d.at DESC, d.id DESC LIMIT %s", (int(limit),))
    ]


def has_threads(conn: psycopg.Connection[Any], sequence_id: str) -> bool:
    """Whether any resident has a thread (own or shared) in this sequence: was told of it."""
    return bool(_tuples(
        conn, "SELECT 1 FROM threads WHERE sequence_id = %s UNION ALL SELECT 1"
        " FROM thread_states WHERE sequence_id = %s LIMIT 1", (sequence_id, sequence_id)))
