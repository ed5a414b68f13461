//! The admin REST API under `/admin/v1`: health, status, token exchange,
//! principals, access keys, custom roles, grants, tenants, quorum rules and
//! approvals, plus `/admin/v1/openapi.json` generated from the same handler
//! annotations (utoipa-axum), so every route is documented by construction.
//!
//! Middleware, outermost first: request id (`x-request-id`, also in error
//! bodies) → failed-authentication limit per source address (429 + Retry-After before any
//! lookup, when the listener provides `ConnectInfo<SocketAddr>`) → bearer JWT, re-checked
//! against the store on every call (principal enabled, role and tenant from the store, the
//! minting access key not revoked or expired), and the admin rate limit (per principal; per
//! source address for the token endpoint; 429 + Retry-After) → `Idempotency-Key` replay for
//! authenticated mutating calls (same key + same request → the stored 2xx answer with
//! `idempotent-replayed: true`, stored sealed; same key, different request → 422).
//!
//! Calls that change who may do what are quorum-gated (see `policy::quorum`): creating a
//! principal with a role, re-enabling one, granting, issuing a key for another principal,
//! role and custom-role changes; a gated call answers 403 `ApprovalRequired` naming the
//! approval request. Lists take `limit` (1..=1000, default 100) and `cursor`
//! (the `next_cursor` of the previous page).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ::audit::evidence::EvidenceKey;
use ::audit::evidence::ExportLimits;
use ::audit::{Ledger, RequestAudit};
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json, Router};
use policy::grants::DEFAULT_TENANT;
use policy::quorum::{
    Approval, ApprovalState, CHANGE_ROLE, CREATE_PRINCIPAL, ENABLE_PRINCIPAL, GRANT, ISSUE_KEY,
    QuorumRule, SET_LIMITS,
};
use policy::store::{AccessKeyInfo, CustomRole, PrincipalRecord, Tenant};
use policy::{
    AuthFailures, DEFAULT_AUTH_FAILURES_PER_MIN, Grant, Identity, JwtAuthority, LimitClass,
    LimitOverride, LimitScope, PolicyStore, RateLimits, Role, SecretKey,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit::{self, Audit};
use crate::error::{ApiError, ErrorBody};

/// Path prefix of the API.
pub const PREFIX: &str = "/admin/v1";
const MAX_BODY: usize = 1 << 20;

/// Shared state of the admin API. Clone is cheap.
#[derive(Clone)]
pub struct AdminState {
    /// policy store
    pub store: PolicyStore,
    /// token issuer/verifier
    pub jwt: Arc<JwtAuthority>,
    /// rate limits (the admin class is used here)
    pub limits: Arc<RateLimits>,
    /// failed authentications per source address (token endpoint and bearer tokens; shared
    /// with the S3 listener by the gateway)
    pub auth_failures: Arc<AuthFailures>,
    /// extra facts merged into `GET /status` (gateway: backend, key provider, …)
    pub status_extra: Option<Arc<dyn Fn() -> serde_json::Value + Send + Sync>>,
    /// audit ledger, evidence key and bundle directory (see [`AdminState::with_audit`])
    pub audit: Option<AuditState>,
    /// called once per admin call with its operation name (`CreateAccessKey`, …), for
    /// the gateway's `admin_operations_total{operation}` counter
    pub on_operation: Option<OperationHook>,
    started: Instant,
}

/// Called once per admin call with its operation name (the OpenAPI `operationId`, e.g.
/// `CreateAccessKey`; `UnknownRoute` for unrouted calls).
pub type OperationHook = Arc<dyn Fn(&str) + Send + Sync>;

/// What the admin API needs for auditing and evidence bundles.
#[derive(Clone)]
pub struct AuditState {
    /// the audit ledger (one event per admin call is appended here; queried by `/audit`)
    pub ledger: Ledger,
    /// the gateway's Ed25519 evidence key (signs bundles)
    pub evidence_key: Arc<EvidenceKey>,
    /// directory where exported bundles are kept (`<id>.json` + `<id>.meta.json`, 0600)
    pub evidence_dir: PathBuf,
    /// limits of one export (default [`ExportLimits::default`]; past them → 413)
    pub export_limits: ExportLimits,
}

impl AdminState {
    /// State over a store, token authority and limits.
    pub fn new(store: PolicyStore, jwt: Arc<JwtAuthority>, limits: Arc<RateLimits>) -> AdminState {
        AdminState {
            store,
            jwt,
            limits,
            auth_failures: Arc::new(AuthFailures::new(DEFAULT_AUTH_FAILURES_PER_MIN)),
            status_extra: None,
            audit: None,
            on_operation: None,
            started: Instant::now(),
        }
    }

    /// Enables auditing: every call under `/admin/v1` leaves one event in `ledger`
    /// (kind `admin`, action `admin.<Operation>`), mutating calls fail closed (503
    /// `AuditUnavailable` when their event cannot be recorded), and the `/audit` and
    /// `/evidence` routes answer (503 `AuditUnavailable` without this). Bundles are written to
    /// `evidence_dir` (created if missing).
    pub fn with_audit(
        mut self,
        ledger: Ledger,
        evidence_key: Arc<EvidenceKey>,
        evidence_dir: PathBuf,
    ) -> AdminState {
        self.audit = Some(AuditState {
            ledger,
            evidence_key,
            evidence_dir,
            export_limits: ExportLimits::default(),
        });
        self
    }

    /// Uses `failures` (e.g. the one the S3 listener records into) instead of the default
    /// [`DEFAULT_AUTH_FAILURES_PER_MIN`] limiter of its own.
    pub fn with_auth_failures(mut self, failures: Arc<AuthFailures>) -> AdminState {
        self.auth_failures = failures;
        self
    }

    /// Sets the per-call hook (`admin_operations_total{operation}`): called once per admin
    /// call with the operation name, after the answer is known.
    pub fn with_operation_hook(mut self, hook: OperationHook) -> AdminState {
        self.on_operation = Some(hook);
        self
    }
}

/// The authenticated caller of an admin request.
#[derive(Debug, Clone)]
pub struct Caller(pub Identity);

fn ms_now() -> i64 {
    policy::now_ms()
}

// ---------- extractors with JSON errors ----------

/// `Json<T>` whose rejection is an [`ApiError`].
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

/// `Query<T>` whose rejection is an [`ApiError`].
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(ApiError::bad_request(e.body_text())),
        }
    }
}

