"""read_catalog_file on the data files, and ReplaySource timing with an injected clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quakealert.config import DEFAULT_SCENARIO, SourceConfig, default_settings
from quakealert.errors import ConfigError
from quakealert.formats.catalog import REPLAY_TAG, is_replay, parse_catalog_bytes, read_catalog_file
from quakealert.model import Report
from quakealert.sources.replay import ReplaySource
from tests.conftest import FIXTURES

REPLAY = FIXTURES / "catalogs"


def test_ridgecrest_scedc_csv() -> None:
    """All 25565 SCEDC Ridgecrest rows; the M7.1 mainshock and M6.4 foreshock are there."""
    result = read_catalog_file(REPLAY / "scedc-ridgecrest-2019.csv")
    assert len(result.reports) == 25565 and result.skipped == []
    ids = {r.source_id: r for r in result.reports}
    main, fore = ids["ci38457511"], ids["ci38443183"]
    assert main.source == "scedc" and main.magnitude == 7.1 and main.mag_type == "mw"
    assert main.origin_at == datetime(2019, 7, 6, 3, 19, 53, 40000, tzinfo=UTC)
    assert fore.magnitude == 6.4 and fore.origin_at.date().isoformat() == "2019-07-04"
    assert {r.event_type for r in result.reports} <= {"earthquake", "quarry blast", "explosion",
                                                      "sonic boom", None}


def test_santorini_comcat_tsv() -> None:
    """The tab-separated ComCat export: 365 rows, status and updated kept."""
    result = read_catalog_file(REPLAY / "usgs-santorini-amorgos-swarm-2025.tsv")
    assert len(result.reports) == 365 and result.skipped == []
    first = result.reports[0]
    assert first.source == "usgs" and first.source_id == "us6000qlfq"
    assert first.origin_at == datetime(2025, 6, 20, 16, 18, 55, 73000, tzinfo=UTC)
    assert (first.magnitude, first.mag_type, first.status) == (4.6, "mww", "reviewed")
    assert first.updated_at == datetime(2025, 9, 2, 21, 23, 39, 40000, tzinfo=UTC)
    assert first.place == "19 km SSW of Amorgós, Greece" and first.agency == "us"
    assert max(r.magnitude or 0 for r in result.reports) == 5.3


def test_lhasa_comcat_csv() -> None:
    """The comma ComCat export around Lhasa includes the 2008 Damxung Mwc6.3 (usp000gjgt)."""
    result = read_catalog_file(REPLAY / "usgs-lhasa-300km-m5-1905-2018.csv")
    assert len(result.reports) == 78
    damxung = {r.source_id: r for r in result.reports}["usp000gjgt"]
    assert damxung.magnitude == 6.3 and damxung.origin_at.date().isoformat() == "2008-10-06"


def test_cenc_news_csv() -> None:
    """CENC CSV: UTC from time_utc, ids from Beijing time; the row without epicentre is
    skipped with its reason."""
    result = read_catalog_file(REPLAY / "cenc-tibet-events-from-news.csv")
    assert len(result.reports) == 11
    assert result.skipped == ["row 7 (id cenc-20241031093200): epicentre missing"]
    ids = {r.source_id: r for r in result.reports}
    m45 = ids["cenc-20241107041900"]
    assert m45.source == "cenc" and m45.status == "reviewed"
    assert m45.origin_at == datetime(2024, 11, 6, 20, 19, tzinfo=UTC)
    assert (m45.latitude, m45.longitude, m45.depth_km, m45.magnitude) == (29.85, 92.25, 10.0, 4.5)
    assert m45.place == "西藏拉萨市墨竹工卡县"
    assert ids["cenc-20250107090500"].magnitude == 6.8


def test_campi_flegrei_fdsn_text_and_relocated_csv() -> None:
    """FDSN text is detected by its header; the split-date CSV by its columns."""
    cf = read_catalog_file(REPLAY / "ingv-campi-flegrei-2018-2024-fdsn-text.txt", source="ingv")
    assert len(cf.reports) == 1207 and cf.reports[0].source == "ingv"
    reloc = read_catalog_file(REPLAY / "santorini-amorgos-2025-relocated-karakostas.csv")
    assert len(reloc.reports) == 4088
    first = reloc.reports[0]
    assert first.origin_at == datetime(2024, 1, 1, 2, 36, 19, 488018, tzinfo=UTC)
    assert (first.magnitude, first.mag_type, first.depth_km) == (1.06, "Ml", 3.0078)


@pytest.mark.parametrize("relpath, count", [
    ("fdsn/quakeml-1.2-usgs-comcat-2013-07-m5.5.xml", 16),
    ("usgs/usgs-geojson-all_hour-2017-12-03.geojson", 8),
    ("cenc/cenc-speedsearch-response-2019-12.json", 10),
    ("emsc/emsc-seismicportal-ws-message-create.json", 1),
    ("fdsn/fdsn-text-seiscomp-sed-sample.txt", 5),
])
def test_wire_formats_are_detected(relpath: str, count: int) -> None:
    """QuakeML, GeoJSON, CENC JSON, an EMSC message and FDSN text are read from files too."""
    assert len(read_catalog_file(FIXTURES / relpath).reports) == count


def test_cenc_jsonp_file_is_detected() -> None:
    """A JSONP-wrapped CENC body saved to a file is still CENC."""
    recorded = (FIXTURES / "cenc/cenc-speedsearch-response-2019-12.json").read_bytes()
    body = b"jQuery1123(" + recorded + b")"
    assert len(parse_catalog_bytes(body).reports) == 10


def test_unknown_csv_is_rejected() -> None:
    """A CSV without time/latitude/longitude columns is not guessed at."""
    from quakealert.errors import ParseError

    with pytest.raises(ParseError):
        parse_catalog_bytes(b"a,b,c\n1,2,3\n")


def test_scenario_file() -> None:
    """The bundled scenario: both CENC speed-report extracts, each quake once (200 rows), with
    exact times, CENC's place (LOCATION_C) and event type kept; the swarm's quakes are there."""
    result = read_catalog_file(DEFAULT_SCENARIO)
    assert result.skipped == [] and len(result.reports) == 200
    ids = [r.source_id for r in result.reports]
    assert len(set(ids)) == 200 and all(i.startswith("cenc-sb-") for i in ids)
    assert [r.origin_at for r in result.reports] == sorted(r.origin_at for r in result.reports)
    by_id = {r.source_id: r for r in result.reports}
    m45 = by_id["cenc-sb-20241107041953"]
    assert m45.origin_at == datetime(2024, 11, 6, 20, 19, 53, tzinfo=UTC)
    assert (m45.latitude, m45.longitude, m45.depth_km, m45.magnitude) == (29.85, 92.25, 10.0, 4.5)
    assert m45.place == "西藏拉萨市墨竹工卡县" and m45.event_type == "earthquake"
    assert m45.source == "cenc" and m45.agency == "CENC" and m45.mag_type == "M"
    # the M4.0 of 11-08 has its exact time here (the news transcription had only "13时")
    assert by_id["cenc-sb-20241108130052"].origin_at == datetime(2024, 11, 8, 5, 0, 52, tzinfo=UTC)
    swarm = [r for r in result.reports if r.place == "西藏拉萨市墨竹工卡县"
             and datetime(2024, 10, 20, tzinfo=UTC) <= r.origin_at < datetime(2025, 1, 16, tzinfo=UTC)]
    assert len(swarm) == 21 and max(r.magnitude or 0 for r in swarm) == 4.5
    # the second extract's rows after 2024-12-31 BJT are there (the merge kept them)
    assert result.reports[-1].origin_at.year == 2025


class Clock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def replay_cfg(path: Path, speed: float, **params: object) -> SourceConfig:
    return SourceConfig(name="replay-test", kind="replay", path=str(path), speed=speed,
                        params=dict(params))


async def test_speed_zero_releases_everything_at_once() -> None:
    """speed 0: the whole scenario on the first fetch, nothing after; virtual now = last origin."""
    clock = Clock()
    src = ReplaySource(replay_cfg(DEFAULT_SCENARIO, 0, source_as="cenc"), clock=clock)
    assert src.virtual_now() == datetime(2015, 5, 17, 23, 22, 8, tzinfo=UTC)
    reports = src.parse(await src.fetch(None, None)).reports
    assert len(reports) == 200 and reports[0].source_id == "cenc-sb-20150518072208"
    assert all(r.source == "cenc" and is_replay(r) for r in reports)
    m45 = next(r for r in reports if r.source_id == "cenc-sb-20241107041953")
    assert m45.place == f"{REPLAY_TAG} 西藏拉萨市墨竹工卡县"
    assert src.done and src.virtual_now() == reports[-1].origin_at
    clock.t += 3600
    assert await src.fetch(None, None) == b""


START = "2024-10-20T00:00:00Z"
T0 = datetime(2024, 10, 20, tzinfo=UTC)


async def test_start_splits_background_from_the_played_swarm() -> None:
    """params.start: rows before it are background (back-fill, all at once, tagged as replay),
    never fetched; the scenario clock starts at ``start`` and the swarm's first quake comes
    (10-20 22:54:33 - 10-20 00:00) / speed seconds after the first fetch."""
    clock = Clock()
    src = ReplaySource(replay_cfg(DEFAULT_SCENARIO, 3600, source_as="cenc", start=START),
                       clock=clock)
    assert src.start == T0 and src.virtual_now() == T0
    background = (await src.backfill(None, T0 - timedelta(days=1826), T0)).reports
    assert src.background_count == len(background) == 166
    assert all(r.origin_at < T0 and is_replay(r) for r in background)
    assert src.total == 34 and await src.fetch(None, None) == b""
    first_s = (datetime(2024, 10, 20, 22, 54, 33, tzinfo=UTC) - T0).total_seconds() / 3600
    assert src.seconds_to_next() == pytest.approx(first_s)
    clock.t += first_s - 0.001
    assert await src.fetch(None, None) == b""
    clock.t += 0.002
    got = src.parse(await src.fetch(None, None)).reports
    assert [r.source_id for r in got] == ["cenc-sb-20241021065433"]
    assert src.virtual_now() == T0 + timedelta(seconds=(first_s + 0.001) * 3600)


def test_bad_start_is_a_config_error() -> None:
    """A start that is not an instant stops start-up with the source named."""
    with pytest.raises(ConfigError, match="replay-test: params.start"):
        ReplaySource(replay_cfg(DEFAULT_SCENARIO, 1, start="last tuesday"))


async def test_run_emits_each_quake_at_its_scaled_time() -> None:
    """ReplaySource.run polls at each row's scaled origin time, not every interval_s: at 60,000x
    with interval_s 60, every swarm quake is fetched with zero lateness on the injected clock."""
    clock = Clock()

    async def sleep(seconds: float) -> None:
        clock.t += seconds

    cfg = SourceConfig(name="replay-test", kind="replay", path=str(DEFAULT_SCENARIO),
                       speed=60_000.0, interval_s=60.0, params={"start": START})
    src = ReplaySource(cfg, clock=clock, sleep=sleep)
    begun = clock.t
    fetched: list[tuple[float, list[Report]]] = []

    async def poll() -> None:
        fetched.append((clock.t - begun, src.parse(await src.fetch(None, None)).reports))

    await src.run(poll, asyncio.Event())
    released = [(t, r) for t, batch in fetched for r in batch]
    assert src.done and len(released) == src.total == 34
    for t, r in released:
        due = (r.origin_at - T0).total_seconds() / 60_000
        assert due <= t + 1e-6 and t - due < 1e-6, (r.source_id, t, due)
    # the M4.5 at 17.85 scenario days: 25.7 s after the start at 60,000x, not a minute late
    t45 = next(t for t, r in released if r.source_id == "cenc-sb-20241107041953")
    assert t45 == pytest.approx((datetime(2024, 11, 6, 20, 19, 53, tzinfo=UTC) - T0)
                                .total_seconds() / 60_000)
    # one poll per distinct release moment (plus the first), never a poll every interval
    assert len(fetched) <= len({r.origin_at for _, r in released}) + 1


async def test_run_keeps_real_time(tmp_path: Path) -> None:
    """Real clock, bounded: three quakes 0.2 s apart (scaled) arrive within 0.15 s of their
    scaled times though interval_s is 60; the whole test takes about half a second."""
    path = tmp_path / "three.csv"
    path.write_text(
        "time,latitude,longitude,depth_km,magnitude,mag_type,source_id,time_bjt,location_c,"
        "event_type\n" + "".join(
            f"2024-11-06T20:{m:02d}:00Z,29.85,92.25,10,4.0,M,cenc-sb-x{m},2024-11-07 04:{m:02d}:00,"
            "西藏拉萨市墨竹工卡县,天然地震\n" for m in (10, 20, 30)), encoding="utf-8")
    cfg = SourceConfig(name="replay-rt", kind="replay", path=str(path), speed=3000.0,
                       interval_s=60.0, params={"start": "2024-11-06T20:00:00Z"})
    src = ReplaySource(cfg)
    loop = asyncio.get_running_loop()
    begun = loop.time()
    seen: list[float] = []

    async def poll() -> None:
        for _ in src.parse(await src.fetch(None, None)).reports:
            seen.append(loop.time() - begun)

    stop = asyncio.Event()
    await asyncio.wait_for(src.run(poll, stop), timeout=5.0)
    assert len(seen) == 3
    for got, due in zip(seen, (0.2, 0.4, 0.6), strict=True):
        assert due - 0.01 <= got <= due + 0.15


async def test_run_stops_when_told() -> None:
    """run returns promptly when the daemon's stop event is set, mid-wait."""
    src = ReplaySource(replay_cfg(DEFAULT_SCENARIO, 1.0, start=START))
    stop = asyncio.Event()

    async def poll() -> None:
        await src.fetch(None, None)

    task = asyncio.create_task(src.run(poll, stop))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=2.0)
    assert not src.done


