//! The persistent policy store (sqlx, the gateway's index database), one file per family:
//! tenants, principals (users and service accounts), S3 access keys with sealed secrets,
//! custom roles, grants, bucket ownership by tenant, S3 rate-limit overrides and the admin
//! API's idempotency records (their bodies sealed like the secrets); this file holds the store
//! itself, the name checks and the bootstrap SuperAdmin. Quorum rules and approvals live in
//! [`crate::quorum`] on the same store. A disable or revoke takes effect on the next request:
//! checks read the database, or the serving process's access cache, which every write here
//! invalidates before it returns (`crate::cache`).

mod access_keys;
mod buckets;
mod grants;
mod idempotency;
mod limits;
mod principals;
mod roles;
mod tenants;

use std::sync::Arc;

use sqlx::AnyPool;

use crate::cache::{AccessCache, Writing};
use crate::grants::DEFAULT_TENANT;
use crate::sealer::SecretSealer;
use crate::{Error, Result, Role, SecretKey};

pub use access_keys::{AccessKeyInfo, MAX_ACCESS_KEY_ID_LEN, NewAccessKey, is_valid_access_key_id};
pub use buckets::tenancy;
pub use idempotency::IdempotentResponse;
pub use principals::PrincipalRecord;
pub use roles::{CustomRole, parse_actions};
pub use tenants::Tenant;

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

/// The policy store. Clone is cheap.
#[derive(Clone)]
pub struct PolicyStore {
    /// writes (and reads that must see them in the same sequence)
    pool: AnyPool,
    /// the reads of every request's access check: key lookup, grants, roles, bucket tenants,
    /// quorum rules (the same pool as `pool` unless [`PolicyStore::with_read_pool`])
    read: AnyPool,
    sealer: Arc<dyn SecretSealer>,
    /// the access check's reads, cached per generation (see [`PolicyStore::with_access_cache`])
    cache: Option<Arc<AccessCache>>,
}

impl std::fmt::Debug for PolicyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PolicyStore")
    }
}

/// Runs the policy migrations on `pool` (ignoring other crates' migrations in the same
/// database). [`PolicyStore::new`] runs them; so does the object index, which writes the
/// tenancy rows ([`tenancy`]) in its own bucket transactions.
pub async fn migrate(pool: &AnyPool) -> Result<()> {
    let mut migrator = match audit::db::Dialect::of(pool) {
        audit::db::Dialect::Sqlite => sqlx::migrate!("./migrations/sqlite"),
        audit::db::Dialect::Postgres => sqlx::migrate!("./migrations/postgres"),
    };
    migrator.set_ignore_missing(true);
    migrator.run(pool).await?;
    Ok(())
}

impl PolicyStore {
    /// Runs the policy migrations on `pool` and returns the store.
    pub async fn new(pool: AnyPool, sealer: Arc<dyn SecretSealer>) -> Result<PolicyStore> {
        migrate(&pool).await?;
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
    /// acts on the very next request (see `policy::cache`). Writes made by another store on the
    /// same database (another gateway instance) are seen only with
    /// [`PolicyStore::follow_other_instances`].
    pub fn with_access_cache(mut self) -> PolicyStore {
        self.cache = Some(Arc::new(AccessCache::new()));
        self
    }

    /// Keeps the access cache true to writes made by other processes on the same database
    /// (other gateway instances on one PostgreSQL) through the write counter `pol_generation`
    /// ([`audit::db::follow_counter`]): such a change acts here within `every` plus one query.
    /// Without the cache this does nothing. Needs a Tokio runtime.
    pub fn follow_other_instances(self, every: std::time::Duration) -> PolicyStore {
        if let Some(cache) = &self.cache {
            audit::db::follow_counter(
                self.read.clone(),
                "SELECT value FROM pol_generation WHERE id = 1",
                "policy write counter",
                every,
                Arc::downgrade(cache),
            );
        }
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
    pub fn with_read_pool(mut self, read: AnyPool) -> PolicyStore {
        self.read = read;
        self
    }

    /// An in-memory SQLite store (tests, tools).
    pub async fn in_memory(sealer: Arc<dyn SecretSealer>) -> Result<PolicyStore> {
        let pool = audit::db::connect(
            "sqlite::memory:",
            audit::db::PoolShape {
                max: 1,
                min: 1,
                acquire_timeout: std::time::Duration::from_secs(30),
                idle_timeout: None,
                create: true,
            },
        )
        .await?;
        PolicyStore::new(pool, sealer).await
    }

    /// The database pool (writes).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool of the access check's reads (see [`PolicyStore::with_read_pool`]).
    pub fn read_pool(&self) -> &AnyPool {
        &self.read
    }

    /// Checks the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sealer::AesGcmSealer;
    use crate::{Action, now_ms};

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
        // a tenancy row written in a caller's own transaction, inside changing_tenancy
        s.changing_tenancy(|| async {
            let mut tx = s.pool.begin().await.unwrap();
            tenancy::forget(&mut tx, "b1").await.unwrap();
            tx.commit().await.unwrap();
        })
        .await;
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
