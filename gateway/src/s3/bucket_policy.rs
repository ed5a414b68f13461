//! Bucket policies: Put/Get/DeleteBucketPolicy and GetBucketPolicyStatus (the document is a
//! bucket setting, stored as sent and sealed like every setting), and their enforcement: the
//! access check ([`crate::auth::RoleAccess`]) asks [`BucketPolicies::enforce`] after the role and
//! grant decision, with the permissions AWS names for the operation and the condition keys of
//! the request ([`Facts`]).
//!
//! Only `Deny` statements change a decision (docs/BUCKET-POLICY.md): roles and grants give
//! access, a bucket policy can take it away. A SuperAdmin of the bucket's tenant can always read,
//! replace and delete the policy, so that no policy locks its bucket for good (AWS keeps the same
//! door open for the account's root user).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use policy::bucket_policy::{BucketPolicy, PolicyRequest};
use policy::{Identity, Role};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Result};

use super::Gateway;
use super::encryption::{SSE_C_ALGORITHM, SSE_KMS_KEY_ID, SSE_MODE};
use crate::error::{Error, Result};
use crate::request::RequestCtx;
use crate::store::Store;

/// Name of the bucket setting holding the bucket's policy document (as the client sent it).
pub(crate) const SETTING_POLICY: &str = "policy";

/// Bucket policy enforcement over the store's (cached) bucket settings. Cheap to clone.
#[derive(Clone)]
pub struct BucketPolicies {
    store: Store,
    /// the S3 listener serves TLS (`aws:SecureTransport`)
    tls: bool,
    /// each bucket's document as last parsed, with its text: a request to a bucket with a
    /// policy parses it only when the stored text changed (an entry goes when its bucket is
    /// found without a policy)
    parsed: Arc<Mutex<Parsed>>,
}

/// Bucket → (the policy text, its parse).
type Parsed = HashMap<String, (String, Arc<BucketPolicy>)>;

impl std::fmt::Debug for BucketPolicies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BucketPolicies")
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// The condition keys of one request (lower-case names), without the caller's own.
#[derive(Debug, Clone, Default)]
pub struct Facts(BTreeMap<String, Vec<String>>);

/// Request headers whose value is the condition key `s3:<header>`.
const HEADER_KEYS: &[&str] = &[
    SSE_MODE,
    SSE_KMS_KEY_ID,
    SSE_C_ALGORITHM,
    "x-amz-acl",
    "x-amz-copy-source",
    "x-amz-metadata-directive",
    "x-amz-storage-class",
    "x-amz-content-sha256",
];

