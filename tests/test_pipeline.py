"""The whole core chain on the Maizhokunggar 2024 scenario: events -> sequence -> policy -> notices.

The expected notices are the ones issue 4 names: Lhasa residents get a report with felt guidance at
the M4.5, one swarm advisory once the type becomes swarm, and nothing more for the M4.0 except
what a recorded rule says; Chengdu residents get nothing, each with a recorded reason.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quakealert.config import DEFAULT_SCENARIO, Settings
from quakealert.formats.catalog import read_catalog_file
from quakealert.model import Report
from quakealert.service.pipeline import Pipeline
from quakealert.store import decisions as dec
from quakealert.store import notices as nt
from quakealert.store.sequences import get_sequence
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import NewSubscriber, add_subscriber

LHASA = (29.65, 91.13)
CHENGDU = (30.66, 104.07)


def scenario() -> list[Report]:
    reports = read_catalog_file(DEFAULT_SCENARIO).reports
    assert [r.magnitude for r in reports] == [4.1, 4.5, 4.0]
    return reports


@pytest.fixture
def world(tmp_path: Path) -> tuple[Store, Pipeline, dict[str, int]]:
    store = Store.open(tmp_path / "q.sqlite")
    t0 = datetime(2024, 10, 1, tzinfo=UTC)
    ids = {}
    for name, (lat, lon) in (("lhasa", LHASA), ("chengdu", CHENGDU)):
        created = add_subscriber(store.conn, NewSubscriber(lat, lon, ("zh", "bo"), "webhook",
                                                           f"http://127.0.0.1:9/{name}"), now=t0)
        ids[name] = store.conn.execute("SELECT id FROM subscribers WHERE public_id = ?",
                                       (created.id,)).fetchone()[0]
    settings = Settings(store_path=tmp_path / "q.sqlite", var_dir=tmp_path)
    return store, Pipeline(store, settings, exercise=True), ids


def feed(store: Store, pipeline: Pipeline, reports: list[Report], now: datetime) -> list[str]:
    return pipeline.process(store.ingest(reports, now=now), now=now)


def sent_to(store: Store, subscriber: int) -> list[tuple[str, str]]:
    return [(d["kind"], d["reason_code"]) for d in dec.list_decisions(store.conn, send=True)
            if d["notice_id"] and store.conn.execute(
                "SELECT 1 FROM outbox WHERE notice_id = ? AND subscriber_id = ?",
                (d["notice_id"], subscriber)).fetchone()]


def test_scenario_all_at_once_gives_the_expected_notices(world) -> None:  # type: ignore[no-untyped-def]
    """Played all at once, the replay still decides at scenario times, in order."""
    store, pipeline, ids = world
    feed(store, pipeline, scenario(), datetime(2024, 11, 9, tzinfo=UTC))
    assert sent_to(store, ids["lhasa"]) == [
        ("official_report+felt_guidance", "first_felt"),
        ("swarm_advisory", "type_changed"),
    ]
    # The next day's swarm summary is the one further notice, and it says why (1 new event).
    pipeline.advance(datetime(2024, 11, 10, tzinfo=UTC))
    assert sent_to(store, ids["lhasa"])[2:] == [("swarm_advisory", "daily_summary")]
    assert sent_to(store, ids["chengdu"]) == []
    notices = sorted(nt.list_notices(store.conn), key=lambda n: n.notice.created_at)
    first = next(n for n in notices if n.notice.kind.startswith("official_report"))
    assert first.notice.event_id.startswith("qa20241106201900")
    assert first.notice.created_at == datetime(2024, 11, 6, 20, 19, tzinfo=UTC)
    advisory = next(n for n in notices if n.notice.kind == "swarm_advisory")
    # Two events (M4.1, M4.5; ΔM 0.4, Rq 0.80) stay "undetermined" for the first 24 h (§8.2);
    # the swarm type, and its one advisory, follow at M4.5 + 24 h.
    assert advisory.notice.created_at == datetime(2024, 11, 7, 20, 19, 1, tzinfo=UTC)
    assert advisory.notice.msg_type == "Update" and advisory.notice.references == (first.notice.id,)
    assert all(n.notice.exercise for n in notices)
    assert {m.lang for m in first.notice.messages} == {"zh", "bo", "en"}
    zh = first.notice.message("zh")
    assert zh is not None and "墨竹工卡" in zh.title + zh.body and "4.5" in zh.title + zh.body


def test_m40_is_recorded_not_sent_with_its_reason(world) -> None:  # type: ignore[no-untyped-def]
    """The M4.0 of 11-08 is not felt in Lhasa (A12+1σ): a 'not sent' decision with its reason."""
    store, pipeline, ids = world
    feed(store, pipeline, scenario(), datetime(2024, 11, 9, tzinfo=UTC))
    m40 = [dict(r) for r in store.conn.execute(
        "SELECT * FROM decisions WHERE event_id LIKE 'qa20241108%' AND subscriber_id = ?"
        " ORDER BY id", (ids["lhasa"],))]
    assert next(d["reason_code"] for d in m40) == "below_threshold"
    assert not any(d["send"] for d in m40)
    assert "predicted intensity II" in m40[0]["reason_en"]
    assert "the swarm advisory was sent" in m40[0]["reason_en"]


def test_chengdu_gets_nothing_with_reasons(world) -> None:  # type: ignore[no-untyped-def]
    """Residents 1,150 km away are never notified, and every event says why."""
    store, pipeline, _ids = world
    feed(store, pipeline, scenario(), datetime(2024, 11, 9, tzinfo=UTC))
    rows = store.conn.execute(
        "SELECT event_id, reason_code, sum(count) FROM decisions WHERE send = 0 AND"
        " subscriber_id IS NULL GROUP BY event_id, reason_code").fetchall()
    assert len(rows) == 3 and {r[1] for r in rows} == {"below_threshold"}


def test_sequence_is_stored_as_swarm(world) -> None:  # type: ignore[no-untyped-def]
    """After the M4.0 the stored sequence is a swarm with ΔM 0.4 and Rq 0.70, with history."""
    store, pipeline, _ = world
    feed(store, pipeline, scenario(), datetime(2024, 11, 9, tzinfo=UTC))
    (seq_id,) = pipeline.engine.sequence_ids()
    seq = get_sequence(store.conn, seq_id)
    assert seq["type"] == "swarm" and seq["delta_m"] == pytest.approx(0.4)
    assert seq["energy_ratio"] == pytest.approx(0.70, abs=0.01)
    assert [h["type"] for h in seq["type_history"]][:2] == ["undetermined", "swarm"]


def test_event_by_event_equals_all_at_once(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Feeding the events one by one in real order gives the same decisions as one batch."""
    store, pipeline, ids = world
    for r in scenario():
        feed(store, pipeline, [r], r.origin_at + timedelta(minutes=2))
    feed(store, pipeline, [], datetime(2024, 11, 9, tzinfo=UTC))
    pipeline.advance(datetime(2024, 11, 9, tzinfo=UTC))
    assert sent_to(store, ids["lhasa"]) == [
        ("official_report+felt_guidance", "first_felt"),
        ("swarm_advisory", "type_changed"),
    ]


