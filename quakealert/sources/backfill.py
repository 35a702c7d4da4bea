"""Start-up back-fill: the background history the context line counts, fetched before it is used.

CENC's context sentence counts M >= 3 within 200 km over the past 5 years (seismology.md §1.7).
A fresh store holds none of that, so on first start (and after a long outage) every source that
can answer a window query back-fills ``[now - years, now]``: a replay hands over its background
rows at once, an FDSN node is asked ``starttime``/``endtime`` in chunks, CENC's catalogue query is
paged. Back-filled events are stored and sequenced but never notified: they are history.

Until every back-fill has finished, :attr:`BackfillTracker.complete` is False, /healthz shows
``"backfill": {"state": "running", ...}`` and the pipeline leaves the context count out (None)
rather than state one counted over a partial catalogue.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import aiohttp

from quakealert.config import SourceConfig
from quakealert.errors import ConfigError, SourceError, SourceUnavailable
from quakealert.logs import scrub
from quakealert.model import ParseResult, Report

log = logging.getLogger(__name__)

BackfillState = Literal["pending", "running", "complete", "failed"]


@runtime_checkable
class Backfiller(Protocol):
    """A source that can answer "every quake in this window" (not only "what is new")."""

    name: str

    async def backfill(self, session: aiohttp.ClientSession | None, start: datetime,
                       end: datetime) -> ParseResult: ...


@dataclass(frozen=True, slots=True)
class BackfillParams:
    """``[backfill]``: the window the context line needs, and when a gap calls for a new one."""

    # seismology.md §1.7: the CENC context statistic is M >= 3 within 200 km over 5 years
    years: float = 5.0
    min_magnitude: float = 3.0
    # A source silent longer than this (a long outage) is back-filled over the gap on start-up;
    # shorter gaps are covered by the poll's own overlap (`updatedafter`, FDSN lookback).
    outage_h: float = 24.0
    chunk_days: float = 90.0  # one FDSN / CENC query per chunk: bounded responses
    enabled: bool = True
    # The region to back-fill: every place a notice could be about, i.e. the residents' area
    # plus the 200 km context radius (seismology.md §1.7). Unset: live sources cannot be
    # back-filled, the back-fill is "failed" and the context count is left out.
    latitude: float | None = None
    longitude: float | None = None
    radius_km: float = 400.0

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> BackfillParams:
        """Read ``[backfill]``; unknown keys and non-positive numbers are config errors."""
        known = set(cls.__dataclass_fields__)
        unknown = set(section) - known
        if unknown:
            raise ConfigError(f"[backfill] unknown keys: {', '.join(sorted(unknown))}")
        try:
            params = cls(**{k: v for k, v in section.items()})
        except TypeError as err:
            raise ConfigError(f"[backfill] {err}") from err
        for name in ("years", "outage_h", "chunk_days", "radius_km"):
            value = getattr(params, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"[backfill] {name} must be a positive number, not {value!r}")
        if not isinstance(params.enabled, bool):
            raise ConfigError("[backfill] enabled must be true or false")
        for name, bound in (("latitude", 90.0), ("longitude", 180.0)):
            value = getattr(params, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not -bound <= value <= bound):
                raise ConfigError(f"[backfill] {name} must be a number in ±{bound:g}, "
                                  f"not {value!r}")
        if (params.latitude is None) != (params.longitude is None):
            raise ConfigError("[backfill] set both latitude and longitude, or neither")
        return params


@dataclass(slots=True)
class SourceBackfill:
    """One source's back-fill: its window, state, how many reports it brought, its error."""

    name: str
    start: datetime
    end: datetime
    state: BackfillState = "pending"
    reports: int = 0
    chunks_done: int = 0
    error: str | None = None  # the failure, with the upstream's words (duty staff, logs)
    note: str | None = None  # our own words on why it cannot run (safe to show anyone)

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "start": _iso(self.start), "end": _iso(self.end),
                "reports": self.reports, "chunks_done": self.chunks_done, "error": self.error,
                "note": self.note}


@dataclass(slots=True)
class BackfillTracker:
    """What /healthz shows about the back-fill, and whether the context line may be stated."""

    sources: dict[str, SourceBackfill] = field(default_factory=dict)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def state(self) -> BackfillState:
        states = {s.state for s in self.sources.values()}
        if not states:
            return "complete"  # nothing needed a back-fill
        if states <= {"complete"}:
            return "complete"
        if "running" in states or "pending" in states:
            return "running"
        return "failed"

    @property
    def complete(self) -> bool:
        """Every needed back-fill finished: the background is whole, the count can be said."""
        return self.state == "complete"

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "started_at": _iso(self.started_at),
                "finished_at": _iso(self.finished_at),
                "sources": {n: s.to_json() for n, s in sorted(self.sources.items())}}


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


Store = Callable[[str, ParseResult], Awaitable[None]]


