"""Notices for duty staff: what was (or was not) sent and why, and the approval actions.

``GET /api/v1/sequences/{id}/notices``, ``GET /api/v1/events/{id}/notices``,
``GET /api/v1/notices``, ``GET /api/v1/notices/{id}``
and ``POST /api/v1/notices/{id}/approve|reject|edit`` (subscriber counts: api/subscriptions.py).
Residents appear only as counts per county/district: never a place, endpoint, key or URL.
The POSTs take JSON or an HTML form (the dashboard's buttons); a form is answered with a 303
back to the sequence's dashboard page.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from aiohttp import web

from quakealert.api.auth import PRINCIPAL
from quakealert.api.keys import SETTINGS, STORE
from quakealert.api.params import (
    decode_cursor,
    encode_cursor,
    get_choice,
    get_int,
    json_response,
)
from quakealert.core.render import default_catalog
from quakealert.errors import InvalidRequest, NotFound
from quakealert.store import approvals as ap
from quakealert.store.base import Store
from quakealert.store.instants import iso as _iso
from quakealert.store.notices import STATES, StoredNotice

routes = web.RouteTableDef()

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
DELIVERY_STATES = ("pending", "in_flight", "sent", "failed", "gone")
_KIND = re.compile(r"^[a-z_]{1,40}$")
MAX_SEQUENCE_NOTICES = 1000




def approval_timeouts(settings_section: dict[str, Any]) -> dict[str, float]:
    """`[approvals]` kind -> timeout in seconds (validated by pipeline.approval_rules at start)."""
    return {k: float(v) for k, v in settings_section.items()
            if isinstance(v, int | float) and not isinstance(v, bool)}


def area_names(key: str | None) -> dict[str, str] | None:
    """The zh/bo/en names of a county/district key (messages/places.toml), or None."""
    place = default_catalog().places.get(key) if key else None
    if place is None:
        return None
    return {"zh": place.zh, "bo": place.bo, "en": place.en, "bo_status": place.bo_status}


def _by_area(by_area: dict[str | None, int]) -> list[dict[str, Any]]:
    return [{"area": key, "names": area_names(key), "count": n}
            for key, n in sorted(by_area.items(), key=lambda kv: (-kv[1], str(kv[0])))]


def deliveries_json(store: Store, notice_id: str) -> dict[str, Any]:
    """Outbox rows of a notice by channel and state, plus totals per state."""
    by_channel = store.outbox.counts(notice_id)
    by_state = {s: sum(c.get(s, 0) for c in by_channel.values()) for s in DELIVERY_STATES}
    return {"by_channel": by_channel, "by_state": by_state, "total": sum(by_state.values())}


def notice_summary(store: Store, stored: StoredNotice,
                   timeouts: dict[str, float]) -> dict[str, Any]:
    """A notice's text, state, the Cancels that withdrew it, and delivery counts."""
    n = stored.notice
    deadline = None
    if stored.state == "pending_approval":
        # As Pipeline.release_expired: a kind without a configured timeout is released at once.
        timeout_s = timeouts.get(n.kind.split("+")[0], 0.0)
        deadline = stored.state_at + timedelta(seconds=timeout_s)
    return {
        "id": n.id, "sequence_id": n.sequence_id, "event_id": n.event_id, "kind": n.kind,
        "msg_type": n.msg_type, "urgency": n.urgency, "exercise": n.exercise,
        "references": list(n.references), "url": n.url,
        "created_at": _iso(n.created_at), "state": stored.state,
        "state_reason": stored.state_reason, "state_at": _iso(stored.state_at),
        "released_at": _iso(stored.released_at), "approval_deadline": _iso(deadline),
        # a notice withdrawn later (deleted event, or retyped as an explosion...) names the
        # Cancel that withdrew it; its state stays "released" (residents did get it)
        "cancelled_by": store.approvals.cancelled_by(n.id),
        "languages": [m.lang for m in n.messages],
        "messages": {m.lang: {"title": m.title, "body": m.body} for m in n.messages},
        "deliveries": deliveries_json(store, n.id),
    }


