//! Principals (users and service accounts): create, read (also through the access cache),
//! disable and re-enable, change of built-in role.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{PolicyStore, unique_violation, validate_name};
use crate::cache;
use crate::grants::Identity;
use crate::{Error, Result, Role, now_ms};

/// A stored principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrincipalRecord {
    /// unique name
    pub name: String,
    /// `user` or `service`
    pub kind: String,
    /// tenant
    pub tenant: String,
    /// built-in role (`viewer`, `manager`, `superadmin`) or `none` (grants only)
    pub role: String,
    /// disabled principals cannot authenticate
    pub disabled: bool,
    /// creation time (ms since epoch)
    pub created_ms: i64,
    /// when the principal got its current role (ms since epoch): at creation and at every
    /// role change. Quorum approvers must have held their role since before the request.
    pub role_since_ms: i64,
}

impl PrincipalRecord {
    /// The built-in role, `None` for `none`.
    pub fn builtin_role(&self) -> Option<Role> {
        Role::parse(&self.role).ok()
    }
}

impl PolicyStore {
    /// Creates a principal (`kind` is `user` or `service`; `role` a built-in role or `None`).
    pub async fn create_principal(
        &self,
        name: &str,
        kind: &str,
        tenant: &str,
        role: Option<Role>,
    ) -> Result<PrincipalRecord> {
        let _changed = self.writing();
        validate_name("principal", name)?;
        if !matches!(kind, "user" | "service") {
            return Err(Error::Invalid("kind must be user or service".into()));
        }
        self.require_tenant(tenant).await?;
        let created_ms = now_ms();
        let rec = PrincipalRecord {
            name: name.to_owned(),
            kind: kind.to_owned(),
            tenant: tenant.to_owned(),
            role: role.map_or("none", |r| r.as_str()).to_owned(),
            disabled: false,
            created_ms,
            role_since_ms: created_ms,
        };
        sqlx::query(
            "INSERT INTO pol_principals (name, kind, tenant, role, disabled, created_ms, role_since_ms) \
             VALUES ($1, $2, $3, $4, 0, $5, $5)",
        )
        .bind(&rec.name)
        .bind(&rec.kind)
        .bind(&rec.tenant)
        .bind(&rec.role)
        .bind(rec.created_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, format!("principal {name} exists")))?;
        Ok(rec)
    }

    fn principal_from_row(r: &sqlx::any::AnyRow) -> PrincipalRecord {
        PrincipalRecord {
            name: r.get("name"),
            kind: r.get("kind"),
            tenant: r.get("tenant"),
            role: r.get("role"),
            disabled: r.get::<i64, _>("disabled") != 0,
            created_ms: r.get("created_ms"),
            role_since_ms: r.get("role_since_ms"),
        }
    }

    /// One principal.
    pub async fn get_principal(&self, name: &str) -> Result<Option<PrincipalRecord>> {
        let row = sqlx::query(
            "SELECT name, kind, tenant, role, disabled, created_ms, role_since_ms FROM pol_principals WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(Self::principal_from_row))
    }

    /// Principals by name, optionally of one tenant.
    pub async fn list_principals(&self, tenant: Option<&str>) -> Result<Vec<PrincipalRecord>> {
        let rows = sqlx::query(
            "SELECT name, kind, tenant, role, disabled, created_ms, role_since_ms FROM pol_principals \
             WHERE ($1 IS NULL OR tenant = $1) ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(Self::principal_from_row).collect())
    }

    /// Disables or re-enables a principal (effective on its next request).
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<PrincipalRecord> {
        let _changed = self.writing();
        let n = sqlx::query("UPDATE pol_principals SET disabled = $1 WHERE name = $2")
            .bind(i64::from(disabled))
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("principal {name}")));
        }
        self.get_principal(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("principal {name}")))
    }

    /// Changes a principal's built-in role (and, when it changes, its `role_since_ms`).
    pub async fn set_role(&self, name: &str, role: Option<Role>) -> Result<PrincipalRecord> {
        let _changed = self.writing();
        let n = sqlx::query(
            "UPDATE pol_principals SET role_since_ms = CASE WHEN role = $1 THEN role_since_ms ELSE $3 END, \
             role = $1 WHERE name = $2",
        )
            .bind(role.map_or("none", |r| r.as_str()))
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("principal {name}")));
        }
        self.get_principal(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("principal {name}")))
    }

    /// Number of principals.
    pub async fn count_principals(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pol_principals")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// One principal, read through the access cache when it is on (the admin API's per-call
    /// check of its caller).
    pub async fn cached_principal(&self, name: &str) -> Result<Option<PrincipalRecord>> {
        let load = || async {
            let row = sqlx::query(
                "SELECT name, kind, tenant, role, disabled, created_ms, role_since_ms FROM pol_principals WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
            Ok(row.as_ref().map(Self::principal_from_row))
        };
        cache::through(
            self.access_cache(),
            |c| &c.principals,
            name.to_owned(),
            load,
        )
        .await
    }

    /// The identity of an enabled principal (admin callers without an access key, e.g. tokens
    /// of an external IdP): role and tenant from the store. Read through the access cache.
    pub async fn identity(&self, name: &str) -> Result<Option<Identity>> {
        if validate_name("principal", name).is_err() {
            return Ok(None);
        }
        Ok(self
            .cached_principal(name)
            .await?
            .filter(|p| !p.disabled)
            .map(|p| Identity {
                role: p.builtin_role(),
                principal: p.name,
                tenant: p.tenant,
                access_key_id: String::new(),
            }))
    }
}
