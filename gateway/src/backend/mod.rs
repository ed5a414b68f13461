//! Storage backends: the [`Backend`] trait every store of sealed bytes implements (local disk now,
//! S3 and Azure later), its error type, opaque backend ids and [`open_backend`], which turns a
//! backend URL (`file:///abs/path`) into a backend.
//!
//! Backends only ever see ciphertext under opaque ids; encryption lives in the object layer above.
//! Garbage collection over a backend and the metadata index lives in [`crate::index::gc`].

pub mod azure;
pub mod local;
pub mod metered;
pub mod s3;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

pub use local::LocalBackend;

/// Puts in flight at once in the default [`Backend::put_batch`].
pub const PUT_BATCH_CONCURRENCY: usize = 8;

/// A stream of bytes going into or coming out of a backend.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// Errors of a storage backend.
#[derive(thiserror::Error, Debug)]
pub enum BackendError {
    /// No object under this id.
    #[error("backend object not found: {0}")]
    NotFound(String),
    /// The backend cannot be reached or refuses service for now (retry may help).
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// An I/O error while reading or writing (including an error from the body stream of a put).
    #[error("backend i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Not a backend id (ids come from `new_backend_id`, never from clients: defence in depth).
    #[error("invalid backend id: {0}")]
    InvalidId(String),
    /// The backend URL, its parameters, its credentials or its bucket/container are wrong: the
    /// operator's configuration must change.
    #[error("backend configuration: {0}")]
    Config(String),
    /// The backend refused the configured credentials (HTTP 401/403).
    #[error("backend access denied: {0}")]
    Denied(String),
    /// A body longer or shorter than the length declared for it.
    #[error("backend size mismatch: {0}")]
    SizeMismatch(String),
    /// A byte range outside the stored object (or reversed).
    #[error("backend range: {0}")]
    InvalidRange(String),
    /// The backend answered with an error not named above, or an answer that breaks its protocol.
    #[error("backend refused the request: {0}")]
    Refused(String),
}

impl BackendError {
    /// The same error with `context` before its message; a missing object in a step that
    /// needed it (a probe, a multipart step) is `Refused`, an i/o error `Unavailable`.
    pub fn context(self, context: &str) -> BackendError {
        match self {
            BackendError::NotFound(m) => {
                BackendError::Refused(format!("{context}: not found: {m}"))
            }
            BackendError::Unavailable(m) => BackendError::Unavailable(format!("{context}: {m}")),
            BackendError::Io(e) => BackendError::Unavailable(format!("{context}: {e}")),
            BackendError::InvalidId(m) => BackendError::InvalidId(format!("{context}: {m}")),
            BackendError::Config(m) => BackendError::Config(format!("{context}: {m}")),
            BackendError::Denied(m) => BackendError::Denied(format!("{context}: {m}")),
            BackendError::SizeMismatch(m) => BackendError::SizeMismatch(format!("{context}: {m}")),
            BackendError::InvalidRange(m) => BackendError::InvalidRange(format!("{context}: {m}")),
            BackendError::Refused(m) => BackendError::Refused(format!("{context}: {m}")),
        }
    }
}

/// What a backend knows about one stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The opaque id the object was stored under.
    pub id: String,
    /// Size in bytes (of the stored, sealed bytes).
    pub size: u64,
    /// Last modification time, milliseconds since the Unix epoch.
    pub modified_ms: i64,
}

