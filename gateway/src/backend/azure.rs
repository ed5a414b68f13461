//! The Azure Blob backend: sealed objects as block blobs `<prefix>/<id>` in one container, through
//! the `object_store` crate (shared-key or SAS authorization; Azurite for tests).
//!
//! URL: `azure://container[/prefix]?account=NAME&endpoint=URL[&use_emulator=true]`.
//! The credential is passed in ([`AzureConfig::credential`]); [`super::open_backend`] takes it from
//! `VAULTGATE_AZURE_ACCOUNT_KEY`, else `VAULTGATE_AZURE_SAS`, else
//! `VAULTGATE_AZURE_CONNECTION_STRING` (`AccountName`, `AccountKey`, `SharedAccessSignature`,
//! `BlobEndpoint`, `UseDevelopmentStorage=true`). `use_emulator=true` means Azurite: account
//! `devstoreaccount1` and its well-known key unless given, endpoint `http://127.0.0.1:10000`
//! unless given, and the account name appended to an endpoint that has no path
//! (Azurite's path-style URLs).
//!
//! Writes: a body that ends within the first [`AzureConfig::part_size`] bytes (16 MiB) is one
//! Put Blob; longer or unknown-size bodies are staged as blocks (object_store's `put_multipart`)
//! while the next block is read, so at most two blocks are in memory, and committed with one Put
//! Block List at the end. Until that commit nothing is visible under the id; on any error the
//! upload is aborted (Azure garbage-collects uncommitted blocks). Reads stream (ranges with a
//! `Range` header). object_store retries connection errors, timeouts and 5xx with exponential
//! backoff (100 ms doubling up to 15 s, with jitter); we allow 4 retries within 60 s.
//! Error mapping: 404 → `NotFound`; connection errors, timeouts, 5xx, 429 → `Unavailable`;
//! everything else `Other`.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::azure::{
    AzureAccessKey, AzureAuthorizer, AzureCredential, MicrosoftAzure, MicrosoftAzureBuilder,
};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequestBody, ReqwestConnector,
};
use object_store::path::Path as StorePath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload,
    RetryConfig,
};

use super::s3::{BackendSecret, DEFAULT_PART_SIZE, MAX_PART_SIZE, parse_bool, probe};
use super::{Backend, BackendError, ByteStream, ObjectInfo, validate_id};

/// Azurite's account name.
pub const EMULATOR_ACCOUNT: &str = "devstoreaccount1";
/// Azurite's well-known account key (public, documented by Microsoft; not a secret).
pub const EMULATOR_ACCOUNT_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Smallest block size used for staged uploads.
pub const MIN_BLOCK_SIZE: usize = 1024 * 1024;
/// Azure's limit on the number of blocks of a block blob.
const MAX_BLOCKS: usize = 50_000;

/// How the backend authenticates.
#[derive(Clone, Debug)]
pub enum AzureAuth {
    /// Shared key (account key, base64).
    AccountKey(BackendSecret),
    /// A SAS token (query string, with or without the leading `?`).
    Sas(BackendSecret),
}

/// Everything needed to reach one container (and prefix) of an Azure storage account.
#[derive(Clone, Debug)]
pub struct AzureConfig {
    /// Container name.
    pub container: String,
    /// Blob name prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
    /// Storage account name.
    pub account: String,
    /// Blob service endpoint including the account path for Azurite
    /// (`http://127.0.0.1:10000/devstoreaccount1`); default `https://<account>.blob.core.windows.net`.
    pub endpoint: Option<String>,
    /// Azurite defaults (see the module documentation).
    pub use_emulator: bool,
    /// The credential; `None` is only valid with `use_emulator`.
    pub credential: Option<AzureAuth>,
    /// Block size of staged uploads, and the largest body sent as one Put Blob.
    pub part_size: usize,
    /// Create the container at start-up when it does not exist.
    pub create_container: bool,
}

