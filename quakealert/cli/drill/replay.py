"""Running a drill: the pipeline with timings, recorder channels instead of delivery, and the
replay of the reports at scenario time on a throw-away store.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import ClientSession

from quakealert.channels import CHANNELS
from quakealert.channels.base import DeliveryResult, Recipient
from quakealert.cli.drill.report import CAP_SENDER, build_report, times
from quakealert.cli.drill.scenario import DrillInputError, Population
from quakealert.config import Settings
from quakealert.model import Event, Notice, Report
from quakealert.service.dispatch import Outbox, OutboxSettings
from quakealert.service.pipeline import Pipeline
from quakealert.store import open_file
from quakealert.store.base import Store

# Without --until the clock runs on past the last event so its 30 min and 24 h rules play out.
DEFAULT_AFTER = timedelta(hours=24, minutes=1)
QUIET_DEFER_MAX = timedelta(hours=10)  # longest quiet-hours wait of a non-urgent notice
MAX_GAP_S = 10.0  # --speed N: a quiet gap never takes longer than this on the wall clock
STEP_S = 0.05  # --speed N: how often the pipeline clock is moved on during a gap


# -- recorder channels and a timed pipeline -------------------------------------------------


@dataclass(slots=True)
class RecorderChannel:
    """Stands in for a delivery channel: records what would be delivered and sends nothing."""

    name: str
    delivered: list[tuple[str, int]] = field(default_factory=list)  # (notice id, subscriber id)

    async def deliver(self, notice: Notice, recipient: Recipient, session: ClientSession, *,
                      now: datetime) -> DeliveryResult:
        self.delivered.append((notice.id, recipient.subscriber_id))
        return DeliveryResult(notice_id=notice.id, channel=self.name, target="recorder", ok=True)


@dataclass(frozen=True, slots=True)
class NoticeTiming:
    """Wall-clock facts about one notice (perf_counter seconds)."""

    trigger: str  # new | revised | deleted | tick (a time rule fell due)
    taken_up: float  # the event's ingest began, or the pipeline started evaluating the tick
    enqueued: float
    ingested: float | None  # the latest ingest of the notice's event before it was enqueued


class TimedPipeline(Pipeline):
    """The pipeline, noting per notice when its trigger was taken up and when it was enqueued.

    ``evaluate`` and ``apply`` return only after their notices are in the outbox, so the time
    they return is the enqueue time.
    """

    def __init__(self, store: Store, settings: Settings, *,
                 scenario_timeouts: bool = True) -> None:
        super().__init__(store, settings, exercise=True)
        # False: held notices wait on the wall clock, as in the daemon's replay
        self.scenario_timeouts = scenario_timeouts
        self.ingested_at: dict[str, float] = {}
        self.timings: dict[str, NoticeTiming] = {}
        self.held: dict[str, float] = {}  # notice id -> approval timeout it was released after

    def release_due(self, at: datetime) -> None:
        """Release the held notices whose timeout has run out by scenario time ``at``.

        Live, the timeout releases a held notice long before the next day's summary; a drill
        played faster than real time must do the same at the same scenario moment, or the
        next summary would find it still pending and withdraw it as superseded.
        """
        for row in self.store.notices.pending_approval():
            rule = self.approvals.get(row["kind"].split("+")[0])
            timeout = rule.timeout_s if rule else 0.0
            if row["created_at"] + timeout <= at.timestamp():
                self.store.notices.set_notice_state(
                    row["id"], "released", at=datetime.now(UTC),
                    reason=f"auto-released after {timeout:.0f} s without a duty decision"
                           " (pre-approved template)")
                self.held[row["id"]] = timeout

    def evaluate(self, seq_id: str, at: datetime, trigger: str, event: Event | None, *,
                 policy: bool = True) -> list[str]:
        if self.scenario_timeouts:
            self.release_due(at)
        started = time.perf_counter()
        ids = super().evaluate(seq_id, at, trigger, event, policy=policy)
        self._note(ids, trigger, started, time.perf_counter())
        return ids

    def apply(self, event: Event, trigger: str, *, at: datetime) -> list[str]:
        started = time.perf_counter()
        ids = super().apply(event, trigger, at=at)
        self._note([i for i in ids if i not in self.timings], trigger, started,
                   time.perf_counter())
        return ids

    def _note(self, ids: list[str], trigger: str, started: float, done: float) -> None:
        for nid in ids:
            ingested = self.ingested_at.get(self.store.notices.load_notice(nid).event_id)
            taken_up = ingested if trigger != "tick" and ingested is not None else started
            self.timings[nid] = NoticeTiming(trigger, taken_up, done, ingested)


# -- playing --------------------------------------------------------------------------------


@dataclass(slots=True)
class Played:
    """What the replay did: reports fed, reports left out (after --until), the clock's end."""

    fed: int = 0
    after_until: int = 0
    until: datetime | None = None
    wall_s: float = 0.0


