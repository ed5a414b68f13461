//! `vaultgate migrate --to URL`: copies every backend object the index references (object
//! streams, multipart manifests, parts of uploads in progress) from the configured backend to the
//! destination as opaque bytes (never decrypted), verifies each copy by reading it back from the
//! destination (size and SHA-256 equal to the bytes read from the source), records each verified
//! id in the index (`migrate_copied`), so an interrupted run resumes where it stopped, and only
//! when every id is verified records the destination as the backend holding the data
//! (`settings.backend_url`). The operator then sets `VAULTGATE_BACKEND` to the new URL; the
//! gateway refuses to start with any other backend.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::{OpsContext, progress_bar};
use crate::backend::{Backend, BackendError};
use crate::error::{Error, Result};
use crate::index::{Index, SETTING_BACKEND_URL};

/// Options of one migration run.
#[derive(Debug, Clone, Default)]
pub struct MigrateOptions {
    /// Stop (without switching) after copying this many objects in this run: the deterministic
    /// interruption used by the resume test (`--stop-after`).
    pub stop_after: Option<usize>,
    /// No progress bar.
    pub quiet: bool,
}

/// What a migration run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// referenced backend ids in the index
    pub total: usize,
    /// copied and verified in this run
    pub copied: usize,
    /// already verified by an earlier run (skipped)
    pub skipped: usize,
    /// ciphertext bytes copied in this run
    pub bytes: u64,
    /// ids that could not be copied or verified, with the reason
    pub failed: Vec<(String, String)>,
    /// true when the index now names the destination as the data's backend
    pub switched: bool,
}

impl MigrateReport {
    /// One-paragraph human summary.
    pub fn summary(&self, destination: &str) -> String {
        let mut s = format!(
            "migrate: {} objects referenced, {} copied and verified now ({} bytes), {} already verified, {} failed",
            self.total,
            self.copied,
            self.bytes,
            self.skipped,
            self.failed.len()
        );
        for (id, why) in &self.failed {
            s.push_str(&format!("\n  failed: {id}: {why}"));
        }
        if self.switched {
            s.push_str(&format!(
                "\nindex switched to the new backend; restart the gateway with\n  VAULTGATE_BACKEND={destination}"
            ));
        } else {
            s.push_str("\nindex NOT switched; rerun the same command to resume");
        }
        s
    }
}

/// Copies one backend object and verifies it; returns (size, sha256 hex).
async fn copy_one(src: &dyn Backend, dst: &dyn Backend, id: &str) -> Result<(u64, String)> {
    let info = src.head(id).await?;
    let hasher = Arc::new(Mutex::new(Sha256::new()));
    let h = hasher.clone();
    let body = src
        .get(id, None)
        .await?
        .map(move |r| {
            if let Ok(b) = &r
                && let Ok(mut g) = h.lock()
            {
                g.update(b);
            }
            r
        })
        .boxed();
    let stored = dst.put(id, body, Some(info.size)).await?;
    let src_sha = hasher
        .lock()
        .map_err(|_| Error::Internal("hasher poisoned".into()))?
        .clone()
        .finalize();
    if stored != info.size {
        return Err(Error::Integrity(format!(
            "destination stored {stored} bytes, source has {}",
            info.size
        )));
    }
    // read back from the destination
    let mut back = dst.get(id, None).await?;
    let mut dh = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = back.next().await {
        let chunk = chunk.map_err(|e| Error::Unavailable(format!("read back: {e}")))?;
        n += chunk.len() as u64;
        dh.update(&chunk);
    }
    let dst_sha = dh.finalize();
    if n != info.size || dst_sha != src_sha {
        return Err(Error::Integrity(format!(
            "read-back mismatch: {n} bytes sha256 {} vs source {} bytes sha256 {}",
            hex::encode(dst_sha),
            info.size,
            hex::encode(src_sha)
        )));
    }
    Ok((n, hex::encode(dst_sha)))
}

/// Migrates everything `index` references from `src` to `dst` (URL `dst_url`, the key of the
/// progress records and the value recorded on switch).
pub async fn migrate(
    index: &Index,
    src: &dyn Backend,
    src_url: &str,
    dst: &dyn Backend,
    dst_url: &str,
    opts: &MigrateOptions,
) -> Result<MigrateReport> {
    if src_url.trim() == dst_url.trim() {
        return Err(Error::Config(format!(
            "--to {dst_url} is the configured backend already"
        )));
    }
    index.ensure_ops_tables().await?;
    if let Some(holder) = index.get_setting(SETTING_BACKEND_URL).await?
        && holder != src_url
    {
        return Err(Error::Config(format!(
            "the index says the data lives in {holder}, but the configured backend is {src_url}"
        )));
    }
    let ids = index.referenced_backend_ids().await?;
    let done = index.migrate_copied(dst_url).await?;
    let mut report = MigrateReport {
        total: ids.len(),
        ..Default::default()
    };
    let pb = progress_bar(ids.len() as u64, "migrate", opts.quiet);
    for id in &ids {
        if done.contains(id) {
            report.skipped += 1;
            pb.inc(1);
            continue;
        }
        if opts.stop_after.is_some_and(|n| report.copied >= n) {
            pb.abandon_with_message("stopped (--stop-after)");
            return Ok(report);
        }
        match copy_one(src, dst, id).await {
            Ok((size, sha)) => {
                index.mark_copied(dst_url, id, size, &sha).await?;
                report.copied += 1;
                report.bytes += size;
                pb.set_message(format!("{} copied", indicatif::HumanBytes(report.bytes)));
            }
            Err(Error::Integrity(m)) if m.starts_with("backend object missing") => {
                report.failed.push((id.clone(), m));
            }
            Err(Error::Unavailable(m)) => {
                // the destination or source is down: stop now, the rerun resumes
                pb.abandon_with_message("backend unavailable");
                report.failed.push((id.clone(), m));
                return Ok(report);
            }
            Err(e) => report.failed.push((id.clone(), e.to_string())),
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    if report.failed.is_empty() {
        index.set_setting(SETTING_BACKEND_URL, dst_url).await?;
        index.clear_copied(dst_url).await?;
        report.switched = true;
    }
    Ok(report)
}

/// `vaultgate migrate`: opens the configured index/backend, opens `dst_url`, migrates.
pub async fn run(ctx: &OpsContext, dst_url: &str, opts: &MigrateOptions) -> Result<MigrateReport> {
    if dst_url.trim().is_empty() {
        return Err(Error::Config("--to needs a backend URL".into()));
    }
    let dst = crate::backend::open_backend(dst_url, &ctx.data_dir)
        .await
        .map_err(|e: BackendError| Error::Unavailable(format!("destination {dst_url}: {e}")))?;
    migrate(
        &ctx.index,
        ctx.backend.as_ref(),
        &ctx.backend_url,
        dst.as_ref(),
        dst_url,
        opts,
    )
    .await
}