async def backfill_source(source: Backfiller, record: SourceBackfill,
                          session: aiohttp.ClientSession | None, store: Store) -> None:
    """Back-fill one source over ``record``'s window; a SourceError marks it failed, never raises."""
    record.state = "running"
    try:
        parsed = await source.backfill(session, record.start, record.end)
    except SourceError as err:
        record.state = "failed"
        record.error = f"{type(err).__name__}: {err.detail}"
        log.warning("back-fill failed", extra={
            "source": source.name, "start": _iso(record.start), "end": _iso(record.end),
            "error": scrub(record.error or "")})
        return
    for reason in parsed.skipped[:20]:
        log.warning("back-fill skipped row: %s", scrub(reason), extra={"source": source.name})
    await store(source.name, parsed)
    record.reports += len(parsed.reports)
    record.chunks_done += 1
    record.state = "complete"
    log.info("back-fill complete", extra={
        "source": source.name, "start": _iso(record.start), "end": _iso(record.end),
        "reports": len(parsed.reports)})


def window(params: BackfillParams, now: datetime) -> tuple[datetime, datetime]:
    """The context window ending now: ``[now - years, now]``."""
    return now - timedelta(days=365.25 * params.years), now


# --- region, coverage and what needs a back-fill (pure) ---------------------------------------

KM_PER_DEG = 111.195  # mean great-circle km per degree of latitude (R = 6371 km)


@dataclass(frozen=True, slots=True)
class Region:
    """``[backfill] latitude, longitude, radius_km``: every place a notice could be about."""

    latitude: float
    longitude: float
    radius_km: float

    def box(self) -> tuple[float, float, float, float]:
        """(min_lat, max_lat, min_lon, max_lon) of a box holding the circle."""
        dlat = self.radius_km / KM_PER_DEG
        coslat = max(math.cos(math.radians(self.latitude)), 0.01)
        dlon = min(180.0, self.radius_km / (KM_PER_DEG * coslat))
        return (max(-90.0, self.latitude - dlat), min(90.0, self.latitude + dlat),
                max(-180.0, self.longitude - dlon), min(180.0, self.longitude + dlon))


def region_of(params: BackfillParams) -> Region | None:
    """The configured region, or None when latitude/longitude are not set."""
    if params.latitude is None or params.longitude is None:
        return None
    return Region(params.latitude, params.longitude, params.radius_km)


def plan_window(params: BackfillParams, now: datetime, covered: tuple[datetime, datetime] | None,
                last_ok_at: datetime | None) -> tuple[datetime, datetime] | None:
    """The window a source must back-fill at start-up, or None when its history is whole.

    First start (nothing covered, or less than ``years`` back): the whole window. Otherwise the
    polls have kept it current up to the source's last success; a silence longer than
    ``outage_h`` (a long outage) is back-filled from an hour before it ended.
    """
    start, _ = window(params, now)
    if covered is None or covered[0] > start + timedelta(days=1):
        return start, now
    seen_to = max(covered[1], last_ok_at or covered[1])
    if now - seen_to <= timedelta(hours=params.outage_h):
        return None
    return seen_to - timedelta(hours=1), now


def load_coverage(path: Path) -> dict[str, tuple[datetime, datetime]]:
    """What each source's completed back-fills covered (``var_dir/backfill.json``)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        log.warning("back-fill record %s unreadable (%s): back-filling afresh", path, err)
        return {}
    out = {}
    for name, span in raw.items() if isinstance(raw, dict) else ():
        try:
            out[str(name)] = (datetime.fromisoformat(span["start"]),
                              datetime.fromisoformat(span["end"]))
        except (KeyError, TypeError, ValueError):
            continue
    return out


def save_coverage(path: Path, coverage: Mapping[str, tuple[datetime, datetime]]) -> None:
    """Write the record atomically (a crash leaves the old one, never half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({n: {"start": a.isoformat(), "end": b.isoformat()}
                               for n, (a, b) in sorted(coverage.items())}, indent=1),
                   encoding="utf-8")
    tmp.replace(path)


def merge_span(old: tuple[datetime, datetime] | None, new: tuple[datetime, datetime]
               ) -> tuple[datetime, datetime]:
    """The covered span after back-filling ``new``; between an old span and a gap back-fill
    the polls kept the catalogue current (plan_window only plans a gap from the last success)."""
    if old is None:
        return new
    return min(old[0], new[0]), max(old[1], new[1])


# --- FDSN window queries --------------------------------------------------------------------


