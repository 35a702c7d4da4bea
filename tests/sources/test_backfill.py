"""Start-up back-fill: CENC's catalogue query, FDSN window queries, what needs a back-fill."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from quakealert.config import SourceConfig
from quakealert.errors import ConfigError, ParseError, SourceUnavailable
from quakealert.formats.cenc_subao import parse_bjt, parse_subao_html
from quakealert.sources.backfill import (
    BackfillParams,
    BackfillTracker,
    FdsnWindowBackfill,
    Region,
    SourceBackfill,
    backfill_source,
    backfiller_for,
    load_coverage,
    plan_window,
    save_coverage,
)
from quakealert.sources.cenc_catalog import Box, CencCatalogBackfill, subao_form
from quakealert.sources.fdsn import FdsnSource
from tests.conftest import load_fixture
from tests.sources.fake_subao import FakeSubao, page_html, scenario_rows

M45_AT = datetime(2024, 11, 6, 20, 19, 53, tzinfo=UTC)
LHASA = Region(29.65, 91.13, 400.0)
NOW = datetime(2024, 11, 9, tzinfo=UTC)
PARAMS = BackfillParams(latitude=29.65, longitude=91.13)


def test_subao_page_rows_become_cenc_reports() -> None:
    """A catalogue page: Beijing time (month unpadded) to UTC, the scenario's ids, CENC's place
    and event type; the pager's page count."""
    rows = [r for r in scenario_rows() if r["time_bjt"].startswith(("2024-11-07", "2025-01-06"))]
    got = parse_subao_html(page_html(rows, 3, 7).encode())
    assert got.pages == 7 and got.result.skipped == []
    by_id = {r.source_id: r for r in got.result.reports}
    m45 = by_id["cenc-sb-20241107041953"]
    assert m45.origin_at == M45_AT and (m45.latitude, m45.longitude) == (29.85, 92.25)
    assert (m45.depth_km, m45.magnitude, m45.mag_type) == (10.0, 4.5, "M")
    assert m45.place == "西藏拉萨市墨竹工卡县" and m45.event_type == "earthquake"
    assert m45.source == "cenc" and m45.status == "reviewed"
    assert parse_bjt("2025-1-06 00:51:18") == datetime(2025, 1, 6, 0, 51, 18)


def test_subao_bad_row_is_skipped_with_its_reason() -> None:
    """A row with garbage is skipped and named; the others stand."""
    rows = scenario_rows()[:2]
    html = page_html(rows, 1, 1).replace(rows[1]["longitude"], "east", 1)
    got = parse_subao_html(html.encode())
    assert len(got.result.reports) == 1
    assert len(got.result.skipped) == 1
    assert got.result.skipped[0].startswith("row 3 (id ?): not a number in ['east'")


def test_subao_page_without_the_table_is_a_parse_error() -> None:
    """An error page (a portal, a changed site) is a ParseError naming the source, not []."""
    with pytest.raises(ParseError, match="no table #earthquake_subao_guid_catalog_data"):
        parse_subao_html("<html><body>系统维护中</body></html>".encode(), "cenc")
    assert parse_subao_html(b"").result.reports == []


def test_subao_form_fields() -> None:
    """The form: Beijing dates, magnitude floor, the region's box, the page."""
    form = subao_form(datetime(2019, 11, 7), datetime(2020, 2, 5), min_magnitude=3.0,
                      box=Box(26.05, 33.25, 87.0, 95.26), page=2)
    assert form["PAGEID"] == "earthquake_subao" and form["catalog_PAGENO"] == "2"
    assert (form["begtime"], form["endtime"], form["minM"]) == ("2019-11-07", "2020-02-05", "3")
    assert (form["minLat"], form["maxLat"], form["minLon"], form["maxLon"]) == (
        "26.05", "33.25", "87.00", "95.26")


def cenc_cfg(url: str) -> SourceConfig:
    return SourceConfig(name="cenc", kind="cenc", url="http://127.0.0.1:9/unused",
                        timeout_s=5.0, params={"catalog_url": url})


