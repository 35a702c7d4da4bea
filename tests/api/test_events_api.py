"""GET /api/v1/events and /healthz over a store filled with real-shaped reports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from quakealert.api.app import make_app
from quakealert.config import Settings
from quakealert.model import Report
from quakealert.store.sqlite import Store

T = datetime(2024, 11, 6, 20, 19, tzinfo=UTC)
REPORTS = [
    Report("cenc", "CC20241031093200", datetime(2024, 10, 31, 1, 32, tzinfo=UTC), 29.85, 92.25,
           10.0, 4.1, "M"),
    Report("cenc", "CC20241107041900", T, 29.85, 92.25, 10.0, 4.5, "M"),
    Report("usgs", "us7000nxyz", T + timedelta(seconds=2), 29.79, 92.31, 12.0, 4.6, "mb"),
    Report("cenc", "CC20241108130000", datetime(2024, 11, 8, 5, 0, tzinfo=UTC), 29.81, 92.26,
           10.0, 4.0, "M"),
    Report("cenc", "CC20250107090500", datetime(2025, 1, 7, 1, 5, tzinfo=UTC), 28.50, 87.45, 10.0,
           6.8, "M"),
]


@pytest.fixture
async def client(aiohttp_client, store: Store, settings: Settings):  # type: ignore[no-untyped-def]
    store.ingest(REPORTS, now=datetime(2025, 1, 8, tzinfo=UTC))
    return await aiohttp_client(make_app(settings, store=store))


async def test_events_list_shape(client) -> None:  # type: ignore[no-untyped-def]
    """Each event has id, ISO UTC time, origin, magnitude, status and its contributing sources."""
    resp = await client.get("/api/v1/events")
    assert resp.status == 200
    events = (await resp.json())["events"]
    assert len(events) == 4
    m45 = next(e for e in events if e["magnitude"] == 4.5)
    assert m45["time"] == "2024-11-06T20:19:00Z"
    assert (m45["latitude"], m45["longitude"], m45["depth_km"]) == (29.85, 92.25, 10.0)
    assert m45["mag_type"] == "M" and m45["status"] == "reviewed"
    assert sorted((s["source"], s["source_id"]) for s in m45["sources"]) == [
        ("cenc", "CC20241107041900"), ("usgs", "us7000nxyz")]


async def test_events_filters(client) -> None:  # type: ignore[no-untyped-def]
    """starttime/endtime, minmagnitude and a circle around Lhasa select the right events."""
    async def mags(query: str) -> list[float]:
        resp = await client.get("/api/v1/events?" + query)
        assert resp.status == 200, await resp.text()
        return [e["magnitude"] for e in (await resp.json())["events"]]

    assert await mags("minmagnitude=4.4") == [6.8, 4.5]
    assert await mags("starttime=2024-11-01&endtime=2024-11-30T00:00:00Z") == [4.0, 4.5]
    assert await mags("latitude=29.65&longitude=91.13&maxradius_km=200") == [4.0, 4.5, 4.1]
    assert await mags("limit=1") == [6.8]


async def test_events_cursor_pagination(client) -> None:  # type: ignore[no-untyped-def]
    """Following next_cursor walks every event exactly once."""
    seen, url = [], "/api/v1/events?limit=3"
    while url:
        body = await (await client.get(url)).json()
        seen += [e["id"] for e in body["events"]]
        url = f"/api/v1/events?limit=3&cursor={body['next_cursor']}" if "next_cursor" in body else ""
    assert len(seen) == len(set(seen)) == 4


async def test_etag_gives_304(client) -> None:  # type: ignore[no-untyped-def]
    """A repeated request with If-None-Match is answered 304 without a body."""
    first = await client.get("/api/v1/events")
    again = await client.get("/api/v1/events", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304 and "Last-Modified" in first.headers


@pytest.mark.parametrize("query", [
    "minmagnitude=big", "starttime=yesterday", "latitude=95&longitude=0&maxradius_km=10",
    "maxradius_km=10", "limit=0", "limit=100000", "cursor=%%%", "status=maybe",
    "starttime=2025-01-01&endtime=2024-01-01", "minmagnitude=nan",
])
async def test_bad_parameters_are_400_problems(client, query: str) -> None:  # type: ignore[no-untyped-def]
    """Hostile or malformed parameters get a clear 400 problem, never a 500."""
    resp = await client.get("/api/v1/events?" + query)
    assert resp.status == 400
    assert resp.content_type == "application/problem+json"
    assert (await resp.json())["status"] == 400


async def test_event_history_and_404(client) -> None:  # type: ignore[no-untyped-def]
    """History lists every report of an event; an unknown id is a 404 problem."""
    events = (await (await client.get("/api/v1/events?minmagnitude=4.5&maxmagnitude=4.5")).json())
    eid = events["events"][0]["id"]
    hist = await (await client.get(f"/api/v1/events/{eid}/history")).json()
    assert [h["source"] for h in hist["history"]] == ["cenc", "usgs"]
    missing = await client.get("/api/v1/events/nope/history")
    assert missing.status == 404


async def test_healthz_lists_sources(client) -> None:  # type: ignore[no-untyped-def]
    """healthz answers ok with the event count."""
    body = await (await client.get("/healthz")).json()
    assert body["status"] == "ok" and body["events"] == 4
