"""A throwaway PostgreSQL cluster for the tests in this folder: started once per session with
the Debian binaries (initdb into a temp dir, a free port on 127.0.0.1), a fresh database per
test, stopped and removed at the end. Without initdb the PostgreSQL tests skip and say so."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from store_backends import (
    play_maizhokunggar,
    played_postgres_copy,
    played_sqlite_copy,
    postgres_backend,
    sqlite_backend,
)

from quakealert.store.postgres import throwaway
from quakealert.store.postgres.db import PgStore, migrate

SKIP_REASON = "initdb not found: PostgreSQL tests not run (Debian: apt-get install postgresql)"
_TEMPLATE = "quakealert_template"
_names = itertools.count(1)
_skipped: list[str] = []


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[throwaway.Cluster]:
    """The session's cluster, with a migrated template database to copy per test."""
    if throwaway.find_bin("initdb") is None:
        _skipped.append(SKIP_REASON)
        pytest.skip(SKIP_REASON)
    cluster = throwaway.start(max_connections=200)
    try:
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {_TEMPLATE}")
        with psycopg.connect(cluster.url(_TEMPLATE), autocommit=True) as conn:
            migrate(conn)
        yield cluster
    finally:
        cluster.stop()


def _create(cluster: throwaway.Cluster, template: str) -> str:
    name = f"t{next(_names)}"
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {template}")
    return cluster.url(name)


@pytest.fixture
def pg_url(pg_cluster: throwaway.Cluster) -> str:
    """A fresh database with every migration applied."""
    return _create(pg_cluster, _TEMPLATE)


@pytest.fixture
def pg_empty_url(pg_cluster: throwaway.Cluster) -> str:
    """A fresh, empty database."""
    return _create(pg_cluster, "template0")


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[PgStore]:
    store = PgStore.open(pg_url, max_size=4)
    yield store
    store.close()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skipped:
        terminalreporter.write_line(SKIP_REASON, yellow=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_backend(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    """The store contract's subject: SQLite in a temporary file, or PostgreSQL in a fresh
    database of the throwaway cluster (see store_backends.py)."""
    if request.param == "sqlite":
        b = sqlite_backend(tmp_path / "contract.sqlite")
    else:
        b = postgres_backend(request.getfixturevalue("pg_url"))
    yield b
    b.close()


@pytest.fixture(scope="session")
def played_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store the real Maizhokunggar swarm was played into (store_backends.py)."""
    path = tmp_path_factory.mktemp("played") / "played.sqlite"
    play_maizhokunggar(path, residents=1300)
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def played_backend(request: pytest.FixtureRequest, tmp_path: Path, played_sqlite: Path):  # type: ignore[no-untyped-def]
    """A backend holding the played store's rows: a copy of the file, or `store copy` of it
    into a fresh PostgreSQL database."""
    if request.param == "sqlite":
        b = played_sqlite_copy(played_sqlite, tmp_path / "played.sqlite")
    else:
        b = played_postgres_copy(played_sqlite, request.getfixturevalue("pg_url"))
    yield b
    b.close()
