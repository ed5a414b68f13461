//! Auditing of the admin API and its audit/evidence routes: the outermost middleware that
//! gives every call under the admin router a request id and exactly one audit event
//! (kind `admin`, action `admin.<OperationId>`, principal/tenant once authenticated, source
//! from axum `ConnectInfo` when the listener provides it), the [`Audit`] extractor mutating
//! handlers use to record their event right before a policy-store change (fail closed: 503
//! `AuditUnavailable`, nothing changed), and the handlers of `GET /audit`, `GET /audit/{seq}`,
//! `POST /evidence/export`, `GET /evidence/{id}` and `GET /evidence/public-key`.

use std::net::SocketAddr;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use ::audit::evidence::{ExportRefusal, build_bundle};
use ::audit::{
    AbandonGuard, AuditFilter, AuditQuery, EventKind, Outcome, RequestAudit, StoredEvent,
};
use axum::Extension;
use axum::Json;
use axum::body::HttpBody;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use policy::Role;
use policy::grants::DEFAULT_TENANT;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::{AdminState, ApiJson, ApiQuery, AuditState, Caller};
use crate::error::{ApiError, ErrorBody, ErrorCode, REQUEST_ID};

/// Operation names by method and route template (`/admin/v1/principals/{name}`), built from
/// the OpenAPI document's `operationId`s, so every documented route has its audit action by
/// construction.
#[derive(Debug, Default)]
pub(crate) struct OperationMap {
    routes: Vec<(Method, Vec<String>, String)>,
}

/// Action of calls that match no route (the router's 404/405 fallbacks).
pub const UNKNOWN_ROUTE: &str = "UnknownRoute";

impl OperationMap {
    /// The operation of `method path`: the matching template with the fewest `{param}`
    /// segments (static segments win, like the router), else [`UNKNOWN_ROUTE`].
    pub(crate) fn lookup(&self, method: &Method, path: &str) -> &str {
        let segs: Vec<&str> = path.split('/').collect();
        self.routes
            .iter()
            .filter(|(m, t, _)| {
                m == method
                    && t.len() == segs.len()
                    && t.iter()
                        .zip(&segs)
                        .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
            })
            .min_by_key(|(_, t, _)| t.iter().filter(|x| x.starts_with('{')).count())
            .map_or(UNKNOWN_ROUTE, |(_, _, op)| op.as_str())
    }
}

/// Builds the operation map from an OpenAPI document.
pub(crate) fn operation_map(doc: &utoipa::openapi::OpenApi) -> OperationMap {
    let mut map = OperationMap::default();
    for (path, item) in &doc.paths.paths {
        let ops = [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::DELETE, &item.delete),
            (Method::PATCH, &item.patch),
        ];
        for (m, op) in ops {
            if let Some(id) = op.as_ref().and_then(|o| o.operation_id.clone()) {
                let template = path.split('/').map(str::to_owned).collect();
                map.routes.push((m, template, id));
            }
        }
    }
    map
}

/// State of the audit middleware.
#[derive(Clone)]
pub(crate) struct AuditMw {
    pub(crate) state: AdminState,
    pub(crate) ops: Arc<OperationMap>,
}

fn is_mutating(m: &Method) -> bool {
    matches!(
        *m,
        Method::POST | Method::PUT | Method::DELETE | Method::PATCH
    )
}

