-- Notices (what residents are told), subscribers (coarsened places only) and the durable outbox.
-- Instants are UTC epoch seconds (REAL).

-- One row per notice. `refs` holds the notice's `references` (a reserved word in SQL) as JSON.
-- The area circle (event epicentre + radius) is what CAP <area><circle> needs; cap_xml is the
-- CAP message as released (served as is once present, so the archive never changes).
CREATE TABLE notices (
    id             TEXT PRIMARY KEY,
    sequence_id    TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    kind           TEXT NOT NULL,
    msg_type       TEXT NOT NULL CHECK (msg_type IN ('Alert', 'Update', 'Cancel')),
    messages       TEXT NOT NULL,
    created_at     REAL NOT NULL,
    urgency        TEXT NOT NULL DEFAULT 'normal',
    refs           TEXT NOT NULL DEFAULT '[]',
    exercise       INTEGER NOT NULL DEFAULT 0,
    url            TEXT,
    state          TEXT NOT NULL
        CHECK (state IN ('pending_approval', 'released', 'rejected', 'expired')),
    state_reason   TEXT,
    state_at       REAL NOT NULL,
    released_at    REAL,
    area_lat       REAL,
    area_lon       REAL,
    area_radius_km REAL,
    area_desc      TEXT,
    cap_xml        BLOB
);
CREATE INDEX notices_sequence ON notices (sequence_id, created_at);
CREATE INDEX notices_released ON notices (state, released_at);

-- A resident. `id` is internal (outbox, numpy selection); `public_id` is what the resident sees.
-- latitude/longitude are rounded to 0.01 degree before they get here. token_hash = sha256 hex.
CREATE TABLE subscribers (
    id            INTEGER PRIMARY KEY,
    public_id     TEXT NOT NULL UNIQUE,
    token_hash    TEXT NOT NULL,
    latitude      REAL NOT NULL,
    longitude     REAL NOT NULL,
    languages     TEXT NOT NULL,
    channel       TEXT NOT NULL CHECK (channel IN ('webpush', 'webhook', 'console')),
    target        TEXT NOT NULL,
    p256dh        TEXT,
    auth          TEXT,
    secret        TEXT,
    min_intensity INTEGER NOT NULL DEFAULT 3,
    area          TEXT,
    created_at    REAL NOT NULL
);
CREATE INDEX subscribers_area ON subscribers (area);

-- One row per (notice, subscriber, channel), written before sending and marked after.
-- state: pending -> in_flight (leased) -> sent | pending (retry) | failed | gone.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    notice_id       TEXT NOT NULL,
    subscriber_id   INTEGER NOT NULL,
    channel         TEXT NOT NULL,
    target          TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'in_flight', 'sent', 'failed', 'gone')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_until     REAL,
    status          INTEGER,
    last_error      TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    sent_at         REAL,
    UNIQUE (notice_id, subscriber_id, channel)
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_lease ON outbox (state, lease_until);
