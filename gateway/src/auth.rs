//! S3 credentials and authorisation over the policy store: `S3Auth` reads secrets from
//! `policy::PolicyStore` (`pol_access_keys`, sealed at rest; the store's access cache is
//! invalidated by every policy write before it returns, so a revocation acts on the next
//! request), `S3Access` asks `policy::Authorizer::authorize_s3` (rate limit → role / grants /
//! tenant → quorum) and records the operation name for metrics/logs. Also owns the
//! bootstrap SuperAdmin key and the one-time import of the index's legacy `access_keys` table.
//! Listings (ListObjects, ListObjectsV2, ListMultipartUploads) are authorised with their `prefix`
//! parameter as the key, so a prefix-only grant lists inside its prefix and nowhere else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use policy::{Action, Authorizer, Identity, PolicyStore, Role, SecretKey};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::S3Auth;
use s3s::path::S3Path;
use s3s::{S3Error, S3Result, s3_error};

use crate::error::{Error, Result};
use crate::index::Index;
use crate::request::{OpInfo, RequestCtx, noted};
use crate::s3::bucket_policy::{BucketPolicies, RequestHead};

/// Sealing context of legacy access-key secrets in the index's `access_keys` table.
pub fn secret_context(access_key_id: &str) -> String {
    format!("vaultgate/access-key/{access_key_id}")
}

/// Access keys and decisions from the policy store. Clone is cheap.
///
/// Every signed request looks its key up once, in `S3Auth::get_secret_key` (through the policy
/// store's access cache, which every policy write invalidates: revocation takes effect at once); the identity found there is remembered under the access key so that the
/// access check and the bucket operations of the same request do not read and unseal the key
/// again. The remembered identity is always the one of the latest successful lookup of that key.
#[derive(Clone, Debug)]
pub struct Credentials {
    authz: Authorizer,
    verified: Arc<Mutex<HashMap<String, Identity>>>,
}

impl Credentials {
    /// Credentials answered by `authz`.
    pub fn new(authz: Authorizer) -> Credentials {
        Credentials {
            authz,
            verified: Arc::default(),
        }
    }

    /// The authorizer.
    pub fn authz(&self) -> &Authorizer {
        &self.authz
    }

    /// Secret and identity of an active key; None when unknown, revoked, expired or disabled.
    pub async fn lookup(&self, id: &str) -> Result<Option<(SecretKey, Identity)>> {
        Ok(self.authz.secret_key(id).await?)
    }

    /// The signing secret of a key for `S3Auth` (a fresh lookup); remembers its identity for the
    /// rest of the request.
    pub(crate) async fn secret_for_signature(&self, id: &str) -> Result<Option<SecretKey>> {
        let found = self.lookup(id).await?;
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        Ok(match found {
            Some((secret, identity)) => {
                verified.insert(id.to_owned(), identity);
                Some(secret)
            }
            None => {
                verified.remove(id);
                None
            }
        })
    }

    /// Identity of the (authenticated) caller of a request, or an S3 error: the one its signature
    /// check just looked up, else a fresh lookup.
    pub async fn identity(&self, access_key: Option<&str>) -> S3Result<Identity> {
        let Some(id) = access_key else {
            return Err(s3_error!(AccessDenied, "Signature is required"));
        };
        let known = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned();
        if let Some(identity) = known {
            return Ok(identity);
        }
        match self.lookup(id).await {
            Ok(Some((_, identity))) => Ok(identity),
            Ok(None) => Err(s3_error!(InvalidAccessKeyId)),
            Err(e) => Err(e.into()),
        }
    }

    /// `authorize_s3` with the policy errors mapped to S3 errors (SlowDown + Retry-After,
    /// AccessDenied naming a pending approval request).
    pub async fn authorize(
        &self,
        identity: &Identity,
        action: Action,
        bucket: Option<&str>,
        key: Option<&str>,
    ) -> S3Result<()> {
        self.authz
            .authorize_s3(identity, action, bucket, key)
            .await
            .map_err(denial)
    }

