-- Sequences: the current state of each (one row), its members, and every change of type.
-- Instants are UTC epoch seconds (REAL); reasons, context, stats and forecast are JSON blobs.
CREATE TABLE sequences (
    id                TEXT PRIMARY KEY,
    type              TEXT NOT NULL,
    final             INTEGER NOT NULL,
    agency            TEXT,
    n_events          INTEGER NOT NULL,
    largest_id        TEXT,
    largest_at        REAL,
    largest_magnitude REAL,
    largest_mag_type  TEXT,
    latitude          REAL,
    longitude         REAL,
    depth_km          REAL,
    first_at          REAL NOT NULL,
    last_at           REAL NOT NULL,
    delta_m           REAL,
    energy_ratio      REAL,
    classified_at     REAL NOT NULL,
    updated_at        REAL NOT NULL,
    summary_json      TEXT NOT NULL
);
CREATE INDEX sequences_last_at ON sequences (last_at);
CREATE INDEX sequences_largest_magnitude ON sequences (largest_magnitude);

CREATE TABLE sequence_members (
    sequence_id       TEXT NOT NULL REFERENCES sequences (id) ON DELETE CASCADE,
    event_id          TEXT NOT NULL,
    origin_at         REAL NOT NULL,
    latitude          REAL NOT NULL,
    longitude         REAL NOT NULL,
    depth_km          REAL,
    magnitude         REAL,
    mag_type          TEXT,
    in_classification INTEGER NOT NULL,
    role              TEXT NOT NULL,
    PRIMARY KEY (sequence_id, event_id)
);
CREATE INDEX sequence_members_event ON sequence_members (event_id);

-- Appended only when the type or the final flag changes; kept when a sequence is renamed.
CREATE TABLE sequence_type_history (
    id            INTEGER PRIMARY KEY,
    sequence_id   TEXT NOT NULL,
    type          TEXT NOT NULL,
    final         INTEGER NOT NULL,
    changed_at    REAL NOT NULL,
    reasons_json  TEXT NOT NULL
);
CREATE INDEX sequence_type_history_seq ON sequence_type_history (sequence_id, id);
