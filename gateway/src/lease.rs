//! Leases for background work: garbage collection, the orphan sweep, the audit retention prune
//! and the lifecycle pass run on one gateway instance at a time.
//!
//! On PostgreSQL a lease is a session-level advisory lock per [`Job`]
//! (`pg_try_advisory_lock`), taken on a connection of its own that this instance keeps open
//! while it holds any lease. A keeper task ([`Leases::spawn_keeper`]) checks that connection
//! and tries to take the leases it does not hold every [`LEASE_RETRY`]. When the holder dies its
//! connection closes, PostgreSQL frees the locks, and another instance takes them at its next
//! try. A job asks [`Leases::try_hold`] before each run and skips the run without it.
//!
//! On SQLite there is one instance (the data dir lock and the file allow no other), so every
//! lease is always held and nothing changes.
//!
//! The lease metric is `vaultgate_lease_held{job}` (1 on the holder, 0 elsewhere).
//!
//! Every serving instance keeps its lease connection open, named [`APPLICATION_NAME`], so the
//! live instances on a database are those sessions ([`Leases::other_instances`]): one that dies
//! drops out at once, with no heartbeat to expire. The keeper counts them at every tick and
//! keeps the count in [`Leases::instances`]: the rate limits enforce their share of each quota by
//! it (`policy::Instances`), so a configured limit is the deployment's, not each instance's. The
//! count is `vaultgate_instances_live` (1 on SQLite).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use audit::db::Dialect;
use prometheus::{IntGauge, IntGaugeVec, Opts, Registry};
use sqlx::{AnyConnection, Connection};
use tokio::sync::{Mutex, watch};

use crate::index::Index;

/// How often an instance checks its lease connection and tries to take the leases it lacks:
/// the takeover time after a holder dies is at most this plus the time PostgreSQL needs to see
/// the holder's connection closed (immediate when its process is killed).
pub const LEASE_RETRY: Duration = Duration::from_secs(2);

/// The `application_name` of every lease connection: how instances find each other.
pub const APPLICATION_NAME: &str = "vaultgate-gateway";

/// Longest wait for the lease connection to open or answer before it is given up.
const LEASE_TIMEOUT: Duration = Duration::from_secs(5);

/// The advisory lock keys of the leases: this base ("VGLEAS" and two zero bytes) plus the job.
const LEASE_LOCK_BASE: i64 = 0x5647_4c45_4153_0000;

/// A piece of background work that runs on one instance at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// draining the gc queue (`index::collect_garbage`)
    Gc,
    /// deleting backend objects no index row references (`index::sweep_orphans`)
    OrphanSweep,
    /// the audit retention prune
    Retention,
    /// the lifecycle pass (expirations, aborted uploads)
    Lifecycle,
    /// writing inline objects back to the backend (`store::inline`)
    WriteBack,
}

impl Job {
    /// Every job, in the order of their slots.
    pub const ALL: [Job; 5] = [
        Job::Gc,
        Job::OrphanSweep,
        Job::Retention,
        Job::Lifecycle,
        Job::WriteBack,
    ];

    /// The job's name (the `job` label of `vaultgate_lease_held`).
    pub fn name(self) -> &'static str {
        match self {
            Job::Gc => "gc",
            Job::OrphanSweep => "orphan_sweep",
            Job::Retention => "retention",
            Job::Lifecycle => "lifecycle",
            Job::WriteBack => "writeback",
        }
    }

    fn slot(self) -> usize {
        self as usize
    }

    fn lock_key(self) -> i64 {
        LEASE_LOCK_BASE + self as i64
    }
}

/// This instance's leases (cheap to clone: shared inside).
#[derive(Clone)]
pub struct Leases {
    inner: Arc<Inner>,
}

struct Inner {
    /// where to open the lease connection; None on SQLite (every lease held)
    url: Option<String>,
    conn: Mutex<Option<AnyConnection>>,
    held: [AtomicBool; 5],
    gauge: OnceLock<IntGaugeVec>,
    /// live instances on the database, this one included (what the rate limits divide by)
    instances: Arc<policy::Instances>,
    live_gauge: OnceLock<IntGauge>,
}

impl std::fmt::Debug for Leases {
    // never the URL: it may hold the database password
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held: Vec<&str> = Job::ALL
            .iter()
            .filter(|j| self.held(**j))
            .map(|j| j.name())
            .collect();
        f.debug_struct("Leases")
            .field("shared_database", &self.inner.url.is_some())
            .field("held", &held)
            .finish()
    }
}

