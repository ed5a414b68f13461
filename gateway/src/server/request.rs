//! The S3 request pipeline: the cross-cutting work around the s3s service, as named phases over
//! one per-request [`RequestCtx`] (in the request extensions):
//!
//! 1. [`Pipeline::on_request`]: request id, the action guessed from the request line, the audit
//!    scope, the context, the in-flight guard (gauge + drop-to-499 event), the body progress bound.
//! 2. refusals before s3s ([`refuse_early`]: blocked address, [`guard::precheck`]), then
//!    `Expect: 100-continue` priming and the s3s service (whose access check and handlers fill the
//!    context: operation, caller, error code).
//! 3. [`Pipeline::on_response_head`]: the final status and error code, the failed-authentication
//!    budget, the audit event (unless a change recorded it before becoming visible; reads are
//!    recorded here, before any body byte leaves, and refused with 503 under the fail-closed read
//!    policy), the request id in headers and s3s's own error bodies, metrics and the request log.
//! 4. [`Pipeline::on_body`]: byte counters and the download timer, per body frame.
//!
//! A request whose future is dropped before phase 3 (the client went away) still leaves its
//! event, as 499, through the in-flight guard.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use audit::{AbandonGuard, EventKind, Ledger, RequestAudit};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use policy::ratelimit::AuthFailures;
use prometheus::IntGauge;

use super::expect_continue::{self, expects_continue};
use super::guard::{self, BodyRate, TimedBody};
use crate::audit::error_code_of;
use crate::config::Limits;
use crate::metrics::Metrics;
use crate::request::RequestCtx;

/// The request body as the pipeline reads it: hyper's, under the progress bound.
type ReqBody = TimedBody<Incoming>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The response body the pipeline sends.
pub(super) type RespBody = http_body_util::combinators::BoxBody<bytes::Bytes, BoxError>;

/// What every S3 request needs besides the s3s service (one per listener).
#[derive(Clone)]
pub(super) struct Pipeline {
    pub metrics: Metrics,
    pub ledger: Ledger,
    /// the `[limits]` settings (SigV2 and presign bounds)
    pub limits: Arc<Limits>,
    /// the body progress bound, from `limits` once at start-up
    pub body_rate: BodyRate,
    /// failed authentications per client address
    pub auth_failures: Arc<AuthFailures>,
    /// access key secrets and the gateway's region, to re-sign requests signed for a legacy
    /// region name (`US`, `EU`; see `legacy_region`)
    pub legacy_region: (crate::auth::Credentials, String),
    /// the base domains of virtual-hosted-style addressing, when configured
    pub hosts: Option<Arc<super::host::VirtualHosts>>,
    /// the object layer, for the buckets' CORS rules (preflights and response headers)
    pub store: crate::store::Store,
}

