"""Ingest, association and event reads: one contract on both backends, on real catalogues (the
Bombay Beach 2016 swarm from two sources, CENC's Lhasa list with USGS's, a USGS month feed with
quarry blasts), plus the same answers from both for every read the API and FDSN service make."""

from __future__ import annotations

import csv
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from store_backends import postgres_backend, sqlite_backend

from quakealert.errors import NotFound
from quakealert.formats.catalog import read_catalog_file
from quakealert.formats.fdsntext import parse_fdsn_text
from quakealert.formats.geojson import parse_geojson
from quakealert.model import Report
from tests.conftest import FIXTURES

BOMBAY = FIXTURES / "catalogs" / "scedc-bombay-beach-swarm-2016.csv"
CENC_LHASA = FIXTURES / "catalogs" / "cenc-export-lhasa-300km-2024.csv"
USGS_LHASA = FIXTURES / "catalogs" / "usgs-lhasa-300km-m5-1905-2018.csv"
USGS_MONTH = FIXTURES / "usgs" / "usgs-geojson-all_month-2021-10-04-excerpt.geojson"
NOW = datetime(2024, 11, 20, tzinfo=UTC)
HEADER = ("#EventID|Time|Latitude|Longitude|Depth/km|Author|Catalog|Contributor|ContributorID|"
          "MagType|Magnitude|MagAuthor|EventLocationName|EventType")


def bombay_file() -> list[Report]:
    return read_catalog_file(BOMBAY).reports


def bombay_node() -> list[Report]:
    """The same 340 quakes as an FDSN node serves them (ComCat style, ContributorID = the id)."""
    with BOMBAY.open(newline="") as f:
        rows = list(csv.DictReader(f))
    lines = [HEADER] + ["|".join((r["id"], r["time"].rstrip("Z"), r["latitude"], r["longitude"],
                                  r["depth"], "ci", "ci", "ci", r["id"], r["magType"], r["mag"],
                                  "ci", "Bombay Beach, CA", "earthquake")) for r in rows]
    return parse_fdsn_text(("\n".join(lines) + "\n").encode(), "scsn").reports


def lhasa() -> list[Report]:
    return read_catalog_file(CENC_LHASA).reports


def test_two_sources_of_a_real_swarm_make_one_event_per_quake(store_backend):
    """340 Bombay Beach quakes from the catalogue file, then from an FDSN node: 340 events, each
    with both sources and one SCSN id; the second batch only associates (no new event) and
    queues each event's work once, as "new"."""
    b = store_backend
    conn = b.conn()
    first = b.events.ingest(conn, bombay_file(), now=NOW)
    assert len(first.created) == 340 and not first.revised
    second = b.events.ingest(conn, bombay_node(), now=NOW)
    assert not second.created and len(second.revised) == 340
    events = b.events.events(conn, limit=None)
    assert len(events) == 340 == b.events.count_events(conn)
    assert b.events.count_reports(conn) == 680
    assert Counter(frozenset(c.source for c in e.contributors) for e in events) == {
        frozenset({"scsn", "scedc"}): 340}
    assert all(len({c.source_id for c in e.contributors}) == 1 for e in events)
    assert b.work.pending_work(conn) == 340
    assert {r[1] for r in b.work.next_work(conn, 1000)} == {"new"}
    again = b.events.ingest(conn, bombay_node(), now=NOW + timedelta(hours=1))
    assert again.unchanged == 340 and not again.changed


def test_concurrent_ingests_of_the_same_quakes_never_split_them(store_backend):
    """Two connections ingest the two sources of the same swarm at the same moment: still one
    event per quake (PostgreSQL: the ingest lock; SQLite: BEGIN IMMEDIATE)."""
    b = store_backend
    conns = [b.conn(), b.conn()]
    batches = [bombay_file(), bombay_node()]
    start = threading.Barrier(2)

    def run(k: int) -> int:
        start.wait()
        return len(b.events.ingest(conns[k], batches[k], now=NOW).created)

    with ThreadPoolExecutor(2) as ex:
        created = [f.result(timeout=120) for f in [ex.submit(run, k) for k in range(2)]]
    assert sorted(created) == [0, 340]
    assert b.events.count_events(conns[0]) == 340
    events = b.events.events(conns[0], limit=None)
    assert all({c.source for c in e.contributors} == {"scsn", "scedc"} for e in events)


