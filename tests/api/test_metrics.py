"""/metrics (Prometheus, per-app registry) and /api/v1/sources (health and lag)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from quakealert.api.app import make_app
from quakealert.api.metrics import METRICS, Metrics
from quakealert.config import Settings, SourceConfig
from quakealert.store.auth import create_token
from quakealert.store.sqlite import Store

SOURCES = (SourceConfig(name="cenc", kind="cenc", url="http://127.0.0.1:9/cenc"),
           SourceConfig(name="usgs", kind="usgs", url="http://127.0.0.1:9/usgs"))


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "q.sqlite")
    yield s
    s.close()


@pytest.fixture
def headers(store):
    secret = create_token(store.conn, "read", "grafana", now=datetime.now(UTC))[1]
    return {"Authorization": f"Bearer {secret}"}


def build(store, tmp_path):
    return make_app(Settings(store_path=tmp_path / "q.sqlite", sources=SOURCES), store=store)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_need_the_read_role(aiohttp_client, store, tmp_path, headers):
    """/metrics is never public."""
    client = await aiohttp_client(build(store, tmp_path))
    assert (await client.get("/metrics")).status == 401
    assert (await client.get("/metrics", headers=headers)).status == 200


async def test_metrics_the_code_increments_are_exported(aiohttp_client, store, tmp_path, headers):
    """Values set through app[METRICS] appear in the exposition under their documented names."""
    app = build(store, tmp_path)
    m = app[METRICS]
    m.events_ingested.labels("cenc").inc(3)
    m.notices.labels("felt_guidance", "sent").inc()
    m.deliveries.labels("webpush", "ok").inc(2)
    m.alert_latency.observe(12.5)
    m.poll_duration.labels("usgs").observe(0.3)
    client = await aiohttp_client(app)
    resp = await client.get("/metrics", headers=headers)
    assert resp.content_type == "text/plain"
    got = samples(await resp.text())
    assert got[("quakealert_events_ingested_total", (("source", "cenc"),))] == 3
    assert got[("quakealert_notices_total", (("decision", "sent"), ("kind", "felt_guidance")))] == 1
    assert got[("quakealert_deliveries_total", (("channel", "webpush"), ("result", "ok")))] == 2
    assert got[("quakealert_outbox_depth", ())] == 0
    assert got[("quakealert_alert_latency_seconds_bucket", (("le", "20.0"),))] == 1
    assert got[("quakealert_alert_latency_seconds_bucket", (("le", "10.0"),))] == 0
    assert got[("quakealert_poll_duration_seconds_count", (("source", "usgs"),))] == 1


async def test_http_requests_are_counted_by_route_and_status(aiohttp_client, store, tmp_path,
                                                             headers):
    """Every request, 401s included, is counted under its route pattern, not its raw path."""
    client = await aiohttp_client(build(store, tmp_path))
    await client.get("/metrics")
    await client.get("/api/v1/events/e123")
    await client.get("/random/scanner/path", headers=headers)
    got = samples(await (await client.get("/metrics", headers=headers)).text())
    key = "quakealert_http_requests_total"
    assert got[(key, (("method", "GET"), ("route", "/metrics"), ("status", "401")))] == 1
    assert got[(key, (("method", "GET"), ("route", "/api/v1/events/{id}"), ("status", "404")))] == 1
    assert got[(key, (("method", "GET"), ("route", "unmatched"), ("status", "404")))] == 1


async def test_each_app_has_its_own_registry(store, tmp_path):
    """Two apps in one process do not share metrics (no module-global registry)."""
    a, b = build(store, tmp_path), build(store, tmp_path)
    a[METRICS].outbox_depth.set(7)
    assert a[METRICS].registry is not b[METRICS].registry
    assert b[METRICS].registry.get_sample_value("quakealert_outbox_depth") == 0


def test_runtime_metrics_are_used(store, tmp_path):
    """The daemon's runtime.metrics, when given, is the app's Metrics."""
    class Runtime:
        metrics = Metrics.create()

    app = make_app(Settings(store_path=tmp_path / "q.sqlite"), store=store, runtime=Runtime())
    assert app[METRICS] is Runtime.metrics


async def test_source_health_gauges_and_lag(aiohttp_client, store, tmp_path, headers):
    """Source gauges come from the stored health; /api/v1/sources adds lag = now - last_ok."""
    now = time.time()
    store.save_health({"name": "cenc", "last_ok_at": now - 120, "consecutive_failures": 0,
                       "polls": 5})
    store.save_health({"name": "usgs", "last_ok_at": now - 900, "last_error_at": now - 30,
                       "last_error": "HTTP 503", "consecutive_failures": 4, "polls": 9})
    client = await aiohttp_client(build(store, tmp_path))
    got = samples(await (await client.get("/metrics", headers=headers)).text())
    assert got[("quakealert_source_up", (("source", "cenc"),))] == 1
    assert got[("quakealert_source_up", (("source", "usgs"),))] == 0
    assert got[("quakealert_source_consecutive_failures", (("source", "usgs"),))] == 4
    last = got[("quakealert_source_last_success_timestamp_seconds", (("source", "cenc"),))]
    assert last == pytest.approx(now - 120, abs=1e-3)

    assert (await client.get("/api/v1/sources")).status == 401
    body = await (await client.get("/api/v1/sources", headers=headers)).json()
    by_name = {s["name"]: s for s in body["sources"]}
    assert by_name["cenc"]["lag_s"] == pytest.approx(120, abs=5)
    assert by_name["usgs"]["lag_s"] == pytest.approx(900, abs=5)
    assert by_name["usgs"]["ok"] is False and by_name["usgs"]["last_error"] == "HTTP 503"


async def test_source_never_polled_has_no_lag(aiohttp_client, store, tmp_path, headers):
    """A source without a successful poll has lag null and is down."""
    client = await aiohttp_client(build(store, tmp_path))
    body = await (await client.get("/api/v1/sources", headers=headers)).json()
    assert [(s["name"], s["ok"], s["lag_s"]) for s in body["sources"]] == [
        ("cenc", False, None), ("usgs", False, None)]


async def test_sequences_and_outbox_depth_come_from_the_store(aiohttp_client, store, tmp_path,
                                                            headers):
    """After the real list to 2024-11-09: sequences by type, and the undelivered rows counted."""
    from quakealert.service.pipeline import Pipeline
    from quakealert.store.subscribers import NewSubscriber, add_subscriber
    from tests.scenario import feed_scenario

    add_subscriber(store.conn, NewSubscriber(29.65, 91.13, ("zh",), "webhook",
                                             "http://127.0.0.1:9/hook"), now=datetime.now(UTC))
    settings = Settings(store_path=tmp_path / "q.sqlite", sources=SOURCES)
    pipeline = Pipeline(store, settings, exercise=True)
    feed_scenario(store, pipeline, datetime(2024, 11, 9, tzinfo=UTC))
    client = await aiohttp_client(build(store, tmp_path))
    got = samples(await (await client.get("/metrics", headers=headers)).text())
    # the 2024 swarm and the background's swarms (Medog, Nyingchi ...), as the store holds them
    swarms = store.conn.execute("SELECT count(*) FROM sequences WHERE type = 'swarm'").fetchone()[0]
    assert swarms >= 2 and got[("quakealert_sequences", (("type", "swarm"),))] == swarms
    # report and advisory, not yet delivered (the M4.0, not felt in Lhasa, brings no summary)
    assert got[("quakealert_outbox_depth", ())] == 2