def notice_detail(store: Store, stored: StoredNotice,
                  timeouts: dict[str, float]) -> dict[str, Any]:
    """The summary plus decisions with reasons, recipients per area, budgets and edits."""
    body = notice_summary(store, stored, timeouts)
    decisions = store.approvals.notice_decisions(stored)
    for d in decisions:
        d["area_names"] = area_names(d["area"])
    by_area = store.approvals.recipients_by_area(stored.notice.id)
    body.update({
        "decisions": decisions,
        "recipients": {"total": sum(by_area.values()), "by_area": _by_area(by_area)},
        "budgets": ap.budgets(stored.notice.messages),
        "edits": store.approvals.list_edits(stored.notice.id),
    })
    return body


def _timeouts(request: web.Request) -> dict[str, float]:
    return approval_timeouts(request.app[SETTINGS].section("approvals"))


@routes.get("/api/v1/sequences/{id}/notices")
async def sequence_notices(request: web.Request) -> web.Response:
    """Every notice of a sequence with its decisions, plus not-sent decisions without a notice."""
    store = request.app[STORE]
    seq_id = request.match_info["id"]
    if not store.views.sequence_known(seq_id):
        raise NotFound(f"no sequence {seq_id!r}")
    timeouts = _timeouts(request)
    stored = store.approvals.page_notices(sequence_id=seq_id, limit=MAX_SEQUENCE_NOTICES)
    return json_response(request, {
        "sequence_id": seq_id,
        "notices": [notice_detail(store, s, timeouts) for s in reversed(stored)],
        "not_sent_without_notice": [
            {**g, "area_names": area_names(g["area"])}
            for g in store.approvals.not_sent_without_notice(seq_id)],
    })


@routes.get("/api/v1/events/{id}/notices")
async def event_notices(request: web.Request) -> web.Response:
    """What residents were told about one event and every decision about it with its reason:
    an explosion's "not sent" belongs to no sequence, a retyped quake's Cancel to the one it
    left; this is where duty staff find both."""
    store = request.app[STORE]
    event = store.event(request.match_info["id"])
    timeouts = _timeouts(request)
    stored = store.notices.event_notices(event.id)
    return json_response(request, {
        "event_id": event.id, "event_type": event.event_type,
        "notices": [notice_summary(store, s, timeouts) for s in stored],
        "decisions": store.decisions.event_decisions(event.id)})


@routes.get("/api/v1/notices")
async def list_notices(request: web.Request) -> web.Response:
    """Recent notices, newest first; filters state, kind, sequence_id; cursor pagination."""
    q = request.query
    state = get_choice(request, "state", STATES)
    kind = q.get("kind")
    if kind is not None and not _KIND.match(kind):
        raise InvalidRequest(f"kind: {kind!r} is not a message kind such as swarm_advisory")
    limit = get_int(request, "limit", 50)
    after = None
    if "cursor" in q:
        vals = decode_cursor(q["cursor"])
        if (len(vals) != 2 or isinstance(vals[0], bool)
                or not isinstance(vals[0], int | float) or not isinstance(vals[1], str)):
            raise InvalidRequest("cursor: not a cursor this service issued")
        after = (float(vals[0]), vals[1])
    store = request.app[STORE]
    stored = store.approvals.page_notices(state=state, kind=kind,
                                          sequence_id=q.get("sequence_id"), after=after,
                                          limit=limit + 1)
    timeouts = _timeouts(request)
    body: dict[str, Any] = {"notices": [notice_summary(store, s, timeouts)
                                        for s in stored[:limit]]}
    if len(stored) > limit:
        last = stored[limit - 1].notice
        body["next_cursor"] = encode_cursor([last.created_at.timestamp(), last.id])
    return json_response(request, body)


@routes.get("/api/v1/notices/{id}")
async def get_notice(request: web.Request) -> web.Response:
    """One notice with its decisions, deliveries, recipients per area, budgets and edits."""
    store = request.app[STORE]
    stored = store.notices.load_stored_notice(request.match_info["id"])
    return json_response(request, {"notice": notice_detail(store, stored, _timeouts(request))})


# -- actions --------------------------------------------------------------------------------