/// Outermost middleware: request id (`x-request-id`, also in error bodies), one audit event
/// per call (recorded before the answer leaves), and the per-operation hook.
pub(crate) async fn audit_mw(State(mw): State<AuditMw>, mut req: Request, next: Next) -> Response {
    let id = audit::new_request_id();
    let method = req.method().clone();
    let op = mw.ops.lookup(&method, req.uri().path()).to_owned();
    let audit = mw.state.audit.as_ref().map(|a| {
        let source = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        let scope = RequestAudit::new(a.ledger.clone(), EventKind::Admin, id.clone(), source);
        scope.set_action(&format!("admin.{op}"));
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .or_else(|| req.body().size_hint().exact());
        if let Some(n) = declared {
            scope.add_bytes_in(n);
        }
        scope
    });
    if let Some(a) = &audit {
        req.extensions_mut().insert(a.clone());
    }
    req.extensions_mut().insert(Operation(op.clone()));
    // If the call is abandoned (client gone, so this future is dropped), the guard still
    // records its event.
    let mut guard = AbandonGuard::new(audit.clone());
    let mut resp = REQUEST_ID.scope(id.clone(), next.run(req)).await;
    guard.disarm();
    if let Some(a) = audit {
        let status = resp.status().as_u16();
        let code = resp.extensions().get::<ErrorCode>().map(|c| c.0.clone());
        let bytes_out = resp.body().size_hint().exact().unwrap_or(0);
        if let Err(e) = a.finish(status, code, bytes_out).await {
            let changed = a.recorded();
            let fail = mw
                .state
                .audit
                .as_ref()
                .is_some_and(|s| s.ledger.fail_request_on_error(!is_mutating(&method)));
            if !changed && fail {
                resp = REQUEST_ID
                    .scope(id.clone(), async {
                        ApiError::audit_unavailable(e).into_response()
                    })
                    .await;
            } else {
                tracing::error!(request_id = %id, operation = %op, "admin audit event not recorded: {e}");
            }
        }
    }
    if let Some(hook) = &mw.state.on_operation {
        hook(&op);
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The audit scope of the current call (empty when auditing is off). Mutating handlers call
/// [`Audit::before_change`] right before their first policy-store change.
pub struct Audit(pub Option<RequestAudit>);

/// The documented operation a call resolved to ([`UNKNOWN_ROUTE`] when none), put in the
/// request's extensions by [`audit_mw`] for the middleware inside it.
#[derive(Clone, Debug)]
pub(crate) struct Operation(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Audit {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _state: &S,
    ) -> Result<Self, ApiError> {
        Ok(Audit(parts.extensions.get::<RequestAudit>().cloned()))
    }
}

impl Audit {
    /// Records the call's event as a success with `status` now. `Err` (503
    /// `AuditUnavailable`): the event is not recorded and the handler must change nothing.
    pub async fn before_change(&self, status: StatusCode) -> Result<(), ApiError> {
        if let Some(a) = &self.0 {
            a.record_before_change(status.as_u16())
                .await
                .map_err(ApiError::audit_unavailable)?;
        }
        Ok(())
    }

    /// Names the authenticated principal of the call.
    pub fn set_principal(&self, principal: &str, tenant: &str) {
        if let Some(a) = &self.0 {
            a.set_principal(Some(principal.to_owned()), Some(tenant.to_owned()));
        }
    }
}

// ---------- filters ----------

/// Parses a time bound: Unix milliseconds (digits, optionally negative) or RFC 3339
/// (`2026-11-22T08:00:00Z`, `…+01:00`).
pub fn parse_time(name: &str, v: &str) -> Result<i64, ApiError> {
    let v = v.trim();
    if !v.is_empty()
        && v.trim_start_matches('-')
            .bytes()
            .all(|b| b.is_ascii_digit())
    {
        return v
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("{name}: {v:?} is out of range")));
    }
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{name}: {v:?} is neither Unix milliseconds nor an RFC 3339 time (2026-01-31T12:00:00Z)"
            ))
        })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| ApiError::bad_request(format!("{name}: {v:?} is out of range")))
}

/// The schema of a time bound: Unix milliseconds (a number, or its digits in a query) or an
/// RFC 3339 time; empty is no bound.
fn time_bound() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(0)),
        )
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .build()
        .into()
}

