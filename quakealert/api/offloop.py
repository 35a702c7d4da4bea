"""Store work of a request on a connection of its own, in a worker thread.

A write lock held elsewhere (a big ingest, a backup, another process) made SQLite's busy wait
run on the event loop: /healthz took 5-8 s and a login answered 500 (issue 9). Views that write
hand their store work to :func:`in_thread`; a lock that outlasts the wait is a 503 with
Retry-After, never a stalled loop or a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from quakealert.api.keys import STORE
from quakealert.store.base import Store, StoreBusy

T = TypeVar("T")

BUSY_WAIT_S = 5.0  # how long a request's worker waits for a write lock before a 503


async def in_thread(app: web.Application, work: Callable[[Store], T],
                    *, busy_wait_s: float = BUSY_WAIT_S) -> T:
    """``work(store)`` on a connection of its own in a worker thread (``Store.off_loop``)."""
    try:
        return await app[STORE].off_loop(work, busy_wait_s=busy_wait_s)
    except StoreBusy:
        raise web.HTTPServiceUnavailable(
            text="the store is busy; try again in a few seconds",
            headers={"Retry-After": "5"}) from None
