"""Prometheus metrics (`GET /metrics`) and source health with lag (`GET /api/v1/sources`).

Each app gets its own `Metrics` (own CollectorRegistry) under the METRICS key, so tests and
several apps in one process never collide. The rest of the code increments its fields;
docs/metrics.md lists them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder

from quakealert import __version__
from quakealert.api.app import source_health
from quakealert.api.keys import RUNTIME, STORE
from quakealert.api.params import json_response
from quakealert.api.problems import Handler

# Seconds from a catalogue answering to the push leaving: the 1 s .. 10 min range that matters.
ALERT_LATENCY_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
POLL_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60)
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


@dataclass(frozen=True, slots=True)
class Metrics:
    """Every metric quakealert exports, registered in one per-app registry."""

    registry: CollectorRegistry
    events_ingested: Counter  # labels: source
    poll_duration: Histogram  # labels: source
    source_up: Gauge  # labels: source
    source_last_success: Gauge  # labels: source
    source_failures: Gauge  # labels: source
    sequences: Gauge  # labels: type
    notices: Counter  # labels: kind, decision
    deliveries: Counter  # labels: channel, result
    outbox_depth: Gauge
    alert_latency: Histogram
    http_requests: Counter  # labels: method, route, status
    http_duration: Histogram  # labels: route

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        """Fresh metrics in ``registry`` (a new one by default)."""
        reg = registry if registry is not None else CollectorRegistry()
        info = Gauge("quakealert_build_info", "Version of the running quakealert", ["version"],
                     registry=reg)
        info.labels(version=__version__).set(1)
        return cls(
            registry=reg,
            events_ingested=Counter(
                "quakealert_events_ingested", "Reports stored that created or changed an event",
                ["source"], registry=reg),
            poll_duration=Histogram(
                "quakealert_poll_duration_seconds", "Time to fetch and parse one catalogue poll",
                ["source"], buckets=POLL_BUCKETS, registry=reg),
            source_up=Gauge(
                "quakealert_source_up", "1 if the source's last poll succeeded, else 0",
                ["source"], registry=reg),
            source_last_success=Gauge(
                "quakealert_source_last_success_timestamp_seconds",
                "Unix time of the source's last successful poll", ["source"], registry=reg),
            source_failures=Gauge(
                "quakealert_source_consecutive_failures", "Failed polls since the last success",
                ["source"], registry=reg),
            sequences=Gauge(
                "quakealert_sequences", "Open sequences by type (swarm, mainshock_aftershock, ...)",
                ["type"], registry=reg),
            notices=Counter(
                "quakealert_notices", "Notice decisions by message kind and decision",
                ["kind", "decision"], registry=reg),
            deliveries=Counter(
                "quakealert_deliveries", "Delivery attempts by channel and result",
                ["channel", "result"], registry=reg),
            outbox_depth=Gauge(
                "quakealert_outbox_depth", "Outbox rows not yet delivered", registry=reg),
            alert_latency=Histogram(
                "quakealert_alert_latency_seconds",
                "Seconds from the catalogue response to the push being dispatched",
                buckets=ALERT_LATENCY_BUCKETS, registry=reg),
            http_requests=Counter(
                "quakealert_http_requests", "API requests by method, route and status",
                ["method", "route", "status"], registry=reg),
            http_duration=Histogram(
                "quakealert_http_request_duration_seconds", "API request handling time by route",
                ["route"], buckets=HTTP_BUCKETS, registry=reg),
        )


METRICS = web.AppKey("metrics", Metrics)

routes = web.RouteTableDef()


def _route_label(request: web.Request) -> str:
    # Unmatched paths share one label: scanners must not create a series per URL.
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def http_metrics_middleware(metrics: Metrics, clock: Callable[[], float] = time.perf_counter
                            ) -> Any:
    """Count every request by route and status, and time it."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = clock()
        status = 500
        try:
            resp = await handler(request)
            status = resp.status
            return resp
        except web.HTTPException as err:
            status = err.status
            raise
        finally:
            route = _route_label(request)
            metrics.http_requests.labels(request.method, route, str(status)).inc()
            metrics.http_duration.labels(route).observe(clock() - start)

    return middleware


def setup(app: web.Application) -> None:
    """Give the app its Metrics (the daemon's, if its runtime has one) and time every request."""
    runtime = app.get(RUNTIME)
    metrics = getattr(runtime, "metrics", None)
    if not isinstance(metrics, Metrics):
        metrics = Metrics.create()
    app[METRICS] = metrics
    # Outermost, so that 401s, 429s and problem responses are counted too.
    app.middlewares.insert(0, http_metrics_middleware(metrics))


def refresh_sources(metrics: Metrics, sources: list[dict[str, Any]]) -> None:
    """Copy the stored source health into the gauges (the store is the single truth)."""
    for s in sources:
        name = s["name"]
        metrics.source_up.labels(name).set(1 if s["ok"] else 0)
        metrics.source_failures.labels(name).set(s["consecutive_failures"])
        if s["last_ok"] is not None:
            last_ok = datetime.fromisoformat(s["last_ok"])
            metrics.source_last_success.labels(name).set(last_ok.timestamp())


def refresh_store(metrics: Metrics, store: Any) -> None:
    """Sequences by type and outbox depth, read from the store at scrape time."""
    metrics.sequences.clear()
    for kind, n in store.views.sequences_by_type().items():
        metrics.sequences.labels(kind.replace("-", "_")).set(n)
    metrics.outbox_depth.set(store.views.outbox_depth())


@routes.get("/metrics")
async def get_metrics(request: web.Request) -> web.Response:
    """Prometheus exposition of this app's registry (read role)."""
    metrics = request.app[METRICS]
    refresh_sources(metrics, source_health(request.app))
    refresh_store(metrics, request.app[STORE])
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return web.Response(body=encoder(metrics.registry), headers={"Content-Type": content_type})


@routes.get("/api/v1/sources")
async def get_sources(request: web.Request) -> web.Response:
    """Each configured source's health, with lag = now - last successful poll."""
    now = datetime.now(UTC)
    out = []
    for s in source_health(request.app):
        lag = None
        if s["last_ok"] is not None:
            last_ok = datetime.fromisoformat(s["last_ok"])
            lag = round(max(0.0, (now - last_ok).total_seconds()), 3)
        out.append({**s, "lag_s": lag})
    return json_response(request, {"sources": out})
