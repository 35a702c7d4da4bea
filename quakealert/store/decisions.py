"""Policy decisions (sent and not sent, with reasons) and per-subscriber threads."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from quakealert.store.instants import iso_epoch as _iso


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """One recorded decision; ``count`` > 1 for a group decided together (``members``: their
    subscriber ids as little-endian int64) or an aggregated "not sent" decision."""

    at: datetime
    sequence_id: str
    event_id: str
    send: bool
    reason_code: str
    reason_en: str
    reason_zh: str
    subscriber_id: int | None = None
    area: str | None = None
    kind: str | None = None
    msg_type: str | None = None
    urgency: str | None = None
    notice_id: str | None = None
    degree: int | None = None
    count: int = 1
    members: bytes | None = None


def save_decisions(conn: sqlite3.Connection, rows: Iterable[DecisionRow]) -> int:
    """Append decisions (the caller holds the transaction); returns how many rows were written."""
    data = [
        (r.at.timestamp(), r.sequence_id, r.event_id, r.subscriber_id, r.area, int(r.send), r.kind,
         r.msg_type, r.urgency, r.reason_code, r.reason_en, r.reason_zh, r.notice_id, r.degree,
         r.count, r.members)
        for r in rows
    ]
    conn.executemany(
        "INSERT INTO decisions (at, sequence_id, event_id, subscriber_id, area, send, kind,"
        " msg_type, urgency, reason_code, reason_en, reason_zh, notice_id, degree, count,"
        " members) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        data,
    )
    return len(data)




def list_decisions(
    conn: sqlite3.Connection, *, sequence_id: str | None = None, notice_id: str | None = None,
    send: bool | None = None, limit: int = 500,
) -> list[dict[str, Any]]:
    """Decisions, oldest first; never a subscriber's place (only the county/district key)."""
    where, args = [], []
    if sequence_id is not None:
        where.append("sequence_id = ?")
        args.append(sequence_id)
    if notice_id is not None:
        where.append("notice_id = ?")
        args.append(notice_id)
    if send is not None:
        where.append("send = ?")
        args.append(int(send))
    sql = "SELECT * FROM decisions"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY at, id LIMIT {int(limit):d}"
    return [
        {"at": _iso(r["at"]), "sequence_id": r["sequence_id"], "event_id": r["event_id"],
         "send": bool(r["send"]), "kind": r["kind"], "msg_type": r["msg_type"],
         "urgency": r["urgency"], "reason_code": r["reason_code"], "reason_en": r["reason_en"],
         "reason_zh": r["reason_zh"], "notice_id": r["notice_id"], "area": r["area"],
         "degree": r["degree"], "count": r["count"]}
        for r in conn.execute(sql, args)
    ]


def event_decisions(conn: sqlite3.Connection, event_id: str) -> list[dict[str, Any]]:
    """Decisions about one event, oldest first, grouped by (decision, reason, sequence, kind);
    ``count`` is resident-decisions (1 for a decision about the event alone, such as "not an
    earthquake"), the reason text the group's latest. Non-earthquakes have their "not sent"
    here even when they belong to no sequence (sequence_id "")."""
    return [
        {"send": bool(r["send"]), "reason_code": r["reason_code"], "reason_en": r["reason_en"],
         "reason_zh": r["reason_zh"], "sequence_id": r["sequence_id"], "kind": r["kind"],
         "msg_type": r["msg_type"], "count": int(r["n"]), "first_at": _iso(r["first_at"]),
         "last_at": _iso(r["last_at"])}
        for r in conn.execute(
            "SELECT g.*, l.reason_en, l.reason_zh, l.msg_type FROM ("
            " SELECT send, reason_code, sequence_id, kind, sum(count) AS n, max(id) AS last,"
            " min(at) AS first_at, max(at) AS last_at FROM decisions"
            " WHERE event_id = ? GROUP BY send, reason_code, sequence_id, kind) g"
            " JOIN decisions l ON l.id = g.last ORDER BY g.first_at, g.last", (event_id,))
    ]


def not_earthquakes(conn: sqlite3.Connection, *, limit: int = 20) -> list[dict[str, Any]]:
    """The latest "not sent: not an earthquake" decisions (explosions, quarry blasts,
    collapses...), newest first, with the event and how many residents got a Cancel for it
    (a quake they were told about, retyped later)."""
    return [
        {"at": _iso(r["at"]), "event_id": r["event_id"], "sequence_id": r["sequence_id"],
         "reason_en": r["reason_en"], "reason_zh": r["reason_zh"], "event_type": r["event_type"],
         "time": _iso(r["origin_at"]), "magnitude": r["magnitude"],
         "latitude": r["latitude"], "longitude": r["longitude"], "place": r["place"],
         "cancelled_for": int(r["cancelled"] or 0)}
        for r in conn.execute(
            "SELECT d.at, d.event_id, d.sequence_id, d.reason_en, d.reason_zh, e.event_type,"
            " e.origin_at, e.magnitude, e.latitude, e.longitude, e.place, (SELECT sum(c.count)"
            "  FROM decisions c WHERE c.event_id = d.event_id AND c.send = 1"
            "  AND c.reason_code = 'event_not_earthquake') AS cancelled"
            " FROM decisions d LEFT JOIN events e ON e.id = d.event_id"
            " WHERE d.reason_code = 'not_earthquake'"
            f" ORDER BY d.at DESC, d.id DESC LIMIT {int(limit):d}")
    ]