// ---------- DTOs ----------

/// Pagination and filters of list calls.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// page size (1..=1000, default 100)
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page
    pub cursor: Option<String>,
    /// filter: tenant (principals)
    pub tenant: Option<String>,
    /// filter: principal (keys, grants)
    pub principal: Option<String>,
    /// filter: state (approvals: pending, approved, rejected, consumed, expired)
    pub state: Option<String>,
}

macro_rules! page {
    ($name:ident, $t:ty) => {
        /// One page of a list.
        #[derive(Debug, Serialize, Deserialize, ToSchema)]
        pub struct $name {
            /// the items
            pub items: Vec<$t>,
            /// cursor of the next page, absent on the last page
            pub next_cursor: Option<String>,
        }
    };
}
page!(PrincipalPage, PrincipalRecord);
page!(KeyPage, AccessKeyInfo);
page!(RolePage, CustomRole);
page!(GrantPage, Grant);
page!(TenantPage, Tenant);
page!(RulePage, QuorumRule);
page!(ApprovalPage, Approval);

fn paginate<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    p: &ListParams,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1..=1000"));
    }
    let limit = limit as usize;
    let start = match &p.cursor {
        None => 0,
        Some(c) => match items.iter().position(|i| key(i) == *c) {
            Some(pos) => pos + 1,
            None => return Err(ApiError::bad_request("unknown cursor")),
        },
    };
    let rest: Vec<T> = items.into_iter().skip(start).collect();
    let more = rest.len() > limit;
    let page: Vec<T> = rest.into_iter().take(limit).collect();
    let next = if more { page.last().map(&key) } else { None };
    Ok((page, next))
}

/// Health answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`
    pub status: String,
}

/// Status answer.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Status {
    /// gateway version
    pub version: String,
    /// seconds since the admin API started
    pub uptime_secs: u64,
    /// number of principals
    pub principals: u64,
    /// the caller
    pub caller: String,
    /// extra facts from the gateway
    #[schema(value_type = Object)]
    pub extra: serde_json::Value,
}

/// Token request: an access key pair.
#[derive(Deserialize, ToSchema)]
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

/// New principal.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewPrincipal {
    /// unique name
    pub name: String,
    /// `user` (default) or `service`
    pub kind: Option<String>,
    /// tenant (default: the caller's)
    pub tenant: Option<String>,
    /// built-in role or `none` (default `none`)
    pub role: Option<String>,
}

/// Role change.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RoleChange {
    /// built-in role or `none`
    pub role: String,
}

/// New access key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewKey {
    /// owning principal
    pub principal: String,
    /// lifetime in seconds (none: no expiry)
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

