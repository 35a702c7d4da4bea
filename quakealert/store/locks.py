"""Session advisory locks on PostgreSQL: what leadership (service/leadership.py) stands on.

A :class:`LockSession` is a connection of its own, never a pool's: pools reset returned
connections (``DISCARD ALL`` / ``pg_advisory_unlock_all``), which would drop the lock silently.
The lock lives exactly as long as that session, so the server decides who holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg
from psycopg.rows import tuple_row

_LISTEN_CHANNEL = "quakealert_leader"
_HELD_BY = ("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = {pid}"
            " AND granted AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = %s)")


class LockLost(psycopg.OperationalError):
    """The session is alive but no longer holds the lock."""


class LockSession:
    """A dedicated PostgreSQL session that takes, probes and releases one advisory lock.

    Every statement is bounded by ``timeout_s`` (a hung network counts as lost).
    """

    # What a lost session raises: the driver's errors, a dead socket, a timed-out statement.
    failures: tuple[type[BaseException], ...] = (psycopg.Error, OSError, TimeoutError)

    def __init__(self, conn: psycopg.AsyncConnection[tuple[object, ...]], timeout_s: float):
        self._conn = conn
        self.timeout_s = timeout_s
        self.backend_pid: int | None = None

    @classmethod
    async def connect(cls, url: str, *, name: str, timeout_s: float) -> LockSession:
        """Connect with client keepalives, so a silent peer is noticed."""
        conn = await asyncio.wait_for(psycopg.AsyncConnection.connect(
            url, autocommit=True, application_name=f"{name} leader",
            connect_timeout=max(2, int(timeout_s)),
            # the client notices a silent peer; the server settings in prepare() make the
            # server drop a vanished leader's session (and its lock) too
            keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=3,
        ), timeout=timeout_s + 5)
        return cls(conn, timeout_s)

    async def prepare(self, *, idle_timeout_s: float) -> int:
        """Server-side keepalives and idle timeout; returns (and keeps) the backend pid."""
        conn = self._conn
        await conn.execute("SET tcp_keepalives_idle = 5")
        await conn.execute("SET tcp_keepalives_interval = 2")
        await conn.execute("SET tcp_keepalives_count = 3")
        # A leader that stops probing (process stopped, event loop stuck) while its socket stays
        # open would keep the lock for ever; the server ends a session idle this long, so the
        # lock is freed and another instance leads. Healthy leaders probe every probe_s.
        await conn.execute(f"SET idle_session_timeout = {int(idle_timeout_s * 1000):d}")
        row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
        assert row is not None
        self.backend_pid = int(str(row[0]))
        return self.backend_pid

    async def try_lock(self, key: int) -> bool:
        """Take the lock if it is free (never waits for it)."""
        return await self._query("SELECT pg_try_advisory_lock(%s)", (key,))

    async def listen(self) -> None:
        """Subscribe to the leader channel: :meth:`wait` then reads the socket."""
        await self._conn.execute(f"LISTEN {_LISTEN_CHANNEL}")

    async def wait(self, timeout_s: float) -> None:
        """Read the socket for up to ``timeout_s``: a terminated backend raises here at once."""
        async for _ in self._conn.notifies(timeout=timeout_s, stop_after=1):
            pass

    async def check_held(self, key: int) -> None:
        """Raise LockLost unless this session still holds the lock."""
        if not await self._query(_HELD_BY.format(pid="pg_backend_pid()"),
                                 (key & 0xFFFFFFFFFFFFFFFF,)):
            raise LockLost("advisory lock no longer held")

    async def unlock(self, key: int) -> None:
        await asyncio.wait_for(self._conn.execute("SELECT pg_advisory_unlock(%s)", (key,)),
                               self.timeout_s)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._conn.close(), self.timeout_s)

    async def _query(self, sql: str, params: tuple[object, ...]) -> bool:
        cur = await asyncio.wait_for(self._conn.execute(sql, params), self.timeout_s)
        row = await cur.fetchone()
        return bool(row and row[0])


def holds_lock(conn: psycopg.Connection[Any], backend_pid: int, key: int) -> bool:
    """Inside a transaction on any connection: does the session ``backend_pid`` hold the lock?"""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(_HELD_BY.format(pid="%s"),
                          (backend_pid, key & 0xFFFFFFFFFFFFFFFF)).fetchone()
    return bool(row and row[0])
