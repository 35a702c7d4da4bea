"""Pipeline time: ticks at the moments a sequence's type can change, the daily swarm
summary, and the approval timeouts that release held notices.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from quakealert.core.sequences import QuakeSequence
from quakealert.errors import ConfigError
from quakealert.model import Event

log = logging.getLogger(__name__)

# Moments after each member when the Chinese scheme's evidence rules can change the type
# (seismology.md §8.2: 30 min no-type window, 12 h span, 24 h, 7 d isolated guard, 90 d final).
TICK_OFFSETS = (
    timedelta(minutes=30, seconds=1), timedelta(hours=3), timedelta(hours=12, seconds=1),
    timedelta(hours=24, seconds=1), timedelta(days=7, seconds=1), timedelta(days=90, seconds=1),
)
SUMMARY_EVERY = timedelta(hours=24)
TICK_COALESCE = timedelta(minutes=10)  # at most one timer evaluation per sequence in this
ACTIVE_FOR = timedelta(days=90)  # sequences are ticked until final (§8.2: final at 90 d)


@dataclass(frozen=True, slots=True)
class ApprovalRule:
    """A message kind that waits for a duty officer, and how long at most."""

    kind: str
    timeout_s: float


# Felt-quake guidance never waits (issue 5 §2): residents who felt it need it now.
NEVER_WAIT = frozenset({"quick_report", "official_report", "felt_guidance", "strong_guidance",
                        "update", "cancel"})


def approval_rules(section: dict[str, Any]) -> dict[str, ApprovalRule]:
    """`[approvals] swarm_advisory = 600` (seconds): kinds that need approval, with timeouts."""
    rules = {}
    for kind, timeout in section.items():
        if kind in NEVER_WAIT or kind not in ("swarm_advisory", "test"):
            raise ConfigError(f"[approvals] {kind}: only swarm_advisory and test may wait for "
                              "approval; felt-quake guidance is never held back")
        if not isinstance(timeout, (int, float)) or not 0 < timeout <= 86400:
            raise ConfigError(f"[approvals] {kind}: timeout must be 1..86400 seconds")
        rules[kind] = ApprovalRule(kind, float(timeout))
    return rules


class Timers:
    """Ticks, daily summaries and approval timeouts. Part of :class:`Pipeline`, whose
    ``__init__`` holds the state these methods share."""

    def _schedule(self, seq: QuakeSequence, *, after: datetime, event: Event | None = None
                  ) -> None:
        """Ticks at the moments the type can change after each member, and the daily one.

        A sequence seen for the first time (or renamed by a merge) gets every member's ticks;
        after that, only the new event's, so a dense sequence costs O(1) per event.
        """
        if seq.id in self._scheduled and event is not None:
            members: Sequence[Event] = (event,)
        else:
            members = seq.events
            self._scheduled.add(seq.id)
        for e in members:
            for off in TICK_OFFSETS:
                try:
                    at = e.origin_at + off
                except OverflowError:  # defensive: load() and ingest keep such times out
                    log.warning("origin out of range: no tick", extra={
                        "event_id": e.id, "origin_at": e.origin_at.isoformat()})
                    break
                if at > after:
                    heapq.heappush(self._ticks, (at, seq.id, False))
        if seq.id not in self._daily:
            try:
                self._push_daily(seq, after)
            except OverflowError:
                log.warning("no daily tick (times out of range)", extra={"sequence_id": seq.id})

    def _push_daily(self, seq: QuakeSequence, after: datetime) -> None:
        """The next daily tick (swarm summaries) while the sequence is active."""
        days = max(0, int((after - seq.first_at) / SUMMARY_EVERY)) + 1
        t = seq.first_at + days * SUMMARY_EVERY
        if t <= seq.last_at + ACTIVE_FOR:
            self._daily[seq.id] = t
            heapq.heappush(self._ticks, (t, seq.id, True))
        else:
            self._daily.pop(seq.id, None)

    def advance(self, to: datetime) -> list[str]:
        """Run every due tick up to ``to`` (type changes after 30 min, daily summaries...)."""
        notices: list[str] = []
        while self._ticks and self._ticks[0][0] <= to:
            at, seq_id, daily = heapq.heappop(self._ticks)
            kinds = [daily]
            while self._ticks and self._ticks[0][:2] == (at, seq_id):  # same moment: one tick
                kinds.append(heapq.heappop(self._ticks)[2])
            daily, rule = any(kinds), not all(kinds)
            if not self.engine.has(seq_id):
                continue
            if daily and self._daily.get(seq_id) == at:
                self._push_daily(self.engine.sequence(seq_id), at)
            if not rule and not self._has_threads(seq_id):
                continue  # the daily tick is for swarm summaries: nobody to summarise to
            last = self._last_tick.get(seq_id)
            if last is not None and at - last < TICK_COALESCE:
                # A dense sequence schedules ticks minutes apart; one evaluation per
                # TICK_COALESCE is enough, and a skipped tick moves to the end of the window
                # so no threshold waits longer than that.
                heapq.heappush(self._ticks, (last + TICK_COALESCE, seq_id, not rule))
                continue
            self._last_tick[seq_id] = at
            self.clock = max(self.clock or at, at)
            notices += self.evaluate(seq_id, at, "tick", None)
        self.clock = max(self.clock or to, to)
        return notices

    def release_expired(self, wall: datetime) -> list[str]:
        """Approval timeouts: release the pre-approved template; nothing waits longer."""
        released = []
        for row in self.store.notices.pending_approval():
            rule = self.approvals.get(row["kind"].split("+")[0])
            timeout = rule.timeout_s if rule else 0.0
            if row["state_at"] + timeout <= wall.timestamp():
                self.store.notices.set_notice_state(
                    row["id"], "released", at=wall,
                    reason=f"auto-released after {timeout:.0f} s without a duty decision"
                           " (pre-approved template)")
                released.append(row["id"])
        return released