impl Facts {
    /// The keys of an S3 request: its headers, listing parameters, version id, signature
    /// version and kind, tags, address and time.
    pub fn of_request(
        headers: &http::HeaderMap,
        query: Option<&str>,
        peer: Option<SocketAddr>,
    ) -> Facts {
        let mut f = Facts::default();
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        for n in HEADER_KEYS {
            if let Some(v) = header(n) {
                f.set(&format!("s3:{n}"), v);
            }
        }
        for (h, k) in [
            ("x-amz-object-lock-mode", "s3:object-lock-mode"),
            (
                "x-amz-object-lock-retain-until-date",
                "s3:object-lock-retain-until-date",
            ),
            ("x-amz-object-lock-legal-hold", "s3:object-lock-legal-hold"),
            ("user-agent", "aws:useragent"),
            ("referer", "aws:referer"),
        ] {
            if let Some(v) = header(h) {
                f.set(k, v);
            }
        }
        let mut presigned = false;
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match name.as_ref() {
                "prefix" => f.set("s3:prefix", value.as_ref()),
                "delimiter" => f.set("s3:delimiter", value.as_ref()),
                "max-keys" => f.set("s3:max-keys", value.as_ref()),
                "versionId" => f.set("s3:versionid", value.as_ref()),
                "X-Amz-Algorithm" => {
                    presigned = true;
                    f.set("s3:signatureversion", value.as_ref());
                }
                "Signature" => {
                    presigned = true;
                    f.set("s3:signatureversion", "AWS");
                }
                _ => {}
            }
        }
        if let Some(auth) = header("authorization") {
            let v = if auth.starts_with("AWS4-HMAC-SHA256") {
                "AWS4-HMAC-SHA256"
            } else {
                "AWS"
            };
            f.set("s3:signatureversion", v);
        }
        let kind = if presigned {
            "REST-QUERY-STRING"
        } else {
            "REST-HEADER"
        };
        f.set("s3:authtype", kind);
        if let Some(tags) = header("x-amz-tagging") {
            f.tags(tags);
        }
        if let Some(p) = peer {
            f.set("aws:sourceip", p.ip().to_string());
        }
        f
    }

    /// The keys of a POST Object form (its fields in the place of headers).
    pub fn of_form(input: &PostObjectInput, peer: Option<SocketAddr>) -> Facts {
        let mut f = Facts::default();
        let pairs: [(&str, Option<&str>); 6] = [
            (
                "s3:x-amz-server-side-encryption",
                input.server_side_encryption.as_ref().map(|v| v.as_str()),
            ),
            (
                "s3:x-amz-server-side-encryption-aws-kms-key-id",
                input.ssekms_key_id.as_deref(),
            ),
            (
                "s3:x-amz-server-side-encryption-customer-algorithm",
                input.sse_customer_algorithm.as_deref(),
            ),
            ("s3:x-amz-acl", input.acl.as_ref().map(|v| v.as_str())),
            (
                "s3:x-amz-storage-class",
                input.storage_class.as_ref().map(|v| v.as_str()),
            ),
            (
                "s3:object-lock-mode",
                input.object_lock_mode.as_ref().map(|v| v.as_str()),
            ),
        ];
        for (k, v) in pairs {
            if let Some(v) = v {
                f.set(k, v);
            }
        }
        if let Some(t) = &input.tagging
            && let Ok(h) = super::tagging::form_field_to_header(t)
        {
            f.tags(&h);
        }
        f.set("s3:authtype", "POST");
        if let Some(p) = peer {
            f.set("aws:sourceip", p.ip().to_string());
        }
        f
    }

    fn set(&mut self, key: &str, value: impl Into<String>) {
        self.0.insert(key.to_owned(), vec![value.into()]);
    }

    /// `s3:RequestObjectTag/<key>` per tag and `s3:RequestObjectTagKeys` of an `x-amz-tagging`
    /// value (URL-encoded `k=v&…`).
    fn tags(&mut self, encoded: &str) {
        let mut names = Vec::new();
        for (k, v) in url::form_urlencoded::parse(encoded.as_bytes()) {
            self.0
                .entry(format!("{}{k}", policy::bucket_policy::REQUEST_OBJECT_TAG).to_lowercase())
                .or_default()
                .push(v.into_owned());
            names.push(k.into_owned());
        }
        if !names.is_empty() {
            self.0.insert("s3:requestobjecttagkeys".into(), names);
        }
    }
}

