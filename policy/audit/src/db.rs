//! The database layer shared by the object index (gateway), the policy store and this ledger:
//! one query layer over sqlx's `Any` driver, SQLite (the zero-config default) or PostgreSQL,
//! chosen by the URL scheme. This module owns opening a pool, the SQLite connection settings
//! (WAL, `synchronous=FULL`, busy timeout, foreign keys: the durability contract described in
//! the gateway's `index` module), the few statements whose text differs between the two
//! dialects ([`Dialect`]), and [`Sql`], a query builder that writes `$N` placeholders (sqlx's
//! `QueryBuilder<Any>` writes `?`, which PostgreSQL refuses). It lives in the lowest crate that
//! the three stores use (the audit crate; policy reaches it through its re-export).
//!
//! Every query elsewhere is written once, in portable SQL: `$1, $2, …` placeholders,
//! `ON CONFLICT … DO NOTHING/UPDATE`, `RETURNING`, `CAST(… AS BIGINT)` around the SQLite
//! `BOOLEAN` columns of old migrations (the `Any` driver cannot decode SQLite's `BOOLEAN`
//! declared type), integers as `i64`, flags as `i64` 0/1, blobs as `Vec<u8>`.
//!
//! [`timed`] measures the database work of the hot paths into one process-wide histogram,
//! `vaultgate_db_query_seconds{store,op}` ([`query_seconds`]; the gateway's `/metrics` shows it).

use std::sync::{LazyLock, Once};
use std::time::{Duration, Instant};

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Arguments, Encode, Type};

/// Buckets of [`query_seconds`]: 100 µs (a cached SQLite read) to 5 s (a stuck database).
const QUERY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// The database work [`timed`] measures: the hot paths, one series each of [`query_seconds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbOp {
    /// the GET/HEAD lookup of a version (`index`, `get_version`)
    IndexGetVersion,
    /// one listing page (`index`, `list_objects`)
    IndexListObjects,
    /// one index group commit, its retries and COMMIT included (`index`, `write_batch`)
    IndexWriteBatch,
    /// one audit group commit, the chain's lock included (`audit`, `append_batch`)
    AuditAppendBatch,
    /// an access-cache miss (`policy`, `access_load`)
    PolicyAccessLoad,
}

impl DbOp {
    /// Every op, in declaration order (`op as usize` is its index).
    const ALL: [DbOp; 5] = [
        DbOp::IndexGetVersion,
        DbOp::IndexListObjects,
        DbOp::IndexWriteBatch,
        DbOp::AuditAppendBatch,
        DbOp::PolicyAccessLoad,
    ];

    /// The `store` and `op` labels of its series.
    fn labels(self) -> [&'static str; 2] {
        match self {
            DbOp::IndexGetVersion => ["index", "get_version"],
            DbOp::IndexListObjects => ["index", "list_objects"],
            DbOp::IndexWriteBatch => ["index", "write_batch"],
            DbOp::AuditAppendBatch => ["audit", "append_batch"],
            DbOp::PolicyAccessLoad => ["policy", "access_load"],
        }
    }
}

/// The histogram and, resolved once, the series of every [`DbOp`] (no label lookup per call).
struct QueryHistogram {
    vec: prometheus::HistogramVec,
    series: [prometheus::Histogram; DbOp::ALL.len()],
}

static QUERY_SECONDS: LazyLock<Option<QueryHistogram>> = LazyLock::new(|| {
    let vec = prometheus::HistogramVec::new(
        prometheus::HistogramOpts::new(
            "vaultgate_db_query_seconds",
            "Database time of the hot paths by store and operation (a batch commit includes its \
             fsync; failures too)",
        )
        .buckets(QUERY_BUCKETS.to_vec()),
        &["store", "op"],
    )
    .ok()?;
    let series = DbOp::ALL.map(|op| vec.with_label_values(&op.labels()));
    Some(QueryHistogram { vec, series })
});

/// The process-wide histogram [`timed`] records into, to register in a metrics registry (a
/// clone shares the counts). None only if its static definition were invalid.
pub fn query_seconds() -> Option<&'static prometheus::HistogramVec> {
    QUERY_SECONDS.as_ref().map(|h| &h.vec)
}

