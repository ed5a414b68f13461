//! Vaultgate identities and the authorisation hook used by the S3 front end.
//!
//! This crate owns who a caller is ([`Principal`]), what they may do ([`Role`]),
//! what a request asks for ([`Action`], one variant per S3 operation the gateway
//! serves), and the secret half of an access key ([`SecretKey`]: zeroized on drop,
//! constant-time comparison, printed as `[redacted]`). The modules below add
//! the persistent store of tenants, principals, access keys, custom roles and
//! grants ([`store`]), the access decision ([`grants`], [`authz`]), quorum
//! approvals ([`quorum`]), rate limits per principal and failed authentications per
//! address ([`ratelimit`]), admin JWTs
//! ([`jwt`]) and the sealing of access-key secrets at rest ([`sealer`]).

use std::fmt;

pub mod authz;
pub mod bucket_policy;
mod cache;
pub mod grants;
pub mod integral;
pub mod jwt;
pub mod quorum;
pub mod ratelimit;
pub mod sealer;
pub mod store;

pub use authz::Authorizer;
pub use grants::{Decision, Grant, Identity};
pub use jwt::{Claims, JwtAuthority};
pub use quorum::{Approval, ApprovalState, QuorumRule};
pub use ratelimit::{
    AuthFailures, DEFAULT_AUTH_FAILURES_PER_MIN, Instances, LimitClass, LimitOverride, LimitScope,
    RateLimitConfig, RateLimits,
};
pub use sealer::{AesGcmSealer, SecretSealer};
pub use store::{NewAccessKey, PolicyStore};

/// How often a serving gateway polls the database's policy write counter
/// ([`PolicyStore::follow_other_instances`]).
pub use audit::db::FOLLOW_INTERVAL;

use serde::{Deserialize, Serialize};

/// Errors of the policy crate.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A role name that is not one of the built-in roles.
    #[error("unknown role {0:?} (expected viewer, manager or superadmin)")]
    UnknownRole(String),
    /// The principal's role does not allow the action.
    #[error("{principal} ({role}) may not {action}")]
    Denied {
        /// principal name
        principal: String,
        /// role name
        role: Role,
        /// the refused action
        action: Action,
    },
    /// A request refused by grants or tenant isolation (S3 AccessDenied).
    #[error("access denied: {principal} may not {action}: {reason}")]
    AccessDenied {
        /// principal name
        principal: String,
        /// action name, e.g. `s3:DeleteObject`
        action: String,
        /// why (logged; the S3 client sees only AccessDenied)
        reason: String,
    },
    /// The request needs quorum approval; `approval_id` names the pending request.
    #[error(
        "approval required: request {approval_id} needs {needed} approval(s) under rule {rule}"
    )]
    ApprovalRequired {
        /// id of the (new or existing) approval request
        approval_id: String,
        /// the quorum rule that gates the request
        rule: String,
        /// approvals needed
        needed: u32,
    },
    /// Too many requests; retry after this many seconds.
    #[error("rate limit exceeded; retry after {retry_after_secs} s")]
    RateLimited {
        /// seconds until a request would be allowed
        retry_after_secs: u64,
    },
    /// Missing or invalid credentials/token.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// Authenticated but not allowed (admin API).
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// A named record does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// A record already exists or the state forbids the change.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Invalid input (names, patterns, numbers).
    #[error("invalid: {0}")]
    Invalid(String),
    /// An approval request has expired.
    #[error("approval {0} has expired")]
    Expired(String),
    /// Sealing or opening a secret failed.
    #[error("secret sealing failed: {0}")]
    Seal(String),
    /// Bad configuration (JWKS file, secrets).
    #[error("configuration: {0}")]
    Config(String),
    /// Database failure (details logged, not returned to clients).
    #[error("database: {0}")]
    Database(String),
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        Error::Database(e.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for Error {
    fn from(e: sqlx::migrate::MigrateError) -> Error {
        Error::Database(e.to_string())
    }
}

/// Milliseconds since the Unix epoch (wall clock).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Fills a buffer with OS randomness.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| Error::Seal(format!("no randomness: {e}")))?;
    Ok(b)
}