def test_automatic_official_revision_deletion_and_history(store_backend):
    """CENC's real M4.5 of 2024-11-06: automatic, then official with another magnitude, then a
    USGS solution that joins and is deleted; the event keeps CENC's origin (CENC still reports
    it), its history lists each change, and the work queue says what the pipeline must do."""
    b = store_backend
    conn = b.conn()
    (m45,) = [r for r in lhasa() if r.magnitude == 4.5]
    auto = replace(m45, status="automatic", magnitude=4.6)
    r1 = b.events.ingest(conn, [auto], now=NOW)
    (eid,) = r1.created
    b.work.finish_work(conn, [eid])
    r2 = b.events.ingest(conn, [m45], now=NOW + timedelta(minutes=10))
    assert r2.revised == [eid]
    assert b.work.next_work(conn) == [(eid, "revised", (NOW + timedelta(minutes=10)).timestamp(),
                                       None)]
    usgs = Report("usgs", "us7000nxyz", m45.origin_at + timedelta(seconds=2.4), 29.79, 92.31,
                  12.0, 4.6, "mb", status="reviewed", other_ids=("us7000nxyz",))
    assert b.events.ingest(conn, [usgs], now=NOW).revised == [eid]
    gone = b.events.ingest(conn, [replace(usgs, status="deleted")], now=NOW)
    assert gone.deleted == [eid]  # one agency's deletion: the pipeline looks again
    e = b.events.event(conn, eid)
    assert (e.status, e.preferred_source, e.magnitude) == ("reviewed", "cenc", 4.5)
    assert [c.source for c in e.contributors] == ["cenc", "usgs"]
    history = b.events.event_history(conn, eid)
    assert [(h["change"], h["source"], h["version"]) for h in history] == [
        ("created", "cenc", 1), ("official", "cenc", 2), ("associated", "usgs", 1),
        ("deleted", "usgs", 2)]
    assert "magnitude 4.6 -> 4.5" in history[1]["detail"]
    with pytest.raises(NotFound):
        b.events.event(conn, "nope")
    with pytest.raises(NotFound):
        b.events.event_history(conn, "nope")


def test_deletion_queues_deleted_and_hides_the_event(store_backend):
    """A USGS-only event deleted by USGS: marked deleted, hidden unless asked for; its queued
    work becomes "deleted"; a revision of a still-queued new event stays "new"."""
    b = store_backend
    conn = b.conn()
    feed = parse_geojson(USGS_MONTH.read_bytes(), "usgs").reports
    quake, other = feed[0], feed[1]
    (eid,) = b.events.ingest(conn, [quake], now=NOW).created
    (oid,) = b.events.ingest(conn, [other], now=NOW).created
    b.events.ingest(conn, [replace(other, magnitude=(other.magnitude or 0) + 0.3)], now=NOW)
    assert b.events.ingest(conn, [replace(quake, status="deleted")], now=NOW).deleted == [eid]
    assert eid not in {e.id for e in b.events.events(conn, limit=None)}
    assert b.events.events(conn, status="deleted", limit=None)[0].id == eid
    assert eid in {e.id for e in b.events.events(conn, include_deleted=True, limit=None)}
    assert {r[0]: r[1] for r in b.work.next_work(conn)} == {eid: "deleted", oid: "new"}


