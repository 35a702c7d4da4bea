"""SQLite store (WAL): reports with their full history, events derived by association.

Sync on purpose: every call is a few index lookups on a local file, faster than a thread hop;
large batches go through ``asyncio.to_thread`` in the poller. Migrations are the numbered
``schema/NNN_*.sql`` files, each applied once in its own transaction (PRAGMA user_version).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import os
import re
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

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
from quakealert.errors import NotFound, StoreCorrupt
from quakealert.model import Contributor, Event, Report
from quakealert.store import (
    approvals,
    auth,
    decisions,
    notices,
    outbox,
    sequences,
    subscribers,
    views,
    work,
)
from quakealert.store.base import GROUPS, IngestResult, StoreBusy, bind
from quakealert.store.instants import epoch_or_none as ts
from quakealert.store.instants import iso_epoch as _iso

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_PRIORITIES = Priorities()
DEFAULT_ASSOCIATION = AssociationParams()
_MIGRATION = re.compile(r"^(\d{3})_[\w-]+\.sql$")
_NO_MATCH = Match(None)
_IN_CHUNK = 30_000  # ids per IN (...) query: under SQLite's 32,766 host parameters
_BUCKET_S = 16.0  # association time window (§6.1): one bucket per window






def migrations() -> list[tuple[int, str, str]]:
    """Every schema file, in order: (version, name, sql)."""
    found = []
    for entry in resources.files("quakealert.store").joinpath("schema").iterdir():
        m = _MIGRATION.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


_REPORT_FIELDS = (
    "origin_at", "latitude", "longitude", "depth_km", "magnitude", "mag_type", "status",
    "updated_at", "place", "agency", "event_type",
)


def _report_row_tuple(r: Report) -> tuple[Any, ...]:
    return (
        r.origin_at.timestamp(), r.latitude, r.longitude, r.depth_km, r.magnitude, r.mag_type,
        r.status, ts(r.updated_at), r.place, r.agency, r.event_type,
    )


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(a, b, rel_tol=0.0, abs_tol=1e-6)


PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


def _create_private(path: Path) -> None:
    """The database's directory (0700) and file (0600), created private before SQLite opens
    it (SQLite would create 0644; its -wal and -shm files copy the database's mode). An
    existing database readable by others is narrowed to its owner."""
    if not path.parent.exists():
        path.parent.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, PRIVATE_FILE)
    except FileExistsError:
        for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            try:
                mode = name.stat().st_mode
                if mode & 0o077:
                    name.chmod(mode & 0o700)
                    log.info("store: %s was readable by others; now owner-only", name)
            except (FileNotFoundError, PermissionError):
                continue
    else:
        os.close(fd)


def _corrupt_message(path: Path | str, detail: str) -> str:
    return (f"the store {path} is damaged ({detail}); quakealert will not start on it: "
            "restore it from a backup, or move it aside to start with an empty store")


def _quick_check(conn: sqlite3.Connection, path: Path | str) -> None:
    """StoreCorrupt unless SQLite's quick_check says ok."""
    rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
    if rows != ["ok"]:
        raise StoreCorrupt(_corrupt_message(path, "; ".join(rows)[:300]))


# The store modules behind each group of the interface (store/base.py).
MODULES = {"notices": notices, "outbox": outbox, "approvals": approvals,
           "subscribers": subscribers, "sequences": sequences, "decisions": decisions,
           "auth": auth, "work": work, "views": views}


def _configure(conn: sqlite3.Connection, *, busy_wait_s: float = 5.0) -> None:
    """Per-connection settings (WAL itself is a property of the database file)."""
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(f"PRAGMA busy_timeout={int(busy_wait_s * 1000):d}")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: bulk ingests stay in memory


def _is_busy(err: sqlite3.OperationalError) -> bool:
    return "locked" in str(err) or "busy" in str(err)


class Store:
    """The SQLite database: open with :meth:`open`, close with :meth:`close`.

    Implements store/base.py's Store: the groups are the store modules bound to ``conn``.
    """

    failures: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self, conn: sqlite3.Connection, path: Path | str):
        self.conn = conn
        self.path = path
        for name in GROUPS:
            setattr(self, name, bind(GROUPS[name], MODULES[name], conn))

    # -- unit of work and connections of their own ---------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Store]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error); inside a transaction already open
        (a work item's, durable processing), part of that one."""
        conn = self.conn
        if conn.in_transaction:
            yield self
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextmanager
    def apart(self, *, busy_wait_s: float = 5.0, read_only: bool = False) -> Iterator[Store]:
        """The same database on a connection of its own (a store of this same class), closed
        after; an in-memory database has only the one connection, so this store itself."""
        if str(self.path) == ":memory:":
            yield self
            return
        if read_only:
            conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=busy_wait_s,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
        else:
            conn = sqlite3.connect(str(self.path), isolation_level=None, timeout=busy_wait_s,
                                   check_same_thread=False)
        try:
            if not read_only:
                _configure(conn, busy_wait_s=busy_wait_s)
            yield type(self)(conn, self.path)
        finally:
            conn.close()

    async def off_loop(self, work: Callable[[Store], T], *, busy_wait_s: float = 5.0,
                       read_only: bool = False) -> T:
        """``work(store)`` in a worker thread on a connection of its own (inline for
        ":memory:"); a write lock held past ``busy_wait_s`` raises StoreBusy."""

        def run() -> T:
            with self.apart(busy_wait_s=busy_wait_s, read_only=read_only) as store:
                return work(store)

        try:
            if str(self.path) == ":memory:":
                return run()
            return await asyncio.to_thread(run)
        except sqlite3.OperationalError as err:
            if _is_busy(err):
                raise StoreBusy(f"the store is busy: {err}") from err
            raise

    def write_lock_free(self, wait_s: float) -> bool:
        """Whether a writer would get the write lock within ``wait_s`` (see write_lock_free)."""
        return str(self.path) == ":memory:" or write_lock_free(self.path, wait_s)

    def version(self) -> tuple[int, int] | None:
        """Counters that change on any write (ours or another process's); None mid-transaction."""
        if self.conn.in_transaction:
            return None
        return (self.conn.total_changes,
                self.conn.execute("PRAGMA data_version").fetchone()[0])

    @classmethod
    def open(cls, path: Path | str, *, verify: bool = False) -> Store:
        """Open (creating if needed) and migrate the database at ``path`` (":memory:" for tests).

        A new database is created 0600 in a directory created 0700 (it holds webhook secrets
        and push keys). ``verify`` runs SQLite's quick_check first (the daemon does, at start);
        a damaged file or one that is not a database raises StoreCorrupt either way.
        """
        if str(path) != ":memory:":
            _create_private(Path(path))
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            _configure(conn)
            if verify:
                _quick_check(conn, path)
            store = cls(conn, path)
            store.migrate()
        except sqlite3.DatabaseError as err:
            conn.close()
            if getattr(err, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
                raise StoreCorrupt(_corrupt_message(path, str(err))) from err
            raise
        except BaseException:
            conn.close()
            raise
        return store

    def close(self) -> None:
        self.conn.close()

    def migrate(self) -> int:
        """Apply pending schema files; returns the schema version."""
        current = self.conn.execute("PRAGMA user_version").fetchone()[0]
        for version, name, sql in migrations():
            if version <= current:
                continue
            log.info("applying migration %s", name)
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(sql):
                    self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {version:d}")
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            current = version
        return current

    # -- ingest ---------------------------------------------------------------------------

    def ingest(
        self,
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
        conn = self.conn
        # A batch creates hundreds of thousands of small acyclic objects; the cyclic collector
        # scanning them again and again doubled the time of a 100k batch (bench_ingest).
        gc_was_enabled = gc.isenabled()
        gc.disable()
        conn.execute("BEGIN IMMEDIATE")
        try:
            self._ingest(reports, now_s, priorities, params, result)
            if queue_work:
                record_work(conn, result, now_s)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        finally:
            if gc_was_enabled:
                gc.enable()
        return result

    def _ingest(
        self,
        reports: Sequence[Report],
        now_s: float,
        priorities: Priorities,
        params: AssociationParams,
        result: IngestResult,
    ) -> None:
        conn = self.conn
        # Later versions of one report in the same batch win; order by updated time if given.
        latest: dict[tuple[str, str], Report] = {}
        for r in reports:
            prev = latest.get(r.key)
            if prev is None or (r.updated_at or r.origin_at) >= (prev.updated_at or prev.origin_at):
                latest[r.key] = r
        batch = sorted(latest.values(), key=lambda r: (r.origin_at, r.source, r.source_id))

        current = self._current_rows(batch)
        buckets: dict[int, dict[str, Candidate]] = defaultdict(dict)
        bucket_of: dict[str, int] = {}
        # id keys (core.associate.id_keys): per report, per event, and key -> events
        report_keys = {r.key: id_keys(r) for r in batch}
        event_keys: dict[str, frozenset[str]] = {}
        by_key: dict[str, set[str]] = defaultdict(set)
        id_rows: list[tuple[str, str]] = []
        if any(r.key not in current for r in batch):  # only new reports need candidates
            t0 = batch[0].origin_at.timestamp() - params.max_dt_s
            t1 = batch[-1].origin_at.timestamp() + params.max_dt_s
            for cand in self._candidates(t0, t1):
                key = int(cand.origin_at.timestamp() // _BUCKET_S)
                buckets[key][cand.event_id] = cand
                bucket_of[cand.event_id] = key
                event_keys[cand.event_id] = cand.ids
            wanted = {k for r in batch if r.key not in current for k in report_keys[r.key]}
            for id_key, event_id in self._events_by_key(wanted):
                by_key[id_key].add(event_id)

        # In-memory view of every event this batch touches; written once at the end.
        contribs: dict[str, dict[tuple[str, str], Contributor | Report]] = {}
        meta: dict[str, dict[str, Any]] = {}  # created_at, review flags, place per event
        touched: dict[str, str] = {}  # event id -> "created" | "revised" | "deleted"
        new_flags: dict[str, list[str]] = defaultdict(list)
        report_rows: list[tuple[Any, ...]] = []
        current_rows: list[tuple[Any, ...]] = []
        retired: list[tuple[str, str]] = []
        next_id = int(conn.execute("SELECT coalesce(max(id), 0) FROM reports").fetchone()[0]) + 1

        def load(event_id: str) -> None:
            if event_id in contribs:
                return
            contribs[event_id] = {(c.source, c.source_id): c
                                  for c in self._contributors([event_id])[event_id]}
            row = conn.execute("SELECT review_flags, created_at, place FROM events WHERE id = ?",
                               (event_id,)).fetchone()
            if event_id not in event_keys:
                event_keys[event_id] = frozenset(k for (k,) in conn.execute(
                    "SELECT id_key FROM event_ids WHERE event_id = ?", (event_id,)))
            meta[event_id] = {
                "created_at": row["created_at"] if row else now_s,
                "flags": list(json.loads(row["review_flags"])) if row else [],
                "place": row["place"] if row else None,
            }

        for r in batch:
            r_ts = r.origin_at.timestamp()
            prev = current.get((r.source, r.source_id))
            if prev is None and r.other_ids:
                prev = self._current_by_alias(r)
            if prev is not None:
                if self._unchanged(prev, r):
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
                    # USGS changed its preferred id: retire the old key, keep the event.
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
                if keys:  # events sharing an id are candidates wherever they are (§6.1)
                    near = {c.event_id for c in cands}
                    for eid in {e for k in keys for e in by_key.get(k, ())} - near:
                        cand = (buckets[bucket_of[eid]].get(eid) if eid in bucket_of
                                else self._candidate(eid))
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
            report_id = next_id
            next_id += 1
            row = _report_row_tuple(r)
            report_rows.append((report_id, r.source, r.source_id, version, now_s, *row,
                                ",".join(r.other_ids), event_id, change, detail))
            current_rows.append((r.source, r.source_id, report_id, event_id))
            r_keys = report_keys[r.key]
            ev_keys = event_keys.get(event_id, frozenset())
            if not r_keys <= ev_keys:
                for k in r_keys - ev_keys:
                    by_key[k].add(event_id)
                    id_rows.append((k, event_id))
                ev_keys = ev_keys | r_keys
                event_keys[event_id] = ev_keys
            members = contribs[event_id]
            members[(r.source, r.source_id)] = r  # a Report has every Contributor field we read
            if r.place and (meta[event_id]["place"] is None or r.source == "cenc"):
                meta[event_id]["place"] = r.place
            if len(members) == 1:  # the common case: no merge needed
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

        conn.executemany("DELETE FROM report_current WHERE source = ? AND source_id = ?", retired)
        conn.executemany("INSERT OR IGNORE INTO event_ids (id_key, event_id) VALUES (?, ?)",
                         id_rows)
        conn.executemany(
            "INSERT INTO reports (id, source, source_id, version, received_at, origin_at, latitude,"
            " longitude, depth_km, magnitude, mag_type, status, updated_at, place, agency,"
            " event_type, other_ids, event_id, change, detail)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            report_rows,
        )
        conn.executemany(
            "INSERT INTO report_current (source, source_id, report_id, event_id) VALUES (?,?,?,?)"
            " ON CONFLICT (source, source_id) DO UPDATE SET report_id = excluded.report_id,"
            " event_id = excluded.event_id",
            current_rows,
        )
        event_rows = []
        for event_id in touched:
            m = meta[event_id]
            members = list(contribs[event_id].values())
            if len(members) == 1:
                e: Contributor | Report = members[0]
                status = e.status
            else:
                e = preferred(members, priorities)
                status = "deleted" if all(c.status == "deleted" for c in members) else e.status
            event_rows.append((
                event_id, e.origin_at.timestamp(), e.latitude, e.longitude, e.depth_km,
                e.magnitude, e.mag_type, status, e.source, m["place"],
                json.dumps(m["flags"], ensure_ascii=False) if m["flags"] else "[]",
                m["created_at"], now_s,
                e.event_type if len(members) == 1 else event_type_of(e, members)))
        conn.executemany(
            "INSERT INTO events (id, origin_at, latitude, longitude, depth_km, magnitude, mag_type,"
            " status, preferred_source, place, review_flags, created_at, changed_at, event_type)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT (id) DO UPDATE SET"
            " event_type=excluded.event_type,"
            " origin_at=excluded.origin_at, latitude=excluded.latitude,"
            " longitude=excluded.longitude, depth_km=excluded.depth_km,"
            " magnitude=excluded.magnitude, mag_type=excluded.mag_type, status=excluded.status,"
            " preferred_source=excluded.preferred_source, place=excluded.place,"
            " review_flags=excluded.review_flags, changed_at=excluded.changed_at",
            event_rows,
        )
        for event_id, what in touched.items():
            getattr(result, what).append(event_id)
            if event_id in new_flags:
                result.flags[event_id] = tuple(new_flags[event_id])

    def _current_rows(self, batch: Sequence[Report]) -> dict[tuple[str, str], dict[str, Any]]:
        """The stored current version of every report in the batch that we already have."""
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        by_source: dict[str, list[str]] = defaultdict(list)
        for r in batch:
            by_source[r.source].append(r.source_id)
        for source, ids in by_source.items():
            for i in range(0, len(ids), _IN_CHUNK):
                chunk = ids[i : i + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                for row in self.conn.execute(
                    "SELECT r.*, c.event_id AS event_id FROM report_current c"
                    " JOIN reports r ON r.id = c.report_id"
                    f" WHERE c.source = ? AND c.source_id IN ({marks})", [source, *chunk]
                ):
                    rows[(source, row["source_id"])] = dict(row)
        return rows

    def _current_by_alias(self, r: Report) -> dict[str, Any] | None:
        """A report filed under another id of the same quake by the same source (USGS `ids`)."""
        for alias in r.other_ids:
            if alias == r.source_id:
                continue
            row = self.conn.execute(
                "SELECT r.*, c.event_id AS event_id FROM report_current c"
                " JOIN reports r ON r.id = c.report_id WHERE c.source = ? AND c.source_id = ?",
                (r.source, alias),
            ).fetchone()
            if row is not None:
                return dict(row)
        return None

    @staticmethod
    def _unchanged(prev: dict[str, Any], r: Report) -> bool:
        if prev["source_id"] != r.source_id:
            return False
        for k, v in zip(_REPORT_FIELDS, _report_row_tuple(r)):
            old = prev[k]
            if isinstance(v, float) or isinstance(old, float):
                if not _same(old, v):
                    return False
            elif old != v:
                return False
        return True

    _CANDIDATE_SQL = (
        "SELECT e.id, e.origin_at, e.latitude, e.longitude, e.depth_km, e.magnitude,"
        " e.mag_type, group_concat(c.source) AS sources,"
        " (SELECT group_concat(i.id_key, ' ') FROM event_ids i WHERE i.event_id = e.id) AS ids"
        " FROM events e JOIN report_current c ON c.event_id = e.id"
    )

    def _candidates(self, t0: float, t1: float) -> Iterable[Candidate]:
        rows = self.conn.execute(
            self._CANDIDATE_SQL + " WHERE e.origin_at BETWEEN ? AND ? GROUP BY e.id", (t0, t1))
        for row in rows:
            yield _candidate_of(row)

    def _candidate(self, event_id: str) -> Candidate | None:
        """One stored event as a candidate (an id match outside the time window)."""
        row = self.conn.execute(self._CANDIDATE_SQL + " WHERE e.id = ? GROUP BY e.id",
                                (event_id,)).fetchone()
        return None if row is None else _candidate_of(row)

    def _events_by_key(self, keys: Iterable[str]) -> Iterable[tuple[str, str]]:
        """(id_key, event_id) of stored events holding any of ``keys``."""
        wanted = list(keys)
        for i in range(0, len(wanted), _IN_CHUNK):
            chunk = wanted[i : i + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            yield from self.conn.execute(
                f"SELECT id_key, event_id FROM event_ids WHERE id_key IN ({marks})", chunk)

    def _contributors(self, event_ids: Sequence[str]) -> dict[str, list[Contributor]]:
        out: dict[str, list[Contributor]] = {eid: [] for eid in event_ids}
        cur = self.conn.cursor()
        cur.row_factory = None  # plain tuples: name lookups cost more than the query here
        for i in range(0, len(event_ids), _IN_CHUNK):
            chunk = list(event_ids[i : i + _IN_CHUNK])
            marks = ",".join("?" * len(chunk))
            for (eid, source, source_id, origin_at, lat, lon, depth, mag, mag_type, status,
                 updated_at, event_type) in cur.execute(
                "SELECT c.event_id, r.source, r.source_id, r.origin_at, r.latitude, r.longitude,"
                " r.depth_km, r.magnitude, r.mag_type, r.status, r.updated_at, r.event_type"
                " FROM report_current c JOIN reports r ON r.id = c.report_id"
                f" WHERE c.event_id IN ({marks}) ORDER BY r.source, r.source_id", chunk
            ):
                out[eid].append(Contributor(
                    source, source_id, datetime.fromtimestamp(origin_at, UTC), lat, lon, depth,
                    mag, mag_type, status, None if updated_at is None
                    else datetime.fromtimestamp(updated_at, UTC), event_type))
        return out

    # -- queries --------------------------------------------------------------------------

    def events(
        self,
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
        if starttime is not None:
            where.append("e.origin_at >= ?")
            args.append(starttime.timestamp())
        if endtime is not None:
            where.append("e.origin_at <= ?")
            args.append(endtime.timestamp())
        if minmagnitude is not None:
            where.append("e.magnitude >= ?")
            args.append(minmagnitude)
        if maxmagnitude is not None:
            where.append("e.magnitude <= ?")
            args.append(maxmagnitude)
        if mindepth_km is not None:
            where.append("e.depth_km >= ?")
            args.append(mindepth_km)
        if maxdepth_km is not None:
            where.append("e.depth_km <= ?")
            args.append(maxdepth_km)
        if box is not None:
            la0, la1, lo0, lo1 = box
            where.append("e.latitude BETWEEN ? AND ?")
            args += [la0, la1]
            if lo0 <= lo1:
                where.append("e.longitude BETWEEN ? AND ?")
                args += [lo0, lo1]
            else:  # crosses the antimeridian
                where.append("(e.longitude >= ? OR e.longitude <= ?)")
                args += [lo0, lo1]
        if status is not None:
            where.append("e.status = ?")
            args.append(status)
        elif not include_deleted:
            where.append("e.status != 'deleted'")
        if event_types:
            # GLOB: the fdsnws wildcards * and ?; no type from any feed counts as earthquake
            where.append("(" + " OR ".join(
                "coalesce(e.event_type, 'earthquake') GLOB ?" for _ in event_types) + ")")
            args += list(event_types)
        if source is not None:
            where.append("EXISTS (SELECT 1 FROM report_current c WHERE c.event_id = e.id"
                         " AND c.source = ?)")
            args.append(source)
        if changed_after is not None:
            where.append("e.changed_at > ?")
            args.append(changed_after.timestamp())
        circle = latitude is not None and longitude is not None and (
            maxradius_km is not None or minradius_km is not None)
        if circle and maxradius_km is not None:
            # Prefilter with a bounding box; the exact great-circle test follows in Python.
            dlat = maxradius_km / 111.0
            coslat = max(math.cos(math.radians(latitude)), 1e-6)
            where.append("e.latitude BETWEEN ? AND ?")
            args += [latitude - dlat, latitude + dlat]
            dlon = maxradius_km / (111.0 * coslat)
            if dlon < 180:
                lo0, lo1 = longitude - dlon, longitude + dlon
                if lo0 < -180 or lo1 > 180:
                    where.append("(e.longitude >= ? OR e.longitude <= ?)")
                    args += [(lo0 + 540) % 360 - 180, (lo1 + 540) % 360 - 180]
                else:
                    where.append("e.longitude BETWEEN ? AND ?")
                    args += [lo0, lo1]
        desc = order in ("time", "time-desc")
        if after is not None:
            op = "<" if desc else ">"
            where.append(f"(e.origin_at, e.id) {op} (?, ?)")
            args += [after[0], after[1]]
        order_sql = {
            "time": "e.origin_at DESC, e.id DESC",
            "time-asc": "e.origin_at ASC, e.id ASC",
            "magnitude": "e.magnitude DESC, e.origin_at DESC, e.id DESC",
            "magnitude-asc": "e.magnitude ASC, e.origin_at ASC, e.id ASC",
        }.get(order, "e.origin_at DESC, e.id DESC")
        sql = "SELECT e.* FROM events e"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY {order_sql}"
        if limit is not None and not circle:
            sql += f" LIMIT {int(limit):d}"
        rows = self.conn.execute(sql, args).fetchall()
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
        return self._events_from_rows(rows)

    def _events_from_rows(self, rows: Sequence[sqlite3.Row]) -> list[Event]:
        contributors = self._contributors([r["id"] for r in rows])
        return [
            Event(
                id=row["id"], origin_at=datetime.fromtimestamp(row["origin_at"], UTC),
                latitude=row["latitude"], longitude=row["longitude"], depth_km=row["depth_km"],
                magnitude=row["magnitude"], mag_type=row["mag_type"], status=row["status"],
                preferred_source=row["preferred_source"],
                contributors=tuple(contributors[row["id"]]), place=row["place"],
                review_flags=() if row["review_flags"] == "[]"
                else tuple(json.loads(row["review_flags"])),
                updated_at=datetime.fromtimestamp(row["changed_at"], UTC),
                event_type=row["event_type"],
            )
            for row in rows
        ]

    def event(self, event_id: str) -> Event:
        """One event by id; raises NotFound."""
        rows = self.conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchall()
        if not rows:
            raise NotFound(f"no event {event_id!r}")
        return self._events_from_rows(rows)[0]

    def event_history(self, event_id: str) -> list[dict[str, Any]]:
        """Every report version and change of one event, oldest first; raises NotFound."""
        self.event(event_id)
        out = []
        for row in self.conn.execute(
            "SELECT received_at AS at, * FROM reports WHERE event_id = ? ORDER BY id",
            (event_id,),
        ):
            out.append({
                "at": _iso(row["at"]), "change": row["change"], "detail": row["detail"],
                "source": row["source"], "source_id": row["source_id"],
                "version": row["version"], "time": _iso(row["origin_at"]),
                "latitude": row["latitude"], "longitude": row["longitude"],
                "depth_km": row["depth_km"], "magnitude": row["magnitude"],
                "mag_type": row["mag_type"], "status": row["status"],
                "event_type": row["event_type"], "updated": _iso(row["updated_at"]),
            })
        return out

    def count_reports(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM reports").fetchone()[0])

    def count_events(self) -> int:
        return int(self.conn.execute("SELECT count(*) FROM events").fetchone()[0])

    def sources(self) -> list[str]:
        """Distinct sources with a current report."""
        return [r[0] for r in self.conn.execute(
            "SELECT DISTINCT source FROM report_current ORDER BY source")]

    # -- source health ----------------------------------------------------------------------

    def save_health(self, h: dict[str, Any]) -> None:
        """Upsert one source's health record (a dict with the source_health columns)."""
        cols = list(h)
        self.conn.execute(
            f"INSERT INTO source_health ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            " ON CONFLICT (name) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in cols if c != "name"),
            [h[c] for c in cols],
        )

    def load_health(self) -> dict[str, dict[str, Any]]:
        return {row["name"]: dict(row) for row in self.conn.execute("SELECT * FROM source_health")}




def _candidate_of(row: sqlite3.Row) -> Candidate:
    return Candidate(row["id"], datetime.fromtimestamp(row["origin_at"], UTC), row["latitude"],
                     row["longitude"], row["depth_km"], row["magnitude"], row["mag_type"],
                     frozenset(row["sources"].split(",")),
                     frozenset(row["ids"].split(" ")) if row["ids"] else frozenset())


def record_work(conn: sqlite3.Connection, result: IngestResult, now_s: float) -> None:
    """Queue the pipeline work a batch creates, in the batch's transaction (durable processing).

    An event still queued keeps "new" (it was never processed) unless it is now deleted.
    """
    rows = [(trigger, now_s, eid) for trigger, ids in (
        ("new", result.created), ("revised", result.revised), ("deleted", result.deleted))
        for eid in ids]
    conn.executemany(
        "INSERT INTO work (event_id, trigger, origin_at, received_at)"
        " SELECT id, ?, origin_at, ? FROM events WHERE id = ? ON CONFLICT (event_id) DO UPDATE"
        " SET trigger = CASE WHEN excluded.trigger = 'deleted' THEN 'deleted'"
        " WHEN work.trigger = 'new' THEN 'new' ELSE excluded.trigger END,"
        " origin_at = excluded.origin_at, received_at = excluded.received_at, priority = NULL",
        rows)


def _diff(prev: dict[str, Any], r: Report) -> str:
    new = dict(zip(_REPORT_FIELDS, _report_row_tuple(r)))
    parts = []
    for k in ("status", "event_type", "magnitude", "mag_type", "latitude", "longitude", "depth_km",
              "origin_at"):
        a, b = prev.get(k), new[k]
        if (isinstance(a, float) or isinstance(b, float)) and _same(a, b):
            continue
        if a != b:
            if k == "origin_at":
                parts.append(f"time {_iso(a)} -> {_iso(b)}")
            else:
                parts.append(f"{k} {a} -> {b}")
    return ", ".join(parts) or "metadata"


def _split_sql(sql: str) -> list[str]:
    """Split a schema file into statements (no semicolons inside our literals or triggers)."""
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def write_lock_free(path: Path | str, wait_s: float) -> bool:
    """Whether a writer gets the database's write lock within ``wait_s`` (taken and released at
    once, nothing written): False while another connection or process holds it that long."""
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=wait_s)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as err:
        if "locked" in str(err) or "busy" in str(err):
            return False
        raise
    finally:
        conn.close()