/// Accepts a JSON number (an integer, also written `5.0`) or a string for a time bound.
fn de_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum T {
        N(i64),
        F(f64),
        S(String),
    }
    Option::<T>::deserialize(d)?
        .map(|t| match t {
            T::N(n) => Ok(n.to_string()),
            // exact integers only (|f| < 2^53), as in `policy::integral`
            T::F(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => {
                Ok((f as i64).to_string())
            }
            T::F(f) => Err(serde::de::Error::custom(format_args!(
                "{f} is not Unix milliseconds"
            ))),
            T::S(s) => Ok(s),
        })
        .transpose()
}

/// Event selection of `GET /audit` (query) and `POST /evidence/export` (JSON body).
#[derive(Debug, Default, Clone, Deserialize, Serialize, ToSchema, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FilterParams {
    /// events at or after this time: Unix ms or RFC 3339 (use `Z` or `%2B01:00` in a URL)
    #[serde(default, deserialize_with = "de_time")]
    #[schema(schema_with = time_bound)]
    #[param(schema_with = time_bound)]
    pub from: Option<String>,
    /// events before this time (exclusive): Unix ms or RFC 3339; a window with `to` not after
    /// `from` holds no event
    #[serde(default, deserialize_with = "de_time")]
    #[schema(schema_with = time_bound)]
    #[param(schema_with = time_bound)]
    pub to: Option<String>,
    /// exact principal
    pub principal: Option<String>,
    /// exact tenant (tenant SuperAdmins: only their own)
    pub tenant: Option<String>,
    /// exact action (`PutObject`, `admin.CreateAccessKey`, …)
    pub action: Option<String>,
    /// exact bucket
    pub bucket: Option<String>,
    /// object key prefix (literal)
    pub prefix: Option<String>,
    /// `success`, `denied` or `error`
    #[schema(pattern = "^(|success|denied|error)$")]
    #[param(pattern = "^(|success|denied|error)$")]
    pub outcome: Option<String>,
    /// `s3` or `admin`
    #[schema(pattern = "^(|s3|admin)$")]
    #[param(pattern = "^(|s3|admin)$")]
    pub kind: Option<String>,
    /// exact request id (the `x-amz-request-id` or `x-request-id` of the answer)
    pub request_id: Option<String>,
    /// exact HTTP status (100..=599)
    #[schema(pattern = "^(|[1-5][0-9][0-9])$")]
    #[param(pattern = "^(|[1-5][0-9][0-9])$")]
    pub status: Option<String>,
}

/// Pagination of `GET /audit`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditPaging {
    /// page size 1..=1000 (default 100)
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page
    #[param(value_type = Option<i64>, minimum = 1)]
    pub cursor: Option<String>,
}

/// Query of `GET /audit`: pagination plus the filter (unknown parameters are refused).
#[derive(Debug, Default, Deserialize)]
pub struct AuditListParams {
    /// page size and cursor
    #[serde(flatten)]
    pub paging: AuditPaging,
    /// the event selection
    #[serde(flatten)]
    pub filter: FilterParams,
    /// always `()`: deserializing it refuses any other parameter (`deny_unknown_fields` does
    /// not work with `flatten`)
    #[serde(flatten, deserialize_with = "refuse_unknown")]
    pub unknown: (),
}

/// Every parameter of `GET /audit`, in the order the refusal of an unknown one names them.
const AUDIT_LIST_PARAMS: &[&str] = &[
    "limit",
    "cursor",
    "from",
    "to",
    "principal",
    "tenant",
    "action",
    "bucket",
    "prefix",
    "outcome",
    "kind",
    "request_id",
    "status",
];

/// Fails on the first parameter left over after [`AuditPaging`] and [`FilterParams`] took theirs,
/// with the message `deny_unknown_fields` gave (prefixed with the parameter like the other
/// query errors, which carry their path).
fn refuse_unknown<'de, D: Deserializer<'de>>(d: D) -> Result<(), D::Error> {
    let rest = std::collections::BTreeMap::<String, serde::de::IgnoredAny>::deserialize(d)?;
    match rest.keys().next() {
        Some(k) => {
            let e: serde::de::value::Error = serde::de::Error::unknown_field(k, AUDIT_LIST_PARAMS);
            Err(serde::de::Error::custom(format_args!("{k}: {e}")))
        }
        None => Ok(()),
    }
}

