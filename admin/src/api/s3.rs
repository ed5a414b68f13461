//! S3 through the admin API, for the web console: the signed-in principal's S3 requests,
//! signed server-side (SigV4) with the access key its session was minted with and sent to the
//! gateway's own S3 listener, whose answer (S3 XML or object bytes) is passed back.
//!
//! So a console request is an ordinary S3 request of that principal: the S3 listener
//! authenticates it, authorises it (roles, grants, tenants, quorum gates, rate limits) and
//! records its S3 audit event exactly as for aws cli; this route adds the admin event of the
//! call (`admin.S3Get`, …) and nothing else. Successful answers are S3's (XML or the object
//! bytes); S3 errors become the admin API's JSON errors with S3's status and code (and the
//! approval id when a quorum rule holds the request), the S3 request id in `x-amz-request-id`. The browser never holds a secret or a presigned
//! URL; it holds the session token only. Routes: `GET /admin/v1/s3` (ListBuckets) and
//! `GET|PUT|POST|DELETE /admin/v1/s3/{bucket}?key=<object key>&<S3 query>` (every other query
//! parameter is passed on, e.g. `list-type=2&prefix=a/&delimiter=/`, `uploads`,
//! `partNumber=1&uploadId=…`). A session from an external token issuer (no access key) is
//! refused with 400.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::{AdminState, Caller, ms_now};
use crate::audit::Audit;
use crate::error::{ApiError, ErrorBody};

/// Where the console's S3 requests go: the gateway's S3 listener (set once it is bound), its
/// region (the SigV4 scope), and, when that listener has TLS, the certificate file it serves
/// (the relay trusts exactly that certificate: it talks to its own process on loopback, whose
/// address no public certificate names).
#[derive(Clone)]
pub struct S3Relay {
    addr: Arc<OnceLock<SocketAddr>>,
    region: String,
    client: Client<HttpConnector, Body>,
    tls: Option<tokio_rustls::TlsConnector>,
}

