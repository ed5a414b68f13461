//! Custom roles: list, define, delete.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use policy::grants::DEFAULT_TENANT;
use policy::quorum::CHANGE_ROLE;
use policy::store::CustomRole;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AdminState, ApiJson, ApiQuery, Caller, ListParams, RolePage, ms_now, paginate,
    require_superadmin, require_tenant,
};
use crate::audit::Audit;
use crate::error::{ApiError, ErrorBody};

/// New custom role.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewRole {
    /// role name (unique across tenants; not a built-in role's)
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    /// S3 operation names (`PutObject`, `s3:DeleteObject`, …; the document lists them)
    #[schema(min_items = 1)]
    pub actions: Vec<String>,
    /// owning tenant (default: the caller's); a default-tenant role may be granted in every
    /// tenant
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub tenant: Option<String>,
}

/// Lists custom roles: the caller's tenant's and the default tenant's (all for the default
/// tenant's SuperAdmins).
#[utoipa::path(get, path = "/admin/v1/roles", tag = "roles", operation_id = "ListRoles", params(ListParams),
    responses((status = 200, body = RolePage)))]
pub(super) async fn list_roles(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<RolePage>, ApiError> {
    require_superadmin(&c)?;
    let tenant = (c.0.tenant != DEFAULT_TENANT).then(|| c.0.tenant.clone());
    let all = st.store.list_roles_of(tenant.as_deref()).await?;
    let (items, next_cursor) = paginate(all, |x| x.name.clone(), &p)?;
    Ok(Json(RolePage { items, next_cursor }))
}

/// Defines a custom role (quorum action `admin:ChangeRole`).
#[utoipa::path(post, path = "/admin/v1/roles", tag = "roles", operation_id = "CreateRole", request_body = NewRole,
    params(("Idempotency-Key" = Option<String>, Header, description = "replay protection")),
    responses((status = 201, body = CustomRole), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn create_role(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    ApiJson(b): ApiJson<NewRole>,
) -> Result<(StatusCode, Json<CustomRole>), ApiError> {
    require_superadmin(&c)?;
    let tenant = b.tenant.unwrap_or_else(|| c.0.tenant.clone());
    require_tenant(&c, &tenant)?;
    policy::store::parse_actions(&b.actions)?;
    audit.before_change(StatusCode::CREATED).await?;
    st.store
        .gate(
            &c.0,
            CHANGE_ROLE,
            None,
            &format!("role/{}", b.name),
            &format!("tenant={tenant};{}", b.actions.join(",")),
            ms_now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            st.store
                .create_role_in(&tenant, &b.name, &b.actions)
                .await?,
        ),
    ))
}

/// Deletes an unused custom role (quorum action `admin:ChangeRole`).
#[utoipa::path(delete, path = "/admin/v1/roles/{name}", tag = "roles", operation_id = "DeleteRole", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn delete_role(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_superadmin(&c)?;
    // another tenant's role answers as one that does not exist; the default tenant's roles
    // (grantable everywhere) are managed by its SuperAdmins only
    let role = st
        .store
        .get_role(&name)
        .await?
        .filter(|r| {
            c.0.tenant == DEFAULT_TENANT || r.tenant == c.0.tenant || r.tenant == DEFAULT_TENANT
        })
        .ok_or_else(|| ApiError::not_found(format!("role {name}")))?;
    require_tenant(&c, &role.tenant)?;
    audit.before_change(StatusCode::NO_CONTENT).await?;
    st.store
        .gate(
            &c.0,
            CHANGE_ROLE,
            None,
            &format!("role/{name}"),
            "delete",
            ms_now(),
        )
        .await?;
    st.store.delete_role(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}
