//! Index operations of the lifecycle worker: the versions of a bucket in key order (a page of
//! keys at a time, every version of each key, newest first), and the two changes an expiry
//! makes, each conditional on the state the worker saw, so that a version written since is
//! never expired by a decision about its predecessor: a delete marker added only while the
//! version it hides is still the latest, a version removed only while it is unchanged. Object
//! lock is checked in the same transaction as for any delete (a locked version is never removed).

use audit::db::flag;
use sqlx::Row;

use super::locks::retrying;
use super::objects::{delete_version_in, put_object_in};
use super::tags::TAGGING_HEADER;
use super::{DeletedVersion, Index, IndexError, LockMode, ObjectLock, ObjectRecord, map_from_json};

/// One version as the lifecycle worker sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleVersion {
    pub key: String,
    pub version_id: String,
    pub is_latest: bool,
    pub delete_marker: bool,
    pub size: u64,
    pub last_modified_ms: i64,
    /// the URL-encoded tag set (empty when none)
    pub tagging: String,
    pub lock: ObjectLock,
}

impl Index {
    /// The versions of the (at most `max_keys`) keys of `bucket` after `after` in key order,
    /// each key's versions newest first.
    pub async fn lifecycle_versions(
        &self,
        bucket: &str,
        after: &str,
        max_keys: u32,
    ) -> Result<Vec<LifecycleVersion>, IndexError> {
        let rows = sqlx::query(
            "SELECT object_key, version_id, CAST(is_latest AS BIGINT) AS is_latest, CAST(delete_marker AS BIGINT) AS delete_marker, size, last_modified_ms, \
                    headers, lock_mode, lock_until_ms, CAST(legal_hold AS BIGINT) AS legal_hold \
             FROM objects WHERE bucket = $1 AND object_key IN \
                (SELECT DISTINCT object_key FROM objects WHERE bucket = $1 AND object_key > $2 \
                 ORDER BY object_key LIMIT $3) \
             ORDER BY object_key, seq DESC",
        )
        .bind(bucket)
        .bind(after)
        .bind(i64::from(max_keys))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                let headers = map_from_json(&r.try_get::<String, _>("headers")?, "headers")?;
                let mode: Option<String> = r.try_get("lock_mode")?;
                let until: Option<i64> = r.try_get("lock_until_ms")?;
                let retention = match (mode.as_deref().and_then(LockMode::parse), until) {
                    (Some(m), Some(u)) => Some((m, u)),
                    _ => None,
                };
                Ok(LifecycleVersion {
                    key: r.try_get("object_key")?,
                    version_id: r.try_get("version_id")?,
                    is_latest: flag(r, "is_latest")?,
                    delete_marker: flag(r, "delete_marker")?,
                    size: super::to_u64(r.try_get("size")?, "object size")?,
                    last_modified_ms: r.try_get("last_modified_ms")?,
                    tagging: headers.get(TAGGING_HEADER).cloned().unwrap_or_default(),
                    lock: ObjectLock {
                        retention,
                        legal_hold: flag(r, "legal_hold")?,
                    },
                })
            })
            .collect()
    }

    /// Writes the delete marker `rec` as the latest version of its key only while
    /// `expect_latest` (version id and last-modified time) is still the key's latest version.
    /// Returns the backend ids now garbage (a replaced `null` version), or `Ok(None)` when the
    /// key changed (nothing written). `Locked` if it would replace a locked `null` version.
    pub async fn put_marker_if_latest(
        &self,
        rec: &ObjectRecord,
        expect_latest: (&str, i64),
    ) -> Result<Option<Vec<String>>, IndexError> {
        retrying!(self.put_marker_if_latest_once(rec, expect_latest))
    }

    async fn put_marker_if_latest_once(
        &self,
        rec: &ObjectRecord,
        expect_latest: (&str, i64),
    ) -> Result<Option<Vec<String>>, IndexError> {
        let locks = self
            .locks()
            .bucket_shared(&rec.bucket)
            .object(&rec.bucket, &rec.key);
        let mut tx = self.begin_write(locks).await?;
        let latest = sqlx::query(
            "SELECT version_id, last_modified_ms FROM objects \
             WHERE bucket = $1 AND object_key = $2 AND is_latest = 1",
        )
        .bind(&rec.bucket)
        .bind(&rec.key)
        .fetch_optional(&mut *tx)
        .await?;
        let unchanged = match latest {
            Some(r) => {
                r.try_get::<String, _>("version_id")? == expect_latest.0
                    && r.try_get::<i64, _>("last_modified_ms")? == expect_latest.1
            }
            None => false,
        };
        if !unchanged {
            return Ok(None);
        }
        let garbage = put_object_in(&mut tx, rec, None).await?;
        tx.commit().await?;
        Ok(Some(garbage))
    }

    /// Deletes one version for good only while it still has the last-modified time
    /// `expect_modified_ms` (a `null` version rewritten since is left alone); the newest
    /// remaining version becomes the latest. `Ok(None)` when it is gone or changed; `Locked`
    /// while object lock protects it (never bypassed).
    pub async fn delete_version_if(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        expect_modified_ms: i64,
    ) -> Result<Option<DeletedVersion>, IndexError> {
        retrying!(self.delete_version_if_once(bucket, key, version_id, expect_modified_ms))
    }

    async fn delete_version_if_once(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        expect_modified_ms: i64,
    ) -> Result<Option<DeletedVersion>, IndexError> {
        let mut tx = self.begin_write(self.locks().object(bucket, key)).await?;
        let modified: Option<i64> = sqlx::query_scalar(
            "SELECT last_modified_ms FROM objects \
             WHERE bucket = $1 AND object_key = $2 AND version_id = $3",
        )
        .bind(bucket)
        .bind(key)
        .bind(version_id)
        .fetch_optional(&mut *tx)
        .await?;
        if modified != Some(expect_modified_ms) {
            return Ok(None);
        }
        let deleted = delete_version_in(&mut tx, bucket, key, version_id, false, None).await?;
        tx.commit().await?;
        Ok(deleted)
    }
}
