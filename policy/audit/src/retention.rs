//! Retention: pruning events older than the configured retention and the signed
//! [`Checkpoint`] that lets the remaining chain verify from where the pruned part ended.
//!
//! Signed payload (docs/AUDIT.md):
//! `vaultgate-audit-checkpoint-v1|<seq>|<hash>|<pruned_before_ms>|<pruned_count>|<created_ms>`.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{AuditError, AuditResult};
use crate::evidence::{EvidenceKey, PublicKey};
use crate::{Ledger, locked_head};

/// The record left behind by a prune: the last pruned event's seq and hash, signed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// last pruned sequence number; the chain continues at `seq + 1`
    pub seq: i64,
    /// hash of event `seq`
    pub hash: String,
    /// events older than this (Unix ms) were pruned
    pub pruned_before_ms: i64,
    /// events removed by this prune
    pub pruned_count: i64,
    /// when the checkpoint was written (Unix ms)
    pub created_ms: i64,
    /// signer's public key, hex
    pub public_key: String,
    /// Ed25519 signature over [`Checkpoint::payload`], hex
    pub signature: String,
}

impl Checkpoint {
    /// The exact bytes that are signed.
    pub fn payload(&self) -> String {
        format!(
            "vaultgate-audit-checkpoint-v1|{}|{}|{}|{}|{}",
            self.seq, self.hash, self.pruned_before_ms, self.pruned_count, self.created_ms
        )
    }

    fn signed(mut self, key: &EvidenceKey) -> Checkpoint {
        self.public_key = key.public_key().to_hex();
        self.signature = hex::encode(key.sign(self.payload().as_bytes()));
        self
    }

    /// Checks the signature; with `trusted` the checkpoint must be signed by that key,
    /// otherwise the key recorded in the checkpoint is used. Ok = the signer's fingerprint.
    pub fn check_signature(&self, trusted: Option<&PublicKey>) -> Result<String, String> {
        let recorded = PublicKey::parse(&self.public_key)
            .map_err(|_| "the recorded public key is malformed".to_owned())?;
        if let Some(t) = trusted
            && *t != recorded
        {
            return Err(format!(
                "signed by {} but the trusted key is {}",
                recorded.fingerprint(),
                t.fingerprint()
            ));
        }
        let sig = hex::decode(&self.signature).map_err(|_| "signature is not hex".to_owned())?;
        if recorded.verify(self.payload().as_bytes(), &sig) {
            Ok(recorded.fingerprint())
        } else {
            Err("the signature does not match the checkpoint".to_owned())
        }
    }

    pub(crate) fn from_row(r: &AnyRow) -> AuditResult<Checkpoint> {
        Ok(Checkpoint {
            seq: r.try_get("seq")?,
            hash: r.try_get("hash")?,
            pruned_before_ms: r.try_get("pruned_before_ms")?,
            pruned_count: r.try_get("pruned_count")?,
            created_ms: r.try_get("created_ms")?,
            public_key: r.try_get("public_key")?,
            signature: r.try_get("signature")?,
        })
    }
}

/// What a prune did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PruneReport {
    /// events deleted
    pub deleted: u64,
    /// the checkpoint written (`None` when nothing was old enough)
    pub checkpoint: Option<Checkpoint>,
}

/// The newest checkpoint, if any.
pub(crate) async fn latest_checkpoint(
    conn: &mut sqlx::AnyConnection,
) -> AuditResult<Option<Checkpoint>> {
    let row = sqlx::query(
        "SELECT seq, hash, pruned_before_ms, pruned_count, created_ms, public_key, signature \
         FROM audit_checkpoints ORDER BY seq DESC LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    row.as_ref().map(Checkpoint::from_row).transpose()
}

impl Ledger {
    /// Prunes events older than the configured retention, measured from `now_ms`.
    pub async fn prune(&self, key: &EvidenceKey, now_ms: i64) -> AuditResult<PruneReport> {
        let retention = i64::try_from(self.retention().as_millis()).unwrap_or(i64::MAX);
        self.prune_before(key, now_ms.saturating_sub(retention), now_ms)
            .await
    }

    /// Prunes the oldest events up to (not including) the first event at or after
    /// `cutoff_ms`, and writes a checkpoint signed with `key` in the same transaction.
    /// Refuses to prune a ledger that does not verify (pruning would destroy the evidence).
    pub async fn prune_before(
        &self,
        key: &EvidenceKey,
        cutoff_ms: i64,
        now_ms: i64,
    ) -> AuditResult<PruneReport> {
        let report = self.verify(Some(&key.public_key())).await?;
        if let Some(issue) = &report.issue {
            return Err(AuditError::Corrupt(format!(
                "refusing to prune a ledger that does not verify: {issue}"
            )));
        }
        let dialect = crate::db::Dialect::of(self.pool());
        let mut tx = self.pool().begin_with(dialect.begin_write()).await?;
        let head = locked_head(&mut tx, dialect).await?;
        let first_kept: Option<i64> =
            sqlx::query_scalar("SELECT MIN(seq) FROM audit_events WHERE time_ms >= $1")
                .bind(cutoff_ms)
                .fetch_one(&mut *tx)
                .await?;
        let last_pruned = first_kept.map_or(head.seq, |s| s - 1);
        let oldest: Option<i64> = sqlx::query_scalar("SELECT MIN(seq) FROM audit_events")
            .fetch_one(&mut *tx)
            .await?;
        let Some(oldest) = oldest else {
            return Ok(PruneReport {
                deleted: 0,
                checkpoint: None,
            });
        };
        if last_pruned < oldest {
            return Ok(PruneReport {
                deleted: 0,
                checkpoint: None,
            });
        }
        let hash: String = sqlx::query_scalar("SELECT hash FROM audit_events WHERE seq = $1")
            .bind(last_pruned)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| AuditError::Corrupt(format!("event {last_pruned} is missing")))?;
        let deleted = sqlx::query("DELETE FROM audit_events WHERE seq <= $1")
            .bind(last_pruned)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let cp = Checkpoint {
            seq: last_pruned,
            hash,
            pruned_before_ms: cutoff_ms,
            pruned_count: i64::try_from(deleted).unwrap_or(i64::MAX),
            created_ms: now_ms,
            public_key: String::new(),
            signature: String::new(),
        }
        .signed(key);
        sqlx::query(
            "INSERT INTO audit_checkpoints (seq, hash, pruned_before_ms, pruned_count, \
             created_ms, public_key, signature) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(cp.seq)
        .bind(&cp.hash)
        .bind(cp.pruned_before_ms)
        .bind(cp.pruned_count)
        .bind(cp.created_ms)
        .bind(&cp.public_key)
        .bind(&cp.signature)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(PruneReport {
            deleted,
            checkpoint: Some(cp),
        })
    }
}
