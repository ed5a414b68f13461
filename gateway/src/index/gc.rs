//! Garbage: the gc queue in the index (backend ids no longer referenced, written in the same
//! transaction that dropped the reference) and the two collectors the object layer calls:
//! [`collect_garbage`] drains the queue (at start-up, and after a failed inline delete), and
//! [`sweep_orphans`] deletes backend objects no index row references (ciphertext written by a put
//! that crashed before its index commit), sparing objects younger than a grace period so that
//! in-flight writes are never touched. While serving, [`spawn_collector`] runs both
//! periodically, each under its lease (`crate::lease`), so one instance at a time does it.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use audit::db::SizedText;
use futures::StreamExt;
use sqlx::AnyConnection;

use super::writer::Job;
use super::{Index, IndexError, now_ms};
use crate::backend::{Backend, BackendError};
use crate::lease::{Job as LeaseJob, Leases};

/// An error of a collector: from the index or from the backend.
#[derive(thiserror::Error, Debug)]
pub enum GcError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// What [`collect_garbage`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Backend objects deleted (or already absent) and removed from the queue.
    pub deleted: u64,
    /// Queue entries dropped without a delete because something references the id again.
    pub still_referenced: u64,
    /// Deletes that failed; those ids stay queued for the next run.
    pub failed: u64,
}

/// What [`sweep_orphans`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Backend objects listed.
    pub scanned: u64,
    /// Unreferenced objects deleted.
    pub deleted: u64,
    /// Unreferenced objects spared because they are younger than the grace period.
    pub young: u64,
    /// Deletes that failed.
    pub failed: u64,
    /// Unreferenced objects NOT deleted because there were more of them than a crash can leave
    /// ([`MAX_CRASH_ORPHANS`]) or because the index is empty (then the young ones count too):
    /// the signs of a lost, replaced or foreign index, where deleting would destroy data that
    /// `vaultgate reindex` can recover.
    pub withheld: u64,
}

/// Most unreferenced objects a crash can plausibly leave behind (one per write in flight). A
/// sweep that finds more deletes nothing and reports them as `withheld`.
pub const MAX_CRASH_ORPHANS: u64 = 512;

/// The orphan sweep's grace period whenever another writer may have a blob in flight: while
/// serving, and at start-up on a database other instances may share (PostgreSQL). Far longer
/// than any write takes from its backend put to its index commit (a backend multipart upload
/// is dated by its start), so a blob another instance wrote but has not committed yet is never
/// deleted.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(24 * 3600);

/// How often [`spawn_collector`] drains the gc queue.
pub const GC_INTERVAL: Duration = Duration::from_secs(600);

/// [`spawn_collector`] sweeps orphans once every this many gc runs (6 hours).
const SWEEP_EVERY: u32 = 36;

/// Backend deletes in flight at once.
const DELETE_CONCURRENCY: usize = 8;
/// Ids per query when checking references in bulk.
pub(crate) const REF_BATCH: usize = 200;

impl Index {
    /// Up to `limit` queued garbage ids, ordered by id.
    pub async fn gc_pending(&self, limit: u32) -> Result<Vec<String>, IndexError> {
        self.gc_page(None, limit).await
    }

