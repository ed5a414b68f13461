//! Index operations on buckets: create, get, list, delete (refused while objects, versions or
//! delete markers exist; multipart uploads in progress are aborted with the bucket, as S3 does);
//! versioning and object lock settings.

use audit::db::flag;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::locks::retrying;
use super::{
    BucketRecord, BucketState, DefaultRetention, Index, IndexError, LockMode, Versioning,
    is_unique_violation, to_u32,
};

fn bucket_from_row(row: &AnyRow) -> Result<BucketRecord, IndexError> {
    Ok(BucketRecord {
        name: row.try_get("name")?,
        owner: row.try_get("owner")?,
        created_ms: row.try_get("created_ms")?,
    })
}

impl Index {
    /// Creates a bucket with no tenant recorded (it belongs to the default tenant): tests and
    /// tools; CreateBucket uses [`Index::create_bucket_in_tenant`]. `AlreadyExists` if the
    /// name is taken (by anyone).
    pub async fn create_bucket(&self, name: &str, owner: &str) -> Result<(), IndexError> {
        self.insert_bucket(name, owner, None, false).await
    }

    /// Creates a bucket owned by `tenant`: the bucket row and its tenancy row
    /// (`policy::store::tenancy`) in one transaction, so no bucket is ever visible without its
    /// owner. With `object_lock`, versioning is Enabled from the start, for good.
    pub async fn create_bucket_in_tenant(
        &self,
        name: &str,
        owner: &str,
        tenant: &str,
        object_lock: bool,
    ) -> Result<(), IndexError> {
        self.insert_bucket(name, owner, Some(tenant), object_lock)
            .await
    }

    /// The bucket row (and its tenant), in one transaction.
    async fn insert_bucket(
        &self,
        name: &str,
        owner: &str,
        tenant: Option<&str>,
        object_lock: bool,
    ) -> Result<(), IndexError> {
        retrying!(self.insert_bucket_once(name, owner, tenant, object_lock))
    }

