//! Start-up, in the order it happens, one step a function: [`start`] checks the config and
//! loads the certificates, then [`open_storage`] (index, audit ledger, backend, key provider,
//! object layer), [`recover`] (crash leftovers: the GC queue, then unreferenced blobs; an empty
//! index over a full backend refuses to start), [`open_policy`] (policy store in the index's
//! database, the bootstrap key, rate limits, the brute-force limiter), [`admin_parts`] (what the
//! admin router is built from), [`build_s3_service`] (s3s with the gateway's authentication,
//! access check and routes) and [`spawn_listeners`] (both listeners, the pruner and the
//! certificate watcher).

use std::sync::Arc;
use std::time::Duration;

use policy::ratelimit::AuthFailures;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::RunningServer;
use super::guard::BodyRate;
use super::listen::{self, ListenLimits};
use super::request::{Pipeline, request_service};
use super::tls;
use crate::admin_http::{AdminParts, AdminState, router};
use crate::audit::Audit;
use crate::auth::{
    Bootstrap, Credentials, IndexAuth, RoleAccess, bootstrap_instructions, ensure_bootstrap,
};
use crate::backend::{Backend, open_backend};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::lease::{Job, Leases};
use crate::metrics::Metrics;
use crate::s3::Gateway;
use crate::s3::range_fallback::RangeFallback;
use crate::store::Store;

/// Opens everything the config names and starts both listeners; the admin listener serves the
/// router `admin_api` builds from the [`AdminParts`] beside /metrics, /health and /ready (the
/// `vaultgate` binary passes the `admin` crate's REST API).
pub async fn start(
    config: Config,
    admin_api: impl FnOnce(AdminParts) -> axum::Router,
) -> Result<RunningServer> {
    config.validate()?;
    let tls = tls::Tls::open(&config)?;
    // the ports first: a port in use stops the start before anything is created on disk
    let sockets = bind(&config).await?;
    secure_data_dir(&config)?;
    let lock = crate::lock::lock_data_dir(&config.data_dir, crate::lock::SERVE)?;
    let metrics = Metrics::new();
    let storage = open_storage(&config, &metrics).await?;
    storage
        .index
        .follow_other_instances(crate::index::SETTINGS_FOLLOW_INTERVAL);
    let leases = crate::lease::Leases::new(&storage.index);
    leases
        .register(metrics.registry())
        .map_err(|e| Error::Internal(format!("lease metrics: {e}")))?;
    refuse_unshared_local_disk(&config, &leases).await?;
    recover(&config, &storage, &leases).await?;
    let policy = open_policy(&config, &storage, &metrics, &leases).await?;
    // the console's S3 relay learns the S3 listener's address once it is bound
    let s3_addr_cell = Arc::new(std::sync::OnceLock::new());
    let admin_api =
        admin_api(admin_parts(&config, &storage, &policy, &metrics, s3_addr_cell.clone()).await?);
    let authz = policy::Authorizer::new(policy.store, policy.limits);
    let hosts = config.virtual_hosts()?.map(Arc::new);
    let s3 = build_s3_service(
        &config,
        &storage.store,
        Credentials::new(authz.clone()),
        hosts.clone(),
    );
    let pipeline = Pipeline {
        metrics: metrics.clone(),
        ledger: storage.audit.ledger.clone(),
        limits: Arc::new(config.limits.clone()),
        body_rate: BodyRate::of(&config.limits),
        auth_failures: policy.auth_failures,
        legacy_region: (Credentials::new(authz.clone()), config.region.clone()),
        hosts,
        store: storage.store.clone(),
    };
    let running = spawn_listeners(
        &config, sockets, &tls, &storage, &leases, s3, pipeline, admin_api,
    )
    .await?;
    let _ = s3_addr_cell.set(running.s3_addr);
    tracing::info!(
        s3_addr = %running.s3_addr,
        admin_addr = %running.admin_addr,
        backend = storage.backend.name(),
        key_provider = storage.store.keyring().provider().kind(),
        "listening"
    );
    if let Some(b) = &policy.bootstrap {
        let scheme = if tls.s3.is_some() { "https" } else { "http" };
        let endpoint = format!("{scheme}://{}", running.s3_addr);
        println!("{}", bootstrap_instructions(b, &endpoint, &config.region));
    }
    Ok(RunningServer {
        s3_addr: running.s3_addr,
        admin_addr: running.admin_addr,
        bootstrap: policy.bootstrap,
        store: storage.store,
        metrics,
        authz,
        shutdown: running.shutdown,
        audit: storage.audit,
        tasks: running.tasks,
        _lock: lock,
    })
}

