//! Key management of a running gateway: `GET /kek` (provider, KEKs, every bucket data key version
//! and the objects under it), `POST /kek/rotate` (a new KEK version, then every data key
//! re-wrapped), `POST /kek/rewrap` (resumable re-wrap under the current KEK) and
//! `POST /kek/{kek_id}/retire` (quorum action `admin:RetireKey`; refused while anything depends
//! on the KEK), `POST /kek/reencrypt` (quorum action `admin:ReencryptBucket`: a new data key
//! version for a bucket and every object re-sealed under it, as a background job of the
//! gateway) and `GET /kek/reencrypt/{bucket}` (its state). Keys are global to the gateway: only SuperAdmins of the default tenant may call
//! these. The work is the gateway's (`gateway::ops::keys`), reached through [`KekOps`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use policy::grants::DEFAULT_TENANT;
use policy::quorum::{REENCRYPT_BUCKET, RETIRE_KEY};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AdminState, ApiJson, Caller, ms_now, require_superadmin};
use crate::audit::Audit;
use crate::error::{ApiError, ErrorBody};

/// Why a key operation did not happen.
#[derive(Debug, Clone)]
pub enum KekOpError {
    /// Not in this state (409; the message says what to do first).
    Refused(String),
    /// No such KEK (404).
    NotFound(String),
    /// The index, key file or KMS failed (503; the detail is logged, not returned).
    Unavailable(String),
}

/// The answer of a key operation (JSON, see `docs/API.md`).
pub type KekFuture =
    Pin<Box<dyn Future<Output = Result<serde_json::Value, KekOpError>> + Send + 'static>>;

/// The gateway's key operations.
pub trait KekOps: Send + Sync {
    /// Provider, KEKs, data keys and their objects.
    fn status(&self) -> KekFuture;
    /// New KEK version, then rewrap.
    fn rotate(&self) -> KekFuture;
    /// Re-wrap data keys not under the current KEK.
    fn rewrap(&self) -> KekFuture;
    /// Remove a KEK version nothing depends on.
    fn retire(&self, kek_id: String, accept_header_copies: bool) -> KekFuture;
    /// The refusals of [`KekOps::rotate`], checked before anything changes.
    fn check_rotate(&self) -> KekFuture;
    /// The refusals of [`KekOps::retire`], checked before anything changes.
    fn check_retire(&self, kek_id: String, accept_header_copies: bool) -> KekFuture;
    /// The refusals of [`KekOps::reencrypt`] (no such bucket, a job running), checked before
    /// anything changes.
    fn check_reencrypt(&self, bucket: String) -> KekFuture;
    /// Starts (or resumes) the re-encryption of a bucket as a background job; answers its
    /// state once the job has its target data key version. `principal`: who started it (the
    /// job's finish event names it).
    fn reencrypt(&self, bucket: String, rate: ReencryptBucket, principal: String) -> KekFuture;
    /// The state of a bucket's re-encryption (NotFound if none was ever started).
    fn reencrypt_status(&self, bucket: String) -> KekFuture;
}

/// Shared handle on the gateway's key operations.
pub type KekOpsHandle = Arc<dyn KekOps>;

/// A key operation's report (shape in docs/API.md).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct KekReport(pub serde_json::Value);

/// Options of a retirement.
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetireKek {
    /// retire although stored stream headers still carry data keys wrapped by this KEK (what
    /// `vaultgate reindex` reads: a reindex then needs the KEK from a backup)
    #[serde(default)]
    pub accept_header_copies: bool,
}

/// A re-encryption to start.
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReencryptBucket {
    /// the bucket
    pub bucket: String,
    /// at most this many MB (10^6 bytes) of plaintext per second
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0.0)]
    pub rate: Option<f64>,
    /// at most this many object versions per second
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(exclusive_minimum = 0.0)]
    pub rate_objects: Option<f64>,
}

fn ops(st: &AdminState, c: &Caller) -> Result<KekOpsHandle, ApiError> {
    require_superadmin(c)?;
    if c.0.tenant != DEFAULT_TENANT {
        return Err(ApiError::forbidden(
            "key management needs a superadmin of the default tenant",
        ));
    }
    st.kek_ops.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "key management is not available on this server",
        )
    })
}

pub(super) fn to_api(e: KekOpError) -> ApiError {
    match e {
        KekOpError::Refused(m) => ApiError::new(StatusCode::CONFLICT, "Conflict", m),
        KekOpError::NotFound(m) => ApiError::not_found(m),
        KekOpError::Unavailable(m) => {
            tracing::warn!("key operation failed: {m}");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Unavailable",
                "the key provider or the index did not answer; try again",
            )
        }
    }
}

