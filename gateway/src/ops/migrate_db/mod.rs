//! `vaultgate migrate-db`: the database's side of growing from one box to several.
//!
//! Without `--to` ([`apply`]): applies the migrations of the configured database (the object
//! index's, the policy store's, the audit ledger's) and says which it applied, so an operator
//! can migrate before rolling out a new version.
//!
//! With `--to postgres://…` ([`run`]): copies the configured SQLite database of the data dir
//! (held under the data dir lock, like every offline command) into an empty PostgreSQL
//! database: the PostgreSQL migrations first, then every table of [`schema::TABLES`] in batches
//! in primary-key order ([`copy`]), values exact (ids, counters, BLOBs, timestamps; sealed
//! secrets and wrapped keys are copied as the bytes they are, never opened), each batch in one
//! transaction with its progress row ([`progress`]), so a run killed at any point continues
//! where it stopped; then [`verify`] compares the two databases and reads a sample of objects
//! back through the object layer on the new one. The design and the runbook are in
//! docs/OPERATIONS.md ("From one box to PostgreSQL").

pub mod copy;
pub mod progress;
pub mod rows;
pub mod schema;
pub mod verify;

use std::sync::Arc;

use audit::db::{Dialect, PoolShape, mask_url};

use super::OpsContext;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::store::Store;
use progress::Start;
use schema::{TABLES, Table, db};

/// How `migrate-db --to` runs.
#[derive(Debug, Clone)]
pub struct MigrateDbOptions {
    /// rows per batch (one target transaction each)
    pub batch_rows: usize,
    /// object versions read back at the end
    pub sample: usize,
    /// no progress bar
    pub quiet: bool,
}

/// What `migrate-db --to` did.
#[derive(Debug, Clone)]
pub struct MigrateDbReport {
    /// the report printed (passwords masked)
    pub text: String,
    /// everything verified equal
    pub ok: bool,
}

/// Checks `to` is a PostgreSQL URL with a host (one line naming it, password masked).
pub fn check_target_url(to: &str) -> Result<()> {
    let shown = mask_url(to);
    if Dialect::of_url(to) != Some(Dialect::Postgres) {
        return Err(Error::Config(format!(
            "--to must be a PostgreSQL URL postgres://USER:PASSWORD@HOST[:PORT]/DATABASE (got {shown})"
        )));
    }
    match url::Url::parse(to) {
        Ok(u) if u.host_str().is_some_and(|h| !h.is_empty()) && u.path().len() > 1 => Ok(()),
        _ => Err(Error::Config(format!(
            "--to {shown}: not a usable URL; expected postgres://USER:PASSWORD@HOST[:PORT]/DATABASE"
        ))),
    }
}

/// The configured database as the copy names it: an absolute `sqlite://` path, or a refusal
/// when the configured database is not SQLite.
pub fn source_of(config: &Config) -> Result<String> {
    let url = config.database_url();
    if Dialect::of_url(&url) != Some(Dialect::Sqlite) {
        return Err(Error::Config(format!(
            "migrate-db --to copies the data dir's SQLite database, but the configured database is {}",
            mask_url(&url)
        )));
    }
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.into());
    let sep = if query.is_empty() { "" } else { "?" };
    Ok(format!("sqlite://{}{sep}{query}", abs.display()))
}

/// Copies the data dir's SQLite database into the PostgreSQL database `to`, resumably, and
/// verifies the copy.
pub async fn run(
    ctx: &OpsContext,
    config: &Config,
    to: &str,
    opts: &MigrateDbOptions,
) -> Result<MigrateDbReport> {
    check_target_url(to)?;
    let source_label = source_of(config)?;
    let shown = mask_url(to);
    let opened = |e: &dyn std::fmt::Display| {
        Error::Unavailable(format!("cannot open the target database {shown}: {e}"))
    };
    let probe = audit::db::connect(
        to,
        PoolShape {
            max: 1,
            min: 0,
            acquire_timeout: std::time::Duration::from_secs(30),
            idle_timeout: None,
            create: false,
        },
    )
    .await
    .map_err(|e| opened(&e))?;
    let foreign = progress::refuse_foreign(&probe, &shown).await;
    probe.close().await;
    foreign?;
    let target = Index::open(to).await.map_err(|e| opened(&e))?;
    let result = copy_and_verify(ctx, config, &target, to, &source_label, opts).await;
    target.close().await;
    result
}

