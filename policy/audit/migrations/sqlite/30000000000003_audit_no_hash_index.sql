-- No index on audit_events.hash: every appended event wrote a random page of it (the hashes are
-- random), one more WAL page per event on every read and write request. Its one reader is
-- `audit verify` naming the event a broken link points at, after the chain is already found
-- broken, and a scan of the table once is fine there (docs/PERFORMANCE.md, session 16).
DROP INDEX IF EXISTS audit_events_hash;
