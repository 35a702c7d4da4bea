"""Event types end to end (issue 11): a real quarry blast from a recorded USGS feed is stored with
its type, selected by ``eventtype=`` in the FDSN service and the events API, and residents get no
notice for it — duty staff see "not sent" with the reason."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quakealert.api.app import make_app
from quakealert.config import Settings
from quakealert.formats.cenc import parse_cenc
from quakealert.formats.eventtypes import quakeml_event_type
from quakealert.formats.geojson import parse_geojson
from quakealert.model import Report
from quakealert.service.pipeline import Pipeline
from quakealert.store import decisions as dec
from quakealert.store.auth import create_token
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import NewSubscriber, add_subscriber
from tests.conftest import load_fixture

FEED = "usgs/usgs-geojson-all_month-2021-10-04-excerpt.geojson"
NOW = datetime(2021, 10, 4, 21, 0, tzinfo=UTC)
HOME_GARDENS = (33.88, -117.51)  # ~4 km from the blast


def feed_reports() -> list[Report]:
    return parse_geojson(load_fixture(FEED), "usgs").reports


def blast() -> Report:
    return next(r for r in feed_reports() if r.source_id == "ci40062776")


def test_recorded_feed_keeps_quarry_blasts() -> None:
    """The two real SCSN quarry blasts of the feed keep their type; the rest are earthquakes."""
    types = {r.source_id: r.event_type for r in feed_reports()}
    assert types["ci40062776"] == types["ci40062744"] == "quarry blast"
    assert sum(t == "earthquake" for t in types.values()) == 10


@pytest.mark.parametrize("label, expected", [
    ("天然地震", "earthquake"), ("爆破", "explosion"), ("疑爆", "explosion"),
    ("塌陷", "collapse"), ("qb", "quarry blast"), ("quarry", "quarry blast"),
    ("mining explosion", "mining explosion"), ("", None),
])
def test_agency_labels_map_to_quakeml(label: str, expected: str | None) -> None:
    """CENC, SCEDC and older USGS labels become QuakeML EventType values."""
    assert quakeml_event_type(label) == expected


def test_stored_with_type_and_selected_by_eventtype(store: Store) -> None:
    """Stored events carry the type; the store's eventtype filter selects by it (wildcards)."""
    store.ingest(feed_reports(), now=NOW)
    blasts = store.events(event_types=("quarry blast",), limit=None)
    assert sorted(e.id for e in blasts) and all(e.event_type == "quarry blast" for e in blasts)
    assert {c.source_id for e in blasts for c in e.contributors} == {"ci40062776", "ci40062744"}
    assert len(store.events(event_types=("earthquake",), limit=None)) == 10
    assert len(store.events(event_types=("*blast",), limit=None)) == 2


