"""Duty decisions on notices that wait for approval (approve, reject, edit), and the read side
duty staff need to judge them: decisions per notice, recipients per area, the edit history.

Each action is one transaction that checks the notice is still ``pending_approval``, changes it,
moves its outbox rows and writes the audit log, so a double click or a race with the approval
timeout (``Pipeline.release_expired``) cannot act twice. An edit never touches ``state_at``: the
timeout counts from when the notice was made, so editing cannot hold a notice back longer.
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from quakealert.core.render import WEBPUSH_MAX_PLAINTEXT, check_budget
from quakealert.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from quakealert.model import Message
from quakealert.store.auth import Principal, audit
from quakealert.store.notices import StoredNotice, load_stored_notice, messages_json
from quakealert.store.outbox import transaction

REJECTED_ERROR = "rejected by duty officer"
WITHDRAWN_PREFIX = "withdrawn"  # state_reason of an expired notice that a newer one superseded
MAX_REASON_CHARS = 500
MAX_TEXT_CHARS = 4000  # far above any budget; only bounds what we parse and measure


class NotPending(Conflict):
    """The notice is no longer awaiting approval (409, with its current ``state``)."""

    def __init__(self, notice_id: str, state: str):
        super().__init__(f"notice {notice_id!r} is {state}; only notices pending approval can be "
                         "approved, rejected or edited", state=state)
        self.notice_id = notice_id
        self.state = state


class OverBudget(Unprocessable):
    """Edited text does not fit a channel's length budget (422, with the per-language budgets)."""

    def __init__(self, budgets: dict[str, dict[str, Any]]):
        over = [lang for lang, b in budgets.items() if not b["ok"]]
        super().__init__(f"over the Web Push length budget: {', '.join(over)}", budgets=budgets)
        self.budgets = budgets


@dataclass(frozen=True, slots=True)
class EditResult:
    """The notice after an edit, and the length budget of each of its languages."""

    stored: StoredNotice
    budgets: dict[str, dict[str, Any]]


