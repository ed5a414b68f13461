//! Index operations on buckets: create, get, list, delete (refused while objects or uploads exist).

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::{BucketRecord, Index, IndexError, is_unique_violation};

fn bucket_from_row(row: &SqliteRow) -> Result<BucketRecord, IndexError> {
    Ok(BucketRecord {
        name: row.try_get("name")?,
        owner: row.try_get("owner")?,
        created_ms: row.try_get("created_ms")?,
    })
}

impl Index {
    /// Creates a bucket; `AlreadyExists` if the name is taken (by anyone).
    pub async fn create_bucket(&self, name: &str, owner: &str) -> Result<(), IndexError> {
        let result =
            sqlx::query("INSERT INTO buckets (name, owner, created_ms) VALUES ($1, $2, $3)")
                .bind(name)
                .bind(owner)
                .bind(super::now_ms())
                .execute(&self.write)
                .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(IndexError::AlreadyExists(name.to_string())),
            Err(e) => Err(e.into()),
        }
    }

    /// The bucket, if it exists.
    pub async fn get_bucket(&self, name: &str) -> Result<Option<BucketRecord>, IndexError> {
        let row = sqlx::query("SELECT name, owner, created_ms FROM buckets WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(bucket_from_row).transpose()
    }

    /// Whether `delete_bucket` would succeed now (a read-only pre-check, so that a refused
    /// DeleteBucket is not first recorded as allowed): `NotFound` / `NotEmpty` as it would say.
    pub async fn check_bucket_deletable(&self, name: &str) -> Result<(), IndexError> {
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM buckets WHERE name = $1) AS present, \
                    EXISTS (SELECT 1 FROM objects WHERE bucket = $1) AS has_objects, \
                    EXISTS (SELECT 1 FROM uploads WHERE bucket = $1) AS has_uploads",
        )
        .bind(name)
        .fetch_one(&self.read)
        .await?;
        if !row.try_get::<bool, _>("present")? {
            return Err(IndexError::NotFound(name.to_string()));
        }
        if row.try_get::<bool, _>("has_objects")? || row.try_get::<bool, _>("has_uploads")? {
            return Err(IndexError::NotEmpty(format!("bucket {name} is not empty")));
        }
        Ok(())
    }

    /// Every bucket, ordered by name.
    pub async fn list_buckets(&self) -> Result<Vec<BucketRecord>, IndexError> {
        let rows = sqlx::query("SELECT name, owner, created_ms FROM buckets ORDER BY name")
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(bucket_from_row).collect()
    }

    /// Deletes an empty bucket: `NotFound` if it does not exist, `NotEmpty` while it holds
    /// objects or in-progress multipart uploads.
    pub async fn delete_bucket(&self, name: &str) -> Result<(), IndexError> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM buckets WHERE name = $1) AS present, \
                    EXISTS (SELECT 1 FROM objects WHERE bucket = $1) AS has_objects, \
                    EXISTS (SELECT 1 FROM uploads WHERE bucket = $1) AS has_uploads",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let present: bool = row.try_get("present")?;
        let has_objects: bool = row.try_get("has_objects")?;
        let has_uploads: bool = row.try_get("has_uploads")?;
        if !present {
            return Err(IndexError::NotFound(name.to_string()));
        }
        if has_objects {
            return Err(IndexError::NotEmpty(format!("bucket {name} has objects")));
        }
        if has_uploads {
            return Err(IndexError::NotEmpty(format!(
                "bucket {name} has multipart uploads in progress"
            )));
        }
        sqlx::query("DELETE FROM buckets WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whether the bucket exists (on the reader pool).
    pub(crate) async fn bucket_exists(&self, name: &str) -> Result<bool, IndexError> {
        let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM buckets WHERE name = $1) AS present")
            .bind(name)
            .fetch_one(&self.read)
            .await?;
        Ok(row.try_get("present")?)
    }
}