class FdsnWindowBackfill:
    """Back-fills an fdsnws-event node (FDSN or EMSC source) with starttime/endtime chunks."""

    def __init__(self, config: SourceConfig, *, region: Region, min_magnitude: float,
                 chunk_days: float) -> None:
        self.name = config.name
        self.config = config
        self.region = region
        self.min_magnitude = min_magnitude
        self.chunk_days = chunk_days

    def urls(self, start: datetime, end: datetime) -> list[str]:
        """One fdsnws query URL per chunk of the window (pure)."""
        from quakealert.sources.fdsn import OPTION_KEYS, build_query_url

        min_lat, max_lat, min_lon, max_lon = self.region.box()
        own = {k: v for k, v in self.config.params.items()
               if k not in OPTION_KEYS and k not in ("starttime", "endtime")}
        has_region = bool({"latitude", "minlatitude", "maxradius", "maxradiuskm"} & set(own))
        out = []
        at = start
        while at < end:
            upto = min(at + timedelta(days=self.chunk_days), end)
            query: dict[str, Any] = {"minmagnitude": self.min_magnitude, **own,
                                     "starttime": at, "endtime": upto}
            if not has_region:
                query.update(minlatitude=round(min_lat, 3), maxlatitude=round(max_lat, 3),
                             minlongitude=round(min_lon, 3), maxlongitude=round(max_lon, 3))
            out.append(build_query_url(self.config.url or "", None, 0.0, query))
            at = upto
        return out

    async def backfill(self, session: aiohttp.ClientSession | None, start: datetime,
                       end: datetime) -> ParseResult:
        """Every chunk in turn; SourceError from any chunk fails the back-fill (retried next
        start, from the beginning: the record is written only when every chunk came)."""
        from quakealert.formats.fdsntext import parse_fdsn_text
        from quakealert.sources.base import TEXT_TYPES, http_get

        if session is None:
            raise SourceUnavailable(self.name, self.config.url or "", "no HTTP session")
        reports: list[Report] = []
        skipped: list[str] = []
        status = self.config.params.get("status", "reviewed")
        nodata = (204, 404) if str(self.config.params.get("nodata", "")) == "404" else (204,)
        for url in self.urls(start, end):
            body = await http_get(session, url, self.config, accept=TEXT_TYPES, nodata=nodata)
            got = parse_fdsn_text(body, self.name, default_status=status)
            reports += got.reports
            skipped += got.skipped
        return ParseResult(reports=reports, skipped=skipped)


def backfiller_for(source: Any, params: BackfillParams, region: Region | None
                   ) -> Backfiller | None:
    """The back-fill client of a live source, or None when it cannot answer a window query
    (USGS summary feeds are rolling windows; a replay's background is handled apart)."""
    from quakealert.sources.cenc_catalog import Box, CencCatalogBackfill

    kind = source.config.kind
    if region is None or kind == "replay":
        return None
    if kind in ("fdsn", "emsc") and source.config.url:
        return FdsnWindowBackfill(source.config, region=region,
                                  min_magnitude=params.min_magnitude,
                                  chunk_days=params.chunk_days)
    if kind == "cenc":
        min_lat, max_lat, min_lon, max_lon = region.box()
        return CencCatalogBackfill(source.config, box=Box(min_lat, max_lat, min_lon, max_lon),
                                   min_magnitude=params.min_magnitude,
                                   chunk_days=params.chunk_days)
    return None


# --- the start-up run -------------------------------------------------------------------------

COVERAGE_FILE = "backfill.json"  # in var_dir


@dataclass(slots=True)
class LiveBackfill:
    """One live source's planned back-fill: its client and its record."""

    client: Backfiller
    record: SourceBackfill


def plan_live(sources: Mapping[str, Any], params: BackfillParams, tracker: BackfillTracker,
              *, now: datetime, coverage: Mapping[str, tuple[datetime, datetime]],
              last_ok: Mapping[str, datetime | None]) -> list[LiveBackfill]:
    """Which live sources need a back-fill now, recorded in ``tracker`` as pending. Without a
    region, each source that could back-fill is recorded as failed, saying what to set."""
    if not params.enabled:
        return []
    region = region_of(params)
    planned = []
    for name, source in sorted(sources.items()):
        if source.config.kind == "replay":
            continue
        client = backfiller_for(source, params, region or Region(0.0, 0.0, 1.0))
        if client is None:
            continue
        span = plan_window(params, now, coverage.get(name), last_ok.get(name))
        if span is None:
            continue
        record = SourceBackfill(name, *span)
        tracker.sources[name] = record
        if region is None:
            record.state = "failed"
            record.note = "no region: set [backfill] latitude and longitude"
            log.warning("cannot back-fill: [backfill] latitude/longitude not set; "
                        "context counts are left out", extra={"source": name})
            continue
        planned.append(LiveBackfill(client, record))
    return planned


async def run_live(planned: list[LiveBackfill], session: aiohttp.ClientSession | None,
                   store: Store, tracker: BackfillTracker, coverage_path: Path,
                   on_done: Callable[[], None], *, now: Callable[[], datetime]) -> None:
    """Run the planned back-fills one after another (gentle on the catalogues), record what
    each covered, and call ``on_done`` at the end (the pipeline may then state counts)."""
    tracker.started_at = now()
    coverage = load_coverage(coverage_path)
    for item in planned:
        try:
            await backfill_source(item.client, item.record, session, store)
        except Exception as err:  # the job boundary: a bug here must not leave "running" forever
            log.exception("back-fill crashed", extra={"source": item.record.name})
            item.record.state = "failed"
            item.record.error = f"{type(err).__name__}: {err}"
        if item.record.state == "complete":
            name = item.record.name
            coverage[name] = merge_span(coverage.get(name), (item.record.start, item.record.end))
            save_coverage(coverage_path, coverage)
    tracker.finished_at = now()
    log.info("back-fill %s", tracker.state)
    on_done()
