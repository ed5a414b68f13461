//! The copy's own record on the target, which makes it resumable and keeps two sources apart:
//! `migrate_db_source` (one row: which database is being copied, a fingerprint of its contents
//! when the copy began, when the copy finished) and `migrate_db_progress` (per table: the last
//! key copied, the rows copied, whether the table is done). Each batch of rows and its progress
//! row are committed in one transaction, so a run killed at any point resumes after the last
//! committed batch. A target with other data, or with the copy of another source, is refused.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

use super::rows::{self, Side};
use super::schema::{TABLES, Table, db};
use crate::error::{Error, Result};

/// The two bookkeeping tables (both dialects accept this SQL).
const CREATE: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS migrate_db_source (id BIGINT NOT NULL PRIMARY KEY, \
     source TEXT NOT NULL, fingerprint TEXT NOT NULL, started_ms BIGINT NOT NULL, copied_ms BIGINT)",
    "CREATE TABLE IF NOT EXISTS migrate_db_progress (table_name TEXT NOT NULL PRIMARY KEY, \
     last_key TEXT, rows BIGINT NOT NULL, done BIGINT NOT NULL)",
];

/// The bookkeeping tables' names (neither Vaultgate data nor foreign).
pub const OWN_TABLES: [&str; 2] = ["migrate_db_source", "migrate_db_progress"];

/// Where one table's copy stands.
#[derive(Debug, Clone, Default)]
pub struct TableProgress {
    /// JSON of the last key copied (None: nothing yet)
    pub last_key: Option<String>,
    pub rows: u64,
    pub done: bool,
}

/// What the target holds of this copy.
#[derive(Debug)]
pub enum Start {
    /// nothing yet: the copy begins
    Fresh,
    /// an unfinished copy of this source: it continues
    Resume(HashMap<String, TableProgress>),
    /// a finished copy of this source (when, ms): nothing to copy
    Finished(i64),
}

/// Refuses a target holding tables that are neither Vaultgate's nor this command's (another
/// application's database), before any migration touches it.
pub async fn refuse_foreign(target: &AnyPool, shown: &str) -> Result<()> {
    let foreign: Vec<String> = super::schema::target_tables(target)
        .await?
        .into_iter()
        .filter(|t| {
            t != "_sqlx_migrations"
                && !OWN_TABLES.contains(&t.as_str())
                && !TABLES.iter().any(|s| s.name == t)
        })
        .collect();
    if foreign.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "the target {shown} holds tables that are not Vaultgate's ({}); migrate into an empty database",
        foreign.join(", ")
    )))
}

/// A digest of what the source holds now (rows per table, the audit head, the write
/// counters): a resumed copy refuses a source that changed since the copy began.
pub async fn fingerprint(source: &AnyPool, tables: &[Table], counts: &[u64]) -> Result<String> {
    let mut h = Sha256::new();
    for (t, n) in tables.iter().zip(counts) {
        h.update(format!("{}={n};", t.name));
        if t.name == "audit_head" || TABLES.iter().any(|s| s.counter && s.name == t.name) {
            h.update(rows::digest(source, Side::Source, t).await?.1);
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Rows per table of the source.
pub async fn counts(pool: &AnyPool, tables: &[Table]) -> Result<Vec<u64>> {
    let mut out = Vec::new();
    for t in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{}\"", t.name))
            .fetch_one(pool)
            .await
            .map_err(db("source"))?;
        out.push(u64::try_from(n).unwrap_or(0));
    }
    Ok(out)
}

