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

mod guard;
mod listen;
mod request;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use policy::ratelimit::AuthFailures;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use self::guard::BodyRate;
use self::listen::ListenLimits;
use self::request::{Pipeline, request_service};
use crate::admin_http::{AdminParts, AdminState, router};
use crate::audit::Audit;
use crate::auth::{
    Bootstrap, Credentials, IndexAuth, RoleAccess, bootstrap_instructions, ensure_bootstrap,
};
use crate::backend::open_backend;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::metrics::Metrics;
use crate::s3::Gateway;
use crate::s3::range_fallback::RangeFallback;
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
    /// Stops accepting, waits for in-flight requests (bounded), closes the index.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.store.index().close().await;
        tracing::info!("shut down");
    }

    /// A handle that triggers shutdown from elsewhere (signal handlers).
    pub fn shutdown_trigger(&self) -> watch::Sender<bool> {
        self.shutdown.clone()
    }
}

/// Opens everything the config names and starts both listeners; the admin listener serves the
/// router `admin_api` builds from the [`AdminParts`] beside /metrics, /health and /ready (the
/// `vaultgate` binary passes the `admin` crate's REST API).
pub async fn start(
    config: Config,
    admin_api: impl FnOnce(AdminParts) -> axum::Router,
) -> Result<RunningServer> {
    config.validate()?;
    let s3_sock = config.s3_socket()?;
    let admin_sock = config.admin_socket()?;
    let tls = tls::Tls::open(&config)?;
    secure_data_dir(&config)?;

    let db_url = config.database_url();
    let index = Index::open(&db_url)
        .await
        .map_err(|e| Error::Unavailable(format!("index: {e}")))?;
    // `vaultgate migrate` records which backend holds the data; refuse any other (its start-up
    // sweep would treat every object as an orphan, or serve an incomplete copy)
    if let Some(holder) = index
        .get_setting(crate::index::SETTING_BACKEND_URL)
        .await
        .map_err(|e| Error::Unavailable(format!("index: {e}")))?
        && holder != config.backend_url()
    {
        return Err(Error::Config(format!(
            "the index says the data lives in backend {holder}, but the configured backend is {}; \
             set VAULTGATE_BACKEND={holder}",
            config.backend_url()
        )));
    }
    let audit = Audit::open(&config, &index).await?;
    let metrics = Metrics::new();
    metrics.watch_audit(audit.ledger.stats());
    let backend: Arc<dyn crate::backend::Backend> = Arc::new(
        crate::backend::metered::MeteredBackend::new(
            open_backend(&config.backend_url(), &config.data_dir)
                .await
                .map_err(|e| Error::Unavailable(format!("backend: {e}")))?,
            metrics.registry(),
        )
        .map_err(|e| Error::Unavailable(format!("backend metrics: {e}")))?,
    );
    let key_cfg = config.key_config();
    let provider = keys::provider_from_config(&key_cfg).await?;
    let keyring = keys::Keyring::new(
        provider,
        Arc::new(index.clone()),
        keys::CacheConfig::default(),
    );
    let store = Store::new(
        backend.clone(),
        index.clone(),
        keyring.clone(),
        metrics.clone(),
    );

    // crash leftovers: queued garbage, then unreferenced backend objects
    match crate::index::collect_garbage(&index, backend.as_ref()).await {
        Ok(r) => tracing::debug!(?r, "gc queue drained"),
        Err(e) => tracing::warn!(error = %e, "gc queue drain failed; will retry next start"),
    }
    // no grace period: the index is SQLite, written by this process alone, so no other
    // instance can have a blob in flight
    match crate::index::sweep_orphans(&index, backend.as_ref(), Duration::ZERO).await {
        Ok(r) if r.withheld > 0 && index.bucket_count().await.unwrap_or(0) == 0 => {
            // An empty index next to a backend full of ciphertext: the index was lost or the
            // database URL points elsewhere. Serving would show empty buckets; refuse instead.
            return Err(Error::Config(format!(
                "the backend {} holds {} objects but the index {} is empty; run `vaultgate reindex` \
                 to rebuild the index from the backend, or point VAULTGATE_DATABASE_URL at the right index",
                crate::config::redact_url(&config.backend_url()),
                r.withheld,
                crate::config::redact_url(&db_url)
            )));
        }
        Ok(r) => tracing::info!(
            scanned = r.scanned,
            deleted = r.deleted,
            withheld = r.withheld,
            "orphan sweep done"
        ),
        Err(e) => tracing::warn!(error = %e, "orphan sweep failed"),
    }

    // access keys, principals, grants and bucket tenants live in the same SQLite file; the
    // policy store writes through the index's single writer connection and reads the access
    // check's rows through the index's read pool (never queueing behind writes), cached in
    // memory until the next policy write
    let policy_store =
        policy::PolicyStore::new(index.write_pool().clone(), Arc::new(keyring.clone()))
            .await?
            .with_read_pool(index.read_pool().clone())
            .with_access_cache();
    let fixed = match (&config.access_key, &config.secret_key) {
        (Some(a), Some(s)) => Some((a.as_str(), policy::SecretKey::new(s.expose()))),
        _ => None,
    };
    let bootstrap = ensure_bootstrap(
        &policy_store,
        &index,
        &keyring,
        fixed.as_ref().map(|(a, s)| (*a, s)),
    )
    .await?;
    let limits = Arc::new(policy::RateLimits::new(config.rate_limits()));
    let auth_failures = Arc::new(AuthFailures::new(config.limits.auth_failures_per_min()));
    metrics.watch_auth_failures(auth_failures.clone());
    let s3_addr_cell = Arc::new(std::sync::OnceLock::new());
    let admin_api = admin_api(AdminParts {
        policy_store: policy_store.clone(),
        jwt: Arc::new(config.jwt_authority()?),
        limits: limits.clone(),
        auth_failures: auth_failures.clone(),
        audit: audit.clone(),
        evidence_dir: config.data_dir.join("evidence"),
        metrics: metrics.clone(),
        status: serde_json::json!({
            "backend": backend.name(),
            "key_provider": keyring.provider().kind(),
            "region": config.region,
        }),
        s3_addr: s3_addr_cell.clone(),
        s3_tls_cert: config.tls.s3_files().map(|f| f.cert),
        region: config.region.clone(),
        store: store.clone(),
    });
    let authz = policy::Authorizer::new(policy_store, limits);
    let creds = Credentials::new(authz.clone());

    let mut gateway = Gateway::new(
        store.clone(),
        creds.clone(),
        config.kms.is_some(),
        config.region.clone(),
    );
    gateway.sigv2 = config.limits.sigv2();
    let mut builder = S3ServiceBuilder::new(gateway.clone());
    let mut s3_config = s3s::config::S3Config::default();
    s3_config.post_object_max_file_size = config.limits.post_object_max_bytes();
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        s3_config,
    ))));
    builder.set_auth(IndexAuth(creds.clone()));
    builder.set_access(RoleAccess::new(creds.clone(), config.kms.is_some()));
    builder.set_route(RangeFallback { gateway, creds });
    let s3 = builder.build();

    tls.report_to(&metrics)?;
    let s3_listener = TcpListener::bind(s3_sock)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {s3_sock}: {e}")))?;
    let admin_listener = TcpListener::bind(admin_sock)
        .await
        .map_err(|e| Error::Config(format!("cannot listen on {admin_sock}: {e}")))?;
    let s3_addr = s3_listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let _ = s3_addr_cell.set(s3_addr);

    let (tx, rx) = watch::channel(false);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let pipeline = Pipeline {
        metrics: metrics.clone(),
        ledger: audit.ledger.clone(),
        limits: Arc::new(config.limits.clone()),
        body_rate: BodyRate::of(&config.limits),
        auth_failures: auth_failures.clone(),
    };
    let s3_task = tokio::spawn(listen::serve(
        s3_listener,
        ListenLimits::s3(&config.limits),
        metrics.clone(),
        tls.s3.clone(),
        move |peer| request_service(s3.clone(), pipeline.clone(), peer),
        rx.clone(),
        grace,
    ));
    let prune_task = audit.spawn_pruner(rx.clone());
    let tls_task = tls.watch(rx.clone());
    let app = router(AdminState {
        store: store.clone(),
        metrics: metrics.clone(),
    })
    .merge(admin_api);
    let admin_task = tokio::spawn(listen::serve(
        admin_listener,
        ListenLimits::admin(&config.limits),
        metrics.clone(),
        tls.admin.clone(),
        move |peer| {
            hyper_util::service::TowerToHyperService::new(
                app.clone()
                    .layer(axum::Extension(axum::extract::ConnectInfo(peer))),
            )
        },
        rx.clone(),
        grace,
    ));

    tracing::info!(
        s3_addr = %s3_addr,
        admin_addr = %admin_addr,
        backend = backend.name(),
        key_provider = keyring.provider().kind(),
        "listening"
    );
    if let Some(b) = &bootstrap {
        println!(
            "{}",
            bootstrap_instructions(
                b,
                &format!(
                    "{}://{s3_addr}",
                    if tls.s3.is_some() { "https" } else { "http" }
                ),
                &config.region
            )
        );
    }
    Ok(RunningServer {
        s3_addr,
        admin_addr,
        bootstrap,
        store,
        metrics,
        authz,
        shutdown: tx,
        audit,
        tasks: vec![s3_task, admin_task, prune_task, tls_task],
    })
}

