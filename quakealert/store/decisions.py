"""Policy decisions (sent and not sent, with reasons) and per-subscriber threads."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from quakealert.store.instants import iso_epoch as _iso


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """One recorded decision; ``count`` > 1 for aggregated "not sent" decisions."""

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


def save_decisions(conn: sqlite3.Connection, rows: Iterable[DecisionRow]) -> int:
    """Append decisions (the caller holds the transaction); returns how many rows were written."""
    data = [
        (r.at.timestamp(), r.sequence_id, r.event_id, r.subscriber_id, r.area, int(r.send), r.kind,
         r.msg_type, r.urgency, r.reason_code, r.reason_en, r.reason_zh, r.notice_id, r.degree,
         r.count)
        for r in rows
    ]
    conn.executemany(
        "INSERT INTO decisions (at, sequence_id, event_id, subscriber_id, area, send, kind,"
        " msg_type, urgency, reason_code, reason_en, reason_zh, notice_id, degree, count)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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


def decision_summary(conn: sqlite3.Connection, sequence_id: str) -> list[dict[str, Any]]:
    """Counts of residents per (decision, reason, area) for one sequence."""
    return [
        {"send": bool(r["send"]), "reason_code": r["reason_code"], "area": r["area"],
         "residents": r["n"]}
        for r in conn.execute(
            "SELECT send, reason_code, area, sum(count) AS n FROM decisions WHERE sequence_id = ?"
            " GROUP BY send, reason_code, area ORDER BY send DESC, n DESC", (sequence_id,))
    ]


def load_thread(conn: sqlite3.Connection, subscriber_id: int, sequence_id: str) -> str | None:
    row = conn.execute("SELECT state FROM threads WHERE subscriber_id = ? AND sequence_id = ?",
                       (subscriber_id, sequence_id)).fetchone()
    return None if row is None else str(row["state"])


def threads_for(conn: sqlite3.Connection, sequence_id: str) -> dict[int, str]:
    """Every thread of one sequence: subscriber id -> serialised state."""
    return {int(r["subscriber_id"]): str(r["state"]) for r in conn.execute(
        "SELECT subscriber_id, state FROM threads WHERE sequence_id = ?", (sequence_id,))}


def save_thread(conn: sqlite3.Connection, subscriber_id: int, sequence_id: str, state: str,
                at: datetime) -> None:
    conn.execute(
        "INSERT INTO threads (subscriber_id, sequence_id, state, updated_at) VALUES (?,?,?,?)"
        " ON CONFLICT (subscriber_id, sequence_id) DO UPDATE SET state = excluded.state,"
        " updated_at = excluded.updated_at",
        (subscriber_id, sequence_id, state, at.timestamp()),
    )