impl AzureConfig {
    /// Parses `azure://container[/prefix]?account=NAME&endpoint=URL&use_emulator=true`.
    /// The credential is not part of the URL: set [`AzureConfig::credential`] (or use
    /// [`AzureConfig::with_credential_env`]).
    pub fn from_url(url: &str) -> Result<AzureConfig, BackendError> {
        let super::RemoteUrl {
            container,
            prefix,
            params,
        } = super::RemoteUrl::parse(url, "azure")?;
        validate_container_name(&container)?;
        validate_prefix(&prefix)?;
        let mut cfg = AzureConfig {
            container,
            prefix,
            account: String::new(),
            endpoint: None,
            use_emulator: false,
            credential: None,
            part_size: DEFAULT_PART_SIZE,
            create_container: true,
        };
        for (k, v) in params {
            match k.as_str() {
                "account" => cfg.account = v,
                "endpoint" => cfg.endpoint = Some(super::endpoint_param("azure", &v)?),
                "use_emulator" => cfg.use_emulator = parse_bool("use_emulator", &v)?,
                other => {
                    return Err(BackendError::Config(format!(
                        "unknown azure backend URL parameter {other:?} (known: account, endpoint, use_emulator)"
                    )));
                }
            }
        }
        if cfg.account.is_empty() && cfg.use_emulator {
            cfg.account = EMULATOR_ACCOUNT.to_string();
        }
        Ok(cfg)
    }

    /// Fills in the credential from `lookup` (an environment): `VAULTGATE_AZURE_ACCOUNT_KEY`, else
    /// `VAULTGATE_AZURE_SAS`, else `VAULTGATE_AZURE_CONNECTION_STRING` (which may also name the
    /// account and endpoint when the URL does not).
    pub fn with_credential_env(
        mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<AzureConfig, BackendError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        if let Some(key) = get("VAULTGATE_AZURE_ACCOUNT_KEY") {
            self.credential = Some(AzureAuth::AccountKey(BackendSecret::new(key.trim())));
        } else if let Some(sas) = get("VAULTGATE_AZURE_SAS") {
            self.credential = Some(AzureAuth::Sas(BackendSecret::new(sas.trim())));
        } else if let Some(cs) = get("VAULTGATE_AZURE_CONNECTION_STRING") {
            let cs = BackendSecret::new(cs);
            self.apply_connection_string(cs.expose())?;
        }
        Ok(self)
    }

    /// Takes account, key or SAS and endpoint from an Azure storage connection string; values
    /// already set by the URL win for account and endpoint.
    pub fn apply_connection_string(&mut self, cs: &str) -> Result<(), BackendError> {
        let mut found_credential = false;
        for item in cs.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let Some((k, v)) = item.split_once('=') else {
                return Err(BackendError::Config(
                    "azure connection string has an item without '='".into(),
                ));
            };
            match k.to_ascii_lowercase().as_str() {
                "accountname" if self.account.is_empty() => self.account = v.to_string(),
                "accountkey" => {
                    self.credential = Some(AzureAuth::AccountKey(BackendSecret::new(v)));
                    found_credential = true;
                }
                "sharedaccesssignature" => {
                    self.credential = Some(AzureAuth::Sas(BackendSecret::new(v)));
                    found_credential = true;
                }
                "blobendpoint" if self.endpoint.is_none() => {
                    self.endpoint = Some(v.trim_end_matches('/').to_string());
                }
                "usedevelopmentstorage" => {
                    self.use_emulator = parse_bool("UseDevelopmentStorage", v)?
                }
                _ => {}
            }
        }
        if self.account.is_empty() && self.use_emulator {
            self.account = EMULATOR_ACCOUNT.to_string();
        }
        if !found_credential && !self.use_emulator {
            return Err(BackendError::Config(
                "azure connection string has neither AccountKey nor SharedAccessSignature".into(),
            ));
        }
        Ok(())
    }

    /// The service URL the blobs live under (account path included for Azurite).
    fn service_url(&self) -> String {
        match &self.endpoint {
            Some(e) if self.use_emulator && url_path_is_empty(e) => format!("{e}/{}", self.account),
            Some(e) => e.clone(),
            None if self.use_emulator => format!("http://127.0.0.1:10000/{}", self.account),
            None => format!("https://{}.blob.core.windows.net", self.account),
        }
    }

    /// The object_store credential.
    fn store_credential(&self) -> Result<AzureCredential, BackendError> {
        match &self.credential {
            Some(AzureAuth::AccountKey(k)) => AzureAccessKey::try_new(k.expose())
                .map(AzureCredential::AccessKey)
                .map_err(|_| {
                    BackendError::Config("the azure account key is not valid base64".into())
                }),
            Some(AzureAuth::Sas(sas)) => {
                let pairs = object_store::azure::split_sas(sas.expose().trim_start_matches('?'))
                    .map_err(|_| BackendError::Config("the azure SAS token is malformed".into()))?;
                Ok(AzureCredential::SASToken(pairs))
            }
            None if self.use_emulator => AzureAccessKey::try_new(EMULATOR_ACCOUNT_KEY)
                .map(AzureCredential::AccessKey)
                .map_err(|e| BackendError::Config(format!("emulator key: {e}"))),
            None => Err(BackendError::Config(format!(
                "no credential for azure account {:?}: set VAULTGATE_AZURE_ACCOUNT_KEY, VAULTGATE_AZURE_SAS \
                 or VAULTGATE_AZURE_CONNECTION_STRING",
                self.account
            ))),
        }
    }

    /// Where this config points, for messages (never includes credentials).
    pub fn describe(&self) -> String {
        let mut s = format!("azure://{}", self.container);
        if !self.prefix.is_empty() {
            s.push('/');
            s.push_str(&self.prefix);
        }
        format!("{s} at {}", self.service_url())
    }
}