    /// `authorize_item` (the decision without a rate-limit token) for one item of a request
    /// already admitted as a whole: each key of a DeleteObjects batch.
    pub async fn authorize_item(
        &self,
        identity: &Identity,
        action: Action,
        bucket: Option<&str>,
        key: Option<&str>,
    ) -> S3Result<()> {
        self.authz
            .authorize_item(identity, action, bucket, key)
            .await
            .map_err(denial)
    }
}

/// Maps a refusal of the policy library to the S3 error the client sees (the policy store's
/// own failures go through `From<policy::Error> for gateway::Error`, which sends refusals here).
pub fn denial(e: policy::Error) -> S3Error {
    match e {
        policy::Error::RateLimited { retry_after_secs } => crate::error::with_retry_after(
            s3_error!(SlowDown, "Please reduce your request rate."),
            retry_after_secs,
        ),
        policy::Error::AccessDenied { .. } => s3_error!(AccessDenied, "Access Denied"),
        e @ (policy::Error::ApprovalRequired { .. }
        | policy::Error::Denied { .. }
        | policy::Error::Forbidden(_)
        | policy::Error::Unauthenticated(_)) => {
            S3Error::with_message(s3s::S3ErrorCode::AccessDenied, e.to_string())
        }
        other => Error::from(other).into(),
    }
}

/// The bootstrap credential created on first start (shown once).
#[derive(Debug)]
pub struct Bootstrap {
    /// access key id
    pub access_key: String,
    /// secret (printed once, never logged)
    pub secret_key: SecretKey,
}

/// Imports the keys of the index's legacy `access_keys` table into the policy store (once per
/// key: a key the store already knows, even revoked, is left alone), creating each key's
/// principal in the default tenant with its recorded role.
pub async fn import_legacy_keys(
    store: &PolicyStore,
    index: &Index,
    keyring: &keys::Keyring,
) -> Result<u64> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT access_key_id FROM access_keys")
        .fetch_all(index.read_pool())
        .await
        .map_err(|e| Error::Unavailable(format!("index: {e}")))?;
    let mut imported = 0;
    for id in ids {
        if store.get_access_key(&id).await?.is_some() {
            continue;
        }
        let Some(rec) = index.get_access_key(&id).await? else {
            continue;
        };
        if rec.disabled {
            continue;
        }
        let role = Role::parse(&rec.role)
            .map_err(|e| Error::Integrity(format!("access key {id}: {e}")))?;
        let raw = keyring
            .open_blob(&secret_context(&id), &rec.sealed_secret)
            .await?;
        let secret = std::str::from_utf8(&raw).map_err(|_| {
            Error::Integrity(format!("access key {id}: sealed secret is not UTF-8"))
        })?;
        let secret = SecretKey::new(secret);
        if !store
            .list_tenants()
            .await?
            .iter()
            .any(|t| t.name == policy::grants::DEFAULT_TENANT)
        {
            store.create_tenant(policy::grants::DEFAULT_TENANT).await?;
        }
        if store.get_principal(&rec.principal).await?.is_none() {
            store
                .create_principal(
                    &rec.principal,
                    "user",
                    policy::grants::DEFAULT_TENANT,
                    Some(role),
                )
                .await?;
        }
        store
            .import_access_key(&rec.principal, &id, &secret, None)
            .await?;
        tracing::info!(access_key = %id, principal = %rec.principal, "legacy access key imported into the policy store");
        imported += 1;
    }
    Ok(imported)
}

/// Imports legacy keys, then bootstraps the SuperAdmin principal: with fixed credentials the pair
/// is (re)stored on every start; with none, a pair is generated on first start only and returned
/// so the caller can print it once.
pub async fn ensure_bootstrap(
    store: &PolicyStore,
    index: &Index,
    keyring: &keys::Keyring,
    fixed: Option<(&str, &SecretKey)>,
) -> Result<Option<Bootstrap>> {
    import_legacy_keys(store, index, keyring).await?;
    let generated = store.bootstrap(fixed).await?;
    if let Some(k) = &generated {
        tracing::info!(access_key = %k.access_key_id, "generated the admin access key (secret printed once on stdout)");
    }
    Ok(generated.map(|k| Bootstrap {
        access_key: k.access_key_id,
        secret_key: k.secret,
    }))
}

