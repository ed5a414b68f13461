//! The S3 front end: `impl s3s::S3 for Gateway`, one method per served operation, delegating to
//! the operation families in `bucket`, `object`, `multipart` and `list`. Everything not listed
//! here answers s3s's default NotImplemented. Errors are `gateway::Error`, converted once into
//! `S3Error` at this edge.

pub(crate) mod attributes;
mod bucket;
mod bucket_encryption;
pub mod bucket_policy;
mod checksum;
pub(crate) mod cors;
pub(crate) mod encryption;
mod lifecycle;
mod list;
mod lock;
mod multipart;
mod object;
mod ownership;
mod post;
pub(crate) mod post_form;
mod post_policy;
mod public_access;
pub mod range_fallback;
mod tagging;
mod versioning;

use std::collections::BTreeMap;

use s3s::dto::*;
use s3s::{S3, S3Error, S3Request, S3Response, S3Result};

use crate::error::{Error, Result};
use crate::request::{RequestCtx, noted};
use crate::store::Store;

/// Minimum size of every part but the last (S3's 5 MiB).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// The S3 service.
#[derive(Clone, Debug)]
pub struct Gateway {
    /// object layer
    pub store: Store,
    /// value of x-amz-server-side-encryption on responses ("AES256" or "aws:kms")
    pub sse: &'static str,
    /// region reported by GetBucketLocation
    pub region: String,
    /// identities and decisions: bucket tenants for CreateBucket/DeleteBucket/ListBuckets,
    /// per-key authorisation of DeleteObjects and form uploads, the replace gate
    pub policy: crate::auth::Credentials,
    /// legacy SigV2 accepted (form uploads signed with SigV2 are refused otherwise)
    pub sigv2: bool,
    /// SSE-C refused: the S3 listener serves plain HTTP on a non-loopback address
    /// (`VAULTGATE_INSECURE_HTTP`), where a customer key would cross the network in clear
    pub sse_c_refused: bool,
    /// bucket policy enforcement (also used by the access check)
    pub bucket_policies: bucket_policy::BucketPolicies,
}

impl Gateway {
    /// A gateway over `store`, deciding with `policy`; `kms` selects "aws:kms" for
    /// x-amz-server-side-encryption.
    pub fn new(
        store: Store,
        policy: crate::auth::Credentials,
        kms: bool,
        region: String,
    ) -> Gateway {
        Gateway {
            bucket_policies: bucket_policy::BucketPolicies::new(store.clone(), false),
            store,
            sse: if kms {
                ServerSideEncryption::AWS_KMS
            } else {
                ServerSideEncryption::AES256
            },
            region,
            policy,
            sigv2: false,
            sse_c_refused: false,
        }
    }

    fn sse(&self) -> Option<ServerSideEncryption> {
        Some(ServerSideEncryption::from_static(self.sse))
    }

    /// NoSuchBucket unless the bucket exists.
    async fn require_bucket(&self, bucket: &str) -> Result<()> {
        match self.store.get_bucket(bucket).await? {
            Some(_) => Ok(()),
            None => Err(Error::NoSuchBucket(bucket.to_owned())),
        }
    }

    /// The version id a GET / HEAD of a `null` version reports: `null` in a bucket whose
    /// versioning is Enabled or Suspended (as S3 does), none in a bucket that never had it.
    async fn null_version_reported(&self, bucket: &str) -> Option<String> {
        match self.store.bucket_state(bucket).await {
            Ok(Some(s)) if s.versioning != crate::index::Versioning::Unversioned => {
                Some(crate::index::NULL_VERSION.to_owned())
            }
            _ => None,
        }
    }

    /// The authenticated caller of a request (its principal, role and tenant).
    pub(crate) async fn caller(
        &self,
        credentials: Option<&s3s::auth::Credentials>,
    ) -> S3Result<policy::Identity> {
        self.policy
            .identity(credentials.map(|c| c.access_key.as_str()))
            .await
    }

