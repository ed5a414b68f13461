//! Index operations on multipart uploads: create, get, list; parts (put, list); complete (the
//! upload becomes an object atomically) and abort. Each part is its own backend object; parts
//! replaced, not chosen at completion, or aborted go to the gc queue in the same transaction.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::locks::{LockSet, retrying};
use super::objects::{Tx, check_condition, queue_garbage, require_bucket, write_version};
use super::{
    Index, IndexError, ObjectRecord, PartRecord, UploadRecord, WriteCondition, is_unique_violation,
    map_from_json, map_to_json, prefix_successor, to_i64, to_u32, to_u64,
};

fn upload_from_row(row: &AnyRow) -> Result<UploadRecord, IndexError> {
    let headers: String = row.try_get("headers")?;
    let user_metadata: String = row.try_get("user_metadata")?;
    Ok(UploadRecord {
        bucket: row.try_get("bucket")?,
        key: row.try_get("object_key")?,
        upload_id: row.try_get("upload_id")?,
        object_id_hex: row.try_get("object_id_hex")?,
        initiated_ms: row.try_get("initiated_ms")?,
        headers: map_from_json(&headers, "upload headers")?,
        user_metadata: map_from_json(&user_metadata, "upload user metadata")?,
        checksum_algorithm: row.try_get("checksum_algorithm")?,
        checksum_type: row.try_get("checksum_type")?,
        owner: row.try_get("owner")?,
    })
}

fn part_from_row(bucket: &str, row: &AnyRow) -> Result<PartRecord, IndexError> {
    let checksums: String = row.try_get("checksums")?;
    Ok(PartRecord {
        bucket: bucket.to_string(),
        upload_id: row.try_get("upload_id")?,
        part_number: to_u32(row.try_get("part_number")?, "part number")?,
        backend_id: row.try_get("backend_id")?,
        header: row.try_get("header")?,
        size: to_u64(row.try_get("size")?, "part size")?,
        md5_hex: row.try_get("md5_hex")?,
        checksums: map_from_json(&checksums, "part checksums")?,
        last_modified_ms: row.try_get("last_modified_ms")?,
    })
}

const UPLOAD_COLUMNS: &str = "upload_id, bucket, object_key, object_id_hex, initiated_ms, headers, \
                              user_metadata, checksum_algorithm, checksum_type, owner";

/// The key of the upload, or NoSuchUpload if `upload_id` is not an upload of `bucket`.
async fn upload_key(tx: &mut Tx, bucket: &str, upload_id: &str) -> Result<String, IndexError> {
    let key: Option<String> =
        sqlx::query_scalar("SELECT object_key FROM uploads WHERE upload_id = $1 AND bucket = $2")
            .bind(upload_id)
            .bind(bucket)
            .fetch_optional(&mut **tx)
            .await?;
    key.ok_or_else(|| IndexError::NoSuchUpload(upload_id.to_string()))
}

/// Removes the upload and its parts; returns the parts' backend ids.
async fn remove_upload(tx: &mut Tx, upload_id: &str) -> Result<Vec<String>, IndexError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT backend_id FROM parts WHERE upload_id = $1 ORDER BY part_number",
    )
    .bind(upload_id)
    .fetch_all(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM uploads WHERE upload_id = $1")
        .bind(upload_id)
        .execute(&mut **tx)
        .await?;
    Ok(ids)
}

impl Index {
    /// The locks of every write of an upload: its bucket shared (a bucket delete aborts the
    /// bucket's uploads) and the upload.
    fn upload_locks(&self, bucket: &str, upload_id: &str) -> LockSet {
        self.locks().bucket_shared(bucket).upload(upload_id)
    }

    /// Records a new multipart upload. `NotFound` if the bucket does not exist, `AlreadyExists`
    /// if the upload id is taken.
    pub async fn create_upload(&self, rec: &UploadRecord) -> Result<(), IndexError> {
        retrying!(self.create_upload_once(rec))
    }

