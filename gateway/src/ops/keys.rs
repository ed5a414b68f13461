//! Key management of the gateway: the custody checks at start ([`guard_key_file`],
//! [`check_custody_at_start`]), the provider state `/ready` reports ([`provider_report`]) and the
//! operations behind `vaultgate keys` and the admin API's `/admin/v1/kek…` routes: [`status`],
//! [`rotate`], [`rewrap`] and [`retire`]. They work on a [`Keyring`] over the index, so the same
//! code runs offline (the binary opens the data dir) and online (the admin API of a running
//! gateway, which serves traffic meanwhile: rewrapping changes only the index's copy of each
//! wrapped data key, never object data).

use std::collections::BTreeMap;

use keys::{Custody, KeyProvider, Keyring, ProviderState};
use serde::Serialize;
use sqlx::Row;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::index::Index;

/// A refused key operation (the caller's mistake: 404/409 on the admin API) or a failure.
#[derive(Debug, thiserror::Error)]
pub enum KeyOpError {
    /// Not allowed in this state (the message says what to do first).
    #[error("{0}")]
    Refused(String),
    /// No such KEK.
    #[error("{0}")]
    NotFound(String),
    /// The index, the provider or the key file failed.
    #[error(transparent)]
    Failed(#[from] Error),
}

impl From<keys::Error> for KeyOpError {
    fn from(e: keys::Error) -> Self {
        KeyOpError::Failed(e.into())
    }
}

/// Where the provider looks for its KEKs, naming the setting a master key came from.
pub fn provider_location(config: &Config, provider: &dyn KeyProvider) -> String {
    if provider.kind() == "env"
        && let Some((_, source)) = config
            .secret_sources
            .iter()
            .find(|(n, _)| n == "master_key")
    {
        return format!("the master key from {source}");
    }
    provider.location()
}

/// Refuses to let the key file provider generate a new master key next to existing data: with
/// no master key and no KMS configured, a missing `<data_dir>/master.key` is an error when the
/// index holds data keys or buckets (a fresh key would open none of them).
pub async fn guard_key_file(config: &Config, index: &Index) -> Result<()> {
    let kc = config.key_config();
    let path = config.data_dir.join(keys::KEY_FILE_NAME);
    if kc.master_key_hex.is_some() || kc.kms_url.is_some() || path.exists() {
        return Ok(());
    }
    let held = keys::DataKeyStore::list(index).await?;
    let buckets = index
        .bucket_count()
        .await
        .map_err(|e| Error::Unavailable(format!("index: {e}")))?;
    if held.is_empty() && buckets == 0 {
        return Ok(());
    }
    let mut keks: Vec<&str> = held.iter().map(|k| k.kek_id.as_str()).collect();
    keks.sort_unstable();
    keks.dedup();
    Err(Error::Config(format!(
        "the key file {} is missing, but the index {} holds {} data keys ({} buckets) wrapped by KEK {}; \
         restore master.key from your backup (or set VAULTGATE_MASTER_KEY / VAULTGATE_KMS to the key \
         that wraps them): a new key would open none of this data, so none is generated",
        path.display(),
        crate::config::redact_url(&config.database_url()),
        held.len(),
        buckets,
        if keks.is_empty() {
            "(none yet)".to_owned()
        } else {
            keks.join(", ")
        }
    )))
}

/// Unwraps one data key per KEK the index depends on; refuses to start (one line naming the KEK,
/// its data keys and where the provider looked) when the provider cannot unwrap with one, or
/// when it refuses outright (e.g. a KMS key that does not exist). An unreachable KMS is not an
/// error here: the gateway starts not-ready and serves once it answers.
pub async fn check_custody_at_start(config: &Config, keyring: &Keyring) -> Result<()> {
    let report = keyring.check_custody().await?;
    let location = provider_location(config, keyring.provider().as_ref());
    let missing: Vec<String> = report
        .missing()
        .map(|(d, reason)| {
            format!(
                "KEK {} wraps {} data keys (buckets {}) but {location} cannot unwrap them ({reason})",
                d.kek_id,
                d.data_keys,
                d.buckets.join(", ")
            )
        })
        .collect();
    if !missing.is_empty() {
        return Err(Error::Config(format!(
            "key custody: {}; configure the key that wraps them (restore the key file, or set \
             VAULTGATE_MASTER_KEY / VAULTGATE_KMS)",
            missing.join("; ")
        )));
    }
    match &report.provider {
        ProviderState::Ready => Ok(()),
        ProviderState::Refused(reason) => Err(Error::Config(format!(
            "key custody: {location} refused: {reason}; check VAULTGATE_KMS and the KMS credentials"
        ))),
        ProviderState::Unreachable(reason) if report.keks.is_empty() => {
            Err(Error::Unavailable(format!(
                "key custody: {location} is unreachable ({reason}) and the index holds no data \
                 key yet: a new gateway needs its key provider to create its first keys; start \
                 again once it answers"
            )))
        }
        ProviderState::Unreachable(reason) => {
            tracing::warn!(
                provider = %location,
                error = %reason,
                kek_ids = ?report.keks.iter().map(|(d, _)| d.kek_id.as_str()).collect::<Vec<_>>(),
                "key provider unreachable at start: not ready until it answers"
            );
            Ok(())
        }
    }
}

/// One key provider's state for `/ready`.
#[derive(Debug, Clone, Serialize)]
pub struct ProviderReport {
    /// `file`, `env` or `aws-kms`
    pub kind: String,
    /// where it looks (a path, a setting, a KMS key)
    pub location: String,
    /// `ready`, `unreachable`, `refused` or `timeout`
    pub state: String,
    /// why it is not ready
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// buckets whose data keys are not cached (they answer 503 until the provider answers)
    pub uncached_buckets: Vec<String>,
    /// can the gateway serve every bucket right now (ready, or every data key cached)
    pub serving: bool,
}

/// Probes the provider and lists the buckets it would fail for (both within `timeout`).
pub async fn provider_report(keyring: &Keyring, timeout: std::time::Duration) -> ProviderReport {
    let provider = keyring.provider();
    // side by side, each bounded: a database that does not answer must not hold the report
    // (and /ready) past `timeout`, nor a KMS that does not
    let (probed, listed) = tokio::join!(
        tokio::time::timeout(timeout, provider.probe()),
        tokio::time::timeout(timeout, keyring.uncached_buckets()),
    );
    let state = probed.unwrap_or_else(|_| ProviderState::Unreachable("timed out".into()));
    let (uncached, store_error) = match listed {
        Ok(Ok(b)) => (b, None),
        Ok(Err(e)) => (Vec::new(), Some(e.to_string())),
        Err(_) => (Vec::new(), Some("key store: timed out".to_owned())),
    };
    let serving = match &state {
        ProviderState::Ready => true,
        ProviderState::Unreachable(_) => uncached.is_empty() && store_error.is_none(),
        ProviderState::Refused(_) => false,
    };
    ProviderReport {
        kind: provider.kind().to_owned(),
        location: provider.location(),
        state: state.name().to_owned(),
        error: state.reason().map(str::to_owned).or(store_error),
        uncached_buckets: if matches!(state, ProviderState::Ready) {
            Vec::new()
        } else {
            uncached
        },
        serving,
    }
}

/// A KEK in [`KeysStatus`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KekStatus {
    /// KEK id
    pub kek_id: String,
    /// version in the key file (0: KMS / a single given key; absent: not held by the provider)
    pub version: Option<u32>,
    /// new data keys are wrapped by it
    pub current: bool,
    /// the provider holds it
    pub held: bool,
    /// data keys in the index it wraps
    pub data_keys: usize,
    /// stored streams whose header carries a data key wrapped by it (a reindex needs it)
    pub stream_headers: u64,
}

