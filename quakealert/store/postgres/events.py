"""Reports and events on PostgreSQL: ingest (association into events, revisions, deletions,
event types, and the pipeline work a batch creates, in one transaction), the event reads the
API and the FDSN service make, and source health. The same arguments and results as the SQLite
:class:`quakealert.store.sqlite.Store` methods of the same names, as functions taking a psycopg
connection; tests/pg/test_pg_events_contract.py runs one suite on both.

Concurrent ingests: association reads the events near each report and then writes, so two
batches ingested at once could each create an event for the same quake. Only the leader
ingests, but a deposed leader may still be finishing a batch when the new one starts; so each
batch takes a transaction-scoped advisory lock (``INGEST_LOCK``) before it reads anything, and
every read of the batch happens after it (READ COMMITTED: each statement sees what the previous
holder committed). Ingests are serialised; readers (API, pipeline) never wait for them.
SERIALIZABLE with retry would also be correct, but a conflict would redo a 100k-report batch,
and the leader is the only writer anyway, so the lock costs nothing and never retries.
"""

from __future__ import annotations

import gc
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row, tuple_row

from quakealert.core.associate import (
    AssociationParams,
    Candidate,
    Match,
    Priorities,
    associate,
    event_type_of,
    id_keys,
    new_event_id,
    preferred,
)
from quakealert.core.geo import distance_km
from quakealert.errors import NotFound
from quakealert.model import Contributor, Event, Report
from quakealert.store.instants import iso_epoch as _iso
from quakealert.store.sqlite import (
    _BUCKET_S,
    DEFAULT_ASSOCIATION,
    DEFAULT_PRIORITIES,
    IngestResult,
    Store,
    _diff,
    _report_row_tuple,
)

# pg_advisory_xact_lock key serialising ingests (db.MIGRATION_LOCK is ...0001). Not ...0002:
# that is leadership.LEADER_KEY, which the leader's session holds all along (an ingest on the
# same key would wait for ever).
INGEST_LOCK = 0x71616B650003
_NO_MATCH = Match(None)
_HEALTH_COLUMNS = frozenset({
    "name", "last_ok_at", "last_error_at", "last_error", "consecutive_failures", "backoff_until",
    "last_since", "polls", "reports_total", "skipped_total"})
_unchanged = Store._unchanged  # a pure comparison of a stored row and a report


def _rows(conn: psycopg.Connection[Any], query: str, params: Any = ()) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, params).fetchall()


def _tuples(conn: psycopg.Connection[Any], query: str, params: Any = ()) -> list[tuple[Any, ...]]:
    with conn.cursor(row_factory=tuple_row) as cur:
        return cur.execute(query, params).fetchall()


# -- ingest -----------------------------------------------------------------------------------


def ingest(
    conn: psycopg.Connection[Any],
    reports: Sequence[Report],
    *,
    now: datetime,
    priorities: Priorities = DEFAULT_PRIORITIES,
    params: AssociationParams = DEFAULT_ASSOCIATION,
    queue_work: bool = True,
) -> IngestResult:
    """Store a batch of reports: new versions only, associated into events, in one transaction
    with the pipeline work it creates (``queue_work=False``: history nobody is told about)."""
    result = IngestResult()
    if not reports:
        return result
    now_s = now.timestamp()
    # As on SQLite: the cyclic collector rescanning a big batch's objects doubles its time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (INGEST_LOCK,))
            _ingest(conn, reports, now_s, priorities, params, result)
            if queue_work:
                record_work(conn, result, now_s)
    finally:
        if gc_was_enabled:
            gc.enable()
    return result


