"""The aiohttp application: `make_app(settings)` wires the store, the session and every route."""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from types import ModuleType
from typing import Any

import aiohttp
from aiohttp import web

from quakealert import __version__
from quakealert.api.keys import RUNTIME, SESSION, SETTINGS, STORE
from quakealert.api.problems import problem_middleware
from quakealert.config import Settings
from quakealert.store.instants import iso_epoch as _iso
from quakealert.store.sqlite import Store

log = logging.getLogger(__name__)

# Route modules, each exporting `routes` (a RouteTableDef) and optionally `setup(app)`.
ROUTE_MODULES = (
    "quakealert.api.events",
    "quakealert.api.sequences",
    "quakealert.api.subscriptions",
    "quakealert.api.cap",
    "quakealert.api.notices",
    "quakealert.api.fdsnws",
    "quakealert.api.auth",
    "quakealert.api.metrics",
    "quakealert.api.openapi",
    "quakealert.api.dashboard",
    "quakealert.api.public",
)

MAX_BODY_BYTES = 256 * 1024


def route_modules() -> list[ModuleType]:
    """The route modules, imported in ROUTE_MODULES order (also read by the OpenAPI builder)."""
    return [importlib.import_module(name) for name in ROUTE_MODULES]

routes = web.RouteTableDef()


def source_health(app: web.Application) -> list[dict[str, Any]]:
    """Each configured source's health: last ok, last error, failures, back-off."""
    stored = app[STORE].load_health()
    out = []
    for cfg in app[SETTINGS].sources:
        h = stored.get(cfg.name, {})
        failures = int(h.get("consecutive_failures") or 0)
        out.append({
            "name": cfg.name,
            "kind": cfg.kind,
            "ok": failures == 0 and h.get("last_ok_at") is not None,
            "last_ok": _iso(h.get("last_ok_at")),
            "last_error": h.get("last_error"),
            "last_error_at": _iso(h.get("last_error_at")),
            "consecutive_failures": failures,
            "backoff_until": _iso(h.get("backoff_until")),
            "polls": h.get("polls", 0),
            "reports_total": h.get("reports_total", 0),
            "skipped_total": h.get("skipped_total", 0),
        })
    return out


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness plus per-source health; 200 while serving, `degraded` when a source fails."""
    sources = source_health(request.app)
    failing = [s["name"] for s in sources if s["consecutive_failures"]]
    body = {
        "status": "degraded" if failing else "ok",
        "version": __version__,
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "events": request.app[STORE].count_events(),
        "sources": sources,
    }
    runtime = request.app.get(RUNTIME)
    if runtime is not None and getattr(runtime, "replay_label", None):
        body["mode"] = runtime.replay_label
    backfill = getattr(runtime, "backfill", None)
    if backfill is not None:
        # "running": the 5-year background is still arriving; context counts are left out
        body["backfill"] = backfill.to_json()
    return web.json_response(body, dumps=partial(json.dumps, ensure_ascii=False))


def make_app(
    settings: Settings, *, store: Store | None = None, runtime: Any = None
) -> web.Application:
    """The application for ``settings``; pass ``store`` to share an open database (tests, daemon)."""
    app = web.Application(middlewares=[problem_middleware], client_max_size=MAX_BODY_BYTES)
    app[SETTINGS] = settings
    if runtime is not None:
        app[RUNTIME] = runtime

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        own = store is None
        app[STORE] = store if store is not None else Store.open(settings.store_path)
        yield
        if own:
            app[STORE].close()

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        if SESSION not in app:
            app[SESSION] = aiohttp.ClientSession()
            yield
            await app[SESSION].close()
        else:
            yield

    app.cleanup_ctx.append(store_ctx)
    app.cleanup_ctx.append(session_ctx)
    app.add_routes(routes)
    for module in route_modules():
        if hasattr(module, "setup"):
            module.setup(app)
        if hasattr(module, "routes"):
            app.add_routes(module.routes)
    return app
