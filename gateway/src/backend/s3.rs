//! The S3-compatible backend: sealed objects as keys `<prefix>/<id>` in one bucket of any S3 API
//! (AWS S3, MinIO, SeaweedFS, ...), through `aws-sdk-s3`.
//!
//! URL: `s3://bucket[/prefix]?endpoint=http://host:port&region=us-east-1&path_style=true`.
//! Credentials are passed in ([`S3Config::credentials`]); [`super::open_backend`] reads them from
//! `VAULTGATE_BACKEND_ACCESS_KEY` / `VAULTGATE_BACKEND_SECRET_KEY` and otherwise leaves them to the
//! standard AWS chain (env, profile, web identity, ECS/IMDS).
//!
//! Writes: the body is read into buffers of [`S3Config::part_size`] bytes (16 MiB by default).
//! A body that ends within the first buffer is one `PutObject`; a longer or unknown-size body
//! becomes a backend multipart upload whose parts are uploaded while the next one is being read,
//! so at most two parts are in memory. A sealed stream is slightly longer than its plaintext
//! (32 bytes per 64 KiB record plus a header), so a client's 5 GiB part does not fit a single
//! `PutObject`; multipart has no such limit (10,000 parts of 16 MiB = 156 GiB per stream). Any
//! error (including an error item of the body or a length other than `size_hint`) aborts the
//! multipart upload, so nothing becomes visible under the id.
//!
//! Reads stream the response body (ranges with a `Range` header); nothing is collected in memory.
//! Retries: the SDK's standard retry mode (4 attempts, exponential backoff with jitter from 200 ms)
//! on throttling, 5xx, timeouts and connection errors. Error mapping: `NoSuchKey` / 404 →
//! `NotFound`; connection refused, timeouts, 5xx, 429 and `SlowDown` → `Unavailable`; all else
//! `Other`. Credentials never appear in logs or errors.

use std::ops::Range;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;

use super::{Backend, BackendError, ByteStream, ObjectInfo, new_backend_id, validate_id};

/// Default size of a buffered part (and the largest body sent as one `PutObject`).
pub const DEFAULT_PART_SIZE: usize = 16 * 1024 * 1024;
/// Smallest part size S3 accepts for all parts but the last.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// Largest part size S3 accepts.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// S3's limit on the number of parts of a multipart upload.
const MAX_PARTS: i32 = 10_000;

/// A backend secret (secret key, account key, SAS token): the project's one secret type,
/// [`keys::Secret`] (zeroized on drop, printed as `[redacted]`).
pub use keys::Secret as BackendSecret;

/// Static S3 credentials.
#[derive(Clone, Debug)]
pub struct S3Credentials {
    /// Access key id (not secret).
    pub access_key: String,
    /// Secret access key.
    pub secret_key: BackendSecret,
}

/// Everything needed to reach one bucket (and prefix) of an S3-compatible service.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// Backend bucket.
    pub bucket: String,
    /// Key prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// Endpoint URL (`http://host:port`); `None` for AWS itself.
    pub endpoint: Option<String>,
    /// Signing region.
    pub region: String,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most S3-compatible servers.
    pub path_style: bool,
    /// Static credentials; `None` uses the standard AWS credential chain.
    pub credentials: Option<S3Credentials>,
    /// Buffered part size (between [`MIN_PART_SIZE`] and [`MAX_PART_SIZE`]).
    pub part_size: usize,
    /// Create the bucket at start-up when it does not exist.
    pub create_bucket: bool,
}

impl S3Config {
    /// Parses `s3://bucket[/prefix]?endpoint=URL&region=R&path_style=true|false`.
    ///
    /// Defaults: region `us-east-1`; `path_style` true when an endpoint is given, else false.
    /// Unknown query parameters are refused. Credentials are not part of the URL.
    pub fn from_url(url: &str) -> Result<S3Config, BackendError> {
        let super::RemoteUrl {
            container: bucket,
            prefix,
            params,
        } = super::RemoteUrl::parse(url, "s3")?;
        validate_bucket_name(&bucket)?;
        let mut cfg = S3Config {
            bucket,
            prefix,
            endpoint: None,
            region: "us-east-1".to_string(),
            path_style: false,
            credentials: None,
            part_size: DEFAULT_PART_SIZE,
            create_bucket: true,
        };
        let mut path_style = None;
        for (k, v) in params {
            match k.as_str() {
                "endpoint" => cfg.endpoint = Some(super::endpoint_param("s3", &v)?),
                "region" if !v.is_empty() => cfg.region = v,
                "path_style" => path_style = Some(parse_bool("path_style", &v)?),
                other => {
                    return Err(BackendError::Config(format!(
                        "unknown s3 backend URL parameter {other:?} (known: endpoint, region, path_style)"
                    )));
                }
            }
        }
        cfg.path_style = path_style.unwrap_or(cfg.endpoint.is_some());
        Ok(cfg)
    }

