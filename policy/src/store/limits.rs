//! Per-principal and per-role S3 rate-limit overrides (`pol_limits`), read by every S3
//! request's limit check through the access cache; the limiters themselves are
//! [`crate::ratelimit`].

use sqlx::Row;

use super::PolicyStore;
use crate::grants::Identity;
use crate::ratelimit::{LimitClass, LimitOverride, LimitOverrides, LimitScope};
use crate::{Error, Result, Role, now_ms};

fn role_key(role: Option<Role>) -> &'static str {
    role.map_or("none", |r| r.as_str())
}

impl PolicyStore {
    /// Sets the override of a principal or built-in role (`none` allowed) and returns it.
    pub async fn set_limits(
        &self,
        scope: LimitScope,
        name: &str,
        limits: &LimitOverride,
    ) -> Result<LimitOverride> {
        let _changed = self.writing();
        let name = self.limit_target(scope, name).await?;
        sqlx::query(
            "INSERT INTO pol_limits (scope, name, s3_reads_per_min, s3_writes_per_min, updated_ms) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, name) DO UPDATE SET \
             s3_reads_per_min = excluded.s3_reads_per_min, s3_writes_per_min = excluded.s3_writes_per_min, \
             updated_ms = excluded.updated_ms",
        )
        .bind(scope.as_str())
        .bind(&name)
        .bind(limits.s3_reads_per_min.map(i64::from))
        .bind(limits.s3_writes_per_min.map(i64::from))
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(*limits)
    }

    /// The stored override of a principal or role (all `None` when none is set).
    pub async fn get_limits(&self, scope: LimitScope, name: &str) -> Result<LimitOverride> {
        let name = self.limit_target(scope, name).await?;
        let all = self.limit_overrides().await?;
        let map = match scope {
            LimitScope::Principal => &all.principals,
            LimitScope::Role => &all.roles,
        };
        Ok(map.get(&name).copied().unwrap_or_default())
    }

    /// Removes the override of a principal or role (no-op when none is set).
    pub async fn delete_limits(&self, scope: LimitScope, name: &str) -> Result<()> {
        let _changed = self.writing();
        let name = self.limit_target(scope, name).await?;
        sqlx::query("DELETE FROM pol_limits WHERE scope = $1 AND name = $2")
            .bind(scope.as_str())
            .bind(&name)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The S3 quota per minute of `class` for `id`: its principal's override, else its role's,
    /// else `default` (0: unlimited). Cached with the access cache.
    pub async fn s3_quota(&self, id: &Identity, class: LimitClass, default: u32) -> Result<u32> {
        let all = self.limit_overrides().await?;
        Ok(all
            .principals
            .get(&id.principal)
            .and_then(|o| o.get(class))
            .or_else(|| all.roles.get(role_key(id.role)).and_then(|o| o.get(class)))
            .unwrap_or(default))
    }

    /// The stored name of an override's target: an existing principal, or a built-in role's
    /// canonical name (`none` included).
    async fn limit_target(&self, scope: LimitScope, name: &str) -> Result<String> {
        match scope {
            LimitScope::Principal => {
                if self.get_principal(name).await?.is_none() {
                    return Err(Error::NotFound(format!("principal {name}")));
                }
                Ok(name.to_owned())
            }
            LimitScope::Role if name == "none" => Ok("none".to_owned()),
            LimitScope::Role => Role::parse(name)
                .map(|r| r.as_str().to_owned())
                .map_err(|_| {
                    Error::NotFound(format!(
                        "built-in role {name} (limits are set on viewer, manager, superadmin or none)"
                    ))
                }),
        }
    }

    async fn limit_overrides(&self) -> Result<LimitOverrides> {
        let load = || async {
            let rows = sqlx::query(
                "SELECT scope, name, s3_reads_per_min, s3_writes_per_min FROM pol_limits",
            )
            .fetch_all(self.read_pool())
            .await?;
            let mut out = LimitOverrides::default();
            for r in &rows {
                let scope: String = r.get(0);
                let name: String = r.get(1);
                let quota = |i: usize| {
                    r.get::<Option<i64>, _>(i)
                        .map(|v| u32::try_from(v).unwrap_or(u32::MAX))
                };
                let o = LimitOverride {
                    s3_reads_per_min: quota(2),
                    s3_writes_per_min: quota(3),
                };
                match scope.as_str() {
                    "principal" => out.principals.insert(name, o),
                    _ => out.roles.insert(name, o),
                };
            }
            Ok(out)
        };
        crate::cache::through(self.access_cache(), |c| &c.limits, (), load).await
    }
}