/// Runs `work` (the database statements of `op`) and records how long it took in
/// [`query_seconds`], whatever it returned.
pub async fn timed<T>(op: DbOp, work: impl Future<Output = T>) -> T {
    let start = Instant::now();
    let out = work.await;
    if let Some(h) = QUERY_SECONDS.as_ref() {
        // the discriminant is the op's place in `DbOp::ALL`
        h.series[op as usize].observe(start.elapsed().as_secs_f64());
    }
    out
}

/// The PostgreSQL advisory lock key that serialises appends to the audit chain ("VGLEDGER").
pub const LEDGER_LOCK: i64 = 0x5647_4c45_4447_4552;

/// How often a serving gateway reads the database's write counters ([`follow_counter`]): a
/// change made through another instance acts here within this plus one query (docs/SCALING.md
/// states ≤ 1 s).
pub const FOLLOW_INTERVAL: Duration = Duration::from_millis(250);

/// An in-memory cache kept true to other processes' writes on its database by
/// [`follow_counter`] (the policy store's access cache, the index's bucket settings cache).
pub trait CounterFollower: Send + Sync + 'static {
    /// The counter moved (or could not be read): whatever was loaded before may predate a write.
    fn stale(&self);
    /// The counter cannot be read (`true`: serve from the database until it can) or can again;
    /// returns the previous state.
    fn set_unreadable(&self, unreadable: bool) -> bool;
}

/// Keeps `target` true to writes made by other processes on the same database (other gateway
/// instances on one PostgreSQL): a task reads the one-row write counter `query` (advanced by
/// triggers inside every writing transaction) every `every` and makes the cache stale when it
/// moved — also at the first reading and the first after a failure, since what was loaded
/// before may predate a write the task did not see. When the counter cannot be read, the cache
/// is unreadable and stale at every tick (fail safe). `what` names the counter in the logs. The
/// task ends with `target`. Needs a Tokio runtime.
pub fn follow_counter<T: CounterFollower>(
    read: AnyPool,
    query: &'static str,
    what: &'static str,
    every: Duration,
    target: std::sync::Weak<T>,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seen: Option<i64> = None;
        loop {
            tick.tick().await;
            let Some(cache) = target.upgrade() else { break };
            let now: Result<Option<i64>, sqlx::Error> =
                sqlx::query_scalar(query).fetch_optional(&read).await;
            match now {
                Ok(now) => {
                    if cache.set_unreadable(false) {
                        tracing::info!("{what} readable again");
                    }
                    if now != seen {
                        cache.stale();
                    }
                    seen = now;
                }
                // the gateway closed its pool: it is shutting down, nothing to follow
                Err(sqlx::Error::PoolClosed) => break,
                Err(e) => {
                    if !cache.set_unreadable(true) {
                        tracing::warn!(error = %e, "cannot read the {what}; its cache is bypassed until it can");
                    }
                    seen = None;
                    cache.stale();
                }
            }
        }
    });
}

/// The SQL dialect of a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite (a file, or in memory for tests)
    Sqlite,
    /// PostgreSQL (`postgres://` or `postgresql://`)
    Postgres,
}

