"""Superseded drafts withdraw themselves: a held notice that a newer one of the same kind and
sequence replaces (yesterday's daily summary) is not left for anyone to approve."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from quakealert.model import Message, Notice
from quakealert.store import approvals as ap
from quakealert.store.auth import audit_log
from quakealert.store.decisions import DecisionRow, save_decisions
from quakealert.store.notices import load_stored_notice, save_notice
from quakealert.store.outbox import enqueue
from quakealert.store.sqlite import Store

DAY = datetime(2024, 11, 7, 20, 19, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "w.sqlite")
    yield s
    s.close()


def held(store: Store, nid: str, at: datetime, *, kind: str = "swarm_advisory",
         areas: tuple[str, ...] = ("chengguan",), seq: str = "seq-1",
         state: str = "pending_approval") -> None:
    """A notice of ``kind`` made at ``at`` for one resident in each of ``areas``."""
    save_notice(store.conn, Notice(
        id=nid, sequence_id=seq, event_id="ev-45", kind=kind, msg_type="Update", created_at=at,
        messages=(Message("zh", "震群提示", "震群活动持续。"),)), state)  # type: ignore[arg-type]
    save_decisions(store.conn, [
        DecisionRow(at=at, sequence_id=seq, event_id="ev-45", send=True,
                    reason_code="daily_summary", kind=kind, msg_type="Update", notice_id=nid,
                    area=area, degree=3, count=1, reason_en="daily", reason_zh="每日")
        for area in areas])


def test_yesterdays_summary_is_withdrawn_with_the_reason(store):
    """Today's summary for the same district withdraws yesterday's held one: state expired,
    reason "withdrawn … superseded by <today>", its waiting deliveries failed, audited."""
    held(store, "sum-1", DAY)
    enqueue(store.conn, "sum-1", [(1, "webhook", "https://gw.example/1")], now=DAY)
    held(store, "sum-2", DAY + timedelta(days=1))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert ap.withdraw_superseded(store.conn, "sum-2", now=now) == ["sum-1"]
    old = load_stored_notice(store.conn, "sum-1")
    assert old.state == "expired"
    assert old.state_reason == "withdrawn at 2026-01-01T00:00:00Z: superseded by sum-2"
    row = store.conn.execute("SELECT state, last_error FROM outbox WHERE notice_id = 'sum-1'"
                             ).fetchone()
    assert tuple(row) == ("failed", "withdrawn: superseded by sum-2")
    assert load_stored_notice(store.conn, "sum-2").state == "pending_approval"
    entry = audit_log(store.conn)[0]
    assert (entry["action"], entry["target"]) == ("notice.withdraw", "sum-1")
    with pytest.raises(ap.NotPending):  # nobody can approve it any more
        ap.approve(store.conn, "sum-1", actor="cli:test", now=now)


@pytest.mark.parametrize("other", [
    {"kind": "felt_guidance"},  # another kind says something else
    {"seq": "seq-2"},  # another sequence
    {"areas": ("dagze",)},  # a district the old one reaches is left out: it still has to go
])
def test_only_a_notice_that_covers_it_supersedes(store, other):
    """A newer notice of another kind, sequence, or that misses one of the old notice's
    districts, withdraws nothing."""
    held(store, "old", DAY, areas=("chengguan", "dagze") if "areas" in other else ("chengguan",))
    held(store, "new", DAY + timedelta(days=1), **{"areas": ("chengguan",), **other})
    assert ap.withdraw_superseded(store.conn, "new", now=DAY) == []
    assert load_stored_notice(store.conn, "old").state == "pending_approval"


def test_decided_and_simultaneous_notices_stay(store):
    """Released notices and the newer notice's own area variants (same moment) are untouched."""
    held(store, "told", DAY - timedelta(days=1), state="released")
    held(store, "twin-a", DAY)
    held(store, "twin-b", DAY, areas=("dagze",))
    assert ap.withdraw_superseded(store.conn, "twin-a", now=DAY) == []
    assert load_stored_notice(store.conn, "told").state == "released"
    assert load_stored_notice(store.conn, "twin-b").state == "pending_approval"


def test_message_variants_are_approved_together(store):
    """approve_message releases every pending area variant of one message in one go."""
    held(store, "v-1", DAY)
    held(store, "v-2", DAY, areas=("dagze",))
    held(store, "other", DAY + timedelta(hours=1))
    assert ap.message_variants(store.conn, "v-2") == ["v-1", "v-2"]
    done = ap.approve_message(store.conn, "v-1", actor="cli:test", now=DAY)
    assert [s.notice.id for s in done] == ["v-1", "v-2"]
    assert {s.state for s in done} == {"released"}
    assert load_stored_notice(store.conn, "other").state == "pending_approval"
    with pytest.raises(ap.NotPending):
        ap.reject_message(store.conn, "v-2", actor="cli:test", reason="late", now=DAY)
