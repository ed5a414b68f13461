//! Entry points for `vaultgate audit verify`: verify the ledger in a database (by URL) or a
//! JSON-lines mirror file; the returned report's `Display` is the command's output and
//! [`VerifyReport::is_ok`] decides the exit code (0 ok, 1 broken).

use std::path::Path;

use crate::error::{AuditError, AuditResult};
use crate::event::StoredEvent;
use crate::evidence::PublicKey;
use crate::verify::{VerifyReport, verify_lines, verify_pool};

/// Verifies the ledger tables in the database at `database_url` (opened without creating it).
/// `trusted`: the gateway's evidence public key, to pin checkpoint signatures.
pub async fn verify_database(
    database_url: &str,
    trusted: Option<&PublicKey>,
) -> AuditResult<VerifyReport> {
    let pool = crate::open_pool(database_url, false).await?;
    let exists: Option<String> = sqlx::query_scalar(crate::db::Dialect::of(&pool).table_exists())
        .bind("audit_events")
        .fetch_optional(&pool)
        .await?;
    if exists.is_none() {
        pool.close().await;
        return Err(AuditError::Config(format!(
            "{} holds no audit ledger (table audit_events missing)",
            crate::db::mask_url(database_url)
        )));
    }
    let report = verify_pool(&pool, &crate::db::mask_url(database_url), trusted).await;
    pool.close().await;
    report
}

/// Verifies a JSON-lines mirror file from genesis (seq 1). Blank lines are malformed too:
/// the writer never produces them.
pub async fn verify_file(path: &Path) -> AuditResult<VerifyReport> {
    let bytes = tokio::fs::read(path)
        .await
        .map_err(|e| AuditError::io(path.display(), e))?;
    Ok(verify_bytes(path.display().to_string(), &bytes))
}

/// Verifies JSON-lines content already in memory (used by `verify_file` and evidence tests).
pub fn verify_bytes(source: String, bytes: &[u8]) -> VerifyReport {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let mut lines = Vec::new();
    if !body.is_empty() {
        for (i, raw) in body.split(|b| *b == b'\n').enumerate() {
            let parsed = std::str::from_utf8(raw)
                .map_err(|_| "not UTF-8".to_owned())
                .and_then(|s| serde_json::from_str::<StoredEvent>(s).map_err(|e| e.to_string()));
            lines.push((i + 1, parsed));
        }
    }
    verify_lines(source, lines)
}
