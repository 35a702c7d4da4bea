"""Sequences on PostgreSQL give what SQLite gives: the same real catalogues classified and saved
through both modules produce identical lists, list bodies (byte for byte), details and type
histories."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from seqdata import cenc_news, lhasa_usgs

from quakealert.core.classify import classify_events, sequence_to_json
from quakealert.core.sequences import SequenceParams
from quakealert.errors import NotFound
from quakealert.store import sequences as lite
from quakealert.store.postgres import sequences as pg

NOW = datetime(2024, 11, 9, tzinfo=UTC)


def _save_all(module, conn, events, now) -> list[bool]:
    return [module.save_sequence(conn, sequence_to_json(seq, c, now), now)
            for seq, c in classify_events(events, SequenceParams(), now)]


def _cursor(last_at: float, seq_id: str) -> str:
    return f"{last_at!r}|{seq_id}"


@pytest.fixture
def both(store, pg_url):
    conn = psycopg.connect(pg_url, autocommit=True)
    yield store.conn, conn
    conn.close()


def test_same_results_on_both_backends(both):
    """Save the Maizhokunggar swarm at three moments (its type changes) and the Lhasa USGS
    catalogue; every read answers the same on both backends."""
    lite_conn, pg_conn = both
    mz = cenc_news("maizhokunggar-2024")
    early = mz[1].origin_at + timedelta(minutes=5)
    for now in (early, early + timedelta(minutes=1), NOW):
        assert _save_all(lite, lite_conn, mz, now) == _save_all(pg, pg_conn, mz, now)
    usgs_now = datetime(2018, 12, 31, tzinfo=UTC)
    assert _save_all(lite, lite_conn, lhasa_usgs(), usgs_now) == \
        _save_all(pg, pg_conn, lhasa_usgs(), usgs_now)
    listed = lite.list_sequences(lite_conn)
    assert len(listed) > 5
    assert pg.list_sequences(pg_conn) == listed
    for kwargs in ({}, {"min_magnitude": 7.0}, {"type": "swarm"},
                   {"since": datetime(2008, 1, 1, tzinfo=UTC), "limit": 3}):
        assert pg.list_sequences_body(pg_conn, **kwargs) == \
            lite.list_sequences_body(lite_conn, **kwargs)
    first_page = lite.list_sequences_body(lite_conn, limit=2, cursor=_cursor)
    assert pg.list_sequences_body(pg_conn, limit=2, cursor=_cursor) == first_page
    last = listed[1]
    after = (datetime.fromisoformat(last["last_at"]).timestamp(),
             last["id"])
    assert pg.list_sequences_body(pg_conn, limit=2, after=after, cursor=_cursor) == \
        lite.list_sequences_body(lite_conn, limit=2, after=after, cursor=_cursor)
    for s in listed:
        assert pg.get_sequence(pg_conn, s["id"]) == lite.get_sequence(lite_conn, s["id"])
    swarm = next(s for s in listed if s["type"] == "swarm")
    assert [h["type"] for h in pg.get_sequence(pg_conn, swarm["id"])["type_history"]] == \
        ["undetermined", "swarm"]


def test_delete_and_not_found(both):
    """A deleted sequence is gone with its members on both; its history stays."""
    lite_conn, pg_conn = both
    _save_all(lite, lite_conn, cenc_news("maizhokunggar-2024"), NOW)
    _save_all(pg, pg_conn, cenc_news("maizhokunggar-2024"), NOW)
    seq_id = lite.list_sequences(lite_conn)[0]["id"]
    lite.delete_sequence(lite_conn, seq_id)
    pg.delete_sequence(pg_conn, seq_id)
    for module, conn in ((lite, lite_conn), (pg, pg_conn)):
        with pytest.raises(NotFound):
            module.get_sequence(conn, seq_id)
    assert pg_conn.execute("SELECT count(*) FROM sequence_members").fetchone()[0] == 0
    assert pg_conn.execute("SELECT count(*) FROM sequence_type_history").fetchone()[0] == \
        lite_conn.execute("SELECT count(*) FROM sequence_type_history").fetchone()[0] > 0
