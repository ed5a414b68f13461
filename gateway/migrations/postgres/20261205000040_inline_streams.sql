-- Small objects inline in the index (issue 19; docs/FORMAT.md, "Inline objects").
--
-- `object_streams.inline_data`: the whole sealed stream of a small single-PUT object, byte for
-- byte what the backend holds (or will hold) under `backend_id`; reads are served from it.
-- NULL for every other stream (read from the backend).
-- `object_streams.inline_pending`: 1 while the sealed stream is only in the index (committed
-- with the row and its audit event in one transaction); the write-back task stores it on the
-- backend under `backend_id` and then sets 0, so that the backend alone can rebuild the index
-- again (`vaultgate reindex`).
ALTER TABLE object_streams ADD COLUMN inline_data BYTEA;
ALTER TABLE object_streams ADD COLUMN inline_pending BIGINT NOT NULL DEFAULT 0;
-- the write-back's queue
CREATE INDEX object_streams_inline_pending ON object_streams (backend_id) WHERE inline_pending = 1;