/// The permissions (IAM action names) a bucket policy sees for an s3s operation; `version`: the
/// request names a version (`?versionId`). Empty for operations outside any bucket's policy
/// (ListBuckets, CreateBucket).
pub fn permissions_of(op: &str, version: bool) -> Vec<&'static str> {
    let one = |p: &'static str| vec![p];
    match op {
        "ListBuckets" | "CreateBucket" => Vec::new(),
        "HeadBucket" | "ListObjects" | "ListObjectsV2" => one("s3:ListBucket"),
        "ListObjectVersions" => one("s3:ListBucketVersions"),
        "GetObject" | "HeadObject" if version => one("s3:GetObjectVersion"),
        "GetObject" | "HeadObject" => one("s3:GetObject"),
        "GetObjectAttributes" if version => {
            vec!["s3:GetObjectVersion", "s3:GetObjectVersionAttributes"]
        }
        "GetObjectAttributes" => vec!["s3:GetObject", "s3:GetObjectAttributes"],
        "DeleteObject" if version => one("s3:DeleteObjectVersion"),
        "DeleteObject" => one("s3:DeleteObject"),
        // each key is checked on its own (`Gateway::delete_item`)
        "DeleteObjects" => Vec::new(),
        "PutObject"
        | "PostObject"
        | "CopyObject"
        | "CreateMultipartUpload"
        | "UploadPart"
        | "UploadPartCopy"
        | "CompleteMultipartUpload" => one("s3:PutObject"),
        "AbortMultipartUpload" => one("s3:AbortMultipartUpload"),
        "ListParts" => one("s3:ListMultipartUploadParts"),
        "ListMultipartUploads" => one("s3:ListBucketMultipartUploads"),
        "GetObjectLockConfiguration" => one("s3:GetBucketObjectLockConfiguration"),
        "PutObjectLockConfiguration" => one("s3:PutBucketObjectLockConfiguration"),
        "GetObjectTagging" if version => one("s3:GetObjectVersionTagging"),
        "PutObjectTagging" if version => one("s3:PutObjectVersionTagging"),
        "DeleteObjectTagging" if version => one("s3:DeleteObjectVersionTagging"),
        "DeleteBucketTagging" => one("s3:PutBucketTagging"),
        "GetBucketLifecycleConfiguration" => one("s3:GetLifecycleConfiguration"),
        "PutBucketLifecycleConfiguration" | "DeleteBucketLifecycle" => {
            one("s3:PutLifecycleConfiguration")
        }
        "GetBucketCors" => one("s3:GetBucketCORS"),
        "PutBucketCors" | "DeleteBucketCors" => one("s3:PutBucketCORS"),
        "GetBucketEncryption" => one("s3:GetEncryptionConfiguration"),
        "PutBucketEncryption" | "DeleteBucketEncryption" => one("s3:PutEncryptionConfiguration"),
        "DeleteBucketOwnershipControls" => one("s3:PutBucketOwnershipControls"),
        "GetPublicAccessBlock" => one("s3:GetBucketPublicAccessBlock"),
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => one("s3:PutBucketPublicAccessBlock"),
        // the rest are named as their operation: s3:DeleteBucket, s3:GetBucketVersioning, ...
        other => match policy::Action::from_s3_operation(other) {
            Some(a) => one(iam_name(a)),
            None => Vec::new(),
        },
    }
}

/// `s3:<Action>` of an action named as its operation.
fn iam_name(a: policy::Action) -> &'static str {
    use policy::Action as A;
    match a {
        A::DeleteBucket => "s3:DeleteBucket",
        A::GetBucketLocation => "s3:GetBucketLocation",
        A::GetBucketVersioning => "s3:GetBucketVersioning",
        A::PutBucketVersioning => "s3:PutBucketVersioning",
        A::GetObjectRetention => "s3:GetObjectRetention",
        A::PutObjectRetention => "s3:PutObjectRetention",
        A::GetObjectLegalHold => "s3:GetObjectLegalHold",
        A::PutObjectLegalHold => "s3:PutObjectLegalHold",
        A::GetObjectTagging => "s3:GetObjectTagging",
        A::PutObjectTagging => "s3:PutObjectTagging",
        A::DeleteObjectTagging => "s3:DeleteObjectTagging",
        A::GetBucketTagging => "s3:GetBucketTagging",
        A::PutBucketTagging => "s3:PutBucketTagging",
        A::GetBucketOwnershipControls => "s3:GetBucketOwnershipControls",
        A::PutBucketOwnershipControls => "s3:PutBucketOwnershipControls",
        A::GetBucketPolicy => "s3:GetBucketPolicy",
        A::PutBucketPolicy => "s3:PutBucketPolicy",
        A::DeleteBucketPolicy => "s3:DeleteBucketPolicy",
        A::GetBucketPolicyStatus => "s3:GetBucketPolicyStatus",
        // every other action is mapped by `permissions_of` before it gets here
        _ => "s3:*",
    }
}

/// The refusal of a request by an explicit Deny of the bucket's policy.
fn denied() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::AccessDenied,
        "Access Denied by an explicit deny in the bucket policy",
    )
}

