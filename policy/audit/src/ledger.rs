//! The ledger itself: settings, the append path (one writer task that group-commits every queued
//! event in a single `BEGIN IMMEDIATE` transaction, so the chain never forks however many
//! requests append at once), reads and queries, and the pool and migrations it runs on.

use hmac::{KeyInit, Mac};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::{Notify, mpsc, oneshot};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::db::{Dialect, DialectTexts, PoolShape, SizedText, Sql, value_rows};
use crate::error::{AuditError, AuditResult};
use crate::event::{AuditEvent, EventKind, GENESIS_HASH, Outcome, StoredEvent};
use crate::mirror::Mirror;

/// Default retention of audit events.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);
/// Largest page `query` returns.
pub const MAX_PAGE: u32 = 1000;

/// What the ledger keeps of the client address (`keep`, `hash`, `drop` in configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum SourceMode {
    /// Store the address as given.
    #[default]
    Keep,
    /// Store `hmac-sha256:<hex>` of the address under the ledger's [`SourceSecret`]
    /// (stable per address, not reversible by trying all IPv4 addresses without the secret).
    Hash,
    /// Store nothing.
    Drop,
}

impl FromStr for SourceMode {
    type Err = AuditError;
    fn from_str(s: &str) -> AuditResult<SourceMode> {
        match s.to_ascii_lowercase().as_str() {
            "keep" => Ok(SourceMode::Keep),
            "hash" => Ok(SourceMode::Hash),
            "drop" => Ok(SourceMode::Drop),
            _ => Err(AuditError::Config(format!(
                "unknown source address mode {s:?} (expected keep, hash or drop)"
            ))),
        }
    }
}

impl fmt::Display for SourceMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceMode::Keep => "keep",
            SourceMode::Hash => "hash",
            SourceMode::Drop => "drop",
        })
    }
}

/// The HMAC key for [`SourceMode::Hash`]. Zeroized on drop, printed as `[redacted]`.
/// Derive it with [`crate::evidence::EvidenceKey::source_secret`] so that it lives outside the
/// database (a database dump alone does not allow a dictionary attack on the addresses).
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SourceSecret([u8; 32]);

impl SourceSecret {
    /// Wraps 32 secret bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> SourceSecret {
        SourceSecret(bytes)
    }

    fn mac(&self, addr: &str) -> String {
        let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.0) {
            Ok(m) => m,
            // HMAC accepts keys of any length; this arm is unreachable for a 32-byte key.
            Err(_) => return String::from("hmac-sha256:unavailable"),
        };
        mac.update(addr.as_bytes());
        format!("hmac-sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }
}

impl fmt::Debug for SourceSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// What the gateway does with a read request whose event could not be recorded
/// (`fail-closed`, `fail-open` in configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ReadPolicy {
    /// Fail the read with 503 like a write (default).
    #[default]
    FailClosed,
    /// Serve the read anyway (the failure is still counted and logged).
    FailOpen,
}

impl FromStr for ReadPolicy {
    type Err = AuditError;
    fn from_str(s: &str) -> AuditResult<ReadPolicy> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "fail-closed" | "closed" => Ok(ReadPolicy::FailClosed),
            "fail-open" | "open" => Ok(ReadPolicy::FailOpen),
            _ => Err(AuditError::Config(format!(
                "unknown audit read policy {s:?} (expected fail-closed or fail-open)"
            ))),
        }
    }
}

impl fmt::Display for ReadPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReadPolicy::FailClosed => "fail-closed",
            ReadPolicy::FailOpen => "fail-open",
        })
    }
}

/// Configuration values are read with `FromStr` and written with `Display`, so a TOML file,
/// a variable and a flag accept the same spellings and refuse with the same message.
macro_rules! text_setting {
    ($($t:ty),*) => {$(
        impl TryFrom<String> for $t {
            type Error = AuditError;
            fn try_from(s: String) -> AuditResult<$t> {
                s.parse()
            }
        }
        impl From<$t> for String {
            fn from(v: $t) -> String {
                v.to_string()
            }
        }
    )*};
}
text_setting!(SourceMode, ReadPolicy);

/// Ledger settings (the `[audit]` section of the gateway config maps onto this).
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// keep / hash / drop the client address (default keep)
    pub source_mode: SourceMode,
    /// required for [`SourceMode::Hash`]
    pub source_secret: Option<SourceSecret>,
    /// optional append-only JSON-lines mirror
    pub mirror_path: Option<PathBuf>,
    /// fsync the mirror after each batch (default true)
    pub mirror_fsync: bool,
    /// reads whose event cannot be recorded (default fail closed)
    pub read_policy: ReadPolicy,
    /// age after which [`Ledger::prune`] removes events (default 90 days)
    pub retention: Duration,
    /// most events committed in one transaction (default 512)
    pub max_batch: usize,
    /// events waiting for the writer before `append` waits for room (default 16384)
    pub queue_capacity: usize,
    /// how long the writer gathers reads' queued events before committing a batch of them
    /// (default [`READ_LINGER`]; zero: at once)
    pub read_linger: Duration,
}

