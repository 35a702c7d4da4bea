"""The layout holds: SQL, connections and the database drivers live under quakealert/store/.

Everything else reaches the database through the store interface (store/base.py), so a second
backend needs no change outside store/ (issue 13 §1), and the pure core imports no shell (§6).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from quakealert.store import base
from quakealert.store.sqlite import MODULES

PACKAGE = Path(__file__).resolve().parent.parent / "quakealert"
OUTSIDE_STORE = sorted(p for p in PACKAGE.rglob("*.py") if "store" not in p.relative_to(
    PACKAGE).parts[:1])
DRIVERS = ("sqlite3", "psycopg", "psycopg_pool")
# Statements, not words: "Select a language" or "-----BEGIN" in a key file are not SQL.
SQL = re.compile(
    r"\b(SELECT\b[\s\S]+\bFROM\b|SELECT\s+(EXISTS|count|pg_)|INSERT\s+(OR\s+\w+\s+)?INTO\b"
    r"|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b|PRAGMA\s|BEGIN(\s+IMMEDIATE|\s+TRANSACTION|;|$)"
    r"|COMMIT\b|ROLLBACK\b|CREATE\s+(TABLE|INDEX)\b|ON\s+CONFLICT\b|LISTEN\s|total_changes)")


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        where = f"{_name(path)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            found += [f"{where} imports {a.name}" for a in node.names
                      if a.name.split(".")[0] in DRIVERS]
        elif isinstance(node, ast.ImportFrom) and node.module and (
                node.module.split(".")[0] in DRIVERS):
            found.append(f"{where} imports from {node.module}")
        elif isinstance(node, ast.Attribute) and node.attr in ("conn", "total_changes"):
            found.append(f"{where} uses .{node.attr}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(
                node.value):
            found.append(f"{where} has SQL: {node.value[:60]!r}")
    return found


def test_no_connection_driver_or_sql_outside_the_store() -> None:
    """No module outside quakealert/store/ imports a database driver, touches a connection
    (``.conn``) or holds an SQL statement: the store interface is the only way in."""
    found = [v for path in OUTSIDE_STORE for v in _violations(path)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("text", [
    "SELECT id FROM notices WHERE state = ?", "INSERT OR IGNORE INTO t VALUES (?)",
    "UPDATE work SET priority = ?", "DELETE FROM work WHERE event_id = ?", "PRAGMA data_version",
    "BEGIN IMMEDIATE", "SELECT EXISTS (SELECT 1 FROM x)", "ROLLBACK",
])
def test_the_sql_pattern_sees_statements(text: str) -> None:
    """The check would catch the statements that used to live outside the store."""
    assert SQL.search(text)


@pytest.mark.parametrize("text", [
    "Select a language", "-----BEGIN PRIVATE KEY-----", "select the recipients first",
    "Update", "the sequence was deleted from the list",
])
def test_the_sql_pattern_leaves_prose_alone(text: str) -> None:
    """Ordinary words in messages and logs are not mistaken for SQL."""
    assert not SQL.search(text)


def test_sqlite_implements_every_operation_of_the_interface() -> None:
    """Each group of store/base.py is backed by a SQLite module with every operation."""
    assert set(MODULES) == set(base.GROUPS)
    assert base.missing(MODULES) == {}


def test_the_core_imports_no_shell() -> None:
    """quakealert/core/ imports nothing from the store, the service, the API or the CLI, and
    sequences.py does not reach for classify.py: the pipeline composes them."""
    found = []
    for path in sorted((PACKAGE / "core").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                mod = node.module
                if mod.split(".")[:2] in (["quakealert", m] for m in (
                        "store", "service", "api", "cli", "sources", "channels")):
                    found.append(f"{_name(path)}:{node.lineno} imports {mod}")
                if path.name == "sequences.py" and mod == "quakealert.core.classify":
                    found.append(f"{_name(path)}:{node.lineno} imports {mod}")
    assert not found, "\n".join(found)
