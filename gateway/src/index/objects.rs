//! Index operations on objects: atomic put (insert or replace), get, delete; and the shared
//! transaction steps that replace an object's row and queue the backend ids it no longer needs.
//!
//! A put or delete is one transaction (a savepoint in the writer's group commit, see `writer.rs`): the old row and its streams go, the new ones come, and the
//! backend ids nobody references any more are written to `gc_queue` in the same transaction and
//! returned to the caller, who deletes them from the backend and then calls `gc_done`.

use std::collections::HashSet;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};

use super::writer::Job;
use super::{
    Index, IndexError, ObjectRecord, StreamRecord, map_from_json, map_to_json, now_ms, to_i64,
    to_u32, to_u64,
};

pub(crate) type Tx = Transaction<'static, Sqlite>;

/// Fails with NotFound unless the bucket exists (inside a write transaction).
pub(crate) async fn require_bucket(
    conn: &mut SqliteConnection,
    bucket: &str,
) -> Result<(), IndexError> {
    let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM buckets WHERE name = $1) AS present")
        .bind(bucket)
        .fetch_one(&mut *conn)
        .await?;
    if row.try_get::<bool, _>("present")? {
        Ok(())
    } else {
        Err(IndexError::NotFound(bucket.to_string()))
    }
}

/// Removes the object row (and, by cascade, its streams) if present. Returns None if there was no
/// such object, else the backend ids it referenced.
pub(crate) async fn remove_object_row(
    conn: &mut SqliteConnection,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<String>>, IndexError> {
    let mut ids: Vec<String> = sqlx::query_scalar(
        "SELECT backend_id FROM object_streams WHERE bucket = $1 AND object_key = $2 ORDER BY seq",
    )
    .bind(bucket)
    .bind(key)
    .fetch_all(&mut *conn)
    .await?;
    let deleted: Option<Option<String>> = sqlx::query_scalar(
        "DELETE FROM objects WHERE bucket = $1 AND object_key = $2 RETURNING manifest_id",
    )
    .bind(bucket)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    match deleted {
        None => Ok(None),
        Some(manifest) => {
            ids.extend(manifest);
            Ok(Some(ids))
        }
    }
}

/// Inserts the object row and its streams (the caller removed any previous row).
pub(crate) async fn insert_object_row(
    conn: &mut SqliteConnection,
    rec: &ObjectRecord,
) -> Result<(), IndexError> {
    sqlx::query(
        "INSERT INTO objects (bucket, object_key, size, etag, last_modified_ms, headers, user_metadata, \
                              checksums, data_key_id, key_version, manifest_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(&rec.bucket)
    .bind(&rec.key)
    .bind(to_i64(rec.size, "object size")?)
    .bind(&rec.etag)
    .bind(rec.last_modified_ms)
    .bind(map_to_json(&rec.headers)?)
    .bind(map_to_json(&rec.user_metadata)?)
    .bind(map_to_json(&rec.checksums)?)
    .bind(&rec.data_key_id)
    .bind(i64::from(rec.key_version))
    .bind(rec.manifest_id.as_deref())
    .execute(&mut *conn)
    .await?;
    for (seq, s) in rec.streams.iter().enumerate() {
        sqlx::query(
            "INSERT INTO object_streams (bucket, object_key, seq, part_number, backend_id, header, \
                                         plaintext_len, md5_hex) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&rec.bucket)
        .bind(&rec.key)
        .bind(to_i64(seq as u64, "stream index")?)
        .bind(i64::from(s.part_number))
        .bind(&s.backend_id)
        .bind(&s.header)
        .bind(to_i64(s.plaintext_len, "stream length")?)
        .bind(&s.md5_hex)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Whether an object, a manifest or a part still references `id` (the gc queue not counted).
pub(crate) async fn referenced_by_data(
    conn: &mut SqliteConnection,
    id: &str,
) -> Result<bool, IndexError> {
    let row = sqlx::query(
        "SELECT EXISTS (SELECT 1 FROM object_streams WHERE backend_id = $1) \
             OR EXISTS (SELECT 1 FROM objects WHERE manifest_id = $1) \
             OR EXISTS (SELECT 1 FROM parts WHERE backend_id = $1) AS used",
    )
    .bind(id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.try_get("used")?)
}

/// Queues those of `candidates` that nothing references any more for garbage collection and
/// returns them (deduplicated, in first-seen order).
pub(crate) async fn queue_garbage(
    conn: &mut SqliteConnection,
    candidates: Vec<String>,
) -> Result<Vec<String>, IndexError> {
    let mut seen = HashSet::new();
    let mut garbage = Vec::new();
    let queued_ms = now_ms();
    for id in candidates {
        if !seen.insert(id.clone()) || referenced_by_data(conn, &id).await? {
            continue;
        }
        sqlx::query("INSERT INTO gc_queue (backend_id, queued_ms) VALUES ($1, $2) ON CONFLICT (backend_id) DO NOTHING")
            .bind(&id)
            .bind(queued_ms)
            .execute(&mut *conn)
            .await?;
        garbage.push(id);
    }
    Ok(garbage)
}

fn object_from_rows(
    bucket: &str,
    key: &str,
    rows: &[SqliteRow],
) -> Result<Option<ObjectRecord>, IndexError> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let headers: String = first.try_get("headers")?;
    let user_metadata: String = first.try_get("user_metadata")?;
    let checksums: String = first.try_get("checksums")?;
    let mut rec = ObjectRecord {
        bucket: bucket.to_string(),
        key: key.to_string(),
        size: to_u64(first.try_get("size")?, "object size")?,
        etag: first.try_get("etag")?,
        last_modified_ms: first.try_get("last_modified_ms")?,
        headers: map_from_json(&headers, "headers")?,
        user_metadata: map_from_json(&user_metadata, "user metadata")?,
        checksums: map_from_json(&checksums, "checksums")?,
        data_key_id: first.try_get("data_key_id")?,
        key_version: to_u32(first.try_get("key_version")?, "key version")?,
        streams: Vec::with_capacity(rows.len()),
        manifest_id: first.try_get("manifest_id")?,
    };
    for row in rows {
        // LEFT JOIN: an object without streams yields one row of NULLs.
        let Some(backend_id) = row.try_get::<Option<String>, _>("backend_id")? else {
            continue;
        };
        rec.streams.push(StreamRecord {
            backend_id,
            part_number: to_u32(
                row.try_get::<Option<i64>, _>("part_number")?.unwrap_or(0),
                "part number",
            )?,
            header: row
                .try_get::<Option<Vec<u8>>, _>("header")?
                .unwrap_or_default(),
            plaintext_len: to_u64(
                row.try_get::<Option<i64>, _>("plaintext_len")?.unwrap_or(0),
                "stream length",
            )?,
            md5_hex: row
                .try_get::<Option<String>, _>("md5_hex")?
                .unwrap_or_default(),
        });
    }
    Ok(Some(rec))
}

impl Index {
    /// Inserts or atomically replaces an object. Readers see the old record or the new one, never a
    /// mix. Returns the backend ids of the replaced object that are now garbage (also queued in
    /// `gc_queue` in the same transaction). `NotFound` if the bucket does not exist. Group-committed
    /// by the index writer: returns once the transaction holding it has committed.
    pub async fn put_object(&self, rec: &ObjectRecord) -> Result<Vec<String>, IndexError> {
        let rec = Box::new(rec.clone());
        self.writer
            .submit(|reply| Job::PutObject { rec, reply })
            .await
    }

    /// The object, if it exists (one query).
    pub async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectRecord>, IndexError> {
        let rows = sqlx::query(
            "SELECT o.size, o.etag, o.last_modified_ms, o.headers, o.user_metadata, o.checksums, \
                    o.data_key_id, o.key_version, o.manifest_id, \
                    s.part_number, s.backend_id, s.header, s.plaintext_len, s.md5_hex \
             FROM objects o \
             LEFT JOIN object_streams s ON s.bucket = o.bucket AND s.object_key = o.object_key \
             WHERE o.bucket = $1 AND o.object_key = $2 \
             ORDER BY s.seq",
        )
        .bind(bucket)
        .bind(key)
        .fetch_all(&self.read)
        .await?;
        object_from_rows(bucket, key, &rows)
    }

    /// Deletes an object. None if it did not exist; otherwise the backend ids now garbage (also
    /// queued in `gc_queue` in the same transaction). Group-committed like `put_object`.
    pub async fn delete_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<String>>, IndexError> {
        let (bucket, key) = (bucket.to_string(), key.to_string());
        self.writer
            .submit(|reply| Job::DeleteObject { bucket, key, reply })
            .await
    }
}

/// The statements of `Index::put_object`, inside the writer's transaction.
pub(crate) async fn put_object_in(
    conn: &mut SqliteConnection,
    rec: &ObjectRecord,
) -> Result<Vec<String>, IndexError> {
    require_bucket(conn, &rec.bucket).await?;
    let old = remove_object_row(conn, &rec.bucket, &rec.key)
        .await?
        .unwrap_or_default();
    insert_object_row(conn, rec).await?;
    queue_garbage(conn, old).await
}

/// The statements of `Index::delete_object`, inside the writer's transaction.
pub(crate) async fn delete_object_in(
    conn: &mut SqliteConnection,
    bucket: &str,
    key: &str,
) -> Result<Option<Vec<String>>, IndexError> {
    match remove_object_row(conn, bucket, key).await? {
        None => Ok(None),
        Some(old) => Ok(Some(queue_garbage(conn, old).await?)),
    }
}
