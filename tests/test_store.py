"""The store: association of several agencies' reports, revisions, deletions, restarts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from quakealert.core.associate import Candidate, associate
from quakealert.model import Report
from quakealert.store.sqlite import Store

T = datetime(2024, 11, 6, 20, 19, 0, tzinfo=UTC)  # Maizhokunggar M4.5, CENC official time
NOW = T + timedelta(minutes=5)


def cenc(status: str = "automatic", mag: float = 4.5, **kw: object) -> Report:
    base = Report("cenc", "CC20241107041900", T, 29.85, 92.25, 10.0, mag, "M", status=status,
                  place="西藏拉萨市墨竹工卡县")
    return replace(base, **kw)  # type: ignore[arg-type]


def usgs(status: str = "reviewed", **kw: object) -> Report:
    base = Report("usgs", "us7000nxyz", T + timedelta(seconds=2.4), 29.79, 92.31, 12.0, 4.6, "mb",
                  status=status, other_ids=("us7000nxyz",))
    return replace(base, **kw)  # type: ignore[arg-type]


def emsc() -> Report:
    return Report("emsc", "20241106_0000223", T + timedelta(seconds=1.1), 29.88, 92.19, 10.0, 4.4,
                  "mb", status="reviewed")


def test_three_agencies_make_one_event(store: Store) -> None:
    """The same quake from CENC, USGS and EMSC is one event, CENC preferred inside China."""
    store.ingest([usgs()], now=NOW)
    store.ingest([emsc()], now=NOW)
    store.ingest([cenc()], now=NOW)
    events = store.events()
    assert len(events) == 1
    e = events[0]
    assert {c.source for c in e.contributors} == {"cenc", "usgs", "emsc"}
    assert e.preferred_source == "cenc"
    assert (e.latitude, e.longitude, e.magnitude, e.mag_type) == (29.85, 92.25, 4.5, "M")


def test_same_source_different_id_is_never_merged(store: Store) -> None:
    """Two CENC reports 3 s apart are two quakes, whatever the distance (§6.3 rule 1)."""
    store.ingest([cenc(), cenc(source_id="CC2", origin_at=T + timedelta(seconds=3))], now=NOW)
    assert store.count_events() == 2


def test_outside_window_is_a_new_event(store: Store) -> None:
    """|Δt| > 16 s or distance > 100 km starts a new event (ComCat rule)."""
    store.ingest([cenc()], now=NOW)
    store.ingest([usgs(origin_at=T + timedelta(seconds=17))], now=NOW)
    store.ingest([emsc().__class__("emsc", "far", T, 31.0, 92.25, 10.0, 4.4, "mb")], now=NOW)
    assert store.count_events() == 3


def test_closest_candidate_wins() -> None:
    """Among two candidate events, the report joins the one with the smaller score."""
    near = Candidate("near", T, 29.85, 92.25, 10.0, 4.5, "M", frozenset({"cenc"}))
    far = Candidate("far", T + timedelta(seconds=9), 30.3, 92.25, 10.0, 4.0, "M",
                    frozenset({"cenc"}))
    match = associate(usgs(), [far, near])
    assert match.event_id == "near"
    assert match.flags == ()


def test_ambiguous_pair_joins_the_closest_and_is_flagged() -> None:
    """Two candidates scoring within 0.1: the closest wins (PDL "most similar"), flagged (issue 11)."""
    a = Candidate("a", T + timedelta(seconds=2), 29.85, 92.25, 10.0, 4.5, "M", frozenset({"x"}))
    b = Candidate("b", T + timedelta(seconds=3.2), 29.85, 92.25, 10.0, 4.5, "M", frozenset({"y"}))
    match = associate(usgs(origin_at=T + timedelta(seconds=2.5)), [b, a])
    assert match.event_id == "a"
    assert "ambiguous" in match.flags[0]


def test_a_shared_id_beats_a_closer_candidate() -> None:
    """A candidate holding the report's id wins over a closer one without it (ids first)."""
    near = Candidate("near", T, 29.85, 92.25, 10.0, 4.5, "M", frozenset({"x"}))
    far = Candidate("far", T + timedelta(seconds=9), 30.3, 92.25, 10.0, 4.0, "M",
                    frozenset({"y"}), frozenset({"us7000abcd"}))
    match = associate(usgs(source_id="us7000abcd", other_ids=()), [near, far])
    assert (match.event_id, match.by_id) == ("far", "us7000abcd")


