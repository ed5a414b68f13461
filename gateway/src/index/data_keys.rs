//! The index as the keyring's store of wrapped bucket data keys (`keys::DataKeyStore`, table
//! `data_keys`). Errors map onto the keys crate's: a database failure is `KeyUnavailable` (the
//! gateway answers 503), an undecodable row is `Format`.

use async_trait::async_trait;
use keys::{DataKeyId, DataKeyStore, WrappedDataKey};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::locks::retrying;
use super::{Index, IndexError, ObjectRecord, is_unique_violation, to_u32};

fn to_keys_error(e: IndexError) -> keys::Error {
    match e {
        IndexError::Corrupt(m) => keys::Error::Format(format!("data key store: {m}")),
        other => keys::Error::KeyUnavailable(format!("data key store: {other}")),
    }
}

fn key_from_row(row: &AnyRow) -> Result<WrappedDataKey, IndexError> {
    let id: String = row.try_get("id")?;
    let id = DataKeyId::from_hex(&id)
        .map_err(|e| IndexError::Corrupt(format!("data key id {id:?}: {e}")))?;
    Ok(WrappedDataKey {
        id,
        bucket: row.try_get("bucket")?,
        kms_key: row.try_get("kms_key")?,
        version: to_u32(row.try_get("version")?, "data key version")?,
        kek_id: row.try_get("kek_id")?,
        wrapped: row.try_get("wrapped")?,
        created_ms: row.try_get("created_ms")?,
    })
}

const COLUMNS: &str = "id, bucket, kms_key, version, kek_id, wrapped, created_ms";

/// The INSERT of `key`'s row; `if_first`: one that does nothing when the bucket has that
/// version of that KMS key already (another instance created it first).
fn insert_key(
    key: &WrappedDataKey,
    if_first: bool,
) -> sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments<'_>> {
    let sql = if if_first {
        "INSERT INTO data_keys (id, bucket, version, kek_id, wrapped, created_ms, kms_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (bucket, kms_key, version) DO NOTHING"
    } else {
        "INSERT INTO data_keys (id, bucket, version, kek_id, wrapped, created_ms, kms_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    };
    sqlx::query(sql)
        .bind(key.id.to_hex())
        .bind(&key.bucket)
        .bind(i64::from(key.version))
        .bind(&key.kek_id)
        .bind(&key.wrapped)
        .bind(key.created_ms)
        .bind(&key.kms_key)
}

impl Index {
    async fn data_key_query(
        &self,
        sql: &str,
        args: &[&str],
    ) -> Result<Option<WrappedDataKey>, IndexError> {
        let mut q = sqlx::query(sql);
        for a in args {
            q = q.bind(*a);
        }
        let row = q.fetch_optional(&self.read).await?;
        row.as_ref().map(key_from_row).transpose()
    }
}

