//! Principals: list, create, read, disable, re-enable, change of built-in role.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use policy::grants::DEFAULT_TENANT;
use policy::quorum::{CHANGE_ROLE, CREATE_PRINCIPAL, ENABLE_PRINCIPAL};
use policy::store::PrincipalRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AdminState, ApiJson, ApiQuery, Caller, ListParams, PrincipalPage, ms_now, paginate, parse_role,
    principal_in_scope, require_superadmin, require_tenant,
};
use crate::audit::Audit;
use crate::error::{ApiError, ErrorBody};

/// New principal.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewPrincipal {
    /// unique name
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub name: String,
    /// `user` (default) or `service`
    #[schema(pattern = "^(user|service)$")]
    pub kind: Option<String>,
    /// tenant (default: the caller's)
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$")]
    pub tenant: Option<String>,
    /// built-in role or `none` (default `none`; also accepted in any case and with `-`/`_`,
    /// e.g. `super-admin`)
    #[schema(pattern = "^(viewer|manager|superadmin|none)$")]
    pub role: Option<String>,
}

/// Role change.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RoleChange {
    /// built-in role or `none`
    #[schema(pattern = "^(viewer|manager|superadmin|none)$")]
    pub role: String,
}

/// Lists principals.
#[utoipa::path(get, path = "/admin/v1/principals", tag = "principals", operation_id = "ListPrincipals", params(ListParams, super::TenantFilter),
    responses((status = 200, body = PrincipalPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn list_principals(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<PrincipalPage>, ApiError> {
    require_superadmin(&c)?;
    let tenant = if c.0.tenant == DEFAULT_TENANT {
        p.tenant.clone()
    } else {
        Some(c.0.tenant.clone())
    };
    let all = st.store.list_principals(tenant.as_deref()).await?;
    let (items, next_cursor) = paginate(all, |x| x.name.clone(), &p)?;
    Ok(Json(PrincipalPage { items, next_cursor }))
}

/// Creates a user or service account (with a role: quorum action `admin:CreatePrincipal`, also
/// gated by `admin:ChangeRole` rules).
#[utoipa::path(post, path = "/admin/v1/principals", tag = "principals", operation_id = "CreatePrincipal", request_body = NewPrincipal,
    params(("Idempotency-Key" = Option<String>, Header, description = "replay protection")),
    responses((status = 201, body = PrincipalRecord), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn create_principal(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    ApiJson(b): ApiJson<NewPrincipal>,
) -> Result<(StatusCode, Json<PrincipalRecord>), ApiError> {
    require_superadmin(&c)?;
    let tenant = b.tenant.unwrap_or_else(|| c.0.tenant.clone());
    require_tenant(&c, &tenant)?;
    let role = parse_role(b.role.as_deref().unwrap_or("none"))?;
    if st.store.get_principal(&b.name).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("principal {} exists", b.name),
        ));
    }
    let kind = b.kind.as_deref().unwrap_or("user");
    audit.before_change(StatusCode::CREATED).await?;
    if let Some(r) = role {
        st.store
            .gate(
                &c.0,
                CREATE_PRINCIPAL,
                None,
                &format!("principal/{}", b.name),
                &format!("tenant={tenant};kind={kind};role={r}"),
                ms_now(),
            )
            .await?;
    }
    let p = st
        .store
        .create_principal(&b.name, kind, &tenant, role)
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// One principal.
#[utoipa::path(get, path = "/admin/v1/principals/{name}", tag = "principals", operation_id = "GetPrincipal", params(("name" = String, Path)),
    responses((status = 200, body = PrincipalRecord), (status = 404, body = ErrorBody)))]
pub(super) async fn get_principal(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<PrincipalRecord>, ApiError> {
    require_superadmin(&c)?;
    Ok(Json(principal_in_scope(&st, &c, &name).await?))
}

/// Disables a principal (its keys and tokens stop working on the next request).
#[utoipa::path(post, path = "/admin/v1/principals/{name}/disable", tag = "principals", operation_id = "DisablePrincipal", params(("name" = String, Path)),
    responses((status = 200, body = PrincipalRecord), (status = 404, body = ErrorBody), (status = 409, description = "a principal cannot disable itself", body = ErrorBody)))]
pub(super) async fn disable_principal(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
) -> Result<Json<PrincipalRecord>, ApiError> {
    require_superadmin(&c)?;
    principal_in_scope(&st, &c, &name).await?;
    if name == c.0.principal {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            "a principal cannot disable itself",
        ));
    }
    audit.before_change(StatusCode::OK).await?;
    Ok(Json(st.store.set_disabled(&name, true).await?))
}

/// Re-enables a principal (quorum action `admin:EnablePrincipal`, also gated by
/// `admin:ChangeRole` rules).
#[utoipa::path(post, path = "/admin/v1/principals/{name}/enable", tag = "principals", operation_id = "EnablePrincipal", params(("name" = String, Path)),
    responses((status = 200, body = PrincipalRecord), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn enable_principal(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
) -> Result<Json<PrincipalRecord>, ApiError> {
    require_superadmin(&c)?;
    let p = principal_in_scope(&st, &c, &name).await?;
    audit.before_change(StatusCode::OK).await?;
    if p.disabled {
        st.store
            .gate(
                &c.0,
                ENABLE_PRINCIPAL,
                None,
                &format!("principal/{name}"),
                "enable",
                ms_now(),
            )
            .await?;
    }
    Ok(Json(st.store.set_disabled(&name, false).await?))
}

/// Changes a principal's built-in role (quorum action `admin:ChangeRole`).
#[utoipa::path(put, path = "/admin/v1/principals/{name}/role", tag = "principals", operation_id = "SetPrincipalRole", params(("name" = String, Path)), request_body = RoleChange,
    responses((status = 200, body = PrincipalRecord), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn set_role(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<RoleChange>,
) -> Result<Json<PrincipalRecord>, ApiError> {
    require_superadmin(&c)?;
    principal_in_scope(&st, &c, &name).await?;
    let role = parse_role(&b.role)?;
    audit.before_change(StatusCode::OK).await?;
    st.store
        .gate(
            &c.0,
            CHANGE_ROLE,
            None,
            &format!("principal/{name}"),
            &format!("role={}", b.role),
            ms_now(),
        )
        .await?;
    Ok(Json(st.store.set_role(&name, role).await?))
}