/// Result alias of the policy crate.
pub type Result<T> = std::result::Result<T, Error>;

/// One S3 operation the gateway serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// ListBuckets
    ListBuckets,
    /// CreateBucket
    CreateBucket,
    /// HeadBucket
    HeadBucket,
    /// DeleteBucket
    DeleteBucket,
    /// GetBucketLocation
    GetBucketLocation,
    /// PutObject
    PutObject,
    /// GetObject
    GetObject,
    /// HeadObject
    HeadObject,
    /// DeleteObject
    DeleteObject,
    /// DeleteObjects (batch delete)
    DeleteObjects,
    /// CopyObject
    CopyObject,
    /// ListObjects (v1)
    ListObjects,
    /// ListObjectsV2
    ListObjectsV2,
    /// CreateMultipartUpload
    CreateMultipartUpload,
    /// UploadPart
    UploadPart,
    /// UploadPartCopy
    UploadPartCopy,
    /// CompleteMultipartUpload
    CompleteMultipartUpload,
    /// AbortMultipartUpload
    AbortMultipartUpload,
    /// ListParts
    ListParts,
    /// ListMultipartUploads
    ListMultipartUploads,
    /// GetBucketVersioning
    GetBucketVersioning,
    /// PutBucketVersioning (SuperAdmin: bucket administration)
    PutBucketVersioning,
    /// ListObjectVersions (the permission AWS names `s3:ListBucketVersions`)
    ListBucketVersions,
    /// GetObject / HeadObject naming a `versionId` (also needs GetObject / HeadObject)
    GetObjectVersion,
    /// DeleteObject naming a `versionId`: destroys a version for good (also needs DeleteObject, and its quorum rules)
    DeleteObjectVersion,
    /// GetObjectLockConfiguration
    GetObjectLockConfiguration,
    /// PutObjectLockConfiguration (SuperAdmin)
    PutObjectLockConfiguration,
    /// GetObjectRetention
    GetObjectRetention,
    /// PutObjectRetention, and a PutObject / CopyObject / CreateMultipartUpload that sets a retention
    PutObjectRetention,
    /// GetObjectLegalHold
    GetObjectLegalHold,
    /// PutObjectLegalHold, and a write that sets a legal hold
    PutObjectLegalHold,
    /// `x-amz-bypass-governance-retention` on a delete or retention change (SuperAdmin; quorum rules on `s3:BypassGovernanceRetention` apply)
    BypassGovernanceRetention,
    /// GetObjectTagging
    GetObjectTagging,
    /// PutObjectTagging
    PutObjectTagging,
    /// DeleteObjectTagging
    DeleteObjectTagging,
    /// GetBucketTagging
    GetBucketTagging,
    /// PutBucketTagging (SuperAdmin: bucket administration)
    PutBucketTagging,
    /// DeleteBucketTagging (SuperAdmin)
    DeleteBucketTagging,
    /// GetBucketLifecycleConfiguration
    GetBucketLifecycleConfiguration,
    /// PutBucketLifecycleConfiguration (SuperAdmin: its rules delete data)
    PutBucketLifecycleConfiguration,
    /// DeleteBucketLifecycle (SuperAdmin)
    DeleteBucketLifecycle,
    /// GetBucketCors
    GetBucketCors,
    /// PutBucketCors (SuperAdmin: bucket administration; it opens the bucket to other sites' pages)
    PutBucketCors,
    /// DeleteBucketCors (SuperAdmin)
    DeleteBucketCors,
    /// GetBucketEncryption (the permission AWS names `s3:GetEncryptionConfiguration`)
    GetEncryptionConfiguration,
    /// PutBucketEncryption and DeleteBucketEncryption (SuperAdmin; AWS's `s3:PutEncryptionConfiguration`)
    PutEncryptionConfiguration,
    /// GetBucketOwnershipControls
    GetBucketOwnershipControls,
    /// PutBucketOwnershipControls and DeleteBucketOwnershipControls (SuperAdmin, as on AWS)
    PutBucketOwnershipControls,
    /// GetPublicAccessBlock (the permission AWS names `s3:GetBucketPublicAccessBlock`)
    GetBucketPublicAccessBlock,
    /// PutPublicAccessBlock and DeletePublicAccessBlock (SuperAdmin; AWS's `s3:PutBucketPublicAccessBlock`)
    PutBucketPublicAccessBlock,
    /// GetBucketPolicy
    GetBucketPolicy,
    /// PutBucketPolicy (SuperAdmin: a bucket policy can refuse requests to every principal)
    PutBucketPolicy,
    /// DeleteBucketPolicy (SuperAdmin)
    DeleteBucketPolicy,
    /// GetBucketPolicyStatus
    GetBucketPolicyStatus,
}