async def _read_body(request: web.Request) -> tuple[dict[str, Any], bool]:
    """The body as a dict, and whether it came from an HTML form."""
    if request.content_type in FORM_TYPES:
        try:
            form = await request.post()
        except ValueError as err:  # e.g. multipart without a boundary
            raise InvalidRequest(f"unreadable form: {err}") from None
        return {k: v for k, v in form.items() if isinstance(v, str)}, True
    raw = await request.read()
    if not raw.strip():
        return {}, False
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidRequest("body must be a JSON object (or an HTML form)") from None
    if not isinstance(data, dict):
        raise InvalidRequest("body must be a JSON object")
    return data, False


def _next_lang(next_url: Any) -> str | None:
    """The dashboard language the form came from (only zh/en; the rest of `next` is ignored)."""
    if not isinstance(next_url, str):
        return None
    query = next_url.partition("?")[2]
    for part in query.split("&"):
        if part in ("lang=zh", "lang=en"):
            return part[5:]
    return None


def _only(data: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise InvalidRequest(f"unknown field {min(unknown)!r}")


def _form_messages(form: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``title_zh``/``body_zh`` form fields as ``{"zh": {"title", "body"}}``."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in form.items():
        part, _, lang = key.partition("_")
        if part in ("title", "body") and lang:
            out.setdefault(lang, {})[part] = value
    return out


def _done(request: web.Request, stored: StoredNotice, form: bool, data: dict[str, Any] | None = None,
          **extra: Any) -> web.Response:
    if form:
        back = f"/dashboard/sequences/{quote(stored.notice.sequence_id, safe='')}"
        lang = _next_lang((data or {}).get("next"))
        raise web.HTTPSeeOther(back + (f"?lang={lang}" if lang else ""))
    body = {"notice": notice_detail(request.app[STORE], stored, _timeouts(request)), **extra}
    return web.Response(text=json.dumps(body, ensure_ascii=False), content_type="application/json",
                        headers={"Cache-Control": "no-store"})


def _actor(request: web.Request) -> Any:
    principal = request.get(PRINCIPAL)
    if principal is None:  # the auth middleware lets no anonymous request get here
        raise web.HTTPUnauthorized(text="a duty officer must be logged in")
    return principal


@routes.post("/api/v1/notices/{id}/approve")
async def approve_notice(request: web.Request) -> web.Response:
    """Release a notice awaiting approval now (duty); optional {"note": "..."}."""
    actor = _actor(request)
    data, form = await _read_body(request)
    if not form:
        _only(data, {"note"})
    note = data.get("note")
    note = ap.clean_text(note, "note", max_chars=ap.MAX_REASON_CHARS) if note else None
    stored = request.app[STORE].approvals.approve(request.match_info["id"], actor=actor,
                                                  now=datetime.now(UTC), note=note)
    return _done(request, stored, form, data)


@routes.post("/api/v1/notices/{id}/reject")
async def reject_notice(request: web.Request) -> web.Response:
    """Reject a notice awaiting approval (duty); {"reason": "..."} is required."""
    actor = _actor(request)
    data, form = await _read_body(request)
    if not form:
        _only(data, {"reason"})
    if data.get("reason") is None:
        raise InvalidRequest("reason is required: say why the notice must not go out")
    stored = request.app[STORE].approvals.reject(request.match_info["id"], actor=actor,
                                                 reason=data["reason"], now=datetime.now(UTC))
    return _done(request, stored, form, data)


@routes.post("/api/v1/notices/{id}/edit")
async def edit_notice(request: web.Request) -> web.Response:
    """Replace the text of a notice awaiting approval (duty); 422 when over a length budget."""
    actor = _actor(request)
    data, form = await _read_body(request)
    if form:
        messages: Any = _form_messages(data)
    else:
        _only(data, {"messages"})
        messages = data.get("messages")
    result = request.app[STORE].approvals.edit(request.match_info["id"], messages,
                                               actor=actor, now=datetime.now(UTC))
    return _done(request, result.stored, form, data, budgets=result.budgets)


# -- OpenAPI --------------------------------------------------------------------------------


def _s(type_: str, *, null: bool = False, **extra: Any) -> dict[str, Any]:
    return {"type": [type_, "null"] if null else type_, **extra}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _object(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props)}


def _ok(schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": schema}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": _ref("Problem")}}}