/// The head of one S3 request as a bucket policy reads it: the operation (s3s's name), its
/// headers, query and client address.
#[derive(Clone, Copy)]
pub struct RequestHead<'a> {
    /// the s3s operation name (`PutObject`, `ListObjectsV2`, ...)
    pub op: &'a str,
    /// the request headers
    pub headers: &'a http::HeaderMap,
    /// the query string
    pub query: Option<&'a str>,
    /// the client address as the listener saw it
    pub peer: Option<SocketAddr>,
}

impl RequestHead<'_> {
    /// A query parameter (form-decoded, as s3s decodes it).
    fn param(&self, name: &str) -> Option<Cow<'_, str>> {
        url::form_urlencoded::parse(self.query.unwrap_or("").as_bytes())
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    /// The permissions the operation needs ([`permissions_of`]; a `versionId` names a version).
    fn permissions(&self) -> Vec<&'static str> {
        permissions_of(self.op, self.param("versionId").is_some())
    }

    /// The request's condition keys.
    pub fn facts(&self) -> Facts {
        Facts::of_request(self.headers, self.query, self.peer)
    }
}

impl BucketPolicies {
    /// Enforcement over `store`; `tls`: the S3 listener serves TLS.
    pub fn new(store: Store, tls: bool) -> BucketPolicies {
        BucketPolicies {
            store,
            tls,
            parsed: Arc::default(),
        }
    }

    /// Refuses (403 AccessDenied) a request that the policy of `bucket` denies, for the
    /// permissions AWS names for its operation on `key` (an object), else on the bucket. The
    /// condition keys are the request's, built only when the bucket has a policy (most requests
    /// never pay for them); a step of a multipart upload (UploadPart, UploadPartCopy,
    /// CompleteMultipartUpload) does not repeat the encryption its upload was created with, so
    /// its encryption keys are the upload's, as on AWS: a policy that asks for
    /// `x-amz-server-side-encryption` lets the parts of an upload that named it through.
    pub async fn enforce_request(
        &self,
        who: &Identity,
        bucket: &str,
        key: Option<&str>,
        head: &RequestHead<'_>,
    ) -> S3Result<()> {
        let permissions = head.permissions();
        let Some(doc) = self.applicable(who, bucket, &permissions).await? else {
            return Ok(());
        };
        let mut facts = head.facts();
        if matches!(
            head.op,
            "UploadPart" | "UploadPartCopy" | "CompleteMultipartUpload"
        ) && let Some(id) = head.param("uploadId")
            && let Ok(Some(up)) = self.store.get_upload(bucket, &id).await
        {
            for h in [SSE_MODE, SSE_KMS_KEY_ID, SSE_C_ALGORITHM] {
                if let Some(v) = up.headers.get(h) {
                    facts.set(&format!("s3:{h}"), v.clone());
                }
            }
        }
        decide(&doc, who, bucket, key, permissions, facts, self.tls)
    }

    /// Refuses (403 AccessDenied) what the policy of `bucket` denies of `permissions` on
    /// `bucket` (`key`: on that object), with the condition keys `facts` builds (called only
    /// when the bucket has a policy): the checks of a request beyond its operation's own (each
    /// key of a DeleteObjects, a copy's source, a POST form's key). No policy, no bucket (the
    /// handler answers NoSuchBucket) or no permissions: nothing to refuse. A SuperAdmin of the
    /// bucket's tenant is never refused the policy operations themselves.
    pub async fn enforce(
        &self,
        who: &Identity,
        bucket: &str,
        key: Option<&str>,
        permissions: Vec<&'static str>,
        facts: &(dyn Fn() -> Facts + Send + Sync),
    ) -> S3Result<()> {
        match self.applicable(who, bucket, &permissions).await? {
            Some(doc) => decide(&doc, who, bucket, key, permissions, facts(), self.tls),
            None => Ok(()),
        }
    }

