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
//!
//! This file holds the shared state, extractors, list helpers, the router and the OpenAPI
//! document; each family's handlers and DTOs are in their own file (`principals.rs`,
//! `keys.rs`, `kek.rs` (KEK management), `roles.rs`, `grants.rs`, `limits.rs`, `tenants.rs`, `quorum.rs`,
//! `approvals.rs`, `status.rs`, `token.rs`), the authentication and idempotency middleware in
//! `middleware.rs`, and the audit and evidence routes in `crate::audit`.

mod approvals;
mod chain;
mod contract;
mod grants;
mod kek;
mod keys;
mod keystatus;
mod limits;
mod middleware;
mod principals;
mod quorum;
mod roles;
mod s3;
mod status;
mod tenants;
mod token;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use ::audit::Ledger;
use ::audit::evidence::{EvidenceKey, ExportLimits};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::{Extension, Json, Router};
use policy::grants::DEFAULT_TENANT;
use policy::quorum::{Approval, QuorumRule};
use policy::store::{AccessKeyInfo, CustomRole, PrincipalRecord, Tenant};
use policy::{
    AuthFailures, DEFAULT_AUTH_FAILURES_PER_MIN, Grant, Identity, JwtAuthority, PolicyStore,
    RateLimits, Role,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::audit;
use crate::error::{ApiError, ErrorBody};

pub use approvals::NewApproval;
pub use grants::NewGrant;
pub use kek::{KekFuture, KekOpError, KekOps, KekOpsHandle, KekReport, ReencryptBucket, RetireKek};
pub use keys::{CreatedKey, NewKey};
pub use keystatus::{BucketKey, KeyStatus, KeyStatusHook};
pub use principals::{NewPrincipal, RoleChange};
pub use quorum::RuleBody;
pub use roles::NewRole;
pub use s3::S3Relay;
pub use status::{Health, Status};
pub use tenants::NewTenant;
pub use token::{
    SigningSecretFuture, SigningSecretHook, SigningSecretRotated, TokenRequest, TokenResponse,
};

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
    /// the gateway's S3 listener, for the console's S3 requests under `/admin/v1/s3` (see
    /// [`AdminState::with_s3_relay`]; without it they answer 503)
    pub s3: Option<S3Relay>,
    /// the buckets' current data keys, for `GET /key-status` (see [`AdminState::with_key_status`])
    pub key_status: Option<KeyStatusHook>,
    /// the gateway's key management (`/kek…`; see [`AdminState::with_kek_ops`])
    pub kek_ops: Option<KekOpsHandle>,
    /// the gateway's signing secret rotation (`/auth/signing-secret/rotate`; see
    /// [`AdminState::with_signing_secret`])
    pub signing_secret: Option<SigningSecretHook>,
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
            s3: None,
            key_status: None,
            kek_ops: None,
            signing_secret: None,
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

    /// Serves `/admin/v1/s3…`: the caller's S3 requests, signed with the access key of its
    /// session and sent to the S3 listener `relay` names (the web console's object browser).
    pub fn with_s3_relay(mut self, relay: S3Relay) -> AdminState {
        self.s3 = Some(relay);
        self
    }

    /// Serves `/kek…` (status, rotate, rewrap, retire) with `ops` (without it: 503).
    pub fn with_kek_ops(mut self, ops: KekOpsHandle) -> AdminState {
        self.kek_ops = Some(ops);
        self
    }

    /// Serves `POST /auth/signing-secret/rotate` with `hook`, which generates and keeps the new
    /// secret (without it: 503).
    pub fn with_signing_secret(mut self, hook: SigningSecretHook) -> AdminState {
        self.signing_secret = Some(hook);
        self
    }

    /// Serves `GET /key-status` with the data keys `hook` reads (without it: 503).
    pub fn with_key_status(mut self, hook: KeyStatusHook) -> AdminState {
        self.key_status = Some(hook);
        self
    }
}

/// The authenticated caller of an admin request.
#[derive(Debug, Clone)]
pub struct Caller(pub Identity);

fn ms_now() -> i64 {
    policy::now_ms()
}

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

/// Pagination and filters of list calls (deserialised together; documented per route: the page
/// parameters here, each filter by the struct below that names it, only on the routes that read it).
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// page size (default 100)
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page: the page starts after it in the list's order (an
    /// item deleted in between does not break paging)
    pub cursor: Option<String>,
    /// filter: tenant (principals)
    #[param(ignore)]
    pub tenant: Option<String>,
    /// filter: principal (keys, grants)
    #[param(ignore)]
    pub principal: Option<String>,
    /// filter: state (approvals)
    #[param(ignore)]
    pub state: Option<String>,
}