async fn copy_and_verify(
    ctx: &OpsContext,
    config: &Config,
    target: &Index,
    to: &str,
    source_label: &str,
    opts: &MigrateDbOptions,
) -> Result<MigrateDbReport> {
    let shown = mask_url(to);
    // the ledger's tables, on both sides (a source that never served has none yet)
    audit::migrate(ctx.index.write_pool())
        .await
        .map_err(|e| Error::Unavailable(format!("source database {source_label}: {e}")))?;
    audit::migrate(target.write_pool())
        .await
        .map_err(|e| Error::Unavailable(format!("target database {shown}: {e}")))?;
    let (src, dst) = (ctx.index.read_pool(), target.write_pool());
    let tables = describe_all(src, target).await?;
    let counts = progress::counts(src, &tables).await?;
    let print = progress::fingerprint(src, &tables, &counts).await?;
    let mut text = format!("migrate-db: {source_label} -> {shown}\n");
    let start = progress::claim(dst, &shown, source_label, &print, &tables).await?;
    let state = match start {
        Start::Finished(at) => {
            text.push_str(&format!(
                "nothing to copy: the target already holds the finished copy of this source (copied {}); verifying it again\n",
                progress::when(at)
            ));
            None
        }
        Start::Fresh => Some(Default::default()),
        Start::Resume(state) => {
            text.push_str("resuming the copy begun earlier\n");
            Some(state)
        }
    };
    if let Some(state) = state {
        let total: u64 = counts.iter().sum();
        let pb = super::progress_bar(total, "migrate-db rows", opts.quiet);
        let copied = copy::copy_all(src, dst, &tables, state, opts.batch_rows, &pb).await?;
        pb.finish_and_clear();
        let sequences = copy::reset_sequences(dst).await?;
        progress::finish(dst).await?;
        text.push_str(&copy_lines(&copied, &sequences));
    }
    let (lines, ok) = verify_all(ctx, config, target, to, source_label, &tables, opts).await?;
    text.push_str(&lines);
    text.push_str(if ok {
        "\nverified: the target is a complete copy; set VAULTGATE_DATABASE_URL to it and start the gateway"
    } else {
        "\nNOT verified: the target differs from the source (see MISMATCH above); keep serving from SQLite"
    });
    Ok(MigrateDbReport { text, ok })
}

/// The tables to copy, described on both sides (the optional ones the source has are created
/// on the target first).
async fn describe_all(src: &sqlx::AnyPool, target: &Index) -> Result<Vec<Table>> {
    let present = schema::source_tables(src).await?;
    schema::check_known(&present)?;
    if TABLES
        .iter()
        .any(|t| t.optional && present.iter().any(|p| p == t.name))
    {
        target
            .ensure_ops_tables()
            .await
            .map_err(|e| Error::Unavailable(format!("target database: {e}")))?;
    }
    let mut out = Vec::new();
    for spec in TABLES {
        if spec.optional && !present.iter().any(|p| p == spec.name) {
            continue;
        }
        out.push(schema::describe(src, target.write_pool(), spec).await?);
    }
    Ok(out)
}

fn copy_lines(copied: &[copy::TableCopy], sequences: &[String]) -> String {
    let rows: u64 = copied.iter().map(|c| c.copied).sum();
    let earlier: u64 = copied.iter().map(|c| c.earlier).sum();
    let secs: f64 = copied.iter().map(|c| c.secs).sum();
    let mut s = format!(
        "copied {rows} rows of {} tables in {secs:.1} s ({:.0} rows/s)",
        copied.len(),
        rows as f64 / secs.max(1e-3)
    );
    if earlier > 0 {
        s.push_str(&format!("; {earlier} rows were copied by an earlier run"));
    }
    s.push('\n');
    for c in copied.iter().filter(|c| c.copied + c.earlier > 0) {
        s.push_str(&format!(
            "  {:<24} {:>9} rows\n",
            c.table,
            c.copied + c.earlier
        ));
    }
    s.push_str(&if sequences.is_empty() {
        "sequences: none to set (every key is copied as it is)\n".to_owned()
    } else {
        format!(
            "sequences set past the copied keys: {}\n",
            sequences.join(", ")
        )
    });
    s
}

