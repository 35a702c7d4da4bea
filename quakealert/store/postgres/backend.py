"""The PostgreSQL backend of store/base.py's Store: the store/postgres functions bound into the
same groups and flat operations as the SQLite store.

Each operation borrows a pooled connection for its own duration (autocommit; the functions that
need several statements open their own ``conn.transaction()``), unless the calling thread is
inside ``store.transaction()``: then it runs on that unit of work's one connection, and so does
every operation on this store from the same thread until the unit ends (as on SQLite, helpers
need not be handed ``tx``). Another thread borrows its own connection, so ``off_loop`` work is
simply the same store called from a worker thread.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from functools import wraps
from types import ModuleType, SimpleNamespace
from typing import Any, TypeVar

import psycopg
import psycopg.errors

from quakealert.store.base import GROUPS, NotLeader, StoreBusy, missing, operations
from quakealert.store.locks import holds_lock
from quakealert.store.postgres import (
    approvals,
    auth,
    decisions,
    events,
    notices,
    outbox,
    sequences,
    subscribers,
    views,
    work,
)
from quakealert.store.postgres.db import PgStore, mask

T = TypeVar("T")

# The store/postgres modules behind each group of the interface (store/base.py).
MODULES: dict[str, ModuleType] = {
    "notices": notices, "outbox": outbox, "approvals": approvals, "subscribers": subscribers,
    "sequences": sequences, "decisions": decisions, "auth": auth, "work": work, "views": views}
# The flat operations, from store/postgres/events.py.
FLAT = ("ingest", "events", "event", "event_history", "count_reports", "count_events",
        "sources", "save_health", "load_health")
# Pool size: the API's worker threads, the outbox workers and the pipeline's thread at once.
POOL_MAX = 12
# A statement refused a lock or cancelled by a timeout (lock_timeout, statement_timeout).
_BUSY = (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled)


class PgBackend:
    """store/base.py's Store on PostgreSQL: open with :meth:`open`, close with :meth:`close`."""

    failures: tuple[type[BaseException], ...] = (psycopg.Error,)
    kind = "postgresql"

    def __init__(self, db: PgStore):
        gaps = missing(MODULES)  # a backend has every operation or does not start
        if gaps:
            raise AttributeError(f"store/postgres lacks {gaps}")
        self.db = db
        self.url = db.url
        self._local = threading.local()
        self._fence: tuple[int, int] | None = None  # (leader's backend pid, lock key)
        for name, group in GROUPS.items():
            setattr(self, name, SimpleNamespace(**{
                op: self._pooled(getattr(MODULES[name], op)) for op in operations(group)}))
        for op in FLAT:
            setattr(self, op, self._pooled(getattr(events, op)))

    def __repr__(self) -> str:
        return f"PgBackend({mask(self.url)!r})"

    @classmethod
    def open(cls, url: str, *, max_size: int = POOL_MAX) -> PgBackend:
        """Connect a pool to ``url`` and migrate the database."""
        return cls(PgStore.open(url, max_size=max_size))

    # -- connections --------------------------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The thread's unit-of-work connection, else a pooled one for the block."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            yield conn
            return
        with self.db.connection() as conn:
            yield conn

    def _pooled(self, fn: Callable[..., T]) -> Callable[..., T]:
        @wraps(fn)
        def call(*args: Any, **kwargs: Any) -> T:
            with self.connection() as conn:
                return fn(conn, *args, **kwargs)
        return call

    # -- unit of work and connections of their own ----------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[PgBackend]:
        """One pooled connection in ``conn.transaction()`` for this thread until the block
        ends (commit, or rollback on error); nested, part of the outer one."""
        if getattr(self._local, "conn", None) is not None:
            yield self
            return
        with self.db.connection() as conn, conn.transaction():
            self._local.conn = conn
            try:
                yield self
                fence = self._fence
                if fence is not None and not holds_lock(conn, *fence):
                    raise NotLeader("this instance's leadership ended: its unit of work is "
                                    "rolled back, the new leader does the work")
            finally:
                self._local.conn = None

    def fenced(self, backend_pid: int, key: int) -> PgBackend:
        """This backend (same pool, same threads' units of work) whose units of work commit
        only while the session ``backend_pid`` still holds the advisory lock ``key``: the
        leader's pipeline writes through it, so a leader deposed in the middle of a step
        rolls that step back instead of writing as a leader (a fencing check in the
        transaction itself). API and delivery writes use the unfenced backend."""
        twin = copy.copy(self)
        twin._fence = (backend_pid, key)
        return twin

    async def off_loop(self, work: Callable[[Any], T], *, busy_wait_s: float = 5.0,
                       read_only: bool = False) -> T:
        """``work(store)`` in a worker thread, whose operations borrow connections of their
        own; a lock or statement timeout raises StoreBusy. MVCC readers never wait for writers
        and row locks are short, so ``busy_wait_s`` and ``read_only`` change nothing here."""
        try:
            return await asyncio.to_thread(work, self)
        except _BUSY as err:
            raise StoreBusy(f"the store is busy: {err}") from err

    def write_lock_free(self, wait_s: float) -> bool:
        """Always: PostgreSQL has row locks and no database-wide write lock to wait for."""
        return True

    def version(self) -> Hashable | None:
        """The server's WAL position, which moves on any write (ours, another instance's,
        or another database's on the cluster: a cache emptied too often, never stale);
        None inside a unit of work."""
        if getattr(self._local, "conn", None) is not None:
            return None
        with self.db.connection() as conn:
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text AS lsn").fetchone()
        return None if row is None else str(row["lsn"])

    def outbox_waker(self) -> outbox.OutboxWaker:
        """What delivery workers wait on: LISTEN for enqueued rows, on a connection of its own."""
        return outbox.OutboxWaker(self.url)

    def close(self) -> None:
        self.db.close()