async def test_cenc_backfill_pages_through_five_years(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    """Five years before the M4.5 (to where the 48 h live list begins), chunk by chunk and page
    by page: exactly the list's quakes in the box and window, each once."""
    fake = FakeSubao()
    server = await aiohttp_server(fake.app())
    end = M45_AT + timedelta(hours=48, seconds=1)
    start = end - timedelta(days=365.25 * 5)
    box = Box(*LHASA.box())
    client = CencCatalogBackfill(cenc_cfg(str(server.make_url("/datashare/report.shtml"))),
                                 box=box, min_magnitude=3.0, chunk_days=365.0)
    async with aiohttp.ClientSession() as session:
        got = await client.backfill(session, start, end)
    stop = end - timedelta(hours=48)
    expected = {f"cenc-sb-{r['time_bjt'].replace('-', '').replace(' ', '').replace(':', '')}"
                for r in scenario_rows()
                if start <= datetime.fromisoformat(r["time"]) < stop
                and box.min_lat <= float(r["latitude"]) <= box.max_lat
                and box.min_lon <= float(r["longitude"]) <= box.max_lon}
    ids = [r.source_id for r in got.reports]
    assert len(ids) == len(set(ids)) and set(ids) == expected
    assert "cenc-sb-20241107041953" in expected and len(expected) > 40
    assert client.chunks_done == 5  # 5 years less 48 h in 365-day chunks
    assert max(int(f["catalog_PAGENO"]) for f in fake.forms) >= 2  # the pager was followed
    assert got.reports == sorted(got.reports, key=lambda r: r.origin_at)


async def test_cenc_backfill_failure_is_recorded_not_raised(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    """A 503 from the catalogue: the back-fill record says failed with the reason; no raise."""
    fake = FakeSubao(fail_with=503)
    server = await aiohttp_server(fake.app())
    client = CencCatalogBackfill(cenc_cfg(str(server.make_url("/datashare/report.shtml"))),
                                 box=Box(*LHASA.box()), min_magnitude=3.0, chunk_days=90.0)
    record = SourceBackfill("cenc", NOW - timedelta(days=30), NOW)
    stored: list[object] = []

    async def store(name: str, parsed: object) -> None:
        stored.append(parsed)

    async with aiohttp.ClientSession() as session:
        with pytest.raises(SourceUnavailable):
            await client.backfill(session, record.start, record.end)
        await backfill_source(client, record, session, store)
    assert record.state == "failed" and "HTTP 503" in (record.error or "") and stored == []
    tracker = BackfillTracker({"cenc": record})
    assert tracker.state == "failed" and not tracker.complete
    assert tracker.to_json()["sources"]["cenc"]["error"].startswith("SourceUnavailable")


def test_fdsn_window_urls_are_chunked_with_the_region() -> None:
    """FDSN: one starttime/endtime query per chunk, minmagnitude and the region's box."""
    cfg = SourceConfig(name="usgs-fdsn", kind="fdsn",
                       url="https://earthquake.usgs.gov/fdsnws/event/1/query")
    bf = FdsnWindowBackfill(cfg, region=LHASA, min_magnitude=3.0, chunk_days=400.0)
    urls = bf.urls(datetime(2019, 11, 9, tzinfo=UTC), NOW)
    assert len(urls) == 5
    assert "starttime=2019-11-09T00:00:00" in urls[0] and "endtime=2020-12-13T00:00:00" in urls[0]
    assert "endtime=2024-11-09T00:00:00" in urls[-1]
    assert all("minmagnitude=3.0" in u and "format=text" in u and "minlatitude=26.053" in u
               and "updatedafter" not in u for u in urls)


async def test_fdsn_window_backfill_reads_every_chunk(aiohttp_server) -> None:  # type: ignore[no-untyped-def]
    """Against a local node: the chunk with data is parsed, 204 chunks are empty, all are asked."""
    body = load_fixture("fdsn/fdsn-text-usgs-rows.txt")
    asked: list[str] = []

    async def query(request: web.Request) -> web.Response:
        asked.append(request.query["starttime"])
        if len(asked) == 1:
            return web.Response(body=body, content_type="text/plain")
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/fdsnws/event/1/query", query)
    server = await aiohttp_server(app)
    cfg = SourceConfig(name="usgs-fdsn", kind="fdsn",
                       url=str(server.make_url("/fdsnws/event/1/query")), timeout_s=5.0)
    source = FdsnSource(cfg)
    bf = backfiller_for(source, PARAMS, LHASA)
    assert isinstance(bf, FdsnWindowBackfill)
    async with aiohttp.ClientSession() as session:
        got = await bf.backfill(session, NOW - timedelta(days=365), NOW)
    expected = source.parse(body)
    assert len(asked) == 5 and [r.source_id for r in got.reports] == [
        r.source_id for r in expected.reports] and got.reports


def test_backfiller_registry() -> None:
    """CENC and FDSN/EMSC nodes can back-fill; USGS summary feeds and replays cannot;
    nothing can without a region."""
    class Src:
        def __init__(self, kind: str) -> None:
            self.config = SourceConfig(name=kind, kind=kind, url="http://127.0.0.1:9/x")

    assert isinstance(backfiller_for(Src("cenc"), PARAMS, LHASA), CencCatalogBackfill)
    assert isinstance(backfiller_for(Src("emsc"), PARAMS, LHASA), FdsnWindowBackfill)
    assert backfiller_for(Src("usgs"), PARAMS, LHASA) is None
    assert backfiller_for(Src("cenc"), PARAMS, None) is None


@pytest.mark.parametrize(("covered", "last_ok", "expected"), [
    (None, None, (NOW - timedelta(days=1826.25), NOW)),  # first start: five years
    ((NOW - timedelta(days=1900), NOW - timedelta(days=2)), NOW - timedelta(hours=2), None),
    # a three-day outage: from an hour before the last success
    ((NOW - timedelta(days=1900), NOW - timedelta(days=9)), NOW - timedelta(days=3),
     (NOW - timedelta(days=3, hours=1), NOW)),
    # the record holds less than five years (years was raised): all again
    ((NOW - timedelta(days=400), NOW - timedelta(hours=1)), NOW, (NOW - timedelta(days=1826.25), NOW)),
])
def test_plan_window(covered, last_ok, expected) -> None:  # type: ignore[no-untyped-def]
    """What needs a back-fill at start-up, from the record and the source's last success."""
    assert plan_window(PARAMS, NOW, covered, last_ok) == expected


def test_coverage_record_round_trips(tmp_path: Path) -> None:
    """The record is written atomically and read back; a corrupt one means back-fill afresh."""
    path = tmp_path / "var" / "backfill.json"
    span = (NOW - timedelta(days=1826.25), NOW)
    save_coverage(path, {"cenc": span})
    assert load_coverage(path) == {"cenc": span}
    path.write_text("{not json", encoding="utf-8")
    assert load_coverage(path) == {}
    assert load_coverage(tmp_path / "missing.json") == {}


@pytest.mark.parametrize(("section", "message"), [
    ({"yaers": 5}, "unknown keys: yaers"),
    ({"years": 0}, "years must be a positive number"),
    ({"latitude": 29.6}, "set both latitude and longitude"),
    ({"latitude": 99.0, "longitude": 91.0}, "latitude must be a number"),
    ({"enabled": "yes"}, "enabled must be true or false"),
])
def test_bad_backfill_table_is_a_config_error(section, message) -> None:  # type: ignore[no-untyped-def]
    """[backfill] mistakes stop start-up with the key named."""
    with pytest.raises(ConfigError, match=message):
        BackfillParams.from_section(section)


def test_region_box_holds_the_circle() -> None:
    """The box around Lhasa (400 km) spans ±3.6° of latitude and ±4.1° of longitude."""
    min_lat, max_lat, min_lon, max_lon = LHASA.box()
    assert max_lat - LHASA.latitude == pytest.approx(400 / 111.195)
    assert LHASA.latitude - min_lat == pytest.approx(max_lat - LHASA.latitude)
    assert LHASA.longitude - min_lon == pytest.approx(4.14, abs=0.01)
    assert max_lon - LHASA.longitude == pytest.approx(LHASA.longitude - min_lon)


def test_deploy_example_backfills_around_lhasa() -> None:
    """The production example names the region, so its CENC and FDSN sources can back-fill."""
    from quakealert.config import load_settings
    from quakealert.sources import make_source

    settings = load_settings(Path(__file__).resolve().parents[2] / "deploy" / "quakealert.toml")
    params = BackfillParams.from_section(settings.section("backfill"))
    region = Region(29.65, 91.13, 400.0)
    assert (params.latitude, params.longitude, params.radius_km) == (29.65, 91.13, 400.0)
    kinds = {s.name: type(backfiller_for(make_source(s), params, region)).__name__
             for s in settings.sources}
    assert kinds["cenc"] == "CencCatalogBackfill" and kinds["emsc"] == "FdsnWindowBackfill"
    assert kinds["geofon"] == "FdsnWindowBackfill" and kinds["usgs"] == "NoneType"
