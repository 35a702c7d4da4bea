"""Sequences: events into the engine, each touched sequence typed (core.classify
composed with core.sequences here) and stored, statistics refreshed when due.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from quakealert.core.classify import Classification, classify_in, sequence_to_json
from quakealert.core.sequences import QuakeSequence
from quakealert.errors import NotFound
from quakealert.formats.rows import EARLIEST_AT, FUTURE_SLACK
from quakealert.model import Event
from quakealert.service.pipeline.timers import ACTIVE_FOR
from quakealert.store.base import IngestResult

log = logging.getLogger(__name__)

DIAGNOSTICS_EVERY = timedelta(minutes=10)  # pipeline time between statistics refreshes
SMALL_SEQUENCE = 50  # below this, statistics are cheap (and the Omori fit needs >= 50 events)


class Sequencing:
    """The sequence engine kept in step with the store, and typing. Part of :class:`Pipeline`, whose
    ``__init__`` holds the state these methods share."""

    def load(self) -> None:
        """Rebuild the engine from stored events (restart): no notices are re-sent."""
        events = self._schedulable(self.store.events(order="time-asc", limit=None),
                                   datetime.now(UTC) + FUTURE_SLACK)
        self.engine.load(events)  # the batch path: same membership as upserts, ~10x faster
        latest = max((e.origin_at for e in events), default=None)
        if latest is not None:
            for seq in self.engine.sequences():
                if latest - seq.last_at <= ACTIVE_FOR:
                    self._schedule(seq, after=latest)
        log.info("pipeline loaded", extra={
            "events": len(events), "sequences": len(self.engine.sequence_ids())})

    @staticmethod
    def _schedulable(events: list[Event], latest: datetime) -> list[Event]:
        """Stored events whose times can become schedules: a row dated 9999-12-01 or
        0001-01-01 that got into the store (before ingest validated times) is left out with a
        warning instead of making every start fail with OverflowError (issue 9)."""
        bad = [e for e in events if not EARLIEST_AT <= e.origin_at <= latest]
        for e in bad[:10]:
            log.warning("origin out of range: not sequenced", extra={
                "event_id": e.id, "origin_at": e.origin_at.isoformat()})
        if not bad:
            return events
        return [e for e in events if EARLIEST_AT <= e.origin_at <= latest]

    def apply(self, event: Event, trigger: str, *, at: datetime) -> list[str]:
        """Put one event into the engine and evaluate every sequence it touched."""
        before = self.engine.sequence_of(event.id)
        retyped = not event.is_earthquake and event.status != "deleted"
        if retyped:
            # the engine leaves it out of every sequence; filed under the one it leaves
            self._not_an_earthquake(event, at, before or "")
        elif trigger == "revised" and before is None:
            trigger = "new"  # e.g. CENC's automatic 疑爆 revised to 天然地震: a quake, first seen
        touched = self.engine.upsert(event)
        notices: list[str] = []
        for seq_id in sorted(touched):
            if not self.engine.has(seq_id):
                self.store.sequences.delete_sequence(seq_id)
                continue
            seq = self.engine.sequence(seq_id)
            inside = self.engine.sequence_of(event.id) == seq_id
            self._schedule(seq, after=at, event=event if inside else None)
            notices += self.evaluate(seq_id, at, trigger if inside else "tick",
                                     event if inside else None)
        if before is not None and (trigger == "deleted" or retyped):
            # a deletion, or a quake residents were told about that the agency now calls an
            # explosion, quarry blast...: what was sent is cancelled (messages.md §8 K7)
            notices += self._cancel_deleted(before, event, at,
                                            retyped=retyped and trigger != "deleted")
        return notices

    def evaluate(self, seq_id: str, at: datetime, trigger: str, event: Event | None, *,
                 policy: bool = True) -> list[str]:
        """Classify one sequence at ``at``, store it, and run the policy for its residents.

        The type is decided afresh every time. The statistics and the forecast (an Omori fit,
        the ZBZ forest, the RJ integral: tens of ms for a big sequence) are refreshed when the
        type changes and at most every DIAGNOSTICS_EVERY of pipeline time; in
        between, the stored sequence is marked stale and refreshed at the end of the batch.
        """
        seq = self.engine.sequence(seq_id)
        cls = self._classify(seq_id, at, diagnostics=False)
        last = self._full_at.get(seq_id)
        full = (last is None or at - last >= DIAGNOSTICS_EVERY
                or self._saved_type.get(seq_id) != (cls.type, cls.final)
                or len(seq.events) < SMALL_SEQUENCE)
        if full:
            cls = self._classify(seq_id, at)
        doc = sequence_to_json(seq, cls, at) if full else None  # CPU: before the write lock
        with self.store.transaction():
            if doc is not None:
                self._save(seq, cls, at, doc)
            else:
                self._stale[seq_id] = at
            if not policy:
                return []
            result = self._policy_round(seq, cls, at, trigger, event)
            self._enqueue(result.notice_ids, at)
        for nid in result.notice_ids:  # yesterday's summary must not wait for an approval
            for old in self.store.approvals.withdraw_superseded(nid, now=datetime.now(UTC)):
                log.info("notice withdrawn: superseded", extra={"notice_id": old, "by": nid})
        return result.notice_ids

    def _classify(self, seq_id: str, at: datetime, *, diagnostics: bool = True
                  ) -> Classification:
        cls = classify_in(self.engine, seq_id, at, diagnostics=diagnostics)
        if not self.context_ready and cls.context is not None:
            # The start-up back-fill is not complete: no count rather than a wrong one.
            cls = replace(cls, context=None)
        return cls

    def absorb(self, result: IngestResult, *, at: datetime) -> None:
        """Back-filled history: its events join sequences and are typed at ``at``, but no
        resident is told about them (sources/backfill.py)."""
        events = []
        for event_id in result.changed:
            try:
                events.append(self.store.event(event_id))
            except NotFound:
                continue
        touched: set[str] = set()
        for event in sorted(events, key=lambda e: (e.origin_at, e.id)):
            touched |= self.engine.upsert(event)
        for seq_id in sorted(touched):
            if not self.engine.has(seq_id):
                self.store.sequences.delete_sequence(seq_id)
                continue
            seq = self.engine.sequence(seq_id)
            self._save(seq, self._classify(seq_id, at), at)
            if at - seq.last_at <= ACTIVE_FOR:
                self._schedule(seq, after=at)
        log.info("pipeline absorbed back-filled events", extra={
            "events": len(events), "sequences": len(touched)})

    def _save(self, seq: QuakeSequence, cls: Classification, at: datetime,
              doc: dict[str, Any] | None = None) -> None:
        if self.store.sequences.save_sequence(doc or sequence_to_json(seq, cls, at), at):
            log.info("sequence typed", extra={
                "sequence_id": seq.id, "type": cls.type, "final": cls.final, "at": at.isoformat()})
        self._full_at[seq.id] = at
        self._saved_type[seq.id] = (cls.type, cls.final)
        self._stale.pop(seq.id, None)

    def refresh_stale(self) -> None:
        """Store the full classification of every sequence evaluated only for its type."""
        for seq_id, at in sorted(self._stale.items()):
            if self.engine.has(seq_id):
                seq = self.engine.sequence(seq_id)
                self._save(seq, self._classify(seq_id, at), at)
        self._stale.clear()
