//! Inline objects (docs/FORMAT.md, "Inline objects"; docs/OPERATIONS.md, "Inline objects and
//! the write-back"). A single PUT of at most `inline_max_bytes` is sealed in memory and its sealed
//! stream committed in its index row, together with the row and the request's audit event: one
//! group-committed transaction, one fsync, no file per object on the request's path. Reads are
//! served from the row.
//!
//! So that the backend alone can still rebuild the index (`vaultgate reindex`), the write-back
//! task ([`spawn_writeback`]) stores every pending stream on the backend under its backend id —
//! the same bytes a non-inline PUT would have written there — and then marks it written in the
//! index. What is pending at any time is bounded: past [`PENDING_MAX_BYTES`] of pending streams
//! a PUT goes to the backend directly, as without inline objects.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, watch};

use super::Store;
use crate::backend::Backend;
use crate::error::Result;
use crate::index::Index;
use crate::lease::{Job, Leases};

/// Most bytes of sealed streams that may be pending write-back (this instance's count, kept
/// from the index's after every pass): the bound on what only the index holds.
pub const PENDING_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// A pass runs this often (and at once when a full batch is pending): what the PUTs of one
/// interval committed is written back as one batch, made durable together.
pub const WRITEBACK_INTERVAL: Duration = Duration::from_millis(200);

/// Streams per write-back batch, and about how many bytes.
pub const BATCH_STREAMS: u64 = 256;
const BATCH_BYTES: u64 = 8 * 1024 * 1024;

/// Bytes reserved per admitted PUT beyond its plaintext (header, tags, sealed metadata).
const OVERHEAD_ESTIMATE: u64 = 4096;

/// The inline limits and this instance's count of pending bytes, shared by every clone of the
/// store.
#[derive(Debug, Default)]
pub struct InlineStore {
    /// Largest plaintext kept inline; 0: none.
    max_object: u64,
    /// Bytes pending write-back (approximate: the index's sum after each pass, plus this
    /// instance's PUTs since).
    pending: AtomicU64,
    /// Wakes the write-back task.
    wake: Notify,
}

impl InlineStore {
    /// Inline objects of at most `max_object` plaintext bytes (0: off).
    pub fn new(max_object: u64) -> InlineStore {
        InlineStore {
            max_object,
            ..Default::default()
        }
    }

    /// Admits a PUT of `len` plaintext bytes inline when it is known, small enough, and the
    /// pending bound leaves room; the reservation holds until the PUT commits or fails.
    pub(super) fn admits(self: &Arc<Self>, len: Option<u64>) -> Option<Admitted> {
        let len = len?;
        if self.max_object == 0 || len > self.max_object {
            return None;
        }
        let reserved = len + OVERHEAD_ESTIMATE;
        self.pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                (p + reserved <= PENDING_MAX_BYTES).then_some(p + reserved)
            })
            .ok()?;
        Some(Admitted {
            store: Arc::clone(self),
            reserved,
            committed: false,
        })
    }

    fn release(&self, n: u64) {
        let _ = self
            .pending
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                Some(p.saturating_sub(n))
            });
    }

    /// Bytes this instance counts as pending write-back.
    pub fn pending_bytes(&self) -> u64 {
        self.pending.load(Ordering::SeqCst)
    }
}

/// A PUT admitted inline: its reservation of pending bytes. Dropped uncommitted (the PUT
/// failed), the reservation is released.
#[derive(Debug)]
pub(super) struct Admitted {
    store: Arc<InlineStore>,
    reserved: u64,
    committed: bool,
}

impl Admitted {
    /// The PUT committed its stream inline: it stays counted until a write-back pass recounts;
    /// a full batch pending wakes the write-back task before its next tick.
    pub(super) fn committed(mut self) {
        self.committed = true;
        if self.store.pending_bytes() >= BATCH_BYTES {
            self.store.wake.notify_one();
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if !self.committed {
            self.store.release(self.reserved);
        }
    }
}

/// What a write-back pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteBackReport {
    /// Streams stored on the backend and marked written.
    pub written: u64,
    /// Of those, streams whose object was deleted or replaced meanwhile (deleted again).
    pub gone: u64,
    /// Backend puts that failed (left pending for the next pass).
    pub failed: u64,
}

impl Store {
    /// A write-back pass ([`write_back`]) over this store's index and backend until nothing is
    /// pending.
    pub async fn write_back(&self) -> Result<WriteBackReport> {
        write_back(&self.index, self.backend.as_ref(), PassEnd::Drained).await
    }

    /// Recounts the pending bytes from the index (every instance's PUTs).
    async fn recount_pending(&self) -> Result<()> {
        let n = self.index.pending_inline_bytes().await?;
        self.inline.pending.store(n, Ordering::SeqCst);
        Ok(())
    }
}

/// Where a write-back pass stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassEnd {
    /// When nothing is pending: the last pass of a shutdown, offline commands, tests.
    Drained,
    /// After the first batch that is not full (the serving task's tick): what PUTs commit while
    /// a batch is written waits for the next tick instead of being chased a few objects at a
    /// time. A pass that chased them wrote back one or two objects per batch under a steady
    /// one-client load, each batch a `syncfs` and a second index transaction.
    PartialBatch,
}

