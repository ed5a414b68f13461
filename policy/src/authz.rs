//! The authorisation entry point for the S3 front end: [`Authorizer`] combines
//! the store (keys, grants, bucket tenants), the decision table
//! ([`crate::grants::decide`]), per-principal rate limits (the principal's override, else its
//! role's, else the global configuration; off by default) and the quorum gate,
//! and counts denials. The gateway's s3s `S3Auth::get_secret_key` calls
//! [`Authorizer::secret_key`], its `S3Access::check` calls
//! [`Authorizer::authorize_s3`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::grants::{Identity, decide};
use crate::ratelimit::{LimitClass, RateLimits};
use crate::store::PolicyStore;
use crate::{Action, Error, Result, SecretKey, now_ms};

/// Authentication and authorisation for S3 requests. Clone is cheap.
#[derive(Clone, Debug)]
pub struct Authorizer {
    store: PolicyStore,
    limits: Arc<RateLimits>,
    denied: Arc<AtomicU64>,
    throttled: Arc<AtomicU64>,
}

impl Authorizer {
    /// Wraps the store and limits.
    pub fn new(store: PolicyStore, limits: Arc<RateLimits>) -> Authorizer {
        Authorizer {
            store,
            limits,
            denied: Arc::new(AtomicU64::new(0)),
            throttled: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The store.
    pub fn store(&self) -> &PolicyStore {
        &self.store
    }

    /// The rate limits.
    pub fn limits(&self) -> &Arc<RateLimits> {
        &self.limits
    }

    /// Requests refused with AccessDenied (grants, tenants, quorum) so far.
    pub fn denied_total(&self) -> u64 {
        self.denied.load(Ordering::Relaxed)
    }

    /// Requests refused with SlowDown so far.
    pub fn throttled_total(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// For `S3Auth::get_secret_key`: the secret and identity of an active key
    /// (`None`: unknown, revoked, expired or disabled → InvalidAccessKeyId).
    pub async fn secret_key(&self, access_key_id: &str) -> Result<Option<(SecretKey, Identity)>> {
        self.store.lookup_key(access_key_id, now_ms()).await
    }

    /// For `S3Access::check`: rate limit, grants/tenant decision, then the quorum
    /// gate. `Err(RateLimited)` → 503 SlowDown with Retry-After;
    /// `Err(AccessDenied | ApprovalRequired)` → 403 AccessDenied (the message of
    /// ApprovalRequired names the approval request). See `grants::decide` for
    /// how to pass CopyObject, DeleteObjects and list prefixes.
    pub async fn authorize_s3(
        &self,
        id: &Identity,
        action: Action,
        bucket: Option<&str>,
        key: Option<&str>,
    ) -> Result<()> {
        self.authorize_s3_at(id, action, bucket, key, now_ms())
            .await
    }

    /// [`Authorizer::authorize_s3`] at a given time (tests).
    pub async fn authorize_s3_at(
        &self,
        id: &Identity,
        action: Action,
        bucket: Option<&str>,
        key: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        let class = LimitClass::of(action);
        let quota = self
            .store
            .s3_quota(id, class, self.limits.config().per_min(class))
            .await?;
        if let Err(e) = self.limits.check_quota(class, &id.principal, quota) {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        self.authorize_item_at(id, action, bucket, key, now_ms)
            .await
    }

    /// The decision of [`Authorizer::authorize_s3`] without taking a rate-limit token: for the
    /// items of one request that was already admitted (and metered) as a whole, e.g. each key
    /// of a DeleteObjects batch. One request costs one token however many keys it names.
    pub async fn authorize_item(
        &self,
        id: &Identity,
        action: Action,
        bucket: Option<&str>,
        key: Option<&str>,
    ) -> Result<()> {
        self.authorize_item_at(id, action, bucket, key, now_ms())
            .await
    }

    async fn authorize_item_at(
        &self,
        id: &Identity,
        action: Action,
        bucket: Option<&str>,
        key: Option<&str>,
        now_ms: i64,
    ) -> Result<()> {
        let bucket_tenant = match (bucket, action) {
            (Some(b), Action::CreateBucket) => self.store.assigned_tenant(b).await?,
            (Some(b), _) => Some(self.store.bucket_tenant(b).await?),
            (None, _) => None,
        };
        let grants = self.store.resolved_grants(&id.principal).await?;
        let d = decide(id, &grants, action, bucket, key, bucket_tenant.as_deref());
        if let crate::Decision::Deny(reason) = d {
            self.denied.fetch_add(1, Ordering::Relaxed);
            tracing::info!(principal = %id.principal, %action, ?bucket, ?key, %reason, "access denied");
            return Err(Error::AccessDenied {
                principal: id.principal.clone(),
                action: format!("s3:{action}"),
                reason,
            });
        }
        let resource = match (bucket, key) {
            (Some(b), Some(k)) => format!("{b}/{k}"),
            (Some(b), None) => b.to_owned(),
            _ => String::new(),
        };
        let r = self
            .store
            .gate(id, &format!("s3:{action}"), bucket, &resource, "", now_ms)
            .await;
        if r.is_err() {
            self.denied.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// Whether `bucket` is visible to `id` in ListBuckets (same tenant only).
    pub async fn bucket_visible(&self, id: &Identity, bucket: &str) -> Result<bool> {
        Ok(self.store.bucket_tenant(bucket).await? == id.tenant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ratelimit::RateLimitConfig;
    use crate::sealer::AesGcmSealer;
    use crate::{QuorumRule, Role};

    async fn setup(cfg: RateLimitConfig) -> Authorizer {
        // with the access cache, as the gateway serves
        let s = PolicyStore::in_memory(Arc::new(AesGcmSealer::random().unwrap()))
            .await
            .unwrap()
            .with_access_cache();
        s.bootstrap(None).await.unwrap();
        s.create_tenant("acme").await.unwrap();
        Authorizer::new(s, Arc::new(RateLimits::new(cfg)))
    }

    #[tokio::test]
    async fn end_to_end_key_grant_tenant_quorum() {
        let az = setup(RateLimitConfig::default()).await;
        let s = az.store().clone();
        s.create_principal("backup", "service", "acme", None)
            .await
            .unwrap();
        s.create_principal("boss", "user", "acme", Some(Role::SuperAdmin))
            .await
            .unwrap();
        s.create_principal("boss2", "user", "acme", Some(Role::SuperAdmin))
            .await
            .unwrap();
        s.create_role("BackupWriter", &["PutObject".into(), "DeleteObject".into()])
            .await
            .unwrap();
        s.create_grant("backup", "BackupWriter", "acme-backups", "")
            .await
            .unwrap();
        s.assign_bucket("acme-backups", "acme").await.unwrap();
        s.assign_bucket("other-tenant", "default").await.unwrap();
        // approvers must exist before the approval request is opened (strictly, in ms)
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let k = s.create_access_key("backup", None).await.unwrap();
        let (secret, id) = az.secret_key(&k.access_key_id).await.unwrap().unwrap();
        assert_eq!(secret, k.secret);
        az.authorize_s3(&id, Action::PutObject, Some("acme-backups"), Some("a"))
            .await
            .unwrap();
        az.authorize_s3(&id, Action::DeleteObject, Some("acme-backups"), Some("a"))
            .await
            .unwrap();
        let e = az
            .authorize_s3(&id, Action::GetObject, Some("acme-backups"), Some("a"))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::AccessDenied { .. }));
        let e = az
            .authorize_s3(&id, Action::PutObject, Some("other-tenant"), Some("a"))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::AccessDenied { .. }));
        assert_eq!(az.denied_total(), 2);
        // Tenant isolation for SuperAdmins too, and ListBuckets visibility.
        let boss = s.identity("boss").await.unwrap().unwrap();
        assert!(
            az.authorize_s3(&boss, Action::GetObject, Some("other-tenant"), Some("a"))
                .await
                .is_err()
        );
        assert!(az.bucket_visible(&boss, "acme-backups").await.unwrap());
        assert!(!az.bucket_visible(&boss, "other-tenant").await.unwrap());
        // CreateBucket of a name another tenant owns is refused; a new name is fine.
        assert!(
            az.authorize_s3(&boss, Action::CreateBucket, Some("other-tenant"), None)
                .await
                .is_err()
        );
        az.authorize_s3(&boss, Action::CreateBucket, Some("acme-new"), None)
            .await
            .unwrap();
        // Quorum on DeleteObject in acme-backups.
        let rule = QuorumRule {
            name: "protect".into(),
            action: "s3:DeleteObject".into(),
            bucket_pattern: "acme-*".into(),
            approvals: 1,
            approver_roles: vec!["superadmin".into()],
            ttl_secs: 300,
        };
        s.set_quorum_rule(&boss, &rule, now_ms()).await.unwrap();
        let e = az
            .authorize_s3(&id, Action::DeleteObject, Some("acme-backups"), Some("a"))
            .await
            .unwrap_err();
        let Error::ApprovalRequired { approval_id, .. } = e else {
            panic!("{e:?}")
        };
        assert!(e_msg_names(&approval_id));
        let boss2 = s.identity("boss2").await.unwrap().unwrap();
        s.approve(&approval_id, &boss2, now_ms()).await.unwrap();
        az.authorize_s3(&id, Action::DeleteObject, Some("acme-backups"), Some("a"))
            .await
            .unwrap();
        assert!(
            az.authorize_s3(&id, Action::DeleteObject, Some("acme-backups"), Some("a"))
                .await
                .is_err()
        );
        // Revocation takes effect on the next request.
        s.revoke_access_key(&k.access_key_id).await.unwrap();
        assert!(az.secret_key(&k.access_key_id).await.unwrap().is_none());
    }

    fn e_msg_names(id: &str) -> bool {
        let e = Error::ApprovalRequired {
            approval_id: id.into(),
            rule: "r".into(),
            needed: 1,
        };
        e.to_string().contains(id)
    }

    #[tokio::test]
    async fn writes_are_throttled_per_principal() {
        let az = setup(RateLimitConfig {
            s3_reads_per_min: 0,
            s3_writes_per_min: 2,
            admin_per_min: 0,
        })
        .await;
        let id = az.store().identity("admin").await.unwrap().unwrap();
        for _ in 0..2 {
            az.authorize_s3(&id, Action::PutObject, Some("b"), Some("k"))
                .await
                .unwrap();
        }
        assert!(matches!(
            az.authorize_s3(&id, Action::PutObject, Some("b"), Some("k"))
                .await,
            Err(Error::RateLimited { .. })
        ));
        az.authorize_s3(&id, Action::GetObject, Some("b"), Some("k"))
            .await
            .unwrap();
        assert_eq!(az.throttled_total(), 1);
    }

    #[tokio::test]
    async fn s3_limits_are_off_by_default_and_overridable_per_principal_and_role() {
        use crate::ratelimit::{LimitOverride, LimitScope};
        let az = setup(RateLimitConfig::default()).await;
        let s = az.store().clone();
        let id = s.identity("admin").await.unwrap().unwrap();
        // off by default: a sync of thousands of files never meets SlowDown
        for _ in 0..3000 {
            az.authorize_s3(&id, Action::PutObject, Some("b"), Some("k"))
                .await
                .unwrap();
        }
        // a role override applies to the role's holders
        s.set_limits(
            LimitScope::Role,
            "SuperAdmin",
            &LimitOverride {
                s3_reads_per_min: None,
                s3_writes_per_min: Some(2),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            s.get_limits(LimitScope::Role, "superadmin")
                .await
                .unwrap()
                .s3_writes_per_min,
            Some(2)
        );
        for _ in 0..2 {
            az.authorize_s3(&id, Action::PutObject, Some("b"), Some("k"))
                .await
                .unwrap();
        }
        assert!(matches!(
            az.authorize_s3(&id, Action::PutObject, Some("b"), Some("k"))
                .await,
            Err(Error::RateLimited { .. })
        ));
        // reads inherit the global setting (off)
        for _ in 0..100 {
            az.authorize_s3(&id, Action::GetObject, Some("b"), Some("k"))
                .await
                .unwrap();
        }
        // a principal override wins over its role's: 0 = unlimited
        s.set_limits(
            LimitScope::Principal,
            "admin",
            &LimitOverride {
                s3_reads_per_min: Some(1),
                s3_writes_per_min: Some(0),
            },
        )
        .await
        .unwrap();
        for _ in 0..50 {
            az.authorize_s3(&id, Action::PutObject, Some("b"), Some("k"))
                .await
                .unwrap();
        }
        az.authorize_s3(&id, Action::GetObject, Some("b"), Some("k"))
            .await
            .unwrap();
        assert!(
            az.authorize_s3(&id, Action::GetObject, Some("b"), Some("k"))
                .await
                .is_err()
        );
        // removing the overrides goes back to the global setting
        s.delete_limits(LimitScope::Principal, "admin")
            .await
            .unwrap();
        s.delete_limits(LimitScope::Role, "superadmin")
            .await
            .unwrap();
        for _ in 0..10 {
            az.authorize_s3(&id, Action::GetObject, Some("b"), Some("k"))
                .await
                .unwrap();
        }
        assert!(matches!(
            s.set_limits(LimitScope::Role, "BackupWriter", &LimitOverride::default())
                .await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            s.get_limits(LimitScope::Principal, "ghost").await,
            Err(Error::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn oversized_access_key_ids_are_refused_before_any_lookup() {
        let az = setup(RateLimitConfig::default()).await;
        let huge = "A".repeat(200 * 1024);
        assert!(az.secret_key(&huge).await.unwrap().is_none());
        assert!(az.secret_key("AK\u{0}").await.unwrap().is_none());
        assert!(az.secret_key(&"B".repeat(129)).await.unwrap().is_none());
        // nothing was cached for them (a well-formed unknown id is)
        let cache = az.store().access_cache().unwrap();
        cache.keys.run_pending_tasks().await;
        assert_eq!(cache.keys.entry_count(), 0);
        assert!(az.secret_key("NOSUCHKEY").await.unwrap().is_none());
        cache.keys.run_pending_tasks().await;
        assert_eq!(cache.keys.entry_count(), 1);
    }
}