async fn verify_all(
    ctx: &OpsContext,
    config: &Config,
    target: &Index,
    to: &str,
    source_label: &str,
    tables: &[Table],
    opts: &MigrateDbOptions,
) -> Result<(String, bool)> {
    let (src, dst) = (ctx.index.read_pool(), target.read_pool());
    let checks = verify::tables(src, dst, tables).await?;
    let schema = verify::schema_versions(src, dst).await?;
    let audit = verify::audit_chain(src, source_label, to, &ctx.data_dir).await?;
    let metrics = crate::metrics::Metrics::new();
    let source = Store::new(
        ctx.backend.clone(),
        ctx.index.clone(),
        ctx.keyring.clone(),
        metrics.clone(),
    );
    let provider = ::keys::provider_from_config(&config.key_config()).await?;
    let keyring = ::keys::Keyring::new(
        provider,
        Arc::new(target.clone()),
        ::keys::CacheConfig::default(),
    );
    let new = Store::new(ctx.backend.clone(), target.clone(), keyring, metrics);
    let sample = verify::sample(&source, &new, opts.sample).await?;
    Ok(verify::describe(
        &checks,
        schema.as_deref(),
        &audit,
        &sample,
    ))
}

/// What `migrate-db` without `--to` applied.
#[derive(Debug, Clone)]
pub struct Applied {
    /// the database (password masked)
    pub database: String,
    /// (version, description) applied by this run
    pub applied: Vec<(i64, String)>,
    /// migrations in place afterwards
    pub total: usize,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.applied.is_empty() {
            return write!(
                f,
                "database {}: up to date, nothing applied ({} migrations in place)",
                self.database, self.total
            );
        }
        write!(
            f,
            "database {}: applied {} migrations:",
            self.database,
            self.applied.len()
        )?;
        for (v, d) in &self.applied {
            write!(f, "\n  {v} {d}")?;
        }
        write!(f, "\n{} migrations in place", self.total)
    }
}

/// Applies the configured database's migrations (index, policy store, audit ledger).
pub async fn apply(config: &Config) -> Result<Applied> {
    let url = config.database_url();
    let database = mask_url(&url);
    let before = applied_versions(&url).await.unwrap_or_default();
    let index = Index::open(&url)
        .await
        .map_err(|e| Error::Unavailable(format!("cannot open the database {database}: {e}")))?;
    let audit = audit::migrate(index.write_pool()).await;
    let after: std::result::Result<Vec<(i64, String)>, sqlx::Error> = sqlx::query_as(
        "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(index.read_pool())
    .await;
    index.close().await;
    audit.map_err(|e| Error::Unavailable(format!("database {database}: {e}")))?;
    let after = after.map_err(db("the"))?;
    let total = after.len();
    let applied = after
        .into_iter()
        .filter(|(v, _)| !before.contains(v))
        .collect();
    Ok(Applied {
        database,
        applied,
        total,
    })
}

/// The versions applied so far (empty for a new database).
async fn applied_versions(url: &str) -> Result<Vec<i64>> {
    let pool = audit::open_pool(url, false)
        .await
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    let exists: Option<String> = sqlx::query_scalar(Dialect::of(&pool).table_exists())
        .bind("_sqlx_migrations")
        .fetch_optional(&pool)
        .await
        .map_err(db("the"))?;
    let out = if exists.is_some() {
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(&pool)
            .await
            .map_err(db("the"))?
    } else {
        Vec::new()
    };
    pool.close().await;
    Ok(out)
}
