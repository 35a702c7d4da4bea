"""Outbox workers: claim due rows, deliver them through their channels, mark each result.

Every row is written (``store.outbox.enqueue``) before it is sent and marked after. At most
``concurrency`` rows are claimed and unmarked at any moment, so a crash re-sends at most that
many (``recover`` at start puts them back). 429/5xx/transport errors retry with exponential
back-off (Retry-After wins when the receiver sends one); 404/410 delete a Web Push subscription;
other 4xx fail without retry.

``python -m quakealert.service.dispatch --db PATH`` runs the workers alone (crash test, drills).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import signal
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

from quakealert.channels.base import Channel, DeliveryResult, Recipient, retryable
from quakealert.errors import ConfigError, NotFound, SubscriptionGone
from quakealert.logs import scrub, trace_only
from quakealert.model import Notice
from quakealert.store import outbox as ob
from quakealert.store.base import Store, StoreBusy
from quakealert.store.subscribers import SubscriberPoints

log = logging.getLogger(__name__)

# How long a worker thread waits for a write lock held elsewhere before it keeps the delivery
# results for the next round (off the loop, so the loop never waits; store/outbox.py waits
# CLAIM_BUSY_MS for a claim, which runs on the loop).
MARK_BUSY_S = 2.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential back-off: base·2^(n-1), capped, ± jitter (a fraction), at most max_attempts."""

    base_s: float = 5.0
    cap_s: float = 1800.0
    jitter: float = 0.25
    max_attempts: int = 12
    max_retry_after_s: float = 6 * 3600.0

    def delay_s(self, attempts: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds until the next attempt after ``attempts`` failed ones."""
        if retry_after_s is not None:
            return min(max(retry_after_s, 0.0), self.max_retry_after_s)
        backoff = min(self.cap_s, self.base_s * 2.0 ** max(attempts - 1, 0))
        return backoff * (1.0 - self.jitter + 2.0 * self.jitter * rng.random())


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    """How the workers run (``[outbox]`` in the config)."""

    concurrency: int = 64  # rows claimed and not yet marked: also the duplicate bound on a crash
    lease_s: float = 120.0
    poll_s: float = 1.0
    ttl_s: float = 24 * 3600.0  # a row not delivered this long after its notice gives up
    pending_recheck_s: float = 60.0  # a notice still awaiting approval is looked at again
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_section(cls, section: Mapping[str, Any]) -> OutboxSettings:
        try:
            retry = RetryPolicy(**{k[len("retry_"):]: section[k] for k in section
                                   if k.startswith("retry_")})
            plain = {k: section[k] for k in section if not k.startswith("retry_")}
            made = cls(retry=retry, **plain)
        except TypeError as err:
            raise ConfigError(f"[outbox]: {err}") from None
        if made.concurrency < 1 or made.lease_s <= 0 or made.poll_s <= 0:
            raise ConfigError("[outbox]: concurrency >= 1, lease_s > 0, poll_s > 0")
        return made


@dataclass(frozen=True, slots=True)
class _Mark:
    row: ob.OutboxRow
    state: str  # sent | retry | gone | failed
    status: int | None = None
    error: str | None = None
    delay_s: float = 0.0


class Outbox:
    """Delivers the outbox through ``channels`` over one shared ClientSession."""

    def __init__(
        self,
        store: Store,
        channels: Mapping[str, Channel],
        session: aiohttp.ClientSession,
        *,
        settings: OutboxSettings | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] | None = None,
    ):
        self.store = store
        self.channels = dict(channels)
        self.session = session
        self.settings = settings or OutboxSettings()
        self.rng = rng or random.Random()
        self.clock = clock or (lambda: datetime.now(UTC))
        self.counters: Counter[str] = Counter()  # claimed, sent, retry, failed, gone, ...
        # Called once per marked row with (row, state): the daemon's metrics hook.
        self.on_result: Callable[[ob.OutboxRow, str, datetime], None] | None = None
        self._wake = asyncio.Event()

    @classmethod
    def from_settings(
        cls, store: Any, settings: Any, session: aiohttp.ClientSession, *,
        channels: Mapping[str, Channel] | None = None,
    ) -> Outbox:
        """Workers on ``store`` with every channel of ``make_channels(settings)`` and the
        ``[outbox]`` section (concurrency, lease_s, poll_s, ttl_s, retry_base_s, retry_cap_s,
        retry_jitter, retry_max_attempts, retry_max_retry_after_s)."""
        from quakealert.channels import make_channels

        return cls(store, channels if channels is not None else make_channels(settings),
                   session, settings=OutboxSettings.from_section(settings.section("outbox")))

    def close(self) -> None:
        """Release what the channels hold (the Web Push crypto pool)."""
        for channel in self.channels.values():
            close = getattr(channel, "close", None)
            if close is not None:
                close()

    def wake(self) -> None:
        """Tell a running loop that rows were enqueued."""
        self._wake.set()

    # -- one batch --------------------------------------------------------------------------

    async def drain_once(self, now: datetime) -> int:
        """Claim up to ``concurrency`` rows due at ``now``, deliver them all, mark them all.

        Returns the number of rows handled (0 when nothing was due). Tests call this directly.
        """
        rows = self.store.outbox.claim(self.settings.concurrency, now,
                                       lease_s=self.settings.lease_s)
        if not rows:
            return 0
        self.counters["claimed"] += len(rows)
        notices = self._notices(rows)
        results = await asyncio.gather(
            *(self._attempt(row, notices, now) for row in rows), return_exceptions=True)
        self._apply([self._judge(row, res, notices, now) for row, res in zip(rows, results)], now)
        return len(rows)

    # -- the loop ---------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, until_empty: bool = False) -> None:
        """Deliver until ``stop`` is set (then finish what is in flight), keeping at most
        ``concurrency`` rows in flight; ``until_empty`` returns once nothing is left to do."""
        recovered = self.store.outbox.recover(self.clock(), all_in_flight=True)
        if recovered:
            log.info("outbox: in-flight rows from a previous run returned to pending", extra={
                "rows": recovered})
        limit = self.settings.concurrency
        # Claim again once this many slots are free: small enough to keep the channels busy
        # while the rest are in flight, large enough that a claim is one query for many rows.
        refill = max(1, min(limit // 4, 128))
        loop = asyncio.get_running_loop()
        inflight: dict[asyncio.Task[DeliveryResult], tuple[ob.OutboxRow, dict[str, Any]]] = {}
        finished: list[asyncio.Task[DeliveryResult]] = []
        waiter: list[asyncio.Future[None] | None] = [None]

        def on_done(task: asyncio.Task[DeliveryResult]) -> None:
            # O(1) per completed task (asyncio.wait would re-register on every task per wake).
            finished.append(task)
            w = waiter[0]
            if w is not None and not w.done():
                w.set_result(None)

        dry, claimed_at = False, loop.time()
        last_recover = self.clock()
        unwritten: list[_Mark] = []  # delivery results not yet stored (the store was busy)
        while True:
            now = self.clock()
            free = limit - len(inflight)
            if (not stop.is_set() and free >= refill
                    and (not dry or not inflight or self._wake.is_set()
                         or loop.time() - claimed_at >= self.settings.poll_s)):
                self._wake.clear()
                try:
                    rows = self.store.outbox.claim(free, now, lease_s=self.settings.lease_s)
                except self.store.failures as err:  # locked past busy_timeout: next round
                    log.warning("outbox claim failed, trying again", extra={"error": str(err)})
                    rows = []
                # Fewer than asked: nothing more is due; look again after poll_s or a wake()
                # rather than on every completion.
                dry, claimed_at = len(rows) < free, loop.time()
                if rows:
                    self.counters["claimed"] += len(rows)
                    notices = self._notices(rows)
                    for row in rows:
                        task = loop.create_task(self._attempt(row, notices, now))
                        inflight[task] = (row, notices)
                        task.add_done_callback(on_done)
            if inflight:
                if not finished:
                    w = waiter[0] = loop.create_future()
                    timer = loop.call_later(self.settings.poll_s, _resolve, w)
                    try:
                        await w
                    finally:
                        timer.cancel()
                        waiter[0] = None
                if finished:
                    # Let the other completions of this loop iteration land: one mark batch.
                    await asyncio.sleep(0)
                    done, finished[:] = list(finished), []
                    now = self.clock()
                    for task in done:
                        row, notices = inflight.pop(task)
                        res: Any = task.exception() if task.exception() else task.result()
                        unwritten.append(self._judge(row, res, notices, now))
                if unwritten and await self._apply_off_loop(unwritten, now):
                    unwritten = []
                continue
            if unwritten:  # nothing in flight, results still to store: the store was busy
                if not await self._apply_off_loop(unwritten, now):
                    if stop.is_set():  # their rows stay in flight: sent again after a restart
                        log.warning("outbox: stopped with delivery results not stored",
                                    extra={"rows": len(unwritten)})
                        return
                    await _wait_any(stop, self._wake, self.settings.poll_s)
                    continue
                unwritten = []
            if stop.is_set():
                return
            if (now - last_recover).total_seconds() > self.settings.lease_s:
                last_recover = now  # leases of tasks that never came back; off the loop
                try:
                    await self.store.off_loop(lambda st, at=now: st.outbox.recover(at),
                                              busy_wait_s=MARK_BUSY_S)
                except StoreBusy:
                    log.warning("outbox: store busy, expired leases recovered next round")
            due = self.store.outbox.next_due_at()
            if due is None and until_empty and not self.store.outbox.any_in_flight():
                return
            wait_s = self.settings.poll_s
            if due is not None:
                wait_s = min(wait_s, max((due - now).total_seconds(), 0.0))
            if wait_s > 0:
                await _wait_any(stop, self._wake, wait_s)
            self._wake.clear()

    # -- helpers ----------------------------------------------------------------------------

    def _notices(self, rows: Sequence[ob.OutboxRow]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for nid in {r.notice_id for r in rows}:
            try:
                found[nid] = self.store.notices.load_stored_notice(nid)
            except NotFound:
                found[nid] = None
        return found

    def _precheck(self, row: ob.OutboxRow, stored: Any, now: datetime) -> _Mark | None:
        if stored is None:
            return _Mark(row, "failed", error="notice not found")
        if stored.state == "pending_approval":
            return _Mark(row, "retry", error="notice awaiting approval",
                         delay_s=self.settings.pending_recheck_s)
        if stored.state != "released":
            return _Mark(row, "failed", error=f"notice {stored.state}")
        # TTL from release (wall clock): a replay's notice carries its scenario time.
        released = stored.released_at or stored.notice.created_at
        if (now - released).total_seconds() > self.settings.ttl_s:
            return _Mark(row, "failed", error="expired before delivery")
        if not row.subscriber_exists:
            return _Mark(row, "gone", error="subscription deleted")
        if row.channel not in self.channels:
            return _Mark(row, "failed", error=f"no channel {row.channel!r}")
        return None

    async def _attempt(
        self, row: ob.OutboxRow, notices: dict[str, Any], now: datetime
    ) -> DeliveryResult:
        stored = notices.get(row.notice_id)
        if self._precheck(row, stored, now) is not None:
            raise _Skip()
        notice: Notice = stored.notice
        recipient = Recipient(
            subscriber_id=row.subscriber_id, channel=row.channel, target=row.target,
            languages=row.languages or ("zh", "bo"), p256dh=row.p256dh, auth=row.auth,
            secret=row.secret, delivery_id=row.id)
        return await self.channels[row.channel].deliver(notice, recipient, self.session, now=now)

    def _judge(self, row: ob.OutboxRow, res: Any, notices: dict[str, Any],
               now: datetime) -> _Mark:
        policy = self.settings.retry
        if isinstance(res, _Skip):
            mark = self._precheck(row, notices.get(row.notice_id), now)
            assert mark is not None
            return mark
        if isinstance(res, SubscriptionGone):
            return _Mark(row, "gone", status=getattr(res, "status", None), error=str(res))
        if isinstance(res, DeliveryResult):
            if res.gone:
                return _Mark(row, "gone", status=res.status, error=res.error)
            if res.ok:
                return _Mark(row, "sent", status=res.status)
            if retryable(res.status) and row.attempts < policy.max_attempts:
                return _Mark(row, "retry", status=res.status, error=res.error,
                             delay_s=policy.delay_s(row.attempts, res.retry_after_s, self.rng))
            return _Mark(row, "failed", status=res.status, error=res.error)
        if isinstance(res, asyncio.TimeoutError | aiohttp.ClientError | OSError):
            error = f"{type(res).__name__}: {res}"[:300]
            if row.attempts < policy.max_attempts:
                return _Mark(row, "retry", error=error,
                             delay_s=policy.delay_s(row.attempts, None, self.rng))
            return _Mark(row, "failed", error=error)
        if isinstance(res, BaseException):
            # ids only: the exception text may hold the resident's push endpoint
            log.error("delivery raised %s", type(res).__name__, extra={
                "delivery_id": row.id, "notice_id": row.notice_id,
                "subscriber_id": row.subscriber_id, "channel": row.channel,
                "trace": trace_only(res)})
            return _Mark(row, "failed", error=f"{type(res).__name__}: {res}"[:300])
        return _Mark(row, "failed", error=f"unexpected result {type(res).__name__}")

    def _apply(self, marks: Sequence[_Mark], now: datetime) -> None:
        """Write every mark in one transaction (one executemany for all the rows), here."""
        params, gone_subscribers = self._mark_rows(marks, now)
        _write_marks(self.store, params, gone_subscribers, now)
        self._marked(marks, gone_subscribers, now)

    async def _apply_off_loop(self, marks: Sequence[_Mark], now: datetime) -> bool:
        """:meth:`_apply` on a connection of its own in a worker thread: a write lock held
        by another process (a backup, an import) never stalls the event loop (issue 9 §6).
        False when the store stayed busy: the caller keeps the marks and tries again."""
        params, gone_subscribers = self._mark_rows(marks, now)
        try:
            await self.store.off_loop(
                lambda st: _write_marks(st, params, gone_subscribers, now),
                busy_wait_s=MARK_BUSY_S)
        except StoreBusy:
            log.warning("outbox: store busy, delivery results kept to write again",
                        extra={"rows": len(params)})
            return False
        self._marked(marks, gone_subscribers, now)
        return True

    def _mark_rows(self, marks: Sequence[_Mark], now: datetime
                   ) -> tuple[list[tuple[int, str, int | None, str | None, datetime | None]],
                              set[int]]:
        """The outbox updates for ``marks`` and the residents whose push service said gone."""
        gone_subscribers = set()
        params: list[tuple[int, str, int | None, str | None, datetime | None]] = []
        for m in marks:
            state = m.state
            if state == "sent":
                params.append((m.row.id, "sent", m.status, None, None))
            elif state == "retry":
                params.append((m.row.id, "pending", m.status, m.error or "retry",
                               now + timedelta(seconds=m.delay_s)))
            elif state == "gone":
                params.append((m.row.id, "gone", m.status, m.error or "subscription gone", None))
                if m.row.subscriber_exists:
                    gone_subscribers.add(m.row.subscriber_id)
            else:
                params.append((m.row.id, "failed", m.status, m.error or "failed", None))
            if state == "failed":  # given up: ids and a scrubbed error (it may name the target)
                log.warning("delivery failed", extra={
                    "delivery_id": m.row.id, "notice_id": m.row.notice_id,
                    "subscriber_id": m.row.subscriber_id, "channel": m.row.channel,
                    "status": m.status, "error": scrub((m.error or "")[:120])})
        return params, gone_subscribers

    def _marked(self, marks: Sequence[_Mark], gone_subscribers: set[int],
                now: datetime) -> None:
        """After the marks are stored: counters, logs and the metrics hook."""
        counts: Counter[str] = Counter()
        for m in marks:
            counts[m.state] += 1
            counts[f"{m.row.channel}.{m.state}"] += 1
        self.counters.update(counts)
        for sid in gone_subscribers:
            log.info("subscriber removed: the push service says gone", extra={"subscriber_id": sid})
        if self.on_result is not None:
            for m in marks:
                self.on_result(m.row, m.state, now)


def _write_marks(store: Store, params: Sequence[tuple[int, str, int | None, str | None,
                                                     datetime | None]],
                 gone_subscribers: set[int], now: datetime) -> None:
    with store.transaction() as tx:
        tx.outbox.finish_many(params, at=now)
        for sid in gone_subscribers:
            tx.subscribers.delete_subscriber(sid)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class _Skip(Exception):
    """A row that is not sent (notice missing/unreleased/expired, subscriber deleted)."""


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout_s: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


# -- recipient selection ---------------------------------------------------------------------


def select_recipients(
    points: SubscriberPoints,
    upper_intensity: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> np.ndarray:
    """Internal ids of subscribers whose predicted intensity reaches their own threshold.

    ``upper_intensity(lat, lon)`` returns the continuous (mean + k·σ) intensity at each place,
    e.g. ``functools.partial(core.intensity.upper_intensity_many, m, depth, lat0, lon0)``; a
    degree n is reached when the value rounds to n or more (CSIS degree n covers [n-0.5, n+0.5)).
    """
    values = upper_intensity(points.lat, points.lon)
    return points.ids[values >= points.min_intensity - 0.5]


def select_for_event(
    points: SubscriberPoints,
    *,
    magnitude: float,
    depth_km: float | None,
    latitude: float,
    longitude: float,
    sigma_factor: float = 1.0,
) -> np.ndarray:
    """``select_recipients`` with the Allen et al. 2012 IPE of core.intensity."""
    from quakealert.core.intensity import upper_intensity_many

    def ipe(lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
        return upper_intensity_many(magnitude, depth_km, latitude, longitude, lats, lons,
                                    sigma_factor=sigma_factor)

    return select_recipients(points, ipe)


# -- standalone workers ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m quakealert.service.dispatch",
                                description="run the outbox workers on one database")
    p.add_argument("--db", type=Path, required=True, help="the SQLite store")
    p.add_argument("--config", type=Path, default=None, help="TOML config ([outbox], [webpush])")
    p.add_argument("--concurrency", type=int, default=None)
    p.add_argument("--until-empty", action="store_true", help="exit when nothing is left to send")
    p.add_argument("--connections", type=int, default=1000, help="HTTP connection pool size")
    return p


async def _main(args: argparse.Namespace) -> int:
    from quakealert.channels import make_channels
    from quakealert.channels.guard import delivery_session
    from quakealert.config import Settings, load_settings
    from quakealert.store import open_file

    if args.config is not None:
        settings = load_settings(args.config)
    else:
        settings = Settings(store_path=args.db, var_dir=args.db.parent)
    section = settings.section("outbox")
    if args.concurrency is not None:
        section["concurrency"] = args.concurrency
    store = open_file(args.db)  # --db, whatever the config names
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    insecure = bool(settings.section("webpush").get("allow_insecure_endpoints", False))
    async with delivery_session(allow_insecure=insecure, limit=args.connections,
                                limit_per_host=0) as session:
        box = Outbox(store, make_channels(settings), session,
                     settings=OutboxSettings.from_section(section))
        try:
            await box.run(stop, until_empty=args.until_empty)
        finally:
            box.close()
    log.info("outbox: done %s", dict(box.counters))
    store.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="ts=%(asctime)s level=%(levelname)s "
                        "logger=%(name)s msg=%(message)s")
    return asyncio.run(_main(build_parser().parse_args(argv)))


if __name__ == "__main__":
    raise SystemExit(main())