/// How long the ledger's writer waits, after a read's queued event arrives, for more of them
/// before it commits (when nothing in the batch is waited for): at one client each read's event
/// would otherwise be a transaction (and an fsync) of its own. It bounds, with one commit's
/// duration, the reads' events a crash can lose (docs/AUDIT.md).
pub const READ_LINGER: Duration = Duration::from_millis(5);

impl Default for LedgerConfig {
    fn default() -> LedgerConfig {
        LedgerConfig {
            source_mode: SourceMode::Keep,
            source_secret: None,
            mirror_path: None,
            mirror_fsync: true,
            read_policy: ReadPolicy::FailClosed,
            retention: DEFAULT_RETENTION,
            max_batch: 512,
            queue_capacity: 16384,
            read_linger: READ_LINGER,
        }
    }
}

/// Counters the gateway exports as metrics (read with [`AuditStats::snapshot`]).
#[derive(Debug, Default)]
pub struct AuditStats {
    /// events committed
    pub appended: AtomicU64,
    /// `append` calls that returned an error (the event was not recorded)
    pub failures: AtomicU64,
    /// committed events that could not be written to the mirror file
    pub mirror_failures: AtomicU64,
    /// transactions committed
    pub batches: AtomicU64,
    /// the writer's last transaction failed (cleared by the next that commits): queued events
    /// are refused meanwhile, so reads fail closed instead of losing their events unseen
    pub failing: std::sync::atomic::AtomicBool,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// events committed
    pub appended: u64,
    /// failed appends
    pub failures: u64,
    /// events missing from the mirror
    pub mirror_failures: u64,
    /// transactions committed
    pub batches: u64,
}

impl AuditStats {
    /// Reads all counters.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            appended: self.appended.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            mirror_failures: self.mirror_failures.load(Ordering::Relaxed),
            batches: self.batches.load(Ordering::Relaxed),
        }
    }
}

/// Where an appended event landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// its sequence number (also the id for `GET /admin/v1/audit/{id}`)
    pub seq: i64,
    /// its hash
    pub hash: String,
}

/// The chain head: last sequence number and its hash (seq 0 / genesis hash when empty).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    /// last sequence number
    pub seq: i64,
    /// its hash
    pub hash: String,
}

/// Event selection shared by queries and evidence export. All fields are optional and combine
/// with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// events at or after this time (Unix ms)
    pub from_ms: Option<i64>,
    /// events before this time (Unix ms, exclusive)
    pub to_ms: Option<i64>,
    /// exact principal
    pub principal: Option<String>,
    /// exact tenant
    pub tenant: Option<String>,
    /// exact action name
    pub action: Option<String>,
    /// exact bucket
    pub bucket: Option<String>,
    /// object keys starting with this prefix
    pub key_prefix: Option<String>,
    /// outcome
    pub outcome: Option<Outcome>,
    /// s3 or admin
    pub kind: Option<EventKind>,
    /// exact request id (`x-amz-request-id` / `x-request-id` of the answer)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// exact HTTP status sent
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// One page request: newest first, `before_seq` is the cursor from the previous page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// selection
    pub filter: AuditFilter,
    /// only events with seq < this (pagination cursor)
    pub before_seq: Option<i64>,
    /// page size, 1..=[`MAX_PAGE`] (0 means 100)
    pub limit: u32,
}

/// One page of events, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// the events, seq descending
    pub events: Vec<StoredEvent>,
    /// cursor for the next (older) page, `None` on the last page
    pub next_before_seq: Option<i64>,
}

/// What the writer task receives: an event (its sender waits for the receipt, or has gone
/// away for a queued one), or a barrier answered once everything before it is committed.
// barriers are rare: boxing every event to shrink them would cost an allocation per request
#[allow(clippy::large_enum_variant)]
enum Job {
    Event(AuditEvent, oneshot::Sender<AuditResult<Receipt>>),
    Barrier(oneshot::Sender<()>),
}

impl Job {
    /// A read's queued event: nobody waits for its commit (its receiver is gone already when
    /// it is sent).
    fn queued(&self) -> bool {
        matches!(self, Job::Event(_, reply) if reply.is_closed())
    }
}

struct Inner {
    pool: AnyPool,
    read_pool: AnyPool,
    tx: mpsc::Sender<Job>,
    /// ends the writer's linger: a job somebody waits for was sent
    waited: Arc<Notify>,
    source_mode: SourceMode,
    source_secret: Option<SourceSecret>,
    read_policy: ReadPolicy,
    retention: Duration,
    stats: Arc<AuditStats>,
    /// a mirror file is written after each of the writer's batches
    mirrored: bool,
}

