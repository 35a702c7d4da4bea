"""GET /api/v1/sequences and /api/v1/sequences/{id} over a real store."""

from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from seqdata import cenc_news, lhasa_usgs

from quakealert.api.keys import STORE
from quakealert.api.problems import problem_middleware
from quakealert.api.sequences import routes
from quakealert.core.classify import classify_events, sequence_to_json
from quakealert.core.sequences import SequenceParams
from quakealert.errors import NotFound
from quakealert.store.sequences import get_sequence, list_sequences, save_sequence

NOW = datetime(2024, 11, 9, tzinfo=UTC)


def save_all(conn, events, now):
    for seq, c in classify_events(events, SequenceParams(), now):
        save_sequence(conn, sequence_to_json(seq, c, now), now)


@pytest.fixture
def client(store, aiohttp_client):
    app = web.Application(middlewares=[problem_middleware])
    app[STORE] = store
    app.add_routes(routes)
    save_all(store.conn, cenc_news(), NOW)
    return aiohttp_client(app)


def test_store_history_appends_only_on_change(store):
    """Re-saving an unchanged type adds no history; a new type does."""
    mz = cenc_news("maizhokunggar-2024")
    early = mz[1].origin_at + timedelta(minutes=5)
    save_all(store.conn, mz, early)
    save_all(store.conn, mz, early + timedelta(minutes=1))
    save_all(store.conn, mz, NOW)
    seq_id = list_sequences(store.conn)[0]["id"]
    hist = get_sequence(store.conn, seq_id)["type_history"]
    assert [h["type"] for h in hist] == ["undetermined", "swarm"]
    assert hist[1]["reasons"] and hist[0]["changed_at"] < hist[1]["changed_at"]
    with pytest.raises(NotFound):
        get_sequence(store.conn, "seq-nope")


def test_store_filters(store):
    """since / min_magnitude / type filter the list."""
    save_all(store.conn, lhasa_usgs(), datetime(2018, 12, 31, tzinfo=UTC))
    big = list_sequences(store.conn, min_magnitude=7.0)
    assert big and all(s["largest"]["magnitude"] >= 7.0 for s in big)
    ma = list_sequences(store.conn, type="mainshock-aftershock", since=datetime(2008, 1, 1, tzinfo=UTC))
    assert [s["largest"]["id"] for s in ma] == ["usp000gjgt"]


async def test_list_and_detail(client):
    """The list has the swarm with its context line; the detail has members and history."""
    c = await client
    resp = await c.get("/api/v1/sequences", params={"type": "swarm"})
    assert resp.status == 200
    seqs = (await resp.json())["sequences"]
    assert len(seqs) == 1
    s = seqs[0]
    assert s["type"] == "swarm" and s["n_events"] == 3 and s["largest"]["magnitude"] == 4.5
    assert s["context"]["zh"].startswith("震中周边200公里内")
    assert s["first_at"] == "2024-10-31T01:32:00Z" and s["reasons"]
    resp = await c.get(f"/api/v1/sequences/{s['id']}")
    assert resp.status == 200
    d = (await resp.json())["sequence"]
    assert len(d["members"]) == 3 and d["type_history"][0]["type"] == "swarm"
    assert d["forecast"]["kind"] == "swarm-rate" and d["stats"]["mc"] is None


async def test_filters_and_errors(client):
    """minmagnitude filters; bad parameters are 400 problems; unknown ids are 404."""
    c = await client
    resp = await c.get("/api/v1/sequences", params={"minmagnitude": "6"})
    assert [s["largest"]["magnitude"] for s in (await resp.json())["sequences"]] == [6.1]
    for bad in ({"minmagnitude": "big"}, {"type": "cluster"}, {"since": "yesterday"},
                {"limit": "0"}):
        resp = await c.get("/api/v1/sequences", params=bad)
        assert resp.status == 400
        assert (await resp.json())["status"] == 400
    resp = await c.get("/api/v1/sequences/seq-nope")
    assert resp.status == 404
