//! Builds and runs the gateway in-process: opens the index, backend and key provider from a
//! [`Config`], collects garbage left by a crash, opens the policy store in the index's database
//! and bootstraps the SuperAdmin key, then serves S3 (s3s on hyper, authorised by
//! `policy::Authorizer`) and the admin listener (axum: /metrics, /health, /ready and the admin
//! REST API under /admin/v1, which the caller builds from [`AdminParts`]) until
//! [`RunningServer::shutdown`].
//!
//! Every S3 request goes through the pipeline in `request.rs` (one `RequestCtx` per request,
//! named phases): it is counted, timed, logged as one JSON line (op, bucket, status, duration,
//! request id) and leaves one event in the audit ledger; reads whose event cannot be recorded
//! answer 503 under the fail-closed read policy.
//! Shutdown stops accepting, lets in-flight requests finish (bounded by `shutdown_grace_secs`),
//! then closes the index.

mod expect_continue;
mod guard;
pub mod host;
mod legacy_region;
mod listen;
mod request;
mod start;
pub mod tls;

pub(crate) use start::backend_start_error;
pub use start::start;

pub(crate) use expect_continue::open as continue_after_access;
pub(crate) use guard::error_response;

use std::net::SocketAddr;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::audit::Audit;
use crate::auth::Bootstrap;
use crate::metrics::Metrics;
use crate::store::Store;

/// A running gateway.
pub struct RunningServer {
    /// bound S3 address (useful with port 0)
    pub s3_addr: SocketAddr,
    /// bound admin address
    pub admin_addr: SocketAddr,
    /// the credential generated on first start (None when configured or already present)
    pub bootstrap: Option<Bootstrap>,
    /// the object layer (tests inspect the backend through it)
    pub store: Store,
    /// metrics of this instance
    pub metrics: Metrics,
    /// authentication and authorisation (policy store, rate limits)
    pub authz: policy::Authorizer,
    /// the audit ledger and evidence key
    pub audit: Audit,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// the data dir's lock ([`crate::lock`]), released when the server is dropped
    _lock: crate::lock::DataDirLock,
}

impl std::fmt::Debug for RunningServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningServer")
            .field("s3_addr", &self.s3_addr)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

impl RunningServer {
    /// Stops accepting, waits for in-flight requests (bounded), commits the queued audit events,
    /// closes the index.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        // after the listeners drained: what their last PUTs committed inline reaches the backend
        match self.store.write_back().await {
            Ok(r) if r.failed > 0 => {
                tracing::warn!(report = ?r, "inline objects left pending for the next start")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "last write-back pass failed"),
        }
        // the last reads' queued audit events, committed before the database closes
        self.audit.ledger.sync().await;
        self.store.index().close().await;
        tracing::info!("shut down");
    }

    /// A handle that triggers shutdown from elsewhere (signal handlers).
    pub fn shutdown_trigger(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}