/// What the admin router is built from: the policy store, token authority, limits, audit,
/// metrics and status of this gateway, and where the console's S3 relay finds the S3 listener
/// (`s3_addr`, set once it is bound).
async fn admin_parts(
    config: &Config,
    storage: &Storage,
    policy: &PolicyParts,
    metrics: &Metrics,
    s3_addr: Arc<std::sync::OnceLock<std::net::SocketAddr>>,
) -> Result<AdminParts> {
    Ok(AdminParts {
        policy_store: policy.store.clone(),
        jwt: Arc::new(admin_jwt(config, storage.store.keyring()).await?),
        limits: policy.limits.clone(),
        auth_failures: policy.auth_failures.clone(),
        audit: storage.audit.clone(),
        evidence_dir: config.data_dir.join("evidence"),
        metrics: metrics.clone(),
        status: serde_json::json!({
            "backend": storage.backend.name(),
            "key_provider": storage.store.keyring().provider().kind(),
            "region": config.region,
        }),
        s3_addr,
        s3_tls_cert: config.tls.s3_files().map(|f| f.cert),
        region: config.region.clone(),
        store: storage.store.clone(),
        admin_secret_dir: config
            .admin_jwt_secret
            .is_none()
            .then(|| config.data_dir.clone()),
    })
}

/// The admin API's token authority: the configured secret, else the generated one kept sealed in
/// the data dir (tokens survive restarts). While the key provider is unreachable it cannot be
/// opened: a per-process secret stands in (tokens issued then end at the next restart).
async fn admin_jwt(config: &Config, keyring: &keys::Keyring) -> Result<policy::JwtAuthority> {
    if config.admin_jwt_secret.is_some() {
        return config.jwt_authority();
    }
    let secret = match crate::ops::keys::admin_jwt_secret(&config.data_dir, keyring).await {
        Ok(s) => s,
        Err(Error::Unavailable(m)) => {
            tracing::warn!(error = %m, "the admin token signing secret cannot be opened while the key provider is unreachable; tokens issued before this start must log in again");
            return config.jwt_authority();
        }
        Err(e) => return Err(e),
    };
    let mut with_secret = config.clone();
    with_secret.admin_jwt_secret = Some(secret);
    with_secret.jwt_authority()
}

/// What [`open_storage`] opens.
struct Storage {
    index: Index,
    audit: Audit,
    /// the metered backend (also inside `store`)
    backend: Arc<dyn Backend>,
    store: Store,
}

/// The index (refusing a backend other than the one the index says holds the data), the audit
/// ledger, the metered backend, the key provider and the object layer over them.
async fn open_storage(config: &Config, metrics: &Metrics) -> Result<Storage> {
    let db_url = config.database_url();
    let index = Index::open(&db_url).await.map_err(|e| {
        Error::Start(format!(
            "cannot open the index {}: {e}; check {}",
            crate::config::redact_url(&db_url),
            crate::config::setting("database_url")
        ))
    })?;
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
    let audit = Audit::open(config, &index).await?;
    metrics.watch_audit(audit.ledger.stats());
    let backend: Arc<dyn Backend> = Arc::new(
        crate::backend::metered::MeteredBackend::new(
            open_backend(&config.backend_url(), &config.data_dir)
                .await
                .map_err(|e| backend_start_error(config, e))?,
            metrics.registry(),
        )
        .map_err(|e| Error::Unavailable(format!("backend metrics: {e}")))?,
    );
    // never a fresh key file next to existing data; then prove the provider holds every KEK
    // the index depends on (an unreachable KMS only warns: /ready stays not-ready until it answers)
    crate::ops::keys::guard_key_file(config, &index).await?;
    let provider = keys::provider_from_config(&config.key_config()).await?;
    let keyring = keys::Keyring::new(
        provider,
        Arc::new(index.clone()),
        keys::CacheConfig::default(),
    );
    crate::ops::keys::check_custody_at_start(config, &keyring).await?;
    let store = Store::new(backend.clone(), index.clone(), keyring, metrics.clone())
        .with_inline(config.inline_max_bytes);
    Ok(Storage {
        index,
        audit,
        backend,
        store,
    })
}

