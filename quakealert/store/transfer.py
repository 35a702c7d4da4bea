"""Moving a store between backends: an SQLite file into PostgreSQL (``quakealert store copy``)."""

from __future__ import annotations

from pathlib import Path

import psycopg

from quakealert.errors import QuakealertError
from quakealert.store.postgres.copy import (
    DEFAULT_BATCH,
    CopyError,
    TableCopy,
    copy_store,
    open_source,
)
from quakealert.store.postgres.db import mask

__all__ = ["DEFAULT_BATCH", "CopyError", "TableCopy", "TargetFailed", "copy_to_postgres", "mask"]


class TargetFailed(QuakealertError):
    """The PostgreSQL side failed (unreachable, refused, an SQL error); the URL is masked."""


def copy_to_postgres(source: Path, url: str, *, batch: int = DEFAULT_BATCH) -> list[TableCopy]:
    """Copy every table of the SQLite store at ``source`` into the database at ``url``.

    CopyError: the source cannot be read or the copy cannot proceed; TargetFailed: PostgreSQL.
    """
    src = open_source(source)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as dst:
            return copy_store(src, dst, batch=batch)
    except psycopg.Error as err:
        raise TargetFailed(f"{mask(url)}: {str(err).strip()}") from err
    finally:
        src.close()