/// The lines printed once on stdout for a generated bootstrap key.
pub fn bootstrap_instructions(b: &Bootstrap, s3_url: &str, region: &str) -> String {
    let (id, secret) = (&b.access_key, b.secret_key.expose());
    format!(
        "\n=== Vaultgate admin S3 credentials (shown only once; store them now) ===\n\
         access key id:     {id}\n\
         secret access key: {secret}\n\n\
         aws cli:\n\
         \x20 aws configure set aws_access_key_id {id} --profile vaultgate\n\
         \x20 aws configure set aws_secret_access_key '{secret}' --profile vaultgate\n\
         \x20 aws configure set region {region} --profile vaultgate\n\
         \x20 aws --profile vaultgate --endpoint-url {s3_url} s3 ls\n\n\
         rclone:\n\
         \x20 rclone config create vaultgate s3 provider Other endpoint {s3_url} \
         access_key_id {id} secret_access_key '{secret}' region {region} force_path_style true\n\
         \x20 rclone lsd vaultgate:\n\
         =========================================================================\n"
    )
}

/// `s3s::auth::S3Auth` over the policy store.
#[derive(Debug, Clone)]
pub struct IndexAuth(pub Credentials);

#[async_trait::async_trait]
impl S3Auth for IndexAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<s3s::auth::SecretKey> {
        match self.0.secret_for_signature(access_key).await {
            Ok(Some(secret)) => Ok(s3s::auth::SecretKey::from(secret.expose())),
            Ok(None) => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
            Err(e) => Err(e.into()),
        }
    }
}

/// Source bucket and key of `x-amz-copy-source` (`bucket/key` or `/bucket/key`, URL-encoded,
/// optional `?versionId=`).
fn copy_source(h: &http::HeaderMap) -> Option<(String, String)> {
    let raw = h.get("x-amz-copy-source")?.to_str().ok()?;
    let raw = raw.split('?').next().unwrap_or(raw);
    let decoded = urlencoding::decode(raw).ok()?;
    let (b, k) = decoded.trim_start_matches('/').split_once('/')?;
    Some((b.to_owned(), k.to_owned()))
}

/// The `prefix` query parameter of a listing (form-decoded, as s3s decodes it); `Ok(None)` when
/// absent or empty, `Err` when it is repeated or not UTF-8 (the request is refused rather than
/// authorised on a guess).
fn list_prefix(query: Option<&str>) -> std::result::Result<Option<String>, ()> {
    let mut found: Option<String> = None;
    // the same decoding s3s applies (serde_urlencoded is form_urlencoded), so the prefix
    // authorised is the prefix listed
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if name != "prefix" {
            continue;
        }
        // bytes that are not UTF-8 decode to U+FFFD: refused rather than authorised on a
        // replacement character
        if value.contains('\u{FFFD}') || found.replace(value.into_owned()).is_some() {
            return Err(());
        }
    }
    Ok(found.filter(|p| !p.is_empty()))
}

/// The policy action of an s3s operation: the actions of [`Action::ALL`] by name, and
/// `PostObject` (a browser form upload) as PutObject, which is what it does, and
/// `GetObjectAttributes` as GetObject (it reads what HEAD reads). `None`: an
/// operation the gateway does not serve, refused before any handler runs.
pub fn action_of_operation(op: &str) -> Option<Action> {
    match op {
        "PostObject" => Some(Action::PutObject),
        "ListObjectVersions" => Some(Action::ListBucketVersions),
        "GetBucketEncryption" => Some(Action::GetEncryptionConfiguration),
        // as AWS: removing the default encryption is a change of it
        "PutBucketEncryption" | "DeleteBucketEncryption" => {
            Some(Action::PutEncryptionConfiguration)
        }
        "GetPublicAccessBlock" => Some(Action::GetBucketPublicAccessBlock),
        // as AWS: removing a setting is a change of it
        "PutPublicAccessBlock" | "DeletePublicAccessBlock" => {
            Some(Action::PutBucketPublicAccessBlock)
        }
        "DeleteBucketOwnershipControls" => Some(Action::PutBucketOwnershipControls),
        // AWS asks for s3:GetObject and s3:GetObjectAttributes; the roles grant them together
        "GetObjectAttributes" => Some(Action::GetObject),
        // permissions that are not operations of their own (checked by the handlers)
        "GetObjectVersion" | "DeleteObjectVersion" | "BypassGovernanceRetention" => None,
        other => Action::from_s3_operation(other),
    }
}

