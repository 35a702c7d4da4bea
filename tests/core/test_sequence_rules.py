"""Sequence rules reviewed against the literature (issue 11, docs/sequence-rules.md), each on the
real catalogues: depth in linking, episodes of long-lived swarms, the foreshock distance, the
completeness floor of sparse catalogues, the 双震型 doublet, and every real sequence's published
type."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest

from quakealert.core.classify import (
    DOUBLET,
    FMA,
    MA,
    SWARM,
    Classification,
    classify_sequence,
)
from quakealert.core.geo import distance_km
from quakealert.core.sequences import (
    QuakeSequence,
    SequenceEngine,
    SequenceParams,
    build_sequences,
    episodes,
    events_from_reports,
    wells_coppersmith_length_km,
)
from quakealert.formats.catalog import read_catalog_file
from quakealert.model import Contributor, Event

CATALOGS = Path(__file__).parent.parent / "fixtures" / "catalogs"
P = SequenceParams()


@cache
def catalogue(name: str) -> tuple[Event, ...]:
    return tuple(events_from_reports(read_catalog_file(CATALOGS / name).reports))


@cache
def engine(name: str, params: SequenceParams = P) -> SequenceEngine:
    return build_sequences(catalogue(name), params)


def typed_at(name: str, anchor: str, at: datetime, params: SequenceParams = P
             ) -> tuple[QuakeSequence, Classification]:
    eng = engine(name, params)
    sid = eng.sequence_of(anchor)
    assert sid is not None, anchor
    seq = eng.sequence(sid)
    return seq, classify_sequence(seq, params, at, diagnostics=False)


def end(name: str) -> datetime:
    return max(e.origin_at for e in catalogue(name)) + timedelta(days=90)


# --- every real sequence keeps (or reaches) its published type --------------------------------
PUBLISHED = [
    # (catalogue, anchor event (None: the largest), published type, source)
    ("scedc-ridgecrest-2019.csv", "ci38457511", FMA, "USGS: M6.4 foreshock of the M7.1"),
    ("scedc-cahuilla-swarm-2016-2019.csv", None, SWARM, "Ross et al. 2020, Science 368"),
    ("scedc-bombay-beach-swarm-2016.csv", None, SWARM, "Hauksson et al. 2017, SRL 88"),
    ("ingv-campi-flegrei-2018-2024-fdsn-text.txt", None, SWARM, "INGV bradyseism swarms"),
    ("usgs-santorini-amorgos-swarm-2025.tsv", None, SWARM, "Karakostas et al. 2025"),
    ("santorini-amorgos-2025-relocated-karakostas.csv", None, SWARM, "Karakostas et al. 2025"),
    ("usgs-lhasa-300km-m5-1905-2018.csv", "usp000gjgt", MA, "Damxung 2008 (test_classify)"),
    ("cenc-tibet-events-from-news.csv", "cenc-20241107041900", SWARM, "Tibet EA, §1.8 [V]"),
    ("cenc-export-lhasa-300km-2024.csv", "cenc-sb-20241107041953", SWARM, "Tibet EA, §1.8 [V]"),
    ("cenc-tibet-events-from-news.csv", "cenc-20250107090500", MA, "CEA 主震-余震型, §8.5 [K]"),
]


@pytest.mark.parametrize("name, anchor, published, source", PUBLISHED,
                         ids=[f"{p[0]}:{p[1]}" for p in PUBLISHED])
def test_real_sequence_has_its_published_type(name: str, anchor: str | None, published: str,
                                              source: str) -> None:
    """Typed at the catalogue's end + 90 days, each real sequence gets its published type."""
    if anchor is None:
        anchor = max((e for e in catalogue(name) if e.is_earthquake),
                     key=lambda e: (e.magnitude or -9.0)).id
    _, c = typed_at(name, anchor, end(name))
    assert c.type == published, (source, [r.en for r in c.reasons])


# --- depth in linking ---------------------------------------------------------------------------
def test_deep_events_under_ridgecrest_are_no_members() -> None:
    """ci38499127 (99.8 km deep) and ci38507135 (87.0 km) lie within 1 km of Ridgecrest
    aftershocks at 3-12 km: linked epicentrally, they are kept out by hypocentral distance."""
    name = "scedc-ridgecrest-2019.csv"
    flat = dataclasses.replace(P, link_depth=False)
    main = engine(name).sequence_of("ci38457511")
    for deep in ("ci38499127", "ci38507135"):
        assert engine(name, flat).sequence_of(deep) == engine(name, flat).sequence_of("ci38457511")
        assert engine(name).sequence_of(deep) != main


