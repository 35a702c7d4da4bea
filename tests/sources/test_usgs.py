"""parse_geojson on USGS summary and detail feeds; the summary-feed window choice."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from quakealert.errors import ParseError
from quakealert.formats.geojson import parse_geojson
from quakealert.sources.usgs import pick_feed_url
from tests.conftest import load_fixture

ALL_HOUR = load_fixture("usgs/usgs-geojson-all_hour-2017-12-03.geojson")


def test_summary_feed() -> None:
    """all_hour: 8 features with status, updated (epoch ms) and net kept."""
    reports = parse_geojson(ALL_HOUR, "usgs").reports
    assert len(reports) == 8
    first = reports[0]
    assert first.source == "usgs" and first.source_id == "nc72934355"
    assert first.origin_at == datetime(2017, 12, 3, 23, 13, 10, 490000, tzinfo=UTC)
    assert first.updated_at == datetime(2017, 12, 3, 23, 14, 49, 220000, tzinfo=UTC)
    assert (first.latitude, first.longitude, first.depth_km) == (40.3699989, -122.1271667, 7.93)
    assert (first.magnitude, first.mag_type, first.status) == (1.93, "md", "automatic")
    assert first.place == "17km ESE of Anderson, CA" and first.agency == "nc"
    assert first.event_type == "earthquake" and first.other_ids == ()
    philippines = reports[-1]
    assert philippines.source_id == "us1000bknk" and philippines.status == "reviewed"
    assert philippines.magnitude == 4.7 and philippines.mag_type == "mb"
    assert philippines.depth_km == 114.05
    assert [r.status for r in reports].count("automatic") == 7


def test_detail_dingri_2025() -> None:
    """The Dingri (Tingri) Mww7.1 detail feed: one Feature, reviewed, updated later."""
    [r] = parse_geojson(load_fixture("usgs/usgs-geojson-detail-us6000pi9w-dingri-2025.geojson"),
                        "usgs").reports
    assert r.source_id == "us6000pi9w"
    assert r.origin_at == datetime(2025, 1, 7, 1, 5, 16, 824000, tzinfo=UTC)
    assert (r.latitude, r.longitude, r.depth_km) == (28.639, 87.3608, 10.0)
    assert (r.magnitude, r.mag_type, r.status) == (7.1, "mww", "reviewed")
    assert r.place == "2025 Southern Tibetan Plateau Earthquake"
    assert r.updated_at == datetime(2025, 1, 9, 17, 5, 21, 636000, tzinfo=UTC)


def test_detail_ci41182664() -> None:
    """A small Californian event's detail feed."""
    [r] = parse_geojson(load_fixture("usgs/usgs-geojson-detail-ci41182664.geojson"), "usgs").reports
    assert r.source_id == "ci41182664" and (r.magnitude, r.mag_type) == (0.53, "ml")
    assert r.depth_km == 15.81 and r.place == "10 km SSW of Idyllwild, CA"


def test_other_ids_and_deleted_status() -> None:
    """`ids` lists the quake under other networks' codes; status "deleted" is kept."""
    doc = json.loads(ALL_HOUR)
    feature = doc["features"][2]
    feature["properties"]["ids"] = ",ci37822583,us1000abcd,"
    feature["properties"]["status"] = "deleted"
    [r] = parse_geojson(json.dumps(feature).encode(), "usgs").reports
    assert r.other_ids == ("us1000abcd",) and r.status == "deleted"


def test_bad_feature_skipped_rest_kept() -> None:
    """A feature with latitude 123 or without time is skipped with a reason."""
    doc = json.loads(ALL_HOUR)
    doc["features"][0]["geometry"]["coordinates"][1] = 123.0
    del doc["features"][1]["properties"]["time"]
    result = parse_geojson(json.dumps(doc).encode(), "usgs")
    assert len(result.reports) == 6
    assert result.skipped == ["row 1 (id nc72934355): latitude 123.0 out of range",
                              "row 2 (id nc72934350): unreadable feature (time missing)"]


@pytest.mark.parametrize("body", [
    ALL_HOUR[: len(ALL_HOUR) // 2],  # truncated
    b"{not json",
    b"<!DOCTYPE html><html><body>Error</body></html>",
    b'{"type": "Topology"}',
    b"[1, 2, 3]",
])
def test_unreadable_body_is_parse_error(body: bytes) -> None:
    """Truncated or invalid JSON, an HTML page, or JSON that is not GeoJSON: ParseError."""
    with pytest.raises(ParseError):
        parse_geojson(body, "usgs")


NOW = datetime(2024, 11, 7, 0, 0, tzinfo=UTC)
FEED = "https://earthquake.usgs.gov/earthquakes/feed/v1.0/summary/all_hour.geojson"


@pytest.mark.parametrize("gap, expected", [
    (None, "all_hour"),
    (timedelta(minutes=1), "all_hour"),
    (timedelta(minutes=58), "all_day"),  # within the margin of the hour window
    (timedelta(hours=5), "all_day"),
    (timedelta(days=3), "all_week"),
    (timedelta(days=20), "all_month"),
    (timedelta(days=90), "all_month"),
])
def test_long_outage_reads_a_longer_feed(gap: timedelta | None, expected: str) -> None:
    """After an outage longer than the feed's window the longer feed is read."""
    since = None if gap is None else NOW - gap
    assert pick_feed_url(FEED, since, NOW) == FEED.replace("all_hour", expected)


def test_feed_choice_keeps_level_and_other_urls() -> None:
    """The magnitude level is kept; a non-summary URL is never rewritten."""
    url = FEED.replace("all_hour", "2.5_day")
    assert pick_feed_url(url, NOW - timedelta(days=2), NOW).endswith("/2.5_week.geojson")
    other = "http://127.0.0.1:8080/feed.geojson"
    assert pick_feed_url(other, NOW - timedelta(days=2), NOW) == other
