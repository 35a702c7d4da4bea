"""Sequence membership: events linked by space-time windows into typed-to-be sequences.

Rule (reference/seismology.md §8.1): two events i, j are linked when |t_i - t_j| <= ``link_gap_d``
(default 30 d, so swarms with week-long pauses stay one sequence) and their hypocentral distance
(Reasenberg 1985; depth difference less a 2 km depth error, epicentral when a depth is unknown)
is at most max(r_i, r_j), with r = max(``min_link_km``, d_GK(M)) capped at ``region_radius_km``
(Gardner & Knopoff 1974 distance window, §2.6). A sequence is a connected component of links.
Known non-earthquakes are no members. ``episodes`` splits a sequence that lasts longer than its
largest event's window into episodes (docs/sequence-rules.md).
The rule is symmetric, so sequences do not depend on the order in which events arrive.

``SequenceEngine`` keeps the components incrementally over a latitude-band grid (one new event
costs a few cell look-ups, not a scan of the catalogue) and handles revisions and deletions.
``build_sequences`` groups a whole catalogue at once with numpy (``batch_labels``: a sorted sweep
over 3-D cubes of unit vectors and a union of the links found) and hands the result to an engine,
which then takes single events incrementally as usual. Both paths test a pair with the same
arithmetic (``_dot3``), so they give identical membership.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import numpy as np

from quakealert.core.geo import EARTH_RADIUS_KM, KM_PER_DEG, chord_for_km
from quakealert.errors import ConfigError, NotFound
from quakealert.model import Contributor, Event, Report

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US_PER_DAY = 86_400_000_000
_RECENT = 64  # candidates checked first, nearest in time


@dataclass(frozen=True, slots=True)
class SequenceParams:
    """Every threshold of membership, typing, statistics, context and forecast ([sequences]).

    Defaults and citations are from reference/seismology.md; values it marks [K] (not checked
    against the primary source) are exactly the fields a deployment may need to change.
    """

    # §8.1 / DESIGN: region 200 km around the event; windows inside it
    region_radius_km: float = 200.0
    min_link_km: float = 10.0  # §3.5 USGS OAF radiusMin 10 km, §8.1 "at least 10 km"
    link_gap_d: float = 30.0  # §8.1 time floor of 30 d for swarms (Maizhokunggar pause ~7 d)
    window: str = "gardner-knopoff"  # §2.6: gardner-knopoff | gruenthal | uhrhammer
    # Depth in linking (issue 11): hypocentral, not epicentral, distance against the radius, as
    # Reasenberg (1985, JGR 90) links on hypocentral distance and Zaliapin & Ben-Zion (2013a,
    # JGR 118) offer it (§2.5 use_depth); less the depth error Reasenberg allows (2 km, ZMAP
    # default [K]). An unknown depth never separates two events.
    link_depth: bool = True
    link_depth_error_km: float = 2.0  # [K] Reasenberg (1985) / ZMAP depth error
    # Episodes (issue 11): a sequence longer than max(episode_min_span_d, its largest event's
    # Gardner & Knopoff (1974) time window) is split at every pause longer than
    # episode_pause_d, and the current episode is typed: a long-lived volcanic or geothermal
    # swarm field is not one sequence for years.
    episode_min_span_d: float = 365.0  # §3.5 USGS OAF: 365-day look-back for sequences [V]
    episode_pause_d: float = 10.0  # §2.7 Reasenberg (1985) maximum look-ahead tau_max [K]
    grid_km: float = 70.0  # index cell; performance only, never changes membership
    # §2.5 Zaliapin & Ben-Zion (2013a) nearest-neighbour diagnostic
    zbz_df: float = 1.6  # [V] fractal dimension of epicentres
    zbz_b: float = 1.0  # [V] b in eta = t r^df 10^(-b m)
    zbz_log10_eta0: float = -5.0  # [K] strong-link threshold (southern California, m >= 2)
    zbz_max_events: int = 500  # largest events kept for the O(n^2) diagnostic (cost)
    zbz_min_share: float = 0.5  # M1's family must hold this share of members to "agree"
    # §1.3 周惠兰 et al. (1980) thresholds [K]
    swarm_max_dm: float = 0.6
    isolated_min_dm: float = 2.4
    swarm_max_rq: float = 0.80
    isolated_min_rq: float = 0.999
    # §8.2 evidence rules (proposals in the reference; configurable)
    no_type_min: float = 30.0  # no type within 30 min of M1 (USGS waits 30 min, §3.5)
    undetermined_h: float = 24.0  # "undetermined" for 24 h unless the swarm rule holds
    swarm_min_events: int = 3  # members with M >= M1 - swarm_within_m
    swarm_within_m: float = 1.0
    swarm_min_span_h: float = 12.0
    # §1.1 note 2 双震型: "最大地震与次大地震的震级之差小于等于0.5", the two releasing > 90 %
    # of the energy [K, popular sources]; magnitudes from one agency (§6.2)
    doublet_max_dm: float = 0.5
    doublet_min_share: float = 0.9  # energy share of the two largest events
    # With only two events their share is 1 by construction and says nothing: §8.2's
    # provisional pair rule (2 events only, ΔM <= 0.2) applies instead
    doublet_pair_max_dm: float = 0.2
    isolated_min_age_d: float = 7.0
    isolated_complete_m: float = 2.5  # isolated only if Mc <= M1 - 2.5
    final_age_d: float = 90.0  # Tibet: largest aftershock usually within 3 months (§1.6)
    foreshock_window_d: float = 30.0
    foreshock_within_m: float = 3.0  # foreshock if M >= max(Mc, M1 - 3)
    # §3.5: within max(10 km, Wells & Coppersmith (1994, BSSA 84) "All" rupture length
    # 10^(0.69 M - 3.22) km) of M1, the USGS OAF aftershock radius; USGS: "we have never seen
    # a foreshock more than 10 km away from its mainshock" (§3.5 [V])
    foreshock_min_km: float = 10.0
    # Without an Mc estimate (fewer than mc_min_events), the foreshock threshold is floored at
    # the smallest magnitude the agency lists in the sequence (issue 11)
    sparse_mc_floor: bool = True
    agency_priority: tuple[str, ...] = ("cenc", "usgs", "emsc")
    network_mc: tuple[tuple[str, float], ...] = ()  # per-agency floor of Mc, e.g. (("cenc", 2.5),)
    # §4.2 Mc by maximum curvature (Wiemer & Wyss 2000) + 0.2 (Woessner & Wiemer 2005)
    mc_bin: float = 0.1
    mc_correction: float = 0.2
    mc_min_events: int = 30  # SeismoStats warns below 30 events (§4.2)
    b_min_events: int = 50  # §4.2: no sequence b-value shown below N = 50 (proposal)
    omori_min_events: int = 50  # §4.4: fit Omori-Utsu only with >= 50 events
    # §1.7 CENC context line
    context_radius_km: float = 200.0
    context_years: float = 5.0
    context_min_magnitude: float = 3.0
    # §3, §8.3 forecast
    forecast_min_magnitude: float = 4.0
    forecast_magnitudes: tuple[float, ...] = (3.0, 4.0, 5.0, 6.0)
    forecast_durations_d: tuple[float, ...] = (1.0, 7.0, 30.0)
    forecast_no_number_min: float = 30.0  # §8.4: no numeric forecast within 30 min
    bayes_min_h: float = 3.0  # §3.5 seq_spec_min_lag = PT3H
    a_min: float = -4.5  # §3.1 USGS a grid
    a_max: float = -0.5
    a_step: float = 0.01
    # Page et al. (2016) Mc(t) = F*Mmain - G - H*log10(t) (WORLD values, §3.2)
    page_f: float = 0.5
    page_g: float = 0.25
    page_h: float = 1.0
    swarm_rate_window_d: float = 7.0  # §8.3: rate over the last 3-7 days
    # regime rules: (regime, min_lat, max_lat, min_lon, max_lon), first match wins
    regime_boxes: tuple[tuple[str, float, float, float, float], ...] = (
        ("CAL-SCSN", 32.0, 42.0, -125.0, -114.0),
        ("ANSR-DEEPCON", 18.0, 54.0, 73.0, 135.0),
    )
    default_regime: str = "ANSR-SHALCON"
    public_forecast: bool = False  # DESIGN: in China only the authorities publish forecasts

    def mc_floor(self, agency: str) -> float | None:
        """The configured network completeness floor of one agency, if any."""
        for name, mc in self.network_mc:
            if name == agency:
                return float(mc)
        return None


def params_from_section(section: Mapping[str, Any]) -> SequenceParams:
    """Build parameters from the raw ``[sequences]`` config table; unknown keys are errors."""
    known = {f.name: f for f in fields(SequenceParams)}
    unknown = set(section) - set(known)
    if unknown:
        raise ConfigError(f"[sequences] unknown keys: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for key, raw in section.items():
        default = getattr(SequenceParams(), key)
        try:
            if isinstance(default, bool):
                values[key] = bool(raw)
            elif isinstance(default, int):
                values[key] = int(raw)
            elif isinstance(default, float):
                values[key] = float(raw)
            elif isinstance(default, str):
                values[key] = str(raw)
            elif key == "network_mc":
                items = raw.items() if isinstance(raw, Mapping) else raw
                values[key] = tuple((str(k), float(v)) for k, v in items)
            elif key == "regime_boxes":
                values[key] = tuple(
                    (str(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4])) for r in raw
                )
            elif key == "agency_priority":
                values[key] = tuple(str(v) for v in raw)
            else:
                values[key] = tuple(float(v) for v in raw)
        except (TypeError, ValueError, IndexError) as err:
            raise ConfigError(f"[sequences] {key}: invalid value {raw!r} ({err})") from err
    params = SequenceParams(**values)
    if params.window not in WINDOWS:
        raise ConfigError(f"[sequences] window must be one of {', '.join(WINDOWS)}")
    if params.link_gap_d <= 0 or params.min_link_km <= 0 or params.grid_km <= 0:
        raise ConfigError("[sequences] link_gap_d, min_link_km and grid_km must be > 0")
    return params


# §2.6 window distances in km ([V] SeismoStats / hmtk distance_time_windows.py)
def gk_distance_km(magnitude: float) -> float:
    """Gardner & Knopoff (1974) distance window: 10^(0.1238 M + 0.983) km."""
    return float(10.0 ** (0.1238 * magnitude + 0.983))


def gk_time_d(magnitude: float) -> float:
    """Gardner & Knopoff (1974) time window in days (two branches at M 6.5)."""
    if magnitude >= 6.5:
        return float(10.0 ** (0.032 * magnitude + 2.7389))
    return float(10.0 ** (0.5409 * magnitude - 0.547))


def gruenthal_distance_km(magnitude: float) -> float:
    """Gruenthal window distance (van Stiphout et al. 2012): exp(1.77 + sqrt(0.037 + 1.02 M))."""
    return float(math.exp(1.77 + math.sqrt(0.037 + 1.02 * magnitude)))


def uhrhammer_distance_km(magnitude: float) -> float:
    """Uhrhammer (1986) window distance: exp(-1.024 + 0.804 M)."""
    return float(math.exp(-1.024 + 0.804 * magnitude))


WINDOWS = {
    "gardner-knopoff": gk_distance_km,
    "gruenthal": gruenthal_distance_km,
    "uhrhammer": uhrhammer_distance_km,
}


def wells_coppersmith_length_km(magnitude: float) -> float:
    """Wells & Coppersmith (1994) subsurface rupture length, all slip types: 10^(0.69 M − 3.22)
    km (reference §3.5 [V], the USGS OAF aftershock radius)."""
    return float(10.0 ** (0.69 * magnitude - 3.22))


def episodes(events: list[Event], params: SequenceParams) -> list[list[Event]]:
    """Time-ordered members split into episodes at every pause longer than
    ``episode_pause_d``, once they span more than max(``episode_min_span_d``, t_GK(M1))
    (Gardner & Knopoff 1974 time window); otherwise one episode. A swarm that never pauses
    stays whole however long it lasts."""
    if len(events) < 2:
        return [events]
    mags = [e.magnitude for e in events if e.magnitude is not None]
    limit_d = max(params.episode_min_span_d, gk_time_d(max(mags)) if mags else 0.0)
    t = np.array([to_us(e.origin_at) for e in events], dtype=np.int64)
    if (t[-1] - t[0]) / US_PER_DAY <= limit_d:
        return [events]
    cuts = (np.flatnonzero(np.diff(t) > params.episode_pause_d * US_PER_DAY) + 1).tolist()
    bounds = [0, *cuts, len(events)]
    return [events[a:b] for a, b in pairwise(bounds)]


def link_radius_km(magnitude: float | None, params: SequenceParams) -> float:
    """The linking radius of one event: max(min_link_km, window(M)), capped at the region."""
    if magnitude is None:
        return min(params.min_link_km, params.region_radius_km)
    window = WINDOWS[params.window](magnitude)
    return min(max(params.min_link_km, window), params.region_radius_km)


_US = timedelta(microseconds=1)


def to_us(at: datetime) -> int:
    """An aware instant as integer microseconds since the epoch (exact, shift-invariant)."""
    return (at - EPOCH) // _US


@dataclass(frozen=True, slots=True)
class QuakeSequence:
    """Events linked into one sequence, oldest first; ``id`` is "seq-" + the first event id."""

    id: str
    events: tuple[Event, ...]

    @property
    def first_at(self) -> datetime:
        return self.events[0].origin_at

    @property
    def last_at(self) -> datetime:
        return self.events[-1].origin_at


def sequence_id(events: Iterable[Event]) -> str:
    """Stable id: "seq-" + the id of the earliest member (ties broken by id)."""
    first = min(events, key=lambda e: (to_us(e.origin_at), e.id))
    return f"seq-{first.id}"


def events_from_reports(reports: Iterable[Report]) -> list[Event]:
    """One event per report, with that report as its only contributor (no association).

    For single-catalogue files; the event id is the report's ``source_id``. When a file
    lists the same id twice, the later row (a revision) wins.
    """
    out: dict[str, Event] = {}
    for r in reports:
        c = Contributor(
            source=r.source,
            source_id=r.source_id,
            origin_at=r.origin_at,
            latitude=r.latitude,
            longitude=r.longitude,
            depth_km=r.depth_km,
            magnitude=r.magnitude,
            mag_type=r.mag_type,
            status=r.status,
            updated_at=r.updated_at,
            event_type=r.event_type,
        )
        out[r.source_id] = Event(
            id=r.source_id,
            origin_at=r.origin_at,
            latitude=r.latitude,
            longitude=r.longitude,
            depth_km=r.depth_km,
            magnitude=r.magnitude,
            mag_type=r.mag_type,
            status=r.status,
            preferred_source=r.source,
            contributors=(c,),
            place=r.place,
            updated_at=r.updated_at,
            event_type=r.event_type,
        )
    return list(out.values())


class _Cell:
    """Events of one grid cell, sorted by time, in growable numpy arrays."""

    __slots__ = ("cr", "idx", "n", "t", "u")

    def __init__(self) -> None:
        self.n = 0
        self.t = np.empty(8, dtype=np.int64)
        self.u = np.empty((8, 3), dtype=np.float64)
        self.cr = np.empty(8, dtype=np.float64)
        self.idx = np.empty(8, dtype=np.int64)

    def add(self, t: int, u: np.ndarray, cr: float, idx: int) -> None:
        n = self.n
        if n == len(self.t):
            cap = 2 * n
            self.t = np.resize(self.t, cap)
            self.u = np.resize(self.u, (cap, 3))
            self.cr = np.resize(self.cr, cap)
            self.idx = np.resize(self.idx, cap)
        pos = n if n == 0 or t >= self.t[n - 1] else int(np.searchsorted(self.t[:n], t, "right"))
        if pos < n:  # late arrival: shift the tail (rare)
            self.t[pos + 1 : n + 1] = self.t[pos:n]
            self.u[pos + 1 : n + 1] = self.u[pos:n]
            self.cr[pos + 1 : n + 1] = self.cr[pos:n]
            self.idx[pos + 1 : n + 1] = self.idx[pos:n]
        self.t[pos], self.u[pos], self.cr[pos], self.idx[pos] = t, u, cr, idx
        self.n = n + 1

    def remove(self, t: int, idx: int) -> None:
        n = self.n
        lo = int(np.searchsorted(self.t[:n], t, "left"))
        hi = int(np.searchsorted(self.t[:n], t, "right"))
        hit = lo + int(np.nonzero(self.idx[lo:hi] == idx)[0][0])
        self.t[hit : n - 1] = self.t[hit + 1 : n]
        self.u[hit : n - 1] = self.u[hit + 1 : n]
        self.cr[hit : n - 1] = self.cr[hit + 1 : n]
        self.idx[hit : n - 1] = self.idx[hit + 1 : n]
        self.n = n - 1


class _Grid:
    """Latitude bands of ``cell_km`` height, each cut into equal longitude cells >= cell_km."""

    def __init__(self, cell_km: float) -> None:
        self.h_deg = cell_km / KM_PER_DEG
        self.n_bands = max(1, math.ceil(180.0 / self.h_deg))
        self.n_lon: list[int] = []
        for b in range(self.n_bands):
            lo, hi = -90.0 + b * self.h_deg, min(90.0, -90.0 + (b + 1) * self.h_deg)
            poleward = min(89.9, max(abs(lo), abs(hi)))
            width = cell_km / (KM_PER_DEG * math.cos(math.radians(poleward)))
            self.n_lon.append(max(1, int(360.0 // width)))
        self.cells: dict[tuple[int, int], _Cell] = {}

    def key(self, lat: float, lon: float) -> tuple[int, int]:
        b = min(self.n_bands - 1, max(0, int((lat + 90.0) / self.h_deg)))
        n = self.n_lon[b]
        return b, int((lon + 180.0) / (360.0 / n)) % n

    def keys(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``key`` of many points at once (the same float operations, so the same cells)."""
        b = np.clip(((lat + 90.0) / self.h_deg).astype(np.int64), 0, self.n_bands - 1)
        n = np.asarray(self.n_lon, dtype=np.int64)[b]
        return b, ((lon + 180.0) / (360.0 / n)).astype(np.int64) % n

    def fill(self, idx: np.ndarray, lat: np.ndarray, lon: np.ndarray, t: np.ndarray,
             u: np.ndarray, cr: np.ndarray) -> None:
        """Put events ``idx`` (ascending, so oldest first) into an empty grid at once."""
        if not len(idx):
            return
        b, i = self.keys(lat[idx], lon[idx])
        code = b * (max(self.n_lon) + 1) + i
        order = np.argsort(code, kind="stable")
        idx, code, b, i = idx[order], code[order], b[order], i[order]
        starts = np.flatnonzero(np.append(True, code[1:] != code[:-1]))
        ends = np.append(starts[1:], len(idx))
        for s, e, kb, ki in zip(starts.tolist(), ends.tolist(), b[starts].tolist(),
                                i[starts].tolist(), strict=True):
            members = idx[s:e]
            cell = _Cell()
            cell.n = e - s
            cell.t = t[members]
            cell.u = u[members]
            cell.cr = cr[members]
            cell.idx = members.astype(np.int64)
            self.cells[(kb, ki)] = cell

    def near(self, lat: float, lon: float, radius_km: float) -> Iterator[_Cell]:
        """Every non-empty cell that may hold a point within ``radius_km``."""
        dlat = radius_km / KM_PER_DEG
        b0 = max(0, int((lat - dlat + 90.0) / self.h_deg))
        b1 = min(self.n_bands - 1, int((lat + dlat + 90.0) / self.h_deg))
        maxabs = max(abs(lat - dlat), abs(lat + dlat))
        if maxabs >= 89.9:
            dlon = 360.0
        else:
            # 1 % margin over the small-circle longitude span (asin(sin r / cos lat) >= r/cos)
            dlon = 1.01 * math.degrees(radius_km / EARTH_RADIUS_KM) / math.cos(
                math.radians(maxabs)
            )
        cells = self.cells
        for b in range(b0, b1 + 1):
            n = self.n_lon[b]
            w = 360.0 / n
            i0 = math.floor((lon - dlon + 180.0) / w)
            i1 = math.floor((lon + dlon + 180.0) / w)
            rng: Iterable[int] = range(n) if i1 - i0 + 1 >= n else (i % n for i in range(i0, i1 + 1))
            for i in rng:
                cell = cells.get((b, i))
                if cell is not None and cell.n:
                    yield cell