_TIME = _s("string", format="date-time")
_TIME_NULL = _s("string", null=True, format="date-time")
_TEXT = _object({"title": _s("string"), "body": _s("string")})
_NAMES = {"type": ["object", "null"], "properties": {
    "zh": _s("string"), "bo": _s("string"), "en": _s("string"), "bo_status": _s("string")}}
_COUNTS = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
_PATH_ID = {"name": "id", "in": "path", "required": True,
            "schema": {"type": "string", "minLength": 1, "pattern": "^[^/{}]+$"}}
_FORM_NOTE = ("Also accepts an HTML form (application/x-www-form-urlencoded), answered with "
              "303 to /dashboard/sequences/{sequence_id}.")

OPENAPI_SCHEMAS: dict[str, Any] = {
    "NoticeSummary": _object({
        "id": _s("string"), "sequence_id": _s("string"), "event_id": _s("string"),
        "kind": _s("string"), "msg_type": {"enum": ["Alert", "Update", "Cancel"]},
        "urgency": _s("string"), "exercise": _s("boolean"),
        "references": {"type": "array", "items": _s("string")}, "url": _s("string", null=True),
        "created_at": _TIME, "state": {"enum": list(STATES)},
        "state_reason": _s("string", null=True), "state_at": _TIME, "released_at": _TIME_NULL,
        "approval_deadline": _TIME_NULL,
        "cancelled_by": {"type": "array", "items": _s("string"),
                         "description": "the Cancels that withdrew this notice"},
        "languages": {"type": "array", "items": _s("string")},
        "messages": {"type": "object", "additionalProperties": _TEXT},
        "deliveries": _object({"by_channel": {"type": "object", "additionalProperties": _COUNTS},
                               "by_state": _COUNTS, "total": _s("integer", minimum=0)}),
    }),
    "NoticeDecision": _object({
        "send": _s("boolean"), "reason_code": _s("string"), "reason_en": _s("string"),
        "reason_zh": _s("string"), "area": _s("string", null=True), "kind": _s("string", null=True),
        "degree": _s("integer", null=True), "count": _s("integer", minimum=0),
        "event_id": _s("string"), "at": _TIME, "area_names": _NAMES}),
    "EventDecision": _object({
        "send": _s("boolean"), "reason_code": _s("string"), "reason_en": _s("string"),
        "reason_zh": _s("string"),
        "sequence_id": _s("string", description="empty for an event in no sequence"),
        "kind": _s("string", null=True), "msg_type": _s("string", null=True),
        "count": _s("integer", minimum=0,
                    description="resident-decisions; 1 for a decision about the event alone"),
        "first_at": _TIME, "last_at": _TIME}),
    "LengthBudget": _object({
        "ok": _s("boolean"),
        "webpush": _object({"bytes": _s("integer"), "limit_bytes": _s("integer"),
                            "ok": _s("boolean"), "detail": _s("string")}),
        "sms": _object({"encoding": _s("string"), "units": _s("integer"),
                        "segments": _s("integer"), "detail": _s("string")})}),
    "NoticeDetail": {"allOf": [_ref("NoticeSummary"), _object({
        "decisions": {"type": "array", "items": _ref("NoticeDecision")},
        "recipients": _object({"total": _s("integer", minimum=0), "by_area": {
            "type": "array", "items": _object({"area": _s("string", null=True),
                                               "names": _NAMES, "count": _s("integer")})}}),
        "budgets": {"type": "object", "additionalProperties": _ref("LengthBudget")},
        "edits": {"type": "array", "items": _object({
            "at": _TIME, "actor": _s("string"), "actor_id": _s("string", null=True),
            "languages": {"type": "array", "items": _s("string")},
            "before": {"type": "object", "additionalProperties": _TEXT},
            "after": {"type": "object", "additionalProperties": _TEXT}})}})]},
}

_ACTION_RESPONSES = {
    "200": _ok(_object({"notice": _ref("NoticeDetail")})),
    "303": {"description": "Form post: back to the sequence's dashboard page"},
    "400": _problem("Invalid body"), "404": _problem("No such notice"),
    "409": _problem("The notice is not pending approval (member `state` says what it is)"),
}