/// The hyper service of one S3 connection from `peer`.
pub(super) fn request_service(
    s3: s3s::service::S3Service,
    pipeline: Pipeline,
    peer: SocketAddr,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = http::Response<RespBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<RespBody>, Infallible>> + Send,
> + Clone {
    hyper::service::service_fn(move |req: http::Request<Incoming>| {
        let s3 = s3.clone();
        let pipeline = pipeline.clone();
        async move { Ok(pipeline.handle(&s3, peer, req).await) }
    })
}

/// Keeps the in-flight gauge up while the request is served, and records the request's event as
/// 499 if it is dropped before [`InFlight::answered`].
struct InFlight {
    gauge: IntGauge,
    abandon: AbandonGuard,
}

impl InFlight {
    fn new(gauge: IntGauge, audit: Option<RequestAudit>) -> InFlight {
        gauge.inc();
        InFlight {
            gauge,
            abandon: AbandonGuard::new(audit),
        }
    }

    fn answered(mut self) {
        self.abandon.disarm();
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// What phase 1 knows of a request and later phases need.
struct Arrival {
    ctx: RequestCtx,
    started: Instant,
    method: http::Method,
    bucket: String,
    peer: SocketAddr,
    /// set when the body made too little progress
    timed_out: Arc<AtomicBool>,
    /// the request expects 100-continue for an empty body: answer with `Connection: close`
    close_after: bool,
    /// a cross-origin request: its `Origin` and the method its CORS rule must allow (the
    /// `Access-Control-Request-Method` if it names one, as RGW reads it, else its own)
    cors: Option<(String, String)>,
}

impl Pipeline {
    async fn resign_legacy<B>(&self, mut req: http::Request<B>) -> http::Request<B> {
        let (creds, region) = &self.legacy_region;
        super::legacy_region::map_legacy_region(&mut req, creds, region).await;
        req
    }

    async fn handle(
        &self,
        s3: &s3s::service::S3Service,
        peer: SocketAddr,
        req: http::Request<Incoming>,
    ) -> http::Response<RespBody> {
        let (arrival, req, in_flight) = self.on_request(peer, req);
        let resp = match refuse_early(self, peer, &req) {
            Some(r) => r,
            None if req.method() == http::Method::OPTIONS => self.preflight(&arrival, &req).await,
            None => self.serve_deferred(s3, &arrival, req).await,
        };
        let resp = self.with_cors(&arrival, resp).await;
        let (resp, status, action) = self.on_response_head(&arrival, resp).await;
        in_flight.answered();
        let download = action == Some(policy::Action::GetObject) && status < 300;
        self.on_body(&arrival, resp, download)
    }

    /// The s3s service's answer to `req`, whose body waits for the access check if the request
    /// expects 100-continue (`expect_continue`): a response to such a request whose body was
    /// never read closes the connection.
    async fn serve_deferred(
        &self,
        s3: &s3s::service::S3Service,
        a: &Arrival,
        req: http::Request<ReqBody>,
    ) -> http::Response<s3s::Body> {
        let (req, gate) = expect_continue::defer(req);
        let mut resp = match with_known_length(req).await {
            Err(refusal) => refusal,
            Ok(req) => self.serve_s3(s3, a, req).await,
        };
        if gate.is_some_and(|g| g.unread()) {
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        resp
    }

    /// The s3s service's answer to `req`, a POST Object form read first by
    /// [`crate::s3::post_form::prepare`] (its policy verdict replaces s3s's own policy error).
    async fn serve_s3(
        &self,
        s3: &s3s::service::S3Service,
        a: &Arrival,
        req: http::Request<s3s::Body>,
    ) -> http::Response<s3s::Body> {
        let max_file = self.limits.post_object_max_bytes();
        let req = match crate::s3::post_form::prepare(req, &a.bucket, max_file).await {
            Ok(req) => req,
            Err(refusal) => return refusal,
        };
        let form = req
            .extensions()
            .get::<Arc<crate::s3::post_form::PostForm>>()
            .cloned();
        let resp = match s3.call(self.resign_legacy(req).await).await {
            Ok(r) => crate::s3::attributes::unquote_etag(r),
            Err(e) => {
                tracing::error!(error = ?e, "s3 service failed");
                let mut r = http::Response::new(s3s::Body::empty());
                *r.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
                r
            }
        };
        match form {
            Some(f) => {
                let creds = &self.legacy_region.0;
                f.settle(resp, &a.ctx, &a.bucket, creds).await
            }
            None => resp,
        }
    }

    /// A browser's CORS preflight (`OPTIONS`), answered here rather than by s3s: it carries no
    /// credentials and goes to the URL of the request it announces (a presigned URL's signature
    /// is for that request's method). Its one audit event names it `CorsPreflight`.
    async fn preflight(
        &self,
        a: &Arrival,
        req: &http::Request<ReqBody>,
    ) -> http::Response<s3s::Body> {
        let path = req.uri().path();
        let key = match req.extensions().get::<super::host::VirtualBucket>() {
            Some(_) => path.trim_start_matches('/'),
            None => path
                .trim_start_matches('/')
                .split_once('/')
                .map_or("", |(_, k)| k),
        };
        let key = urlencoding::decode(key).map_or_else(|_| key.to_owned(), |k| k.into_owned());
        a.ctx.set_op(crate::request::OpInfo {
            op_name: Some("CorsPreflight".to_owned()),
            bucket: (!a.bucket.is_empty()).then(|| a.bucket.clone()),
            key: (!key.is_empty()).then_some(key),
            ..Default::default()
        });
        let bucket = (!a.bucket.is_empty()).then_some(a.bucket.as_str());
        crate::s3::cors::preflight(&self.store, bucket, req.headers()).await
    }

    /// The CORS headers of the bucket's matching rule on the response to a cross-origin request
    /// (a preflight has its own).
    async fn with_cors(
        &self,
        a: &Arrival,
        mut resp: http::Response<s3s::Body>,
    ) -> http::Response<s3s::Body> {
        let Some((origin, method)) = &a.cors else {
            return resp;
        };
        if a.method == http::Method::OPTIONS {
            return resp;
        }
        if let Some(h) =
            crate::s3::cors::response_headers(&self.store, &a.bucket, origin, method).await
        {
            resp.headers_mut().extend(h);
        }
        resp
    }

    /// Phase 1: the request's context, into its extensions once.
    fn on_request(
        &self,
        peer: SocketAddr,
        req: http::Request<Incoming>,
    ) -> (Arrival, http::Request<ReqBody>, InFlight) {
        let timed_out = Arc::new(AtomicBool::new(false));
        let mut req = req.map(|b| TimedBody::new(b, self.body_rate, timed_out.clone()));
        let id = audit::new_request_id();
        // a virtual-hosted-style request names its bucket in the Host header: the guess and the
        // log read the path as path style would write it, and the range fallback route reads
        // the bucket from the extension (s3s takes it from the same parser)
        let virtual_bucket = self
            .hosts
            .as_ref()
            .and_then(|h| h.bucket_of(req.headers(), req.uri()));
        let path = match &virtual_bucket {
            Some(b) => format!("/{b}{}", req.uri().path()),
            None => req.uri().path().to_owned(),
        };
        if let Some(b) = virtual_bucket {
            req.extensions_mut().insert(super::host::VirtualBucket(b));
        }
        let requested =
            crate::audit::guess_action(req.method(), &path, req.uri().query(), req.headers());
        let scope = RequestAudit::new(
            self.ledger.clone(),
            EventKind::S3,
            id.clone(),
            Some(peer.ip().to_string()),
        );
        let ctx = RequestCtx::new(id, Some(peer), requested, Some(scope.clone()));
        req.extensions_mut().insert(ctx.clone());
        let in_flight = InFlight::new(self.metrics.in_flight.clone(), Some(scope));
        // hyper sends no "100 Continue" for an empty body; botocore then takes the final
        // response as the interim one's stand-in and misparses the next response on the same
        // connection. Closing such connections keeps clients in step.
        let close_after = expects_continue(req.headers())
            && req
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .is_some_and(|v| v.as_bytes() == b"0");
        let header = |n: &str| {
            req.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let cors = header("origin").map(|o| {
            let m = header("access-control-request-method")
                .unwrap_or_else(|| req.method().as_str().to_owned());
            (o, m)
        });
        let arrival = Arrival {
            cors,
            ctx,
            started: Instant::now(),
            method: req.method().clone(),
            bucket: bucket_of(&path).to_owned(),
            peer,
            timed_out,
            close_after,
        };
        (arrival, req, in_flight)
    }

    /// Phase 3: everything decided when the response head is ready, before any body byte is
    /// sent. Returns the response to send, its final status and the request's action.
    async fn on_response_head(
        &self,
        a: &Arrival,
        resp: http::Response<s3s::Body>,
    ) -> (http::Response<s3s::Body>, u16, Option<policy::Action>) {
        let (mut resp, mut status, mut error_code) = self.final_status(a, resp);
        if is_auth_failure(error_code.as_deref()) {
            self.auth_failures.record_failure(a.peer.ip());
        }
        let action = a.ctx.action();
        let op = action.map_or("Unknown", |a| a.s3_name());
        if let Some(refusal) = Self::record_event(a, &resp, status, &error_code, action, op).await {
            resp = refusal;
            status = 503;
            error_code = Some("ServiceUnavailable".into());
        }
        stamp(&mut resp, a.ctx.id(), status, a.close_after);
        self.observe(a, op, status, error_code.as_deref(), action);
        (resp, status, action)
    }

    /// The response as it will be sent, its status and its S3 error code: a body that did not
    /// arrive in time turns into 400 RequestTimeout whatever the handler answered.
    fn final_status(
        &self,
        a: &Arrival,
        mut resp: http::Response<s3s::Body>,
    ) -> (http::Response<s3s::Body>, u16, Option<String>) {
        let mut status = resp.status().as_u16();
        let mut error_code = if status >= 400 {
            // the gateway's own errors left their code in the context; s3s's (signature,
            // malformed request) are read back from the body it rendered
            a.ctx
                .error_code()
                .or_else(|| resp.body().bytes().and_then(|b| error_code_of(&b)))
        } else {
            None
        };
        if a.timed_out.load(Ordering::Relaxed) {
            self.metrics.request_timeouts.inc();
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
            status = 400;
            error_code = Some("RequestTimeout".into());
        }
        (resp, status, error_code)
    }

    /// Records the request's audit event, unless a change recorded it before becoming
    /// visible. A successful read whose event cannot be recorded is refused under the
    /// fail-closed read policy: the refusal to send instead is returned.
    async fn record_event(
        a: &Arrival,
        resp: &http::Response<s3s::Body>,
        status: u16,
        error_code: &Option<String>,
        action: Option<policy::Action>,
        op: &str,
    ) -> Option<http::Response<s3s::Body>> {
        let scope = a.ctx.audit()?;
        let request_id = a.ctx.id();
        let bytes_out = response_bytes(&a.method, resp);
        let is_read = action.is_none_or(|a| a.is_read());
        // a read's event is queued before the first byte is sent and committed by the ledger's
        // next group commit, without waiting for its fsync; a change's was recorded before it
        // became visible, and a failed change's error event waits for its commit
        let recorded = if is_read {
            scope
                .finish_read(status, error_code.clone(), bytes_out)
                .await
        } else {
            scope
                .finish(status, error_code.clone(), bytes_out)
                .await
                .map(drop)
        };
        let e = recorded.err()?;
        if status < 400 && is_read && scope.ledger().fail_request_on_error(true) {
            tracing::error!(error = %e, op, request_id, "read refused: its audit event cannot be recorded");
            Some(audit_refusal(request_id))
        } else {
            tracing::error!(error = %e, op, status, request_id, "audit event not recorded");
            None
        }
    }

    /// Metrics and the request log line.
    fn observe(
        &self,
        a: &Arrival,
        op: &str,
        status: u16,
        error_code: Option<&str>,
        action: Option<policy::Action>,
    ) {
        let metrics = &self.metrics;
        let elapsed = a.started.elapsed();
        let status_label = status.to_string();
        metrics
            .requests
            .with_label_values(&[op, status_label.as_str()])
            .inc();
        metrics
            .duration
            .with_label_values(&[op])
            .observe(elapsed.as_secs_f64());
        if error_code == Some("SlowDown") || status == 429 {
            metrics.throttled.with_label_values(&[op]).inc();
        } else if status == 401 || status == 403 {
            metrics.denied.with_label_values(&[op]).inc();
        }
        if action == Some(policy::Action::GetObject) {
            metrics
                .downloads
                .with_label_values(&[status_label.as_str()])
                .inc();
        }
        let access_key = a.ctx.op().and_then(|i| i.access_key).unwrap_or_default();
        tracing::info!(
            target: "vaultgate::request",
            op,
            method = %a.method,
            bucket = %a.bucket,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            access_key = %access_key,
            request_id = a.ctx.id(),
            "request"
        );
    }

    /// Phase 4: counts the body's bytes as they are sent (and times a successful download until
    /// its body is finished or dropped).
    fn on_body(
        &self,
        a: &Arrival,
        resp: http::Response<s3s::Body>,
        download: bool,
    ) -> http::Response<RespBody> {
        let metrics = &self.metrics;
        let counter = metrics.bytes_out.clone();
        let download_bytes = download.then(|| metrics.download_bytes.clone());
        let timer = download.then(|| DownloadTimer {
            metrics: metrics.clone(),
            t0: a.started,
        });
        resp.map(move |b| {
            b.map_frame(move |f| {
                let _keep = &timer;
                if let Some(d) = f.data_ref() {
                    counter.inc_by(d.len() as u64);
                    if let Some(c) = &download_bytes {
                        c.inc_by(d.len() as u64);
                    }
                }
                f
            })
            .boxed()
        })
    }
}

/// Observes a GetObject download when its body is finished or dropped.
struct DownloadTimer {
    metrics: Metrics,
    t0: Instant,
}

impl Drop for DownloadTimer {
    fn drop(&mut self) {
        self.metrics
            .download_duration
            .observe(self.t0.elapsed().as_secs_f64());
    }
}

fn bucket_of(path: &str) -> &str {
    path.trim_start_matches('/').split('/').next().unwrap_or("")
}

/// S3 error codes that mean the caller failed to authenticate (counted per address).
/// The request id on the error body and in `x-amz-request-id`, and `Connection: close` when the
/// connection will not be reused.
fn stamp(resp: &mut http::Response<s3s::Body>, request_id: &str, status: u16, close: bool) {
    if status >= 400
        && let Some(body) = resp
            .body()
            .bytes()
            .and_then(|b| completed_error_body(&b, request_id))
    {
        let len = body.len();
        *resp.body_mut() = s3s::Body::from(body);
        resp.headers_mut()
            .insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
    }
    if let Ok(v) = http::HeaderValue::from_str(request_id) {
        resp.headers_mut().insert("x-amz-request-id", v);
    }
    if close {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
}

fn is_auth_failure(code: Option<&str>) -> bool {
    matches!(code, Some("SignatureDoesNotMatch" | "InvalidAccessKeyId"))
}

/// The refusal of a request before s3s sees it: a blocked address (503 SlowDown with
/// Retry-After) or a head that fails [`guard::precheck`].
fn refuse_early(
    p: &Pipeline,
    peer: SocketAddr,
    req: &http::Request<ReqBody>,
) -> Option<http::Response<s3s::Body>> {
    if let Err(policy::Error::RateLimited { retry_after_secs }) = p.auth_failures.check(peer.ip()) {
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
        &p.limits,
        time::OffsetDateTime::now_utc(),
    )
    .err()
    .map(|r| r.response())
}

/// An S3 error body (`<Error>…</Error>`, as s3s renders it) with `<RequestId>` added before
/// `</Error>`, so that the id in the body matches the `x-amz-request-id` header (as on AWS), and
/// AWS's `<Message>` after `</Code>` when s3s gave none ([`default_message`]).
fn completed_error_body(body: &[u8], request_id: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    if text.contains("<RequestId>") || !text.contains("<Error>") {
        return None;
    }
    let end = text.rfind("</Error>")?;
    let mut out = format!(
        "{}<RequestId>{request_id}</RequestId>{}",
        &text[..end],
        &text[end..]
    );
    if !text.contains("<Message>")
        && let Some(m) = error_code_of(body).and_then(|code| default_message(&code))
        && let Some(at) = out.find("</Code>")
    {
        out.insert_str(at + "</Code>".len(), &format!("<Message>{m}</Message>"));
    }
    Some(out)
}

/// AWS's message for the codes s3s answers without one: it refuses these while parsing or
/// authenticating a request, before a handler runs. Clients print the message (aws cli shows
/// "Unknown" when there is none).
fn default_message(code: &str) -> Option<&'static str> {
    Some(match code {
        "InvalidBucketName" => "The specified bucket is not valid.",
        "InvalidURI" => "Couldn't parse the specified URI.",
        "KeyTooLongError" => "Your key is too long.",
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "IncompleteBody" => {
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        }
        "NotImplemented" => "A header you provided implies functionality that is not implemented.",
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. \
             Check your key and signing method."
        }
        "InvalidAccessKeyId" => "The AWS Access Key Id you provided does not exist in our records.",
        _ => return None,
    })
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

/// Largest body of unknown length (`Transfer-Encoding: chunked`, no Content-Length) that
/// [`with_known_length`] reads into memory to learn its length.
const MAX_UNKNOWN_LENGTH_BODY: usize = 16 * 1024 * 1024;

/// A header-signed PUT whose body comes `Transfer-Encoding: chunked` without a Content-Length
/// (its payload hash covers a body whose length s3s must know to check it): the body is read,
/// up to [`MAX_UNKNOWN_LENGTH_BODY`], and passed on with its Content-Length, as RGW accepts
/// such uploads. A larger one answers 411 MissingContentLength (as AWS answers every such PUT).
/// Presigned and `aws-chunked` uploads stream as before.
async fn with_known_length(
    req: http::Request<s3s::Body>,
) -> Result<http::Request<s3s::Body>, http::Response<s3s::Body>> {
    let h = req.headers();
    let chunked = h
        .get(http::header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let signed_single = h
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.starts_with("STREAMING-"));
    if req.method() != http::Method::PUT
        || !chunked
        || h.contains_key(http::header::CONTENT_LENGTH)
        || !signed_single
    {
        return Ok(req);
    }
    let (parts, body) = req.into_parts();
    match http_body_util::Limited::new(body, MAX_UNKNOWN_LENGTH_BODY)
        .collect()
        .await
    {
        Ok(collected) => {
            let bytes = collected.to_bytes();
            let len = bytes.len();
            let mut req = http::Request::from_parts(parts, s3s::Body::from(bytes));
            let h = req.headers_mut();
            h.remove(http::header::TRANSFER_ENCODING);
            h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
            Ok(req)
        }
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(guard::error_response(
            http::StatusCode::LENGTH_REQUIRED,
            "MissingContentLength",
            "You must provide the Content-Length HTTP header (bodies of unknown length are \
             accepted up to 16 MiB).",
        )),
        // a body cut short (a slow one turns into RequestTimeout in phase 3)
        Err(e) => {
            tracing::debug!(error = %e, "chunked body without Content-Length failed");
            Err(guard::error_response(
                http::StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "You did not provide the number of bytes the request announced.",
            ))
        }
    }
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
    fn error_bodies_get_the_request_id_and_a_message() {
        let body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>m</Message></Error>";
        assert_eq!(
            completed_error_body(body, "0123ABCD").as_deref(),
            Some(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>m</Message><RequestId>0123ABCD</RequestId></Error>"
            )
        );
        // already there, not an error body, not text: left alone
        assert_eq!(
            completed_error_body(b"<Error><RequestId>X</RequestId></Error>", "Y"),
            None
        );
        assert_eq!(completed_error_body(b"{\"error\":1}", "Y"), None);
        // s3s's refusals without a message get AWS's
        assert_eq!(
            completed_error_body(b"<Error><Code>InvalidBucketName</Code></Error>", "Y").as_deref(),
            Some(
                "<Error><Code>InvalidBucketName</Code><Message>The specified bucket is not valid.\
                 </Message><RequestId>Y</RequestId></Error>"
            )
        );
        // a code without a known message keeps its body as it was
        assert_eq!(
            completed_error_body(b"<Error><Code>Odd</Code></Error>", "Y").as_deref(),
            Some("<Error><Code>Odd</Code><RequestId>Y</RequestId></Error>")
        );
        assert_eq!(completed_error_body(&[0xff, 0xfe], "Y"), None);
    }
}
