"""Duty decisions on notices awaiting approval, on PostgreSQL: the functions of
:mod:`quakealert.store.approvals` with the same arguments, results and errors (the parsing,
budgets and error types are shared; only the SQL differs).

Each action is one transaction that locks the notice's row (``SELECT … FOR UPDATE``) before it
checks the notice is still ``pending_approval``: two officers on two instances, or an officer
and the leader's approval timeout, are serialised, and the second one is refused with
:class:`NotPending`, as on SQLite. Checked by tests/pg/test_pg_approvals_contract.py.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row, tuple_row

from quakealert.errors import NotFound, Unprocessable
from quakealert.store.approvals import (
    MAX_REASON_CHARS,
    REJECTED_ERROR,
    WITHDRAWN_PREFIX,
    EditResult,
    NotPending,
    OverBudget,
    _actor_name,
    _iso,
    budgets,
    clean_text,
    parse_edit,
)
from quakealert.store.auth import Principal
from quakealert.store.notices import StoredNotice, messages_json
from quakealert.store.postgres.auth import audit
from quakealert.store.postgres.notices import load_stored_notice

__all__ = ["EditResult", "NotPending", "OverBudget", "Unprocessable"]  # re-exported for callers


def _rows(conn: psycopg.Connection[Any], query: str, params: Any = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def _tuples(conn: psycopg.Connection[Any], query: str, params: Any = ()) -> list[tuple[Any, ...]]:
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(query, params).fetchall()


def _pending_row(conn: psycopg.Connection[Any], notice_id: str) -> dict[str, Any]:
    """The notice's row, locked until the transaction ends; NotFound or NotPending."""
    rows = _rows(conn, "SELECT id, state, state_reason, messages FROM notices WHERE id = %s"
                       " FOR UPDATE", (notice_id,))
    if not rows:
        raise NotFound(f"no notice {notice_id!r}")
    if rows[0]["state"] != "pending_approval":
        raise NotPending(notice_id, rows[0]["state"])
    return rows[0]


def _approve_one(conn: psycopg.Connection[Any], notice_id: str, actor: Principal | str,
                 now: datetime, note: str | None) -> None:
    at = now.timestamp()
    reason = f"approved by {_actor_name(actor)} at {_iso(now)}" + (f": {note}" if note else "")
    _pending_row(conn, notice_id)
    conn.execute("UPDATE notices SET state = 'released', state_at = %s, state_reason = %s,"
                 " released_at = %s WHERE id = %s", (at, reason, at, notice_id))
    due = conn.execute("UPDATE outbox SET next_attempt_at = %s, updated_at = %s"
                       " WHERE notice_id = %s AND state = 'pending'",
                       (at, at, notice_id)).rowcount
    # Recipients still in a fan-out row become due with the notice too.
    conn.execute("UPDATE outbox_fanout SET next_attempt_at = %s WHERE notice_id = %s",
                 (at, notice_id))
    audit(conn, actor, "notice.approve", notice_id,
          f"{due} deliveries released" + (f"; note: {note}" if note else ""), now=now)


def _reject_one(conn: psycopg.Connection[Any], notice_id: str, actor: Principal | str,
                now: datetime, reason: str) -> None:
    at = now.timestamp()
    _pending_row(conn, notice_id)
    conn.execute("UPDATE notices SET state = 'rejected', state_at = %s, state_reason = %s"
                 " WHERE id = %s",
                 (at, f"rejected by {_actor_name(actor)} at {_iso(now)}: {reason}", notice_id))
    # In-flight rows are not touched: the outbox re-reads the notice and fails them itself.
    failed = conn.execute("UPDATE outbox SET state = 'failed', last_error = %s, updated_at = %s"
                          " WHERE notice_id = %s AND state = 'pending'",
                          (f"{REJECTED_ERROR}: {reason}", at, notice_id)).rowcount
    audit(conn, actor, "notice.reject", notice_id,
          f"{failed} deliveries cancelled; reason: {reason}", now=now)


