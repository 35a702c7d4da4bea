"""Store work of a request on a connection of its own, in a worker thread.

A write lock held elsewhere (a big ingest, a backup, another process) made SQLite's busy wait
run on the event loop: /healthz took 5-8 s and a login answered 500 (issue 9). Views that write
hand their store work to :func:`in_thread`; a lock that outlasts the wait is a 503 with
Retry-After, never a stalled loop or a 500.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from quakealert.api.keys import STORE

T = TypeVar("T")

BUSY_WAIT_S = 5.0  # how long a request's worker waits for a write lock before a 503


async def in_thread(app: web.Application, work: Callable[[sqlite3.Connection], T],
                    *, busy_wait_s: float = BUSY_WAIT_S) -> T:
    """``work(conn)`` on a fresh connection in a worker thread (inline for ":memory:")."""
    store = app[STORE]
    if str(store.path) == ":memory:":
        return work(store.conn)

    def run() -> T:
        conn = sqlite3.connect(str(store.path), isolation_level=None, timeout=busy_wait_s,
                               check_same_thread=False)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys=ON")
            return work(conn)
        finally:
            conn.close()

    try:
        return await asyncio.to_thread(run)
    except sqlite3.OperationalError as err:
        if "locked" in str(err) or "busy" in str(err):
            raise web.HTTPServiceUnavailable(
                text="the store is busy; try again in a few seconds",
                headers={"Retry-After": "5"}) from None
        raise