    /// The object key of a backend id.
    pub fn key_of(&self, id: &str) -> String {
        if self.prefix.is_empty() {
            id.to_string()
        } else {
            format!("{}/{id}", self.prefix)
        }
    }

    /// Where this config points, for messages (never includes credentials).
    pub fn describe(&self) -> String {
        let endpoint = self.endpoint.as_deref().unwrap_or("AWS");
        if self.prefix.is_empty() {
            format!("s3://{} at {endpoint}", self.bucket)
        } else {
            format!("s3://{}/{} at {endpoint}", self.bucket, self.prefix)
        }
    }
}

pub(crate) fn parse_bool(name: &str, v: &str) -> Result<bool, BackendError> {
    match v.to_ascii_lowercase().as_str() {
        "" | "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(BackendError::Config(format!(
            "backend URL parameter {name} must be true or false, got {v:?}"
        ))),
    }
}

/// Checks an S3 bucket name (3–63 of `[a-z0-9.-]`, starting and ending with a letter or digit).
pub fn validate_bucket_name(name: &str) -> Result<(), BackendError> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(BackendError::Config(format!(
            "invalid s3 backend bucket name {name:?}"
        )))
    }
}

/// An S3 bucket (and prefix) as a [`Backend`].
#[derive(Clone)]
pub struct S3Backend {
    client: Client,
    cfg: S3Config,
}

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Backend")
            .field("bucket", &self.cfg.bucket)
            .field("prefix", &self.cfg.prefix)
            .field("endpoint", &self.cfg.endpoint)
            .finish_non_exhaustive()
    }
}

/// Maps an SDK error of `op` on `what` to a [`BackendError`].
fn map_sdk_error<E>(
    op: &str,
    what: &str,
    e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> BackendError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(str::to_string);
    let detail = format!("{op} {what}: {}", super::error_chain(&e));
    match &e {
        SdkError::TimeoutError(_) => return BackendError::Unavailable(detail),
        // Connection refused/reset and timeouts; not e.g. credentials that cannot be loaded.
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => {
            return BackendError::Unavailable(detail);
        }
        // no credentials anywhere in the AWS chain: the operator must set them
        SdkError::DispatchFailure(_) if detail.contains("loading credentials") => {
            return BackendError::Denied(format!(
                "{op} {what}: no credentials: none are configured and the AWS credential chain found none"
            ));
        }
        SdkError::DispatchFailure(_) => return BackendError::Config(detail),
        SdkError::ConstructionFailure(_) => return BackendError::Config(detail),
        _ => {}
    }
    match (code.as_deref(), status) {
        (Some("NoSuchKey" | "NotFound"), _) => BackendError::NotFound(what.to_string()),
        (
            Some(
                "SlowDown"
                | "ServiceUnavailable"
                | "RequestTimeout"
                | "Throttling"
                | "ThrottlingException",
            ),
            _,
        ) => BackendError::Unavailable(detail),
        (Some("NoSuchBucket"), _) => BackendError::Config(detail),
        (
            Some(
                "AccessDenied"
                | "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "ExpiredToken"
                | "InvalidToken",
            ),
            _,
        )
        | (_, Some(401 | 403)) => BackendError::Denied(detail),
        (_, Some(404)) => BackendError::NotFound(what.to_string()),
        (_, Some(s)) if s >= 500 || s == 429 => BackendError::Unavailable(detail),
        _ => BackendError::Refused(detail),
    }
}