/// Key provider state, KEKs (current, held, what depends on each) and every bucket data key
/// version with the objects sealed under it. Never key material.
#[utoipa::path(get, path = "/admin/v1/kek", tag = "keys", operation_id = "GetKekStatus",
    responses((status = 200, body = KekReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn kek_status(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
) -> Result<Json<KekReport>, ApiError> {
    let ops = ops(&st, &c)?;
    Ok(Json(KekReport(ops.status().await.map_err(to_api)?)))
}

/// Adds a KEK version to the key file and makes it current, then re-wraps every data key under
/// it (no object data is rewritten). A given master key or a KMS key answers 409 saying how it
/// is rotated.
#[utoipa::path(post, path = "/admin/v1/kek/rotate", tag = "keys", operation_id = "RotateKek",
    responses((status = 200, body = KekReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn rotate_kek(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
) -> Result<Json<KekReport>, ApiError> {
    let ops = ops(&st, &c)?;
    ops.check_rotate().await.map_err(to_api)?;
    audit.before_change(StatusCode::OK).await?;
    Ok(Json(KekReport(ops.rotate().await.map_err(to_api)?)))
}

/// Re-wraps every data key not yet wrapped by the current KEK (resumable: keys already current
/// are skipped; `failed` lists what to retry).
#[utoipa::path(post, path = "/admin/v1/kek/rewrap", tag = "keys", operation_id = "RewrapDataKeys",
    responses((status = 200, body = KekReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn rewrap_keys(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
) -> Result<Json<KekReport>, ApiError> {
    let ops = ops(&st, &c)?;
    audit.before_change(StatusCode::OK).await?;
    Ok(Json(KekReport(ops.rewrap().await.map_err(to_api)?)))
}

/// Removes a non-current KEK version from the key file (quorum action `admin:RetireKey`).
/// 409 while it is current, while a data key is wrapped by it, or while stream headers carry it
/// (unless `accept_header_copies`); 404 for a KEK the provider does not hold.
#[utoipa::path(post, path = "/admin/v1/kek/{kek_id}/retire", tag = "keys", operation_id = "RetireKek",
    params(("kek_id" = String, Path, description = "KEK id (`local:…`)")),
    request_body = RetireKek,
    responses((status = 200, body = KekReport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn retire_kek(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(kek_id): Path<String>,
    ApiJson(b): ApiJson<RetireKek>,
) -> Result<Json<KekReport>, ApiError> {
    let ops = ops(&st, &c)?;
    ops.check_retire(kek_id.clone(), b.accept_header_copies)
        .await
        .map_err(to_api)?;
    st.store
        .gate(
            &c.0,
            RETIRE_KEY,
            None,
            &format!("kek/{kek_id}"),
            &format!("accept_header_copies={}", b.accept_header_copies),
            ms_now(),
        )
        .await?;
    audit.before_change(StatusCode::OK).await?;
    Ok(Json(KekReport(
        ops.retire(kek_id, b.accept_header_copies)
            .await
            .map_err(to_api)?,
    )))
}

/// Starts the re-encryption of a bucket (quorum action `admin:ReencryptBucket`): a new data key
/// version, then every version of every object re-sealed under it by a background job of the
/// gateway, which keeps serving (an overwrite racing a re-seal wins). Resumes the unfinished
/// one instead when there is one. 202 with the job's state; 409 while a job runs for the
/// bucket; 404 for no such bucket.
#[utoipa::path(post, path = "/admin/v1/kek/reencrypt", tag = "keys", operation_id = "ReencryptBucket",
    request_body = ReencryptBucket,
    responses((status = 202, body = KekReport), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn reencrypt_bucket(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    ApiJson(b): ApiJson<ReencryptBucket>,
) -> Result<(StatusCode, Json<KekReport>), ApiError> {
    let ops = ops(&st, &c)?;
    for (name, v) in [("rate", b.rate), ("rate_objects", b.rate_objects)] {
        if let Some(v) = v
            && !(v.is_finite() && v > 0.0)
        {
            return Err(ApiError::bad_request(format!(
                "{name} must be a positive number"
            )));
        }
    }
    ops.check_reencrypt(b.bucket.clone())
        .await
        .map_err(to_api)?;
    st.store
        .gate(
            &c.0,
            REENCRYPT_BUCKET,
            Some(&b.bucket),
            &format!("bucket/{}", b.bucket),
            &format!("rate={:?} rate_objects={:?}", b.rate, b.rate_objects),
            ms_now(),
        )
        .await?;
    audit.before_change(StatusCode::ACCEPTED).await?;
    let principal = c.0.principal.clone();
    Ok((
        StatusCode::ACCEPTED,
        Json(KekReport(
            ops.reencrypt(b.bucket.clone(), b, principal)
                .await
                .map_err(to_api)?,
        )),
    ))
}

/// The state of a bucket's re-encryption: target data key version, versions re-sealed, SSE-C
/// versions skipped, re-seals a write won, failures, versions remaining, running or finished.
#[utoipa::path(get, path = "/admin/v1/kek/reencrypt/{bucket}", tag = "keys", operation_id = "GetReencryptStatus",
    params(("bucket" = String, Path, description = "bucket name")),
    responses((status = 200, body = KekReport), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn reencrypt_status(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    Path(bucket): Path<String>,
) -> Result<Json<KekReport>, ApiError> {
    let ops = ops(&st, &c)?;
    Ok(Json(KekReport(
        ops.reencrypt_status(bucket).await.map_err(to_api)?,
    )))
}