@dataclass(slots=True)
class _Comp:
    members: list[int] = field(default_factory=list)
    first: tuple[int, str] = (0, "")


class SequenceEngine:
    """Incremental, deterministic sequence membership over every event it has been given."""

    def __init__(self, params: SequenceParams | None = None) -> None:
        self.params = params or SequenceParams()
        self._gap_us = round(self.params.link_gap_d * US_PER_DAY)
        # events whose radius <= grid_km / 2 go to the fine grid, queried within grid_km / 2
        # (one to four cells); larger radii (M >~ 4 for GK) go to the region-sized grid
        self._small_r = self.params.grid_km / 2
        self._small = _Grid(self.params.grid_km)
        self._big = _Grid(self.params.region_radius_km)  # the rest (M >~ 4.5 for GK)
        self._ids: dict[str, int] = {}
        self._events: list[Event | None] = []
        self._t: list[int] = []
        self._U = np.empty((1024, 3), dtype=np.float64)  # unit vector per event index
        self._Z = np.full(1024, np.nan)  # depth / Earth radius per event index (NaN: none)
        self._dz_err = (self.params.link_depth_error_km / EARTH_RADIUS_KM
                        if self.params.link_depth else None)
        self._r: list[float] = []
        self._cr: list[float] = []
        self._comp = np.full(1024, -1, dtype=np.int64)  # component label per event index
        self._comps: dict[int, _Comp] = {}
        self._seq_ids: dict[int, str] = {}
        self._by_seq: dict[str, int] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self._ids)

    # ---- public API -----------------------------------------------------------------------
    def upsert(self, event: Event) -> set[str]:
        """Add, revise or delete (status "deleted") one event; ids of sequences touched.

        A known non-earthquake (``Event.is_earthquake`` false) is handled like a deletion.

        The set includes ids that no longer exist after the change (merged away, renamed
        because an earlier member arrived, or emptied); ``has`` tells which still exist.
        """
        touched: set[str] = set()
        old = self._ids.get(event.id)
        gone = _not_member(event)
        if old is not None:
            prev = self._events[old]
            assert prev is not None
            same_place = (
                prev.origin_at == event.origin_at
                and prev.latitude == event.latitude
                and prev.longitude == event.longitude
                and prev.magnitude == event.magnitude
            )
            if same_place and not gone:
                self._events[old] = event
                return {self._seq_ids[int(self._comp[old])]}
            touched |= self._remove(old)
        if gone:
            return touched
        touched.add(self._insert(event))
        return touched

    def load(self, events: Iterable[Event]) -> None:
        """Add a whole catalogue at once: the state ``upsert`` of each event, oldest first, gives.

        Of several rows with one id the last (by origin time, then input order) wins, and a
        deleted last row drops the event. Grouping is ``batch_labels`` (numpy sweeps); an
        engine that already holds events takes them one ``upsert`` at a time instead.
        """
        if self._ids:
            for e in sorted(events, key=lambda e: (e.origin_at, e.id)):
                self.upsert(e)
            return
        events = list(events)
        ts = [to_us(e.origin_at) for e in events]
        ids = [e.id for e in events]
        keep = np.arange(len(events))
        if len(set(ids)) != len(ids) or any(_not_member(e) for e in events):
            latest: dict[str, int] = {}
            for k, (eid, at_us) in enumerate(zip(ids, ts, strict=True)):
                prev = latest.get(eid)
                if prev is None or at_us >= ts[prev]:
                    latest[eid] = k
            keep = np.array([k for k in latest.values() if not _not_member(events[k])],
                            dtype=np.int64)
        # oldest first, ties by id (the upsert order of build_sequences_incremental)
        tk = np.array(ts, dtype=np.int64)[keep]
        order = np.argsort(tk, kind="stable")
        rows = keep[order].tolist()
        tied = np.flatnonzero(tk[order][1:] == tk[order][:-1])
        if len(tied):
            starts = tied[np.append(True, np.diff(tied) > 1)]
            ends = np.append(tied[np.flatnonzero(np.diff(tied) > 1)], tied[-1]) + 2
            for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
                rows[a:b] = sorted(rows[a:b], key=ids.__getitem__)
        evs = [events[k] for k in rows]
        lats = [e.latitude for e in evs]
        lons = [e.longitude for e in evs]
        lat = np.array(lats, dtype=np.float64)
        lon = np.array(lons, dtype=np.float64)
        if not (np.isfinite(lat).all() and np.isfinite(lon).all()):
            for e in sorted(events, key=lambda e: (e.origin_at, e.id)):
                self.upsert(e)  # raises where the event-by-event path raises
            return
        p = self.params
        n = len(evs)
        t = np.array([ts[k] for k in rows], dtype=np.int64)
        # unit vectors as _unit computes them (math, then float64 products): the same bits
        la = list(map(math.radians, lats))
        lo = list(map(math.radians, lons))
        c = np.array(list(map(math.cos, la)), dtype=np.float64)
        u = np.empty((n, 3), dtype=np.float64)
        u[:, 0] = c * np.array(list(map(math.cos, lo)), dtype=np.float64)
        u[:, 1] = c * np.array(list(map(math.sin, lo)), dtype=np.float64)
        u[:, 2] = np.array(list(map(math.sin, la)), dtype=np.float64)
        mags = [e.magnitude for e in evs]
        radius = {m: link_radius_km(m, p) for m in set(mags)}
        chord = {m: chord_for_km(rk) for m, rk in radius.items()}
        r = np.array(list(map(radius.__getitem__, mags)), dtype=np.float64)
        cr = np.array(list(map(chord.__getitem__, mags)), dtype=np.float64)
        z = np.array([depth_units(e.depth_km) for e in evs], dtype=np.float64)
        labels = batch_labels(t, u, cr, self._gap_us, z if self._dz_err is not None else None,
                              self._dz_err or 0.0)

        self._ids = dict(zip((e.id for e in evs), range(n), strict=True))
        self._events = list(evs)
        self._t = t.tolist()
        self._r = r.tolist()
        self._cr = cr.tolist()
        cap = max(1024, n)
        self._comp = np.full(cap, -1, dtype=np.int64)
        self._comp[:n] = labels
        self._U = np.empty((cap, 3), dtype=np.float64)
        self._U[:n] = u
        self._Z = np.full(cap, np.nan)
        self._Z[:n] = z
        order = np.argsort(labels, kind="stable")  # each component's members oldest first
        cuts = np.cumsum(np.bincount(labels)) if n else np.empty(0, dtype=np.int64)
        start = 0
        for label, end in enumerate(cuts.tolist()):
            members = order[start:end].tolist()
            start = end
            self._comps[label] = _Comp(members=members, first=(self._t[members[0]],
                                                               evs[members[0]].id))
            self._name(label)
        self._next = len(cuts)
        small = r <= self._small_r
        self._small.fill(np.flatnonzero(small), lat, lon, t, u, cr)
        self._big.fill(np.flatnonzero(~small), lat, lon, t, u, cr)

    def upsert_many(self, events: Iterable[Event]) -> set[str]:
        """``upsert`` for each event; the union of the touched ids."""
        touched: set[str] = set()
        for e in events:
            touched |= self.upsert(e)
        return touched

    def has(self, seq_id: str) -> bool:
        return seq_id in self._by_seq

    def sequence_ids(self) -> list[str]:
        return sorted(self._by_seq)

    def sequence(self, seq_id: str) -> QuakeSequence:
        """One sequence with its members, oldest first; NotFound if the id does not exist."""
        label = self._by_seq.get(seq_id)
        if label is None:
            raise NotFound(f"sequence {seq_id} not found")
        return self._build(label)

    def sequences(self) -> list[QuakeSequence]:
        """Every sequence, ordered by id."""
        return [self._build(self._by_seq[s]) for s in sorted(self._by_seq)]

    def sequence_of(self, event_id: str) -> str | None:
        """The id of the sequence an event belongs to, if the engine holds the event."""
        i = self._ids.get(event_id)
        return None if i is None else self._seq_ids[int(self._comp[i])]

    def nearby(
        self, lat: float, lon: float, radius_km: float, start: datetime, end: datetime
    ) -> list[Event]:
        """Events within ``radius_km`` of a point with start <= origin_at <= end (context)."""
        t0, t1 = to_us(start), to_us(end)
        u = _unit(lat, lon)
        cr = chord_for_km(radius_km)
        found: list[Event] = []
        for grid in (self._small, self._big):
            for cell in grid.near(lat, lon, radius_km):
                tt = cell.t[: cell.n]
                lo, hi = np.searchsorted(tt, t0, "left"), np.searchsorted(tt, t1, "right")
                if lo >= hi:
                    continue
                c2 = 2.0 - 2.0 * (cell.u[lo:hi] @ u)
                for i in cell.idx[lo:hi][c2 <= cr * cr]:
                    ev = self._events[int(i)]
                    if ev is not None:
                        found.append(ev)
        return sorted(found, key=lambda e: (e.origin_at, e.id))

    # ---- internals ------------------------------------------------------------------------
    def _build(self, label: int) -> QuakeSequence:
        comp = self._comps[label]
        evs, ts = self._events, self._t
        order = sorted(comp.members, key=lambda i: (ts[i], evs[i].id))  # type: ignore[union-attr]
        return QuakeSequence(id=self._seq_ids[label], events=tuple(evs[i] for i in order))  # type: ignore[misc]

    def _grid_of(self, r: float) -> _Grid:
        return self._small if r <= self._small_r else self._big

    def _linked(self, i: int) -> set[int]:
        """Labels of components holding an event linked to event ``i`` (excluding itself)."""
        t, u, cr, r = self._t[i], self._U[i], self._cr[i], self._r[i]
        ev = self._events[i]
        assert ev is not None
        gap = self._gap_us
        labels: set[int] = set()
        small_reach = max(r, self._small_r)
        for grid, reach in ((self._small, small_reach), (self._big, self.params.region_radius_km)):
            for cell in grid.near(ev.latitude, ev.longitude, reach):
                tt = cell.t[: cell.n]
                lo = int(tt.searchsorted(t - gap, "left"))
                hi = int(tt.searchsorted(t + gap, "right"))
                if lo >= hi:
                    continue
                if not labels and hi - lo > _RECENT:
                    # the events nearest in time first: in a dense cluster they settle the
                    # component, and the label filter below then skips the rest
                    self._scan(cell, hi - _RECENT, hi, i, u, cr, labels)
                    hi -= _RECENT
                self._scan(cell, lo, hi, i, u, cr, labels)
        return labels

    def _scan(
        self, cell: _Cell, lo: int, hi: int, i: int, u: np.ndarray, cr: float, labels: set[int]
    ) -> None:
        comp = self._comp
        if labels:
            lab = comp[cell.idx[lo:hi]]
            if len(labels) == 1:
                keep = lab != next(iter(labels))
            else:
                keep = ~np.isin(lab, np.fromiter(labels, dtype=np.int64))
            sel = keep.nonzero()[0]
            if not len(sel):
                return
            sel += lo
            uu, cc, idx = cell.u[sel], cell.cr[sel], cell.idx[sel]
        else:
            uu, cc, idx = cell.u[lo:hi], cell.cr[lo:hi], cell.idx[lo:hi]
        # the same arithmetic as batch_labels (_dot3), so both paths agree to the last bit
        c2 = 2.0 - 2.0 * (uu[:, 0] * u[0] + uu[:, 1] * u[1] + uu[:, 2] * u[2])
        if self._dz_err is not None:
            c2 = c2 + _depth_term(self._Z[idx], self._Z[i], self._dz_err)
        thr = np.maximum(cc, cr)
        hits = idx[c2 <= thr * thr]
        if len(hits):
            hits = hits[hits != i]
            labels.update(np.unique(comp[hits]).tolist())

    def _insert(self, event: Event) -> str:
        p = self.params
        i = len(self._events)
        self._ids[event.id] = i
        self._events.append(event)
        t = to_us(event.origin_at)
        u = _unit(event.latitude, event.longitude)
        r = link_radius_km(event.magnitude, p)
        self._t.append(t)
        self._r.append(r)
        self._cr.append(chord_for_km(r))
        if i == len(self._comp):
            self._comp = np.concatenate([self._comp, np.full(i, -1, dtype=np.int64)])
        if i == len(self._U):
            self._U = np.concatenate([self._U, np.empty((max(i, 1), 3), dtype=np.float64)])
            self._Z = np.concatenate([self._Z, np.full(max(i, 1), np.nan)])
        self._U[i] = u
        self._Z[i] = depth_units(event.depth_km)
        labels = self._linked(i)
        self._grid_of(r).cells.setdefault(self._grid_of(r).key(event.latitude, event.longitude), _Cell()).add(
            t, u, self._cr[i], i
        )
        return self._seq_ids[self._join(i, labels)]

    def _join(self, i: int, labels: set[int]) -> int:
        """Put event i into the union of ``labels`` (or a new component); the label used."""
        ev = self._events[i]
        assert ev is not None
        key = (self._t[i], ev.id)
        if not labels:
            label = self._next
            self._next += 1
            self._comps[label] = _Comp(members=[i], first=key)
            self._comp[i] = label
        else:
            ordered = sorted(labels, key=lambda lb: (-len(self._comps[lb].members), lb))
            label = ordered[0]
            keep = self._comps[label]
            for other in ordered[1:]:
                gone = self._comps.pop(other)
                self._comp[np.array(gone.members, dtype=np.int64)] = label
                keep.members.extend(gone.members)
                keep.first = min(keep.first, gone.first)
                self._forget(other)
            keep.members.append(i)
            keep.first = min(keep.first, key)
            self._comp[i] = label
        self._name(label)
        return label

    def _name(self, label: int) -> None:
        seq = f"seq-{self._comps[label].first[1]}"
        old = self._seq_ids.get(label)
        if old != seq:
            if old is not None:
                self._by_seq.pop(old, None)
            self._seq_ids[label] = seq
            self._by_seq[seq] = label

    def _forget(self, label: int) -> None:
        old = self._seq_ids.pop(label, None)
        if old is not None and self._by_seq.get(old) == label:
            del self._by_seq[old]

    def _remove(self, i: int) -> set[str]:
        """Drop event i; re-link the rest of its component (a deletion may split it)."""
        ev = self._events[i]
        assert ev is not None
        label = int(self._comp[i])
        touched = {self._seq_ids[label]}
        grid = self._grid_of(self._r[i])
        grid.cells[grid.key(ev.latitude, ev.longitude)].remove(self._t[i], i)
        del self._ids[ev.id]
        self._events[i] = None
        self._comp[i] = -1
        rest = [m for m in self._comps.pop(label).members if m != i]
        self._forget(label)
        self._comp[np.array(rest, dtype=np.int64)] = -2  # not yet re-linked
        for m in sorted(rest, key=lambda k: self._t[k]):
            labels = {lb for lb in self._linked(m) if lb >= 0}
            touched.add(self._seq_ids[self._join(m, labels)])
        return touched