def approve(conn: psycopg.Connection[Any], notice_id: str, *, actor: Principal | str,
            now: datetime, note: str | None = None) -> StoredNotice:
    """Release a pending notice now and make its waiting outbox rows due at once."""
    with conn.transaction():
        _approve_one(conn, notice_id, actor, now, note)
    return load_stored_notice(conn, notice_id)


def reject(conn: psycopg.Connection[Any], notice_id: str, *, actor: Principal | str,
           reason: str, now: datetime) -> StoredNotice:
    """Reject a pending notice: it is never sent, and its waiting outbox rows fail with why."""
    reason = clean_text(reason, "reason", max_chars=MAX_REASON_CHARS)
    with conn.transaction():
        _reject_one(conn, notice_id, actor, now, reason)
    return load_stored_notice(conn, notice_id)


_SAME_MESSAGE = ("n.sequence_id = m.sequence_id AND n.event_id = m.event_id AND n.kind = m.kind"
                 " AND n.msg_type = m.msg_type AND n.created_at = m.created_at")


def message_variants(conn: psycopg.Connection[Any], notice_id: str) -> list[str]:
    """The pending notices that are area variants of the same message as ``notice_id`` (itself
    included when pending), by id; raises NotFound."""
    if not _tuples(conn, "SELECT 1 FROM notices WHERE id = %s", (notice_id,)):
        raise NotFound(f"no notice {notice_id!r}")
    return [r[0] for r in _tuples(
        conn, f"SELECT n.id FROM notices m JOIN notices n ON {_SAME_MESSAGE}"
        " WHERE m.id = %s AND n.state = 'pending_approval' ORDER BY n.id", (notice_id,))]


def _whole_message(conn: psycopg.Connection[Any], notice_id: str) -> list[str]:
    ids = message_variants(conn, notice_id)
    if not ids:
        _pending_row(conn, notice_id)  # raises NotPending with the notice's state
    return ids


def approve_message(conn: psycopg.Connection[Any], notice_id: str, *, actor: Principal | str,
                    now: datetime, note: str | None = None) -> list[StoredNotice]:
    """Release every pending area variant of ``notice_id``'s message, in one transaction."""
    with conn.transaction():
        ids = _whole_message(conn, notice_id)
        for nid in ids:
            _approve_one(conn, nid, actor, now, note)
    return [load_stored_notice(conn, nid) for nid in ids]


def reject_message(conn: psycopg.Connection[Any], notice_id: str, *, actor: Principal | str,
                   reason: str, now: datetime) -> list[StoredNotice]:
    """Reject every pending area variant of ``notice_id``'s message, in one transaction."""
    reason = clean_text(reason, "reason", max_chars=MAX_REASON_CHARS)
    with conn.transaction():
        ids = _whole_message(conn, notice_id)
        for nid in ids:
            _reject_one(conn, nid, actor, now, reason)
    return [load_stored_notice(conn, nid) for nid in ids]


def _areas(conn: psycopg.Connection[Any], notice_id: str) -> set[str | None]:
    return {r[0] for r in _tuples(conn, "SELECT DISTINCT area FROM decisions"
                                        " WHERE notice_id = %s AND send", (notice_id,))}


def withdraw_superseded(conn: psycopg.Connection[Any], notice_id: str, *,
                        now: datetime) -> list[str]:
    """Withdraw the pending notices that ``notice_id`` supersedes; returns their ids.

    The rule of :func:`quakealert.store.approvals.withdraw_superseded`; a candidate an officer
    approved or rejected meanwhile (its row is locked, then re-checked) is left alone.
    """
    new = _rows(conn, "SELECT id, sequence_id, kind, created_at FROM notices WHERE id = %s",
                (notice_id,))
    if not new:
        raise NotFound(f"no notice {notice_id!r}")
    areas = _areas(conn, notice_id)
    candidates = [r[0] for r in _tuples(
        conn, "SELECT id FROM notices WHERE sequence_id = %s AND kind = %s AND created_at < %s"
        " AND state = 'pending_approval' ORDER BY created_at, id",
        (new[0]["sequence_id"], new[0]["kind"], new[0]["created_at"]))]
    gone = [nid for nid in candidates if _areas(conn, nid) <= areas]
    if not gone:
        return []
    at = now.timestamp()
    reason = f"{WITHDRAWN_PREFIX} at {_iso(now)}: superseded by {notice_id}"
    done = []
    with conn.transaction():
        for nid in gone:
            if conn.execute("UPDATE notices SET state = 'expired', state_at = %s,"
                            " state_reason = %s WHERE id = %s AND state = 'pending_approval'",
                            (at, reason, nid)).rowcount != 1:
                continue
            conn.execute("UPDATE outbox SET state = 'failed', last_error = %s, updated_at = %s"
                         " WHERE notice_id = %s AND state = 'pending'",
                         (f"{WITHDRAWN_PREFIX}: superseded by {notice_id}", at, nid))
            audit(conn, "pipeline", "notice.withdraw", nid, f"superseded by {notice_id}",
                  now=now)
            done.append(nid)
    return done