    async fn create_upload_once(&self, rec: &UploadRecord) -> Result<(), IndexError> {
        let mut tx = self
            .begin_write(self.upload_locks(&rec.bucket, &rec.upload_id))
            .await?;
        require_bucket(&mut tx, &rec.bucket).await?;
        let result = sqlx::query(
            "INSERT INTO uploads (upload_id, bucket, object_key, object_id_hex, initiated_ms, headers, \
                                  user_metadata, checksum_algorithm, owner, checksum_type) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&rec.upload_id)
        .bind(&rec.bucket)
        .bind(&rec.key)
        .bind(&rec.object_id_hex)
        .bind(rec.initiated_ms)
        .bind(map_to_json(&rec.headers)?)
        .bind(map_to_json(&rec.user_metadata)?)
        .bind(rec.checksum_algorithm.as_deref())
        .bind(&rec.owner)
        .bind(rec.checksum_type.as_deref())
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(IndexError::AlreadyExists(rec.upload_id.clone()));
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(())
    }

    /// The upload, if `upload_id` is an in-progress upload of `bucket`.
    pub async fn get_upload(
        &self,
        bucket: &str,
        upload_id: &str,
    ) -> Result<Option<UploadRecord>, IndexError> {
        let row = sqlx::query(&format!(
            "SELECT {UPLOAD_COLUMNS} FROM uploads WHERE upload_id = $1 AND bucket = $2"
        ))
        .bind(upload_id)
        .bind(bucket)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(upload_from_row).transpose()
    }

    /// Records an uploaded part (replacing an earlier upload of the same part number). Returns the
    /// backend id of the replaced part, now garbage (also queued in `gc_queue`). `NoSuchUpload` if
    /// the upload is gone (completed or aborted meanwhile): the caller then deletes its new part.
    pub async fn put_part(&self, part: &PartRecord) -> Result<Option<String>, IndexError> {
        retrying!(self.put_part_once(part))
    }

    /// One run of `put_part`. The upload lock makes the read of the replaced part and the
    /// write of the new one one step across instances (two uploads of one part number: each
    /// replaced id is garbage once), and a completion or abort either sees this part or runs
    /// before it (then the upload is gone: `NoSuchUpload`).
    async fn put_part_once(&self, part: &PartRecord) -> Result<Option<String>, IndexError> {
        let mut tx = self
            .begin_write(self.upload_locks(&part.bucket, &part.upload_id))
            .await?;
        upload_key(&mut tx, &part.bucket, &part.upload_id).await?;
        let old: Option<String> = sqlx::query_scalar(
            "SELECT backend_id FROM parts WHERE upload_id = $1 AND part_number = $2",
        )
        .bind(&part.upload_id)
        .bind(i64::from(part.part_number))
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO parts (upload_id, part_number, backend_id, header, size, md5_hex, checksums, \
                                last_modified_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (upload_id, part_number) DO UPDATE SET \
                 backend_id = excluded.backend_id, header = excluded.header, size = excluded.size, \
                 md5_hex = excluded.md5_hex, checksums = excluded.checksums, \
                 last_modified_ms = excluded.last_modified_ms",
        )
        .bind(&part.upload_id)
        .bind(i64::from(part.part_number))
        .bind(&part.backend_id)
        .bind(&part.header)
        .bind(to_i64(part.size, "part size")?)
        .bind(&part.md5_hex)
        .bind(map_to_json(&part.checksums)?)
        .bind(part.last_modified_ms)
        .execute(&mut *tx)
        .await?;
        let garbage = queue_garbage(&mut tx, old.into_iter().collect()).await?;
        tx.commit().await?;
        Ok(garbage.into_iter().next())
    }

    /// Parts with a number greater than `after`, in order, at most `max`. `NoSuchUpload` if the
    /// upload does not exist.
    pub async fn list_parts(
        &self,
        bucket: &str,
        upload_id: &str,
        after: u32,
        max: u32,
    ) -> Result<Vec<PartRecord>, IndexError> {
        let rows = sqlx::query(
            "SELECT p.upload_id, p.part_number, p.backend_id, p.header, p.size, p.md5_hex, p.checksums, \
                    p.last_modified_ms \
             FROM parts p JOIN uploads u ON u.upload_id = p.upload_id \
             WHERE p.upload_id = $1 AND u.bucket = $2 AND p.part_number > $3 \
             ORDER BY p.part_number LIMIT $4",
        )
        .bind(upload_id)
        .bind(bucket)
        .bind(i64::from(after))
        .bind(i64::from(max))
        .fetch_all(&self.read)
        .await?;
        if rows.is_empty() && self.get_upload(bucket, upload_id).await?.is_none() {
            return Err(IndexError::NoSuchUpload(upload_id.to_string()));
        }
        rows.iter().map(|r| part_from_row(bucket, r)).collect()
    }

    /// In-progress uploads of `bucket` whose key starts with `prefix`, ordered by key then upload
    /// id, at most `max` (ask for one more to learn whether the list is truncated). With
    /// `key_marker`, only uploads after it: keys greater than the marker, or, when
    /// `upload_id_marker` is given too, the marker key's uploads with a greater upload id.
    pub async fn list_uploads(
        &self,
        bucket: &str,
        prefix: &str,
        key_marker: Option<&str>,
        upload_id_marker: Option<&str>,
        max: u32,
    ) -> Result<Vec<UploadRecord>, IndexError> {
        let upper = prefix_successor(prefix);
        let mut sql =
            format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE bucket = $1 AND object_key >= $2");
        let mut n = 2;
        if upper.is_some() {
            n += 1;
            sql.push_str(&format!(" AND object_key < ${n}"));
        }
        match (key_marker, upload_id_marker) {
            (Some(_), Some(_)) => {
                sql.push_str(&format!(
                    " AND (object_key > ${a} OR (object_key = ${a} AND upload_id > ${b}))",
                    a = n + 1,
                    b = n + 2
                ));
                n += 2;
            }
            (Some(_), None) => {
                n += 1;
                sql.push_str(&format!(" AND object_key > ${n}"));
            }
            _ => {}
        }
        sql.push_str(&format!(" ORDER BY object_key, upload_id LIMIT ${}", n + 1));
        let mut query = sqlx::query(&sql).bind(bucket).bind(prefix);
        if let Some(up) = upper.as_deref() {
            query = query.bind(up);
        }
        if let Some(km) = key_marker {
            query = query.bind(km);
            if let Some(um) = upload_id_marker {
                query = query.bind(um);
            }
        }
        let rows = query.bind(i64::from(max)).fetch_all(&self.read).await?;
        rows.iter().map(upload_from_row).collect()
    }

    /// Atomically turns the upload into the object `rec` (inserting or replacing it) and removes
    /// the upload and its parts. Returns the backend ids now garbage: the replaced object's
    /// streams and the parts `rec` does not use (also queued in `gc_queue`). `NoSuchUpload` if
    /// the upload does not exist in `bucket` or is for another key.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        upload_id: &str,
        rec: &ObjectRecord,
    ) -> Result<Vec<String>, IndexError> {
        self.complete_upload_if(bucket, upload_id, rec, None).await
    }

