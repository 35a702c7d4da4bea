"""Duty-staff tokens, login sessions and the audit log, on the store's SQLite connection.

Tokens and session ids are 256-bit random values, so they are stored as plain SHA-256 digests:
salts and slow KDFs defend guessable passwords, and nobody can guess or brute-force a 2^256
space. A fast, unsalted digest also keeps the per-request lookup a single index probe.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from quakealert.errors import Conflict, InvalidRequest, NotFound
from quakealert.store.instants import from_epoch as _dt

Role = Literal["read", "duty", "admin"]
ROLES: tuple[Role, ...] = ("read", "duty", "admin")  # each role includes the ones before it
TOKEN_PREFIX = "qat_"  # lets secret scanners and people recognise a quakealert token
MAX_NAME_CHARS = 100
LAST_USED_EVERY_S = 60.0  # write last_used_at at most this often per token


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A stored token, without its secret."""

    id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making a request: the token behind it, and how it was presented."""

    token_id: str
    name: str
    role: Role
    via: Literal["bearer", "session"]

    def has_role(self, role: Role) -> bool:
        return role_rank(self.role) >= role_rank(role)


def role_rank(role: str) -> int:
    """read < duty < admin; unknown roles rank below read."""
    return ROLES.index(role) if role in ROLES else -1  # type: ignore[arg-type]


def digest(secret: str) -> str:
    # surrogatepass: header values decoded with surrogateescape must hash, not raise.
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()




def _token(row: sqlite3.Row) -> TokenInfo:
    return TokenInfo(id=row["id"], name=row["name"], role=row["role"],
                     created_at=datetime.fromtimestamp(row["created_at"], UTC),
                     revoked_at=_dt(row["revoked_at"]), last_used_at=_dt(row["last_used_at"]))


def create_token(
    conn: sqlite3.Connection, role: str, name: str, *, now: datetime
) -> tuple[TokenInfo, str]:
    """A new token of ``role``; returns its record and the secret, which is shown only once."""
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if len(name) > MAX_NAME_CHARS or not name.strip():
        raise InvalidRequest(f"name must be 1 to {MAX_NAME_CHARS} characters")
    # Names appear in logs, the audit log and `token list`: no control characters or
    # lone surrogates, which could forge lines or fail to encode.
    if any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
        raise InvalidRequest("name must not contain control characters")
    name = name.strip()
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    while True:
        token_id = secrets.token_hex(4)
        try:
            conn.execute(
                "INSERT INTO api_tokens (id, name, role, token_hash, created_at) VALUES (?,?,?,?,?)",
                (token_id, name, role, digest(secret), now.timestamp()),
            )
            break
        except sqlite3.IntegrityError:  # 8 hex digits: a collision is rare but possible
            continue
    return TokenInfo(id=token_id, name=name, role=role, created_at=now), secret  # type: ignore[arg-type]


def list_tokens(conn: sqlite3.Connection) -> list[TokenInfo]:
    """Every token, oldest first, revoked ones included."""
    return [_token(r) for r in conn.execute("SELECT * FROM api_tokens ORDER BY created_at, id")]


def find_token_id(conn: sqlite3.Connection, id_or_prefix: str) -> TokenInfo:
    """The one token whose id is or starts with ``id_or_prefix``; NotFound / InvalidRequest."""
    if not id_or_prefix:
        raise InvalidRequest("give a token id or id prefix")
    exact = conn.execute("SELECT * FROM api_tokens WHERE id = ?", (id_or_prefix,)).fetchone()
    if exact is not None:
        return _token(exact)
    like = id_or_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = conn.execute("SELECT * FROM api_tokens WHERE id LIKE ? ESCAPE '\\'", (like,)).fetchall()
    if not rows:
        raise NotFound(f"no token {id_or_prefix!r}")
    if len(rows) > 1:
        raise InvalidRequest(f"{id_or_prefix!r} matches {len(rows)} tokens; give more of the id")
    return _token(rows[0])


LAST_ADMIN = "this is the last admin token: create another admin token before revoking it"


def revoke_token(conn: sqlite3.Connection, token_id: str, *, now: datetime) -> TokenInfo:
    """Revoke one token (by exact id) and end its sessions; revoking twice keeps the first time."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Revoking the last live admin token would lock every admin out of token management
        # for good (issue 9); create another admin token first. Checked inside the write
        # transaction, so two concurrent revocations cannot both pass.
        target = conn.execute("SELECT role, revoked_at FROM api_tokens WHERE id = ?",
                              (token_id,)).fetchone()
        if target is not None and target["role"] == "admin" and target["revoked_at"] is None:
            admins = conn.execute("SELECT count(*) FROM api_tokens WHERE role = 'admin'"
                                  " AND revoked_at IS NULL").fetchone()[0]
            if admins <= 1:
                raise Conflict(LAST_ADMIN, token=token_id)
        conn.execute("UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                     (now.timestamp(), token_id))
        conn.execute("DELETE FROM api_sessions WHERE token_id = ?", (token_id,))
        row = conn.execute("SELECT * FROM api_tokens WHERE id = ?", (token_id,)).fetchone()
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if row is None:
        raise NotFound(f"no token {token_id!r}")
    return _token(row)


def authenticate(conn: sqlite3.Connection, secret: str, *, now: datetime) -> Principal | None:
    """The principal for a bearer token, or None if it is unknown or revoked."""
    row = conn.execute(
        "SELECT id, name, role, last_used_at FROM api_tokens"
        " WHERE token_hash = ? AND revoked_at IS NULL", (digest(secret),)
    ).fetchone()
    if row is None:
        return None
    now_s = now.timestamp()
    if row["last_used_at"] is None or now_s - row["last_used_at"] >= LAST_USED_EVERY_S:
        conn.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (now_s, row["id"]))
    return Principal(token_id=row["id"], name=row["name"], role=row["role"], via="bearer")


