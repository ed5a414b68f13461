-- PostgreSQL form of ../sqlite/30000000000003_audit_no_hash_index.sql (same version, same schema).

-- No index on audit_events.hash: every appended event wrote a random page of it (the hashes are
-- random). Its one reader is `audit verify` naming the event a broken link points at, after the
-- chain is already found broken, and a scan of the table once is fine there.
DROP INDEX IF EXISTS audit_events_hash;
