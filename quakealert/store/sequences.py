"""Sequences in SQLite: current state, members and type history (schema 002).

Plain sync functions over a ``sqlite3.Connection`` (row_factory=sqlite3.Row); the JSON given to
``save_sequence`` is ``core.classify.sequence_to_json`` output.

Each row also keeps its list entry, already rendered as compact JSON (column ``list_json``,
added on first use to databases made before it), so the list is one query that decodes nothing:
``list_sequences_body`` joins the stored entries into the response body.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from quakealert.errors import NotFound
from quakealert.store.instants import iso_epoch as _iso

_SUMMARY_KEYS = ("reasons", "context", "stats", "forecast", "flags", "foreshock_ids", "mc",
                 "n_agency", "second_magnitude", "type_zh", "classified_at", "centre")


def _ts(text: str | None) -> float | None:
    if text is None:
        return None
    return datetime.fromisoformat(text).timestamp()




def save_sequence(conn: sqlite3.Connection, seq: dict[str, Any], now: datetime) -> bool:
    """Upsert one sequence and its members; True when its type or final flag changed."""
    largest = seq.get("largest") or {}
    summary = {k: seq.get(k) for k in _SUMMARY_KEYS}
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN IMMEDIATE")
    try:
        prev = conn.execute(
            "SELECT type, final FROM sequence_type_history WHERE sequence_id = ? "
            "ORDER BY id DESC LIMIT 1", (seq["id"],)).fetchone()
        changed = prev is None or prev[0] != seq["type"] or bool(prev[1]) != bool(seq["final"])
        conn.execute(
            """INSERT INTO sequences (id, type, final, agency, n_events, largest_id, largest_at,
                   largest_magnitude, largest_mag_type, latitude, longitude, depth_km, first_at,
                   last_at, delta_m, energy_ratio, classified_at, updated_at, summary_json)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
            (seq["id"], seq["type"], int(bool(seq["final"])), seq.get("agency"), seq["n_events"],
             largest.get("id"), _ts(largest.get("time")), largest.get("magnitude"),
             largest.get("mag_type"), largest.get("latitude"), largest.get("longitude"),
             largest.get("depth_km"), _ts(seq["first_at"]), _ts(seq["last_at"]),
             seq.get("delta_m"), seq.get("energy_ratio"),
             _ts(seq.get("classified_at")) or now.timestamp(), now.timestamp(),
             json.dumps(summary, ensure_ascii=False)),
        )
        # the list entry from the row as stored (REAL columns and all), like _row reads it
        _store_list_entry(conn, seq["id"])
        if "members" in seq:
            conn.execute("DELETE FROM sequence_members WHERE sequence_id = ?", (seq["id"],))
            conn.executemany(
                """INSERT INTO sequence_members (sequence_id, event_id, origin_at, latitude,
                       longitude, depth_km, magnitude, mag_type, in_classification, role)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [(seq["id"], m["id"], _ts(m["time"]), m["latitude"], m["longitude"],
                  m.get("depth_km"), m.get("magnitude"), m.get("mag_type"),
                  int(bool(m.get("in_classification"))), m.get("role") or "")
                 for m in seq["members"]],
            )
        if changed:
            conn.execute(
                "INSERT INTO sequence_type_history (sequence_id, type, final, changed_at, "
                "reasons_json) VALUES (?, ?, ?, ?, ?)",
                (seq["id"], seq["type"], int(bool(seq["final"])), now.timestamp(),
                 json.dumps(seq.get("reasons") or [], ensure_ascii=False)),
            )
        if own:
            conn.execute("COMMIT")
    except BaseException:
        if own:
            conn.execute("ROLLBACK")
        raise
    return changed


def delete_sequence(conn: sqlite3.Connection, seq_id: str) -> None:
    """Remove a sequence that no longer exists (merged or emptied); its history stays."""
    conn.execute("DELETE FROM sequence_members WHERE sequence_id = ?", (seq_id,))
    conn.execute("DELETE FROM sequences WHERE id = ?", (seq_id,))


def _dumps(value: Any) -> str:
    """Compact JSON, as ``api.params.json_response`` renders it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _list_entry(r: sqlite3.Row) -> str:
    """The list entry of one stored row: ``_row`` without the detail-only parts."""
    d = _row(r)
    del d["_summary"]
    return _dumps(d)


def _store_list_entry(conn: sqlite3.Connection, seq_id: str) -> None:
    r = conn.execute("SELECT * FROM sequences WHERE id = ?", (seq_id,)).fetchone()
    conn.execute("UPDATE sequences SET list_json = ? WHERE id = ?", (_list_entry(r), seq_id))


def _row(r: sqlite3.Row) -> dict[str, Any]:
    summary = json.loads(r["summary_json"])
    return {
        "id": r["id"],
        "type": r["type"],
        "type_zh": summary.get("type_zh"),
        "final": bool(r["final"]),
        "agency": r["agency"],
        "n_events": r["n_events"],
        "largest": None if r["largest_id"] is None else {
            "id": r["largest_id"], "time": _iso(r["largest_at"]), "latitude": r["latitude"],
            "longitude": r["longitude"], "depth_km": r["depth_km"],
            "magnitude": r["largest_magnitude"], "mag_type": r["largest_mag_type"]},
        "centre": summary.get("centre"),
        "first_at": _iso(r["first_at"]),
        "last_at": _iso(r["last_at"]),
        "delta_m": r["delta_m"],
        "energy_ratio": r["energy_ratio"],
        "classified_at": _iso(r["classified_at"]),
        "updated_at": _iso(r["updated_at"]),
        "reasons": summary.get("reasons") or [],
        "context": summary.get("context"),
        "flags": summary.get("flags") or [],
        "_summary": summary,
    }


def _list_query(
    since: datetime | None, min_magnitude: float | None, type: str | None, limit: int,
    after: tuple[float, str] | None = None,
) -> tuple[str, list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if since is not None:
        where.append("last_at >= ?")
        args.append(since.timestamp())
    if min_magnitude is not None:
        where.append("largest_magnitude >= ?")
        args.append(min_magnitude)
    if type is not None:
        where.append("type = ?")
        args.append(type)
    if after is not None:  # keyset cursor for ORDER BY last_at DESC, id
        where.append("(last_at < ? OR (last_at = ? AND id > ?))")
        args += [after[0], after[0], after[1]]
    sql = "SELECT id, list_json, last_at FROM sequences"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY last_at DESC, id LIMIT ?"
    args.append(limit)
    return sql, args


def _list_entries(
    conn: sqlite3.Connection,
    since: datetime | None,
    min_magnitude: float | None,
    type: str | None,
    limit: int,
    after: tuple[float, str] | None = None,
) -> list[tuple[str, float, str]]:
    """(list entry as compact JSON text, last_at, id) of the selected sequences, in list order."""
    sql, args = _list_query(since, min_magnitude, type, limit, after)
    out = []
    for seq_id, entry, last_at in conn.execute(sql, args).fetchall():
        if entry is None:  # saved before migration 007 added the column
            r = conn.execute("SELECT * FROM sequences WHERE id = ?", (seq_id,)).fetchone()
            entry = _list_entry(r)
        out.append((entry, last_at, seq_id))
    return out


def list_sequences(
    conn: sqlite3.Connection,
    *,
    since: datetime | None = None,
    min_magnitude: float | None = None,
    type: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Recent sequences, newest activity first: summary fields, reasons and context line."""
    return [json.loads(e) for e, _, _ in _list_entries(conn, since, min_magnitude, type, limit)]


def list_sequences_body(
    conn: sqlite3.Connection,
    *,
    since: datetime | None = None,
    min_magnitude: float | None = None,
    type: str | None = None,
    limit: int = 100,
    after: tuple[float, str] | None = None,
    cursor: Callable[[float, str], str] | None = None,
) -> bytes:
    """``{"sequences": list_sequences(...)}`` as compact UTF-8 JSON, built without decoding.

    With ``cursor``, one more row is read to know whether a next page exists, and the body
    carries ``"next_cursor": cursor(last_at, id)`` of the page's last sequence.
    """
    rows = _list_entries(conn, since, min_magnitude, type, limit + (1 if cursor else 0), after)
    page = rows[:limit]
    body = '{"sequences":[' + ",".join(e for e, _, _ in page) + "]"
    if cursor is not None and len(rows) > limit:
        body += ',"next_cursor":' + json.dumps(cursor(page[-1][1], page[-1][2]))
    return (body + "}").encode()


def get_sequence(conn: sqlite3.Connection, seq_id: str) -> dict[str, Any]:
    """One sequence with members, type history, stats and forecast; NotFound if unknown."""
    r = conn.execute("SELECT * FROM sequences WHERE id = ?", (seq_id,)).fetchone()
    if r is None:
        raise NotFound(f"sequence {seq_id} not found")
    d = _row(r)
    summary = d.pop("_summary")
    d["stats"] = summary.get("stats")
    d["forecast"] = summary.get("forecast")
    d["foreshock_ids"] = summary.get("foreshock_ids") or []
    d["mc"] = summary.get("mc")
    d["members"] = [
        {"id": m["event_id"], "time": _iso(m["origin_at"]), "latitude": m["latitude"],
         "longitude": m["longitude"], "depth_km": m["depth_km"], "magnitude": m["magnitude"],
         "mag_type": m["mag_type"], "in_classification": bool(m["in_classification"]),
         "role": m["role"]}
        for m in conn.execute(
            "SELECT * FROM sequence_members WHERE sequence_id = ? ORDER BY origin_at, event_id",
            (seq_id,))
    ]
    d["type_history"] = [
        {"type": h["type"], "final": bool(h["final"]), "changed_at": _iso(h["changed_at"]),
         "reasons": json.loads(h["reasons_json"])}
        for h in conn.execute(
            "SELECT * FROM sequence_type_history WHERE sequence_id = ? ORDER BY id", (seq_id,))
    ]
    return d


def sequence_ids(conn: sqlite3.Connection) -> list[str]:
    """Every stored sequence id, oldest first."""
    return [str(r[0]) for r in conn.execute("SELECT id FROM sequences ORDER BY first_at, id")]


def sequence_exists(conn: sqlite3.Connection, seq_id: str) -> bool:
    """Whether the sequence is stored (a sequence left alone by a retyped quake is gone)."""
    return conn.execute("SELECT 1 FROM sequences WHERE id = ?", (seq_id,)).fetchone() is not None