impl IntoParams for AuditListParams {
    fn into_params(
        parameter_in: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        let mut params = AuditPaging::into_params(&parameter_in);
        params.extend(FilterParams::into_params(parameter_in));
        params
    }
}

fn empty_to_none(v: &Option<String>) -> Option<String> {
    v.as_ref().filter(|s| !s.is_empty()).cloned()
}

impl FilterParams {
    /// The ledger filter, scoped to the caller's tenant unless the caller belongs to the
    /// default tenant; bad values → 400 naming the parameter, another tenant → 403.
    pub fn to_filter(&self, c: &Caller) -> Result<AuditFilter, ApiError> {
        let from_ms = empty_to_none(&self.from)
            .map(|v| parse_time("from", &v))
            .transpose()?;
        let to_ms = empty_to_none(&self.to)
            .map(|v| parse_time("to", &v))
            .transpose()?;
        let outcome = empty_to_none(&self.outcome)
            .map(|v| {
                Outcome::parse(&v).map_err(|_| {
                    ApiError::bad_request(format!("outcome: {v:?} is not success, denied or error"))
                })
            })
            .transpose()?;
        let kind = empty_to_none(&self.kind)
            .map(|v| {
                EventKind::parse(&v)
                    .map_err(|_| ApiError::bad_request(format!("kind: {v:?} is not s3 or admin")))
            })
            .transpose()?;
        let mut tenant = empty_to_none(&self.tenant);
        if c.0.tenant != DEFAULT_TENANT {
            match &tenant {
                Some(t) if *t != c.0.tenant => {
                    return Err(ApiError::forbidden(
                        "tenant: the events of another tenant are not visible to you",
                    ));
                }
                _ => tenant = Some(c.0.tenant.clone()),
            }
        }
        let status = empty_to_none(&self.status)
            .map(|v| {
                v.parse::<u16>()
                    .ok()
                    .filter(|s| (100..=599).contains(s))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("status: {v:?} is not an HTTP status"))
                    })
            })
            .transpose()?;
        Ok(AuditFilter {
            from_ms,
            to_ms,
            principal: empty_to_none(&self.principal),
            tenant,
            action: empty_to_none(&self.action),
            bucket: empty_to_none(&self.bucket),
            key_prefix: empty_to_none(&self.prefix),
            outcome,
            kind,
            request_id: empty_to_none(&self.request_id),
            status,
        })
    }
}

// ---------- DTOs ----------

/// One page of audit events, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEventPage {
    /// the events, seq descending
    pub items: Vec<StoredEvent>,
    /// cursor of the next (older) page, absent on the last page
    pub next_cursor: Option<String>,
}

/// A written evidence bundle.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ExportedBundle {
    /// bundle id (32 hex characters)
    pub id: String,
    /// number of events in the bundle
    pub events: u64,
    /// SHA-256 of the bundle file, hex
    pub sha256: String,
    /// where to download it (`GET`, same bearer token)
    pub download: String,
}

/// The evidence public key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EvidencePublicKey {
    /// Ed25519 public key, 64 hex characters (`vaultgate evidence verify --public-key`)
    pub public_key: String,
    /// `sha256:` + 16 hex characters
    pub fingerprint: String,
    /// `ed25519`
    pub algorithm: String,
}

/// Who may download a bundle (kept next to it as `<id>.meta.json`).
#[derive(Debug, Serialize, Deserialize)]
struct BundleMeta {
    tenant: String,
    principal: String,
    created_ms: i64,
    events: u64,
    sha256: String,
}

// ---------- handlers ----------

fn audit_state(st: &AdminState) -> Result<&AuditState, ApiError> {
    st.audit.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "AuditUnavailable",
            "auditing is not configured on this gateway",
        )
    })
}

