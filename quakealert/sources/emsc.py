"""EMSC: the seismicportal websocket (push, lowest latency) plus its fdsnws-event for back-fill.

Websocket messages are ``{"action": "create"|"update", "data": <GeoJSON Feature>}`` with
``properties`` unid, time, lat, lon, depth (km, positive down; the geometry's third coordinate
is its negative), mag, magtype, flynn_region, auth, evtype, lastupdate, source_id,
source_catalog (EMSC-CSEM/webservices101, use_cases/usecase3.md). ``unid`` is the id that
EMSC's fdsnws returns as EventID, so websocket and back-fill reports of one quake share
``(source, source_id)``.

Reconnect contract (for the poller/daemon): :meth:`EmscSource.listen` runs until ``stop`` is
set. After every reconnect (a successful connection that follows a dropped or failed one) it
awaits ``on_gap(since)``, where ``since`` is the last instant the stream was known complete
(last message, or when the previous connection opened). The daemon answers with
``poll_once(emsc_source, since=since)``: ``fetch`` then asks the FDSN endpoint
``updatedafter = since - overlap_s``, so nothing published during the gap is lost, and
re-delivered events are idempotent by ``(source, source_id, updated_at)``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from quakealert.config import SourceConfig
from quakealert.errors import ParseError
from quakealert.formats.emsc import parse_emsc_message
from quakealert.logs import scrub
from quakealert.model import ParseResult
from quakealert.sources.fdsn import FdsnSource

log = logging.getLogger(__name__)

DEFAULT_WS_URL = "wss://www.seismicportal.eu/standing_order/websocket"
DEFAULT_HEARTBEAT_S = 15.0  # EMSC's own listener pings every 15 s
DEFAULT_BACKOFF_S = 1.0
DEFAULT_BACKOFF_MAX_S = 120.0

OnReports = Callable[[ParseResult], Awaitable[None]]
OnGap = Callable[[datetime], Awaitable[None]]


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Exponential back-off, capped, with "equal jitter": uniform in [d/2, d] where
    d = min(cap, base·2^attempt).

    The jitter keeps many clients from reconnecting in lock-step after an EMSC restart.
    """
    ceiling = min(cap_s, base_s * (2.0 ** min(attempt, 30)))
    return ceiling / 2.0 + rng.random() * ceiling / 2.0


@dataclass(slots=True)
class WsState:
    """What the listener knows about its websocket, for the source health record."""

    connected: bool = False
    connects: int = 0
    reconnects: int = 0
    messages: int = 0
    skipped: int = 0
    last_message_at: datetime | None = None
    last_error: str | None = None


class EmscSource(FdsnSource):
    """EMSC: ``fetch``/``parse`` are the fdsnws back-fill (``url``); ``listen`` is the push feed."""

    def __init__(
        self,
        config: SourceConfig,
        *,
        rng: random.Random | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(config)
        params = config.params
        self.ws_url = str(params.get("ws_url") or DEFAULT_WS_URL)
        self.heartbeat_s = float(params.get("ws_heartbeat_s", DEFAULT_HEARTBEAT_S))
        self.backoff_s = float(params.get("ws_backoff_s", DEFAULT_BACKOFF_S))
        self.backoff_max_s = float(params.get("ws_backoff_max_s", DEFAULT_BACKOFF_MAX_S))
        self.state = WsState()
        self._rng = rng or random.Random()
        self._now = now

    def parse_message(self, body: bytes | str) -> ParseResult:
        """One websocket message, with this source's name and default status."""
        status = self.config.params.get("status", "reviewed")
        return parse_emsc_message(body, self.name, default_status=status)

    async def listen(
        self,
        session: aiohttp.ClientSession,
        on_reports: OnReports,
        *,
        stop: asyncio.Event,
        on_gap: OnGap | None = None,
    ) -> None:
        """Receive pushes until ``stop`` is set; reconnect with back-off; report gaps.

        Never raises for network or message errors: they are logged and counted in
        :attr:`state`. ``on_reports`` is awaited once per parsed message (reports and/or
        skipped rows). ``on_gap(since)`` is awaited after each reconnect, before the socket is
        read; messages wait in the socket meanwhile, so a slow back-fill delays but loses
        nothing. Exceptions from either hook are logged and do not stop the listener.
        """
        attempt = 0
        complete_until: datetime | None = None  # the stream is known complete up to here
        while not stop.is_set():
            try:
                async with asyncio.timeout(self.config.timeout_s):
                    ws = await session.ws_connect(
                        self.ws_url,
                        heartbeat=self.heartbeat_s,
                        timeout=aiohttp.ClientWSTimeout(ws_close=5.0),
                    )
            except (aiohttp.ClientError, OSError, TimeoutError) as err:
                self.state.last_error = f"connect failed: {err!r}"
                log.warning("websocket connect failed", extra={
                    "source": self.name, "error": type(err).__name__})
            else:
                opened_at = self._now()
                self.state.connected = True
                self.state.connects += 1
                attempt = 0
                if complete_until is not None:
                    self.state.reconnects += 1
                    log.info("websocket reconnected", extra={
                        "source": self.name, "gap_since": complete_until.isoformat()})
                    if on_gap is not None:
                        await self._call(on_gap, complete_until, "on_gap")
                complete_until = opened_at
                try:
                    complete_until = await self._pump(ws, on_reports, stop, complete_until)
                finally:
                    self.state.connected = False
                    await ws.close()
                if stop.is_set():
                    break
                log.warning("websocket closed", extra={"source": self.name, "code": ws.close_code})
            if complete_until is None:
                complete_until = self._now()  # gap starts now if we never connected
            delay = backoff_delay(attempt, self.backoff_s, self.backoff_max_s, self._rng)
            attempt += 1
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass

    async def _pump(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        on_reports: OnReports,
        stop: asyncio.Event,
        complete_until: datetime,
    ) -> datetime:
        """Read messages until the socket closes or ``stop``; return the last complete instant."""
        stopper = asyncio.ensure_future(stop.wait())
        receiver: asyncio.Future[aiohttp.WSMessage] | None = None
        try:
            while True:
                receiver = asyncio.ensure_future(ws.receive())
                done, _ = await asyncio.wait(
                    {receiver, stopper}, return_when=asyncio.FIRST_COMPLETED
                )
                if receiver not in done:
                    return complete_until
                msg = receiver.result()
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    await self._handle(msg.data, on_reports)
                    complete_until = self._now()
                    continue
                if msg.type == aiohttp.WSMsgType.ERROR:
                    self.state.last_error = f"websocket error: {ws.exception()!r}"
                return complete_until
        finally:  # also on cancellation of the listener task: leave no pending futures
            stopper.cancel()
            if receiver is not None and not receiver.done():
                receiver.cancel()

    async def _handle(self, data: str | bytes, on_reports: OnReports) -> None:
        self.state.messages += 1
        self.state.last_message_at = self._now()
        try:
            result = self.parse_message(data)
        except ParseError as err:
            self.state.skipped += 1
            log.warning("skipped websocket message: %s", scrub(err.detail), extra={
                "source": self.name})
            return
        self.state.skipped += len(result.skipped)
        await self._call(on_reports, result, "on_reports")

    async def _call(self, hook: Callable[..., Awaitable[None]], arg: Any, what: str) -> None:
        # The listener is a job boundary: a failing pipeline must not stop the push feed.
        try:
            await hook(arg)
        except Exception:
            log.exception("%s failed", what, extra={"source": self.name})