/// New custom role.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewRole {
    /// role name (unique across tenants)
    pub name: String,
    /// S3 operation names (`PutObject`, `s3:DeleteObject`, …)
    pub actions: Vec<String>,
    /// owning tenant (default: the caller's); a default-tenant role may be granted in every
    /// tenant
    pub tenant: Option<String>,
}

/// New grant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewGrant {
    /// grantee
    pub principal: String,
    /// built-in or custom role
    pub role: String,
    /// bucket name or pattern (`finance-*`)
    pub bucket: String,
    /// key prefix (default: whole bucket)
    pub prefix: Option<String>,
}

/// New tenant.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewTenant {
    /// tenant name
    pub name: String,
}

/// A quorum rule body (the name is in the path).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RuleBody {
    /// action pattern (`s3:DeleteBucket`, `admin:RetireKey`, …)
    pub action: String,
    /// bucket pattern (default `*`)
    pub bucket_pattern: Option<String>,
    /// approvals needed
    pub approvals: u32,
    /// roles an approver must hold
    pub approver_roles: Vec<String>,
    /// validity in seconds
    pub ttl_secs: u64,
}

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

// ---------- helpers ----------

fn require_superadmin(c: &Caller) -> Result<(), ApiError> {
    if c.0.role == Some(Role::SuperAdmin) {
        Ok(())
    } else {
        Err(ApiError::forbidden("this call needs the superadmin role"))
    }
}

/// SuperAdmins of the default tenant administer every tenant; others only their own.
fn require_tenant(c: &Caller, tenant: &str) -> Result<(), ApiError> {
    if c.0.tenant == DEFAULT_TENANT || c.0.tenant == tenant {
        Ok(())
    } else {
        Err(ApiError::forbidden("principal belongs to another tenant"))
    }
}

async fn principal_in_scope(
    st: &AdminState,
    c: &Caller,
    name: &str,
) -> Result<PrincipalRecord, ApiError> {
    let p = st
        .store
        .get_principal(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("principal {name}")))?;
    require_tenant(c, &p.tenant).map_err(|_| ApiError::not_found(format!("principal {name}")))?;
    Ok(p)
}

fn parse_role(s: &str) -> Result<Option<Role>, ApiError> {
    if s == "none" {
        Ok(None)
    } else {
        Ok(Some(Role::parse(s)?))
    }
}

// ---------- handlers ----------

/// Liveness and database reachability.
#[utoipa::path(get, path = "/admin/v1/health", tag = "status", operation_id = "Health", security(()),
    responses((status = 200, body = Health), (status = 503, body = ErrorBody)))]
async fn health(State(st): State<AdminState>) -> Result<Json<Health>, ApiError> {
    st.store.ping().await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "database unreachable",
        )
    })?;
    Ok(Json(Health {
        status: "ok".into(),
    }))
}

/// Gateway status.
#[utoipa::path(get, path = "/admin/v1/status", tag = "status", operation_id = "GetStatus",
    responses((status = 200, body = Status), (status = 401, body = ErrorBody)))]
async fn status(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
) -> Result<Json<Status>, ApiError> {
    Ok(Json(Status {
        version: env!("CARGO_PKG_VERSION").into(),
        uptime_secs: st.started.elapsed().as_secs(),
        principals: st.store.count_principals().await?,
        caller: c.0.principal,
        extra: st
            .status_extra
            .as_ref()
            .map_or(serde_json::json!({}), |f| f()),
    }))
}