def edit(conn: psycopg.Connection[Any], notice_id: str, messages: Any, *,
         actor: Principal | str, now: datetime) -> EditResult:
    """Replace the text of some languages of a pending notice, keeping the old text.

    Raises OverBudget (nothing stored) when any language would exceed the Web Push budget.
    """
    with conn.transaction():
        _pending_row(conn, notice_id)
        current = load_stored_notice(conn, notice_id).notice.messages
        new, langs = parse_edit(current, messages)
        sizes = budgets(new)
        if not all(b["ok"] for b in sizes.values()):
            raise OverBudget(sizes)
        actor_id = actor.token_id if isinstance(actor, Principal) else None
        conn.execute(
            "INSERT INTO notice_edits (notice_id, at, actor_id, actor_name, languages,"
            " old_messages, new_messages) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (notice_id, now.timestamp(), actor_id, _actor_name(actor), ",".join(langs),
             messages_json(current), messages_json(new)))
        reason = (f"edited by {_actor_name(actor)} at {_iso(now)} ({', '.join(langs)});"
                  " still waiting for approval")
        conn.execute("UPDATE notices SET messages = %s, state_reason = %s WHERE id = %s",
                     (messages_json(new), reason, notice_id))
        audit(conn, actor, "notice.edit", notice_id, f"languages: {', '.join(langs)}", now=now)
    return EditResult(load_stored_notice(conn, notice_id), sizes)


def list_edits(conn: psycopg.Connection[Any], notice_id: str) -> list[dict[str, Any]]:
    """Every edit of a notice, oldest first, with the text before and after."""
    def by_lang(raw: str) -> dict[str, dict[str, str]]:
        return {m["lang"]: {"title": m["title"], "body": m["body"]} for m in json.loads(raw)}

    return [
        {"at": _iso(r["at"]), "actor": r["actor_name"], "actor_id": r["actor_id"],
         "languages": r["languages"].split(","), "before": by_lang(r["old_messages"]),
         "after": by_lang(r["new_messages"])}
        for r in _rows(conn, "SELECT * FROM notice_edits WHERE notice_id = %s ORDER BY id",
                       (notice_id,))
    ]


# -- read side --------------------------------------------------------------------------------

# SQLite takes a bare column next to max(id) from the row holding the max (the latest reason
# text); PostgreSQL needs that row joined explicitly.
_LATEST_OF_GROUP = (
    "SELECT g.send, g.reason_code, g.area, g.degree, g.kind, g.n, l.reason_en, l.reason_zh,"
    " l.event_id, l.at FROM (SELECT send, reason_code, area, degree, kind,"
    " sum(count)::bigint AS n, max(id) AS last FROM decisions WHERE {where}"
    " GROUP BY send, reason_code, area, degree, kind) g JOIN decisions l ON l.id = g.last"
    " ORDER BY g.send DESC, g.n DESC, g.area NULLS FIRST"
)


