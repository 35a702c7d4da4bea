"""read_catalog_file on the data files, and ReplaySource timing with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quakealert.config import DEFAULT_SCENARIO, SourceConfig, default_settings
from quakealert.errors import ConfigError
from quakealert.formats.catalog import REPLAY_TAG, is_replay, parse_catalog_bytes, read_catalog_file
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
    """The bundled scenario: three CENC reports with stable ids; the assumption is recorded."""
    result = read_catalog_file(DEFAULT_SCENARIO)
    assert result.skipped == []
    assert [(r.source_id, r.magnitude) for r in result.reports] == [
        ("cenc-20241031093200", 4.1), ("cenc-20241107041900", 4.5), ("cenc-20241108130000", 4.0)]
    assert [r.origin_at for r in result.reports] == [
        datetime(2024, 10, 31, 1, 32, tzinfo=UTC), datetime(2024, 11, 6, 20, 19, tzinfo=UTC),
        datetime(2024, 11, 8, 5, 0, tzinfo=UTC)]
    text = DEFAULT_SCENARIO.read_text(encoding="utf-8")
    assert "ASSUMED: epicentre not published" in text and "HOUR ONLY" in text


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
    assert src.virtual_now() == datetime(2024, 10, 31, 1, 32, tzinfo=UTC)
    reports = src.parse(await src.fetch(None, None)).reports
    assert [r.source_id for r in reports] == [
        "cenc-20241031093200", "cenc-20241107041900", "cenc-20241108130000"]
    assert all(r.source == "cenc" and is_replay(r) for r in reports)
    assert reports[1].place == f"{REPLAY_TAG} 西藏拉萨市墨竹工卡县"
    assert src.done and src.virtual_now() == datetime(2024, 11, 8, 5, 0, tzinfo=UTC)
    clock.t += 3600
    assert await src.fetch(None, None) == b""


async def test_speed_3600_releases_on_scenario_time() -> None:
    """speed 3600 (one scenario hour per second): event k comes (origin_k - origin_0)/3600 s
    after the first fetch; virtual_now follows the clock."""
    clock = Clock()
    src = ReplaySource(replay_cfg(DEFAULT_SCENARIO, 3600), clock=clock)
    first = src.parse(await src.fetch(None, None)).reports
    assert [r.source_id for r in first] == ["cenc-20241031093200"]
    # 10-31 01:32 -> 11-06 20:19 is 162 h 47 min: 9767 s of real time at 3600x
    gap_s = (datetime(2024, 11, 6, 20, 19, tzinfo=UTC)
             - datetime(2024, 10, 31, 1, 32, tzinfo=UTC)).total_seconds() / 3600
    clock.t += gap_s - 0.01
    assert await src.fetch(None, None) == b""
    assert src.virtual_now() < datetime(2024, 11, 6, 20, 19, tzinfo=UTC)
    clock.t += 0.02
    second = src.parse(await src.fetch(None, None)).reports
    assert [r.source_id for r in second] == ["cenc-20241107041900"]
    assert second[0].source == "cenc"  # no source_as: the file's own naming (CENC CSV -> cenc)
    clock.t += 30 * 60 / 3600  # 30 scenario minutes later
    drift = src.virtual_now() - datetime(2024, 11, 6, 20, 49, tzinfo=UTC)
    assert abs(drift) < timedelta(seconds=40)
    clock.t += 100
    third = src.parse(await src.fetch(None, None)).reports
    assert [r.source_id for r in third] == ["cenc-20241108130000"] and src.done


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
    """The embedded default replays the scenario as CENC, labelled as a replay."""
    [cfg] = default_settings().sources
    src = ReplaySource(cfg, clock=Clock())
    assert src.total == 3 and cfg.params["source_as"] == "cenc"
    assert "REPLAY" in cfg.params["label"]


def test_missing_file_is_config_error(tmp_path: Path) -> None:
    """A replay path that does not exist fails when the source is built."""
    with pytest.raises(ConfigError):
        ReplaySource(replay_cfg(tmp_path / "nope.csv", 0))
