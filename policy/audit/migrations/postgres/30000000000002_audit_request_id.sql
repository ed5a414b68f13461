-- PostgreSQL form of ../sqlite/30000000000002_audit_request_id.sql (same version, same schema): every integer is BIGINT (the
-- `Any` driver decodes them as i64), flags are BIGINT 0/1, blobs BYTEA, and every TEXT column
-- compares as bytes (COLLATE "C", like SQLite's BINARY collation: listings are in UTF-8 byte order).

-- Finding a request's event by its id (admin API `GET /audit?request_id=`, the web console).
CREATE INDEX IF NOT EXISTS audit_events_request_id ON audit_events (request_id);
