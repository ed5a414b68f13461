//! Offline operations of the `vaultgate` binary: `migrate` (copy every sealed stream to another
//! backend without decrypting, verified and resumable, then switch), `reindex` (rebuild the
//! metadata index from the self-describing streams of a backend) and `import-hub` (re-seal a
//! directory of original hub blobs into a bucket). This file owns what they share: opening the
//! index, backend and keyring from a [`Config`] like `serve` does, whole-range reads and the
//! progress bar.
//!
//! Buckets that `reindex` and `import-hub` create are assigned to a tenant in the policy store
//! ([`bucket_tenant`]): the one named explicitly, else the tenant of the `--owner` principal, else
//! `default` (the bootstrap admin's tenant).
//!
//! These are offline operations: they hold the data dir's lock ([`crate::lock`]) and refuse to
//! run while a gateway serves the same data dir (docs/OPERATIONS.md). The gateway's start-up
//! sweep deletes backend objects no index row references, so a gateway running during a
//! reindex would delete what is being indexed.

pub mod import_hub;
pub mod keys;
pub mod migrate;
pub mod migrate_db;
pub mod reencrypt;
pub mod reindex;

use std::ops::Range;
use std::sync::Arc;

use ::keys::Keyring;
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};

use crate::backend::{Backend, open_backend};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::index::Index;

/// Index, backend and keyring opened from the configuration, as `serve` opens them.
#[derive(Clone)]
pub struct OpsContext {
    /// the metadata index
    pub index: Index,
    /// the configured backend
    pub backend: Arc<dyn Backend>,
    /// the configured backend's URL
    pub backend_url: String,
    /// bucket data keys (provider from the config)
    pub keyring: Keyring,
    /// the data dir (relative backend URLs, key file)
    pub data_dir: std::path::PathBuf,
    /// the data dir's lock, held exclusively while the command runs ([`crate::lock`])
    _lock: Arc<crate::lock::DataDirLock>,
}

impl std::fmt::Debug for OpsContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpsContext")
            .field("backend_url", &self.backend_url)
            .finish_non_exhaustive()
    }
}

impl OpsContext {
    /// Opens the index, the configured backend and the key provider named by `config`.
    pub async fn open(config: &Config) -> Result<OpsContext> {
        config.validate()?;
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            Error::Config(format!(
                "cannot create data dir {}: {e}",
                config.data_dir.display()
            ))
        })?;
        // never against a live gateway (its orphan sweep would delete what is being written)
        let lock = Arc::new(crate::lock::lock_data_dir(
            &config.data_dir,
            "an offline vaultgate command (migrate, migrate-db, reindex, import-hub, keys)",
        )?);
        let index = Index::open(&config.database_url())
            .await
            .map_err(|e| Error::Unavailable(format!("index: {e}")))?;
        let backend_url = config.backend_url();
        let backend = open_backend(&backend_url, &config.data_dir)
            .await
            .map_err(|e| Error::Unavailable(format!("backend {backend_url}: {e}")))?;
        self::keys::guard_key_file(config, &index).await?;
        // what a crash left only in the index reaches the backend before any command reads it
        crate::store::inline::write_back(
            &index,
            backend.as_ref(),
            crate::store::inline::PassEnd::Drained,
        )
        .await?;
        let provider = ::keys::provider_from_config(&config.key_config()).await?;
        let keyring = Keyring::new(
            provider,
            Arc::new(index.clone()),
            ::keys::CacheConfig::default(),
        );
        Ok(OpsContext {
            index,
            backend,
            backend_url,
            keyring,
            data_dir: config.data_dir.clone(),
            _lock: lock,
        })
    }

    /// Closes the index and, once the last clone is gone, releases the data dir's lock.
    pub async fn close(self) {
        self.index.close().await;
    }
}

/// The policy store in the index's database (its tables are created if this index has none).
pub async fn policy_store(index: &Index, keyring: &Keyring) -> Result<policy::PolicyStore> {
    Ok(policy::PolicyStore::new(index.write_pool().clone(), Arc::new(keyring.clone())).await?)
}

/// The tenant that buckets created by an offline operation belong to: `explicit` when given
/// (created in the policy store if it does not exist yet, e.g. in a rebuilt index), else the
/// tenant of the principal `owner`, else [`policy::grants::DEFAULT_TENANT`] (the bootstrap
/// admin's tenant).
pub async fn bucket_tenant(
    policy: &policy::PolicyStore,
    owner: &str,
    explicit: Option<&str>,
) -> Result<String> {
    if let Some(t) = explicit {
        policy::store::validate_name("tenant", t)?;
        if !policy.list_tenants().await?.iter().any(|x| x.name == t) {
            match policy.create_tenant(t).await {
                Ok(_) | Err(policy::Error::Conflict(_)) => {}
                Err(e) => return Err(e.into()),
            }
            tracing::info!(tenant = t, "tenant created for the imported buckets");
        }
        return Ok(t.to_owned());
    }
    Ok(match policy.get_principal(owner).await? {
        Some(p) => p.tenant,
        None => policy::grants::DEFAULT_TENANT.to_owned(),
    })
}

