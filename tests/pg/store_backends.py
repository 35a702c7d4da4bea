"""A thin adapter so one contract suite runs on both backends: the same operation names, each a
function of a connection. PostgreSQL's are the modules in quakealert/store/postgres/; SQLite's
are the store modules, the ``Store`` methods bound to a connection, and (for the work queue,
whose SQL still lives in service/pipeline.py) the pipeline's own statements. When the store
interface exists (issue 13 item 1) this adapter is what it replaces."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg

from quakealert.store import approvals as lite_approvals
from quakealert.store import decisions as lite_decisions
from quakealert.store import notices as lite_notices
from quakealert.store import outbox as lite_outbox
from quakealert.store.postgres import approvals as pg_approvals
from quakealert.store.postgres import decisions as pg_decisions
from quakealert.store.postgres import events as pg_events
from quakealert.store.postgres import notices as pg_notices
from quakealert.store.postgres import outbox as pg_outbox
from quakealert.store.postgres import work as pg_work
from quakealert.store.sqlite import Store


def _store_method(name: str) -> Any:
    def call(conn: sqlite3.Connection, *args: Any, **kwargs: Any) -> Any:
        return getattr(Store(conn, "contract"), name)(*args, **kwargs)
    call.__name__ = name
    return call


lite_events = SimpleNamespace(**{name: _store_method(name) for name in (
    "ingest", "events", "event", "event_history", "count_reports", "count_events",
    "save_health", "load_health")})


def _rows(conn: sqlite3.Connection, sql: str, args: Any = ()) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in conn.execute(sql, args).fetchall()]


# The pipeline's statements (service/pipeline.py: process_work, prioritise, _failed, _done,
# pending_work), as the functions the PostgreSQL module names.
lite_work = SimpleNamespace(
    next_work=lambda conn, limit=200: _rows(
        conn, "SELECT event_id, trigger, received_at, priority FROM work WHERE priority IS NULL"
        " OR priority >= 0 ORDER BY priority DESC, origin_at, event_id LIMIT ?", (limit,)),
    unprioritised=lambda conn, limit=50_000: _rows(
        conn, "SELECT w.event_id, w.trigger, e.latitude, e.longitude, e.depth_km, e.magnitude"
        " FROM work w JOIN events e ON e.id = w.event_id WHERE w.priority IS NULL"
        " ORDER BY w.origin_at, w.event_id LIMIT ?", (limit,)),
    set_priorities=lambda conn, levels: conn.executemany(
        "UPDATE work SET priority = ? WHERE event_id = ?",
        [(p, e) for e, p in levels]).rowcount,
    # SQLite has one writer: the transaction itself (BEGIN IMMEDIATE) is the claim.
    claim_work=lambda conn, event_id: next(iter(r[0] for r in _rows(
        conn, "SELECT trigger FROM work WHERE event_id = ?", (event_id,))), None),
    finish_work=lambda conn, ids: conn.executemany(
        "DELETE FROM work WHERE event_id = ?", [(e,) for e in ids]).rowcount,
    fail_work=lambda conn, event_id, error, *, max_failures: conn.execute(
        "UPDATE work SET failures = failures + 1, last_error = ?, priority = CASE WHEN"
        " failures + 1 >= ? THEN -1 ELSE priority END WHERE event_id = ?",
        (error[:500], max_failures, event_id)),
    pending_work=lambda conn: conn.execute(
        "SELECT count(*) FROM work WHERE priority IS NULL OR priority >= 0").fetchone()[0],
    parked_work=lambda conn: [
        {"event_id": r[0], "trigger": r[1], "failures": r[2], "last_error": r[3]}
        for r in conn.execute("SELECT event_id, trigger, failures, last_error FROM work"
                              " WHERE priority < 0 ORDER BY origin_at, event_id")],
)


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


def postgres_backend(url: str) -> Backend:
    return Backend("postgresql", pg_events, pg_work, pg_decisions, pg_approvals, pg_notices,
                   pg_outbox, lambda: psycopg.connect(url, autocommit=True))
