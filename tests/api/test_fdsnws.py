"""FDSN event service: the pure writers, parameter parsing, and the views over a real store."""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from fdsnws_data import INGESTED_AT, all_reports, cenc_reports, scedc_reports
from lxml import etree

from quakealert.api.app import make_app
from quakealert.api.fdsnws import PARAMS, FdsnError, build_wadl, parse_query
from quakealert.config import Settings
from quakealert.core.associate import new_event_id
from quakealert.core.geo import KM_PER_DEG
from quakealert.formats.fdsn_out import (
    TEXT_HEADER,
    event_public_id,
    events_to_geojson,
    events_to_quakeml,
    events_to_text,
)
from quakealert.formats.fdsntext import parse_fdsn_text
from quakealert.formats.quakeml import parse_quakeml
from quakealert.model import Contributor, Event, Report
from quakealert.store.sqlite import Store

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # obspy 1.5 uses a deprecated importlib API
    from obspy import read_events
    from obspy.clients.fdsn.wadl_parser import WADLParser
    from obspy.geodetics import locations2degrees
    from obspy.io.quakeml.core import _validate

Q = "/fdsnws/event/1/query"
T0 = datetime(2024, 11, 6, 20, 19, tzinfo=UTC)


def maizhokunggar() -> Event:
    """The 2024-11-06 M4.5 as CENC determined it, plus a synthetic second agency's view."""
    cenc = Contributor("cenc", "20241106T201900", T0, 29.85, 92.25, 10.0, 4.5, "M", "reviewed",
                       T0 + timedelta(hours=1))
    other = Contributor("emsc", "2024|demo", T0 + timedelta(seconds=2), 29.9, 92.3, 12.5, 4.6,
                        "mb", "automatic", T0 + timedelta(minutes=5))
    return Event("qa20241106201900abc123", T0, 29.85, 92.25, 10.0, 4.5, "M", "reviewed", "cenc",
                 (cenc, other), "西藏拉萨市墨竹工卡县", (), T0 + timedelta(hours=1))


def by_id(reports: list[Report]) -> dict[str, Report]:
    return {new_event_id(r): r for r in reports}


# -- writers ---------------------------------------------------------------------------------


def test_quakeml_validates_and_round_trips_through_obspy() -> None:
    """QuakeML is schema-valid; obspy reads back ids, time, depth (m), magnitudes and agencies."""
    body = events_to_quakeml([maizhokunggar()])
    assert _validate(io.BytesIO(body))
    (ev,) = read_events(io.BytesIO(body))
    assert str(ev.resource_id) == "smi:quakealert/event/qa20241106201900abc123"
    assert ev.event_type == "earthquake"
    assert ev.event_descriptions[0].text == "西藏拉萨市墨竹工卡县"
    assert ev.event_descriptions[0].type == "region name"
    assert len(ev.origins) == 2 and len(ev.magnitudes) == 2
    o = ev.preferred_origin()
    assert o.creation_info.agency_id == "cenc"
    assert o.time.datetime.replace(tzinfo=UTC) == T0
    assert (o.latitude, o.longitude, o.depth) == (29.85, 92.25, 10000.0)
    m = ev.preferred_magnitude()
    assert (m.mag, m.magnitude_type, m.creation_info.agency_id) == (4.5, "M", "cenc")
    assert m.origin_id == o.resource_id
    emsc = next(x for x in ev.magnitudes if x.creation_info.agency_id == "emsc")
    assert (emsc.mag, emsc.magnitude_type, emsc.evaluation_mode) == (4.6, "mb", "automatic")
    other = next(x for x in ev.origins if x.creation_info.agency_id == "emsc")
    assert other.depth == 12500.0
    assert "|" not in str(other.resource_id)


