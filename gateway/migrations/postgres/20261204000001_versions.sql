-- PostgreSQL form of ../sqlite/20261204000001_versions.sql (same version, same schema): every integer is BIGINT (the
-- `Any` driver decodes them as i64), flags are BIGINT 0/1, blobs BYTEA, and every TEXT column
-- compares as bytes (COLLATE "C", like SQLite's BINARY collation: listings are in UTF-8 byte order).

-- Versioning and object lock (issue 15).
--
-- `objects` now holds every version of a key, not only the visible one: the primary key gains
-- `version_id` ('null' for the version written while the bucket was unversioned or suspended,
-- which every existing row becomes), `seq` orders the versions of one key (larger = newer),
-- `is_latest` marks the current version (exactly one per key that has versions) and
-- `delete_marker` marks delete markers (no data; their one stream is a small sealed marker so
-- that `vaultgate reindex` can rebuild them). Object lock state: `lock_mode` (GOVERNANCE /
-- COMPLIANCE or NULL), `lock_until_ms`, `legal_hold`, and `lock_record_id`: the backend id of
-- the sealed lock record written by the last PutObjectRetention / PutObjectLegalHold (so that
-- reindex restores the lock as changed, not as written), referenced like a stream.
--
-- SQLite cannot change a primary key in place: the two tables are rebuilt and renamed (the
-- rename rewrites the foreign key of object_streams to the new table).

ALTER TABLE buckets ADD COLUMN versioning TEXT COLLATE "C";          -- NULL (never enabled), 'Enabled', 'Suspended'
ALTER TABLE buckets ADD COLUMN object_lock BIGINT NOT NULL DEFAULT 0;
ALTER TABLE buckets ADD COLUMN lock_default_mode TEXT COLLATE "C";   -- default retention of new versions
ALTER TABLE buckets ADD COLUMN lock_default_days BIGINT;
ALTER TABLE buckets ADD COLUMN lock_default_years BIGINT;

CREATE TABLE objects_v (
    bucket            TEXT COLLATE "C"    NOT NULL REFERENCES buckets (name),
    object_key        TEXT COLLATE "C"    NOT NULL,
    version_id        TEXT COLLATE "C"    NOT NULL DEFAULT 'null',
    seq               BIGINT  NOT NULL DEFAULT 1,
    is_latest         BIGINT NOT NULL DEFAULT 1,
    delete_marker     BIGINT NOT NULL DEFAULT 0,
    size              BIGINT  NOT NULL,
    etag              TEXT COLLATE "C"    NOT NULL,
    last_modified_ms  BIGINT  NOT NULL,
    headers           TEXT COLLATE "C"    NOT NULL,
    user_metadata     TEXT COLLATE "C"    NOT NULL,
    checksums         TEXT COLLATE "C"    NOT NULL,
    data_key_id       TEXT COLLATE "C"    NOT NULL,
    key_version       BIGINT  NOT NULL,
    manifest_id       TEXT COLLATE "C",
    lock_mode         TEXT COLLATE "C",
    lock_until_ms     BIGINT,
    legal_hold        BIGINT NOT NULL DEFAULT 0,
    lock_record_id    TEXT COLLATE "C",
    PRIMARY KEY (bucket, object_key, version_id)
);
INSERT INTO objects_v (bucket, object_key, version_id, seq, is_latest, delete_marker, size, etag,
                       last_modified_ms, headers, user_metadata, checksums, data_key_id,
                       key_version, manifest_id)
SELECT bucket, object_key, 'null', 1, 1, 0, size, etag, last_modified_ms, headers, user_metadata,
       checksums, data_key_id, key_version, manifest_id
FROM objects;

CREATE TABLE object_streams_v (
    bucket         TEXT COLLATE "C"    NOT NULL,
    object_key     TEXT COLLATE "C"    NOT NULL,
    version_id     TEXT COLLATE "C"    NOT NULL DEFAULT 'null',
    seq            BIGINT  NOT NULL,
    part_number    BIGINT  NOT NULL,
    backend_id     TEXT COLLATE "C"    NOT NULL,
    header         BYTEA    NOT NULL,
    plaintext_len  BIGINT  NOT NULL,
    md5_hex        TEXT COLLATE "C"    NOT NULL,
    PRIMARY KEY (bucket, object_key, version_id, seq),
    FOREIGN KEY (bucket, object_key, version_id)
        REFERENCES objects_v (bucket, object_key, version_id) ON DELETE CASCADE
);
INSERT INTO object_streams_v (bucket, object_key, version_id, seq, part_number, backend_id, header,
                              plaintext_len, md5_hex)
SELECT bucket, object_key, 'null', seq, part_number, backend_id, header, plaintext_len, md5_hex
FROM object_streams;

DROP TABLE object_streams;
DROP TABLE objects;
ALTER TABLE objects_v RENAME TO objects;
ALTER TABLE object_streams_v RENAME TO object_streams;

CREATE INDEX objects_manifest_id ON objects (manifest_id);
CREATE INDEX objects_lock_record_id ON objects (lock_record_id);
-- the current, visible objects in key order (ListObjects)
CREATE INDEX objects_current ON objects (bucket, object_key) WHERE is_latest = 1 AND delete_marker = 0;
-- the versions of a key, newest first (ListObjectVersions, GET without versionId)
CREATE UNIQUE INDEX objects_by_seq ON objects (bucket, object_key, seq);
CREATE INDEX object_streams_backend_id ON object_streams (backend_id);
