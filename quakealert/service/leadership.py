"""Leadership: which instance polls, runs the pipeline and the approval timers.

Every instance serves the API and delivers from the outbox; exactly one leads. With SQLite there
is one instance and it leads (:class:`SoloLeadership`). With PostgreSQL (:class:`PgLeadership`)
the leader holds a session advisory lock on a connection of its own, never a pool connection:
pools reset returned connections (``DISCARD ALL`` / ``pg_advisory_unlock_all``), which would drop
the lock silently. The lock lives exactly as long as that session, so PostgreSQL itself decides:
when the leader's process dies, its backend ends and the lock is free for the next campaign.

A leader that loses its connection stops leading at once: ``is_leader`` turns False and
``on_change(False)`` is called before anything else runs, and then it campaigns again. Leader-only
writes can also be fenced inside their own transaction with :func:`holds_leadership`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from quakealert.store.locks import LockSession, holds_lock

log = logging.getLogger(__name__)

# The advisory lock key: a fixed 64-bit number for "quakealert leader" (any constant would do;
# it only has to differ from the other advisory keys used on the same database).
LEADER_KEY = 0x71616B650002


class Leadership(Protocol):
    """Campaigns for and keeps leadership until ``stop`` is set."""

    kind: str

    @property
    def is_leader(self) -> bool: ...

    async def run(self, stop: asyncio.Event) -> None: ...


OnChange = Callable[[bool], None]


class SoloLeadership:
    """One instance on an embedded store: it leads from start to stop."""

    kind = "sqlite"

    def __init__(self, on_change: OnChange | None = None):
        self._leading = False
        self._on_change = on_change

    @property
    def is_leader(self) -> bool:
        return self._leading

    async def run(self, stop: asyncio.Event) -> None:
        self._leading = True
        if self._on_change:
            self._on_change(True)
        try:
            await stop.wait()
        finally:
            self._leading = False
            if self._on_change:
                self._on_change(False)


class PgLeadership:
    """A session advisory lock on a dedicated connection, checked every ``probe_s``.

    While leading, the connection waits for notifications, so a terminated backend or a closed
    socket is seen as soon as it happens; in between, a probe asks the server whether this session
    still holds the lock, bounded by ``probe_timeout_s`` (a hung network counts as lost).
    Followers try the lock every ``campaign_s``. The server ends the session of a leader that has
    not probed for ``idle_timeout_s`` (``idle_session_timeout``): a stopped or stuck leader
    loses the lock even though its socket is still open.
    """

    kind = "postgresql"

    def __init__(self, url: str, *, key: int = LEADER_KEY, name: str = "quakealert",
                 probe_s: float = 1.0, probe_timeout_s: float = 2.0, campaign_s: float = 1.0,
                 idle_timeout_s: float = 5.0, on_change: OnChange | None = None):
        if idle_timeout_s < 3 * probe_s:
            raise ValueError("idle_timeout_s must be at least 3 probes long")
        self.url = url
        self.key = key
        self.name = name
        self.probe_s = probe_s
        self.probe_timeout_s = probe_timeout_s
        self.campaign_s = campaign_s
        self.idle_timeout_s = idle_timeout_s
        self._on_change = on_change
        self._leading = False
        self._lock: LockSession | None = None
        self.backend_pid: int | None = None  # of the connection holding the lock, while leading
        self.gained_at: float | None = None  # time.monotonic() of the last gain

    @property
    def is_leader(self) -> bool:
        return self._leading

    def __repr__(self) -> str:
        return f"PgLeadership(name={self.name!r}, leader={self._leading})"

    def _set(self, leading: bool) -> None:
        if leading == self._leading:
            return
        self._leading = leading
        if leading:
            self.gained_at = time.monotonic()
            log.info("leadership gained", extra={
                "leader": self.name, "backend_pid": self.backend_pid})
        else:
            log.warning("leadership lost", extra={"leader": self.name})
        if self._on_change:
            self._on_change(leading)

    async def run(self, stop: asyncio.Event) -> None:
        """Campaign, lead, and campaign again after a loss, until ``stop`` is set."""
        try:
            while not stop.is_set():
                try:
                    await self._session(stop)
                except LockSession.failures as err:
                    self._set(False)  # first: nothing leader-only may run after this point
                    log.warning("leader connection lost", extra={
                        "leader": self.name, "error": type(err).__name__})
                finally:
                    self._set(False)
                    await self._close()
                await _wait(stop, self.campaign_s)
        finally:
            self._set(False)
            await self._close()

    async def _session(self, stop: asyncio.Event) -> None:
        session = await LockSession.connect(self.url, name=self.name,
                                            timeout_s=self.probe_timeout_s)
        self._lock = session
        self.backend_pid = await session.prepare(idle_timeout_s=self.idle_timeout_s)
        while not stop.is_set():
            if await session.try_lock(self.key):
                break
            await _wait(stop, self.campaign_s)
        else:
            return
        await session.listen()
        self._set(True)
        while not stop.is_set():
            await session.wait(self.probe_s)
            await session.check_held(self.key)
        with contextlib.suppress(*LockSession.failures):
            self._set(False)
            await session.unlock(self.key)

    async def _close(self) -> None:
        session, self._lock, self.backend_pid = self._lock, None, None
        if session is not None:
            await session.close()


def holds_leadership(conn: Any, backend_pid: int, key: int = LEADER_KEY) -> bool:
    """Inside a leader-only transaction on any connection: does the leader's session (by its
    backend pid) still hold the lock? A fencing check: if the leader lost its session, the
    transaction can roll back instead of writing as a leader."""
    return holds_lock(conn, backend_pid, key)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
