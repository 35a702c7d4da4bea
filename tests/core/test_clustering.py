"""Membership: GK windows, linking, the incremental engine, revisions and deletions, ZBZ."""

import dataclasses
from datetime import timedelta

import pytest
from seqdata import cahuilla, cenc_news, ridgecrest

from quakealert.core.sequences import (
    SequenceEngine,
    SequenceParams,
    build_sequences,
    gk_distance_km,
    gk_time_d,
    gruenthal_distance_km,
    link_pairs_bruteforce,
    link_radius_km,
    params_from_section,
    uhrhammer_distance_km,
)
from quakealert.core.stats import zbz_families
from quakealert.errors import ConfigError

P = SequenceParams()


def test_gk_window_at_m45():
    """GK window at M4.5 is 34.7 km / 77.1 d (reference §0, §2.6)."""
    assert gk_distance_km(4.5) == pytest.approx(34.7, abs=0.05)
    assert gk_time_d(4.5) == pytest.approx(77.1, abs=0.05)


@pytest.mark.parametrize(
    ("m", "km", "s"), [(5.0, 39.994475, 12_416_915.98), (6.6, 63.107358, 77_021_813.94)]
)
def test_gk_window_seismostats_values(m, km, s):
    """GK windows reproduce SeismoStats' test values at M5.0 and M6.6 (§7.1)."""
    assert gk_distance_km(m) == pytest.approx(km, rel=1e-6)
    assert gk_time_d(m) * 86400 == pytest.approx(s, rel=1e-6)


def test_other_windows_seismostats_values():
    """Gruenthal and Uhrhammer distances at M5.0 match SeismoStats (§7.1)."""
    assert gruenthal_distance_km(5.0) == pytest.approx(56.62752, rel=1e-6)
    assert uhrhammer_distance_km(5.0) == pytest.approx(20.005355, rel=1e-6)


def test_link_radius_floor_and_cap():
    """The radius is at least 10 km and at most the 200 km region."""
    assert link_radius_km(0.0, P) == 10.0
    assert link_radius_km(None, P) == 10.0
    assert link_radius_km(9.5, dataclasses.replace(P, region_radius_km=100.0)) == 100.0


def test_maizhokunggar_three_events_are_one_sequence():
    """The week-long pause between the M4.1 and M4.5 stays inside the 30-day gap."""
    engine = build_sequences(cenc_news("maizhokunggar-2024"))
    assert [len(s.events) for s in engine.sequences()] == [3]


def test_other_cenc_rows_are_far_away():
    """Every non-Maizhokunggar CENC row lies more than 200 km from the M4.5 and stays apart."""
    from quakealert.core.geo import distance_km

    others = [e for e in cenc_news() if not e.place or "墨竹工卡" not in e.place]
    assert all(distance_km(29.85, 92.25, e.latitude, e.longitude) > 200 for e in others)
    engine = build_sequences(cenc_news())
    mz = engine.sequence_of(cenc_news("maizhokunggar-2024")[0].id)
    assert len(engine.sequence(mz).events) == 3


def test_gap_longer_than_30_days_splits():
    """Two events 31 days apart at the same place are two sequences; 29 days, one."""
    e = cenc_news("maizhokunggar-2024")[1]
    far = dataclasses.replace(e, id="late", origin_at=e.origin_at + timedelta(days=31))
    near = dataclasses.replace(e, id="soon", origin_at=e.origin_at + timedelta(days=29))
    assert len(build_sequences([e, far]).sequences()) == 2
    assert len(build_sequences([e, near]).sequences()) == 1


def test_engine_matches_bruteforce_on_a_ridgecrest_slice():
    """The grid engine and the O(n^2) rule give identical membership."""
    evs = sorted(ridgecrest(), key=lambda e: e.origin_at)[:1500:3]
    # spread them out so that several sequences form
    params = dataclasses.replace(P, link_gap_d=0.5)
    engine = build_sequences(evs, params)
    got = sorted(sorted(e.id for e in s.events) for s in engine.sequences())
    want = sorted(sorted(g) for g in link_pairs_bruteforce(evs, params))
    assert len(want) > 5
    assert got == want


def test_sequence_id_is_first_member():
    """The id is "seq-" + the earliest member's id."""
    evs = cenc_news("maizhokunggar-2024")
    engine = build_sequences(reversed(evs))
    assert engine.sequence_ids() == [f"seq-{min(evs, key=lambda e: e.origin_at).id}"]


def test_deletion_splits_and_revision_moves():
    """Deleting the bridging event splits a sequence; a revised location re-links."""
    a, b, c = cenc_news("maizhokunggar-2024")
    # put c 50 km north of a: it links only through a bridge event between them
    c2 = dataclasses.replace(c, latitude=a.latitude + 0.45, longitude=a.longitude)
    bridge = dataclasses.replace(b, latitude=a.latitude + 0.22, longitude=a.longitude)
    eng = SequenceEngine()
    eng.upsert_many([a, bridge, c2])
    assert len(eng.sequences()) == 1
    touched = eng.upsert(dataclasses.replace(bridge, status="deleted"))
    assert len(eng.sequences()) == 2
    assert any(not eng.has(t) for t in touched) or len(touched) >= 2
    moved = dataclasses.replace(c2, latitude=a.latitude, longitude=a.longitude)
    eng.upsert(moved)
    assert len(eng.sequences()) == 1 and len(eng) == 2


def test_magnitude_revision_changes_radius():
    """A revised magnitude changes the link radius (and membership) of the event."""
    a, b, _ = cenc_news("maizhokunggar-2024")
    far = dataclasses.replace(b, latitude=a.latitude + 0.3)  # ~33 km north
    eng = SequenceEngine()
    eng.upsert_many([a, far])
    assert len(eng.sequences()) == 1  # M4.5 window 34.7 km
    eng.upsert(dataclasses.replace(far, magnitude=2.0))
    eng.upsert(dataclasses.replace(a, magnitude=2.0))
    assert len(eng.sequences()) == 2


def test_zbz_links_maizhokunggar():
    """All three Maizhokunggar events form one strong-link family (η < 10^-5)."""
    evs = sorted(cenc_news("maizhokunggar-2024"), key=lambda e: e.origin_at)
    t0 = evs[0].origin_at
    z = zbz_families([(e.origin_at - t0).total_seconds() / 86400 for e in evs],
                     [e.latitude for e in evs], [e.longitude for e in evs],
                     [e.magnitude for e in evs])
    assert z is not None and z.families == 1 and z.largest_family_share == 1.0


def test_cahuilla_is_one_sequence():
    """The 2016-2019 Cahuilla swarm never pauses 30 days: one sequence of its 12,588
    earthquakes; the one quarry blast (qb) of the file is no member (issue 11)."""
    events = cahuilla()
    assert sum(e.event_type == "qb" for e in events) == 1
    engine = build_sequences(events)
    assert [len(s.events) for s in engine.sequences()] == [12588]


def test_params_from_section():
    """[sequences] keys set fields; unknown keys are rejected."""
    p = params_from_section({"region_radius_km": 150, "network_mc": {"cenc": 2.5},
                             "agency_priority": ["usgs", "cenc"]})
    assert p.region_radius_km == 150.0 and p.mc_floor("cenc") == 2.5
    assert p.agency_priority == ("usgs", "cenc")
    with pytest.raises(ConfigError):
        params_from_section({"radius": 1})
