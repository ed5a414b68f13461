//! Grants: list, create, delete.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use policy::Grant;
use policy::grants::DEFAULT_TENANT;
use policy::quorum::GRANT;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AdminState, ApiJson, ApiQuery, Caller, GrantPage, ListParams, ms_now, paginate,
    principal_in_scope, require_superadmin,
};
use crate::audit::Audit;
use crate::error::{ApiError, ErrorBody};

/// New grant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewGrant {
    /// grantee
    pub principal: String,
    /// built-in or custom role
    pub role: String,
    /// bucket name or pattern (`finance-*`)
    #[schema(min_length = 1, max_length = 255)]
    pub bucket: String,
    /// key prefix (default: whole bucket)
    #[schema(max_length = 1024)]
    pub prefix: Option<String>,
}

/// Lists grants.
#[utoipa::path(get, path = "/admin/v1/grants", tag = "grants", operation_id = "ListGrants", params(ListParams, super::PrincipalFilter),
    responses((status = 200, body = GrantPage)))]
pub(super) async fn list_grants(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<GrantPage>, ApiError> {
    require_superadmin(&c)?;
    let mut all = st.store.list_grants(p.principal.as_deref()).await?;
    if c.0.tenant != DEFAULT_TENANT {
        let mine: Vec<String> = st
            .store
            .list_principals(Some(&c.0.tenant))
            .await?
            .into_iter()
            .map(|x| x.name)
            .collect();
        all.retain(|g| mine.contains(&g.principal));
    }
    let (items, next_cursor) = paginate(all, |x| x.id.clone(), &p)?;
    Ok(Json(GrantPage { items, next_cursor }))
}

/// Grants a role on a bucket (pattern) and key prefix (quorum action `admin:Grant`, also gated
/// by `admin:ChangeRole` rules). Custom roles of another tenant are not found.
#[utoipa::path(post, path = "/admin/v1/grants", tag = "grants", operation_id = "CreateGrant", request_body = NewGrant,
    params(("Idempotency-Key" = Option<String>, Header, description = "replay protection")),
    responses((status = 201, body = Grant), (status = 404, body = ErrorBody)))]
pub(super) async fn create_grant(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    ApiJson(b): ApiJson<NewGrant>,
) -> Result<(StatusCode, Json<Grant>), ApiError> {
    require_superadmin(&c)?;
    principal_in_scope(&st, &c, &b.principal).await?;
    let prefix = b.prefix.unwrap_or_default();
    audit.before_change(StatusCode::CREATED).await?;
    st.store
        .gate(
            &c.0,
            GRANT,
            None,
            &format!("grant/{}", b.principal),
            &format!("{}|{}|{}", b.role, b.bucket, prefix),
            ms_now(),
        )
        .await?;
    let g = st
        .store
        .create_grant(&b.principal, &b.role, &b.bucket, &prefix)
        .await?;
    Ok((StatusCode::CREATED, Json(g)))
}

/// Removes a grant (quorum action `admin:Grant`, also gated by `admin:ChangeRole` rules).
#[utoipa::path(delete, path = "/admin/v1/grants/{id}", tag = "grants", operation_id = "DeleteGrant", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_grant(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_superadmin(&c)?;
    let g = st
        .store
        .list_grants(None)
        .await?
        .into_iter()
        .find(|g| g.id == id)
        .ok_or_else(|| ApiError::not_found(format!("grant {id}")))?;
    principal_in_scope(&st, &c, &g.principal).await?;
    audit.before_change(StatusCode::NO_CONTENT).await?;
    st.store
        .gate(
            &c.0,
            GRANT,
            None,
            &format!("grant/{}", g.principal),
            &format!("delete {id}"),
            ms_now(),
        )
        .await?;
    st.store.delete_grant(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
