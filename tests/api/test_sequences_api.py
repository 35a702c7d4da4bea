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
    assert s["context"]["zh"].startswith("震中周边200千米内")
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


def legacy_list_body(conn, **query):
    """The list as the first version rendered it: every row's summary decoded and re-encoded."""
    import json

    from quakealert.store import sequences as sq

    sql, args = sq._list_query(query.get("since"), query.get("min_magnitude"),
                               query.get("type"), query.get("limit", 100))
    rows = []
    for seq_id, *_ in conn.execute(sql, args).fetchall():
        d = sq._row(conn.execute("SELECT * FROM sequences WHERE id = ?", (seq_id,)).fetchone())
        del d["_summary"]
        rows.append(d)
    return json.dumps({"sequences": rows}, ensure_ascii=False, separators=(",", ":")).encode()


def test_list_body_is_byte_identical_to_the_decoded_rendering(store):
    """The stored entries join into exactly the JSON the old per-request rendering gave."""
    from quakealert.store.sequences import list_sequences_body

    save_all(store.conn, cenc_news(), NOW)
    save_all(store.conn, lhasa_usgs(), datetime(2018, 12, 31, tzinfo=UTC))
    for q in ({}, {"min_magnitude": 7.0}, {"type": "mainshock-aftershock"}, {"limit": 3},
              {"since": datetime(2008, 1, 1, tzinfo=UTC)}):
        assert list_sequences_body(store.conn, **q) == legacy_list_body(store.conn, **q)
    entry = list_sequences(store.conn, limit=1)[0]
    assert not {"members", "stats", "forecast"} & set(entry)


async def test_list_etag_304_and_cache_follows_writes(client, store, tmp_path):
    """A repeat is served from the cache; any write (ours or another connection's) shows."""
    import hashlib

    from quakealert.store.sequences import delete_sequence
    from quakealert.store.sqlite import Store

    c = await client
    r1 = await c.get("/api/v1/sequences")
    body = await r1.read()
    etag = r1.headers["ETag"]
    assert etag == '"' + hashlib.blake2s(body, digest_size=12).hexdigest() + '"'
    assert r1.headers["Content-Type"] == "application/json; charset=utf-8"
    assert r1.headers["Cache-Control"] == "no-cache"
    assert body == legacy_list_body(store.conn)
    r2 = await c.get("/api/v1/sequences", headers={"If-None-Match": etag})
    assert r2.status == 304 and r2.headers["ETag"] == etag
    assert (await (await c.get("/api/v1/sequences")).read()) == body
    # a write on this connection
    first = list_sequences(store.conn, limit=1)[0]["id"]
    delete_sequence(store.conn, first)
    r3 = await c.get("/api/v1/sequences", headers={"If-None-Match": etag})
    assert r3.status == 200 and r3.headers["ETag"] != etag
    assert first not in {s["id"] for s in (await r3.json())["sequences"]}
    # a write by another process (another connection to the same file)
    r4 = await c.get("/api/v1/sequences", params={"minmagnitude": "7"})
    assert (await r4.json())["sequences"] == []
    other = Store.open(tmp_path / "test.sqlite")
    try:
        save_all(other.conn, lhasa_usgs(), datetime(2018, 12, 31, tzinfo=UTC))
    finally:
        other.close()
    r5 = await c.get("/api/v1/sequences", params={"minmagnitude": "7"})
    seqs = (await r5.json())["sequences"]
    assert seqs and all(s["largest"]["magnitude"] >= 7 for s in seqs)


def test_rows_saved_before_the_list_column_are_rendered_on_read(store):
    """Rows without list_json (written before migration 007) list exactly as saved ones."""
    from quakealert.store.sequences import list_sequences_body

    save_all(store.conn, cenc_news(), NOW)
    want = legacy_list_body(store.conn)
    store.conn.execute("UPDATE sequences SET list_json = NULL")  # rows of an older writer
    assert list_sequences_body(store.conn) == want


async def test_list_cursor_walks_every_sequence_once(client, store):  # type: ignore[no-untyped-def]
    """limit + next_cursor pages through the list in order without repeats or gaps."""
    save_all(store.conn, lhasa_usgs(), datetime(2018, 12, 31, tzinfo=UTC))
    c = await client
    everything = [s["id"] for s in (await (await c.get("/api/v1/sequences")).json())["sequences"]]
    assert len(everything) > 3
    seen, url = [], "/api/v1/sequences?limit=2"
    while url:
        body = await (await c.get(url)).json()
        seen += [s["id"] for s in body["sequences"]]
        url = f"/api/v1/sequences?limit=2&cursor={body['next_cursor']}" if "next_cursor" in body else ""
    assert seen == everything
    bad = await c.get("/api/v1/sequences?cursor=nope")
    assert bad.status == 400
