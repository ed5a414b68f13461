//! POST Object (a browser form upload): the form's policy verdict from the pipeline's pre-pass
//! ([`super::post_form`]), then the same authorisation, quorum, encryption (SSE-S3, SSE-C,
//! `aws:kms` fields as their headers) and audit as PutObject, by which the object is stored.

use std::sync::Arc;

use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Result};

use super::Gateway;
use super::post_form::PostForm;
use crate::request::RequestCtx;

impl Gateway {
    /// POST Object: refused as its policy refuses it (see [`super::post_policy`]), when signed
    /// with SigV2 while that is off, or as PutObject refuses it (grants, tenant, rate limit,
    /// quorum, replace gate — the access check could only see the bucket); else stored by
    /// PutObject with the form's fields as its headers.
    pub(super) async fn op_post_object(
        &self,
        req: S3Request<PostObjectInput>,
    ) -> S3Result<PostObjectOutput> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        if let Some(ctx) = RequestCtx::of(&req.extensions) {
            ctx.set_key(&key);
        }
        if req.credentials.is_some() && req.region.is_none() && !self.sigv2 {
            // a SigV4 form names its region in x-amz-credential; SigV2 forms have none
            return Err(s3s::s3_error!(
                InvalidRequest,
                "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
            ));
        }
        let form = req.extensions.get::<Arc<PostForm>>().cloned();
        if let Some(r) = form.as_ref().and_then(|f| f.refusal.as_ref()) {
            let code = s3s::S3ErrorCode::from_bytes(r.code.as_bytes())
                .unwrap_or(s3s::S3ErrorCode::AccessDenied);
            return Err(S3Error::with_message(code, r.message.clone()));
        }
        check_metadata_size(&req.input)?;
        crate::auth::check_new_key(&key)?;
        let identity = self.caller(req.credentials.as_ref()).await?;
        self.policy
            .authorize(
                &identity,
                policy::Action::PutObject,
                Some(&bucket),
                Some(&key),
            )
            .await?;
        let peer = RequestCtx::of(&req.extensions).and_then(|c| c.peer());
        let input = &req.input;
        let facts = || super::bucket_policy::Facts::of_form(input, peer);
        self.bucket_policies
            .enforce(&identity, &bucket, Some(&key), vec!["s3:PutObject"], &facts)
            .await?;
        let mut req = req.map_input(post_into_put);
        if let Some(f) = &form {
            restore_checksums(&mut req.input, &f.checksums)?;
        }
        if let Some(t) = req.input.tagging.take() {
            req.input.tagging =
                Some(super::tagging::form_field_to_header(&t).map_err(S3Error::from)?);
        }
        let out = self.op_put_object(req).await.map_err(S3Error::from)?;
        Ok(PostObjectOutput {
            e_tag: out.e_tag,
            server_side_encryption: out.server_side_encryption,
            ssekms_key_id: out.ssekms_key_id,
            bucket_key_enabled: out.bucket_key_enabled,
            ssekms_encryption_context: out.ssekms_encryption_context,
            checksum_crc32: out.checksum_crc32,
            checksum_crc32c: out.checksum_crc32c,
            checksum_crc64nvme: out.checksum_crc64nvme,
            checksum_sha1: out.checksum_sha1,
            checksum_sha256: out.checksum_sha256,
            checksum_type: out.checksum_type,
            size: out.size,
            version_id: out.version_id,
            ..Default::default()
        })
    }
}

/// MetadataTooLarge past S3's 2 KB of user metadata.
fn check_metadata_size(i: &PostObjectInput) -> S3Result<()> {
    let meta: usize = i
        .metadata
        .iter()
        .flatten()
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if meta > crate::auth::MAX_USER_METADATA_BYTES {
        return Err(s3s::s3_error!(
            MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size of 2 KB."
        ));
    }
    Ok(())
}

/// The `x-amz-checksum-*` fields the pre-pass took out of the form, back on the input.
fn restore_checksums(i: &mut PutObjectInput, fields: &[(String, String)]) -> S3Result<()> {
    for (name, value) in fields {
        let v = Some(value.clone());
        match name.as_str() {
            "x-amz-checksum-crc32" => i.checksum_crc32 = v,
            "x-amz-checksum-crc32c" => i.checksum_crc32c = v,
            "x-amz-checksum-crc64nvme" => i.checksum_crc64nvme = v,
            "x-amz-checksum-sha1" => i.checksum_sha1 = v,
            "x-amz-checksum-sha256" => i.checksum_sha256 = v,
            "x-amz-checksum-algorithm" => {
                i.checksum_algorithm = Some(ChecksumAlgorithm::from(value.to_ascii_uppercase()));
            }
            _ => {
                return Err(s3s::s3_error!(
                    InvalidRequest,
                    "Unsupported checksum field in the form: {name}"
                ));
            }
        }
    }
    Ok(())
}

/// A form upload's input as the PutObject it is (s3s keeps its own conversion private).
fn post_into_put(x: PostObjectInput) -> PutObjectInput {
    PutObjectInput {
        acl: x.acl,
        body: x.body,
        bucket: x.bucket,
        bucket_key_enabled: x.bucket_key_enabled,
        cache_control: x.cache_control,
        checksum_algorithm: x.checksum_algorithm,
        checksum_crc32: x.checksum_crc32,
        checksum_crc32c: x.checksum_crc32c,
        checksum_crc64nvme: x.checksum_crc64nvme,
        checksum_sha1: x.checksum_sha1,
        checksum_sha256: x.checksum_sha256,
        content_disposition: x.content_disposition,
        content_encoding: x.content_encoding,
        content_language: x.content_language,
        content_length: x.content_length,
        content_md5: x.content_md5,
        content_type: x.content_type,
        expected_bucket_owner: x.expected_bucket_owner,
        expires: x.expires,
        grant_full_control: x.grant_full_control,
        grant_read: x.grant_read,
        grant_read_acp: x.grant_read_acp,
        grant_write_acp: x.grant_write_acp,
        if_match: x.if_match,
        if_none_match: x.if_none_match,
        key: x.key,
        metadata: x.metadata,
        object_lock_legal_hold_status: x.object_lock_legal_hold_status,
        object_lock_mode: x.object_lock_mode,
        object_lock_retain_until_date: x.object_lock_retain_until_date,
        request_payer: x.request_payer,
        sse_customer_algorithm: x.sse_customer_algorithm,
        sse_customer_key: x.sse_customer_key,
        sse_customer_key_md5: x.sse_customer_key_md5,
        ssekms_encryption_context: x.ssekms_encryption_context,
        ssekms_key_id: x.ssekms_key_id,
        server_side_encryption: x.server_side_encryption,
        storage_class: x.storage_class,
        tagging: x.tagging,
        website_redirect_location: x.website_redirect_location,
        write_offset_bytes: x.write_offset_bytes,
    }
}
