"""The whole core chain on the real CENC list: events -> sequence -> policy -> notices.

The years before the 2024 Maizhokunggar swarm are background (absorbed, never notified); the swarm
is played. Lhasa residents (about 110 km away) feel none of its quakes before the M4.5 (M3.0-4.1,
predicted below intensity III), so they get a report with felt guidance at the M4.5, one swarm
advisory 30 min later once the type is swarm (seven quakes by then), and the daily swarm summary
that counts the M4.0 of 11-08, which they did not feel; Chengdu residents get nothing, each event
with a recorded reason.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quakealert.config import Settings
from quakealert.model import Report
from quakealert.service.pipeline import Pipeline
from quakealert.store import decisions as dec
from quakealert.store import notices as nt
from quakealert.store.sequences import get_sequence
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import NewSubscriber, add_subscriber
from tests.scenario import M45_AT, absorb_background, swarm

LHASA = (29.65, 91.13)
CHENGDU = (30.66, 104.07)


UNTIL = datetime(2024, 11, 9, tzinfo=UTC)


def scenario() -> list[Report]:
    """The swarm up to 2024-11-09: M3.2 M3.1 (10-21) M4.1 M3.6 (10-31) M3.9 (11-02) M3.1 (Nagqu,
    11-04) M3.0 (11-06) M4.5 (11-07 BJT) M4.0 (11-08)."""
    reports = swarm(UNTIL)
    assert [r.magnitude for r in reports] == [3.2, 3.1, 4.1, 3.6, 3.9, 3.1, 3.0, 4.5, 4.0]
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
    pipeline = Pipeline(store, settings, exercise=True)
    absorb_background(store, pipeline)
    return store, pipeline, ids


def feed(store: Store, pipeline: Pipeline, reports: list[Report], now: datetime) -> list[str]:
    return pipeline.process(store.ingest(reports, now=now), now=now)


def sent_to(store: Store, subscriber: int) -> list[tuple[str, str]]:
    return [(d["kind"], d["reason_code"]) for d in dec.list_decisions(store.conn, send=True)
            if d["notice_id"] and store.conn.execute(
                "SELECT 1 FROM outbox WHERE notice_id = ? AND subscriber_id = ?",
                (d["notice_id"], subscriber)).fetchone()]


def test_background_is_history_not_news(world) -> None:  # type: ignore[no-untyped-def]
    """The 166 quakes before the swarm are stored and sequenced but nobody is told about them,
    not even the felt ones (they are years old): no notice, no decision."""
    store, pipeline, _ = world
    assert store.count_events() == 166
    assert len(pipeline.engine.sequence_ids()) > 1
    assert store.conn.execute("SELECT count(*) FROM notices").fetchone()[0] == 0
    assert store.conn.execute("SELECT count(*) FROM decisions").fetchone()[0] == 0


def test_scenario_all_at_once_gives_the_expected_notices(world) -> None:  # type: ignore[no-untyped-def]
    """Played all at once, the replay still decides at scenario times, in order."""
    store, pipeline, ids = world
    feed(store, pipeline, scenario(), UNTIL)
    # The M4.0 of 11-08 is not felt in Lhasa (II): no push, and no daily summary of it either
    # (policy.py: a summary only names felt quakes the hourly budget held).
    assert sent_to(store, ids["lhasa"]) == [
        ("official_report+felt_guidance", "first_felt"),
        ("swarm_advisory", "type_changed"),
    ]
    pipeline.advance(datetime(2024, 11, 10, tzinfo=UTC))
    assert len(sent_to(store, ids["lhasa"])) == 2
    assert sent_to(store, ids["chengdu"]) == []
    notices = sorted(nt.list_notices(store.conn), key=lambda n: n.notice.created_at)
    first = next(n for n in notices if n.notice.kind.startswith("official_report"))
    assert first.notice.event_id.startswith("qa20241106201953")
    assert first.notice.created_at == M45_AT
    advisory = next(n for n in notices if n.notice.kind == "swarm_advisory")
    # Seven quakes by the M4.5 (ΔM 0.4): the swarm type, and its advisory, come once the first
    # 30 min (no typing: seismology.md §8.2) have passed.
    assert advisory.notice.created_at == datetime(2024, 11, 6, 20, 49, 54, tzinfo=UTC)
    assert advisory.notice.msg_type == "Update" and advisory.notice.references == (first.notice.id,)
    assert all(n.notice.exercise for n in notices)
    assert {m.lang for m in first.notice.messages} == {"zh", "bo", "en"}
    zh = first.notice.message("zh")
    assert zh is not None and "墨竹工卡" in zh.title + zh.body and "4.5" in zh.title + zh.body


def test_m45_context_counts_eleven(world) -> None:  # type: ignore[no-untyped-def]
    """With the real background the M4.5's notice says 共11次 and that it is the largest."""
    store, pipeline, _ = world
    feed(store, pipeline, scenario(), UNTIL)
    first = next(n for n in nt.list_notices(store.conn)
                 if n.notice.kind.startswith("official_report"))
    zh = first.notice.message("zh")
    assert zh is not None
    assert "震中周边200千米内近5年来发生3级以上地震共11次，本次地震是其中最大的一次" in zh.body
    assert "此前最大为2024年10月31日4.1级地震。" in zh.body  # one unit (千米), CENC wording


