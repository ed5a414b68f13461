//! Index support for the offline operations in `crate::ops`: a `settings` table (which backend
//! holds the data, recorded by `vaultgate migrate`), the per-destination table of backend ids a
//! migration has copied and verified (so a rerun resumes), and the list of every referenced
//! backend id. The two tables are created on first use (`CREATE TABLE IF NOT EXISTS`), so an index
//! that never saw a migration is unchanged.

use std::collections::BTreeSet;

use sqlx::Row;

use super::{Index, IndexError, to_i64};

/// Settings row naming the backend URL that holds the data (written by `vaultgate migrate`).
pub const SETTING_BACKEND_URL: &str = "backend_url";

const CREATE_SETTINGS: &str =
    "CREATE TABLE IF NOT EXISTS settings (name TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)";
const CREATE_COPIED: &str = "CREATE TABLE IF NOT EXISTS migrate_copied (\
     destination TEXT NOT NULL, backend_id TEXT NOT NULL, size BIGINT NOT NULL, \
     sha256_hex TEXT NOT NULL, copied_ms BIGINT NOT NULL, PRIMARY KEY (destination, backend_id))";

impl Index {
    /// Creates the `settings` and `migrate_copied` tables if missing.
    pub async fn ensure_ops_tables(&self) -> Result<(), IndexError> {
        sqlx::query(CREATE_SETTINGS).execute(&self.write).await?;
        sqlx::query(CREATE_COPIED).execute(&self.write).await?;
        Ok(())
    }

    /// A settings value; None when unset or when the table was never created.
    pub async fn get_setting(&self, name: &str) -> Result<Option<String>, IndexError> {
        let exists = sqlx::query(self.dialect.table_exists())
            .bind("settings")
            .fetch_optional(&self.read)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("value")?),
            None => None,
        })
    }

    /// Sets a settings value (creates the table if needed).
    pub async fn set_setting(&self, name: &str, value: &str) -> Result<(), IndexError> {
        self.ensure_ops_tables().await?;
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(value)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Every backend id the index references: object streams, manifests, parts of uploads in
    /// progress (sorted, without duplicates). Queued garbage is not included.
    pub async fn referenced_backend_ids(&self) -> Result<Vec<String>, IndexError> {
        let rows = sqlx::query(
            "SELECT backend_id AS id FROM object_streams \
             UNION SELECT manifest_id AS id FROM objects WHERE manifest_id IS NOT NULL \
             UNION SELECT lock_record_id AS id FROM objects WHERE lock_record_id IS NOT NULL \
             UNION SELECT tag_record_id AS id FROM objects WHERE tag_record_id IS NOT NULL \
             UNION SELECT record_id AS id FROM bucket_settings WHERE record_id IS NOT NULL \
             UNION SELECT backend_id AS id FROM parts",
        )
        .fetch_all(&self.read)
        .await?;
        let mut out = BTreeSet::new();
        for r in rows {
            out.insert(r.try_get::<String, _>("id")?);
        }
        Ok(out.into_iter().collect())
    }

    /// Backend ids already copied to `destination` and verified (a previous, interrupted run).
    pub async fn migrate_copied(&self, destination: &str) -> Result<BTreeSet<String>, IndexError> {
        self.ensure_ops_tables().await?;
        let rows = sqlx::query("SELECT backend_id FROM migrate_copied WHERE destination = $1")
            .bind(destination)
            .fetch_all(&self.read)
            .await?;
        let mut out = BTreeSet::new();
        for r in rows {
            out.insert(r.try_get::<String, _>("backend_id")?);
        }
        Ok(out)
    }

    /// Records that `backend_id` was copied to `destination` and read back with this size and
    /// SHA-256.
    pub async fn mark_copied(
        &self,
        destination: &str,
        backend_id: &str,
        size: u64,
        sha256_hex: &str,
    ) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO migrate_copied (destination, backend_id, size, sha256_hex, copied_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (destination, backend_id) DO UPDATE SET \
             size = excluded.size, sha256_hex = excluded.sha256_hex, copied_ms = excluded.copied_ms",
        )
        .bind(destination)
        .bind(backend_id)
        .bind(to_i64(size, "size")?)
        .bind(sha256_hex)
        .bind(super::now_ms())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    /// Forgets the copy progress towards `destination` (after the switch).
    pub async fn clear_copied(&self, destination: &str) -> Result<(), IndexError> {
        self.ensure_ops_tables().await?;
        sqlx::query("DELETE FROM migrate_copied WHERE destination = $1")
            .bind(destination)
            .execute(&self.write)
            .await?;
        Ok(())
    }

    /// Whether the index holds no bucket at all (a fresh index, the target of a reindex).
    pub async fn is_empty(&self) -> Result<bool, IndexError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM buckets")
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get::<i64, _>("n")? == 0)
    }
}
