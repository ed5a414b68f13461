//! The token endpoint: an access key pair exchanged for a short-lived bearer JWT.

use axum::Json;
use axum::extract::State;
use policy::SecretKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{AdminState, ApiJson, ms_now};
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