fn require_auditor(c: &Caller) -> Result<(), ApiError> {
    if c.0.role == Some(Role::SuperAdmin) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "reading the audit ledger needs the superadmin role",
        ))
    }
}

fn ledger_error(e: audit::AuditError) -> ApiError {
    ApiError::internal(e)
}

/// Lists audit events, newest first (SuperAdmins; tenant SuperAdmins see their tenant's).
#[utoipa::path(get, path = "/admin/v1/audit", tag = "audit", operation_id = "ListAuditEvents",
    params(AuditListParams),
    responses((status = 200, body = AuditEventPage), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn list_audit(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    ApiQuery(p): ApiQuery<AuditListParams>,
) -> Result<Json<AuditEventPage>, ApiError> {
    require_auditor(&c)?;
    let a = audit_state(&st)?;
    let filter = p.filter.to_filter(&c)?;
    let limit = match empty_to_none(&p.paging.limit) {
        None => 100,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "limit: {v:?} is not a number in 1..=1000"
                )));
            }
        },
    };
    let before_seq = match empty_to_none(&p.paging.cursor) {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "cursor: {v:?} is not a next_cursor of this API"
                )));
            }
        },
    };
    let page = a
        .ledger
        .query(&AuditQuery {
            filter,
            before_seq,
            limit,
        })
        .await
        .map_err(ledger_error)?;
    Ok(Json(AuditEventPage {
        items: page.events,
        next_cursor: page.next_before_seq.map(|s| s.to_string()),
    }))
}

/// One audit event by sequence number.
#[utoipa::path(get, path = "/admin/v1/audit/{seq}", tag = "audit", operation_id = "GetAuditEvent",
    params(("seq" = i64, Path, minimum = 1, description = "sequence number")),
    responses((status = 200, body = StoredEvent), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_audit(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    Path(seq): Path<String>,
) -> Result<Json<StoredEvent>, ApiError> {
    require_auditor(&c)?;
    let a = audit_state(&st)?;
    let n =
        seq.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::bad_request(format!("seq: {seq:?} is not a positive integer"))
        })?;
    let ev = a
        .ledger
        .get(n)
        .await
        .map_err(ledger_error)?
        .filter(|e| c.0.tenant == DEFAULT_TENANT || e.tenant.as_deref() == Some(&c.0.tenant))
        .ok_or_else(|| ApiError::not_found(format!("audit event {n}")))?;
    Ok(Json(ev))
}

fn bundle_path(dir: &FsPath, id: &str) -> PathBuf {
    dir.join(format!("{id}.json"))
}

fn meta_path(dir: &FsPath, id: &str) -> PathBuf {
    dir.join(format!("{id}.meta.json"))
}

/// Writes `bytes` to `path` via a temporary file and rename, mode 0600.
async fn write_private(path: &FsPath, bytes: &[u8]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let tmp = path.with_extension("partial");
    let mut f = tokio::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .await?;
    f.write_all(bytes).await?;
    f.sync_all().await?;
    drop(f);
    tokio::fs::rename(&tmp, path).await
}

/// Exports a signed evidence bundle of the events matching the filter (itself audited).
#[utoipa::path(post, path = "/admin/v1/evidence/export", tag = "evidence", operation_id = "ExportEvidence",
    request_body = FilterParams,
    params(("Idempotency-Key" = Option<String>, Header, description = "replay protection")),
    responses((status = 201, body = ExportedBundle), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody, description = "more events or chain links than the export limits"),
        (status = 503, body = ErrorBody, description = "AuditUnavailable")))]