impl S3Relay {
    /// A relay to the S3 listener whose address `addr` will hold (an unspecified address,
    /// `0.0.0.0`/`::`, is reached on loopback), signing for `region`.
    pub fn new(addr: Arc<OnceLock<SocketAddr>>, region: impl Into<String>) -> S3Relay {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(Duration::from_secs(5)));
        S3Relay {
            addr,
            region: region.into(),
            client: Client::builder(TokioExecutor::new()).build(http),
            tls: None,
        }
    }

    /// A relay to an S3 listener with TLS, trusting exactly the leaf certificate of `cert_file`
    /// (the listener's PEM chain, read again at every connection, so a reload in place is
    /// followed; the handshake signature is checked as usual).
    pub fn with_tls(
        addr: Arc<OnceLock<SocketAddr>>,
        region: impl Into<String>,
        cert_file: PathBuf,
    ) -> Result<S3Relay, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(PinnedLeaf {
            cert_file,
            provider: provider.clone(),
        });
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // every connection checks the certificate again (a resumed session would not)
        config.resumption = rustls::client::Resumption::disabled();
        let mut relay = S3Relay::new(addr, region);
        relay.tls = Some(tokio_rustls::TlsConnector::from(Arc::new(config)));
        Ok(relay)
    }

    /// Sends `req` (origin-form URI, `Host` set) to `target` over TLS: one connection per
    /// request (the console sends few, large requests).
    async fn send_tls(
        connector: &tokio_rustls::TlsConnector,
        target: SocketAddr,
        req: http::Request<Body>,
    ) -> Result<http::Response<hyper::body::Incoming>, String> {
        let tcp = tokio::net::TcpStream::connect(target)
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        let name = rustls::pki_types::ServerName::IpAddress(target.ip().into());
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        sender.send_request(req).await.map_err(|e| e.to_string())
    }

    fn target(&self) -> Option<SocketAddr> {
        let mut a = *self.addr.get()?;
        if a.ip().is_unspecified() {
            a.set_ip(if a.is_ipv4() {
                std::net::Ipv4Addr::LOCALHOST.into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        Some(a)
    }
}

/// Trusts exactly the leaf certificate in `cert_file` (the S3 listener's own), read at every
/// handshake; the handshake signature is verified with the provider's algorithms.
#[derive(Debug)]
struct PinnedLeaf {
    cert_file: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for PinnedLeaf {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use rustls::pki_types::pem::PemObject;
        let leaf = rustls::pki_types::CertificateDer::pem_file_iter(&self.cert_file)
            .ok()
            .and_then(|mut certs| certs.next())
            .and_then(Result::ok);
        match leaf {
            Some(leaf) if leaf.as_ref() == end_entity.as_ref() => {
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            _ => Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Request headers passed on to S3 (anything else, `Authorization` first, is dropped).
const PASS_REQUEST: &[&str] = &[
    "content-type",
    "content-length",
    "content-md5",
    "content-disposition",
    "content-encoding",
    "content-language",
    "cache-control",
    "expires",
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "x-amz-checksum-mode",
    "x-amz-sdk-checksum-algorithm",
    "x-amz-checksum-crc32",
    "x-amz-checksum-crc32c",
    "x-amz-checksum-sha1",
    "x-amz-checksum-sha256",
];

/// Response headers passed back (plus every `x-amz-*`).
const PASS_RESPONSE: &[&str] = &[
    "content-type",
    "content-length",
    "content-range",
    "content-disposition",
    "content-encoding",
    "content-language",
    "cache-control",
    "expires",
    "etag",
    "last-modified",
    "accept-ranges",
    "retry-after",
];

/// ListBuckets of the caller (its tenant's buckets), as S3 XML.
#[utoipa::path(get, path = "/admin/v1/s3", tag = "s3", operation_id = "S3ListBuckets",
    responses((status = 200, description = "S3 ListAllMyBucketsResult (XML)", content_type = "application/xml"),
        (status = "4XX", description = "the S3 error (S3's status and code) or the admin API's", body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn list_buckets(
    State(st): State<AdminState>,
    Extension(c): Extension<Caller>,
    audit: Audit,
    req: Request,
) -> Result<Response, ApiError> {
    relay(&st, &c, &audit, None, req).await
}

/// A route on `/admin/v1/s3/{bucket}` (one per method, each its own OpenAPI operation: id, key
/// parameter, answer): [`relay`] with the path's bucket.
macro_rules! bucket_route {
    ($(#[doc = $doc:literal])* $name:ident, $method:ident, $op:literal, $key:tt, $ok:literal, $answer:literal) => {
        $(#[doc = $doc])*
        #[utoipa::path($method, path = "/admin/v1/s3/{bucket}", tag = "s3", operation_id = $op,
            params(("bucket" = String, Path, min_length = 3, max_length = 63, pattern = "^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$", description = "bucket name (S3's rules: also not in IP address form)"), $key),
            responses((status = $ok, description = $answer), (status = "4XX", description = "the S3 error (S3's status and code) or the admin API's", body = ErrorBody), (status = 503, body = ErrorBody)))]
        pub(super) async fn $name(
            State(st): State<AdminState>,
            Extension(c): Extension<Caller>,
            audit: Audit,
            Path(bucket): Path<String>,
            req: Request,
        ) -> Result<Response, ApiError> {
            relay(&st, &c, &audit, Some(bucket), req).await
        }
    };
}

bucket_route!(
    /// An S3 request on a bucket (`key` absent) or an object (`key` = its key) of the caller:
    /// reads (GetObject, ListObjectsV2, ListParts, …) and `HeadObject` as a GET with `Range: bytes=0-0`.
    get, get, "S3Get",
    ("key" = Option<String>, Query, min_length = 1, max_length = 1024, description = "object key"),
    200, "the S3 answer (XML or object bytes)"
);

bucket_route!(
    /// PutObject, UploadPart, CreateBucket (no `key`): the body is streamed to S3.
    put, put, "S3Put",
    ("key" = Option<String>, Query, min_length = 1, max_length = 1024, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$", description = "object key (no control characters)"),
    200, "the S3 answer"
);

bucket_route!(
    /// CreateMultipartUpload (`uploads`), CompleteMultipartUpload (`uploadId`), DeleteObjects
    /// (`delete`).
    post, post, "S3Post",
    ("key" = Option<String>, Query, min_length = 1, max_length = 1024, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$", description = "object key (no control characters)"),
    200, "the S3 answer"
);

bucket_route!(
    /// DeleteObject, AbortMultipartUpload (`uploadId`), DeleteBucket (no `key`). A quorum-gated
    /// delete answers S3's 403 AccessDenied naming the approval request.
    delete, delete, "S3Delete",
    ("key" = Option<String>, Query, min_length = 1, max_length = 1024, description = "object key"),
    204, "the S3 answer"
);

fn valid_bucket(b: &str) -> bool {
    (3..=63).contains(&b.len())
        && b.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
}

/// Whether a POST's query names one of the S3 operations a POST performs here.
fn names_post_operation(raw_query: Option<&str>) -> bool {
    url::form_urlencoded::parse(raw_query.unwrap_or("").as_bytes())
        .any(|(k, _)| matches!(k.as_ref(), "uploads" | "uploadId" | "delete"))
}

/// `/{bucket}[/{key}]?{query}`, percent-encoded the way SigV4 for S3 canonicalises it
/// (everything but `A-Za-z0-9-._~` and the key's `/`), plus the bucket and key for the audit.
fn s3_path(
    bucket: Option<&str>,
    raw_query: Option<&str>,
) -> Result<(String, Option<String>), ApiError> {
    let mut key = None;
    let mut query = Vec::new();
    for (k, v) in url::form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
        if k == "key" {
            if key.is_some() {
                return Err(ApiError::bad_request("key given twice"));
            }
            key = Some(v.into_owned());
        } else if k.to_ascii_lowercase().starts_with("x-amz-") || k.is_empty() {
            return Err(ApiError::bad_request(format!(
                "query parameter {k:?} is not passed to S3"
            )));
        } else {
            query.push(format!(
                "{}={}",
                urlencoding::encode(&k),
                urlencoding::encode(&v)
            ));
        }
    }
    let mut path = String::from("/");
    if let Some(b) = bucket {
        if !valid_bucket(b) {
            return Err(ApiError::bad_request("invalid bucket name"));
        }
        path.push_str(b);
        if let Some(k) = &key {
            if k.is_empty() || k.len() > 1024 {
                return Err(ApiError::bad_request("object key must be 1..=1024 bytes"));
            }
            path.push('/');
            let segs: Vec<String> = k
                .split('/')
                .map(|s| urlencoding::encode(s).into_owned())
                .collect();
            path.push_str(&segs.join("/"));
        }
    } else if key.is_some() || !query.is_empty() {
        return Err(ApiError::bad_request("ListBuckets takes no parameters"));
    }
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    Ok((path, key))
}

/// Relays one console S3 request: checks what the admin API checks (relay on, path, POST
/// operation, a session with an access key that is still active), signs it as that access key,
/// sends it to the S3 listener and passes back the answer (an S3 error as the admin JSON error).
async fn relay(
    st: &AdminState,
    c: &Caller,
    audit: &Audit,
    bucket: Option<String>,
    req: Request,
) -> Result<Response, ApiError> {
    let relay = st.s3.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "S3 access through the admin API is not available on this gateway",
        )
    })?;
    let (path, key) = s3_path(bucket.as_deref(), req.uri().query())?;
    if req.method() == Method::POST && !names_post_operation(req.uri().query()) {
        return Err(ApiError::not_found(
            "no such S3 operation: a POST names it with uploads, uploadId or delete",
        ));
    }
    if let Some(a) = &audit.0 {
        a.set_target(bucket.clone(), key.clone());
    }
    if c.0.access_key_id.is_empty() {
        return Err(ApiError::bad_request(
            "S3 access needs a session signed in with an access key (POST /admin/v1/auth/token)",
        ));
    }
    let (secret, _) = st
        .store
        .lookup_key(&c.0.access_key_id, ms_now())
        .await?
        .ok_or_else(|| {
            ApiError::unauthorized(
                "the token's access key is revoked or expired, or its principal is disabled",
            )
        })?;
    let target = relay.target().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "the S3 listener is not up yet",
        )
    })?;
    let host = target.to_string();
    let mut out = relay.outgoing(&host, &path, req)?;
    relay.sign(&mut out, &c.0.access_key_id, secret.expose())?;
    let sent = match &relay.tls {
        None => relay.client.request(out).await.map_err(|e| e.to_string()),
        Some(connector) => {
            *out.uri_mut() = path.parse().map_err(ApiError::internal)?;
            S3Relay::send_tls(connector, target, out).await
        }
    };
    let resp = sent.map_err(|e| {
        tracing::warn!("console S3 relay to {host}: {e}");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "the S3 listener did not answer",
        )
    })?;
    let (rparts, rbody) = resp.into_parts();
    if rparts.status.is_client_error() || rparts.status.is_server_error() {
        return Ok(error_answer(&rparts, rbody).await);
    }
    Ok(passed_answer(&rparts, rbody))
}

impl S3Relay {
    /// The request to send to S3 at `host`: the console request's method, the S3 `path`, the
    /// request headers S3 may see ([`PASS_REQUEST`], `x-amz-meta-*`) and, but for a GET or a
    /// DELETE, its body.
    fn outgoing(
        &self,
        host: &str,
        path: &str,
        req: Request,
    ) -> Result<http::Request<Body>, ApiError> {
        let (parts, body) = req.into_parts();
        let mut headers = HeaderMap::new();
        for name in PASS_REQUEST {
            for v in parts.headers.get_all(*name) {
                headers.append(HeaderName::from_static(name), v.clone());
            }
        }
        for (name, v) in &parts.headers {
            if name.as_str().starts_with("x-amz-meta-") {
                headers.append(name.clone(), v.clone());
            }
        }
        let mut out = http::Request::builder()
            .method(parts.method.clone())
            .uri(format!(
                "{}://{host}{path}",
                if self.tls.is_some() { "https" } else { "http" }
            ))
            .body(if matches!(parts.method, Method::GET | Method::DELETE) {
                Body::empty()
            } else {
                body
            })
            .map_err(|e| ApiError::bad_request(format!("request cannot be passed on: {e}")))?;
        *out.headers_mut() = headers;
        out.headers_mut().insert(
            header::HOST,
            HeaderValue::from_str(host).map_err(ApiError::internal)?,
        );
        Ok(out)
    }

    /// Signs `out` as `access_key_id` (header SigV4, unsigned payload: the S3 listener checks
    /// the MD5/checksums it is given).
    fn sign(
        &self,
        out: &mut http::Request<Body>,
        access_key_id: &str,
        secret: &str,
    ) -> Result<(), ApiError> {
        let creds = Credentials::new(access_key_id, secret, None, None, "vaultgate-console");
        let identity = creds.into();
        let mut settings = SigningSettings::default();
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(ApiError::internal)?
            .into();
        let header_pairs: Vec<(String, String)> = out
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let uri = out.uri().to_string();
        let signable = SignableRequest::new(
            out.method().as_str(),
            &uri,
            header_pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| ApiError::bad_request(format!("request cannot be signed: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(ApiError::internal)?
            .into_parts();
        instructions.apply_to_request_http1x(out);
        Ok(())
    }
}

/// S3's XML error → the admin API's JSON error (same status and code, approval id when a
/// quorum rule holds the request); the S3 request id and `Retry-After` stay in their headers.
async fn error_answer(rparts: &http::response::Parts, rbody: hyper::body::Incoming) -> Response {
    let bytes = axum::body::to_bytes(Body::new(rbody), 64 * 1024)
        .await
        .unwrap_or_default();
    let (code, message) = s3_error(&bytes).unwrap_or_else(|| {
        (
            format!("S3Http{}", rparts.status.as_u16()),
            "the S3 listener refused the request".into(),
        )
    });
    let message = if message.is_empty() {
        format!("S3 refused the request ({code})")
    } else {
        message
    };
    let mut e = ApiError::new(rparts.status, &code, message.clone());
    e.approval_id = approval_id_in(&message);
    let mut resp = e.into_response();
    if let Some(v) = rparts.headers.get("x-amz-request-id") {
        resp.headers_mut().insert("x-amz-request-id", v.clone());
    }
    if let Some(v) = rparts.headers.get(header::RETRY_AFTER) {
        resp.headers_mut().insert(header::RETRY_AFTER, v.clone());
    }
    resp
}

/// A successful S3 answer as it came, with the response headers the console may see
/// ([`PASS_RESPONSE`], `x-amz-*`) and those that keep object bytes from being a page of this
/// origin.
fn passed_answer(rparts: &http::response::Parts, rbody: hyper::body::Incoming) -> Response {
    let mut answer = Response::new(Body::new(rbody));
    *answer.status_mut() = rparts.status;
    let h = answer.headers_mut();
    for (name, v) in &rparts.headers {
        if PASS_RESPONSE.contains(&name.as_str()) || name.as_str().starts_with("x-amz-") {
            h.append(name.clone(), v.clone());
        }
    }
    // an object's bytes are never a page of this origin
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer.into_response()
}

/// `<Error><Code>…</Code><Message>…</Message></Error>` → (code, message).
fn s3_error(xml: &[u8]) -> Option<(String, String)> {
    use quick_xml::events::Event;
    let mut r = quick_xml::Reader::from_reader(xml);
    let (mut code, mut message) = (None, String::new());
    let mut path = Vec::<Vec<u8>>::new();
    let mut text = String::new();
    let mut buf = Vec::new();
    loop {
        match r.read_event_into(&mut buf).ok()? {
            Event::Start(t) => {
                path.push(t.name().as_ref().to_vec());
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.decode().ok()?),
            // entities arrive apart from the text around them (`&amp;`, `&#38;`)
            Event::GeneralRef(e) => match e.resolve_char_ref().ok()? {
                Some(c) => text.push(c),
                None => text.push_str(quick_xml::escape::resolve_predefined_entity(
                    &e.decode().ok()?,
                )?),
            },
            Event::End(_) => {
                match path.as_slice() {
                    [e, c] if e == b"Error" && c == b"Code" => code = Some(text.clone()),
                    [e, m] if e == b"Error" && m == b"Message" => message = text.clone(),
                    _ => {}
                }
                path.pop();
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    code.filter(|c| !c.is_empty() && c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric()))
        .map(|c| (c, message))
}

/// The approval request an S3 refusal names (`apr-…`), if any.
fn approval_id_in(message: &str) -> Option<String> {
    let start = message.find("apr-")?;
    let id: String = message[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (id.len() > 4).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_errors_are_read_and_approval_ids_found() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>approval required: request apr-1a2b3c needs 2 approvals &amp; more</Message><RequestId>X1</RequestId></Error>"#;
        let (code, msg) = s3_error(xml).unwrap();
        assert_eq!(code, "AccessDenied");
        assert_eq!(
            msg,
            "approval required: request apr-1a2b3c needs 2 approvals & more"
        );
        assert_eq!(approval_id_in(&msg).as_deref(), Some("apr-1a2b3c"));
        assert_eq!(approval_id_in("no approval here"), None);
        assert_eq!(approval_id_in("apr-"), None);
        for bad in [
            &b""[..],
            b"not xml <",
            b"<Other><Code>X</Code></Other>",
            b"<Error><Code>a b</Code></Error>",
        ] {
            assert_eq!(s3_error(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
