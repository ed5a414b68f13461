//! The persistent policy store (sqlx, the gateway's index database): tenants,
//! principals (users and service accounts), S3 access keys with sealed secrets,
//! custom roles, grants, bucket ownership by tenant, the bootstrap SuperAdmin,
//! and the admin API's idempotency records (their bodies sealed like the secrets). Quorum rules and approvals live in
//! [`crate::quorum`] on the same store. A disable or revoke takes effect on the
//! next request: checks read the database, or the serving process's access cache,
//! which every write here invalidates before it returns (`crate::cache`).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sqlx::{Row, SqlitePool};

use crate::cache::{self, AccessCache, KeyRow, Writing};
use crate::grants::{DEFAULT_TENANT, Grant, Identity, ResolvedGrant, builtin_actions};
use crate::sealer::SecretSealer;
use crate::{Action, Error, Result, Role, SecretKey, now_ms, random_bytes};

/// A tenant: a set of buckets and principals invisible to other tenants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    /// tenant name
    pub name: String,
    /// creation time (ms since epoch)
    pub created_ms: i64,
}

/// A stored principal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrincipalRecord {
    /// unique name
    pub name: String,
    /// `user` or `service`
    pub kind: String,
    /// tenant
    pub tenant: String,
    /// built-in role (`viewer`, `manager`, `superadmin`) or `none` (grants only)
    pub role: String,
    /// disabled principals cannot authenticate
    pub disabled: bool,
    /// creation time (ms since epoch)
    pub created_ms: i64,
    /// when the principal got its current role (ms since epoch): at creation and at every
    /// role change. Quorum approvers must have held their role since before the request.
    pub role_since_ms: i64,
}

impl PrincipalRecord {
    /// The built-in role, `None` for `none`.
    pub fn builtin_role(&self) -> Option<Role> {
        Role::parse(&self.role).ok()
    }
}

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

/// A custom role: a named set of S3 actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CustomRole {
    /// role name
    pub name: String,
    /// S3 operation names, e.g. `PutObject`
    pub actions: Vec<String>,
    /// creation time (ms since epoch)
    pub created_ms: i64,
    /// the tenant that defined the role; roles of the default tenant may be granted in every
    /// tenant, others only in their own
    pub tenant: String,
}

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

/// Longest access key id the store accepts (and looks up).
pub const MAX_ACCESS_KEY_ID_LEN: usize = 128;

/// Whether `id` could be a stored access key id: 3..=[`MAX_ACCESS_KEY_ID_LEN`] printable ASCII
/// characters. Anything else is refused before any lookup, cache or limiter sees it.
pub fn is_valid_access_key_id(id: &str) -> bool {
    (3..=MAX_ACCESS_KEY_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Name of the bootstrap SuperAdmin principal.
pub const BOOTSTRAP_PRINCIPAL: &str = "admin";

/// Checks a name of a tenant, principal, role or rule: 1..=64 of `[A-Za-z0-9._-]`.
pub fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(Error::Invalid(format!(
            "{what} name must be 1-64 characters of A-Z a-z 0-9 . _ -"
        )));
    }
    Ok(())
}

fn unique_violation(e: sqlx::Error, what: String) -> Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => Error::Conflict(what),
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => {
            Error::NotFound(format!("a record referenced by {what}"))
        }
        _ => Error::from(e),
    }
}

/// Parses a list of S3 operation names.
pub fn parse_actions(names: &[String]) -> Result<Vec<Action>> {
    if names.is_empty() {
        return Err(Error::Invalid("a role needs at least one action".into()));
    }
    names
        .iter()
        .map(|n| {
            let bare = n.strip_prefix("s3:").unwrap_or(n);
            Action::from_s3_operation(bare)
                .ok_or_else(|| Error::Invalid(format!("unknown S3 action {n:?}")))
        })
        .collect()
}

