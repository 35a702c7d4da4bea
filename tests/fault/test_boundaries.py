"""The boundaries that keep bad data and failing stores from crashing the service (issue 9 §4),
in process: the poll's exception boundary, stored poison rows at start-up, and XML/JSON we
serve staying well-formed. The subprocess scenarios are in test_daemon_faults.py."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import aiohttp
import pytest
from lxml import etree

from quakealert.api.app import make_app, public_error
from quakealert.config import Settings, SourceConfig
from quakealert.formats.geojson import parse_geojson
from quakealert.model import Message, Notice, ParseResult, Report
from quakealert.service.pipeline import Pipeline
from quakealert.service.poller import Poller
from quakealert.store.notices import save_notice
from quakealert.store.sqlite import Store
from tests.conftest import load_fixture

USGS = load_fixture("usgs/usgs-geojson-all_hour-2017-12-03.geojson")
NOW = datetime(2024, 11, 7, tzinfo=UTC)
QUAKE_AT = datetime(2024, 11, 6, 20, 19, 53, tzinfo=UTC)


@dataclass
class ScriptedSource:
    """A source whose parse does what the test says: return reports or raise."""

    name: str
    outcome: object
    config: SourceConfig = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.config = SourceConfig(name=self.name, kind="usgs", interval_s=60.0)

    async def fetch(self, session: aiohttp.ClientSession, since: datetime | None) -> bytes:
        return b"body"

    def parse(self, body: bytes) -> ParseResult:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        assert isinstance(self.outcome, ParseResult)
        return self.outcome


class FullDiskStore(Store):
    """A store whose writes fail like SQLite on a full disk (the subprocess suite fills a real
    tmpfs; this is the in-process twin)."""

    full_paths: ClassVar[set[str]] = set()  # shared: the poller stores through a connection of its own

    @property
    def full(self) -> bool:
        return str(self.path) in self.full_paths

    @full.setter
    def full(self, value: bool) -> None:
        (self.full_paths.add if value else self.full_paths.discard)(str(self.path))

    def ingest(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.full:
            raise sqlite3.OperationalError("database or disk is full")
        return super().ingest(*args, **kwargs)


def quake(sid: str, at: datetime = QUAKE_AT, place: str = "Maizhokunggar") -> Report:
    return Report("cenc", sid, at, 29.85, 92.25, 10.0, 4.5, "M", place=place)


async def test_any_exception_in_a_poll_is_caught_recorded_and_other_sources_poll(tmp_path):
    """A parser bug (not a SourceError) fails that poll only: failures in a row and the last
    error are in health, back-off is set, and the next source still stores its rows."""
    store = Store.open(tmp_path / "q.sqlite")
    async with aiohttp.ClientSession() as session:
        poller = Poller(store=store, session=session)
        broken = ScriptedSource("broken", RuntimeError("parser bug"))
        good = ScriptedSource("good", ParseResult([quake("ok1")]))
        for _ in range(2):
            status = await poller.poll_once(broken, now=NOW, force=True)
            assert not status.ok and "RuntimeError: parser bug" in str(status.error)
        assert (await poller.poll_once(good, now=NOW)).new == 1
    health = store.load_health()
    assert health["broken"]["consecutive_failures"] == 2
    assert health["broken"]["last_error"] == "internal error: RuntimeError: parser bug"
    assert health["broken"]["backoff_until"] is not None
    assert health["good"]["consecutive_failures"] == 0
    assert store.count_events() == 1
    store.close()


async def test_full_disk_fails_the_poll_keeps_what_was_stored_and_retries(tmp_path):
    """SQLITE_FULL while storing: the poll is a recorded failure, nothing stored before is
    lost, `since` is not advanced, and once space is back the same rows are stored."""
    store = FullDiskStore.open(tmp_path / "q.sqlite")
    async with aiohttp.ClientSession() as session:
        poller = Poller(store=store, session=session)
        src = ScriptedSource("cenc", ParseResult([quake("before")]))
        await poller.poll_once(src, now=NOW)
        since = poller.health["cenc"].last_since
        store.full = True
        src.outcome = ParseResult([quake("during", QUAKE_AT + timedelta(hours=1))])
        status = await poller.poll_once(src, now=NOW + timedelta(minutes=1))
        assert not status.ok and "disk is full" in str(status.error)
        assert poller.health["cenc"].last_since == since
        assert store.count_events() == 1
        store.full = False
        status = await poller.poll_once(src, now=NOW + timedelta(minutes=2), force=True)
        assert status.ok and status.new == 1
    assert store.count_events() == 2
    store.close()


async def test_poison_feature_in_a_poll_is_counted_and_good_rows_stored(tmp_path):
    """A USGS body with `properties: []` and a 9999 feature: the good features are stored,
    the two bad ones are counted in the source's health (skipped_total)."""
    doc = json.loads(USGS)
    doc["features"][0]["properties"] = []
    doc["features"][1]["properties"]["time"] = 253370764800000
    parsed = parse_geojson(json.dumps(doc).encode(), "usgs")
    store = Store.open(tmp_path / "q.sqlite")
    async with aiohttp.ClientSession() as session:
        poller = Poller(store=store, session=session)
        status = await poller.poll_once(ScriptedSource("usgs", parsed), now=NOW)
    assert status.ok and status.new == len(doc["features"]) - 2 and status.skipped == 2
    assert store.load_health()["usgs"]["skipped_total"] == 2
    store.close()