def _iso(value: float | datetime | None) -> str | None:
    if value is None:
        return None
    at = value if isinstance(value, datetime) else datetime.fromtimestamp(value, UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _actor_name(actor: Principal | str) -> str:
    return actor.name if isinstance(actor, Principal) else actor


def clean_text(value: Any, what: str, *, max_chars: int) -> str:
    """A trimmed, non-empty string without control characters (newlines allowed)."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{what} must be a string")
    text = value.replace("\r\n", "\n").strip()
    if not text:
        raise InvalidRequest(f"{what} must not be empty")
    if len(text) > max_chars:
        raise InvalidRequest(f"{what} is longer than {max_chars} characters")
    # Reasons and texts reach the audit log, CAP XML and SMS gateways: no forged lines or NULs.
    if any(c not in "\n\t" and unicodedata.category(c) in ("Cc", "Cs") for c in text):
        raise InvalidRequest(f"{what} must not contain control characters")
    return text


def _pending_row(conn: sqlite3.Connection, notice_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT id, state, state_reason, messages FROM notices WHERE id = ?",
                       (notice_id,)).fetchone()
    if row is None:
        raise NotFound(f"no notice {notice_id!r}")
    if row["state"] != "pending_approval":
        raise NotPending(notice_id, row["state"])
    return row


def _approve_one(conn: sqlite3.Connection, notice_id: str, actor: Principal | str,
                 now: datetime, note: str | None) -> None:
    at = now.timestamp()
    reason = f"approved by {_actor_name(actor)} at {_iso(now)}" + (f": {note}" if note else "")
    _pending_row(conn, notice_id)
    conn.execute(
        "UPDATE notices SET state = 'released', state_at = ?, state_reason = ?,"
        " released_at = ? WHERE id = ?", (at, reason, at, notice_id))
    due = conn.execute(
        "UPDATE outbox SET next_attempt_at = ?, updated_at = ? WHERE notice_id = ?"
        " AND state = 'pending'", (at, at, notice_id)).rowcount
    # Recipients still in a fan-out row (a big notice) become due with the notice too.
    conn.execute("UPDATE outbox_fanout SET next_attempt_at = ? WHERE notice_id = ?",
                 (at, notice_id))
    audit(conn, actor, "notice.approve", notice_id,
          f"{due} deliveries released" + (f"; note: {note}" if note else ""), now=now)


def _reject_one(conn: sqlite3.Connection, notice_id: str, actor: Principal | str,
                now: datetime, reason: str) -> None:
    at = now.timestamp()
    _pending_row(conn, notice_id)
    conn.execute(
        "UPDATE notices SET state = 'rejected', state_at = ?, state_reason = ? WHERE id = ?",
        (at, f"rejected by {_actor_name(actor)} at {_iso(now)}: {reason}", notice_id))
    # In-flight rows are not touched: the outbox re-reads the notice and fails them itself.
    failed = conn.execute(
        "UPDATE outbox SET state = 'failed', last_error = ?, updated_at = ?"
        " WHERE notice_id = ? AND state = 'pending'",
        (f"{REJECTED_ERROR}: {reason}", at, notice_id)).rowcount
    audit(conn, actor, "notice.reject", notice_id,
          f"{failed} deliveries cancelled; reason: {reason}", now=now)


def approve(conn: sqlite3.Connection, notice_id: str, *, actor: Principal | str, now: datetime,
            note: str | None = None) -> StoredNotice:
    """Release a pending notice now and make its waiting outbox rows due at once."""
    with transaction(conn):
        _approve_one(conn, notice_id, actor, now, note)
    return load_stored_notice(conn, notice_id)


def reject(conn: sqlite3.Connection, notice_id: str, *, actor: Principal | str, reason: str,
           now: datetime) -> StoredNotice:
    """Reject a pending notice: it is never sent, and its waiting outbox rows fail with why."""
    reason = clean_text(reason, "reason", max_chars=MAX_REASON_CHARS)
    with transaction(conn):
        _reject_one(conn, notice_id, actor, now, reason)
    return load_stored_notice(conn, notice_id)


# One message, several notices: the pipeline renders a notice per (area, predicted degree) of
# its recipients, all made in the same policy round. Duty staff judge the message, not each copy.
_SAME_MESSAGE = ("n.sequence_id = m.sequence_id AND n.event_id = m.event_id AND n.kind = m.kind"
                 " AND n.msg_type = m.msg_type AND n.created_at = m.created_at")


def message_variants(conn: sqlite3.Connection, notice_id: str) -> list[str]:
    """The pending notices that are area variants of the same message as ``notice_id`` (itself
    included when pending), by id; raises NotFound."""
    if conn.execute("SELECT 1 FROM notices WHERE id = ?", (notice_id,)).fetchone() is None:
        raise NotFound(f"no notice {notice_id!r}")
    return [r[0] for r in conn.execute(
        f"SELECT n.id FROM notices m JOIN notices n ON {_SAME_MESSAGE}"
        " WHERE m.id = ? AND n.state = 'pending_approval' ORDER BY n.id", (notice_id,))]


def _whole_message(conn: sqlite3.Connection, notice_id: str) -> list[str]:
    ids = message_variants(conn, notice_id)
    if not ids:
        _pending_row(conn, notice_id)  # raises NotPending with the notice's state
    return ids


def approve_message(conn: sqlite3.Connection, notice_id: str, *, actor: Principal | str,
                    now: datetime, note: str | None = None) -> list[StoredNotice]:
    """Release every pending area variant of ``notice_id``'s message, in one transaction."""
    with transaction(conn):
        ids = _whole_message(conn, notice_id)
        for nid in ids:
            _approve_one(conn, nid, actor, now, note)
    return [load_stored_notice(conn, nid) for nid in ids]


def reject_message(conn: sqlite3.Connection, notice_id: str, *, actor: Principal | str,
                   reason: str, now: datetime) -> list[StoredNotice]:
    """Reject every pending area variant of ``notice_id``'s message, in one transaction."""
    reason = clean_text(reason, "reason", max_chars=MAX_REASON_CHARS)
    with transaction(conn):
        ids = _whole_message(conn, notice_id)
        for nid in ids:
            _reject_one(conn, nid, actor, now, reason)
    return [load_stored_notice(conn, nid) for nid in ids]


def withdraw_superseded(conn: sqlite3.Connection, notice_id: str, *, now: datetime) -> list[str]:
    """Withdraw the pending notices that ``notice_id`` supersedes; returns their ids.

    An older pending notice of the same sequence and kind is superseded when everyone it was
    for gets the newer one: every area it has recipients in is an area of the newer notice
    (yesterday's daily summary, once today's is made). It becomes ``expired`` with the reason
    ``withdrawn at …: superseded by <id>`` (WITHDRAWN_PREFIX), its waiting outbox rows fail,
    and the audit log says which notice replaced it. Nothing is withdrawn once decided.
    """
    new = conn.execute("SELECT id, sequence_id, kind, created_at FROM notices WHERE id = ?",
                       (notice_id,)).fetchone()
    if new is None:
        raise NotFound(f"no notice {notice_id!r}")
    areas = _areas(conn, notice_id)
    candidates = [r[0] for r in conn.execute(
        "SELECT id FROM notices WHERE sequence_id = ? AND kind = ? AND created_at < ?"
        " AND state = 'pending_approval' ORDER BY created_at, id",
        (new["sequence_id"], new["kind"], new["created_at"]))]
    gone = [nid for nid in candidates if _areas(conn, nid) <= areas]
    if not gone:
        return []
    at = now.timestamp()
    reason = f"{WITHDRAWN_PREFIX} at {_iso(now)}: superseded by {notice_id}"
    with transaction(conn):
        for nid in gone:
            conn.execute(
                "UPDATE notices SET state = 'expired', state_at = ?, state_reason = ?"
                " WHERE id = ? AND state = 'pending_approval'", (at, reason, nid))
            conn.execute(
                "UPDATE outbox SET state = 'failed', last_error = ?, updated_at = ?"
                " WHERE notice_id = ? AND state = 'pending'",
                (f"{WITHDRAWN_PREFIX}: superseded by {notice_id}", at, nid))
            audit(conn, "pipeline", "notice.withdraw", nid, f"superseded by {notice_id}", now=now)
    return gone


def _areas(conn: sqlite3.Connection, notice_id: str) -> set[str | None]:
    return {r[0] for r in conn.execute(
        "SELECT DISTINCT area FROM decisions WHERE notice_id = ? AND send = 1", (notice_id,))}


def budgets(messages: tuple[Message, ...]) -> dict[str, dict[str, Any]]:
    """Per language: the Web Push budget (which decides ``ok``) and the SMS segments it takes."""
    out: dict[str, dict[str, Any]] = {}
    for m in messages:
        push, sms = check_budget(m, "webpush"), check_budget(m, "sms")
        out[m.lang] = {
            "ok": push.ok,
            "webpush": {"bytes": push.chars, "limit_bytes": WEBPUSH_MAX_PLAINTEXT,
                        "ok": push.ok, "detail": push.reason},
            "sms": {"encoding": sms.encoding, "units": sms.chars, "segments": sms.segments,
                    "detail": sms.reason},
        }
    return out


def parse_edit(current: tuple[Message, ...], body: Any) -> tuple[tuple[Message, ...], list[str]]:
    """New messages from ``{lang: {title, body}}`` over ``current``; returns them and the
    languages edited. Only languages the notice already has may be given (InvalidRequest)."""
    have = [m.lang for m in current]
    if not isinstance(body, Mapping) or not body:
        raise InvalidRequest('messages must be an object such as {"zh": {"title": ..., "body": ...}}')
    edited: dict[str, Message] = {}
    for lang, text in body.items():
        if lang not in have:
            raise InvalidRequest(f"the notice has no {lang!r} text; it has {', '.join(have)}")
        if not isinstance(text, Mapping) or set(text) != {"title", "body"}:
            raise InvalidRequest(f"messages.{lang} must be an object with title and body")
        edited[lang] = Message(
            lang=lang,  # type: ignore[arg-type]
            title=clean_text(text["title"], f"messages.{lang}.title", max_chars=MAX_TEXT_CHARS),
            body=clean_text(text["body"], f"messages.{lang}.body", max_chars=MAX_TEXT_CHARS))
    return tuple(edited.get(m.lang, m) for m in current), list(edited)


def edit(conn: sqlite3.Connection, notice_id: str, messages: Any, *, actor: Principal | str,
         now: datetime) -> EditResult:
    """Replace the text of some languages of a pending notice, keeping the old text.

    Raises OverBudget (nothing stored) when any language would exceed the Web Push budget.
    """
    with transaction(conn):
        _pending_row(conn, notice_id)
        current = load_stored_notice(conn, notice_id).notice.messages
        new, langs = parse_edit(current, messages)
        sizes = budgets(new)
        if not all(b["ok"] for b in sizes.values()):
            raise OverBudget(sizes)
        actor_id = actor.token_id if isinstance(actor, Principal) else None
        conn.execute(
            "INSERT INTO notice_edits (notice_id, at, actor_id, actor_name, languages,"
            " old_messages, new_messages) VALUES (?,?,?,?,?,?,?)",
            (notice_id, now.timestamp(), actor_id, _actor_name(actor), ",".join(langs),
             messages_json(current), messages_json(new)))
        reason = (f"edited by {_actor_name(actor)} at {_iso(now)} ({', '.join(langs)});"
                  " still waiting for approval")
        conn.execute("UPDATE notices SET messages = ?, state_reason = ? WHERE id = ?",
                     (messages_json(new), reason, notice_id))
        audit(conn, actor, "notice.edit", notice_id, f"languages: {', '.join(langs)}", now=now)
    return EditResult(load_stored_notice(conn, notice_id), sizes)


def list_edits(conn: sqlite3.Connection, notice_id: str) -> list[dict[str, Any]]:
    """Every edit of a notice, oldest first, with the text before and after."""
    def by_lang(raw: str) -> dict[str, dict[str, str]]:
        return {m["lang"]: {"title": m["title"], "body": m["body"]} for m in json.loads(raw)}

    return [
        {"at": _iso(r["at"]), "actor": r["actor_name"], "actor_id": r["actor_id"],
         "languages": r["languages"].split(","), "before": by_lang(r["old_messages"]),
         "after": by_lang(r["new_messages"])}
        for r in conn.execute("SELECT * FROM notice_edits WHERE notice_id = ? ORDER BY id",
                              (notice_id,))
    ]


# -- read side ------------------------------------------------------------------------------


def _decision_groups(rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    return [
        {"send": bool(r["send"]), "reason_code": r["reason_code"], "reason_en": r["reason_en"],
         "reason_zh": r["reason_zh"], "area": r["area"], "kind": r["kind"],
         "degree": r["degree"], "count": int(r["n"]), "event_id": r["event_id"],
         "at": _iso(r["at"])}
        for r in rows
    ]


def notice_decisions(conn: sqlite3.Connection, stored: StoredNotice) -> list[dict[str, Any]]:
    """The decisions of the policy round that made a notice: who got it, who did not and why.

    Sent decisions are those naming the notice; not-sent ones are those of the same sequence,
    event and round time. Rows are grouped by (send, reason, area, degree, kind) with a count;
    the reason text is the latest row's (figures such as distance differ between residents).
    """
    n = stored.notice
    rows = conn.execute(
        "SELECT send, reason_code, area, degree, kind, sum(count) AS n, max(id) AS last,"
        " reason_en, reason_zh, event_id, at FROM decisions"
        " WHERE notice_id = ? OR (send = 0 AND notice_id IS NULL AND sequence_id = ?"
        " AND event_id = ? AND at = ?)"
        " GROUP BY send, reason_code, area, degree, kind ORDER BY send DESC, n DESC, area",
        (n.id, n.sequence_id, n.event_id, n.created_at.timestamp())).fetchall()
    return _decision_groups(rows)


def not_sent_without_notice(conn: sqlite3.Connection, sequence_id: str) -> list[dict[str, Any]]:
    """Not-sent decisions of rounds that made no notice, grouped by reason and area.

    ``count`` is resident-decisions (one resident passed over for three quakes counts three);
    ``events`` are the events concerned; the reason text is the latest one.
    """
    out = []
    for r in conn.execute(
        "SELECT g.*, l.reason_en, l.reason_zh FROM ("
        " SELECT d.reason_code, d.area, sum(d.count) AS n, max(d.id) AS last,"
        " group_concat(DISTINCT d.event_id) AS events, min(d.at) AS first_at,"
        " max(d.at) AS last_at FROM decisions d"
        " WHERE d.sequence_id = ? AND d.send = 0 AND d.notice_id IS NULL AND NOT EXISTS ("
        "  SELECT 1 FROM notices n WHERE n.sequence_id = d.sequence_id"
        "  AND n.event_id = d.event_id AND n.created_at = d.at)"
        " GROUP BY d.reason_code, d.area) g JOIN decisions l ON l.id = g.last"
        " ORDER BY g.n DESC, g.reason_code, g.area",
        (sequence_id,),
    ):
        out.append({"reason_code": r["reason_code"], "reason_en": r["reason_en"],
                    "reason_zh": r["reason_zh"], "area": r["area"], "count": int(r["n"]),
                    "events": sorted(r["events"].split(",")) if r["events"] else [],
                    "first_at": _iso(r["first_at"]), "last_at": _iso(r["last_at"])})
    return out


def cancelled_by(conn: sqlite3.Connection, notice_id: str) -> list[str]:
    """The Cancels that withdrew a notice (their CAP <references> name it), oldest first."""
    return [r[0] for r in conn.execute(
        "SELECT n.id FROM notices n, json_each(n.refs) r WHERE n.msg_type = 'Cancel'"
        " AND r.value = ? ORDER BY n.created_at, n.id", (notice_id,))]


def recipients_by_area(conn: sqlite3.Connection, notice_id: str) -> dict[str | None, int]:
    """How many residents a notice was for, per county/district key (from its sent decisions)."""
    return {r[0]: int(r[1]) for r in conn.execute(
        "SELECT area, sum(count) FROM decisions WHERE notice_id = ? AND send = 1"
        " GROUP BY area ORDER BY area", (notice_id,))}


def page_notices(
    conn: sqlite3.Connection,
    *,
    state: str | None = None,
    kind: str | None = None,
    sequence_id: str | None = None,
    after: tuple[float, str] | None = None,
    limit: int = 100,
) -> list[StoredNotice]:
    """Notices newest first by creation time (then id), after a (created_at, id) cursor.

    ``kind`` matches one part of a combined kind: "felt_guidance" finds
    "official_report+felt_guidance".
    """
    where, args = [], []
    if state is not None:
        where.append("state = ?")
        args.append(state)
    if kind is not None:
        where.append("instr('+' || kind || '+', ?) > 0")
        args.append(f"+{kind}+")
    if sequence_id is not None:
        where.append("sequence_id = ?")
        args.append(sequence_id)
    if after is not None:
        where.append("(created_at < ? OR (created_at = ? AND id < ?))")
        args += [after[0], after[0], after[1]]
    sql = "SELECT id FROM notices"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY created_at DESC, id DESC LIMIT {int(limit):d}"
    return [load_stored_notice(conn, r[0]) for r in conn.execute(sql, args).fetchall()]