def decision_summary(conn: sqlite3.Connection, sequence_id: str) -> list[dict[str, Any]]:
    """Counts of residents per (decision, reason, area) for one sequence."""
    return [
        {"send": bool(r["send"]), "reason_code": r["reason_code"], "area": r["area"],
         "residents": r["n"]}
        for r in conn.execute(
            "SELECT send, reason_code, area, sum(count) AS n FROM decisions WHERE sequence_id = ?"
            " GROUP BY send, reason_code, area ORDER BY send DESC, n DESC", (sequence_id,))
    ]


def resident_decisions(conn: sqlite3.Connection, subscriber_id: int, *,
                       sequence_id: str | None = None) -> list[dict[str, Any]]:
    """One resident's own decisions, oldest first: their individual rows and the group rows
    that count them among their members."""
    sql = ("SELECT * FROM decisions WHERE (subscriber_id = ? OR members IS NOT NULL)"
           + (" AND sequence_id = ?" if sequence_id is not None else "") + " ORDER BY at, id")
    args: list[Any] = [subscriber_id] + ([sequence_id] if sequence_id is not None else [])
    out = []
    for r in conn.execute(sql, args):
        if r["subscriber_id"] != subscriber_id and not (
                np.frombuffer(r["members"], dtype="<i8") == subscriber_id).any():
            continue
        out.append({"at": _iso(r["at"]), "sequence_id": r["sequence_id"],
                    "event_id": r["event_id"], "send": bool(r["send"]), "kind": r["kind"],
                    "msg_type": r["msg_type"], "urgency": r["urgency"],
                    "reason_code": r["reason_code"], "reason_en": r["reason_en"],
                    "reason_zh": r["reason_zh"], "notice_id": r["notice_id"], "area": r["area"],
                    "degree": r["degree"], "decided_with": int(r["count"])})
    return out


def load_thread(conn: sqlite3.Connection, subscriber_id: int, sequence_id: str) -> str | None:
    """One resident's thread state: their own, else the latest group state naming them."""
    raw = threads_for(conn, sequence_id).get(subscriber_id)
    if raw is None:
        return None
    return thread_states(conn, sequence_id)[int(raw[1:])] if raw.startswith("@") else raw


def threads_for(conn: sqlite3.Connection, sequence_id: str) -> dict[int, str]:
    """Every thread of one sequence: subscriber id -> their own serialised state, or '@<id>'
    for the latest group state that names them (:func:`thread_states`)."""
    own = {int(r[0]): str(r[1]) for r in conn.execute(
        "SELECT subscriber_id, state FROM threads WHERE sequence_id = ?", (sequence_id,))}
    groups = conn.execute("SELECT id, members FROM thread_states WHERE sequence_id = ?"
                          " ORDER BY id", (sequence_id,)).fetchall()
    if not groups:
        return own
    members = [np.frombuffer(g[1], dtype="<i8") for g in groups]
    sids = np.concatenate(members)
    gids = np.repeat(np.array([g[0] for g in groups], dtype=np.int64), [len(m) for m in members])
    # The latest state naming a resident wins: keep the last occurrence of each id.
    last = len(sids) - 1 - np.unique(sids[::-1], return_index=True)[1]
    shared = dict(zip(sids[last].tolist(), (f"@{g}" for g in gids[last].tolist()), strict=True))
    shared.update(own)
    return shared


def thread_states(conn: sqlite3.Connection, sequence_id: str) -> dict[int, str]:
    """The shared thread states of one sequence: id -> serialised state."""
    return {int(r[0]): str(r[1]) for r in conn.execute(
        "SELECT id, state FROM thread_states WHERE sequence_id = ?", (sequence_id,))}


def save_group_thread(conn: sqlite3.Connection, subscriber_ids: Sequence[int],
                      sequence_id: str, state: str, at: datetime) -> int:
    """One state for a whole group's threads, one row (the caller holds the transaction);
    returns its id. Residents with a thread of their own are never in a group."""
    cur = conn.execute(
        "INSERT INTO thread_states (sequence_id, state, members, updated_at) VALUES (?,?,?,?)",
        (sequence_id, state, np.asarray(subscriber_ids, dtype="<i8").tobytes(), at.timestamp()))
    return int(cur.lastrowid or 0)


def save_thread(conn: sqlite3.Connection, subscriber_id: int, sequence_id: str, state: str,
                at: datetime) -> None:
    conn.execute(
        "INSERT INTO threads (subscriber_id, sequence_id, state, updated_at) VALUES (?,?,?,?)"
        " ON CONFLICT (subscriber_id, sequence_id) DO UPDATE SET state = excluded.state,"
        " updated_at = excluded.updated_at",
        (subscriber_id, sequence_id, state, at.timestamp()),
    )


def has_threads(conn: sqlite3.Connection, sequence_id: str) -> bool:
    """Whether any resident has a thread (own or shared) in this sequence: was told of it."""
    return conn.execute(
        "SELECT 1 FROM threads WHERE sequence_id = ? UNION ALL SELECT 1 FROM thread_states"
        " WHERE sequence_id = ? LIMIT 1", (sequence_id, sequence_id)).fetchone() is not None