def test_stored_poison_rows_never_stop_start_up(tmp_path):
    """Rows dated 9999-12-01 and 0001-01-01 that reached the store (older versions did not
    validate) are left out of the sequences with a warning; start-up works and the real quake
    is sequenced (this was OverflowError in Pipeline._schedule, exit 1 at every start)."""
    store = Store.open(tmp_path / "q.sqlite")
    for at in (datetime(9999, 12, 1, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC)):
        store.ingest([quake(f"poison{at.year}", at)], now=NOW)
    store.ingest([quake("real")], now=NOW)
    pipeline = Pipeline(store, Settings(store_path=tmp_path / "q.sqlite", var_dir=tmp_path))
    pipeline.load()
    sequenced = [e.id for s in pipeline.engine.sequences() for e in s.events]
    assert len(sequenced) == 1 and store.count_events() == 3
    store.close()


@pytest.fixture
async def hostile_text_client(tmp_path, aiohttp_client):
    """A store holding an event and a released notice whose texts carry control characters,
    written directly (as an older version without ingest validation would have)."""
    store = Store.open(tmp_path / "q.sqlite")
    place = "Lhasa\x00\x1b[2J\x0c county\x7f"
    result = store.ingest([quake("ctl", place=place)], now=NOW)
    event_id = result.created[0]
    notice = Notice(id="n1", sequence_id="s1", event_id=event_id, kind="felt_guidance",
                    msg_type="Alert", created_at=NOW,
                    messages=(Message("en", f"M4.5 {place}", "Stay calm\x07"),))
    save_notice(store.conn, notice, "released", at=NOW)
    settings = Settings(store_path=tmp_path / "q.sqlite", var_dir=tmp_path, sections={
        "ratelimit": {"enabled": False}, "cap": {"base_url": "https://qa.example"}})
    yield await aiohttp_client(make_app(settings, store=store))
    store.close()


@pytest.mark.parametrize("path", [
    "/cap/alerts.atom", "/cap/n1.xml", "/fdsnws/event/1/query?format=xml",
    "/fdsnws/event/1/query?format=text", "/fdsnws/event/1/query?format=geojson",
])
async def test_documents_we_serve_stay_well_formed(hostile_text_client, path):
    """Control characters in stored text never make the Atom feed, CAP, QuakeML, fdsn text
    or GeoJSON a 500 or malformed (they were 500 for as long as the notice was in the feed)."""
    resp = await hostile_text_client.get(path)
    assert resp.status == 200, await resp.text()
    body = await resp.read()
    if "xml" in path or "atom" in path:
        doc = etree.fromstring(body)  # raises on malformed XML
        assert "Lhasa" in etree.tostring(doc, encoding="unicode")
    elif "geojson" in path:
        assert json.loads(body)["features"][0]["properties"]["place"].startswith("Lhasa")
    else:
        lines = body.decode().splitlines()
        assert len(lines) == 2 and lines[1].count("|") == 13 and lines[1].isprintable()


def test_public_error_keeps_kind_and_status_only():
    """The public /healthz sees the error's kind and HTTP status, never upstream words."""
    assert public_error("SourceUnavailable: HTTP 503: <b>db password wrong</b>") == (
        "SourceUnavailable: HTTP 503")
    assert public_error("ParseError: invalid JSON: Expecting value") == "ParseError"
    assert public_error("internal error: RuntimeError: x") == "internal error: RuntimeError"
    assert public_error(None) is None


async def test_healthz_hides_upstream_bodies_api_shows_them(tmp_path, aiohttp_client):
    """/healthz (public) shows the kind; /api/v1/sources (duty) shows the whole error."""
    from quakealert.store.auth import create_token

    store = Store.open(tmp_path / "q.sqlite")
    store.save_health({"name": "usgs", "consecutive_failures": 3, "polls": 3,
                       "last_error": "SourceUnavailable: HTTP 502: upstream secret page"})
    settings = Settings(store_path=tmp_path / "q.sqlite", var_dir=tmp_path,
                        sources=(SourceConfig(name="usgs", kind="usgs", url="https://x"),),
                        sections={"ratelimit": {"enabled": False}})
    client = await aiohttp_client(make_app(settings, store=store))
    health = await (await client.get("/healthz")).json()
    assert health["status"] == "degraded"
    assert health["sources"][0]["last_error"] == "SourceUnavailable: HTTP 502"
    assert "secret" not in json.dumps(health)
    secret = create_token(store.conn, "duty", "duty", now=NOW)[1]
    duty = await client.get("/api/v1/sources", headers={"Authorization": f"Bearer {secret}"})
    assert "upstream secret page" in await duty.text()
    store.close()


def test_store_path_is_a_path(tmp_path: Path) -> None:
    """(guard for the fixtures above: the healthz read-only connection needs a file path)"""
    assert Store.open(tmp_path / "x.sqlite").path == tmp_path / "x.sqlite"