pub(crate) async fn export_evidence(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    ApiJson(b): ApiJson<FilterParams>,
) -> Result<(StatusCode, Json<ExportedBundle>), ApiError> {
    require_auditor(&c)?;
    let a = audit_state(&st)?;
    let filter = b.to_filter(&c)?;
    let now = policy::now_ms();
    let bytes = build_bundle(&a.ledger, &a.evidence_key, &filter, now, a.export_limits)
        .await
        .map_err(|e| match ExportRefusal::of(&e) {
            Some(ExportRefusal::NoEvents) => ApiError::not_found("no events match the filter"),
            Some(ExportRefusal::TooManyEvents | ExportRefusal::TooManyLinks) => ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "ExportTooLarge",
                format!(
                    "{e} (limits: {} events, {} chain links)",
                    a.export_limits.max_events, a.export_limits.max_links
                ),
            ),
            Some(ExportRefusal::Unverifiable) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "LedgerUnverifiable",
                format!("{e}; run `vaultgate audit verify`"),
            ),
            None => ApiError::internal(e),
        })?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let sha256 = audit::sha256_hex(&bytes);
    let events = bytes_event_count(&bytes);
    audit.before_change(StatusCode::CREATED).await?;
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&a.evidence_dir)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", a.evidence_dir.display())))?;
    let meta = BundleMeta {
        tenant: c.0.tenant.clone(),
        principal: c.0.principal.clone(),
        created_ms: now,
        events,
        sha256: sha256.clone(),
    };
    let meta_json = serde_json::to_vec(&meta).map_err(ApiError::internal)?;
    let mp = meta_path(&a.evidence_dir, &id);
    write_private(&mp, &meta_json)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", mp.display())))?;
    let bp = bundle_path(&a.evidence_dir, &id);
    write_private(&bp, &bytes)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", bp.display())))?;
    Ok((
        StatusCode::CREATED,
        Json(ExportedBundle {
            download: format!("{}/evidence/{id}", crate::api::PREFIX),
            id,
            events,
            sha256,
        }),
    ))
}

/// The number of events of a bundle just built (from its signed manifest).
fn bytes_event_count(bytes: &[u8]) -> u64 {
    audit::evidence::verify_bundle_bytes(bytes, None).map_or(0, |s| s.manifest.event_count)
}

fn valid_bundle_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Downloads an evidence bundle (the exact bytes to give `vaultgate evidence verify`).
#[utoipa::path(get, path = "/admin/v1/evidence/{id}", tag = "evidence", operation_id = "GetEvidenceBundle",
    params(("id" = String, Path, pattern = "^[0-9a-f]{32}$", description = "bundle id (32 lower-case hex characters)")),
    responses((status = 200, description = "the bundle file", content_type = "application/json"),
        (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_evidence(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_auditor(&c)?;
    let a = audit_state(&st)?;
    if !valid_bundle_id(&id) {
        return Err(ApiError::bad_request(
            "id: a bundle id is 32 lower-case hex characters",
        ));
    }
    let missing = || ApiError::not_found(format!("evidence bundle {id}"));
    let meta: BundleMeta = match tokio::fs::read(meta_path(&a.evidence_dir, &id)).await {
        Ok(b) => serde_json::from_slice(&b).map_err(ApiError::internal)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(ApiError::internal(e)),
    };
    if c.0.tenant != DEFAULT_TENANT && meta.tenant != c.0.tenant {
        return Err(missing());
    }
    let bytes = match tokio::fs::read(bundle_path(&a.evidence_dir, &id)).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(missing()),
        Err(e) => return Err(ApiError::internal(e)),
    };
    let disposition = format!("attachment; filename=\"evidence-{id}.json\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/json".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// The gateway's Ed25519 evidence public key (any authenticated caller).
#[utoipa::path(get, path = "/admin/v1/evidence/public-key", tag = "evidence", operation_id = "GetEvidencePublicKey",
    responses((status = 200, body = EvidencePublicKey), (status = 401, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn evidence_public_key(
    State(st): State<AdminState>,
) -> Result<Json<EvidencePublicKey>, ApiError> {
    let a = audit_state(&st)?;
    let pk = a.evidence_key.public_key();
    Ok(Json(EvidencePublicKey {
        public_key: pk.to_hex(),
        fingerprint: pk.fingerprint(),
        algorithm: "ed25519".into(),
    }))
}
