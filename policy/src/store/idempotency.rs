//! The admin API's `Idempotency-Key` records: the first answer to a mutating call, its body
//! sealed with the store's sealer (it may hold a new access key's secret), replayed to a retry.
//! The admin middleware that uses them is `admin::api::middleware`.

use sqlx::Row;

use super::PolicyStore;
use crate::{Error, Result, now_ms};

/// A stored admin response for Idempotency-Key replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentResponse {
    /// hash of method, path and body of the first request
    pub request_hash: String,
    /// HTTP status
    pub status: u16,
    /// response body
    pub body: String,
}

impl PolicyStore {
    /// The sealing context of a stored answer: bound to its caller and key, so a row copied to
    /// another (scope, key) does not open.
    fn idempotency_context(scope: &str, key: &str) -> String {
        format!(
            "vaultgate/idempotency/{}:{scope}/{}:{key}",
            scope.len(),
            key.len()
        )
    }

    /// A stored response for (`scope`, `key`) (its body opened with the store's sealer).
    pub async fn idempotency_get(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotentResponse>> {
        let row = sqlx::query(
            "SELECT request_hash, status, body, sealed_body FROM pol_idempotency WHERE scope = $1 AND idem_key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let body = match r.get::<Option<Vec<u8>>, _>(3) {
            Some(sealed) => {
                let plain = self
                    .sealer
                    .open(&Self::idempotency_context(scope, key), &sealed)
                    .await?;
                String::from_utf8(plain.to_vec())
                    .map_err(|_| Error::Seal("stored answer is not UTF-8".into()))?
            }
            None => r.get(2),
        };
        Ok(Some(IdempotentResponse {
            request_hash: r.get(0),
            status: u16::try_from(r.get::<i64, _>(1)).unwrap_or(500),
            body,
        }))
    }

    /// Deletes idempotency records older than `before_ms` (call now and then, e.g. daily
    /// with `now - 24 h`); returns how many were removed.
    pub async fn prune_idempotency(&self, before_ms: i64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM pol_idempotency WHERE created_ms < $1")
                .bind(before_ms)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    /// Stores a response for replay (first writer wins). The body is sealed with the store's
    /// [`SecretSealer`] (it may hold a secret, e.g. a new access key's): the database never
    /// holds it in clear.
    pub async fn idempotency_put(
        &self,
        scope: &str,
        key: &str,
        resp: &IdempotentResponse,
    ) -> Result<()> {
        let sealed = self
            .sealer
            .seal(&Self::idempotency_context(scope, key), resp.body.as_bytes())
            .await?;
        sqlx::query(
            "INSERT INTO pol_idempotency (scope, idem_key, request_hash, status, body, sealed_body, created_ms) \
             VALUES ($1, $2, $3, $4, '', $5, $6) ON CONFLICT (scope, idem_key) DO NOTHING",
        )
        .bind(scope)
        .bind(key)
        .bind(&resp.request_hash)
        .bind(i64::from(resp.status))
        .bind(sealed)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