impl Dialect {
    /// The dialect of a database URL, None for a scheme that is neither.
    pub fn of_url(url: &str) -> Option<Dialect> {
        let lower = url.trim_start().to_ascii_lowercase();
        if lower.starts_with("sqlite:") {
            Some(Dialect::Sqlite)
        } else if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Some(Dialect::Postgres)
        } else {
            None
        }
    }

    /// The dialect a pool talks (from its connect URL).
    pub fn of(pool: &AnyPool) -> Dialect {
        match pool.connect_options().database_url.scheme() {
            "postgres" | "postgresql" => Dialect::Postgres,
            _ => Dialect::Sqlite,
        }
    }

    /// The dialect of an open connection.
    pub fn of_connection(conn: &sqlx::AnyConnection) -> Dialect {
        match conn.backend_name() {
            "PostgreSQL" => Dialect::Postgres,
            _ => Dialect::Sqlite,
        }
    }

    /// Whether one query's text may hold several statements, run in turn over one list of
    /// arguments that their `$N` number: SQLite's (sqlx runs them on the connection's thread,
    /// one round trip for all); PostgreSQL's extended protocol takes one statement per query.
    pub fn runs_scripts(self) -> bool {
        self == Dialect::Sqlite
    }

    /// How a statement built at run time with many values names them ([`value_rows`]): numbered
    /// from `$1` on PostgreSQL (its only form), anonymous on SQLite (`?`, bound in order). SQLite
    /// looks a named value up by a linear search of the statement's names, when it prepares the
    /// statement and again for every value sqlx binds, so n named values cost about n²/2 steps: a
    /// quarter of the server's CPU on 4 KiB GETs at 16 clients with the ledger's 256-event
    /// `INSERT`s (docs/PERFORMANCE.md, session 16).
    pub fn first_value(self) -> Option<usize> {
        match self {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some(1),
        }
    }

    /// Starts a write transaction. SQLite: `BEGIN IMMEDIATE` takes the write lock at once
    /// (no upgrade deadlock with another process on the file); PostgreSQL: a plain `BEGIN`
    /// (READ COMMITTED; writes are serialised per instance by the single writer connection,
    /// across instances by the advisory locks the transaction takes first: the index's through
    /// [`Dialect::lock_keys`], the audit chain's through [`Dialect::lock_ledger`]).
    pub fn begin_write(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// Takes, inside a write transaction, the lock that orders appends to the audit chain across
    /// every process on the database, so the head read next is the last one committed and no
    /// two gateway instances chain onto the same event. PostgreSQL: a transaction-level advisory
    /// lock ([`LEDGER_LOCK`]), released by the COMMIT or ROLLBACK; SQLite: nothing to do, the
    /// `BEGIN IMMEDIATE` of [`Dialect::begin_write`] already holds the database's write lock.
    pub async fn lock_ledger(self, conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
        if self == Dialect::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(LEDGER_LOCK)
                .execute(conn)
                .await?;
        }
        Ok(())
    }

    /// Whether write transactions of several processes need [`Dialect::lock_keys`] to exclude
    /// each other. PostgreSQL: yes (READ COMMITTED; several gateway instances may write).
    /// SQLite: no, `BEGIN IMMEDIATE` already admits one writer to the whole file at a time, so
    /// callers skip building lock keys altogether on SQLite's hot path.
    pub fn needs_write_locks(self) -> bool {
        self == Dialect::Postgres
    }

    /// Takes, as the first statement of a write transaction, the transaction-level locks `locks`
    /// (keys of PostgreSQL's 64-bit advisory lock space; `true`: exclusive, `false`: shared),
    /// released by the COMMIT or ROLLBACK. The keys are taken in ascending order, a key asked
    /// for both ways once exclusively, all in one round trip: every transaction that locks this
    /// way acquires in the same global order, so two of them never deadlock on these locks.
    /// SQLite: nothing to do (see [`Dialect::needs_write_locks`]).
    pub async fn lock_keys(
        self,
        conn: &mut sqlx::AnyConnection,
        locks: &[(i64, bool)],
    ) -> Result<(), sqlx::Error> {
        if !self.needs_write_locks() || locks.is_empty() {
            return Ok(());
        }
        let mut sorted = locks.to_vec();
        // by key, exclusive first, then one entry per key (the exclusive one if asked for)
        sorted.sort_unstable_by_key(|&(key, exclusive)| (key, !exclusive));
        sorted.dedup_by_key(|&mut (key, _)| key);
        // integers only in the text, no arguments: one simple-protocol round trip (several
        // statements allowed), run in order
        let mut sql = String::with_capacity(sorted.len() * 48);
        for (key, exclusive) in sorted {
            let f = if exclusive {
                "pg_advisory_xact_lock"
            } else {
                "pg_advisory_xact_lock_shared"
            };
            sql.push_str(&format!("SELECT {f}({key});"));
        }
        sqlx::Executor::execute(conn, sql.as_str()).await?;
        Ok(())
    }

    /// Starts a read transaction that sees one snapshot for all its statements (verification,
    /// evidence export). SQLite in WAL mode: a deferred transaction reads the snapshot of its
    /// first read; PostgreSQL: REPEATABLE READ (READ COMMITTED would see appends mid-walk).
    pub fn begin_snapshot(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        }
    }

    /// One row (`name` TEXT) when table `$1` exists.
    pub fn table_exists(self) -> &'static str {
        match self {
            Dialect::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name = $1",
            Dialect::Postgres => {
                "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = $1"
            }
        }
    }
}

