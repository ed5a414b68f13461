//! The audit ledger's chain status: a verification run over the ledger's hash chain, the same
//! walk as `vaultgate audit verify` (checkpoint signatures checked against the gateway's own
//! evidence key), for the web console's Audit page.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use policy::Role;
use policy::grants::DEFAULT_TENANT;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AdminState, Caller, ms_now};
use crate::error::{ApiError, ErrorBody};

/// Result of a verification run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChainStatus {
    /// true when no issue was found
    pub ok: bool,
    /// events verified (before the first issue, if any)
    pub events: u64,
    /// first verified seq
    pub first_seq: Option<i64>,
    /// last verified seq
    pub last_seq: Option<i64>,
    /// hash of the last verified event
    pub head_hash: String,
    /// where the walk started: `genesis` or `checkpoint <seq>`
    pub anchor: String,
    /// the first broken seq, when the chain is broken
    pub broken_seq: Option<i64>,
    /// what is wrong there
    pub issue: Option<String>,
    /// when the run finished (Unix ms)
    pub checked_ms: i64,
}

/// Verifies the ledger's hash chain now (SuperAdmins of the default tenant: the chain spans
/// every tenant). A broken chain is a 200 answer with `ok: false` and the first broken seq.
#[utoipa::path(get, path = "/admin/v1/audit/verify", tag = "audit", operation_id = "VerifyAuditChain",
    responses((status = 200, body = ChainStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn verify_chain(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
) -> Result<Json<ChainStatus>, ApiError> {
    if c.0.role != Some(Role::SuperAdmin) || c.0.tenant != DEFAULT_TENANT {
        return Err(ApiError::forbidden(
            "verifying the whole ledger needs a superadmin of the default tenant",
        ));
    }
    let a = st.audit.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "AuditUnavailable",
            "auditing is not configured on this gateway",
        )
    })?;
    let pk = a.evidence_key.public_key();
    let r = a
        .ledger
        .verify(Some(&pk))
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(ChainStatus {
        ok: r.is_ok(),
        events: r.events,
        first_seq: r.first_seq,
        last_seq: r.last_seq,
        head_hash: r.head_hash.clone(),
        anchor: r.anchor.to_string(),
        broken_seq: r.issue.as_ref().map(|i| i.seq),
        issue: r
            .issue
            .as_ref()
            .map(|i| format!("{}: {}", i.kind, i.detail)),
        checked_ms: ms_now(),
    }))
}