/// The audit ledger. Cheap to clone; all clones share one writer task.
#[derive(Clone)]
pub struct Ledger {
    inner: Arc<Inner>,
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ledger")
            .field("source_mode", &self.inner.source_mode)
            .field("read_policy", &self.inner.read_policy)
            .finish_non_exhaustive()
    }
}

/// Applies this crate's migrations (`policy/audit/migrations`, version 30000000000001) to `pool`,
/// ignoring the gateway's and the policy store's migrations recorded in the same
/// `_sqlx_migrations` table.
pub async fn migrate(pool: &AnyPool) -> AuditResult<()> {
    let mut migrator = match Dialect::of(pool) {
        Dialect::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        Dialect::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    Ok(())
}

/// Opens a pool on `database_url` (`sqlite://PATH` or `postgres://…`) like the gateway's index
/// does (SQLite: WAL, synchronous FULL, 30 s busy timeout; see [`crate::db::connect`]). With
/// `create` false a SQLite file must exist and its journal mode is left as it is
/// (verification only reads).
pub async fn open_pool(database_url: &str, create: bool) -> AuditResult<AnyPool> {
    Ok(crate::db::connect(
        database_url,
        PoolShape {
            max: 4,
            min: 0,
            acquire_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(600)),
            create,
        },
    )
    .await?)
}

impl Ledger {
    /// Opens the ledger on the gateway's pool: runs the audit migrations, opens the mirror
    /// (catching it up with the database) and starts the writer task (must be called inside a
    /// tokio runtime). Queries and verification use the same pool; see [`Ledger::open_with_reader`].
    pub async fn open(pool: AnyPool, cfg: LedgerConfig) -> AuditResult<Ledger> {
        Ledger::open_with_reader(pool.clone(), pool, cfg).await
    }

    /// Like [`Ledger::open`], with a separate pool for queries, verification and exports, so
    /// that a long walk never holds the connection appends need (pass the gateway's write pool
    /// and read pool of the same database).
    pub async fn open_with_reader(
        pool: AnyPool,
        read_pool: AnyPool,
        cfg: LedgerConfig,
    ) -> AuditResult<Ledger> {
        if cfg.source_mode == SourceMode::Hash && cfg.source_secret.is_none() {
            return Err(AuditError::Config(
                "source address mode \"hash\" needs a source secret".into(),
            ));
        }
        if cfg.max_batch == 0 || cfg.queue_capacity == 0 {
            return Err(AuditError::Config(
                "max_batch and queue_capacity must be at least 1".into(),
            ));
        }
        migrate(&pool).await?;
        let mirror = match &cfg.mirror_path {
            Some(p) => {
                let mut m = Mirror::open(p, cfg.mirror_fsync).await?;
                m.catch_up(&pool, None).await?;
                Some(m)
            }
            None => None,
        };
        let stats = Arc::new(AuditStats::default());
        let mirrored = mirror.is_some();
        let (tx, rx) = mpsc::channel(cfg.queue_capacity);
        let waited = Arc::new(Notify::new());
        tokio::spawn(run_writer(
            pool.clone(),
            Queue {
                rx,
                waited: Arc::clone(&waited),
                linger: cfg.read_linger,
            },
            mirror,
            Arc::clone(&stats),
            cfg.max_batch,
        ));
        Ok(Ledger {
            inner: Arc::new(Inner {
                pool,
                read_pool,
                tx,
                waited,
                source_mode: cfg.source_mode,
                source_secret: cfg.source_secret,
                read_policy: cfg.read_policy,
                retention: cfg.retention,
                stats,
                mirrored,
            }),
        })
    }