impl Leases {
    /// The leases of an instance on `index`'s database. None is held yet on PostgreSQL (the
    /// first [`Leases::try_hold`] or keeper tick tries); all of them on SQLite.
    pub fn new(index: &Index) -> Leases {
        let pool = index.write_pool();
        let url = match Dialect::of(pool) {
            Dialect::Postgres => Some(pool.connect_options().database_url.to_string()),
            Dialect::Sqlite => None,
        };
        let on_sqlite = url.is_none();
        Leases {
            inner: Arc::new(Inner {
                url,
                conn: Mutex::new(None),
                held: std::array::from_fn(|_| AtomicBool::new(on_sqlite)),
                gauge: OnceLock::new(),
                instances: policy::Instances::new(),
                live_gauge: OnceLock::new(),
            }),
        }
    }

    /// Whether other instances may share the database (PostgreSQL): background work must then
    /// spare what they have in flight (the orphan sweep's grace period).
    pub fn shared_database(&self) -> bool {
        self.inner.url.is_some()
    }

    /// The live gateway instances on this database, this one included, as the keeper last
    /// counted them (1 on SQLite, and until the first count): hand it to the rate limits.
    pub fn instances(&self) -> Arc<policy::Instances> {
        self.inner.instances.clone()
    }

    /// Registers `vaultgate_lease_held{job}` and `vaultgate_instances_live` in `registry` (once).
    pub fn register(&self, registry: &Registry) -> Result<(), prometheus::Error> {
        let live = IntGauge::new(
            "vaultgate_instances_live",
            "Gateway instances live on this database, this one included (rate limits are shared by them)",
        )?;
        registry.register(Box::new(live.clone()))?;
        live.set(i64::from(self.inner.instances.get()));
        let _ = self.inner.live_gauge.set(live);
        let gauge = IntGaugeVec::new(
            Opts::new(
                "vaultgate_lease_held",
                "Background job leases this instance holds (1) or not (0)",
            ),
            &["job"],
        )?;
        registry.register(Box::new(gauge.clone()))?;
        for job in Job::ALL {
            gauge
                .with_label_values(&[job.name()])
                .set(i64::from(self.held(job)));
        }
        let _ = self.inner.gauge.set(gauge);
        Ok(())
    }

    /// Whether this instance held `job`'s lease at the last check.
    pub fn held(&self, job: Job) -> bool {
        self.inner.held[job.slot()].load(Ordering::SeqCst)
    }

    /// Checks the lease connection and tries to take `job`'s lease; true when this instance
    /// holds it (run the job), false when another instance does or the database does not answer
    /// (skip this run).
    pub async fn try_hold(&self, job: Job) -> bool {
        self.refresh(&[job]).await;
        self.held(job)
    }

    /// How many other gateway instances are live on this database: the other sessions named
    /// [`APPLICATION_NAME`] (opens this instance's lease connection first, so of two instances
    /// starting at once each sees the other). Always 0 on SQLite.
    pub async fn other_instances(&self) -> Result<u64, sqlx::Error> {
        let Some(url) = &self.inner.url else {
            return Ok(0);
        };
        let mut guard = self.inner.conn.lock().await;
        let conn = opened(url, &mut guard).await?;
        let n: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = $1 \
             AND pid <> pg_backend_pid()",
        )
        .bind(APPLICATION_NAME)
        .fetch_one(&mut *conn)
        .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Gives every lease up (closes the lease connection) so another instance takes over at its
    /// next try. On SQLite nothing changes.
    pub async fn release(&self) {
        if self.inner.url.is_none() {
            return;
        }
        let mut conn = self.inner.conn.lock().await;
        if let Some(c) = conn.take() {
            let _ = c.close().await;
        }
        // given up on purpose (shutdown): no warning, unlike a lease lost to a failure
        for job in Job::ALL {
            self.change(job, false, false);
        }
    }

