-- Issue 11: every event keeps its type (QuakeML EventType of the preferred report), and the id
-- keys of its reports (network + code, lower case) so association matches by id first.
ALTER TABLE events ADD COLUMN event_type TEXT;
CREATE INDEX events_type ON events (event_type);

CREATE TABLE event_ids (
    id_key   TEXT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (id_key, event_id)
);
CREATE INDEX event_ids_event ON event_ids (event_id);

-- Back-fill from what is stored: each current report's own id (bare numbers name no network).
INSERT INTO event_ids (id_key, event_id)
    SELECT DISTINCT lower(source_id), event_id FROM report_current WHERE source_id ~ '[^0-9]'
    ON CONFLICT DO NOTHING;
UPDATE events SET event_type = (
    SELECT r.event_type FROM report_current c JOIN reports r ON r.id = c.report_id
    WHERE c.event_id = events.id AND r.source = events.preferred_source LIMIT 1);
UPDATE events SET event_type = (
    SELECT min(r.event_type) FROM report_current c JOIN reports r ON r.id = c.report_id
    WHERE c.event_id = events.id)
WHERE event_type IS NULL;
