"""The daemon's path (store -> pipeline -> stored sequences) gives the published types on real
catalogues, as the classify CLI does (issue 3: "the CLI and the daemon give the types above")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from quakealert.config import Settings
from quakealert.formats.catalog import read_catalog_file
from quakealert.service.pipeline import Pipeline
from quakealert.store.sequences import get_sequence
from quakealert.store.sqlite import Store
from tests.conftest import FIXTURES

CATALOGS = FIXTURES / "catalogs"


def run(tmp_path: Path, name: str, *, min_magnitude: float, until: datetime) -> Pipeline:
    reports = [r for r in read_catalog_file(CATALOGS / name).reports
               if r.magnitude is not None and r.magnitude >= min_magnitude
               and r.origin_at <= until]
    store = Store.open(tmp_path / "q.sqlite")
    pipeline = Pipeline(store, Settings(store_path=tmp_path / "q.sqlite", var_dir=tmp_path))
    pipeline.process(store.ingest(reports, now=until), now=until)
    return pipeline


def stored_type_of(pipeline: Pipeline, event_source_id: str) -> dict:  # type: ignore[type-arg]
    conn = pipeline.store.conn
    event_id = conn.execute("SELECT event_id FROM report_current WHERE source_id = ?",
                            (event_source_id,)).fetchone()[0]
    seq_id = pipeline.engine.sequence_of(event_id)
    assert seq_id is not None
    return get_sequence(conn, seq_id)


def test_ridgecrest_through_the_daemon_is_fma(tmp_path: Path) -> None:
    """M≥3.5 Ridgecrest events fed as a replay: the M7.1's sequence is stored as FMA."""
    until = datetime(2019, 7, 20, tzinfo=UTC)
    pipeline = run(tmp_path, "scedc-ridgecrest-2019.csv", min_magnitude=3.5, until=until)
    seq = stored_type_of(pipeline, "ci38457511")
    assert seq["type"] == "foreshock-mainshock-aftershock"
    assert seq["largest"]["magnitude"] == 7.1
    foreshocks = [m for m in seq["members"] if m["role"] == "foreshock"]
    assert any(m["magnitude"] == 6.4 for m in foreshocks)
    history = [h["type"] for h in seq["type_history"]]
    assert history[0] == "undetermined" and history[-1] == "foreshock-mainshock-aftershock"


def test_damxung_2008_through_the_daemon_is_mainshock_aftershock(tmp_path: Path) -> None:
    """The 2008-10-06 Damxung Mw6.3 with its four M5 aftershocks: mainshock-aftershock."""
    until = datetime(2008, 10, 6, tzinfo=UTC) + timedelta(days=120)
    pipeline = run(tmp_path, "usgs-lhasa-300km-m5-1905-2018.csv", min_magnitude=5.0,
                   until=until)
    seq = stored_type_of(pipeline, "usp000gjgt")
    assert seq["type"] == "mainshock-aftershock"