/// Whether `e` is a conflict between concurrent transactions that running the transaction
/// again resolves: PostgreSQL's `serialization_failure` (40001) or `deadlock_detected` (40P01),
/// where the server rolled the victim back. SQLite reports neither.
pub fn is_transient_conflict(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "40001" || c == "40P01")
}

/// Installs sqlx's `Any` drivers (SQLite and PostgreSQL) once per process.
pub fn install_drivers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(sqlx::any::install_default_drivers);
}

/// The URL with its password replaced by `[redacted]` (for errors and logs).
pub fn mask_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.rsplit_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:[redacted]@{host}");
    }
    url.to_owned()
}

/// How a pool is sized and how long its users wait.
#[derive(Debug, Clone, Copy)]
pub struct PoolShape {
    /// most connections
    pub max: u32,
    /// connections kept open (an in-memory SQLite database lives while one is open)
    pub min: u32,
    /// wait for a free connection before failing
    pub acquire_timeout: Duration,
    /// close a connection idle this long (None: never)
    pub idle_timeout: Option<Duration>,
    /// SQLite: create the file when missing and switch it to WAL; false opens an existing file
    /// and leaves its journal mode alone (read-only tools)
    pub create: bool,
}

/// SQLite's own wait on a lock held by another process (e.g. a CLI command on the same file).
pub const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether a SQLite URL names an in-memory database.
pub fn is_memory_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    lower.contains(":memory:") || lower.contains("mode=memory")
}

/// The URL the `Any` driver gets for a SQLite URL: `mode=rwc` added when creating; an
/// in-memory database named once, so every connection of the pool (the driver parses the URL
/// again per connection) opens the same shared-cache database.
fn sqlite_url(url: &str, create: bool) -> String {
    if is_memory_url(url) {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        return format!(
            "sqlite:file:vaultgate-mem-{}-{n}?mode=memory&cache=shared",
            std::process::id()
        );
    }
    if create && !url.contains("mode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_owned()
    }
}

/// Opens a pool on `url` (`sqlite://PATH`, `sqlite::memory:`, `postgres://…`). SQLite
/// connections get `foreign_keys=ON`, `synchronous=FULL`, a 30 s busy timeout and (files opened
/// with `create`) WAL, on every connect, exactly as the index always set them.
pub async fn connect(url: &str, shape: PoolShape) -> Result<AnyPool, sqlx::Error> {
    install_drivers();
    let dialect = Dialect::of_url(url).ok_or_else(|| {
        sqlx::Error::Configuration(
            format!(
                "unsupported database URL {} (expected sqlite://PATH or postgres://…)",
                mask_url(url)
            )
            .into(),
        )
    })?;
    let (url, wal) = match dialect {
        Dialect::Sqlite => (
            sqlite_url(url, shape.create),
            shape.create && !is_memory_url(url),
        ),
        Dialect::Postgres => (url.to_owned(), false),
    };
    let options: AnyConnectOptions = url.parse()?;
    if dialect == Dialect::Postgres {
        // fail at once on a wrong password or an unreachable server (the pool would retry
        // until its acquire timeout)
        use sqlx::ConnectOptions;
        let probe = options.connect().await?;
        sqlx::Connection::close(probe).await?;
    }
    let pool = AnyPoolOptions::new()
        .max_connections(shape.max)
        .min_connections(shape.min)
        .acquire_timeout(shape.acquire_timeout)
        .idle_timeout(shape.idle_timeout)
        .max_lifetime(None)
        // sqlx pings an idle connection before handing it out. A SQLite connection cannot hang
        // up, and its ping is a round trip to the connection's thread on every query's path
        // (a request's reads, each index write batch, each audit batch): off for SQLite. A
        // PostgreSQL connection can be cut (a server restart, a failover), so it keeps the ping.
        .test_before_acquire(dialect == Dialect::Postgres)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if dialect == Dialect::Sqlite {
                    use sqlx::Executor;
                    let ms = SQLITE_BUSY_TIMEOUT.as_millis();
                    conn.execute(format!("PRAGMA busy_timeout = {ms}").as_str())
                        .await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    if wal {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                    }
                    conn.execute("PRAGMA synchronous = FULL").await?;
                } else {
                    use sqlx::Executor;
                    // the migrations' "already exists, skipping" notices are not news
                    conn.execute("SET client_min_messages = warning").await?;
                }
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    Ok(pool)
}