def _ingest(
    conn: psycopg.Connection[Any],
    reports: Sequence[Report],
    now_s: float,
    priorities: Priorities,
    params: AssociationParams,
    result: IngestResult,
) -> None:
    # The same walk as Store._ingest (SQLite); only the reads and the writes differ.
    latest: dict[tuple[str, str], Report] = {}
    for r in reports:
        prev = latest.get(r.key)
        if prev is None or (r.updated_at or r.origin_at) >= (prev.updated_at or prev.origin_at):
            latest[r.key] = r
    batch = sorted(latest.values(), key=lambda r: (r.origin_at, r.source, r.source_id))

    current = _current_rows(conn, batch)
    # One query each instead of one per report (SQLite's lookups are local calls; these are
    # round trips): the batch's rows are written at the end, so what the batch reads of the
    # store before it starts is what it would read report by report.
    aliases = _current_by_aliases(conn, [r for r in batch if r.key not in current and r.other_ids])
    buckets: dict[int, dict[str, Candidate]] = defaultdict(dict)
    bucket_of: dict[str, int] = {}
    report_keys = {r.key: id_keys(r) for r in batch}
    event_keys: dict[str, frozenset[str]] = {}
    by_key: dict[str, set[str]] = defaultdict(set)
    id_rows: list[tuple[str, str]] = []
    if any(r.key not in current for r in batch):
        t0 = batch[0].origin_at.timestamp() - params.max_dt_s
        t1 = batch[-1].origin_at.timestamp() + params.max_dt_s
        for cand in _candidates(conn, t0, t1):
            key = int(cand.origin_at.timestamp() // _BUCKET_S)
            buckets[key][cand.event_id] = cand
            bucket_of[cand.event_id] = key
            event_keys[cand.event_id] = cand.ids
        wanted = {k for r in batch if r.key not in current for k in report_keys[r.key]}
        for id_key, event_id in _events_by_key(conn, wanted):
            by_key[id_key].add(event_id)
        outside = {e for es in by_key.values() for e in es} - bucket_of.keys()
        far_candidates = _candidates_by_id(conn, outside)
    else:
        far_candidates = {}

    contribs: dict[str, dict[tuple[str, str], Contributor | Report]] = {}
    meta: dict[str, dict[str, Any]] = {}
    touched: dict[str, str] = {}
    new_flags: dict[str, list[str]] = defaultdict(list)
    report_rows: list[tuple[Any, ...]] = []  # without their id: allocated once at the end
    current_keys: list[tuple[str, str, str]] = []
    retired: list[tuple[str, str]] = []

    def load(event_id: str) -> None:
        if event_id in contribs:
            return
        contribs[event_id] = {(c.source, c.source_id): c
                              for c in contributors(conn, [event_id])[event_id]}
        rows = _rows(conn, "SELECT review_flags, created_at, place FROM events WHERE id = %s",
                     (event_id,))
        row = rows[0] if rows else None
        if event_id not in event_keys:
            event_keys[event_id] = frozenset(k for (k,) in _tuples(
                conn, "SELECT id_key FROM event_ids WHERE event_id = %s", (event_id,)))
        meta[event_id] = {
            "created_at": row["created_at"] if row else now_s,
            "flags": list(json.loads(row["review_flags"])) if row else [],
            "place": row["place"] if row else None,
        }

    for r in batch:
        r_ts = r.origin_at.timestamp()
        prev = current.get((r.source, r.source_id))
        if prev is None and r.other_ids:
            prev = next((aliases[(r.source, a)] for a in r.other_ids
                         if a != r.source_id and (r.source, a) in aliases), None)
        if prev is not None:
            if _unchanged(prev, r):
                result.unchanged += 1
                continue
            event_id = prev["event_id"]
            load(event_id)
            version = prev["version"] + 1
            change = "deleted" if r.status == "deleted" else (
                "official" if prev["status"] == "automatic" and r.status == "reviewed"
                else "revised")
            detail = _diff(prev, r)
            if prev["source_id"] != r.source_id:
                retired.append((prev["source"], prev["source_id"]))
                contribs[event_id].pop((prev["source"], prev["source_id"]), None)
                detail = f"id {prev['source_id']} -> {r.source_id}; {detail}"
            touched.setdefault(event_id, "revised")
            if change == "deleted":
                touched[event_id] = "deleted"
        else:
            key = int(r_ts // _BUCKET_S)
            cands = [c for k in (key - 1, key, key + 1) if k in buckets
                     for c in buckets[k].values()]
            keys = report_keys[r.key]
            if keys:
                near = {c.event_id for c in cands}
                for eid in {e for k in keys for e in by_key.get(k, ())} - near:
                    cand = (buckets[bucket_of[eid]].get(eid) if eid in bucket_of
                            else far_candidates.get(eid))
                    if cand is not None:
                        cands.append(cand)
            match = associate(r, cands, params, keys=keys) if cands else _NO_MATCH
            version = 1
            if match.event_id is None:
                event_id = new_event_id(r)
                contribs[event_id] = {}
                meta[event_id] = {"created_at": now_s, "flags": [], "place": None}
                change, detail = "created", "; ".join(match.flags)
                touched[event_id] = "created"
            else:
                event_id = match.event_id
                load(event_id)
                change = "associated"
                detail = (f"id {match.by_id}; " if match.by_id else "") + (
                    f"score {match.score:.3f}" + "".join(f"; {f}" for f in match.flags))
                touched.setdefault(event_id, "revised")
            if match.flags:
                new_flags[event_id].extend(match.flags)
                meta[event_id]["flags"].extend(
                    f for f in match.flags if f not in meta[event_id]["flags"])
        report_rows.append((r.source, r.source_id, version, now_s, *_report_row_tuple(r),
                            ",".join(r.other_ids), event_id, change, detail))
        current_keys.append((r.source, r.source_id, event_id))
        r_keys = report_keys[r.key]
        ev_keys = event_keys.get(event_id, frozenset())
        if not r_keys <= ev_keys:
            for k in r_keys - ev_keys:
                by_key[k].add(event_id)
                id_rows.append((k, event_id))
            ev_keys = ev_keys | r_keys
            event_keys[event_id] = ev_keys
        members = contribs[event_id]
        members[(r.source, r.source_id)] = r
        if r.place and (meta[event_id]["place"] is None or r.source == "cenc"):
            meta[event_id]["place"] = r.place
        if len(members) == 1:
            best: Contributor | Report = r
            status = r.status
            key = int(r_ts // _BUCKET_S)
        else:
            best = preferred(list(members.values()), priorities)
            status = "deleted" if all(
                c.status == "deleted" for c in members.values()) else best.status
            key = int(best.origin_at.timestamp() // _BUCKET_S)
        if status == "deleted" and touched[event_id] != "created":
            touched[event_id] = "deleted"
        old_key = bucket_of.pop(event_id, None)
        if old_key is not None:
            buckets[old_key].pop(event_id, None)
        buckets[key][event_id] = Candidate(
            event_id, best.origin_at, best.latitude, best.longitude, best.depth_km,
            best.magnitude, best.mag_type,
            frozenset((r.source,)) if len(members) == 1 else frozenset(s for s, _ in members),
            ev_keys)
        bucket_of[event_id] = key

    event_rows = []
    for event_id in touched:
        m = meta[event_id]
        members_now = list(contribs[event_id].values())
        if len(members_now) == 1:
            e: Contributor | Report = members_now[0]
            status = e.status
        else:
            e = preferred(members_now, priorities)
            status = "deleted" if all(c.status == "deleted" for c in members_now) else e.status
        event_rows.append((
            event_id, e.origin_at.timestamp(), e.latitude, e.longitude, e.depth_km,
            e.magnitude, e.mag_type, status, e.source, m["place"],
            json.dumps(m["flags"], ensure_ascii=False) if m["flags"] else "[]",
            m["created_at"], now_s,
            e.event_type if len(members_now) == 1 else event_type_of(e, members_now)))
    _write(conn, report_rows, current_keys, retired, id_rows, event_rows)
    for event_id, what in touched.items():
        getattr(result, what).append(event_id)
        if event_id in new_flags:
            result.flags[event_id] = tuple(new_flags[event_id])


_REPORT_COLUMNS = (
    "id", "source", "source_id", "version", "received_at", "origin_at", "latitude", "longitude",
    "depth_km", "magnitude", "mag_type", "status", "updated_at", "place", "agency", "event_type",
    "other_ids", "event_id", "change", "detail")
_EVENTS_UPSERT = """
INSERT INTO events (id, origin_at, latitude, longitude, depth_km, magnitude, mag_type, status,
    preferred_source, place, review_flags, created_at, changed_at, event_type)
SELECT * FROM unnest(%b::text[], %s::float8[], %s::float8[], %s::float8[], %s::float8[],
    %s::float8[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %s::float8[],
    %s::float8[], %b::text[])
ON CONFLICT (id) DO UPDATE SET event_type = excluded.event_type,
    origin_at = excluded.origin_at, latitude = excluded.latitude,
    longitude = excluded.longitude, depth_km = excluded.depth_km,
    magnitude = excluded.magnitude, mag_type = excluded.mag_type, status = excluded.status,
    preferred_source = excluded.preferred_source, place = excluded.place,
    review_flags = excluded.review_flags, changed_at = excluded.changed_at
"""


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as one list per column (for ``unnest``), also when there are no rows."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def _write(
    conn: psycopg.Connection[Any], report_rows: list[tuple[Any, ...]],
    current_keys: list[tuple[str, str, str]], retired: list[tuple[str, str]],
    id_rows: list[tuple[str, str]], event_rows: list[tuple[Any, ...]],
) -> None:
    """The batch's rows, in a few statements: COPY for the reports, ``unnest`` for the rest."""
    # Ids from the identity's sequence, not max(id) + 1: `store copy` and other writers share it.
    ids = [r[0] for r in _tuples(
        conn, "SELECT nextval(pg_get_serial_sequence('reports', 'id')) FROM"
        " generate_series(1, %s) ORDER BY 1", (len(report_rows),))] if report_rows else []
    if retired:
        sources, source_ids = _columns(retired, 2)
        conn.execute("DELETE FROM report_current c USING unnest(%b::text[], %b::text[])"
                     " AS u(source, source_id) WHERE c.source = u.source"
                     " AND c.source_id = u.source_id", (sources, source_ids))
    if id_rows:
        keys, events = _columns(id_rows, 2)
        conn.execute("INSERT INTO event_ids (id_key, event_id) SELECT * FROM"
                     " unnest(%b::text[], %b::text[]) ON CONFLICT DO NOTHING", (keys, events))
    if report_rows:
        with conn.cursor() as cur, cur.copy(
                f"COPY reports ({', '.join(_REPORT_COLUMNS)}) FROM STDIN") as copy:
            for report_id, row in zip(ids, report_rows, strict=True):
                copy.write_row((report_id, *row))
        sources, source_ids, events = _columns(current_keys, 3)
        conn.execute(
            "INSERT INTO report_current (source, source_id, report_id, event_id)"
            " SELECT * FROM unnest(%b::text[], %b::text[], %s::bigint[], %b::text[])"
            " ON CONFLICT (source, source_id) DO UPDATE SET report_id = excluded.report_id,"
            " event_id = excluded.event_id", (sources, source_ids, ids, events))
    if event_rows:
        conn.execute(_EVENTS_UPSERT, _columns(event_rows, 14))


def _current_rows(conn: psycopg.Connection[Any],
                  batch: Sequence[Report]) -> dict[tuple[str, str], dict[str, Any]]:
    """The stored current version of every report in the batch that we already have."""
    by_source: dict[str, list[str]] = defaultdict(list)
    for r in batch:
        by_source[r.source].append(r.source_id)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for source, ids in by_source.items():
        for row in _rows(conn, "SELECT r.*, c.event_id AS event_id FROM report_current c"
                               " JOIN reports r ON r.id = c.report_id"
                               " WHERE c.source = %s AND c.source_id = ANY(%b::text[])",
                         (source, ids)):
            rows[(source, row["source_id"])] = row
    return rows


def _current_by_aliases(conn: psycopg.Connection[Any],
                        reports: Sequence[Report]) -> dict[tuple[str, str], dict[str, Any]]:
    """Stored current reports filed under another id of the same quake by the same source
    (USGS `ids`), by (source, that id)."""
    pairs = {(r.source, a) for r in reports for a in r.other_ids if a != r.source_id}
    if not pairs:
        return {}
    sources, ids = _columns(sorted(pairs), 2)
    return {(row["source"], row["source_id"]): row for row in _rows(
        conn, "SELECT r.*, c.event_id AS event_id FROM report_current c"
        " JOIN reports r ON r.id = c.report_id"
        " JOIN unnest(%b::text[], %b::text[]) AS u(source, source_id)"
        " ON c.source = u.source AND c.source_id = u.source_id", (sources, ids))}


_CANDIDATE_SQL = (
    "SELECT e.id, e.origin_at, e.latitude, e.longitude, e.depth_km, e.magnitude, e.mag_type,"
    " string_agg(c.source, ',') AS sources,"
    " (SELECT string_agg(i.id_key, ' ') FROM event_ids i WHERE i.event_id = e.id) AS ids"
    " FROM events e JOIN report_current c ON c.event_id = e.id"
)


def _candidate_of(row: dict[str, Any]) -> Candidate:
    return Candidate(row["id"], datetime.fromtimestamp(row["origin_at"], UTC), row["latitude"],
                     row["longitude"], row["depth_km"], row["magnitude"], row["mag_type"],
                     frozenset(row["sources"].split(",")),
                     frozenset(row["ids"].split(" ")) if row["ids"] else frozenset())


def _candidates(conn: psycopg.Connection[Any], t0: float, t1: float) -> Iterable[Candidate]:
    for row in _rows(conn, _CANDIDATE_SQL + " WHERE e.origin_at BETWEEN %s AND %s GROUP BY e.id",
                     (t0, t1)):
        yield _candidate_of(row)


def _candidates_by_id(conn: psycopg.Connection[Any],
                      event_ids: Iterable[str]) -> dict[str, Candidate]:
    """Stored events as candidates by id (id matches outside the batch's time window)."""
    wanted = list(event_ids)
    if not wanted:
        return {}
    return {row["id"]: _candidate_of(row) for row in _rows(
        conn, _CANDIDATE_SQL + " WHERE e.id = ANY(%b::text[]) GROUP BY e.id", (wanted,))}


def _events_by_key(conn: psycopg.Connection[Any], keys: Iterable[str]) -> list[tuple[str, str]]:
    """(id_key, event_id) of stored events holding any of ``keys``."""
    wanted = list(keys)
    if not wanted:
        return []
    return [(k, e) for k, e in _tuples(
        conn, "SELECT id_key, event_id FROM event_ids WHERE id_key = ANY(%b::text[])", (wanted,))]


def contributors(conn: psycopg.Connection[Any],
                 event_ids: Sequence[str]) -> dict[str, list[Contributor]]:
    """Every event's current reports as contributors, by source and source id."""
    out: dict[str, list[Contributor]] = {eid: [] for eid in event_ids}
    if not event_ids:
        return out
    for (eid, source, source_id, origin_at, lat, lon, depth, mag, mag_type, status, updated_at,
         event_type) in _tuples(
            conn, "SELECT c.event_id, r.source, r.source_id, r.origin_at, r.latitude,"
            " r.longitude, r.depth_km, r.magnitude, r.mag_type, r.status, r.updated_at,"
            " r.event_type FROM report_current c JOIN reports r ON r.id = c.report_id"
            " WHERE c.event_id = ANY(%b::text[]) ORDER BY r.source, r.source_id",
            (list(event_ids),)):
        out[eid].append(Contributor(
            source, source_id, datetime.fromtimestamp(origin_at, UTC), lat, lon, depth, mag,
            mag_type, status, None if updated_at is None
            else datetime.fromtimestamp(updated_at, UTC), event_type))
    return out


def record_work(conn: psycopg.Connection[Any], result: IngestResult, now_s: float) -> None:
    """Queue the pipeline work a batch creates, in the batch's transaction (durable processing).

    An event still queued keeps "new" (it was never processed) unless it is now deleted.
    """
    rows = [(trigger, eid) for trigger, ids in (
        ("new", result.created), ("revised", result.revised), ("deleted", result.deleted))
        for eid in ids]
    if not rows:
        return
    triggers, event_ids = _columns(rows, 2)
    conn.execute(
        "INSERT INTO work (event_id, trigger, origin_at, received_at)"
        " SELECT e.id, u.trigger, e.origin_at, %s FROM unnest(%b::text[], %b::text[])"
        " AS u(trigger, event_id) JOIN events e ON e.id = u.event_id"
        " ON CONFLICT (event_id) DO UPDATE"
        " SET trigger = CASE WHEN excluded.trigger = 'deleted' THEN 'deleted'"
        " WHEN work.trigger = 'new' THEN 'new' ELSE excluded.trigger END,"
        " origin_at = excluded.origin_at, received_at = excluded.received_at, priority = NULL",
        (now_s, triggers, event_ids))


# -- reads ------------------------------------------------------------------------------------


def glob_regex(pattern: str) -> str | None:
    """An SQLite GLOB pattern (``*``, ``?``, ``[...]``) as an anchored PostgreSQL regular
    expression, or None when it can match nothing (an unclosed ``[``, as in SQLite)."""
    out = ["^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "^":
                j += 1
            if j < len(pattern) and pattern[j] == "]":  # a leading ] is a member
                j += 1
            end = pattern.find("]", j)
            if end < 0:
                return None
            inner = pattern[i + 1 : end]
            neg = inner.startswith("^")
            body = inner[1:] if neg else inner
            out.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
            i = end
        elif c.isalnum() or c == " ":
            out.append(c)
        else:
            out.append("\\" + c)
        i += 1
    return "".join(out) + "$"


def events(
    conn: psycopg.Connection[Any],
    *,
    starttime: datetime | None = None,
    endtime: datetime | None = None,
    minmagnitude: float | None = None,
    maxmagnitude: float | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
    maxradius_km: float | None = None,
    minradius_km: float | None = None,
    box: tuple[float, float, float, float] | None = None,
    mindepth_km: float | None = None,
    maxdepth_km: float | None = None,
    source: str | None = None,
    status: str | None = None,
    include_deleted: bool = False,
    event_types: Sequence[str] | None = None,
    changed_after: datetime | None = None,
    after: tuple[float, str] | None = None,
    order: str = "time",
    limit: int | None = 1000,
) -> list[Event]:
    """Events matching every given filter; ``after`` is a (origin_at, id) keyset cursor."""
    where: list[str] = []
    args: list[Any] = []
    for cond, value in (("e.origin_at >= %s", starttime and starttime.timestamp()),
                        ("e.origin_at <= %s", endtime and endtime.timestamp()),
                        ("e.magnitude >= %s", minmagnitude), ("e.magnitude <= %s", maxmagnitude),
                        ("e.depth_km >= %s", mindepth_km), ("e.depth_km <= %s", maxdepth_km)):
        if value is not None:
            where.append(cond)
            args.append(value)
    if box is not None:
        la0, la1, lo0, lo1 = box
        where.append("e.latitude BETWEEN %s AND %s")
        args += [la0, la1]
        if lo0 <= lo1:
            where.append("e.longitude BETWEEN %s AND %s")
            args += [lo0, lo1]
        else:  # crosses the antimeridian
            where.append("(e.longitude >= %s OR e.longitude <= %s)")
            args += [lo0, lo1]
    if status is not None:
        where.append("e.status = %s")
        args.append(status)
    elif not include_deleted:
        where.append("e.status <> 'deleted'")
    if event_types:
        # The fdsnws wildcards, as SQLite's GLOB reads them; no type counts as earthquake.
        regexes = [glob_regex(t) for t in event_types]
        alts = ["coalesce(e.event_type, 'earthquake') ~ %s" for x in regexes if x is not None]
        where.append("(" + (" OR ".join(alts) or "FALSE") + ")")
        args += [x for x in regexes if x is not None]
    if source is not None:
        where.append("EXISTS (SELECT 1 FROM report_current c WHERE c.event_id = e.id"
                     " AND c.source = %s)")
        args.append(source)
    if changed_after is not None:
        where.append("e.changed_at > %s")
        args.append(changed_after.timestamp())
    circle = latitude is not None and longitude is not None and (
        maxradius_km is not None or minradius_km is not None)
    if circle and maxradius_km is not None:
        assert latitude is not None and longitude is not None
        # Prefilter with a bounding box; the exact great-circle test follows in Python.
        dlat = maxradius_km / 111.0
        coslat = max(math.cos(math.radians(latitude)), 1e-6)
        where.append("e.latitude BETWEEN %s AND %s")
        args += [latitude - dlat, latitude + dlat]
        dlon = maxradius_km / (111.0 * coslat)
        if dlon < 180:
            lo0, lo1 = longitude - dlon, longitude + dlon
            if lo0 < -180 or lo1 > 180:
                where.append("(e.longitude >= %s OR e.longitude <= %s)")
                args += [(lo0 + 540) % 360 - 180, (lo1 + 540) % 360 - 180]
            else:
                where.append("e.longitude BETWEEN %s AND %s")
                args += [lo0, lo1]
    desc = order in ("time", "time-desc")
    if after is not None:
        where.append(f"(e.origin_at, e.id) {'<' if desc else '>'} (%s, %s)")
        args += [after[0], after[1]]
    # NULLS LAST/FIRST: where SQLite puts NULL magnitudes (smallest of all).
    order_sql = {
        "time": "e.origin_at DESC, e.id DESC",
        "time-asc": "e.origin_at ASC, e.id ASC",
        "magnitude": "e.magnitude DESC NULLS LAST, e.origin_at DESC, e.id DESC",
        "magnitude-asc": "e.magnitude ASC NULLS FIRST, e.origin_at ASC, e.id ASC",
    }.get(order, "e.origin_at DESC, e.id DESC")
    query = "SELECT e.* FROM events e"
    if where:
        query += " WHERE " + " AND ".join(where)
    query += f" ORDER BY {order_sql}"
    if limit is not None and not circle:
        query += f" LIMIT {int(limit):d}"
    rows = _rows(conn, query, args)
    if circle:
        assert latitude is not None and longitude is not None
        keep = []
        for row in rows:
            d = distance_km(latitude, longitude, row["latitude"], row["longitude"])
            if maxradius_km is not None and d > maxradius_km:
                continue
            if minradius_km is not None and d < minradius_km:
                continue
            keep.append(row)
            if limit is not None and len(keep) >= limit:
                break
        rows = keep
    return _events_from_rows(conn, rows)


def _events_from_rows(conn: psycopg.Connection[Any], rows: Sequence[dict[str, Any]]) -> list[Event]:
    by_event = contributors(conn, [r["id"] for r in rows])
    return [
        Event(
            id=row["id"], origin_at=datetime.fromtimestamp(row["origin_at"], UTC),
            latitude=row["latitude"], longitude=row["longitude"], depth_km=row["depth_km"],
            magnitude=row["magnitude"], mag_type=row["mag_type"], status=row["status"],
            preferred_source=row["preferred_source"],
            contributors=tuple(by_event[row["id"]]), place=row["place"],
            review_flags=() if row["review_flags"] == "[]"
            else tuple(json.loads(row["review_flags"])),
            updated_at=datetime.fromtimestamp(row["changed_at"], UTC),
            event_type=row["event_type"],
        )
        for row in rows
    ]


def event(conn: psycopg.Connection[Any], event_id: str) -> Event:
    """One event by id; raises NotFound."""
    rows = _rows(conn, "SELECT * FROM events WHERE id = %s", (event_id,))
    if not rows:
        raise NotFound(f"no event {event_id!r}")
    return _events_from_rows(conn, rows)[0]


def event_history(conn: psycopg.Connection[Any], event_id: str) -> list[dict[str, Any]]:
    """Every report version and change of one event, oldest first; raises NotFound."""
    event(conn, event_id)
    return [{
        "at": _iso(row["received_at"]), "change": row["change"], "detail": row["detail"],
        "source": row["source"], "source_id": row["source_id"],
        "version": row["version"], "time": _iso(row["origin_at"]),
        "latitude": row["latitude"], "longitude": row["longitude"],
        "depth_km": row["depth_km"], "magnitude": row["magnitude"],
        "mag_type": row["mag_type"], "status": row["status"],
        "event_type": row["event_type"], "updated": _iso(row["updated_at"]),
    } for row in _rows(conn, "SELECT * FROM reports WHERE event_id = %s ORDER BY id",
                       (event_id,))]


def count_reports(conn: psycopg.Connection[Any]) -> int:
    return int(_tuples(conn, "SELECT count(*) FROM reports")[0][0])


def count_events(conn: psycopg.Connection[Any]) -> int:
    return int(_tuples(conn, "SELECT count(*) FROM events")[0][0])


# -- source health ----------------------------------------------------------------------------


def save_health(conn: psycopg.Connection[Any], h: dict[str, Any]) -> None:
    """Upsert one source's health record (a dict with the source_health columns)."""
    cols = list(h)
    unknown = set(cols) - _HEALTH_COLUMNS
    if unknown or "name" not in h:
        raise ValueError(f"not source_health columns: {sorted(unknown) or ['name missing']}")
    updates = [c for c in cols if c != "name"]
    query = sql.SQL("INSERT INTO source_health ({}) VALUES ({}) ON CONFLICT (name) DO {}").format(
        sql.SQL(", ").join(map(sql.Identifier, cols)),
        sql.SQL(", ").join(sql.Placeholder() * len(cols)),
        sql.SQL("UPDATE SET ") + sql.SQL(", ").join(
            sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in updates)
        if updates else sql.SQL("NOTHING"))
    conn.execute(query, [h[c] for c in cols])


def load_health(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """Every source's health record by name."""
    return {row["name"]: row for row in _rows(conn, "SELECT * FROM source_health")}



def sources(conn: psycopg.Connection[Any]) -> list[str]:
    """Distinct sources with a current report."""
    return [r[0] for r in _tuples(conn, "SELECT DISTINCT source FROM report_current"
                                        " ORDER BY source")]