    async fn insert_bucket_once(
        &self,
        name: &str,
        owner: &str,
        tenant: Option<&str>,
        object_lock: bool,
    ) -> Result<(), IndexError> {
        // a create and a delete of one name take turns
        let mut tx = self
            .begin_write(self.locks().bucket_exclusive(name))
            .await?;
        let result = sqlx::query(
            "INSERT INTO buckets (name, owner, created_ms, versioning, object_lock) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(name)
        .bind(owner)
        .bind(super::now_ms())
        .bind(object_lock.then_some("Enabled"))
        .bind(i64::from(object_lock))
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(IndexError::AlreadyExists(name.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
        if let Some(tenant) = tenant {
            policy::store::tenancy::assign(&mut tx, name, tenant).await?;
        }
        tx.commit().await?;
        Ok(())
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
                    EXISTS (SELECT 1 FROM objects WHERE bucket = $1) AS has_objects",
        )
        .bind(name)
        .fetch_one(&self.read)
        .await?;
        if !flag(&row, "present")? {
            return Err(IndexError::NotFound(name.to_string()));
        }
        if flag(&row, "has_objects")? {
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

    /// Deletes a bucket without objects (versions and delete markers count): `NotFound` if it
    /// does not exist, `NotEmpty` while it holds any. Multipart uploads still in progress are
    /// aborted with it (S3 deletes a bucket that holds only incomplete uploads); returns their
    /// parts' backend ids, now garbage (also queued).
    pub async fn delete_bucket(&self, name: &str) -> Result<Vec<String>, IndexError> {
        let garbage = retrying!(self.delete_bucket_once(name))?;
        // its settings went with it (a trigger queues their records)
        self.settings.clear();
        Ok(garbage)
    }

    /// One run of `delete_bucket`: with the bucket locked exclusively, no write adding rows
    /// under it (each holds the bucket shared) is in flight on any instance, so "empty" stays
    /// true until the COMMIT; a put after it finds no bucket.
    async fn delete_bucket_once(&self, name: &str) -> Result<Vec<String>, IndexError> {
        let mut tx = self
            .begin_write(self.locks().bucket_exclusive(name))
            .await?;
        let row = sqlx::query(
            "SELECT EXISTS (SELECT 1 FROM buckets WHERE name = $1) AS present, \
                    EXISTS (SELECT 1 FROM objects WHERE bucket = $1) AS has_objects",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        let present: bool = flag(&row, "present")?;
        let has_objects: bool = flag(&row, "has_objects")?;
        if !present {
            return Err(IndexError::NotFound(name.to_string()));
        }
        if has_objects {
            return Err(IndexError::NotEmpty(format!("bucket {name} has objects")));
        }
        let parts: Vec<String> = sqlx::query_scalar(
            "SELECT p.backend_id FROM parts p JOIN uploads u ON u.upload_id = p.upload_id \
             WHERE u.bucket = $1",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM uploads WHERE bucket = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM buckets WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        policy::store::tenancy::forget(&mut tx, name).await?;
        let garbage = super::objects::queue_garbage(&mut tx, parts).await?;
        tx.commit().await?;
        Ok(garbage)
    }

    /// The locks of a versioning or object lock change: the two read each other's column, so
    /// they take turns; the bucket shared, so neither updates a bucket being deleted.
    fn config_locks(&self, name: &str) -> super::locks::LockSet {
        self.locks().bucket_shared(name).bucket_config(name)
    }

    /// Whether the bucket exists (on the reader pool).
    pub(crate) async fn bucket_exists(&self, name: &str) -> Result<bool, IndexError> {
        let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM buckets WHERE name = $1) AS present")
            .bind(name)
            .fetch_one(&self.read)
            .await?;
        Ok(flag(&row, "present")?)
    }

    /// Versioning and object lock settings of a bucket; None if it does not exist. Every object
    /// request reads it, so an existing bucket's state is kept in the settings cache (cleared by
    /// this instance's changes; other instances' changes reach it through the write counter,
    /// which a trigger on `buckets` advances, within the follow interval).
    pub async fn bucket_state(&self, name: &str) -> Result<Option<BucketState>, IndexError> {
        if let Some(hit) = self.settings.state(name) {
            return Ok(Some(hit));
        }
        let generation = self.settings.generation();
        let state = self.read_bucket_state(name).await?;
        if let Some(s) = state {
            self.settings.put_state(generation, name, s);
        }
        Ok(state)
    }

    async fn read_bucket_state(&self, name: &str) -> Result<Option<BucketState>, IndexError> {
        let row = sqlx::query(
            "SELECT versioning, CAST(object_lock AS BIGINT) AS object_lock, lock_default_mode, lock_default_days, \
                    lock_default_years FROM buckets WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let versioning = match row.try_get::<Option<String>, _>("versioning")?.as_deref() {
            None => Versioning::Unversioned,
            Some("Enabled") => Versioning::Enabled,
            Some("Suspended") => Versioning::Suspended,
            Some(other) => {
                return Err(IndexError::Corrupt(format!(
                    "stored versioning state {other:?}"
                )));
            }
        };
        let mode: Option<String> = row.try_get("lock_default_mode")?;
        let days: Option<i64> = row.try_get("lock_default_days")?;
        let years: Option<i64> = row.try_get("lock_default_years")?;
        let default_retention = match mode {
            None => None,
            Some(m) => Some(DefaultRetention {
                mode: LockMode::parse(&m)
                    .ok_or_else(|| IndexError::Corrupt(format!("stored lock mode {m:?}")))?,
                days: days.map(|d| to_u32(d, "retention days")).transpose()?,
                years: years.map(|y| to_u32(y, "retention years")).transpose()?,
            }),
        };
        Ok(Some(BucketState {
            versioning,
            object_lock: flag(&row, "object_lock")?,
            default_retention,
        }))
    }

    /// PutBucketVersioning: `Enabled` or `Suspended` (never back to unversioned). `NotFound`
    /// if the bucket does not exist; `Locked` when suspending a bucket with object lock.
    pub async fn set_versioning(&self, name: &str, state: Versioning) -> Result<(), IndexError> {
        let Some(status) = state.as_status() else {
            return Err(IndexError::Corrupt(
                "a bucket cannot go back to unversioned".into(),
            ));
        };
        retrying!(self.set_versioning_once(name, status, state))?;
        self.settings.clear();
        Ok(())
    }

    async fn set_versioning_once(
        &self,
        name: &str,
        status: &str,
        state: Versioning,
    ) -> Result<(), IndexError> {
        let mut tx = self.begin_write(self.config_locks(name)).await?;
        let lock: Option<i64> =
            sqlx::query_scalar("SELECT CAST(object_lock AS BIGINT) FROM buckets WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        match lock {
            None => return Err(IndexError::NotFound(name.to_string())),
            Some(l) if l != 0 && state != Versioning::Enabled => {
                return Err(IndexError::Locked(format!(
                    "bucket {name} has object lock enabled; versioning cannot be suspended"
                )));
            }
            Some(_) => {}
        }
        sqlx::query("UPDATE buckets SET versioning = $2 WHERE name = $1")
            .bind(name)
            .bind(status)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// PutObjectLockConfiguration: turns object lock on (versioning must be Enabled, else
    /// `Locked`) and sets or clears the default retention.
    pub async fn set_object_lock(
        &self,
        name: &str,
        default_retention: Option<DefaultRetention>,
    ) -> Result<(), IndexError> {
        retrying!(self.set_object_lock_once(name, default_retention))?;
        self.settings.clear();
        Ok(())
    }

    async fn set_object_lock_once(
        &self,
        name: &str,
        default_retention: Option<DefaultRetention>,
    ) -> Result<(), IndexError> {
        let mut tx = self.begin_write(self.config_locks(name)).await?;
        let versioning: Option<Option<String>> =
            sqlx::query_scalar("SELECT versioning FROM buckets WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        match versioning {
            None => return Err(IndexError::NotFound(name.to_string())),
            Some(v) if v.as_deref() != Some("Enabled") => {
                return Err(IndexError::Locked(format!(
                    "bucket {name} does not have versioning enabled"
                )));
            }
            Some(_) => {}
        }
        let (mode, days, years) = match default_retention {
            Some(d) => (
                Some(d.mode.as_str()),
                d.days.map(i64::from),
                d.years.map(i64::from),
            ),
            None => (None, None, None),
        };
        sqlx::query(
            "UPDATE buckets SET object_lock = 1, lock_default_mode = $2, lock_default_days = $3, \
             lock_default_years = $4 WHERE name = $1",
        )
        .bind(name)
        .bind(mode)
        .bind(days)
        .bind(years)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