/// User metadata allowed on one object (AWS: 2 KB, names without `x-amz-meta-` plus values).
pub const MAX_USER_METADATA_BYTES: usize = 2048;

/// Operations that honour SSE-C headers (`x-amz-server-side-encryption-customer-*`, see
/// `s3::encryption`); CompleteMultipartUpload accepts them (SDKs resend them) without needing them.
const SSE_C_OPERATIONS: &[&str] = &[
    "PutObject",
    "GetObject",
    "HeadObject",
    "GetObjectAttributes",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
];
/// Operations that honour `x-amz-copy-source-server-side-encryption-customer-*`.
const SSE_C_COPY_OPERATIONS: &[&str] = &["CopyObject", "UploadPartCopy"];

/// The refusal of aws:kms (a request header or a bucket default) on a gateway without a KMS.
pub const KMS_NEEDED: &str = "x-amz-server-side-encryption aws:kms needs a gateway configured with a KMS (VAULTGATE_KMS); this one encrypts with its local key (use AES256).";

/// Refuses request headers the gateway does not honour, so that nothing is silently ignored:
/// SSE-C headers on an operation that does not use them are not implemented (501
/// NotImplemented); an SSE-KMS key id or context without `aws:kms` is a 400 InvalidArgument
/// (with it, `Gateway::stamp_sse` resolves and validates them); `x-amz-server-side-encryption` may
/// only name what the gateway does (`AES256`, or `aws:kms` when it runs on a KMS; else 400
/// InvalidArgument), and only on a write (400 InvalidArgument on GetObject / HeadObject, as S3).
/// Also refuses user metadata over 2 KB (400 MetadataTooLarge, as AWS).
pub fn check_request_headers(h: &http::HeaderMap, kms: bool, op: &str) -> S3Result<()> {
    // the mode first, so that a request naming aws:kms on a gateway without a KMS always gets
    // the same answer, whatever else it carries
    if let Some(value) = h.get("x-amz-server-side-encryption") {
        if matches!(op, "GetObject" | "HeadObject") {
            // a read cannot choose how the object was encrypted (S3 answers 400 too)
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-server-side-encryption is not valid on {op}: an object is read as it was stored."
            ));
        }
        let v = value.to_str().unwrap_or("");
        if v == "aws:kms" && !kms {
            return Err(S3Error::with_message(
                s3s::S3ErrorCode::InvalidArgument,
                KMS_NEEDED,
            ));
        }
        let honoured = v == "AES256" || (kms && v == "aws:kms");
        if !honoured {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-server-side-encryption {v:?} is not a valid server-side encryption (AES256, or aws:kms on a gateway with a KMS)."
            ));
        }
    }
    let mut meta = 0usize;
    for (name, value) in h {
        let n = name.as_str();
        let refused_sse_c = (n.starts_with("x-amz-server-side-encryption-customer-")
            && !SSE_C_OPERATIONS.contains(&op))
            || (n.starts_with("x-amz-copy-source-server-side-encryption-customer-")
                && !SSE_C_COPY_OPERATIONS.contains(&op));
        if refused_sse_c {
            return Err(s3_error!(
                NotImplemented,
                "{op} does not take server-side encryption with customer-provided keys (SSE-C) headers."
            ));
        }
        if (n == "x-amz-server-side-encryption-aws-kms-key-id"
            || n == "x-amz-server-side-encryption-context")
            && h.get("x-amz-server-side-encryption")
                .is_none_or(|v| v.as_bytes() != b"aws:kms")
        {
            return Err(s3_error!(
                InvalidArgument,
                "{n} is only valid with x-amz-server-side-encryption aws:kms."
            ));
        }
        if let Some(c) = n.strip_prefix("x-amz-checksum-")
            && !matches!(c, "algorithm" | "mode" | "type")
            && keys::checksum::Algorithm::parse(c).is_none()
        {
            return Err(s3_error!(
                InvalidRequest,
                "{n} is not a checksum this gateway computes (CRC32, CRC32C, CRC64NVME, SHA1, SHA256)."
            ));
        }
        if let Some(m) = n.strip_prefix("x-amz-meta-") {
            meta = meta.saturating_add(m.len() + value.len());
        }
    }
    if meta > MAX_USER_METADATA_BYTES {
        return Err(s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size of 2 KB."
        ));
    }
    Ok(())
}

