//! Bucket ownership by tenant: recorded on CreateBucket, forgotten on DeleteBucket, read by
//! every access check (through the access cache).

use super::PolicyStore;
use crate::Result;
use crate::cache;
use crate::grants::DEFAULT_TENANT;

/// The tenancy rows written inside a caller's own transaction, so that a bucket row and its
/// tenant are committed together (the index's CreateBucket and DeleteBucket). Run that
/// transaction inside [`PolicyStore::changing_tenancy`] so the access cache drops what it read
/// before the commit.
pub mod tenancy {
    use sqlx::AnyConnection;

    /// Records that `bucket` belongs to `tenant`.
    pub async fn assign(conn: &mut AnyConnection, bucket: &str, tenant: &str) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO pol_bucket_tenants (bucket, tenant) VALUES ($1, $2) \
             ON CONFLICT (bucket) DO UPDATE SET tenant = excluded.tenant",
        )
        .bind(bucket)
        .bind(tenant)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Forgets a deleted bucket's tenant.
    pub async fn forget(conn: &mut AnyConnection, bucket: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM pol_bucket_tenants WHERE bucket = $1")
            .bind(bucket)
            .execute(conn)
            .await?;
        Ok(())
    }
}

impl PolicyStore {
    /// Records that `bucket` belongs to `tenant` (tools that create buckets outside the index's
    /// CreateBucket transaction, e.g. `vaultgate reindex`).
    pub async fn assign_bucket(&self, bucket: &str, tenant: &str) -> Result<()> {
        let _changed = self.writing();
        let mut conn = self.pool.acquire().await?;
        tenancy::assign(&mut conn, bucket, tenant).await?;
        Ok(())
    }

    /// Runs `write`, a transaction of the caller's that writes tenancy rows through
    /// [`tenancy`], as a policy change: access-cache answers loaded before it ends are not
    /// kept, so the next access check sees the new owner.
    pub async fn changing_tenancy<T, Fut>(&self, write: impl FnOnce() -> Fut) -> T
    where
        Fut: std::future::Future<Output = T>,
    {
        let _changed = self.writing();
        write().await
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