    /// Records one event and returns its place in the chain once it is committed.
    /// Any `Err` means the event is not in the ledger (and is counted in `stats().failures`).
    pub async fn append(&self, event: AuditEvent) -> AuditResult<Receipt> {
        let result = self.append_inner(event).await;
        if result.is_err() {
            self.inner.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    async fn append_inner(&self, event: AuditEvent) -> AuditResult<Receipt> {
        let (reply, wait) = oneshot::channel();
        self.send(Job::Event(self.with_source(event), reply))
            .await?;
        wait.await
            .map_err(|_| AuditError::Unavailable("the ledger writer dropped the event".into()))?
    }

    /// Whether another writer may append events in its own transaction ([`ChainAppender`]):
    /// not when a mirror file is configured, which only the ledger's writer keeps in step.
    pub fn shares_transactions(&self) -> bool {
        !self.inner.mirrored
    }

    /// `event` as [`ChainAppender::append`] takes it: the source mode applied, every text field
    /// storable (what [`Ledger::append`] does before its commit).
    pub fn prepare(&self, event: AuditEvent) -> AuditEvent {
        self.with_source(event)
    }

    /// Counts `n` events a [`ChainAppender`] committed (the `appended` statistic).
    pub fn note_appended(&self, n: u64) {
        self.inner.stats.appended.fetch_add(n, Ordering::Relaxed);
    }

    /// The event as it is stored: its client address after the source mode, and every text
    /// field storable ([`AuditEvent::storable`]).
    fn with_source(&self, mut event: AuditEvent) -> AuditEvent {
        event.source = match (self.inner.source_mode, event.source.take()) {
            (_, None) | (SourceMode::Drop, _) => None,
            (SourceMode::Keep, Some(a)) => Some(a),
            (SourceMode::Hash, Some(a)) => self.inner.source_secret.as_ref().map(|s| s.mac(&a)),
        };
        event.storable()
    }

    /// Queues `job` for the writer; one somebody waits for (an appended event, a barrier) ends
    /// the writer's linger for reads' events.
    async fn send(&self, job: Job) -> AuditResult<()> {
        let waited = !job.queued();
        self.inner
            .tx
            .send(job)
            .await
            .map_err(|_| AuditError::Unavailable("the ledger writer has stopped".into()))?;
        if waited {
            self.inner.waited.notify_one();
        }
        Ok(())
    }

    /// Queues the event of a read: it is committed by the writer's next transaction, without
    /// the caller waiting for that commit (its fsync). While the writer's last transaction has
    /// failed, the event is appended and waited for instead, so a read whose event cannot be
    /// kept fails closed like a write (`Err`), and the first that is kept clears the failure.
    /// A crash can lose the events queued since the last commit: those of at most one
    /// transaction in flight (docs/AUDIT.md states the window).
    pub async fn enqueue(&self, event: AuditEvent) -> AuditResult<()> {
        if self.inner.stats.failing.load(Ordering::Acquire) {
            return self.append(event).await.map(drop);
        }
        // nobody waits for the receipt: the writer's answer goes nowhere
        let (reply, _) = oneshot::channel();
        let result = self.send(Job::Event(self.with_source(event), reply)).await;
        if result.is_err() {
            self.inner.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Waits until every event queued before this call is committed (or its transaction has
    /// failed): what reads of the ledger call first, so a reader sees every request answered
    /// before it asked.
    pub async fn sync(&self) {
        let (reply, wait) = oneshot::channel();
        if self.send(Job::Barrier(reply)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// Whether the gateway must fail a request whose event could not be recorded:
    /// always for writes, deletes and admin changes; for reads per [`ReadPolicy`].
    pub fn fail_request_on_error(&self, is_read: bool) -> bool {
        !is_read || self.inner.read_policy == ReadPolicy::FailClosed
    }

    /// The counters (shared, live).
    pub fn stats(&self) -> Arc<AuditStats> {
        Arc::clone(&self.inner.stats)
    }

    /// The configured retention.
    pub fn retention(&self) -> Duration {
        self.inner.retention
    }

    /// The database pool the ledger writes to.
    pub fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// The pool used for queries, verification and exports.
    pub fn read_pool(&self) -> &AnyPool {
        &self.inner.read_pool
    }

    /// The current chain head (seq 0 and the genesis hash for an empty ledger).
    pub async fn head(&self) -> AuditResult<Head> {
        self.sync().await;
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_optional(&self.inner.read_pool)
            .await?;
        Ok(match row {
            Some(r) => Head {
                seq: r.try_get("seq")?,
                hash: r.try_get("hash")?,
            },
            None => Head {
                seq: 0,
                hash: GENESIS_HASH.to_owned(),
            },
        })
    }

    /// One event by sequence number (`GET /admin/v1/audit/{id}`).
    pub async fn get(&self, seq: i64) -> AuditResult<Option<StoredEvent>> {
        self.sync().await;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_events WHERE seq = $1"
        ))
        .bind(seq)
        .fetch_optional(&self.inner.read_pool)
        .await?;
        row.as_ref().map(row_to_event).transpose()
    }

    /// A page of events matching `q`, newest first (`GET /admin/v1/audit`).
    pub async fn query(&self, q: &AuditQuery) -> AuditResult<AuditPage> {
        self.sync().await;
        let limit = match q.limit {
            0 => 100,
            n if n > MAX_PAGE => {
                return Err(AuditError::Invalid(format!(
                    "limit {n} exceeds the maximum page size {MAX_PAGE}"
                )));
            }
            n => n,
        };
        let mut qb = Sql::new(format!("SELECT {COLUMNS} FROM audit_events"));
        push_filter(&mut qb, &q.filter, q.before_seq);
        qb.push(" ORDER BY seq DESC LIMIT ");
        qb.bind(i64::from(limit) + 1);
        let rows = qb.build().fetch_all(&self.inner.read_pool).await?;
        let mut events = rows
            .iter()
            .map(row_to_event)
            .collect::<AuditResult<Vec<_>>>()?;
        let more = events.len() > limit as usize;
        events.truncate(limit as usize);
        let next_before_seq = if more {
            events.last().map(|e| e.seq)
        } else {
            None
        };
        Ok(AuditPage {
            events,
            next_before_seq,
        })
    }
}

/// Every event matching `filter`, oldest first, at most `max + 1` (so the caller can tell that
/// there were more than `max`).
pub(crate) async fn select_ascending(
    conn: &mut sqlx::AnyConnection,
    filter: &AuditFilter,
    max: usize,
) -> AuditResult<Vec<StoredEvent>> {
    let mut qb = Sql::new(format!("SELECT {COLUMNS} FROM audit_events"));
    push_filter(&mut qb, filter, None);
    qb.push(" ORDER BY seq ASC LIMIT ");
    qb.bind(i64::try_from(max).unwrap_or(i64::MAX).saturating_add(1));
    let rows = qb.build().fetch_all(&mut *conn).await?;
    rows.iter().map(row_to_event).collect()
}

/// Events with `from <= seq <= to`, oldest first.
pub(crate) async fn select_range(
    conn: &mut sqlx::AnyConnection,
    from: i64,
    to: i64,
) -> AuditResult<Vec<StoredEvent>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM audit_events WHERE seq >= $1 AND seq <= $2 ORDER BY seq ASC"
    ))
    .bind(from)
    .bind(to)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(row_to_event).collect()
}

pub(crate) const COLUMNS: &str = "seq, time_ms, request_id, kind, principal, tenant, action, \
     bucket, object_key, outcome, status, error_code, bytes_in, bytes_out, key_version, source, \
     duration_us, prev_hash, hash";

fn push_filter(qb: &mut Sql, f: &AuditFilter, before_seq: Option<i64>) {
    qb.push(" WHERE 1 = 1");
    if let Some(v) = f.from_ms {
        qb.push(" AND time_ms >= ").bind(v);
    }
    if let Some(v) = f.to_ms {
        qb.push(" AND time_ms < ").bind(v);
    }
    if let Some(v) = &f.principal {
        qb.push(" AND principal = ").bind(v.clone());
    }
    if let Some(v) = &f.tenant {
        qb.push(" AND tenant = ").bind(v.clone());
    }
    if let Some(v) = &f.action {
        qb.push(" AND action = ").bind(v.clone());
    }
    if let Some(v) = &f.bucket {
        qb.push(" AND bucket = ").bind(v.clone());
    }
    if let Some(v) = &f.key_prefix {
        qb.push(" AND substr(object_key, 1, length(")
            .bind(v.clone())
            .push(")) = ")
            .bind(v.clone());
    }
    if let Some(v) = f.outcome {
        qb.push(" AND outcome = ").bind(v.as_str());
    }
    if let Some(v) = f.kind {
        qb.push(" AND kind = ").bind(v.as_str());
    }
    if let Some(v) = &f.request_id {
        qb.push(" AND request_id = ").bind(v.clone());
    }
    if let Some(v) = f.status {
        qb.push(" AND status = ").bind(i64::from(v));
    }
    if let Some(v) = before_seq {
        qb.push(" AND seq < ").bind(v);
    }
}

pub(crate) fn row_to_event(r: &AnyRow) -> AuditResult<StoredEvent> {
    let seq: i64 = r.try_get("seq")?;
    let corrupt = |what: &str| AuditError::Corrupt(format!("event {seq}: bad {what}"));
    let kind: String = r.try_get("kind")?;
    let outcome: String = r.try_get("outcome")?;
    let status: i64 = r.try_get("status")?;
    let key_version: Option<i64> = r.try_get("key_version")?;
    Ok(StoredEvent {
        seq,
        time_ms: r.try_get("time_ms")?,
        request_id: r.try_get("request_id")?,
        kind: EventKind::parse(&kind).map_err(|_| corrupt("kind"))?,
        principal: r.try_get("principal")?,
        tenant: r.try_get("tenant")?,
        action: r.try_get("action")?,
        bucket: r.try_get("bucket")?,
        key: r.try_get("object_key")?,
        outcome: Outcome::parse(&outcome).map_err(|_| corrupt("outcome"))?,
        status: u16::try_from(status).map_err(|_| corrupt("status"))?,
        error_code: r.try_get("error_code")?,
        bytes_in: r.try_get("bytes_in")?,
        bytes_out: r.try_get("bytes_out")?,
        key_version: key_version
            .map(u32::try_from)
            .transpose()
            .map_err(|_| corrupt("key_version"))?,
        source: r.try_get("source")?,
        duration_us: r.try_get("duration_us")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

/// The writer's side of the queue.
struct Queue {
    rx: mpsc::Receiver<Job>,
    /// notified after a job somebody waits for is sent
    waited: Arc<Notify>,
    linger: Duration,
}

impl Queue {
    /// The next batch into `jobs` (empty: every sender is gone). A batch of reads' queued
    /// events only waits up to the linger for more of them, without being woken by each as it
    /// is sent (the queue is not polled meanwhile), and ends the wait early when a job somebody
    /// waits for is sent.
    async fn next_batch(&mut self, jobs: &mut Vec<Job>, max_batch: usize) {
        if self.rx.recv_many(jobs, max_batch).await == 0 {
            return;
        }
        if self.linger.is_zero() || jobs.len() >= max_batch || !jobs.iter().all(Job::queued) {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(self.linger) => {}
            () = self.waited.notified() => {}
        }
        while jobs.len() < max_batch {
            match self.rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
    }
}

async fn run_writer(
    pool: AnyPool,
    mut queue: Queue,
    mut mirror: Option<Mirror>,
    stats: Arc<AuditStats>,
    max_batch: usize,
) {
    let mut jobs: Vec<Job> = Vec::with_capacity(max_batch);
    loop {
        jobs.clear();
        queue.next_batch(&mut jobs, max_batch).await;
        if jobs.is_empty() {
            break;
        }
        let mut events = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        let mut barriers = Vec::new();
        for job in jobs.drain(..) {
            match job {
                Job::Event(e, reply) => {
                    events.push(e);
                    replies.push(reply);
                }
                Job::Barrier(b) => barriers.push(b),
            }
        }
        if events.is_empty() {
            for b in barriers {
                let _ = b.send(());
            }
            continue;
        }
        match crate::db::timed(
            crate::db::DbOp::AuditAppendBatch,
            commit_batch(&pool, events),
        )
        .await
        {
            Ok(stored) => {
                stats.failing.store(false, Ordering::Release);
                stats
                    .appended
                    .fetch_add(stored.len() as u64, Ordering::Relaxed);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                if let Some(m) = mirror.as_mut()
                    && let Err(e) = m.append(&pool, &stored).await
                {
                    stats
                        .mirror_failures
                        .fetch_add(stored.len() as u64, Ordering::Relaxed);
                    tracing::error!(error = %e, events = stored.len(), "audit mirror write failed");
                }
                for (reply, s) in replies.into_iter().zip(stored) {
                    let _ = reply.send(Ok(Receipt {
                        seq: s.seq,
                        hash: s.hash,
                    }));
                }
            }
            Err(e) => {
                stats.failing.store(true, Ordering::Release);
                tracing::error!(error = %e, events = replies.len(), "audit batch not recorded");
                let msg = e.to_string();
                for reply in replies {
                    // a queued event has no receiver: count its loss here
                    if reply
                        .send(Err(AuditError::Unavailable(msg.clone())))
                        .is_err()
                    {
                        stats.failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        for b in barriers {
            let _ = b.send(());
        }
    }
}

/// Takes the chain's lock ([`Dialect::lock_ledger`]), then reads the head inside the write
/// transaction and checks it against the last row.
pub(crate) async fn locked_head(
    conn: &mut sqlx::AnyConnection,
    dialect: Dialect,
) -> AuditResult<Head> {
    read_head(conn, dialect, false).await
}

/// [`locked_head`], first opening the write transaction ([`Dialect::begin_write`]) when `begin`:
/// in the same round trip to the database where the dialect runs scripts (SQLite, whose chain
/// lock is that transaction's own write lock).
async fn read_head(
    conn: &mut sqlx::AnyConnection,
    dialect: Dialect,
    begin: bool,
) -> AuditResult<Head> {
    // The head row and the last event in one statement (one round trip to the database thread
    // on every write transaction's hot path): always one row, its columns NULL where the head
    // row or the events are missing.
    const HEAD: &str = "SELECT h.seq AS head_seq, h.hash AS head_hash, e.seq AS last_seq, \
         e.hash AS last_hash FROM (SELECT 1 AS one) o \
         LEFT JOIN audit_head h ON h.id = 1 \
         LEFT JOIN (SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1) e ON 1 = 1";
    static BEGIN_AND_HEAD: LazyLock<String> =
        LazyLock::new(|| format!("{}; {HEAD}", Dialect::Sqlite.begin_write()));
    let text = if begin && dialect.runs_scripts() {
        BEGIN_AND_HEAD.as_str()
    } else {
        if begin {
            sqlx::query(dialect.begin_write())
                .execute(&mut *conn)
                .await?;
        }
        dialect.lock_ledger(&mut *conn).await?;
        HEAD
    };
    // fetch_all, not fetch_one: sqlx's `Any` SQLite connection answers fetch_one/fetch_optional
    // from a script's first result only, here the BEGIN's (no row)
    let row = sqlx::query(text)
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .next()
        .ok_or(sqlx::Error::RowNotFound)?;
    let columns = |seq: &str, hash: &str| -> AuditResult<Option<Head>> {
        let seq: Option<i64> = row.try_get(seq)?;
        let hash: Option<String> = row.try_get(hash)?;
        Ok(seq.zip(hash).map(|(seq, hash)| Head { seq, hash }))
    };
    let head = columns("head_seq", "head_hash")?;
    let last = columns("last_seq", "last_hash")?;
    let pair = |r: &AnyRow| -> AuditResult<Head> {
        Ok(Head {
            seq: r.try_get("seq")?,
            hash: r.try_get("hash")?,
        })
    };
    match (head, last) {
        (None, None) => {
            let cp: Option<i64> = sqlx::query_scalar("SELECT MAX(seq) FROM audit_checkpoints")
                .fetch_one(&mut *conn)
                .await?;
            match cp {
                None => Ok(Head {
                    seq: 0,
                    hash: GENESIS_HASH.to_owned(),
                }),
                Some(s) => Err(AuditError::Corrupt(format!(
                    "chain head missing although a checkpoint at seq {s} exists"
                ))),
            }
        }
        (Some(h), Some(l)) if h == l => Ok(h),
        (Some(h), None) => {
            // Everything was pruned: the head must be the newest checkpoint.
            let cp =
                sqlx::query("SELECT seq, hash FROM audit_checkpoints ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *conn)
                    .await?;
            match cp.as_ref().map(pair).transpose()? {
                Some(c) if c == h => Ok(h),
                _ => Err(AuditError::Corrupt(format!(
                    "chain head is seq {} but no event or checkpoint matches it (events deleted?)",
                    h.seq
                ))),
            }
        }
        (h, l) => Err(AuditError::Corrupt(format!(
            "chain head {} does not match the last event {} (events deleted or added outside the ledger); run `vaultgate audit verify`",
            h.map_or("missing".to_owned(), |h| format!("seq {}", h.seq)),
            l.map_or("missing".to_owned(), |l| format!("seq {}", l.seq)),
        ))),
    }
}

/// Appends events to the chain inside a write transaction its caller owns, so that a change and
/// its audit events commit together (the index writer's group commit does this for object
/// writes: one COMMIT, one fsync, for both). [`ChainAppender::begin`] opens that transaction,
/// takes the chain's lock in it and reads the head, as the ledger's own writer does (or
/// [`ChainAppender::lock`] in a transaction already open); the caller makes its change;
/// [`ChainAppender::commit`] links the events after the head, inserts them, writes the head row
/// and commits. On SQLite each end is one round trip to the connection's thread: `BEGIN
/// IMMEDIATE` rides with the head read, the events' `INSERT` and the head's with the `COMMIT`.
///
/// The transaction is plain SQL on the connection (not an `sqlx::Transaction`): on an error the
/// caller rolls it back ([`crate::db::rollback`]).
#[derive(Debug)]
pub struct ChainAppender {
    head: Head,
    dialect: Dialect,
}

impl ChainAppender {
    /// Opens a write transaction on `conn` ([`Dialect::begin_write`]), locks the chain in it and
    /// reads its head.
    pub async fn begin(
        conn: &mut sqlx::AnyConnection,
        dialect: Dialect,
    ) -> AuditResult<ChainAppender> {
        let head = read_head(conn, dialect, true).await?;
        Ok(ChainAppender { head, dialect })
    }

    /// Locks the chain in the write transaction open on `conn` and reads its head.
    pub async fn lock(
        conn: &mut sqlx::AnyConnection,
        dialect: Dialect,
    ) -> AuditResult<ChainAppender> {
        let head = read_head(conn, dialect, false).await?;
        Ok(ChainAppender { head, dialect })
    }

    /// Links `events` ([`Ledger::prepare`]d) after the head, in order, inserts them, writes the
    /// head row and commits the transaction; returns each event's receipt.
    pub async fn commit(
        self,
        conn: &mut sqlx::AnyConnection,
        events: Vec<AuditEvent>,
    ) -> AuditResult<Vec<Receipt>> {
        let stored = self.commit_stored(conn, events).await?;
        Ok(stored
            .into_iter()
            .map(|s| Receipt {
                seq: s.seq,
                hash: s.hash,
            })
            .collect())
    }

    /// [`ChainAppender::commit`], answering the events as stored. The events go in with one
    /// `INSERT` per [`INSERT_ROWS`]; on SQLite the last of them, the head's upsert and the
    /// `COMMIT` are one script (one round trip); elsewhere one statement each.
    async fn commit_stored(
        self,
        conn: &mut sqlx::AnyConnection,
        events: Vec<AuditEvent>,
    ) -> AuditResult<Vec<StoredEvent>> {
        let mut head = self.head;
        let stored: Vec<StoredEvent> = events
            .into_iter()
            .map(|event| {
                let s = linked(&head, event);
                head = Head {
                    seq: s.seq,
                    hash: s.hash.clone(),
                };
                s
            })
            .collect();
        let mut chunks: Vec<&[StoredEvent]> = stored.chunks(INSERT_ROWS).collect();
        let last = if self.dialect.runs_scripts() {
            chunks.pop()
        } else {
            None
        };
        for rows in chunks {
            insert_events(conn, self.dialect, rows).await?;
        }
        match last {
            Some(rows) => {
                let (text, kept) = SQLITE_CLOSING.for_rows(rows.len());
                let q = bind_events(sqlx::query(text.as_ref()).persistent(kept), rows);
                q.bind(head.seq)
                    .bind(&head.hash)
                    .execute(&mut *conn)
                    .await?;
            }
            None => {
                if !stored.is_empty() {
                    sqlx::query(HEAD_UPSERT)
                        .bind(head.seq)
                        .bind(&head.hash)
                        .execute(&mut *conn)
                        .await?;
                }
                sqlx::query("COMMIT").execute(&mut *conn).await?;
            }
        }
        Ok(stored)
    }
}

/// Writes the chain's head row (`$1` its seq, `$2` its hash).
const HEAD_UPSERT: &str = "INSERT INTO audit_head (id, seq, hash) VALUES (1, $1, $2) \
                           ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash";

/// Opens a write transaction on a connection of `pool`, appends `events` and commits (the
/// ledger writer's batch); rolled back on an error.
async fn commit_batch(pool: &AnyPool, events: Vec<AuditEvent>) -> AuditResult<Vec<StoredEvent>> {
    let dialect = Dialect::of(pool);
    let mut conn = pool.acquire().await?;
    let result = async {
        let chain = ChainAppender::begin(&mut conn, dialect).await?;
        chain.commit_stored(&mut conn, events).await
    }
    .await;
    if result.is_err() {
        crate::db::rollback(&mut conn).await;
    }
    result
}

/// `event` as the chain's next event after `head`.
fn linked(head: &Head, event: AuditEvent) -> StoredEvent {
    let source = event.source.clone();
    StoredEvent::chain(event, source, head.seq + 1, head.hash.clone())
}

/// Most events one `INSERT` carries (19 values each: within SQLite's and PostgreSQL's limits on
/// bound values).
const INSERT_ROWS: usize = 256;

/// `INSERT INTO audit_events ({COLUMNS}) VALUES (…), …` for `rows` events of 19 values each,
/// named as `dialect` names many values ([`Dialect::first_value`]).
fn insert_text(dialect: Dialect, rows: usize) -> String {
    format!(
        "INSERT INTO audit_events ({COLUMNS}) VALUES {}",
        value_rows(rows, 19, dialect.first_value())
    )
}

/// The events' `INSERT` in each dialect.
static INSERT: LazyLock<DialectTexts> =
    LazyLock::new(|| DialectTexts::new(INSERT_ROWS, insert_text));

/// SQLite's script that ends an append (1 ≤ events ≤ [`INSERT_ROWS`]): their `INSERT`, the
/// head's upsert and `COMMIT`, every value anonymous (bound in order: the events', then the
/// head's seq and hash).
static SQLITE_CLOSING: LazyLock<SizedText> = LazyLock::new(|| {
    SizedText::new(INSERT_ROWS, |n| {
        format!(
            "{}; {}; COMMIT",
            insert_text(Dialect::Sqlite, n),
            HEAD_UPSERT.replace("$1", "?").replace("$2", "?")
        )
    })
});

/// Inserts `rows` (at most [`INSERT_ROWS`]) with one statement ([`SizedText`]).
async fn insert_events(
    conn: &mut sqlx::AnyConnection,
    dialect: Dialect,
    rows: &[StoredEvent],
) -> AuditResult<()> {
    let (text, kept) = INSERT.of(dialect).for_rows(rows.len());
    let q = bind_events(sqlx::query(text.as_ref()).persistent(kept), rows);
    q.execute(&mut *conn).await?;
    Ok(())
}

/// Binds the 19 values of each of `rows`, in [`COLUMNS`] order.
fn bind_events<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    rows: &'q [StoredEvent],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for s in rows {
        q = q
            .bind(s.seq)
            .bind(s.time_ms)
            .bind(&s.request_id)
            .bind(s.kind.as_str())
            .bind(&s.principal)
            .bind(&s.tenant)
            .bind(&s.action)
            .bind(&s.bucket)
            .bind(&s.key)
            .bind(s.outcome.as_str())
            .bind(i64::from(s.status))
            .bind(&s.error_code)
            .bind(s.bytes_in)
            .bind(s.bytes_out)
            .bind(s.key_version.map(i64::from))
            .bind(&s.source)
            .bind(s.duration_us)
            .bind(&s.prev_hash)
            .bind(&s.hash);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlites_insert_binds_anonymous_values_and_postgres_numbers_them() {
        let sqlite = insert_text(Dialect::Sqlite, 3);
        assert!(!sqlite.contains('$'), "{sqlite}");
        assert_eq!(sqlite.matches('?').count(), 3 * 19);
        assert_eq!(sqlite.matches("), (").count(), 2);

        let pg = insert_text(Dialect::Postgres, 3);
        assert!(!pg.contains('?'), "{pg}");
        assert!(pg.ends_with(", $57)"), "{pg}");
        assert!(pg.contains("($20, $21,"), "{pg}");
        assert_eq!(pg.matches('$').count(), 3 * 19);
    }
}
