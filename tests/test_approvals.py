"""Approvals end to end: the Maizhokunggar 2024 swarm through the pipeline, the duty officer's
decision, and the outbox, driven step by step (no sleeping, no network)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from quakealert.api.app import make_app
from quakealert.channels.base import DeliveryResult, Recipient
from quakealert.config import Settings
from quakealert.model import Notice, Report
from quakealert.service.dispatch import Outbox, OutboxSettings
from quakealert.service.pipeline import Pipeline
from quakealert.store import approvals as ap
from quakealert.store.auth import audit_log, create_token
from quakealert.store.notices import load_stored_notice
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import NewSubscriber, add_subscriber

TIMEOUT_S = 600
SCENARIO = (
    # CENC, reviewed; the M4.1 at the assumed epicentre of the M4.5 (DESIGN.md).
    Report("cenc", "cc20241031013200", datetime(2024, 10, 31, 1, 32, tzinfo=UTC), 29.85, 92.25,
           10.0, 4.1, "M", status="reviewed"),
    Report("cenc", "cc20241106201900", datetime(2024, 11, 6, 20, 19, tzinfo=UTC), 29.85, 92.25,
           10.0, 4.5, "M", status="reviewed", place="西藏拉萨市墨竹工卡县"),
    Report("cenc", "cc20241108050000", datetime(2024, 11, 8, 5, 0, tzinfo=UTC), 29.81, 92.26,
           10.0, 4.0, "M", status="reviewed"),
)
# The scenario's notices carry 2024 creation times while the outbox runs on today's clock; the
# default 24 h delivery TTL would expire them, which is not what these tests are about.
OUTBOX = OutboxSettings(ttl_s=20 * 365 * 86400.0)


@dataclass
class Scenario:
    store: Store
    settings: Settings
    pipeline: Pipeline
    felt_id: str
    swarm_id: str
    subscriber_id: int


@dataclass
class FakeConsole:
    """A console channel that records what it delivered."""

    name: str = "console"
    delivered: list[tuple[str, int, str]] = field(default_factory=list)

    async def deliver(self, notice: Notice, recipient: Recipient, session: aiohttp.ClientSession,
                      *, now: datetime) -> DeliveryResult:
        body = notice.message("zh").body if notice.message("zh") else ""
        self.delivered.append((notice.id, recipient.subscriber_id, body))
        return DeliveryResult(notice.id, self.name, recipient.target, ok=True)

    def notice_ids(self) -> list[str]:
        return [d[0] for d in self.delivered]


def run_scenario(tmp_path: Path, extra_subscribers: tuple[NewSubscriber, ...] = ()) -> Scenario:
    """The three quakes through the pipeline for one Lhasa resident (console channel)."""
    path = tmp_path / "approvals.sqlite"
    # quiet hours off: the M4.5 struck at 04:19 Beijing time and a swarm advisory would
    # otherwise also wait until 07:30 (core.policy), which is not what these tests are about
    settings = Settings(store_path=path, sections={
        "approvals": {"swarm_advisory": TIMEOUT_S},
        "policy": {"quiet_start": "00:00", "quiet_end": "00:00"}})
    store = Store.open(path)
    before = datetime(2024, 10, 1, tzinfo=UTC)
    # console is not a channel residents can subscribe to, so no parse_subscriber here
    lhasa = add_subscriber(store.conn, NewSubscriber(29.65, 91.13, ("zh", "bo", "en"), "console",
                                                      "stdout"), now=before)
    for sub in extra_subscribers:
        add_subscriber(store.conn, sub, now=before)
    pipeline = Pipeline(store, settings, exercise=True)
    for report in SCENARIO:
        at = report.origin_at + timedelta(minutes=5)
        pipeline.process(store.ingest([report], now=at), now=at)
    kinds = {r["kind"]: r["id"] for r in store.conn.execute("SELECT id, kind FROM notices")}
    felt = [nid for kind, nid in kinds.items() if "felt_guidance" in kind.split("+")]
    sub_id = store.conn.execute("SELECT id FROM subscribers WHERE public_id = ?",
                                (lhasa.id,)).fetchone()[0]
    assert len(felt) == 1 and "swarm_advisory" in kinds, kinds
    return Scenario(store, settings, pipeline, felt[0], kinds["swarm_advisory"], sub_id)


@pytest.fixture
def scenario(tmp_path: Path):
    s = run_scenario(tmp_path)
    yield s
    s.store.close()


@pytest.fixture
async def outbox(scenario: Scenario):
    channel = FakeConsole()
    async with aiohttp.ClientSession() as session:
        yield Outbox(scenario.store, {"console": channel}, session, settings=OUTBOX), channel


def outbox_rows(store: Store, notice_id: str) -> list[dict]:
    return [dict(r) for r in store.conn.execute(
        "SELECT state, last_error, next_attempt_at FROM outbox WHERE notice_id = ?", (notice_id,))]


async def duty_client(aiohttp_client, scenario: Scenario):
    secret = create_token(scenario.store.conn, "duty", "Dawa (duty)", now=datetime.now(UTC))[1]
    client = await aiohttp_client(make_app(scenario.settings, store=scenario.store))
    return client, {"Authorization": f"Bearer {secret}"}


async def test_felt_guidance_never_waits_and_swarm_advisory_waits(scenario, outbox):
    """The felt guidance goes out on the first drain; the swarm advisory is held for approval
    and its row is not due before the timeout."""
    box, channel = outbox
    felt = load_stored_notice(scenario.store.conn, scenario.felt_id)
    swarm = load_stored_notice(scenario.store.conn, scenario.swarm_id)
    assert felt.state == "released"
    assert swarm.state == "pending_approval"
    assert swarm.notice.kind == "swarm_advisory" and swarm.notice.exercise
    # nothing waits longer than the timeout: the held row becomes due when it runs out
    due = outbox_rows(scenario.store, scenario.swarm_id)[0]["next_attempt_at"]
    assert abs(due - (swarm.state_at.timestamp() + TIMEOUT_S)) < 5

    now = datetime.now(UTC)
    assert await box.drain_once(now) == 1
    assert channel.notice_ids() == [scenario.felt_id]
    assert await box.drain_once(swarm.state_at + timedelta(seconds=TIMEOUT_S - 60)) == 0
    assert channel.notice_ids() == [scenario.felt_id]


async def test_held_row_that_falls_due_is_not_sent_while_pending(scenario, outbox):
    """If the outbox reaches a row before anyone decides, it puts it back instead of sending."""
    box, channel = outbox
    due = datetime.fromtimestamp(outbox_rows(scenario.store, scenario.swarm_id)[0]
                                 ["next_attempt_at"], UTC)
    await box.drain_once(due)
    assert scenario.swarm_id not in channel.notice_ids()
    [row] = outbox_rows(scenario.store, scenario.swarm_id)
    assert row["state"] == "pending" and row["last_error"] == "notice awaiting approval"


async def test_approve_releases_on_next_drain(scenario, outbox, aiohttp_client):
    """A duty officer approves over the API: the advisory is delivered on the very next drain,
    long before the timeout, and the approval is in the audit log and the state reason."""
    box, channel = outbox
    client, auth = await duty_client(aiohttp_client, scenario)
    await box.drain_once(datetime.now(UTC))
    assert scenario.swarm_id not in channel.notice_ids()

    resp = await client.post(f"/api/v1/notices/{scenario.swarm_id}/approve", headers=auth)
    assert resp.status == 200, await resp.text()
    body = (await resp.json())["notice"]
    assert body["state"] == "released" and body["state_reason"].startswith("approved by Dawa")

    assert await box.drain_once(datetime.now(UTC)) == 1
    assert channel.notice_ids() == [scenario.felt_id, scenario.swarm_id]
    assert channel.delivered[-1][1] == scenario.subscriber_id
    assert [r["state"] for r in outbox_rows(scenario.store, scenario.swarm_id)] == ["sent"]
    [entry] = [a for a in audit_log(scenario.store.conn) if a["action"] == "notice.approve"]
    assert entry["actor_name"] == "Dawa (duty)" and entry["target"] == scenario.swarm_id


async def test_reject_is_never_delivered(scenario, outbox, aiohttp_client):
    """A rejected advisory is never sent, not even after the timeout; its rows fail with the
    reason."""
    box, channel = outbox
    client, auth = await duty_client(aiohttp_client, scenario)
    reason = "county office already broadcast the advisory by loudspeaker"
    resp = await client.post(f"/api/v1/notices/{scenario.swarm_id}/reject", headers=auth,
                             json={"reason": reason})
    assert resp.status == 200, await resp.text()

    [row] = outbox_rows(scenario.store, scenario.swarm_id)
    assert row["state"] == "failed"
    assert row["last_error"] == f"{ap.REJECTED_ERROR}: {reason}"
    swarm = load_stored_notice(scenario.store.conn, scenario.swarm_id)
    later = swarm.state_at + timedelta(days=2)
    assert scenario.pipeline.release_expired(later) == []
    await box.drain_once(datetime.now(UTC))
    await box.drain_once(later)
    assert scenario.swarm_id not in channel.notice_ids()
    assert load_stored_notice(scenario.store.conn, scenario.swarm_id).state == "rejected"


async def test_no_decision_auto_releases_at_timeout(scenario, outbox):
    """Without a decision the advisory is released exactly at creation + timeout and sent."""
    box, channel = outbox
    swarm = load_stored_notice(scenario.store.conn, scenario.swarm_id)
    deadline = swarm.state_at + timedelta(seconds=TIMEOUT_S)
    assert scenario.pipeline.release_expired(deadline - timedelta(seconds=1)) == []
    assert scenario.pipeline.release_expired(deadline) == [scenario.swarm_id]
    stored = load_stored_notice(scenario.store.conn, scenario.swarm_id)
    assert stored.state == "released" and "auto-released after 600 s" in stored.state_reason

    due = datetime.fromtimestamp(outbox_rows(scenario.store, scenario.swarm_id)[0]
                                 ["next_attempt_at"], UTC)
    assert due - deadline < timedelta(seconds=5)
    await box.drain_once(max(due, deadline))
    assert scenario.swarm_id in channel.notice_ids()
    # a late click after the automatic release changes nothing
    with pytest.raises(ap.NotPending):
        ap.reject(scenario.store.conn, scenario.swarm_id, actor="cli:late", reason="too late",
                  now=deadline + timedelta(seconds=5))


async def test_edit_changes_what_is_delivered_and_keeps_the_original(scenario, outbox):
    """An edited advisory is delivered with the new text; the original stays in the edit log,
    and the approval timeout still counts from creation."""
    box, channel = outbox
    conn = scenario.store.conn
    before = load_stored_notice(conn, scenario.swarm_id)
    original = before.notice.message("zh")
    new_body = "拉萨市地震局提示：近期墨竹工卡县发生震群活动，请保持冷静，注意防范次生灾害。"
    result = ap.edit(conn, scenario.swarm_id, {"zh": {"title": original.title, "body": new_body}},
                     actor="cli:editor", now=datetime.now(UTC))
    assert result.budgets["zh"]["ok"] and result.budgets["zh"]["sms"]["encoding"] == "ucs2"
    after = load_stored_notice(conn, scenario.swarm_id)
    assert after.state_at == before.state_at
    assert [m.lang for m in after.notice.messages] == [m.lang for m in before.notice.messages]
    assert after.notice.message("en") == before.notice.message("en")
    [edit] = ap.list_edits(conn, scenario.swarm_id)
    assert edit["before"]["zh"]["body"] == original.body and edit["after"]["zh"]["body"] == new_body

    ap.approve(conn, scenario.swarm_id, actor="cli:editor", now=datetime.now(UTC))
    await box.drain_once(datetime.now(UTC))
    assert (scenario.swarm_id, scenario.subscriber_id, new_body) in channel.delivered