/// Reads (or starts) this copy's record on the target: refuses a target that holds data not
/// copied from `source`, or a copy of another source, or of this source before it changed.
pub async fn claim(
    target: &AnyPool,
    shown: &str,
    source: &str,
    fingerprint: &str,
    tables: &[Table],
) -> Result<Start> {
    for sql in CREATE {
        sqlx::query(sql)
            .execute(target)
            .await
            .map_err(db("target"))?;
    }
    let row = sqlx::query(
        "SELECT source, fingerprint, started_ms, copied_ms FROM migrate_db_source WHERE id = 1",
    )
    .fetch_optional(target)
    .await
    .map_err(db("target"))?;
    let Some(row) = row else {
        refuse_data(target, shown, tables).await?;
        sqlx::query(
            "INSERT INTO migrate_db_source (id, source, fingerprint, started_ms) VALUES (1, $1, $2, $3)",
        )
        .bind(source)
        .bind(fingerprint)
        .bind(audit::now_ms())
        .execute(target)
        .await
        .map_err(db("target"))?;
        return Ok(Start::Fresh);
    };
    let get = |c: &str| row.try_get::<String, _>(c).map_err(db("target"));
    let (theirs, print) = (get("source")?, get("fingerprint")?);
    let started: i64 = row.try_get("started_ms").map_err(db("target"))?;
    let copied: Option<i64> = row.try_get("copied_ms").map_err(db("target"))?;
    if theirs != source {
        return Err(Error::Config(format!(
            "the target {shown} holds a copy of another database ({theirs}, begun {}); \
             migrate into an empty database",
            when(started)
        )));
    }
    if print != fingerprint {
        return Err(Error::Config(format!(
            "the source {source} changed since the copy into {shown} began ({}), so the copy \
             cannot continue; drop and recreate the target database, then run migrate-db again",
            when(started)
        )));
    }
    if let Some(at) = copied {
        return Ok(Start::Finished(at));
    }
    Ok(Start::Resume(load(target).await?))
}

/// Refuses a target whose Vaultgate tables hold rows (the write counters aside).
async fn refuse_data(target: &AnyPool, shown: &str, tables: &[Table]) -> Result<()> {
    let mut found = Vec::new();
    for t in tables {
        if TABLES.iter().any(|s| s.counter && s.name == t.name) {
            continue;
        }
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{}\"", t.name))
            .fetch_one(target)
            .await
            .map_err(db("target"))?;
        if n > 0 {
            found.push(format!("{n} rows in {}", t.name));
        }
    }
    if found.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "the target {shown} already holds data that migrate-db did not copy ({}); \
         migrate into an empty database",
        found.join(", ")
    )))
}

async fn load(target: &AnyPool) -> Result<HashMap<String, TableProgress>> {
    let rows = sqlx::query("SELECT table_name, last_key, rows, done FROM migrate_db_progress")
        .fetch_all(target)
        .await
        .map_err(db("target"))?;
    let mut out = HashMap::new();
    for r in rows {
        let name: String = r.try_get("table_name").map_err(db("target"))?;
        let p = TableProgress {
            last_key: r.try_get("last_key").map_err(db("target"))?,
            rows: u64::try_from(r.try_get::<i64, _>("rows").map_err(db("target"))?).unwrap_or(0),
            done: r.try_get::<i64, _>("done").map_err(db("target"))? != 0,
        };
        out.insert(name, p);
    }
    Ok(out)
}

/// Records one table's progress inside the batch's transaction.
pub async fn record(tx: &mut sqlx::AnyConnection, table: &str, p: &TableProgress) -> Result<()> {
    sqlx::query(
        "INSERT INTO migrate_db_progress (table_name, last_key, rows, done) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (table_name) DO UPDATE SET last_key = EXCLUDED.last_key, \
         rows = EXCLUDED.rows, done = EXCLUDED.done",
    )
    .bind(table)
    .bind(p.last_key.clone())
    .bind(i64::try_from(p.rows).unwrap_or(i64::MAX))
    .bind(i64::from(p.done))
    .execute(tx)
    .await
    .map_err(db("target"))?;
    Ok(())
}

/// Marks the copy finished (after every table and the sequences).
pub async fn finish(target: &AnyPool) -> Result<i64> {
    let now = audit::now_ms();
    sqlx::query("UPDATE migrate_db_source SET copied_ms = $1 WHERE id = 1")
        .bind(now)
        .execute(target)
        .await
        .map_err(db("target"))?;
    Ok(now)
}

/// A time in ms as RFC 3339 (UTC).
pub fn when(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("{ms} ms"))
}
