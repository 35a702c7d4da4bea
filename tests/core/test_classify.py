"""Typing real sequences: Maizhokunggar, Ridgecrest, Cahuilla, Damxung."""

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from seqdata import cahuilla, cenc_news, lhasa_usgs, ridgecrest

from quakealert.core.classify import (
    FMA,
    MA,
    SWARM,
    UNDETERMINED,
    classify_events,
    classify_in,
    classify_sequence,
    sequence_to_json,
)
from quakealert.core.sequences import QuakeSequence, SequenceParams, build_sequences
from quakealert.model import Contributor

P = SequenceParams()


def typed(events, now, event_id):
    for seq, c in classify_events(events, P, now):
        if any(e.id == event_id for e in seq.events):
            return seq, c
    raise AssertionError(f"{event_id} not in any sequence")


@pytest.fixture(scope="module")
def rc():
    return ridgecrest()


@pytest.fixture(scope="module")
def rc_final(rc):
    now = max(e.origin_at for e in rc)
    return typed(rc, now, "ci38457511")


def test_maizhokunggar_is_a_swarm():
    """CENC's three events: ΔM 0.4, Rq 0.70, swarm, with the context line (§1.8)."""
    bg = cenc_news()  # the other rows lie > 200 km away
    _, c = typed(bg, datetime(2024, 11, 9, tzinfo=UTC), cenc_news("maizhokunggar-2024")[1].id)
    assert c.type == SWARM and not c.final
    assert c.delta_m == pytest.approx(0.4)
    assert c.energy_ratio == pytest.approx(0.70, abs=0.005)
    assert c.largest_magnitude == 4.5
    codes = [r.code for r in c.reasons]
    assert {"delta-m", "rq", "counts", "mc", "swarm", "provisional"} <= set(codes)
    assert all(r.en and r.zh for r in c.reasons)
    assert "震群型" in next(r.zh for r in c.reasons if r.code == "swarm")
    # context: only the M4.1 of 10-31 precedes it within 200 km in this file; the M4.5 counts too
    assert c.context is not None and c.context.count == 2 and c.context.rank == 1
    assert c.context.largest_before is not None and c.context.largest_before.magnitude == 4.1
    assert "震中周边200千米内近5年来发生3级以上地震共2次" in c.context.zh
    assert c.forecast is not None and c.forecast.kind == "swarm-rate"
    assert not c.forecast.public


def test_maizhokunggar_first_30_minutes_no_type():
    """Within 30 min of the M4.5 there is no type and no numeric forecast."""
    m45 = cenc_news("maizhokunggar-2024")[1]
    _, c = typed(cenc_news(), m45.origin_at + timedelta(minutes=10), m45.id)
    assert c.type == UNDETERMINED and any(r.code == "provisional" for r in c.reasons)
    assert any(r.code == "too-early" for r in c.reasons)
    assert c.forecast is not None and c.forecast.kind == "none" and not c.forecast.rows


def test_ridgecrest_is_fma(rc_final):
    """M6.4 ci38443183 then M7.1 ci38457511: foreshock-mainshock-aftershock, final at 97 d."""
    _, c = rc_final
    assert c.type == FMA and c.final
    assert c.largest.id == "ci38457511" and c.largest_magnitude == 7.1
    assert "ci38443183" in c.foreshock_ids
    assert c.delta_m == pytest.approx(0.7)
    fs = next(r for r in c.reasons if r.code == "foreshocks")
    assert "M6.4" in fs.en and "前震" in fs.zh
    assert c.forecast is not None and c.forecast.regime == "CAL-SCSN" and c.forecast.bayesian
    assert c.stats.b is not None and c.stats.b.n > 1000
    assert c.stats.omori is not None and 0.5 <= c.stats.omori.p <= 2.0


@pytest.mark.parametrize("hours", [1.0, 12.0, 20.0])
def test_ridgecrest_before_the_m71_is_not_fma(rc, hours):
    """Between the M6.4 and the M7.1 the M6.4 sequence is not FMA (undetermined in 24 h)."""
    m64 = next(e for e in rc if e.id == "ci38443183")
    _, c = typed(rc, m64.origin_at + timedelta(hours=hours), "ci38443183")
    assert c.largest.id == "ci38443183"
    assert c.type in (MA, UNDETERMINED) and c.type != FMA
    assert c.forecast is not None and c.forecast.kind == "rj"


def test_ridgecrest_m64_after_24h_sees_its_own_m40_foreshock(rc):
    """33 h after the M6.4 its M3.98 foreshock (30 min earlier, 0.3 km) makes it FMA already.

    This is the issue's foreshock rule applied to real data (M >= M1 - 3 = 3.4 within 30 d).
    """
    m64 = next(e for e in rc if e.id == "ci38443183")
    _, c = typed(rc, m64.origin_at + timedelta(hours=33), "ci38443183")
    assert c.type == FMA and c.foreshock_ids == ("ci38443095",)


