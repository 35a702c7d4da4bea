-- Issue 11: every event keeps its type (QuakeML EventType of the preferred report), and the id
-- keys of its reports (network + code, lower case) so association matches by id first.
ALTER TABLE events ADD COLUMN event_type TEXT;
CREATE INDEX events_type ON events (event_type);

CREATE TABLE event_ids (
    id_key   TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (id_key, event_id)
) WITHOUT ROWID;
CREATE INDEX event_ids_event ON event_ids (event_id);

-- Back-fill from what is stored: each current report's own id (bare numbers name no network).
INSERT OR IGNORE INTO event_ids (id_key, event_id)
    SELECT lower(source_id), event_id FROM report_current WHERE source_id GLOB '*[^0-9]*';
UPDATE events SET event_type = (
    SELECT r.event_type FROM report_current c JOIN reports r ON r.id = c.report_id
    WHERE c.event_id = events.id AND r.source = events.preferred_source);
UPDATE events SET event_type = (
    SELECT min(r.event_type) FROM report_current c JOIN reports r ON r.id = c.report_id
    WHERE c.event_id = events.id)
WHERE event_type IS NULL;
