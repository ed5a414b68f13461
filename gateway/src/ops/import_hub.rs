//! `vaultgate import-hub --bucket B DIR`: imports a directory of blobs in the original hub format
//! (bare `[nonce 12][len 4 BE][ct ‖ tag]` records under the hex `BLOB_KEY`) into bucket B,
//! re-sealed in the Vaultgate format. Each file's path relative to DIR (with `/` separators)
//! becomes its object key. Every record is authenticated while it streams into the sealer; a blob
//! that fails (tampered, truncated, wrong key) leaves nothing behind — the backend put is atomic
//! and the index commit never happens — and is named in the report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use keys::sealer::SealParams;
use keys::{DEFAULT_CHUNK_SIZE, HubKey, StreamKind};
use tokio::io::AsyncReadExt;

use super::{OpsContext, bytes_progress_bar};
use crate::error::{Error, Result};
use crate::index::{IndexError, ObjectRecord};
use crate::metrics::Metrics;
use crate::store::{Store, now_ms};

/// Options of an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// destination bucket (created if missing)
    pub bucket: String,
    /// owner of the bucket when it is created
    pub owner: String,
    /// no progress bar
    pub quiet: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// files found
    pub total: usize,
    /// imported object keys
    pub imported: Vec<String>,
    /// plaintext bytes imported
    pub bytes: u64,
    /// files skipped (relative path, reason): failed authentication, unreadable, bad name
    pub failed: Vec<(String, String)>,
}

impl ImportReport {
    /// Human summary.
    pub fn summary(&self, bucket: &str) -> String {
        let mut s = format!(
            "import-hub: {} files, {} imported into bucket {bucket} ({} bytes), {} skipped",
            self.total,
            self.imported.len(),
            self.bytes,
            self.failed.len()
        );
        for (name, why) in &self.failed {
            s.push_str(&format!("\n  skipped: {name}: {why}"));
        }
        s
    }
}

/// Reads the hub key from a file holding 64 hex characters (whitespace ignored).
pub fn hub_key_from_file(path: &Path) -> Result<HubKey> {
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("cannot read key file {}: {e}", path.display())))?,
    );
    Ok(HubKey::from_hex(text.trim())?)
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| Error::Config(format!("cannot read directory {}: {e}", dir.display())))?;
    for entry in rd {
        let entry = entry
            .map_err(|e| Error::Config(format!("cannot read directory {}: {e}", dir.display())))?;
        let ft = entry
            .file_type()
            .map_err(|e| Error::Config(format!("{}: {e}", entry.path().display())))?;
        if ft.is_dir() {
            collect_files(&entry.path(), out)?;
        } else if ft.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

fn object_key(root: &Path, path: &Path) -> std::result::Result<String, String> {
    let rel = path.strip_prefix(root).map_err(|e| e.to_string())?;
    let mut parts = Vec::new();
    for c in rel.components() {
        match c.as_os_str().to_str() {
            Some(s) => parts.push(s.to_owned()),
            None => return Err("file name is not UTF-8".into()),
        }
    }
    let key = parts.join("/");
    if key.is_empty() || key.len() > 1024 {
        return Err(format!("object key of {} bytes", key.len()));
    }
    Ok(key)
}

/// A file as a stream of 256 KiB chunks.
fn file_stream(
    file: tokio::fs::File,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    futures::stream::unfold(Some(file), |f| async move {
        let mut f = f?;
        let mut buf = BytesMut::with_capacity(256 * 1024);
        match f.read_buf(&mut buf).await {
            Ok(0) => None,
            Ok(_) => Some((Ok(buf.freeze()), Some(f))),
            Err(e) => Some((Err(e), None)),
        }
    })
}

async fn import_one(
    store: &Store,
    key: &HubKey,
    bucket: &str,
    name: &str,
    path: &Path,
) -> Result<u64> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::Config(format!("cannot open: {e}")))?;
    let plain = keys::open_hub_blob(key, file_stream(file));
    let skey = store.keyring().sealing_key(bucket).await?;
    let now = now_ms();
    let mut object_id = [0u8; 16];
    getrandom::fill(&mut object_id).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    let meta = keys::ObjectMeta {
        bucket: bucket.to_owned(),
        key: name.to_owned(),
        last_modified_ms: now,
        ..Default::default()
    };
    let params = SealParams {
        bucket: bucket.to_owned(),
        kind: StreamKind::Object,
        object_id,
        part_number: 0,
        chunk_size: DEFAULT_CHUNK_SIZE,
        checksums: Default::default(),
        meta: Some(meta),
    };
    // the object layer names input failures as a client body ending early; here the input is
    // the hub blob, whose records failed to open
    let sealed = match store
        .seal_into_backend(&skey, params, plain.boxed(), None)
        .await
    {
        Ok(s) => s,
        Err(Error::IncompleteBody(m)) => {
            let why = m.strip_prefix("request body ended early: ").unwrap_or(&m);
            return Err(Error::Integrity(format!("hub blob rejected: {why}")));
        }
        Err(e) => return Err(e),
    };
    let rec = ObjectRecord::single_stream(
        bucket,
        name,
        now,
        BTreeMap::new(),
        BTreeMap::new(),
        &skey,
        &sealed,
        &crate::store::NewVersion::null(),
    );
    store.commit(&rec).await?;
    Ok(rec.size)
}