def create_session(conn: sqlite3.Connection, token_id: str, *, ttl_s: float, now: datetime) -> str:
    """A new login session for ``token_id``; returns the session id for the cookie."""
    session_id = secrets.token_urlsafe(32)
    now_s = now.timestamp()
    conn.execute("DELETE FROM api_sessions WHERE expires_at <= ?", (now_s,))
    conn.execute(
        "INSERT INTO api_sessions (session_hash, token_id, created_at, expires_at) VALUES (?,?,?,?)",
        (digest(session_id), token_id, now_s, now_s + ttl_s),
    )
    return session_id


def session_principal(
    conn: sqlite3.Connection, session_id: str, *, now: datetime
) -> Principal | None:
    """The principal of a live session whose token is still valid, else None."""
    row = conn.execute(
        "SELECT t.id, t.name, t.role FROM api_sessions s JOIN api_tokens t ON t.id = s.token_id"
        " WHERE s.session_hash = ? AND s.expires_at > ? AND t.revoked_at IS NULL",
        (digest(session_id), now.timestamp()),
    ).fetchone()
    if row is None:
        return None
    return Principal(token_id=row["id"], name=row["name"], role=row["role"], via="session")


def end_session(conn: sqlite3.Connection, session_id: str) -> None:
    conn.execute("DELETE FROM api_sessions WHERE session_hash = ?", (digest(session_id),))


def audit(
    conn: sqlite3.Connection,
    actor: Principal | str | None,
    action: str,
    target: str = "",
    detail: str = "",
    *,
    now: datetime | None = None,
) -> None:
    """Record one duty action: ``actor`` is the request's principal, or a name such as 'cli:ops'."""
    at = (now or datetime.now(UTC)).timestamp()
    if isinstance(actor, Principal):
        actor_id, actor_name, role = actor.token_id, actor.name, actor.role
    else:
        actor_id, actor_name, role = None, actor or "anonymous", None
    conn.execute(
        "INSERT INTO audit_log (at, actor_id, actor_name, role, action, target, detail)"
        " VALUES (?,?,?,?,?,?,?)",
        (at, actor_id, actor_name, role, action, target, detail),
    )


def audit_log(conn: sqlite3.Connection, *, limit: int = 100) -> list[dict[str, object]]:
    """The newest audit rows first, as JSON-ready dicts."""
    out = []
    for row in conn.execute("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,)):
        out.append({
            "id": row["id"],
            "at": datetime.fromtimestamp(row["at"], UTC).isoformat().replace("+00:00", "Z"),
            "actor_id": row["actor_id"], "actor_name": row["actor_name"], "role": row["role"],
            "action": row["action"], "target": row["target"], "detail": row["detail"],
        })
    return out
