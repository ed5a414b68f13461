//! The admin API's own middleware: bearer-token authentication (re-checked against the
//! store on every call), the failed-authentication and admin rate limits, and
//! `Idempotency-Key` replay of mutating calls.

use std::net::{IpAddr, SocketAddr};

use ::audit::RequestAudit;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use policy::LimitClass;

use super::{AdminState, Caller, MAX_BODY, ms_now};
use crate::error::ApiError;

/// The token endpoint: public, limited per source address.
pub(super) const TOKEN_PATH: &str = "/admin/v1/auth/token";

pub(super) fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/admin/v1/health" | TOKEN_PATH | "/admin/v1/openapi.json"
    )
}

/// The source address, when the listener provides it (`into_make_service_with_connect_info`;
/// absent in in-process tests, where the per-address limits are skipped).
pub(super) fn source_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

pub(super) async fn auth_mw(
    State(st): State<AdminState>,
    mut req: Request,
    next: Next,
) -> Response {
    let ip = source_ip(&req);
    let path = req.uri().path().to_owned();
    if path == TOKEN_PATH {
        // an address that used up its failed authentications, or its admin quota, is refused
        // before any lookup; a 401 counts as one failure of the address
        if let Some(ip) = ip {
            let admitted = st
                .auth_failures
                .check(ip)
                .and_then(|()| st.limits.check(LimitClass::Admin, &format!("ip:{ip}")));
            if let Err(e) = admitted {
                return ApiError::from(e).into_response();
            }
        }
        let resp = next.run(req).await;
        if resp.status() == StatusCode::UNAUTHORIZED
            && let Some(ip) = ip
        {
            st.auth_failures.record_failure(ip);
        }
        return resp;
    }
    if is_public(&path) {
        return next.run(req).await;
    }
    if let Some(ip) = ip
        && let Err(e) = st.auth_failures.check(ip)
    {
        return ApiError::from(e).into_response();
    }
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let audit = req.extensions().get::<RequestAudit>().cloned();
    match authenticate(&st, auth, audit.as_ref()).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => {
            if e.status == StatusCode::UNAUTHORIZED
                && let Some(ip) = ip
            {
                st.auth_failures.record_failure(ip);
            }
            e.into_response()
        }
    }
}

/// Verifies the bearer token, then re-checks its subject against the store (through the access
/// cache, so a revoke, disable or role change acts on the very next call): a token minted with
/// an access key (claim `akid`) needs that key active and owned by the subject; any token needs
/// its principal to exist and be enabled. Role and tenant are the store's, never the claims'.
pub(super) async fn authenticate(
    st: &AdminState,
    auth: Option<String>,
    audit: Option<&RequestAudit>,
) -> Result<Caller, ApiError> {
    let h = auth.ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    let token = h
        .strip_prefix("Bearer ")
        .or_else(|| h.strip_prefix("bearer "))
        .ok_or_else(|| ApiError::unauthorized("authorization must be a bearer token"))?;
    let claims = st.jwt.verify(token.trim())?;
    if let Some(a) = audit {
        a.set_principal(Some(claims.sub.clone()), Some(claims.tenant.clone()));
    }
    let id = match claims.akid.as_deref() {
        Some(akid) => st
            .store
            .key_identity(akid, ms_now())
            .await?
            .filter(|id| id.principal == claims.sub)
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "the token's access key is revoked or expired, or its principal is disabled",
                )
            })?,
        None => st
            .store
            .identity(&claims.sub)
            .await?
            .ok_or_else(|| ApiError::unauthorized("principal is unknown or disabled"))?,
    };
    if let Some(a) = audit {
        a.set_principal(Some(id.principal.clone()), Some(id.tenant.clone()));
    }
    st.limits.check(LimitClass::Admin, &id.principal)?;
    Ok(Caller(id))
}

