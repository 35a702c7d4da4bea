"""Replay a catalogue file at a chosen speed: the offline demo, drills and tests.

:func:`read_catalog_file` reads any catalogue file we ship or are handed, detecting the layout:
fdsnws text, QuakeML, GeoJSON (USGS), the CENC JSON list, ComCat CSV (comma or tab), the SCEDC
CSVs in data/, the CENC CSV of ``cenc-tibet-events-from-news.csv`` (and the bundled scenarios),
and the split-date CSV of the Karakostas et al. (2025) Santorini relocation.

:class:`ReplaySource` plays the file: with ``speed == 0`` everything comes on the first fetch;
otherwise event *k* is released once ``(origin_k - origin_0) / speed`` seconds of monotonic time
have passed since the first fetch. :meth:`ReplaySource.virtual_now` is the scenario time of the
present, so the pipeline can judge "30 minutes after the event" on scenario time.

Every replayed report is visibly a replay: its ``place`` starts with ``[REPLAY]`` (the place
is ``[REPLAY]`` alone when the file has none); :func:`is_replay` tests for it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
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
from quakealert.model import ParseResult, Report

# --- reading files --------------------------------------------------------------------------


# --- playing --------------------------------------------------------------------------------


class ReplaySource:
    """Plays ``config.path`` once, in origin-time order, at ``config.speed`` x real time.

    ``params.source_as`` renames the reports' ``source`` (the bundled scenario is CENC data:
    ``source_as = "cenc"``); ``params.label`` is logged by the daemon. ``clock`` is monotonic
    seconds and injectable so tests never sleep.
    """

    def __init__(self, config: SourceConfig, *, clock: Callable[[], float] = time.monotonic):
        if not config.path:
            raise ConfigError(f"source {config.name}: replay needs path")
        self.name = config.name
        self.config = config
        self._clock = clock
        try:
            result = read_catalog_file(config.path, source=config.params.get("source_as"))
        except (OSError, ParseError) as err:
            raise ConfigError(f"source {config.name}: cannot replay {config.path}: {err}") from err
        self._reports = sorted(result.reports, key=lambda r: r.origin_at)
        self._pending_skips = list(result.skipped)
        self._released = 0
        self._started: float | None = None
        self.origin_0: datetime | None = self._reports[0].origin_at if self._reports else None

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
        origin). Before the first fetch (or for an empty file) it is origin_0 (or the epoch)."""
        if self.origin_0 is None:
            return datetime(1970, 1, 1, tzinfo=UTC)
        if self.config.speed == 0:
            if self._released == 0:
                return self.origin_0
            return self._reports[self._released - 1].origin_at
        return self.origin_0 + timedelta(seconds=self._elapsed_s() * self.config.speed)

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
