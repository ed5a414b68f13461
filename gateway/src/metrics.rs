//! Prometheus metrics of the gateway: S3 requests by operation and status, bytes in/out,
//! request duration histogram, in-flight requests, denied and throttled requests, GetObject
//! downloads (`file_download*`), admin operations and audit ledger failures. Rendered at
//! `/metrics` on the admin listener, with what other parts register into [`Metrics::registry`]
//! (the backend decorator, the lifecycle worker, `vaultgate_lease_held{job}` of `crate::lease`).

use std::sync::{Arc, OnceLock};

use audit::AuditStats;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// The gateway's metric set (cheap to clone: the collectors are Arc inside).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// `vaultgate_s3_requests_total{op,status}`
    pub requests: IntCounterVec,
    /// `vaultgate_s3_request_duration_seconds{op}`
    pub duration: HistogramVec,
    /// `vaultgate_s3_bytes_in_total` (plaintext bytes accepted into objects and parts)
    pub bytes_in: IntCounter,
    /// `vaultgate_s3_bytes_out_total` (response body bytes sent)
    pub bytes_out: IntCounter,
    /// `vaultgate_s3_in_flight_requests`
    pub in_flight: IntGauge,
    /// `vaultgate_s3_denied_total{operation}` (401/403: bad signature, unknown key, access denied)
    pub denied: IntCounterVec,
    /// `vaultgate_s3_throttled_total{operation}` (503 SlowDown past the rate limits)
    pub throttled: IntCounterVec,
    /// `file_downloads_total{status}` (GetObject requests by HTTP status)
    pub downloads: IntCounterVec,
    /// `file_download_bytes_total` (GetObject body bytes sent)
    pub download_bytes: IntCounter,
    /// `file_download_duration_seconds` (GetObject, until the body is sent or dropped)
    pub download_duration: Histogram,
    /// `admin_operations_total{operation}` (incremented through [`Metrics::admin_operation`])
    pub admin_operations: IntCounterVec,
    /// `vaultgate_audit_failures_total` (copied from the ledger's counter at each render)
    pub audit_failures: IntCounter,
    audit_stats: Arc<OnceLock<Arc<AuditStats>>>,
    /// `vaultgate_connections_refused_total{listener}` (closed over the per-address cap)
    pub connections_refused: IntCounterVec,
    /// `vaultgate_request_timeouts_total` (bodies cut off for making no progress)
    pub request_timeouts: IntCounter,
    /// `vaultgate_auth_failures_total` (failed authentications, S3 and admin; synced at render)
    pub auth_failures: IntCounter,
    /// `vaultgate_auth_blocked_total` (requests refused because their address failed too often)
    pub auth_blocked: IntCounter,
    auth_stats: Arc<OnceLock<Arc<policy::ratelimit::AuthFailures>>>,
}

