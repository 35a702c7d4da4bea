-- Durable processing (issue 9): one row per event whose change the pipeline has not processed.
-- Written in the transaction that stores the batch; deleted in the transaction that stores the
-- decisions, notices and outbox rows it caused. What is left at start is resumed.
-- priority: NULL until the pipeline has looked at the event; 1 = can concern residents (near a
-- resident or a configured region, or large), 0 = far from everyone (no resident policy),
-- -1 = parked after MAX_FAILURES failed attempts (last_error says why; the rest goes on).
CREATE TABLE work (
    event_id    TEXT PRIMARY KEY,
    trigger     TEXT NOT NULL CHECK (trigger IN ('new', 'revised', 'deleted')),
    origin_at   REAL NOT NULL,
    received_at REAL NOT NULL,
    priority    INTEGER,
    failures    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT
);
CREATE INDEX work_order ON work (priority, origin_at);
