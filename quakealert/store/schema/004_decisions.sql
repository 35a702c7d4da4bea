-- Every policy decision, sent or not, with its reason: what duty staff read to explain a notice.
-- Decisions not to send are aggregated per (sequence, event, reason, area) with a count so a
-- quake far from most residents does not write a row per subscriber.
CREATE TABLE decisions (
    id            INTEGER PRIMARY KEY,
    at            REAL NOT NULL,
    sequence_id   TEXT NOT NULL,
    event_id      TEXT NOT NULL,
    subscriber_id INTEGER,
    area          TEXT,
    send          INTEGER NOT NULL,
    kind          TEXT,
    msg_type      TEXT,
    urgency       TEXT,
    reason_code   TEXT NOT NULL,
    reason_en     TEXT NOT NULL,
    reason_zh     TEXT NOT NULL,
    notice_id     TEXT,
    degree        INTEGER,
    count         INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX decisions_sequence ON decisions (sequence_id, at);
CREATE INDEX decisions_notice ON decisions (notice_id);

-- One thread per (subscriber, sequence): the policy's memory of what this resident was told.
CREATE TABLE threads (
    subscriber_id INTEGER NOT NULL,
    sequence_id   TEXT NOT NULL,
    state         TEXT NOT NULL,
    updated_at    REAL NOT NULL,
    PRIMARY KEY (subscriber_id, sequence_id)
) WITHOUT ROWID;