def test_quakeml_preferred_only_when_asked() -> None:
    """Without all origins/magnitudes only the preferred ones are written, still valid."""
    body = events_to_quakeml([maizhokunggar()], all_origins=False, all_magnitudes=False)
    assert _validate(io.BytesIO(body))
    (ev,) = read_events(io.BytesIO(body))
    assert [o.creation_info.agency_id for o in ev.origins] == ["cenc"]
    assert [m.mag for m in ev.magnitudes] == [4.5]
    body = events_to_quakeml([maizhokunggar()], all_origins=False, all_magnitudes=True)
    assert _validate(io.BytesIO(body))
    (ev,) = read_events(io.BytesIO(body))
    assert len(ev.origins) == 1 and sorted(m.mag for m in ev.magnitudes) == [4.5, 4.6]


def test_quakeml_parses_with_our_own_fdsn_source() -> None:
    """Another quakealert polling this service reads the preferred origin in km."""
    result = parse_quakeml(events_to_quakeml([maizhokunggar()]), "peer")
    (r,) = result.reports
    assert (r.origin_at, r.latitude, r.depth_km, r.magnitude, r.mag_type) == (
        T0, 29.85, 10.0, 4.5, "M")


def test_deleted_event_is_not_existing() -> None:
    """A deleted event is typed "not existing" in QuakeML and text (how FDSN marks deletions)."""
    gone = replace(maizhokunggar(), status="deleted")
    (ev,) = read_events(io.BytesIO(events_to_quakeml([gone])))
    assert ev.event_type == "not existing"
    assert events_to_text([gone]).splitlines()[1].endswith("|not existing")
    (r,) = parse_fdsn_text(events_to_text([gone]).encode(), "peer").reports
    assert r.status == "deleted"


def test_text_has_spec_header_and_depth_in_km() -> None:
    """format=text: the 14-column 1.2 header, pipes escaped, depth in km, readable by a client."""
    text = events_to_text([maizhokunggar()])
    header, line = text.splitlines()
    assert header == TEXT_HEADER
    assert header.split("|") == [
        "#EventID", "Time", "Latitude", "Longitude", "Depth/km", "Author", "Catalog",
        "Contributor", "ContributorID", "MagType", "Magnitude", "MagAuthor",
        "EventLocationName", "EventType"]
    assert line.split("|") == [
        "qa20241106201900abc123", "2024-11-06T20:19:00.000000", "29.85", "92.25", "10.0",
        "cenc", "quakealert", "cenc", "20241106T201900", "M", "4.5", "cenc",
        "西藏拉萨市墨竹工卡县", "earthquake"]
    (r,) = parse_fdsn_text(text.encode(), "peer").reports
    assert (r.source_id, r.origin_at, r.depth_km, r.magnitude, r.place) == (
        "qa20241106201900abc123", T0, 10.0, 4.5, "西藏拉萨市墨竹工卡县")


def test_text_escapes_pipes_and_newlines() -> None:
    """A place with | or a newline cannot break the column layout."""
    line = events_to_text([replace(maizhokunggar(), place="a|b\nc")]).splitlines()[1]
    assert len(line.split("|")) == 14 and "a/b c" in line


def test_geojson_is_lon_lat_depth_km() -> None:
    """GeoJSON: [lon, lat, depth km], epoch-ms time, every contributor listed."""
    doc = events_to_geojson([maizhokunggar()])
    (f,) = doc["features"]
    assert doc["metadata"]["count"] == 1
    assert f["geometry"]["coordinates"] == [92.25, 29.85, 10.0]
    assert f["properties"]["time"] == int(T0.timestamp() * 1000)
    assert f["properties"]["sources"] == ",cenc,emsc,"
    assert f["properties"]["publicID"] == event_public_id(f["id"])


# -- parameters ------------------------------------------------------------------------------