fn url_path_is_empty(url: &str) -> bool {
    url.split_once("://")
        .is_none_or(|(_, rest)| !rest.contains('/'))
}

/// Checks an Azure container name (3–63 of `[a-z0-9-]`, starting with a letter or digit, no `--`).
pub fn validate_container_name(name: &str) -> Result<(), BackendError> {
    let ok = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(BackendError::Config(format!(
            "invalid azure container name {name:?}"
        )))
    }
}

fn validate_prefix(prefix: &str) -> Result<(), BackendError> {
    if prefix.is_empty() {
        return Ok(());
    }
    let bad = prefix
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..");
    if bad || StorePath::parse(prefix).is_err() {
        return Err(BackendError::Config(format!(
            "invalid azure backend prefix {prefix:?}"
        )));
    }
    Ok(())
}

/// True when a message in the error chain contains one of `needles`: object_store's retry
/// error carries the HTTP status only in its message, and its range check (`InvalidGetRange`)
/// is not public, so the message is the one stable thing to read.
fn chain_mentions(e: &(dyn std::error::Error + 'static), needles: &[&str]) -> bool {
    super::error_sources(e).any(|err| {
        let text = err.to_string();
        needles.iter().any(|n| text.contains(n))
    })
}

/// A range the object cannot satisfy: a 416 answer, or object_store's own check of it.
const RANGE_REFUSED: &[&str] = &["416", "Wanted range starting at"];
/// The backend refused the credentials.
const ACCESS_DENIED: &[&str] = &["status code: 401", "status code: 403"];

/// True when an error chain shows a transport failure or a 5xx/429 answer.
fn is_unavailable(e: &(dyn std::error::Error + 'static)) -> bool {
    for err in super::error_sources(e) {
        if let Some(http) = err.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            );
        }
        // object_store's retry error is not nameable; its message carries the status.
        let text = err.to_string();
        if let Some(idx) = text.find("status code: ") {
            let code = text[idx + "status code: ".len()..].get(..3).unwrap_or("");
            return code.starts_with('5') || code == "429";
        }
    }
    false
}

/// Maps an object_store error of `op` on `what`.
fn map_store_error(op: &str, what: &str, e: object_store::Error) -> BackendError {
    match e {
        object_store::Error::NotFound { .. } => BackendError::NotFound(what.to_string()),
        e @ (object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. }) => {
            BackendError::Denied(format!("{op} {what}: {e}"))
        }
        other => {
            let detail = format!("{op} {what}: {other}");
            if is_unavailable(&other) {
                BackendError::Unavailable(detail)
            } else if chain_mentions(&other, ACCESS_DENIED) {
                BackendError::Denied(detail)
            } else {
                BackendError::Refused(detail)
            }
        }
    }
}