impl Action {
    /// Every action, for tests and documentation.
    pub const ALL: [Action; 54] = [
        Action::ListBuckets,
        Action::CreateBucket,
        Action::HeadBucket,
        Action::DeleteBucket,
        Action::GetBucketLocation,
        Action::PutObject,
        Action::GetObject,
        Action::HeadObject,
        Action::DeleteObject,
        Action::DeleteObjects,
        Action::CopyObject,
        Action::ListObjects,
        Action::ListObjectsV2,
        Action::CreateMultipartUpload,
        Action::UploadPart,
        Action::UploadPartCopy,
        Action::CompleteMultipartUpload,
        Action::AbortMultipartUpload,
        Action::ListParts,
        Action::ListMultipartUploads,
        Action::GetBucketVersioning,
        Action::PutBucketVersioning,
        Action::ListBucketVersions,
        Action::GetObjectVersion,
        Action::DeleteObjectVersion,
        Action::GetObjectLockConfiguration,
        Action::PutObjectLockConfiguration,
        Action::GetObjectRetention,
        Action::PutObjectRetention,
        Action::GetObjectLegalHold,
        Action::PutObjectLegalHold,
        Action::BypassGovernanceRetention,
        Action::GetObjectTagging,
        Action::PutObjectTagging,
        Action::DeleteObjectTagging,
        Action::GetBucketTagging,
        Action::PutBucketTagging,
        Action::DeleteBucketTagging,
        Action::GetBucketLifecycleConfiguration,
        Action::PutBucketLifecycleConfiguration,
        Action::DeleteBucketLifecycle,
        Action::GetBucketCors,
        Action::PutBucketCors,
        Action::DeleteBucketCors,
        Action::GetEncryptionConfiguration,
        Action::PutEncryptionConfiguration,
        Action::GetBucketOwnershipControls,
        Action::PutBucketOwnershipControls,
        Action::GetBucketPublicAccessBlock,
        Action::PutBucketPublicAccessBlock,
        Action::GetBucketPolicy,
        Action::PutBucketPolicy,
        Action::DeleteBucketPolicy,
        Action::GetBucketPolicyStatus,
    ];