/// Refuses object keys with control characters (NUL, newline, DEL, ...) for operations that
/// create objects: such keys break every listing read without `encoding-type=url`.
pub fn check_new_key(key: &str) -> S3Result<()> {
    if key.chars().any(char::is_control) {
        return Err(s3_error!(
            InvalidArgument,
            "Object keys may not contain control characters."
        ));
    }
    Ok(())
}

/// `s3s::access::S3Access`: every request resolves to exactly one [`Action`] (with bucket, key
/// and the caller's tenant) and is decided by `Authorizer::authorize_s3`, or is refused here,
/// before any handler runs. Fills the request's [`RequestCtx`](crate::request::RequestCtx).
#[derive(Debug, Clone)]
pub struct RoleAccess {
    creds: Credentials,
    kms: bool,
    policies: BucketPolicies,
}

impl RoleAccess {
    /// The access check over `creds` and the buckets' `policies`; `kms`: the gateway encrypts
    /// under a KMS key, so `x-amz-server-side-encryption: aws:kms` is honoured.
    pub fn new(creds: Credentials, kms: bool, policies: BucketPolicies) -> RoleAccess {
        RoleAccess {
            creds,
            kms,
            policies,
        }
    }
}

#[async_trait::async_trait]
impl S3Access for RoleAccess {
    /// The decision; once it allows the request, `100 Continue` if the request expects it
    /// (never before: a refused request gets its error instead, `server::expect_continue`).
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let ctx = RequestCtx::of(cx.extensions_mut());
        self.decide(cx, ctx.as_ref())
            .await
            .map_err(|e| noted(ctx.as_ref(), e))?;
        crate::server::continue_after_access(cx.extensions_mut()).await;
        Ok(())
    }
}

impl RoleAccess {
    /// The access decision of one request (its refusal is noted in `ctx` by the caller).
    async fn decide(&self, cx: &S3AccessContext<'_>, ctx: Option<&RequestCtx>) -> S3Result<()> {
        let op = cx.s3_op().name().to_owned();
        let action = action_of_operation(&op);
        let (bucket, key) = match cx.s3_path() {
            S3Path::Root => (None, None),
            S3Path::Bucket { bucket } => (Some(bucket.to_string()), None),
            S3Path::Object { bucket, key } => (Some(bucket.to_string()), Some(key.to_string())),
        };
        // the object a bucket policy's resource names (a listing's prefix is not one)
        let object = key.clone();
        // A listing is authorised on its prefix: a grant on `p/` lists `p/…` and nothing wider.
        let key =
            match action {
                Some(
                    Action::ListObjects | Action::ListObjectsV2 | Action::ListMultipartUploads,
                ) if key.is_none() => match list_prefix(cx.uri().query()) {
                    Ok(p) => p,
                    Err(()) => return Err(s3_error!(InvalidArgument, "invalid prefix parameter")),
                },
                _ => key,
            };
        let identity = identify(
            &self.creds,
            ctx,
            OpInfo {
                action,
                op_name: Some(op.clone()),
                access_key: cx.credentials().map(|c| c.access_key.clone()),
                bucket: bucket.clone(),
                key: key.clone(),
                ..OpInfo::default()
            },
        )
        .await?;
        // deny by default: an operation without an action is refused for every caller
        let Some(action) = action else {
            return Err(s3_error!(
                NotImplemented,
                "{op} is not supported by this gateway."
            ));
        };
        let head = RequestHead {
            op: &op,
            headers: cx.headers(),
            query: cx.uri().query(),
            peer: ctx.and_then(RequestCtx::peer),
        };
        if let Err(e) = check_request_headers(cx.headers(), self.kms, &op) {
            return Err(self
                .policy_first(&identity, bucket.as_deref(), object.as_deref(), &head, e)
                .await);
        }
        if op == "PostObject" {
            // The key is in the form, which the handler reads: `Gateway::post_object`
            // authorises PutObject on the form's key (tenant, grants, rate limit, quorum)
            // before it writes anything, so the refusal and its audit event name the key.
            return Ok(());
        }
        if matches!(
            action,
            Action::PutObject | Action::CopyObject | Action::CreateMultipartUpload
        ) && let Some(k) = &key
        {
            check_new_key(k)?;
        }
        if let Err(e) = self
            .creds
            .authorize(&identity, action, bucket.as_deref(), key.as_deref())
            .await
        {
            return Err(self
                .name_taken(&identity, action, bucket.as_deref(), e)
                .await);
        }
        if let Some(b) = &bucket {
            self.policies
                .enforce_request(&identity, b, object.as_deref(), &head)
                .await?;
        }
        if matches!(action, Action::CopyObject | Action::UploadPartCopy) {
            let Some((sb, sk)) = copy_source(cx.headers()) else {
                return Err(s3_error!(InvalidArgument, "invalid x-amz-copy-source"));
            };
            self.creds
                .authorize(&identity, Action::GetObject, Some(&sb), Some(&sk))
                .await?;
            let version = cx
                .headers()
                .get("x-amz-copy-source")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("?versionId="));
            let read = if version {
                "s3:GetObjectVersion"
            } else {
                "s3:GetObject"
            };
            self.policies
                .enforce(&identity, &sb, Some(&sk), vec![read], &|| head.facts())
                .await?;
        }
        Ok(())
    }
}