/// One write-back pass: stores pending inline streams on the backend, batch by batch, until
/// `end` or a put fails (the rest waits for the next pass). Each stream is durable on the
/// backend (`Backend::put_batch`) before the index marks it written. Offline commands run one
/// to [`PassEnd::Drained`] first (`ops::OpsContext::open`), so that nothing they read is pending.
pub async fn write_back(
    index: &Index,
    backend: &dyn Backend,
    end: PassEnd,
) -> Result<WriteBackReport> {
    let mut report = WriteBackReport::default();
    loop {
        let (batch, more) = index.pending_inline(BATCH_STREAMS, BATCH_BYTES).await?;
        if batch.is_empty() {
            break;
        }
        let ids: Vec<String> = batch.iter().map(|(id, _)| id.clone()).collect();
        let results = backend.put_batch(batch).await;
        let mut stored = Vec::with_capacity(ids.len());
        for (id, r) in ids.into_iter().zip(&results) {
            match r {
                Ok(()) => stored.push(id),
                Err(e) => tracing::warn!(backend_id = %id, error = %e,
                    "write-back of an inline object failed; will retry"),
            }
        }
        let failed = (results.len() - stored.len()) as u64;
        let gone = index.inline_written(&stored).await?;
        for id in &gone {
            // deleted or replaced while being written: its gc may have run before the put
            if let Err(e) = backend.delete(id).await {
                tracing::warn!(backend_id = %id, error = %e, "could not delete a written-back object of a deleted version");
            }
        }
        report.written += stored.len() as u64;
        report.gone += gone.len() as u64;
        report.failed += failed;
        if failed > 0 || (end == PassEnd::PartialBatch && !more) {
            break;
        }
    }
    Ok(report)
}

/// While serving: a write-back pass every [`WRITEBACK_INTERVAL`], and at once when a full batch
/// is pending, under the `writeback` lease;
/// every instance recounts the pending bytes after each tick. Until `stop` (the server's
/// shutdown runs a last pass once its listeners have drained).
pub fn spawn_writeback(
    store: Store,
    leases: Leases,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let gauge = prometheus::IntGauge::new(
        "vaultgate_inline_pending_bytes",
        "Bytes of small objects committed inline and not yet written back to the backend",
    )
    .ok();
    if let Some(g) = &gauge
        && let Err(e) = store.metrics.registry().register(Box::new(g.clone()))
    {
        tracing::debug!(error = %e, "inline pending gauge not registered");
    }
    tokio::spawn(async move {
        let inline = Arc::clone(&store.inline);
        loop {
            tokio::select! {
                _ = inline.wake.notified() => {}
                _ = tokio::time::sleep(WRITEBACK_INTERVAL) => {}
                _ = stop.wait_for(|v| *v) => break,
            }
            if leases.held(Job::WriteBack) {
                match write_back(&store.index, store.backend.as_ref(), PassEnd::PartialBatch).await
                {
                    Ok(r) if r.failed > 0 => {
                        tracing::warn!(report = ?r, "write-back pass left objects pending")
                    }
                    Ok(r) if r.written > 0 => tracing::debug!(report = ?r, "write-back pass"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "write-back pass failed; will retry"),
                }
            }
            if let Err(e) = store.recount_pending().await {
                tracing::warn!(error = %e, "could not count pending inline objects");
            }
            if let Some(g) = &gauge {
                g.set(i64::try_from(inline.pending_bytes()).unwrap_or(i64::MAX));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_known_small_lengths_within_the_pending_bound() {
        let s = Arc::new(InlineStore::new(65536));
        assert!(s.admits(None).is_none(), "unknown length");
        assert!(s.admits(Some(65537)).is_none(), "over the limit");
        let a = s.admits(Some(65536)).expect("at the limit");
        assert_eq!(s.pending_bytes(), 65536 + OVERHEAD_ESTIMATE);
        drop(a);
        assert_eq!(
            s.pending_bytes(),
            0,
            "a failed PUT gives its reservation back"
        );
        let a = s.admits(Some(10)).unwrap();
        a.committed();
        assert_eq!(
            s.pending_bytes(),
            10 + OVERHEAD_ESTIMATE,
            "counted until recounted"
        );
        assert!(
            Arc::new(InlineStore::new(0)).admits(Some(1)).is_none(),
            "0 is off"
        );
    }

    #[test]
    fn past_the_pending_bound_puts_go_to_the_backend() {
        let s = Arc::new(InlineStore::new(65536));
        let mut held = Vec::new();
        while let Some(a) = s.admits(Some(65536)) {
            held.push(a);
        }
        assert_eq!(
            held.len() as u64,
            PENDING_MAX_BYTES / (65536 + OVERHEAD_ESTIMATE)
        );
        assert!(s.pending_bytes() <= PENDING_MAX_BYTES);
        held.pop();
        assert!(s.admits(Some(65536)).is_some(), "room again");
    }
}