    async fn gc_page(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>, IndexError> {
        let ids = sqlx::query_scalar(
            "SELECT backend_id FROM gc_queue WHERE backend_id > $1 ORDER BY backend_id LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        Ok(ids)
    }

    /// Removes ids from the gc queue (after they were deleted from the backend). Group-committed
    /// by the index writer like `put_object`.
    pub async fn gc_done(&self, ids: &[String]) -> Result<(), IndexError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.to_vec();
        self.writer.submit(|reply| Job::GcDone { ids, reply }).await
    }

    /// Whether anything refers to `backend_id`: an object stream, a manifest, a part, or the gc
    /// queue (queued ids belong to [`collect_garbage`], not to the orphan sweep).
    pub async fn is_referenced(&self, backend_id: &str) -> Result<bool, IndexError> {
        let row = sqlx::query(
            "SELECT (EXISTS (SELECT 1 FROM object_streams WHERE backend_id = $1) \
                 OR EXISTS (SELECT 1 FROM objects WHERE manifest_id = $1) \
                 OR EXISTS (SELECT 1 FROM objects WHERE lock_record_id = $1) \
                 OR EXISTS (SELECT 1 FROM objects WHERE tag_record_id = $1) \
                 OR EXISTS (SELECT 1 FROM bucket_settings WHERE record_id = $1) \
                 OR EXISTS (SELECT 1 FROM parts WHERE backend_id = $1) \
                 OR EXISTS (SELECT 1 FROM gc_queue WHERE backend_id = $1)) AS used",
        )
        .bind(backend_id)
        .fetch_one(&self.read)
        .await?;
        Ok(audit::db::flag(&row, "used")?)
    }

    /// Number of buckets in the index (0 for a fresh or lost index).
    pub async fn bucket_count(&self) -> Result<u64, IndexError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM buckets")
            .fetch_one(&self.read)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Those of `ids` referenced by an object, manifest or part (`with_queue`: or queued).
    pub(crate) async fn referenced_among(
        &self,
        ids: &[String],
        with_queue: bool,
    ) -> Result<HashSet<String>, IndexError> {
        static TEXTS: LazyLock<[SizedText; 2]> = LazyLock::new(|| {
            [
                SizedText::new(REF_BATCH, |n| referenced_text(n, false)),
                SizedText::new(REF_BATCH, |n| referenced_text(n, true)),
            ]
        });
        let mut found = HashSet::new();
        for chunk in ids.chunks(REF_BATCH) {
            let (sql, kept) = TEXTS[usize::from(with_queue)].for_rows(chunk.len());
            let mut query = sqlx::query_scalar::<_, String>(sql.as_ref()).persistent(kept);
            for id in chunk {
                query = query.bind(id);
            }
            found.extend(query.fetch_all(&self.read).await?);
        }
        Ok(found)
    }
}

/// [`Index::referenced_among`]'s query for `ids` ids (`with_queue`: the gc queue too), every id
/// numbered on every database (the one list is named six or seven times).
fn referenced_text(ids: usize, with_queue: bool) -> String {
    let list = audit::db::value_rows(1, ids, Some(1));
    let mut sql = format!(
        "SELECT backend_id FROM object_streams WHERE backend_id IN {list} \
         UNION SELECT manifest_id FROM objects WHERE manifest_id IN {list} \
         UNION SELECT lock_record_id FROM objects WHERE lock_record_id IN {list} \
         UNION SELECT tag_record_id FROM objects WHERE tag_record_id IN {list} \
         UNION SELECT record_id FROM bucket_settings WHERE record_id IN {list} \
         UNION SELECT backend_id FROM parts WHERE backend_id IN {list}"
    );
    if with_queue {
        sql.push_str(&format!(
            " UNION SELECT backend_id FROM gc_queue WHERE backend_id IN {list}"
        ));
    }
    sql
}

/// The statements of `Index::gc_done`, inside the writer's transaction.
pub(crate) async fn gc_done_in(conn: &mut AnyConnection, ids: &[String]) -> Result<(), IndexError> {
    for id in ids {
        sqlx::query("DELETE FROM gc_queue WHERE backend_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Deletes `ids` from the backend; returns the ids whose delete succeeded and how many failed.
pub(crate) async fn delete_all(backend: &dyn Backend, ids: Vec<String>) -> (Vec<String>, u64) {
    let results: Vec<(String, Result<(), BackendError>)> = futures::stream::iter(ids)
        .map(|id| async move {
            let r = backend.delete(&id).await;
            (id, r)
        })
        .buffer_unordered(DELETE_CONCURRENCY)
        .collect()
        .await;
    let mut done = Vec::with_capacity(results.len());
    let mut failed = 0;
    for (id, result) in results {
        match result {
            Ok(()) => done.push(id),
            Err(e) => {
                tracing::warn!(backend_id = %id, error = %e, "garbage delete failed; will retry");
                failed += 1;
            }
        }
    }
    (done, failed)
}

/// Drains the gc queue: deletes every queued id from the backend and removes it from the queue.
/// Ids that are referenced again are dropped from the queue without a delete; ids whose delete
/// fails stay queued (reported in `failed`). Each queued id is visited once per call.
pub async fn collect_garbage(index: &Index, backend: &dyn Backend) -> Result<GcReport, GcError> {
    let mut report = GcReport::default();
    let mut after: Option<String> = None;
    loop {
        let ids = index.gc_page(after.as_deref(), 256).await?;
        let Some(last) = ids.last().cloned() else {
            break;
        };
        after = Some(last);
        let live = index.referenced_among(&ids, false).await?;
        let (live_ids, dead_ids): (Vec<String>, Vec<String>) =
            ids.into_iter().partition(|id| live.contains(id));
        report.still_referenced += live_ids.len() as u64;
        let (done, failed) = delete_all(backend, dead_ids).await;
        report.deleted += done.len() as u64;
        report.failed += failed;
        index.gc_done(&live_ids).await?;
        index.gc_done(&done).await?;
    }
    if report.deleted + report.failed + report.still_referenced > 0 {
        tracing::info!(
            deleted = report.deleted,
            failed = report.failed,
            "garbage collected"
        );
    }
    Ok(report)
}

/// Deletes backend objects that nothing in the index references (not an object, manifest, part
/// or queued id) and that were last modified longer than `older_than` ago. Use a grace period
/// longer than any write takes from backend put to index commit (minutes) while serving; at
/// start-up, before serving, zero is safe.
pub async fn sweep_orphans(
    index: &Index,
    backend: &dyn Backend,
    older_than: Duration,
) -> Result<SweepReport, GcError> {
    let grace_ms = i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX);
    let cutoff = now_ms().saturating_sub(grace_ms);
    let mut report = SweepReport::default();
    // Phase 1: find the candidates without deleting anything, so that the safety limits below
    // can refuse the whole sweep.
    let mut doomed = Vec::new();
    let mut listing = backend.list().await?;
    let mut listing_done = false;
    while !listing_done {
        let mut batch = Vec::with_capacity(REF_BATCH);
        while batch.len() < REF_BATCH {
            match listing.next().await {
                Some(item) => {
                    batch.push(item?);
                    report.scanned += 1;
                }
                None => {
                    listing_done = true;
                    break;
                }
            }
        }
        if batch.is_empty() {
            break;
        }
        let ids: Vec<String> = batch.iter().map(|i| i.id.clone()).collect();
        let referenced = index.referenced_among(&ids, true).await?;
        for info in batch {
            if referenced.contains(&info.id) {
                continue;
            }
            if info.modified_ms > cutoff {
                report.young += 1;
            } else {
                doomed.push(info.id);
            }
        }
    }
    if doomed.is_empty() && report.young == 0 {
        return Ok(report);
    }
    // Phase 2: a crash leaves a handful of orphans; thousands of them, or any at all next to an
    // empty index (young ones too: with no bucket no write can be in flight), mean the index is
    // not the one that wrote this backend. Delete nothing then.
    let index_empty = index.bucket_count().await? == 0;
    if index_empty || doomed.len() as u64 > MAX_CRASH_ORPHANS {
        report.withheld = doomed.len() as u64 + if index_empty { report.young } else { 0 };
        tracing::error!(
            unreferenced = report.withheld,
            index_empty,
            "the backend holds objects this index does not know; NOT deleting them. If the index \
             was lost or replaced, stop the gateway and run `vaultgate reindex` on an empty index"
        );
        return Ok(report);
    }
    let (done, failed) = delete_all(backend, doomed).await;
    report.deleted += done.len() as u64;
    report.failed += failed;
    if report.deleted > 0 {
        tracing::info!(
            deleted = report.deleted,
            scanned = report.scanned,
            "orphaned backend objects removed"
        );
    }
    Ok(report)
}

/// While serving: drains the gc queue every [`GC_INTERVAL`] (under the `gc` lease) and sweeps
/// orphans older than [`ORPHAN_GRACE`] every 6 hours (under the `orphan_sweep` lease), until
/// `stop`. The start-up runs happen before this is spawned.
pub fn spawn_collector(
    index: Index,
    backend: Arc<dyn Backend>,
    leases: Leases,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut runs: u32 = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(GC_INTERVAL) => {}
                _ = stop.wait_for(|v| *v) => break,
            }
            runs = runs.wrapping_add(1);
            if leases.try_hold(LeaseJob::Gc).await
                && let Err(e) = collect_garbage(&index, backend.as_ref()).await
            {
                tracing::warn!(error = %e, "gc queue drain failed; will retry");
            }
            if runs.is_multiple_of(SWEEP_EVERY)
                && leases.try_hold(LeaseJob::OrphanSweep).await
                && let Err(e) = sweep_orphans(&index, backend.as_ref(), ORPHAN_GRACE).await
            {
                tracing::warn!(error = %e, "orphan sweep failed; will retry");
            }
        }
    })
}