/// A bucket data key version in [`KeysStatus`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DataKeyStatus {
    /// bucket
    pub bucket: String,
    /// the KMS key (ARN) the data key is bound to by SSE-KMS; empty: the provider's own key
    pub kms_key: String,
    /// data key version
    pub version: u32,
    /// data key id (hex)
    pub id: String,
    /// KEK wrapping it in the index
    pub kek_id: String,
    /// created, ms since the epoch
    pub created_ms: i64,
    /// object versions (and delete markers) sealed under it
    pub objects: u64,
    /// their plaintext bytes
    pub bytes: u64,
}

/// `vaultgate keys status` / `GET /admin/v1/kek`.
#[derive(Debug, Clone, Serialize)]
pub struct KeysStatus {
    /// the provider
    pub provider: ProviderReport,
    /// the KEKs the provider holds and those the index depends on
    pub keks: Vec<KekStatus>,
    /// every bucket data key version
    pub data_keys: Vec<DataKeyStatus>,
}

/// Objects and bytes per data key id, and stream headers per KEK id.
async fn usage(index: &Index) -> Result<(BTreeMap<String, (u64, u64)>, BTreeMap<String, u64>)> {
    let db = |e: sqlx::Error| Error::Unavailable(format!("index: {e}"));
    let mut per_key = BTreeMap::new();
    for r in sqlx::query(
        "SELECT data_key_id, COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes \
         FROM objects GROUP BY data_key_id",
    )
    .fetch_all(index.read_pool())
    .await
    .map_err(db)?
    {
        let id: String = r.try_get("data_key_id").map_err(db)?;
        let n: i64 = r.try_get("n").map_err(db)?;
        let bytes: i64 = r.try_get("bytes").map_err(db)?;
        per_key.insert(
            id,
            (
                u64::try_from(n).unwrap_or(0),
                u64::try_from(bytes).unwrap_or(0),
            ),
        );
    }
    let mut per_kek = BTreeMap::new();
    for r in sqlx::query("SELECT header FROM object_streams UNION ALL SELECT header FROM parts")
        .fetch_all(index.read_pool())
        .await
        .map_err(db)?
    {
        let h: Vec<u8> = r.try_get("header").map_err(db)?;
        match keys::Header::decode(&h) {
            Ok(h) => *per_kek.entry(h.kek_id().to_owned()).or_insert(0) += 1,
            Err(e) => tracing::warn!(error = %e, "undecodable stream header in the index"),
        }
    }
    Ok((per_key, per_kek))
}

