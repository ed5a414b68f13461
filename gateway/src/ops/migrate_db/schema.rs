//! What `vaultgate migrate-db --to` copies: every table of the object index, the policy store
//! and the audit ledger, in an order that satisfies the foreign keys (parents first) and with
//! the write counters last (the triggers on the policy and bucket-settings tables advance them
//! while those rows are inserted; copying the counters afterwards leaves the source's values).
//! The columns of each table are read from both databases (SQLite's `pragma_table_info`,
//! PostgreSQL's `information_schema.columns`): the two sets must be equal, every table has a
//! primary key (the copy's order and its resume point), and each column's PostgreSQL type
//! (`bigint`, `text`, `bytea`) says how its values are read and written.

use sqlx::{AnyPool, Row};

use crate::error::{Error, Result};

/// One table to copy.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    /// its name in both databases
    pub name: &'static str,
    /// created on first use (`Index::ensure_ops_tables`), so a source may lack it
    pub optional: bool,
    /// a one-row write counter the migrations create: not "data" when deciding whether a
    /// target is empty
    pub counter: bool,
}

const fn table(name: &'static str) -> TableSpec {
    TableSpec {
        name,
        optional: false,
        counter: false,
    }
}

/// Every table, parents before children, counters last.
pub const TABLES: &[TableSpec] = &[
    table("buckets"),
    table("objects"),
    table("object_streams"),
    table("uploads"),
    table("parts"),
    table("data_keys"),
    table("access_keys"),
    table("gc_queue"),
    table("bucket_settings"),
    TableSpec {
        optional: true,
        ..table("settings")
    },
    TableSpec {
        optional: true,
        ..table("migrate_copied")
    },
    table("pol_tenants"),
    table("pol_principals"),
    table("pol_access_keys"),
    table("pol_roles"),
    table("pol_grants"),
    table("pol_bucket_tenants"),
    table("pol_quorum_rules"),
    table("pol_approvals"),
    table("pol_approval_votes"),
    table("pol_idempotency"),
    table("pol_limits"),
    table("audit_events"),
    table("audit_checkpoints"),
    table("audit_head"),
    TableSpec {
        counter: true,
        ..table("idx_settings_generation")
    },
    TableSpec {
        counter: true,
        ..table("pol_generation")
    },
];

/// Tables of the source that are not copied: sqlx's migration record (the target has its own,
/// written by its migrations) and SQLite's internal ones.
pub fn is_bookkeeping(name: &str) -> bool {
    name == "_sqlx_migrations" || name.starts_with("sqlite_")
}

/// How a column's values are read and written (its PostgreSQL type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `bigint` (SQLite `INTEGER`, `BIGINT`, `BOOLEAN` 0/1)
    Int,
    /// `text`
    Text,
    /// `bytea` (SQLite `BLOB`)
    Bytes,
}

/// A column of a copied table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
}

/// A table's columns (in the source's order) and its primary key (in key order).
#[derive(Debug, Clone)]
pub struct Table {
    pub name: &'static str,
    pub columns: Vec<Column>,
    /// indexes into `columns`
    pub key: Vec<usize>,
}

/// The tables of the SQLite database (without the bookkeeping ones).
pub async fn source_tables(pool: &AnyPool) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .fetch_all(pool)
        .await
        .map_err(db("source"))?;
    let mut out = Vec::new();
    for r in rows {
        let name: String = r.try_get("name").map_err(db("source"))?;
        if !is_bookkeeping(&name) {
            out.push(name);
        }
    }
    Ok(out)
}

/// The tables of the PostgreSQL database's current schema.
pub async fn target_tables(pool: &AnyPool) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT CAST(table_name AS TEXT) AS name FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .map_err(db("target"))?;
    rows.iter()
        .map(|r| r.try_get::<String, _>("name").map_err(db("target")))
        .collect()
}