/// A backend that cannot be opened, said in one line: which backend, the cause in plain words
/// and the settings to check (credentials are named by their variables, never shown).
pub(crate) fn backend_start_error(config: &Config, e: crate::backend::BackendError) -> Error {
    use crate::backend::BackendError as B;
    let url = crate::config::redact_url(&config.backend_url());
    let backend = crate::config::setting("backend");
    let creds = if url.starts_with("azure://") {
        "VAULTGATE_AZURE_ACCOUNT_KEY, VAULTGATE_AZURE_SAS or VAULTGATE_AZURE_CONNECTION_STRING"
    } else {
        "VAULTGATE_BACKEND_ACCESS_KEY / VAULTGATE_BACKEND_SECRET_KEY"
    };
    let first_line = |m: String| m.lines().next().unwrap_or_default().to_owned();
    Error::Start(match e {
        B::Denied(m) => format!(
            "backend {url}: access denied ({}); check {creds}",
            first_line(m)
        ),
        B::Unavailable(m) => format!(
            "backend {url}: unreachable ({}); check {backend} and that the service is up",
            first_line(m)
        ),
        B::Io(err) => {
            format!("backend {url}: {err}; check {backend} and the directory's owner and mode")
        }
        B::Config(m) => format!("backend {url}: {}; check {backend}", first_line(m)),
        other => format!(
            "backend {url}: {}; check {backend} and {creds}",
            first_line(other.to_string())
        ),
    })
}

/// Several instances on one database need one backend they all see: a `file://` backend is a
/// disk of this machine unless `shared_filesystem` says every instance mounts it. Refuses to
/// start when another instance is live on the database (PostgreSQL; never on SQLite).
async fn refuse_unshared_local_disk(config: &Config, leases: &Leases) -> Result<()> {
    let backend = config.backend_url();
    if config.shared_filesystem || !backend.starts_with("file://") {
        return Ok(());
    }
    let others = leases
        .other_instances()
        .await
        .map_err(|e| Error::Unavailable(format!("index: cannot list the live instances: {e}")))?;
    if others == 0 {
        return Ok(());
    }
    Err(Error::Config(format!(
        "{others} other gateway instance(s) serve this database, and the backend {} is a local \
         disk only this machine sees; use an object store (s3://, azure://) for several \
         instances, or set {} if every instance mounts this directory from one shared filesystem",
        crate::config::redact_url(&backend),
        crate::config::setting("shared_filesystem")
    )))
}

