//! Health, status and the OpenAPI document of the admin API.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AdminState, Caller};
use crate::error::{ApiError, ErrorBody};

/// Health answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: String,
}

/// Status answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// gateway version
    pub version: String,
    /// seconds since the admin API started
    pub uptime_secs: u64,
    /// number of principals
    pub principals: u64,
    /// the caller
    pub caller: String,
    /// the caller's built-in role (`superadmin`, `manager`, `viewer`; absent: grants only), as the
    /// store has it now
    #[serde(default)]
    pub caller_role: Option<String>,
    /// the caller's tenant
    #[serde(default)]
    pub caller_tenant: String,
    /// extra facts from the gateway
    #[schema(value_type = Object)]
    pub extra: serde_json::Value,
}

/// Liveness and database reachability.
#[utoipa::path(get, path = "/admin/v1/health", tag = "status", operation_id = "Health", security(()),
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
pub(super) async fn health(State(st): State<AdminState>) -> Result<Json<Health>, ApiError> {
    st.store.ping().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "database unreachable",
        )
    })?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

/// Gateway status.
#[utoipa::path(get, path = "/admin/v1/status", tag = "status", operation_id = "GetStatus",
    responses((status = 200, body = Status), (status = 401, body = ErrorBody)))]
pub(super) async fn status(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
) -> Result<Json<Status>, ApiError> {
    Ok(Json(Status {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_secs: st.started.elapsed().as_secs(),
        principals: st.store.count_principals().await?,
        caller_role: c.0.role.map(|r| r.as_str().to_owned()),
        caller_tenant: c.0.tenant.clone(),
        caller: c.0.principal,
        extra: st
            .status_extra
            .as_ref()
            .map_or(serde_json::json!({}), |f| f()),
    }))
}

/// This document.
#[utoipa::path(get, path = "/admin/v1/openapi.json", tag = "status", operation_id = "GetOpenApiDocument", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
pub(super) async fn openapi_json(Extension(doc): Extension<Arc<String>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.as_str().to_owned(),
    )
        .into_response()
}
