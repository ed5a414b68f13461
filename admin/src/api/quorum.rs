//! Quorum rules: list, put, delete.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use policy::grants::DEFAULT_TENANT;
use policy::quorum::QuorumRule;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AdminState, ApiJson, ApiQuery, Caller, ListParams, RulePage, ms_now, paginate,
    require_superadmin, require_tenant,
};
use crate::audit::Audit;
use crate::error::{ApiError, ErrorBody};

/// A quorum rule body (the name is in the path).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RuleBody {
    /// action pattern (`s3:DeleteBucket`, `admin:RetireKey`, `s3:Delete*`, …)
    #[schema(pattern = "^(s3|admin):")]
    pub action: String,
    /// bucket pattern (default `*`)
    #[schema(min_length = 1)]
    pub bucket_pattern: Option<String>,
    /// approvals needed
    #[schema(minimum = 1, maximum = 16)]
    #[serde(deserialize_with = "policy::integral::plain")]
    pub approvals: u32,
    /// built-in roles an approver must hold
    #[schema(min_items = 1)]
    pub approver_roles: Vec<String>,
    /// validity in seconds (up to 30 days)
    #[schema(minimum = 1, maximum = 2592000)]
    #[serde(deserialize_with = "policy::integral::plain")]
    pub ttl_secs: u64,
}

/// Lists quorum rules.
#[utoipa::path(get, path = "/admin/v1/quorum/rules", tag = "quorum", operation_id = "ListQuorumRules", params(ListParams),
    responses((status = 200, body = RulePage)))]
pub(super) async fn list_rules(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<RulePage>, ApiError> {
    require_superadmin(&c)?;
    let (items, next_cursor) =
        paginate(st.store.list_quorum_rules().await?, |x| x.name.clone(), &p)?;
    Ok(Json(RulePage { items, next_cursor }))
}

/// Creates or replaces a quorum rule (gated by `admin:ChangeQuorumRule` rules).
#[utoipa::path(put, path = "/admin/v1/quorum/rules/{name}", tag = "quorum", operation_id = "PutQuorumRule", params(("name" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$")), request_body = RuleBody,
    responses((status = 200, body = QuorumRule), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn put_rule(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<RuleBody>,
) -> Result<Json<QuorumRule>, ApiError> {
    require_superadmin(&c)?;
    require_tenant(&c, DEFAULT_TENANT)?;
    let rule = QuorumRule {
        name,
        action: b.action,
        bucket_pattern: b.bucket_pattern.unwrap_or_else(|| "*".into()),
        approvals: b.approvals,
        approver_roles: b.approver_roles,
        ttl_secs: b.ttl_secs,
    };
    rule.validate()?;
    audit.before_change(StatusCode::OK).await?;
    st.store.set_quorum_rule(&c.0, &rule, ms_now()).await?;
    Ok(Json(rule))
}

/// Removes a quorum rule (gated by `admin:ChangeQuorumRule` rules).
#[utoipa::path(delete, path = "/admin/v1/quorum/rules/{name}", tag = "quorum", operation_id = "DeleteQuorumRule", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn delete_rule(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_superadmin(&c)?;
    require_tenant(&c, DEFAULT_TENANT)?;
    if !st
        .store
        .list_quorum_rules()
        .await?
        .iter()
        .any(|r| r.name == name)
    {
        return Err(ApiError::not_found(format!("quorum rule {name}")));
    }
    audit.before_change(StatusCode::NO_CONTENT).await?;
    st.store.delete_quorum_rule(&c.0, &name, ms_now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
