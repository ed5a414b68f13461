//! The access decision: who ([`Identity`]) may do what ([`Action`]) on which
//! bucket and key, from the principal's built-in role, its per-bucket/prefix
//! [`Grant`]s of built-in or custom roles, and tenant isolation. Pure functions,
//! no I/O: the store loads the inputs, [`crate::authz`] adds quorum and limits.

use serde::{Deserialize, Serialize};

use crate::{Action, Role};

/// The tenant every principal and bucket belongs to unless told otherwise.
/// Its SuperAdmins administer every tenant.
pub const DEFAULT_TENANT: &str = "default";

/// An authenticated caller as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// principal name
    pub principal: String,
    /// the principal's tenant
    pub tenant: String,
    /// built-in role held across the tenant's buckets (`None`: grants only)
    pub role: Option<Role>,
    /// access key id the request was signed with (empty for admin JWT callers)
    pub access_key_id: String,
}

impl Identity {
    /// The gateway's [`crate::Principal`] view (role `Viewer` when only grants apply).
    pub fn to_principal(&self) -> crate::Principal {
        crate::Principal {
            name: self.principal.clone(),
            access_key_id: self.access_key_id.clone(),
            role: self.role.unwrap_or(Role::Viewer),
        }
    }
}

/// A role granted to a principal on buckets matching `bucket` (exact name, or a
/// pattern ending in `*`) and keys starting with `prefix`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Grant {
    /// grant id
    pub id: String,
    /// grantee
    pub principal: String,
    /// role name: `viewer`, `manager`, `superadmin` or a custom role
    pub role: String,
    /// bucket name or pattern (`finance-*`, `*`)
    pub bucket: String,
    /// key prefix ("" = whole bucket)
    pub prefix: String,
    /// creation time (ms since epoch)
    pub created_ms: i64,
}

/// A grant with its role resolved to the set of actions it allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedGrant {
    /// bucket name or pattern
    pub bucket: String,
    /// key prefix
    pub prefix: String,
    /// allowed actions
    pub actions: Vec<Action>,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// allowed by the built-in role
    AllowRole,
    /// allowed by a grant
    AllowGrant,
    /// refused, with the reason
    Deny(String),
}

impl Decision {
    /// Whether the request may go on.
    pub fn is_allowed(&self) -> bool {
        !matches!(self, Decision::Deny(_))
    }
}

/// Glob match where `*` matches any run of characters (the only wildcard).
pub fn glob_match(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.len() >= part.len() && rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    true
}

/// Actions of a built-in role.
pub fn builtin_actions(role: Role) -> Vec<Action> {
    Action::ALL
        .into_iter()
        .filter(|a| role.allows(*a))
        .collect()
}

/// Whether `action` is addressed to a bucket (every action but ListBuckets).
pub fn needs_bucket(action: Action) -> bool {
    action != Action::ListBuckets
}

/// Whether a grant's action set covers `action`. DeleteObject and DeleteObjects are one
/// permission: a batch delete is a set of single deletes, each authorised on its own key.
fn grant_covers(g: &ResolvedGrant, action: Action) -> bool {
    g.actions.contains(&action)
        || (matches!(action, Action::DeleteObject | Action::DeleteObjects)
            && g.actions
                .iter()
                .any(|a| matches!(a, Action::DeleteObject | Action::DeleteObjects)))
}

