//! Rows of a copied table as typed values: one page read in primary-key order after a key
//! (keyset pagination: `WHERE (k1, k2) > ($1, $2) ORDER BY k1, k2 LIMIT n`, on either database,
//! text keys compared as bytes on both), one multi-row upsert, the key as the JSON the progress
//! table keeps, and a digest of a whole table for the verification.

use sha2::{Digest, Sha256};
use sqlx::{AnyPool, Row};

use super::schema::{Kind, Table};
use crate::error::{Error, Result};
use audit::db::Sql;

/// One value, typed by its column's [`Kind`] (None: SQL NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// One row, in the table's column order.
pub type Values = Vec<Value>;

/// Which database a page is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// SQLite: integer columns through `CAST(… AS BIGINT)` (old migrations declared some
    /// `BOOLEAN`, which the `Any` driver cannot decode)
    Source,
    /// PostgreSQL: text keys ordered `COLLATE "C"` (SQLite's byte order, also for the tables
    /// created without it)
    Target,
}

fn quote(name: &str) -> String {
    format!("\"{name}\"")
}

/// The page of at most `limit` rows after `after` (from the first row when None).
pub async fn page(
    pool: &AnyPool,
    side: Side,
    t: &Table,
    after: Option<&[Value]>,
    limit: usize,
) -> Result<Vec<Values>> {
    let select: Vec<String> = t
        .columns
        .iter()
        .map(|c| match (side, c.kind) {
            (Side::Source, Kind::Int) => format!("CAST({0} AS BIGINT) AS {0}", quote(&c.name)),
            _ => quote(&c.name),
        })
        .collect();
    let keys: Vec<String> = t
        .key
        .iter()
        .map(|&i| {
            let c = &t.columns[i];
            match (side, c.kind) {
                (Side::Target, Kind::Text) => format!("{} COLLATE \"C\"", quote(&c.name)),
                _ => quote(&c.name),
            }
        })
        .collect();
    let mut sql = Sql::new(format!(
        "SELECT {} FROM {}",
        select.join(", "),
        quote(t.name)
    ));
    if let Some(after) = after {
        sql.push(&format!(" WHERE ({}) > (", keys.join(", ")));
        for (n, v) in after.iter().enumerate() {
            if n > 0 {
                sql.push(", ");
            }
            bind(&mut sql, v);
        }
        sql.push(")");
    }
    sql.push(&format!(" ORDER BY {} LIMIT {limit}", keys.join(", ")));
    let side_name = match side {
        Side::Source => "source",
        Side::Target => "target",
    };
    let rows =
        sql.build().fetch_all(pool).await.map_err(|e| {
            Error::Unavailable(format!("{side_name} database, table {}: {e}", t.name))
        })?;
    rows.iter().map(|r| decode(t, r)).collect()
}

fn decode(t: &Table, r: &sqlx::any::AnyRow) -> Result<Values> {
    t.columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let v = match c.kind {
                Kind::Int => r.try_get::<Option<i64>, _>(i).map(Value::Int),
                Kind::Text => r.try_get::<Option<String>, _>(i).map(Value::Text),
                Kind::Bytes => r.try_get::<Option<Vec<u8>>, _>(i).map(Value::Bytes),
            };
            v.map_err(|e| {
                Error::Integrity(format!(
                    "table {}, column {}: cannot read: {e}",
                    t.name, c.name
                ))
            })
        })
        .collect()
}

fn bind(sql: &mut Sql, v: &Value) {
    match v {
        Value::Int(x) => sql.bind(*x),
        Value::Text(x) => sql.bind(x.clone()),
        Value::Bytes(x) => sql.bind(x.clone()),
    };
}

