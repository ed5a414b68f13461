//! S3 access keys: issue, import, list, revoke, and the per-request lookup of a key's sealed
//! secret and identity (through the access cache).

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::PolicyStore;
use crate::cache::{self, KeyRow};
use crate::grants::Identity;
use crate::{Error, Result, Role, SecretKey, now_ms, random_bytes};

/// Public facts about an access key (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessKeyInfo {
    /// access key id
    pub access_key_id: String,
    /// owning principal
    pub principal: String,
    /// creation time (ms since epoch)
    pub created_ms: i64,
    /// expiry (ms since epoch), if any
    pub expires_ms: Option<i64>,
    /// revoked keys never authenticate again
    pub revoked: bool,
}

/// A freshly created access key; the only time the secret is available.
#[derive(Debug, Clone)]
pub struct NewAccessKey {
    /// access key id
    pub access_key_id: String,
    /// the secret (redacted in Debug)
    pub secret: SecretKey,
    /// owning principal
    pub principal: String,
    /// expiry (ms since epoch), if any
    pub expires_ms: Option<i64>,
}

/// Longest access key id the store accepts (and looks up).
pub const MAX_ACCESS_KEY_ID_LEN: usize = 128;

/// Whether `id` could be a stored access key id: 3..=[`MAX_ACCESS_KEY_ID_LEN`] printable ASCII
/// characters. Anything else is refused before any lookup, cache or limiter sees it.
pub fn is_valid_access_key_id(id: &str) -> bool {
    (3..=MAX_ACCESS_KEY_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

impl PolicyStore {
    fn key_context(access_key_id: &str) -> String {
        format!("vaultgate/access-key/{access_key_id}")
    }

    /// Issues a new access key for `principal`; the secret is returned once and stored sealed.
    pub async fn create_access_key(
        &self,
        principal: &str,
        expires_ms: Option<i64>,
    ) -> Result<NewAccessKey> {
        const ID_ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let raw = random_bytes::<18>()?;
        let id: String = std::iter::once("VG".to_owned())
            .chain(
                raw.iter()
                    .map(|b| char::from(ID_ALPHABET[usize::from(b & 31)]).to_string()),
            )
            .collect();
        let secret = SecretKey::from_random(&random_bytes::<30>()?);
        self.import_access_key(principal, &id, &secret, expires_ms)
            .await?;
        Ok(NewAccessKey {
            access_key_id: id,
            secret,
            principal: principal.to_owned(),
            expires_ms,
        })
    }

    /// Stores a given key pair for `principal` (replacing the secret of an existing,
    /// un-revoked key with the same id bound to the same principal).
    pub async fn import_access_key(
        &self,
        principal: &str,
        access_key_id: &str,
        secret: &SecretKey,
        expires_ms: Option<i64>,
    ) -> Result<()> {
        let _changed = self.writing();
        if !is_valid_access_key_id(access_key_id) {
            return Err(Error::Invalid("malformed access key id".into()));
        }
        if secret.expose().len() < 8 {
            return Err(Error::Invalid("secret key too short (min 8)".into()));
        }
        if self.get_principal(principal).await?.is_none() {
            return Err(Error::NotFound(format!("principal {principal}")));
        }
        let sealed = self
            .sealer
            .seal(
                &Self::key_context(access_key_id),
                secret.expose().as_bytes(),
            )
            .await?;
        let res = sqlx::query(
            "INSERT INTO pol_access_keys (access_key_id, principal, sealed_secret, created_ms, expires_ms, revoked) \
             VALUES ($1, $2, $3, $4, $5, 0) \
             ON CONFLICT (access_key_id) DO UPDATE SET sealed_secret = excluded.sealed_secret, expires_ms = excluded.expires_ms \
             WHERE pol_access_keys.principal = excluded.principal AND pol_access_keys.revoked = 0",
        )
        .bind(access_key_id)
        .bind(principal)
        .bind(sealed)
        .bind(now_ms())
        .bind(expires_ms)
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 0 {
            return Err(Error::Conflict(format!(
                "access key {access_key_id} belongs to another principal or is revoked"
            )));
        }
        Ok(())
    }

    /// Access keys, optionally of one principal, by id.
    pub async fn list_access_keys(&self, principal: Option<&str>) -> Result<Vec<AccessKeyInfo>> {
        let rows = sqlx::query(
            "SELECT access_key_id, principal, created_ms, expires_ms, revoked FROM pol_access_keys \
             WHERE ($1 IS NULL OR principal = $1) ORDER BY access_key_id",
        )
        .bind(principal)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| AccessKeyInfo {
                access_key_id: r.get(0),
                principal: r.get(1),
                created_ms: r.get(2),
                expires_ms: r.get(3),
                revoked: r.get::<i64, _>(4) != 0,
            })
            .collect())
    }

    /// Facts about one key.
    pub async fn get_access_key(&self, access_key_id: &str) -> Result<Option<AccessKeyInfo>> {
        let row = sqlx::query(
            "SELECT access_key_id, principal, created_ms, expires_ms, revoked FROM pol_access_keys WHERE access_key_id = $1",
        )
        .bind(access_key_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| AccessKeyInfo {
            access_key_id: r.get(0),
            principal: r.get(1),
            created_ms: r.get(2),
            expires_ms: r.get(3),
            revoked: r.get::<i64, _>(4) != 0,
        }))
    }

    /// Revokes a key (effective on the next request; permanent).
    pub async fn revoke_access_key(&self, access_key_id: &str) -> Result<()> {
        let _changed = self.writing();
        let n = sqlx::query("UPDATE pol_access_keys SET revoked = 1 WHERE access_key_id = $1")
            .bind(access_key_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("access key {access_key_id}")));
        }
        Ok(())
    }

    /// For S3 authentication: the secret and identity behind an access key id, or
    /// `None` when the key is unknown, revoked, expired, or its principal disabled.
    pub async fn lookup_key(
        &self,
        access_key_id: &str,
        now_ms: i64,
    ) -> Result<Option<(SecretKey, Identity)>> {
        let Some(r) = self.active_key_row(access_key_id, now_ms).await? else {
            return Ok(None);
        };
        let plain = self
            .sealer
            .open(&Self::key_context(access_key_id), &r.sealed_secret)
            .await?;
        let secret = std::str::from_utf8(&plain)
            .map_err(|_| Error::Seal("stored secret is not UTF-8".into()))?;
        Ok(Some((
            SecretKey::new(secret),
            Identity {
                principal: r.principal,
                tenant: r.tenant,
                role: Role::parse(&r.role).ok(),
                access_key_id: access_key_id.to_owned(),
            },
        )))
    }

    /// The identity behind an active access key (not revoked or expired, principal enabled),
    /// without opening its secret: the admin API's per-call check of a token minted with it.
    pub async fn key_identity(&self, access_key_id: &str, now_ms: i64) -> Result<Option<Identity>> {
        Ok(self
            .active_key_row(access_key_id, now_ms)
            .await?
            .map(|r| Identity {
                principal: r.principal,
                tenant: r.tenant,
                role: Role::parse(&r.role).ok(),
                access_key_id: access_key_id.to_owned(),
            }))
    }

    /// The row of an active key; `None` for malformed ids (never looked up nor cached),
    /// unknown, revoked or expired keys and disabled principals.
    async fn active_key_row(&self, access_key_id: &str, now_ms: i64) -> Result<Option<KeyRow>> {
        if !is_valid_access_key_id(access_key_id) {
            return Ok(None);
        }
        Ok(self
            .key_row(access_key_id)
            .await?
            .filter(|r| !(r.revoked || r.disabled || r.expires_ms.is_some_and(|e| e <= now_ms))))
    }

    /// The stored row of an access key with its principal (cached when the access cache is on).
    async fn key_row(&self, access_key_id: &str) -> Result<Option<KeyRow>> {
        let load = || async {
            let row = sqlx::query(
                "SELECT k.sealed_secret, k.expires_ms, k.revoked, p.name, p.tenant, p.role, p.disabled \
                 FROM pol_access_keys k JOIN pol_principals p ON p.name = k.principal WHERE k.access_key_id = $1",
            )
            .bind(access_key_id)
            .fetch_optional(&self.read)
            .await?;
            Ok(row.map(|r| KeyRow {
                sealed_secret: r.get(0),
                expires_ms: r.get(1),
                revoked: r.get::<i64, _>(2) != 0,
                principal: r.get(3),
                tenant: r.get(4),
                role: r.get(5),
                disabled: r.get::<i64, _>(6) != 0,
            }))
        };
        cache::through(
            self.access_cache(),
            |c| &c.keys,
            access_key_id.to_owned(),
            load,
        )
        .await
    }

    /// Checks an access key pair (admin token endpoint), in constant time on the secret.
    pub async fn verify_key_pair(
        &self,
        access_key_id: &str,
        secret: &SecretKey,
        now_ms: i64,
    ) -> Result<Identity> {
        match self.lookup_key(access_key_id, now_ms).await? {
            Some((stored, id)) if stored == *secret => Ok(id),
            _ => Err(Error::Unauthenticated(
                "invalid access key or secret".into(),
            )),
        }
    }
}