/// Decides one request.
///
/// * `bucket`/`key`: the target (for ListObjects* the listing prefix is the key;
///   for CopyObject check the destination as CopyObject and the source as GetObject;
///   for DeleteObjects admit the batch with key `None` — allowed when a role or any grant on
///   the bucket, whatever its prefix, may delete — and then check every key as DeleteObject).
/// * `bucket_tenant`: the tenant owning the bucket, `None` if it does not exist yet.
pub fn decide(
    id: &Identity,
    grants: &[ResolvedGrant],
    action: Action,
    bucket: Option<&str>,
    key: Option<&str>,
    bucket_tenant: Option<&str>,
) -> Decision {
    if let Some(t) = bucket_tenant
        && t != id.tenant
    {
        return Decision::Deny(format!("bucket belongs to another tenant ({t})"));
    }
    if needs_bucket(action) && bucket.is_none() {
        return Decision::Deny("no bucket named".into());
    }
    if let Some(role) = id.role
        && role.allows(action)
    {
        return Decision::AllowRole;
    }
    if action == Action::ListBuckets {
        // Anyone holding a grant may list (the gateway shows only its tenant's buckets).
        return if grants.is_empty() {
            Decision::Deny("no role or grant".into())
        } else {
            Decision::AllowGrant
        };
    }
    let Some(bucket) = bucket else {
        return Decision::Deny("no bucket named".into());
    };
    for g in grants {
        if !grant_covers(g, action) || !glob_match(&g.bucket, bucket) {
            continue;
        }
        let prefix_ok = g.prefix.is_empty()
            || match (action, key) {
                (Action::CreateBucket | Action::DeleteBucket, _) => false,
                (_, Some(k)) => k.starts_with(&g.prefix),
                // the batch is admitted; each of its keys is then decided as DeleteObject
                (Action::DeleteObjects, None) => true,
                (_, None) => false,
            };
        if prefix_ok {
            return Decision::AllowGrant;
        }
    }
    Decision::Deny(format!("no role or grant allows {action} on {bucket}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(role: Option<Role>, tenant: &str) -> Identity {
        Identity {
            principal: "p".into(),
            tenant: tenant.into(),
            role,
            access_key_id: "AK".into(),
        }
    }

    #[test]
    fn glob() {
        assert!(glob_match("finance-*", "finance-2024"));
        assert!(glob_match("finance-*", "finance-"));
        assert!(!glob_match("finance-*", "hr-2024"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("a*c*e", "abcd"));
        assert!(glob_match("s3:Delete*", "s3:DeleteObject"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        assert!(!glob_match("*x", ""));
    }

    /// The full decision table: every action x every built-in role, own tenant,
    /// other tenant, and no role at all.
    #[test]
    fn builtin_role_table_over_every_action() {
        for action in Action::ALL {
            let reads = action.is_read();
            let writes = action.is_write();
            for (role, expect) in [
                (Role::Viewer, reads),
                (Role::Manager, reads || writes),
                (Role::SuperAdmin, true),
            ] {
                let d = decide(
                    &id(Some(role), "t1"),
                    &[],
                    action,
                    Some("b"),
                    Some("k"),
                    Some("t1"),
                );
                assert_eq!(d.is_allowed(), expect, "{role} {action} own tenant");
                // Another tenant's bucket: always refused, whatever the role.
                let d = decide(
                    &id(Some(role), "t1"),
                    &[],
                    action,
                    Some("b"),
                    Some("k"),
                    Some("t2"),
                );
                assert!(!d.is_allowed(), "{role} {action} other tenant");
            }
            let d = decide(
                &id(None, "t1"),
                &[],
                action,
                Some("b"),
                Some("k"),
                Some("t1"),
            );
            assert!(!d.is_allowed(), "no role {action}");
        }
    }

    #[test]
    fn deletes_need_superadmin_or_a_grant() {
        for a in [
            Action::DeleteObject,
            Action::DeleteObjects,
            Action::DeleteBucket,
            Action::CreateBucket,
        ] {
            assert!(!Role::Manager.allows(a));
            assert!(Role::SuperAdmin.allows(a));
        }
    }

    #[test]
    fn custom_backup_writer_grant_on_one_bucket_and_prefix() {
        let g = ResolvedGrant {
            bucket: "backups".into(),
            prefix: "host1/".into(),
            actions: vec![
                Action::PutObject,
                Action::DeleteObject,
                Action::ListObjectsV2,
            ],
        };
        let who = id(None, "t1");
        let t = Some("t1");
        for action in Action::ALL {
            let d = decide(
                &who,
                std::slice::from_ref(&g),
                action,
                Some("backups"),
                Some("host1/a.tar"),
                t,
            );
            // DeleteObjects: the same permission as DeleteObject (a batch of single deletes)
            let expect = g.actions.contains(&action)
                || action == Action::ListBuckets
                || action == Action::DeleteObjects;
            assert_eq!(d.is_allowed(), expect, "{action}");
        }
        // Outside the prefix, other bucket, other tenant, batch without key.
        let gs = std::slice::from_ref(&g);
        assert!(
            !decide(
                &who,
                gs,
                Action::DeleteObject,
                Some("backups"),
                Some("host2/a"),
                t
            )
            .is_allowed()
        );
        assert!(
            !decide(
                &who,
                gs,
                Action::DeleteObject,
                Some("other"),
                Some("host1/a"),
                t
            )
            .is_allowed()
        );
        assert!(
            !decide(
                &who,
                gs,
                Action::DeleteObject,
                Some("backups"),
                Some("host1/a"),
                Some("t2")
            )
            .is_allowed()
        );
        assert!(!decide(&who, gs, Action::DeleteObject, Some("backups"), None, t).is_allowed());
        // a batch delete is admitted on the bucket, and each key decided as DeleteObject
        assert!(decide(&who, gs, Action::DeleteObjects, Some("backups"), None, t).is_allowed());
        assert!(!decide(&who, gs, Action::DeleteObjects, Some("other"), None, t).is_allowed());
        assert!(
            !decide(
                &who,
                gs,
                Action::DeleteObjects,
                Some("backups"),
                None,
                Some("t2")
            )
            .is_allowed()
        );
        // Listing inside the prefix is allowed, the whole bucket is not.
        assert!(
            decide(
                &who,
                gs,
                Action::ListObjectsV2,
                Some("backups"),
                Some("host1/"),
                t
            )
            .is_allowed()
        );
        assert!(
            !decide(
                &who,
                gs,
                Action::ListObjectsV2,
                Some("backups"),
                Some(""),
                t
            )
            .is_allowed()
        );
        // A grant holder may list buckets (filtered by tenant in the gateway).
        assert!(decide(&who, gs, Action::ListBuckets, None, None, None).is_allowed());
    }

    #[test]
    fn a_batch_delete_grant_deletes_single_keys_under_its_prefix_only() {
        let g = ResolvedGrant {
            bucket: "b".into(),
            prefix: "p/".into(),
            actions: vec![Action::DeleteObjects],
        };
        let who = id(None, "t1");
        let gs = std::slice::from_ref(&g);
        let t = Some("t1");
        assert!(decide(&who, gs, Action::DeleteObject, Some("b"), Some("p/x"), t).is_allowed());
        assert!(!decide(&who, gs, Action::DeleteObject, Some("b"), Some("q/x"), t).is_allowed());
        assert!(!decide(&who, gs, Action::PutObject, Some("b"), Some("p/x"), t).is_allowed());
        // Viewer and Manager roles are not admitted to a batch delete without a grant
        for role in [Role::Viewer, Role::Manager] {
            assert!(
                !decide(
                    &id(Some(role), "t1"),
                    &[],
                    Action::DeleteObjects,
                    Some("b"),
                    None,
                    t
                )
                .is_allowed()
            );
        }
    }

    #[test]
    fn pattern_grant_and_builtin_role_grant() {
        let g = ResolvedGrant {
            bucket: "finance-*".into(),
            prefix: String::new(),
            actions: builtin_actions(Role::Manager),
        };
        let who = id(Some(Role::Viewer), "t1");
        let gs = std::slice::from_ref(&g);
        assert_eq!(
            decide(
                &who,
                gs,
                Action::PutObject,
                Some("finance-q1"),
                Some("x"),
                Some("t1")
            ),
            Decision::AllowGrant
        );
        assert!(
            !decide(
                &who,
                gs,
                Action::PutObject,
                Some("hr"),
                Some("x"),
                Some("t1")
            )
            .is_allowed()
        );
        assert!(
            !decide(
                &who,
                gs,
                Action::DeleteObject,
                Some("finance-q1"),
                Some("x"),
                Some("t1")
            )
            .is_allowed()
        );
        assert_eq!(
            decide(
                &who,
                gs,
                Action::GetObject,
                Some("hr"),
                Some("x"),
                Some("t1")
            ),
            Decision::AllowRole
        );
        // A bucket that does not exist yet has no tenant: the role decides.
        assert!(
            decide(
                &id(Some(Role::SuperAdmin), "t1"),
                &[],
                Action::CreateBucket,
                Some("new"),
                None,
                None
            )
            .is_allowed()
        );
        assert!(
            !decide(
                &who,
                gs,
                Action::CreateBucket,
                Some("finance-new"),
                None,
                None
            )
            .is_allowed()
        );
    }
}
