"""SQLite and PostgreSQL migrations: one numbered list, the same tables and columns."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from quakealert.store import sqlite as sqlite_store
from quakealert.store.postgres import db as pg_db
from quakealert.store.sqlite import Store

# SQLite declared type -> the PostgreSQL types it may become (schema/postgres/README.md).
_TYPES = {
    "INTEGER": {"bigint", "boolean"},
    "REAL": {"double precision"},
    "TEXT": {"text"},
    "BLOB": {"bytea"},
}


def test_both_backends_have_the_same_numbered_list():
    """Every migration number and name exists on both sides (add the PostgreSQL twin of a new
    SQLite file in store/schema/postgres/)."""
    sqlite_names = [name for _, name, _ in sqlite_store.migrations()]
    pg_names = [name for _, name, _ in pg_db.migrations()]
    assert sqlite_names, "no SQLite migrations found"
    missing = sorted(set(sqlite_names) - set(pg_names))
    assert not missing, (f"no PostgreSQL twin for {missing}: add store/schema/postgres/<same name>"
                         " (translation rules: store/schema/postgres/README.md)")
    assert pg_names == sqlite_names


def _sqlite_schema(path) -> dict[str, dict]:
    Store.open(path).close()
    conn = sqlite3.connect(path)
    out = {}
    tables = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    for t in tables:
        cols = conn.execute(f"PRAGMA table_info({t})").fetchall()
        out[t] = {
            "columns": [(c[1], c[2].upper(), bool(c[3]) or bool(c[5])) for c in cols],
            "pk": [c[1] for c in sorted(cols, key=lambda c: c[5]) if c[5]],
            "indexes": {r[1] for r in conn.execute(f"PRAGMA index_list({t})")
                        if not r[1].startswith("sqlite_autoindex")},
            "unique": sorted(
                tuple(c[2] for c in conn.execute(f"PRAGMA index_info({r[1]})"))
                for r in conn.execute(f"PRAGMA index_list({t})")
                if r[3] == "u"),
        }
    conn.close()
    return out


def _pg_schema(url: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
            " AND table_name <> 'schema_migrations'")]
        for t in tables:
            cols = conn.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
                " WHERE table_schema = 'public' AND table_name = %s ORDER BY ordinal_position",
                (t,)).fetchall()
            pk = [r[0] for r in conn.execute(
                "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid"
                " AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary"
                " ORDER BY array_position(i.indkey, a.attnum)", (t,))]
            idx = conn.execute(
                "SELECT c.relname, i.indisunique, i.indisprimary, array(SELECT a.attname"
                " FROM unnest(i.indkey) WITH ORDINALITY k(n, o) JOIN pg_attribute a"
                " ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o)"
                " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " WHERE i.indrelid = %s::regclass", (t,)).fetchall()
            out[t] = {
                "columns": [(c[0], c[1], c[2] == "NO") for c in cols],
                "pk": pk,
                # constraint-backed indexes are named <table>_..._key/_pkey: compare columns only
                "indexes": {r[0] for r in idx if not r[1]},
                "unique": sorted(tuple(r[3]) for r in idx if r[1] and not r[2]),
            }
    return out


def test_postgres_migrations_build_the_sqlite_schema(pg_empty_url, tmp_path):
    """Applied to an empty database, the PostgreSQL migrations give the same tables, columns
    (order, NOT NULL, translated type), primary keys, UNIQUE keys and index names as SQLite's."""
    with psycopg.connect(pg_empty_url, autocommit=True) as conn:
        version = pg_db.migrate(conn)
        assert version == sqlite_store.migrations()[-1][0]
        assert pg_db.migrate(conn) == version  # idempotent
        applied = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
        assert applied == [v for v, _, _ in pg_db.migrations()]
    lite = _sqlite_schema(str(tmp_path / "s.sqlite"))
    pg = _pg_schema(pg_empty_url)
    assert sorted(pg) == sorted(lite)
    for table, want in lite.items():
        got = pg[table]
        assert [c[0] for c in got["columns"]] == [c[0] for c in want["columns"]], table
        for (name, lite_type, lite_notnull), (_, pg_type, pg_notnull) in zip(
                want["columns"], got["columns"], strict=True):
            assert pg_type in _TYPES[lite_type], (table, name, lite_type, pg_type)
            assert pg_notnull == lite_notnull, (table, name)
        assert got["pk"] == want["pk"], table
        assert got["indexes"] == want["indexes"], table
        assert got["unique"] == want["unique"], table


def test_concurrent_migrations_apply_once(pg_empty_url):
    """Two instances migrating the same empty database at once both end at the latest version."""
    from concurrent.futures import ThreadPoolExecutor

    def run() -> int:
        with psycopg.connect(pg_empty_url, autocommit=True) as conn:
            return pg_db.migrate(conn)

    with ThreadPoolExecutor(2) as ex:
        versions = list(ex.map(lambda _: run(), range(2)))
    assert versions == [pg_db.migrations()[-1][0]] * 2


@pytest.mark.parametrize("url, shown", [
    ("postgresql://qa:s3cret@db:5432/qa", "postgresql://qa:***@db:5432/qa"),
    ("postgresql://qa@db/qa", "postgresql://qa@db/qa"),
])
def test_mask_hides_the_password(url, shown):
    """Logged URLs never show the password."""
    assert pg_db.mask(url) == shown