/// Closes `pool` and returns once none of its connections is open. sqlx's `Pool::close` can
/// return while a connection handed back during its last wait (a task that used the pool just
/// before, e.g. the last audit batch or write-back pass at shutdown) sits idle in the closed pool,
/// its database files open until the pool is dropped and its thread gets round to closing it.
/// Closing again closes that one; bounded, in case a task still holds a connection.
pub async fn close_pool(pool: &AnyPool) {
    for _ in 0..400 {
        pool.close().await;
        if pool.size() == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    tracing::warn!(
        open = pool.size(),
        "database connections still open 2 s after the pool was closed"
    );
}

/// Rolls back, after an error, a write transaction opened with plain SQL on `conn` (not an
/// `sqlx::Transaction`: when SQLite has already rolled a transaction back itself, a trigger's
/// `RAISE(ROLLBACK)` or an I/O error, sqlx's own rollback fails and leaves its transaction depth
/// behind, and every later `begin` on that connection fails). A transaction that is no longer
/// active is fine; any other failure leaves the connection's state unknown, so it is closed
/// instead of going back to the pool.
pub async fn rollback(conn: &mut sqlx::pool::PoolConnection<sqlx::Any>) {
    if let Err(e) = sqlx::query("ROLLBACK").execute(&mut **conn).await
        && !e.to_string().contains("no transaction is active")
    {
        tracing::error!(error = %e, "ROLLBACK failed; closing the connection");
        conn.close_on_drop();
    }
}

/// `(…), (…)`: `rows` rows of `width` values each, numbered in order from `$first`, or anonymous
/// (`?`) when `first` is None ([`Dialect::first_value`]).
pub fn value_rows(rows: usize, width: usize, first: Option<usize>) -> String {
    let mut text = String::with_capacity(rows * width * 5);
    for row in 0..rows {
        text.push_str(if row == 0 { "(" } else { ", (" });
        for v in 0..width {
            if v > 0 {
                text.push_str(", ");
            }
            match first {
                Some(first) => {
                    text.push('$');
                    text.push_str(&(first + row * width + v).to_string());
                }
                None => text.push('?'),
            }
        }
        text.push(')');
    }
    text
}

/// A statement over a varying number of values (rows of an `INSERT`, ids of an `IN` list), its
/// texts for one and for a full batch of `full` built once: those stay prepared on the connection;
/// one of another size is built and prepared for that call alone (sqlx's `persistent(false)`).
/// sqlx keeps up to 100 prepared statements per connection, so a text per size in between would
/// push the fixed statements out and hold up to 100 programs of that size on every connection: a
/// 200-id `IN` list named six times compiles to tens of kilobytes, and the write-back's batches
/// of every size from 1 to 256 grew the server's memory with the time it ran (docs/PERFORMANCE.md,
/// session 20).
pub struct SizedText {
    one: String,
    full_rows: usize,
    full: String,
    build: Box<dyn Fn(usize) -> String + Send + Sync>,
}

impl SizedText {
    /// The texts `build(1)` and `build(full)`, the others built on demand.
    pub fn new(full: usize, build: impl Fn(usize) -> String + Send + Sync + 'static) -> SizedText {
        SizedText {
            one: build(1),
            full_rows: full,
            full: build(full),
            build: Box::new(build),
        }
    }

    /// The text for `rows` values (or rows), and whether it stays prepared: pass the flag to
    /// the query's `persistent`.
    pub fn for_rows(&self, rows: usize) -> (std::borrow::Cow<'_, str>, bool) {
        use std::borrow::Cow;
        if rows == 1 {
            (Cow::Borrowed(&self.one), true)
        } else if rows == self.full_rows {
            (Cow::Borrowed(&self.full), true)
        } else {
            (Cow::Owned((self.build)(rows)), false)
        }
    }
}

/// A [`SizedText`] per dialect, for a statement whose values each database names its own way
/// ([`Dialect::first_value`]).
pub struct DialectTexts {
    sqlite: SizedText,
    postgres: SizedText,
}

impl DialectTexts {
    /// `build(dialect, n)` builds the statement's text for `n` values in `dialect`.
    pub fn new(full: usize, build: fn(Dialect, usize) -> String) -> DialectTexts {
        DialectTexts {
            sqlite: SizedText::new(full, move |n| build(Dialect::Sqlite, n)),
            postgres: SizedText::new(full, move |n| build(Dialect::Postgres, n)),
        }
    }

    /// The texts of `dialect`.
    pub fn of(&self, dialect: Dialect) -> &SizedText {
        match dialect {
            Dialect::Sqlite => &self.sqlite,
            Dialect::Postgres => &self.postgres,
        }
    }
}

/// A query assembled at run time with `$N` placeholders (the order of [`Sql::bind`] calls):
/// the portable replacement for `QueryBuilder`.
pub struct Sql {
    text: String,
    args: AnyArguments<'static>,
}

impl Sql {
    /// Starts with `text`.
    pub fn new(text: impl Into<String>) -> Sql {
        Sql {
            text: text.into(),
            args: AnyArguments::default(),
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn bind<T>(&mut self, value: T) -> &mut Sql
    where
        T: 'static + Send + Encode<'static, Any> + Type<Any>,
    {
        // AnyArguments::add only fails for values that fail to encode; the Any encoders of
        // the supported types never do
        let _ = self.args.add(value);
        self.text.push('$');
        self.text.push_str(&self.args.len().to_string());
        self
    }

    /// The SQL text so far.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The query, ready to run (once: the bound values move into it).
    pub fn build(&mut self) -> sqlx::query::Query<'_, Any, AnyArguments<'_>> {
        sqlx::query_with(&self.text, std::mem::take(&mut self.args))
    }
}

/// A flag column as a bool. Stored flags are 0/1 integers in both dialects (SQLite's `BOOLEAN`
/// columns, selected through `CAST(… AS BIGINT)`, and PostgreSQL's `BIGINT`); a computed
/// `EXISTS (…)` is an integer on SQLite and a boolean on PostgreSQL: both are accepted.
pub fn flag(row: &sqlx::any::AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    use sqlx::Row;
    match row.try_get::<i64, _>(column) {
        Ok(v) => Ok(v != 0),
        Err(sqlx::Error::ColumnDecode { .. }) => row.try_get::<bool, _>(column),
        Err(e) => Err(e),
    }
}

/// Test support: with `VAULTGATE_TEST_DATABASE_URL` set (a PostgreSQL URL of a role that may
/// create databases, e.g. `conformance/lib/postgres.sh` exports it), creates a fresh, empty
/// database for one test and returns its URL; None when the variable is unset (the test then uses
/// SQLite as always). Synchronous (it runs on a thread of its own), so plain config builders can
/// call it inside a test's runtime. The databases are not dropped: the test cluster is thrown
/// away as a whole.
#[doc(hidden)]
pub fn test_database_url() -> Option<String> {
    let admin = std::env::var("VAULTGATE_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())?;
    let created = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        rt.block_on(create_test_database(&admin))
    })
    .join()
    .map_err(|_| "the database creation thread panicked".to_owned())
    .and_then(|r| r);
    match created {
        Ok(url) => Some(url),
        Err(e) => panic!("VAULTGATE_TEST_DATABASE_URL is set but no test database: {e}"),
    }
}

/// Like [`test_database_url`], one database per `key` (e.g. a test's data dir) for the life of
/// the process: a test that restarts its gateway on the same data dir finds its data again.
#[doc(hidden)]
pub fn test_database_url_for(key: &str) -> Option<String> {
    static URLS: std::sync::Mutex<Vec<(String, String)>> = std::sync::Mutex::new(Vec::new());
    let mut urls = URLS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, url)) = urls.iter().find(|(k, _)| k == key) {
        return Some(url.clone());
    }
    let url = test_database_url()?;
    urls.push((key.to_owned(), url.clone()));
    Some(url)
}

