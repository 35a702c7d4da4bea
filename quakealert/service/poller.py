"""One poll of one source: fetch, parse, store, and keep the source's health record.

`poll_once` is the job boundary: it catches every SourceError once and records it, so a failing
source never stops the daemon or the other sources (STYLE do/don't 5). Tests call it directly.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from quakealert.core.associate import Priorities
from quakealert.errors import SourceError
from quakealert.formats.rows import screen_future
from quakealert.logs import scrub
from quakealert.model import ParseResult, Report
from quakealert.service.faults import kill_point
from quakealert.sources.base import Source
from quakealert.store.base import IngestResult, Store, StoreBusy, latest_versions
from quakealert.store.instants import epoch_or_none as ts
from quakealert.store.instants import from_epoch as dt

log = logging.getLogger(__name__)

BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 1800.0
BIG_BODY_BYTES = 256 * 1024  # parse larger bodies in a worker thread, off the event loop
BIG_BATCH = 2000  # batches above this are stored in chunks of this many, one transaction each


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while a big body becomes reports: they are acyclic, and the
    collector rescanning 100k fresh objects costs ~20 % of the parse (bench_ingest)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(slots=True)
class SourceHealth:
    """What duty staff see about a source: last success, last error, failures, back-off."""

    name: str
    last_ok_at: datetime | None = None
    last_error_at: datetime | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    backoff_until: datetime | None = None
    last_since: datetime | None = None  # start of the last successful poll: next `since`
    polls: int = 0
    reports_total: int = 0
    skipped_total: int = 0

    def to_row(self) -> dict[str, object]:
        return {
            "name": self.name, "last_ok_at": ts(self.last_ok_at),
            "last_error_at": ts(self.last_error_at), "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
            "backoff_until": ts(self.backoff_until), "last_since": ts(self.last_since),
            "polls": self.polls, "reports_total": self.reports_total,
            "skipped_total": self.skipped_total,
        }

    @classmethod
    def from_row(cls, row: dict[str, object]) -> SourceHealth:
        return cls(
            name=str(row["name"]), last_ok_at=dt(row["last_ok_at"]),  # type: ignore[arg-type]
            last_error_at=dt(row["last_error_at"]),  # type: ignore[arg-type]
            last_error=row["last_error"],  # type: ignore[arg-type]
            consecutive_failures=int(row["consecutive_failures"]),  # type: ignore[call-overload]
            backoff_until=dt(row["backoff_until"]),  # type: ignore[arg-type]
            last_since=dt(row["last_since"]),  # type: ignore[arg-type]
            polls=int(row["polls"]), reports_total=int(row["reports_total"]),  # type: ignore
            skipped_total=int(row["skipped_total"]),  # type: ignore[call-overload]
        )


@dataclass(frozen=True, slots=True)
class PollStatus:
    """The outcome of one poll."""

    source: str
    ok: bool
    fetched_at: datetime
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: int = 0
    error: str | None = None
    latency_s: float = 0.0
    changed_event_ids: tuple[str, ...] = ()
    skipped_backoff: bool = False


def ingest_chunked(store: Store, reports: list[Report], now: datetime,
                   priorities: Priorities) -> IngestResult:
    """Store a batch in chunks of BIG_BATCH, each one transaction with the work it queues, so a
    100k-row response never holds the write lock for seconds (the pipeline commits between)."""
    if len(reports) <= BIG_BATCH:
        return store.ingest(reports, now=now, priorities=priorities)
    ordered = latest_versions(reports)
    out = IngestResult()
    # Newest chunk first: in a backlog the fresh quakes (the ones residents may be feeling)
    # reach the pipeline after one chunk, not after years of history (bench_backlog.py).
    for i in reversed(range(0, len(ordered), BIG_BATCH)):
        part = store.ingest(ordered[i : i + BIG_BATCH], now=now, priorities=priorities)
        kill_point("ingested")  # fault tests: a chunk stored, its work queued, none processed
        out.created += part.created
        out.revised += part.revised
        out.deleted += part.deleted
        out.unchanged += part.unchanged
        out.flags.update(part.flags)
    return out


def _parse_paused(source: Source, body: bytes) -> ParseResult:
    with gc_paused():
        return source.parse(body)


def backoff_s(failures: int, retry_after_s: float | None, interval_s: float) -> float:
    """Exponential back-off from the poll interval, capped; Retry-After wins when it is longer."""
    base = max(BACKOFF_BASE_S, interval_s)
    delay = min(BACKOFF_CAP_S, base * 2 ** max(0, failures - 1))
    delay *= 0.8 + 0.4 * random.random()  # jitter: sources failing together don't retry together
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, BACKOFF_CAP_S * 4))
    return delay


OnIngest = Callable[[str, IngestResult, datetime], Awaitable[None]]


@dataclass(slots=True)
class Poller:
    """Polls sources into the store and hands every batch of changes to ``on_ingest``."""

    store: Store
    session: aiohttp.ClientSession
    priorities: Priorities = field(default_factory=Priorities)
    on_ingest: OnIngest | None = None
    health: dict[str, SourceHealth] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    metrics: Any = None  # quakealert.api.metrics.Metrics when the daemon runs

    async def _save_health_apart(self, h: SourceHealth) -> None:
        """Save a failure's health record on a connection of its own, off the loop: the store
        may be what failed (a held lock would otherwise stall the loop for busy_timeout)."""
        row = h.to_row()
        await self.store.off_loop(lambda store: store.save_health(row))

    def health_of(self, name: str) -> SourceHealth:
        if name not in self.health:
            row = self.store.load_health().get(name)
            self.health[name] = SourceHealth.from_row(row) if row else SourceHealth(name)
        return self.health[name]

    async def poll_once(self, source: Source, *, now: datetime | None = None,
                        force: bool = False) -> PollStatus:
        """Fetch, parse and store one source; never raises for a source failure."""
        now = now or datetime.now(UTC)
        h = self.health_of(source.name)
        if not force and h.backoff_until is not None and now < h.backoff_until:
            return PollStatus(source.name, False, now, error=h.last_error, skipped_backoff=True)
        started = time.perf_counter()
        h.polls += 1
        try:
            body = await source.fetch(self.session, h.last_since)
            if len(body) > BIG_BODY_BYTES:
                parsed: ParseResult = await asyncio.to_thread(_parse_paused, source, body)
            else:
                parsed = source.parse(body)
            for reason in parsed.skipped[:20]:
                log.warning("skipped row: %s", scrub(reason), extra={"source": source.name})
            return await self.store_reports(source.name, parsed, now=now, started=started,
                                            since=now)
        except SourceError as err:
            return await self._failed(source, h, now, err, started)
        except Exception as err:  # the job boundary: a bug or a full disk must not stop polling
            log.exception("poll failed unexpectedly", extra={"source": source.name})
            return await self._failed(source, h, now, err, started)

    async def store_reports(self, name: str, parsed: ParseResult, *, now: datetime,
                            started: float | None = None, since: datetime | None = None
                            ) -> PollStatus:
        """Ingest parsed reports from ``name`` (also used by push sources such as EMSC's socket)."""
        started = time.perf_counter() if started is None else started
        h = self.health_of(name)
        parsed = screen_future(parsed, datetime.now(UTC))  # the wall clock: `now` may be a replay's
        async with self.lock:
            # Off the loop, on a connection of its own: the pipeline's thread may hold the
            # write lock for a moment, and the loop's connection serves the API meanwhile.
            result = await self.store.off_loop(
                lambda store: ingest_chunked(store, parsed.reports, now, self.priorities))
            h.last_ok_at = now
            if since is not None:
                h.last_since = since
            h.consecutive_failures = 0
            h.backoff_until = None
            h.reports_total += len(parsed.reports)
            h.skipped_total += len(parsed.skipped)
            await self._save_health_apart(h)
        latency = time.perf_counter() - started
        if self.metrics is not None:
            self.metrics.poll_duration.labels(name).observe(latency)
            self.metrics.events_ingested.labels(name).inc(len(result.changed))
        status = PollStatus(
            name, True, now, new=len(result.created), updated=len(result.revised) + len(
                result.deleted), unchanged=result.unchanged, skipped=len(parsed.skipped),
            latency_s=latency, changed_event_ids=tuple(result.changed),
        )
        if result.created or result.revised or result.deleted:
            log.info("stored", extra={
                "source": name, "new": len(result.created), "revised": len(result.revised),
                "deleted": len(result.deleted), "unchanged": result.unchanged,
                "skipped": len(parsed.skipped), "took_s": round(latency, 3)})
        kill_point("ingested")
        if self.on_ingest is not None and result.changed:
            await self.on_ingest(name, result, now)
        return status

    async def _failed(self, source: Source, h: SourceHealth, now: datetime, err: Exception,
                      started: float) -> PollStatus:
        h.consecutive_failures += 1
        if isinstance(err, SourceError):
            h.last_error = f"{type(err).__name__}: {err.detail}"
            retry_after_s = err.retry_after_s
        else:
            h.last_error = f"internal error: {type(err).__name__}: {err}"[:500]
            retry_after_s = None
        h.last_error_at = now
        delay = backoff_s(h.consecutive_failures, retry_after_s, source.config.interval_s)
        h.backoff_until = now + timedelta(seconds=delay)
        try:
            await self._save_health_apart(h)
        except (StoreBusy, *self.store.failures) as save_err:
            # the store is failing (full disk, lock): the record is kept in memory
            log.warning("cannot save health", extra={"source": source.name, "error": str(save_err)})
        if self.metrics is not None:
            self.metrics.poll_duration.labels(source.name).observe(time.perf_counter() - started)
        log.warning("poll failed", extra={
            "source": source.name, "failures": h.consecutive_failures, "retry_in_s": round(delay),
            "error": scrub(h.last_error or "")})
        return PollStatus(source.name, False, now, error=h.last_error,
                          latency_s=time.perf_counter() - started)
