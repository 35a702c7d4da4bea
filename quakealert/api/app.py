"""The aiohttp application: `make_app(settings)` wires the store, the session and every route."""

from __future__ import annotations

import importlib
import ipaddress
import json
import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from functools import partial
from types import ModuleType
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong

from quakealert import __version__
from quakealert.api.keys import RUNTIME, SESSION, SETTINGS, STORE
from quakealert.api.problems import problem_middleware
from quakealert.config import Settings
from quakealert.errors import ConfigError
from quakealert.logs import client_ref
from quakealert.store import open_store
from quakealert.store.base import Store, StoreBusy
from quakealert.store.instants import iso_epoch as _iso

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

# Request line and header limits. They differ by design: the parser's LineTooLong carries only
# the limit it hit, which is how ApiRunner tells 414 (URI too long) from 431 (header too big).
MAX_LINE_BYTES = 8192
MAX_FIELD_BYTES = 8190
MAX_HEADERS = 100


def route_modules() -> list[ModuleType]:
    """The route modules, imported in ROUTE_MODULES order (also read by the OpenAPI builder)."""
    return [importlib.import_module(name) for name in ROUTE_MODULES]

routes = web.RouteTableDef()


def source_health(app: web.Application) -> list[dict[str, Any]]:
    """Each configured source's health: last ok, last error, failures, back-off."""
    return _health_rows(app, app[STORE].load_health())


def _health_rows(app: web.Application, stored: dict[str, dict[str, Any]]
                 ) -> list[dict[str, Any]]:
    # The running poller's records are the newest: when the store cannot be written (a full
    # disk) they are the only place the failure is recorded.
    runtime = app.get(RUNTIME)
    live = getattr(getattr(runtime, "poller", None), "health", None) or {}
    out = []
    for cfg in app[SETTINGS].sources:
        h = stored.get(cfg.name, {})
        if cfg.name in live:
            h = {**h, **live[cfg.name].to_row()}
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


# How long /healthz waits for the write lock before it reports the store busy: longer than the
# pipeline's and the outbox's own short transactions, well inside the 1 s answer goal.
BUSY_PROBE_S = 0.5
_ERROR_KIND = re.compile(r"^(internal error: )?[A-Za-z]+")
_HTTP_STATUS = re.compile(r"\bHTTP [1-5]\d\d\b")


def public_error(last_error: str | None) -> str | None:
    """What the public may see of a source's last error: its kind and HTTP status, never the
    upstream's words (an error body is the upstream's to publish, not ours; duty staff see it
    whole at /api/v1/sources)."""
    if not last_error:
        return None
    kind = _ERROR_KIND.match(last_error)
    status = _HTTP_STATUS.search(last_error)
    words = [kind.group(0) if kind else "error"] + ([status.group(0)] if status else [])
    return ": ".join(words)


async def _stored_health(app: web.Application
                         ) -> tuple[list[dict[str, Any]], int | None, bool]:
    """Source health, the event count, and whether the write lock is held elsewhere past
    BUSY_PROBE_S; read on a connection of its own (a worker thread: a write lock held
    elsewhere must not stall the event loop, issue 9; WAL readers never wait for a writer)."""
    stored, count, free = await app[STORE].off_loop(
        lambda s: (s.load_health(), s.count_events(), s.write_lock_free(BUSY_PROBE_S)),
        busy_wait_s=1.0, read_only=True)
    return _health_rows(app, stored), count, not free


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Liveness plus per-source health; 200 while serving, `degraded` when a source or the
    store fails. Upstream error bodies are not echoed here (see :func:`public_error`)."""
    app = request.app
    try:
        sources, events, busy = await _stored_health(app)
        store_ok = True
    except (StoreBusy, *app[STORE].failures) as err:
        log.warning("healthz: store unreadable", extra={"error": str(err)})
        sources, events, store_ok, busy = _health_rows(app, {}), None, False, False
    for s in sources:
        s["last_error"] = public_error(s["last_error"])
    failing = [s["name"] for s in sources if s["consecutive_failures"]]
    body: dict[str, Any] = {
        "status": "degraded" if failing or not store_ok or busy else "ok",
        "version": __version__,
        "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "events": events,
        "sources": sources,
    }
    if not store_ok:
        body["store"] = "unreadable"
    elif busy:  # writes (polls, notices, deliveries) wait until the lock is released
        body["store"] = "busy"
    runtime = request.app.get(RUNTIME)
    if runtime is not None and getattr(runtime, "replay_label", None):
        body["mode"] = runtime.replay_label
    backfill = getattr(runtime, "backfill", None)
    if backfill is not None:
        # "running": the 5-year background is still arriving; context counts are left out
        body["backfill"] = state = backfill.to_json()
        for entry in state["sources"].values():
            entry["error"] = public_error(entry["error"])
    return web.json_response(body, dumps=partial(json.dumps, ensure_ascii=False))


class _ApiHandler(web.RequestHandler):
    """Answers a request the parser refused with its proper status and one log line (aiohttp
    logs a traceback per oversize request line: log noise anyone can cause)."""

    def handle_error(self, request: Any, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if not isinstance(exc, BadHttpMessage):
            return super().handle_error(request, status, exc, message)
        if isinstance(exc, LineTooLong):
            limit = exc.args[1] if len(exc.args) > 1 else None
            status, text = ((414, "request line too long") if limit == MAX_LINE_BYTES
                            else (431, "request header too large"))
        elif "too many headers" in str(exc).lower():
            status, text = 431, "too many request headers"
        else:
            status, text = 400, "malformed HTTP request"
        log.warning("refused a request: %s", text, extra={"client": client_ref(request.remote)})
        resp = web.Response(status=status, text=text + "\n", content_type="text/plain")
        resp.force_close()
        return resp


class _ApiServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _ApiHandler(self, loop=self._loop, **self._kwargs)


class ApiRunner(web.AppRunner):
    """The daemon's AppRunner: oversize request lines answer 414, oversize or too many headers
    431, other malformed requests 400, each with one warning and no traceback."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _ApiServer  # only __call__ differs; aiohttp has no public hook
        return server


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_app(
    settings: Settings, *, store: Store | None = None, runtime: Any = None
) -> web.Application:
    """The application for ``settings``; pass ``store`` to share an open database (tests, daemon).

    Listening beyond loopback needs ``[cap] base_url``: public documents name it, never the
    request's Host header (api.cap.public_base_url), and the bind address is no public name.
    """
    if not _loopback(settings.api_host) and not settings.section("cap").get("base_url"):
        raise ConfigError(f"[cap] base_url is required when the API listens on "
                          f"{settings.api_host} (the public address of the feed and the WADL)")
    app = web.Application(middlewares=[problem_middleware], client_max_size=MAX_BODY_BYTES,
                          handler_args={"max_line_size": MAX_LINE_BYTES,
                                        "max_field_size": MAX_FIELD_BYTES,
                                        "max_headers": MAX_HEADERS})
    app[SETTINGS] = settings
    if runtime is not None:
        app[RUNTIME] = runtime

    async def store_ctx(app: web.Application) -> AsyncIterator[None]:
        own = store is None
        app[STORE] = store if store is not None else open_store(settings)
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
