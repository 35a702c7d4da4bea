"""The daemon: poll every source on its own APScheduler job, run the pipeline on each
batch, deliver through the outbox, and serve the API, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
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
from quakealert.store.base import Store

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
        runtime.pipeline = Pipeline.create(runtime)  # validates [sequences], [policy], ...
        runtime.pipeline.metrics = runtime.metrics
        poller.on_ingest = runtime.pipeline.on_ingest
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


def start_live_backfill(runtime: Runtime) -> None:
    """Back-fill the live sources that need it (first start, long outage) in a task; until it
    is done the pipeline leaves context counts out and /healthz says "running"."""
    wall = datetime.now(UTC)
    path = runtime.settings.var_dir / COVERAGE_FILE
    last_ok = {name: runtime.poller.health_of(name).last_ok_at for name in runtime.sources}
    planned = plan_live(runtime.sources, runtime.backfill_params, runtime.backfill, now=wall,
                        coverage=load_coverage(path), last_ok=last_ok)
    runtime.pipeline.context_ready = runtime.backfill.complete
    if not planned:
        return

    def done() -> None:
        runtime.pipeline.context_ready = runtime.backfill.complete

    runtime.tasks.append(asyncio.create_task(run_live(
        planned, runtime.session, lambda n, p: store_history(runtime, n, p), runtime.backfill,
        path, done, now=lambda: datetime.now(UTC)), name="backfill"))


def start_replays(runtime: Runtime, stop: asyncio.Event) -> None:
    """Replays keep time: each plays its rows at their scaled origin times (issue 12 §7)."""
    for name, source in runtime.sources.items():
        run = getattr(source, "run", None)
        if source.config.kind != "replay" or run is None:
            continue

        async def poll(_source: Source = source) -> None:
            await runtime.poller.poll_once(_source, force=True)

        runtime.tasks.append(asyncio.create_task(run(poll, stop), name=f"replay:{name}"))


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


def start_listeners(runtime: Runtime, stop: asyncio.Event) -> None:
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

        runtime.tasks.append(asyncio.create_task(
            listen(runtime.session, on_reports, on_gap=on_gap, stop=stop), name=f"listen:{name}"))


async def serve(settings: Settings, stop: asyncio.Event,
                started: asyncio.Event | None = None) -> None:
    """Run until ``stop`` is set, then drain: stop polling, finish deliveries, close cleanly."""
    runtime = await start(settings, stop=stop)
    app = make_app(settings, store=runtime.store, runtime=runtime)
    app[SESSION] = runtime.session
    runner = ApiRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.api_host, settings.api_port)
    scheduler = AsyncIOScheduler(timezone=UTC)
    try:
        await site.start()
        log.info("serving", extra={
            "api": f"http://{settings.api_host}:{settings.api_port}",
            "sources": ",".join(runtime.sources) or "-", "store": str(settings.store_path)})
        await replay_background(runtime)
        start_live_backfill(runtime)
        schedule(runtime, scheduler)
        scheduler.start()
        start_replays(runtime, stop)
        start_listeners(runtime, stop)
        await runtime.pipeline.start(stop)
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
        if scheduler.running:
            scheduler.shutdown(wait=False)
        for task in runtime.tasks:
            task.cancel()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        await runtime.pipeline.close()
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
