"""Subscriber storage on PostgreSQL answers as on SQLite: the same residents give the same rows,
recipient arrays, counts, lookups and deletions."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest

from quakealert.errors import NotFound
from quakealert.store import subscribers as lite
from quakealert.store.postgres import subscribers as pg

NOW = datetime(2024, 11, 6, tzinfo=UTC)


def _residents() -> list[lite.NewSubscriber]:
    """Residents around Lhasa and one in Chengdu, on both channels, through the real parser."""
    out = []
    for i in range(40):
        lat, lon = 29.6 + (i % 7) * 0.05, 91.0 + (i % 5) * 0.07
        if i == 39:
            lat, lon = 30.66, 104.06
        body = {"latitude": lat, "longitude": lon, "languages": ["bo", "zh"] if i % 2 else ["en"],
                "min_intensity": 3 + i % 3}
        if i % 3:
            body |= {"channel": "webhook", "url": f"https://gw.example/{i}"}
        else:
            body |= {"channel": "webhook", "url": f"https://sms.example/{i}", "secret": "s" * 32}
        out.append(lite.parse_subscriber(body))
    return out


@pytest.fixture
def both(store, pg_url):
    conn = psycopg.connect(pg_url, autocommit=True)
    yield store.conn, conn
    conn.close()


def test_same_storage_on_both_backends(both):
    """Rows (apart from the random public ids and hashes), recipient arrays and counts agree."""
    lite_conn, pg_conn = both
    residents = _residents()
    a = lite.add_subscribers(lite_conn, residents, now=NOW)
    b = pg.add_subscribers(pg_conn, residents, now=NOW)
    assert len(a) == len(b) == 40
    for i in (1, 2, 39, 40):
        x, y = lite.get_subscriber(lite_conn, i), pg.get_subscriber(pg_conn, i)
        for key in ("public_id", "token_hash"):
            x.pop(key), y.pop(key)
        assert x == y
    pa, pb = lite.subscriber_points(lite_conn), pg.subscriber_points(pg_conn)
    for field in ("ids", "lat", "lon", "min_intensity"):
        np.testing.assert_array_equal(getattr(pa, field), getattr(pb, field))
        assert getattr(pa, field).dtype == getattr(pb, field).dtype
    assert len(pg.subscriber_points(pg_conn, "webpush")) == 0
    assert pg.count_by_area(pg_conn) == lite.count_by_area(lite_conn)
    assert "unknown" in pg.count_by_area(pg_conn) or len(pg.count_by_area(pg_conn)) > 1
    assert pg.count_by_channel(pg_conn) == lite.count_by_channel(lite_conn) == {"webhook": 40}


def test_lookup_and_delete(both):
    """By public id with its token (a wrong token deletes nothing), or by internal id."""
    lite_conn, pg_conn = both
    for ops, conn in ((lite, lite_conn), (pg, pg_conn)):
        made = ops.add_subscribers(conn, _residents()[:3], now=NOW)
        assert ops.internal_id(conn, made[0].id) == 1
        assert ops.get_subscriber(conn, made[1].id)["id"] == 2
        assert ops.delete_subscriber(conn, made[0].id, "wrong") is False
        assert ops.delete_subscriber(conn, made[0].id, made[0].token) is True
        assert ops.delete_subscriber(conn, made[0].id, made[0].token) is False
        assert ops.delete_subscriber(conn, 2) is True
        assert ops.delete_subscriber(conn, 2) is False
        with pytest.raises(NotFound):
            ops.internal_id(conn, made[0].id)
        with pytest.raises(NotFound):
            ops.get_subscriber(conn, 2)
        assert ops.count_by_channel(conn) == {"webhook": 1}
