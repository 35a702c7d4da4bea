"""Replay a catalogue file at a chosen speed: the offline demo, drills and tests.

:func:`read_catalog_file` reads any catalogue file we ship or are handed, detecting the layout:
fdsnws text, QuakeML, GeoJSON (USGS), the CENC JSON list, ComCat CSV (comma or tab), the SCEDC
CSVs in data/, the CENC CSV of ``cenc-tibet-events-from-news.csv`` (and the bundled scenarios),
and the split-date CSV of the Karakostas et al. (2025) Santorini relocation.

:class:`ReplaySource` plays the file: with ``speed == 0`` everything comes on the first fetch;
otherwise event *k* is released once ``(origin_k - origin_0) / speed`` seconds of monotonic time
have passed since the first fetch. :meth:`ReplaySource.virtual_now` is the scenario time of the
present, so the pipeline can judge "30 minutes after the event" on scenario time.

``params.start`` (ISO 8601, e.g. ``"2024-10-20T00:00:00Z"``) splits the file: rows before it are
*background* (history), handed over at once by :meth:`ReplaySource.backfill` as the daemon's
start-up back-fill (stored and sequenced, never notified), and the scenario clock starts at
``start`` rather than at the first row. :meth:`ReplaySource.run` plays the rest on time: it
sleeps until the next row's scaled origin time instead of waiting for a poll interval.

Every replayed report is visibly a replay: its ``place`` starts with ``[REPLAY]`` (the place
is ``[REPLAY]`` alone when the file has none); :func:`is_replay` tests for it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import aiohttp

from quakealert.config import SourceConfig
from quakealert.errors import ConfigError, ParseError
from quakealert.formats.catalog import (
    REPLAY_TAG,
    _decode,
    encode_lines,
    read_catalog_file,
)
from quakealert.formats.rows import parse_utc
from quakealert.model import ParseResult, Report

Sleep = Callable[[float], Awaitable[object]]


class ReplaySource:
    """Plays ``config.path`` once, in origin-time order, at ``config.speed`` x real time.

    ``params.source_as`` renames the reports' ``source`` (the bundled scenario is CENC data:
    ``source_as = "cenc"``); ``params.label`` is logged by the daemon; ``params.start`` makes
    the rows before it background. ``clock`` (monotonic seconds) and ``sleep`` are injectable
    so tests never wait on the wall clock.
    """

    def __init__(self, config: SourceConfig, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Sleep | None = None):
        if not config.path:
            raise ConfigError(f"source {config.name}: replay needs path")
        self.name = config.name
        self.config = config
        self._clock = clock
        self._sleep = sleep
        start = config.params.get("start")
        try:
            self.start: datetime | None = parse_utc(str(start)) if start else None
        except ValueError as err:
            raise ConfigError(f"source {config.name}: params.start {start!r} is not an ISO 8601"
                              " instant") from err
        try:
            result = read_catalog_file(config.path, source=config.params.get("source_as"))
        except (OSError, ParseError) as err:
            raise ConfigError(f"source {config.name}: cannot replay {config.path}: {err}") from err
        ordered = sorted(result.reports, key=lambda r: (r.origin_at, r.source_id))
        cut = self.start
        self._background = [r for r in ordered if cut is not None and r.origin_at < cut]
        self._reports = ordered[len(self._background):]
        self._pending_skips = list(result.skipped)
        self._released = 0
        self._started: float | None = None
        first = self._reports[0].origin_at if self._reports else None
        self.origin_0: datetime | None = self.start or first

    @property
    def background_count(self) -> int:
        """Rows before ``params.start``: history, not part of the played scenario."""
        return len(self._background)

    @property
    def total(self) -> int:
        return len(self._reports)

    @property
    def released(self) -> int:
        return self._released

    @property
    def done(self) -> bool:
        """Everything has been played."""
        return self._released >= len(self._reports)

    def _elapsed_s(self) -> float:
        return 0.0 if self._started is None else max(0.0, self._clock() - self._started)

    def virtual_now(self) -> datetime:
        """Scenario time of the present: origin_0 + elapsed·speed (speed 0: last released
        origin). Before the first fetch (or for an empty file) it is origin_0 (or the epoch);
        origin_0 is ``params.start`` when set, else the first row's origin."""
        if self.origin_0 is None:
            return datetime(1970, 1, 1, tzinfo=UTC)
        if self.config.speed == 0:
            if self._released == 0:
                return self.origin_0
            return self._reports[self._released - 1].origin_at
        return self.origin_0 + timedelta(seconds=self._elapsed_s() * self.config.speed)

    def seconds_to_next(self) -> float | None:
        """Monotonic seconds until the next row is due (0 if due now); None when all played."""
        if self.done:
            return None
        if self.config.speed == 0 or self.origin_0 is None or self._started is None:
            return 0.0
        ahead = (self._reports[self._released].origin_at - self.origin_0).total_seconds()
        return max(0.0, ahead / self.config.speed - self._elapsed_s())

    async def backfill(self, session: aiohttp.ClientSession | None, start: datetime,
                       end: datetime) -> ParseResult:
        """The background rows (before ``params.start``), all at once; the window is ignored:
        the file is the whole catalogue, so the background it holds is complete."""
        return self.parse(encode_lines(self._background))

    async def run(self, poll: Callable[[], Awaitable[object]], stop: asyncio.Event) -> None:
        """Play on time: ``poll`` (a fetch that stores what is due) at each row's scaled time.

        The daemon calls this instead of polling every ``interval_s`` (issue 12 §7), so a quake
        is delivered when its scaled origin time comes, however fast the replay runs.
        """
        while not stop.is_set():
            await poll()
            wait = self.seconds_to_next()
            if wait is None:
                return
            await self._wait(wait, stop)

    async def _wait(self, seconds: float, stop: asyncio.Event) -> None:
        if self._sleep is not None:
            await self._sleep(seconds)
            return
        try:
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        except TimeoutError:
            pass

    def _due(self) -> int:
        """How many events are due by now (index into the sorted list)."""
        if self.config.speed == 0 or self.origin_0 is None:
            return len(self._reports)
        horizon = self.origin_0 + timedelta(seconds=self._elapsed_s() * self.config.speed)
        k = self._released
        while k < len(self._reports) and self._reports[k].origin_at <= horizon:
            k += 1
        return k

    async def fetch(self, session: aiohttp.ClientSession | None, since: datetime | None) -> bytes:
        """The rows that became due since the previous fetch (JSON lines); b"" if none."""
        if self._started is None:
            self._started = self._clock()
        due = self._due()
        batch = self._reports[self._released : due]
        self._released = due
        skips, self._pending_skips = self._pending_skips, []
        return encode_lines(batch, skips)

    def parse(self, body: bytes) -> ParseResult:
        """Decode :meth:`fetch` output; every report is tagged as a replay."""
        reports: list[Report] = []
        skipped: list[str] = []
        for n, line in enumerate(body.decode().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                if "skipped" in item:
                    skipped.append(str(item["skipped"]))
                    continue
                report = _decode(item)
            except (ValueError, KeyError, TypeError) as err:
                raise ParseError(
                    self.name, self.config.path or "", f"replay line {n}: {err}"
                ) from err
            place = f"{REPLAY_TAG} {report.place}" if report.place else REPLAY_TAG
            reports.append(replace(report, place=place))
        # skipped rows were logged when the file was read; here they only travel to the poller
        return ParseResult(reports=reports, skipped=skipped)
