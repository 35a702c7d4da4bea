"""A store as the daemon leaves it after replaying the bundled CENC list with swarm advisories
held for approval: the drill's pipeline and residents (one at each county/district seat), but
nothing released by hand. The console tests look at it the way a duty officer would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from quakealert.channels import CHANNELS
from quakealert.cli.drill import (
    RecorderChannel,
    TimedPipeline,
    default_population,
    drain,
    play,
    read_reports,
)
from quakealert.config import DEFAULT_SCENARIO, DEFAULT_SCENARIO_START, Settings
from quakealert.service.dispatch import Outbox, OutboxSettings
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import add_subscribers

HOLD_S = 3600  # swarm advisories wait up to an hour for a duty officer
# The scenario's notices carry past creation times; the default delivery TTL would expire them.
OUTBOX = OutboxSettings(ttl_s=20 * 365 * 86400.0)
# The 2024 Maizhokunggar swarm: the bundled list before START is background history (as the
# daemon's replay loads it), then played. DAY_ONE ends after the M4.0 of 2024-11-08 with its swarm
# advisory held for approval; DAY_TWO after the M4.4 and M4.1 of 2024-11-18 with theirs.
START = datetime.fromisoformat(DEFAULT_SCENARIO_START)
DAY_ONE = datetime(2024, 11, 8, 12, tzinfo=UTC)
DAY_TWO = datetime(2024, 11, 18, 23, tzinfo=UTC)


class Replay:
    """The bundled CENC list played through the drill's pipeline into a store, a day at a time.

    ``runtime()`` is what the daemon's Runtime tells the API while replaying (label, clock).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # quiet hours off: the M4.5 struck at 04:19 Beijing time, and a held advisory would
        # otherwise also be deferred to 07:30 (core.policy), which these tests are not about
        self.settings = Settings(store_path=path, sections={
            "approvals": {"swarm_advisory": HOLD_S},
            "policy": {"quiet_start": "00:00", "quiet_end": "00:00"}})
        reports, _ = read_reports(DEFAULT_SCENARIO)
        self.reports = sorted((r for r in reports if r.origin_at >= START),
                              key=lambda r: r.origin_at)
        history = [r for r in reports if r.origin_at < START]
        self.store = Store.open(path)
        population = default_population()
        add_subscribers(self.store.conn, population.subscribers,
                        now=self.reports[0].origin_at - timedelta(days=1),
                        places=population.places)
        # as the daemon's replay: approval timeouts run on the wall clock, so at speed the
        # held summaries of past days would pile up unless superseded ones withdraw themselves
        self.pipeline = TimedPipeline(self.store, self.settings, scenario_timeouts=False)
        self.outbox = Outbox(self.store, {n: RecorderChannel(n) for n in CHANNELS},
                             None, settings=OUTBOX)  # type: ignore[arg-type]
        if history:
            self.pipeline.absorb(self.store.ingest(history, now=START), at=START)
        self.now = self.reports[0].origin_at
        self.fed = 0

    async def run_to(self, until: datetime) -> None:
        """Feed the reports up to ``until`` and run the pipeline's clock on to it."""
        todo = [r for r in self.reports[self.fed:] if r.origin_at <= until]
        self.fed += len(todo)
        await play(self.pipeline, todo, until=until, speed=0,
                   deliver=lambda: drain(self.outbox, datetime.now(UTC)))
        self.now = until

    def pending(self) -> list[str]:
        """Ids of the notices waiting for approval, oldest first."""
        return [r[0] for r in self.store.conn.execute(
            "SELECT id FROM notices WHERE state = 'pending_approval' ORDER BY created_at, id")]

    def runtime(self) -> SimpleNamespace:
        return SimpleNamespace(replay_label=f"replay of {DEFAULT_SCENARIO.name}",
                               pipeline_now=lambda wall: self.now, metrics=None)

    def close(self) -> None:
        self.store.close()