/// Providers, KEKs (held, current, what depends on each) and every data key version with the
/// objects sealed under it.
pub async fn status(keyring: &Keyring, index: &Index) -> Result<KeysStatus> {
    let provider = provider_report(keyring, std::time::Duration::from_secs(5)).await;
    let report = keyring.check_custody().await?;
    let stored = keys::DataKeyStore::list(index).await?;
    let (per_key, per_kek) = usage(index).await?;
    let mut keks: Vec<KekStatus> = keyring
        .provider()
        .keks()
        .into_iter()
        .map(|(version, kek_id, current)| KekStatus {
            version: Some(version),
            current,
            held: true,
            data_keys: 0,
            stream_headers: per_kek.get(&kek_id).copied().unwrap_or(0),
            kek_id,
        })
        .collect();
    for (d, custody) in &report.keks {
        match keks.iter_mut().find(|k| k.kek_id == d.kek_id) {
            Some(k) => {
                k.data_keys = d.data_keys;
                k.held = !matches!(custody, Custody::Missing(_));
            }
            None => keks.push(KekStatus {
                kek_id: d.kek_id.clone(),
                version: None,
                current: false,
                held: matches!(custody, Custody::Held),
                data_keys: d.data_keys,
                stream_headers: per_kek.get(&d.kek_id).copied().unwrap_or(0),
            }),
        }
    }
    for (kek_id, n) in &per_kek {
        if !keks.iter().any(|k| &k.kek_id == kek_id) {
            keks.push(KekStatus {
                kek_id: kek_id.clone(),
                version: None,
                current: false,
                held: false,
                data_keys: 0,
                stream_headers: *n,
            });
        }
    }
    let data_keys = stored
        .into_iter()
        .map(|k| {
            let id = k.id.to_hex();
            let (objects, bytes) = per_key.get(&id).copied().unwrap_or((0, 0));
            DataKeyStatus {
                bucket: k.bucket,
                kms_key: k.kms_key,
                version: k.version,
                id,
                kek_id: k.kek_id,
                created_ms: k.created_ms,
                objects,
                bytes,
            }
        })
        .collect();
    Ok(KeysStatus {
        provider,
        keks,
        data_keys,
    })
}

/// Outcome of [`rotate`] / [`rewrap`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RewrapOutcome {
    /// the KEK new data keys are wrapped by (after a rotation: the new one)
    pub current_kek_id: String,
    /// data keys in the index
    pub total: usize,
    /// re-wrapped now
    pub rewrapped: usize,
    /// already wrapped by the current KEK (skipped)
    pub already_current: usize,
    /// data keys that failed (id, reason); run rewrap again
    pub failed: Vec<(String, String)>,
}

