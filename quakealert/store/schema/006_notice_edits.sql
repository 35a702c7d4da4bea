-- Every edit a duty officer made to a notice awaiting approval: who, when, and the text before and
-- after (messages JSON as in notices.messages). The first row's old_messages is the original wording.
CREATE TABLE notice_edits (
    id           INTEGER PRIMARY KEY,
    notice_id    TEXT NOT NULL,
    at           REAL NOT NULL,
    actor_id     TEXT,
    actor_name   TEXT NOT NULL,
    languages    TEXT NOT NULL,
    old_messages TEXT NOT NULL,
    new_messages TEXT NOT NULL
);
CREATE INDEX notice_edits_notice ON notice_edits (notice_id, id);
