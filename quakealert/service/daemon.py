"""The daemon: poll every source on its own APScheduler job, run the pipeline on each
batch, deliver through the outbox, and serve the API, until SIGTERM/SIGINT.

With PostgreSQL several instances share one store: every instance serves the API and delivers
from the outbox; only the leader (service/leadership.py) polls, listens, replays and runs the
pipeline, from the moment it gains leadership until the moment it loses it (:class:`Duties`).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import signal
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from quakealert import __version__
from quakealert.api.app import ApiRunner, make_app
from quakealert.api.keys import SESSION
from quakealert.config import Settings
from quakealert.core.associate import Priorities
from quakealert.model import ParseResult
from quakealert.service import sdnotify
from quakealert.service.poller import Poller
from quakealert.sources import make_source
from quakealert.sources.backfill import (
    COVERAGE_FILE,
    Backfiller,
    BackfillParams,
    BackfillTracker,
    SourceBackfill,
    backfill_source,
    load_coverage,
    plan_live,
    run_live,
    window,
)
from quakealert.sources.base import Source
from quakealert.store import open_store
from quakealert.store.base import IngestResult, Store

log = logging.getLogger(__name__)


def priorities_for(settings: Settings) -> Priorities:
    """Per-source priority from the config (lower = preferred); CENC first inside China."""
    default = {cfg.name: cfg.priority for cfg in settings.sources}
    for cfg in settings.sources:
        source_as = cfg.params.get("source_as")
        if source_as:
            default.setdefault(str(source_as), cfg.priority)
    return Priorities(default=default)


@dataclass(slots=True)
class Runtime:
    """Everything the running daemon holds; the API reads health and labels from it."""

    settings: Settings
    store: Store
    session: aiohttp.ClientSession
    poller: Poller
    sources: dict[str, Source]
    replay_label: str | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    pipeline: Any = None
    metrics: Any = None
    backfill: BackfillTracker = field(default_factory=BackfillTracker)
    backfill_params: BackfillParams = field(default_factory=BackfillParams)
    leadership: Any = None  # service/leadership.py's PgLeadership on PostgreSQL

    @property
    def store_kind(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return str(getattr(self.store, "kind", "sqlite"))

    @property
    def role(self) -> str:
        """``"leader"`` or ``"follower"``; the one instance on SQLite leads."""
        if self.leadership is None:
            return "leader"
        return "leader" if self.leadership.is_leader else "follower"

    def scenario_now(self, source_name: str, wall: datetime) -> datetime:
        """Scenario time for a replay source (so "30 min after the quake" means scenario time)."""
        src = self.sources.get(source_name)
        virtual = getattr(src, "virtual_now", None)
        return virtual() if callable(virtual) else wall

    def pipeline_now(self, wall: datetime) -> datetime:
        """The pipeline's present: the replay's scenario time when replaying, else the wall."""
        virtual = [src.virtual_now() for src in self.sources.values()
                   if callable(getattr(src, "virtual_now", None))]
        return max(virtual) if virtual else wall


async def start(settings: Settings, *, stop: asyncio.Event) -> Runtime:
    """Open the store, build the sources, pipeline, outbox and scheduler; return the runtime."""
    from quakealert.api.metrics import Metrics
    from quakealert.service.pipeline import Pipeline

    sources = {cfg.name: make_source(cfg) for cfg in settings.sources}
    store = open_store(settings, verify=True)  # a damaged store: exit 2, clearly
    session = aiohttp.ClientSession(
        headers={"User-Agent": f"quakealert/{__version__} (+earthquake alerts)"})
    try:
        poller = Poller(store=store, session=session, priorities=priorities_for(settings))
        labels = [str(s.config.params.get("label")
                      or f"REPLAY of {Path(str(s.config.path)).name}")
                  for s in sources.values() if s.config.kind == "replay"]
        runtime = Runtime(settings, store, session, poller, sources,
                          replay_label="; ".join(labels) or None, metrics=Metrics.create(),
                          backfill_params=BackfillParams.from_section(
                              settings.section("backfill")))
        poller.metrics = runtime.metrics
        if runtime.store_kind == "sqlite":
            runtime.pipeline = Pipeline.create(runtime)  # validates [sequences], [policy], ...
            runtime.pipeline.metrics = runtime.metrics
        else:
            # PostgreSQL: each leader term creates its own (Duties.begin), loaded from the
            # store as the term begins; here only the checks of [sequences], [policy], ...
            Pipeline(store, settings)
        poller.on_ingest = functools.partial(_wake_pipeline, runtime)
        if settings.section("demo").get("subscriber"):
            ensure_demo_subscriber(store)
    except BaseException:
        await session.close()
        store.close()
        raise
    if runtime.replay_label:
        log.warning("these are recorded events, not live data", extra={
            "mode": "replay", "replay": runtime.replay_label})
    return runtime


async def _wake_pipeline(runtime: Runtime, source: str, result: IngestResult,
                         wall_now: datetime) -> None:
    """Poller hook: the batch's work is queued in the store; wake the term's pipeline."""
    if runtime.pipeline is not None:
        await runtime.pipeline.on_ingest(source, result, wall_now)


DEMO_TARGET = "demo-resident-lhasa"


def ensure_demo_subscriber(store: Store) -> None:
    """The demo's resident: Lhasa (Chengguan), zh + bo + en, on the console channel."""
    from quakealert.store.subscribers import NewSubscriber

    if not store.subscribers.has_target("console", DEMO_TARGET):
        store.subscribers.add_subscriber(
            NewSubscriber(29.65, 91.13, ("zh", "bo", "en"), "console", DEMO_TARGET),
            now=datetime.now(UTC))
        log.info("demo subscriber added: a Lhasa resident on the console channel (zh, bo, en)")


