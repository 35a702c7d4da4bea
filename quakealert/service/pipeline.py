"""From stored events to residents: sequences, classification, policy, notices, outbox.

The pipeline runs on *pipeline time*: the wall clock for live sources, the scenario clock for a
replay. Events of a batch are processed in origin-time order, and between them the pipeline
"ticks" each active sequence at the moments its type can change (30 min, 24 h, 7 d, 90 d after
each member: seismology.md §8.2) and once a day for swarm summaries. So a replay played all at
once gives the same notices, at the same scenario times, as one played in real time.

Everything here is synchronous except the daemon hooks at the bottom; the core decides, this
module stores and enqueues.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import heapq
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from quakealert.config import Settings
from quakealert.core.classify import Classification, classify_in, sequence_to_json
from quakealert.core.context import regional_context
from quakealert.core.geo import distances_km
from quakealert.core.intensity import roman, upper_intensity_many
from quakealert.core.policy import (
    Decision,
    EventView,
    Plan,
    PolicyInput,
    PolicyParams,
    SubscriberView,
    ThreadState,
    Told,
    felt_words,
    plan,
)
from quakealert.core.render import (
    NotableEvent,
    NoticeContext,
    PreviousNotice,
    RecentActivity,
    RegionalContext,
    RenderOptions,
    agency_place,
    default_catalog,
    epicentre_place_key,
    render_notice,
)
from quakealert.core.sequences import QuakeSequence, SequenceEngine, params_from_section
from quakealert.errors import ConfigError, InvalidRequest, NotFound
from quakealert.formats.rows import EARLIEST_AT, FUTURE_SLACK
from quakealert.model import Event, Notice, event_type_zh
from quakealert.service.faults import kill_point
from quakealert.store import decisions as dec
from quakealert.store import notices as nt
from quakealert.store import open_file
from quakealert.store.base import IngestResult, Store

log = logging.getLogger(__name__)

LANGS = ("zh", "bo", "en")
# Moments after each member when the Chinese scheme's evidence rules can change the type
# (seismology.md §8.2: 30 min no-type window, 12 h span, 24 h, 7 d isolated guard, 90 d final).
TICK_OFFSETS = (
    timedelta(minutes=30, seconds=1), timedelta(hours=3), timedelta(hours=12, seconds=1),
    timedelta(hours=24, seconds=1), timedelta(days=7, seconds=1), timedelta(days=90, seconds=1),
)
SUMMARY_EVERY = timedelta(hours=24)
DIAGNOSTICS_EVERY = timedelta(minutes=10)  # pipeline time between statistics refreshes
TICK_COALESCE = timedelta(minutes=10)  # at most one timer evaluation per sequence in this
SMALL_SEQUENCE = 50  # below this, statistics are cheap (and the Omori fit needs >= 50 events)
ACTIVE_FOR = timedelta(days=90)  # sequences are ticked until final (§8.2: final at 90 d)
MAX_FAILURES = 3  # attempts at one queued event before it is parked for duty staff
STEP_S = 0.5  # the daemon's pipeline works in steps of about this long (SIGTERM, new work)
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


@dataclass(slots=True)
class Recipients:
    """Every subscriber as arrays (cached): where they are (1 km), thresholds, area, channel."""

    ids: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    min_intensity: np.ndarray
    area: list[str | None]
    langs: list[tuple[str, ...]]
    key: tuple[int, int]
    area_code: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    lang_code: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @classmethod
    def load(cls, store: Store) -> Recipients:
        rows = store.subscribers.recipient_rows()
        key = store.subscribers.recipients_key()
        area = [r[4] for r in rows]
        langs = [_langs(r[5]) for r in rows]
        areas: dict[str | None, int] = {}
        codes: dict[tuple[str, ...], int] = {}
        return cls(
            ids=np.array([r[0] for r in rows], dtype=np.int64),
            lat=np.array([r[1] for r in rows], dtype=np.float64),
            lon=np.array([r[2] for r in rows], dtype=np.float64),
            min_intensity=np.array([r[3] for r in rows], dtype=np.int16),
            area=area, langs=langs, key=key,
            area_code=np.array([areas.setdefault(a, len(areas)) for a in area], dtype=np.int64),
            lang_code=np.array([codes.setdefault(x, len(codes)) for x in langs], dtype=np.int64),
        )


def _langs(raw: str) -> tuple[str, ...]:
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        value = [x for x in str(raw).replace(";", ",").split(",") if x]
    return tuple(x for x in value if x in LANGS) or ("zh", "bo")


def degrees_of(upper: np.ndarray) -> np.ndarray:
    """CSIS degree per subscriber, as core.intensity.csis_degree (n covers [n-0.5, n+0.5))."""
    return np.clip(np.floor(upper + 0.5), 1, 12).astype(np.int16)


def thread_to_json(t: ThreadState) -> str:
    def enc(v: Any) -> Any:
        return v.isoformat() if isinstance(v, datetime) else v

    d = asdict(t)
    d["told"] = [{k: enc(v) for k, v in told.items()} for told in d["told"]]
    return json.dumps({k: enc(v) for k, v in d.items()})


def thread_from_json(raw: str) -> ThreadState:
    d = json.loads(raw)

    def at(v: str | None) -> datetime | None:
        return None if v is None else datetime.fromisoformat(v)

    told = tuple(
        Told(t["event_id"], datetime.fromisoformat(t["origin_at"]), t["latitude"],
             t["longitude"], t["depth_km"], t["magnitude"], t["status"], tuple(t["notice_ids"]))
        for t in d["told"]
    )
    return ThreadState(
        subscriber_id=d["subscriber_id"], sequence_id=d["sequence_id"], told=told,
        advised_type=d["advised_type"], notice_ids=tuple(d["notice_ids"]),
        last_sent_at=at(d["last_sent_at"]), last_summary_at=at(d["last_summary_at"]),
        member_count_told=d["member_count_told"], last_felt_at=at(d.get("last_felt_at")),
        last_update_at=at(d.get("last_update_at")),
        folded_count=d.get("folded_count", 0), folded_magnitude=d.get("folded_magnitude"),
        folded_at=at(d.get("folded_at")),
    )


def policy_type(t: str) -> str:
    """Sequence type as the message glossary and policy name it (underscores)."""
    return t.replace("-", "_")


@dataclass(slots=True)
class _Planned:
    notice_id: str
    decision: Decision
    event: Event
    area: str | None
    degree: int
    subscriber_ids: list[int] = field(default_factory=list)


@dataclass(slots=True)
class RoundResult:
    """What one evaluation produced: notices and how many decisions of each kind."""

    notice_ids: list[str] = field(default_factory=list)
    sent: int = 0
    not_sent: int = 0


class Pipeline:
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

    # -- daemon hooks -----------------------------------------------------------------------

    @classmethod
    def create(cls, runtime: Any) -> Pipeline:
        """The daemon's pipeline: replays are exercises (CAP status Exercise), live is real.

        It works on a thread and a connection of its own (``run``): the loop's connection
        serves the API and the outbox and never waits for the pipeline's transactions.
        """
        replay = any(s.config.kind == "replay" for s in runtime.sources.values())
        own = str(runtime.store.path) != ":memory:"
        store = open_file(runtime.store.path) if own else runtime.store
        try:
            p = cls(store, runtime.settings, exercise=replay)
            p.runtime = runtime
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
        """Start the outbox workers and the pipeline's thread (queued work first: what was
        stored before a crash is resumed; then ticks, summaries and approval timeouts)."""
        from quakealert.channels import make_channels
        from quakealert.channels.guard import delivery_session
        from quakealert.service.dispatch import Outbox, OutboxSettings

        # Deliveries get a session of their own that connects to public addresses only
        # (channels.guard); the sources' session may reach a catalogue on the office network.
        insecure = bool(self.settings.section("webpush").get("allow_insecure_endpoints", False))
        self._delivery_session = delivery_session(allow_insecure=insecure)
        self.outbox = Outbox(self.runtime.store, make_channels(self.settings),
                             self._delivery_session,
                             settings=OutboxSettings.from_section(self.settings.section("outbox")))
        self.outbox.on_result = self._delivered
        waiting = self.pending_work()
        if waiting:
            log.warning("pipeline: resuming queued events", extra={"events": waiting})
        self.runtime.tasks.append(asyncio.create_task(self.outbox.run(stop), name="outbox"))
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
        if self.runtime is not None and self.store is not self.runtime.store:
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

    # -- state ------------------------------------------------------------------------------

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

    def recipients(self) -> Recipients:
        key = self.store.subscribers.recipients_key()
        if self._recipients is None or self._recipients.key != key:
            self._recipients = Recipients.load(self.store)
        return self._recipients

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

    def _has_threads(self, seq_id: str) -> bool:
        return self.store.decisions.has_threads(seq_id)

    def _push_daily(self, seq: QuakeSequence, after: datetime) -> None:
        """The next daily tick (swarm summaries) while the sequence is active."""
        days = max(0, int((after - seq.first_at) / SUMMARY_EVERY)) + 1
        t = seq.first_at + days * SUMMARY_EVERY
        if t <= seq.last_at + ACTIVE_FOR:
            self._daily[seq.id] = t
            heapq.heappush(self._ticks, (t, seq.id, True))
        else:
            self._daily.pop(seq.id, None)

    # -- processing -------------------------------------------------------------------------

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
            rows = [r for r in self.store.work.next_items(200) if r[0] not in failed]
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
            tx.work.set_priorities([(int(level[k]), r[0]) for k, r in enumerate(rows)])
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
            tx.work.done(taken)
        return len(taken)

    def pending_work(self) -> int:
        """How many changed events wait for the pipeline (parked ones not counted)."""
        return self.store.work.pending()

    def _failed(self, event_id: str, err: Exception) -> None:
        """Count a failed attempt; park the item after MAX_FAILURES so the queue goes on."""
        self.store.work.failed(event_id, f"{type(err).__name__}: {err}"[:500],
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
        self.store.work.done([event_id])

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

    def _context_for(self, e: Event, cls: Classification) -> RegionalContext | None:
        """The context line of the notice's own quake (not of the sequence's largest)."""
        if cls.context is None:
            return None
        got = e.magnitude_from(cls.context.agency)
        if got is None or got[0] < cls.context.min_magnitude:
            return None
        start = e.origin_at - timedelta(days=365.25 * cls.context.years)
        c = regional_context(e, got[0], self.engine.nearby(
            e.latitude, e.longitude, cls.context.radius_km, start, e.origin_at),
            cls.context.agency, radius_km=cls.context.radius_km, years=cls.context.years,
            min_magnitude=cls.context.min_magnitude)
        before = c.largest_before
        return RegionalContext(
            radius_km=c.radius_km, years=int(c.years), min_magnitude=c.min_magnitude,
            count=c.count, largest_magnitude=c.largest.magnitude, is_largest=c.is_largest,
            largest_at=c.largest.origin_at,
            largest_before_magnitude=None if before is None else before.magnitude,
            largest_before_at=None if before is None else before.origin_at)

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

    # -- policy -----------------------------------------------------------------------------

    def _policy_round(self, seq: QuakeSequence, cls: Classification, at: datetime,
                      trigger: str, event: Event | None) -> RoundResult:
        out = RoundResult()
        members = [e for e in seq.events if e.origin_at <= at and e.magnitude is not None]
        if not members:
            return out
        largest = cls.largest or max(members, key=lambda e: (e.magnitude or -9, e.id))
        subject = event or members[-1]
        if subject.magnitude is None:
            return out
        rec = self.recipients()
        if not len(rec.ids):
            return out
        threads = self.store.decisions.threads_for(seq.id)
        up_event = upper_intensity_many(subject.magnitude, subject.depth_km or 10.0,
                                        subject.latitude, subject.longitude, rec.lat, rec.lon,
                                        sigma_factor=self.policy.sigma_factor)
        deg_event = degrees_of(up_event)
        threshold = np.where(rec.min_intensity > 0, rec.min_intensity, self.policy.felt_degree)
        has_thread = np.isin(rec.ids, np.fromiter(threads, dtype=np.int64, count=len(threads)))
        if trigger == "tick":
            idx = np.flatnonzero(has_thread)
            policy_trigger = "daily"
        else:
            idx = np.flatnonzero((deg_event >= threshold) | has_thread)
            policy_trigger = trigger
            # Residents far from the shaking, with no thread: one aggregated "not sent" per area.
            rest = np.ones(len(rec.ids), dtype=bool)
            rest[idx] = False
            self._aggregate_not_sent(seq.id, subject, at, rec, rest, deg_event)
            out.not_sent += int(rest.sum())
        if not len(idx):
            return out
        dist = distances_km(subject.latitude, subject.longitude, rec.lat[idx], rec.lon[idx])
        up_largest = upper_intensity_many(largest.magnitude or subject.magnitude,
                                          largest.depth_km or 10.0, largest.latitude,
                                          largest.longitude, rec.lat[idx], rec.lon[idx],
                                          sigma_factor=self.policy.sigma_factor)
        dist_largest = distances_km(largest.latitude, largest.longitude, rec.lat[idx],
                                    rec.lon[idx])
        planned: dict[str, _Planned] = {}
        rows: list[dec.DecisionRow] = []
        ptype = policy_type(cls.type)
        states = self.store.decisions.thread_states(seq.id) if threads else {}
        parsed: dict[str, ThreadState] = {}
        chosen = idx
        for positions in self._groups(rec, chosen, threads, deg_event, dist):
            j = int(positions[0])  # the group's first resident stands for all of it
            i = int(idx[j])
            sid = int(rec.ids[i])
            raw = threads.get(sid)
            thread = None
            if raw is not None:
                if raw not in parsed:
                    state = states[int(raw[1:])] if raw.startswith("@") else raw
                    parsed[raw] = thread_from_json(state)
                thread = replace(parsed[raw], subscriber_id=str(sid))
            ctx = PolicyInput(
                sequence_id=seq.id, trigger=policy_trigger,  # type: ignore[arg-type]
                event=self._view(subject, float(up_event[i]), float(dist[j])),
                largest=self._view(largest, float(up_largest[j]), float(dist_largest[j])),
                sequence_type=ptype, type_provisional=not cls.final, type_official=False,
                member_count=len(members), last_event_at=members[-1].origin_at,
            )
            sub = SubscriberView(str(sid), min_intensity=int(rec.min_intensity[i]) or None)
            area = rec.area[i]

            def notice_id(d: Decision, _area: str | None = area) -> str:
                key = json.dumps([seq.id, d.event_id, d.kinds, d.msg_type, d.urgency,
                                  list(d.references), d.degree, _area, at.isoformat()]
                                 + ([d.folded.count, d.folded.magnitude, d.folded.at.isoformat()]
                                    if d.folded else []))
                return "qa-n-" + hashlib.blake2s(key.encode(), digest_size=8).hexdigest()

            p = plan(ctx, thread, sub, self.policy, now=at, notice_id=notice_id)
            # A timer that found nothing due (summary too soon, not a swarm) is not a decision
            # about a quake; recording it for every resident every tick would bury the ones
            # duty staff need. Event-triggered "not sent" decisions are all kept.
            group = rec.ids[chosen[positions]]
            if len(group) == 1 and (raw is None or not raw.startswith("@")):
                sent = self._record(p, thread, sid, area, seq.id, subject, at, rows, planned,
                                    keep_not_sent=trigger != "tick")
            else:
                sent = self._record_group(p, thread, group, area, seq.id, subject, at, rows,
                                          planned, keep_not_sent=trigger != "tick")
            out.sent += sent
            out.not_sent += len(p.decisions) * len(group) - sent
        for pl in planned.values():
            self._make_notice(pl, seq, cls, at)
            out.notice_ids.append(pl.notice_id)
        self.store.decisions.save_decisions(rows)
        self._count(rows)
        return out

    def _record(self, p: Plan, thread: ThreadState | None, sid: int, area: str | None,
                seq_id: str, subject: Event, at: datetime, rows: list[dec.DecisionRow],
                planned: dict[str, _Planned], *, keep_not_sent: bool = True) -> int:
        """One resident's plan: its decision rows, its share of the notices, its thread."""
        sent = 0
        for d, nid in zip(p.decisions, p.notice_ids + ("",) * len(p.decisions)):
            if d.send or keep_not_sent:
                rows.append(dec.DecisionRow(
                    at=at, sequence_id=seq_id, event_id=d.event_id or subject.id,
                    send=d.send, reason_code=d.reason_code, reason_en=d.reason_en,
                    reason_zh=d.reason_zh, subscriber_id=sid, area=area,
                    kind="+".join(d.kinds) or None, msg_type=d.msg_type,
                    urgency=d.urgency if d.send else None, notice_id=nid or None,
                    degree=d.degree))
            if d.send:
                planned.setdefault(nid, _Planned(nid, d, subject, area, d.degree))
                planned[nid].subscriber_ids.append(sid)
                sent += 1
        if p.thread is not None and p.thread != thread:
            self.store.decisions.save_thread(sid, seq_id, thread_to_json(p.thread), at)
        return sent

    def _groups(self, rec: Recipients, chosen: np.ndarray, threads: dict[int, str],
                deg_event: np.ndarray, dist: np.ndarray) -> list[np.ndarray]:
        """Residents whose decision is necessarily the same, as positions into ``chosen``: same
        area, degree, threshold, languages, side of the strong-shaking distance, and the same
        thread (none, or one shared state); a resident with a thread of their own is alone."""
        tkey = np.zeros(len(chosen), dtype=np.int64)
        if threads:
            t_ids = np.fromiter(threads, dtype=np.int64, count=len(threads))
            t_key = np.fromiter((int(v[1:]) if v.startswith("@") else -1
                                 for v in threads.values()), dtype=np.int64, count=len(threads))
            order = np.argsort(t_ids)
            t_ids, t_key = t_ids[order], t_key[order]
            sids = rec.ids[chosen]
            pos = np.clip(np.searchsorted(t_ids, sids), 0, len(t_ids) - 1)
            found = t_ids[pos] == sids
            tkey[found] = t_key[pos[found]]
            alone = tkey < 0
            tkey[alone] = -1 - np.flatnonzero(alone)
        if threads:
            _, tkey = np.unique(tkey, return_inverse=True)
        key = np.zeros(len(chosen), dtype=np.int64)
        # Small non-negative codes packed into one integer (a column's span times the key so
        # far), re-numbered densely if it would grow past 2**62.
        for col in (rec.area_code[chosen], deg_event[chosen].astype(np.int64),
                    rec.min_intensity[chosen].astype(np.int64), rec.lang_code[chosen],
                    (dist <= self.policy.strong_distance_km).astype(np.int64),
                    tkey.reshape(-1)):
            span = int(col.max()) + 1 if len(col) else 1
            if (int(key.max()) + 1 if len(key) else 1) * span >= 2**62:
                _, key = np.unique(key, return_inverse=True)
                key = key.reshape(-1)
            key = key * span + col
        order = np.argsort(key, kind="stable")
        cuts = np.flatnonzero(np.diff(key[order])) + 1
        return sorted(np.split(order, cuts), key=lambda g: int(g[0]))

    def _record_group(self, p: Plan, thread: ThreadState | None, group: np.ndarray,
                      area: str | None, seq_id: str, subject: Event, at: datetime,
                      rows: list[dec.DecisionRow], planned: dict[str, _Planned], *,
                      keep_not_sent: bool = True) -> int:
        """A group's plan: one decision row per decision with the group's count and members,
        the group's share of the notices, and one shared thread state."""
        n = len(group)
        members = group.astype("<i8").tobytes()
        ids = group.tolist()
        sent = 0
        for d, nid in zip(p.decisions, p.notice_ids + ("",) * len(p.decisions)):
            if d.send or keep_not_sent:
                rows.append(dec.DecisionRow(
                    at=at, sequence_id=seq_id, event_id=d.event_id or subject.id,
                    send=d.send, reason_code=d.reason_code, reason_en=d.reason_en,
                    reason_zh=d.reason_zh, area=area, kind="+".join(d.kinds) or None,
                    msg_type=d.msg_type, urgency=d.urgency if d.send else None,
                    notice_id=nid or None, degree=d.degree, count=n, members=members))
            if d.send:
                planned.setdefault(nid, _Planned(nid, d, subject, area, d.degree))
                planned[nid].subscriber_ids.extend(ids)
                sent += n
        if p.thread is not None and p.thread != thread:
            self.store.decisions.save_group_thread(ids, seq_id, thread_to_json(p.thread), at)
        return sent

    def _count(self, rows: Sequence[dec.DecisionRow]) -> None:
        if self.metrics is None:
            return
        for r in rows:
            self.metrics.notices.labels(r.kind or "none", "sent" if r.send else r.reason_code).inc(
                r.count)

    def _not_an_earthquake(self, event: Event, at: datetime, seq_id: str = "") -> None:
        """Residents get no notice for an explosion, quarry blast or collapse; duty staff see
        why (issue 11). Filed under the sequence a retyped quake leaves, else under the event
        alone (no sequence id)."""
        kind = event.event_type or "?"
        row = dec.DecisionRow(
            at=at, sequence_id=seq_id, event_id=event.id, send=False, reason_code="not_earthquake",
            reason_en=f"Not sent: {kind} (event type from {event.preferred_source}), not an "
                      "earthquake.",
            reason_zh=f"未发送：{event_type_zh(event.event_type)}（事件类型来自"
                      f"{event.preferred_source}），不是天然地震。")
        self.store.decisions.save_decisions([row])
        self._count([row])
        log.info("not sent: not an earthquake", extra={"event_id": event.id, "type": kind})

    def _aggregate_not_sent(self, seq_id: str, event: Event, at: datetime, rec: Recipients,
                            mask: np.ndarray, degrees: np.ndarray) -> None:
        if not mask.any():
            return
        where = np.flatnonzero(mask)
        keys = np.column_stack([rec.area_code[where], degrees[where].astype(np.int64)])
        _, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        order = np.argsort(inverse, kind="stable")
        groups = np.split(where[order], np.flatnonzero(np.diff(inverse[order])) + 1)
        found = [(rec.area[int(g[0])], int(degrees[int(g[0])]), g) for g in groups]
        rows = []
        for area, degree, g in sorted(found, key=lambda x: (str(x[0]), x[1])):
            n = len(g)
            rows.append(dec.DecisionRow(
                at=at, sequence_id=seq_id, event_id=event.id, send=False,
                reason_code="below_threshold",
                reason_en=(f"Predicted {felt_words(degree)[0]} here ({roman(degree)}): "
                           f"M{event.magnitude:.1f}, predicted intensity degree {degree} (A12 "
                           f"mean+{self.policy.sigma_factor:g}σ) is below each resident's "
                           "threshold."),
                reason_zh=(f"本地预计{felt_words(degree)[1]}（{roman(degree, 'zh')}度）："
                           f"{event.magnitude:.1f}级地震，预计烈度{degree}度（A12均值+"
                           f"{self.policy.sigma_factor:g}σ），低于用户的通知阈值。"),
                area=area, degree=degree, count=n,
                members=rec.ids[g].astype("<i8").tobytes()))
        self.store.decisions.save_decisions(rows)
        self._count(rows)

    @staticmethod
    def _view(e: Event, upper: float, distance: float) -> EventView:
        status = e.status if e.status in ("automatic", "reviewed", "deleted") else "reviewed"
        return EventView(e.id, e.origin_at, e.latitude, e.longitude, e.depth_km,
                         float(e.magnitude or 0.0), status, upper, distance)  # type: ignore[arg-type]

    # -- notices ----------------------------------------------------------------------------

    def _make_notice(self, pl: _Planned, seq: QuakeSequence, cls: Classification,
                     at: datetime) -> None:
        d, e = pl.decision, pl.event
        members = [m for m in seq.events if m.origin_at <= at]
        previous = self._previous(d.references)
        context = self._context_for(e, cls)
        m1 = cls.largest_magnitude or max((m.magnitude or 0) for m in members)
        notable = tuple(NotableEvent(m.origin_at, float(m.magnitude)) for m in members
                        if m.magnitude is not None and m.magnitude >= m1 - 1.0)[-6:]
        day = [m for m in members if m.origin_at > at - timedelta(hours=24)]
        ctx = NoticeContext(
            event_id=e.id, origin_at=e.origin_at, latitude=e.latitude, longitude=e.longitude,
            depth_km=e.depth_km, magnitude=float(e.magnitude or 0), mag_type=e.mag_type,
            status="automatic" if e.status == "automatic" else "reviewed",
            source=e.preferred_source,
            place_key=epicentre_place_key(e.latitude, e.longitude, self.catalog,
                                          agency_place(e.place)),
            place_text=agency_place(e.place), same_swarm=d.reason_code == "felt_in_swarm",
            recipient_place_key=pl.area, recipient_degree=pl.degree, sequence_id=seq.id,
            sequence_type=None if cls.type == "undetermined" else policy_type(cls.type),
            type_official=False, sequence_started_at=seq.first_at,
            sequence_count=len(members), notable=notable,
            recent=RecentActivity(24.0, len(day), max((m.magnitude or 0) for m in day))
            if day else None,
            summary=d.reason_code == "daily_summary", context=context, previous=previous,
            folded_count=d.folded.count if d.folded else 0,
            folded_largest=NotableEvent(d.folded.at, d.folded.magnitude) if d.folded else None,
            exercise=self.exercise, url=f"{self.base_url}/n/{pl.notice_id}",
        )
        self._store_notice(pl, ctx, seq.id, at)

    def _store_notice(self, pl: _Planned, ctx: NoticeContext, seq_id: str, at: datetime
                      ) -> None:
        """Render the planned notice in every language, store it (held if its kind needs
        approval) and keep its recipients for the outbox."""
        d, e = pl.decision, pl.event
        messages = render_notice(d.kinds, ctx, LANGS, now=at, options=self.render_options,
                                 catalog=self.catalog)
        notice = Notice(
            id=pl.notice_id, sequence_id=seq_id, event_id=e.id, kind="+".join(d.kinds),
            msg_type=d.msg_type or "Alert", messages=messages, created_at=at,
            urgency=d.urgency, references=d.references, exercise=self.exercise, url=ctx.url)
        rule = self.approvals.get(d.kind or "")
        state = "pending_approval" if rule else "released"
        reason = (f"waits for a duty officer, at most {rule.timeout_s:.0f} s" if rule
                  else f"{d.reason_code}: {d.reason_en}")
        try:
            self.store.notices.save_notice(
                notice, state,  # type: ignore[arg-type]
                area=nt.AreaCircle(e.latitude, e.longitude, self._area_km(pl.degree),
                                   e.place or ""),
                at=datetime.now(UTC), reason=reason)
        except InvalidRequest as err:  # the same notice id already stored: a replayed decision
            log.warning("notice not stored again: %s", err, extra={"notice_id": pl.notice_id})
            return
        self._pending_recipients[pl.notice_id] = (pl.subscriber_ids, rule)
        if d.deliver_at is not None and d.deliver_at > at:
            self._deferred[pl.notice_id] = d.deliver_at - at
        log.info("notice stored", extra={
            "notice_id": pl.notice_id, "sequence_id": seq_id, "kind": notice.kind,
            "recipients": len(pl.subscriber_ids), "state": state, "reason": d.reason_code})

    def _area_km(self, degree: int) -> float:
        return 200.0 if degree >= 3 else 100.0

    def _previous(self, refs: Sequence[str]) -> PreviousNotice | None:
        if not refs:
            return None
        try:
            stored = self.store.notices.load_stored_notice(refs[-1])
        except NotFound:
            return None
        n = stored.notice
        try:
            e = self.store.event(n.event_id)
        except NotFound:
            return None
        told = [h for h in self.store.event_history(e.id)]
        first = told[0] if told else None
        return PreviousNotice(
            notice_id=n.id, sent_at=stored.released_at or n.created_at,
            titles=tuple((m.lang, m.title) for m in n.messages),
            origin_at=e.origin_at if first is None else datetime.fromisoformat(
                first["time"]),
            latitude=first["latitude"] if first else e.latitude,
            longitude=first["longitude"] if first else e.longitude,
            depth_km=first["depth_km"] if first else e.depth_km,
            magnitude=float(first["magnitude"] if first else (e.magnitude or 0)),
            place_text=e.place)

    def _cancel_deleted(self, seq_id: str, event: Event, at: datetime, *,
                        retyped: bool = False) -> list[str]:
        """An agency deleted an event, or ``retyped`` it as a non-earthquake (an explosion...):
        residents who were told about it get a Cancel."""
        threads = self.store.decisions.threads_for(seq_id)
        states = self.store.decisions.thread_states(seq_id)
        told = {sid: replace(thread_from_json(
                    states[int(raw[1:])] if raw.startswith("@") else raw), subscriber_id=str(sid))
                for sid, raw in threads.items()}
        told = {sid: t for sid, t in told.items() if t.told_event(event.id) is not None}
        if not told:
            return []
        rec = self.recipients()
        area = dict(zip(rec.ids.tolist(), rec.area))
        planned: dict[str, _Planned] = {}
        rows: list[dec.DecisionRow] = []
        with self.store.transaction():
            for sid, thread in sorted(told.items()):
                view = self._view(event, 0.0, 0.0)
                ctx = PolicyInput(sequence_id=seq_id, trigger="retyped" if retyped else "deleted",
                                  event=view, largest=view, sequence_type="undetermined",
                                  event_type=event.event_type, source=event.preferred_source)
                p = plan(ctx, thread, SubscriberView(str(sid)), self.policy, now=at,
                         notice_id=lambda d: "qa-n-" + hashlib.blake2s(
                             f"{seq_id}|{d.event_id}|cancel|{at.isoformat()}".encode(),
                             digest_size=8).hexdigest())
                self._record(p, thread, sid, area.get(sid), seq_id, event, at, rows, planned)
            for pl in planned.values():
                self._make_cancel(pl, seq_id, at, retyped=retyped)
            self.store.decisions.save_decisions(rows)
            self._count(rows)
            self._enqueue(list(planned), at)
        return list(planned)

    def _make_cancel(self, pl: _Planned, seq_id: str, at: datetime, *,
                     retyped: bool = False) -> None:
        e = pl.event
        previous = self._previous(pl.decision.references)
        ctx = NoticeContext(
            event_id=e.id, origin_at=e.origin_at, latitude=e.latitude, longitude=e.longitude,
            depth_km=e.depth_km, magnitude=float(e.magnitude or 0), mag_type=e.mag_type,
            source=e.preferred_source, place_text=agency_place(e.place), sequence_id=seq_id,
            previous=previous, cancel_reason="not_earthquake" if retyped else "deleted",
            event_type=e.event_type, exercise=self.exercise,
            url=f"{self.base_url}/n/{pl.notice_id}")
        self._store_notice(pl, ctx, seq_id, at)

    def _enqueue(self, notice_ids: Iterable[str], at: datetime) -> None:
        wall = datetime.now(UTC)
        for nid in notice_ids:
            pending = self._pending_recipients.pop(nid, None)
            if pending is None:
                continue
            ids, rule = pending
            due = wall + timedelta(seconds=rule.timeout_s) if rule else wall
            due += self._wall_delay(self._deferred.pop(nid, timedelta(0)))  # quiet hours
            self.store.outbox.enqueue_subscribers(nid, ids, now=due)

    def _wall_delay(self, scenario: timedelta) -> timedelta:
        """A wait in scenario time as wall time: a replay at speed N runs N times faster, and a
        replay at speed 0 (as fast as possible) does not wait; live, the two are the same."""
        sources = self.runtime.sources.values() if self.runtime is not None else ()
        speeds = [float(src.config.speed) for src in sources
                  if callable(getattr(src, "virtual_now", None))]
        if not speeds or not scenario:
            return scenario
        return timedelta(0) if 0.0 in speeds else scenario / max(speeds)

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


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout_s: float) -> None:
    """Until ``stop`` or ``wake`` is set, or ``timeout_s`` has passed."""
    waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