/// `INSERT … VALUES (…), (…) ON CONFLICT (key) DO UPDATE SET …` of `rows`: the target row ends
/// equal to the source row whether or not it existed (the counters' rows do: the migrations
/// create them).
pub fn upsert(t: &Table, rows: &[Values]) -> Sql {
    let names: Vec<String> = t.columns.iter().map(|c| quote(&c.name)).collect();
    let mut sql = Sql::new(format!(
        "INSERT INTO {} ({}) VALUES ",
        quote(t.name),
        names.join(", ")
    ));
    for (n, row) in rows.iter().enumerate() {
        sql.push(if n == 0 { "(" } else { ", (" });
        for (i, v) in row.iter().enumerate() {
            if i > 0 {
                sql.push(", ");
            }
            bind(&mut sql, v);
        }
        sql.push(")");
    }
    let keys: Vec<&str> = t.key.iter().map(|&i| names[i].as_str()).collect();
    let set: Vec<String> = names
        .iter()
        .enumerate()
        .filter(|(i, _)| !t.key.contains(i))
        .map(|(_, n)| format!("{n} = EXCLUDED.{n}"))
        .collect();
    if set.is_empty() {
        sql.push(&format!(" ON CONFLICT ({}) DO NOTHING", keys.join(", ")));
    } else {
        sql.push(&format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            keys.join(", "),
            set.join(", ")
        ));
    }
    sql
}

/// The primary key of `row`.
pub fn key_of(t: &Table, row: &[Value]) -> Values {
    t.key.iter().map(|&i| row[i].clone()).collect()
}

/// A key as the JSON array the progress table keeps.
pub fn key_to_json(key: &[Value]) -> String {
    let items: Vec<serde_json::Value> = key
        .iter()
        .map(|v| match v {
            Value::Int(Some(x)) => serde_json::Value::from(*x),
            Value::Text(Some(s)) => serde_json::Value::from(s.as_str()),
            Value::Bytes(Some(b)) => serde_json::Value::from(hex::encode(b)),
            _ => serde_json::Value::Null,
        })
        .collect();
    serde_json::Value::Array(items).to_string()
}

/// A key read back from [`key_to_json`] with the table's key kinds.
pub fn key_from_json(t: &Table, text: &str) -> Result<Values> {
    let bad = || Error::Integrity(format!("table {}: unreadable resume key {text}", t.name));
    let items: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|_| bad())?;
    if items.len() != t.key.len() {
        return Err(bad());
    }
    t.key
        .iter()
        .zip(items)
        .map(|(&i, v)| match t.columns[i].kind {
            Kind::Int => v.as_i64().map(|x| Value::Int(Some(x))),
            Kind::Text => v.as_str().map(|s| Value::Text(Some(s.to_owned()))),
            Kind::Bytes => v
                .as_str()
                .and_then(|s| hex::decode(s).ok())
                .map(|b| Value::Bytes(Some(b))),
        })
        .collect::<Option<Values>>()
        .ok_or_else(bad)
}

/// Rows and SHA-256 of a whole table read in key order (every value with its type and length,
/// NULL distinct from empty), the same on both databases when the contents are.
pub async fn digest(pool: &AnyPool, side: Side, t: &Table) -> Result<(u64, String)> {
    const PAGE: usize = 2000;
    let mut h = Sha256::new();
    let (mut rows, mut after) = (0u64, None::<Values>);
    loop {
        let page = page(pool, side, t, after.as_deref(), PAGE).await?;
        for row in &page {
            for v in row {
                feed(&mut h, v);
            }
        }
        rows += page.len() as u64;
        match page.last() {
            Some(last) if page.len() == PAGE => after = Some(key_of(t, last)),
            _ => break,
        }
    }
    Ok((rows, hex::encode(h.finalize())))
}

fn feed(h: &mut Sha256, v: &Value) {
    let (tag, bytes): (u8, Option<Vec<u8>>) = match v {
        Value::Int(x) => (1, x.map(|x| x.to_be_bytes().to_vec())),
        Value::Text(x) => (2, x.as_ref().map(|s| s.as_bytes().to_vec())),
        Value::Bytes(x) => (3, x.clone()),
    };
    h.update([tag, u8::from(bytes.is_some())]);
    if let Some(b) = bytes {
        h.update((b.len() as u64).to_be_bytes());
        h.update(&b);
    }
}
