//! The one place the gateway and the admin REST API meet: [`admin_api`] builds the `admin`
//! crate's router over the pieces the gateway opened ([`AdminParts`]), and `vaultgate serve`
//! passes it to `gateway::server::start`, which serves it on the admin listener beside
//! /metrics, /health and /ready. The gateway's in-process tests include this file
//! (`gateway/tests/it/common`), so they run the composition the binary ships.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use admin::api::{KekFuture, KekOpError, KekOps, ReencryptBucket};
use gateway::admin_http::AdminParts;
use gateway::ops::keys::{self as key_ops, KeyOpError};
use gateway::ops::reencrypt::{self as reencrypt_ops, ReencryptState};
use gateway::store::Store;

/// The state of each bucket's re-encryption job started in this process.
type Jobs = Arc<Mutex<HashMap<String, Arc<Mutex<ReencryptState>>>>>;

/// The admin API's key management over the gateway's keyring and index, and the background
/// re-encryption jobs (their finish events go to `ledger`).
struct GatewayKeys {
    store: Store,
    jobs: Jobs,
    ledger: audit::Ledger,
}

fn reencrypt_error(bucket: &str, e: gateway::error::Error) -> KeyOpError {
    match e {
        gateway::error::Error::NoSuchBucket(_) => {
            KeyOpError::NotFound(format!("no bucket {bucket}"))
        }
        e => KeyOpError::Failed(e),
    }
}

fn snapshot(s: &Mutex<ReencryptState>) -> ReencryptState {
    s.lock().map(|g| g.clone()).unwrap_or_default()
}

impl GatewayKeys {
    fn running(&self, bucket: &str) -> bool {
        self.jobs
            .lock()
            .ok()
            .and_then(|j| j.get(bucket).map(|s| snapshot(s).running))
            .unwrap_or(false)
    }

