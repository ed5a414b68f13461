//! The token endpoint: an access key pair exchanged for a short-lived bearer JWT.

use axum::extract::State;
use axum::{Extension, Json};
use policy::SecretKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AdminState, ApiJson, Caller, ms_now};
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