/// A store of opaque, immutable blobs addressed by id.
#[async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// Short name of the backend kind: "file", "s3", "azure".
    fn name(&self) -> &str;
    /// Stores the whole stream under `id`, atomically: after Ok the object is complete and durable,
    /// after Err (including an Err item from `body`) nothing is visible under `id`.
    /// `size_hint`, when given, is the exact number of bytes `body` yields; a body of another
    /// length makes the put fail. Returns the number of bytes stored.
    async fn put(
        &self,
        id: &str,
        body: ByteStream,
        size_hint: Option<u64>,
    ) -> Result<u64, BackendError>;
    /// Stores several small objects, each as [`Backend::put`] would (whole, under its id), and
    /// answers each one's outcome in order: after an Ok every one of them is durable. A backend
    /// may make them durable together (the local disk: one filesystem sync for the batch); the
    /// default stores them one by one, a few at a time.
    async fn put_batch(&self, items: Vec<(String, Bytes)>) -> Vec<Result<(), BackendError>> {
        use futures::StreamExt;
        futures::stream::iter(items)
            .map(|(id, data)| async move {
                let len = data.len() as u64;
                let body = futures::stream::once(async move { Ok(data) }).boxed();
                self.put(&id, body, Some(len)).await.map(|_| ())
            })
            .buffered(PUT_BATCH_CONCURRENCY)
            .collect()
            .await
    }
    /// Streams the object, or the byte range `start..end` of it. An empty range yields no bytes;
    /// a range that does not lie within the object is an error.
    async fn get(&self, id: &str, range: Option<Range<u64>>) -> Result<ByteStream, BackendError>;
    /// Size and modification time of one object.
    async fn head(&self, id: &str) -> Result<ObjectInfo, BackendError>;
    /// Deletes an object; idempotent (a missing object is Ok).
    async fn delete(&self, id: &str) -> Result<(), BackendError>;
    /// Lists every stored object (in no particular order).
    async fn list(
        &self,
    ) -> Result<BoxStream<'static, Result<ObjectInfo, BackendError>>, BackendError>;
    /// Readiness: can write, read back and delete a probe object.
    async fn check(&self) -> Result<(), BackendError>;
}

/// A fresh opaque backend id: 32 lower-case hex characters from 16 random bytes.
/// An error and its sources, outermost first (the chain both remote backends read to classify
/// and describe their clients' errors).
pub(crate) fn error_sources<'a>(
    e: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(e), |err| err.source())
}

/// An error and its sources as one line of their messages, each said once (the SDKs' own
/// renderings end with a kilobyte of `Debug` output).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    for err in error_sources(e) {
        let msg = err.to_string();
        let msg = msg.lines().next().unwrap_or_default().trim().to_owned();
        if !msg.is_empty() && !parts.iter().any(|p| p.contains(&msg)) {
            parts.push(msg);
        }
    }
    parts.join(": ")
}

/// A remote backend URL `SCHEME://container[/prefix]?name=value&…`, split and decoded: the
/// container (bucket) as written, the prefix percent-decoded without leading or trailing `/`,
/// the query form-decoded (`url::form_urlencoded`, as every query in the gateway is read).
pub(crate) struct RemoteUrl {
    pub container: String,
    pub prefix: String,
    pub params: Vec<(String, String)>,
}

impl RemoteUrl {
    /// Splits `url`, which must start with `scheme://`.
    pub(crate) fn parse(url: &str, scheme: &str) -> Result<RemoteUrl, BackendError> {
        let rest = url
            .trim()
            .strip_prefix(scheme)
            .and_then(|r| r.strip_prefix("://"))
            .ok_or_else(|| {
                BackendError::Config(format!("not a {scheme}:// backend URL: {url:?}"))
            })?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (container, prefix) = location.split_once('/').unwrap_or((location, ""));
        let prefix = urlencoding::decode(prefix)
            .map_err(|e| BackendError::Config(format!("backend URL is not valid UTF-8: {e}")))?
            .trim_matches('/')
            .to_string();
        let params = url::form_urlencoded::parse(query.as_bytes())
            .filter(|(k, _)| !k.is_empty())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Ok(RemoteUrl {
            container: container.to_string(),
            prefix,
            params,
        })
    }
}

