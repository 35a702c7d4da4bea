"""Approvals: one contract on both backends — approve, reject, edit, whole messages (area
variants), withdrawal of superseded drafts, the read side duty staff judge by, two officers at
once — and the same answers from both on the rows the real Maizhokunggar swarm leaves."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from store_backends import played_postgres_copy, played_sqlite_copy

from quakealert.errors import InvalidRequest, NotFound
from quakealert.model import Message, Notice
from quakealert.store.approvals import REJECTED_ERROR, NotPending, OverBudget
from quakealert.store.decisions import DecisionRow

DAY = datetime(2024, 11, 7, 20, 19, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def held(b, conn, nid: str, at: datetime, *, kind: str = "swarm_advisory",
         areas: tuple[str | None, ...] = ("chengguan",), seq: str = "seq-1",
         state: str = "pending_approval", rows: int = 2) -> None:
    """A notice of ``kind`` made at ``at`` for ``rows`` residents in each of ``areas``, its
    deliveries waiting in the outbox until the approval timeout."""
    b.notices.save_notice(conn, Notice(
        id=nid, sequence_id=seq, event_id="ev-45", kind=kind, msg_type="Update", created_at=at,
        messages=(Message("zh", "震群提示", "震群活动持续。"), Message("en", "Swarm", "Go on."))),
        state)
    b.decisions.save_decisions(conn, [
        DecisionRow(at=at, sequence_id=seq, event_id="ev-45", send=True,
                    reason_code="daily_summary", kind=kind, msg_type="Update", notice_id=nid,
                    area=area, degree=3, count=rows, reason_en="daily", reason_zh="每日")
        for area in areas])
    b.outbox.enqueue(conn, nid, [(k, "webhook", f"https://gw.example/{k}")
                                 for k in range(1, rows + 1)], now=NOW + timedelta(hours=1))


def outbox_of(b, conn, nid: str) -> list[tuple]:
    return b.sql(conn, "SELECT state, next_attempt_at, last_error FROM outbox"
                       " WHERE notice_id = ? ORDER BY id", (nid,))


def audits(b, conn) -> list[tuple]:
    return b.sql(conn, "SELECT actor_name, action, target, detail FROM audit_log ORDER BY id")


def test_approve_and_reject(store_backend):
    """Approve releases a held notice now and makes its waiting rows due now; reject stops it
    and fails its rows with the reason; each is audited; a second decision is refused with the
    state; an unknown notice is NotFound; an empty reason is refused."""
    b = store_backend
    conn = b.conn()
    held(b, conn, "a", DAY)
    held(b, conn, "r", DAY, seq="seq-2")
    s = b.approvals.approve(conn, "a", actor="duty:dawa", now=NOW, note="checked")
    assert s.state == "released" and s.released_at == NOW
    assert s.state_reason == "approved by duty:dawa at 2026-01-01T00:00:00Z: checked"
    assert outbox_of(b, conn, "a") == [("pending", NOW.timestamp(), None)] * 2
    with pytest.raises(InvalidRequest):
        b.approvals.reject(conn, "r", actor="duty:dawa", reason="  ", now=NOW)
    s = b.approvals.reject(conn, "r", actor="duty:dawa", reason="wrong county", now=NOW)
    assert s.state == "rejected" and s.released_at is None
    assert {r[0] for r in outbox_of(b, conn, "r")} == {"failed"}
    assert outbox_of(b, conn, "r")[0][2] == f"{REJECTED_ERROR}: wrong county"
    for call in (lambda: b.approvals.approve(conn, "r", actor="x", now=NOW),
                 lambda: b.approvals.reject(conn, "a", actor="x", reason="late", now=NOW)):
        with pytest.raises(NotPending) as err:
            call()
        assert err.value.state in ("released", "rejected")
    with pytest.raises(NotFound):
        b.approvals.approve(conn, "nope", actor="x", now=NOW)
    assert audits(b, conn) == [
        ("duty:dawa", "notice.approve", "a", "2 deliveries released; note: checked"),
        ("duty:dawa", "notice.reject", "r", "2 deliveries cancelled; reason: wrong county")]


def test_edit_keeps_the_old_text_and_respects_the_budget(store_backend):
    """An edit replaces one language's text and keeps the old one; text over the Web Push
    budget is refused and nothing is stored; a language the notice lacks, or a released
    notice, is refused."""
    b = store_backend
    conn = b.conn()
    held(b, conn, "e", DAY)
    with pytest.raises(OverBudget) as err:
        b.approvals.edit(conn, "e", {"zh": {"title": "震", "body": "长" * 3000}}, actor="d",
                         now=NOW)
    assert err.value.budgets["zh"]["ok"] is False
    assert b.approvals.list_edits(conn, "e") == []
    with pytest.raises(InvalidRequest):
        b.approvals.edit(conn, "e", {"bo": {"title": "a", "body": "b"}}, actor="d", now=NOW)
    result = b.approvals.edit(conn, "e", {"en": {"title": "Swarm", "body": "Stay calm."}},
                              actor="duty:dawa", now=NOW)
    assert result.stored.state == "pending_approval" and result.budgets["en"]["ok"]
    assert result.stored.notice.message("en").body == "Stay calm."
    assert b.notices.load_notice(conn, "e").message("zh").body == "震群活动持续。"
    (change,) = b.approvals.list_edits(conn, "e")
    assert (change["actor"], change["languages"], change["before"]["en"]["body"],
            change["after"]["en"]["body"]) == ("duty:dawa", ["en"], "Go on.", "Stay calm.")
    b.approvals.approve(conn, "e", actor="d", now=NOW)
    with pytest.raises(NotPending):
        b.approvals.edit(conn, "e", {"en": {"title": "x", "body": "y"}}, actor="d", now=NOW)


def test_a_message_is_approved_or_rejected_with_all_its_area_variants(store_backend):
    """Notices of one policy round with the same message (different areas) are judged
    together; once one of them is decided, the others are what is left pending."""
    b = store_backend
    conn = b.conn()
    held(b, conn, "v1", DAY, areas=("chengguan",))
    held(b, conn, "v2", DAY, areas=("doilungdeqen",))
    held(b, conn, "v3", DAY, areas=("dagze",))
    held(b, conn, "other", DAY + timedelta(seconds=1))
    assert b.approvals.message_variants(conn, "v2") == ["v1", "v2", "v3"]
    b.approvals.approve(conn, "v3", actor="d", now=NOW)
    assert b.approvals.message_variants(conn, "v3") == ["v1", "v2"]
    done = b.approvals.reject_message(conn, "v1", actor="d", reason="no", now=NOW)
    assert [(s.notice.id, s.state) for s in done] == [("v1", "rejected"), ("v2", "rejected")]
    with pytest.raises(NotPending):
        b.approvals.approve_message(conn, "v1", actor="d", now=NOW)
    assert [s.notice.id for s in b.approvals.approve_message(conn, "other", actor="d",
                                                             now=NOW)] == ["other"]
    with pytest.raises(NotFound):
        b.approvals.message_variants(conn, "nope")


def test_superseded_drafts_are_withdrawn(store_backend):
    """Today's summary withdraws yesterday's held one for the same areas (expired, reason,
    rows failed, audited); one covering an area today's does not, or one already decided,
    stays."""
    b = store_backend
    conn = b.conn()
    held(b, conn, "sum-1", DAY)
    held(b, conn, "wide", DAY, areas=("chengguan", "dagze"), seq="seq-1", kind="swarm_advisory")
    held(b, conn, "done", DAY, state="released")
    held(b, conn, "sum-2", DAY + timedelta(days=1))
    assert b.approvals.withdraw_superseded(conn, "sum-2", now=NOW) == ["sum-1"]
    old = b.notices.load_stored_notice(conn, "sum-1")
    assert old.state == "expired"
    assert old.state_reason == "withdrawn at 2026-01-01T00:00:00Z: superseded by sum-2"
    assert {r[0] for r in outbox_of(b, conn, "sum-1")} == {"failed"}
    assert b.notices.load_stored_notice(conn, "wide").state == "pending_approval"
    assert audits(b, conn) == [("pipeline", "notice.withdraw", "sum-1", "superseded by sum-2")]
    assert b.approvals.withdraw_superseded(conn, "sum-2", now=NOW) == []


def test_read_side(store_backend):
    """Who a notice was for and who not (grouped, latest reason text), rounds that made no
    notice, recipients per area (no area too), and pages of notices by kind part."""
    b = store_backend
    conn = b.conn()
    held(b, conn, "n1", DAY, kind="official_report+felt_guidance", areas=("chengguan", None),
         rows=3)
    b.decisions.save_decisions(conn, [
        DecisionRow(at=DAY, sequence_id="seq-1", event_id="ev-45", send=False,
                    reason_code="below_threshold", reason_en=f"II at {km} km",
                    reason_zh="未达阈值", area="dagze", degree=2, count=2)
        for km in (80, 95)] + [
        DecisionRow(at=DAY + timedelta(hours=h), sequence_id="seq-1", event_id=f"ev-{h}",
                    send=False, reason_code="budget", reason_en=f"budget {h}",
                    reason_zh="预算", area=None, count=5) for h in (1, 2)])
    stored = b.notices.load_stored_notice(conn, "n1")
    got = b.approvals.notice_decisions(conn, stored)
    assert [(d["send"], d["area"], d["count"], d["reason_en"]) for d in got] == [
        (True, None, 3, "daily"), (True, "chengguan", 3, "daily"),
        (False, "dagze", 4, "II at 95 km")]
    (quiet,) = b.approvals.not_sent_without_notice(conn, "seq-1")
    assert (quiet["count"], quiet["events"], quiet["reason_en"], quiet["area"]) == (
        10, ["ev-1", "ev-2"], "budget 2", None)
    assert b.approvals.recipients_by_area(conn, "n1") == {None: 3, "chengguan": 3}
    for k in range(5):
        held(b, conn, f"p{k}", DAY + timedelta(minutes=k // 2), rows=1,
             kind="felt_guidance" if k % 2 else "swarm_advisory")
    page = b.approvals.page_notices(conn, kind="felt_guidance")
    assert [s.notice.id for s in page] == ["p3", "p1", "n1"]
    ids, after = [], None
    while chunk := b.approvals.page_notices(conn, state="pending_approval", after=after,
                                            limit=2):
        ids += [s.notice.id for s in chunk]
        after = (chunk[-1].notice.created_at.timestamp(), chunk[-1].notice.id)
    assert ids == ["p4", "p3", "p2", "p1", "p0", "n1"]
    assert b.approvals.page_notices(conn, sequence_id="seq-x") == []


def test_two_officers_at_once_one_wins(store_backend):
    """Approve and reject of the same held notice at the same moment, from two connections:
    exactly one acts, the other is refused with NotPending, and the outbox agrees."""
    b = store_backend
    held(b, b.conn(), "n1", DAY)
    conns = [b.conn(), b.conn()]
    start = threading.Barrier(2)

    def act(k: int) -> str:
        start.wait()
        try:
            if k == 0:
                b.approvals.approve(conns[0], "n1", actor="duty:a", now=NOW)
                return "released"
            b.approvals.reject(conns[1], "n1", actor="duty:b", reason="no", now=NOW)
            return "rejected"
        except NotPending:
            return "refused"

    with ThreadPoolExecutor(2) as ex:
        outcomes = sorted(f.result(timeout=60) for f in [ex.submit(act, k) for k in range(2)])
    assert outcomes in (["refused", "released"], ["refused", "rejected"])
    winner = next(o for o in outcomes if o != "refused")
    conn = b.conn()
    assert b.notices.load_stored_notice(conn, "n1").state == winner
    assert {r[0] for r in outbox_of(b, conn, "n1")} == (
        {"pending"} if winner == "released" else {"failed"})
    assert len(audits(b, conn)) == 1


def test_approving_a_held_swarm_advisory_releases_every_resident(played_backend):
    """The played swarm's held advisory goes to 1,300 residents (one fan-out row): approving
    it makes all of them due at once, not at the approval timeout."""
    b = played_backend
    conn = b.conn()
    ((nid,),) = b.sql(conn, "SELECT id FROM notices WHERE state = 'pending_approval'")
    ((due,),) = b.sql(conn, "SELECT min(next_attempt_at) FROM outbox_fanout"
                            " WHERE notice_id = ?", (nid,))
    now = datetime.fromtimestamp(due, UTC) - timedelta(minutes=5)  # before the timeout
    b.approvals.approve(conn, nid, actor="duty:dawa", now=now)
    got = []
    while rows := b.outbox.claim(conn, 500, now):
        got += [r.subscriber_id for r in rows if r.notice_id == nid]
    assert len(got) == len(set(got)) >= 1300


def test_both_backends_judge_the_played_swarm_the_same(tmp_path, played_sqlite, pg_url):
    """Every read-side answer for every notice of the played swarm is the same on SQLite and
    on its PostgreSQL copy; so is approving its held advisory."""
    lite = played_sqlite_copy(played_sqlite, tmp_path / "same.sqlite")
    pg = played_postgres_copy(played_sqlite, pg_url)
    try:
        conns = lite.conn(), pg.conn()
        notices = [r[0] for r in lite.sql(conns[0], "SELECT id FROM notices ORDER BY id")]
        (seq,) = {r[0] for r in lite.sql(conns[0], "SELECT DISTINCT sequence_id FROM notices")}

        def reads(b, c):
            return (
                [b.approvals.notice_decisions(c, b.notices.load_stored_notice(c, n))
                 for n in notices],
                b.approvals.not_sent_without_notice(c, seq),
                [b.approvals.recipients_by_area(c, n) for n in notices],
                [b.approvals.message_variants(c, n) for n in notices],
                b.approvals.page_notices(c),
                b.approvals.page_notices(c, kind="felt_guidance", limit=2),
            )

        assert reads(lite, conns[0]) == reads(pg, conns[1])
        (held_id,) = [n for n in notices
                      if lite.notices.load_stored_notice(conns[0], n).state == "pending_approval"]
        done = [b.approvals.approve(c, held_id, actor="duty:dawa", now=NOW)
                for b, c in zip((lite, pg), conns)]
        assert done[0] == done[1]
        assert reads(lite, conns[0]) == reads(pg, conns[1])
    finally:
        lite.close()
        pg.close()