    /// Keeps the leases: every `interval` checks the connection, tries to take the leases not
    /// held and counts the live instances, until `stop`, then releases them.
    pub fn spawn_keeper(
        &self,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let leases = self.clone();
        tokio::spawn(async move {
            loop {
                leases.refresh(&Job::ALL).await;
                leases.count_instances().await;
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.wait_for(|v| *v) => break,
                }
            }
            leases.release().await;
        })
    }

    /// Counts the live instances into [`Leases::instances`] (kept as it was when the database
    /// does not answer: a count that cannot be read changes no quota).
    async fn count_instances(&self) {
        if self.inner.url.is_none() {
            return;
        }
        let counted = tokio::time::timeout(LEASE_TIMEOUT, self.other_instances()).await;
        let Ok(Ok(others)) = counted else {
            tracing::debug!("cannot count the live instances; the rate limit shares stay");
            return;
        };
        let live = u32::try_from(others.saturating_add(1)).unwrap_or(u32::MAX);
        if live != self.inner.instances.get() {
            tracing::info!(
                instances = live,
                "live gateway instances on the database changed; each enforces its share of the rate limits"
            );
        }
        self.inner.instances.set(live);
        if let Some(g) = self.inner.live_gauge.get() {
            g.set(i64::from(live));
        }
    }

    fn set(&self, job: Job, held: bool) {
        self.change(job, held, true);
    }

    /// Records whether `job`'s lease is held; a loss is a warning when `lost` (the connection
    /// failed), an info line when the lease was given up (shutdown).
    fn change(&self, job: Job, held: bool, lost: bool) {
        let was = self.inner.held[job.slot()].swap(held, Ordering::SeqCst);
        if was != held {
            if held {
                tracing::info!(job = job.name(), "lease taken: this instance runs the job");
            } else if lost {
                tracing::warn!(job = job.name(), "lease lost");
            } else {
                tracing::info!(job = job.name(), "lease released");
            }
        }
        if let Some(g) = self.inner.gauge.get() {
            g.with_label_values(&[job.name()]).set(i64::from(held));
        }
    }

    fn lose_all(&self) {
        for job in Job::ALL {
            self.set(job, false);
        }
    }

    /// Checks the lease connection (a dead one has lost every lease) and tries to take those of
    /// `jobs` not held.
    async fn refresh(&self, jobs: &[Job]) {
        let Some(url) = &self.inner.url else {
            return;
        };
        let mut guard = self.inner.conn.lock().await;
        if let Some(conn) = guard.as_mut() {
            let alive = tokio::time::timeout(LEASE_TIMEOUT, sqlx::query("SELECT 1").execute(conn))
                .await
                .is_ok_and(|r| r.is_ok());
            if !alive {
                tracing::warn!("the lease connection stopped answering; its leases are released");
                *guard = None;
                self.lose_all();
            }
        }
        if jobs.iter().all(|j| self.held(*j)) {
            return;
        }
        let conn = match opened(url, &mut guard).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "cannot open the lease connection; will retry");
                return;
            }
        };
        for job in jobs.iter().filter(|j| !self.held(**j)) {
            let taken = sqlx::query_scalar::<_, i64>(
                "SELECT CAST(CASE WHEN pg_try_advisory_lock($1) THEN 1 ELSE 0 END AS BIGINT)",
            )
            .bind(job.lock_key())
            .fetch_one(&mut *conn);
            match tokio::time::timeout(LEASE_TIMEOUT, taken).await {
                Ok(Ok(1)) => self.set(*job, true),
                Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => {
                    tracing::warn!("the lease connection failed; its leases are released");
                    *guard = None;
                    self.lose_all();
                    return;
                }
            }
        }
    }
}

/// The lease connection in `slot`, opened (within [`LEASE_TIMEOUT`]) when there is none.
async fn opened<'a>(
    url: &str,
    slot: &'a mut Option<AnyConnection>,
) -> Result<&'a mut AnyConnection, sqlx::Error> {
    if slot.is_none() {
        let conn = tokio::time::timeout(LEASE_TIMEOUT, open_named(url))
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??;
        *slot = Some(conn);
    }
    slot.as_mut().ok_or(sqlx::Error::PoolTimedOut)
}

/// Opens a lease connection named [`APPLICATION_NAME`].
async fn open_named(url: &str) -> Result<AnyConnection, sqlx::Error> {
    audit::db::install_drivers();
    let mut conn = AnyConnection::connect(url).await?;
    sqlx::query(&format!("SET application_name = '{APPLICATION_NAME}'"))
        .execute(&mut conn)
        .await?;
    Ok(conn)
}