async def play(pipeline: TimedPipeline, reports: list[Report], *, until: datetime, speed: float,
               deliver: Callable[[], Awaitable[None]],
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> Played:
    """Feed the reports in origin order at scenario time, then run the clock on to ``until``.

    ``speed`` 0 plays as fast as possible; N > 0 waits (gap / N) seconds between moments, at
    most MAX_GAP_S, moving the pipeline clock on meanwhile so time rules fire at their moment.
    """
    store = pipeline.store
    started = time.perf_counter()
    todo = sorted((r for r in reports if r.origin_at <= until),
                  key=lambda r: (r.origin_at, r.source, r.source_id))
    out = Played(after_until=len(reports) - len(todo), until=until)
    scenario_at = todo[0].origin_at if todo else until

    async def wait_for(target: datetime) -> None:
        nonlocal scenario_at
        span = target - scenario_at
        wall_s = min(span.total_seconds() / speed, MAX_GAP_S)
        begun = clock()
        while True:
            frac = 1.0 if wall_s <= 0 else min(1.0, (clock() - begun) / wall_s)
            pipeline.advance(scenario_at + span * frac)
            await deliver()
            if frac >= 1.0:
                break
            await sleep(min(STEP_S, max(wall_s - (clock() - begun), 0.0)))
        scenario_at = target

    for report in todo:
        if speed > 0 and report.origin_at > scenario_at:
            await wait_for(report.origin_at)
        # Time rules due before this quake run first, as a live daemon would have run them
        # meanwhile: the event's latency below is its own work, not the catching up.
        pipeline.advance(report.origin_at)
        await deliver()
        taken = time.perf_counter()
        result = store.ingest([report], now=report.origin_at)
        for event_id in result.changed:
            pipeline.ingested_at[event_id] = taken
        # The daemon's path (the work queue): events far from every resident and region are
        # sequenced and typed without the resident policy (Pipeline.prioritise, process_far).
        pipeline.process_work(now=report.origin_at)
        scenario_at = max(scenario_at, report.origin_at)
        out.fed += 1
        await deliver()
    if speed > 0 and until > scenario_at:
        await wait_for(until)
    pipeline.advance(until)
    await deliver()
    out.wall_s = time.perf_counter() - started
    return out


async def drain(outbox: Outbox, now: datetime) -> None:
    """Deliver every due outbox row through the recorders."""
    while await outbox.drain_once(now):
        pass


def release_held(pipeline: Pipeline) -> tuple[float, list[str]]:
    """Notices waiting for a duty officer: release them as their timeout would (drill only)."""
    longest = max((r.timeout_s for r in pipeline.approvals.values()), default=0.0)
    if not longest:
        return 0.0, []
    later = datetime.now(UTC) + timedelta(seconds=longest)
    return longest, pipeline.release_expired(later)


async def drill(reports: list[Report], skipped: list[str], population: Population,
                settings: Settings, *, store_path: Path, file: str, speed: float,
                until: datetime | None, cap_dir: Path | None = None,
                start: datetime | None = None) -> dict[str, Any]:
    """Run one drill on a fresh store at ``store_path`` and return its report; reports before
    ``start`` are absorbed as background history first (never notified)."""
    store = open_file(store_path)  # a throw-away file, never the settings' store
    try:
        history = [r for r in reports if start is not None and r.origin_at < start]
        reports = [r for r in reports if start is None or r.origin_at >= start]
        if not reports:
            raise DrillInputError(f"{file}: no earthquakes after --start to replay")
        first = min(r.origin_at for r in reports)
        store.subscribers.add_subscribers(population.subscribers,
                                          now=first - timedelta(days=1), places=population.places)
        pipeline = TimedPipeline(store, settings)
        if history and start is not None:
            pipeline.absorb(store.ingest(history, now=start, queue_work=False), at=start)
        recorders = {name: RecorderChannel(name) for name in CHANNELS}
        box_settings = OutboxSettings.from_section(settings.section("outbox"))
        # The recorders never use the session; None proves no HTTP can happen.
        outbox = Outbox(store, recorders, None, settings=box_settings)  # type: ignore[arg-type]
        end = until or max(r.origin_at for r in reports) + DEFAULT_AFTER
        played = await play(pipeline, reports, until=end, speed=speed,
                            deliver=lambda: drain(outbox, datetime.now(UTC)))
        held_s, held = release_held(pipeline)
        # held notices as their timeout would release them, and notices policy deferred out of
        # quiet hours (22:00-07:30 at most, core.policy.quiet_release_at) as the morning would
        await drain(outbox, datetime.now(UTC) + timedelta(seconds=held_s + 1) + QUIET_DEFER_MAX)
        sender = str(settings.section("cap").get("sender", CAP_SENDER))
        report = build_report(store, pipeline, recorders, population, file=file,
                              skipped=skipped, played=played, speed=speed, held_s=held_s,
                              held=held, cap_dir=cap_dir, sender=sender)
        report["background"] = {"reports": len(history),
                                "before": times(start) if start is not None else None}
        return report
    finally:
        store.close()