def test_large_differences_are_flagged_for_review(store: Store) -> None:
    """Pairs beyond 5 s, 30 km or 0.4 (like types) are merged but flagged (EventSanityCheck)."""
    store.ingest([cenc()], now=NOW)
    store.ingest([usgs(origin_at=T + timedelta(seconds=9), latitude=30.2, magnitude=5.1,
                       mag_type="M")], now=NOW)
    (e,) = store.events()
    text = " ".join(e.review_flags)
    assert "origin time differs by 9.0 s" in text
    assert "epicentre differs by" in text
    assert "magnitude differs by 0.6 on like types" in text


def test_automatic_to_official_keeps_history(store: Store) -> None:
    """CENC automatic then official: one event, status reviewed, both versions in its history."""
    r1 = store.ingest([cenc("automatic", mag=4.6)], now=NOW)
    r2 = store.ingest([cenc("reviewed", mag=4.5)], now=NOW + timedelta(minutes=10))
    assert r1.created and r2.revised == r1.created
    (e,) = store.events()
    assert (e.status, e.magnitude) == ("reviewed", 4.5)
    history = store.event_history(e.id)
    assert [(h["change"], h["status"], h["magnitude"]) for h in history] == [
        ("created", "automatic", 4.6), ("official", "reviewed", 4.5)]
    assert "magnitude 4.6 -> 4.5" in history[1]["detail"]


def test_usgs_deletion_marks_event_deleted(store: Store) -> None:
    """A USGS-only event deleted by USGS is marked deleted (hidden by default, kept in history)."""
    store.ingest([usgs(latitude=35.0, longitude=-118.0)], now=NOW)
    result = store.ingest([usgs("deleted", latitude=35.0, longitude=-118.0)], now=NOW)
    assert result.deleted
    assert store.events() == []
    (e,) = store.events(include_deleted=True)
    assert e.status == "deleted"
    assert [h["change"] for h in store.event_history(e.id)] == ["created", "deleted"]


def test_deletion_by_one_agency_keeps_event_others_report(store: Store) -> None:
    """USGS deleting its solution does not delete a quake CENC still reports."""
    store.ingest([cenc("reviewed"), usgs()], now=NOW)
    store.ingest([usgs("deleted")], now=NOW)
    (e,) = store.events()
    assert e.status == "reviewed" and e.preferred_source == "cenc"


def test_usgs_preferred_id_change_is_the_same_event(store: Store) -> None:
    """ComCat switching its preferred id (us -> ci) revises the event instead of duplicating it."""
    first = usgs(latitude=35.7, longitude=-117.5, source_id="us7000abcd",
                 other_ids=("us7000abcd", "ci38457511"))
    store.ingest([first], now=NOW)
    second = replace(first, source_id="ci38457511", magnitude=7.1, mag_type="mw")
    result = store.ingest([second], now=NOW)
    assert store.count_events() == 1 and result.revised


def test_restart_duplicates_nothing(tmp_path: Path) -> None:
    """Re-ingesting the same batch after reopening the database stores no new versions."""
    path = tmp_path / "q.sqlite"
    s = Store.open(path)
    batch = [cenc("reviewed"), usgs(), emsc()]
    s.ingest(batch, now=NOW)
    n_reports = s.count_reports()
    s.close()
    s = Store.open(path)
    result = s.ingest(batch, now=NOW + timedelta(hours=1))
    assert result.unchanged == 3 and not result.changed
    assert (s.count_reports(), s.count_events()) == (n_reports, 1)
    s.close()


def test_events_filters(store: Store) -> None:
    """Time, magnitude and circle filters select exactly the matching events."""
    far = Report("usgs", "us-far", T - timedelta(days=2), 35.0, 100.0, 10.0, 5.0, "mb")
    small = Report("cenc", "CC-small", T - timedelta(days=1), 29.8, 92.3, 8.0, 3.1, "M")
    store.ingest([cenc("reviewed"), far, small], now=NOW)
    assert {e.magnitude for e in store.events(minmagnitude=4.0)} == {4.5, 5.0}
    near = store.events(latitude=29.65, longitude=91.13, maxradius_km=150)
    assert {e.magnitude for e in near} == {4.5, 3.1}
    assert [e.magnitude for e in store.events(starttime=T - timedelta(hours=1))] == [4.5]
    assert [e.magnitude for e in store.events(limit=1)] == [4.5]  # newest first
