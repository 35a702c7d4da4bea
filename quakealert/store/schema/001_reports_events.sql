-- Reports (every version of every agency's view, kept forever) and the events derived from them.
-- Instants are UTC epoch seconds (REAL) so range queries use the index.
-- A report row is also the event's history entry: `change` says what it did to its event
-- (created, associated, revised, official, deleted) and `detail` why (score, flags, diff).
CREATE TABLE reports (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,
    source_id   TEXT NOT NULL,
    version     INTEGER NOT NULL,
    received_at REAL NOT NULL,
    origin_at   REAL NOT NULL,
    latitude    REAL NOT NULL,
    longitude   REAL NOT NULL,
    depth_km    REAL,
    magnitude   REAL,
    mag_type    TEXT,
    status      TEXT NOT NULL CHECK (status IN ('automatic', 'reviewed', 'deleted')),
    updated_at  REAL,
    place       TEXT,
    agency      TEXT,
    event_type  TEXT,
    other_ids   TEXT NOT NULL DEFAULT '',
    event_id    TEXT NOT NULL,
    change      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    UNIQUE (source, source_id, version)
);
CREATE INDEX reports_event ON reports (event_id);

-- The latest version of each (source, source_id): what the event is made of now.
CREATE TABLE report_current (
    source    TEXT NOT NULL,
    source_id TEXT NOT NULL,
    report_id INTEGER NOT NULL REFERENCES reports (id),
    event_id  TEXT NOT NULL,
    PRIMARY KEY (source, source_id)
) WITHOUT ROWID;
CREATE INDEX report_current_event ON report_current (event_id);

CREATE TABLE events (
    id               TEXT PRIMARY KEY,
    origin_at        REAL NOT NULL,
    latitude         REAL NOT NULL,
    longitude        REAL NOT NULL,
    depth_km         REAL,
    magnitude        REAL,
    mag_type         TEXT,
    status           TEXT NOT NULL,
    preferred_source TEXT NOT NULL,
    place            TEXT,
    review_flags     TEXT NOT NULL DEFAULT '[]',
    created_at       REAL NOT NULL,
    changed_at       REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX events_origin ON events (origin_at);
CREATE INDEX events_changed ON events (changed_at);


CREATE TABLE source_health (
    name                 TEXT PRIMARY KEY,
    last_ok_at           REAL,
    last_error_at        REAL,
    last_error           TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    backoff_until        REAL,
    last_since           REAL,
    polls                INTEGER NOT NULL DEFAULT 0,
    reports_total        INTEGER NOT NULL DEFAULT 0,
    skipped_total        INTEGER NOT NULL DEFAULT 0
);
