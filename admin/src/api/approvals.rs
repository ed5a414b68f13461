//! Approval requests: list, ask ahead of time, read, approve, reject.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use policy::grants::DEFAULT_TENANT;
use policy::quorum::{Approval, ApprovalState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AdminState, ApiJson, ApiQuery, ApprovalPage, Caller, ListParams, ms_now, paginate,
    require_tenant,
};
use crate::audit::Audit;
use crate::error::{ApiError, ErrorBody};

/// Ask for approval ahead of time.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewApproval {
    /// gated action (`s3:DeleteBucket`, …)
    pub action: String,
    /// bucket, for S3 actions
    pub bucket: Option<String>,
    /// object key, for object actions
    pub key: Option<String>,
}

/// Lists approval requests of the caller's tenant (all tenants for the default tenant).
#[utoipa::path(get, path = "/admin/v1/approvals", tag = "approvals", operation_id = "ListApprovals", params(ListParams, super::StateFilter),
    responses((status = 200, body = ApprovalPage), (status = 400, body = ErrorBody)))]
pub(super) async fn list_approvals(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<ApprovalPage>, ApiError> {
    let state = match p.state.as_deref() {
        None => None,
        Some(s) => Some(
            serde_json::from_value::<ApprovalState>(serde_json::Value::String(s.to_owned()))
                .map_err(|_| ApiError::bad_request(format!("unknown state {s:?}")))?,
        ),
    };
    let tenant = (c.0.tenant != DEFAULT_TENANT).then(|| c.0.tenant.clone());
    let all = st
        .store
        .list_approvals(tenant.as_deref(), state, ms_now())
        .await?;
    // newest first, as the store lists them: the key sorts by creation time descending, then id
    let newest_first = |x: &Approval| format!("{:016x}.{}", !(x.created_ms as u64), x.id);
    let (items, next_cursor) = paginate(all, newest_first, &p)?;
    Ok(Json(ApprovalPage { items, next_cursor }))
}

/// Asks for approval of an operation ahead of time (idempotent).
#[utoipa::path(post, path = "/admin/v1/approvals", tag = "approvals", operation_id = "CreateApproval", request_body = NewApproval,
    responses((status = 201, body = Approval), (status = 400, body = ErrorBody), (status = 409, description = "no quorum rule covers the action", body = ErrorBody)))]
pub(super) async fn create_approval(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    ApiJson(b): ApiJson<NewApproval>,
) -> Result<(StatusCode, Json<Approval>), ApiError> {
    let resource = match (&b.bucket, &b.key) {
        (Some(bk), Some(k)) => format!("{bk}/{k}"),
        (Some(bk), None) => bk.clone(),
        _ => String::new(),
    };
    audit.before_change(StatusCode::CREATED).await?;
    let a = st
        .store
        .request_approval(
            &c.0,
            &b.action,
            b.bucket.as_deref(),
            &resource,
            "",
            ms_now(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(a)))
}

pub(super) async fn approval_in_scope(
    st: &AdminState,
    c: &Caller,
    id: &str,
) -> Result<Approval, ApiError> {
    let a = st
        .store
        .get_approval(id, ms_now())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("approval {id}")))?;
    require_tenant(c, &a.tenant).map_err(|_| ApiError::not_found(format!("approval {id}")))?;
    Ok(a)
}

/// One approval request.
#[utoipa::path(get, path = "/admin/v1/approvals/{id}", tag = "approvals", operation_id = "GetApproval", params(("id" = String, Path)),
    responses((status = 200, body = Approval), (status = 404, body = ErrorBody)))]
pub(super) async fn get_approval(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Approval>, ApiError> {
    Ok(Json(approval_in_scope(&st, &c, &id).await?))
}

/// Approves a request (not the requester; a holder of one of the rule's roles).
#[utoipa::path(post, path = "/admin/v1/approvals/{id}/approve", tag = "approvals", operation_id = "ApproveRequest", params(("id" = String, Path)),
    responses((status = 200, body = Approval), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn approve(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(id): Path<String>,
) -> Result<Json<Approval>, ApiError> {
    approval_in_scope(&st, &c, &id).await?;
    audit.before_change(StatusCode::OK).await?;
    Ok(Json(st.store.approve(&id, &c.0, ms_now()).await?))
}

/// Rejects a request.
#[utoipa::path(post, path = "/admin/v1/approvals/{id}/reject", tag = "approvals", operation_id = "RejectRequest", params(("id" = String, Path)),
    responses((status = 200, body = Approval), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(super) async fn reject(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(id): Path<String>,
) -> Result<Json<Approval>, ApiError> {
    approval_in_scope(&st, &c, &id).await?;
    audit.before_change(StatusCode::OK).await?;
    Ok(Json(st.store.reject(&id, &c.0, ms_now()).await?))
}