/// Imports every file under `dir` into `opts.bucket`; a bucket it creates belongs to the tenant
/// of `opts.owner` (or `default`).
pub async fn import_hub(
    ctx: &OpsContext,
    key: &HubKey,
    dir: &Path,
    opts: &ImportOptions,
) -> Result<ImportReport> {
    import_hub_into(ctx, key, dir, opts, None).await
}

/// [`import_hub`] for tenant `tenant`: a bucket the import creates is assigned to it; an existing
/// bucket must already belong to it (`None`: a new bucket gets the tenant of `opts.owner`, else
/// `default`, and an existing bucket keeps its tenant).
pub async fn import_hub_into(
    ctx: &OpsContext,
    key: &HubKey,
    dir: &Path,
    opts: &ImportOptions,
    tenant: Option<&str>,
) -> Result<ImportReport> {
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.sort();
    let policy = super::policy_store(&ctx.index, &ctx.keyring).await?;
    let owner_tenant = super::bucket_tenant(&policy, &opts.owner, tenant).await?;
    match ctx
        .index
        .create_bucket_in_tenant(&opts.bucket, &opts.owner, &owner_tenant, false)
        .await
    {
        Ok(()) => {}
        Err(IndexError::AlreadyExists(_)) => {
            let current = policy.bucket_tenant(&opts.bucket).await?;
            if tenant.is_some_and(|t| t != current) {
                return Err(Error::Config(format!(
                    "bucket {} belongs to tenant {current}, not {owner_tenant}",
                    opts.bucket
                )));
            }
        }
        Err(e) => return Err(e.into()),
    }
    let store = Store::new(
        ctx.backend.clone(),
        ctx.index.clone(),
        ctx.keyring.clone(),
        Metrics::new(),
    );
    let mut report = ImportReport {
        total: files.len(),
        ..Default::default()
    };
    let size_of = |p: &std::path::Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let pb = bytes_progress_bar(
        files.iter().map(|p| size_of(p)).sum(),
        "import-hub",
        opts.quiet,
    );
    for path in &files {
        let file_len = size_of(path);
        let shown = path
            .strip_prefix(dir)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned();
        let name = match object_key(dir, path) {
            Ok(n) => n,
            Err(why) => {
                report.failed.push((shown, why));
                pb.inc(file_len);
                continue;
            }
        };
        pb.set_message(name.clone());
        match import_one(&store, key, &opts.bucket, &name, path).await {
            Ok(n) => {
                report.bytes += n;
                report.imported.push(name);
            }
            Err(e @ Error::Unavailable(_)) => {
                pb.abandon();
                return Err(e);
            }
            Err(e) => report.failed.push((name, e.to_string())),
        }
        pb.inc(file_len);
    }
    pb.finish_and_clear();
    Ok(report)
}