/// Exchanges an access key pair for a short-lived bearer token.
#[utoipa::path(post, path = "/admin/v1/auth/token", tag = "auth", operation_id = "CreateToken", security(()), request_body = TokenRequest,
    responses((status = 200, body = TokenResponse), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
async fn token(
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

/// Lists principals.
#[utoipa::path(get, path = "/admin/v1/principals", tag = "principals", operation_id = "ListPrincipals", params(ListParams),
    responses((status = 200, body = PrincipalPage), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_principals(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<PrincipalPage>, ApiError> {
    require_superadmin(&c)?;
    let tenant = if c.0.tenant == DEFAULT_TENANT {
        p.tenant.clone()
    } else {
        Some(c.0.tenant.clone())
    };
    let all = st.store.list_principals(tenant.as_deref()).await?;
    let (items, next_cursor) = paginate(all, |x| x.name.clone(), &p)?;
    Ok(Json(PrincipalPage { items, next_cursor }))
}

/// Creates a user or service account (with a role: quorum action `admin:CreatePrincipal`, also
/// gated by `admin:ChangeRole` rules).
#[utoipa::path(post, path = "/admin/v1/principals", tag = "principals", operation_id = "CreatePrincipal", request_body = NewPrincipal,
    params(("Idempotency-Key" = Option<String>, Header, description = "replay protection")),
    responses((status = 201, body = PrincipalRecord), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_principal(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    ApiJson(b): ApiJson<NewPrincipal>,
) -> Result<(StatusCode, Json<PrincipalRecord>), ApiError> {
    require_superadmin(&c)?;
    let tenant = b.tenant.unwrap_or_else(|| c.0.tenant.clone());
    require_tenant(&c, &tenant)?;
    let role = parse_role(b.role.as_deref().unwrap_or("none"))?;
    if st.store.get_principal(&b.name).await?.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!("principal {} exists", b.name),
        ));
    }
    let kind = b.kind.as_deref().unwrap_or("user");
    audit.before_change(StatusCode::CREATED).await?;
    if let Some(r) = role {
        st.store
            .gate(
                &c.0,
                CREATE_PRINCIPAL,
                None,
                &format!("principal/{}", b.name),
                &format!("tenant={tenant};kind={kind};role={r}"),
                ms_now(),
            )
            .await?;
    }
    let p = st
        .store
        .create_principal(&b.name, kind, &tenant, role)
        .await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// One principal.
#[utoipa::path(get, path = "/admin/v1/principals/{name}", tag = "principals", operation_id = "GetPrincipal", params(("name" = String, Path)),
    responses((status = 200, body = PrincipalRecord), (status = 404, body = ErrorBody)))]
async fn get_principal(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<PrincipalRecord>, ApiError> {
    require_superadmin(&c)?;
    Ok(Json(principal_in_scope(&st, &c, &name).await?))
}

/// Disables a principal (its keys and tokens stop working on the next request).
#[utoipa::path(post, path = "/admin/v1/principals/{name}/disable", tag = "principals", operation_id = "DisablePrincipal", params(("name" = String, Path)),
    responses((status = 200, body = PrincipalRecord), (status = 404, body = ErrorBody)))]
async fn disable_principal(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
) -> Result<Json<PrincipalRecord>, ApiError> {
    require_superadmin(&c)?;
    principal_in_scope(&st, &c, &name).await?;
    if name == c.0.principal {
        return Err(ApiError::bad_request("a principal cannot disable itself"));
    }
    audit.before_change(StatusCode::OK).await?;
    Ok(Json(st.store.set_disabled(&name, true).await?))
}

/// Re-enables a principal (quorum action `admin:EnablePrincipal`, also gated by
/// `admin:ChangeRole` rules).
#[utoipa::path(post, path = "/admin/v1/principals/{name}/enable", tag = "principals", operation_id = "EnablePrincipal", params(("name" = String, Path)),
    responses((status = 200, body = PrincipalRecord), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn enable_principal(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
) -> Result<Json<PrincipalRecord>, ApiError> {
    require_superadmin(&c)?;
    let p = principal_in_scope(&st, &c, &name).await?;
    audit.before_change(StatusCode::OK).await?;
    if p.disabled {
        st.store
            .gate(
                &c.0,
                ENABLE_PRINCIPAL,
                None,
                &format!("principal/{name}"),
                "enable",
                ms_now(),
            )
            .await?;
    }
    Ok(Json(st.store.set_disabled(&name, false).await?))
}

/// Changes a principal's built-in role (quorum action `admin:ChangeRole`).
#[utoipa::path(put, path = "/admin/v1/principals/{name}/role", tag = "principals", operation_id = "SetPrincipalRole", params(("name" = String, Path)), request_body = RoleChange,
    responses((status = 200, body = PrincipalRecord), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_role(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<RoleChange>,
) -> Result<Json<PrincipalRecord>, ApiError> {
    require_superadmin(&c)?;
    principal_in_scope(&st, &c, &name).await?;
    let role = parse_role(&b.role)?;
    audit.before_change(StatusCode::OK).await?;
    st.store
        .gate(
            &c.0,
            CHANGE_ROLE,
            None,
            &format!("principal/{name}"),
            &format!("role={}", b.role),
            ms_now(),
        )
        .await?;
    Ok(Json(st.store.set_role(&name, role).await?))
}

/// Lists access keys (never secrets).
#[utoipa::path(get, path = "/admin/v1/keys", tag = "keys", operation_id = "ListAccessKeys", params(ListParams),
    responses((status = 200, body = KeyPage), (status = 403, body = ErrorBody)))]