/// Reads `range` (or the whole object) of a backend object into memory (headers, trailers,
/// manifests: small reads only).
pub async fn read_bytes(
    backend: &dyn Backend,
    id: &str,
    range: Option<Range<u64>>,
) -> Result<Vec<u8>> {
    collect_bytes(backend.get(id, range).await?, id).await
}

/// The whole of a byte stream read from storage (`what` names it in the error).
pub async fn collect_bytes(stream: crate::backend::ByteStream, what: &str) -> Result<Vec<u8>> {
    let chunks: Vec<bytes::Bytes> = stream
        .try_collect()
        .await
        .map_err(|e| Error::Unavailable(format!("backend read of {what}: {e}")))?;
    Ok(chunks.concat())
}

/// The progress bar being drawn, if any: [`LogWriter`] suspends it around each log line.
static ACTIVE_BAR: std::sync::Mutex<Option<indicatif::WeakProgressBar>> =
    std::sync::Mutex::new(None);

/// Where stderr is not a terminal (no bar is drawn), a progress line is logged this often.
const PLAIN_PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Makes `pb` the bar log lines are written above, and where stderr is not a terminal logs its
/// progress every [`PLAIN_PROGRESS_EVERY`] instead of drawing it (until it is finished or gone).
fn track(pb: &ProgressBar, what: &str, bytes: bool) {
    use std::io::IsTerminal;
    if let Ok(mut g) = ACTIVE_BAR.lock() {
        *g = Some(pb.downgrade());
    }
    if std::io::stderr().is_terminal() {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let weak = pb.downgrade();
    let what = what.to_owned();
    rt.spawn(async move {
        loop {
            tokio::time::sleep(PLAIN_PROGRESS_EVERY).await;
            let Some(pb) = weak.upgrade() else { return };
            if pb.is_finished() {
                return;
            }
            tracing::info!(target: "vaultgate::progress", "{}", plain_progress(&pb, &what, bytes));
        }
    });
}

/// One progress line: done/of, percent, rate, time left.
fn plain_progress(pb: &ProgressBar, what: &str, bytes: bool) -> String {
    use indicatif::{HumanBytes, HumanDuration};
    let (pos, len) = (pb.position(), pb.length().unwrap_or(0));
    let pct = (pos * 100).checked_div(len).unwrap_or(0);
    let rate = pb.per_sec();
    let (done, total, rate) = if bytes {
        (
            HumanBytes(pos).to_string(),
            HumanBytes(len).to_string(),
            format!("{}/s", HumanBytes(rate as u64)),
        )
    } else {
        (pos.to_string(), len.to_string(), format!("{rate:.1}/s"))
    };
    format!(
        "{what}: {done} of {total} ({pct}%), {rate}, ETA {}",
        HumanDuration(pb.eta())
    )
}

/// Log output that goes above the progress bar being drawn (the bar is cleared, the line
/// written, the bar redrawn) instead of into its middle. `vaultgate`'s logger writes through
/// it.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ACTIVE_BAR
            .lock()
            .ok()
            .and_then(|g| g.as_ref().and_then(indicatif::WeakProgressBar::upgrade))
            .filter(|b| !b.is_finished() && !b.is_hidden());
        match bar {
            Some(b) => b
                .suspend(|| std::io::stderr().write_all(buf))
                .map(|()| buf.len()),
            None => std::io::stderr().write_all(buf).map(|()| buf.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// A progress bar on stderr counting items, with the rate and the time left: drawn only on a
/// terminal (log lines go above it, [`LogWriter`]); elsewhere a progress line is logged every
/// few seconds; nothing when `quiet`.
pub fn progress_bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    let template = format!(
        "{what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}} ETA {{eta}} {{msg}} ({{elapsed}})"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        pb.set_style(style.progress_chars("=> "));
    }
    track(&pb, what, false);
    pb
}

/// A progress bar on stderr counting bytes, with the rate and the time left (as
/// [`progress_bar`]).
pub fn bytes_progress_bar(len: u64, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    let template = format!(
        "{what} [{{bar:30}}] {{bytes}}/{{total_bytes}} {{binary_bytes_per_sec}} ETA {{eta}} {{msg}}"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        pb.set_style(style.progress_chars("=> "));
    }
    track(&pb, what, true);
    pb
}
