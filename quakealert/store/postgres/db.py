"""The PostgreSQL store: a connection pool and the migrations from ``store/schema/postgres``.

Migrations are the same numbered list as SQLite's (``schema/NNN_name.sql``); each runs in one
transaction under an advisory transaction lock, so instances starting together migrate once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)

_MIGRATION = re.compile(r"^(\d{3})_[\w-]+\.sql$")
# pg_advisory_xact_lock key for migrations: any fixed 64-bit number unique within quakealert.
MIGRATION_LOCK = 0x71616B650001
# Where a libpq URL is shown (logs, errors), the password is not.
_PASSWORD = re.compile(r"(postgres(?:ql)?://[^:/@]*:)[^@]*@")


def mask(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    return _PASSWORD.sub(r"\1***@", url)


def migrations() -> list[tuple[int, str, str]]:
    """Every PostgreSQL schema file, in order: (version, name, sql)."""
    found = []
    folder = resources.files("quakealert.store").joinpath("schema", "postgres")
    for entry in folder.iterdir():
        m = _MIGRATION.match(entry.name)
        if m:
            found.append((int(m.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn: psycopg.Connection) -> int:
    """Apply pending schema files on ``conn``; returns the schema version."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                     " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())")
    current = 0
    for version, name, sql in migrations():
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            row = conn.execute("SELECT 1 FROM schema_migrations WHERE version = %s",
                               (version,)).fetchone()
            if row is None:
                log.info("applying migration %s", name)
                conn.execute(sql.encode())  # several statements: simple query protocol
                conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                             (version, name))
        current = version
    return current


class PgStore:
    """A pool of connections to one PostgreSQL database: open with :meth:`open`."""

    def __init__(self, pool: ConnectionPool, url: str):
        self.pool = pool
        self.url = url

    def __repr__(self) -> str:
        return f"PgStore({mask(self.url)!r})"

    @classmethod
    def open(cls, url: str, *, min_size: int = 1, max_size: int = 8,
             timeout_s: float = 30.0) -> PgStore:
        """Connect a pool to ``url`` and migrate the database."""
        pool = ConnectionPool(url, min_size=min_size, max_size=max_size, open=False,
                              kwargs={"row_factory": dict_row, "autocommit": True},
                              timeout=timeout_s, name="quakealert")
        pool.open(wait=True, timeout=timeout_s)
        store = cls(pool, url)
        try:
            with store.connection() as conn:
                migrate(conn)
        except BaseException:
            pool.close()
            raise
        return store

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled autocommit connection; use ``conn.transaction()`` for several statements."""
        with self.pool.connection() as conn:
            yield conn

    def close(self) -> None:
        self.pool.close()
