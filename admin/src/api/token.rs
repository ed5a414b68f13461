//! The token endpoint: an access key pair exchanged for a short-lived bearer JWT; its renewal;
//! and the online rotation of the generated signing secret (`POST /auth/signing-secret/rotate`,
//! quorum action `admin:RotateSigningSecret`): new tokens are signed with the new secret at
//! once, tokens signed by the previous one keep working until they expire (at most the token
//! lifetime), then get the usual 401 "log in again".

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use policy::SecretKey;
use policy::grants::DEFAULT_TENANT;
use policy::quorum::ROTATE_SIGNING_SECRET;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::kek::{KekOpError, to_api};
use super::{AdminState, ApiJson, Caller, ms_now, require_superadmin};
use crate::audit::Audit;
use crate::error::{ApiError, ErrorBody};

/// Token request: an access key pair.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// access key id
    pub access_key: String,
    /// secret key
    pub secret_key: String,
}

/// Token answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TokenResponse {
    /// bearer token (JWT)
    pub token: String,
    /// lifetime in seconds
    pub expires_in: u64,
}

/// Exchanges an access key pair for a short-lived bearer token.
#[utoipa::path(post, path = "/admin/v1/auth/token", tag = "auth", operation_id = "CreateToken", security(()), request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn token(
    State(st): State<AdminState>,
    audit: Audit,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    // (the failed-authentication and rate limits of the caller's address ran in `auth_mw`;
    // a malformed or oversized key id is refused by the store before any lookup, with the
    // same answer as a wrong key)
    let secret = SecretKey::new(req.secret_key);
    let id = st
        .store
        .verify_key_pair(&req.access_key, &secret, ms_now())
        .await?;
    audit.set_principal(&id.principal, &id.tenant);
    let roles = id
        .role
        .map(|r| vec![r.as_str().to_owned()])
        .unwrap_or_default();
    let (token, expires_in) =
        st.jwt
            .issue_for_key(&id.principal, &id.tenant, roles, &id.access_key_id)?;
    Ok(Json(TokenResponse { token, expires_in }))
}

/// Renews the caller's session: a fresh token for the same principal and access key, issued
/// only while that key is active and its principal enabled (the bearer check of this call
/// re-read both from the store). Tokens of an external issuer (no `akid`) are renewed by
/// their issuer → 400.
#[utoipa::path(post, path = "/admin/v1/auth/renew", tag = "auth", operation_id = "RenewToken",
    responses((status = 200, body = TokenResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub(super) async fn renew(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
) -> Result<Json<TokenResponse>, ApiError> {
    let id = &c.0;
    if id.access_key_id.is_empty() {
        return Err(ApiError::bad_request(
            "this token was not issued by /auth/token; renew it with its issuer",
        ));
    }
    let roles = id
        .role
        .map(|r| vec![r.as_str().to_owned()])
        .unwrap_or_default();
    let (token, expires_in) =
        st.jwt
            .issue_for_key(&id.principal, &id.tenant, roles, &id.access_key_id)?;
    Ok(Json(TokenResponse { token, expires_in }))
}

/// A new signing secret, generated and kept (sealed) by the gateway, or why not
/// ([`KekOpError::Refused`] when the secret is configured rather than generated).
pub type SigningSecretFuture =
    Pin<Box<dyn Future<Output = Result<SecretKey, KekOpError>> + Send + 'static>>;

/// The gateway's replacement of its admin token signing secret (see
/// [`AdminState::with_signing_secret`]).
pub type SigningSecretHook = Arc<dyn Fn() -> SigningSecretFuture + Send + Sync>;

/// The answer of a signing secret rotation.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SigningSecretRotated {
    /// new tokens are signed with the new secret from this moment (ms since epoch)
    pub rotated_ms: i64,
    /// tokens signed by the previous secret are accepted until this moment (ms since epoch:
    /// the rotation plus the token lifetime), then answer 401 "log in again"
    pub previous_accepted_until_ms: i64,
}

/// Replaces the generated admin token signing secret while the gateway serves (quorum action
/// `admin:RotateSigningSecret`; SuperAdmins of the default tenant). The new secret is sealed in
/// the data dir (a restart keeps it) and signs new tokens at once; tokens signed by the previous
/// one keep working until they expire. 409 when the secret is configured
/// (`VAULTGATE_ADMIN_JWT_SECRET`: change it there and restart).
#[utoipa::path(post, path = "/admin/v1/auth/signing-secret/rotate", tag = "auth", operation_id = "RotateSigningSecret",
    params(("Idempotency-Key" = Option<String>, Header, description = "replay protection")),
    responses((status = 200, body = SigningSecretRotated), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn rotate_signing_secret(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
) -> Result<Json<SigningSecretRotated>, ApiError> {
    require_superadmin(&c)?;
    if c.0.tenant != DEFAULT_TENANT {
        return Err(ApiError::forbidden(
            "rotating the admin token signing secret needs a superadmin of the default tenant",
        ));
    }
    let hook = st.signing_secret.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "the signing secret cannot be rotated on this server",
        )
    })?;
    st.store
        .gate(
            &c.0,
            ROTATE_SIGNING_SECRET,
            None,
            "admin-signing-secret",
            "",
            ms_now(),
        )
        .await?;
    audit.before_change(StatusCode::OK).await?;
    let secret = hook().await.map_err(to_api)?;
    let rotated_ms = ms_now();
    let until = st.jwt.rotate(secret.expose().as_bytes())?;
    Ok(Json(SigningSecretRotated {
        rotated_ms,
        previous_accepted_until_ms: i64::try_from(until.saturating_mul(1000)).unwrap_or(i64::MAX),
    }))
}