    /// The S3 operation name (as s3s and AWS name it).
    pub fn s3_name(self) -> &'static str {
        match self {
            Action::ListBuckets => "ListBuckets",
            Action::CreateBucket => "CreateBucket",
            Action::HeadBucket => "HeadBucket",
            Action::DeleteBucket => "DeleteBucket",
            Action::GetBucketLocation => "GetBucketLocation",
            Action::PutObject => "PutObject",
            Action::GetObject => "GetObject",
            Action::HeadObject => "HeadObject",
            Action::DeleteObject => "DeleteObject",
            Action::DeleteObjects => "DeleteObjects",
            Action::CopyObject => "CopyObject",
            Action::ListObjects => "ListObjects",
            Action::ListObjectsV2 => "ListObjectsV2",
            Action::CreateMultipartUpload => "CreateMultipartUpload",
            Action::UploadPart => "UploadPart",
            Action::UploadPartCopy => "UploadPartCopy",
            Action::CompleteMultipartUpload => "CompleteMultipartUpload",
            Action::AbortMultipartUpload => "AbortMultipartUpload",
            Action::ListParts => "ListParts",
            Action::ListMultipartUploads => "ListMultipartUploads",
            Action::GetBucketVersioning => "GetBucketVersioning",
            Action::PutBucketVersioning => "PutBucketVersioning",
            Action::ListBucketVersions => "ListBucketVersions",
            Action::GetObjectVersion => "GetObjectVersion",
            Action::DeleteObjectVersion => "DeleteObjectVersion",
            Action::GetObjectLockConfiguration => "GetObjectLockConfiguration",
            Action::PutObjectLockConfiguration => "PutObjectLockConfiguration",
            Action::GetObjectRetention => "GetObjectRetention",
            Action::PutObjectRetention => "PutObjectRetention",
            Action::GetObjectLegalHold => "GetObjectLegalHold",
            Action::PutObjectLegalHold => "PutObjectLegalHold",
            Action::BypassGovernanceRetention => "BypassGovernanceRetention",
            Action::GetObjectTagging => "GetObjectTagging",
            Action::PutObjectTagging => "PutObjectTagging",
            Action::DeleteObjectTagging => "DeleteObjectTagging",
            Action::GetBucketTagging => "GetBucketTagging",
            Action::PutBucketTagging => "PutBucketTagging",
            Action::DeleteBucketTagging => "DeleteBucketTagging",
            Action::GetBucketLifecycleConfiguration => "GetBucketLifecycleConfiguration",
            Action::PutBucketLifecycleConfiguration => "PutBucketLifecycleConfiguration",
            Action::DeleteBucketLifecycle => "DeleteBucketLifecycle",
            Action::GetBucketCors => "GetBucketCors",
            Action::PutBucketCors => "PutBucketCors",
            Action::DeleteBucketCors => "DeleteBucketCors",
            Action::GetEncryptionConfiguration => "GetEncryptionConfiguration",
            Action::PutEncryptionConfiguration => "PutEncryptionConfiguration",
            Action::GetBucketOwnershipControls => "GetBucketOwnershipControls",
            Action::PutBucketOwnershipControls => "PutBucketOwnershipControls",
            Action::GetBucketPublicAccessBlock => "GetBucketPublicAccessBlock",
            Action::PutBucketPublicAccessBlock => "PutBucketPublicAccessBlock",
            Action::GetBucketPolicy => "GetBucketPolicy",
            Action::PutBucketPolicy => "PutBucketPolicy",
            Action::DeleteBucketPolicy => "DeleteBucketPolicy",
            Action::GetBucketPolicyStatus => "GetBucketPolicyStatus",
        }
    }

    /// The s3s operation this action authorises, if it is one: ListBucketVersions is the right
    /// of ListObjectVersions; GetObjectVersion, DeleteObjectVersion and
    /// BypassGovernanceRetention are rights a handler checks beyond its operation's (None).
    pub fn s3_operation(self) -> Option<&'static str> {
        match self {
            Action::ListBucketVersions => Some("ListObjectVersions"),
            Action::GetEncryptionConfiguration => Some("GetBucketEncryption"),
            Action::PutEncryptionConfiguration => Some("PutBucketEncryption"),
            Action::GetBucketPublicAccessBlock => Some("GetPublicAccessBlock"),
            Action::PutBucketPublicAccessBlock => Some("PutPublicAccessBlock"),
            Action::GetObjectVersion
            | Action::DeleteObjectVersion
            | Action::BypassGovernanceRetention => None,
            a => Some(a.s3_name()),
        }
    }

    /// Maps an s3s operation name to an action; `None` for operations the gateway does not serve.
    pub fn from_s3_operation(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.s3_name() == name)
    }

    /// Read-only actions (list, get, head).
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Action::ListBuckets
                | Action::HeadBucket
                | Action::GetBucketLocation
                | Action::GetObject
                | Action::HeadObject
                | Action::ListObjects
                | Action::ListObjectsV2
                | Action::ListParts
                | Action::ListMultipartUploads
                | Action::GetBucketVersioning
                | Action::ListBucketVersions
                | Action::GetObjectVersion
                | Action::GetObjectLockConfiguration
                | Action::GetObjectRetention
                | Action::GetObjectLegalHold
                | Action::GetObjectTagging
                | Action::GetBucketTagging
                | Action::GetBucketLifecycleConfiguration
                | Action::GetBucketCors
                | Action::GetEncryptionConfiguration
                | Action::GetBucketOwnershipControls
                | Action::GetBucketPublicAccessBlock
                | Action::GetBucketPolicy
                | Action::GetBucketPolicyStatus
        )
    }

    /// Writes that add data (put, copy, multipart) without destroying any.
    pub fn is_write(self) -> bool {
        matches!(
            self,
            Action::PutObject
                | Action::CopyObject
                | Action::CreateMultipartUpload
                | Action::UploadPart
                | Action::UploadPartCopy
                | Action::CompleteMultipartUpload
                | Action::AbortMultipartUpload
                | Action::PutObjectRetention
                | Action::PutObjectLegalHold
                | Action::PutObjectTagging
                | Action::DeleteObjectTagging
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.s3_name())
    }
}