def test_unknown_depth_never_separates() -> None:
    """An event without depth links by epicentral distance alone."""
    evs = list(catalogue("scedc-bombay-beach-swarm-2016.csv"))
    evs[5] = dataclasses.replace(evs[5], depth_km=None)
    eng = build_sequences(evs)
    assert len(eng.sequence_ids()) == 1


# --- episodes -------------------------------------------------------------------------------------
def test_campi_flegrei_is_typed_on_its_current_episode() -> None:
    """607 days of Campi Flegrei swarms in one linked sequence: its pauses of more than 10 days
    cut it into episodes; the current one starts after the 20-day pause ending 2024-01-10."""
    name = "ingv-campi-flegrei-2018-2024-fdsn-text.txt"
    largest = max(catalogue(name), key=lambda e: e.magnitude or -9.0)
    seq, c = typed_at(name, largest.id, end(name))
    parts = episodes(list(seq.events), P)
    assert len(parts) > 1 and parts[-1][0].origin_at.date().isoformat() == "2024-01-10"
    ep = next(r for r in c.reasons if r.code == "episode")
    assert ep.values["episodes"] == len(parts) and c.n_events == len(parts[-1])
    assert c.type == SWARM and c.largest is not None and c.largest.id == largest.id


def test_cahuilla_never_pauses_so_its_swarm_stays_whole_after_2016() -> None:
    """Cahuilla pauses > 10 days only in 2016: from 2016-08-16 on it is one episode of 12,492
    events, typed swarm at its M4.41 as before (ΔM 0.93, Rq 0.76 a day after)."""
    name = "scedc-cahuilla-swarm-2016-2019.csv"
    largest = max(catalogue(name), key=lambda e: e.magnitude or -9.0)
    seq, c = typed_at(name, largest.id, largest.origin_at + timedelta(days=1))
    assert episodes(list(seq.events), P)[-1][0].origin_at.date().isoformat() == "2016-08-16"
    assert c.type == SWARM and c.delta_m == pytest.approx(0.93)


def test_ridgecrest_is_one_episode() -> None:
    """130 days of Ridgecrest are well inside the M7.1's Gardner-Knopoff window (925 d)."""
    seq = engine("scedc-ridgecrest-2019.csv").sequence(
        engine("scedc-ridgecrest-2019.csv").sequence_of("ci38457511") or "")
    assert len(episodes(list(seq.events), P)) == 1


# --- foreshock distance ----------------------------------------------------------------------------
def test_wells_coppersmith_length() -> None:
    """10^(0.69 M - 3.22) km: 47.8 km for M7.1 (USGS OAF uses it as aftershock radius, §3.5)."""
    assert wells_coppersmith_length_km(7.1) == pytest.approx(47.75, abs=0.01)
    assert wells_coppersmith_length_km(7.0) == pytest.approx(40.7, abs=0.1)


def test_ridgecrest_foreshocks_lie_within_the_m71_rupture_length() -> None:
    """Ridgecrest's 14 foreshocks (the M6.4 among them) are all within 47.8 km of the M7.1."""
    name = "scedc-ridgecrest-2019.csv"
    _, c = typed_at(name, "ci38457511", end(name))
    assert c.type == FMA and "ci38443183" in c.foreshock_ids and len(c.foreshock_ids) == 14
    by_id = {e.id: e for e in catalogue(name)}
    assert c.largest is not None
    for fid in c.foreshock_ids:
        e = by_id[fid]
        assert distance_km(c.largest.latitude, c.largest.longitude, e.latitude,
                           e.longitude) <= wells_coppersmith_length_km(7.1)


def test_a_distant_earlier_event_is_no_foreshock() -> None:
    """The M6.4 moved 60 km away (beyond max(10 km, 47.8 km)) is no foreshock any more."""
    name = "scedc-ridgecrest-2019.csv"
    evs = list(catalogue(name))
    m64 = next(i for i, e in enumerate(evs) if e.id == "ci38443183")
    evs[m64] = dataclasses.replace(evs[m64], latitude=evs[m64].latitude + 0.54)
    eng = build_sequences(evs)
    seq = eng.sequence(eng.sequence_of("ci38457511") or "")
    c = classify_sequence(seq, P, end(name), diagnostics=False)
    assert "ci38443183" not in c.foreshock_ids


