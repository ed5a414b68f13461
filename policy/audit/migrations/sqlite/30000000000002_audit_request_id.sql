-- Finding a request's event by its id (admin API `GET /audit?request_id=`, the web console).
CREATE INDEX IF NOT EXISTS audit_events_request_id ON audit_events (request_id);