def test_m40_is_recorded_not_sent_with_its_reason(world) -> None:  # type: ignore[no-untyped-def]
    """The M4.0 of 11-08 is not felt in Lhasa (A12+1σ): a 'not sent' decision with its reason."""
    store, pipeline, ids = world
    feed(store, pipeline, scenario(), UNTIL)
    m40 = [dict(r) for r in store.conn.execute(
        "SELECT * FROM decisions WHERE event_id LIKE 'qa20241108%' AND subscriber_id = ?"
        " ORDER BY id", (ids["lhasa"],))]
    assert next(d["reason_code"] for d in m40) == "below_threshold"
    # nothing is sent for it, not even a summary counting it: nobody in Lhasa felt it
    assert [d["reason_code"] for d in m40 if d["send"]] == []
    assert not m40[0]["send"]
    assert "predicted intensity II" in m40[0]["reason_en"]
    assert m40[0]["reason_zh"].startswith("本地预计微有感（Ⅱ度）")
    assert "the swarm advisory was sent" in m40[0]["reason_en"]


def test_chengdu_gets_nothing_with_reasons(world) -> None:  # type: ignore[no-untyped-def]
    """Residents 1,150 km away are never notified, and every event says why."""
    store, pipeline, _ids = world
    feed(store, pipeline, scenario(), datetime(2024, 11, 9, tzinfo=UTC))
    rows = store.conn.execute(
        "SELECT event_id, reason_code, sum(count) FROM decisions WHERE send = 0 AND"
        " subscriber_id IS NULL GROUP BY event_id, reason_code").fetchall()
    assert len(rows) == 9 and {r[1] for r in rows} == {"below_threshold"}


def test_sequence_is_stored_as_swarm(world) -> None:  # type: ignore[no-untyped-def]
    """After the M4.0 the swarm's stored sequence (its eight Maizhokunggar quakes; the Nagqu M3.1
    203 km away is not linked) is a swarm: ΔM 0.4 (M4.5 - M4.1), Rq 0.62, with its history."""
    store, pipeline, _ = world
    feed(store, pipeline, scenario(), UNTIL)
    m45_id = store.conn.execute("SELECT id FROM events WHERE id LIKE 'qa20241106201953%'"
                                ).fetchone()[0]
    seq_id = pipeline.engine.sequence_of(m45_id)
    assert seq_id is not None
    seq = get_sequence(store.conn, seq_id)
    assert seq["type"] == "swarm" and seq["n_events"] == 8
    assert seq["delta_m"] == pytest.approx(0.4)
    assert seq["energy_ratio"] == pytest.approx(0.62, abs=0.01)
    history = [h["type"] for h in seq["type_history"]]
    assert history[0] == "undetermined" and history[-1] == "swarm"


def test_event_by_event_equals_all_at_once(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Feeding the events one by one in real order gives the same decisions as one batch."""
    store, pipeline, ids = world
    for r in scenario():
        feed(store, pipeline, [r], r.origin_at + timedelta(minutes=2))
    feed(store, pipeline, [], UNTIL)
    pipeline.advance(UNTIL)
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
    m45 = scenario()[7]
    assert m45.magnitude == 4.5
    feed(store, pipeline, [m45], m45.origin_at + timedelta(minutes=1))
    feed(store, pipeline, [replace(m45, status="deleted")], m45.origin_at + timedelta(minutes=9))
    kinds = sent_to(store, ids["lhasa"])
    assert kinds[0][0] == "official_report+felt_guidance" and kinds[-1] == ("cancel", "event_deleted")
    cancel = next(n for n in nt.list_notices(store.conn) if n.notice.kind == "cancel")
    assert cancel.notice.msg_type == "Cancel" and cancel.notice.references


def test_context_is_left_out_until_the_background_is_complete(world) -> None:  # type: ignore[no-untyped-def]
    """While the start-up back-fill runs (context_ready False) the M4.5's notice carries no
    count and the stored sequence no context, rather than a count over a partial catalogue."""
    store, pipeline, _ = world
    pipeline.context_ready = False
    feed(store, pipeline, scenario(), UNTIL)
    first = next(n for n in nt.list_notices(store.conn)
                 if n.notice.kind.startswith("official_report"))
    zh, en = first.notice.message("zh"), first.notice.message("en")
    assert zh is not None and en is not None
    assert "震中周边" not in zh.body and "Within 200 km" not in en.body
    seq_id = pipeline.engine.sequence_of(first.notice.event_id)
    assert seq_id is not None and get_sequence(store.conn, seq_id)["context"] is None


def test_background_alone_gives_a_smaller_count_it_is_the_catalogue(tmp_path: Path) -> None:
    """Without the background the same M4.5 would read 共7次 (the swarm so far, itself included):
    the count is only right with the five years of history, hence the back-fill."""
    store = Store.open(tmp_path / "q.sqlite")
    add_subscriber(store.conn, NewSubscriber(*LHASA, ("zh",), "webhook", "http://127.0.0.1:9/x"),
                   now=datetime(2024, 10, 1, tzinfo=UTC))
    pipeline = Pipeline(store, Settings(store_path=tmp_path / "q.sqlite", var_dir=tmp_path),
                        exercise=True)
    feed(store, pipeline, scenario(), UNTIL)
    first = next(n for n in nt.list_notices(store.conn)
                 if n.notice.kind.startswith("official_report"))
    zh = first.notice.message("zh")
    assert zh is not None and "3级以上地震共7次" in zh.body