/// Reads from `body` (after `carry`, the rest of the previous chunk) until `limit` bytes are
/// buffered or the body ends; then peeks so that `eof` is exact.
pub(crate) async fn fill(
    body: &mut ByteStream,
    carry: &mut Bytes,
    eof: &mut bool,
    limit: usize,
) -> Result<Bytes, BackendError> {
    let mut buf = BytesMut::new();
    loop {
        if !carry.is_empty() {
            let need = limit - buf.len();
            if carry.len() <= need {
                if buf.is_empty() && carry.len() == need {
                    // A chunk of exactly the part size: pass it on without copying.
                    let whole = std::mem::take(carry);
                    peek(body, carry, eof).await?;
                    return Ok(whole);
                }
                buf.extend_from_slice(carry);
                *carry = Bytes::new();
            } else {
                buf.extend_from_slice(&carry.split_to(need));
            }
        }
        if buf.len() >= limit {
            break;
        }
        match body.next().await {
            None => {
                *eof = true;
                break;
            }
            Some(Err(e)) => return Err(BackendError::Io(e)),
            Some(Ok(chunk)) => {
                if buf.capacity() == 0 {
                    buf.reserve(limit.min(chunk.len().max(64 * 1024)));
                }
                *carry = chunk;
            }
        }
    }
    if !*eof && carry.is_empty() {
        peek(body, carry, eof).await?;
    }
    Ok(buf.freeze())
}

/// Reads the next non-empty chunk into `carry`, or sets `eof`.
async fn peek(
    body: &mut ByteStream,
    carry: &mut Bytes,
    eof: &mut bool,
) -> Result<(), BackendError> {
    while carry.is_empty() && !*eof {
        match body.next().await {
            None => *eof = true,
            Some(Err(e)) => return Err(BackendError::Io(e)),
            Some(Ok(chunk)) => *carry = chunk,
        }
    }
    Ok(())
}

/// Checks the running total against the declared size.
pub(crate) fn check_len(
    total: u64,
    size_hint: Option<u64>,
    done: bool,
) -> Result<(), BackendError> {
    match size_hint {
        Some(expected) if total > expected => Err(BackendError::SizeMismatch(format!(
            "body longer than the declared {expected} bytes"
        ))),
        Some(expected) if done && total != expected => Err(BackendError::SizeMismatch(format!(
            "body of {total} bytes, declared {expected}"
        ))),
        _ => Ok(()),
    }
}

/// Aborts a multipart upload when dropped armed (a cancelled put), so no parts linger.
struct AbortGuard {
    client: Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
}

impl Drop for AbortGuard {
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let req = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id);
        handle.spawn(async move {
            if let Err(e) = req.send().await {
                tracing::warn!(error = %DisplayErrorContext(&e), "aborting a cancelled multipart upload failed");
            }
        });
    }
}

/// Byte-counting wrapper of a streamed GET: fails the stream if it ends short.
pub(crate) fn counted(stream: ByteStream, expected: u64, what: String) -> ByteStream {
    let state = (stream, 0u64, false);
    futures::stream::unfold(state, move |(mut s, seen, done)| {
        let what = what.clone();
        async move {
            if done {
                return None;
            }
            match s.next().await {
                Some(Ok(b)) => {
                    let seen = seen + b.len() as u64;
                    if seen > expected {
                        let e = std::io::Error::other(format!(
                            "{what}: backend sent more than {expected} bytes"
                        ));
                        return Some((Err(e), (s, seen, true)));
                    }
                    Some((Ok(b), (s, seen, false)))
                }
                Some(Err(e)) => Some((Err(e), (s, seen, true))),
                None if seen < expected => {
                    let e = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("{what}: backend stream ended after {seen} of {expected} bytes"),
                    );
                    Some((Err(e), (s, seen, true)))
                }
                None => None,
            }
        }
    })
    .boxed()
}

/// Write, read back and delete a probe object (the readiness check of every remote backend).
pub(crate) async fn probe(backend: &dyn Backend) -> Result<(), BackendError> {
    let id = new_backend_id();
    let probe = Bytes::from(format!("vaultgate readiness probe {id}"));
    let body = futures::stream::iter([Ok(probe.clone())]).boxed();
    backend.put(&id, body, Some(probe.len() as u64)).await?;
    let mut read = Vec::with_capacity(probe.len());
    let result = async {
        let mut stream = backend.get(&id, None).await?;
        while let Some(chunk) = stream.next().await {
            read.extend_from_slice(&chunk?);
        }
        Ok::<(), BackendError>(())
    }
    .await;
    let deleted = backend.delete(&id).await;
    result?;
    deleted?;
    if read != probe {
        return Err(BackendError::Refused(
            "probe object read back differently".into(),
        ));
    }
    Ok(())
}

