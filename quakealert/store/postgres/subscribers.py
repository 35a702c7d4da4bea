"""Subscribers on PostgreSQL: the storage functions of :mod:`quakealert.store.subscribers`
(validation, coarsening and the place index are shared; only the SQL differs). Checked against
SQLite by tests/pg/test_pg_subscribers_contract.py."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from psycopg.rows import dict_row, tuple_row

from quakealert.errors import NotFound
from quakealert.store.subscribers import (
    Created,
    NewSubscriber,
    Places,
    SubscriberPoints,
    hash_token,
    load_places,
)


def add_subscribers(
    conn: psycopg.Connection[Any], subs: Iterable[NewSubscriber], *, now: datetime,
    places: Places | None = None,
) -> list[Created]:
    """Store many subscribers in one transaction; returns the id and token of each, in order."""
    places = places if places is not None else load_places()
    rows, out = [], []
    created_at = now.timestamp()
    for s in subs:
        public_id, token = secrets.token_urlsafe(12), secrets.token_urlsafe(32)
        rows.append((public_id, hash_token(token), s.latitude, s.longitude, ",".join(s.languages),
                     s.channel, s.target, s.p256dh, s.auth, s.secret, s.min_intensity,
                     places.nearest(s.latitude, s.longitude), created_at))
        out.append(Created(public_id, token, s.secret if s.secret_generated else None))
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO subscribers (public_id, token_hash, latitude, longitude, languages,"
            " channel, target, p256dh, auth, secret, min_intensity, area, created_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
    return out


def add_subscriber(conn: psycopg.Connection[Any], sub: NewSubscriber, *, now: datetime,
                   places: Places | None = None) -> Created:
    """Store one subscriber; returns its public id and management token (shown once)."""
    return add_subscribers(conn, [sub], now=now, places=places)[0]


def internal_id(conn: psycopg.Connection[Any], public_id: str) -> int:
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT id FROM subscribers WHERE public_id = %s",
                          (public_id,)).fetchone()
    if row is None:
        raise NotFound("no such subscription")
    return int(row[0])


def get_subscriber(conn: psycopg.Connection[Any], subscriber_id: int | str) -> dict[str, Any]:
    """One subscriber row (by internal int id or public id) as a dict; raises NotFound."""
    col = "id" if isinstance(subscriber_id, int) else "public_id"
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(f"SELECT * FROM subscribers WHERE {col} = %s",
                          (subscriber_id,)).fetchone()
    if row is None:
        raise NotFound("no such subscription")
    return dict(row)


def delete_subscriber(conn: psycopg.Connection[Any], subscriber_id: int | str,
                      token: str | None = None) -> bool:
    """Delete a subscriber (by internal id, or by public id checked against its token); False
    when there is no such subscriber or the token does not match."""
    if isinstance(subscriber_id, int):
        return conn.execute("DELETE FROM subscribers WHERE id = %s",
                            (subscriber_id,)).rowcount > 0
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT id, token_hash FROM subscribers WHERE public_id = %s",
                          (subscriber_id,)).fetchone()
    # Compare even when absent so timing does not tell whether the id exists.
    ok = hmac.compare_digest(row[1] if row is not None else "0" * 64, hash_token(token or ""))
    if row is None or not ok:
        return False
    conn.execute("DELETE FROM subscribers WHERE id = %s", (row[0],))
    return True


def subscriber_points(conn: psycopg.Connection[Any],
                      channel: str | None = None) -> SubscriberPoints:
    """All subscribers (or one channel's) as arrays, in id order, for recipient selection."""
    sql = "SELECT id, latitude, longitude, min_intensity FROM subscribers"
    args: tuple[Any, ...] = ()
    if channel is not None:
        sql += " WHERE channel = %s"
        args = (channel,)
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute(sql + " ORDER BY id", args).fetchall()
    arr = np.array(rows, dtype=np.float64).reshape(-1, 4)
    return SubscriberPoints(ids=arr[:, 0].astype(np.int64), lat=arr[:, 1].copy(),
                            lon=arr[:, 2].copy(), min_intensity=arr[:, 3].astype(np.int16))


def count_by_area(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Subscriber counts per area key ("unknown" when no seat was found); never places."""
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute("SELECT area, count(*) FROM subscribers GROUP BY area"
                           " ORDER BY area").fetchall()
    return {(area or "unknown"): int(n) for area, n in rows}


def count_by_channel(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Subscriber counts per channel."""
    with conn.cursor(row_factory=tuple_row) as cur:
        rows = cur.execute("SELECT channel, count(*) FROM subscribers GROUP BY channel"
                           " ORDER BY channel").fetchall()
    return {channel: int(n) for channel, n in rows}


def has_target(conn: psycopg.Connection[Any], channel: str, target: str) -> bool:
    """Whether a subscriber on ``channel`` has this target."""
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute("SELECT 1 FROM subscribers WHERE channel = %s AND target = %s",
                           (channel, target)).fetchone() is not None


def recipient_rows(conn: psycopg.Connection[Any]
                   ) -> list[tuple[int, float, float, int, str | None, str]]:
    """Every subscriber as (id, latitude, longitude, min_intensity, area, languages), by id."""
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(  # type: ignore[return-value]
            "SELECT id, latitude, longitude, min_intensity, area, languages FROM subscribers"
            " ORDER BY id").fetchall()


def recipients_key(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(count, largest id) of the subscribers: changes whenever one is added or removed."""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute("SELECT count(*), coalesce(max(id), 0) FROM subscribers").fetchone()
    assert row is not None
    return (int(row[0]), int(row[1]))
