"""obspy's own FDSN Client, with default settings, against the running service on 127.0.0.1."""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from fdsnws_data import INGESTED_AT, all_reports

from quakealert.api.app import make_app
from quakealert.config import Settings
from quakealert.core.associate import new_event_id
from quakealert.formats.fdsn_out import event_public_id
from quakealert.formats.fdsntext import parse_fdsn_text
from quakealert.model import Report
from quakealert.store.sqlite import Store

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # obspy 1.5 uses a deprecated importlib API
    from obspy import UTCDateTime
    from obspy.clients.fdsn import Client
    from obspy.clients.fdsn.header import FDSNBadRequestException, FDSNNoDataException
    from obspy.geodetics import locations2degrees

MAIZHOKUNGGAR = datetime(2024, 11, 6, 20, 19, tzinfo=UTC)
# A synthetic second agency's view of the 2024-11-06 M4.5 so one event has two origins.
SECOND_VIEW = Report("emsc", "synthetic-1", MAIZHOKUNGGAR + timedelta(seconds=2), 29.9, 92.3,
                     12.0, 4.7, "mb", status="automatic")


@dataclass
class Server:
    url: str
    reports: list[Report]


def _serve(app: web.Application, ready: threading.Event, box: dict, stop: threading.Event
           ) -> None:
    async def main() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["port"] = runner.addresses[0][1]
        ready.set()
        try:
            while not stop.is_set():
                await asyncio.sleep(0.05)
        finally:
            await runner.cleanup()

    asyncio.run(main())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The quakealert app on a free port in a background thread, stopped after the module."""
    tmp: Path = tmp_path_factory.mktemp("fdsnws")
    store = Store.open(tmp / "q.sqlite")
    reports = all_reports()
    store.ingest(reports, now=INGESTED_AT)
    store.ingest([SECOND_VIEW], now=INGESTED_AT + timedelta(hours=1))
    # Rate limiting is the auth module's concern; keep it out of these functional checks.
    settings = Settings(store_path=tmp / "q.sqlite", sections={"ratelimit": {"enabled": False}})
    app = make_app(settings, store=store)
    ready, stop, box = threading.Event(), threading.Event(), {}
    thread = threading.Thread(target=_serve, args=(app, ready, box, stop), daemon=True)
    thread.start()
    assert ready.wait(10), "server did not start"
    yield Server(f"http://127.0.0.1:{box['port']}", reports)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
    store.close()


@pytest.fixture(scope="module")
def client(server: Server) -> Client:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # discovery must not warn (e.g. about WADL params)
        c = Client(server.url, timeout=20)
    return c


def ids(catalog) -> set[str]:
    return {str(e.resource_id) for e in catalog}


def expected(server: Server, keep) -> set[str]:
    return {event_public_id(new_event_id(r)) for r in server.reports if keep(r)}


def test_client_discovers_the_event_service(client: Client) -> None:
    """Client() with defaults finds the event service (and no dataselect/station)."""
    assert set(client.services) >= {"event"}
    assert "dataselect" not in client.services and "station" not in client.services
    assert {"starttime", "maxradius", "eventtype", "updatedafter"} <= set(
        client.services["event"])


def test_time_window(client: Client, server: Server) -> None:
    """get_events(starttime, endtime) returns exactly the events in the window."""
    t0, t1 = datetime(2008, 10, 6, tzinfo=UTC), datetime(2008, 10, 9, tzinfo=UTC)
    cat = client.get_events(starttime=UTCDateTime(t0), endtime=UTCDateTime(t1))
    assert ids(cat) == expected(server, lambda r: t0 <= r.origin_at <= t1)
    assert len(cat) == 5  # the 2008 Damxung Mw6.3 and four M5+ aftershocks


def test_box(client: Client, server: Server) -> None:
    """A latitude/longitude box selects exactly the events inside it."""
    cat = client.get_events(minlatitude=29.5, maxlatitude=30.5, minlongitude=87.5,
                            maxlongitude=92.5)
    assert ids(cat) == expected(
        server, lambda r: 29.5 <= r.latitude <= 30.5 and 87.5 <= r.longitude <= 92.5)
    assert len(cat) > 10


def test_radius_and_magnitude(client: Client, server: Server) -> None:
    """latitude/longitude/maxradius (degrees) plus minmagnitude match a direct computation."""
    lat, lon = 29.65, 91.1  # Lhasa

    def keep(r: Report) -> bool:
        return (locations2degrees(lat, lon, r.latitude, r.longitude) <= 1.2
                and r.magnitude is not None and r.magnitude >= 5.2)

    cat = client.get_events(latitude=lat, longitude=lon, maxradius=1.2, minmagnitude=5.2)
    assert ids(cat) == expected(server, keep) and len(cat) >= 3


def test_everything_combined(client: Client, server: Server) -> None:
    """Time, box, radius and magnitude filters together, newest first."""
    t0 = datetime(1990, 1, 1, tzinfo=UTC)
    lat, lon = 30.0, 88.5

    def keep(r: Report) -> bool:
        return (r.origin_at >= t0 and 29.0 <= r.latitude <= 31.0
                and locations2degrees(lat, lon, r.latitude, r.longitude) <= 1.0
                and r.magnitude is not None and 5.0 <= r.magnitude <= 5.5)

    cat = client.get_events(starttime=UTCDateTime(t0), minlatitude=29.0, maxlatitude=31.0,
                            latitude=lat, longitude=lon, maxradius=1.0, minmagnitude=5.0,
                            maxmagnitude=5.5)
    assert ids(cat) == expected(server, keep) and len(cat) >= 5
    times = [e.preferred_origin().time for e in cat]
    assert times == sorted(times, reverse=True)


def test_event_detail_all_origins(client: Client) -> None:
    """eventid + includeallorigins: both agencies' origins, depth in metres, preferred is CENC."""
    eid = new_event_id(next(r for r in all_reports() if r.origin_at == MAIZHOKUNGGAR))
    (ev,) = client.get_events(eventid=eid, includeallorigins=True, includeallmagnitudes=True)
    assert sorted(o.creation_info.agency_id for o in ev.origins) == ["cenc", "emsc"]
    pref = ev.preferred_origin()
    assert (pref.creation_info.agency_id, pref.depth, ev.preferred_magnitude().mag) == (
        "cenc", 10000.0, 4.5)
    assert sorted(m.mag for m in ev.magnitudes) == [4.5, 4.7]


