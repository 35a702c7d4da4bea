"""Duty-staff tokens, login sessions and the audit log on PostgreSQL: the same functions,
arguments and results as :mod:`quakealert.store.auth` (SQLite), checked by one contract suite
(tests/pg/test_pg_auth_contract.py). The values (TokenInfo, Principal) and the digest are
shared; only the SQL differs."""

from __future__ import annotations

import secrets
import unicodedata
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from quakealert.errors import Conflict, InvalidRequest, NotFound
from quakealert.store.auth import (
    LAST_ADMIN,
    LAST_USED_EVERY_S,
    MAX_NAME_CHARS,
    ROLES,
    TOKEN_PREFIX,
    Principal,
    TokenInfo,
    digest,
)
from quakealert.store.instants import from_epoch as _dt


def _token(row: dict[str, Any]) -> TokenInfo:
    return TokenInfo(id=row["id"], name=row["name"], role=row["role"],
                     created_at=datetime.fromtimestamp(row["created_at"], UTC),
                     revoked_at=_dt(row["revoked_at"]), last_used_at=_dt(row["last_used_at"]))


def _rows(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...]) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(sql, params).fetchall()


def create_token(
    conn: psycopg.Connection[Any], role: str, name: str, *, now: datetime
) -> tuple[TokenInfo, str]:
    """A new token of ``role``; returns its record and the secret, which is shown only once."""
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if len(name) > MAX_NAME_CHARS or not name.strip():
        raise InvalidRequest(f"name must be 1 to {MAX_NAME_CHARS} characters")
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise InvalidRequest("name must not contain control characters")
    name = name.strip()
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    while True:  # 8 hex digits: a collision is rare but possible
        token_id = secrets.token_hex(4)
        cur = conn.execute(
            "INSERT INTO api_tokens (id, name, role, token_hash, created_at)"
            " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            (token_id, name, role, digest(secret), now.timestamp()))
        if cur.rowcount == 1:
            break
    return TokenInfo(id=token_id, name=name, role=role, created_at=now), secret  # type: ignore[arg-type]


def list_tokens(conn: psycopg.Connection[Any]) -> list[TokenInfo]:
    """Every token, oldest first, revoked ones included."""
    return [_token(r) for r in _rows(conn, "SELECT * FROM api_tokens ORDER BY created_at, id", ())]


def find_token_id(conn: psycopg.Connection[Any], id_or_prefix: str) -> TokenInfo:
    """The one token whose id is or starts with ``id_or_prefix``; NotFound / InvalidRequest."""
    if not id_or_prefix:
        raise InvalidRequest("give a token id or id prefix")
    exact = _rows(conn, "SELECT * FROM api_tokens WHERE id = %s", (id_or_prefix,))
    if exact:
        return _token(exact[0])
    rows = _rows(conn, "SELECT * FROM api_tokens WHERE starts_with(lower(id), lower(%s))",
                 (id_or_prefix,))
    if not rows:
        raise NotFound(f"no token {id_or_prefix!r}")
    if len(rows) > 1:
        raise InvalidRequest(f"{id_or_prefix!r} matches {len(rows)} tokens; give more of the id")
    return _token(rows[0])


def revoke_token(conn: psycopg.Connection[Any], token_id: str, *, now: datetime) -> TokenInfo:
    """Revoke one token (by exact id) and end its sessions; revoking twice keeps the first time."""
    with conn.transaction():
        # As in store/auth.py: the last live admin token stays. FOR UPDATE on the live admin
        # rows makes two concurrent revocations of the last two admins take turns.
        admins = _rows(conn, "SELECT id FROM api_tokens WHERE role = 'admin'"
                             " AND revoked_at IS NULL FOR UPDATE", ())
        if len(admins) <= 1 and any(a["id"] == token_id for a in admins):
            raise Conflict(LAST_ADMIN, token=token_id)
        conn.execute("UPDATE api_tokens SET revoked_at = %s WHERE id = %s AND revoked_at IS NULL",
                     (now.timestamp(), token_id))
        conn.execute("DELETE FROM api_sessions WHERE token_id = %s", (token_id,))
        rows = _rows(conn, "SELECT * FROM api_tokens WHERE id = %s", (token_id,))
    if not rows:
        raise NotFound(f"no token {token_id!r}")
    return _token(rows[0])


def authenticate(conn: psycopg.Connection[Any], secret: str, *,
                 now: datetime) -> Principal | None:
    """The principal for a bearer token, or None if it is unknown or revoked."""
    rows = _rows(conn, "SELECT id, name, role, last_used_at FROM api_tokens"
                       " WHERE token_hash = %s AND revoked_at IS NULL", (digest(secret),))
    if not rows:
        return None
    row, now_s = rows[0], now.timestamp()
    if row["last_used_at"] is None or now_s - row["last_used_at"] >= LAST_USED_EVERY_S:
        conn.execute("UPDATE api_tokens SET last_used_at = %s WHERE id = %s", (now_s, row["id"]))
    return Principal(token_id=row["id"], name=row["name"], role=row["role"], via="bearer")


def create_session(conn: psycopg.Connection[Any], token_id: str, *, ttl_s: float,
                   now: datetime) -> str:
    """A new login session for ``token_id``; returns the session id for the cookie."""
    session_id = secrets.token_urlsafe(32)
    now_s = now.timestamp()
    with conn.transaction():
        conn.execute("DELETE FROM api_sessions WHERE expires_at <= %s", (now_s,))
        conn.execute("INSERT INTO api_sessions (session_hash, token_id, created_at, expires_at)"
                     " VALUES (%s, %s, %s, %s)",
                     (digest(session_id), token_id, now_s, now_s + ttl_s))
    return session_id


def session_principal(conn: psycopg.Connection[Any], session_id: str, *,
                      now: datetime) -> Principal | None:
    """The principal of a live session whose token is still valid, else None."""
    rows = _rows(
        conn, "SELECT t.id, t.name, t.role FROM api_sessions s JOIN api_tokens t"
              " ON t.id = s.token_id WHERE s.session_hash = %s AND s.expires_at > %s"
              " AND t.revoked_at IS NULL", (digest(session_id), now.timestamp()))
    if not rows:
        return None
    return Principal(token_id=rows[0]["id"], name=rows[0]["name"], role=rows[0]["role"],
                     via="session")


def end_session(conn: psycopg.Connection[Any], session_id: str) -> None:
    conn.execute("DELETE FROM api_sessions WHERE session_hash = %s", (digest(session_id),))


def audit(conn: psycopg.Connection[Any], actor: Principal | str | None, action: str,
          target: str = "", detail: str = "", *, now: datetime | None = None) -> None:
    """Record one duty action: ``actor`` is the request's principal, or a name such as 'cli:ops'."""
    at = (now or datetime.now(UTC)).timestamp()
    if isinstance(actor, Principal):
        actor_id, actor_name, role = actor.token_id, actor.name, actor.role
    else:
        actor_id, actor_name, role = None, actor or "anonymous", None
    conn.execute("INSERT INTO audit_log (at, actor_id, actor_name, role, action, target, detail)"
                 " VALUES (%s, %s, %s, %s, %s, %s, %s)",
                 (at, actor_id, actor_name, role, action, target, detail))


def audit_log(conn: psycopg.Connection[Any], *, limit: int = 100) -> list[dict[str, object]]:
    """The newest audit rows first, as JSON-ready dicts."""
    return [{
        "id": row["id"],
        "at": datetime.fromtimestamp(row["at"], UTC).isoformat().replace("+00:00", "Z"),
        "actor_id": row["actor_id"], "actor_name": row["actor_name"], "role": row["role"],
        "action": row["action"], "target": row["target"], "detail": row["detail"],
    } for row in _rows(conn, "SELECT * FROM audit_log ORDER BY id DESC LIMIT %s", (int(limit),))]
