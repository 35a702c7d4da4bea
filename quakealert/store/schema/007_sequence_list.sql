-- Each sequence's list entry, rendered once when it is saved, so GET /api/v1/sequences is one
-- query that joins stored strings. Rows saved before this column existed are rendered on read.
ALTER TABLE sequences ADD COLUMN list_json TEXT;