/// Creates the data dir (mode 0700) and, for the default SQLite index, its database file (mode
/// 0600, which SQLite gives its -wal and -shm files too): they hold object names, user
/// metadata, sealed secrets and the audit trail, none of it for other local users. An existing
/// dir or file that others may read is left as it is and warned about.
fn secure_data_dir(config: &Config) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = &config.data_dir;
    let cannot = |what: &str, p: &std::path::Path, e: std::io::Error| {
        Error::Config(format!("cannot {what} {}: {e}", p.display()))
    };
    if dir.exists() {
        warn_if_shared(dir);
    } else {
        std::fs::create_dir_all(dir).map_err(|e| cannot("create data dir", dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| cannot("restrict data dir", dir, e))?;
    }
    let url = config.database_url();
    let Some(path) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|p| p.split('?').next().unwrap_or(p))
        .filter(|p| !p.is_empty() && *p != ":memory:")
    else {
        return Ok(());
    };
    let db = std::path::Path::new(path);
    if db.exists() {
        for suffix in ["", "-wal", "-shm"] {
            let f = std::path::PathBuf::from(format!("{path}{suffix}"));
            if f.exists() {
                warn_if_shared(&f);
            }
        }
    } else if db.parent().is_some_and(std::path::Path::exists) {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(db)
            .map_err(|e| cannot("create index database", db, e))?;
    }
    Ok(())
}

/// Warns when group or other users may read or enter `p`.
fn warn_if_shared(p: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::metadata(p) {
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                path = %p.display(),
                mode = format!("{mode:o}"),
                "readable by other users of this host; restrict it (chmod 700 for the data dir, 600 for files)"
            );
        }
    }
}