/// The policy store. Clone is cheap.
#[derive(Clone)]
pub struct PolicyStore {
    /// writes (and reads that must see them in the same sequence)
    pool: SqlitePool,
    /// the reads of every request's access check: key lookup, grants, roles, bucket tenants,
    /// quorum rules (the same pool as `pool` unless [`PolicyStore::with_read_pool`])
    read: SqlitePool,
    sealer: Arc<dyn SecretSealer>,
    /// the access check's reads, cached per generation (see [`PolicyStore::with_access_cache`])
    cache: Option<Arc<AccessCache>>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyStore")
    }
}

impl PolicyStore {
    /// Runs the policy migrations on `pool` (ignoring other crates' migrations in
    /// the same database) and returns the store.
    pub async fn new(pool: SqlitePool, sealer: Arc<dyn SecretSealer>) -> Result<PolicyStore> {
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await?;
        Ok(PolicyStore {
            read: pool.clone(),
            pool,
            sealer,
            cache: None,
        })
    }

    /// Keeps the access check's reads (access-key rows, resolved grants, bucket tenants,
    /// quorum rules) in memory, shared by every clone of this store. Every mutating method of
    /// the store invalidates them before it returns, so a change acknowledged by the admin API
    /// acts on the very next request (see `policy::cache`). Only for the serving process: writes
    /// made by another store on the same database are not seen.
    pub fn with_access_cache(mut self) -> PolicyStore {
        self.cache = Some(Arc::new(AccessCache::new()));
        self
    }

    /// The access cache, if on.
    pub(crate) fn access_cache(&self) -> Option<&AccessCache> {
        self.cache.as_deref()
    }