async def store_history(runtime: Runtime, name: str, parsed: ParseResult) -> None:
    """Store back-filled reports and hand them to the pipeline as history (never notified)."""
    wall = datetime.now(UTC)
    async with runtime.poller.lock:
        # History queues no pipeline work: it is absorbed below, never decided about.
        result = runtime.store.ingest(parsed.reports, now=wall, queue_work=False,
                                      priorities=runtime.poller.priorities)
    if runtime.pipeline is not None and result.changed:
        await runtime.pipeline.call(runtime.pipeline.absorb, result,
                                    at=runtime.pipeline_now(wall))


async def replay_background(runtime: Runtime) -> None:
    """Each replay's rows before its ``start``: complete history, stored before play begins."""
    for name, source in runtime.sources.items():
        if source.config.kind != "replay" or not isinstance(source, Backfiller):
            continue
        start = getattr(source, "start", None)
        if start is None:
            continue
        begin, _ = window(runtime.backfill_params, start)
        record = SourceBackfill(name, begin, start)
        runtime.backfill.sources[name] = record
        await backfill_source(source, record, None,
                              lambda n, p: store_history(runtime, n, p))


def start_live_backfill(runtime: Runtime, tasks: list[asyncio.Task[Any]]) -> None:
    """Back-fill the live sources that need it (first start, long outage) in a task; until it
    is done the pipeline leaves context counts out and /healthz says "running"."""
    wall = datetime.now(UTC)
    path = runtime.settings.var_dir / COVERAGE_FILE
    last_ok = {name: runtime.poller.health_of(name).last_ok_at for name in runtime.sources}
    planned = plan_live(runtime.sources, runtime.backfill_params, runtime.backfill, now=wall,
                        coverage=load_coverage(path), last_ok=last_ok)
    def done() -> None:
        if runtime.pipeline is not None:
            runtime.pipeline.context_ready = runtime.backfill.complete

    done()
    if not planned:
        return
    tasks.append(asyncio.create_task(run_live(
        planned, runtime.session, lambda n, p: store_history(runtime, n, p), runtime.backfill,
        path, done, now=lambda: datetime.now(UTC)), name="backfill"))


def start_replays(runtime: Runtime, stop: asyncio.Event,
                  tasks: list[asyncio.Task[Any]]) -> None:
    """Replays keep time: each plays its rows at their scaled origin times (issue 12 §7)."""
    for name, source in runtime.sources.items():
        run = getattr(source, "run", None)
        if source.config.kind != "replay" or run is None:
            continue

        async def poll(_source: Source = source) -> None:
            await runtime.poller.poll_once(_source, force=True)

        tasks.append(asyncio.create_task(run(poll, stop), name=f"replay:{name}"))


def schedule(runtime: Runtime, scheduler: AsyncIOScheduler) -> None:
    """One job per polled source: max_instances=1, coalesce, jitter, its own interval.
    Replays are not polled: :func:`start_replays` plays them on their own clock."""
    for name, source in runtime.sources.items():
        cfg = source.config
        if cfg.kind == "replay":
            continue
        scheduler.add_job(
            runtime.poller.poll_once, "interval", args=[source], seconds=cfg.interval_s,
            jitter=cfg.jitter_s or None, max_instances=1, coalesce=True, id=f"poll:{name}",
            name=f"poll {name}", next_run_time=datetime.now(UTC), misfire_grace_time=None,
        )