/// The built-in roles of the original hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Role {
    /// list, get, head
    Viewer,
    /// Viewer + put, copy, multipart
    Manager,
    /// Manager + delete, bucket create/delete, administration
    SuperAdmin,
}

impl Role {
    /// Whether this role may perform `action`.
    pub fn allows(&self, action: Action) -> bool {
        match self {
            Role::Viewer => action.is_read(),
            Role::Manager => action.is_read() || action.is_write(),
            Role::SuperAdmin => true,
        }
    }

    /// Canonical lower-case name, as stored in the index.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Manager => "manager",
            Role::SuperAdmin => "superadmin",
        }
    }

    /// Parses a role name (case-insensitive; `super-admin`/`super_admin` accepted).
    pub fn parse(name: &str) -> Result<Role> {
        match name.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "viewer" => Ok(Role::Viewer),
            "manager" => Ok(Role::Manager),
            "superadmin" => Ok(Role::SuperAdmin),
            _ => Err(Error::UnknownRole(name.to_owned())),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// principal name (user or service account)
    pub name: String,
    /// the access key id the request was signed with
    pub access_key_id: String,
    /// the principal's role
    pub role: Role,
}

impl Principal {
    /// Ok when the principal's role allows `action`, else [`Error::Denied`].
    pub fn authorize(&self, action: Action) -> Result<()> {
        if self.role.allows(action) {
            Ok(())
        } else {
            Err(Error::Denied {
                principal: self.name.clone(),
                role: self.role,
                action,
            })
        }
    }
}