    /// Held for the duration of every write to a table the access cache reads.
    pub(crate) fn writing(&self) -> Option<Writing<'_>> {
        self.cache.as_deref().map(AccessCache::writing)
    }

    /// Serves the per-request reads of the access check from `read` (a pool of several
    /// connections on the same database, e.g. the index's read pool) instead of the single
    /// writer connection, so that authorising a request never queues behind writes. In WAL
    /// mode a read sees every committed write: a revocation acknowledged by the admin API is
    /// seen by the very next request.
    pub fn with_read_pool(mut self, read: SqlitePool) -> PolicyStore {
        self.read = read;
        self
    }

    /// An in-memory SQLite store (tests, tools).
    pub async fn in_memory(sealer: Arc<dyn SecretSealer>) -> Result<PolicyStore> {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect("sqlite::memory:")
            .await?;
        sqlx::query("PRAGMA foreign_keys = ON")
            .execute(&pool)
            .await?;
        PolicyStore::new(pool, sealer).await
    }

    /// The database pool (writes).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The pool of the access check's reads (see [`PolicyStore::with_read_pool`]).
    pub fn read_pool(&self) -> &SqlitePool {
        &self.read
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    // ---- tenants ----

    /// Creates a tenant.
    pub async fn create_tenant(&self, name: &str) -> Result<Tenant> {
        validate_name("tenant", name)?;
        let t = Tenant {
            name: name.to_owned(),
            created_ms: now_ms(),
        };
        sqlx::query("INSERT INTO pol_tenants (name, created_ms) VALUES ($1, $2)")
            .bind(&t.name)
            .bind(t.created_ms)
            .execute(&self.pool)
            .await
            .map_err(|e| unique_violation(e, format!("tenant {name} exists")))?;
        Ok(t)
    }

    /// Every tenant, by name.
    pub async fn list_tenants(&self) -> Result<Vec<Tenant>> {
        let rows = sqlx::query("SELECT name, created_ms FROM pol_tenants ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| Tenant {
                name: r.get(0),
                created_ms: r.get(1),
            })
            .collect())
    }

    async fn ensure_tenant(&self, name: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO pol_tenants (name, created_ms) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    // ---- principals ----

    /// Creates a principal (`kind` is `user` or `service`; `role` a built-in role or `None`).
    pub async fn create_principal(
        &self,
        name: &str,
        kind: &str,
        tenant: &str,
        role: Option<Role>,
    ) -> Result<PrincipalRecord> {
        let _changed = self.writing();
        validate_name("principal", name)?;
        if !matches!(kind, "user" | "service") {
            return Err(Error::Invalid("kind must be user or service".into()));
        }
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM pol_tenants WHERE name = $1")
            .bind(tenant)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Err(Error::NotFound(format!("tenant {tenant}")));
        }
        let created_ms = now_ms();
        let rec = PrincipalRecord {
            name: name.to_owned(),
            kind: kind.to_owned(),
            tenant: tenant.to_owned(),
            role: role.map_or("none", |r| r.as_str()).to_owned(),
            disabled: false,
            created_ms,
            role_since_ms: created_ms,
        };
        sqlx::query(
            "INSERT INTO pol_principals (name, kind, tenant, role, disabled, created_ms, role_since_ms) \
             VALUES ($1, $2, $3, $4, 0, $5, $5)",
        )
        .bind(&rec.name)
        .bind(&rec.kind)
        .bind(&rec.tenant)
        .bind(&rec.role)
        .bind(rec.created_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, format!("principal {name} exists")))?;
        Ok(rec)
    }

    fn principal_from_row(r: &sqlx::sqlite::SqliteRow) -> PrincipalRecord {
        PrincipalRecord {
            name: r.get("name"),
            kind: r.get("kind"),
            tenant: r.get("tenant"),
            role: r.get("role"),
            disabled: r.get::<i64, _>("disabled") != 0,
            created_ms: r.get("created_ms"),
            role_since_ms: r.get("role_since_ms"),
        }
    }

    /// One principal.
    pub async fn get_principal(&self, name: &str) -> Result<Option<PrincipalRecord>> {
        let row = sqlx::query(
            "SELECT name, kind, tenant, role, disabled, created_ms, role_since_ms FROM pol_principals WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(Self::principal_from_row))
    }

    /// Principals by name, optionally of one tenant.
    pub async fn list_principals(&self, tenant: Option<&str>) -> Result<Vec<PrincipalRecord>> {
        let rows = sqlx::query(
            "SELECT name, kind, tenant, role, disabled, created_ms, role_since_ms FROM pol_principals \
             WHERE ($1 IS NULL OR tenant = $1) ORDER BY name",
        )
        .bind(tenant)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(Self::principal_from_row).collect())
    }

    /// Disables or re-enables a principal (effective on its next request).
    pub async fn set_disabled(&self, name: &str, disabled: bool) -> Result<PrincipalRecord> {
        let _changed = self.writing();
        let n = sqlx::query("UPDATE pol_principals SET disabled = $1 WHERE name = $2")
            .bind(i64::from(disabled))
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("principal {name}")));
        }
        self.get_principal(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("principal {name}")))
    }

    /// Changes a principal's built-in role (and, when it changes, its `role_since_ms`).
    pub async fn set_role(&self, name: &str, role: Option<Role>) -> Result<PrincipalRecord> {
        let _changed = self.writing();
        let n = sqlx::query(
            "UPDATE pol_principals SET role_since_ms = CASE WHEN role = $1 THEN role_since_ms ELSE $3 END, \
             role = $1 WHERE name = $2",
        )
            .bind(role.map_or("none", |r| r.as_str()))
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("principal {name}")));
        }
        self.get_principal(name)
            .await?
            .ok_or_else(|| Error::NotFound(format!("principal {name}")))
    }

    /// Number of principals.
    pub async fn count_principals(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pol_principals")
            .fetch_one(&self.pool)
            .await?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// One principal, read through the access cache when it is on (the admin API's per-call
    /// check of its caller).
    pub async fn cached_principal(&self, name: &str) -> Result<Option<PrincipalRecord>> {
        let load = || async {
            let row = sqlx::query(
                "SELECT name, kind, tenant, role, disabled, created_ms, role_since_ms FROM pol_principals WHERE name = $1",
            )
            .bind(name)
            .fetch_optional(&self.read)
            .await?;
            Ok(row.as_ref().map(Self::principal_from_row))
        };
        cache::through(
            self.access_cache(),
            |c| &c.principals,
            name.to_owned(),
            load,
        )
        .await
    }

    /// The identity of an enabled principal (admin callers without an access key, e.g. tokens
    /// of an external IdP): role and tenant from the store. Read through the access cache.
    pub async fn identity(&self, name: &str) -> Result<Option<Identity>> {
        if validate_name("principal", name).is_err() {
            return Ok(None);
        }
        Ok(self
            .cached_principal(name)
            .await?
            .filter(|p| !p.disabled)
            .map(|p| Identity {
                role: p.builtin_role(),
                principal: p.name,
                tenant: p.tenant,
                access_key_id: String::new(),
            }))
    }

    // ---- access keys ----

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

    // ---- custom roles ----

    /// Defines a custom role (a named set of S3 actions) of the default tenant, which every
    /// tenant may grant.
    pub async fn create_role(&self, name: &str, actions: &[String]) -> Result<CustomRole> {
        self.create_role_in(DEFAULT_TENANT, name, actions).await
    }

    /// Defines a custom role of `tenant` (grantable to that tenant's principals only; a role
    /// of the default tenant to every tenant's). Role names are unique across tenants.
    pub async fn create_role_in(
        &self,
        tenant: &str,
        name: &str,
        actions: &[String],
    ) -> Result<CustomRole> {
        let _changed = self.writing();
        validate_name("role", name)?;
        if Role::parse(name).is_ok() || name == "none" {
            return Err(Error::Conflict(format!("{name} is a built-in role")));
        }
        let parsed = parse_actions(actions)?;
        let names: Vec<String> = parsed.iter().map(|a| a.s3_name().to_owned()).collect();
        let rec = CustomRole {
            name: name.to_owned(),
            actions: names,
            created_ms: now_ms(),
            tenant: tenant.to_owned(),
        };
        let json =
            serde_json::to_string(&rec.actions).map_err(|e| Error::Invalid(e.to_string()))?;
        sqlx::query(
            "INSERT INTO pol_roles (name, actions, created_ms, tenant) VALUES ($1, $2, $3, $4)",
        )
        .bind(&rec.name)
        .bind(json)
        .bind(rec.created_ms)
        .bind(&rec.tenant)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, format!("role {name} exists")))?;
        Ok(rec)
    }

    /// Custom roles by name: all of them (`None`), or those a tenant may see and grant (its
    /// own and the default tenant's).
    pub async fn list_roles_of(&self, tenant: Option<&str>) -> Result<Vec<CustomRole>> {
        let rows = sqlx::query(
            "SELECT name, actions, created_ms, tenant FROM pol_roles \
             WHERE ($1 IS NULL OR tenant = $1 OR tenant = $2) ORDER BY name",
        )
        .bind(tenant)
        .bind(DEFAULT_TENANT)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let actions: String = r.get(1);
                Ok(CustomRole {
                    name: r.get(0),
                    actions: serde_json::from_str(&actions)
                        .map_err(|e| Error::Database(format!("corrupt role actions: {e}")))?,
                    created_ms: r.get(2),
                    tenant: r.get(3),
                })
            })
            .collect()
    }

    /// Every custom role, by name.
    pub async fn list_roles(&self) -> Result<Vec<CustomRole>> {
        self.list_roles_of(None).await
    }

    /// One custom role.
    pub async fn get_role(&self, name: &str) -> Result<Option<CustomRole>> {
        Ok(self
            .list_roles_of(None)
            .await?
            .into_iter()
            .find(|r| r.name == name))
    }

    /// Deletes a custom role that no grant uses.
    pub async fn delete_role(&self, name: &str) -> Result<()> {
        let _changed = self.writing();
        let used: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pol_grants WHERE role = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?;
        if used > 0 {
            return Err(Error::Conflict(format!(
                "role {name} is granted {used} time(s)"
            )));
        }
        let n = sqlx::query("DELETE FROM pol_roles WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("role {name}")));
        }
        Ok(())
    }

    /// The actions of a built-in or custom role; `None` if there is no such role.
    pub async fn role_actions(&self, name: &str) -> Result<Option<Vec<Action>>> {
        if let Ok(r) = Role::parse(name) {
            return Ok(Some(builtin_actions(r)));
        }
        let row: Option<String> =
            sqlx::query_scalar("SELECT actions FROM pol_roles WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.read)
                .await?;
        match row {
            None => Ok(None),
            Some(json) => {
                let names: Vec<String> = serde_json::from_str(&json)
                    .map_err(|e| Error::Database(format!("corrupt role actions: {e}")))?;
                Ok(Some(parse_actions(&names)?))
            }
        }
    }

    // ---- grants ----

    /// Grants `role` to `principal` on buckets matching `bucket` and keys under `prefix`.
    pub async fn create_grant(
        &self,
        principal: &str,
        role: &str,
        bucket: &str,
        prefix: &str,
    ) -> Result<Grant> {
        let _changed = self.writing();
        let Some(grantee) = self.get_principal(principal).await? else {
            return Err(Error::NotFound(format!("principal {principal}")));
        };
        if self.role_actions(role).await?.is_none() {
            return Err(Error::NotFound(format!("role {role}")));
        }
        // another tenant's custom role is invisible to this grantee's tenant
        if let Some(custom) = self.get_role(role).await?
            && custom.tenant != DEFAULT_TENANT
            && custom.tenant != grantee.tenant
        {
            return Err(Error::NotFound(format!("role {role}")));
        }
        if bucket.is_empty() || bucket.len() > 255 || prefix.len() > 1024 {
            return Err(Error::Invalid("bucket pattern or prefix length".into()));
        }
        let g = Grant {
            id: format!("grt-{}", hex::encode(random_bytes::<8>()?)),
            principal: principal.to_owned(),
            role: role.to_owned(),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            created_ms: now_ms(),
        };
        sqlx::query(
            "INSERT INTO pol_grants (id, principal, role, bucket, prefix, created_ms) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&g.id)
        .bind(&g.principal)
        .bind(&g.role)
        .bind(&g.bucket)
        .bind(&g.prefix)
        .bind(g.created_ms)
        .execute(&self.pool)
        .await
        .map_err(|e| unique_violation(e, "grant".into()))?;
        Ok(g)
    }

    /// Grants, optionally of one principal, by id.
    pub async fn list_grants(&self, principal: Option<&str>) -> Result<Vec<Grant>> {
        let rows = sqlx::query(
            "SELECT id, principal, role, bucket, prefix, created_ms FROM pol_grants \
             WHERE ($1 IS NULL OR principal = $1) ORDER BY id",
        )
        .bind(principal)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Grant {
                id: r.get(0),
                principal: r.get(1),
                role: r.get(2),
                bucket: r.get(3),
                prefix: r.get(4),
                created_ms: r.get(5),
            })
            .collect())
    }

    /// Removes a grant.
    pub async fn delete_grant(&self, id: &str) -> Result<()> {
        let _changed = self.writing();
        let n = sqlx::query("DELETE FROM pol_grants WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(Error::NotFound(format!("grant {id}")));
        }
        Ok(())
    }

    /// A principal's grants with roles resolved to actions (unknown roles skipped).
    pub async fn resolved_grants(&self, principal: &str) -> Result<Vec<ResolvedGrant>> {
        let load = || async {
            let mut out = Vec::new();
            for g in self.list_grants(Some(principal)).await? {
                if let Some(actions) = self.role_actions(&g.role).await? {
                    out.push(ResolvedGrant {
                        bucket: g.bucket,
                        prefix: g.prefix,
                        actions,
                    });
                }
            }
            Ok(out)
        };
        cache::through(
            self.access_cache(),
            |c| &c.grants,
            principal.to_owned(),
            load,
        )
        .await
    }

    // ---- buckets ----

    /// Records that `bucket` belongs to `tenant` (call on CreateBucket).
    pub async fn assign_bucket(&self, bucket: &str, tenant: &str) -> Result<()> {
        let _changed = self.writing();
        sqlx::query(
            "INSERT INTO pol_bucket_tenants (bucket, tenant) VALUES ($1, $2) \
             ON CONFLICT (bucket) DO UPDATE SET tenant = excluded.tenant",
        )
        .bind(bucket)
        .bind(tenant)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets a deleted bucket's tenant.
    pub async fn forget_bucket(&self, bucket: &str) -> Result<()> {
        let _changed = self.writing();
        sqlx::query("DELETE FROM pol_bucket_tenants WHERE bucket = $1")
            .bind(bucket)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The tenant owning `bucket`; buckets never assigned belong to [`DEFAULT_TENANT`].
    pub async fn bucket_tenant(&self, bucket: &str) -> Result<String> {
        Ok(self
            .assigned_tenant(bucket)
            .await?
            .unwrap_or_else(|| DEFAULT_TENANT.to_owned()))
    }

    /// The tenant `bucket` was assigned to, `None` if never assigned (cached when the access
    /// cache is on).
    pub async fn assigned_tenant(&self, bucket: &str) -> Result<Option<String>> {
        let load = || async {
            Ok(
                sqlx::query_scalar("SELECT tenant FROM pol_bucket_tenants WHERE bucket = $1")
                    .bind(bucket)
                    .fetch_optional(&self.read)
                    .await?,
            )
        };
        cache::through(self.access_cache(), |c| &c.tenants, bucket.to_owned(), load).await
    }

    // ---- bootstrap ----

    /// First start: creates the `default` tenant and the SuperAdmin principal
    /// [`BOOTSTRAP_PRINCIPAL`] with an access key. With `fixed` credentials
    /// (VAULTGATE_ACCESS_KEY/VAULTGATE_SECRET_KEY) that key is stored (on every
    /// start, so a changed secret takes effect); without, a pair is generated on
    /// first start only and returned so the caller can show it once.
    pub async fn bootstrap(
        &self,
        fixed: Option<(&str, &SecretKey)>,
    ) -> Result<Option<NewAccessKey>> {
        self.ensure_tenant(DEFAULT_TENANT).await?;
        let fresh = self.get_principal(BOOTSTRAP_PRINCIPAL).await?.is_none();
        if fresh {
            self.create_principal(
                BOOTSTRAP_PRINCIPAL,
                "user",
                DEFAULT_TENANT,
                Some(Role::SuperAdmin),
            )
            .await?;
        }
        match fixed {
            Some((id, secret)) => {
                self.import_access_key(BOOTSTRAP_PRINCIPAL, id, secret, None)
                    .await?;
                Ok(None)
            }
            None if fresh => Ok(Some(
                self.create_access_key(BOOTSTRAP_PRINCIPAL, None).await?,
            )),
            None => Ok(None),
        }
    }

    // ---- idempotency ----

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealer::AesGcmSealer;

    pub(crate) async fn store() -> PolicyStore {
        PolicyStore::in_memory(Arc::new(AesGcmSealer::random().unwrap()))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn access_cache_serves_reads_and_every_write_invalidates_it() {
        let s = store().await.with_access_cache();
        s.ensure_tenant("acme").await.unwrap();
        s.create_principal("bob", "user", "acme", Some(Role::Viewer))
            .await
            .unwrap();
        let k = s.create_access_key("bob", None).await.unwrap();
        let id = &k.access_key_id;
        let (_, who) = s.lookup_key(id, now_ms()).await.unwrap().unwrap();
        assert_eq!(who.role, Some(Role::Viewer));
        assert!(s.resolved_grants("bob").await.unwrap().is_empty());
        assert_eq!(s.bucket_tenant("b1").await.unwrap(), DEFAULT_TENANT);

        // The cache is really used: a change made behind the store's back is not seen ...
        sqlx::query("UPDATE pol_principals SET role = 'manager' WHERE name = 'bob'")
            .execute(s.pool())
            .await
            .unwrap();
        let (_, who) = s.lookup_key(id, now_ms()).await.unwrap().unwrap();
        assert_eq!(who.role, Some(Role::Viewer), "served from the cache");

        // ... while every change through the store is seen by the very next read.
        s.set_role("bob", Some(Role::SuperAdmin)).await.unwrap();
        let (_, who) = s.lookup_key(id, now_ms()).await.unwrap().unwrap();
        assert_eq!(who.role, Some(Role::SuperAdmin));
        s.create_grant("bob", "manager", "b1", "p/").await.unwrap();
        assert_eq!(s.resolved_grants("bob").await.unwrap().len(), 1);
        s.assign_bucket("b1", "acme").await.unwrap();
        assert_eq!(s.bucket_tenant("b1").await.unwrap(), "acme");
        s.forget_bucket("b1").await.unwrap();
        assert_eq!(s.bucket_tenant("b1").await.unwrap(), DEFAULT_TENANT);
        s.set_disabled("bob", true).await.unwrap();
        assert!(s.lookup_key(id, now_ms()).await.unwrap().is_none());
        s.set_disabled("bob", false).await.unwrap();
        assert!(s.lookup_key(id, now_ms()).await.unwrap().is_some());
        s.revoke_access_key(id).await.unwrap();
        assert!(s.lookup_key(id, now_ms()).await.unwrap().is_none());
        // clones share the cache: a write through a clone invalidates it for the original
        let k2 = s.create_access_key("bob", None).await.unwrap();
        assert!(
            s.lookup_key(&k2.access_key_id, now_ms())
                .await
                .unwrap()
                .is_some()
        );
        s.clone()
            .revoke_access_key(&k2.access_key_id)
            .await
            .unwrap();
        assert!(
            s.lookup_key(&k2.access_key_id, now_ms())
                .await
                .unwrap()
                .is_none()
        );
        // expiry is checked on every lookup, also for a cached row
        let k3 = s
            .create_access_key("bob", Some(now_ms() + 60_000))
            .await
            .unwrap();
        assert!(
            s.lookup_key(&k3.access_key_id, now_ms())
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            s.lookup_key(&k3.access_key_id, now_ms() + 120_000)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn bootstrap_generates_once_and_key_authenticates() {
        let s = store().await;
        let k = s
            .bootstrap(None)
            .await
            .unwrap()
            .expect("generated on first start");
        assert!(s.bootstrap(None).await.unwrap().is_none(), "shown once");
        let (secret, id) = s
            .lookup_key(&k.access_key_id, now_ms())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(secret, k.secret);
        assert_eq!(id.role, Some(Role::SuperAdmin));
        assert_eq!(id.tenant, DEFAULT_TENANT);
        // The secret is not stored in clear.
        let raw: Vec<u8> = sqlx::query_scalar("SELECT sealed_secret FROM pol_access_keys")
            .fetch_one(s.pool())
            .await
            .unwrap();
        let needle = k.secret.expose().as_bytes();
        assert!(!raw.windows(needle.len()).any(|w| w == needle));
    }

    #[tokio::test]
    async fn fixed_bootstrap_credentials() {
        let s = store().await;
        let sk = SecretKey::new("fixed-secret-123");
        assert!(
            s.bootstrap(Some(("FIXEDKEY", &sk)))
                .await
                .unwrap()
                .is_none()
        );
        let id = s.verify_key_pair("FIXEDKEY", &sk, now_ms()).await.unwrap();
        assert_eq!(id.principal, BOOTSTRAP_PRINCIPAL);
        assert!(matches!(
            s.verify_key_pair("FIXEDKEY", &SecretKey::new("wrong-secret-1"), now_ms())
                .await,
            Err(Error::Unauthenticated(_))
        ));
        // A changed secret on restart takes effect.
        let sk2 = SecretKey::new("fixed-secret-456");
        s.bootstrap(Some(("FIXEDKEY", &sk2))).await.unwrap();
        assert!(s.verify_key_pair("FIXEDKEY", &sk2, now_ms()).await.is_ok());
        assert!(s.verify_key_pair("FIXEDKEY", &sk, now_ms()).await.is_err());
    }

    #[tokio::test]
    async fn disable_revoke_and_expiry_take_effect_at_once() {
        let s = store().await;
        s.bootstrap(None).await.unwrap();
        s.create_tenant("acme").await.unwrap();
        s.create_principal("ci", "service", "acme", Some(Role::Manager))
            .await
            .unwrap();
        let k = s.create_access_key("ci", None).await.unwrap();
        let now = now_ms();
        assert!(s.lookup_key(&k.access_key_id, now).await.unwrap().is_some());
        s.set_disabled("ci", true).await.unwrap();
        assert!(s.lookup_key(&k.access_key_id, now).await.unwrap().is_none());
        s.set_disabled("ci", false).await.unwrap();
        assert!(s.lookup_key(&k.access_key_id, now).await.unwrap().is_some());
        s.revoke_access_key(&k.access_key_id).await.unwrap();
        assert!(s.lookup_key(&k.access_key_id, now).await.unwrap().is_none());
        let e = s.create_access_key("ci", Some(now + 1000)).await.unwrap();
        assert!(s.lookup_key(&e.access_key_id, now).await.unwrap().is_some());
        assert!(
            s.lookup_key(&e.access_key_id, now + 1000)
                .await
                .unwrap()
                .is_none()
        );
        assert!(s.lookup_key("NOSUCHKEY", now).await.unwrap().is_none());
        assert!(matches!(
            s.revoke_access_key("NOSUCHKEY").await,
            Err(Error::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn names_tenants_roles_grants_validate() {
        let s = store().await;
        s.bootstrap(None).await.unwrap();
        assert!(matches!(
            s.create_tenant("bad name").await,
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            s.create_tenant("default").await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            s.create_principal("x", "user", "nope", None).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            s.create_principal("x", "robot", "default", None).await,
            Err(Error::Invalid(_))
        ));
        s.create_principal("backup", "service", "default", None)
            .await
            .unwrap();
        assert!(matches!(
            s.create_principal("backup", "service", "default", None)
                .await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            s.create_role("manager", &["PutObject".into()]).await,
            Err(Error::Conflict(_))
        ));
        assert!(matches!(
            s.create_role("bw", &["Frobnicate".into()]).await,
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            s.create_role("bw", &[]).await,
            Err(Error::Invalid(_))
        ));
        let r = s
            .create_role(
                "BackupWriter",
                &["s3:PutObject".into(), "DeleteObject".into()],
            )
            .await
            .unwrap();
        assert_eq!(r.actions, vec!["PutObject", "DeleteObject"]);
        assert!(matches!(
            s.create_grant("backup", "nope", "b", "").await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            s.create_grant("ghost", "BackupWriter", "b", "").await,
            Err(Error::NotFound(_))
        ));
        let g = s
            .create_grant("backup", "BackupWriter", "backups", "h1/")
            .await
            .unwrap();
        let rg = s.resolved_grants("backup").await.unwrap();
        assert_eq!(rg.len(), 1);
        assert_eq!(rg[0].actions, vec![Action::PutObject, Action::DeleteObject]);
        assert!(matches!(
            s.delete_role("BackupWriter").await,
            Err(Error::Conflict(_))
        ));
        s.delete_grant(&g.id).await.unwrap();
        s.delete_role("BackupWriter").await.unwrap();
        assert!(matches!(
            s.delete_grant(&g.id).await,
            Err(Error::NotFound(_))
        ));
        assert_eq!(s.bucket_tenant("unknown").await.unwrap(), DEFAULT_TENANT);
        let resp = IdempotentResponse {
            request_hash: "h".into(),
            status: 201,
            body: "{}".into(),
        };
        s.idempotency_put("admin", "k", &resp).await.unwrap();
        assert_eq!(
            s.idempotency_get("admin", "k").await.unwrap(),
            Some(resp.clone())
        );
        assert_eq!(s.idempotency_get("other", "k").await.unwrap(), None);
        assert_eq!(s.prune_idempotency(0).await.unwrap(), 0);
        assert_eq!(s.prune_idempotency(now_ms() + 1).await.unwrap(), 1);
        assert_eq!(s.idempotency_get("admin", "k").await.unwrap(), None);
        s.create_tenant("acme").await.unwrap();
        s.assign_bucket("acme-data", "acme").await.unwrap();
        assert_eq!(s.bucket_tenant("acme-data").await.unwrap(), "acme");
    }
}
