"""The notices API over the Maizhokunggar scenario: detail with reasons, lists, duty actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema_rs  # comes with schemathesis (dev dependency)
import pytest
from test_approvals import TIMEOUT_S, Scenario, run_scenario

from quakealert.api.app import make_app
from quakealert.store.auth import audit_log, create_token
from quakealert.store.notices import load_stored_notice
from quakealert.store.subscribers import NewSubscriber

PUSH_ENDPOINT = "https://push.example/wpush/v2/CAPABILITY-SECRET-PATH"
P256DH = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
AUTH = "tBHItJI5svbpez7KI4CCXg"
HOOK_URL = "https://gateway.example/sms/HOOK-SECRET-PATH"
HOOK_SECRET = "hook-secret-0123456789"
EXTRA = (
    NewSubscriber(29.66, 91.14, ("zh", "bo"), "webpush", PUSH_ENDPOINT, p256dh=P256DH, auth=AUTH),
    NewSubscriber(29.64, 91.12, ("zh", "en"), "webhook", HOOK_URL, secret=HOOK_SECRET),
    NewSubscriber(30.66, 104.07, ("zh",), "console", "stdout"),  # Chengdu: feels nothing
)
NEVER_SHOWN = (PUSH_ENDPOINT, "push.example", P256DH, AUTH, HOOK_URL, "gateway.example",
               HOOK_SECRET, "91.14", "91.12", "104.07", "30.66")


@pytest.fixture
def scenario(tmp_path: Path):
    s = run_scenario(tmp_path, EXTRA)
    yield s
    s.store.close()


@pytest.fixture
async def api(scenario: Scenario, aiohttp_client):
    conn, now = scenario.store.conn, datetime.now(UTC)
    tokens = {role: create_token(conn, role, f"{role} officer", now=now)[1]
              for role in ("read", "duty")}
    client = await aiohttp_client(make_app(scenario.settings, store=scenario.store))
    return client, {role: {"Authorization": f"Bearer {t}"} for role, t in tokens.items()}


def sequence_id(scenario: Scenario) -> str:
    return load_stored_notice(scenario.store.conn, scenario.felt_id).notice.sequence_id


async def test_sequence_notices_detail(scenario, api):
    """Each notice has its text, state, decisions with zh/en reasons, deliveries by channel and
    recipients per area; rounds without a notice are summed by reason and area."""
    client, auth = api
    resp = await client.get(f"/api/v1/sequences/{sequence_id(scenario)}/notices",
                            headers=auth["read"])
    assert resp.status == 200
    text = await resp.text()
    body = await resp.json()
    felt, swarm = body["notices"]
    assert (felt["id"], swarm["id"]) == (scenario.felt_id, scenario.swarm_id)

    assert felt["state"] == "released" and felt["languages"] == ["zh", "bo", "en"]
    assert felt["messages"]["zh"]["title"].startswith("【演练】") and felt["exercise"] is True
    assert felt["deliveries"]["by_channel"] == {"console": {"pending": 1},
                                               "webpush": {"pending": 1},
                                               "webhook": {"pending": 1}}
    assert felt["deliveries"]["total"] == 3
    assert felt["recipients"]["total"] == 3
    [area] = felt["recipients"]["by_area"]
    assert area["area"] == "chengguan" and area["count"] == 3
    assert area["names"]["zh"] == "城关区" and area["names"]["en"] == "Chengguan District"
    sent = [d for d in felt["decisions"] if d["send"]]
    assert [(d["reason_code"], d["count"]) for d in sent] == [("first_felt", 3)]
    assert "M4.5" in sent[0]["reason_en"] and "首次有感" in sent[0]["reason_zh"]
    passed = [d for d in felt["decisions"] if not d["send"]]
    assert [(d["reason_code"], d["count"]) for d in passed] == [("below_threshold", 1)]
    assert passed[0]["reason_en"].startswith("Predicted not felt here (I)")
    assert passed[0]["reason_zh"].startswith("本地预计无感（Ⅰ度）")

    assert swarm["state"] == "pending_approval" and swarm["references"] == [scenario.felt_id]
    stored = load_stored_notice(scenario.store.conn, scenario.swarm_id)
    assert swarm["approval_deadline"] == (stored.state_at + timedelta(seconds=TIMEOUT_S)
                                          ).isoformat().replace("+00:00", "Z")
    assert swarm["budgets"]["zh"]["ok"] and swarm["budgets"]["zh"]["sms"]["segments"] >= 1

    # the M4.1 and the M4.0 made no notice: residents passed over, summed per reason and area
    without = {(g["reason_code"], g["area"]): g for g in body["not_sent_without_notice"]}
    assert without[("below_threshold", "chengguan")]["count"] == 2 * 3
    assert len(without[("below_threshold", "chengguan")]["events"]) == 2
    assert without[("below_threshold", "chengguan")]["area_names"]["bo"] == "ཁྲེང་ཀོན་ཆུས"
    # II in Chengguan: barely felt (微有感), below the threshold III
    assert without[("below_threshold", "chengguan")]["reason_zh"].startswith("本地预计微有感")
    assert sum(g["count"] for g in body["not_sent_without_notice"]
               if g["reason_code"] == "below_threshold") == 2 * 4
    for secret in NEVER_SHOWN:
        assert secret not in text


async def test_unknown_ids_are_404(api):
    """Unknown sequences and notices are 404 problems."""
    client, auth = api
    for path in ("/api/v1/sequences/seq-nope/notices", "/api/v1/notices/qa-n-nope"):
        resp = await client.get(path, headers=auth["read"])
        assert resp.status == 404
        assert resp.content_type == "application/problem+json"


async def test_list_filters_and_cursor(scenario, api):
    """The list is newest first, filters by state and by one part of a combined kind, pages
    with a cursor, and answers bad parameters with 400."""
    client, auth = api
    resp = await client.get("/api/v1/notices", headers=auth["read"])
    assert [n["id"] for n in (await resp.json())["notices"]] == [scenario.swarm_id,
                                                                 scenario.felt_id]
    resp = await client.get("/api/v1/notices", params={"state": "pending_approval"},
                            headers=auth["read"])
    assert [n["id"] for n in (await resp.json())["notices"]] == [scenario.swarm_id]
    resp = await client.get("/api/v1/notices", params={"kind": "felt_guidance"},
                            headers=auth["read"])
    assert [n["id"] for n in (await resp.json())["notices"]] == [scenario.felt_id]
    resp = await client.get("/api/v1/notices", params={"kind": "felt"}, headers=auth["read"])
    assert (await resp.json())["notices"] == []

    first = await (await client.get("/api/v1/notices", params={"limit": "1"},
                                    headers=auth["read"])).json()
    assert [n["id"] for n in first["notices"]] == [scenario.swarm_id]
    second = await (await client.get("/api/v1/notices", params={
        "limit": "1", "cursor": first["next_cursor"]}, headers=auth["read"])).json()
    assert [n["id"] for n in second["notices"]] == [scenario.felt_id]
    assert "next_cursor" not in second

    for params in ({"state": "sent"}, {"kind": "FELT;--"}, {"cursor": "garbage!"},
                   {"limit": "0"}):
        resp = await client.get("/api/v1/notices", params=params, headers=auth["read"])
        assert resp.status == 400, params


async def test_approve_needs_duty_and_only_once(scenario, api):
    """Read tokens may not approve; duty approves once, with an audit entry; then 409."""
    client, auth = api
    path = f"/api/v1/notices/{scenario.swarm_id}/approve"
    assert (await client.post(path)).status == 401
    assert (await client.post(path, headers=auth["read"])).status == 403
    assert load_stored_notice(scenario.store.conn, scenario.swarm_id).state == "pending_approval"

    resp = await client.post(path, headers=auth["duty"], json={"note": "checked with Tibet EA"})
    assert resp.status == 200
    notice = (await resp.json())["notice"]
    assert notice["state"] == "released" and notice["released_at"]
    assert notice["state_reason"].startswith("approved by duty officer at ")
    assert notice["state_reason"].endswith(": checked with Tibet EA")
    [entry] = [a for a in audit_log(scenario.store.conn) if a["action"] == "notice.approve"]
    assert entry["actor_name"] == "duty officer" and entry["role"] == "duty"

    resp = await client.post(path, headers=auth["duty"])
    assert resp.status == 409
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["state"] == "released"
    resp = await client.post(f"/api/v1/notices/{scenario.felt_id}/edit", headers=auth["duty"],
                             json={"messages": {"zh": {"title": "t", "body": "b"}}})
    assert resp.status == 409


async def test_reject_requires_a_reason(scenario, api):
    """Rejecting needs a non-empty reason; the outbox rows then fail with it."""
    client, auth = api
    path = f"/api/v1/notices/{scenario.swarm_id}/reject"
    for body in ({}, {"reason": "   "}, {"reason": 7}, {"reason": "x", "extra": 1}):
        resp = await client.post(path, headers=auth["duty"], json=body)
        assert resp.status == 400, body
    for raw in (b"not json", b"[1, 2]", b"[" * 5000):
        resp = await client.post(path, headers={**auth["duty"],
                                                "Content-Type": "application/json"}, data=raw)
        assert resp.status == 400
    assert load_stored_notice(scenario.store.conn, scenario.swarm_id).state == "pending_approval"

    resp = await client.post(path, headers=auth["duty"], json={"reason": "wrong county named"})
    assert resp.status == 200
    notice = (await resp.json())["notice"]
    assert notice["state"] == "rejected" and notice["state_reason"].endswith(
        ": wrong county named")
    assert notice["deliveries"]["by_state"]["failed"] == 3
    errors = {r[0] for r in scenario.store.conn.execute(
        "SELECT last_error FROM outbox WHERE notice_id = ?", (scenario.swarm_id,))}
    assert errors == {"rejected by duty officer: wrong county named"}


async def test_edit_checks_budgets_and_languages(scenario, api):
    """Edits are re-checked per language: too long is 422 with per-language budgets; languages
    the notice lacks are 400; a good edit replaces the text and keeps the original."""
    client, auth = api
    path = f"/api/v1/notices/{scenario.swarm_id}/edit"
    original = load_stored_notice(scenario.store.conn, scenario.swarm_id).notice

    resp = await client.post(path, headers=auth["duty"], json={"messages": {
        "zh": {"title": "震群提示", "body": "请保持冷静。" * 220}}})
    assert resp.status == 422
    problem = await resp.json()
    assert problem["budgets"]["zh"]["ok"] is False
    assert problem["budgets"]["zh"]["webpush"]["bytes"] > problem["budgets"]["zh"]["webpush"][
        "limit_bytes"]
    assert problem["budgets"]["en"]["ok"] is True
    for messages in ({"fr": {"title": "t", "body": "b"}}, {"zh": {"title": "t"}}, {},
                     {"zh": {"title": "t", "body": "a\x00b"}}, "zh"):
        resp = await client.post(path, headers=auth["duty"], json={"messages": messages})
        assert resp.status == 400, messages
    assert load_stored_notice(scenario.store.conn, scenario.swarm_id).notice == original

    new = {"title": "【演练】墨竹工卡县震群提示", "body": "近期震群活动仍在持续，请保持冷静。"}
    resp = await client.post(path, headers=auth["duty"], json={"messages": {"zh": new}})
    assert resp.status == 200
    body = await resp.json()
    assert body["notice"]["messages"]["zh"] == new
    assert body["notice"]["messages"]["en"]["body"] == original.message("en").body
    assert body["notice"]["state"] == "pending_approval"
    assert body["budgets"]["zh"]["sms"]["encoding"] == "ucs2"
    [edit] = body["notice"]["edits"]
    assert edit["actor"] == "duty officer" and edit["languages"] == ["zh"]
    assert edit["before"]["zh"]["body"] == original.message("zh").body
    assert edit["after"]["zh"] == new


async def test_form_posts_redirect_to_the_dashboard(scenario, api):
    """The dashboard's forms (edit, then approve) get a 303 back to the sequence page."""
    client, auth = api
    where = f"/dashboard/sequences/{sequence_id(scenario)}"
    resp = await client.post(f"/api/v1/notices/{scenario.swarm_id}/edit", headers=auth["duty"],
                             data={"title_en": "EXERCISE: swarm advisory",
                                   "body_en": "Small quakes continue.\r\nStay calm."},
                             allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == where
    stored = load_stored_notice(scenario.store.conn, scenario.swarm_id)
    assert stored.notice.message("en").body == "Small quakes continue.\nStay calm."

    resp = await client.post(f"/api/v1/notices/{scenario.swarm_id}/approve",
                             headers=auth["duty"], data={}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == where
    assert load_stored_notice(scenario.store.conn, scenario.swarm_id).state == "released"


async def test_form_reject_without_reason_is_refused(scenario, api):
    """A reject form without a reason changes nothing; with one it redirects."""
    client, auth = api
    path = f"/api/v1/notices/{scenario.swarm_id}/reject"
    resp = await client.post(path, headers=auth["duty"], data={"reason": ""},
                             allow_redirects=False)
    assert resp.status == 400
    resp = await client.post(path, headers=auth["duty"], data={"reason": "duplicate"},
                             allow_redirects=False)
    assert resp.status == 303
    assert load_stored_notice(scenario.store.conn, scenario.swarm_id).state == "rejected"


async def test_responses_match_the_openapi_document(scenario, api):
    """The served OpenAPI document describes what these routes really answer."""
    client, auth = api
    doc = await (await client.get("/api/v1/openapi.json")).json()

    def check(instance, schema):
        jsonschema_rs.validate({**schema, "components": doc["components"]}, instance)

    def named(name):
        return {"$ref": f"#/components/schemas/{name}"}

    seq = await (await client.get(f"/api/v1/sequences/{sequence_id(scenario)}/notices",
                                  headers=auth["read"])).json()
    ok = doc["paths"]["/api/v1/sequences/{id}/notices"]["get"]["responses"]["200"]
    check(seq, ok["content"]["application/json"]["schema"])
    listed = await (await client.get("/api/v1/notices", headers=auth["read"])).json()
    assert listed["notices"]
    for notice in listed["notices"]:
        check(notice, named("NoticeSummary"))
    resp = await client.post(f"/api/v1/notices/{scenario.swarm_id}/edit", headers=auth["duty"],
                             json={"messages": {"en": {"title": "t", "body": "b"}}})
    check((await resp.json())["notice"], named("NoticeDetail"))
    resp = await client.post(f"/api/v1/notices/{scenario.swarm_id}/approve",
                             headers=auth["duty"])
    check((await resp.json())["notice"], named("NoticeDetail"))
    resp = await client.post(f"/api/v1/notices/{scenario.swarm_id}/approve",
                             headers=auth["duty"])
    assert resp.status == 409
    check(await resp.json(), named("Problem"))
    with pytest.raises(jsonschema_rs.ValidationError):  # the check itself can fail
        check({**listed["notices"][0], "state": "sent"}, named("NoticeSummary"))