impl RewrapOutcome {
    /// One line for the CLI.
    pub fn summary(&self) -> String {
        format!(
            "rewrap: {} data keys, {} re-wrapped, {} already under KEK {}, {} failed",
            self.total,
            self.rewrapped,
            self.already_current,
            self.current_kek_id,
            self.failed.len()
        )
    }
}

/// Re-wraps every data key not yet wrapped by the current KEK (resumable: keys already current
/// are skipped). Object data is not touched; safe while the gateway serves.
pub async fn rewrap(keyring: &Keyring) -> Result<RewrapOutcome, KeyOpError> {
    let r = keyring.rewrap_all().await?;
    Ok(RewrapOutcome {
        current_kek_id: keyring.provider().current_kek_id(),
        total: r.total,
        rewrapped: r.rewrapped,
        already_current: r.already_current,
        failed: r
            .failed
            .into_iter()
            .map(|(id, e)| (id.to_hex(), e))
            .collect(),
    })
}

/// Adds a new KEK version to the key file and makes it current, then re-wraps every data key
/// under it. A given master key or a KMS key cannot rotate here: the error says how.
pub async fn rotate(keyring: &Keyring) -> Result<RewrapOutcome, KeyOpError> {
    check_rotate(keyring)?;
    let new = keyring.provider().rotate_kek().await?;
    tracing::info!(kek_id = %new, "KEK rotated; re-wrapping data keys");
    rewrap(keyring).await
}

/// Refuses [`rotate`] for a provider that does not rotate by itself, saying how it is rotated.
pub fn check_rotate(keyring: &Keyring) -> Result<(), KeyOpError> {
    match keyring.provider().kind() {
        "file" => {}
        "env" => {
            return Err(KeyOpError::Refused(
                "a given master key is rotated by configuration: set the new key as \
                 VAULTGATE_MASTER_KEY and the old one as VAULTGATE_MASTER_KEY_PREVIOUS, restart, \
                 then run `vaultgate keys rewrap` (docs/OPERATIONS.md)"
                    .into(),
            ));
        }
        _ => {
            return Err(KeyOpError::Refused(
                "an AWS KMS key is rotated in KMS: point the configured alias at a new key \
                 (aws kms update-alias), then run `vaultgate keys rewrap` (docs/OPERATIONS.md)"
                    .into(),
            ));
        }
    }
    Ok(())
}

/// Why [`retire`] refused, or what it did.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RetireOutcome {
    /// the KEK removed from the key file
    pub kek_id: String,
    /// stream headers that still carried it (accepted with `accept_header_copies`)
    pub stream_headers: u64,
}

/// Removes a non-current KEK version from the key file. Refused (a `Conflict` naming what
/// depends on it) while a data key in the index is wrapped by it, and while stored stream
/// headers carry a data key wrapped by it unless `accept_header_copies` (those copies are what
/// `vaultgate reindex` reads: after retiring, a reindex needs the KEK from a backup).
pub async fn retire(
    keyring: &Keyring,
    index: &Index,
    kek_id: &str,
    accept_header_copies: bool,
) -> Result<RetireOutcome, KeyOpError> {
    let headers = check_retire(keyring, index, kek_id, accept_header_copies).await?;
    keyring.provider().retire_kek(kek_id).await?;
    tracing::info!(kek_id, stream_headers = headers, "KEK retired");
    Ok(RetireOutcome {
        kek_id: kek_id.to_owned(),
        stream_headers: headers,
    })
}

/// The refusals of [`retire`], without retiring: the stream headers that carry the KEK.
pub async fn check_retire(
    keyring: &Keyring,
    index: &Index,
    kek_id: &str,
    accept_header_copies: bool,
) -> Result<u64, KeyOpError> {
    let provider = keyring.provider();
    let Some((_, _, current)) = provider.keks().into_iter().find(|(_, id, _)| id == kek_id) else {
        return Err(KeyOpError::NotFound(format!(
            "KEK {kek_id} is not in {}",
            provider.location()
        )));
    };
    if current {
        return Err(KeyOpError::Refused(format!(
            "KEK {kek_id} is the current KEK; run `vaultgate keys rotate` first"
        )));
    }
    let deps = keyring.kek_dependencies().await?;
    if let Some(d) = deps.iter().find(|d| d.kek_id == kek_id) {
        return Err(KeyOpError::Refused(format!(
            "KEK {kek_id} still wraps {} data keys (buckets {}); run `vaultgate keys rewrap` first",
            d.data_keys,
            d.buckets.join(", ")
        )));
    }
    let (_, per_kek) = usage(index).await?;
    let headers = per_kek.get(kek_id).copied().unwrap_or(0);
    if headers > 0 && !accept_header_copies {
        return Err(KeyOpError::Refused(format!(
            "{headers} stored streams carry a data key wrapped by KEK {kek_id} in their header \
             (what `vaultgate reindex` reads); keep a backup of the key file and retire with \
             --accept-header-copies, or keep the KEK"
        )));
    }
    Ok(headers)
}

