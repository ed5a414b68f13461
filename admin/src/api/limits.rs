//! Per-principal and per-role S3 rate-limit overrides: read, set, delete.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use policy::grants::DEFAULT_TENANT;
use policy::quorum::SET_LIMITS;
use policy::{LimitOverride, LimitScope};

use super::{
    AdminState, ApiJson, Caller, ms_now, principal_in_scope, require_superadmin, require_tenant,
};
use crate::audit::Audit;
use crate::error::{ApiError, ErrorBody};

/// The stored S3 rate-limit override of a principal (fields null: inherited).
#[utoipa::path(get, path = "/admin/v1/principals/{name}/limits", tag = "limits", operation_id = "GetPrincipalLimits", params(("name" = String, Path)),
    responses((status = 200, body = LimitOverride), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_principal_limits(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<LimitOverride>, ApiError> {
    require_superadmin(&c)?;
    principal_in_scope(&st, &c, &name).await?;
    Ok(Json(
        st.store.get_limits(LimitScope::Principal, &name).await?,
    ))
}

/// Sets a principal's S3 rate limits per minute (over its role's and the global ones; 0 =
/// unlimited; quorum action `admin:SetLimits`).
#[utoipa::path(put, path = "/admin/v1/principals/{name}/limits", tag = "limits", operation_id = "SetPrincipalLimits", params(("name" = String, Path)), request_body = LimitOverride,
    responses((status = 200, body = LimitOverride), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn set_principal_limits(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<LimitOverride>,
) -> Result<Json<LimitOverride>, ApiError> {
    require_superadmin(&c)?;
    principal_in_scope(&st, &c, &name).await?;
    audit.before_change(StatusCode::OK).await?;
    gate_limits(&st, &c, &format!("principal/{name}"), Some(&b)).await?;
    Ok(Json(
        st.store
            .set_limits(LimitScope::Principal, &name, &b)
            .await?,
    ))
}

/// Removes a principal's S3 rate-limit override (its role's or the global limits apply).
#[utoipa::path(delete, path = "/admin/v1/principals/{name}/limits", tag = "limits", operation_id = "DeletePrincipalLimits", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_principal_limits(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_superadmin(&c)?;
    principal_in_scope(&st, &c, &name).await?;
    audit.before_change(StatusCode::NO_CONTENT).await?;
    gate_limits(&st, &c, &format!("principal/{name}"), None).await?;
    st.store.delete_limits(LimitScope::Principal, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The stored S3 rate-limit override of a built-in role (`viewer`, `manager`, `superadmin`,
/// or `none` for principals with grants only).
#[utoipa::path(get, path = "/admin/v1/roles/{name}/limits", tag = "limits", operation_id = "GetRoleLimits", params(("name" = String, Path, pattern = "^(viewer|manager|superadmin|none)$", description = "a built-in role")),
    responses((status = 200, body = LimitOverride), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn get_role_limits(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<LimitOverride>, ApiError> {
    require_superadmin(&c)?;
    Ok(Json(st.store.get_limits(LimitScope::Role, &name).await?))
}

/// Sets the S3 rate limits per minute of every holder of a built-in role, in every tenant
/// (SuperAdmins of the default tenant only; 0 = unlimited; quorum action `admin:SetLimits`).
#[utoipa::path(put, path = "/admin/v1/roles/{name}/limits", tag = "limits", operation_id = "SetRoleLimits", params(("name" = String, Path, pattern = "^(viewer|manager|superadmin|none)$", description = "a built-in role")), request_body = LimitOverride,
    responses((status = 200, body = LimitOverride), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn set_role_limits(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<LimitOverride>,
) -> Result<Json<LimitOverride>, ApiError> {
    require_superadmin(&c)?;
    require_tenant(&c, DEFAULT_TENANT)?;
    st.store.get_limits(LimitScope::Role, &name).await?;
    audit.before_change(StatusCode::OK).await?;
    gate_limits(&st, &c, &format!("role/{name}"), Some(&b)).await?;
    Ok(Json(
        st.store.set_limits(LimitScope::Role, &name, &b).await?,
    ))
}

/// Removes a built-in role's S3 rate-limit override (SuperAdmins of the default tenant only).
#[utoipa::path(delete, path = "/admin/v1/roles/{name}/limits", tag = "limits", operation_id = "DeleteRoleLimits", params(("name" = String, Path, pattern = "^(viewer|manager|superadmin|none)$", description = "a built-in role")),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_role_limits(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_superadmin(&c)?;
    require_tenant(&c, DEFAULT_TENANT)?;
    st.store.get_limits(LimitScope::Role, &name).await?;
    audit.before_change(StatusCode::NO_CONTENT).await?;
    gate_limits(&st, &c, &format!("role/{name}"), None).await?;
    st.store.delete_limits(LimitScope::Role, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The quorum gate of limit changes (`admin:SetLimits`; only rules naming it apply).
pub(super) async fn gate_limits(
    st: &AdminState,
    c: &Caller,
    resource: &str,
    set: Option<&LimitOverride>,
) -> Result<(), ApiError> {
    let detail = match set {
        Some(o) => format!(
            "set reads={:?} writes={:?}",
            o.s3_reads_per_min, o.s3_writes_per_min
        ),
        None => "delete".to_owned(),
    };
    st.store
        .gate(&c.0, SET_LIMITS, None, resource, &detail, ms_now())
        .await?;
    Ok(())
}
