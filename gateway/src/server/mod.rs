//! Builds and runs the gateway in-process: opens the index, backend and key provider from a
//! [`Config`], collects garbage left by a crash, opens the policy store in the index's database
//! and bootstraps the SuperAdmin key, then serves S3 (s3s on hyper, authorised by
//! `policy::Authorizer`) and the admin listener (axum: /metrics, /health, /ready and the admin
//! REST API under /admin/v1, which the caller builds from [`AdminParts`]) until
//! [`RunningServer::shutdown`].
//!
//! Every S3 request is counted, timed, logged as one JSON line (op, bucket, status, duration,
//! request id) and leaves one event in the audit ledger (`crate::audit`); reads whose event
//! cannot be recorded answer 503 under the fail-closed read policy.
//! Shutdown stops accepting, lets in-flight requests finish (bounded by `shutdown_grace_secs`),
//! then closes the index.

mod guard;
mod listen;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::Incoming;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::guard::{BodyRate, TimedBody};
use self::listen::ListenLimits;
use crate::config::Limits;
use policy::ratelimit::AuthFailures;

use crate::admin_http::{AdminParts, AdminState, router};
use audit::{EventKind, RequestAudit};

use crate::audit::{Audit, S3Audit, error_code_of};
use crate::auth::{
    Bootstrap, Credentials, IndexAuth, OpSlot, RoleAccess, bootstrap_instructions, ensure_bootstrap,
};
use crate::backend::open_backend;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::metrics::Metrics;
use crate::s3::Gateway;
use crate::s3::range_fallback::RangeFallback;
use crate::store::Store;