/// Test support: empties the PostgreSQL database at `url` (drops and recreates its `public`
/// schema), as deleting a SQLite index file does.
#[doc(hidden)]
pub fn test_database_wipe(url: &str) {
    let url = url.to_owned();
    std::thread::spawn(move || {
        use sqlx::Connection;
        install_drivers();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let mut conn = sqlx::AnyConnection::connect(&url).await.expect("connect");
            for sql in ["DROP SCHEMA public CASCADE", "CREATE SCHEMA public"] {
                sqlx::query(sql).execute(&mut conn).await.expect(sql);
            }
            let _ = conn.close().await;
        });
    })
    .join()
    .expect("wipe thread");
}

/// Test support: the statements that make every insert into `table` fail with `message` (`on`)
/// or remove that again (a trigger named `name`), in the dialect of `dialect`.
#[doc(hidden)]
pub fn test_refuse_inserts(dialect: Dialect, table: &str, name: &str, on: bool) -> Vec<String> {
    match (dialect, on) {
        (Dialect::Sqlite, true) => vec![format!(
            "CREATE TRIGGER {name} BEFORE INSERT ON {table} \
             BEGIN SELECT RAISE(ABORT, 'inserts refused'); END"
        )],
        (Dialect::Sqlite, false) => vec![format!("DROP TRIGGER {name}")],
        (Dialect::Postgres, true) => vec![
            format!(
                "CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS \
                 $$ BEGIN RAISE EXCEPTION 'inserts refused'; END $$"
            ),
            format!(
                "CREATE TRIGGER {name} BEFORE INSERT ON {table} \
                 FOR EACH ROW EXECUTE FUNCTION {name}()"
            ),
        ],
        (Dialect::Postgres, false) => vec![format!("DROP TRIGGER {name} ON {table}")],
    }
}

