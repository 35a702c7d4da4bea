"""The store interface (store/base.py) on SQLite: unit of work, work off the loop, binding."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from types import ModuleType

import pytest

from quakealert.model import Message, Notice, Report
from quakealert.store import base, open_file
from quakealert.store.base import StoreBusy
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import NewSubscriber

NOW = datetime(2024, 11, 6, 20, 30, tzinfo=UTC)


def notice(nid: str = "n1") -> Notice:
    return Notice(id=nid, sequence_id="s1", event_id="e1", kind="felt_guidance",
                  msg_type="Alert", created_at=NOW, messages=(Message("zh", "地震", "请保持冷静"),))


def resident() -> NewSubscriber:
    return NewSubscriber(29.65, 91.13, ("zh", "bo"), "webhook", "https://office.example/hook")


def test_a_unit_of_work_commits_all_or_nothing(store: Store) -> None:
    """An error inside ``transaction()`` leaves none of its writes: notice, outbox rows and the
    end of the work item roll back together."""
    store.ingest([Report("cenc", "c1", NOW, 29.85, 92.25, 10.0, 4.5, "M")], now=NOW)
    [sid] = [c.id for c in store.subscribers.add_subscribers([resident()], now=NOW)]
    event_id = store.work.next_work()[0][0]
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.notices.save_notice(notice(), "released")
        tx.outbox.enqueue_subscribers("n1", [store.subscribers.get_subscriber(sid)["id"]],
                                      now=NOW)
        tx.work.finish_work([event_id])
        raise RuntimeError("crash before the commit")
    assert store.notices.list_notices() == []
    assert store.outbox.counts() == {}
    assert store.work.pending_work() == 1


def test_operations_on_the_store_join_its_open_transaction(store: Store) -> None:
    """Inside ``transaction()``, the store's own operations and a nested transaction are part
    of the one unit of work (the pipeline relies on this)."""
    with pytest.raises(RuntimeError), store.transaction():
        store.notices.save_notice(notice("n1"), "released")
        with store.transaction() as inner:
            inner.notices.save_notice(notice("n2"), "released")
        raise RuntimeError("roll back both")
    assert store.notices.list_notices() == []
    with store.transaction():
        store.notices.save_notice(notice("n1"), "released")
    assert [s.notice.id for s in store.notices.list_notices()] == ["n1"]


async def test_off_loop_work_runs_on_a_connection_of_its_own(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``off_loop`` hands the work a store of the same class on another connection, and a
    write lock held elsewhere past the wait is StoreBusy, not a stalled loop."""
    store = open_file(tmp_path / "q.sqlite")
    try:
        seen = await store.off_loop(lambda s: (type(s), s is store, s.count_events()))
        assert seen == (type(store), False, 0)
        other = sqlite3.connect(str(tmp_path / "q.sqlite"), isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            assert not store.write_lock_free(0.05)
            with pytest.raises(StoreBusy):
                await store.off_loop(lambda s: s.save_health({"name": "usgs", "polls": 1}), busy_wait_s=0.05)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert store.write_lock_free(0.05)
    finally:
        store.close()


def test_a_backend_lacking_an_operation_does_not_bind() -> None:
    """``bind`` names the first missing operation; ``missing`` lists every gap per group."""
    partial = ModuleType("partial_notices")
    partial.load_notice = lambda conn, notice_id: None  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="save_notice"):
        base.bind(base.Notices, partial, None)
    gaps = base.missing({"notices": partial})
    assert "load_notice" not in gaps["notices"] and "save_notice" in gaps["notices"]
    assert set(gaps) == set(base.GROUPS)