/// A running gateway.
pub struct RunningServer {
    /// bound S3 address (useful with port 0)
    pub s3_addr: SocketAddr,
    /// bound admin address
    pub admin_addr: SocketAddr,
    /// the credential generated on first start (None when configured or already present)
    pub bootstrap: Option<Bootstrap>,
    /// the object layer (tests inspect the backend through it)
    pub store: Store,
    /// metrics of this instance
    pub metrics: Metrics,
    /// authentication and authorisation (policy store, rate limits)
    pub authz: policy::Authorizer,
    /// the audit ledger and evidence key
    pub audit: Audit,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("s3_addr", &self.s3_addr)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// Stops accepting, waits for in-flight requests (bounded), closes the index.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.store.index().close().await;
        tracing::info!("shut down");
    }

    /// A handle that triggers shutdown from elsewhere (signal handlers).
    pub fn shutdown_trigger(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Opens everything the config names and starts both listeners; the admin listener serves the
/// router `admin_api` builds from the [`AdminParts`] beside /metrics, /health and /ready (the
/// `vaultgate` binary passes the `admin` crate's REST API).
pub async fn start(
    config: Config,
    admin_api: impl FnOnce(AdminParts) -> axum::Router,
) -> Result<RunningServer> {
    config.validate()?;
    let s3_sock = config.s3_socket()?;
    let admin_sock = config.admin_socket()?;
    secure_data_dir(&config)?;

    let db_url = config.database_url();
    let index = Index::open(&db_url)
        .await
        .map_err(|e| Error::Unavailable(format!("index: {e}")))?;
    // `vaultgate migrate` records which backend holds the data; refuse any other (its start-up
    // sweep would treat every object as an orphan, or serve an incomplete copy)
    if let Some(holder) = index
        .get_setting(crate::index::SETTING_BACKEND_URL)
        .await
        .map_err(|e| Error::Unavailable(format!("index: {e}")))?
        && holder != config.backend_url()
    {
        return Err(Error::Config(format!(
            "the index says the data lives in backend {holder}, but the configured backend is {}; \
             set VAULTGATE_BACKEND={holder}",
            config.backend_url()
        )));
    }
    let audit = Audit::open(&config, &index).await?;
    let metrics = Metrics::new();
    metrics.watch_audit(audit.ledger.stats());
    let backend: Arc<dyn crate::backend::Backend> = Arc::new(
        crate::backend::metered::MeteredBackend::new(
            open_backend(&config.backend_url(), &config.data_dir)
                .await
                .map_err(|e| Error::Unavailable(format!("backend: {e}")))?,
            metrics.registry(),
        )
        .map_err(|e| Error::Unavailable(format!("backend metrics: {e}")))?,
    );
    let key_cfg = config.key_config();
    let provider = keys::provider_from_config(&key_cfg).await?;
    let keyring = keys::Keyring::new(
        provider,
        Arc::new(index.clone()),
        keys::CacheConfig::default(),
    );
    let store = Store::new(
        backend.clone(),
        index.clone(),
        keyring.clone(),
        metrics.clone(),
    );

    // crash leftovers: queued garbage, then unreferenced backend objects
    match crate::index::collect_garbage(&index, backend.as_ref()).await {
        Ok(r) => tracing::debug!(?r, "gc queue drained"),
        Err(e) => tracing::warn!(error = %e, "gc queue drain failed; will retry next start"),
    }
    // no grace period: the index is SQLite, written by this process alone, so no other
    // instance can have a blob in flight
    match crate::index::sweep_orphans(&index, backend.as_ref(), Duration::ZERO).await {
        Ok(r) if r.withheld > 0 && index.bucket_count().await.unwrap_or(0) == 0 => {
            // An empty index next to a backend full of ciphertext: the index was lost or the
            // database URL points elsewhere. Serving would show empty buckets; refuse instead.
            return Err(Error::Config(format!(
                "the backend {} holds {} objects but the index {} is empty; run `vaultgate reindex` \
                 to rebuild the index from the backend, or point VAULTGATE_DATABASE_URL at the right index",
                crate::config::redact_url(&config.backend_url()),
                r.withheld,
                crate::config::redact_url(&db_url)
            )));
        }
        Ok(r) => tracing::info!(
            scanned = r.scanned,
            deleted = r.deleted,
            withheld = r.withheld,
            "orphan sweep done"
        ),
        Err(e) => tracing::warn!(error = %e, "orphan sweep failed"),
    }

    // access keys, principals, grants and bucket tenants live in the same SQLite file; the
    // policy store writes through the index's single writer connection and reads the access
    // check's rows through the index's read pool (never queueing behind writes), cached in
    // memory until the next policy write
    let policy_store =
        policy::PolicyStore::new(index.write_pool().clone(), Arc::new(keyring.clone()))
            .await?
            .with_read_pool(index.read_pool().clone())
            .with_access_cache();
    let fixed = match (&config.access_key, &config.secret_key) {
        (Some(a), Some(s)) => Some((a.as_str(), policy::SecretKey::new(s.expose()))),
        _ => None,
    };
    let bootstrap = ensure_bootstrap(
        &policy_store,
        &index,
        &keyring,
        fixed.as_ref().map(|(a, s)| (*a, s)),
    )
    .await?;
    let limits = Arc::new(policy::RateLimits::new(config.rate_limits()));
    let auth_failures = Arc::new(AuthFailures::new(config.limits.auth_failures_per_min()));
    metrics.watch_auth_failures(auth_failures.clone());
    let admin_api = admin_api(AdminParts {
        policy_store: policy_store.clone(),
        jwt: Arc::new(config.jwt_authority()?),
        limits: limits.clone(),
        auth_failures: auth_failures.clone(),
        audit: audit.clone(),
        evidence_dir: config.data_dir.join("evidence"),
        metrics: metrics.clone(),
        status: serde_json::json!({
            "backend": backend.name(),
            "key_provider": keyring.provider().kind(),
            "region": config.region,
        }),
    });
    let authz = policy::Authorizer::new(policy_store, limits);
    let creds = Credentials::new(authz.clone());

    let mut gateway = Gateway::new(
        store.clone(),
        creds.clone(),
        config.kms.is_some(),
        config.region.clone(),
    );
    gateway.sigv2 = config.limits.sigv2();
    let mut builder = S3ServiceBuilder::new(gateway.clone());
    let mut s3_config = s3s::config::S3Config::default();
    s3_config.post_object_max_file_size = config.limits.post_object_max_bytes();
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        s3_config,
    ))));
    builder.set_auth(IndexAuth(creds.clone()));
    builder.set_access(RoleAccess::new(creds.clone(), config.kms.is_some()));
    builder.set_route(RangeFallback { gateway, creds });
    let s3 = builder.build();

    let s3_listener = TcpListener::bind(s3_sock)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {s3_sock}: {e}")))?;
    let admin_listener = TcpListener::bind(admin_sock)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {admin_sock}: {e}")))?;
    let s3_addr = s3_listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;

    let (tx, rx) = watch::channel(false);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let ctx = RequestCtx {
        metrics: metrics.clone(),
        ledger: Some(audit.ledger.clone()),
        limits: Arc::new(config.limits.clone()),
        body_rate: BodyRate::of(&config.limits),
        auth_failures: auth_failures.clone(),
    };
    let s3_task = tokio::spawn(listen::serve(
        s3_listener,
        ListenLimits::s3(&config.limits),
        metrics.clone(),
        move |peer| request_service(s3.clone(), ctx.clone(), peer),
        rx.clone(),
        grace,
    ));
    let prune_task = audit.spawn_pruner(rx.clone());
    let app = router(AdminState {
        store: store.clone(),
        metrics: metrics.clone(),
    })
    .merge(admin_api);
    let admin_task = tokio::spawn(listen::serve(
        admin_listener,
        ListenLimits::admin(&config.limits),
        metrics.clone(),
        move |peer| {
            hyper_util::service::TowerToHyperService::new(
                app.clone()
                    .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
            )
        },
        rx.clone(),
        grace,
    ));

    tracing::info!(
        s3_addr = %s3_addr,
        admin_addr = %admin_addr,
        backend = backend.name(),
        key_provider = keyring.provider().kind(),
        "listening"
    );
    if let Some(b) = &bootstrap {
        println!(
            "{}",
            bootstrap_instructions(b, &format!("http://{s3_addr}"), &config.region)
        );
    }
    Ok(RunningServer {
        s3_addr,
        admin_addr,
        bootstrap,
        store,
        metrics,
        authz,
        shutdown: tx,
        audit,
        tasks: vec![s3_task, admin_task, prune_task],
    })
}

