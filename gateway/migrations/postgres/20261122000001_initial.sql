-- PostgreSQL form of ../sqlite/20261122000001_initial.sql (same version, same schema): every integer is BIGINT (the
-- `Any` driver decodes them as i64), flags are BIGINT 0/1, blobs BYTEA, and every TEXT column
-- compares as bytes (COLLATE "C", like SQLite's BINARY collation: listings are in UTF-8 byte order).

-- Vaultgate metadata index, initial schema.
--
-- Times are milliseconds since the Unix epoch. Maps (headers, user metadata, checksums) are JSON
-- objects stored as TEXT; sealed-stream headers are raw bytes.

CREATE TABLE buckets (
    name        TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    owner       TEXT COLLATE "C"    NOT NULL,
    created_ms  BIGINT  NOT NULL
);

-- One row per visible object version (no versioning: at most one per bucket/key).
CREATE TABLE objects (
    bucket            TEXT COLLATE "C"    NOT NULL REFERENCES buckets (name),
    object_key        TEXT COLLATE "C"    NOT NULL,
    size              BIGINT  NOT NULL,
    etag              TEXT COLLATE "C"    NOT NULL,
    last_modified_ms  BIGINT  NOT NULL,
    headers           TEXT COLLATE "C"    NOT NULL,
    user_metadata     TEXT COLLATE "C"    NOT NULL,
    checksums         TEXT COLLATE "C"    NOT NULL,
    data_key_id       TEXT COLLATE "C"    NOT NULL,
    key_version       BIGINT  NOT NULL,
    manifest_id       TEXT COLLATE "C",
    PRIMARY KEY (bucket, object_key)
);
CREATE INDEX objects_manifest_id ON objects (manifest_id);

-- The sealed streams of an object, in order: one for a single PUT, the parts for multipart.
CREATE TABLE object_streams (
    bucket         TEXT COLLATE "C"    NOT NULL,
    object_key     TEXT COLLATE "C"    NOT NULL,
    seq            BIGINT  NOT NULL,
    part_number    BIGINT  NOT NULL,
    backend_id     TEXT COLLATE "C"    NOT NULL,
    header         BYTEA    NOT NULL,
    plaintext_len  BIGINT  NOT NULL,
    md5_hex        TEXT COLLATE "C"    NOT NULL,
    PRIMARY KEY (bucket, object_key, seq),
    FOREIGN KEY (bucket, object_key) REFERENCES objects (bucket, object_key) ON DELETE CASCADE
);
CREATE INDEX object_streams_backend_id ON object_streams (backend_id);

CREATE TABLE uploads (
    upload_id           TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    bucket              TEXT COLLATE "C"    NOT NULL REFERENCES buckets (name),
    object_key          TEXT COLLATE "C"    NOT NULL,
    object_id_hex       TEXT COLLATE "C"    NOT NULL,
    initiated_ms        BIGINT  NOT NULL,
    headers             TEXT COLLATE "C"    NOT NULL,
    user_metadata       TEXT COLLATE "C"    NOT NULL,
    checksum_algorithm  TEXT COLLATE "C",
    owner               TEXT COLLATE "C"    NOT NULL
);
CREATE INDEX uploads_by_key ON uploads (bucket, object_key, upload_id);

CREATE TABLE parts (
    upload_id         TEXT COLLATE "C"    NOT NULL REFERENCES uploads (upload_id) ON DELETE CASCADE,
    part_number       BIGINT  NOT NULL,
    backend_id        TEXT COLLATE "C"    NOT NULL,
    header            BYTEA    NOT NULL,
    size              BIGINT  NOT NULL,
    md5_hex           TEXT COLLATE "C"    NOT NULL,
    checksums         TEXT COLLATE "C"    NOT NULL,
    last_modified_ms  BIGINT  NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);
CREATE INDEX parts_backend_id ON parts (backend_id);

-- Bucket data keys, wrapped by a key-encryption key (keys::envelope::WrappedDataKey).
CREATE TABLE data_keys (
    id          TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    bucket      TEXT COLLATE "C"    NOT NULL,
    version     BIGINT  NOT NULL,
    kek_id      TEXT COLLATE "C"    NOT NULL,
    wrapped     BYTEA    NOT NULL,
    created_ms  BIGINT  NOT NULL,
    UNIQUE (bucket, version)
);

-- S3 access keys; the secret is sealed (keys::Keyring::seal_blob), never stored in the clear.
CREATE TABLE access_keys (
    access_key_id  TEXT COLLATE "C"     NOT NULL PRIMARY KEY,
    sealed_secret  BYTEA     NOT NULL,
    principal      TEXT COLLATE "C"     NOT NULL,
    role           TEXT COLLATE "C"     NOT NULL,
    created_ms     BIGINT   NOT NULL,
    disabled       BIGINT  NOT NULL
);

-- Backend ids no longer referenced, to be deleted from the backend. Written in the same
-- transaction that drops the reference, removed once the backend delete succeeded.
CREATE TABLE gc_queue (
    backend_id  TEXT COLLATE "C"    NOT NULL PRIMARY KEY,
    queued_ms   BIGINT  NOT NULL
);
