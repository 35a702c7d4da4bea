"""Association on a real dense swarm: the Bombay Beach 2016 quakes (SCSN, 340 rows) reported by
two sources — a local fdsnws-event node serving them as FDSN text, and the catalogue file —
merge into exactly one event per quake; quakes 1 s apart stay apart (issue 11)."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from quakealert.config import SourceConfig
from quakealert.formats.catalog import read_catalog_file
from quakealert.formats.fdsntext import parse_fdsn_text
from quakealert.service.poller import Poller
from quakealert.sources.fdsn import FdsnSource
from quakealert.store.sqlite import Store
from tests.conftest import FIXTURES

CSV = FIXTURES / "catalogs" / "scedc-bombay-beach-swarm-2016.csv"
NOW = datetime(2016, 10, 20, tzinfo=UTC)
HEADER = ("#EventID|Time|Latitude|Longitude|Depth/km|Author|Catalog|Contributor|ContributorID|"
          "MagType|Magnitude|MagAuthor|EventLocationName|EventType")


def fdsn_text(rows: list[dict[str, str]], *, bare_ids: bool = False) -> str:
    """The catalogue rows as an fdsnws-event 1.2 text body (ComCat style: ContributorID is the
    network-prefixed id). ``bare_ids``: EventID is the bare SCSN number and no ContributorID,
    so the rows carry no id shared with the file."""
    lines = [HEADER]
    for r in rows:
        eid = r["id"][2:] if bare_ids else r["id"]
        cid = "" if bare_ids else r["id"]
        lines.append("|".join((eid, r["time"].rstrip("Z"), r["latitude"], r["longitude"],
                               r["depth"], "ci", "ci", "ci", cid, r["magType"], r["mag"], "ci",
                               "Bombay Beach, CA", "earthquake")))
    return "\n".join(lines) + "\n"


def rows() -> list[dict[str, str]]:
    with CSV.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
async def node(aiohttp_server):  # type: ignore[no-untyped-def]
    body = fdsn_text(rows())

    async def query(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/fdsnws/event/1/query", query)
    server = await aiohttp_server(app)
    return str(server.make_url("/fdsnws/event/1/query"))


async def test_bombay_beach_from_fdsn_node_and_file_gives_340_events(node: str,
                                                                     store: Store) -> None:
    """340 real quakes from an FDSN node and from the file: 340 events, each with both sources."""
    src = FdsnSource(SourceConfig(name="scsn", kind="fdsn", url=node, timeout_s=5.0))
    async with aiohttp.ClientSession() as session:
        status = await Poller(store=store, session=session).poll_once(src, now=NOW)
    assert status.ok and status.new == 340
    parsed = read_catalog_file(CSV)
    assert len(parsed.reports) == 340 and parsed.skipped == []
    store.ingest(parsed.reports, now=NOW)
    events = store.events(limit=None)
    assert len(events) == 340 == store.count_events()
    assert Counter(frozenset(c.source for c in e.contributors) for e in events) == {
        frozenset({"scsn", "scedc"}): 340}
    for e in events:  # each quake joined its own twin: the same SCSN id from both
        assert len({c.source_id for c in e.contributors}) == 1
        assert e.event_type == "earthquake"


def test_two_quakes_one_second_apart_stay_two_without_shared_ids(store: Store) -> None:
    """ci37700560 (M2.54) and ci37382677 (M3.18), 1.0 s and 0.5 km apart: from a second source
    without any shared id, each report joins the closer quake; two events, never one."""
    pair = [r for r in rows() if r["id"] in ("ci37700560", "ci37382677")]
    file_reports = [r for r in read_catalog_file(CSV).reports
                    if r.source_id in ("ci37700560", "ci37382677")]
    node = parse_fdsn_text(fdsn_text(pair, bare_ids=True).encode(), "scsn").reports
    assert {r.source_id for r in node} == {"37700560", "37382677"}
    assert all(not r.other_ids for r in node)
    store.ingest(file_reports, now=NOW)
    store.ingest(node, now=NOW)
    events = store.events(limit=None)
    assert len(events) == 2
    for e in events:
        ids = sorted(c.source_id for c in e.contributors)
        assert ids[0] == ids[1][2:]  # "37382677" with "ci37382677": each with its own twin


def test_shared_id_merges_beyond_the_distance_rule(store: Store) -> None:
    """A report sharing an id with an event joins it even 40 s and 150 km away (ids first),
    and is flagged for review; the same offset without the id makes a new event."""
    (base,) = [r for r in read_catalog_file(CSV).reports if r.source_id == "ci37700560"]
    store.ingest([base], now=NOW)
    # automatic, so the file's reviewed origin stays the preferred one
    far = replace(base, source="other", status="automatic",
                  origin_at=base.origin_at.replace(second=0), latitude=base.latitude + 1.35)
    stranger = replace(far, source="third", source_id="x1", other_ids=())
    store.ingest([far], now=NOW)
    store.ingest([stranger], now=NOW)
    events = store.events(limit=None)
    assert len(events) == 2
    merged = next(e for e in events if len(e.contributors) == 2)
    assert {c.source for c in merged.contributors} == {"scedc", "other"}
    assert any("epicentre differs" in f for f in merged.review_flags)
