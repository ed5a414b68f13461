//! Custom roles: named sets of S3 actions, owned by a tenant.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{PolicyStore, unique_violation, validate_name};
use crate::grants::{DEFAULT_TENANT, builtin_actions};
use crate::{Action, Error, Result, Role, now_ms};

/// A custom role: a named set of S3 actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomRole {
    /// role name
    pub name: String,
    /// S3 operation names, e.g. `PutObject`
    pub actions: Vec<String>,
    /// creation time (ms since epoch)
    pub created_ms: i64,
    /// the tenant that defined the role; roles of the default tenant may be granted in every
    /// tenant, others only in their own
    pub tenant: String,
}

/// Parses a list of S3 operation names.
pub fn parse_actions(names: &[String]) -> Result<Vec<Action>> {
    if names.is_empty() {
        return Err(Error::Invalid("a role needs at least one action".into()));
    }
    names
        .iter()
        .map(|n| {
            let bare = n.strip_prefix("s3:").unwrap_or(n);
            Action::from_s3_operation(bare)
                .ok_or_else(|| Error::Invalid(format!("unknown S3 action {n:?}")))
        })
        .collect()
}

impl PolicyStore {
    /// Defines a custom role (a named set of S3 actions) of the default tenant, which every
    /// tenant may grant.
    pub async fn create_role(&self, name: &str, actions: &[String]) -> Result<CustomRole> {
        self.create_role_in(DEFAULT_TENANT, name, actions).await
    }

    /// Defines a custom role of `tenant` (grantable to that tenant's principals only; a role
    /// of the default tenant to every tenant's). Role names are unique across tenants.
    pub async fn create_role_in(
        &self,
        tenant: &str,
        name: &str,
        actions: &[String],
    ) -> Result<CustomRole> {
        let _changed = self.writing();
        validate_name("role", name)?;
        if Role::parse(name).is_ok() || name == "none" {
            return Err(Error::Conflict(format!("{name} is a built-in role")));
        }
        let parsed = parse_actions(actions)?;
        // a role belongs to an existing tenant (one that does not exist could never be granted)
        self.require_tenant(tenant).await?;
        let names: Vec<String> = parsed.iter().map(|a| a.s3_name().to_owned()).collect();
        let rec = CustomRole {
            name: name.to_owned(),
            actions: names,
            created_ms: now_ms(),
            tenant: tenant.to_owned(),
        };
        let json =
            serde_json::to_string(&rec.actions).map_err(|e| Error::Invalid(e.to_string()))?;
        sqlx::query(
            "INSERT INTO pol_roles (name, actions, created_ms, tenant) VALUES ($1, $2, $3, $4)",
        )
        .bind(&rec.name)
        .bind(json)
        .bind(rec.created_ms)
        .bind(&rec.tenant)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, format!("role {name} exists")))?;
        Ok(rec)
    }

    /// Custom roles by name: all of them (`None`), or those a tenant may see and grant (its
    /// own and the default tenant's).
    pub async fn list_roles_of(&self, tenant: Option<&str>) -> Result<Vec<CustomRole>> {
        let rows = sqlx::query(
            "SELECT name, actions, created_ms, tenant FROM pol_roles \
             WHERE ($1 IS NULL OR tenant = $1 OR tenant = $2) ORDER BY name",
        )
        .bind(tenant)
        .bind(DEFAULT_TENANT)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let actions: String = r.get(1);
                Ok(CustomRole {
                    name: r.get(0),
                    actions: serde_json::from_str(&actions)
                        .map_err(|e| Error::Database(format!("corrupt role actions: {e}")))?,
                    created_ms: r.get(2),
                    tenant: r.get(3),
                })
            })
            .collect()
    }

    /// Every custom role, by name.
    pub async fn list_roles(&self) -> Result<Vec<CustomRole>> {
        self.list_roles_of(None).await
    }

    /// One custom role.
    pub async fn get_role(&self, name: &str) -> Result<Option<CustomRole>> {
        Ok(self
            .list_roles_of(None)
            .await?
            .into_iter()
            .find(|r| r.name == name))
    }

    /// Deletes a custom role that no grant uses.
    pub async fn delete_role(&self, name: &str) -> Result<()> {
        let _changed = self.writing();
        let used: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pol_grants WHERE role = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        if used > 0 {
            return Err(Error::Conflict(format!(
                "role {name} is granted {used} time(s)"
            )));
        }
        let n = sqlx::query("DELETE FROM pol_roles WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("role {name}")));
        }
        Ok(())
    }

    /// The actions of a built-in or custom role; `None` if there is no such role.
    pub async fn role_actions(&self, name: &str) -> Result<Option<Vec<Action>>> {
        if let Ok(r) = Role::parse(name) {
            return Ok(Some(builtin_actions(r)));
        }
        let row: Option<String> =
            sqlx::query_scalar("SELECT actions FROM pol_roles WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.read)
                .await?;
        match row {
            None => Ok(None),
            Some(json) => {
                let names: Vec<String> = serde_json::from_str(&json)
                    .map_err(|e| Error::Database(format!("corrupt role actions: {e}")))?;
                Ok(Some(parse_actions(&names)?))
            }
        }
    }
}
