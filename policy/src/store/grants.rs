//! Grants: a role on buckets and key prefixes for a principal, and their resolution for the
//! access check (through the access cache).

use sqlx::Row;

use super::{PolicyStore, unique_violation};
use crate::cache;
use crate::grants::{DEFAULT_TENANT, Grant, ResolvedGrant};
use crate::{Error, Result, now_ms, random_bytes};

impl PolicyStore {
    /// Grants `role` to `principal` on buckets matching `bucket` and keys under `prefix`.
    pub async fn create_grant(
        &self,
        principal: &str,
        role: &str,
        bucket: &str,
        prefix: &str,
    ) -> Result<Grant> {
        let _changed = self.writing();
        let Some(grantee) = self.get_principal(principal).await? else {
            return Err(Error::NotFound(format!("principal {principal}")));
        };
        if self.role_actions(role).await?.is_none() {
            return Err(Error::NotFound(format!("role {role}")));
        }
        // another tenant's custom role is invisible to this grantee's tenant
        if let Some(custom) = self.get_role(role).await?
            && custom.tenant != DEFAULT_TENANT
            && custom.tenant != grantee.tenant
        {
            return Err(Error::NotFound(format!("role {role}")));
        }
        if bucket.is_empty() || bucket.len() > 255 || prefix.len() > 1024 {
            return Err(Error::Invalid("bucket pattern or prefix length".into()));
        }
        let g = Grant {
            id: format!("grt-{}", hex::encode(random_bytes::<8>()?)),
            principal: principal.to_owned(),
            role: role.to_owned(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            created_ms: now_ms(),
        };
        sqlx::query(
            "INSERT INTO pol_grants (id, principal, role, bucket, prefix, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&g.id)
        .bind(&g.principal)
        .bind(&g.role)
        .bind(&g.bucket)
        .bind(&g.prefix)
        .bind(g.created_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, "grant".into()))?;
        Ok(g)
    }

    /// Grants, optionally of one principal, by id.
    pub async fn list_grants(&self, principal: Option<&str>) -> Result<Vec<Grant>> {
        let rows = sqlx::query(
            "SELECT id, principal, role, bucket, prefix, created_ms FROM pol_grants \
             WHERE ($1 IS NULL OR principal = $1) ORDER BY id",
        )
        .bind(principal)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Grant {
                id: r.get(0),
                principal: r.get(1),
                role: r.get(2),
                bucket: r.get(3),
                prefix: r.get(4),
                created_ms: r.get(5),
            })
            .collect())
    }

    /// Removes a grant.
    pub async fn delete_grant(&self, id: &str) -> Result<()> {
        let _changed = self.writing();
        let n = sqlx::query("DELETE FROM pol_grants WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("grant {id}")));
        }
        Ok(())
    }

    /// A principal's grants with roles resolved to actions (unknown roles skipped).
    pub async fn resolved_grants(&self, principal: &str) -> Result<Vec<ResolvedGrant>> {
        let load = || async {
            let mut out = Vec::new();
            for g in self.list_grants(Some(principal)).await? {
                if let Some(actions) = self.role_actions(&g.role).await? {
                    out.push(ResolvedGrant {
                        bucket: g.bucket,
                        prefix: g.prefix,
                        actions,
                    });
                }
            }
            Ok(out)
        };
        cache::through(
            self.access_cache(),
            |c| &c.grants,
            principal.to_owned(),
            load,
        )
        .await
    }
}
