"""Properties: input order, far-away events and time shifts do not change the sequences."""

import dataclasses
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from seqdata import cenc_news, ridgecrest

from quakealert.core.classify import classify_events
from quakealert.core.sequences import SequenceParams, build_sequences

P = SequenceParams()
# a small real slice: the first 120 Ridgecrest events (June background, several sequences)
# plus the Maizhokunggar swarm
BASE = sorted(ridgecrest(), key=lambda e: e.origin_at)[:120] + cenc_news("maizhokunggar-2024")
NOW = max(e.origin_at for e in BASE)


def summary(events, now):
    return sorted((s.id, c.type, c.final, len(s.events), c.delta_m)
                  for s, c in classify_events(events, P, now))


REFERENCE = summary(BASE, NOW)


@settings(max_examples=15, deadline=None)
@given(st.permutations(BASE))
def test_input_order_does_not_matter(events):
    """Any permutation of the input gives the same sequences, ids and types."""
    assert summary(events, NOW) == REFERENCE


@settings(max_examples=15, deadline=None)
@given(st.floats(-60, 60), st.floats(-170, 170), st.integers(0, len(BASE) - 1))
def test_far_event_changes_no_type(lat, lon, k):
    """An event > 250 km from every member is its own sequence; other types are unchanged."""
    from quakealert.core.geo import distance_km

    src = BASE[k]
    if min(distance_km(lat, lon, e.latitude, e.longitude) for e in BASE) < 250:
        return
    far = dataclasses.replace(src, id="far-away", latitude=lat, longitude=lon)
    got = [row for row in summary(BASE + [far], NOW) if row[0] != "seq-far-away"]
    assert got == REFERENCE


@settings(max_examples=10, deadline=None)
@given(st.integers(-10**9, 10**9))
def test_time_shift_changes_nothing(shift_s):
    """Shifting every origin time and ``now`` by the same amount changes nothing."""
    d = timedelta(seconds=shift_s)
    moved = [dataclasses.replace(e, origin_at=e.origin_at + d,
                                 contributors=tuple(dataclasses.replace(c, origin_at=c.origin_at + d)
                                                    for c in e.contributors))
             for e in BASE]
    assert summary(moved, NOW + d) == REFERENCE


def test_engine_is_order_independent_on_membership():
    """Feeding the engine newest first gives the same components as oldest first."""
    a = build_sequences(BASE)
    b = build_sequences([])
    for e in reversed(BASE):
        b.upsert(e)
    assert [sorted(x.id for x in s.events) for s in a.sequences()] == [
        sorted(x.id for x in s.events) for s in b.sequences()]