    /// The quorum gate for a write that would replace an existing object (PutObject,
    /// CopyObject, CompleteMultipartUpload, POST Object): where a quorum rule gates
    /// `s3:DeleteObject` on the bucket, replacing an object destroys it just as a delete does,
    /// so the write needs an approval of its own (`AccessDenied` naming the approval request
    /// until it is approved; then the retried write goes through once). New keys are not gated.
    pub(crate) async fn gate_replace(
        &self,
        credentials: Option<&s3s::auth::Credentials>,
        bucket: &str,
        key: &str,
    ) -> S3Result<()> {
        let store = self.policy.authz().store();
        let rule = store
            .matching_rule("s3:DeleteObject", Some(bucket))
            .await
            .map_err(crate::auth::denial)?;
        if rule.is_none() {
            return Ok(());
        }
        let exists = self
            .store
            .get_object(bucket, key)
            .await
            .map_err(|e| S3Error::from(Error::from(e)))?
            .is_some();
        if !exists {
            return Ok(());
        }
        let identity = self.caller(credentials).await?;
        store
            .gate(
                &identity,
                "s3:DeleteObject",
                Some(bucket),
                &format!("{bucket}/{key}"),
                "replace",
                policy::now_ms(),
            )
            .await
            .map_err(crate::auth::denial)
    }
}

/// s3s timestamp from Unix milliseconds.
pub(crate) fn ts(ms: i64) -> Timestamp {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(t)
}

/// Unix milliseconds from an s3s timestamp.
pub(crate) fn ms_of(t: &Timestamp) -> i64 {
    let t: time::OffsetDateTime = t.clone().into();
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Strong ETag value (the stored etag has no quotes).
pub(crate) fn etag(s: &str) -> ETag {
    ETag::Strong(s.to_owned())
}

/// A Content-Encoding as stored: `aws-chunked` names the transfer of the request body (SigV4
/// streaming), not the object, and is dropped as S3 drops it (None when nothing else is left).
fn stored_content_encoding(v: &str) -> Option<String> {
    let kept: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    (!kept.is_empty()).then(|| kept.join(", "))
}

/// The [`object_headers`] of a write input (PutObject, CopyObject and CreateMultipartUpload
/// name its fields alike).
macro_rules! input_headers {
    ($i:expr) => {
        super::object_headers(
            $i.content_type.as_deref(),
            $i.content_encoding.as_deref(),
            $i.cache_control.as_deref(),
            $i.content_disposition.as_deref(),
            $i.content_language.as_deref(),
            $i.expires.as_ref(),
        )
    };
}
pub(super) use input_headers;

/// The standard headers stored with an object (lower-case names).
pub(crate) fn object_headers(
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    cache_control: Option<&str>,
    content_disposition: Option<&str>,
    content_language: Option<&str>,
    expires: Option<&Timestamp>,
) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    let content_encoding = content_encoding.and_then(stored_content_encoding);
    for (k, v) in [
        ("content-type", content_type),
        ("content-encoding", content_encoding.as_deref()),
        ("cache-control", cache_control),
        ("content-disposition", content_disposition),
        ("content-language", content_language),
    ] {
        if let Some(v) = v {
            m.insert(k.to_owned(), v.to_owned());
        }
    }
    if let Some(t) = expires {
        let mut buf = Vec::new();
        if t.format(TimestampFormat::HttpDate, &mut buf).is_ok()
            && let Ok(s) = String::from_utf8(buf)
        {
            m.insert("expires".into(), s);
        }
    }
    m
}

pub(crate) fn user_metadata(m: Option<Metadata>) -> BTreeMap<String, String> {
    m.map(|m| {
        m.into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect()
    })
    .unwrap_or_default()
}