def test_preferred_id_change_is_a_revision_of_the_same_event(store_backend):
    """ComCat switching its preferred id (us -> ci, both in ``ids``): one event, revised, the
    old id retired; a later report under the old id is then a new report of its own."""
    b = store_backend
    conn = b.conn()
    quake = parse_geojson(USGS_MONTH.read_bytes(), "usgs").reports[0]
    first = replace(quake, source_id="us7000abcd", other_ids=("us7000abcd", "ci38457511"))
    (eid,) = b.events.ingest(conn, [first], now=NOW).created
    second = replace(first, source_id="ci38457511", magnitude=7.1, mag_type="mw")
    assert b.events.ingest(conn, [second], now=NOW).revised == [eid]
    assert b.events.count_events(conn) == 1
    (c,) = b.events.event(conn, eid).contributors
    assert (c.source_id, c.magnitude) == ("ci38457511", 7.1)
    assert b.events.event_history(conn, eid)[-1]["detail"].startswith("id us7000abcd -> ci38457511")


def test_event_types_and_eventtype_filters(store_backend):
    """The USGS month feed keeps quarry blasts as their type; ``eventtype`` selects with the
    fdsnws wildcards, and an event without a type counts as an earthquake."""
    b = store_backend
    conn = b.conn()
    feed = parse_geojson(USGS_MONTH.read_bytes(), "usgs").reports
    b.events.ingest(conn, feed, now=NOW)
    types = Counter(r.event_type for r in feed)
    assert types["quarry blast"] >= 1
    got = lambda pats: len(b.events.events(conn, event_types=pats, limit=None))
    assert got(["quarry blast"]) == types["quarry blast"]
    assert got(["*blast"]) == sum(n for t, n in types.items() if t and t.endswith("blast"))
    assert got(["earthquake"]) == types["earthquake"] + types[None]
    assert got(["earthquake", "quarry?blast"]) == types["earthquake"] + types[None] + \
        types["quarry blast"]
    assert got(["[qe]*"]) == got(["earthquake", "quarry blast", "explosion"])
    assert got(["[^e]*"]) == len(feed) - got(["e*"])
    assert got(["nothing%"]) == 0 and got(["[unclosed"]) == 0


def test_filters_order_and_cursor(store_backend):
    """CENC's 2024 Lhasa list and USGS's M5+ century: time, magnitude, depth, box, circle,
    source and changed_after filters; four orders; keyset pages that add up to the full list."""
    b = store_backend
    conn = b.conn()
    b.events.ingest(conn, lhasa(), now=NOW)
    b.events.ingest(conn, read_catalog_file(USGS_LHASA).reports, now=NOW + timedelta(hours=1))
    ev = b.events
    everything = ev.events(conn, limit=None)
    assert len(everything) == ev.count_events(conn) > 100
    t0, t1 = datetime(2024, 10, 20, tzinfo=UTC), datetime(2024, 12, 1, tzinfo=UTC)
    window = ev.events(conn, starttime=t0, endtime=t1, minmagnitude=4.0, limit=None)
    assert [e.magnitude for e in window] == [4.1, 4.4, 4.0, 4.5, 4.1]  # 11-18 (two), 11-08, 11-06, 10-31
    assert all(4.0 <= e.magnitude <= 5.0 for e in ev.events(conn, minmagnitude=4.0,
                                                               maxmagnitude=5.0, limit=None))
    circle = ev.events(conn, latitude=29.85, longitude=92.25, maxradius_km=50, limit=None)
    ring = ev.events(conn, latitude=29.85, longitude=92.25, minradius_km=50, maxradius_km=150,
                     limit=None)
    assert circle and ring and not {e.id for e in circle} & {e.id for e in ring}
    box = ev.events(conn, box=(29.0, 30.5, 91.0, 93.0), limit=None)
    assert box and all(29.0 <= e.latitude <= 30.5 and 91.0 <= e.longitude <= 93.0 for e in box)
    assert ev.events(conn, box=(29.0, 30.5, 170.0, -170.0), limit=None) == []
    assert {c.source for e in ev.events(conn, source="usgs", limit=None)
            for c in e.contributors} >= {"usgs"}
    assert len(ev.events(conn, changed_after=NOW + timedelta(minutes=30), limit=None)) == len(
        {e.id for e in everything if any(c.source == "usgs" for c in e.contributors)})
    assert ev.events(conn, mindepth_km=30, limit=None) == [
        e for e in everything if e.depth_km is not None and e.depth_km >= 30]
    by_time = [e.id for e in everything]
    assert [e.id for e in ev.events(conn, order="time-asc", limit=None)] == by_time[::-1]
    by_mag = ev.events(conn, order="magnitude", limit=None)
    assert [e.magnitude for e in by_mag] == sorted((e.magnitude for e in everything),
                                                   reverse=True)
    assert ev.events(conn, order="magnitude-asc", limit=3)[0].magnitude == min(
        e.magnitude for e in everything)
    pages, after = [], None
    while page := ev.events(conn, after=after, limit=37):
        pages += [e.id for e in page]
        after = (page[-1].origin_at.timestamp(), page[-1].id)
    assert pages == by_time
    up, after = [], None
    while page := ev.events(conn, after=after, order="time-asc", limit=50):
        up += [e.id for e in page]
        after = (page[-1].origin_at.timestamp(), page[-1].id)
    assert up == by_time[::-1]