def _not_member(event: Event) -> bool:
    """Deleted events and known non-earthquakes (explosions, quarry blasts, collapses...) are
    no sequence members: a blast is not part of a seismic sequence (issue 11)."""
    return event.status == "deleted" or not event.is_earthquake


def _unit(lat: float, lon: float) -> np.ndarray:
    la, lo = math.radians(lat), math.radians(lon)
    c = math.cos(la)
    return np.array([c * math.cos(lo), c * math.sin(lo), math.sin(la)])


# ---- batch grouping -----------------------------------------------------------------------
# A whole catalogue at once: the same links as the engine, found by numpy sweeps instead of
# one Python call per event. Only pairs that pass ``_link_mask`` are ever unioned, so the
# components can only be those of the rule; every pair that could be linked is either tested
# or already known to be in one component, so none is missed.

_BATCH_PAIRS = 1 << 21  # pairs (or window runs) tested per numpy step: bounds the memory
_TIER_STEP = 1.5  # link radii are swept in tiers of this ratio (smaller cubes for small radii)
_SQRT3 = math.sqrt(3.0)


def _dot3(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of (k, 3) arrays, x then y then z (as ``SequenceEngine._scan``)."""
    out: np.ndarray = a[:, 0] * b[:, 0] + a[:, 1] * b[:, 1] + a[:, 2] * b[:, 2]
    return out


def depth_units(depth_km: float | None) -> float:
    """A depth in Earth radii (the unit of chords), NaN when unknown."""
    return math.nan if depth_km is None else depth_km / EARTH_RADIUS_KM


def _depth_term(za: np.ndarray | float, zb: np.ndarray | float, err: float) -> np.ndarray:
    """(|Δz| − err)², floored at 0; 0 when a depth is unknown: added to the squared chord it
    makes the hypocentral distance (Reasenberg 1985)."""
    dz = np.abs(np.asarray(za) - zb) - err
    out: np.ndarray = np.where(dz > 0.0, dz * dz, 0.0)  # NaN > 0 is False: unknown depth
    return out


def _link_mask(
    i: np.ndarray, j: np.ndarray, t: np.ndarray, u: np.ndarray, cr: np.ndarray, gap: int,
    z: np.ndarray | None = None, dz_err: float = 0.0,
) -> np.ndarray:
    """Which pairs (i[k], j[k]) are linked, with the engine's arithmetic (j's vector first)."""
    c2 = 2.0 - 2.0 * _dot3(u[j], u[i])
    if z is not None:
        c2 = c2 + _depth_term(z[j], z[i], dz_err)
    thr = np.maximum(cr[j], cr[i])
    out: np.ndarray = (np.abs(t[i] - t[j]) <= gap) & (c2 <= thr * thr) & (i != j)
    return out


def _ragged(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, k): item o repeated counts[o] times, with k = 0 .. counts[o] - 1 for each."""
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(len(owner)) - starts[owner]


