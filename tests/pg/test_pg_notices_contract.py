"""Notices: one contract on both backends — round trip, states and their transitions, the CAP
archive, filters and order, and two officers acting on the same notice at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from quakealert.errors import InvalidRequest, NotFound
from quakealert.model import Message, Notice
from quakealert.store import notices as lite
from quakealert.store.postgres import notices as pg
from quakealert.store.sqlite import Store

NOW = datetime(2024, 11, 6, 20, 25, tzinfo=UTC)
N = Notice(id="n1", sequence_id="s1", event_id="e1", kind="swarm_advisory", msg_type="Update",
           messages=(Message("zh", "震群", "注意"), Message("bo", "ས་ཡོམ།", "ཉེན་སྲུང་།")),
           created_at=NOW, urgency="low", references=("n0",), exercise=True, url="https://x/1")


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    if request.param == "sqlite":
        path = tmp_path / "n.sqlite"
        Store.open(path).close()
        conns = []

        def connect():
            conns.append(Store.open(path))
            return conns[-1].conn
        yield lite, connect
        for s in conns:
            s.close()
    else:
        url = request.getfixturevalue("pg_url")
        conns = []

        def connect():
            conns.append(psycopg.connect(url, autocommit=True))
            return conns[-1]
        yield pg, connect
        for c in conns:
            c.close()


def test_round_trip_states_and_cap(backend):
    """A notice comes back equal; approval releases it with the time; illegal moves fail; the CAP
    archive keeps its bytes."""
    ops, connect = backend
    conn = connect()
    area = lite.AreaCircle(29.85, 92.25, 150.0, "墨竹工卡县")
    ops.save_notice(conn, N, "pending_approval", area=area)
    assert ops.load_notice(conn, "n1") == N
    with pytest.raises(InvalidRequest):
        ops.save_notice(conn, N, "released")
    s = ops.set_notice_state(conn, "n1", "released", at=NOW + timedelta(minutes=3),
                             reason="approved by duty")
    assert s.state == "released" and s.released_at == NOW + timedelta(minutes=3)
    assert s.area == area and s.state_reason == "approved by duty"
    with pytest.raises(InvalidRequest):
        ops.set_notice_state(conn, "n1", "rejected", at=NOW)
    ops.set_notice_state(conn, "n1", "expired", at=NOW + timedelta(days=2))
    assert ops.load_stored_notice(conn, "n1").released_at == NOW + timedelta(minutes=3)
    assert ops.load_cap(conn, "n1") is None
    ops.save_cap(conn, "n1", b"<alert>\xff</alert>")
    assert ops.load_cap(conn, "n1") == b"<alert>\xff</alert>"
    for call in (lambda: ops.load_notice(conn, "nope"), lambda: ops.load_cap(conn, "nope"),
                 lambda: ops.save_cap(conn, "nope", b"x"),
                 lambda: ops.set_notice_state(conn, "nope", "expired", at=NOW)):
        with pytest.raises(NotFound):
            call()


def test_filters_and_order(backend):
    """Filter by sequence, event and state; released ones by release time; both directions."""
    ops, connect = backend
    conn = connect()
    for i, seq in enumerate(["s1", "s2", "s1", "s1"]):
        n = Notice(id=f"n{i}", sequence_id=seq, event_id=f"e{i % 2}", kind="k",
                   msg_type="Alert", messages=(), created_at=NOW + timedelta(minutes=i))
        ops.save_notice(conn, n, "released" if i != 1 else "pending_approval",
                        at=NOW + timedelta(minutes=10 - i))
    assert [s.notice.id for s in ops.list_notices(conn, "s1")] == ["n0", "n2", "n3"]
    assert [s.notice.id for s in ops.list_notices(conn, "s1", newest_first=False)] == \
        ["n3", "n2", "n0"]
    assert [s.notice.id for s in ops.list_notices(conn, state="pending_approval")] == ["n1"]
    assert [s.notice.id for s in ops.list_notices(conn, event_id="e0", limit=1)] == ["n0"]


def test_two_officers_at_once_one_wins(backend):
    """Approve and reject the same pending notice at the same moment from two connections:
    exactly one succeeds, the other is refused, and the stored state is the winner's."""
    ops, connect = backend
    ops.save_notice(connect(), N, "pending_approval")
    conns = [connect(), connect()]
    start = threading.Barrier(2)

    def act(k: int) -> str:
        start.wait()
        state = ("released", "rejected")[k]
        try:
            ops.set_notice_state(conns[k], "n1", state, at=NOW)
        except InvalidRequest:
            return "refused"
        return state

    with ThreadPoolExecutor(2) as ex:
        outcomes = sorted(ex.map(act, range(2)))
    assert outcomes in (["refused", "released"], ["refused", "rejected"])
    winner = next(o for o in outcomes if o != "refused")
    assert ops.load_stored_notice(connect(), "n1").state == winner
