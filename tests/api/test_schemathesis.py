"""Schemathesis against a live app: no 5xx, no response that contradicts the OpenAPI document.

The document is the one the app serves (checked below); schemathesis needs it at collection
time, so it is built from the same app factory then. Bounded: 25 examples per operation,
derandomized, no deadline per example but a request timeout.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hypothesis
import pytest
import requests
import schemathesis
from aiohttp import web
from schemathesis.specs.openapi.checks import (
    positive_data_acceptance,
)

from quakealert.api.app import make_app
from quakealert.api.openapi import build_document
from quakealert.config import Settings, SourceConfig
from quakealert.model import Report
from quakealert.store.auth import create_token
from quakealert.store.sqlite import Store

AT = datetime(2024, 11, 6, 20, 19, tzinfo=UTC)
SOURCES = (SourceConfig(name="cenc", kind="cenc", url="http://127.0.0.1:9/cenc"),)
SETTINGS_SECTIONS = {"ratelimit": {"enabled": False}}  # the 429 path has its own tests


def _settings(path: Path) -> Settings:
    return Settings(store_path=path, sources=SOURCES, sections=SETTINGS_SECTIONS)


def _document() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "doc.sqlite")
        try:
            return build_document(make_app(_settings(Path(tmp) / "doc.sqlite"), store=store))
        finally:
            store.close()


# positive_data_acceptance: a schema cannot say "a cursor this service issued", "maxradius_km
# needs latitude", or "starttime before endtime", so schema-valid requests may rightly get 400.
EXCLUDED = [positive_data_acceptance]
DOCUMENT = _document()
schema = schemathesis.openapi.from_dict(DOCUMENT)


def _fill(store: Store) -> None:
    reports = [
        Report("cenc", "cc20241031", AT - timedelta(days=6), 29.84, 92.24, 8.0, 4.1, "M"),
        Report("cenc", "cc20241107", AT, 29.85, 92.25, 10.0, 4.5, "M", place="西藏拉萨市墨竹工卡县"),
        Report("usgs", "us7000nxyz", AT + timedelta(seconds=3), 29.9, 92.3, 10.0, 4.6, "mb",
               status="automatic"),
        Report("cenc", "cc20241108", AT + timedelta(days=1), 29.86, 92.26, 9.0, 4.0, "M"),
    ]
    store.ingest(reports, now=AT + timedelta(days=2))
    store.save_health({"name": "cenc", "last_ok_at": AT.timestamp(), "consecutive_failures": 0})


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[tuple[str, str, web.Application]]:
    """The app on 127.0.0.1:<free port> in a background thread; yields (url, admin token, app)."""
    path = tmp_path_factory.mktemp("schemathesis") / "q.sqlite"
    store = Store.open(path)
    _fill(store)
    secret = create_token(store.conn, "admin", "schemathesis", now=datetime.now(UTC))[1]
    app = make_app(_settings(path), store=store)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    started = threading.Event()
    port: list[int] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port.append(runner.addresses[0][1])
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10), "test server did not start"
    yield f"http://127.0.0.1:{port[0]}", secret, app
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()
    store.close()


def test_served_document_is_the_one_fuzzed(live):
    """The document schemathesis uses is the one the live app serves."""
    url, _, _ = live
    served = requests.get(f"{url}/api/v1/openapi.json", timeout=10).json()
    assert served == DOCUMENT


@pytest.mark.slow
@schema.parametrize()
@hypothesis.settings(max_examples=25, deadline=None, derandomize=True, database=None,
                     suppress_health_check=list(hypothesis.HealthCheck))
def test_api_conforms(case, live):
    """Every operation, called as admin: no server error, responses match the document."""
    url, secret, _ = live
    case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {secret}"},
                           timeout=10, excluded_checks=EXCLUDED)


def test_405_keeps_allow_header(live):
    """A 405 names the allowed methods (RFC 9110 15.5.6)."""
    url, secret, _ = live
    resp = requests.put(f"{url}/api/v1/audit", headers={"Authorization": f"Bearer {secret}"},
                        timeout=10)
    assert resp.status_code == 405
    assert "GET" in resp.headers.get("Allow", "")
