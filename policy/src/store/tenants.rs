//! Tenants: sets of buckets and principals invisible to other tenants.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{PolicyStore, unique_violation, validate_name};
use crate::{Result, now_ms};

/// A tenant: a set of buckets and principals invisible to other tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    /// tenant name
    pub name: String,
    /// creation time (ms since epoch)
    pub created_ms: i64,
}

impl PolicyStore {
    /// Creates a tenant.
    pub async fn create_tenant(&self, name: &str) -> Result<Tenant> {
        validate_name("tenant", name)?;
        let t = Tenant {
            name: name.to_owned(),
            created_ms: now_ms(),
        };
        sqlx::query("INSERT INTO pol_tenants (name, created_ms) VALUES ($1, $2)")
            .bind(&t.name)
            .bind(t.created_ms)
            .execute(&self.pool)
            .await
            .map_err(|e| unique_violation(e, format!("tenant {name} exists")))?;
        Ok(t)
    }

    /// `NotFound` unless the tenant exists.
    pub(crate) async fn require_tenant(&self, tenant: &str) -> Result<()> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM pol_tenants WHERE name = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Err(crate::Error::NotFound(format!("tenant {tenant}")));
        }
        Ok(())
    }

    /// Every tenant, by name.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let rows = sqlx::query("SELECT name, created_ms FROM pol_tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Tenant {
                name: r.get(0),
                created_ms: r.get(1),
            })
            .collect())
    }

    pub(crate) async fn ensure_tenant(&self, name: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO pol_tenants (name, created_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