/// Refuses a source holding a table this version does not know how to copy (a newer
/// migration's, or someone else's): the copy would silently leave it behind.
pub fn check_known(source: &[String]) -> Result<()> {
    let unknown: Vec<&str> = source
        .iter()
        .map(String::as_str)
        .filter(|t| !TABLES.iter().any(|s| s.name == *t))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::Config(format!(
        "the source database holds tables migrate-db does not know how to copy: {}",
        unknown.join(", ")
    )))
}

/// The columns of `spec` in both databases, checked equal, with the PostgreSQL types.
pub async fn describe(source: &AnyPool, target: &AnyPool, spec: &TableSpec) -> Result<Table> {
    let src = sqlx::query(
        "SELECT name, CAST(pk AS BIGINT) AS pk FROM pragma_table_info($1) ORDER BY cid",
    )
    .bind(spec.name)
    .fetch_all(source)
    .await
    .map_err(db("source"))?;
    let tgt = sqlx::query(
        "SELECT CAST(column_name AS TEXT) AS name, CAST(data_type AS TEXT) AS ty \
         FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(spec.name)
    .fetch_all(target)
    .await
    .map_err(db("target"))?;
    let mut types = Vec::new();
    for r in &tgt {
        let name: String = r.try_get("name").map_err(db("target"))?;
        let ty: String = r.try_get("ty").map_err(db("target"))?;
        types.push((name, ty));
    }
    let (mut columns, mut key) = (Vec::new(), Vec::new());
    for r in &src {
        let name: String = r.try_get("name").map_err(db("source"))?;
        let pk: i64 = r.try_get("pk").map_err(db("source"))?;
        let Some((_, ty)) = types.iter().find(|(n, _)| *n == name) else {
            return Err(mismatch(
                spec.name,
                &format!("column {name} is missing in the target"),
            ));
        };
        let kind = match ty.as_str() {
            "bigint" | "integer" | "smallint" => Kind::Int,
            "text" | "character varying" => Kind::Text,
            "bytea" => Kind::Bytes,
            other => {
                return Err(mismatch(
                    spec.name,
                    &format!("column {name} has type {other}"),
                ));
            }
        };
        if pk > 0 {
            key.push((pk, columns.len()));
        }
        columns.push(Column { name, kind });
    }
    if columns.len() != types.len() {
        return Err(mismatch(
            spec.name,
            "the target has columns the source lacks",
        ));
    }
    if key.is_empty() {
        return Err(mismatch(spec.name, "no primary key"));
    }
    key.sort_unstable();
    Ok(Table {
        name: spec.name,
        columns,
        key: key.into_iter().map(|(_, i)| i).collect(),
    })
}

fn mismatch(table: &str, what: &str) -> Error {
    Error::Config(format!(
        "table {table} differs between the source and the target: {what} (are both at this \
         version's migrations?)"
    ))
}

/// Maps a database error to one line saying which side failed.
pub fn db(side: &'static str) -> impl Fn(sqlx::Error) -> Error {
    move |e| Error::Unavailable(format!("{side} database: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table the migrations of the three stores create is in [`TABLES`] (a new table
    /// added without it would make `migrate-db` refuse every source).
    #[test]
    fn every_migrated_table_is_copied() {
        let dirs = [
            concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"),
            concat!(env!("CARGO_MANIFEST_DIR"), "/../policy/migrations/sqlite"),
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../policy/audit/migrations/sqlite"
            ),
        ];
        let mut created = Vec::new();
        for dir in dirs {
            for f in std::fs::read_dir(dir).unwrap() {
                let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
                for w in text.split("CREATE TABLE").skip(1) {
                    let name = w
                        .trim_start()
                        .trim_start_matches("IF NOT EXISTS")
                        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ' '))
                        .next()
                        .unwrap()
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .to_owned();
                    created.push(name);
                }
            }
        }
        // the versions migration builds objects_v / object_streams_v and renames them
        created.retain(|n| !n.ends_with("_v"));
        for name in &created {
            assert!(
                TABLES.iter().any(|t| t.name == name),
                "{name} is not copied"
            );
        }
        let required = TABLES.iter().filter(|t| !t.optional).count();
        assert_eq!(created.len(), required, "{created:?}");
    }
}