/// Documents the `tenant` filter of [`ListParams`].
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct TenantFilter {
    /// only principals of this tenant
    tenant: Option<String>,
}

/// Documents the `principal` filter of [`ListParams`].
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct PrincipalFilter {
    /// only those of this principal
    principal: Option<String>,
}

/// Documents the `state` filter of [`ListParams`].
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub(crate) struct StateFilter {
    /// only approvals in this state
    state: Option<policy::ApprovalState>,
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

/// One page of `items` in the order of `key` (ascending, unique per item): at most `limit`
/// items whose key sorts after the cursor, and the cursor of the next page if more follow.
fn paginate<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    p: &ListParams,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1..=1000"));
    }
    let mut keyed: Vec<(String, T)> = items.into_iter().map(|i| (key(&i), i)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    let after = |k: &String| p.cursor.as_ref().is_none_or(|c| k > c);
    let mut rest = keyed.into_iter().filter(|(k, _)| after(k));
    let page: Vec<(String, T)> = rest.by_ref().take(limit as usize).collect();
    let next = match rest.next() {
        Some(_) => page.last().map(|(k, _)| k.clone()),
        None => None,
    };
    Ok((page.into_iter().map(|(_, i)| i).collect(), next))
}

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
        .routes(routes!(status::health))
        .routes(routes!(status::status))
        .routes(routes!(keystatus::key_status))
        .routes(routes!(kek::kek_status))
        .routes(routes!(kek::rotate_kek))
        .routes(routes!(kek::rewrap_keys))
        .routes(routes!(kek::retire_kek))
        .routes(routes!(kek::reencrypt_bucket))
        .routes(routes!(kek::reencrypt_status))
        .routes(routes!(token::token))
        .routes(routes!(token::renew))
        .routes(routes!(token::rotate_signing_secret))
        .routes(routes!(
            principals::list_principals,
            principals::create_principal
        ))
        .routes(routes!(principals::get_principal))
        .routes(routes!(principals::disable_principal))
        .routes(routes!(principals::enable_principal))
        .routes(routes!(principals::set_role))
        .routes(routes!(
            limits::get_principal_limits,
            limits::set_principal_limits,
            limits::delete_principal_limits
        ))
        .routes(routes!(
            limits::get_role_limits,
            limits::set_role_limits,
            limits::delete_role_limits
        ))
        .routes(routes!(keys::list_keys, keys::create_key))
        .routes(routes!(keys::revoke_key))
        .routes(routes!(roles::list_roles, roles::create_role))
        .routes(routes!(roles::delete_role))
        .routes(routes!(grants::list_grants, grants::create_grant))
        .routes(routes!(grants::delete_grant))
        .routes(routes!(tenants::list_tenants, tenants::create_tenant))
        .routes(routes!(quorum::list_rules))
        .routes(routes!(quorum::put_rule, quorum::delete_rule))
        .routes(routes!(
            approvals::list_approvals,
            approvals::create_approval
        ))
        .routes(routes!(approvals::get_approval))
        .routes(routes!(approvals::approve))
        .routes(routes!(approvals::reject))
        .routes(routes!(status::openapi_json))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::get_audit))
        .routes(routes!(chain::verify_chain))
        .routes(routes!(audit::export_evidence))
        .routes(routes!(audit::evidence_public_key))
        .routes(routes!(audit::get_evidence))
        .routes(routes!(s3::list_buckets))
        .routes(routes!(s3::get, s3::put, s3::post, s3::delete))
}

/// The OpenAPI document of the API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = documented_routes().split_for_parts().1;
    contract::complete(&mut doc);
    doc
}

/// The admin router (paths under `/admin/v1`); mount it on the admin listener
/// with `Router::merge`.
pub fn router(state: AdminState) -> Router {
    let (r, mut doc) = documented_routes().split_for_parts();
    contract::complete(&mut doc);
    let ops = Arc::new(audit::operation_map(&doc));
    let doc = Arc::new(doc.to_json().unwrap_or_else(|_| "{}".into()));
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::idempotency_mw,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::auth_mw,
        ))
        .layer(axum::middleware::from_fn_with_state(
            audit::AuditMw {
                state: state.clone(),
                ops,
            },
            audit::audit_mw,
        ))
        .layer(Extension(doc))
        .with_state(state)
        .merge(crate::console::router())
}
