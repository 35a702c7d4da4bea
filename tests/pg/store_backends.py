"""A thin adapter so one contract suite runs on both backends: the same operation names, each a
function of a connection. PostgreSQL's are the modules in quakealert/store/postgres/; SQLite's
are the store modules, the ``Store`` methods bound to a connection, and (for the work queue,
whose SQL still lives in service/pipeline.py) the pipeline's own statements. When the store
interface exists (issue 13 item 1) this adapter is what it replaces."""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg

from quakealert.store import approvals as lite_approvals
from quakealert.store import decisions as lite_decisions
from quakealert.store import notices as lite_notices
from quakealert.store import outbox as lite_outbox
from quakealert.store import work as lite_work_module
from quakealert.store.postgres import approvals as pg_approvals
from quakealert.store.postgres import decisions as pg_decisions
from quakealert.store.postgres import events as pg_events
from quakealert.store.postgres import notices as pg_notices
from quakealert.store.postgres import outbox as pg_outbox
from quakealert.store.postgres import work as pg_work
from quakealert.store.postgres.copy import copy_store, open_source
from quakealert.store.sqlite import Store


def _store_method(name: str) -> Any:
    def call(conn: sqlite3.Connection, *args: Any, **kwargs: Any) -> Any:
        return getattr(Store(conn, "contract"), name)(*args, **kwargs)
    call.__name__ = name
    return call


lite_events = SimpleNamespace(**{name: _store_method(name) for name in (
    "ingest", "events", "event", "event_history", "count_reports", "count_events",
    "save_health", "load_health")})


lite_work = lite_work_module  # store/work.py: the same names as store/postgres/work.py


@dataclass
class Backend:
    """One store under test: its operations by area, and connections to it."""

    name: str
    events: Any
    work: Any
    decisions: Any
    approvals: Any
    notices: Any
    outbox: Any
    connect: Any
    conns: list[Any] = field(default_factory=list)

    def conn(self) -> Any:
        c = self.connect()
        self.conns.append(c)
        return c

    def sql(self, conn: Any, query: str, args: Any = ()) -> list[tuple[Any, ...]]:
        """Run one statement written with ``?`` placeholders; rows as plain tuples."""
        if self.name == "sqlite":
            return [tuple(r) for r in conn.execute(query, args).fetchall()]
        cur = conn.cursor(row_factory=psycopg.rows.tuple_row)
        cur.execute(query.replace("?", "%s"), args)
        return cur.fetchall() if cur.description else []

    def begin(self, conn: Any) -> Any:
        """A transaction on ``conn`` (the pipeline's, around a work item)."""
        if self.name == "sqlite":
            return lite_outbox.transaction(conn)
        return conn.transaction()

    def add_subscribers(self, n: int, *, channel: str = "webhook", start: int = 1) -> list[int]:
        ids = list(range(start, start + n))
        rows = [(i, f"p{i}", channel, f"https://gw.example/{i}") for i in ids]
        conn = self.conn()
        sql = ("INSERT INTO subscribers (id, public_id, token_hash, latitude, longitude,"
               " languages, channel, target, secret, created_at) VALUES (?, ?, 'h', 29.65,"
               " 91.1, 'zh,bo', ?, ?, 's3', 0)")
        if self.name == "sqlite":
            conn.executemany(sql, rows)
        else:
            with conn.cursor() as cur:
                cur.executemany(sql.replace("?", "%s"), rows)
        return ids

    def close(self) -> None:
        for c in self.conns:
            c.close()


def sqlite_backend(path: Path) -> Backend:
    Store.open(path).close()
    return Backend("sqlite", lite_events, lite_work, lite_decisions, lite_approvals,
                   lite_notices, lite_outbox, lambda: Store.open(path).conn)


def played_sqlite_copy(played: Path, path: Path) -> Backend:
    """A SQLite backend on a copy of a played store."""
    shutil.copyfile(played, path)
    return sqlite_backend(path)


def played_postgres_copy(played: Path, url: str) -> Backend:
    """A PostgreSQL backend holding a played store's rows (``quakealert store copy``)."""
    src = open_source(played)
    try:
        with psycopg.connect(url, autocommit=True) as dst:
            assert all(t.ok for t in copy_store(src, dst))
    finally:
        src.close()
    return postgres_backend(url)


def postgres_backend(url: str) -> Backend:
    return Backend("postgresql", pg_events, pg_work, pg_decisions, pg_approvals, pg_notices,
                   pg_outbox, lambda: psycopg.connect(url, autocommit=True))


LHASA = (29.65, 91.13)


def play_maizhokunggar(path: Path, residents: int, far: int = 40) -> None:
    """Real rows to read: the 2024 Maizhokunggar swarm's M>=4 quakes (bundled CENC list) through
    the SQLite pipeline for ``residents`` Lhasa residents (over FANOUT_INLINE: fan-out rows) and
    ``far`` in Chengdu (not told), with swarm advisories held for approval; the store is closed
    (checkpointed) at the end."""
    from quakealert.config import DEFAULT_SCENARIO, Settings
    from quakealert.formats.catalog import read_catalog_file
    from quakealert.service.pipeline import Pipeline
    from quakealert.store.subscribers import NewSubscriber, add_subscribers

    start, end = datetime(2024, 10, 30, tzinfo=UTC), datetime(2024, 11, 9, tzinfo=UTC)
    quakes = [r for r in read_catalog_file(DEFAULT_SCENARIO).reports
              if start <= r.origin_at < end and (r.magnitude or 0) >= 4.0]
    store = Store.open(path)
    add_subscribers(store.conn, [
        NewSubscriber(LHASA[0] + 0.01 * (k % 3), LHASA[1] + 0.01 * (k % 2),
                      ("zh", "bo", "en") if k % 5 == 0 else ("zh", "bo"), "webhook",
                      f"https://hooks.example.org/{k}", secret="s" * 20,
                      min_intensity=2 if k % 7 == 0 else 3) for k in range(residents)]
        + [NewSubscriber(30.66, 104.06, ("zh",), "webhook", f"https://hooks.example.org/c{k}",
                         secret="s" * 20) for k in range(far)],
        now=start)
    settings = Settings(store_path=path, var_dir=path.parent, sections={
        "approvals": {"swarm_advisory": 600},
        "policy": {"quiet_start": "00:00", "quiet_end": "00:00"}})
    pipeline = Pipeline(store, settings, exercise=True)
    for r in quakes:
        pipeline.advance(r.origin_at)
        pipeline.process(store.ingest([r], now=r.origin_at), now=r.origin_at)
    pipeline.advance(end)
    store.close()