# --- completeness floor of sparse catalogues --------------------------------------------------------
def test_sparse_catalogue_floors_the_foreshock_threshold() -> None:
    """USGS M >= 5 list, Damxung 1951 (M7.7): too few events for Mc, so the foreshock threshold
    is the smallest magnitude listed (5.5), not M1 - 3 = 4.7."""
    name = "usgs-lhasa-300km-m5-1905-2018.csv"
    _, c = typed_at(name, "iscgem894960", end(name))
    assert c.mc is None
    fs = next(r for r in c.reasons if r.code == "foreshocks")
    assert "M ≥ 5.5" in fs.en
    _, loose = typed_at(name, "iscgem894960", end(name),
                        dataclasses.replace(P, sparse_mc_floor=False))
    assert "M ≥ 4.7" in next(r for r in loose.reasons if r.code == "foreshocks").en


# --- 双震型 doublet -----------------------------------------------------------------------------------
def _event(eid: str, at: datetime, m: float, lat: float, lon: float) -> Event:
    c = Contributor("usgs", eid, at, lat, lon, 10.0, m, "mww", "reviewed")
    return Event(eid, at, lat, lon, 10.0, m, "mww", "reviewed", "usgs", (c,))


# 2023 Kahramanmaraş, Türkiye: the four largest, USGS Mww (one agency), 2023-02-06 to 02-20
KAHRAMANMARAS = [
    ("a", datetime(2023, 2, 6, 1, 17, 34, tzinfo=UTC), 7.8, 37.23, 37.02),
    ("b", datetime(2023, 2, 6, 1, 28, 15, tzinfo=UTC), 6.7, 37.17, 36.97),
    ("c", datetime(2023, 2, 6, 10, 24, 48, tzinfo=UTC), 7.5, 38.02, 37.20),
    ("d", datetime(2023, 2, 20, 17, 4, 29, tzinfo=UTC), 6.3, 36.11, 36.02),
]


def test_a_pair_of_great_quakes_with_aftershocks_is_a_doublet() -> None:
    """Kahramanmaraş 2023: Mww7.8 and 7.5 hold 98 % of the energy of the four largest (ΔM 0.3):
    双震型 (reported as 双震 in Chinese; [K]). The old rule (ΔM ≤ 0.2, exactly two events within
    1.0 of M1) let it fall through to swarm (Rq 0.72)."""
    seq = QuakeSequence("seq-x", tuple(_event(*row) for row in KAHRAMANMARAS))
    c = classify_sequence(seq, P, datetime(2023, 3, 1, tzinfo=UTC), diagnostics=False)
    assert c.type == DOUBLET and c.delta_m == pytest.approx(0.3)
    share = next(r for r in c.reasons if r.code == "doublet").values["share_two"]
    assert share == pytest.approx(0.98, abs=0.005)
    strict = dataclasses.replace(P, doublet_max_dm=0.2)
    assert classify_sequence(seq, strict, datetime(2023, 3, 1, tzinfo=UTC),
                             diagnostics=False).type == SWARM


def test_two_events_alone_are_a_doublet_only_within_0_2() -> None:
    """Two events always share 100 %: Maizhokunggar's M4.1 then M4.5 (ΔM 0.4) is no doublet
    (the official type was swarm); the 2019-05-26 M4.3/M4.2 pair (ΔM 0.1) is one."""
    name = "cenc-tibet-events-from-news.csv"
    _, pair = typed_at(name, "cenc-20190526094400", end(name))
    assert pair.type == DOUBLET
    _, mz = typed_at(name, "cenc-20241107041900", end(name))
    assert mz.n_events == 2 and mz.type == SWARM


def test_swarms_with_two_equal_largest_stay_swarms() -> None:
    """Bombay Beach's two M4.3 share 64 % of the energy (< 90 %): a swarm, not a doublet."""
    name = "scedc-bombay-beach-swarm-2016.csv"
    largest = max(catalogue(name), key=lambda e: e.magnitude or -9.0)
    _, c = typed_at(name, largest.id, end(name))
    assert c.type == SWARM and c.delta_m is not None and c.delta_m < 0.1
    assert not math.isnan(c.energy_ratio or math.nan)