def _spans(counts: np.ndarray, limit: int) -> Iterator[tuple[int, int]]:
    """Consecutive slices [a, b) of ``counts`` each summing to about ``limit`` at most."""
    cum = np.cumsum(counts)
    a, n = 0, len(counts)
    while a < n:
        base = int(cum[a - 1]) if a else 0
        b = max(a + 1, int(np.searchsorted(cum, base + limit, "right")))
        yield a, b
        a = b


def _cube_keys(u: np.ndarray, side: float) -> tuple[np.ndarray, np.ndarray]:
    """Cube of each unit vector on a grid of ``side`` (chord units), and the 27 key offsets.

    Two points closer than ``side`` (Euclidean) lie in the same or in neighbouring cubes.
    """
    side = max(side, 4e-6)  # at most ~2^19 cubes a side: keys fit in int64
    off = math.ceil(1.0 / side) + 2
    m = 2 * off + 1
    q = np.floor(u / side).astype(np.int64) + off
    keys = (q[:, 0] * m + q[:, 1]) * m + q[:, 2]
    deltas = np.array([(dx * m + dy) * m + dz for dx in (-1, 0, 1) for dy in (-1, 0, 1)
                       for dz in (-1, 0, 1)], dtype=np.int64)
    return keys, deltas


class _Sorted:
    """Some events sorted by (cube, time), with runs of equal (cube, label): search windows."""

    def __init__(self, members: np.ndarray, keys: np.ndarray, tc: np.ndarray, width: int):
        order = np.lexsort((tc[members], keys[members]))
        self.idx = members[order]
        ks = keys[self.idx]
        first = np.ones(len(ks), dtype=bool)
        first[1:] = ks[1:] != ks[:-1]
        self.first = first
        self.ukeys = ks[first]
        self.rank = np.cumsum(first) - 1
        self.width = width
        self.vals = self.rank * width + tc[self.idx]

    def runs(self, labels: np.ndarray) -> None:
        lab = labels[self.idx]
        brk = self.first.copy()
        brk[1:] |= lab[1:] != lab[:-1]
        self.run_id = np.cumsum(brk) - 1
        self.run_start = np.flatnonzero(brk)
        self.run_end = np.append(self.run_start[1:], len(lab))
        self.run_label = lab[self.run_start]

    def cube(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ok, rank): which keys have events here, and the rank of their cube."""
        pos = np.searchsorted(self.ukeys, keys)
        pos[pos == len(self.ukeys)] = 0
        return self.ukeys[pos] == keys if len(self.ukeys) else np.zeros(len(keys), bool), pos

    def windows(
        self, q: np.ndarray, qkeys: np.ndarray, deltas: np.ndarray, lo_tc: np.ndarray,
        hi_tc: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each query event and each neighbouring cube with events: (event, lo, hi)."""
        qs, los, his = [], [], []
        for d in deltas.tolist():
            ok, rank = self.cube(qkeys + d)
            sel = np.flatnonzero(ok)
            if not len(sel):
                continue
            base = rank[sel] * self.width
            lo = np.searchsorted(self.vals, base + lo_tc[sel], "left")
            hi = np.searchsorted(self.vals, base + hi_tc[sel], "right")
            keep = hi > lo
            qs.append(q[sel[keep]])
            los.append(lo[keep])
            his.append(hi[keep])
        if not qs:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        return np.concatenate(qs), np.concatenate(los), np.concatenate(his)

    def cross_pairs(
        self, qe: np.ndarray, lo: np.ndarray, hi: np.ndarray, labels: np.ndarray
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Pairs (query, event in its window) whose labels differ, in bounded chunks."""
        r0, r1 = self.run_id[lo], self.run_id[hi - 1]
        lq = labels[qe]
        keep = ~((r0 == r1) & (self.run_label[r0] == lq))
        qe, lo, hi, r0, r1, lq = qe[keep], lo[keep], hi[keep], r0[keep], r1[keep], lq[keep]
        nr = r1 - r0 + 1
        for a, b in _spans(nr, _BATCH_PAIRS):
            owner, k = _ragged(nr[a:b])
            owner += a
            rr = r0[owner] + k
            m = self.run_label[rr] != lq[owner]
            owner, rr = owner[m], rr[m]
            s0 = np.maximum(lo[owner], self.run_start[rr])
            cnt = np.minimum(hi[owner], self.run_end[rr]) - s0
            for c, d in _spans(cnt, _BATCH_PAIRS):
                o2, k2 = _ragged(cnt[c:d])
                o2 += c
                yield qe[owner[o2]], self.idx[s0[o2] + k2]


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component label of each of n nodes given undirected edges (a[k], b[k])."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    return connected_components(g, directed=False)[1].astype(np.int64)


def batch_labels(
    t: np.ndarray, u: np.ndarray, cr: np.ndarray, gap: int, z: np.ndarray | None = None,
    dz_err: float = 0.0,
) -> np.ndarray:
    """Component label of each event under the linking rule, for a whole catalogue at once.

    ``t``: origin times (int64 µs), ``u``: unit vectors (n, 3), ``cr``: link radii as chords,
    ``gap``: the time gap in µs. Labels are 0 .. k-1 (arbitrary order).

    1. Contraction: cubes small enough that any two events in neighbouring cubes are within
       the smallest radius; each event is tested against its predecessor in its own cube and
       (for the first of a run) in each neighbouring cube. Dense clusters become few labels.
    2. Completion, radius tier by tier: an event tests every event of a different label within
       the time gap in its 27 cubes of its tier's size (tier <= its own). Labels are merged
       after each tier, so later tiers skip more.
    """
    n = len(t)
    if n == 0:
        return np.empty(0, dtype=np.int64)
    t = np.ascontiguousarray(t, dtype=np.int64)
    u = np.ascontiguousarray(u, dtype=np.float64)
    cr = np.ascontiguousarray(cr, dtype=np.float64)
    # coarse time for search windows: (cube rank) * width + tc must fit in int64
    tmin, tmax = int(t.min()) - gap - 1, int(t.max()) + gap + 1
    res = 1
    while ((tmax - tmin) // res + 2) * (n + 1) >= 1 << 62:
        res *= 2
    width = (tmax - tmin) // res + 2
    tc = (t - tmin) // res
    lo_full = (t - gap - tmin) // res
    hi_full = (t + gap - tmin) // res
    ea: list[np.ndarray] = []  # linked pairs found (ea[k][x], eb[k][x])
    eb: list[np.ndarray] = []

    def link(i: np.ndarray, j: np.ndarray) -> None:
        m = _link_mask(i, j, t, u, cr, gap, z, dz_err)
        if m.any():
            ea.append(i[m])
            eb.append(j[m])

    def pairs() -> tuple[np.ndarray, np.ndarray]:
        a = np.concatenate(ea) if ea else np.empty(0, dtype=np.int64)
        b = np.concatenate(eb) if eb else np.empty(0, dtype=np.int64)
        ea.clear()
        eb.clear()
        return a, b

    # 1. contraction
    keys, deltas = _cube_keys(u, 0.999 * float(cr.min()) / (2.0 * _SQRT3))
    o = np.lexsort((t, keys))
    ks, ts = keys[o], t[o]
    cont = (ks[1:] == ks[:-1]) & (ts[1:] - ts[:-1] <= gap)
    link(o[:-1][cont], o[1:][cont])
    starts = o[np.append(True, ~cont)]
    grid = _Sorted(np.arange(n), keys, tc, width)
    for d in deltas.tolist():
        if d == 0:
            continue
        ok, rank = grid.cube(keys[starts] + d)
        s, p = starts[ok], rank[ok]
        h = np.searchsorted(grid.vals, p * width + tc[s], "right") - 1
        good = (h >= 0) & (grid.rank[np.maximum(h, 0)] == p)
        link(s[good], grid.idx[h[good]])
    labels = _components(n, *pairs())
    del grid, o, ks, ts, cont, starts

    # 2. completion by radius tier: tier k holds radii in (bound[k-1], bound[k]]
    bounds = [float(cr.min())]
    top = float(cr.max())
    while bounds[-1] < top:
        bounds.append(min(top, max(bounds[-1] * _TIER_STEP, 1e-9)))
    tier = np.searchsorted(np.array(bounds), cr, "left")
    for k, bound in enumerate(bounds):
        mine = np.flatnonzero(tier == k)
        if not len(mine):
            continue
        keys, deltas = _cube_keys(u, bound * (1.0 + 1e-9) + 1e-12)
        mine = mine[np.lexsort((tc[mine], keys[mine]))]  # sorted queries search faster
        lower = np.flatnonzero(tier < k)
        # same tier: each pair once from its later event (half window); lower tiers: full window
        for members, hi_tc in ((mine, tc), (lower, hi_full)):
            if not len(members):
                continue
            sweep = _Sorted(members, keys, tc, width)
            sweep.runs(labels)
            qe, lo, hi = sweep.windows(mine, keys[mine], deltas, lo_full[mine], hi_tc[mine])
            for i, j in sweep.cross_pairs(qe, lo, hi, labels):
                link(i, j)
        a, b = pairs()
        if len(a):
            labels = _components(int(labels.max()) + 1, labels[a], labels[b])[labels]
    return labels


def build_sequences(events: Iterable[Event], params: SequenceParams | None = None) -> SequenceEngine:
    """An engine holding every non-deleted event, grouped at once (``SequenceEngine.load``)."""
    engine = SequenceEngine(params)
    engine.load(events)
    return engine


def build_sequences_incremental(
    events: Iterable[Event], params: SequenceParams | None = None
) -> SequenceEngine:
    """The same engine fed one ``upsert`` at a time, oldest first (the reference for ``load``)."""
    engine = SequenceEngine(params)
    for e in sorted(events, key=lambda e: (e.origin_at, e.id)):
        engine.upsert(e)
    return engine


def link_pairs_bruteforce(events: list[Event], params: SequenceParams) -> list[set[str]]:
    """The same membership rule by checking every pair, O(n^2): the reference for tests/bench."""
    n = len(events)
    t = np.array([to_us(e.origin_at) for e in events], dtype=np.int64)
    u = np.array([_unit(e.latitude, e.longitude) for e in events]).reshape(n, 3)
    cr = np.array([chord_for_km(link_radius_km(e.magnitude, params)) for e in events])
    z = np.array([depth_units(e.depth_km) for e in events], dtype=np.float64)
    dz_err = params.link_depth_error_km / EARTH_RADIUS_KM
    gap = round(params.link_gap_d * US_PER_DAY)
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i in range(n):
        c2 = 2.0 - 2.0 * (u[:, 0] * u[i, 0] + u[:, 1] * u[i, 1] + u[:, 2] * u[i, 2])
        if params.link_depth:
            c2 = c2 + _depth_term(z, z[i], dz_err)
        thr = np.maximum(cr, cr[i])
        ok = (np.abs(t - t[i]) <= gap) & (c2 <= thr * thr)
        for j in np.nonzero(ok)[0].tolist():
            a, b = find(i), find(j)
            if a != b:
                parent[a] = b
    groups: dict[int, set[str]] = {}
    for i, e in enumerate(events):
        groups.setdefault(find(i), set()).add(e.id)
    return list(groups.values())