impl S3Backend {
    /// Builds the client (no network traffic yet).
    pub async fn new(cfg: S3Config) -> Result<S3Backend, BackendError> {
        validate_bucket_name(&cfg.bucket)?;
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&cfg.part_size) {
            return Err(BackendError::Config(format!(
                "s3 backend part size {} is outside {MIN_PART_SIZE}..={MAX_PART_SIZE}",
                cfg.part_size
            )));
        }
        let retry = RetryConfig::standard()
            .with_max_attempts(4)
            .with_initial_backoff(Duration::from_millis(200));
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .build();
        let region = Region::new(cfg.region.clone());
        let mut builder = match &cfg.credentials {
            Some(c) => aws_sdk_s3::config::Builder::new()
                .behavior_version(BehaviorVersion::latest())
                .credentials_provider(Credentials::new(
                    c.access_key.clone(),
                    c.secret_key.expose().to_string(),
                    None,
                    None,
                    "vaultgate-backend",
                )),
            None => {
                let shared = aws_config::defaults(BehaviorVersion::latest())
                    .region(region.clone())
                    .load()
                    .await;
                aws_sdk_s3::config::Builder::from(&shared)
            }
        };
        builder = builder
            .region(region)
            .force_path_style(cfg.path_style)
            .retry_config(retry)
            .timeout_config(timeouts)
            // S3-compatible servers differ in their support of the newer default checksums;
            // integrity is the sealed format's job, so send checksums only where S3 requires them.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.endpoint_url(endpoint.clone());
        }
        Ok(S3Backend {
            client: Client::from_conf(builder.build()),
            cfg,
        })
    }

    /// Builds the client and prepares the bucket: checks that it can be reached, creates it when
    /// it is missing (and `cfg.create_bucket`), then writes, reads back and deletes a probe.
    /// Every failure names the bucket and endpoint.
    pub async fn connect(cfg: S3Config) -> Result<S3Backend, BackendError> {
        let backend = S3Backend::new(cfg).await?;
        backend.prepare().await?;
        Ok(backend)
    }

    /// The configuration.
    pub fn config(&self) -> &S3Config {
        &self.cfg
    }

    /// The start-up step of [`S3Backend::connect`].
    pub async fn prepare(&self) -> Result<(), BackendError> {
        let where_ = self.cfg.describe();
        match self
            .client
            .head_bucket()
            .bucket(&self.cfg.bucket)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) => match map_sdk_error("HeadBucket", &self.cfg.bucket, e) {
                BackendError::NotFound(_) if self.cfg.create_bucket => {
                    match self
                        .client
                        .create_bucket()
                        .bucket(&self.cfg.bucket)
                        .send()
                        .await
                    {
                        Ok(_) => tracing::info!(backend = %where_, "created the backend bucket"),
                        Err(e) => {
                            let code = e.code().map(str::to_string);
                            if !matches!(
                                code.as_deref(),
                                Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                            ) {
                                let e = map_sdk_error("CreateBucket", &self.cfg.bucket, e);
                                return Err(e.context(&format!(
                                    "cannot create the backend bucket of {where_}"
                                )));
                            }
                        }
                    }
                }
                BackendError::NotFound(_) => {
                    return Err(BackendError::Config(format!(
                        "the backend bucket of {where_} does not exist"
                    )));
                }
                e => {
                    let what = match e {
                        BackendError::Unavailable(_) | BackendError::Io(_) => "cannot reach",
                        _ => "cannot use",
                    };
                    return Err(e.context(&format!("{what} the backend {where_}")));
                }
            },
        }
        probe(self).await.map_err(|e| {
            e.context(&format!(
                "backend {where_} failed the write/read/delete probe"
            ))
        })
    }

    /// Keys under this backend's prefix that have multipart uploads in progress (neither
    /// completed nor aborted). A put aborts its upload on every error, so outside of running puts
    /// this is empty unless the process died mid-upload (a bucket lifecycle rule
    /// `AbortIncompleteMultipartUpload` cleans those up).
    pub async fn pending_uploads(&self) -> Result<Vec<String>, BackendError> {
        let prefix = if self.cfg.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.cfg.prefix)
        };
        let mut keys = Vec::new();
        let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
        loop {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(&self.cfg.bucket)
                .prefix(prefix.clone())
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take())
                .send()
                .await
                .map_err(|e| map_sdk_error("ListMultipartUploads", &self.cfg.bucket, e))?;
            keys.extend(
                out.uploads
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|u| u.key),
            );
            if out.is_truncated != Some(true) || out.next_key_marker.is_none() {
                break;
            }
            key_marker = out.next_key_marker;
            id_marker = out.next_upload_id_marker;
        }
        Ok(keys)
    }

    async fn put_single(&self, key: &str, data: Bytes) -> Result<(), BackendError> {
        let len = data.len();
        self.client
            .put_object()
            .bucket(&self.cfg.bucket)
            .key(key)
            .content_length(i64::try_from(len).unwrap_or(i64::MAX))
            .body(aws_sdk_s3::primitives::ByteStream::from(data))
            .send()
            .await
            .map_err(|e| map_sdk_error("PutObject", key, e))?;
        Ok(())
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        data: Bytes,
    ) -> Result<CompletedPart, BackendError> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.cfg.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(i64::try_from(data.len()).unwrap_or(i64::MAX))
            .body(aws_sdk_s3::primitives::ByteStream::from(data))
            .send()
            .await
            .map_err(|e| map_sdk_error("UploadPart", key, e))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(out.e_tag)
            .build())
    }

    /// The multipart path of `put`: `first` is already read, `carry`/`eof` continue the body.
    async fn put_multipart(
        &self,
        key: &str,
        first: Bytes,
        mut body: ByteStream,
        mut carry: Bytes,
        mut eof: bool,
        size_hint: Option<u64>,
    ) -> Result<u64, BackendError> {
        let upload_id = self.create_upload(key).await?;
        let mut guard = AbortGuard {
            client: self.client.clone(),
            bucket: self.cfg.bucket.clone(),
            key: key.to_string(),
            upload_id: Some(upload_id.clone()),
        };
        let result = async {
            let mut total = first.len() as u64;
            let mut parts = Vec::new();
            let mut current = first;
            let mut number = 1i32;
            loop {
                if number > MAX_PARTS {
                    return Err(BackendError::Config(format!(
                        "object {key} needs more than {MAX_PARTS} parts of {} bytes",
                        self.cfg.part_size
                    )));
                }
                // Upload this part while the next one is read: two parts in memory at most.
                let upload = self.upload_part(key, &upload_id, number, current);
                let next = async {
                    if eof {
                        Ok(Bytes::new())
                    } else {
                        fill(&mut body, &mut carry, &mut eof, self.cfg.part_size).await
                    }
                };
                let (part, next) = tokio::try_join!(upload, next)?;
                parts.push(part);
                total += next.len() as u64;
                check_len(total, size_hint, eof)?;
                if next.is_empty() {
                    break;
                }
                current = next;
                number += 1;
            }
            self.complete_upload(key, &upload_id, parts).await?;
            Ok(total)
        }
        .await;
        guard.upload_id = None;
        if result.is_err() {
            self.abort_upload(key, &upload_id).await;
        }
        result
    }

    /// Starts a multipart upload of `key`; its upload id.
    async fn create_upload(&self, key: &str) -> Result<String, BackendError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| map_sdk_error("CreateMultipartUpload", key, e))?;
        created.upload_id.ok_or_else(|| {
            BackendError::Refused(format!(
                "CreateMultipartUpload {key}: no upload id in the answer"
            ))
        })
    }

    /// Completes the multipart upload of `key` with `parts`.
    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> Result<(), BackendError> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| map_sdk_error("CompleteMultipartUpload", key, e))?;
        Ok(())
    }

    /// Aborts a failed multipart upload of `key` (a failure to abort is logged, not returned:
    /// the upload's own error is the one the caller sees).
    async fn abort_upload(&self, key: &str, upload_id: &str) {
        if let Err(e) = self
            .client
            .abort_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            tracing::warn!(key, error = %DisplayErrorContext(&e), "aborting a failed multipart upload failed");
        }
    }
}

