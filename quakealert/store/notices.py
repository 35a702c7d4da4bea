"""Notices in SQLite: what residents are told, its approval state, and the CAP area circle.

Functions take the store's ``sqlite3.Connection`` (autocommit; each write is one statement or one
explicit transaction). Instants are aware UTC datetimes in, epoch seconds in the table.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from quakealert.errors import InvalidRequest, NotFound
from quakealert.model import Message, Notice
from quakealert.store.instants import epoch as _ts
from quakealert.store.instants import from_epoch as _dt

NoticeState = Literal["pending_approval", "released", "rejected", "expired"]
STATES: tuple[NoticeState, ...] = ("pending_approval", "released", "rejected", "expired")

# Which state may follow which; a released notice can only expire (its CAP stays in the feed).
_TRANSITIONS: dict[str, frozenset[str]] = {
    "pending_approval": frozenset({"released", "rejected", "expired"}),
    "released": frozenset({"expired"}),
    "rejected": frozenset(),
    "expired": frozenset(),
}


@dataclass(frozen=True, slots=True)
class AreaCircle:
    """The CAP <circle>: epicentre and a radius in km, plus an optional area description."""

    latitude: float
    longitude: float
    radius_km: float
    desc: str | None = None

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.latitude, self.longitude, self.radius_km)


@dataclass(frozen=True, slots=True)
class StoredNotice:
    """A notice with its row metadata: state, when it was released, its area circle."""

    notice: Notice
    state: NoticeState
    state_at: datetime
    state_reason: str | None
    released_at: datetime | None
    area: AreaCircle | None






def messages_json(messages: tuple[Message, ...]) -> str:
    return json.dumps([{"lang": m.lang, "title": m.title, "body": m.body,
                        "push_title": m.push_title, "push_body": m.push_body} for m in messages],
                      ensure_ascii=False)


def save_notice(
    conn: sqlite3.Connection,
    notice: Notice,
    state: NoticeState,
    *,
    area: AreaCircle | None = None,
    at: datetime | None = None,
    reason: str | None = None,
) -> None:
    """Insert a notice (its id must be new); ``released`` stamps ``released_at`` with ``at``."""
    if state not in STATES:
        raise InvalidRequest(f"unknown notice state {state!r}")
    at = at or notice.created_at
    try:
        conn.execute(
            "INSERT INTO notices (id, sequence_id, event_id, kind, msg_type, messages, created_at,"
            " urgency, refs, exercise, url, state, state_reason, state_at, released_at,"
            " area_lat, area_lon, area_radius_km, area_desc)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                notice.id, notice.sequence_id, notice.event_id, notice.kind, notice.msg_type,
                messages_json(notice.messages), _ts(notice.created_at), notice.urgency,
                json.dumps(list(notice.references)), int(notice.exercise), notice.url, state,
                reason, _ts(at), _ts(at) if state == "released" else None,
                area.latitude if area else None, area.longitude if area else None,
                area.radius_km if area else None, area.desc if area else None,
            ),
        )
    except sqlite3.IntegrityError as err:
        raise InvalidRequest(f"notice {notice.id!r} already stored") from err


def notice_from_row(row: sqlite3.Row) -> Notice:
    return Notice(
        id=row["id"], sequence_id=row["sequence_id"], event_id=row["event_id"],
        kind=row["kind"], msg_type=row["msg_type"],
        messages=tuple(Message(lang=m["lang"], title=m["title"], body=m["body"],
                               push_title=m.get("push_title", ""), push_body=m.get("push_body", ""))
                       for m in json.loads(row["messages"])),
        created_at=datetime.fromtimestamp(row["created_at"], UTC),
        urgency=row["urgency"], references=tuple(json.loads(row["refs"])),
        exercise=bool(row["exercise"]), url=row["url"],
    )


def _stored_from_row(row: sqlite3.Row) -> StoredNotice:
    area = None
    if row["area_lat"] is not None and row["area_lon"] is not None:
        area = AreaCircle(row["area_lat"], row["area_lon"], row["area_radius_km"] or 0.0,
                          row["area_desc"])
    state_at = _dt(row["state_at"])
    assert state_at is not None
    return StoredNotice(
        notice=notice_from_row(row), state=row["state"], state_at=state_at,
        state_reason=row["state_reason"], released_at=_dt(row["released_at"]), area=area,
    )


def load_notice(conn: sqlite3.Connection, notice_id: str) -> Notice:
    """One notice by id; raises NotFound."""
    return load_stored_notice(conn, notice_id).notice


def load_stored_notice(conn: sqlite3.Connection, notice_id: str) -> StoredNotice:
    """One notice with its state and area; raises NotFound."""
    row = conn.execute("SELECT * FROM notices WHERE id = ?", (notice_id,)).fetchone()
    if row is None:
        raise NotFound(f"no notice {notice_id!r}")
    return _stored_from_row(row)


def set_notice_state(
    conn: sqlite3.Connection,
    notice_id: str,
    state: NoticeState,
    *,
    at: datetime,
    reason: str | None = None,
) -> StoredNotice:
    """Move a notice to ``state`` (pending_approval -> released/rejected/expired, released ->
    expired); raises NotFound, or InvalidRequest for a transition that is not allowed."""
    if state not in STATES:
        raise InvalidRequest(f"unknown notice state {state!r}")
    conn.execute("BEGIN IMMEDIATE")
    try:
        row = conn.execute("SELECT state FROM notices WHERE id = ?", (notice_id,)).fetchone()
        if row is None:
            raise NotFound(f"no notice {notice_id!r}")
        if state not in _TRANSITIONS[row["state"]]:
            raise InvalidRequest(f"notice {notice_id!r} is {row['state']}; cannot become {state}")
        conn.execute(
            "UPDATE notices SET state = ?, state_at = ?, state_reason = ?,"
            " released_at = CASE WHEN ? = 'released' THEN ? ELSE released_at END WHERE id = ?",
            (state, _ts(at), reason, state, _ts(at), notice_id),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return load_stored_notice(conn, notice_id)


def save_cap(conn: sqlite3.Connection, notice_id: str, xml: bytes) -> None:
    """Keep the CAP message of a notice as released; the feed serves it unchanged afterwards."""
    cur = conn.execute("UPDATE notices SET cap_xml = ? WHERE id = ?", (xml, notice_id))
    if cur.rowcount == 0:
        raise NotFound(f"no notice {notice_id!r}")


def load_cap(conn: sqlite3.Connection, notice_id: str) -> bytes | None:
    """The stored CAP message of a notice, or None when none was stored."""
    row = conn.execute("SELECT cap_xml FROM notices WHERE id = ?", (notice_id,)).fetchone()
    if row is None:
        raise NotFound(f"no notice {notice_id!r}")
    return None if row[0] is None else bytes(row[0])


def list_notices(
    conn: sqlite3.Connection,
    sequence_id: str | None = None,
    *,
    state: NoticeState | None = None,
    event_id: str | None = None,
    limit: int | None = 100,
    newest_first: bool = True,
) -> list[StoredNotice]:
    """Notices filtered by sequence, event and state; released ones are ordered by release time."""
    where: list[str] = []
    args: list[Any] = []
    if sequence_id is not None:
        where.append("sequence_id = ?")
        args.append(sequence_id)
    if event_id is not None:
        where.append("event_id = ?")
        args.append(event_id)
    if state is not None:
        where.append("state = ?")
        args.append(state)
    sql = "SELECT * FROM notices"
    if where:
        sql += " WHERE " + " AND ".join(where)
    direction = "DESC" if newest_first else "ASC"
    sql += f" ORDER BY coalesce(released_at, created_at) {direction}, id {direction}"
    if limit is not None:
        sql += f" LIMIT {int(limit):d}"
    return [_stored_from_row(r) for r in conn.execute(sql, args)]


def pending_approval(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Notices awaiting approval: id, kind, created_at and state_at (epoch seconds)."""
    return [dict(r) for r in conn.execute(
        "SELECT id, kind, created_at, state_at FROM notices WHERE state = 'pending_approval'"
    ).fetchall()]


def event_notices(conn: sqlite3.Connection, event_id: str) -> list[StoredNotice]:
    """Every notice about one event, oldest first (by creation)."""
    return [_stored_from_row(r) for r in conn.execute(
        "SELECT * FROM notices WHERE event_id = ? ORDER BY created_at, id", (event_id,))]