/// Creates the data dir (mode 0700) and, for the default SQLite index, its database file (mode
/// 0600, which SQLite gives its -wal and -shm files too): they hold object names, user
/// metadata, sealed secrets and the audit trail, none of it for other local users. An existing
/// dir or file that others may read is left as it is and warned about.
fn secure_data_dir(config: &Config) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = &config.data_dir;
    let cannot = |what: &str, p: &std::path::Path, e: std::io::Error| {
        Error::Config(format!("cannot {what} {}: {e}", p.display()))
    };
    if dir.exists() {
        warn_if_shared(dir);
    } else {
        std::fs::create_dir_all(dir).map_err(|e| cannot("create data dir", dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| cannot("restrict data dir", dir, e))?;
    }
    let url = config.database_url();
    let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| !p.is_empty() && *p != ":memory:")
    else {
        return Ok(());
    };
    let db = std::path::Path::new(path);
    if db.exists() {
        for suffix in ["", "-wal", "-shm"] {
            let f = std::path::PathBuf::from(format!("{path}{suffix}"));
            if f.exists() {
                warn_if_shared(&f);
            }
        }
    } else if db.parent().is_some_and(std::path::Path::exists) {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db)
            .map_err(|e| cannot("create index database", db, e))?;
    }
    Ok(())
}

/// Warns when group or other users may read or enter `p`.
fn warn_if_shared(p: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(p) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %p.display(),
                mode = format!("{mode:o}"),
                "readable by other users of this host; restrict it (chmod 700 for the data dir, 600 for files)"
            );
        }
    }
}

fn bucket_of(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or("")
}

/// A request body whose first frame was already read (see [`prime_expect_continue`]).
struct Primed {
    first: Option<hyper::body::Frame<bytes::Bytes>>,
    rest: ReqBody,
}