def start_listeners(runtime: Runtime, stop: asyncio.Event,
                    tasks: list[asyncio.Task[Any]]) -> None:
    """Push sources (EMSC websocket): listen in a task; a gap triggers an FDSN back-fill poll."""
    for name, source in runtime.sources.items():
        listen = getattr(source, "listen", None)
        if listen is None:
            continue

        async def on_reports(parsed: Any, _name: str = name) -> None:
            await runtime.poller.store_reports(_name, parsed, now=datetime.now(UTC))

        async def on_gap(_since: Any = None, _source: Source = source) -> None:
            log.info("websocket gap: back-filling over FDSN", extra={"source": _source.name})
            await runtime.poller.poll_once(_source, force=True)

        tasks.append(asyncio.create_task(
            listen(runtime.session, on_reports, on_gap=on_gap, stop=stop), name=f"listen:{name}"))


class Duties:
    """What only the leader runs: history and back-fill, polls, listeners, replays and the
    pipeline (with its approval timers). :meth:`begin` starts a term; :meth:`end` stops it at
    once (a leader that lost its lock must not poll or decide one moment longer), and a later
    gain starts a new term."""

    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.terms = 0
        self._stop: asyncio.Event | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._ended: list[asyncio.Task[Any]] = []

    async def begin(self) -> None:
        """Start a term: awaited inline on SQLite (start-up errors end the daemon), in a task
        on PostgreSQL (:meth:`on_change`)."""
        self.terms += 1
        term_stop = self._stop = asyncio.Event()
        scheduler = self._scheduler = AsyncIOScheduler(timezone=UTC)
        runtime = self.runtime
        if runtime.store_kind != "sqlite":
            await self._new_pipeline(term_stop)
            if term_stop.is_set():
                return
        await replay_background(runtime)
        if term_stop.is_set():
            return
        start_live_backfill(runtime, self._tasks)
        schedule(runtime, scheduler)
        scheduler.start()
        start_replays(runtime, term_stop, self._tasks)
        start_listeners(runtime, term_stop, self._tasks)
        if runtime.pipeline is not None:
            await runtime.pipeline.start(term_stop)
        log.info("leading: polling and storing", extra={
            "term": self.terms, "pipeline": runtime.pipeline is not None})

    async def _new_pipeline(self, term_stop: asyncio.Event) -> None:
        """PostgreSQL: this term's pipeline, loaded from the store now (what the previous
        leader decided included), off the loop; closed when the term ends (:meth:`end`)."""
        from quakealert.service.pipeline import Pipeline

        runtime = self.runtime
        # Its units of work commit only while this term's lock session holds the lock.
        lead = runtime.leadership
        pid, key = getattr(lead, "backend_pid", None), getattr(lead, "key", None)
        fenced = (runtime.store.fenced(pid, key)  # type: ignore[attr-defined]
                  if pid is not None and key is not None else None)
        pipeline = await asyncio.to_thread(Pipeline.create, runtime, store=fenced)
        pipeline.metrics = runtime.metrics
        if term_stop.is_set():  # the term ended while it loaded
            await pipeline.close()
            return
        runtime.pipeline = pipeline

    def _close_pipeline(self) -> None:
        """PostgreSQL: the ended term's pipeline stops (its stop is set) and is closed in a
        task (:meth:`close` waits for it); the next term creates a fresh one."""
        runtime = self.runtime
        if runtime.store_kind == "sqlite" or runtime.pipeline is None:
            return
        pipeline, runtime.pipeline = runtime.pipeline, None
        self._ended.append(asyncio.create_task(pipeline.close(), name="pipeline-close"))

    async def _begin_logged(self) -> None:
        try:
            await self.begin()
        except Exception:  # the term's boundary: say so, keep serving and delivering
            log.exception("leader duties failed to start", extra={"term": self.terms})

    def end(self) -> None:
        """Stop the term now: no poll, replay or listener runs after this returns (their
        tasks are cancelled; :meth:`close` waits for them)."""
        if self._stop is not None:
            self._stop.set()
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        for task in self._tasks:
            task.cancel()
        self._close_pipeline()
        self._ended += self._tasks
        self._tasks, self._stop, self._scheduler = [], None, None

    def on_change(self, leading: bool) -> None:
        """Leadership's callback: gained, a new term in a task; lost, the term ends now."""
        if leading:
            self._tasks.append(asyncio.create_task(self._begin_logged(), name="lead"))
        else:
            self.end()
            if self.terms:
                log.warning("following: polls, replays and the pipeline stopped",
                            extra={"term": self.terms})

    async def close(self) -> None:
        self.end()
        await asyncio.gather(*self._ended, return_exceptions=True)
        self._ended = []