async def test_fdsn_service_and_events_api_filter_by_eventtype(
        aiohttp_client, store: Store, settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """/fdsnws/event/1/query?eventtype= and /api/v1/events?eventtype= serve the type."""
    store.ingest(feed_reports(), now=NOW)
    client = await aiohttp_client(make_app(settings, store=store))
    r = await client.get("/fdsnws/event/1/query",
                         params={"eventtype": "quarry blast", "format": "text"})
    assert r.status == 200
    rows = (await r.text()).strip().splitlines()[1:]
    assert len(rows) == 2 and all(row.endswith("|quarry blast") for row in rows)
    r = await client.get("/fdsnws/event/1/query", params={"eventtype": "earthquake",
                                                          "format": "text"})
    assert len((await r.text()).strip().splitlines()[1:]) == 10
    r = await client.get("/fdsnws/event/1/query", params={"eventtype": "quarry blast"})
    assert b"<type>quarry blast</type>" in await r.read()
    r = await client.get("/api/v1/events", params={"eventtype": "quarry blast"})
    assert r.status == 200
    body = await r.json()
    assert {e["event_type"] for e in body["events"]} == {"quarry blast"}
    assert len(body["events"]) == 2


@pytest.fixture
def world(tmp_path: Path) -> tuple[Store, Pipeline]:
    store = Store.open(tmp_path / "q.sqlite")
    add_subscriber(store.conn, NewSubscriber(*HOME_GARDENS, ("en",), "webhook",
                                             "http://127.0.0.1:9/hg"), now=NOW)
    return store, Pipeline(store, Settings(store_path=tmp_path / "q.sqlite", var_dir=tmp_path),
                           exercise=True)


def test_no_notice_for_a_quarry_blast_and_staff_see_why(world) -> None:  # type: ignore[no-untyped-def]
    """The recorded blast, and the same blast had it been an M4.5: no notice, "not sent: quarry
    blast" recorded. The same M4.5 typed as an earthquake is notified (the control)."""
    store, pipeline = world
    big = replace(blast(), magnitude=4.5)
    pipeline.process(store.ingest([blast()], now=NOW), now=NOW)
    pipeline.process(store.ingest([replace(big, source="other", source_id="x-blast")], now=NOW),
                     now=NOW)
    assert dec.list_decisions(store.conn, send=True) == []
    why = dec.list_decisions(store.conn, send=False)
    assert [d["reason_code"] for d in why] == ["not_earthquake", "not_earthquake"]
    assert "Not sent: quarry blast" in why[0]["reason_en"]
    assert pipeline.engine.sequence_ids() == []  # a blast is no member of any sequence
    quake = replace(big, source="ctrl", source_id="ctrl-1", event_type="earthquake",
                    origin_at=big.origin_at.replace(day=5), other_ids=())
    pipeline.process(store.ingest([quake], now=NOW), now=NOW.replace(day=5, hour=22))
    assert [d["reason_code"] for d in dec.list_decisions(store.conn, send=True)]


def test_cenc_suspected_explosion_revised_to_earthquake_is_a_revision(store: Store) -> None:
    """CENC's automatic 疑爆 that the official report calls 天然地震: one event, revised."""
    body = load_fixture("cenc/cenc-speedsearch-response-2019-12.json")
    (first, *_) = parse_cenc(body, "cenc").reports
    auto = replace(first, status="automatic", event_type="explosion")
    official = replace(first, status="reviewed", event_type="earthquake")
    store.ingest([auto], now=NOW)
    (e,) = store.events(limit=None)
    assert e.event_type == "explosion"
    result = store.ingest([official], now=NOW)
    assert result.revised == [e.id] and store.count_events() == 1
    assert store.event(e.id).event_type == "earthquake"
    history = store.event_history(e.id)
    assert history[-1]["change"] == "official" and history[-1]["event_type"] == "earthquake"
    assert "event_type explosion -> earthquake" in history[-1]["detail"]



def test_suspected_explosion_revised_to_earthquake_is_then_notified(world) -> None:  # type: ignore[no-untyped-def]
    """An automatic "explosion" (CENC 疑爆) is not sent; its official revision to "earthquake"
    enters the sequence engine as a new quake and residents are told."""
    store, pipeline = world
    auto = replace(blast(), magnitude=4.5, status="automatic", event_type="explosion")
    pipeline.process(store.ingest([auto], now=NOW), now=NOW)
    assert dec.list_decisions(store.conn, send=True) == []
    official = replace(auto, status="reviewed", event_type="earthquake",
                       updated_at=auto.origin_at + timedelta(minutes=5))
    result = store.ingest([official], now=NOW)
    assert result.revised and not result.created
    pipeline.process(result, now=NOW.replace(hour=22))
    assert pipeline.engine.sequence_ids()
    assert dec.list_decisions(store.conn, send=True)


async def test_blast_decision_is_visible_to_duty_staff(world, aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    """The recorded quarry blast belongs to no sequence, yet duty staff find its "not sent":
    on the event's notices page of the API and in the front page's not-sent list."""
    store, pipeline = world
    pipeline.process(store.ingest([blast()], now=NOW), now=NOW)
    (event,) = store.events(limit=None)
    client = await aiohttp_client(make_app(pipeline.settings, store=store))
    read = {"Authorization": "Bearer " + create_token(store.conn, "read", "desk", now=NOW)[1]}
    r = await client.get(f"/api/v1/events/{event.id}/notices", headers=read)
    assert r.status == 200
    page = await r.json()
    assert page["event_type"] == "quarry blast" and page["notices"] == []
    (d,) = page["decisions"]
    assert (d["reason_code"], d["send"], d["sequence_id"]) == ("not_earthquake", False, "")
    assert d["reason_zh"].startswith("未发送：采石爆破")
    zh = await (await client.get("/dashboard", params={"lang": "zh"}, headers=read)).text()
    assert "未发送：非天然地震事件" in zh and "采石爆破" in zh
    en = await (await client.get("/dashboard", params={"lang": "en"}, headers=read)).text()
    assert "Not sent: quarry blast" in en and "暂无" not in en
    r = await client.get("/api/v1/sequences", headers=read)
    assert (await r.json())["sequences"] == []  # it is no sequence's member