OPENAPI_PATHS: dict[str, Any] = {
    "/api/v1/sequences/{id}/notices": {"get": {
        "summary": "Every notice of a sequence, with decisions and reasons, deliveries and "
                   "recipients per area; plus not-sent decisions of rounds without a notice",
        "tags": ["notices"], "parameters": [_PATH_ID],
        "responses": {"200": _ok(_object({
            "sequence_id": _s("string"),
            "notices": {"type": "array", "items": _ref("NoticeDetail")},
            "not_sent_without_notice": {"type": "array", "items": _object({
                "reason_code": _s("string"), "reason_en": _s("string"),
                "reason_zh": _s("string"), "area": _s("string", null=True),
                "count": _s("integer"), "events": {"type": "array", "items": _s("string")},
                "first_at": _TIME, "last_at": _TIME, "area_names": _NAMES})}})),
            "404": _problem("No such sequence")}}},
    "/api/v1/events/{id}/notices": {"get": {
        "summary": "What residents were told about one event (notices, with the Cancels that "
                   "withdrew them) and every decision about it with its reason, including an "
                   "explosion's 'not sent' that belongs to no sequence",
        "tags": ["notices"], "parameters": [_PATH_ID],
        "responses": {"200": _ok(_object({
            "event_id": _s("string"), "event_type": _s("string", null=True),
            "notices": {"type": "array", "items": _ref("NoticeSummary")},
            "decisions": {"type": "array", "items": _ref("EventDecision")}})),
            "404": _problem("No such event")}}},
    "/api/v1/notices": {"get": {
        "summary": "Recent notices, newest first", "tags": ["notices"],
        "parameters": [
            {"name": "state", "in": "query", "required": False, "schema": {"enum": list(STATES)}},
            {"name": "kind", "in": "query", "required": False,
             "schema": {"type": "string", "pattern": "^[a-z_]{1,40}$"},
             "description": "one part of a combined kind, e.g. felt_guidance"},
            {"name": "sequence_id", "in": "query", "required": False,
             "schema": {"type": "string"}},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 50}},
            {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "next_cursor of the previous page"}],
        "responses": {"200": _ok({"type": "object", "required": ["notices"], "properties": {
            "notices": {"type": "array", "items": _ref("NoticeSummary")},
            "next_cursor": _s("string")}}), "400": _problem("Invalid parameter")}}},
    "/api/v1/notices/{id}": {"get": {
        "summary": "One notice with decisions, deliveries, recipients, budgets and edits",
        "tags": ["notices"], "parameters": [_PATH_ID],
        "responses": {"200": _ok(_object({"notice": _ref("NoticeDetail")})),
                      "404": _problem("No such notice")}}},
    "/api/v1/notices/{id}/approve": {"post": {
        "summary": "Release a notice awaiting approval now", "description": _FORM_NOTE,
        "tags": ["notices"], "parameters": [_PATH_ID],
        "requestBody": {"required": False, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False,
            "properties": {"note": _s("string", maxLength=500)}}}}},
        "responses": _ACTION_RESPONSES}},
    "/api/v1/notices/{id}/reject": {"post": {
        "summary": "Reject a notice awaiting approval; it is never sent", "description": _FORM_NOTE,
        "tags": ["notices"], "parameters": [_PATH_ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "required": ["reason"],
            "properties": {"reason": _s("string", minLength=1, maxLength=500)}}}}},
        "responses": _ACTION_RESPONSES}},
    "/api/v1/notices/{id}/edit": {"post": {
        "summary": "Replace the text of some languages of a notice awaiting approval",
        "description": _FORM_NOTE + " Form fields: title_<lang>, body_<lang>.",
        "tags": ["notices"], "parameters": [_PATH_ID],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "additionalProperties": False, "required": ["messages"],
            "properties": {"messages": {"type": "object", "minProperties": 1,
                                        "additionalProperties": _TEXT}}}}}},
        "responses": {**_ACTION_RESPONSES,
                      "200": _ok(_object({"notice": _ref("NoticeDetail"), "budgets": {
                          "type": "object", "additionalProperties": _ref("LengthBudget")}})),
                      "422": _problem("Over a length budget (member `budgets` per language)")}}},
}