async def test_source_as_renames_and_skips_travel_once(tmp_path: Path) -> None:
    """source_as overrides the file's naming; skipped rows are reported on the first fetch only."""
    src = ReplaySource(replay_cfg(REPLAY / "cenc-tibet-events-from-news.csv", 0,
                                  source_as="cenc-news"), clock=Clock())
    result = src.parse(await src.fetch(None, None))
    assert len(result.reports) == 11 and {r.source for r in result.reports} == {"cenc-news"}
    assert result.skipped == ["row 7 (id cenc-20241031093200): epicentre missing"]
    assert src.parse(await src.fetch(None, None)).skipped == []


async def test_ridgecrest_replay_in_time_order() -> None:
    """A large file is sorted by origin time and replays idempotently (same ids every run)."""
    clock = Clock()
    runs = []
    for _ in range(2):
        src = ReplaySource(replay_cfg(REPLAY / "scedc-ridgecrest-2019.csv", 86400), clock=clock)
        clock.t += 1
        got = src.parse(await src.fetch(None, None)).reports
        clock.t += 40 * 86400 / 86400  # 40 scenario days
        got += src.parse(await src.fetch(None, None)).reports
        runs.append([r.source_id for r in got])
        times = [r.origin_at for r in got]
        assert times == sorted(times)
    assert runs[0] == runs[1] and 0 < len(runs[0]) < 25565


def test_default_config_is_a_labelled_cenc_replay() -> None:
    """The embedded default replays the real list as CENC, labelled as a replay, with the years
    before the swarm as background, and brings the M4.5 within about a minute."""
    [cfg] = default_settings().sources
    src = ReplaySource(cfg, clock=Clock())
    assert src.total + src.background_count == 200 and cfg.params["source_as"] == "cenc"
    assert "REPLAY" in cfg.params["label"] and src.start == T0
    m45_s = (datetime(2024, 11, 6, 20, 19, 53, tzinfo=UTC) - T0).total_seconds() / cfg.speed
    assert 30 <= m45_s <= 70


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    """A replay path that does not exist fails when the source is built."""
    with pytest.raises(ConfigError):
        ReplaySource(replay_cfg(tmp_path / "nope.csv", 0))