/// Idempotency-Key on authenticated mutating calls: the same key and request again gets the
/// stored 2xx answer, the same key with a different request 422.
pub(super) async fn idempotency_mw(
    State(st): State<AdminState>,
    req: Request,
    next: Next,
) -> Response {
    let (key, scope) = match idempotent_call(&req) {
        Ok(Some(call)) => call,
        Ok(None) => return next.run(req).await,
        Err(refused) => return refused.into_response(),
    };
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "InvalidRequest",
                "body too large",
            )
            .into_response();
        }
    };
    let hash = request_hash(&parts, &bytes);
    if let Some(earlier) = replay(&st, &scope, &key, &hash).await {
        return earlier;
    }
    let resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if !resp.status().is_success() {
        return resp;
    }
    let (rparts, rbody) = resp.into_parts();
    let rbytes = match axum::body::to_bytes(rbody, 16 * MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let stored = policy::store::IdempotentResponse {
        request_hash: hash,
        status: rparts.status.as_u16(),
        body: String::from_utf8_lossy(&rbytes).into_owned(),
    };
    if let Err(e) = st.store.idempotency_put(&scope, &key, &stored).await {
        tracing::warn!("storing idempotent response: {e}");
    }
    Response::from_parts(rparts, Body::from(rbytes))
}

/// The Idempotency-Key and the caller scope of a call the middleware keeps the answer of: a
/// documented mutating operation of an authenticated caller carrying the header (None: the
/// call passes untouched); a key that is not 1..=255 visible ASCII characters is refused.
fn idempotent_call(req: &Request) -> Result<Option<(String, String)>, ApiError> {
    // only documented operations: a method a path does not serve is answered 405 by the
    // router, whatever Idempotency-Key it carries
    let routed = req
        .extensions()
        .get::<crate::audit::Operation>()
        .is_some_and(|op| op.0 != crate::audit::UNKNOWN_ROUTE);
    let mutating = routed
        && matches!(
            *req.method(),
            Method::POST | Method::PUT | Method::DELETE | Method::PATCH
        );
    let key = req.headers().get("idempotency-key").map(|v| v.as_bytes());
    let (Some(key), true) = (key, mutating) else {
        return Ok(None);
    };
    // 1..=255 visible ASCII characters, as documented (a key that is not is refused, never
    // silently ignored: the caller relies on it)
    if key.is_empty() || key.len() > 255 || !key.iter().all(u8::is_ascii_graphic) {
        return Err(ApiError::bad_request(
            "Idempotency-Key must be 1..=255 visible ASCII characters",
        ));
    }
    let key = String::from_utf8_lossy(key).into_owned();
    // only authenticated calls: an unauthenticated caller must not make the server store
    // anything (and the token endpoint's answer is a credential)
    Ok(req
        .extensions()
        .get::<Caller>()
        .map(|c| (key, c.0.principal.clone())))
}

/// SHA-256 of the method, URI and body of a request (what a replay must match).
fn request_hash(parts: &axum::http::request::Parts, body: &[u8]) -> String {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(parts.method.as_str().as_bytes());
    ctx.update(b"\n");
    ctx.update(parts.uri.to_string().as_bytes());
    ctx.update(b"\n");
    ctx.update(body);
    hex::encode(ctx.finish().as_ref())
}

/// The stored answer to the same request under `key` (`idempotent-replayed: true`), 422 for a
/// different request under it, None when the key is new.
async fn replay(st: &AdminState, scope: &str, key: &str, hash: &str) -> Option<Response> {
    match st.store.idempotency_get(scope, key).await {
        Ok(Some(stored)) if stored.request_hash == hash => {
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
            let mut resp = (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                stored.body,
            )
                .into_response();
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Some(resp)
        }
        Ok(Some(_)) => Some(
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "IdempotencyKeyReused",
                "Idempotency-Key was used for a different request",
            )
            .into_response(),
        ),
        Ok(None) => None,
        Err(e) => Some(ApiError::from(e).into_response()),
    }
}
