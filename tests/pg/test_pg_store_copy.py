"""`quakealert store copy`: an SQLite store (from a real drill) copied into PostgreSQL row for
row, idempotently, resumable after a stop, verified by row counts."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from quakealert.cli import main
from quakealert.config import DEFAULT_SCENARIO, DEFAULT_SCENARIO_START
from quakealert.store.auth import audit, create_session, create_token
from quakealert.store.postgres import copy as store_copy
from quakealert.store.sqlite import Store

NOW = datetime(2024, 11, 7, tzinfo=UTC)


@pytest.fixture(scope="module")
def drill_store(tmp_path_factory) -> Path:
    """The store a drill of the bundled 2024 scenario leaves, plus tokens, a session, an audit
    row and a CAP archive with non-UTF-8 bytes."""
    keep = tmp_path_factory.mktemp("drill")
    assert main(["drill", str(DEFAULT_SCENARIO), "--start", DEFAULT_SCENARIO_START,
                 "--until", "2024-11-09T00:00Z", "--keep", str(keep), "--json"]) == 0
    path = keep / "drill.sqlite"
    store = Store.open(path)
    info, _ = create_token(store.conn, "admin", "ops", now=NOW)
    create_session(store.conn, info.id, ttl_s=3600.0, now=NOW)
    audit(store.conn, "ops", "login", "token", "བོད་ 墨竹工卡", now=NOW)
    store.conn.execute("UPDATE notices SET cap_xml = ? WHERE rowid = (SELECT min(rowid)"
                       " FROM notices)", (b"<alert>\xff\x00\xfe</alert>",))
    store.close()
    return path


def _rows(conn, table: str, cols: list[str], order: list[str]) -> list[tuple]:
    col_list = ", ".join(f'"{c}"' for c in cols)
    order_by = ", ".join(f'"{c}"' for c in order)
    return [tuple(r) for r in conn.execute(f'SELECT {col_list} FROM "{table}" ORDER BY {order_by}')]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_copy_is_faithful_idempotent_and_verified(drill_store, pg_empty_url, capsys):
    """Every table arrives row for row (floats, JSON text, Tibetan, bytes, 0/1 flags as
    booleans); a second run adds nothing; the source file is not touched; new rows after the
    copy get fresh ids."""
    before = _sha(drill_store)
    rc = main(["store", "copy", "--from", f"sqlite:{drill_store}", "--to", pg_empty_url,
               "--batch", "7"])
    out = capsys.readouterr().out
    assert rc == 0, out
    lite = sqlite3.connect(drill_store)
    nonempty = 0
    with psycopg.connect(pg_empty_url) as pg:
        for table in store_copy.tables_in_migration_order():
            info = lite.execute(f'PRAGMA table_info("{table}")').fetchall()
            cols = [c[1] for c in info]
            pk = [c[1] for c in sorted(info, key=lambda c: c[5]) if c[5]]
            want = _rows(lite, table, cols, pk)
            got = _rows(pg, table, cols, pk)
            assert got == want, table  # True == 1 and False == 0 in Python: flags compare
            nonempty += bool(want)
            assert f"{table} " in out
        assert nonempty >= 10  # the drill filled most tables: the comparison means something
        pg.execute("INSERT INTO audit_log (at, actor_name, action) VALUES (0, 'x', 'y')")
        n_audit = lite.execute("SELECT max(id) FROM audit_log").fetchone()[0]
        assert pg.execute("SELECT max(id) FROM audit_log").fetchone()[0] == n_audit + 1
        pg.rollback()
    lite.close()
    rc = main(["store", "copy", "--from", f"sqlite:{drill_store}", "--to", pg_empty_url])
    out = capsys.readouterr().out
    assert rc == 0
    assert all(line.split()[-2] == "0" for line in out.splitlines())  # added 0 everywhere
    assert _sha(drill_store) == before


def test_a_stopped_copy_carries_on(drill_store, pg_empty_url):
    """A copy that stops after some batches leaves committed batches only; run again, it
    completes and verifies."""
    class Stop(Exception):
        pass

    def stop_in_outbox(table: str, done: int) -> None:
        if table == "outbox" and done >= 5:
            raise Stop

    src = store_copy.open_source(drill_store)
    with psycopg.connect(pg_empty_url, autocommit=True) as dst:
        with pytest.raises(Stop):
            store_copy.copy_store(src, dst, batch=5, progress=stop_in_outbox)
        assert dst.execute("SELECT count(*) FROM outbox").fetchone()[0] == 5
        results = store_copy.copy_store(src, dst, batch=5)
    src.close()
    assert all(r.ok for r in results)
    by_table = {r.table: r for r in results}
    assert by_table["outbox"].added == by_table["outbox"].source_rows - 5
    assert by_table["reports"].added == 0


def test_counts_that_differ_fail(drill_store, pg_url, capsys):
    """A target that already holds other rows is reported, table by table, and exits 1."""
    with psycopg.connect(pg_url, autocommit=True) as pg:
        pg.execute("INSERT INTO audit_log (id, at, actor_name, action) VALUES (99999, 0, 'x', 'y')")
    assert main(["store", "copy", "--from", f"sqlite:{drill_store}", "--to", pg_url]) == 1
    captured = capsys.readouterr()
    assert "audit_log" in captured.err
    assert next(ln for ln in captured.out.splitlines() if ln.endswith("MISMATCH")).startswith(
        "audit_log")


def test_bad_arguments_are_refused(tmp_path, capsys):
    """A missing store, a source that is not sqlite:PATH, or a target that is not a PostgreSQL
    URL stop before anything is written."""
    assert main(["store", "copy", "--from", f"sqlite:{tmp_path / 'nope.sqlite'}",
                 "--to", "postgresql://x@127.0.0.1:1/x"]) == 2
    assert "no SQLite store" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["store", "copy", "--from", str(tmp_path), "--to", "postgresql://x@h/x"])
    with pytest.raises(SystemExit):
        main(["store", "copy", "--from", f"sqlite:{tmp_path}", "--to", "mysql://x"])


def test_a_table_without_a_postgres_migration_stops_the_copy(tmp_path, pg_empty_url, capsys):
    """A source table that PostgreSQL has no migration for is named and nothing is reported as
    copied (a newer SQLite schema must not lose a table silently)."""
    path = tmp_path / "s.sqlite"
    store = Store.open(path)
    store.conn.execute("CREATE TABLE pending_work (id INTEGER PRIMARY KEY)")
    store.close()
    assert main(["store", "copy", "--from", f"sqlite:{path}", "--to", pg_empty_url]) == 2
    assert "pending_work" in capsys.readouterr().err