def test_aliases_mean_the_same_as_long_names() -> None:
    """start/end/minlat/maxlat/minlon/maxlon/lat/lon/minmag/maxmag/magtype are aliases."""
    long = parse_query([("starttime", "2024-01-01"), ("endtime", "2024-12-31T23:59:59.5"),
                        ("minlatitude", "28"), ("maxlatitude", "31"), ("minlongitude", "90"),
                        ("maxlongitude", "93"), ("latitude", "29.6"), ("longitude", "91.1"),
                        ("maxradius", "2"), ("minmagnitude", "4"), ("maxmagnitude", "6"),
                        ("magnitudetype", "M")])
    short = parse_query([("start", "2024-01-01"), ("end", "2024-12-31T23:59:59.5"),
                         ("minlat", "28"), ("maxlat", "31"), ("minlon", "90"), ("maxlon", "93"),
                         ("lat", "29.6"), ("lon", "91.1"), ("maxradius", "2"), ("minmag", "4"),
                         ("maxmag", "6"), ("magtype", "M")])
    assert long == short
    assert long.starttime == datetime(2024, 1, 1, tzinfo=UTC)
    assert long.box == (28.0, 31.0, 90.0, 93.0)


def test_radius_is_degrees() -> None:
    """minradius/maxradius are degrees of arc, converted to km for the store."""
    q = parse_query([("latitude", "29.6"), ("longitude", "91.1"), ("maxradius", "2.5"),
                     ("minradius", "0.5")])
    assert q.maxradius_km == pytest.approx(2.5 * 111.19, rel=1e-4)
    assert q.minradius_km == pytest.approx(0.5 * KM_PER_DEG)


def test_defaults() -> None:
    """No parameters: QuakeML, 204, time order, preferred origin only, from offset 1."""
    q = parse_query([])
    assert (q.format, q.nodata, q.orderby, q.offset, q.limit) == ("xml", 204, "time", 1, None)
    assert not q.all_origins and not q.all_magnitudes


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([("minmagnitude", "4"), ("color", "red")], "unknown parameter 'color'"),
        ([("start", "2024-01-01"), ("starttime", "2024-01-02")], "more than once"),
        ([("starttime", "yesterday")], "is not a time"),
        ([("starttime", "2024-02-30")], "not a valid date"),
        ([("starttime", "2024-02-01"), ("endtime", "2024-01-01")], "starttime must not exceed"),
        ([("minlatitude", "91")], "outside"),
        ([("minlatitude", "31"), ("maxlatitude", "30")], "minlatitude must not exceed"),
        ([("maxradius", "181")], "outside"),
        ([("minradius", "3"), ("maxradius", "2")], "minradius must not exceed"),
        ([("minmagnitude", "nan")], "outside"),
        ([("minmagnitude", "five")], "not a number"),
        ([("minmag", "6"), ("maxmag", "5")], "minmagnitude must not exceed"),
        ([("limit", "0")], "less than 1"),
        ([("offset", "0")], "less than 1"),
        ([("limit", "ten")], "not an integer"),
        ([("orderby", "size")], "orderby"),
        ([("format", "json")], "format"),
        ([("nodata", "500")], "nodata"),
        ([("includeallorigins", "yes")], "not true or false"),
        ([("includearrivals", "true")], "includearrivals"),
        ([("catalog", "usgs")], "catalog"),
        ([("eventid", "x"), ("minmagnitude", "4")], "eventid cannot be combined"),
        ([("minmagnitude", "")], "no value"),
    ],
)
def test_bad_parameters_are_400(items: list[tuple[str, str]], message: str) -> None:
    """Unknown names, repeats, bad values and contradictions are rejected with a reason."""
    with pytest.raises(FdsnError) as err:
        parse_query(items)
    assert err.value.status == 400
    assert message in err.value.detail


