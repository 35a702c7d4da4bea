"""Associate one agency's report with an existing event, and pick an event's preferred origin.

Rules from reference/seismology.md §6.1 and §6.3 (USGS ComCat/PDL DefaultAssociator [V]):

1. Ids first. PDL "matches first by event ID (source + code)": a report that shares an id key
   (network + code, e.g. ``ci37699008``; see :func:`id_keys`) with an event is that event,
   whatever the distance rule says. USGS ``ids``, FDSN text ContributorIDs, QuakeML
   ``catalog:eventsource``+``eventid`` and EMSC unids all become id keys in the parsers.
2. Otherwise |Δt| ≤ 16 s and distance ≤ 100 km; the most similar candidate wins, scored by
   s = √((Δt/16 s)² + (d/100 km)²) — PDL picks the most similar and has no tie margin. Two
   candidates scoring within ``tie_margin`` (0.1, §6.3) are merged with the closest and
   flagged for review, not kept apart: keeping them apart split 4 of 340 real Bombay Beach
   2016 quakes reported by two sources into two events each (issue 11).
Sanity flags for duty review follow USGS EventSanityCheck [V]: |Δt| > 5 s, d > 30 km,
|Δdepth| > 30 km, |ΔM| > 0.4 on like magnitude types (> 0.8 on unlike types).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from quakealert.core.geo import distance_km
from quakealert.model import Contributor, Event, Report


@dataclass(frozen=True, slots=True)
class AssociationParams:
    """Association windows; defaults are the ComCat values (§6.1) and the §6.3 tie margin."""

    max_dt_s: float = 16.0
    max_distance_km: float = 100.0
    tie_margin: float = 0.1
    flag_dt_s: float = 5.0
    flag_distance_km: float = 30.0
    flag_depth_km: float = 30.0
    flag_mag_like: float = 0.4
    flag_mag_unlike: float = 0.8


@dataclass(frozen=True, slots=True)
class Candidate:
    """An existing event as association sees it: its origin and the sources already in it."""

    event_id: str
    origin_at: datetime
    latitude: float
    longitude: float
    depth_km: float | None
    magnitude: float | None
    mag_type: str | None
    sources: frozenset[str]
    ids: frozenset[str] = frozenset()  # id keys of its contributors (see id_keys)


@dataclass(frozen=True, slots=True)
class Match:
    """Which event a report joins (None = a new event), with the flags duty staff should review."""

    event_id: str | None
    score: float | None = None
    flags: tuple[str, ...] = ()
    by_id: str | None = None  # the shared id key that decided it, if ids decided


def id_key(text: str) -> str | None:
    """One id as an association key: lower case, or None when it names no network.

    ComCat ids are network + code (``ci37699008``, ``us7000abcd``); EMSC unids are
    ``yyyymmdd_nnnnnnn``. A bare number (INGV ``46128882``, a contributor's local code)
    identifies nothing outside its own catalogue, so it is not a key.
    """
    key = text.strip().lower()
    if not key or key.isdigit():
        return None
    return key


def id_keys(report: Report) -> frozenset[str]:
    """Every id key of a report: its own id and the ids it lists for the same quake."""
    keys = {id_key(report.source_id), *(id_key(i) for i in report.other_ids)}
    keys.discard(None)
    return frozenset(k for k in keys if k is not None)


def associate(
    report: Report,
    candidates: Iterable[Candidate],
    params: AssociationParams = AssociationParams(),
    *,
    keys: frozenset[str] | None = None,
) -> Match:
    """The event ``report`` joins: a shared id first, else the closest in the ComCat window.

    Never merges two reports of one source (§6.3 rule 1). ``keys`` are the report's id keys
    (computed with :func:`id_keys` when not given). Candidates sharing a key are taken
    whatever their distance; among several, the closest wins.
    """
    if keys is None:
        keys = id_keys(report)
    by_id: list[tuple[float, float, float, Candidate, str]] = []
    scored: list[tuple[float, float, float, Candidate]] = []
    for cand in candidates:
        if report.source in cand.sources:
            continue  # same source, different id: a different quake (§6.3 rule 1)
        dt_s = abs((report.origin_at - cand.origin_at).total_seconds())
        shared = keys & cand.ids if keys and cand.ids else None
        if not shared and dt_s > params.max_dt_s:
            continue
        d_km = distance_km(report.latitude, report.longitude, cand.latitude, cand.longitude)
        s = math.hypot(dt_s / params.max_dt_s, d_km / params.max_distance_km)
        if shared:
            by_id.append((s, dt_s, d_km, cand, min(shared)))
        elif d_km <= params.max_distance_km:
            scored.append((s, dt_s, d_km, cand))
    if by_id:
        by_id.sort(key=lambda x: (x[0], x[3].event_id))
        s, dt_s, d_km, best, key = by_id[0]
        flags = sanity_flags(report, best, dt_s, d_km, params)
        if len(by_id) > 1:
            flags = (f"id {key} is shared by {len(by_id)} events; joined the closest, "
                 + best.event_id, *flags)
        return Match(best.event_id, s, flags, by_id=key)
    if not scored:
        return Match(None)
    scored.sort(key=lambda x: (x[0], x[3].event_id))
    best_s, dt_s, d_km, best = scored[0]
    flags = sanity_flags(report, best, dt_s, d_km, params)
    if len(scored) > 1 and scored[1][0] - best_s < params.tie_margin:
        other = scored[1][3].event_id
        why = (f"ambiguous: {best.event_id} and {other} score within {params.tie_margin} "
               f"({best_s:.2f} vs {scored[1][0]:.2f}); joined the closest, {best.event_id}")
        flags = (why, *flags)
    return Match(best.event_id, best_s, flags)


def sanity_flags(
    report: Report, cand: Candidate, dt_s: float, d_km: float, params: AssociationParams
) -> tuple[str, ...]:
    """USGS EventSanityCheck thresholds (§6.1 [V]): flag, never reject."""
    who = f"{report.source}:{report.source_id}"
    flags: list[str] = []
    if dt_s > params.flag_dt_s:
        flags.append(f"{who}: origin time differs by {dt_s:.1f} s (> {params.flag_dt_s:g} s)")
    if d_km > params.flag_distance_km:
        flags.append(f"{who}: epicentre differs by {d_km:.1f} km (> {params.flag_distance_km:g} km)")
    if report.depth_km is not None and cand.depth_km is not None:
        dz = abs(report.depth_km - cand.depth_km)
        if dz > params.flag_depth_km:
            flags.append(f"{who}: depth differs by {dz:.1f} km (> {params.flag_depth_km:g} km)")
    if report.magnitude is not None and cand.magnitude is not None:
        dm = abs(report.magnitude - cand.magnitude)
        like = (report.mag_type or "").lower() == (cand.mag_type or "").lower()
        limit = params.flag_mag_like if like else params.flag_mag_unlike
        if dm > limit + 1e-9:
            kind = "like" if like else "unlike"
            flags.append(f"{who}: magnitude differs by {dm:.1f} on {kind} types (> {limit:g})")
    return tuple(flags)


# Region-specific priority: "CENC first inside China" (DESIGN.md). A coarse box around China
# is enough here: it only decides whose origin is shown first; every agency's view is kept.
CHINA_BOX = (17.5, 54.0, 73.0, 135.5)  # lat_min, lat_max, lon_min, lon_max


@dataclass(frozen=True, slots=True)
class PriorityRule:
    """Source order inside a lat/lon box; the first matching rule wins."""

    box: tuple[float, float, float, float]
    order: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Priorities:
    """Per-source default priority (lower = preferred) plus regional overrides."""

    default: Mapping[str, int] = field(default_factory=dict)
    rules: tuple[PriorityRule, ...] = (PriorityRule(CHINA_BOX, ("cenc",)),)

    def rank(self, source: str, latitude: float, longitude: float) -> tuple[int, int]:
        for rule in self.rules:
            la0, la1, lo0, lo1 = rule.box
            if la0 <= latitude <= la1 and lo0 <= longitude <= lo1:
                if source in rule.order:
                    return (0, rule.order.index(source))
                break
        return (1, self.default.get(source, 50))


def preferred(contributors: Sequence[Contributor], priorities: Priorities) -> Contributor:
    """The contributor whose origin the event shows: live before deleted, then by priority."""
    if not contributors:
        raise ValueError("an event needs at least one contributor")
    ref = contributors[0]
    return min(
        contributors,
        key=lambda c: (
            c.status == "deleted",
            priorities.rank(c.source, ref.latitude, ref.longitude),
            c.status == "automatic",
            c.source,
        ),
    )


def merge_event(
    event_id: str,
    contributors: Sequence[Contributor],
    priorities: Priorities,
    *,
    place: str | None = None,
    review_flags: tuple[str, ...] = (),
) -> Event:
    """The event as residents and staff see it: the preferred origin plus every contributor."""
    best = preferred(contributors, priorities)
    status = "deleted" if all(c.status == "deleted" for c in contributors) else best.status
    updated = [c.updated_at for c in contributors if c.updated_at is not None]
    kind = event_type_of(best, contributors)
    return Event(
        id=event_id,
        origin_at=best.origin_at,
        latitude=best.latitude,
        longitude=best.longitude,
        depth_km=best.depth_km,
        magnitude=best.magnitude,
        mag_type=best.mag_type,
        status=status,
        preferred_source=best.source,
        contributors=tuple(sorted(contributors, key=lambda c: (c.source, c.source_id))),
        place=place,
        review_flags=review_flags,
        updated_at=max(updated) if updated else None,
        event_type=kind,
    )


def event_type_of(best: Contributor | Report, contributors: Iterable[Contributor | Report]) -> str | None:
    """The event's type: the preferred contributor's, else the first live one that says.

    The preferred agency decides (CENC first in China): its revision of an automatic
    疑爆 (suspected explosion) to 天然地震 (earthquake) simply becomes the event's type.
    """
    if best.event_type:
        return best.event_type
    for c in sorted(contributors, key=lambda c: (c.status == "deleted", c.source, c.source_id)):
        if c.event_type:
            return c.event_type
    return None


def new_event_id(report: Report) -> str:
    """A deterministic id from the first report, so replays and restarts give the same ids."""
    digest = hashlib.blake2s(f"{report.source}:{report.source_id}".encode(), digest_size=3)
    t = report.origin_at.astimezone(UTC) if report.origin_at.utcoffset() else report.origin_at
    # %-formatting of the fields: the same text as strftime("%Y%m%d%H%M%S"), 3x faster in bulk
    stamp = "%04d%02d%02d%02d%02d%02d" % (t.year, t.month, t.day, t.hour, t.minute, t.second)  # noqa: UP031
    return f"qa{stamp}{digest.hexdigest()}"


def contributor_of(report: Report) -> Contributor:
    """A report's current view, as listed under an event."""
    return Contributor(
        source=report.source,
        source_id=report.source_id,
        origin_at=report.origin_at,
        latitude=report.latitude,
        longitude=report.longitude,
        depth_km=report.depth_km,
        magnitude=report.magnitude,
        mag_type=report.mag_type,
        status=report.status,
        updated_at=report.updated_at,
        event_type=report.event_type,
    )
