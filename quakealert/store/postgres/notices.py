"""Notices on PostgreSQL: the functions of :mod:`quakealert.store.notices` with the same
arguments and results. A state change locks the notice's row (``SELECT … FOR UPDATE``), so two
duty officers acting on two instances at once are serialised: one approval or rejection wins,
the other is refused, as on SQLite. Checked by tests/pg/test_pg_notices_contract.py."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from quakealert.errors import InvalidRequest, NotFound
from quakealert.model import Notice
from quakealert.store.instants import epoch as _ts
from quakealert.store.notices import (
    _TRANSITIONS,
    STATES,
    AreaCircle,
    NoticeState,
    StoredNotice,
    _stored_from_row,
    messages_json,
)


def save_notice(
    conn: psycopg.Connection[Any], notice: Notice, state: NoticeState, *,
    area: AreaCircle | None = None, at: datetime | None = None, reason: str | None = None,
) -> None:
    """Insert a notice (its id must be new); ``released`` stamps ``released_at`` with ``at``."""
    if state not in STATES:
        raise InvalidRequest(f"unknown notice state {state!r}")
    at = at or notice.created_at
    # ON CONFLICT instead of catching the error: a failed INSERT would abort the caller's
    # transaction on PostgreSQL, where SQLite's would not.
    cur = conn.execute(
        "INSERT INTO notices (id, sequence_id, event_id, kind, msg_type, messages, created_at,"
        " urgency, refs, exercise, url, state, state_reason, state_at, released_at,"
        " area_lat, area_lon, area_radius_km, area_desc)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (id) DO NOTHING",
        (notice.id, notice.sequence_id, notice.event_id, notice.kind, notice.msg_type,
         messages_json(notice.messages), _ts(notice.created_at), notice.urgency,
         json.dumps(list(notice.references)), bool(notice.exercise), notice.url, state,
         reason, _ts(at), _ts(at) if state == "released" else None,
         area.latitude if area else None, area.longitude if area else None,
         area.radius_km if area else None, area.desc if area else None))
    if cur.rowcount != 1:
        raise InvalidRequest(f"notice {notice.id!r} already stored")


def load_notice(conn: psycopg.Connection[Any], notice_id: str) -> Notice:
    """One notice by id; raises NotFound."""
    return load_stored_notice(conn, notice_id).notice


def load_stored_notice(conn: psycopg.Connection[Any], notice_id: str) -> StoredNotice:
    """One notice with its state and area; raises NotFound."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT * FROM notices WHERE id = %s", (notice_id,)).fetchone()
    if row is None:
        raise NotFound(f"no notice {notice_id!r}")
    return _stored_from_row(row)  # type: ignore[arg-type]  # a mapping, as sqlite3.Row


def set_notice_state(
    conn: psycopg.Connection[Any], notice_id: str, state: NoticeState, *, at: datetime,
    reason: str | None = None,
) -> StoredNotice:
    """Move a notice to ``state``; raises NotFound, or InvalidRequest for a transition that is
    not allowed (including one that lost the race to another instance)."""
    if state not in STATES:
        raise InvalidRequest(f"unknown notice state {state!r}")
    with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT state FROM notices WHERE id = %s FOR UPDATE",
                          (notice_id,)).fetchone()
        if row is None:
            raise NotFound(f"no notice {notice_id!r}")
        if state not in _TRANSITIONS[row["state"]]:
            raise InvalidRequest(f"notice {notice_id!r} is {row['state']}; cannot become {state}")
        cur.execute(
            "UPDATE notices SET state = %s, state_at = %s, state_reason = %s,"
            " released_at = CASE WHEN %s = 'released' THEN %s ELSE released_at END"
            " WHERE id = %s", (state, _ts(at), reason, state, _ts(at), notice_id))
    return load_stored_notice(conn, notice_id)


def save_cap(conn: psycopg.Connection[Any], notice_id: str, xml: bytes) -> None:
    """Keep the CAP message of a notice as released; the feed serves it unchanged afterwards."""
    cur = conn.execute("UPDATE notices SET cap_xml = %s WHERE id = %s", (xml, notice_id))
    if cur.rowcount == 0:
        raise NotFound(f"no notice {notice_id!r}")


def load_cap(conn: psycopg.Connection[Any], notice_id: str) -> bytes | None:
    """The stored CAP message of a notice, or None when none was stored."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute("SELECT cap_xml FROM notices WHERE id = %s", (notice_id,)).fetchone()
    if row is None:
        raise NotFound(f"no notice {notice_id!r}")
    return None if row["cap_xml"] is None else bytes(row["cap_xml"])


def list_notices(
    conn: psycopg.Connection[Any], sequence_id: str | None = None, *,
    state: NoticeState | None = None, event_id: str | None = None, limit: int | None = 100,
    newest_first: bool = True,
) -> list[StoredNotice]:
    """Notices filtered by sequence, event and state; released ones are ordered by release time."""
    where: list[str] = []
    args: list[Any] = []
    for column, value in (("sequence_id", sequence_id), ("event_id", event_id),
                          ("state", state)):
        if value is not None:
            where.append(f"{column} = %s")
            args.append(value)
    sql = "SELECT * FROM notices"
    if where:
        sql += " WHERE " + " AND ".join(where)
    direction = "DESC" if newest_first else "ASC"
    sql += f" ORDER BY coalesce(released_at, created_at) {direction}, id {direction}"
    if limit is not None:
        sql += f" LIMIT {int(limit):d}"
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(sql, args).fetchall()
    return [_stored_from_row(r) for r in rows]  # type: ignore[arg-type]


def event_notices(conn: psycopg.Connection[Any], event_id: str) -> list[StoredNotice]:
    """Every notice about one event, oldest first (by creation)."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM notices WHERE event_id = %s ORDER BY created_at, id",
                           (event_id,)).fetchall()
    return [_stored_from_row(r) for r in rows]  # type: ignore[arg-type]


def pending_approval(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Notices awaiting approval: id, kind, created_at and state_at (epoch seconds)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT id, kind, created_at, state_at FROM notices"
                           " WHERE state = 'pending_approval'").fetchall()
