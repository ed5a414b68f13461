//! The one place the gateway and the admin REST API meet: [`admin_api`] builds the `admin`
//! crate's router over the pieces the gateway opened ([`AdminParts`]), and `vaultgate serve`
//! passes it to `gateway::server::start`, which serves it on the admin listener beside
//! /metrics, /health and /ready. The gateway's in-process tests include this file
//! (`gateway/tests/common`), so they run the composition the binary ships.

use std::sync::Arc;

use admin::api::{KekFuture, KekOpError, KekOps};
use gateway::admin_http::AdminParts;
use gateway::ops::keys::{self as key_ops, KeyOpError};
use gateway::store::Store;

/// The admin API's key management over the gateway's keyring and index.
struct GatewayKeys(Store);

fn kek_answer<T: serde::Serialize>(
    r: Result<T, KeyOpError>,
) -> Result<serde_json::Value, KekOpError> {
    match r {
        Ok(v) => serde_json::to_value(v).map_err(|e| KekOpError::Unavailable(e.to_string())),
        Err(KeyOpError::Refused(m)) => Err(KekOpError::Refused(m)),
        Err(KeyOpError::NotFound(m)) => Err(KekOpError::NotFound(m)),
        Err(KeyOpError::Failed(e)) => Err(KekOpError::Unavailable(e.to_string())),
    }
}

impl KekOps for GatewayKeys {
    fn status(&self) -> KekFuture {
        let s = self.0.clone();
        Box::pin(async move {
            kek_answer(
                key_ops::status(s.keyring(), s.index())
                    .await
                    .map_err(KeyOpError::from),
            )
        })
    }
    fn rotate(&self) -> KekFuture {
        let s = self.0.clone();
        Box::pin(async move { kek_answer(key_ops::rotate(s.keyring()).await) })
    }
    fn rewrap(&self) -> KekFuture {
        let s = self.0.clone();
        Box::pin(async move { kek_answer(key_ops::rewrap(s.keyring()).await) })
    }
    fn check_rotate(&self) -> KekFuture {
        let s = self.0.clone();
        Box::pin(async move { kek_answer(key_ops::check_rotate(s.keyring())) })
    }
    fn check_retire(&self, kek_id: String, accept_header_copies: bool) -> KekFuture {
        let s = self.0.clone();
        Box::pin(async move {
            kek_answer(
                key_ops::check_retire(s.keyring(), s.index(), &kek_id, accept_header_copies).await,
            )
        })
    }
    fn retire(&self, kek_id: String, accept_header_copies: bool) -> KekFuture {
        let s = self.0.clone();
        Box::pin(async move {
            kek_answer(key_ops::retire(s.keyring(), s.index(), &kek_id, accept_header_copies).await)
        })
    }
}

/// The admin REST API (`/admin/v1`) over the gateway's policy store, token authority, rate
/// limits, brute-force limiter, ledger and evidence key, counting each call in the gateway's
/// `admin_operations_total`, adding the backend, key provider and region to `GET /status`, and
/// passing the web console's S3 requests (`/admin/v1/s3…`) to the S3 listener.
pub fn admin_api(parts: AdminParts) -> axum::Router {
    let AdminParts {
        policy_store,
        jwt,
        limits,
        auth_failures,
        audit,
        evidence_dir,
        metrics,
        status,
        s3_addr,
        s3_tls_cert,
        region,
        store,
    } = parts;
    let mut state = admin::AdminState::new(policy_store, jwt, limits)
        .with_audit(audit.ledger, audit.evidence_key, evidence_dir)
        .with_operation_hook(Arc::new(move |op: &str| metrics.admin_operation(op)))
        .with_auth_failures(auth_failures)
        .with_kek_ops(Arc::new(GatewayKeys(store.clone())))
        .with_key_status(Arc::new(move || {
            let store = store.clone();
            Box::pin(async move {
                let keys = store
                    .index()
                    .data_key_summary()
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(keys
                    .into_iter()
                    .map(|k| admin::api::BucketKey {
                        bucket: k.bucket,
                        version: k.version,
                        versions: k.versions,
                        kek_id: k.kek_id,
                        rotated_ms: k.created_ms,
                    })
                    .collect())
            })
        }));
    state.status_extra = Some(Arc::new(move || status.clone()));
    // the console's S3 requests go to the S3 listener on loopback; over TLS when it has TLS,
    // trusting exactly the certificate it serves
    let relay = match s3_tls_cert {
        None => Ok(admin::S3Relay::new(s3_addr, region)),
        Some(cert) => admin::S3Relay::with_tls(s3_addr, region, cert),
    };
    match relay {
        Ok(r) => state = state.with_s3_relay(r),
        Err(e) => tracing::error!("console S3 relay off: {e}"),
    }
    admin::router(state)
}
