//! Access keys: list, issue (the only answer that shows the secret), revoke.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use policy::grants::DEFAULT_TENANT;
use policy::quorum::ISSUE_KEY;
use policy::store::AccessKeyInfo;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    AdminState, ApiJson, ApiQuery, Caller, KeyPage, ListParams, ms_now, paginate,
    principal_in_scope, require_superadmin,
};
use crate::audit::Audit;
use crate::error::{ApiError, ErrorBody};

/// New access key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewKey {
    /// owning principal
    pub principal: String,
    /// lifetime in seconds (none: no expiry)
    #[serde(default, deserialize_with = "policy::integral::option")]
    pub expires_in_secs: Option<u64>,
}

/// A created access key: the only answer that shows the secret.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedKey {
    /// access key id
    pub access_key_id: String,
    /// secret key (shown once)
    pub secret_key: String,
    /// owning principal
    pub principal: String,
    /// expiry (ms since epoch)
    pub expires_ms: Option<i64>,
}

/// Lists access keys (never secrets).
#[utoipa::path(get, path = "/admin/v1/keys", tag = "keys", operation_id = "ListAccessKeys", params(ListParams, super::PrincipalFilter),
    responses((status = 200, body = KeyPage), (status = 403, body = ErrorBody)))]
pub(super) async fn list_keys(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<KeyPage>, ApiError> {
    require_superadmin(&c)?;
    let mut all = st.store.list_access_keys(p.principal.as_deref()).await?;
    if c.0.tenant != DEFAULT_TENANT {
        let mine: Vec<String> = st
            .store
            .list_principals(Some(&c.0.tenant))
            .await?
            .into_iter()
            .map(|x| x.name)
            .collect();
        all.retain(|k| mine.contains(&k.principal));
    }
    let (items, next_cursor) = paginate(all, |x| x.access_key_id.clone(), &p)?;
    Ok(Json(KeyPage { items, next_cursor }))
}

/// Issues an access key; the secret is in this answer only. For another principal than the
/// caller: quorum action `admin:IssueKey`, also gated by `admin:ChangeRole` rules.
#[utoipa::path(post, path = "/admin/v1/keys", tag = "keys", operation_id = "CreateAccessKey", request_body = NewKey,
    params(("Idempotency-Key" = Option<String>, Header, description = "replay protection")),
    responses((status = 201, body = CreatedKey), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn create_key(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    ApiJson(b): ApiJson<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    require_superadmin(&c)?;
    principal_in_scope(&st, &c, &b.principal).await?;
    let expires = b.expires_in_secs.map(|s| {
        ms_now().saturating_add(i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX))
    });
    audit.before_change(StatusCode::CREATED).await?;
    if b.principal != c.0.principal {
        st.store
            .gate(
                &c.0,
                ISSUE_KEY,
                None,
                &format!("key/{}", b.principal),
                &format!("expires_in_secs={:?}", b.expires_in_secs),
                ms_now(),
            )
            .await?;
    }
    let k = st.store.create_access_key(&b.principal, expires).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            access_key_id: k.access_key_id.clone(),
            secret_key: k.secret.expose().to_owned(),
            principal: k.principal.clone(),
            expires_ms: k.expires_ms,
        }),
    ))
}

/// Revokes an access key (effective on the next request).
#[utoipa::path(post, path = "/admin/v1/keys/{id}/revoke", tag = "keys", operation_id = "RevokeAccessKey", params(("id" = String, Path)),
    responses((status = 200, body = AccessKeyInfo), (status = 404, body = ErrorBody)))]
pub(super) async fn revoke_key(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(id): Path<String>,
) -> Result<Json<AccessKeyInfo>, ApiError> {
    require_superadmin(&c)?;
    // another tenant's key answers exactly as a key that does not exist (no owner, no hint)
    let unknown = || ApiError::not_found(format!("access key {id}"));
    let k = st.store.get_access_key(&id).await?.ok_or_else(unknown)?;
    principal_in_scope(&st, &c, &k.principal)
        .await
        .map_err(|_| unknown())?;
    audit.before_change(StatusCode::OK).await?;
    st.store.revoke_access_key(&id).await?;
    let k = st
        .store
        .get_access_key(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("access key {id}")))?;
    Ok(Json(k))
}