#[async_trait]
impl DataKeyStore for Index {
    async fn current(&self, bucket: &str, kms_key: &str) -> keys::Result<Option<WrappedDataKey>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM data_keys WHERE bucket = $1 AND kms_key = $2 \
             ORDER BY version DESC LIMIT 1"
        );
        self.data_key_query(&sql, &[bucket, kms_key])
            .await
            .map_err(to_keys_error)
    }

    async fn get(&self, id: &DataKeyId) -> keys::Result<Option<WrappedDataKey>> {
        let sql = format!("SELECT {COLUMNS} FROM data_keys WHERE id = $1");
        self.data_key_query(&sql, &[&id.to_hex()])
            .await
            .map_err(to_keys_error)
    }

    /// Fails if the id or the (bucket, version) pair exists already.
    async fn insert(&self, key: &WrappedDataKey) -> keys::Result<()> {
        let result = insert_key(key, false).execute(&self.write).await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(keys::Error::KeyUnavailable(format!(
                "data key {} or version {} of bucket {} (KMS key {:?}) exists already",
                key.id.to_hex(),
                key.version,
                key.bucket,
                key.kms_key
            ))),
            Err(e) => Err(to_keys_error(e.into())),
        }
    }

    /// `INSERT … ON CONFLICT DO NOTHING`, then the key stored under (bucket, KMS key, version): two
    /// instances creating a bucket's first key at once both end with the one committed first
    /// (on PostgreSQL the second insert waits for the first's commit, then does nothing).
    async fn insert_first(&self, key: &WrappedDataKey) -> keys::Result<WrappedDataKey> {
        insert_key(key, true)
            .execute(&self.write)
            .await
            .map_err(|e| to_keys_error(e.into()))?;
        let sql = format!(
            "SELECT {COLUMNS} FROM data_keys WHERE bucket = $1 AND kms_key = $2 AND version = $3"
        );
        let row = sqlx::query(&sql)
            .bind(&key.bucket)
            .bind(&key.kms_key)
            .bind(i64::from(key.version))
            .fetch_optional(&self.write)
            .await
            .map_err(|e| to_keys_error(e.into()))?;
        match row {
            Some(row) => key_from_row(&row).map_err(to_keys_error),
            None => Err(keys::Error::KeyUnavailable(format!(
                "data key version {} of bucket {} was neither inserted nor found",
                key.version, key.bucket
            ))),
        }
    }

    async fn update_wrapping(
        &self,
        id: &DataKeyId,
        kek_id: &str,
        wrapped: &[u8],
    ) -> keys::Result<()> {
        let done = sqlx::query("UPDATE data_keys SET kek_id = $1, wrapped = $2 WHERE id = $3")
            .bind(kek_id)
            .bind(wrapped)
            .bind(id.to_hex())
            .execute(&self.write)
            .await
            .map_err(|e| to_keys_error(e.into()))?;
        if done.rows_affected() == 0 {
            return Err(keys::Error::KeyUnavailable(format!(
                "no data key {}",
                id.to_hex()
            )));
        }
        Ok(())
    }

    async fn list(&self) -> keys::Result<Vec<WrappedDataKey>> {
        let sql = format!("SELECT {COLUMNS} FROM data_keys ORDER BY bucket, kms_key, version");
        let rows = sqlx::query(&sql)
            .fetch_all(&self.read)
            .await
            .map_err(|e| to_keys_error(e.into()))?;
        rows.iter()
            .map(key_from_row)
            .collect::<Result<_, _>>()
            .map_err(to_keys_error)
    }
}

/// The current data key of one of a bucket's data key sequences (the provider's own key, or one
/// KMS key an SSE-KMS request named), for the admin API's key status (no key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeySummary {
    /// bucket name
    pub bucket: String,
    /// the KMS key (ARN) the sequence is bound to by SSE-KMS; empty: the provider's own key
    pub kms_key: String,
    /// current (newest) version
    pub version: u32,
    /// how many versions the sequence has
    pub versions: u32,
    /// the key-encryption key that wraps the current version
    pub kek_id: String,
    /// when the current version was created (its last rotation), Unix ms
    pub created_ms: i64,
}

impl Index {
    /// The current data key of every bucket under every key it has data keys under (the
    /// provider's own key first, then each KMS key): version, count of versions, KEK id,
    /// creation time.
    pub async fn data_key_summary(&self) -> Result<Vec<DataKeySummary>, IndexError> {
        let rows = sqlx::query(
            "SELECT d.bucket, d.kms_key, d.version, d.kek_id, d.created_ms, \
             (SELECT COUNT(*) FROM data_keys c \
               WHERE c.bucket = d.bucket AND c.kms_key = d.kms_key) AS versions \
             FROM data_keys d \
             WHERE d.version = (SELECT MAX(m.version) FROM data_keys m \
               WHERE m.bucket = d.bucket AND m.kms_key = d.kms_key) \
             ORDER BY d.bucket, d.kms_key",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DataKeySummary {
                    bucket: r.try_get("bucket")?,
                    kms_key: r.try_get("kms_key")?,
                    version: to_u32(r.try_get("version")?, "data key version")?,
                    versions: to_u32(r.try_get("versions")?, "data key versions")?,
                    kek_id: r.try_get("kek_id")?,
                    created_ms: r.try_get("created_ms")?,
                })
            })
            .collect()
    }
}

/// A version to re-seal under a newer data key ([`Index::reencrypt_candidates`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReencryptCandidate {
    /// object key
    pub key: String,
    /// version id
    pub version_id: String,
    /// plaintext bytes
    pub size: u64,
}

