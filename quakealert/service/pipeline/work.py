"""Queued work: what ingest stored and nobody processed yet, taken in the order that
matters to residents (near or large first, far ones typed in batches), each item
ended in the transaction that stores what it caused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from quakealert.core.geo import distances_km
from quakealert.core.intensity import upper_intensity_many
from quakealert.errors import ConfigError, NotFound
from quakealert.formats.rows import FUTURE_SLACK
from quakealert.model import Event
from quakealert.service.faults import kill_point
from quakealert.store.base import IngestResult

log = logging.getLogger(__name__)

MAX_FAILURES = 3  # attempts at one queued event before it is parked for duty staff


# A far sequence growing through a backlog is typed at most this often (wall seconds); in
# between it is marked stale and typed in full once the queue is empty. Typing the 20,000-event
# Ridgecrest sequence after every batch was half of the backlog's time (bench_backlog.py).
FAR_RETYPE_S = 5.0


@dataclass(frozen=True, slots=True)
class Region:
    """A circle the office watches whether or not residents live there yet."""

    latitude: float
    longitude: float
    radius_km: float


@dataclass(frozen=True, slots=True)
class WorkParams:
    """How queued work is ordered and cut (``[pipeline]``): what can concern residents first."""

    regions: tuple[Region, ...] = ()
    large_magnitude: float = 6.0  # always first, wherever it is
    chunk_s: float = 0.25  # far events per transaction: about this much work, then commit
    # Within this of a resident, an event is taken in time order with the felt ones even when
    # nobody feels it: it may belong to their sequence (the 200 km region, §8) and type it.
    near_km: float = 300.0
    coarse_km: float = 1000.0  # farther than this from every resident: not felt by anyone

    @classmethod
    def from_section(cls, section: dict[str, Any]) -> WorkParams:
        unknown = set(section) - {"regions", "large_magnitude", "chunk_s"}
        if unknown:
            raise ConfigError(f"[pipeline] unknown keys: {', '.join(sorted(unknown))}")
        try:
            regions = tuple(Region(float(r["latitude"]), float(r["longitude"]),
                                   float(r["radius_km"])) for r in section.get("regions", ()))
            made = cls(regions, float(section.get("large_magnitude", 6.0)),
                       float(section.get("chunk_s", 0.25)))
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError("[pipeline] regions = [{latitude, longitude, radius_km}], "
                              f"large_magnitude and chunk_s are numbers ({err})") from None
        if not 0 < made.chunk_s <= 5 or any(not 0 < r.radius_km <= 5000 for r in regions):
            raise ConfigError("[pipeline] chunk_s in (0, 5], region radius_km in (0, 5000]")
        return made


class WorkQueue:
    """The pipeline's queue (``store.work``): placing, taking and ending work items. Part of :class:`Pipeline`, whose
    ``__init__`` holds the state these methods share."""

    def process(self, result: IngestResult, *, now: datetime) -> list[str]:
        """Every changed event of one batch, in origin-time order, then ticks up to ``now``."""
        triggers = {**{i: "revised" for i in result.revised},
                    **{i: "deleted" for i in result.deleted},
                    **{i: "new" for i in result.created}}
        events = []
        latest = max(now, datetime.now(UTC)) + FUTURE_SLACK
        for event_id, trigger in triggers.items():
            try:
                event = self.store.event(event_id)
            except NotFound:
                self._done(event_id)
                continue
            if self._schedulable([event], latest):
                events.append((event, trigger))
        events.sort(key=lambda et: (et[0].origin_at, et[0].id))
        notices: list[str] = []
        for event, trigger in events:
            notices += self.process_event(event, trigger, now=now)
        if self.clock is None or now > self.clock:
            notices += self.advance(now)
        self.refresh_stale()
        return notices

    def process_work(self, *, now: datetime, budget_s: float | None = None) -> list[str]:
        """Queued work (the ``work`` table: what ingest stored and nobody processed yet, e.g.
        before a crash), what can concern residents first, then ticks up to ``now``.

        With ``budget_s`` it stops after about that much work (the daemon's worker comes back
        for the rest, so a stop request or a newer urgent event waits at most that long).
        """
        started = time.perf_counter()
        notices: list[str] = []
        failed: set[str] = set()  # tried once in this call: next call (next step) again
        while budget_s is None or time.perf_counter() - started < budget_s:
            self.prioritise()  # anything stored meanwhile is placed before the next round
            rows = [r for r in self.store.work.next_work(200) if r[0] not in failed]
            if not rows:
                break
            far = [r for r in rows if r[3] == 0]
            if len(far) == len(rows):
                try:
                    self.process_far([(r[0], r[1]) for r in far], now=now,
                                     budget_s=self.work.chunk_s)
                except Exception:  # rolled back: find the one that fails, one at a time
                    log.exception("pipeline: a batch of far events failed; one at a time")
                    for r in far:
                        try:
                            self.process_far([(r[0], r[1])], now=now)
                        except Exception as err:
                            log.exception("pipeline failed on an event", extra={"event_id": r[0]})
                            self._failed(r[0], err)
                            failed.add(r[0])
                continue
            for event_id, trigger, received_at, priority in rows:
                if priority == 0:
                    break  # a batch of far ones next round, after anything new and urgent
                try:
                    event = self.store.event(event_id)
                except NotFound:  # merged into another event since: nothing left to process
                    self._done(event_id)
                    continue
                try:
                    made = self.process_event(event, trigger, now=now)
                except Exception as err:  # rolled back; the others must not wait behind it
                    log.exception("pipeline failed on an event", extra={"event_id": event_id})
                    self._failed(event_id, err)
                    failed.add(event_id)
                    continue
                for nid in made:
                    self._response_at.setdefault(nid, received_at)
                notices += made
                if budget_s is not None and time.perf_counter() - started >= budget_s:
                    break
        if self.clock is not None and now > self.clock:
            notices += self.advance(now)
        if not self.pending_work():
            self.refresh_stale()  # full statistics of a big sequence: once the queue is empty
        return notices

    def prioritise(self, limit: int = 50_000) -> int:
        """Mark queued events 1 when they can concern residents (felt at some resident's place,
        inside a configured region, or large), else 0; returns how many were marked."""
        rows = self.store.work.unprioritised(limit)
        if not rows:
            return 0
        lat = np.array([r[2] for r in rows], dtype=np.float64)
        lon = np.array([r[3] for r in rows], dtype=np.float64)
        depth = np.array([r[4] if r[4] is not None else 10.0 for r in rows], dtype=np.float64)
        mag = np.array([r[5] if r[5] is not None else -9.0 for r in rows], dtype=np.float64)
        near = self.concerns(lat, lon, depth, mag, count_large=False)
        for k, r in enumerate(rows):
            if not near[k] and r[1] != "new":
                # A revision or deletion of something residents were told about matters
                # wherever it moved to.
                seq_id = self.engine.sequence_of(r[0])
                near[k] = seq_id is not None and self._has_threads(seq_id)
        # 2: near residents or a region, in time order with the felt ones; 1: large elsewhere;
        # 0: far from everyone.
        level = np.where(near, 2, np.where(mag >= self.work.large_magnitude, 1, 0))
        with self.store.transaction() as tx:
            tx.work.set_priorities([(r[0], int(level[k])) for k, r in enumerate(rows)])
        return len(rows)

    def concerns(self, lat: np.ndarray, lon: np.ndarray, depth_km: np.ndarray,
                 magnitude: np.ndarray, *, count_large: bool = True) -> np.ndarray:
        """Which events can concern residents: large, inside a region, near or felt by someone."""
        out = (magnitude >= self.work.large_magnitude) if count_large else np.zeros(
            len(lat), dtype=bool)
        for region in self.work.regions:
            out |= distances_km(region.latitude, region.longitude, lat, lon) <= region.radius_km
        cells = self._cells()
        if cells is None:
            return out
        coarse_lat, coarse_lon, cell_lat, cell_lon, floor = cells
        todo = np.flatnonzero(~out)
        nearest = np.full(len(todo), np.inf)
        for c_lat, c_lon in zip(coarse_lat.tolist(), coarse_lon.tolist(), strict=True):
            nearest = np.minimum(nearest, distances_km(c_lat, c_lon, lat[todo], lon[todo]))
        for k in todo[nearest <= self.work.coarse_km].tolist():
            if distances_km(lat[k], lon[k], cell_lat, cell_lon).min() <= self.work.near_km:
                out[k] = True
                continue
            upper = upper_intensity_many(magnitude[k], depth_km[k], lat[k], lon[k], cell_lat,
                                         cell_lon, sigma_factor=self.policy.sigma_factor)
            out[k] = bool(upper.max() >= floor)
        return out

    def _cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float] | None:
        """Where residents are, as 0.1° and 1° cells, and the lowest upper intensity that could
        reach any resident's threshold (degree n starts at n - 0.5)."""
        rec = self.recipients()
        if not len(rec.ids):
            return None
        if self._cells_key != rec.key:
            fine = np.unique(np.round(np.column_stack([rec.lat, rec.lon]), 1), axis=0)
            coarse = np.unique(np.round(fine), axis=0)
            thresholds = np.where(rec.min_intensity > 0, rec.min_intensity,
                                  self.policy.felt_degree)
            self._cells_cache = (coarse[:, 0], coarse[:, 1], fine[:, 0], fine[:, 1],
                                 float(thresholds.min()) - 0.5)
            self._cells_key = rec.key
        return self._cells_cache

    def process_far(self, items: Sequence[tuple[str, str]], *, now: datetime,
                    budget_s: float | None = None) -> int:
        """Events far from every resident and region: into their sequences, typed and stored,
        without the resident policy; one transaction for as many as ``budget_s`` allows.
        Returns how many were processed."""
        # No transaction around the batch: the write lock is held only for each short write, so
        # the loop's connection never waits long for it. A crash midway leaves the work rows,
        # and doing a far event again is harmless (the same membership, the same type).
        started = time.perf_counter()
        taken: list[str] = []
        by_seq: dict[str, list[Event]] = {}
        touched: set[str] = set()
        for event_id, _trigger in items:
            taken.append(event_id)
            try:
                event = self.store.event(event_id)
            except NotFound:
                continue
            touched |= self.engine.upsert(event)
            seq_id = self.engine.sequence_of(event_id)
            if seq_id is not None:
                by_seq.setdefault(seq_id, []).append(event)
            if budget_s is not None and time.perf_counter() - started >= budget_s / 2:
                break  # the other half is for typing the sequences touched
        at = self.clock or now
        for seq_id in sorted(touched | set(by_seq)):
            if not self.engine.has(seq_id):
                self.store.sequences.delete_sequence(seq_id)
                continue
            seq = self.engine.sequence(seq_id)
            if seq_id in self._scheduled:
                for e in by_seq.get(seq_id, ()):
                    self._schedule(seq, after=at, event=e)
            else:
                self._schedule(seq, after=at)
            typed = self._far_typed.get(seq_id)
            if typed is not None and time.monotonic() - typed < FAR_RETYPE_S:
                self._stale[seq_id] = at  # nobody is told about it: its type may lag a little
                continue
            self._far_typed[seq_id] = time.monotonic()
            self.evaluate(seq_id, at, "tick", None, policy=False)
        with self.store.transaction() as tx:
            tx.work.finish_work(taken)
        return len(taken)

    def pending_work(self) -> int:
        """How many changed events wait for the pipeline (parked ones not counted)."""
        return self.store.work.pending_work()

    def _failed(self, event_id: str, err: Exception) -> None:
        """Count a failed attempt; park the item after MAX_FAILURES so the queue goes on."""
        self.store.work.fail_work(event_id, f"{type(err).__name__}: {err}"[:500],
                                  max_failures=MAX_FAILURES)

    def process_event(self, event: Event, trigger: str, *, now: datetime) -> list[str]:
        """One changed event: its sequences, decisions, notices and outbox rows, and the end of
        its work item, in one transaction; a crash before the commit leaves the work queued."""
        at = min(event.origin_at, now)
        notices: list[str] = []
        if self.clock is None or at > self.clock:
            notices += self.advance(at)
            self.clock = at
        with self.store.transaction():
            made = self.apply(event, trigger, at=self.clock)
            self._done(event.id)
        if made:
            kill_point("decided")
        return notices + made

    def _done(self, event_id: str) -> None:
        self.store.work.finish_work([event_id])