/// The request body as the pipeline reads it: hyper's, under the progress bound.
type ReqBody = TimedBody<Incoming>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl hyper::body::Body for Primed {
    type Data = bytes::Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<std::result::Result<hyper::body::Frame<bytes::Bytes>, BoxError>>>
    {
        let this = self.get_mut();
        if let Some(f) = this.first.take() {
            return std::task::Poll::Ready(Some(Ok(f)));
        }
        std::pin::Pin::new(&mut this.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        let rest = self.rest.size_hint();
        let n = self
            .first
            .as_ref()
            .and_then(|f| f.data_ref())
            .map_or(0, |d| d.len() as u64);
        match rest.exact() {
            Some(e) => hyper::body::SizeHint::with_exact(e + n),
            None => {
                let mut h = hyper::body::SizeHint::new();
                h.set_lower(rest.lower() + n);
                if let Some(u) = rest.upper() {
                    h.set_upper(u + n);
                }
                h
            }
        }
    }
}

fn expects_continue(h: &http::HeaderMap) -> bool {
    h.get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Answers `Expect: 100-continue` at once: hyper sends "100 Continue" when the body is first
/// polled, which s3s does only after authentication and our index lookups. Clients such as
/// botocore stop waiting after a second and send the body anyway, and then misparse a late
/// "100 Continue". Reading the first frame here sends it immediately.
async fn prime_expect_continue(req: http::Request<ReqBody>) -> http::Request<s3s::Body> {
    if !expects_continue(req.headers()) {
        return req.map(s3s::Body::http_body);
    }
    let (parts, mut body) = req.into_parts();
    let first = match body.frame().await {
        Some(Ok(f)) => Some(f),
        Some(Err(e)) => {
            tracing::debug!(error = %e, "request body failed before the first frame");
            None
        }
        None => None,
    };
    http::Request::from_parts(parts, s3s::Body::http_body(Primed { first, rest: body }))
}

type RespBody =
    http_body_util::combinators::BoxBody<bytes::Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// What every S3 request needs besides the s3s service.
#[derive(Clone)]
struct RequestCtx {
    metrics: Metrics,
    /// None only for gateways built without a ledger (never by [`start`])
    ledger: Option<audit::Ledger>,
    /// the `[limits]` settings (SigV2 and presign bounds)
    limits: Arc<Limits>,
    /// the body progress bound, from `limits` once at start-up
    body_rate: BodyRate,
    /// failed authentications per client address
    auth_failures: Arc<AuthFailures>,
}

/// S3 error codes that mean the caller failed to authenticate (counted per address).
fn is_auth_failure(code: Option<&str>) -> bool {
    matches!(code, Some("SignatureDoesNotMatch" | "InvalidAccessKeyId"))
}

/// The refusal of a request before s3s sees it: a blocked address (503 SlowDown with
/// Retry-After) or a head that fails [`guard::precheck`].
fn refuse_early(
    ctx: &RequestCtx,
    peer: SocketAddr,
    req: &http::Request<ReqBody>,
) -> Option<http::Response<s3s::Body>> {
    if let Err(policy::Error::RateLimited { retry_after_secs }) = ctx.auth_failures.check(peer.ip())
    {
        let mut r = guard::error_response(
            http::StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Too many failed authentications from your address; please try again later.",
        );
        r.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from(retry_after_secs.max(1)),
        );
        return Some(r);
    }
    guard::precheck(
        req.headers(),
        req.uri(),
        &ctx.limits,
        time::OffsetDateTime::now_utc(),
    )
    .err()
    .map(|r| r.response())
}

/// An S3 error body (`<Error>…</Error>`, as s3s renders it) with `<RequestId>` added before
/// `</Error>`, so that the id in the body matches the `x-amz-request-id` header (as on AWS).
/// `None` when the body is not such an error or already names a request id.
fn error_body_with_request_id(body: &[u8], request_id: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    if text.contains("<RequestId>") || !text.contains("<Error>") {
        return None;
    }
    let end = text.rfind("</Error>")?;
    Some(format!(
        "{}<RequestId>{request_id}</RequestId>{}",
        &text[..end],
        &text[end..]
    ))
}

/// Answers 503 ServiceUnavailable in place of a read whose audit event could not be recorded.
fn audit_refusal(request_id: &str) -> http::Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>ServiceUnavailable</Code>\
         <Message>The audit log cannot record this request. Please try again later.</Message>\
         <RequestId>{request_id}</RequestId></Error>"
    );
    let mut r = http::Response::new(s3s::Body::from(body));
    *r.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    r
}

/// Body bytes the response will send (0 for HEAD).
fn response_bytes(method: &http::Method, resp: &http::Response<s3s::Body>) -> u64 {
    if method == http::Method::HEAD {
        return 0;
    }
    resp.headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| resp.body().bytes().map(|b| b.len() as u64))
        .unwrap_or(0)
}