    /// `complete_upload` when `cond` holds over the key's current object, checked in the same
    /// transaction (`PreconditionFailed` / `NoCurrentObject` otherwise: the upload stays).
    pub async fn complete_upload_if(
        &self,
        bucket: &str,
        upload_id: &str,
        rec: &ObjectRecord,
        cond: Option<&WriteCondition>,
    ) -> Result<Vec<String>, IndexError> {
        retrying!(self.complete_upload_once(bucket, upload_id, rec, cond))
    }

    /// One run of `complete_upload`: the upload locked (a racing abort, part or second
    /// completion runs wholly before or after: one outcome) and the object key (the new version
    /// is written as any put of the key).
    async fn complete_upload_once(
        &self,
        bucket: &str,
        upload_id: &str,
        rec: &ObjectRecord,
        cond: Option<&WriteCondition>,
    ) -> Result<Vec<String>, IndexError> {
        let locks = self
            .upload_locks(bucket, upload_id)
            .object(&rec.bucket, &rec.key);
        let mut tx = self.begin_write(locks).await?;
        let key = upload_key(&mut tx, bucket, upload_id).await?;
        if key != rec.key || rec.bucket != bucket {
            return Err(IndexError::NoSuchUpload(format!(
                "{upload_id} is not an upload of {bucket}/{}",
                rec.key
            )));
        }
        check_condition(&mut tx, bucket, &rec.key, cond).await?;
        let part_ids = remove_upload(&mut tx, upload_id).await?;
        let mut candidates = write_version(&mut tx, rec, super::now_ms()).await?;
        candidates.extend(part_ids);
        let garbage = queue_garbage(&mut tx, candidates).await?;
        tx.commit().await?;
        Ok(garbage)
    }

    /// Removes the upload and its parts; returns the parts' backend ids, now garbage (also
    /// queued). `NoSuchUpload` if it does not exist.
    pub async fn abort_upload(
        &self,
        bucket: &str,
        upload_id: &str,
    ) -> Result<Vec<String>, IndexError> {
        retrying!(self.abort_upload_once(bucket, upload_id))
    }

    async fn abort_upload_once(
        &self,
        bucket: &str,
        upload_id: &str,
    ) -> Result<Vec<String>, IndexError> {
        let mut tx = self
            .begin_write(self.upload_locks(bucket, upload_id))
            .await?;
        upload_key(&mut tx, bucket, upload_id).await?;
        let part_ids = remove_upload(&mut tx, upload_id).await?;
        let garbage = queue_garbage(&mut tx, part_ids).await?;
        tx.commit().await?;
        Ok(garbage)
    }
}
