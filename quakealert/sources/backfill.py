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

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, runtime_checkable

import aiohttp

from quakealert.errors import ConfigError, SourceError
from quakealert.model import ParseResult

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
        for name in ("years", "outage_h", "chunk_days"):
            value = getattr(params, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"[backfill] {name} must be a positive number, not {value!r}")
        if not isinstance(params.enabled, bool):
            raise ConfigError("[backfill] enabled must be true or false")
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
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "start": _iso(self.start), "end": _iso(self.end),
                "reports": self.reports, "chunks_done": self.chunks_done, "error": self.error}


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
        log.warning("source=%s back-fill %s..%s failed: %s", source.name,
                    _iso(record.start), _iso(record.end), record.error)
        return
    for reason in parsed.skipped[:20]:
        log.warning("source=%s back-fill skipped row: %s", source.name, reason)
    await store(source.name, parsed)
    record.reports += len(parsed.reports)
    record.chunks_done += 1
    record.state = "complete"
    log.info("source=%s back-fill %s..%s complete: %d reports", source.name,
             _iso(record.start), _iso(record.end), len(parsed.reports))


def window(params: BackfillParams, now: datetime) -> tuple[datetime, datetime]:
    """The context window ending now: ``[now - years, now]``."""
    return now - timedelta(days=365.25 * params.years), now
