"""Decisions and residents' threads: one contract on both backends — individual and group rows
(count and members), the per-resident view, summaries, own and shared thread states — and the
same answers from both on the rows the real Maizhokunggar swarm leaves behind."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
from store_backends import played_postgres_copy, played_sqlite_copy

from quakealert.store.decisions import DecisionRow

AT = datetime(2024, 11, 6, 20, 20, tzinfo=UTC)


def row(**kw) -> DecisionRow:
    base = DecisionRow(at=AT, sequence_id="s1", event_id="e1", send=True, reason_code="felt",
                       reason_en="felt", reason_zh="有感", kind="felt_guidance",
                       msg_type="Alert", urgency="immediate", notice_id="n1", area="chengguan",
                       degree=4)
    return replace(base, **kw)


def test_individual_and_group_decisions(store_backend):
    """Individual rows and a group row (count, members) read back in order with filters; the
    summary adds counts; a resident sees their own rows and the groups naming them."""
    b = store_backend
    conn = b.conn()
    members = np.array([5, 6, 7, 8], dtype="<i8").tobytes()
    n = b.decisions.save_decisions(conn, [
        row(subscriber_id=1),
        row(subscriber_id=2, send=False, reason_code="below_threshold", notice_id=None,
            kind=None, degree=2, at=AT + timedelta(seconds=1)),
        row(count=4, members=members, at=AT + timedelta(seconds=2)),
        row(sequence_id="s2", subscriber_id=5, notice_id="n2"),
    ])
    assert n == 4 and b.decisions.save_decisions(conn, []) == 0
    s1 = b.decisions.list_decisions(conn, sequence_id="s1")
    assert [(d["send"], d["count"], d["reason_code"]) for d in s1] == [
        (True, 1, "felt"), (False, 1, "below_threshold"), (True, 4, "felt")]
    assert s1[0]["at"] == "2024-11-06T20:20:00Z" and s1[0]["degree"] == 4
    assert len(b.decisions.list_decisions(conn, send=False)) == 1
    assert len(b.decisions.list_decisions(conn, notice_id="n1", limit=2)) == 2
    assert sorted((d["send"], d["reason_code"], d["residents"])
                  for d in b.decisions.decision_summary(conn, "s1")) == [
        (False, "below_threshold", 1), (True, "felt", 5)]
    mine = b.decisions.resident_decisions(conn, 6)
    assert [(d["sequence_id"], d["decided_with"]) for d in mine] == [("s1", 4)]
    assert [d["sequence_id"] for d in b.decisions.resident_decisions(conn, 5)] == ["s2", "s1"]
    assert b.decisions.resident_decisions(conn, 5, sequence_id="s2")[0]["notice_id"] == "n2"
    assert b.decisions.resident_decisions(conn, 99) == []


def test_own_and_shared_threads(store_backend):
    """A group's state is each member's thread; a later group naming a resident wins; a thread
    of their own wins over any group; other sequences are apart."""
    b = store_backend
    conn = b.conn()
    g1 = b.decisions.save_group_thread(conn, [1, 2, 3], "s1", '{"v": 1}', AT)
    g2 = b.decisions.save_group_thread(conn, [3, 4], "s1", '{"v": 2}', AT)
    assert g2 > g1
    b.decisions.save_thread(conn, 2, "s1", '{"own": 1}', AT)
    b.decisions.save_thread(conn, 2, "s1", '{"own": 2}', AT + timedelta(hours=1))
    b.decisions.save_thread(conn, 9, "s2", '{"other": 1}', AT)
    assert b.decisions.threads_for(conn, "s1") == {
        1: f"@{g1}", 2: '{"own": 2}', 3: f"@{g2}", 4: f"@{g2}"}
    assert b.decisions.thread_states(conn, "s1") == {g1: '{"v": 1}', g2: '{"v": 2}'}
    assert [b.decisions.load_thread(conn, k, "s1") for k in (1, 2, 3, 5)] == [
        '{"v": 1}', '{"own": 2}', '{"v": 2}', None]
    assert b.decisions.threads_for(conn, "s2") == {9: '{"other": 1}'}


def test_real_swarm_decisions(played_backend):
    """The played swarm: every Lhasa resident is counted in the sent decisions of the M4.5,
    each can read their own decisions and thread, and Chengdu is not told."""
    b = played_backend
    conn = b.conn()
    (seq,) = {r[0] for r in b.sql(conn, "SELECT DISTINCT sequence_id FROM decisions")}
    summary = b.decisions.decision_summary(conn, seq)
    assert sum(d["residents"] for d in summary if d["send"]) >= 1300
    assert any(not d["send"] for d in summary)
    mine = b.decisions.resident_decisions(conn, 123, sequence_id=seq)
    assert any(d["send"] and "felt_guidance" in d["kind"] for d in mine)
    assert all(d["decided_with"] >= 1 for d in mine)
    state = b.decisions.load_thread(conn, 123, seq)
    assert state is not None and '"advised_type": "swarm"' in state
    assert set(b.decisions.threads_for(conn, seq)) >= set(range(1, 1301))


def test_both_backends_read_the_played_swarm_the_same(tmp_path, played_sqlite, pg_url):
    """Every decision and thread read gives the same answer on SQLite and on its PostgreSQL
    copy."""
    lite = played_sqlite_copy(played_sqlite, tmp_path / "same.sqlite")
    pg = played_postgres_copy(played_sqlite, pg_url)
    try:
        conns = lite.conn(), pg.conn()
        (seq,) = {r[0] for r in lite.sql(conns[0], "SELECT DISTINCT sequence_id FROM decisions")}
        notices = [r[0] for r in lite.sql(conns[0], "SELECT id FROM notices ORDER BY id")]
        reads = [
            lambda b, c: b.decisions.list_decisions(c, limit=10_000),
            lambda b, c: b.decisions.list_decisions(c, sequence_id=seq, send=False),
            lambda b, c: [b.decisions.list_decisions(c, notice_id=n) for n in notices],
            lambda b, c: sorted(b.decisions.decision_summary(c, seq),
                                key=lambda d: (d["send"], d["reason_code"], d["area"] or "")),
            lambda b, c: [b.decisions.resident_decisions(c, k) for k in (1, 7, 123, 1301, 1340)],
            lambda b, c: b.decisions.threads_for(c, seq),
            lambda b, c: b.decisions.thread_states(c, seq),
            lambda b, c: [b.decisions.load_thread(c, k, seq) for k in (1, 2, 999, 1305)],
        ]
        for read in reads:
            assert read(lite, conns[0]) == read(pg, conns[1])
    finally:
        lite.close()
        pg.close()
