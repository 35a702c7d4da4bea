"""`quakealert token create|revoke|list`."""

from __future__ import annotations

import argparse
import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from quakealert.cli import token as token_cmd
from quakealert.store.auth import authenticate, list_tokens
from quakealert.store.sqlite import Store


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "quakealert.toml"
    path.write_text(f'[store]\npath = "{tmp_path / "db" / "q.sqlite"}"\n', encoding="utf-8")
    return path


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    token_cmd.add_arguments(parser)
    return token_cmd.run(parser.parse_args(list(argv)))


def open_store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "db" / "q.sqlite")


def test_create_prints_the_token_alone_and_stores_its_hash(config, tmp_path, capsys):
    """stdout is exactly the token (for `$(...)`); the store keeps only its SHA-256."""
    assert run("create", "--role", "duty", "--name", "night shift", "--config", str(config)) == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert out == secret + "\n" and secret.startswith("qat_") and len(secret) > 40
    assert "shown only once" in err and secret not in err
    store = open_store(tmp_path)
    try:
        (row,) = store.conn.execute("SELECT * FROM api_tokens").fetchall()
        assert row["token_hash"] == hashlib.sha256(secret.encode()).hexdigest()
        assert (row["role"], row["name"]) == ("duty", "night shift")
        principal = authenticate(store.conn, secret, now=datetime.now(UTC))
        assert principal is not None and principal.role == "duty"
        (entry,) = store.conn.execute("SELECT * FROM audit_log").fetchall()
        assert entry["action"] == "token.create" and entry["target"] == row["id"]
        assert entry["actor_name"].startswith("cli")
    finally:
        store.close()


def test_revoke_by_prefix_and_list(config, tmp_path, capsys):
    """Revoke by a unique id prefix; list shows state and never a secret."""
    run("--config", str(config), "create", "--role", "read")
    secret = capsys.readouterr().out.strip()
    store = open_store(tmp_path)
    try:
        (token,) = list_tokens(store.conn)
    finally:
        store.close()
    assert run("revoke", token.id[:6], "--config", str(config)) == 0
    assert f"revoked token {token.id}" in capsys.readouterr().err
    assert run("list", "--config", str(config)) == 0
    out = capsys.readouterr().out
    assert token.id in out and "revoked" in out and secret not in out
    store = open_store(tmp_path)
    try:
        assert authenticate(store.conn, secret, now=datetime.now(UTC)) is None
        actions = [r["action"] for r in store.conn.execute("SELECT action FROM audit_log")]
        assert actions == ["token.create", "token.revoke"]
    finally:
        store.close()


def test_unknown_id_is_an_error(config, capsys):
    """Revoking an id that matches nothing exits 1 with a message."""
    assert run("revoke", "ffffffff", "--config", str(config)) == 1
    assert "no token" in capsys.readouterr().err


def test_role_is_checked_by_the_parser(config):
    """Only read, duty and admin are roles."""
    with pytest.raises(SystemExit):
        run("create", "--role", "root", "--config", str(config))


def test_wired_into_the_cli(config, capsys):
    """`quakealert token create` goes through cli.main."""
    from quakealert.cli import main

    assert main(["token", "create", "--role", "admin", "--config", str(config)]) == 0
    assert capsys.readouterr().out.startswith("qat_")