/// An Azure Blob container (and prefix) as a [`Backend`].
#[derive(Clone)]
pub struct AzureBackend {
    store: Arc<MicrosoftAzure>,
    http: HttpClient,
    credential: Arc<AzureCredential>,
    service: String,
    cfg: AzureConfig,
}

impl std::fmt::Debug for AzureBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureBackend")
            .field("container", &self.cfg.container)
            .field("prefix", &self.cfg.prefix)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl AzureBackend {
    /// Builds the client (no network traffic yet).
    pub fn new(cfg: AzureConfig) -> Result<AzureBackend, BackendError> {
        validate_container_name(&cfg.container)?;
        validate_prefix(&cfg.prefix)?;
        if cfg.account.is_empty() {
            return Err(BackendError::Config(
                "azure backend URL needs account=NAME".into(),
            ));
        }
        if !(MIN_BLOCK_SIZE..=MAX_PART_SIZE).contains(&cfg.part_size) {
            return Err(BackendError::Config(format!(
                "azure backend block size {} is outside {MIN_BLOCK_SIZE}..={MAX_PART_SIZE}",
                cfg.part_size
            )));
        }
        let credential = cfg.store_credential()?;
        let service = cfg.service_url();
        let allow_http = service.starts_with("http://");
        let options = ClientOptions::new()
            .with_allow_http(allow_http)
            .with_connect_timeout(Duration::from_secs(10));
        // Always object_store's non-emulator mode with an explicit endpoint: its emulator mode
        // ignores the endpoint (it reads AZURITE_BLOB_STORAGE_URL) and we want any port.
        let store = MicrosoftAzureBuilder::new()
            .with_account(cfg.account.clone())
            .with_container_name(cfg.container.clone())
            .with_endpoint(service.clone())
            .with_client_options(options.clone())
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 4,
                retry_timeout: Duration::from_secs(60),
            })
            .with_credentials(Arc::new(object_store::StaticCredentialProvider::new(
                cfg.store_credential()?,
            )))
            .build()
            .map_err(|e| BackendError::Config(format!("azure backend {}: {e}", cfg.describe())))?;
        let http = ReqwestConnector::default()
            .connect(&options)
            .map_err(|e| BackendError::Config(format!("azure http client: {e}")))?;
        Ok(AzureBackend {
            store: Arc::new(store),
            http,
            credential: Arc::new(credential),
            service,
            cfg,
        })
    }

    /// Builds the client and prepares the container: checks that it can be reached, creates it
    /// when missing (and `cfg.create_container`), then writes, reads back and deletes a probe.
    pub async fn connect(cfg: AzureConfig) -> Result<AzureBackend, BackendError> {
        let backend = AzureBackend::new(cfg)?;
        backend.prepare().await?;
        Ok(backend)
    }

    /// The configuration.
    pub fn config(&self) -> &AzureConfig {
        &self.cfg
    }

    /// One signed container-level request (`restype=container`); returns the status.
    async fn container_request(&self, method: http::Method) -> Result<u16, BackendError> {
        let url = format!("{}/{}?restype=container", self.service, self.cfg.container);
        let mut req = http::Request::builder()
            .method(method.clone())
            .uri(url)
            .header(http::header::CONTENT_LENGTH, "0")
            .body(HttpRequestBody::empty())
            .map_err(|e| BackendError::Config(format!("container request: {e}")))?;
        AzureAuthorizer::new(&self.credential, &self.cfg.account)
            .try_authorize(&mut req)
            .map_err(|e| BackendError::Config(format!("signing a container request: {e}")))?;
        let resp = self.http.execute(req).await.map_err(|e| {
            BackendError::Unavailable(format!("{method} container {}: {e}", self.cfg.container))
        })?;
        Ok(resp.status().as_u16())
    }

    /// The start-up step of [`AzureBackend::connect`].
    pub async fn prepare(&self) -> Result<(), BackendError> {
        let where_ = self.cfg.describe();
        let ctx = |e: BackendError| match e {
            BackendError::Unavailable(m) => {
                BackendError::Unavailable(format!("cannot reach the backend {where_}: {m}"))
            }
            other => other,
        };
        let status = self
            .container_request(http::Method::HEAD)
            .await
            .map_err(ctx)?;
        match status {
            200..=299 => {}
            404 if self.cfg.create_container => {
                let status = self
                    .container_request(http::Method::PUT)
                    .await
                    .map_err(ctx)?;
                match status {
                    200..=299 => tracing::info!(backend = %where_, "created the backend container"),
                    409 => {} // created concurrently
                    s => {
                        return Err(BackendError::Refused(format!(
                            "cannot create the backend container of {where_}: HTTP {s}"
                        )));
                    }
                }
            }
            404 => {
                return Err(BackendError::Config(format!(
                    "the backend container of {where_} does not exist"
                )));
            }
            403 | 401 => {
                // A container-scoped SAS may not read container properties; the probe decides.
                tracing::debug!(backend = %where_, status, "container properties refused; probing objects");
            }
            s if s >= 500 || s == 429 => {
                return Err(BackendError::Unavailable(format!(
                    "backend {where_} answered HTTP {s}"
                )));
            }
            s => {
                return Err(BackendError::Refused(format!(
                    "backend {where_} answered HTTP {s}"
                )));
            }
        }
        probe(self).await.map_err(|e| {
            e.context(&format!(
                "backend {where_} failed the write/read/delete probe"
            ))
        })
    }

    fn path_of(&self, id: &str) -> Result<StorePath, BackendError> {
        validate_id(id)?;
        let full = if self.cfg.prefix.is_empty() {
            id.to_string()
        } else {
            format!("{}/{id}", self.cfg.prefix)
        };
        StorePath::parse(&full)
            .map_err(|e| BackendError::InvalidId(format!("blob path {full:?}: {e}")))
    }

    async fn put_staged(
        &self,
        path: &StorePath,
        first: Bytes,
        mut body: ByteStream,
        mut carry: Bytes,
        mut eof: bool,
        size_hint: Option<u64>,
    ) -> Result<u64, BackendError> {
        let what = path.to_string();
        let mut upload = self
            .store
            .put_multipart(path)
            .await
            .map_err(|e| map_store_error("PutMultipart", &what, e))?;
        let result = async {
            let mut total = first.len() as u64;
            let mut current = first;
            let mut blocks = 1usize;
            loop {
                if blocks > MAX_BLOCKS {
                    return Err(BackendError::Config(format!(
                        "blob {what} needs more than {MAX_BLOCKS} blocks of {} bytes",
                        self.cfg.part_size
                    )));
                }
                let staged = upload.put_part(PutPayload::from(current));
                let staged = async {
                    staged
                        .await
                        .map_err(|e| map_store_error("PutBlock", &what, e))
                };
                let next = async {
                    if eof {
                        Ok(Bytes::new())
                    } else {
                        super::s3::fill(&mut body, &mut carry, &mut eof, self.cfg.part_size).await
                    }
                };
                let ((), next) = tokio::try_join!(staged, next)?;
                total += next.len() as u64;
                super::s3::check_len(total, size_hint, eof)?;
                if next.is_empty() {
                    break;
                }
                current = next;
                blocks += 1;
            }
            upload
                .complete()
                .await
                .map_err(|e| map_store_error("PutBlockList", &what, e))?;
            Ok(total)
        }
        .await;
        if result.is_err()
            && let Err(e) = upload.abort().await
        {
            tracing::warn!(blob = %what, error = %e, "aborting a failed staged upload failed");
        }
        result
    }
}

