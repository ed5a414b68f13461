//! The end of `vaultgate migrate-db --to`: the target checked against the source. Per table,
//! the rows and a digest of every value read in key order on both sides; the applied migration
//! versions; the audit chain verified end to end on the target by the code of `vaultgate audit
//! verify` (anchor, checkpoint signature pinned to the data dir's evidence key, head) and its
//! events and head equal to the source's; and a sample of object versions spread over the
//! buckets read back through the object layer on both databases (decrypted with the keys) and
//! compared byte for byte.

use std::fmt::Write as _;

use futures::TryStreamExt;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;

use super::rows::{self, Side};
use super::schema::{Table, db};
use crate::error::{Error, Result};
use crate::store::Store;

/// One table compared.
#[derive(Debug, Clone)]
pub struct TableCheck {
    pub table: &'static str,
    pub source_rows: u64,
    pub target_rows: u64,
    pub same_digest: bool,
}

impl TableCheck {
    pub fn ok(&self) -> bool {
        self.source_rows == self.target_rows && self.same_digest
    }
}

/// Every table compared (rows and digest).
pub async fn tables(
    source: &AnyPool,
    target: &AnyPool,
    tables: &[Table],
) -> Result<Vec<TableCheck>> {
    let mut out = Vec::new();
    for t in tables {
        let (sn, sd) = rows::digest(source, Side::Source, t).await?;
        let (tn, td) = rows::digest(target, Side::Target, t).await?;
        out.push(TableCheck {
            table: t.name,
            source_rows: sn,
            target_rows: tn,
            same_digest: sd == td,
        });
    }
    Ok(out)
}

/// The applied migration versions of both databases: None when equal, else what differs.
pub async fn schema_versions(source: &AnyPool, target: &AnyPool) -> Result<Option<String>> {
    let q = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
    let s: Vec<i64> = sqlx::query_scalar(q)
        .fetch_all(source)
        .await
        .map_err(db("source"))?;
    let t: Vec<i64> = sqlx::query_scalar(q)
        .fetch_all(target)
        .await
        .map_err(db("target"))?;
    if s == t {
        return Ok(None);
    }
    let only = |a: &[i64], b: &[i64]| -> Vec<String> {
        a.iter()
            .filter(|v| !b.contains(v))
            .map(i64::to_string)
            .collect()
    };
    Ok(Some(format!(
        "migrations only in the source: [{}]; only in the target: [{}]",
        only(&s, &t).join(", "),
        only(&t, &s).join(", ")
    )))
}

/// The audit chain on both sides.
#[derive(Debug, Clone)]
pub struct AuditCheck {
    /// `vaultgate audit verify` of the target
    pub target: audit::VerifyReport,
    /// the same walk over the source
    pub source: audit::VerifyReport,
}

impl AuditCheck {
    pub fn ok(&self) -> bool {
        self.target.is_ok()
            && self.target.events == self.source.events
            && self.target.head_hash == self.source.head_hash
            && self.target.last_seq == self.source.last_seq
    }
}

/// Verifies the chain on the target as `vaultgate audit verify` does (checkpoints pinned to
/// the evidence key in `data_dir`, when present) and walks the source's for comparison.
pub async fn audit_chain(
    source: &AnyPool,
    source_shown: &str,
    target_url: &str,
    data_dir: &std::path::Path,
) -> Result<AuditCheck> {
    use audit::evidence::EvidenceKey;
    let trusted = EvidenceKey::load(&EvidenceKey::path_in(data_dir))
        .ok()
        .map(|k| k.public_key());
    let target = audit::cli::verify_database(target_url, trusted.as_ref())
        .await
        .map_err(|e| Error::Unavailable(format!("target audit ledger: {e}")))?;
    let source = audit::verify::verify_pool(source, source_shown, trusted.as_ref())
        .await
        .map_err(|e| Error::Unavailable(format!("source audit ledger: {e}")))?;
    Ok(AuditCheck { target, source })
}

/// The object versions read back.
#[derive(Debug, Clone, Default)]
pub struct SampleCheck {
    /// versions read on both sides and compared
    pub checked: usize,
    /// buckets they came from
    pub buckets: usize,
    /// SSE-C versions not read (their key is the client's)
    pub skipped_sse_c: usize,
    /// what differed
    pub mismatches: Vec<String>,
}