async def start_delivery(runtime: Runtime, stop: asyncio.Event) -> Any:
    """Outbox workers of this instance (PostgreSQL: every instance, woken by LISTEN/NOTIFY and
    polling); returns their delivery session, for the caller to close."""
    from quakealert.channels.guard import delivery_session
    from quakealert.service.dispatch import Outbox

    settings = runtime.settings
    insecure = bool(settings.section("webpush").get("allow_insecure_endpoints", False))
    session = delivery_session(allow_insecure=insecure)
    outbox = Outbox.from_settings(runtime.store, settings, session)
    metrics = runtime.metrics

    def delivered(row: Any, state: str, at: datetime) -> None:
        if metrics is not None:
            metrics.deliveries.labels(row.channel, state).inc()

    outbox.on_result = delivered
    waker = runtime.store.outbox_waker()  # type: ignore[attr-defined]

    async def wake() -> None:
        try:
            while not stop.is_set():
                if await waker.wait(outbox.settings.poll_s):
                    outbox.wake()
        finally:
            await waker.close()

    async def deliver() -> None:
        try:
            await outbox.run(stop)
        finally:
            outbox.close()

    runtime.tasks += [asyncio.create_task(deliver(), name="outbox"),
                      asyncio.create_task(wake(), name="outbox-waker")]
    return session


def healthz_middleware(runtime: Runtime) -> Any:
    """Adds ``role`` (leader/follower) and ``store`` (sqlite/postgresql; kept when it already
    says unreadable or busy) to /healthz. Here until api/app.py's healthz reads them from the
    runtime itself (api/ is being reworked on branch store13)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        if (request.path == "/healthz" and isinstance(response, web.Response)
                and response.content_type == "application/json"
                and isinstance(response.body, bytes)):
            body = json.loads(response.body)
            body["role"] = runtime.role
            body.setdefault("store", runtime.store_kind)
            response.body = json.dumps(body, ensure_ascii=False).encode()
        return response

    return middleware


async def serve(settings: Settings, stop: asyncio.Event,
                started: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set, then drain: stop polling, finish deliveries, close cleanly."""
    from quakealert.service.leadership import PgLeadership

    runtime = await start(settings, stop=stop)
    app = make_app(settings, store=runtime.store, runtime=runtime)
    app[SESSION] = runtime.session
    app.middlewares.append(healthz_middleware(runtime))
    runner = ApiRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.api_host, settings.api_port)
    duties = Duties(runtime)
    delivery_session = None
    try:
        await site.start()
        log.info("serving", extra={
            "api": f"http://{settings.api_host}:{settings.api_port}",
            "sources": ",".join(runtime.sources) or "-",
            "store": str(settings.store_path) if runtime.store_kind == "sqlite"
            else repr(runtime.store)})  # PgBackend's repr masks the password
        if runtime.store_kind == "sqlite":
            await duties.begin()  # the one instance leads from start to stop
        else:
            delivery_session = await start_delivery(runtime, stop)
            runtime.leadership = PgLeadership(
                runtime.store.url,  # type: ignore[attr-defined]
                name=f"{settings.api_host}:{settings.api_port}", on_change=duties.on_change)
            runtime.tasks.append(asyncio.create_task(runtime.leadership.run(stop),
                                                     name="leadership"))
        if started is not None:
            started.set()
        sdnotify.notify(f"READY=1\nSTATUS=serving on {settings.api_host}:{settings.api_port}")
        interval_s = sdnotify.watchdog_interval_s()
        if interval_s is not None:
            runtime.tasks.append(asyncio.create_task(sdnotify.keep_alive(stop, interval_s),
                                                     name="watchdog"))
        await stop.wait()
        sdnotify.notify("STOPPING=1")
        log.info("shutting down: stopping polls, draining deliveries")
    finally:
        await duties.close()
        for task in runtime.tasks:
            task.cancel()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        await duties.close()  # a term a last leadership change began meanwhile
        if runtime.pipeline is not None:
            await runtime.pipeline.close()
        if delivery_session is not None:
            await delivery_session.close()
        await runner.cleanup()
        await runtime.session.close()
        runtime.store.close()
        log.info("stopped cleanly")


async def main_async(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop)
