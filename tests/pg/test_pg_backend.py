"""The PostgreSQL backend of store/base.py (store/postgres/backend.py): every operation of the
interface is there, a unit of work is one transaction for the thread, `[store] url` selects it,
and the operations it adds read the real swarm's rows as SQLite does."""

from __future__ import annotations

import asyncio
import shutil
import threading
from datetime import UTC, datetime

import psycopg
import pytest
from store_backends import played_postgres_copy

from quakealert.config import Settings, load_settings
from quakealert.errors import ConfigError
from quakealert.model import Message, Notice, Report
from quakealert.store import base, open_store
from quakealert.store.postgres.backend import FLAT, MODULES, PgBackend
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import NewSubscriber

NOW = datetime(2024, 11, 6, 20, 30, tzinfo=UTC)


def notice(nid: str = "n1") -> Notice:
    return Notice(id=nid, sequence_id="s1", event_id="e1", kind="felt_guidance",
                  msg_type="Alert", created_at=NOW, messages=(Message("zh", "地震", "请保持冷静"),))


def resident() -> NewSubscriber:
    return NewSubscriber(29.65, 91.13, ("zh", "bo"), "webhook", "https://office.example/hook")


@pytest.fixture
def pg(pg_url: str, tmp_path):  # type: ignore[no-untyped-def]
    """The backend as the daemon opens it: open_store on settings naming the URL."""
    store = open_store(Settings(store_path=tmp_path / "unused.sqlite", store_url=pg_url))
    yield store
    store.close()


def test_every_operation_of_the_interface_is_bound() -> None:
    """store/postgres has a twin of every group operation (base.missing finds no gap), and the
    backend object has every flat operation of the Store protocol."""
    assert base.missing(MODULES) == {}
    flat = [n for n in base.operations(base.Store) if n not in ("transaction", "off_loop")]
    assert {n for n in flat if not hasattr(PgBackend, n)} <= set(FLAT)  # bound in __init__


