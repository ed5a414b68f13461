//! Tenants: list, create.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use policy::grants::DEFAULT_TENANT;
use policy::store::Tenant;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AdminState, ApiJson, ApiQuery, Caller, ListParams, TenantPage, paginate, require_superadmin,
    require_tenant,
};
use crate::audit::Audit;
use crate::error::{ApiError, ErrorBody};

/// New tenant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewTenant {
    /// tenant name
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
}

/// Lists tenants.
#[utoipa::path(get, path = "/admin/v1/tenants", tag = "tenants", operation_id = "ListTenants", params(ListParams),
    responses((status = 200, body = TenantPage)))]
pub(super) async fn list_tenants(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<TenantPage>, ApiError> {
    require_superadmin(&c)?;
    let mut all = st.store.list_tenants().await?;
    if c.0.tenant != DEFAULT_TENANT {
        all.retain(|t| t.name == c.0.tenant);
    }
    let (items, next_cursor) = paginate(all, |x| x.name.clone(), &p)?;
    Ok(Json(TenantPage { items, next_cursor }))
}

/// Creates a tenant (SuperAdmins of the default tenant only).
#[utoipa::path(post, path = "/admin/v1/tenants", tag = "tenants", operation_id = "CreateTenant", request_body = NewTenant,
    params(("Idempotency-Key" = Option<String>, Header, description = "replay protection")),
    responses((status = 201, body = Tenant), (status = 409, body = ErrorBody)))]
pub(super) async fn create_tenant(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    ApiJson(b): ApiJson<NewTenant>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    require_superadmin(&c)?;
    require_tenant(&c, DEFAULT_TENANT)?;
    audit.before_change(StatusCode::CREATED).await?;
    Ok((
        StatusCode::CREATED,
        Json(st.store.create_tenant(&b.name).await?),
    ))
}
