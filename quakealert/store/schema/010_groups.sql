-- First push within 1 s for 100,000 residents (issue 9): residents whose decision is the same
-- are decided as one group.
-- A group decision is one row with `count` residents; `members` holds their subscriber ids
-- (little-endian int64), so each resident's own record stays derivable.
ALTER TABLE decisions ADD COLUMN members BLOB;

-- A thread state shared by the residents of a group (`members`, as in decisions). A resident's
-- thread is their own `threads` row if they have one, else the latest state naming them.
CREATE TABLE thread_states (
    id          INTEGER PRIMARY KEY,
    sequence_id TEXT NOT NULL,
    state       TEXT NOT NULL,
    members     BLOB NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE INDEX thread_states_sequence ON thread_states (sequence_id);

-- A notice's recipients written as one row in the pipeline's transaction; the outbox workers
-- expand it into `outbox` rows a chunk at a time (`done` members so far), so the first pushes
-- start while the rest are still being written.
CREATE TABLE outbox_fanout (
    id              INTEGER PRIMARY KEY,
    notice_id       TEXT NOT NULL,
    members         BLOB NOT NULL,
    done            INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    created_at      REAL NOT NULL
);
CREATE INDEX outbox_fanout_due ON outbox_fanout (next_attempt_at);