def test_a_larger_event_retypes(rc):
    """Adding the M7.1 turns the M6.4's mainshock into a foreshock."""
    m71 = next(e for e in rc if e.id == "ci38457511")
    _, before = typed(rc, m71.origin_at - timedelta(seconds=1), "ci38443183")
    _, after = typed(rc, m71.origin_at + timedelta(days=2), "ci38443183")
    assert before.largest.id == "ci38443183" and after.largest.id == "ci38457511"
    assert after.type == FMA and "ci38443183" in after.foreshock_ids


def test_cahuilla_mixed_criteria_give_swarm():
    """ΔM 0.63 says MA, Rq 0.55 says swarm: the cautious swarm applies, and the reasons say so."""
    evs = cahuilla()
    _, c = typed(evs, max(e.origin_at for e in evs), "ci38245496")
    assert c.type == SWARM
    assert c.delta_m == pytest.approx(0.63)
    assert c.energy_ratio == pytest.approx(0.55, abs=0.01)
    mixed = next(r for r in c.reasons if r.code == "mixed")
    assert mixed.values == {"by_delta_m": MA, "by_rq": SWARM, "applied": SWARM}
    assert "cautious" in mixed.en and "谨慎" in mixed.zh


def test_damxung_2008_is_mainshock_aftershock():
    """usp000gjgt Mwc6.3 and four M5-5.5 aftershocks: mainshock-aftershock."""
    seq, c = typed(lhasa_usgs(), datetime(2009, 6, 1, tzinfo=UTC), "usp000gjgt")
    assert c.type == MA and c.final
    assert len(seq.events) == 5 and c.largest.id == "usp000gjgt"
    assert c.delta_m == pytest.approx(0.8)
    assert c.forecast is not None and c.forecast.regime == "ANSR-DEEPCON"


def test_one_agency_only():
    """Members another agency reported are listed but kept out of ΔM and Rq."""
    evs = cenc_news("maizhokunggar-2024")
    m41 = evs[0]
    usgs_only = dataclasses.replace(
        m41, id="us-extra", origin_at=m41.origin_at + timedelta(days=2), magnitude=5.0,
        preferred_source="usgs",
        contributors=(dataclasses.replace(m41.contributors[0], source="usgs", magnitude=5.0),),
    )
    seq, c = typed(evs + [usgs_only], datetime(2024, 11, 9, tzinfo=UTC), "us-extra")
    assert c.agency == "cenc" and c.n_events == 4 and c.n_agency == 3
    assert c.largest_magnitude == 4.5 and c.type == SWARM
    js = sequence_to_json(seq, c, datetime(2024, 11, 9, tzinfo=UTC))
    extra = next(m for m in js["members"] if m["id"] == "us-extra")
    assert extra["in_classification"] is False and extra["magnitude"] is None


def test_agency_priority_prefers_cenc_over_usgs():
    """With both CENC and USGS magnitudes the CENC ones are used, never mixed."""
    evs = []
    for e in cenc_news("maizhokunggar-2024"):
        usgs = Contributor("usgs", "us" + e.id, e.origin_at, e.latitude, e.longitude, 10.0,
                           e.magnitude + 0.3, "mb", "reviewed")
        evs.append(dataclasses.replace(e, contributors=(usgs, *e.contributors)))
    _, c = typed(evs, datetime(2024, 11, 9, tzinfo=UTC), evs[0].id)
    assert c.agency == "cenc" and c.largest_magnitude == 4.5


def test_json_shape():
    """sequence_to_json carries the fields the CLI and API promise."""
    now = datetime(2024, 11, 9, tzinfo=UTC)
    engine = build_sequences(cenc_news("maizhokunggar-2024"))
    seq = engine.sequences()[0]
    js = sequence_to_json(seq, classify_in(engine, seq.id, now), now)
    for key in ("id", "type", "final", "n_events", "largest", "delta_m", "energy_ratio",
                "reasons", "context", "stats", "forecast", "members"):
        assert key in js
    assert set(js["largest"]) >= {"id", "time", "latitude", "longitude", "depth_km",
                                  "magnitude", "mag_type"}
    assert js["largest"]["time"] == "2024-11-06T20:19:00Z"


def test_events_after_now_are_ignored():
    """Classifying at a time before the M4.0 sees only two events."""
    evs = cenc_news("maizhokunggar-2024")
    seq = QuakeSequence("seq-x", tuple(sorted(evs, key=lambda e: e.origin_at)))
    c = classify_sequence(seq, P, datetime(2024, 11, 7, 12, tzinfo=UTC))
    assert c.n_events == 2 and c.delta_m == pytest.approx(0.4)
