//! Bucket ownership by tenant: recorded on CreateBucket, forgotten on DeleteBucket, read by
//! every access check (through the access cache).

use super::PolicyStore;
use crate::Result;
use crate::cache;
use crate::grants::DEFAULT_TENANT;

impl PolicyStore {
    /// Records that `bucket` belongs to `tenant` (call on CreateBucket).
    pub async fn assign_bucket(&self, bucket: &str, tenant: &str) -> Result<()> {
        let _changed = self.writing();
        sqlx::query(
            "INSERT INTO pol_bucket_tenants (bucket, tenant) VALUES ($1, $2) \
             ON CONFLICT (bucket) DO UPDATE SET tenant = excluded.tenant",
        )
        .bind(bucket)
        .bind(tenant)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a deleted bucket's tenant.
    pub async fn forget_bucket(&self, bucket: &str) -> Result<()> {
        let _changed = self.writing();
        sqlx::query("DELETE FROM pol_bucket_tenants WHERE bucket = $1")
            .bind(bucket)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The tenant owning `bucket`; buckets never assigned belong to [`DEFAULT_TENANT`].
    pub async fn bucket_tenant(&self, bucket: &str) -> Result<String> {
        Ok(self
            .assigned_tenant(bucket)
            .await?
            .unwrap_or_else(|| DEFAULT_TENANT.to_owned()))
    }

    /// The tenant `bucket` was assigned to, `None` if never assigned (cached when the access
    /// cache is on).
    pub async fn assigned_tenant(&self, bucket: &str) -> Result<Option<String>> {
        let load = || async {
            Ok(
                sqlx::query_scalar("SELECT tenant FROM pol_bucket_tenants WHERE bucket = $1")
                    .bind(bucket)
                    .fetch_optional(&self.read)
                    .await?,
            )
        };
        cache::through(self.access_cache(), |c| &c.tenants, bucket.to_owned(), load).await
    }
}