impl Metrics {
    /// The registry `/metrics` exports; other parts (the backend decorator) register into it.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Creates and registers every collector.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "vaultgate_s3_requests_total",
                "S3 requests by operation and HTTP status",
            ),
            &["op", "status"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "vaultgate_s3_request_duration_seconds",
                "S3 request duration until response headers",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["op"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let bytes_in = IntCounter::new(
            "vaultgate_s3_bytes_in_total",
            "Plaintext bytes received into objects and parts",
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let bytes_out = IntCounter::new("vaultgate_s3_bytes_out_total", "Response body bytes sent")
            .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let in_flight = IntGauge::new(
            "vaultgate_s3_in_flight_requests",
            "S3 requests being served",
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let denied = IntCounterVec::new(
            Opts::new(
                "vaultgate_s3_denied_total",
                "S3 requests refused by authentication or authorisation (401/403)",
            ),
            &["operation"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let throttled = IntCounterVec::new(
            Opts::new(
                "vaultgate_s3_throttled_total",
                "S3 requests refused by the rate limits (503 SlowDown)",
            ),
            &["operation"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let downloads = IntCounterVec::new(
            Opts::new("file_downloads_total", "GetObject requests by HTTP status"),
            &["status"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let download_bytes =
            IntCounter::new("file_download_bytes_total", "GetObject body bytes sent")
                .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let download_duration = Histogram::with_opts(
            HistogramOpts::new(
                "file_download_duration_seconds",
                "GetObject duration until the body is sent (or the client went away)",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let admin_operations = IntCounterVec::new(
            Opts::new("admin_operations_total", "Admin API calls by operation"),
            &["operation"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let audit_failures = IntCounter::new(
            "vaultgate_audit_failures_total",
            "Audit events that could not be recorded",
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let connections_refused = IntCounterVec::new(
            Opts::new(
                "vaultgate_connections_refused_total",
                "Connections closed at once because their address holds too many",
            ),
            &["listener"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let request_timeouts = IntCounter::new(
            "vaultgate_request_timeouts_total",
            "Requests whose body made too little progress (400 RequestTimeout)",
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let auth_failures = IntCounter::new(
            "vaultgate_auth_failures_total",
            "Failed authentications (bad signature, unknown key, bad token), S3 and admin",
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let auth_blocked = IntCounter::new(
            "vaultgate_auth_blocked_total",
            "Requests refused because their address failed authentication too often",
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(connections_refused.clone()),
            Box::new(request_timeouts.clone()),
            Box::new(auth_failures.clone()),
            Box::new(auth_blocked.clone()),
            Box::new(duration.clone()),
            Box::new(bytes_in.clone()),
            Box::new(bytes_out.clone()),
            Box::new(in_flight.clone()),
            Box::new(denied.clone()),
            Box::new(throttled.clone()),
            Box::new(downloads.clone()),
            Box::new(download_bytes.clone()),
            Box::new(download_duration.clone()),
            Box::new(admin_operations.clone()),
            Box::new(audit_failures.clone()),
        ] {
            if let Err(e) = registry.register(c) {
                tracing::error!(error = %e, "metric registration failed");
            }
        }
        // the database time of the hot paths (one histogram per process, shared by registries)
        if let Some(h) = audit::db::query_seconds()
            && let Err(e) = registry.register(Box::new(h.clone()))
        {
            tracing::error!(error = %e, "metric registration failed");
        }
        Metrics {
            registry,
            requests,
            duration,
            bytes_in,
            bytes_out,
            in_flight,
            denied,
            throttled,
            downloads,
            download_bytes,
            download_duration,
            admin_operations,
            audit_failures,
            audit_stats: Arc::new(OnceLock::new()),
            connections_refused,
            request_timeouts,
            auth_failures,
            auth_blocked,
            auth_stats: Arc::new(OnceLock::new()),
        }
    }

    /// Exports the brute-force limiter's counters (first call wins).
    pub fn watch_auth_failures(&self, f: Arc<policy::ratelimit::AuthFailures>) {
        let _ = self.auth_stats.set(f);
    }

    /// Exports the ledger's failure counter as `vaultgate_audit_failures_total` (first call wins).
    pub fn watch_audit(&self, stats: Arc<AuditStats>) {
        let _ = self.audit_stats.set(stats);
    }

    /// Counts one admin API call (`admin_operations_total{operation}`); the hook given to
    /// `admin::AdminState::with_operation_hook`.
    pub fn admin_operation(&self, operation: &str) {
        self.admin_operations.with_label_values(&[operation]).inc();
    }

    fn sync_audit(&self) {
        if let Some(stats) = self.audit_stats.get() {
            catch_up(&self.audit_failures, stats.snapshot().failures);
        }
        if let Some(f) = self.auth_stats.get() {
            catch_up(&self.auth_failures, f.failures_total());
            catch_up(&self.auth_blocked, f.blocked_total());
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.sync_audit();
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// Raises a counter to `now` (counters copied from elsewhere only grow).
fn catch_up(c: &IntCounter, now: u64) {
    let shown = c.get();
    if now > shown {
        c.inc_by(now - shown);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_recorded_values() {
        let m = Metrics::new();
        m.requests.with_label_values(&["GetObject", "200"]).inc();
        m.bytes_out.inc_by(42);
        m.duration.with_label_values(&["GetObject"]).observe(0.002);
        let text = m.render();
        assert!(
            text.contains("vaultgate_s3_requests_total{op=\"GetObject\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(text.contains("vaultgate_s3_bytes_out_total 42"), "{text}");
        assert!(
            text.contains("vaultgate_s3_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.contains("vaultgate_s3_in_flight_requests 0"), "{text}");
    }

    #[test]
    fn audit_download_and_admin_metrics_render() {
        let m = Metrics::new();
        let stats = Arc::new(AuditStats::default());
        m.watch_audit(stats.clone());
        stats
            .failures
            .fetch_add(3, std::sync::atomic::Ordering::Relaxed);
        m.admin_operation("CreateAccessKey");
        m.downloads.with_label_values(&["200"]).inc();
        m.download_bytes.inc_by(7);
        m.download_duration.observe(0.01);
        m.denied.with_label_values(&["PutObject"]).inc();
        m.throttled.with_label_values(&["GetObject"]).inc();
        let text = m.render();
        for want in [
            "vaultgate_audit_failures_total 3",
            "admin_operations_total{operation=\"CreateAccessKey\"} 1",
            "file_downloads_total{status=\"200\"} 1",
            "file_download_bytes_total 7",
            "file_download_duration_seconds_count 1",
            "vaultgate_s3_denied_total{operation=\"PutObject\"} 1",
            "vaultgate_s3_throttled_total{operation=\"GetObject\"} 1",
        ] {
            assert!(text.contains(want), "{want} missing in {text}");
        }
        // a second render does not add the failures again
        stats
            .failures
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(m.render().contains("vaultgate_audit_failures_total 4"));
    }
}