def test_wadl_declares_every_parameter_for_obspy() -> None:
    """obspy's WADL parser reads every parameter (style="query") with its type, no warnings."""
    body = build_wadl("http://127.0.0.1:1/fdsnws/event/1/")
    doc = etree.fromstring(body)
    ns = {"w": "http://wadl.dev.java.net/2009/02"}
    params = doc.findall(".//w:method[@name='GET'][@id='query']/w:request/w:param", ns)
    assert {p.get("name") for p in params} == {p.name for p in PARAMS}
    assert {p.get("style") for p in params} == {"query"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parsed = WADLParser(body).parameters
    # obspy keeps nodata out of its parameter list by design.
    assert set(parsed) == {p.name for p in PARAMS} - {"nodata"}
    assert parsed["starttime"]["type"].__name__ == "UTCDateTime"
    assert parsed["maxradius"]["type"] is float and parsed["limit"]["type"] is int
    assert parsed["includeallorigins"]["type"] is bool
    assert parsed["orderby"]["options"] == ["time", "time-asc", "magnitude", "magnitude-asc"]


# -- views -----------------------------------------------------------------------------------


@pytest.fixture
def filled(store: Store) -> Store:
    store.ingest(all_reports(), now=INGESTED_AT)
    return store


@pytest.fixture
async def client(aiohttp_client, settings: Settings, filled: Store):
    return await aiohttp_client(make_app(settings, store=filled))


def text_ids(body: str) -> list[str]:
    lines = body.splitlines()
    assert lines[0] == TEXT_HEADER
    return [line.split("|")[0] for line in lines[1:]]


async def test_version_catalogs_contributors(client) -> None:
    """version is 1.2.0; catalogs names ours; contributors are the sources in the store."""
    r = await client.get("/fdsnws/event/1/version")
    assert r.status == 200 and (await r.text()) == "1.2.0"
    assert r.content_type == "text/plain"
    r = await client.get("/fdsnws/event/1/catalogs")
    doc = etree.fromstring(await r.read())
    assert r.content_type == "application/xml"
    assert [c.text for c in doc.iter("Catalog")] == ["quakealert"]
    doc = etree.fromstring(await (await client.get("/fdsnws/event/1/contributors")).read())
    assert [c.text for c in doc.iter("Contributor")] == ["cenc", "scedc", "usgs"]


async def test_wadl_base_is_configured_never_the_host_header(aiohttp_client, settings,
                                                             filled) -> None:
    """The WADL's resources/@base is ``[cap] base_url`` (else the bind address): a forged Host
    header is not reflected into a document clients cache (issue 9)."""
    from dataclasses import replace

    for sections, expected in (({}, "http://127.0.0.1:8080/fdsnws/event/1/"),
                               ({"cap": {"base_url": "https://qa.example/"}},
                                "https://qa.example/fdsnws/event/1/")):
        client = await aiohttp_client(make_app(replace(settings, sections=sections),
                                               store=filled))
        r = await client.get("/fdsnws/event/1/application.wadl",
                             headers={"Host": "evil.example"})
        doc = etree.fromstring(await r.read())
        base = doc.find("{http://wadl.dev.java.net/2009/02}resources").get("base")
        assert base == expected


async def test_index_page(client) -> None:
    """The service root lists the methods."""
    r = await client.get("/fdsnws/event/1/")
    assert r.status == 200 and "application.wadl" in await r.text()


async def test_default_query_is_quakeml_newest_first(client) -> None:
    """No parameters: every live event as QuakeML, newest first, preferred origin only."""
    r = await client.get(Q)
    assert r.status == 200 and r.content_type == "application/xml"
    cat = read_events(io.BytesIO(await r.read()))
    assert len(cat) == 99
    times = [e.preferred_origin().time for e in cat]
    assert times == sorted(times, reverse=True)
    assert all(len(e.origins) == 1 for e in cat)


async def test_time_window(client) -> None:
    """starttime/endtime select events on or after / on or before, inclusive."""
    expected = {i for i, r in by_id(all_reports()).items()
                if datetime(2008, 10, 6, tzinfo=UTC) <= r.origin_at
                <= datetime(2008, 10, 6, 12, 10, 33, 380000, tzinfo=UTC)}
    r = await client.get(Q, params={"starttime": "2008-10-06",
                                    "endtime": "2008-10-06T12:10:33.38", "format": "text"})
    assert set(text_ids(await r.text())) == expected
    assert len(expected) == 4  # Damxung mainshock and three aftershocks that day


async def test_box_crossing_nothing_and_california(client) -> None:
    """A lat/lon box in the western hemisphere returns the Pico Rivera rows only."""
    r = await client.get(Q, params={"minlat": "33.8", "maxlat": "34.2", "minlon": "-118.3",
                                    "maxlon": "-117.8", "format": "text"})
    assert set(text_ids(await r.text())) == set(by_id(scedc_reports()))


async def test_antimeridian_box_is_empty_204(client) -> None:
    """A box spanning the antimeridian (minlon > maxlon) with no events gives 204, no body."""
    r = await client.get(Q, params={"minlon": "170", "maxlon": "-170"})
    assert r.status == 204 and await r.read() == b""


async def test_radius_in_degrees(client) -> None:
    """latitude/longitude/maxradius (degrees) match obspy's own great-circle distance."""
    lat, lon = 29.65, 91.1  # Lhasa
    expected = {i for i, r in by_id(all_reports()).items()
                if 0.5 <= locations2degrees(lat, lon, r.latitude, r.longitude) <= 1.5}
    r = await client.get(Q, params={"lat": str(lat), "lon": str(lon), "minradius": "0.5",
                                    "maxradius": "1.5", "format": "text"})
    got = set(text_ids(await r.text()))
    assert got == expected and len(expected) >= 5


async def test_depth_and_magnitude(client) -> None:
    """mindepth/maxdepth (km) and minmagnitude/maxmagnitude filter the preferred origin."""
    expected = {i for i, r in by_id(all_reports()).items()
                if r.depth_km is not None and 20 <= r.depth_km <= 40
                and r.magnitude is not None and 5.5 <= r.magnitude <= 6.5}
    r = await client.get(Q, params={"mindepth": "20", "maxdepth": "40", "minmag": "5.5",
                                    "maxmag": "6.5", "format": "text"})
    assert set(text_ids(await r.text())) == expected and expected


async def test_orderby_limit_offset(client) -> None:
    """orderby magnitude, with 1-based offset and limit, pages through the ranking."""
    r = await client.get(Q, params={"orderby": "magnitude", "limit": "3", "format": "text"})
    lines = (await r.text()).splitlines()[1:]
    mags = [float(x.split("|")[10]) for x in lines]
    assert mags[0] == max(r.magnitude for r in all_reports() if r.magnitude is not None)
    assert mags == sorted(mags, reverse=True) and len(mags) == 3
    r2 = await client.get(Q, params={"orderby": "magnitude", "limit": "2", "offset": "2",
                                     "format": "text"})
    assert text_ids(await r2.text()) == [x.split("|")[0] for x in lines[1:3]]
    r3 = await client.get(Q, params={"orderby": "time-asc", "limit": "1", "format": "text"})
    oldest = min(all_reports(), key=lambda x: x.origin_at)
    assert text_ids(await r3.text()) == [new_event_id(oldest)]


async def test_contributor(client) -> None:
    """contributor selects events a given source reported; an unknown one gives 204."""
    r = await client.get(Q, params={"contributor": "cenc", "format": "text"})
    assert set(text_ids(await r.text())) == set(by_id(cenc_reports()))
    assert (await client.get(Q, params={"contributor": "gfz"})).status == 204


async def test_eventid(client) -> None:
    """eventid returns that event, by our id or its publicID; an unknown id gives 204."""
    cenc = cenc_reports()[-1]
    eid = new_event_id(cenc)
    for value in (eid, event_public_id(eid)):
        r = await client.get(Q, params={"eventid": value})
        (ev,) = read_events(io.BytesIO(await r.read()))
        assert str(ev.resource_id) == event_public_id(eid)
        assert ev.preferred_origin().depth == cenc.depth_km * 1000
    assert (await client.get(Q, params={"eventid": "qa-nope"})).status == 204


async def test_updatedafter_sees_new_and_deleted(client, filled: Store) -> None:
    """updatedafter returns events changed since, including deletions as "not existing"."""
    later = INGESTED_AT + timedelta(days=1)
    gone = replace(scedc_reports()[0], status="deleted", updated_at=later)
    new = Report("cenc", "20250107T020400b", datetime(2025, 1, 7, 3, tzinfo=UTC), 28.6, 87.5,
                 10.0, 3.2, "M", place="synthetic test row")
    filled.ingest([gone, new], now=later)
    r = await client.get(Q, params={"updatedafter": "2025-02-01T12:00:00", "format": "text"})
    rows = {x.split("|")[0]: x.split("|")[13] for x in (await r.text()).splitlines()[1:]}
    assert rows == {new_event_id(gone): "not existing", new_event_id(new): "earthquake"}
    r = await client.get(Q, params={"contributor": "scedc", "format": "text"})
    assert new_event_id(gone) not in text_ids(await r.text())


async def test_all_origins_and_magnitude_type(client, filled: Store) -> None:
    """includeallorigins lists every agency's origin; magnitudetype tests that type's value."""
    cenc = next(r for r in cenc_reports() if r.origin_at == T0)
    extra = Report("emsc", "synthetic-1", T0 + timedelta(seconds=2), 29.9, 92.3, 12.0, 4.9,
                   "mb", status="automatic")  # a synthetic second agency for the same quake
    filled.ingest([extra], now=INGESTED_AT + timedelta(hours=1))
    eid = new_event_id(cenc)
    r = await client.get(Q, params={"eventid": eid, "includeallorigins": "true",
                                    "includeallmagnitudes": "true"})
    (ev,) = read_events(io.BytesIO(await r.read()))
    assert sorted(o.creation_info.agency_id for o in ev.origins) == ["cenc", "emsc"]
    assert ev.preferred_origin().creation_info.agency_id == "cenc"  # CENC first in China
    band = {"minmag": "4.8", "maxmag": "4.95", "format": "text"}
    r = await client.get(Q, params={"magnitudetype": "MB", **band})
    assert text_ids(await r.text()) == [eid]  # the emsc mb 4.9, though the preferred is M4.5
    r = await client.get(Q, params=band)
    assert r.status == 204  # without magnitudetype the preferred M4.5 is tested


async def test_eventtype(client) -> None:
    """eventtype matches "earthquake" (wildcards allowed); other types give 204."""
    r = await client.get(Q, params={"eventtype": "earth*", "contributor": "scedc",
                                    "format": "text"})
    assert len(text_ids(await r.text())) == 10
    assert (await client.get(Q, params={"eventtype": "quarry blast"})).status == 204


async def test_geojson(client) -> None:
    """format=geojson gives a FeatureCollection of the selection."""
    r = await client.get(Q, params={"format": "geojson", "contributor": "scedc"})
    doc = json.loads(await r.read())
    assert r.content_type == "application/geo+json"
    assert {f["id"] for f in doc["features"]} == set(by_id(scedc_reports()))


async def test_nodata_404_has_error_body(client) -> None:
    """nodata=404 turns "no match" into a 404 with the FDSN error text."""
    r = await client.get(Q, params={"minmag": "9.5", "nodata": "404"})
    body = await r.text()
    assert r.status == 404 and body.startswith("Error 404: Not Found\n\n")


async def test_bad_request_body_follows_the_spec(client) -> None:
    """400: plain text with the spec's blocks, not problem JSON."""
    r = await client.get(Q + "?minmag=4&color=red")
    body = await r.text()
    assert r.status == 400 and r.content_type == "text/plain"
    blocks = body.split("\n\n")
    assert blocks[0] == "Error 400: Bad Request"
    assert blocks[1] == "unknown parameter 'color'"
    assert blocks[2].startswith("Usage details are available from http")
    assert blocks[3] == f"Request:\n{client.make_url(Q)}?minmag=4&color=red"
    submitted = datetime.fromisoformat(blocks[4].removeprefix("Request Submitted:\n"))
    assert abs(submitted.replace(tzinfo=UTC) - datetime.now(UTC)) < timedelta(minutes=1)
    assert blocks[5] == "Service version:\n1.2.0\n"


async def test_too_many_events_is_413(aiohttp_client, tmp_path, filled: Store) -> None:
    """Above [fdsnws] max_events an unlimited query is 413; with limit it pages."""
    settings = Settings(store_path=tmp_path / "x.sqlite", sections={"fdsnws": {"max_events": 50}})
    client = await aiohttp_client(make_app(settings, store=filled))
    r = await client.get(Q)
    assert r.status == 413 and (await r.text()).startswith("Error 413")
    r = await client.get(Q, params={"limit": "50", "offset": "50", "format": "text"})
    assert len(text_ids(await r.text())) == 50
    r = await client.get(Q, params={"contributor": "cenc"})
    assert r.status == 200


async def test_large_quakeml_is_compressed_for_gzip_clients(client) -> None:
    """Big responses are gzip-encoded when the client accepts it (obspy does)."""
    r = await client.get(Q, params={"includeallorigins": "true"},
                         headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("Content-Encoding") == "gzip"
    assert len(read_events(io.BytesIO(await r.read()))) == 99


async def test_unknown_method_is_404(client) -> None:
    """Paths that are not fdsnws-event methods are 404 (obspy treats them as absent)."""
    assert (await client.get("/fdsnws/event/1/count")).status == 404
    assert (await client.get("/fdsnws/station/1/application.wadl")).status == 404


async def test_repeated_query_sees_writes_from_this_and_other_connections(client, filled: Store
                                                                          ) -> None:
    """Cached results are keyed by the store's change counters: no stale answer after a write."""
    params = {"contributor": "cenc", "format": "text"}
    first = text_ids(await (await client.get(Q, params=params)).text())
    assert text_ids(await (await client.get(Q, params=params)).text()) == first
    mine = Report("cenc", "20250201T000000", datetime(2025, 1, 31, tzinfo=UTC), 29.0, 90.0,
                  8.0, 3.5, "M", place="synthetic test row")
    filled.ingest([mine], now=INGESTED_AT + timedelta(hours=2))
    second = text_ids(await (await client.get(Q, params=params)).text())
    assert second == [new_event_id(mine), *first]
    other = Store.open(filled.path)  # another process (e.g. a second daemon) writing
    try:
        theirs = replace(mine, source_id="20250202T000000",
                         origin_at=datetime(2025, 2, 1, 12, tzinfo=UTC))
        other.ingest([theirs], now=INGESTED_AT + timedelta(hours=3))
    finally:
        other.close()
    third = text_ids(await (await client.get(Q, params=params)).text())
    assert third == [new_event_id(theirs), *second]


def test_response_cache_is_bounded() -> None:
    """The cache keeps the most recently used entries and skips oversized bodies."""
    from quakealert.api.fdsnws import ResponseCache

    cache = ResponseCache(max_entries=2, max_body=10)
    cache.put(("a",), (b"1", "text/plain"))
    cache.put(("b",), (b"2", "text/plain"))
    assert cache.get(("a",)) == (b"1", "text/plain")
    cache.put(("c",), (b"3", "text/plain"))
    assert cache.get(("b",)) is None and cache.get(("a",)) is not None
    cache.put(("d",), (b"x" * 11, "text/plain"))
    assert cache.get(("d",)) is None