/// The `endpoint` parameter of a `scheme` backend URL: an http(s) URL, without a trailing `/`.
pub(crate) fn endpoint_param(scheme: &str, v: &str) -> Result<String, BackendError> {
    if !(v.starts_with("http://") || v.starts_with("https://")) {
        return Err(BackendError::Config(format!(
            "{scheme} backend endpoint must be an http:// or https:// URL, got {v:?}"
        )));
    }
    Ok(v.trim_end_matches('/').to_string())
}

pub fn new_backend_id() -> String {
    let mut raw = [0u8; 16];
    if getrandom::fill(&mut raw).is_err() {
        // The OS random source failing is not something a client can cause; fall back to a
        // time-and-counter id so that ids stay unique rather than panicking.
        return fallback_id();
    }
    hex::encode(raw)
}

fn fallback_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mixed = (nanos as u64) ^ (u64::from(std::process::id()) << 40);
    format!("{mixed:016x}{count:016x}")
}

/// Longest id a backend accepts.
pub const MAX_ID_LEN: usize = 128;

/// Checks that `id` is a well-formed backend id: 4 to [`MAX_ID_LEN`] characters of `[0-9a-f.-]`,
/// the first four of them hex digits (they name the fan-out directories of the local backend).
/// This is defence in depth: ids come from [`new_backend_id`], never from clients.
pub fn validate_id(id: &str) -> Result<(), BackendError> {
    let ok_len = (4..=MAX_ID_LEN).contains(&id.len());
    let ok_chars = id
        .bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'.' || b == b'-');
    let ok_head = id.bytes().take(4).all(|b| b.is_ascii_hexdigit());
    if ok_len && ok_chars && ok_head {
        Ok(())
    } else {
        Err(BackendError::InvalidId(format!(
            "invalid backend id {id:?}"
        )))
    }
}

/// Opens the backend named by `url`.
///
/// - `file:///abs/path` (or `file://relative/path`, resolved against the working directory):
///   the local disk backend rooted there;
/// - an empty URL: the local disk backend in `<data_dir>/objects` (the default).
///
/// - `s3://bucket[/prefix]?endpoint=URL&region=R&path_style=true`: an S3-compatible bucket
///   ([`s3::S3Backend`]), credentials from `VAULTGATE_BACKEND_ACCESS_KEY` /
///   `VAULTGATE_BACKEND_SECRET_KEY` if both are set, else the standard AWS chain;
/// - `azure://container[/prefix]?account=NAME&endpoint=URL[&use_emulator=true]`: an Azure Blob
///   container ([`azure::AzureBackend`]), credential from `VAULTGATE_AZURE_ACCOUNT_KEY`, else
///   `VAULTGATE_AZURE_SAS`, else `VAULTGATE_AZURE_CONNECTION_STRING`.
///
/// Remote backends are prepared before they are returned: the bucket/container is created when
/// missing, then a probe object is written, read back and deleted; an unreachable or read-only
/// backend is an error naming it. Any other scheme is `BackendError::Config` naming the scheme.
pub async fn open_backend(url: &str, data_dir: &Path) -> Result<Arc<dyn Backend>, BackendError> {
    let url = url.trim();
    if url.is_empty() {
        let backend = LocalBackend::open(data_dir.join("objects")).await?;
        return Ok(Arc::new(backend));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(BackendError::Config(format!(
            "backend URL {url:?} has no scheme (expected file:///path)"
        )));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "file" => {
            let path = file_url_path(rest)?;
            let backend = LocalBackend::open(path).await?;
            Ok(Arc::new(backend))
        }
        "s3" => {
            let mut cfg = s3::S3Config::from_url(url)?;
            let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
            // the secret may also be a systemd credential or a _FILE file (config::secret_var)
            let secret = crate::config::secret_var("VAULTGATE_BACKEND_SECRET_KEY")
                .map_err(|e| BackendError::Config(e.to_string()))?;
            if let (Some(access_key), Some(secret)) = (env("VAULTGATE_BACKEND_ACCESS_KEY"), secret)
            {
                cfg.credentials = Some(s3::S3Credentials {
                    access_key,
                    secret_key: s3::BackendSecret::new(secret.expose()),
                });
            }
            Ok(Arc::new(s3::S3Backend::connect(cfg).await?))
        }
        "azure" => {
            let cfg = azure::AzureConfig::from_url(url)?.with_credential_env(|k| match k {
                "VAULTGATE_AZURE_ACCOUNT_KEY" => crate::config::secret_var(k)
                    .ok()
                    .flatten()
                    .map(|s| s.expose().to_owned()),
                _ => std::env::var(k).ok(),
            })?;
            Ok(Arc::new(azure::AzureBackend::connect(cfg).await?))
        }
        other => Err(BackendError::Config(format!(
            "unsupported backend scheme {other:?} in {url:?} (supported: file, s3, azure)"
        ))),
    }
}