impl RoleAccess {
    /// A request refused for its headers (`e`) that the policy of its bucket, in the caller's
    /// own tenant, denies as well: 403 AccessDenied, as S3 answers (a policy that denies an
    /// unsupported encryption refuses it before the value is looked at). Any other: `e`.
    async fn policy_first(
        &self,
        who: &Identity,
        bucket: Option<&str>,
        object: Option<&str>,
        head: &RequestHead<'_>,
        e: S3Error,
    ) -> S3Error {
        let Some(b) = bucket else { return e };
        match self.creds.authz().store().assigned_tenant(b).await {
            Ok(Some(t)) if t == who.tenant => {}
            _ => return e,
        }
        match self.policies.enforce_request(who, b, object, head).await {
            Err(denied) if *denied.code() == s3s::S3ErrorCode::AccessDenied => denied,
            _ => e,
        }
    }

    /// A refused CreateBucket of a name another tenant holds, by a caller whose role may create
    /// buckets: 409 BucketAlreadyExists, as S3 answers (bucket names are one namespace; the 403
    /// it replaces told the same, that the name is taken). Any other refusal is `e` unchanged.
    async fn name_taken(
        &self,
        who: &Identity,
        action: Action,
        bucket: Option<&str>,
        e: S3Error,
    ) -> S3Error {
        let (Action::CreateBucket, Some(b)) = (action, bucket) else {
            return e;
        };
        if *e.code() != s3s::S3ErrorCode::AccessDenied
            || !who.role.is_some_and(|r| r.allows(Action::CreateBucket))
        {
            return e;
        }
        match self.creds.authz().store().assigned_tenant(b).await {
            Ok(Some(t)) if t != who.tenant => s3_error!(
                BucketAlreadyExists,
                "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."
            ),
            _ => e,
        }
    }
}