fn parse_content_range_total(v: &str) -> Option<u64> {
    v.rsplit_once('/')
        .and_then(|(_, total)| total.trim().parse().ok())
}

#[async_trait]
impl Backend for S3Backend {
    fn name(&self) -> &str {
        "s3"
    }

    async fn put(
        &self,
        id: &str,
        body: ByteStream,
        size_hint: Option<u64>,
    ) -> Result<u64, BackendError> {
        validate_id(id)?;
        let key = self.cfg.key_of(id);
        let mut body = body;
        let mut carry = Bytes::new();
        let mut eof = false;
        let first = fill(&mut body, &mut carry, &mut eof, self.cfg.part_size).await?;
        let total = first.len() as u64;
        check_len(total, size_hint, eof)?;
        if eof {
            self.put_single(&key, first).await?;
            return Ok(total);
        }
        self.put_multipart(&key, first, body, carry, eof, size_hint)
            .await
    }

    async fn get(&self, id: &str, range: Option<Range<u64>>) -> Result<ByteStream, BackendError> {
        validate_id(id)?;
        let key = self.cfg.key_of(id);
        if let Some(r) = &range {
            if r.start > r.end {
                return Err(BackendError::InvalidRange(format!(
                    "range {}..{} is reversed",
                    r.start, r.end
                )));
            }
            if r.start == r.end {
                let info = self.head(id).await?;
                if r.end > info.size {
                    return Err(BackendError::InvalidRange(format!(
                        "range {}..{} is outside object {id} of {} bytes",
                        r.start, r.end, info.size
                    )));
                }
                return Ok(futures::stream::empty().boxed());
            }
        }
        let mut req = self.client.get_object().bucket(&self.cfg.bucket).key(&key);
        if let Some(r) = &range {
            req = req.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        let out = req.send().await.map_err(|e| {
            let invalid_range = e.code() == Some("InvalidRange")
                || e.raw_response().is_some_and(|r| r.status().as_u16() == 416);
            if invalid_range {
                BackendError::InvalidRange(format!("range outside object {id}"))
            } else {
                map_sdk_error("GetObject", &key, e)
            }
        })?;
        let expected = match &range {
            Some(r) => {
                let total = out
                    .content_range
                    .as_deref()
                    .and_then(parse_content_range_total);
                match total {
                    Some(total) if total >= r.end => {}
                    Some(total) => {
                        return Err(BackendError::InvalidRange(format!(
                            "range {}..{} is outside object {id} of {total} bytes",
                            r.start, r.end
                        )));
                    }
                    None => {
                        return Err(BackendError::Refused(format!(
                            "GetObject {key}: no Content-Range in a ranged answer"
                        )));
                    }
                }
                r.end - r.start
            }
            None => out
                .content_length
                .and_then(|l| u64::try_from(l).ok())
                .unwrap_or(u64::MAX),
        };
        let body = out.body;
        let stream = futures::stream::unfold(body, |mut body| async move {
            body.next()
                .await
                .map(|item| (item.map_err(std::io::Error::other), body))
        })
        .boxed();
        if expected == u64::MAX {
            return Ok(stream);
        }
        Ok(counted(stream, expected, format!("s3 object {key}")))
    }

    async fn head(&self, id: &str) -> Result<ObjectInfo, BackendError> {
        validate_id(id)?;
        let key = self.cfg.key_of(id);
        let out = self
            .client
            .head_object()
            .bucket(&self.cfg.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| map_sdk_error("HeadObject", &key, e))?;
        Ok(ObjectInfo {
            id: id.to_string(),
            size: out
                .content_length
                .and_then(|l| u64::try_from(l).ok())
                .unwrap_or(0),
            modified_ms: out
                .last_modified
                .and_then(|t| t.to_millis().ok())
                .unwrap_or(0),
        })
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        validate_id(id)?;
        let key = self.cfg.key_of(id);
        match self
            .client
            .delete_object()
            .bucket(&self.cfg.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match map_sdk_error("DeleteObject", &key, e) {
                BackendError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn list(
        &self,
    ) -> Result<BoxStream<'static, Result<ObjectInfo, BackendError>>, BackendError> {
        let prefix = if self.cfg.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.cfg.prefix)
        };
        let pages = self
            .client
            .list_objects_v2()
            .bucket(&self.cfg.bucket)
            .prefix(prefix.clone())
            .into_paginator()
            .send();
        let bucket = self.cfg.bucket.clone();
        let stream = futures::stream::unfold((pages, false), move |(mut pages, failed)| {
            let prefix = prefix.clone();
            let bucket = bucket.clone();
            async move {
                if failed {
                    return None;
                }
                let page = pages.next().await?;
                match page {
                    Err(e) => Some((
                        vec![Err(map_sdk_error("ListObjectsV2", &bucket, e))],
                        (pages, true),
                    )),
                    Ok(page) => {
                        let items = page
                            .contents
                            .unwrap_or_default()
                            .into_iter()
                            .filter_map(|o| {
                                let id = o.key.as_deref()?.strip_prefix(&prefix)?;
                                validate_id(id).ok()?;
                                Some(Ok(ObjectInfo {
                                    id: id.to_string(),
                                    size: o.size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                                    modified_ms: o
                                        .last_modified
                                        .and_then(|t| t.to_millis().ok())
                                        .unwrap_or(0),
                                }))
                            })
                            .collect::<Vec<_>>();
                        Some((items, (pages, false)))
                    }
                }
            }
        })
        .flat_map(futures::stream::iter)
        .boxed();
        Ok(stream)
    }

    async fn check(&self) -> Result<(), BackendError> {
        probe(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_defaults_and_refuse_nonsense() {
        let c = S3Config::from_url(
            "s3://my-bucket/a/b/?endpoint=http://127.0.0.1:8333/&region=eu-west-1",
        )
        .unwrap();
        assert_eq!(c.bucket, "my-bucket");
        assert_eq!(c.prefix, "a/b");
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(c.region, "eu-west-1");
        assert!(
            c.path_style,
            "an endpoint implies path style unless told otherwise"
        );
        assert_eq!(c.key_of("abcd"), "a/b/abcd");

        let c = S3Config::from_url("s3://bucket").unwrap();
        assert_eq!(
            (c.prefix.as_str(), c.region.as_str(), c.path_style),
            ("", "us-east-1", false)
        );
        assert_eq!(c.key_of("abcd"), "abcd");
        let c =
            S3Config::from_url("s3://bucket?endpoint=http%3A%2F%2Fh%3A1&path_style=false").unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://h:1"));
        assert!(!c.path_style);

        for bad in [
            "s3://",
            "s3://Upper",
            "s3://ab",
            "s3://-bucket",
            "s3://bucket?endpoint=ftp://x",
            "s3://bucket?secret=x",
            "s3://bucket?path_style=maybe",
            "file:///x",
        ] {
            assert!(
                matches!(S3Config::from_url(bad), Err(BackendError::Config(_))),
                "accepted {bad}"
            );
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let s = BackendSecret::new("very-secret-value");
        let creds = S3Credentials {
            access_key: "AKID".into(),
            secret_key: s.clone(),
        };
        assert!(!format!("{creds:?}").contains("very-secret"));
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.expose(), "very-secret-value");
    }

    fn stream_of(chunks: Vec<std::io::Result<Bytes>>) -> ByteStream {
        futures::stream::iter(chunks).boxed()
    }

    #[tokio::test]
    async fn fill_splits_chunks_into_exact_parts_and_sees_eof() {
        let data: Vec<u8> = (0..250u32).map(|i| (i % 251) as u8).collect();
        let chunks = data
            .chunks(7)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let mut body = stream_of(chunks);
        let (mut carry, mut eof) = (Bytes::new(), false);
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        while !eof {
            let part = fill(&mut body, &mut carry, &mut eof, 100).await.unwrap();
            sizes.push(part.len());
            out.extend_from_slice(&part);
        }
        assert_eq!(sizes, vec![100, 100, 50]);
        assert_eq!(out, data);

        // A body of exactly one part is seen as ended after the first fill.
        let mut body = stream_of(vec![Ok(Bytes::from(vec![1u8; 100]))]);
        let (mut carry, mut eof) = (Bytes::new(), false);
        assert_eq!(
            fill(&mut body, &mut carry, &mut eof, 100)
                .await
                .unwrap()
                .len(),
            100
        );
        assert!(eof);

        // Errors of the body come through as Io.
        let mut body = stream_of(vec![
            Ok(Bytes::from_static(b"ab")),
            Err(std::io::Error::other("gone")),
        ]);
        let (mut carry, mut eof) = (Bytes::new(), false);
        assert!(matches!(
            fill(&mut body, &mut carry, &mut eof, 100).await,
            Err(BackendError::Io(_))
        ));
    }

    #[tokio::test]
    async fn counted_streams_fail_when_short_or_long() {
        let short = counted(
            stream_of(vec![Ok(Bytes::from_static(b"abc"))]),
            5,
            "x".into(),
        );
        let items: Vec<_> = short.collect().await;
        assert!(items.last().unwrap().as_ref().is_err());
        let long = counted(
            stream_of(vec![Ok(Bytes::from_static(b"abcdef"))]),
            5,
            "x".into(),
        );
        let items: Vec<_> = long.collect().await;
        assert!(items.last().unwrap().as_ref().is_err());
        let exact = counted(
            stream_of(vec![
                Ok(Bytes::from_static(b"ab")),
                Ok(Bytes::from_static(b"cde")),
            ]),
            5,
            "x".into(),
        );
        let items: Vec<_> = exact.collect().await;
        assert_eq!(items.len(), 2);
        assert!(items.iter().all(|i| i.is_ok()));
    }

    #[test]
    fn sdk_errors_map_to_backend_errors() {
        use aws_sdk_s3::config::http::HttpResponse;
        use aws_sdk_s3::error::{ConnectorError, ErrorMetadata};
        use aws_sdk_s3::operation::get_object::GetObjectError;
        use aws_sdk_s3::primitives::SdkBody;

        fn service(code: Option<&str>, status: u16) -> BackendError {
            let mut meta = ErrorMetadata::builder().message("m");
            if let Some(code) = code {
                meta = meta.code(code);
            }
            let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::empty());
            let e = SdkError::service_error(GetObjectError::generic(meta.build()), raw);
            map_sdk_error("GetObject", "objects/abcd", e)
        }
        assert!(matches!(
            service(Some("NoSuchKey"), 404),
            BackendError::NotFound(_)
        ));
        assert!(matches!(service(None, 404), BackendError::NotFound(_)));
        assert!(matches!(
            service(Some("SlowDown"), 503),
            BackendError::Unavailable(_)
        ));
        assert!(matches!(
            service(Some("SlowDown"), 200),
            BackendError::Unavailable(_)
        ));
        assert!(matches!(
            service(Some("InternalError"), 500),
            BackendError::Unavailable(_)
        ));
        assert!(matches!(service(None, 502), BackendError::Unavailable(_)));
        assert!(matches!(service(None, 429), BackendError::Unavailable(_)));
        assert!(matches!(
            service(Some("AccessDenied"), 403),
            BackendError::Denied(_)
        ));
        assert!(matches!(
            service(Some("NoSuchBucket"), 404),
            BackendError::Config(_)
        ));
        assert!(matches!(
            service(Some("InvalidArgument"), 400),
            BackendError::Refused(_)
        ));

        let timeout: SdkError<GetObjectError, HttpResponse> = SdkError::timeout_error("slow");
        assert!(matches!(
            map_sdk_error("GetObject", "k", timeout),
            BackendError::Unavailable(_)
        ));
        let refused = ConnectorError::io(Box::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        let refused: SdkError<GetObjectError, HttpResponse> = SdkError::dispatch_failure(refused);
        assert!(matches!(
            map_sdk_error("GetObject", "k", refused),
            BackendError::Unavailable(_)
        ));
        let other = ConnectorError::other("no credentials".into(), None);
        let other: SdkError<GetObjectError, HttpResponse> = SdkError::dispatch_failure(other);
        assert!(matches!(
            map_sdk_error("GetObject", "k", other),
            BackendError::Config(_)
        ));
    }

    #[test]
    fn length_checks() {
        assert!(check_len(5, Some(5), true).is_ok());
        assert!(check_len(4, Some(5), false).is_ok());
        assert!(check_len(4, Some(5), true).is_err());
        assert!(check_len(6, Some(5), false).is_err());
        assert!(check_len(6, None, true).is_ok());
        assert_eq!(parse_content_range_total("bytes 0-9/100"), Some(100));
        assert_eq!(parse_content_range_total("bytes 0-9/*"), None);
    }
}
