-- Each sequence's list entry, rendered once when it is saved.
ALTER TABLE sequences ADD COLUMN list_json TEXT;