def test_restart_sends_nothing_again(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A new pipeline over the same store (daemon restart) re-sends nothing for stored events."""
    store, pipeline, _ = world
    feed(store, pipeline, scenario(), datetime(2024, 11, 9, tzinfo=UTC))
    before = store.conn.execute("SELECT count(*) FROM notices").fetchone()[0]
    settings = Settings(store_path=tmp_path / "q.sqlite", var_dir=tmp_path)
    again = Pipeline(store, settings, exercise=True)
    again.load()
    feed(store, again, scenario(), datetime(2024, 11, 9, 1, tzinfo=UTC))
    assert store.conn.execute("SELECT count(*) FROM notices").fetchone()[0] == before


def test_deletion_sends_a_cancel(world) -> None:  # type: ignore[no-untyped-def]
    """An agency deleting a quake residents were told about produces a Cancel referencing it."""
    store, pipeline, ids = world
    m45 = scenario()[1]
    feed(store, pipeline, [m45], m45.origin_at + timedelta(minutes=1))
    feed(store, pipeline, [replace(m45, status="deleted")], m45.origin_at + timedelta(minutes=9))
    kinds = sent_to(store, ids["lhasa"])
    assert kinds[0][0] == "official_report+felt_guidance" and kinds[-1] == ("cancel", "event_deleted")
    cancel = next(n for n in nt.list_notices(store.conn) if n.notice.kind == "cancel")
    assert cancel.notice.msg_type == "Cancel" and cancel.notice.references