/// The first step of every access check (the s3s one and [`RangeFallback`]'s): records what the
/// request asks for in its context, then looks the caller up and records it too, so that a
/// refusal at any later step is audited with both.
///
/// [`RangeFallback`]: crate::s3::range_fallback::RangeFallback
pub(crate) async fn identify(
    creds: &Credentials,
    ctx: Option<&RequestCtx>,
    info: OpInfo,
) -> S3Result<Identity> {
    let access_key = info.access_key.clone();
    if let Some(c) = ctx {
        c.set_op(info);
    }
    let identity = creds.identity(access_key.as_deref()).await?;
    if let Some(c) = ctx {
        c.set_identity(&identity);
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instructions_name_endpoint_and_keys() {
        let b = Bootstrap {
            access_key: "VGTEST".into(),
            secret_key: SecretKey::new("s3cr3t/value"),
        };
        let text = bootstrap_instructions(&b, "http://127.0.0.1:9000", "us-east-1");
        assert!(text.contains("aws configure set aws_access_key_id VGTEST"));
        assert!(text.contains("'s3cr3t/value'"));
        assert!(text.contains("rclone config create vaultgate s3"));
        assert!(text.contains("--endpoint-url http://127.0.0.1:9000"));
        assert!(!format!("{b:?}").contains("s3cr3t"));
    }

    #[test]
    fn copy_source_is_split_and_decoded() {
        let mut h = http::HeaderMap::new();
        h.insert(
            "x-amz-copy-source",
            "/src/a%20b/c?versionId=1".parse().unwrap(),
        );
        assert_eq!(copy_source(&h), Some(("src".into(), "a b/c".into())));
        h.insert("x-amz-copy-source", "nokey".parse().unwrap());
        assert_eq!(copy_source(&h), None);
    }

    #[test]
    fn list_prefix_is_decoded_and_unambiguous() {
        assert_eq!(list_prefix(None), Ok(None));
        assert_eq!(list_prefix(Some("list-type=2")), Ok(None));
        assert_eq!(list_prefix(Some("list-type=2&prefix=")), Ok(None));
        assert_eq!(
            list_prefix(Some("list-type=2&prefix=p%2Fa+b%20c&delimiter=%2F")),
            Ok(Some("p/a b c".into()))
        );
        assert_eq!(
            list_prefix(Some("prefixes=x&prefix=p/")),
            Ok(Some("p/".into()))
        );
        assert_eq!(list_prefix(Some("prefix=a&prefix=b")), Err(()));
        assert_eq!(list_prefix(Some("prefix=%FF")), Err(()));
    }

    #[test]
    fn unsupported_encryption_headers_are_refused() {
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = http::HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        let code = |m: &http::HeaderMap, kms| {
            check_request_headers(m, kms, "PutObject")
                .err()
                .map(|e| e.code().as_str().to_owned())
        };
        let ssec = h(&[
            ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
            ("x-amz-server-side-encryption-customer-key", "a2V5"),
        ]);
        // PutObject takes SSE-C (the handler checks the set); other operations refuse it
        assert_eq!(code(&ssec, false), None);
        for op in ["ListObjectsV2", "DeleteObject", "PostObject", "ListParts"] {
            let e = check_request_headers(&ssec, false, op).unwrap_err();
            assert_eq!(e.code().as_str(), "NotImplemented", "{op}");
        }
        let copy_ssec = h(&[(
            "x-amz-copy-source-server-side-encryption-customer-algorithm",
            "AES256",
        )]);
        assert_eq!(code(&copy_ssec, true).as_deref(), Some("NotImplemented"));
        assert!(check_request_headers(&copy_ssec, true, "CopyObject").is_ok());
        assert!(check_request_headers(&copy_ssec, true, "UploadPartCopy").is_ok());
        let kms_id = h(&[
            ("x-amz-server-side-encryption", "aws:kms"),
            ("x-amz-server-side-encryption-aws-kms-key-id", "k1"),
        ]);
        assert_eq!(code(&kms_id, true), None);
        let aes_with_kms_id = h(&[
            ("x-amz-server-side-encryption", "AES256"),
            ("x-amz-server-side-encryption-aws-kms-key-id", "k1"),
        ]);
        assert_eq!(
            code(&aes_with_kms_id, true).as_deref(),
            Some("InvalidArgument")
        );
        let kms = h(&[("x-amz-server-side-encryption", "aws:kms")]);
        assert_eq!(code(&kms, false).as_deref(), Some("InvalidArgument"));
        let aes = h(&[("x-amz-server-side-encryption", "AES256")]);
        for op in ["GetObject", "HeadObject"] {
            let e = check_request_headers(&aes, true, op).unwrap_err();
            assert_eq!(e.code().as_str(), "InvalidArgument", "{op}");
        }
        assert!(check_request_headers(&aes, false, "CopyObject").is_ok());
        assert!(check_request_headers(&aes, false, "CreateMultipartUpload").is_ok());
        let other = h(&[("x-amz-server-side-encryption", "aws:kms:dsse")]);
        assert_eq!(code(&other, true).as_deref(), Some("InvalidArgument"));
        assert_eq!(code(&kms, true), None);
        let unknown_ck = h(&[("x-amz-checksum-md5", "AAAA")]);
        assert_eq!(code(&unknown_ck, false).as_deref(), Some("InvalidRequest"));
        for known in [
            "x-amz-checksum-crc32c",
            "x-amz-checksum-mode",
            "x-amz-checksum-sha256",
        ] {
            assert_eq!(code(&h(&[(known, "AAAA")]), false), None, "{known}");
        }
        let aes = h(&[("x-amz-server-side-encryption", "AES256")]);
        assert_eq!(code(&aes, false), None);
        let big = "v".repeat(MAX_USER_METADATA_BYTES);
        let meta = h(&[("x-amz-meta-a", big.as_str())]);
        assert_eq!(code(&meta, false).as_deref(), Some("MetadataTooLarge"));
        let fits = "v".repeat(MAX_USER_METADATA_BYTES - 1);
        let meta = h(&[("x-amz-meta-a", fits.as_str())]);
        assert_eq!(code(&meta, false), None);
    }

    #[test]
    fn new_keys_without_control_characters() {
        assert!(check_new_key("a/b c-ü.txt").is_ok());
        for bad in ["a\u{0}b", "a\u{1}b", "line\nbreak", "del\u{7f}"] {
            let e = check_new_key(bad).unwrap_err();
            assert_eq!(e.code().as_str(), "InvalidArgument", "{bad:?}");
        }
    }

    #[test]
    fn post_object_is_put_object_and_unserved_operations_have_no_action() {
        assert_eq!(action_of_operation("PostObject"), Some(Action::PutObject));
        assert_eq!(action_of_operation("GetObject"), Some(Action::GetObject));
        assert_eq!(action_of_operation("GetObjectTorrent"), None);
        assert_eq!(
            action_of_operation("PutBucketPolicy"),
            Some(Action::PutBucketPolicy)
        );
    }

    #[test]
    fn denials_map_to_s3_errors() {
        let e = denial(policy::Error::RateLimited {
            retry_after_secs: 7,
        });
        assert_eq!(e.code(), &s3s::S3ErrorCode::SlowDown);
        assert_eq!(e.headers().and_then(|h| h.get("retry-after")).unwrap(), "7");
        let e = denial(policy::Error::ApprovalRequired {
            approval_id: "apr-1".into(),
            rule: "r".into(),
            needed: 2,
        });
        assert_eq!(e.code(), &s3s::S3ErrorCode::AccessDenied);
        assert!(e.message().unwrap().contains("apr-1"));
    }

    /// docs/S3-COMPATIBILITY.md says what is served, and the code agrees: `yes` rows resolve to
    /// an action, `no` rows to none, and every served operation has a row.
    #[test]
    fn the_compatibility_table_lists_what_is_served() {
        let doc = include_str!("../../docs/S3-COMPATIBILITY.md");
        let mut listed = std::collections::BTreeMap::new();
        for line in doc.lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if let [_, op, served, ..] = cells.as_slice()
                && let Some(op) = op.strip_prefix('`').and_then(|o| o.strip_suffix('`'))
                && matches!(*served, "yes" | "no")
            {
                assert!(listed.insert(op, *served == "yes").is_none(), "{op} twice");
            }
        }
        assert!(listed.len() > 60, "the table lost its rows");
        for (op, served) in &listed {
            assert_eq!(
                action_of_operation(op).is_some(),
                *served,
                "docs/S3-COMPATIBILITY.md says {op} is {}served",
                if *served { "" } else { "not " }
            );
        }
        let ops = Action::ALL
            .iter()
            .filter_map(|a| a.s3_operation())
            .chain(["PostObject"]);
        for op in ops {
            if action_of_operation(op).is_some() {
                assert_eq!(
                    listed.get(op),
                    Some(&true),
                    "{op} is served but not listed as such"
                );
            }
        }
    }
}
