//! The copy itself: each table in [`super::schema::TABLES`] order, in batches of rows read from
//! the source in primary-key order after the last key copied, each batch upserted on the target
//! together with its progress row in one transaction ([`super::progress`]). Then the target's
//! sequences (identity or serial columns, if any) are set past the copied maximum.

use std::collections::HashMap;
use std::time::Instant;

use indicatif::ProgressBar;
use sqlx::{AnyPool, Row};

use super::progress::{self, TableProgress};
use super::rows::{self, Side, Values};
use super::schema::{Table, db};
use crate::error::Result;

/// What one table's copy did in this run.
#[derive(Debug, Clone)]
pub struct TableCopy {
    pub table: &'static str,
    /// rows copied by this run
    pub copied: u64,
    /// rows copied by earlier, interrupted runs
    pub earlier: u64,
    pub secs: f64,
}

/// Copies every table not yet done; `pb` counts rows over all tables.
pub async fn copy_all(
    source: &AnyPool,
    target: &AnyPool,
    tables: &[Table],
    mut state: HashMap<String, TableProgress>,
    batch: usize,
    pb: &ProgressBar,
) -> Result<Vec<TableCopy>> {
    let already: u64 = state.values().map(|p| p.rows).sum();
    pb.set_position(already);
    let mut out = Vec::new();
    for t in tables {
        let mut p = state.remove(t.name).unwrap_or_default();
        let (earlier, start) = (p.rows, Instant::now());
        if !p.done {
            pb.set_message(t.name);
            copy_table(source, target, t, &mut p, batch, pb).await?;
        }
        let copied = p.rows - earlier;
        let secs = start.elapsed().as_secs_f64();
        if copied > 0 {
            tracing::info!(
                table = t.name,
                rows = copied,
                rows_per_sec = (copied as f64 / secs.max(1e-3)).round(),
                "table copied"
            );
        }
        out.push(TableCopy {
            table: t.name,
            copied,
            earlier,
            secs,
        });
    }
    Ok(out)
}

/// Copies the rows of `t` after `p.last_key`, one transaction per batch.
async fn copy_table(
    source: &AnyPool,
    target: &AnyPool,
    t: &Table,
    p: &mut TableProgress,
    batch: usize,
    pb: &ProgressBar,
) -> Result<()> {
    // one statement binds at most 65535 values on PostgreSQL
    let batch = batch.clamp(1, 65_535 / t.columns.len().max(1));
    let mut after: Option<Values> = match &p.last_key {
        Some(k) => Some(rows::key_from_json(t, k)?),
        None => None,
    };
    loop {
        let page = rows::page(source, Side::Source, t, after.as_deref(), batch).await?;
        let n = page.len() as u64;
        if let Some(last) = page.last() {
            let key = rows::key_of(t, last);
            p.last_key = Some(rows::key_to_json(&key));
            after = Some(key);
        }
        p.rows += n;
        p.done = page.len() < batch;
        let mut tx = target.begin().await.map_err(db("target"))?;
        if !page.is_empty() {
            rows::upsert(t, &page)
                .build()
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    crate::error::Error::Unavailable(format!(
                        "target database, table {}: {e}",
                        t.name
                    ))
                })?;
        }
        progress::record(&mut tx, t.name, p).await?;
        tx.commit().await.map_err(db("target"))?;
        pb.inc(n);
        if p.done {
            return Ok(());
        }
    }
}

/// Sets every sequence of the target's tables (identity and serial columns) past the largest
/// value copied; returns them as `table.column = next value`. Today's schema has none (every
/// key, the audit `seq` included, is written explicitly), so this is empty unless a later
/// migration adds one.
pub async fn reset_sequences(target: &AnyPool) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT CAST(table_name AS TEXT) AS t, CAST(column_name AS TEXT) AS c, \
         pg_get_serial_sequence(quote_ident(table_name), column_name) AS s \
         FROM information_schema.columns WHERE table_schema = current_schema() \
         AND pg_get_serial_sequence(quote_ident(table_name), column_name) IS NOT NULL",
    )
    .fetch_all(target)
    .await
    .map_err(db("target"))?;
    let mut out = Vec::new();
    for r in rows {
        let (t, c, s): (String, String, String) = (
            r.try_get("t").map_err(db("target"))?,
            r.try_get("c").map_err(db("target"))?,
            r.try_get("s").map_err(db("target"))?,
        );
        let next: i64 = sqlx::query_scalar(&format!(
            "SELECT setval(CAST($1 AS regclass), COALESCE((SELECT MAX(\"{c}\") FROM \"{t}\"), 0) + 1, false)"
        ))
        .bind(&s)
        .fetch_one(target)
        .await
        .map_err(db("target"))?;
        out.push(format!("{t}.{c} = {next}"));
    }
    Ok(out)
}
