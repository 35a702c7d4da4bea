"""Copy an SQLite store into PostgreSQL: every table in migration order, in batches, idempotently.

The source is read in one read transaction (a consistent snapshot, even if a daemon is still
writing to it in WAL mode) and never written. Each batch goes through COPY into a temporary table
and then ``INSERT ... ON CONFLICT DO NOTHING``, in its own transaction: a copy that stops half way
can be run again and carries on, and a finished one run again adds nothing. At the end the
identity sequences are moved past the copied ids and the row counts of both sides are compared.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from quakealert.store import sqlite as sqlite_store
from quakealert.store.postgres import db

log = logging.getLogger(__name__)

DEFAULT_BATCH = 5000
_CREATE = re.compile(r"^\s*CREATE TABLE (\w+)", re.MULTILINE | re.IGNORECASE)


class CopyError(Exception):
    """The copy cannot start (source missing or newer than this version) or did not verify."""


@dataclass(frozen=True, slots=True)
class TableCopy:
    """One table's outcome: rows in the source, rows now in the target, rows this run added."""

    table: str
    source_rows: int
    target_rows: int
    added: int

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows


def tables_in_migration_order() -> list[str]:
    """Tables in the order the PostgreSQL migrations create them (parents before children)."""
    out: list[str] = []
    for _, _, sql in db.migrations():
        out += [m.group(1) for m in _CREATE.finditer(sql)]
    return out


def open_source(path: Path) -> sqlite3.Connection:
    """The SQLite store, read-only; refuses a missing file or a schema newer than this code's."""
    if not path.is_file():
        raise CopyError(f"no SQLite store at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    latest = sqlite_store.migrations()[-1][0]
    if version > latest:
        conn.close()
        raise CopyError(f"{path} has schema version {version}, newer than this quakealert"
                        f" ({latest}): copy with the version that wrote it")
    return conn


def copy_store(
    src: sqlite3.Connection,
    dst: psycopg.Connection[Any],
    *,
    batch: int = DEFAULT_BATCH,
    progress: Callable[[str, int], None] | None = None,
) -> list[TableCopy]:
    """Copy every table of ``src`` into ``dst`` (migrated first); returns one result per table.

    ``progress(table, rows_so_far)`` is called after each batch.
    """
    src_tables = {r[0] for r in src.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    unknown = sorted(src_tables - set(tables_in_migration_order()))
    if unknown:  # never report success for a copy that left tables behind
        raise CopyError(f"the source has tables with no PostgreSQL migration: {', '.join(unknown)}")
    db.migrate(dst)
    results = []
    src.execute("BEGIN")  # one snapshot for every table
    try:
        for table in tables_in_migration_order():
            if table not in src_tables:  # an older source: the table stays empty
                results.append(TableCopy(table, 0, _count(dst, table), 0))
                continue
            results.append(_copy_table(src, dst, table, batch, progress))
    finally:
        src.execute("COMMIT")
    return results


def _columns(src: sqlite3.Connection, dst: psycopg.Connection[Any], table: str) -> list[str]:
    target = {r[0] for r in dst.cursor(row_factory=tuple_row).execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
        " AND table_name = %s", (table,))}
    return [r[1] for r in src.execute(f'PRAGMA table_info("{table}")') if r[1] in target]


def _count(dst: psycopg.Connection[Any], table: str) -> int:
    row = dst.cursor(row_factory=tuple_row).execute(f'SELECT count(*) FROM "{table}"').fetchone()
    return int(str(row[0])) if row else 0


def _copy_table(src: sqlite3.Connection, dst: psycopg.Connection[Any],
                table: str, batch: int,
                progress: Callable[[str, int], None] | None) -> TableCopy:
    cols = _columns(src, dst, table)
    col_list = ", ".join(f'"{c}"' for c in cols)
    pk = [r[1] for r in sorted(src.execute(f'PRAGMA table_info("{table}")'), key=lambda r: r[5])
          if r[5]]
    order = ", ".join(f'"{c}"' for c in pk) or "rowid"
    cur = src.execute(f'SELECT {col_list} FROM "{table}" ORDER BY {order}')
    done = added = 0
    while rows := cur.fetchmany(batch):
        with dst.transaction():
            dst.execute(f'CREATE TEMP TABLE copy_stage (LIKE "{table}") ON COMMIT DROP')
            with dst.cursor().copy(f"COPY copy_stage ({col_list}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            inserted = dst.execute(
                f'INSERT INTO "{table}" ({col_list}) SELECT {col_list} FROM copy_stage'
                " ON CONFLICT DO NOTHING")
            added += max(inserted.rowcount, 0)
        done += len(rows)
        if progress:
            progress(table, done)
    _advance_identity(dst, table)
    source_rows = int(src.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
    return TableCopy(table, source_rows, _count(dst, table), added)


def _advance_identity(dst: psycopg.Connection[Any], table: str) -> None:
    """Move an identity column's sequence past the copied ids, so new rows do not collide."""
    for (column,) in dst.cursor(row_factory=tuple_row).execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name = %s AND is_identity = 'YES'", (table,)).fetchall():
        dst.execute(
            f'SELECT setval(pg_get_serial_sequence(%s, %s), coalesce(max("{column}"), 0) + 1,'
            f' false) FROM "{table}"', (table, column))