async fn create_test_database(admin: &str) -> Result<String, String> {
    use sqlx::Connection;
    install_drivers();
    let mut url = url::Url::parse(admin).map_err(|e| format!("{}: {e}", mask_url(admin)))?;
    let mut conn = sqlx::AnyConnection::connect(admin)
        .await
        .map_err(|e| format!("{}: {e}", mask_url(admin)))?;
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|e| e.to_string())?;
    let name = format!("vgt_{}", hex::encode(id));
    sqlx::query(&format!(
        "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'"
    ))
    .execute(&mut conn)
    .await
    .map_err(|e| format!("CREATE DATABASE {name}: {e}"))?;
    let _ = conn.close().await;
    url.set_path(&name);
    Ok(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_op_is_timed_into_its_own_series() {
        for (i, op) in DbOp::ALL.into_iter().enumerate() {
            assert_eq!(op as usize, i, "{op:?} out of place in DbOp::ALL");
            let [store, name] = op.labels();
            let series = query_seconds().unwrap().with_label_values(&[store, name]);
            let before = series.get_sample_count();
            assert_eq!(timed(op, async { 7 }).await, 7);
            assert_eq!(series.get_sample_count(), before + 1, "{op:?}");
        }
    }

    /// A statement over 1 to 40 values leaves two prepared on the connection (one value, a full
    /// batch), not one per size; the same texts all prepared would leave forty.
    #[tokio::test]
    async fn sized_texts_keep_two_statements_prepared_whatever_the_sizes() {
        use sqlx::Connection;
        fn select(n: usize) -> String {
            format!("SELECT x FROM t WHERE x IN {}", value_rows(1, n, None))
        }
        let text = SizedText::new(40, select);
        for keep_all in [false, true] {
            let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:")
                .await
                .unwrap();
            sqlx::query("CREATE TABLE t (x INTEGER)")
                .execute(&mut conn)
                .await
                .unwrap();
            sqlx::query("INSERT INTO t VALUES (3), (7)")
                .execute(&mut conn)
                .await
                .unwrap();
            let before = conn.cached_statements_size();
            for n in 1..=40 {
                let (sql, kept) = text.for_rows(n);
                assert_eq!(sql, select(n));
                let mut q = sqlx::query_scalar::<_, i64>(sql.as_ref()).persistent(kept || keep_all);
                for v in 0..n {
                    q = q.bind(i64::try_from(v).unwrap());
                }
                let found = q.fetch_all(&mut conn).await.unwrap();
                assert_eq!(
                    found,
                    [3i64, 7]
                        .into_iter()
                        .filter(|x| *x < n as i64)
                        .collect::<Vec<_>>()
                );
            }
            let prepared = conn.cached_statements_size() - before;
            assert_eq!(
                prepared,
                if keep_all { 40 } else { 2 },
                "keep_all {keep_all}"
            );
        }
    }
}
