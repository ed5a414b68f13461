//! Key status for the web console's Overview: the key-encryption key provider and every
//! bucket's current data key under each key it has data keys under (the gateway's own key, and
//! each KMS key SSE-KMS requests named: version, number of versions, wrapping KEK id, last
//! rotation), never key material. The facts come from the gateway through [`KeyStatusHook`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use policy::grants::DEFAULT_TENANT;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AdminState, Caller, require_superadmin};
use crate::error::{ApiError, ErrorBody};

/// A bucket's current data key under one key (no key material).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BucketKey {
    /// bucket name
    pub bucket: String,
    /// the KMS key (ARN) wrapping this data key sequence, bound to it by SSE-KMS requests that
    /// named it; empty for the gateway's own key
    #[serde(default)]
    pub kms_key: String,
    /// current data key version
    pub version: u32,
    /// versions the sequence has (older ones still open older objects)
    pub versions: u32,
    /// id of the key-encryption key wrapping the current version
    pub kek_id: String,
    /// when the current version was made (the bucket's last rotation), Unix ms
    pub rotated_ms: i64,
}

/// Key status answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KeyStatus {
    /// the KEK provider (`file`, `env`, `aws-kms`, …)
    pub key_provider: String,
    /// buckets of the caller's tenant (every bucket for the default tenant) with their current
    /// key: one entry per bucket and key (the gateway's own key first, then each KMS key)
    pub buckets: Vec<BucketKey>,
}

/// Reads the buckets' current data keys (the gateway's index).
pub type KeyStatusHook = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<Vec<BucketKey>, String>> + Send>> + Send + Sync,
>;

/// The KEK provider and the current data key of each bucket under each key it has data keys
/// under (SuperAdmins; a tenant's SuperAdmin sees its tenant's buckets).
#[utoipa::path(get, path = "/admin/v1/key-status", tag = "status", operation_id = "GetKeyStatus",
    responses((status = 200, body = KeyStatus), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn key_status(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
) -> Result<Json<KeyStatus>, ApiError> {
    require_superadmin(&c)?;
    let hook = st.key_status.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "key status is not available on this server",
        )
    })?;
    let all = hook().await.map_err(|e| {
        tracing::warn!("key status: {e}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "the key store did not answer",
        )
    })?;
    let mut buckets = Vec::with_capacity(all.len());
    for b in all {
        if c.0.tenant == DEFAULT_TENANT || st.store.bucket_tenant(&b.bucket).await? == c.0.tenant {
            buckets.push(b);
        }
    }
    let key_provider = st
        .status_extra
        .as_ref()
        .and_then(|f| f()["key_provider"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    Ok(Json(KeyStatus {
        key_provider,
        buckets,
    }))
}