def test_limit_and_orderby(client: Client, server: Server) -> None:
    """limit + orderby=magnitude returns the largest events first."""
    cat = client.get_events(orderby="magnitude", limit=3)
    mags = [e.preferred_magnitude().mag for e in cat]
    top = sorted((r.magnitude for r in server.reports if r.magnitude is not None), reverse=True)
    assert mags == top[:3]


def test_no_data_and_bad_request(client: Client) -> None:
    """No match raises FDSNNoDataException (204); includearrivals=True is a 400 with our text."""
    with pytest.raises(FDSNNoDataException):
        client.get_events(minmagnitude=9.5)
    with pytest.raises(FDSNBadRequestException, match="includearrivals"):
        client.get_events(includearrivals=True)


def test_text_format_to_file(client: Client, server: Server, tmp_path: Path) -> None:
    """format=text saved by obspy reads back through quakealert's own FDSN text parser."""
    out = tmp_path / "events.txt"
    client.get_events(contributor="scedc", format="text", filename=str(out))
    reports = parse_fdsn_text(out.read_bytes(), "peer").reports
    scedc = [r for r in server.reports if r.source == "scedc"]
    assert {r.source_id for r in reports} == {new_event_id(r) for r in scedc}
    assert sorted(r.depth_km for r in reports) == sorted(r.depth_km for r in scedc)
