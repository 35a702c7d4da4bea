"""Tokens, sessions and the audit log: one contract on both backends (SQLite always; PostgreSQL
on a throwaway cluster, skipped with a plain message without initdb)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.rows import dict_row

from quakealert.errors import Conflict, InvalidRequest, NotFound
from quakealert.store import auth as lite_auth
from quakealert.store.postgres import auth as pg_auth
from quakealert.store.sqlite import Store

NOW = datetime(2024, 11, 6, 20, 25, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    if request.param == "sqlite":
        store = Store.open(tmp_path / "auth.sqlite")
        yield lite_auth, store.conn
        store.close()
    else:
        conn = psycopg.connect(request.getfixturevalue("pg_url"), autocommit=True,
                               row_factory=dict_row)
        yield pg_auth, conn
        conn.close()


def test_token_lifecycle(backend):
    """A token authenticates until revoked; only its digest is stored; last use is recorded at
    most once a minute; revoking twice keeps the first time."""
    auth, conn = backend
    info, secret = auth.create_token(conn, "duty", "  duty desk ", now=NOW)
    assert info.name == "duty desk" and secret.startswith("qat_")
    assert [t.id for t in auth.list_tokens(conn)] == [info.id]
    stored = conn.execute("SELECT token_hash FROM api_tokens").fetchone()
    assert (stored["token_hash"] if isinstance(stored, dict) else stored[0]) == auth.digest(secret)
    p = auth.authenticate(conn, secret, now=NOW)
    assert p is not None and (p.token_id, p.role, p.via) == (info.id, "duty", "bearer")
    assert auth.list_tokens(conn)[0].last_used_at == NOW
    auth.authenticate(conn, secret, now=NOW + timedelta(seconds=30))
    assert auth.list_tokens(conn)[0].last_used_at == NOW
    auth.authenticate(conn, secret, now=NOW + timedelta(seconds=61))
    assert auth.list_tokens(conn)[0].last_used_at == NOW + timedelta(seconds=61)
    assert auth.authenticate(conn, secret + "x", now=NOW) is None
    revoked = auth.revoke_token(conn, info.id, now=NOW + timedelta(hours=1))
    assert revoked.revoked_at == NOW + timedelta(hours=1)
    assert auth.revoke_token(conn, info.id, now=NOW + timedelta(hours=2)).revoked_at == \
        NOW + timedelta(hours=1)
    assert auth.authenticate(conn, secret, now=NOW + timedelta(hours=3)) is None
    with pytest.raises(NotFound):
        auth.revoke_token(conn, "nope", now=NOW)


@pytest.mark.parametrize("role, name", [("root", "x"), ("read", ""), ("read", "a\nb"),
                                        ("read", "x" * 101)])
def test_bad_tokens_are_refused(backend, role, name):
    """Unknown roles, empty or over-long names and control characters are refused."""
    auth, conn = backend
    with pytest.raises(InvalidRequest):
        auth.create_token(conn, role, name, now=NOW)
    assert auth.list_tokens(conn) == []


def test_find_by_unique_prefix(backend):
    """A token is found by its id or a unique prefix (any case); an ambiguous or unknown one is
    refused; LIKE wildcards in the prefix are literal."""
    auth, conn = backend
    a, _ = auth.create_token(conn, "read", "a", now=NOW)
    b, _ = auth.create_token(conn, "admin", "b", now=NOW)
    assert auth.find_token_id(conn, a.id) == a
    assert auth.find_token_id(conn, b.id[:7].upper()).id == b.id or a.id[:7] == b.id[:7]
    with pytest.raises(InvalidRequest):
        auth.find_token_id(conn, "")
    with pytest.raises(NotFound):
        auth.find_token_id(conn, "%")
    with pytest.raises(NotFound):
        auth.find_token_id(conn, "zz")
    if a.id[0] == b.id[0]:
        with pytest.raises(InvalidRequest):
            auth.find_token_id(conn, a.id[0])


def test_sessions_expire_and_die_with_their_token(backend):
    """A session gives its token's principal until it expires, it is ended, or the token is
    revoked."""
    auth, conn = backend
    info, _ = auth.create_token(conn, "admin", "ops", now=NOW)
    auth.create_token(conn, "admin", "ops-2", now=NOW)  # the last admin cannot be revoked
    sid = auth.create_session(conn, info.id, ttl_s=600, now=NOW)
    p = auth.session_principal(conn, sid, now=NOW + timedelta(seconds=599))
    assert p is not None and (p.token_id, p.role, p.via) == (info.id, "admin", "session")
    assert auth.session_principal(conn, sid, now=NOW + timedelta(seconds=600)) is None
    sid2 = auth.create_session(conn, info.id, ttl_s=600, now=NOW)
    auth.end_session(conn, sid2)
    assert auth.session_principal(conn, sid2, now=NOW) is None
    sid3 = auth.create_session(conn, info.id, ttl_s=600, now=NOW)
    auth.revoke_token(conn, info.id, now=NOW)
    assert auth.session_principal(conn, sid3, now=NOW) is None


def test_the_last_admin_token_cannot_be_revoked(backend):
    """Revoking the last live admin token is a Conflict and changes nothing; with a second
    admin the first can go, and then the second is the last (issue 9)."""
    auth, conn = backend
    a, _ = auth.create_token(conn, "admin", "a", now=NOW)
    reader, _ = auth.create_token(conn, "read", "r", now=NOW)
    with pytest.raises(Conflict, match="last admin"):
        auth.revoke_token(conn, a.id, now=NOW)
    assert auth.revoke_token(conn, reader.id, now=NOW).revoked_at == NOW
    b, _ = auth.create_token(conn, "admin", "b", now=NOW)
    assert auth.revoke_token(conn, a.id, now=NOW).revoked_at == NOW
    with pytest.raises(Conflict):
        auth.revoke_token(conn, b.id, now=NOW)
    assert [t.revoked_at for t in auth.list_tokens(conn) if t.id == b.id] == [None]


def test_audit_log_newest_first(backend):
    """Audit rows keep who did what, newest first, for a principal or a plain name."""
    auth, conn = backend
    info, secret = auth.create_token(conn, "admin", "ops", now=NOW)
    p = auth.authenticate(conn, secret, now=NOW)
    auth.audit(conn, p, "approve", "notice:n1", "ok", now=NOW)
    auth.audit(conn, "cli:root", "token.create", info.id, now=NOW + timedelta(seconds=1))
    auth.audit(conn, None, "login.failed", now=NOW + timedelta(seconds=2))
    log = auth.audit_log(conn, limit=2)
    assert [r["action"] for r in log] == ["login.failed", "token.create"]
    assert log[0]["actor_name"] == "anonymous" and log[0]["at"] == "2024-11-06T20:25:02Z"
    first = auth.audit_log(conn)[-1]
    assert (first["actor_id"], first["actor_name"], first["role"], first["target"]) == \
        (info.id, "ops", "admin", "notice:n1")
