"""Persistence behind one interface (``store/base.py``): SQLite (WAL, the embedded default) with
numbered schema migrations, and PostgreSQL (``store/postgres/``) for several instances."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from quakealert.config import Settings
    from quakealert.store.base import Store


def open_store(settings: Settings, *, verify: bool = False) -> Store:
    """The store the settings name, opened and migrated: SQLite at ``[store] path``.

    ``[store] url`` (PostgreSQL) is refused by the configuration until store/postgres
    implements every operation of store/base.py (``base.missing``).
    """
    from quakealert.store.sqlite import Store as SqliteStore

    return SqliteStore.open(settings.store_path, verify=verify)


def open_file(path: Path | str) -> Store:
    """A store in one local file (the embedded SQLite backend), opened and migrated: drills'
    throw-away stores and tools that are handed a file."""
    from quakealert.store.sqlite import Store as SqliteStore

    return SqliteStore.open(path)
