-- Duty-staff API tokens, login sessions and the audit log of duty actions.
-- Secrets are never stored: only SHA-256 hex digests of the 256-bit random values.
CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    role         TEXT NOT NULL CHECK (role IN ('read', 'duty', 'admin')),
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   REAL NOT NULL,
    revoked_at   REAL,
    last_used_at REAL
);

CREATE TABLE api_sessions (
    session_hash TEXT PRIMARY KEY,
    token_id     TEXT NOT NULL REFERENCES api_tokens (id),
    created_at   REAL NOT NULL,
    expires_at   REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX api_sessions_token ON api_sessions (token_id);

-- Who did what to which object, and when: logins, approvals, token changes.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY,
    at         REAL NOT NULL,
    actor_id   TEXT,
    actor_name TEXT NOT NULL,
    role       TEXT,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL DEFAULT '',
    detail     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_at ON audit_log (at);
