"""Batch grouping (build_sequences / SequenceEngine.load) against the event-by-event engine.

The batch path must give identical membership, ids and engine state: the real catalogues with
several parameter sets, and random catalogues (clusters, the poles, the date line, duplicate
ids, deletions, equal times, missing magnitudes), also when single events follow the batch.
"""

import dataclasses
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seqdata import cahuilla, cenc_news, lhasa_usgs, ridgecrest

from quakealert.core.sequences import (
    SequenceEngine,
    SequenceParams,
    _Grid,
    _unit,
    batch_labels,
    build_sequences,
    build_sequences_incremental,
    link_pairs_bruteforce,
)
from quakealert.model import Event

P = SequenceParams()
T0 = datetime(2020, 1, 1, tzinfo=UTC)


def members(engine: SequenceEngine) -> list[tuple[str, tuple[str, ...]]]:
    return sorted((s.id, tuple(e.id for e in s.events)) for s in engine.sequences())


def assert_same(a: SequenceEngine, b: SequenceEngine) -> None:
    assert members(a) == members(b)
    assert len(a) == len(b)
    assert a.sequence_ids() == b.sequence_ids()


@pytest.mark.slow
@pytest.mark.parametrize("params", [P, dataclasses.replace(P, link_gap_d=0.5),
                                    dataclasses.replace(P, window="uhrhammer", link_gap_d=3.0)],
                         ids=["default", "gap-12h", "uhrhammer-3d"])
@pytest.mark.parametrize("name", ["ridgecrest", "cahuilla", "cenc", "lhasa"])
def test_real_catalogues_identical(name, params):
    """Every real catalogue groups identically in one batch and event by event."""
    events = {"ridgecrest": ridgecrest, "cahuilla": cahuilla, "cenc": cenc_news,
              "lhasa": lhasa_usgs}[name]()
    batch = build_sequences(events, params)
    assert_same(batch, build_sequences_incremental(events, params))
    if name in ("cenc", "lhasa"):
        want = sorted(tuple(sorted(g)) for g in link_pairs_bruteforce(events, params))
        assert sorted(tuple(sorted(e.id for e in s.events)) for s in batch.sequences()) == want


@pytest.mark.slow
def test_ridgecrest_then_incremental_events_identical():
    """A batch-loaded engine takes new events, revisions and deletions like an incremental one."""
    evs = sorted(ridgecrest(), key=lambda e: e.origin_at)
    base, rest = evs[:20000], evs[20000:20300]
    params = dataclasses.replace(P, link_gap_d=0.5)  # 150 sequences
    a, b = build_sequences(base, params), build_sequences_incremental(base, params)
    # deletions and moves in small sequences (re-linking a 20,000-event one takes seconds)
    size = {s.id: len(s.events) for s in b.sequences()}
    small = [e for e in base if size[b.sequence_of(e.id) or ""] < 20]
    assert len(small) >= 3
    changes = [*rest, dataclasses.replace(small[0], status="deleted"),
               dataclasses.replace(small[1], latitude=small[1].latitude + 0.5),
               dataclasses.replace(small[-1], latitude=rest[0].latitude,
                                   longitude=rest[0].longitude, origin_at=rest[0].origin_at)]
    for e in changes:
        assert {s for s in a.upsert(e) if a.has(s)} == {s for s in b.upsert(e) if b.has(s)}
    assert_same(a, b)
    lg = max(evs, key=lambda e: e.magnitude or 0)
    start = lg.origin_at - timedelta(days=400)
    assert a.nearby(lg.latitude, lg.longitude, 200, start, lg.origin_at) == b.nearby(
        lg.latitude, lg.longitude, 200, start, lg.origin_at)