/// Crash leftovers: the queued garbage, then backend objects no index row references, each
/// only when this instance holds its lease (another instance does it otherwise). An empty index
/// next to a backend full of ciphertext refuses to start.
async fn recover(config: &Config, storage: &Storage, leases: &Leases) -> Result<()> {
    let (index, backend) = (&storage.index, storage.backend.as_ref());
    if leases.try_hold(Job::Gc).await {
        match crate::index::collect_garbage(index, backend).await {
            Ok(r) => tracing::debug!(?r, "gc queue drained"),
            Err(e) => tracing::warn!(error = %e, "gc queue drain failed; will retry"),
        }
    }
    if !leases.try_hold(Job::OrphanSweep).await {
        tracing::info!("orphan sweep left to the instance holding its lease");
        return Ok(());
    }
    // SQLite: no grace period, the index is written by this process alone, so no other
    // instance can have a blob in flight. PostgreSQL: other instances may be writing now.
    let grace = if leases.shared_database() {
        crate::index::ORPHAN_GRACE
    } else {
        Duration::ZERO
    };
    match crate::index::sweep_orphans(index, backend, grace).await {
        Ok(r) if r.withheld > 0 && index.bucket_count().await.unwrap_or(0) == 0 => {
            // An empty index next to a backend full of ciphertext: the index was lost or the
            // database URL points elsewhere. Serving would show empty buckets; refuse instead.
            return Err(Error::Config(format!(
                "the backend {} holds {} objects but the index {} is empty; run `vaultgate reindex` \
                 to rebuild the index from the backend, or point VAULTGATE_DATABASE_URL at the right index",
                crate::config::redact_url(&config.backend_url()),
                r.withheld,
                crate::config::redact_url(&config.database_url())
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
    Ok(())
}

/// What [`open_policy`] opens.
struct PolicyParts {
    store: policy::PolicyStore,
    bootstrap: Option<Bootstrap>,
    limits: Arc<policy::RateLimits>,
    auth_failures: Arc<AuthFailures>,
}

/// The policy store in the index's database, the bootstrap SuperAdmin key, the rate limits and
/// the brute-force limiter.
async fn open_policy(
    config: &Config,
    storage: &Storage,
    metrics: &Metrics,
    leases: &Leases,
) -> Result<PolicyParts> {
    let index = &storage.index;
    let keyring = storage.store.keyring();
    // access keys, principals, grants and bucket tenants live in the same SQLite file; the
    // policy store writes through the index's single writer connection and reads the access
    // check's rows through the index's read pool (never queueing behind writes), cached in
    // memory until the next policy write
    let store = policy::PolicyStore::new(index.write_pool().clone(), Arc::new(keyring.clone()))
        .await?
        .with_read_pool(index.read_pool().clone())
        .with_access_cache()
        .follow_other_instances(policy::FOLLOW_INTERVAL);
    let fixed = match (&config.access_key, &config.secret_key) {
        (Some(a), Some(s)) => Some((a.as_str(), s.clone())),
        _ => None,
    };
    let bootstrap = match ensure_bootstrap(
        &store,
        index,
        keyring,
        fixed.as_ref().map(|(a, s)| (*a, s)),
    )
    .await
    {
        Ok(b) => b,
        // an existing index whose KMS is down at start (custody let it through): the access
        // keys are sealed, so the bootstrap check waits for the KMS in the background while
        // the gateway starts not-ready
        Err(e)
            if matches!(
                keyring.provider().probe().await,
                keys::ProviderState::Unreachable(_)
            ) =>
        {
            tracing::warn!(error = %e, "bootstrap access key check postponed until the key provider answers");
            let (store, index, keyring) = (store.clone(), index.clone(), keyring.clone());
            let fixed = config.access_key.clone().zip(config.secret_key.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    let f = fixed.as_ref().map(|(a, s)| (a.as_str(), s));
                    match ensure_bootstrap(&store, &index, &keyring, f).await {
                        Ok(_) => {
                            tracing::info!("bootstrap access key checked");
                            break;
                        }
                        Err(e) => tracing::debug!(error = %e, "bootstrap still waiting"),
                    }
                }
            });
            None
        }
        Err(e) => return Err(e),
    };
    // the quotas are the deployment's: each instance enforces its share of them
    let limits =
        Arc::new(policy::RateLimits::new(config.rate_limits()).sharing(leases.instances()));
    let auth_failures = Arc::new(
        AuthFailures::new(config.limits.auth_failures_per_min()).sharing(leases.instances()),
    );
    metrics.watch_auth_failures(auth_failures.clone());
    Ok(PolicyParts {
        store,
        bootstrap,
        limits,
        auth_failures,
    })
}

/// The s3s service: the gateway's handlers, authentication (`IndexAuth`), access check
/// (`RoleAccess`), the range fallback route and, with base domains configured, the virtual-host
/// parser, under the POST Object size bound.
fn build_s3_service(
    config: &Config,
    store: &Store,
    creds: Credentials,
    hosts: Option<Arc<super::host::VirtualHosts>>,
) -> S3Service {
    let mut gateway = Gateway::new(
        store.clone(),
        creds.clone(),
        config.kms.is_some(),
        config.region.clone(),
    );
    gateway.sigv2 = config.limits.sigv2();
    gateway.sse_c_refused =
        crate::s3::encryption::sse_c_refused_on(&config.s3_addr, config.tls.s3_files().is_some());
    gateway.bucket_policies = crate::s3::bucket_policy::BucketPolicies::new(
        store.clone(),
        config.tls.s3_files().is_some(),
    );
    let mut builder = S3ServiceBuilder::new(gateway.clone());
    let mut s3_config = s3s::config::S3Config::default();
    s3_config.post_object_max_file_size = config.limits.post_object_max_bytes();
    builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
        s3_config,
    ))));
    builder.set_auth(IndexAuth(creds.clone()));
    builder.set_access(RoleAccess::new(
        creds.clone(),
        config.kms.is_some(),
        gateway.bucket_policies.clone(),
    ));
    builder.set_route(RangeFallback { gateway, creds });
    if let Some(h) = hosts {
        builder.set_host(h.as_ref().clone());
    }
    builder.build()
}

