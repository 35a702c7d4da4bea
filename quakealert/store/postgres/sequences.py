"""Sequences on PostgreSQL: the functions of :mod:`quakealert.store.sequences` with the same
arguments and results, byte for byte where the API serves stored text (``list_json``). The
row-to-JSON rendering is shared with the SQLite module; only the SQL differs. Checked by
tests/pg/test_pg_sequences_contract.py against the SQLite module on the same input."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from quakealert.errors import NotFound
from quakealert.store.instants import iso_epoch as _iso
from quakealert.store.sequences import _SUMMARY_KEYS, _list_entry, _list_query, _row, _ts


def _pg(sql: str) -> str:
    """The SQLite module's list query with PostgreSQL placeholders (it has no literal '?')."""
    return sql.replace("?", "%s")


def _one(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> dict[str, Any] | None:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchone()


def save_sequence(conn: psycopg.Connection[Any], seq: dict[str, Any], now: datetime) -> bool:
    """Upsert one sequence and its members; True when its type or final flag changed."""
    largest = seq.get("largest") or {}
    summary = {k: seq.get(k) for k in _SUMMARY_KEYS}
    with conn.transaction():  # a savepoint when the caller already has a transaction open
        prev = _one(conn, "SELECT type, final FROM sequence_type_history WHERE sequence_id = %s"
                          " ORDER BY id DESC LIMIT 1", (seq["id"],))
        changed = (prev is None or prev["type"] != seq["type"]
                   or bool(prev["final"]) != bool(seq["final"]))
        conn.execute(
            """INSERT INTO sequences (id, type, final, agency, n_events, largest_id, largest_at,
                   largest_magnitude, largest_mag_type, latitude, longitude, depth_km, first_at,
                   last_at, delta_m, energy_ratio, classified_at, updated_at, summary_json)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (id) DO UPDATE SET type = excluded.type, final = excluded.final,
                   agency = excluded.agency, n_events = excluded.n_events,
                   largest_id = excluded.largest_id, largest_at = excluded.largest_at,
                   largest_magnitude = excluded.largest_magnitude,
                   largest_mag_type = excluded.largest_mag_type, latitude = excluded.latitude,
                   longitude = excluded.longitude, depth_km = excluded.depth_km,
                   first_at = excluded.first_at, last_at = excluded.last_at,
                   delta_m = excluded.delta_m, energy_ratio = excluded.energy_ratio,
                   classified_at = excluded.classified_at, updated_at = excluded.updated_at,
                   summary_json = excluded.summary_json""",
            (seq["id"], seq["type"], bool(seq["final"]), seq.get("agency"), seq["n_events"],
             largest.get("id"), _ts(largest.get("time")), largest.get("magnitude"),
             largest.get("mag_type"), largest.get("latitude"), largest.get("longitude"),
             largest.get("depth_km"), _ts(seq["first_at"]), _ts(seq["last_at"]),
             seq.get("delta_m"), seq.get("energy_ratio"),
             _ts(seq.get("classified_at")) or now.timestamp(), now.timestamp(),
             json.dumps(summary, ensure_ascii=False)),
        )
        _store_list_entry(conn, seq["id"])
        if "members" in seq:
            conn.execute("DELETE FROM sequence_members WHERE sequence_id = %s", (seq["id"],))
            with conn.cursor() as cur:
                cur.executemany(
                    """INSERT INTO sequence_members (sequence_id, event_id, origin_at, latitude,
                           longitude, depth_km, magnitude, mag_type, in_classification, role)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                    [(seq["id"], m["id"], _ts(m["time"]), m["latitude"], m["longitude"],
                      m.get("depth_km"), m.get("magnitude"), m.get("mag_type"),
                      bool(m.get("in_classification")), m.get("role") or "")
                     for m in seq["members"]])
        if changed:
            conn.execute(
                "INSERT INTO sequence_type_history (sequence_id, type, final, changed_at,"
                " reasons_json) VALUES (%s, %s, %s, %s, %s)",
                (seq["id"], seq["type"], bool(seq["final"]), now.timestamp(),
                 json.dumps(seq.get("reasons") or [], ensure_ascii=False)))
    return changed


def delete_sequence(conn: psycopg.Connection[Any], seq_id: str) -> None:
    """Remove a sequence that no longer exists (merged or emptied); its history stays."""
    with conn.transaction():
        conn.execute("DELETE FROM sequence_members WHERE sequence_id = %s", (seq_id,))
        conn.execute("DELETE FROM sequences WHERE id = %s", (seq_id,))


def _store_list_entry(conn: psycopg.Connection[Any], seq_id: str) -> None:
    r = _one(conn, "SELECT * FROM sequences WHERE id = %s", (seq_id,))
    assert r is not None
    conn.execute("UPDATE sequences SET list_json = %s WHERE id = %s", (_list_entry(r), seq_id))


def _list_entries(
    conn: psycopg.Connection[Any], since: datetime | None, min_magnitude: float | None,
    type: str | None, limit: int, after: tuple[float, str] | None = None,
) -> list[tuple[str, float, str]]:
    sql, args = _list_query(since, min_magnitude, type, limit, after)
    out = []
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(_pg(sql), args).fetchall()
    for r in rows:
        entry = r["list_json"]
        if entry is None:  # a row copied from a store saved before migration 007
            full = _one(conn, "SELECT * FROM sequences WHERE id = %s", (r["id"],))
            assert full is not None
            entry = _list_entry(full)
        out.append((entry, r["last_at"], r["id"]))
    return out


def list_sequences(
    conn: psycopg.Connection[Any], *, since: datetime | None = None,
    min_magnitude: float | None = None, type: str | None = None, limit: int = 100,
) -> list[dict[str, Any]]:
    """Recent sequences, newest activity first: summary fields, reasons and context line."""
    return [json.loads(e) for e, _, _ in _list_entries(conn, since, min_magnitude, type, limit)]


def list_sequences_body(
    conn: psycopg.Connection[Any], *, since: datetime | None = None,
    min_magnitude: float | None = None, type: str | None = None, limit: int = 100,
    after: tuple[float, str] | None = None, cursor: Callable[[float, str], str] | None = None,
) -> bytes:
    """``{"sequences": list_sequences(...)}`` as compact UTF-8 JSON, built without decoding."""
    rows = _list_entries(conn, since, min_magnitude, type, limit + (1 if cursor else 0), after)
    page = rows[:limit]
    body = '{"sequences":[' + ",".join(e for e, _, _ in page) + "]"
    if cursor is not None and len(rows) > limit:
        body += ',"next_cursor":' + json.dumps(cursor(page[-1][1], page[-1][2]))
    return (body + "}").encode()


def get_sequence(conn: psycopg.Connection[Any], seq_id: str) -> dict[str, Any]:
    """One sequence with members, type history, stats and forecast; NotFound if unknown."""
    r = _one(conn, "SELECT * FROM sequences WHERE id = %s", (seq_id,))
    if r is None:
        raise NotFound(f"sequence {seq_id} not found")
    d = _row(r)
    summary = d.pop("_summary")
    d["stats"] = summary.get("stats")
    d["forecast"] = summary.get("forecast")
    d["foreshock_ids"] = summary.get("foreshock_ids") or []
    d["mc"] = summary.get("mc")
    with conn.cursor(row_factory=dict_row) as cur:
        members = cur.execute("SELECT * FROM sequence_members WHERE sequence_id = %s"
                              " ORDER BY origin_at, event_id", (seq_id,)).fetchall()
        history = cur.execute("SELECT * FROM sequence_type_history WHERE sequence_id = %s"
                              " ORDER BY id", (seq_id,)).fetchall()
    d["members"] = [
        {"id": m["event_id"], "time": _iso(m["origin_at"]), "latitude": m["latitude"],
         "longitude": m["longitude"], "depth_km": m["depth_km"], "magnitude": m["magnitude"],
         "mag_type": m["mag_type"], "in_classification": bool(m["in_classification"]),
         "role": m["role"]}
        for m in members]
    d["type_history"] = [
        {"type": h["type"], "final": bool(h["final"]), "changed_at": _iso(h["changed_at"]),
         "reasons": json.loads(h["reasons_json"])}
        for h in history]
    return d


def sequence_ids(conn: psycopg.Connection[Any]) -> list[str]:
    """Every stored sequence id, oldest first."""
    with conn.cursor(row_factory=dict_row) as cur:
        return [str(r["id"]) for r in cur.execute("SELECT id FROM sequences"
                                                  " ORDER BY first_at, id").fetchall()]


def sequence_exists(conn: psycopg.Connection[Any], seq_id: str) -> bool:
    """Whether the sequence is stored (a sequence left alone by a retyped quake is gone)."""
    return _one(conn, "SELECT 1 AS one FROM sequences WHERE id = %s", (seq_id,)) is not None