/// The filesystem path of the part of a `file://` URL after the scheme.
fn file_url_path(rest: &str) -> Result<PathBuf, BackendError> {
    // `file://localhost/abs` is the same as `file:///abs`.
    let rest = rest
        .strip_prefix("localhost")
        .filter(|r| r.starts_with('/'))
        .unwrap_or(rest);
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    if rest.is_empty() {
        return Err(BackendError::Config(
            "file:// backend URL has no path".into(),
        ));
    }
    let decoded = urlencoding::decode(rest).map_err(|e| {
        BackendError::Config(format!("file:// backend URL is not valid UTF-8: {e}"))
    })?;
    Ok(PathBuf::from(decoded.into_owned()))
}

/// Milliseconds since the Unix epoch of a filesystem time (0 if unknown or before 1970).
pub(crate) fn system_time_ms(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_ids_are_32_hex_and_distinct() {
        let a = new_backend_id();
        let b = new_backend_id();
        assert_eq!(a.len(), 32);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
        assert!(validate_id(&a).is_ok());
        assert_eq!(fallback_id().len(), 32);
        assert!(validate_id(&fallback_id()).is_ok());
    }

    #[test]
    fn id_validation_rejects_path_tricks() {
        for bad in [
            "",
            "abc",
            "../x",
            "ab/cd",
            "ab..",
            "..ab0000",
            "ABCD1234",
            "abcd/../../etc",
            "abcd\0",
            "abcdé",
            ".tmp",
            "abcg0000",
        ] {
            assert!(
                matches!(validate_id(bad), Err(BackendError::InvalidId(_))),
                "accepted {bad:?}"
            );
        }
        assert!(validate_id(&"a".repeat(MAX_ID_LEN + 1)).is_err());
        for good in ["abcd", "0123456789abcdef-0001", "abcd.ef-0001", "ffff.-.-"] {
            assert!(validate_id(good).is_ok(), "rejected {good:?}");
        }
    }

    #[test]
    fn file_urls_map_to_paths() {
        assert_eq!(
            file_url_path("/abs/path").unwrap(),
            PathBuf::from("/abs/path")
        );
        assert_eq!(
            file_url_path("localhost/abs").unwrap(),
            PathBuf::from("/abs")
        );
        assert_eq!(file_url_path("/a%20b?x=1").unwrap(), PathBuf::from("/a b"));
        assert_eq!(
            file_url_path("./data/objects").unwrap(),
            PathBuf::from("./data/objects")
        );
        assert!(file_url_path("").is_err());
    }

    #[tokio::test]
    async fn unknown_scheme_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        for url in ["gopher://x", "s3x://bucket", "no-scheme"] {
            match open_backend(url, dir.path()).await {
                Err(BackendError::Config(msg)) => assert!(msg.contains("scheme"), "{msg}"),
                other => panic!("{url}: unexpected {other:?}"),
            }
        }
        let b = open_backend("", dir.path()).await.unwrap();
        assert_eq!(b.name(), "file");
        assert!(dir.path().join("objects").is_dir());
    }
}
