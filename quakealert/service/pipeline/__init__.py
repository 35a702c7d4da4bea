"""From stored events to residents: sequences, classification, policy, notices, outbox.

The pipeline runs on *pipeline time*: the wall clock for live sources, the scenario clock for a
replay. Events of a batch are processed in origin-time order, and between them the pipeline
"ticks" each active sequence at the moments its type can change (30 min, 24 h, 7 d, 90 d after
each member: seismology.md §8.2) and once a day for swarm summaries. So a replay played all at
once gives the same notices, at the same scenario times, as one played in real time.

Everything here is synchronous except the daemon hooks of :class:`Pipeline` (``start``,
``run``, ``close``); the core decides, this package stores and enqueues. ``Pipeline``
holds the state; its methods come from one mixin per part: ``work`` (the durable
queue), ``sequencing`` (engine and types), ``timers`` (ticks, summaries, approval
timeouts), ``residents`` (policy and decisions) and ``notices`` (render, store,
enqueue).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from quakealert.config import Settings
from quakealert.core.policy import PolicyParams
from quakealert.core.render import (
    RenderOptions,
    default_catalog,
)
from quakealert.core.sequences import SequenceEngine, params_from_section
from quakealert.service.pipeline.notices import NoticeMaking
from quakealert.service.pipeline.residents import LANGS, Recipients, ResidentDecisions
from quakealert.service.pipeline.sequencing import Sequencing
from quakealert.service.pipeline.timers import ApprovalRule, Timers, approval_rules
from quakealert.service.pipeline.work import MAX_FAILURES, Region, WorkParams, WorkQueue
from quakealert.store import open_file
from quakealert.store.base import IngestResult, Store

log = logging.getLogger(__name__)

# Importable from here as before the split.
__all__ = [
    "LANGS",
    "MAX_FAILURES",
    "STEP_S",
    "ApprovalRule",
    "Pipeline",
    "Region",
    "WorkParams",
    "approval_rules",
]

STEP_S = 0.5  # the daemon's pipeline works in steps of about this long (SIGTERM, new work)


class Pipeline(WorkQueue, Sequencing, Timers, ResidentDecisions, NoticeMaking):
    """Keeps the sequence engine in step with the store and turns changes into notices."""

    def __init__(self, store: Store, settings: Settings, *, exercise: bool = False,
                 base_url: str | None = None) -> None:
        self.store = store
        self.settings = settings
        self.exercise = exercise
        # The public address residents open (behind the office's TLS proxy in production):
        # [cap] base_url, the same setting the CAP feed uses for its links.
        self.base_url = (base_url or settings.section("cap").get("base_url")
                         or f"http://{settings.api_host}:{settings.api_port}").rstrip("/")
        self.engine = SequenceEngine(params_from_section(settings.section("sequences")))
        self.policy = PolicyParams.from_config(settings.section("policy"))
        self.render_options = RenderOptions(**settings.section("messages"))
        self.approvals = approval_rules(settings.section("approvals"))
        self.work = WorkParams.from_section(settings.section("pipeline"))
        self.catalog = default_catalog()
        self.clock: datetime | None = None
        # False while the start-up back-fill runs: the context count is left out (None)
        self.context_ready = True
        # (when, sequence id, daily): type-rule ticks, and the daily swarm-summary tick
        self._ticks: list[tuple[datetime, str, bool]] = []
        self._full_at: dict[str, datetime] = {}  # when each sequence's statistics were stored
        self._saved_type: dict[str, tuple[str, bool]] = {}
        self._stale: dict[str, datetime] = {}  # typed but statistics not yet stored
        self._far_typed: dict[str, float] = {}  # far sequence -> when process_far typed it
        self._last_tick: dict[str, datetime] = {}
        self._scheduled: set[str] = set()  # sequences whose members' ticks are queued
        self._daily: dict[str, datetime] = {}  # each active sequence's next daily tick
        self._recipients: Recipients | None = None
        self._cells_key: tuple[int, int] | None = None
        self._cells_cache: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float] | None = None
        # notice id -> (subscriber ids, approval rule): enqueued right after the commit
        self._pending_recipients: dict[str, tuple[list[int], ApprovalRule | None]] = {}
        # notices policy deferred out of quiet hours: how long after the round to deliver
        self._deferred: dict[str, timedelta] = {}
        self.outbox: Any = None
        self._delivery_session: Any = None  # start() opens it, close() closes it
        self.runtime: Any = None
        self.metrics: Any = None  # quakealert.api.metrics.Metrics in the daemon
        # notice id -> wall time of the catalogue response that caused it (alert latency)
        self._response_at: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._owns_store = False  # create() opened it: close() closes it

    @classmethod
    def create(cls, runtime: Any, *, store: Any = None) -> Pipeline:
        """The daemon's pipeline: replays are exercises (CAP status Exercise), live is real.

        It works on a thread and a connection of its own (``run``): the loop's connection
        serves the API and the outbox and never waits for the pipeline's transactions.
        """
        replay = any(s.config.kind == "replay" for s in runtime.sources.values())
        # PostgreSQL: the pooled backend itself (its unit of work keeps one connection per
        # thread, so the pipeline's thread never waits for the loop's); SQLite: a file of its own.
        sqlite = getattr(runtime.store, "kind", "sqlite") == "sqlite"
        own = sqlite and str(runtime.store.path) != ":memory:"
        if store is None:  # PostgreSQL passes the leader's fenced backend
            store = open_file(runtime.store.path) if own else runtime.store
        else:
            own = False
        try:
            p = cls(store, runtime.settings, exercise=replay)
            p.runtime = runtime
            p._owns_store = own
            p.load()
        except BaseException:
            if own:
                store.close()
            raise
        if not replay:
            p.clock = datetime.now(UTC)
        return p

    async def on_ingest(self, source: str, result: IngestResult, wall_now: datetime) -> None:
        """Poller hook: the batch's work is queued in the store; wake the pipeline's thread."""
        self._wake.set()

    async def start(self, stop: asyncio.Event) -> None:
        """Start the outbox workers (SQLite only: on PostgreSQL every instance runs its own,
        daemon.start_delivery) and the pipeline's thread (queued work first: what was
        stored before a crash is resumed; then ticks, summaries and approval timeouts)."""
        from quakealert.channels import make_channels
        from quakealert.channels.guard import delivery_session
        from quakealert.service.dispatch import Outbox, OutboxSettings

        if getattr(self.runtime.store, "kind", "sqlite") == "sqlite":
            # Deliveries get a session of their own that connects to public addresses only
            # (channels.guard); the sources' session may reach a catalogue on the office
            # network.
            insecure = bool(self.settings.section("webpush").get("allow_insecure_endpoints",
                                                                 False))
            self._delivery_session = delivery_session(allow_insecure=insecure)
            self.outbox = Outbox(self.runtime.store, make_channels(self.settings),
                                 self._delivery_session, settings=OutboxSettings.from_section(
                                     self.settings.section("outbox")))
            self.outbox.on_result = self._delivered
            self.runtime.tasks.append(asyncio.create_task(self.outbox.run(stop), name="outbox"))
        waiting = self.pending_work()
        if waiting:
            log.warning("pipeline: resuming queued events", extra={"events": waiting})
        self.runtime.tasks.append(asyncio.create_task(self.run(stop), name="pipeline"))

    async def close(self) -> None:
        """Wait for the pipeline's thread to finish its step, then release what it holds."""
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True)
            self._executor = None
        if self.outbox is not None and hasattr(self.outbox, "close"):
            self.outbox.close()
        session = getattr(self, "_delivery_session", None)
        if session is not None:
            await session.close()
        if self._owns_store:  # SQLite's file of its own; a PostgreSQL pool is the daemon's
            self.store.close()

    def _delivered(self, row: Any, state: str, at: datetime) -> None:
        """Outbox hook: deliveries by channel and result, and catalogue-to-push latency."""
        if self.metrics is None:
            return
        self.metrics.deliveries.labels(row.channel, state).inc()
        started = self._response_at.get(row.notice_id)
        if state == "sent" and started is not None:
            self.metrics.alert_latency.observe(max(0.0, at.timestamp() - started))

    async def run(self, stop: asyncio.Event) -> None:
        """Bounded steps on the pipeline's thread until ``stop``: the loop only waits for them
        with ``await``, so the API answers and SIGTERM is honoured within one step."""
        loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pipeline")
        while not stop.is_set():
            self._wake.clear()
            try:
                more = await loop.run_in_executor(self._executor, self.step,
                                                  datetime.now(UTC))
            except Exception:  # the pipeline must never die: its work stays queued; retry
                log.exception("pipeline step failed")
                more = False
            if self.outbox is not None:
                self.outbox.wake()
            if not more:
                await _wait_any(stop, self._wake, 1.0)

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` on the pipeline's thread once it runs (its state and connection are that
        thread's), else here."""
        if self._executor is None:
            return fn(*args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(fn, *args, **kwargs))

    def step(self, wall: datetime) -> bool:
        """One bounded round (pipeline thread): queued work, due ticks, approval timeouts.
        True while queued work is left."""
        now = self.runtime.pipeline_now(wall) if self.runtime is not None else wall
        self.process_work(now=now, budget_s=STEP_S)
        self.release_expired(wall)
        return self.pending_work() > 0


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout_s: float) -> None:
    """Until ``stop`` or ``wake`` is set, or ``timeout_s`` has passed."""
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