#[async_trait]
impl Backend for AzureBackend {
    fn name(&self) -> &str {
        "azure"
    }

    async fn put(
        &self,
        id: &str,
        body: ByteStream,
        size_hint: Option<u64>,
    ) -> Result<u64, BackendError> {
        let path = self.path_of(id)?;
        let mut body = body;
        let mut carry = Bytes::new();
        let mut eof = false;
        let first = super::s3::fill(&mut body, &mut carry, &mut eof, self.cfg.part_size).await?;
        let total = first.len() as u64;
        super::s3::check_len(total, size_hint, eof)?;
        if eof {
            self.store
                .put(&path, PutPayload::from(first))
                .await
                .map_err(|e| map_store_error("PutBlob", path.as_ref(), e))?;
            return Ok(total);
        }
        self.put_staged(&path, first, body, carry, eof, size_hint)
            .await
    }

    async fn get(&self, id: &str, range: Option<Range<u64>>) -> Result<ByteStream, BackendError> {
        let path = self.path_of(id)?;
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
        let opts = GetOptions::new().with_range(range.clone().map(GetRange::Bounded));
        let result = self
            .store
            .get_opts(&path, opts)
            .await
            .map_err(|e| match e {
                object_store::Error::NotFound { .. } => BackendError::NotFound(id.to_string()),
                other if range.is_some() && chain_mentions(&other, RANGE_REFUSED) => {
                    BackendError::InvalidRange(format!("range outside object {id}"))
                }
                other => map_store_error("GetBlob", path.as_ref(), other),
            })?;
        if let Some(r) = &range
            && (result.meta.size < r.end || result.range != *r)
        {
            return Err(BackendError::InvalidRange(format!(
                "range {}..{} is outside object {id} of {} bytes",
                r.start, r.end, result.meta.size
            )));
        }
        let expected = result.range.end - result.range.start;
        let what = path.to_string();
        let stream = result
            .into_stream()
            .map(|item| item.map_err(|e| std::io::Error::other(e.to_string())))
            .boxed();
        Ok(super::s3::counted(
            stream,
            expected,
            format!("azure blob {what}"),
        ))
    }

