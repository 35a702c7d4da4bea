"""Typed application keys (aiohttp AppKey): the only way views reach shared state."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiohttp import web

from quakealert.config import Settings
from quakealert.store.base import Store

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
SESSION = web.AppKey("session", aiohttp.ClientSession)
# The running daemon (poller health, outbox, pipeline) when the API is served by `quakealert run`;
# absent in API-only tests. Typed loosely to keep api/ free of an import cycle with the daemon.
RUNTIME = web.AppKey("runtime", Any)