    /// Records the end of a re-encryption run: one admin event naming who started it.
    async fn record_finish(
        ledger: &audit::Ledger,
        principal: &str,
        bucket: &str,
        r: &Result<ReencryptState, String>,
    ) {
        let (outcome, status, code) = match r {
            Ok(s) if s.finished_ms.is_some() => (audit::Outcome::Success, 200, None),
            Ok(_) => (audit::Outcome::Error, 500, Some("Unfinished")),
            Err(_) => (audit::Outcome::Error, 503, Some("Unavailable")),
        };
        let ev = audit::AuditEvent {
            time_ms: audit::now_ms(),
            request_id: audit::new_request_id(),
            kind: audit::EventKind::Admin,
            principal: Some(principal.to_owned()),
            tenant: None,
            action: "admin.ReencryptBucketFinished".to_owned(),
            bucket: Some(bucket.to_owned()),
            key: None,
            outcome,
            status,
            error_code: code.map(str::to_owned),
            bytes_in: 0,
            bytes_out: 0,
            key_version: r.as_ref().ok().map(|s| s.target_version),
            source: Some("gateway re-encryption job".into()),
            duration_us: 0,
        };
        if let Err(e) = ledger.append(ev).await {
            tracing::error!(error = %e, bucket, "could not record the end of the re-encryption in the audit ledger");
        }
    }
}

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
    fn check_reencrypt(&self, bucket: String) -> KekFuture {
        let s = self.store.clone();
        let running = self.running(&bucket);
        Box::pin(async move {
            if running {
                return Err(KekOpError::Refused(format!(
                    "a re-encryption of bucket {bucket} is running; see GET /admin/v1/kek/reencrypt/{bucket}"
                )));
            }
            kek_answer(
                reencrypt_ops::load_state(&s, &bucket)
                    .await
                    .map(|_| serde_json::Value::Null)
                    .map_err(|e| reencrypt_error(&bucket, e)),
            )
        })
    }
    fn reencrypt(&self, bucket: String, rate: ReencryptBucket, principal: String) -> KekFuture {
        let store = self.store.clone();
        let jobs = self.jobs.clone();
        let ledger = self.ledger.clone();
        Box::pin(async move {
            let shared = Arc::new(Mutex::new(ReencryptState {
                bucket: bucket.clone(),
                running: true,
                ..Default::default()
            }));
            {
                let mut j = jobs
                    .lock()
                    .map_err(|_| KekOpError::Unavailable("job table poisoned".into()))?;
                if j.get(&bucket).is_some_and(|s| snapshot(s).running) {
                    return Err(KekOpError::Refused(format!(
                        "a re-encryption of bucket {bucket} is running"
                    )));
                }
                j.insert(bucket.clone(), shared.clone());
            }
            let begun = match reencrypt_ops::begin(&store, &bucket).await {
                Ok(b) => b,
                Err(e) => {
                    if let Ok(mut j) = jobs.lock() {
                        j.remove(&bucket);
                    }
                    return kek_answer::<()>(Err(reencrypt_error(&bucket, e)))
                        .map(|_| serde_json::Value::Null);
                }
            };
            let mut answer = begun.clone();
            answer.running = true;
            if let Ok(mut g) = shared.lock() {
                *g = answer.clone();
            }
            let rate = reencrypt_ops::Rate {
                bytes_per_sec: rate.rate.map(|mb| (mb * 1e6) as u64),
                objects_per_sec: rate.rate_objects,
            };
            tokio::spawn(async move {
                let r = reencrypt_ops::run(&store, begun, rate, Some(shared.clone()), None)
                    .await
                    .map_err(|e| e.to_string());
                if let Err(e) = &r {
                    tracing::error!(bucket = %bucket, error = %e, "re-encryption job failed");
                    if let Ok(mut g) = shared.lock() {
                        g.running = false;
                        g.errors.push((String::new(), String::new(), e.clone()));
                    }
                }
                GatewayKeys::record_finish(&ledger, &principal, &bucket, &r).await;
            });
            kek_answer(Ok::<_, KeyOpError>(answer))
        })
    }
    fn reencrypt_status(&self, bucket: String) -> KekFuture {
        let store = self.store.clone();
        let live = self
            .jobs
            .lock()
            .ok()
            .and_then(|j| j.get(&bucket).map(|s| snapshot(s)));
        Box::pin(async move {
            if let Some(s) = live {
                return kek_answer(Ok::<_, KeyOpError>(s));
            }
            match reencrypt_ops::load_state(&store, &bucket).await {
                Ok(Some(s)) => kek_answer(Ok::<_, KeyOpError>(s)),
                Ok(None) => Err(KekOpError::NotFound(format!(
                    "no re-encryption of bucket {bucket} was started"
                ))),
                Err(e) => kek_answer::<()>(Err(reencrypt_error(&bucket, e)))
                    .map(|_| serde_json::Value::Null),
            }
        })
    }
    fn status(&self) -> KekFuture {
        let s = self.store.clone();
        Box::pin(async move {
            kek_answer(
                key_ops::status(s.keyring(), s.index())
                    .await
                    .map_err(KeyOpError::from),
            )
        })
    }
    fn rotate(&self) -> KekFuture {
        let s = self.store.clone();
        Box::pin(async move { kek_answer(key_ops::rotate(s.keyring()).await) })
    }
    fn rewrap(&self) -> KekFuture {
        let s = self.store.clone();
        Box::pin(async move { kek_answer(key_ops::rewrap(s.keyring()).await) })
    }
    fn check_rotate(&self) -> KekFuture {
        let s = self.store.clone();
        Box::pin(async move { kek_answer(key_ops::check_rotate(s.keyring())) })
    }
    fn check_retire(&self, kek_id: String, accept_header_copies: bool) -> KekFuture {
        let s = self.store.clone();
        Box::pin(async move {
            kek_answer(
                key_ops::check_retire(s.keyring(), s.index(), &kek_id, accept_header_copies).await,
            )
        })
    }
    fn retire(&self, kek_id: String, accept_header_copies: bool) -> KekFuture {
        let s = self.store.clone();
        Box::pin(async move {
            kek_answer(key_ops::retire(s.keyring(), s.index(), &kek_id, accept_header_copies).await)
        })
    }
}

/// The online rotation of the admin token signing secret: a new one sealed into `dir` (the data
/// dir), where the next start finds it; refused when the secret is configured (`dir` unset).
fn signing_secret_hook(
    store: Store,
    dir: Option<std::path::PathBuf>,
) -> admin::api::SigningSecretHook {
    Arc::new(move || {
        let (store, dir) = (store.clone(), dir.clone());
        Box::pin(async move {
            let Some(dir) = dir else {
                return Err(KekOpError::Refused(
                    "the admin token signing secret is configured (VAULTGATE_ADMIN_JWT_SECRET): \
                     change it there and restart the gateway"
                        .into(),
                ));
            };
            key_ops::rotate_admin_jwt_secret(&dir, store.keyring())
                .await
                .map_err(|e| KekOpError::Unavailable(e.to_string()))
        })
    })
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
        admin_secret_dir,
    } = parts;
    let signing_secret = signing_secret_hook(store.clone(), admin_secret_dir);
    let keys = GatewayKeys {
        store: store.clone(),
        jobs: Jobs::default(),
        ledger: audit.ledger.clone(),
    };
    let mut state = admin::AdminState::new(policy_store, jwt, limits)
        .with_audit(audit.ledger, audit.evidence_key, evidence_dir)
        .with_operation_hook(Arc::new(move |op: &str| metrics.admin_operation(op)))
        .with_auth_failures(auth_failures)
        .with_kek_ops(Arc::new(keys))
        .with_signing_secret(signing_secret)
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
                        kms_key: k.kms_key,
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