/// The secret half of an S3 access key: the project's one secret type, [`keys::Secret`]
/// (zeroized on drop, compared in constant time, never printed or serialized in clear).
pub use keys::Secret as SecretKey;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_round_trips_through_its_s3_name() {
        for a in Action::ALL {
            assert_eq!(Action::from_s3_operation(a.s3_name()), Some(a));
        }
        assert_eq!(Action::from_s3_operation("PutBucketAcl"), None);
        assert_eq!(Action::from_s3_operation(""), None);
        assert_eq!(Action::from_s3_operation("getobject"), None);
    }

    #[test]
    fn viewer_reads_only() {
        let r = Role::Viewer;
        for a in [
            Action::ListBuckets,
            Action::HeadBucket,
            Action::GetBucketLocation,
            Action::GetObject,
            Action::HeadObject,
            Action::ListObjects,
            Action::ListObjectsV2,
            Action::ListParts,
            Action::ListMultipartUploads,
        ] {
            assert!(r.allows(a), "viewer should be allowed {a}");
        }
        for a in [
            Action::PutObject,
            Action::CopyObject,
            Action::UploadPart,
            Action::CreateMultipartUpload,
            Action::DeleteObject,
            Action::DeleteObjects,
            Action::CreateBucket,
            Action::DeleteBucket,
            Action::PutBucketVersioning,
            Action::DeleteObjectVersion,
            Action::PutObjectRetention,
            Action::PutObjectLegalHold,
            Action::BypassGovernanceRetention,
        ] {
            assert!(!r.allows(a), "viewer must not be allowed {a}");
        }
    }

    #[test]
    fn manager_writes_but_does_not_delete() {
        let r = Role::Manager;
        for a in [
            Action::GetObject,
            Action::PutObject,
            Action::CopyObject,
            Action::CreateMultipartUpload,
            Action::UploadPart,
            Action::UploadPartCopy,
            Action::CompleteMultipartUpload,
            Action::AbortMultipartUpload,
        ] {
            assert!(r.allows(a), "manager should be allowed {a}");
        }
        for a in [
            Action::DeleteObject,
            Action::DeleteObjects,
            Action::CreateBucket,
            Action::DeleteBucket,
            Action::PutBucketVersioning,
            Action::PutObjectLockConfiguration,
            Action::DeleteObjectVersion,
            Action::BypassGovernanceRetention,
        ] {
            assert!(!r.allows(a), "manager must not be allowed {a}");
        }
    }

    #[test]
    fn superadmin_may_do_everything() {
        for a in Action::ALL {
            assert!(Role::SuperAdmin.allows(a));
        }
    }

    #[test]
    fn roles_are_ordered_supersets() {
        for a in Action::ALL {
            if Role::Viewer.allows(a) {
                assert!(Role::Manager.allows(a));
            }
            if Role::Manager.allows(a) {
                assert!(Role::SuperAdmin.allows(a));
            }
        }
    }

    #[test]
    fn role_names_parse() {
        assert_eq!(Role::parse("viewer"), Ok(Role::Viewer));
        assert_eq!(Role::parse("Manager"), Ok(Role::Manager));
        assert_eq!(Role::parse("super-admin"), Ok(Role::SuperAdmin));
        assert_eq!(Role::parse("SUPERADMIN"), Ok(Role::SuperAdmin));
        assert!(matches!(Role::parse("root"), Err(Error::UnknownRole(_))));
        for r in [Role::Viewer, Role::Manager, Role::SuperAdmin] {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
        }
    }

    #[test]
    fn principal_authorize_reports_denial() {
        let p = Principal {
            name: "ci".into(),
            access_key_id: "AK".into(),
            role: Role::Manager,
        };
        assert!(p.authorize(Action::PutObject).is_ok());
        let err = p.authorize(Action::DeleteBucket).unwrap_err();
        assert_eq!(
            err,
            Error::Denied {
                principal: "ci".into(),
                role: Role::Manager,
                action: Action::DeleteBucket
            }
        );
        assert!(err.to_string().contains("DeleteBucket"));
    }

    #[test]
    fn secret_key_is_redacted_and_compares() {
        let a = SecretKey::new("wJalrXUtnFEMI/K7MDENG");
        let b = SecretKey::new("wJalrXUtnFEMI/K7MDENG");
        let c = SecretKey::new("wJalrXUtnFEMI/K7MDENH");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, SecretKey::new("short"));
        assert_eq!(format!("{a:?}"), "[redacted]");
        assert_eq!(format!("{a}"), "[redacted]");
        assert!(!format!("{:?}", Some(&a)).contains("wJalr"));
        assert_eq!(a.expose(), "wJalrXUtnFEMI/K7MDENG");
    }

    #[test]
    fn random_secret_has_40_safe_chars() {
        let s = SecretKey::from_random(&[0xA5; 30]);
        assert_eq!(s.expose().len(), 40);
        assert!(
            s.expose()
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        );
        let t = SecretKey::from_random(&[0x5A; 30]);
        assert_ne!(s, t);
    }
}