    /// The policy a request to `bucket` needing `permissions` is checked against (None: no
    /// policy, no bucket, nothing to check, or a SuperAdmin at the policy operations).
    async fn applicable(
        &self,
        who: &Identity,
        bucket: &str,
        permissions: &[&'static str],
    ) -> S3Result<Option<Arc<BucketPolicy>>> {
        if permissions.is_empty() {
            return Ok(None);
        }
        if who.role == Some(Role::SuperAdmin)
            && permissions.iter().all(|p| {
                matches!(
                    *p,
                    "s3:GetBucketPolicy" | "s3:PutBucketPolicy" | "s3:DeleteBucketPolicy"
                )
            })
        {
            return Ok(None);
        }
        match self.store.bucket_setting(bucket, SETTING_POLICY).await {
            Ok(Some(json)) => self.parsed(bucket, json).map(Some),
            Ok(None) | Err(Error::NoSuchBucket(_)) => {
                self.cache().remove(bucket);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `json` (the stored policy of `bucket`) parsed: the parse kept for its text, else made.
    fn parsed(&self, bucket: &str, json: String) -> S3Result<Arc<BucketPolicy>> {
        if let Some((text, doc)) = self.cache().get(bucket)
            && *text == json
        {
            return Ok(Arc::clone(doc));
        }
        let doc = Arc::new(BucketPolicy::parse(&json, bucket).map_err(|e| {
            S3Error::from(Error::Integrity(format!(
                "stored policy of bucket {bucket}: {e}"
            )))
        })?);
        self.cache()
            .insert(bucket.to_owned(), (json, Arc::clone(&doc)));
        Ok(doc)
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Parsed> {
        self.parsed.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The decision of `doc` on one request: the caller's own condition keys and the time added to
/// the request's `facts`.
fn decide(
    doc: &BucketPolicy,
    who: &Identity,
    bucket: &str,
    key: Option<&str>,
    permissions: Vec<&'static str>,
    facts: Facts,
    tls: bool,
) -> S3Result<()> {
    let mut req = PolicyRequest {
        principal: who.principal.clone(),
        tenant: who.tenant.clone(),
        permissions,
        resource: match key {
            Some(k) => format!("{bucket}/{k}"),
            None => bucket.to_owned(),
        },
        keys: facts.0,
    };
    let now = time::OffsetDateTime::now_utc();
    req.set("aws:securetransport", tls.to_string());
    req.set("aws:epochtime", now.unix_timestamp().to_string());
    if let Ok(t) = now.format(&time::format_description::well_known::Rfc3339) {
        req.set("aws:currenttime", t);
    }
    req.set("aws:username", who.principal.clone());
    req.set("aws:userid", who.principal.clone());
    req.set("aws:principalaccount", who.tenant.clone());
    req.set(
        "aws:principalarn",
        policy::bucket_policy::principal_arn(&who.tenant, &who.principal),
    );
    req.set("aws:principaltype", "User");
    match doc.denial(&req) {
        None => Ok(()),
        Some(sid) => {
            tracing::info!(bucket, principal = %who.principal, permissions = ?req.permissions, statement = sid, "refused by the bucket policy");
            Err(denied())
        }
    }
}

fn no_policy() -> Error {
    Error::Client(S3Error::with_message(
        S3ErrorCode::NoSuchBucketPolicy,
        "The bucket policy does not exist",
    ))
}

impl Gateway {
    pub(super) async fn op_put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> Result<PutBucketPolicyOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let i = req.input;
        self.require_bucket(&i.bucket).await?;
        let doc = BucketPolicy::parse(&i.policy, &i.bucket)
            .map_err(|e| Error::Client(S3Error::with_message(S3ErrorCode::MalformedPolicy, e.0)))?;
        if doc.grants_public_access() && self.blocks_public_policy(&i.bucket).await? {
            return Err(Error::Client(S3Error::with_message(
                S3ErrorCode::AccessDenied,
                "Access Denied: the bucket's public access block (BlockPublicPolicy) refuses a policy that grants public access",
            )));
        }
        self.store
            .set_bucket_setting(&i.bucket, SETTING_POLICY, Some(&i.policy), audit.as_ref())
            .await?;
        tracing::info!(bucket = %i.bucket, "bucket policy set");
        Ok(PutBucketPolicyOutput::default())
    }

    pub(super) async fn op_get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> Result<GetBucketPolicyOutput> {
        match self
            .store
            .bucket_setting(&req.input.bucket, SETTING_POLICY)
            .await?
        {
            Some(policy) => Ok(GetBucketPolicyOutput {
                policy: Some(policy),
            }),
            None => Err(no_policy()),
        }
    }

    pub(super) async fn op_delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> Result<DeleteBucketPolicyOutput> {
        let audit = RequestCtx::of(&req.extensions);
        self.store
            .set_bucket_setting(&req.input.bucket, SETTING_POLICY, None, audit.as_ref())
            .await?;
        Ok(DeleteBucketPolicyOutput::default())
    }

    /// `IsPublic` is false for every bucket: no policy grants access here (Allow statements
    /// grant nothing, there are no ACLs and no anonymous requests).
    pub(super) async fn op_get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> Result<GetBucketPolicyStatusOutput> {
        self.require_bucket(&req.input.bucket).await?;
        Ok(GetBucketPolicyStatusOutput {
            policy_status: Some(PolicyStatus {
                is_public: Some(false),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_name_what_aws_names() {
        assert_eq!(permissions_of("HeadObject", false), ["s3:GetObject"]);
        assert_eq!(permissions_of("GetObject", true), ["s3:GetObjectVersion"]);
        assert_eq!(permissions_of("UploadPart", false), ["s3:PutObject"]);
        assert_eq!(permissions_of("ListObjectsV2", false), ["s3:ListBucket"]);
        assert_eq!(permissions_of("DeleteBucket", false), ["s3:DeleteBucket"]);
        assert_eq!(
            permissions_of("GetPublicAccessBlock", false),
            ["s3:GetBucketPublicAccessBlock"]
        );
        assert_eq!(
            permissions_of("DeleteBucketPolicy", false),
            ["s3:DeleteBucketPolicy"]
        );
        assert!(permissions_of("ListBuckets", false).is_empty());
        // every served operation outside the two without a bucket maps to a named permission
        for a in policy::Action::ALL {
            let Some(op) = a.s3_operation() else { continue };
            let p = permissions_of(op, false);
            if matches!(op, "ListBuckets" | "CreateBucket" | "DeleteObjects") {
                assert!(p.is_empty(), "{op}");
            } else {
                assert!(!p.is_empty() && !p.contains(&"s3:*"), "{op}: {p:?}");
            }
        }
    }

    #[test]
    fn facts_of_a_request() {
        let mut h = http::HeaderMap::new();
        h.insert("x-amz-server-side-encryption", "AES256".parse().unwrap());
        h.insert("x-amz-tagging", "team=a&env=prod".parse().unwrap());
        h.insert(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=x".parse().unwrap(),
        );
        let f = Facts::of_request(
            &h,
            Some("prefix=p%2F&max-keys=5"),
            Some("10.0.0.9:4000".parse().unwrap()),
        );
        let get = |k: &str| f.0.get(k).cloned();
        assert_eq!(
            get("s3:x-amz-server-side-encryption"),
            Some(vec!["AES256".into()])
        );
        assert_eq!(get("s3:prefix"), Some(vec!["p/".into()]));
        assert_eq!(get("s3:max-keys"), Some(vec!["5".into()]));
        assert_eq!(get("s3:requestobjecttag/team"), Some(vec!["a".into()]));
        assert_eq!(
            get("s3:requestobjecttagkeys"),
            Some(vec!["team".into(), "env".into()])
        );
        assert_eq!(get("s3:authtype"), Some(vec!["REST-HEADER".into()]));
        assert_eq!(
            get("s3:signatureversion"),
            Some(vec!["AWS4-HMAC-SHA256".into()])
        );
        assert_eq!(get("aws:sourceip"), Some(vec!["10.0.0.9".into()]));
        let presigned = Facts::of_request(
            &http::HeaderMap::new(),
            Some("X-Amz-Algorithm=AWS4-HMAC-SHA256&versionId=v1"),
            None,
        );
        assert_eq!(
            presigned.0.get("s3:authtype"),
            Some(&vec!["REST-QUERY-STRING".to_owned()])
        );
        assert_eq!(
            presigned.0.get("s3:versionid"),
            Some(&vec!["v1".to_owned()])
        );
    }
}
