"""Persistence behind one interface (``store/base.py``): SQLite (WAL, the embedded default) with
numbered schema migrations, and PostgreSQL (``store/postgres/``) for several instances."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from quakealert.config import Settings
    from quakealert.store.base import Store


def open_store(settings: Settings, *, verify: bool = False) -> Store:
    """The store the settings name, opened and migrated: PostgreSQL at ``[store] url``, else
    SQLite at ``[store] path`` (``verify``: SQLite's quick_check; PostgreSQL checks itself)."""
    if settings.store_url is not None:
        from quakealert.store.postgres.backend import PgBackend

        return PgBackend.open(settings.store_url)
    from quakealert.store.sqlite import Store as SqliteStore

    return SqliteStore.open(settings.store_path, verify=verify)


def open_file(path: Path | str) -> Store:
    """A store in one local file (the embedded SQLite backend), opened and migrated: drills'
    throw-away stores and tools that are handed a file."""
    from quakealert.store.sqlite import Store as SqliteStore

    return SqliteStore.open(path)