impl Index {
    /// Versions of `bucket` (delete markers included) not sealed under one of the bucket's data
    /// key versions `version` or newer (older versions, or another bucket's key through a
    /// shallow copy), after the cursor `after` (object key, version id), in key and version
    /// order, at most `limit`.
    pub async fn reencrypt_candidates(
        &self,
        bucket: &str,
        version: u32,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<ReencryptCandidate>, IndexError> {
        let (k, v) = after.unwrap_or(("", ""));
        let rows = sqlx::query(
            "SELECT object_key, version_id, size FROM objects \
             WHERE bucket = $1 AND data_key_id NOT IN \
                   (SELECT id FROM data_keys WHERE bucket = $1 AND version >= $2) \
               AND (object_key > $3 OR (object_key = $3 AND version_id > $4)) \
             ORDER BY object_key, version_id LIMIT $5",
        )
        .bind(bucket)
        .bind(i64::from(version))
        .bind(k)
        .bind(v)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ReencryptCandidate {
                    key: r.try_get("object_key")?,
                    version_id: r.try_get("version_id")?,
                    size: super::to_u64(r.try_get("size")?, "object size")?,
                })
            })
            .collect()
    }

    /// How many versions [`Index::reencrypt_candidates`] would list from the start, and their
    /// plaintext bytes.
    pub async fn reencrypt_remaining(
        &self,
        bucket: &str,
        version: u32,
    ) -> Result<(u64, u64), IndexError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM objects \
             WHERE bucket = $1 AND data_key_id NOT IN \
                 (SELECT id FROM data_keys WHERE bucket = $1 AND version >= $2)",
        )
        .bind(bucket)
        .bind(i64::from(version))
        .fetch_one(&self.read)
        .await?;
        Ok((
            super::to_u64(row.try_get("n")?, "count")?,
            super::to_u64(row.try_get("bytes")?, "bytes")?,
        ))
    }

    /// Points one version at its re-sealed streams (`new.streams`, `new.manifest_id`, under
    /// `new.data_key_id` / `new.key_version`), only if the version still references exactly
    /// `expected` (its stream backend ids in order, then its manifest id): an overwrite or a
    /// delete that raced the re-seal wins, and the answer is None (the caller deletes the new
    /// streams). Everything else of the version (id, ETag, size, metadata, tags, lock) is left
    /// as it is. Returns the backend ids now garbage (queued in the same transaction).
    pub async fn reseal_version(
        &self,
        expected: &[String],
        new: &ObjectRecord,
    ) -> Result<Option<Vec<String>>, IndexError> {
        retrying!(self.reseal_version_once(expected, new))
    }

    async fn reseal_version_once(
        &self,
        expected: &[String],
        new: &ObjectRecord,
    ) -> Result<Option<Vec<String>>, IndexError> {
        let mut tx = self
            .begin_write(self.locks().object(&new.bucket, &new.key))
            .await?;
        let manifest: Option<Option<String>> = sqlx::query_scalar(
            "SELECT manifest_id FROM objects \
             WHERE bucket = $1 AND object_key = $2 AND version_id = $3",
        )
        .bind(&new.bucket)
        .bind(&new.key)
        .bind(&new.version_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(manifest) = manifest else {
            return Ok(None);
        };
        let mut current: Vec<String> = sqlx::query_scalar(
            "SELECT backend_id FROM object_streams \
             WHERE bucket = $1 AND object_key = $2 AND version_id = $3 ORDER BY seq",
        )
        .bind(&new.bucket)
        .bind(&new.key)
        .bind(&new.version_id)
        .fetch_all(&mut *tx)
        .await?;
        current.extend(manifest);
        if current != expected {
            return Ok(None);
        }
        sqlx::query(
            "DELETE FROM object_streams WHERE bucket = $1 AND object_key = $2 AND version_id = $3",
        )
        .bind(&new.bucket)
        .bind(&new.key)
        .bind(&new.version_id)
        .execute(&mut *tx)
        .await?;
        super::objects::insert_streams(&mut tx, new).await?;
        sqlx::query(
            "UPDATE objects SET data_key_id = $4, key_version = $5, manifest_id = $6 \
             WHERE bucket = $1 AND object_key = $2 AND version_id = $3",
        )
        .bind(&new.bucket)
        .bind(&new.key)
        .bind(&new.version_id)
        .bind(&new.data_key_id)
        .bind(i64::from(new.key_version))
        .bind(new.manifest_id.as_deref())
        .execute(&mut *tx)
        .await?;
        let garbage = super::objects::queue_garbage(&mut tx, expected.to_vec()).await?;
        tx.commit().await?;
        Ok(Some(garbage))
    }
}