def notice_decisions(conn: psycopg.Connection[Any], stored: StoredNotice) -> list[dict[str, Any]]:
    """The decisions of the policy round that made a notice: who got it, who did not and why."""
    n = stored.notice
    rows = _rows(conn, _LATEST_OF_GROUP.format(
        where="notice_id = %s OR (NOT send AND notice_id IS NULL AND sequence_id = %s"
              " AND event_id = %s AND at = %s)"),
        (n.id, n.sequence_id, n.event_id, n.created_at.timestamp()))
    return [
        {"send": bool(r["send"]), "reason_code": r["reason_code"], "reason_en": r["reason_en"],
         "reason_zh": r["reason_zh"], "area": r["area"], "kind": r["kind"],
         "degree": r["degree"], "count": int(r["n"]), "event_id": r["event_id"],
         "at": _iso(r["at"])}
        for r in rows
    ]


def not_sent_without_notice(conn: psycopg.Connection[Any],
                            sequence_id: str) -> list[dict[str, Any]]:
    """Not-sent decisions of rounds that made no notice, grouped by reason and area."""
    out = []
    for r in _rows(
        conn,
        "SELECT g.*, l.reason_en, l.reason_zh FROM ("
        " SELECT d.reason_code, d.area, sum(d.count)::bigint AS n, max(d.id) AS last,"
        " string_agg(DISTINCT d.event_id, ',') AS events, min(d.at) AS first_at,"
        " max(d.at) AS last_at FROM decisions d"
        " WHERE d.sequence_id = %s AND NOT d.send AND d.notice_id IS NULL AND NOT EXISTS ("
        "  SELECT 1 FROM notices n WHERE n.sequence_id = d.sequence_id"
        "  AND n.event_id = d.event_id AND n.created_at = d.at)"
        " GROUP BY d.reason_code, d.area) g JOIN decisions l ON l.id = g.last"
        " ORDER BY g.n DESC, g.reason_code, g.area NULLS FIRST",
        (sequence_id,),
    ):
        out.append({"reason_code": r["reason_code"], "reason_en": r["reason_en"],
                    "reason_zh": r["reason_zh"], "area": r["area"], "count": int(r["n"]),
                    "events": sorted(r["events"].split(",")) if r["events"] else [],
                    "first_at": _iso(r["first_at"]), "last_at": _iso(r["last_at"])})
    return out


def recipients_by_area(conn: psycopg.Connection[Any], notice_id: str) -> dict[str | None, int]:
    """How many residents a notice was for, per county/district key (from its sent decisions)."""
    return {r[0]: int(r[1]) for r in _tuples(
        conn, "SELECT area, sum(count) FROM decisions WHERE notice_id = %s AND send"
        " GROUP BY area ORDER BY area NULLS FIRST", (notice_id,))}


def page_notices(
    conn: psycopg.Connection[Any],
    *,
    state: str | None = None,
    kind: str | None = None,
    sequence_id: str | None = None,
    after: tuple[float, str] | None = None,
    limit: int = 100,
) -> list[StoredNotice]:
    """Notices newest first by creation time (then id), after a (created_at, id) cursor;
    ``kind`` matches one part of a combined kind ("felt_guidance" finds
    "official_report+felt_guidance")."""
    where, args = [], []
    if state is not None:
        where.append("state = %s")
        args.append(state)
    if kind is not None:
        where.append("strpos('+' || kind || '+', %s) > 0")
        args.append(f"+{kind}+")
    if sequence_id is not None:
        where.append("sequence_id = %s")
        args.append(sequence_id)
    if after is not None:
        where.append("(created_at < %s OR (created_at = %s AND id < %s))")
        args += [after[0], after[0], after[1]]
    query = "SELECT id FROM notices"
    if where:
        query += " WHERE " + " AND ".join(where)
    query += f" ORDER BY created_at DESC, id DESC LIMIT {int(limit):d}"
    return [load_stored_notice(conn, r[0]) for r in _tuples(conn, query, args)]


def cancelled_by(conn: psycopg.Connection[Any], notice_id: str) -> list[str]:
    """The Cancels that withdrew a notice (their CAP <references> name it), oldest first."""
    return [r[0] for r in _tuples(
        conn, "SELECT n.id FROM notices n WHERE n.msg_type = 'Cancel'"
        " AND n.refs::jsonb @> jsonb_build_array(%s::text) ORDER BY n.created_at, n.id",
        (notice_id,))]