@st.composite
def catalogues(draw):
    """Events around a few centres (anywhere, poles and the date line included)."""
    centres = draw(st.lists(st.tuples(
        st.one_of(st.floats(-90, 90), st.sampled_from([-90.0, -89.95, 0.0, 89.95, 90.0])),
        st.one_of(st.floats(-180, 180), st.sampled_from([-180.0, -179.9, 179.9, 180.0]))),
        min_size=1, max_size=3))
    spread = draw(st.sampled_from([0.02, 0.2, 0.6]))
    n = draw(st.integers(1, 60))
    step_h = draw(st.sampled_from([0, 1, 24, 240]))  # 0: every event at the same instant
    out = []
    for k in range(n):
        lat0, lon0 = draw(st.sampled_from(centres))
        lat = min(90.0, max(-90.0, lat0 + draw(st.floats(-spread, spread))))
        lon = lon0 + draw(st.floats(-spread, spread))
        lon = (lon + 180.0) % 360.0 - 180.0
        mag = draw(st.one_of(st.none(), st.floats(-1.0, 8.5).map(lambda m: round(m, 1))))
        at = T0 + timedelta(hours=step_h * draw(st.integers(0, 40)),
                            microseconds=draw(st.sampled_from([0, 0, 1, 999_999])))
        eid = draw(st.sampled_from([f"e{k}", f"e{k}", f"e{k % 7}"]))  # some duplicate ids
        status = draw(st.sampled_from(["reviewed", "reviewed", "reviewed", "deleted"]))
        out.append(Event(id=eid, origin_at=at, latitude=lat, longitude=lon, depth_km=10.0,
                         magnitude=mag, mag_type="ml", status=status, preferred_source="x"))
    return out


PARAMS = st.builds(
    SequenceParams,
    link_gap_d=st.sampled_from([0.5, 3.0, 30.0]),
    min_link_km=st.sampled_from([10.0, 25.0, 1.0]),
    window=st.sampled_from(["gardner-knopoff", "uhrhammer", "gruenthal"]),
    region_radius_km=st.sampled_from([200.0, 60.0]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(catalogues(), PARAMS)
def test_batch_equals_incremental(events, params):
    """Random catalogues: the batch engine equals the event-by-event one, in full."""
    try:
        b = build_sequences_incremental(events, params)
    except ValueError:  # Gruenthal's window is not defined below M -0.036
        return
    a = build_sequences(events, params)
    assert_same(a, b)
    for e in events:
        assert a.sequence_of(e.id) == b.sequence_of(e.id)
    alive = {e.id: e for e in sorted(events, key=lambda e: e.origin_at)}
    kept = [e for e in alive.values() if b.sequence_of(e.id) is not None]
    want = sorted(tuple(sorted(g)) for g in link_pairs_bruteforce(kept, params)) if kept else []
    assert sorted(tuple(sorted(e.id for e in s.events)) for s in a.sequences()) == want


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(catalogues(), catalogues())
def test_batch_then_upserts_equals_incremental(base, more):
    """Events, revisions and deletions after a batch load act as on an incremental engine."""
    a, b = build_sequences(base), build_sequences_incremental(base)
    for e in more:
        a.upsert(e)
        b.upsert(e)
    assert_same(a, b)


def test_batch_labels_empty_and_single():
    assert len(batch_labels(np.empty(0, np.int64), np.empty((0, 3)), np.empty(0), 10)) == 0
    u = _unit(10.0, 20.0).reshape(1, 3)
    assert batch_labels(np.array([5]), u, np.array([0.001]), 10).tolist() == [0]


def test_load_into_a_non_empty_engine_goes_event_by_event():
    """load() on an engine that holds events is upsert of each."""
    a, b, c = cenc_news("maizhokunggar-2024")
    eng = SequenceEngine()
    eng.upsert(a)
    eng.load([b, c])
    assert [len(s.events) for s in eng.sequences()] == [3]


def test_non_finite_coordinates_raise_like_the_engine():
    e = cenc_news("maizhokunggar-2024")[0]
    bad = dataclasses.replace(e, id="bad", latitude=math.nan)
    with pytest.raises(ValueError):
        build_sequences_incremental([e, bad])
    with pytest.raises(ValueError):
        build_sequences([e, bad])


@settings(max_examples=300, deadline=None)
@given(st.floats(-90, 90), st.floats(-180, 180), st.sampled_from([70.0, 200.0, 3.0]))
def test_vector_grid_keys_match_scalar(lat, lon, km):
    """The vectorised cell key of the batch fill is the scalar key of upsert and remove."""
    g = _Grid(km)
    b, i = g.keys(np.array([lat]), np.array([lon]))
    assert (int(b[0]), int(i[0])) == g.key(lat, lon)


def test_unit_vectors_are_bit_identical():
    """load() computes the same unit vectors as _unit, to the last bit."""
    evs = ridgecrest()[:2000] + lhasa_usgs()
    eng = build_sequences(evs)
    for i, e in enumerate(eng._events):
        assert e is not None
        assert np.array_equal(eng._U[i], _unit(e.latitude, e.longitude))
