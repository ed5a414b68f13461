//! The admin listener's operational routes (axum): `/metrics` (Prometheus text), `/health`
//! (200 while the process runs) and `/ready` (200 when index and backend answer and the key
//! provider does, or every data key is cached; else 503 with JSON naming what failed, and
//! `key_providers`: each provider's state and the buckets it cannot serve), and [`AdminParts`]: what the admin REST API under
//! /admin/v1 is built from. That API belongs to the `admin` crate, which this library does not
//! depend on: `crate::server::start` hands the parts to a builder its caller passes (the
//! `vaultgate` binary's composition) and serves the router it returns beside these routes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::json;

use crate::audit::Audit;
use crate::metrics::Metrics;
use crate::store::Store;

/// Shared state of the admin routes.
#[derive(Clone, Debug)]
pub struct AdminState {
    /// object layer (index, backend, keyring) probed by /ready
    pub store: Store,
    /// metrics rendered by /metrics
    pub metrics: Metrics,
}

/// What the admin REST API is built from: the pieces [`crate::server::start`] opened, shared
/// with the S3 side (one policy store, one rate limiter, one brute-force limiter, one ledger).
pub struct AdminParts {
    /// the policy store (principals, keys, grants, tenants, quorum)
    pub policy_store: policy::PolicyStore,
    /// issues and checks admin API tokens (`Config::jwt_authority`)
    pub jwt: Arc<policy::JwtAuthority>,
    /// per-principal rate limits (the admin class applies there)
    pub limits: Arc<policy::RateLimits>,
    /// failed authentications per client address, shared with the S3 listener
    pub auth_failures: Arc<policy::ratelimit::AuthFailures>,
    /// the audit ledger and the evidence key (admin events, `/audit`, `/evidence`)
    pub audit: Audit,
    /// where exported evidence bundles are kept (`<data dir>/evidence`)
    pub evidence_dir: PathBuf,
    /// the gateway's metrics (`admin_operations_total{operation}`)
    pub metrics: Metrics,
    /// facts merged into `GET /status`: backend, key provider, region
    pub status: serde_json::Value,
    /// the S3 listener's address, set once it is bound (the console's S3 requests go there)
    pub s3_addr: Arc<std::sync::OnceLock<std::net::SocketAddr>>,
    /// the certificate chain the S3 listener serves, when it has TLS (the console's S3 relay
    /// trusts exactly its leaf)
    pub s3_tls_cert: Option<PathBuf>,
    /// the S3 region (SigV4 scope of those requests)
    pub region: String,
    /// the object layer (the key status reads the buckets' current data keys from its index)
    pub store: Store,
    /// the data dir keeping the generated admin token signing secret, which the admin API
    /// rotates there (`None`: the secret is configured, `VAULTGATE_ADMIN_JWT_SECRET`)
    pub admin_secret_dir: Option<PathBuf>,
}

/// Router with /metrics, /health and /ready.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .with_state(state)
}

async fn metrics(State(st): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        st.metrics.render() + &st.store.index().pool_metrics(),
    )
}

async fn health() -> impl IntoResponse {
    (StatusCode::OK, axum::Json(json!({"status": "ok"})))
}

fn verdict<E: std::fmt::Display>(
    r: Result<Result<(), E>, tokio::time::error::Elapsed>,
) -> (bool, String) {
    match r {
        Ok(Ok(())) => (true, "ok".into()),
        Ok(Err(e)) => (false, format!("error: {e}")),
        Err(_) => (false, "error: timed out".into()),
    }
}

async fn ready(State(st): State<AdminState>) -> impl IntoResponse {
    let t = Duration::from_secs(3);
    let (index, backend, provider) = tokio::join!(
        tokio::time::timeout(t, st.store.index().ping()),
        tokio::time::timeout(t, st.store.backend().check()),
        crate::ops::keys::provider_report(st.store.keyring(), t),
    );
    let (i_ok, i) = verdict(index);
    let (b_ok, b) = verdict(backend);
    // an unreachable provider keeps the gateway ready while every data key is cached
    let k_ok = provider.serving;
    let k = match (&provider.error, k_ok) {
        (None, _) => "ok".to_owned(),
        (Some(e), true) => format!("degraded: {} {e}; serving from cached keys", provider.state),
        (Some(e), false) if provider.uncached_buckets.is_empty() => {
            format!("error: {} {e}", provider.state)
        }
        (Some(e), false) => format!(
            "error: {} {e}; buckets without a cached key: {}",
            provider.state,
            provider.uncached_buckets.join(", ")
        ),
    };
    let ok = i_ok && b_ok && k_ok;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if !ok {
        tracing::warn!(index = %i, backend = %b, keys = %k, "not ready");
    }
    (
        status,
        axum::Json(json!({
            "status": if ok { "ready" } else { "unavailable" },
            "checks": {"index": i, "backend": b, "keys": k},
            "key_providers": [provider],
        })),
    )
}