    async fn head(&self, id: &str) -> Result<ObjectInfo, BackendError> {
        let path = self.path_of(id)?;
        let meta = self.store.head(&path).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => BackendError::NotFound(id.to_string()),
            other => map_store_error("GetBlobProperties", path.as_ref(), other),
        })?;
        Ok(ObjectInfo {
            id: id.to_string(),
            size: meta.size,
            modified_ms: meta.last_modified.timestamp_millis(),
        })
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        let path = self.path_of(id)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_store_error("DeleteBlob", path.as_ref(), e)),
        }
    }

    async fn list(
        &self,
    ) -> Result<BoxStream<'static, Result<ObjectInfo, BackendError>>, BackendError> {
        let prefix = if self.cfg.prefix.is_empty() {
            None
        } else {
            Some(
                StorePath::parse(&self.cfg.prefix)
                    .map_err(|e| BackendError::Config(format!("prefix: {e}")))?,
            )
        };
        let strip = if self.cfg.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.cfg.prefix)
        };
        let container = self.cfg.container.clone();
        let stream = self
            .store
            .list(prefix.as_ref())
            .filter_map(move |item| {
                let out = match item {
                    Err(e) => Some(Err(map_store_error("ListBlobs", &container, e))),
                    Ok(meta) => meta
                        .location
                        .as_ref()
                        .strip_prefix(strip.as_str())
                        .filter(|id| validate_id(id).is_ok())
                        .map(|id| {
                            Ok(ObjectInfo {
                                id: id.to_string(),
                                size: meta.size,
                                modified_ms: meta.last_modified.timestamp_millis(),
                            })
                        }),
                };
                futures::future::ready(out)
            })
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
    fn urls_parse_and_refuse_nonsense() {
        let c = AzureConfig::from_url(
            "azure://vault-objects/a/b?account=acct&endpoint=https://acct.example.net/",
        )
        .unwrap();
        assert_eq!(c.container, "vault-objects");
        assert_eq!(c.prefix, "a/b");
        assert_eq!(c.account, "acct");
        assert_eq!(c.service_url(), "https://acct.example.net");
        assert!(!c.use_emulator);

        let c = AzureConfig::from_url("azure://box?account=acct").unwrap();
        assert_eq!(c.service_url(), "https://acct.blob.core.windows.net");
        assert!(
            matches!(c.store_credential(), Err(BackendError::Config(_))),
            "no key, no emulator"
        );

        let c = AzureConfig::from_url(
            "azure://box?use_emulator=true&endpoint=http%3A%2F%2F127.0.0.1%3A1234",
        )
        .unwrap();
        assert_eq!(c.account, EMULATOR_ACCOUNT);
        assert_eq!(c.service_url(), "http://127.0.0.1:1234/devstoreaccount1");
        assert!(c.store_credential().is_ok());
        let c = AzureConfig::from_url("azure://box?use_emulator=true").unwrap();
        assert_eq!(c.service_url(), "http://127.0.0.1:10000/devstoreaccount1");

        for bad in [
            "azure://",
            "azure://Box",
            "azure://a--b",
            "azure://ok-name/../x",
            "azure://box?key=secret",
            "azure://box?endpoint=ftp://x",
            "azure://box?use_emulator=perhaps",
            "s3://box",
        ] {
            assert!(
                matches!(AzureConfig::from_url(bad), Err(BackendError::Config(_))),
                "accepted {bad}"
            );
        }
    }

    #[test]
    fn credentials_come_from_env_in_order_and_stay_redacted() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let base = AzureConfig::from_url("azure://box?account=acct").unwrap();
        let c = base
            .clone()
            .with_credential_env(env(&[
                ("VAULTGATE_AZURE_ACCOUNT_KEY", "a2V5"),
                ("VAULTGATE_AZURE_SAS", "sv=1"),
            ]))
            .unwrap();
        assert!(matches!(&c.credential, Some(AzureAuth::AccountKey(k)) if k.expose() == "a2V5"));
        assert!(!format!("{c:?}").contains("a2V5"));
        let c = base
            .clone()
            .with_credential_env(env(&[("VAULTGATE_AZURE_SAS", "?sv=1&sig=abc")]))
            .unwrap();
        assert!(matches!(&c.credential, Some(AzureAuth::Sas(_))));
        assert!(c.store_credential().is_ok());

        let c = AzureConfig::from_url("azure://box")
            .unwrap()
            .with_credential_env(env(&[(
                "VAULTGATE_AZURE_CONNECTION_STRING",
                "DefaultEndpointsProtocol=http;AccountName=other;AccountKey=c2VjcmV0;BlobEndpoint=http://h:1/other;",
            )]))
            .unwrap();
        assert_eq!(c.account, "other");
        assert_eq!(c.service_url(), "http://h:1/other");
        assert!(!format!("{c:?}").contains("c2VjcmV0"));

        let err = base
            .with_credential_env(env(&[(
                "VAULTGATE_AZURE_CONNECTION_STRING",
                "AccountName=x;BlobEndpoint=http://h",
            )]))
            .unwrap_err();
        assert!(err.to_string().contains("neither AccountKey"), "{err}");

        let mut c = AzureConfig::from_url("azure://box?account=acct").unwrap();
        c.credential = Some(AzureAuth::AccountKey(BackendSecret::new("not base64 !!")));
        let err = c.store_credential().unwrap_err();
        assert!(!err.to_string().contains("not base64 !!"), "{err}");
    }

    #[test]
    fn status_text_and_transport_errors_count_as_unavailable() {
        let e = std::io::Error::other(
            "Server returned non-2xx status code: 503 Service Unavailable: busy",
        );
        assert!(is_unavailable(&e));
        let e =
            std::io::Error::other("Server returned non-2xx status code: 429 Too Many Requests: ");
        assert!(is_unavailable(&e));
        let e = std::io::Error::other("Server returned non-2xx status code: 403 Forbidden: no");
        assert!(!is_unavailable(&e));
        let e = HttpError::new(HttpErrorKind::Connect, std::io::Error::other("refused"));
        assert!(is_unavailable(&e));
        let e = HttpError::new(HttpErrorKind::Decode, std::io::Error::other("junk"));
        assert!(!is_unavailable(&e));
    }
}