def test_source_health_round_trip(store_backend):
    """A source's health record is upserted column by column and read back by name."""
    b = store_backend
    conn = b.conn()
    b.events.save_health(conn, {"name": "cenc", "last_ok_at": 1.5, "polls": 3,
                                "consecutive_failures": 0})
    b.events.save_health(conn, {"name": "cenc", "last_error": "timeout", "last_error_at": 2.5,
                                "consecutive_failures": 1})
    b.events.save_health(conn, {"name": "usgs", "polls": 1})
    h = b.events.load_health(conn)
    assert set(h) == {"cenc", "usgs"}
    assert (h["cenc"]["last_ok_at"], h["cenc"]["polls"], h["cenc"]["last_error"],
            h["cenc"]["consecutive_failures"], h["cenc"]["backoff_until"]) == (
        1.5, 3, "timeout", 1, None)


def test_both_backends_give_the_same_answers(tmp_path, pg_url):
    """The same batches (the Lhasa list and USGS's century, Bombay Beach from two sources, a
    USGS feed and its revisions) through both: equal ingest results, events, histories and
    work queues, read for read."""
    lite, pg = sqlite_backend(tmp_path / "same.sqlite"), postgres_backend(pg_url)
    try:
        feed = parse_geojson(USGS_MONTH.read_bytes(), "usgs").reports
        batches = [lhasa(), read_catalog_file(USGS_LHASA).reports, bombay_file(),
                   bombay_node(), feed,
                   [replace(r, magnitude=(r.magnitude or 0) + 0.1) for r in feed[:20]],
                   [replace(r, status="deleted") for r in feed[20:30]]]
        conns = lite.conn(), pg.conn()
        for k, batch in enumerate(batches):
            at = NOW + timedelta(minutes=k)
            results = [b.events.ingest(c, batch, now=at) for b, c in zip((lite, pg), conns)]
            assert results[0] == results[1]
        reads = [
            lambda b, c: b.events.events(c, limit=None, include_deleted=True),
            lambda b, c: b.events.events(c, latitude=33.3, longitude=-115.7, maxradius_km=20,
                                         order="magnitude", limit=25),
            lambda b, c: b.events.events(c, event_types=["*blast"], limit=None),
            lambda b, c: [b.events.event_history(c, e.id) for e in
                          b.events.events(c, limit=60, order="time-asc")],
            lambda b, c: b.work.next_work(c, 5000),
            lambda b, c: (b.events.count_reports(c), b.events.count_events(c)),
        ]
        for read in reads:
            assert read(lite, conns[0]) == read(pg, conns[1])
    finally:
        lite.close()
        pg.close()
