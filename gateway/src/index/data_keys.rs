//! The index as the keyring's store of wrapped bucket data keys (`keys::DataKeyStore`, table
//! `data_keys`). Errors map onto the keys crate's: a database failure is `KeyUnavailable` (the
//! gateway answers 503), an undecodable row is `Format`.

use async_trait::async_trait;
use keys::{DataKeyId, DataKeyStore, WrappedDataKey};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Index, IndexError, is_unique_violation, to_u32};

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
        version: to_u32(row.try_get("version")?, "data key version")?,
        kek_id: row.try_get("kek_id")?,
        wrapped: row.try_get("wrapped")?,
        created_ms: row.try_get("created_ms")?,
    })
}

const COLUMNS: &str = "id, bucket, version, kek_id, wrapped, created_ms";

impl Index {
    async fn data_key_query(
        &self,
        sql: &str,
        arg: &str,
    ) -> Result<Option<WrappedDataKey>, IndexError> {
        let row = sqlx::query(sql)
            .bind(arg)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }
}

#[async_trait]
impl DataKeyStore for Index {
    async fn current(&self, bucket: &str) -> keys::Result<Option<WrappedDataKey>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM data_keys WHERE bucket = $1 ORDER BY version DESC LIMIT 1"
        );
        self.data_key_query(&sql, bucket)
            .await
            .map_err(to_keys_error)
    }

    async fn get(&self, id: &DataKeyId) -> keys::Result<Option<WrappedDataKey>> {
        let sql = format!("SELECT {COLUMNS} FROM data_keys WHERE id = $1");
        self.data_key_query(&sql, &id.to_hex())
            .await
            .map_err(to_keys_error)
    }

    /// Fails if the id or the (bucket, version) pair exists already.
    async fn insert(&self, key: &WrappedDataKey) -> keys::Result<()> {
        let result = sqlx::query(
            "INSERT INTO data_keys (id, bucket, version, kek_id, wrapped, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(key.id.to_hex())
        .bind(&key.bucket)
        .bind(i64::from(key.version))
        .bind(&key.kek_id)
        .bind(&key.wrapped)
        .bind(key.created_ms)
        .execute(&self.write)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(keys::Error::KeyUnavailable(format!(
                "data key {} or version {} of bucket {} exists already",
                key.id.to_hex(),
                key.version,
                key.bucket
            ))),
            Err(e) => Err(to_keys_error(e.into())),
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
        let sql = format!("SELECT {COLUMNS} FROM data_keys ORDER BY bucket, version");
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

/// The current data key of one bucket, for the admin API's key status (no key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeySummary {
    /// bucket name
    pub bucket: String,
    /// current (newest) version
    pub version: u32,
    /// how many versions the bucket has
    pub versions: u32,
    /// the key-encryption key that wraps the current version
    pub kek_id: String,
    /// when the current version was created (its last rotation), Unix ms
    pub created_ms: i64,
}

impl Index {
    /// Every bucket's current data key: version, count of versions, KEK id, creation time.
    pub async fn data_key_summary(&self) -> Result<Vec<DataKeySummary>, IndexError> {
        let rows = sqlx::query(
            "SELECT d.bucket, d.version, d.kek_id, d.created_ms, \
             (SELECT COUNT(*) FROM data_keys c WHERE c.bucket = d.bucket) AS versions \
             FROM data_keys d \
             WHERE d.version = (SELECT MAX(m.version) FROM data_keys m WHERE m.bucket = d.bucket) \
             ORDER BY d.bucket",
        )
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DataKeySummary {
                    bucket: r.try_get("bucket")?,
                    version: to_u32(r.try_get("version")?, "data key version")?,
                    versions: to_u32(r.try_get("versions")?, "data key versions")?,
                    kek_id: r.try_get("kek_id")?,
                    created_ms: r.try_get("created_ms")?,
                })
            })
            .collect()
    }
}
