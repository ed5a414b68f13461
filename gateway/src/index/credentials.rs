//! Index operations on S3 access keys (secrets stored sealed, never in the clear).

use audit::db::flag;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::{AccessKeyRecord, Index, IndexError, to_u64};

fn access_key_from_row(row: &AnyRow) -> Result<AccessKeyRecord, IndexError> {
    Ok(AccessKeyRecord {
        access_key_id: row.try_get("access_key_id")?,
        sealed_secret: row.try_get("sealed_secret")?,
        principal: row.try_get("principal")?,
        role: row.try_get("role")?,
        created_ms: row.try_get("created_ms")?,
        disabled: flag(row, "disabled")?,
    })
}

impl Index {
    /// Inserts an access key, or replaces the one with the same id (e.g. to disable it).
    pub async fn put_access_key(&self, rec: &AccessKeyRecord) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO access_keys (access_key_id, sealed_secret, principal, role, created_ms, disabled) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (access_key_id) DO UPDATE SET \
                 sealed_secret = excluded.sealed_secret, principal = excluded.principal, \
                 role = excluded.role, created_ms = excluded.created_ms, disabled = excluded.disabled",
        )
        .bind(&rec.access_key_id)
        .bind(&rec.sealed_secret)
        .bind(&rec.principal)
        .bind(&rec.role)
        .bind(rec.created_ms)
        .bind(i64::from(rec.disabled))
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// The access key, if it exists (disabled ones included; the caller checks `disabled`).
    pub async fn get_access_key(
        &self,
        access_key_id: &str,
    ) -> Result<Option<AccessKeyRecord>, IndexError> {
        let row = sqlx::query(
            "SELECT access_key_id, sealed_secret, principal, role, created_ms, \
             CAST(disabled AS BIGINT) AS disabled \
             FROM access_keys WHERE access_key_id = $1",
        )
        .bind(access_key_id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(access_key_from_row).transpose()
    }

    /// How many access keys exist (disabled ones included).
    pub async fn count_access_keys(&self) -> Result<u64, IndexError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM access_keys")
            .fetch_one(&self.read)
            .await?;
        to_u64(n, "access key count")
    }
}