/// What [`spawn_listeners`] started.
struct Listening {
    s3_addr: std::net::SocketAddr,
    admin_addr: std::net::SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Binds both listeners (a port in use or not permitted names the setting to change).
async fn bind(config: &Config) -> Result<(TcpListener, TcpListener)> {
    let mut out = Vec::new();
    for (key, sock) in [
        ("s3_addr", config.s3_socket()?),
        ("admin_addr", config.admin_socket()?),
    ] {
        let listener = TcpListener::bind(sock).await.map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    "the address is already in use (another process listens there)".to_owned()
                }
                std::io::ErrorKind::PermissionDenied => {
                    "permission denied (ports below 1024 need privileges)".to_owned()
                }
                std::io::ErrorKind::AddrNotAvailable => {
                    "the address is not one of this machine's".to_owned()
                }
                _ => e.to_string(),
            };
            Error::Start(format!(
                "cannot listen on {sock}: {why}; change {}",
                crate::config::setting(key)
            ))
        })?;
        out.push(listener);
    }
    let admin = out
        .pop()
        .ok_or_else(|| Error::Internal("no admin listener".into()))?;
    let s3 = out
        .pop()
        .ok_or_else(|| Error::Internal("no s3 listener".into()))?;
    Ok((s3, admin))
}

/// Spawns both bound listeners (the S3 one through `pipeline`), the certificate watcher, the
/// lease keeper and the background jobs under their leases (daily audit prune, lifecycle pass,
/// gc queue drain and orphan sweep, inline write-back).
#[allow(clippy::too_many_arguments)]
async fn spawn_listeners(
    config: &Config,
    (s3_listener, admin_listener): (TcpListener, TcpListener),
    tls: &tls::Tls,
    storage: &Storage,
    leases: &Leases,
    s3: S3Service,
    pipeline: Pipeline,
    admin_api: axum::Router,
) -> Result<Listening> {
    let metrics = pipeline.metrics.clone();
    tls.report_to(&metrics)?;
    let s3_addr = s3_listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|e| Error::Internal(e.to_string()))?;

    let (tx, rx) = watch::channel(false);
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let s3_task = tokio::spawn(listen::serve(
        s3_listener,
        ListenLimits::s3(&config.limits),
        metrics.clone(),
        tls.s3.clone(),
        move |peer| request_service(s3.clone(), pipeline.clone(), peer),
        rx.clone(),
        grace,
    ));
    let lease_task = leases.spawn_keeper(crate::lease::LEASE_RETRY, rx.clone());
    let prune_task = storage.audit.spawn_pruner(leases.clone(), rx.clone());
    let gc_task = crate::index::spawn_collector(
        storage.index.clone(),
        storage.backend.clone(),
        leases.clone(),
        rx.clone(),
    );
    let lifecycle_task = crate::store::lifecycle::LifecycleWorker::new(
        storage.store.clone(),
        Some(storage.audit.ledger.clone()),
        config.limits.lifecycle_day_secs(),
    )
    .spawn(
        Duration::from_secs(config.limits.lifecycle_interval_secs().max(1)),
        leases.clone(),
        rx.clone(),
    );
    let writeback_task =
        crate::store::inline::spawn_writeback(storage.store.clone(), leases.clone(), rx.clone());
    let tls_task = tls.watch(rx.clone());
    let app = router(AdminState {
        store: storage.store.clone(),
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
        rx,
        grace,
    ));
    Ok(Listening {
        s3_addr,
        admin_addr,
        shutdown: tx,
        tasks: vec![
            s3_task,
            admin_task,
            prune_task,
            tls_task,
            lifecycle_task,
            gc_task,
            writeback_task,
            lease_task,
        ],
    })
}

/// This process's user id, for messages (the owner of `/proc/self`; `?` where unknown).
fn process_uid() -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or_else(|_| "?".to_owned(), |m| m.uid().to_string())
}

fn secure_data_dir(config: &Config) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = &config.data_dir;
    let cannot = |what: &str, p: &std::path::Path, e: std::io::Error| {
        let why = match e.kind() {
            std::io::ErrorKind::PermissionDenied => {
                format!("permission denied for this user (uid {})", process_uid())
            }
            std::io::ErrorKind::ReadOnlyFilesystem => "read-only file system".to_owned(),
            _ => e.to_string(),
        };
        Error::Start(format!(
            "cannot {what} {}: {why}; check {} and the directory's owner and mode",
            p.display(),
            crate::config::setting("data_dir")
        ))
    };
    if dir.exists() {
        warn_if_shared(dir);
    } else {
        std::fs::create_dir_all(dir).map_err(|e| cannot("create data dir", dir, e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| cannot("restrict data dir", dir, e))?;
    }
    // a data dir this user cannot write would surface later as SQLite's "code 14"
    let probe = dir.join(".vaultgate-write-probe");
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
        }
        Err(e) => return Err(cannot("write in data dir", dir, e)),
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