/// Runs when a request's future is dropped before its response was ready (the client closed
/// the connection): the in-flight gauge goes down and the request still leaves its event, as
/// 499 ClientClosedRequest, appended from a task of its own.
struct AbandonGuard {
    metrics: Metrics,
    audit: Option<S3Audit>,
    requested: Option<policy::Action>,
    armed: bool,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        self.metrics.in_flight.dec();
        let Some(a) = self.audit.take() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!("request abandoned outside a runtime: its audit event is lost");
            return;
        };
        let requested = self.requested;
        rt.spawn(async move {
            a.sync_from_slot();
            if a.slot.get().is_none()
                && let Some(r) = requested
            {
                a.scope.set_action(r.s3_name());
            }
            if let Err(e) = a
                .scope
                .finish(499, Some("ClientClosedRequest".into()), 0)
                .await
            {
                tracing::error!(error = %e, request_id = %a.scope.request_id(), "audit event of an abandoned request not recorded");
            }
        });
    }
}

/// Observes a GetObject download when its body is finished or dropped.
struct DownloadGuard {
    metrics: Metrics,
    t0: Instant,
}

impl Drop for DownloadGuard {
    fn drop(&mut self) {
        self.metrics
            .download_duration
            .observe(self.t0.elapsed().as_secs_f64());
    }
}