async fn list_keys(
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
async fn create_key(
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
async fn revoke_key(
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

/// Lists custom roles: the caller's tenant's and the default tenant's (all for the default
/// tenant's SuperAdmins).
#[utoipa::path(get, path = "/admin/v1/roles", tag = "roles", operation_id = "ListRoles", params(ListParams),
    responses((status = 200, body = RolePage)))]
async fn list_roles(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<RolePage>, ApiError> {
    require_superadmin(&c)?;
    let tenant = (c.0.tenant != DEFAULT_TENANT).then(|| c.0.tenant.clone());
    let all = st.store.list_roles_of(tenant.as_deref()).await?;
    let (items, next_cursor) = paginate(all, |x| x.name.clone(), &p)?;
    Ok(Json(RolePage { items, next_cursor }))
}

/// Defines a custom role (quorum action `admin:ChangeRole`).
#[utoipa::path(post, path = "/admin/v1/roles", tag = "roles", operation_id = "CreateRole", request_body = NewRole,
    params(("Idempotency-Key" = Option<String>, Header, description = "replay protection")),
    responses((status = 201, body = CustomRole), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn create_role(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    ApiJson(b): ApiJson<NewRole>,
) -> Result<(StatusCode, Json<CustomRole>), ApiError> {
    require_superadmin(&c)?;
    let tenant = b.tenant.unwrap_or_else(|| c.0.tenant.clone());
    require_tenant(&c, &tenant)?;
    policy::store::parse_actions(&b.actions)?;
    audit.before_change(StatusCode::CREATED).await?;
    st.store
        .gate(
            &c.0,
            CHANGE_ROLE,
            None,
            &format!("role/{}", b.name),
            &format!("tenant={tenant};{}", b.actions.join(",")),
            ms_now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            st.store
                .create_role_in(&tenant, &b.name, &b.actions)
                .await?,
        ),
    ))
}

/// Deletes an unused custom role (quorum action `admin:ChangeRole`).
#[utoipa::path(delete, path = "/admin/v1/roles/{name}", tag = "roles", operation_id = "DeleteRole", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn delete_role(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_superadmin(&c)?;
    // another tenant's role answers as one that does not exist; the default tenant's roles
    // (grantable everywhere) are managed by its SuperAdmins only
    let role = st
        .store
        .get_role(&name)
        .await?
        .filter(|r| {
            c.0.tenant == DEFAULT_TENANT || r.tenant == c.0.tenant || r.tenant == DEFAULT_TENANT
        })
        .ok_or_else(|| ApiError::not_found(format!("role {name}")))?;
    require_tenant(&c, &role.tenant)?;
    audit.before_change(StatusCode::NO_CONTENT).await?;
    st.store
        .gate(
            &c.0,
            CHANGE_ROLE,
            None,
            &format!("role/{name}"),
            "delete",
            ms_now(),
        )
        .await?;
    st.store.delete_role(&name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lists grants.
#[utoipa::path(get, path = "/admin/v1/grants", tag = "grants", operation_id = "ListGrants", params(ListParams),
    responses((status = 200, body = GrantPage)))]
async fn list_grants(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<GrantPage>, ApiError> {
    require_superadmin(&c)?;
    let mut all = st.store.list_grants(p.principal.as_deref()).await?;
    if c.0.tenant != DEFAULT_TENANT {
        let mine: Vec<String> = st
            .store
            .list_principals(Some(&c.0.tenant))
            .await?
            .into_iter()
            .map(|x| x.name)
            .collect();
        all.retain(|g| mine.contains(&g.principal));
    }
    let (items, next_cursor) = paginate(all, |x| x.id.clone(), &p)?;
    Ok(Json(GrantPage { items, next_cursor }))
}

/// Grants a role on a bucket (pattern) and key prefix (quorum action `admin:Grant`, also gated
/// by `admin:ChangeRole` rules). Custom roles of another tenant are not found.
#[utoipa::path(post, path = "/admin/v1/grants", tag = "grants", operation_id = "CreateGrant", request_body = NewGrant,
    params(("Idempotency-Key" = Option<String>, Header, description = "replay protection")),
    responses((status = 201, body = Grant), (status = 404, body = ErrorBody)))]
async fn create_grant(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    ApiJson(b): ApiJson<NewGrant>,
) -> Result<(StatusCode, Json<Grant>), ApiError> {
    require_superadmin(&c)?;
    principal_in_scope(&st, &c, &b.principal).await?;
    let prefix = b.prefix.unwrap_or_default();
    audit.before_change(StatusCode::CREATED).await?;
    st.store
        .gate(
            &c.0,
            GRANT,
            None,
            &format!("grant/{}", b.principal),
            &format!("{}|{}|{}", b.role, b.bucket, prefix),
            ms_now(),
        )
        .await?;
    let g = st
        .store
        .create_grant(&b.principal, &b.role, &b.bucket, &prefix)
        .await?;
    Ok((StatusCode::CREATED, Json(g)))
}