/// File in the data dir holding the admin API's generated HS256 signing secret, sealed under the
/// gateway's secrets data key (so under the KEK); mode 0600.
pub const ADMIN_SECRET_FILE: &str = "admin-jwt.sealed";
const ADMIN_SECRET_CONTEXT: &str = "vaultgate/admin-jwt-secret";

fn write_private(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let cannot = |what: &str, e: std::io::Error| {
        Error::Config(format!("cannot {what} {}: {e}", path.display()))
    };
    let tmp = path.with_extension("sealed.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| cannot("write", e))?;
    f.write_all(bytes).map_err(|e| cannot("write", e))?;
    f.sync_all().map_err(|e| cannot("sync", e))?;
    std::fs::rename(&tmp, path).map_err(|e| cannot("replace", e))
}

/// A new random secret (64 hex characters), sealed into `<data_dir>/admin-jwt.sealed`.
async fn new_admin_secret(data_dir: &std::path::Path, keyring: &Keyring) -> Result<keys::Secret> {
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(&mut raw[..])
        .map_err(|e| Error::Internal(format!("OS random source failed: {e}")))?;
    let secret = keys::Secret::new(hex::encode(&raw[..]));
    let sealed = keyring
        .seal_blob(ADMIN_SECRET_CONTEXT, secret.expose().as_bytes())
        .await?;
    write_private(&data_dir.join(ADMIN_SECRET_FILE), &sealed)?;
    Ok(secret)
}

/// The admin API's signing secret kept across restarts: opened from
/// `<data_dir>/admin-jwt.sealed`, created on first use. A file others may read is refused; a
/// file that does not open (tampered, or sealed under another key) is an error, not replaced.
pub async fn admin_jwt_secret(
    data_dir: &std::path::Path,
    keyring: &Keyring,
) -> Result<keys::Secret> {
    use std::os::unix::fs::PermissionsExt;
    let path = data_dir.join(ADMIN_SECRET_FILE);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let s = new_admin_secret(data_dir, keyring).await?;
            tracing::info!(path = %path.display(), "generated the admin token signing secret (sealed, mode 0600)");
            return Ok(s);
        }
        Err(e) => {
            return Err(Error::Config(format!(
                "cannot read {}: {e}",
                path.display()
            )));
        }
    };
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Error::Config(format!(
            "{} is accessible by group/others; run chmod 600 on it",
            path.display()
        )));
    }
    let sealed = std::fs::read(&path)
        .map_err(|e| Error::Config(format!("cannot read {}: {e}", path.display())))?;
    let plain = keyring
        .open_blob(ADMIN_SECRET_CONTEXT, &sealed)
        .await
        .map_err(|e| match e {
            keys::Error::KeyUnavailable(m) => Error::Unavailable(format!("key unavailable: {m}")),
            other => Error::Config(format!(
                "{} does not open ({other}); restore it, or run `vaultgate keys rotate-admin-secret` \
                 (every admin token then has to log in again)",
                path.display()
            )),
        })?;
    let text = String::from_utf8(plain.to_vec())
        .map_err(|_| Error::Config(format!("{} holds no text secret", path.display())))?;
    Ok(keys::Secret::new(text))
}

/// Replaces the admin token signing secret kept in the data dir and returns the new one. Offline
/// (`vaultgate keys rotate-admin-secret`) it takes effect when the gateway starts (tokens signed
/// by the old one are refused, and `vaultgate admin` says to log in again); online (the admin
/// API's `POST /auth/signing-secret/rotate`) the running gateway signs with it at once.
pub async fn rotate_admin_jwt_secret(
    data_dir: &std::path::Path,
    keyring: &Keyring,
) -> Result<keys::Secret> {
    new_admin_secret(data_dir, keyring).await
}