fn request_service(
    s3: s3s::service::S3Service,
    ctx: RequestCtx,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = http::Response<RespBody>,
    Error = Infallible,
    Future = impl Future<Output = std::result::Result<http::Response<RespBody>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let s3 = s3.clone();
        let ctx = ctx.clone();
        async move {
            let timed_out = Arc::new(AtomicBool::new(false));
            let mut req = req.map(|b| TimedBody::new(b, ctx.body_rate, timed_out.clone()));
            let metrics = ctx.metrics.clone();
            let t0 = Instant::now();
            metrics.in_flight.inc();
            let slot = OpSlot::default();
            req.extensions_mut().insert(slot.clone());
            let request_id = crate::audit::new_request_id();
            let audit = ctx.ledger.as_ref().map(|l| S3Audit {
                scope: RequestAudit::new(
                    l.clone(),
                    EventKind::S3,
                    request_id.clone(),
                    Some(peer.ip().to_string()),
                ),
                slot: slot.clone(),
            });
            if let Some(a) = &audit {
                req.extensions_mut().insert(a.clone());
            }
            let method = req.method().clone();
            let bucket = bucket_of(req.uri().path()).to_owned();
            let requested = crate::audit::guess_action(
                &method,
                req.uri().path(),
                req.uri().query(),
                req.headers(),
            );
            // hyper sends no "100 Continue" for an empty body; botocore then takes the final
            // response as the interim one's stand-in and misparses the next response on the same
            // connection. Closing such connections keeps clients in step.
            let mut guard = AbandonGuard {
                metrics: metrics.clone(),
                audit: audit.clone(),
                requested,
                armed: true,
            };
            let close_after = expects_continue(req.headers())
                && req
                    .headers()
                    .get(http::header::CONTENT_LENGTH)
                    .is_some_and(|v| v.as_bytes() == b"0");
            let mut resp = match refuse_early(&ctx, peer, &req) {
                Some(r) => r,
                None => {
                    let req = prime_expect_continue(req).await;
                    match s3.call(req).await {
                        Ok(r) => r,
                        Err(e) => {
                            tracing::error!(error = ?e, "s3 service failed");
                            let mut r = http::Response::new(s3s::Body::empty());
                            *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                            r
                        }
                    }
                }
            };
            if timed_out.load(Ordering::Relaxed) {
                metrics.request_timeouts.inc();
                resp = guard::error_response(
                    http::StatusCode::BAD_REQUEST,
                    "RequestTimeout",
                    "Your socket connection to the server was not read from or written to \
                     within the timeout period.",
                );
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            let info = slot.get();
            // refused before the access check (bad signature, unknown key): the requested op
            let action = match &info {
                Some(i) => i.action,
                None => requested,
            };
            let op = action.map_or("Unknown", |a| a.s3_name());
            let mut status = resp.status().as_u16();
            let mut error_code = if status >= 400 {
                resp.body().bytes().and_then(|b| error_code_of(&b))
            } else {
                None
            };
            if is_auth_failure(error_code.as_deref()) {
                ctx.auth_failures.record_failure(peer.ip());
            }
            // the event: recorded here unless a change recorded it before becoming visible;
            // for reads this is when the response head is ready, before any body byte is sent
            if let Some(a) = &audit {
                a.sync_from_slot();
                if info.is_none()
                    && let Some(r) = requested
                {
                    a.scope.set_action(r.s3_name());
                }
                let bytes_out = response_bytes(&method, &resp);
                if let Err(e) = a.scope.finish(status, error_code.clone(), bytes_out).await {
                    let is_read = action.is_none_or(|a| a.is_read());
                    if status < 400 && is_read && a.scope.ledger().fail_request_on_error(true) {
                        tracing::error!(error = %e, op, request_id = %request_id, "read refused: its audit event cannot be recorded");
                        resp = audit_refusal(&request_id);
                        status = 503;
                        error_code = Some("ServiceUnavailable".into());
                    } else {
                        tracing::error!(error = %e, op, status, request_id = %request_id, "audit event not recorded");
                    }
                }
            }
            if status >= 400
                && let Some(body) = resp
                    .body()
                    .bytes()
                    .and_then(|b| error_body_with_request_id(&b, &request_id))
            {
                let len = body.len();
                *resp.body_mut() = s3s::Body::from(body);
                resp.headers_mut()
                    .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
            }
            if let Ok(v) = http::HeaderValue::from_str(&request_id) {
                resp.headers_mut().insert("x-amz-request-id", v);
            }
            if close_after {
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            guard.armed = false;
            metrics.in_flight.dec();
            let elapsed = t0.elapsed();
            let status_label = status.to_string();
            metrics
                .requests
                .with_label_values(&[op, status_label.as_str()])
                .inc();
            metrics
                .duration
                .with_label_values(&[op])
                .observe(elapsed.as_secs_f64());
            if error_code.as_deref() == Some("SlowDown") || status == 429 {
                metrics.throttled.with_label_values(&[op]).inc();
            } else if status == 401 || status == 403 {
                metrics.denied.with_label_values(&[op]).inc();
            }
            let download = action == Some(policy::Action::GetObject);
            if download {
                metrics
                    .downloads
                    .with_label_values(&[status_label.as_str()])
                    .inc();
            }
            let access_key = info.and_then(|i| i.access_key).unwrap_or_default();
            tracing::info!(
                target: "vaultgate::request",
                op,
                method = %method,
                bucket = %bucket,
                status,
                duration_ms = elapsed.as_secs_f64() * 1000.0,
                access_key = %access_key,
                request_id = %request_id,
                "request"
            );
            let counter = metrics.bytes_out.clone();
            let download_bytes = (download && status < 300).then(|| metrics.download_bytes.clone());
            let guard = (download && status < 300).then(|| DownloadGuard {
                metrics: metrics.clone(),
                t0,
            });
            let resp = resp.map(move |b| {
                b.map_frame(move |f| {
                    let _keep = &guard;
                    if let Some(d) = f.data_ref() {
                        counter.inc_by(d.len() as u64);
                        if let Some(c) = &download_bytes {
                            c.inc_by(d.len() as u64);
                        }
                    }
                    f
                })
                .boxed()
            });
            Ok::<_, Infallible>(resp)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_from_path() {
        assert_eq!(bucket_of("/b1/k/x"), "b1");
        assert_eq!(bucket_of("/b1"), "b1");
        assert_eq!(bucket_of("/"), "");
    }

    #[test]
    fn error_bodies_get_the_request_id() {
        let body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>m</Message></Error>";
        assert_eq!(
            error_body_with_request_id(body, "0123ABCD").as_deref(),
            Some(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>m</Message><RequestId>0123ABCD</RequestId></Error>"
            )
        );
        // already there, not an error body, not text: left alone
        assert_eq!(
            error_body_with_request_id(b"<Error><RequestId>X</RequestId></Error>", "Y"),
            None
        );
        assert_eq!(error_body_with_request_id(b"{\"error\":1}", "Y"), None);
        assert_eq!(error_body_with_request_id(&[0xff, 0xfe], "Y"), None);
    }
}