def test_a_module_lacking_an_operation_stops_the_backend(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A store/postgres module without one of its group's operations: the backend refuses to
    start and names the gap, before it touches the database."""
    from types import ModuleType

    from quakealert.store.postgres import backend

    partial = ModuleType("partial_views")
    monkeypatch.setitem(backend.MODULES, "views", partial)
    with pytest.raises(AttributeError, match="views.*outbox_depth"):
        PgBackend(None)  # type: ignore[arg-type]


def test_open_store_selects_postgresql(pg) -> None:  # type: ignore[no-untyped-def]
    """`[store] url` opens PgBackend; the SQLite file named beside it is never created."""
    assert isinstance(pg, PgBackend)
    assert pg.count_events() == 0 and pg.write_lock_free(0.1)


def test_a_unit_of_work_commits_all_or_nothing(pg) -> None:  # type: ignore[no-untyped-def]
    """An error inside ``transaction()`` leaves none of its writes (as on SQLite)."""
    pg.ingest([Report("cenc", "c1", NOW, 29.85, 92.25, 10.0, 4.5, "M")], now=NOW)
    [created] = pg.subscribers.add_subscribers([resident()], now=NOW)
    event_id = pg.work.next_work()[0][0]
    with pytest.raises(RuntimeError), pg.transaction() as tx:
        tx.notices.save_notice(notice(), "released")
        tx.outbox.enqueue_subscribers(
            "n1", [pg.subscribers.get_subscriber(created.id)["id"]], now=NOW)
        tx.work.finish_work([event_id])
        raise RuntimeError("crash before the commit")
    assert pg.notices.list_notices() == []
    assert pg.outbox.counts() == {}
    assert pg.work.pending_work() == 1


def test_a_fenced_unit_of_work_commits_only_while_the_leader_holds_the_lock(pg, pg_url):  # type: ignore[no-untyped-def]
    """The leader's pipeline writes through ``fenced(pid, key)``: while the leader's session
    holds the lock its units of work commit; once the session lost it (a deposed leader in the
    middle of a step) the unit of work is rolled back with NotLeader. Unfenced writes (the
    API's, the outbox's) are not affected."""
    key = 0x71616B65F00D
    with psycopg.connect(pg_url, autocommit=True) as leader:
        (pid,) = leader.execute("SELECT pg_backend_pid()").fetchone()
        leader.execute("SELECT pg_advisory_lock(%s)", (key,))
        fenced = pg.fenced(pid, key)
        with fenced.transaction() as tx:
            tx.notices.save_notice(notice("while-leading"), "released")
        leader.execute("SELECT pg_advisory_unlock(%s)", (key,))
        with pytest.raises(base.NotLeader), fenced.transaction() as tx:
            tx.notices.save_notice(notice("after-the-loss"), "released")
        with pg.transaction() as tx:
            tx.notices.save_notice(notice("unfenced"), "released")
    assert sorted(n.notice.id for n in pg.notices.list_notices()) == ["unfenced", "while-leading"]


def test_operations_on_the_store_join_its_open_transaction(pg) -> None:  # type: ignore[no-untyped-def]
    """Inside ``transaction()``, the store's own operations and a nested transaction on the
    same thread are one unit; another thread does not see it before the commit."""
    seen_elsewhere: list[int] = []
    with pytest.raises(RuntimeError), pg.transaction():
        pg.notices.save_notice(notice("n1"), "released")
        with pg.transaction() as inner:
            inner.notices.save_notice(notice("n2"), "released")
        assert len(pg.notices.list_notices()) == 2
        other = threading.Thread(target=lambda: seen_elsewhere.append(
            len(pg.notices.list_notices())))
        other.start()
        other.join(10)
        raise RuntimeError("roll back both")
    assert seen_elsewhere == [0]
    assert pg.notices.list_notices() == []
    with pg.transaction():
        pg.notices.save_notice(notice("n1"), "released")
    assert [s.notice.id for s in pg.notices.list_notices()] == ["n1"]


def test_off_loop_and_version(pg) -> None:  # type: ignore[no-untyped-def]
    """``off_loop`` runs the work in a worker thread on connections of its own; ``version``
    moves after a write and is None inside a unit of work."""
    before = pg.version()
    count, thread = asyncio.run(pg.off_loop(
        lambda s: (s.count_events(), threading.current_thread())))
    assert count == 0 and thread is not threading.main_thread()
    pg.save_health({"name": "cenc", "polls": 1})
    assert pg.version() != before
    assert pg.load_health()["cenc"]["polls"] == 1
    with pg.transaction():
        assert pg.version() is None


def test_store_url_loads_and_two_stores_are_refused(tmp_path) -> None:
    """`[store] url` reaches the settings; naming both url and path is an error, not a guess."""
    path = tmp_path / "q.toml"
    path.write_text('[store]\nurl = "postgresql://qa@db/qa"\n')
    assert load_settings(path).store_url == "postgresql://qa@db/qa"
    path.write_text(f'[store]\nurl = "postgresql://qa@db/qa"\npath = "{tmp_path / "x.db"}"\n')
    with pytest.raises(ConfigError, match="set one of them"):
        load_settings(path)


def test_added_operations_read_the_played_swarm_as_sqlite_does(
        tmp_path, played_sqlite, pg_url) -> None:  # type: ignore[no-untyped-def]
    """The operations written for this backend (views, per-event decisions and notices,
    recipients, sequence ids, the work queue's interface names) answer as SQLite's do on the
    real swarm's rows and their `store copy`."""
    shutil.copyfile(played_sqlite, tmp_path / "same.sqlite")
    played_postgres_copy(played_sqlite, pg_url).close()
    lite = Store.open(tmp_path / "same.sqlite")
    pg = PgBackend.open(pg_url, max_size=2)
    try:
        events = [e.id for e in lite.events(limit=None)]
        seqs = lite.sequences.sequence_ids()
        notices = [s.notice.id for s in lite.notices.list_notices(limit=None)]
        assert seqs and notices and events
        reads = {
            "sources": lambda s: s.sources(),
            "sequence_ids": lambda s: s.sequences.sequence_ids(),
            "sequence_exists": lambda s: [s.sequences.sequence_exists(q) for q in
                                          (*seqs, "nope")],
            "event_notices": lambda s: [s.notices.event_notices(e) for e in events],
            "pending_approval": lambda s: sorted(s.notices.pending_approval(),
                                                 key=lambda r: r["id"]),
            "cancelled_by": lambda s: [s.approvals.cancelled_by(n) for n in notices],
            "event_decisions": lambda s: [s.decisions.event_decisions(e) for e in events],
            "not_earthquakes": lambda s: s.decisions.not_earthquakes(),
            "has_threads": lambda s: [s.decisions.has_threads(q) for q in (*seqs, "nope")],
            "has_target": lambda s: [s.subscribers.has_target("webhook", t) for t in (
                "https://hooks.example.org/3", "https://hooks.example.org/x")],
            "recipient_rows": lambda s: s.subscribers.recipient_rows(),
            "recipients_key": lambda s: s.subscribers.recipients_key(),
            "any_in_flight": lambda s: s.outbox.any_in_flight(),
            "next_work": lambda s: s.work.next_work(),
            "pending_work": lambda s: s.work.pending_work(),
            "sequence_known": lambda s: [s.views.sequence_known(q) for q in (*seqs, "nope")],
            "any_exercise": lambda s: s.views.any_exercise(),
            "newest_felt_event": lambda s: s.views.newest_felt_event(3),
            "event_decisions_by_area": lambda s: [sorted(
                s.views.event_decisions_by_area(e), key=lambda r: (
                    r["area"] or "", r["send"], r["reason_code"])) for e in events],
            "event_deliveries_by_area": lambda s: [sorted(
                s.views.event_deliveries_by_area(e), key=lambda r: (r["area"] or "", r["state"]))
                for e in events],
            "sequence_of_event": lambda s: [s.views.sequence_of_event(e) for e in events],
            "sequence_decisions": lambda s: [sorted(s.views.sequence_decisions(q), key=lambda r: (
                r["area"] or "", r["event_id"], r["send"], r["n"])) for q in seqs],
            "sequences_by_type": lambda s: s.views.sequences_by_type(),
            "outbox_depth": lambda s: s.views.outbox_depth(),
            "notice_sent_areas": lambda s: [[{**r, "why": sorted(r["why"].split(","))}
                                             for r in s.views.notice_sent_areas(n)]
                                            for n in notices],
            "not_sent_reasons": lambda s: sorted(s.views.not_sent_reasons(), key=lambda r: (
                r["at"], r["area"] or "", r["event_id"], r["reason_code"])),
            "decided_sequences": lambda s: s.views.decided_sequences(),
            "subscribers_per_area": lambda s: s.views.subscribers_per_area(),
        }
        for name, read in reads.items():
            assert read(lite) == read(pg), name
    finally:
        lite.close()
        pg.close()


def test_commands_open_the_configured_postgresql(tmp_path, pg_url) -> None:  # type: ignore[no-untyped-def]
    """`quakealert token create` and `token list` with a config naming `[store] url` work on
    PostgreSQL (no SQLite file is created in var_dir)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    cfg = tmp_path / "q.toml"
    cfg.write_text(f'[store]\nurl = "{pg_url}"\nvar_dir = "{tmp_path / "var"}"\n')
    env = {**os.environ, "PYTHONPATH": str(repo)}

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "quakealert", "token", *args,
                               "--config", str(cfg)], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("create", "--role", "read", "--name", "pg-cli")
    assert "pg-cli" in run("list")
    store = PgBackend.open(pg_url, max_size=1)
    try:
        assert [t.name for t in store.auth.list_tokens()] == ["pg-cli"]
    finally:
        store.close()
    assert not list(tmp_path.rglob("*.sqlite"))