pub(crate) fn metadata_out(m: &BTreeMap<String, String>) -> Option<Metadata> {
    if m.is_empty() {
        None
    } else {
        Some(m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    }
}

pub(crate) fn expires_out(h: &BTreeMap<String, String>) -> Option<Timestamp> {
    h.get("expires")
        .and_then(|s| Timestamp::parse(TimestampFormat::HttpDate, s).ok())
}

/// Converts the result of an operation (the one edge where gateway errors become S3 errors);
/// an error leaves its code in the request's context and names the request id.
fn done<T, E: Into<S3Error>>(
    ctx: Option<RequestCtx>,
    r: std::result::Result<T, E>,
) -> S3Result<S3Response<T>> {
    r.map(S3Response::new)
        .map_err(|e| noted(ctx.as_ref(), e.into()))
}

#[async_trait::async_trait]
impl S3 for Gateway {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_list_buckets(req).await,
        )
    }
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_create_bucket(req).await,
        )
    }
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_head_bucket(req).await,
        )
    }
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_delete_bucket(req).await,
        )
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_get_bucket_location(req).await,
        )
    }
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_put_object(req).await,
        )
    }
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let bucket = req.input.bucket.clone();
        let mut resp = done(
            RequestCtx::of(&req.extensions),
            self.op_get_object(req).await,
        )?;
        if resp.output.version_id.is_none() {
            resp.output.version_id = self.null_version_reported(&bucket).await;
        }
        Ok(resp)
    }
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let ctx = RequestCtx::of(&req.extensions);
        let bucket = req.input.bucket.clone();
        let (out, tag_count) = match self.op_head_object(req).await {
            Ok(r) => (Ok(r.0), r.1),
            Err(e) => (Err(e), None),
        };
        let mut resp = done(ctx, out)?;
        if resp.output.version_id.is_none() {
            resp.output.version_id = self.null_version_reported(&bucket).await;
        }
        if let Some(n) = tag_count {
            resp.headers
                .insert("x-amz-tagging-count", http::HeaderValue::from(n));
        }
        Ok(resp)
    }
    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let mut resp = done(
            RequestCtx::of(&req.extensions),
            self.op_get_object_attributes(&req).await,
        )?;
        resp.extensions.insert(attributes::UnquotedEtag);
        Ok(resp)
    }
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_delete_object(req).await,
        )
    }
    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_delete_objects(req).await,
        )
    }
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_copy_object(req).await,
        )
    }
    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_list_objects(req).await,
        )
    }
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_list_objects_v2(req).await,
        )
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_create_multipart_upload(req).await,
        )
    }
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_upload_part(req).await,
        )
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_upload_part_copy(req).await,
        )
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_complete_multipart_upload(req).await,
        )
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_abort_multipart_upload(req).await,
        )
    }
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_list_parts(req).await,
        )
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_list_multipart_uploads(req).await,
        )
    }
    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_put_bucket_versioning(req).await,
        )
    }
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_get_bucket_versioning(req).await,
        )
    }
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_list_object_versions(req).await,
        )
    }
    async fn put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_put_object_lock_configuration(req).await,
        )
    }
    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_get_object_lock_configuration(req).await,
        )
    }
    async fn put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_put_object_retention(req).await,
        )
    }
    async fn get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_get_object_retention(req).await,
        )
    }
    async fn put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_put_object_legal_hold(req).await,
        )
    }
    async fn get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_get_object_legal_hold(req).await,
        )
    }
    async fn post_object(
        &self,
        req: S3Request<PostObjectInput>,
    ) -> S3Result<S3Response<PostObjectOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_post_object(req).await,
        )
    }
    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_put_object_tagging(req).await,
        )
    }
    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_get_object_tagging(req).await,
        )
    }
    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_delete_object_tagging(req).await,
        )
    }
    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_put_bucket_tagging(req).await,
        )
    }
    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_get_bucket_tagging(req).await,
        )
    }
    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_delete_bucket_tagging(req).await,
        )
    }
    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_put_bucket_lifecycle_configuration(req).await,
        )
    }
    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_get_bucket_lifecycle_configuration(req).await,
        )
    }
    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_delete_bucket_lifecycle(req).await,
        )
    }
    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_put_bucket_cors(req).await,
        )
    }
    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_get_bucket_cors(req).await,
        )
    }
    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_delete_bucket_cors(req).await,
        )
    }
    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_put_bucket_encryption(req).await,
        )
    }
    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_get_bucket_encryption(req).await,
        )
    }
    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_delete_bucket_encryption(req).await,
        )
    }
    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_put_bucket_ownership_controls(req).await,
        )
    }
    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_get_bucket_ownership_controls(req).await,
        )
    }
    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_delete_bucket_ownership_controls(req).await,
        )
    }
    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_put_public_access_block(req).await,
        )
    }
    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_get_public_access_block(req).await,
        )
    }
    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_delete_public_access_block(req).await,
        )
    }
    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_put_bucket_policy(req).await,
        )
    }
    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_get_bucket_policy(req).await,
        )
    }
    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_delete_bucket_policy(req).await,
        )
    }
    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        done(
            RequestCtx::of(&req.extensions),
            self.op_get_bucket_policy_status(req).await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::stored_content_encoding as enc;

    #[test]
    fn aws_chunked_is_not_stored_as_a_content_encoding() {
        assert_eq!(enc("gzip").as_deref(), Some("gzip"));
        assert_eq!(enc("deflate, gzip").as_deref(), Some("deflate, gzip"));
        assert_eq!(enc("gzip, aws-chunked").as_deref(), Some("gzip"));
        assert_eq!(enc("aws-chunked,gzip").as_deref(), Some("gzip"));
        assert_eq!(enc("AWS-Chunked"), None);
        assert_eq!(enc("aws-chunked, aws-chunked"), None);
        assert_eq!(enc(""), None);
    }
}
