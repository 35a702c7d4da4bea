"""The bundled scenario as tests use it: the years before the 2024 swarm as background history
(absorbed, never notified), then the swarm fed to the pipeline, as the daemon plays it."""

from __future__ import annotations

from datetime import datetime

from quakealert.config import DEFAULT_SCENARIO, DEFAULT_SCENARIO_START
from quakealert.formats.catalog import read_catalog_file
from quakealert.formats.rows import parse_utc
from quakealert.model import Report
from quakealert.service.pipeline import Pipeline
from quakealert.store.sqlite import Store

START = parse_utc(DEFAULT_SCENARIO_START)  # 2024-10-20T00:00:00Z, the day before the swarm
M45_AT = parse_utc("2024-11-06T20:19:53Z")  # CENC: 2024-11-07 04:19:53 BJT


def scenario_reports() -> list[Report]:
    """All 200 rows of the bundled CENC list, in origin order."""
    return sorted(read_catalog_file(DEFAULT_SCENARIO).reports, key=lambda r: r.origin_at)


def background() -> list[Report]:
    """The rows before the swarm's start (2015-05 .. 2024-10-19)."""
    return [r for r in scenario_reports() if r.origin_at < START]


def swarm(until: datetime | None = None) -> list[Report]:
    """The rows from the start on (the 2024 swarm and what followed), up to ``until``."""
    return [r for r in scenario_reports()
            if r.origin_at >= START and (until is None or r.origin_at <= until)]


def absorb_background(store: Store, pipeline: Pipeline) -> None:
    """Store and sequence the background as the daemon's start-up back-fill does."""
    pipeline.absorb(store.ingest(background(), now=START), at=START)


def feed_scenario(store: Store, pipeline: Pipeline, until: datetime) -> list[str]:
    """Background first, then the swarm up to ``until`` in one batch; the notice ids made."""
    absorb_background(store, pipeline)
    return pipeline.process(store.ingest(swarm(until), now=until), now=until)