/// Removes a grant (quorum action `admin:Grant`, also gated by `admin:ChangeRole` rules).
#[utoipa::path(delete, path = "/admin/v1/grants/{id}", tag = "grants", operation_id = "DeleteGrant", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
async fn delete_grant(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_superadmin(&c)?;
    let g = st
        .store
        .list_grants(None)
        .await?
        .into_iter()
        .find(|g| g.id == id)
        .ok_or_else(|| ApiError::not_found(format!("grant {id}")))?;
    principal_in_scope(&st, &c, &g.principal).await?;
    audit.before_change(StatusCode::NO_CONTENT).await?;
    st.store
        .gate(
            &c.0,
            GRANT,
            None,
            &format!("grant/{}", g.principal),
            &format!("delete {id}"),
            ms_now(),
        )
        .await?;
    st.store.delete_grant(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The stored S3 rate-limit override of a principal (fields null: inherited).
#[utoipa::path(get, path = "/admin/v1/principals/{name}/limits", tag = "limits", operation_id = "GetPrincipalLimits", params(("name" = String, Path)),
    responses((status = 200, body = LimitOverride), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_principal_limits(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<LimitOverride>, ApiError> {
    require_superadmin(&c)?;
    principal_in_scope(&st, &c, &name).await?;
    Ok(Json(
        st.store.get_limits(LimitScope::Principal, &name).await?,
    ))
}

/// Sets a principal's S3 rate limits per minute (over its role's and the global ones; 0 =
/// unlimited; quorum action `admin:SetLimits`).
#[utoipa::path(put, path = "/admin/v1/principals/{name}/limits", tag = "limits", operation_id = "SetPrincipalLimits", params(("name" = String, Path)), request_body = LimitOverride,
    responses((status = 200, body = LimitOverride), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_principal_limits(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<LimitOverride>,
) -> Result<Json<LimitOverride>, ApiError> {
    require_superadmin(&c)?;
    principal_in_scope(&st, &c, &name).await?;
    audit.before_change(StatusCode::OK).await?;
    gate_limits(&st, &c, &format!("principal/{name}"), Some(&b)).await?;
    Ok(Json(
        st.store
            .set_limits(LimitScope::Principal, &name, &b)
            .await?,
    ))
}

/// Removes a principal's S3 rate-limit override (its role's or the global limits apply).
#[utoipa::path(delete, path = "/admin/v1/principals/{name}/limits", tag = "limits", operation_id = "DeletePrincipalLimits", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_principal_limits(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_superadmin(&c)?;
    principal_in_scope(&st, &c, &name).await?;
    audit.before_change(StatusCode::NO_CONTENT).await?;
    gate_limits(&st, &c, &format!("principal/{name}"), None).await?;
    st.store.delete_limits(LimitScope::Principal, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The stored S3 rate-limit override of a built-in role (`viewer`, `manager`, `superadmin`,
/// or `none` for principals with grants only).
#[utoipa::path(get, path = "/admin/v1/roles/{name}/limits", tag = "limits", operation_id = "GetRoleLimits", params(("name" = String, Path)),
    responses((status = 200, body = LimitOverride), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_role_limits(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    Path(name): Path<String>,
) -> Result<Json<LimitOverride>, ApiError> {
    require_superadmin(&c)?;
    Ok(Json(st.store.get_limits(LimitScope::Role, &name).await?))
}

/// Sets the S3 rate limits per minute of every holder of a built-in role, in every tenant
/// (SuperAdmins of the default tenant only; 0 = unlimited; quorum action `admin:SetLimits`).
#[utoipa::path(put, path = "/admin/v1/roles/{name}/limits", tag = "limits", operation_id = "SetRoleLimits", params(("name" = String, Path)), request_body = LimitOverride,
    responses((status = 200, body = LimitOverride), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_role_limits(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<LimitOverride>,
) -> Result<Json<LimitOverride>, ApiError> {
    require_superadmin(&c)?;
    require_tenant(&c, DEFAULT_TENANT)?;
    st.store.get_limits(LimitScope::Role, &name).await?;
    audit.before_change(StatusCode::OK).await?;
    gate_limits(&st, &c, &format!("role/{name}"), Some(&b)).await?;
    Ok(Json(
        st.store.set_limits(LimitScope::Role, &name, &b).await?,
    ))
}

/// Removes a built-in role's S3 rate-limit override (SuperAdmins of the default tenant only).
#[utoipa::path(delete, path = "/admin/v1/roles/{name}/limits", tag = "limits", operation_id = "DeleteRoleLimits", params(("name" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn delete_role_limits(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_superadmin(&c)?;
    require_tenant(&c, DEFAULT_TENANT)?;
    st.store.get_limits(LimitScope::Role, &name).await?;
    audit.before_change(StatusCode::NO_CONTENT).await?;
    gate_limits(&st, &c, &format!("role/{name}"), None).await?;
    st.store.delete_limits(LimitScope::Role, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The quorum gate of limit changes (`admin:SetLimits`; only rules naming it apply).
async fn gate_limits(
    st: &AdminState,
    c: &Caller,
    resource: &str,
    set: Option<&LimitOverride>,
) -> Result<(), ApiError> {
    let detail = match set {
        Some(o) => format!(
            "set reads={:?} writes={:?}",
            o.s3_reads_per_min, o.s3_writes_per_min
        ),
        None => "delete".to_owned(),
    };
    st.store
        .gate(&c.0, SET_LIMITS, None, resource, &detail, ms_now())
        .await?;
    Ok(())
}

/// Lists tenants.
#[utoipa::path(get, path = "/admin/v1/tenants", tag = "tenants", operation_id = "ListTenants", params(ListParams),
    responses((status = 200, body = TenantPage)))]
async fn list_tenants(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    ApiQuery(p): ApiQuery<ListParams>,
) -> Result<Json<TenantPage>, ApiError> {
    require_superadmin(&c)?;
    let mut all = st.store.list_tenants().await?;
    if c.0.tenant != DEFAULT_TENANT {
        all.retain(|t| t.name == c.0.tenant);
    }
    let (items, next_cursor) = paginate(all, |x| x.name.clone(), &p)?;
    Ok(Json(TenantPage { items, next_cursor }))
}

/// Creates a tenant (SuperAdmins of the default tenant only).
#[utoipa::path(post, path = "/admin/v1/tenants", tag = "tenants", operation_id = "CreateTenant", request_body = NewTenant,
    params(("Idempotency-Key" = Option<String>, Header, description = "replay protection")),
    responses((status = 201, body = Tenant), (status = 409, body = ErrorBody)))]
async fn create_tenant(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    ApiJson(b): ApiJson<NewTenant>,
) -> Result<(StatusCode, Json<Tenant>), ApiError> {
    require_superadmin(&c)?;
    require_tenant(&c, DEFAULT_TENANT)?;
    audit.before_change(StatusCode::CREATED).await?;
    Ok((
        StatusCode::CREATED,
        Json(st.store.create_tenant(&b.name).await?),
    ))
}

/// Lists quorum rules.
#[utoipa::path(get, path = "/admin/v1/quorum/rules", tag = "quorum", operation_id = "ListQuorumRules", params(ListParams),
    responses((status = 200, body = RulePage)))]
async fn list_rules(
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
#[utoipa::path(put, path = "/admin/v1/quorum/rules/{name}", tag = "quorum", operation_id = "PutQuorumRule", params(("name" = String, Path)), request_body = RuleBody,
    responses((status = 200, body = QuorumRule), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn put_rule(
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
async fn delete_rule(
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

/// Lists approval requests of the caller's tenant (all tenants for the default tenant).
#[utoipa::path(get, path = "/admin/v1/approvals", tag = "approvals", operation_id = "ListApprovals", params(ListParams),
    responses((status = 200, body = ApprovalPage), (status = 400, body = ErrorBody)))]
async fn list_approvals(
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
    let (items, next_cursor) = paginate(all, |x| x.id.clone(), &p)?;
    Ok(Json(ApprovalPage { items, next_cursor }))
}

/// Asks for approval of an operation ahead of time (idempotent).
#[utoipa::path(post, path = "/admin/v1/approvals", tag = "approvals", operation_id = "CreateApproval", request_body = NewApproval,
    responses((status = 201, body = Approval), (status = 400, body = ErrorBody)))]
async fn create_approval(
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

async fn approval_in_scope(st: &AdminState, c: &Caller, id: &str) -> Result<Approval, ApiError> {
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
async fn get_approval(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Approval>, ApiError> {
    Ok(Json(approval_in_scope(&st, &c, &id).await?))
}

/// Approves a request (not the requester; a holder of one of the rule's roles).
#[utoipa::path(post, path = "/admin/v1/approvals/{id}/approve", tag = "approvals", operation_id = "ApproveRequest", params(("id" = String, Path)),
    responses((status = 200, body = Approval), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn approve(
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
async fn reject(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    Path(id): Path<String>,
) -> Result<Json<Approval>, ApiError> {
    approval_in_scope(&st, &c, &id).await?;
    audit.before_change(StatusCode::OK).await?;
    Ok(Json(st.store.reject(&id, &c.0, ms_now()).await?))
}

/// This document.
#[utoipa::path(get, path = "/admin/v1/openapi.json", tag = "status", operation_id = "GetOpenApiDocument", security(()),
    responses((status = 200, description = "OpenAPI 3.1 document", content_type = "application/json")))]
async fn openapi_json(Extension(doc): Extension<Arc<String>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.as_str().to_owned(),
    )
        .into_response()
}

// ---------- middleware ----------

/// The token endpoint: public, limited per source address.
const TOKEN_PATH: &str = "/admin/v1/auth/token";

fn is_public(path: &str) -> bool {
    matches!(
        path,
        "/admin/v1/health" | TOKEN_PATH | "/admin/v1/openapi.json"
    )
}

/// The source address, when the listener provides it (`into_make_service_with_connect_info`;
/// absent in in-process tests, where the per-address limits are skipped).
fn source_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

async fn auth_mw(State(st): State<AdminState>, mut req: Request, next: Next) -> Response {
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
async fn authenticate(
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

async fn idempotency_mw(State(st): State<AdminState>, req: Request, next: Next) -> Response {
    let mutating = matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    );
    let key = req
        .headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (Some(key), true) = (key, mutating) else {
        return next.run(req).await;
    };
    if key.is_empty() || key.len() > 255 {
        return ApiError::bad_request("Idempotency-Key must be 1..=255 characters").into_response();
    }
    // only authenticated calls: an unauthenticated caller must not make the server store
    // anything (and the token endpoint's answer is a credential)
    let Some(scope) = req
        .extensions()
        .get::<Caller>()
        .map(|c| c.0.principal.clone())
    else {
        return next.run(req).await;
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
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(parts.method.as_str().as_bytes());
    ctx.update(b"\n");
    ctx.update(parts.uri.to_string().as_bytes());
    ctx.update(b"\n");
    ctx.update(&bytes);
    let hash = hex::encode(ctx.finish().as_ref());
    match st.store.idempotency_get(&scope, &key).await {
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
            return resp;
        }
        Ok(Some(_)) => {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "IdempotencyKeyReused",
                "Idempotency-Key was used for a different request",
            )
            .into_response();
        }
        Ok(None) => {}
        Err(e) => return ApiError::from(e).into_response(),
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

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "MethodNotAllowed",
        "method not allowed on this route",
    )
}

// ---------- router and document ----------

struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Vaultgate admin API", version = "1", description = "Identities, keys, roles, grants, tenants, quorum approvals"),
    modifiers(&BearerScheme),
    security(("bearer" = [])),
    components(schemas(ErrorBody))
)]
struct ApiDoc;

fn documented_routes() -> OpenApiRouter<AdminState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(health))
        .routes(routes!(status))
        .routes(routes!(token))
        .routes(routes!(list_principals, create_principal))
        .routes(routes!(get_principal))
        .routes(routes!(disable_principal))
        .routes(routes!(enable_principal))
        .routes(routes!(set_role))
        .routes(routes!(
            get_principal_limits,
            set_principal_limits,
            delete_principal_limits
        ))
        .routes(routes!(
            get_role_limits,
            set_role_limits,
            delete_role_limits
        ))
        .routes(routes!(list_keys, create_key))
        .routes(routes!(revoke_key))
        .routes(routes!(list_roles, create_role))
        .routes(routes!(delete_role))
        .routes(routes!(list_grants, create_grant))
        .routes(routes!(delete_grant))
        .routes(routes!(list_tenants, create_tenant))
        .routes(routes!(list_rules))
        .routes(routes!(put_rule, delete_rule))
        .routes(routes!(list_approvals, create_approval))
        .routes(routes!(get_approval))
        .routes(routes!(approve))
        .routes(routes!(reject))
        .routes(routes!(openapi_json))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::get_audit))
        .routes(routes!(audit::export_evidence))
        .routes(routes!(audit::evidence_public_key))
        .routes(routes!(audit::get_evidence))
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented_routes().split_for_parts().1
}

/// The admin router (paths under `/admin/v1`); mount it on the admin listener
/// with `Router::merge`.
pub fn router(state: AdminState) -> Router {
    let (r, doc) = documented_routes().split_for_parts();
    let ops = Arc::new(audit::operation_map(&doc));
    let doc = Arc::new(doc.to_json().unwrap_or_else(|_| "{}".into()));
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            idempotency_mw,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), auth_mw))
        .layer(middleware::from_fn_with_state(
            audit::AuditMw {
                state: state.clone(),
                ops,
            },
            audit::audit_mw,
        ))
        .layer(Extension(doc))
        .with_state(state)
}