/// Reads up to `n` object versions (spread evenly over the buckets and over each bucket's
/// keys) through both object layers and compares records, lengths and plaintext digests.
pub async fn sample(source: &Store, target: &Store, n: usize) -> Result<SampleCheck> {
    let picks = pick(source.index().read_pool(), n).await?;
    let mut out = SampleCheck::default();
    let mut buckets: Vec<&str> = picks.iter().map(|(b, _, _)| b.as_str()).collect();
    buckets.dedup();
    out.buckets = buckets.len();
    for (bucket, key, version) in &picks {
        let at = format!("{bucket}/{key} (version {version})");
        let get = |s: &Store| {
            let (b, k, v) = (bucket.clone(), key.clone(), version.clone());
            let index = s.index().clone();
            async move { index.get_version(&b, &k, Some(&v)).await }
        };
        let (Some(src), tgt) = (get(source).await?, get(target).await?) else {
            continue;
        };
        if crate::s3::encryption::sse_c_of(&src.headers).is_some() {
            out.skipped_sse_c += 1;
            continue;
        }
        out.checked += 1;
        if tgt.as_ref() != Some(&src) {
            out.mismatches.push(format!("{at}: index record differs"));
            continue;
        }
        let (a, b) = (plaintext(source, &src).await, plaintext(target, &src).await);
        match (a, b) {
            (Ok(a), Ok(b)) if a == b && a.0 == src.size => {}
            (Ok(a), Ok(b)) => out.mismatches.push(format!(
                "{at}: read {} bytes (sha256 {}) on the source, {} bytes (sha256 {}) on the target",
                a.0, a.1, b.0, b.1
            )),
            (Err(e), _) => out
                .mismatches
                .push(format!("{at}: source read failed: {e}")),
            (_, Err(e)) => out
                .mismatches
                .push(format!("{at}: target read failed: {e}")),
        }
    }
    Ok(out)
}

/// Length and SHA-256 of a version's whole plaintext, streamed.
async fn plaintext(store: &Store, rec: &crate::index::ObjectRecord) -> Result<(u64, String)> {
    let stream = store.open_object(rec, 0..rec.size, None).await?;
    let (len, h) = stream
        .try_fold((0u64, Sha256::new()), |(len, mut h), chunk| async move {
            h.update(&chunk);
            Ok((len + chunk.len() as u64, h))
        })
        .await
        .map_err(|e| Error::Integrity(e.to_string()))?;
    Ok((len, hex::encode(h.finalize())))
}

/// Up to `n` (bucket, key, version) of the source, evenly spaced in each bucket's key order,
/// about `n / buckets` per bucket; delete markers left out.
async fn pick(source: &AnyPool, n: usize) -> Result<Vec<(String, String, String)>> {
    let buckets: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT bucket) FROM objects WHERE delete_marker = 0")
            .fetch_one(source)
            .await
            .map_err(db("source"))?;
    if buckets == 0 || n == 0 {
        return Ok(Vec::new());
    }
    let n = i64::try_from(n).unwrap_or(i64::MAX / 2);
    let per = ((n + buckets - 1) / buckets).max(1);
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT bucket, object_key, version_id FROM ( \
           SELECT bucket, object_key, version_id, \
             ROW_NUMBER() OVER (PARTITION BY bucket ORDER BY object_key, version_id) AS rn, \
             COUNT(*) OVER (PARTITION BY bucket) AS n \
           FROM objects WHERE delete_marker = 0) \
         WHERE (rn - 1) % MAX(1, n / $1) = 0 AND (rn - 1) / MAX(1, n / $1) < $1 \
         ORDER BY bucket, rn",
    )
    .bind(per)
    .fetch_all(source)
    .await
    .map_err(db("source"))?;
    Ok(rows
        .into_iter()
        .take(usize::try_from(n).unwrap_or(usize::MAX))
        .collect())
}

/// The verification's lines for the report and whether everything matched.
pub fn describe(
    tables: &[TableCheck],
    schema: Option<&str>,
    audit: &AuditCheck,
    sample: &SampleCheck,
) -> (String, bool) {
    let mut s = String::new();
    let bad: Vec<&TableCheck> = tables.iter().filter(|t| !t.ok()).collect();
    let rows: u64 = tables.iter().map(|t| t.target_rows).sum();
    if bad.is_empty() {
        let _ = writeln!(
            s,
            "tables: {} identical ({rows} rows; row counts and contents equal)",
            tables.len()
        );
    }
    for t in &bad {
        let _ = writeln!(
            s,
            "MISMATCH table {}: {} rows in the source, {} in the target{}",
            t.table,
            t.source_rows,
            t.target_rows,
            if t.same_digest {
                ""
            } else {
                ", contents differ"
            }
        );
    }
    if let Some(m) = schema {
        let _ = writeln!(s, "MISMATCH schema: {m}");
    }
    let _ = writeln!(s, "{}", audit.target);
    if !audit.ok() && audit.target.is_ok() {
        let _ = writeln!(
            s,
            "MISMATCH audit: the source has {} events up to head {}",
            audit.source.events, audit.source.head_hash
        );
    }
    let _ = write!(
        s,
        "objects: {} versions from {} buckets read back through the new database, {} identical",
        sample.checked,
        sample.buckets,
        sample.checked - sample.mismatches.len()
    );
    if sample.skipped_sse_c > 0 {
        let _ = write!(
            s,
            " ({} SSE-C versions not read: their key is the client's)",
            sample.skipped_sse_c
        );
    }
    for m in &sample.mismatches {
        let _ = write!(s, "\nMISMATCH object {m}");
    }
    let ok = bad.is_empty() && schema.is_none() && audit.ok() && sample.mismatches.is_empty();
    (s, ok)
}
