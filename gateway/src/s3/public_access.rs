//! Public access block: Put/Get/DeletePublicAccessBlock (a bucket setting: the four flags
//! `BlockPublicAcls`, `IgnorePublicAcls`, `BlockPublicPolicy`, `RestrictPublicBuckets`, an
//! absent flag stored as false, as S3 reports it).
//!
//! The setting is stored and reported; of its flags only `BlockPublicPolicy` is read, by
//! PutBucketPolicy (a document that would be public on AWS is refused, `super::bucket_policy`).
//! Nothing can make a bucket or an object public here (no ACLs; bucket policies only deny):
//! every request is signed and decided by roles, grants and tenants, which is what all four
//! flags set to true ask for. A bucket without the setting answers GetPublicAccessBlock with 404
//! `NoSuchPublicAccessBlockConfiguration`, as S3 does.

use s3s::S3Request;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode};
use serde::{Deserialize, Serialize};

use super::Gateway;
use crate::error::{Error, Result};
use crate::request::RequestCtx;

/// Name of the bucket setting holding the bucket's public access block.
pub(crate) const SETTING_PUBLIC_ACCESS_BLOCK: &str = "public_access_block";

/// A bucket's stored public access block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Block {
    block_public_acls: bool,
    ignore_public_acls: bool,
    block_public_policy: bool,
    restrict_public_buckets: bool,
}

impl Block {
    fn of(c: &PublicAccessBlockConfiguration) -> Block {
        Block {
            block_public_acls: c.block_public_acls.unwrap_or(false),
            ignore_public_acls: c.ignore_public_acls.unwrap_or(false),
            block_public_policy: c.block_public_policy.unwrap_or(false),
            restrict_public_buckets: c.restrict_public_buckets.unwrap_or(false),
        }
    }

    fn configuration(self) -> PublicAccessBlockConfiguration {
        PublicAccessBlockConfiguration {
            block_public_acls: Some(self.block_public_acls),
            ignore_public_acls: Some(self.ignore_public_acls),
            block_public_policy: Some(self.block_public_policy),
            restrict_public_buckets: Some(self.restrict_public_buckets),
        }
    }
}

fn not_found() -> Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::Custom("NoSuchPublicAccessBlockConfiguration".into()),
        "The public access block configuration was not found",
    );
    e.set_status_code(http::StatusCode::NOT_FOUND);
    Error::Client(e)
}

impl Gateway {
    /// The stored public access block of `bucket`, if any.
    async fn public_access_block(&self, bucket: &str) -> Result<Option<Block>> {
        let Some(json) = self
            .store
            .bucket_setting(bucket, SETTING_PUBLIC_ACCESS_BLOCK)
            .await?
        else {
            return Ok(None);
        };
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| Error::Integrity(format!("stored public access block of {bucket}: {e}")))
    }

    /// Whether the bucket's public access block sets `BlockPublicPolicy` (read by
    /// PutBucketPolicy).
    pub(super) async fn blocks_public_policy(&self, bucket: &str) -> Result<bool> {
        Ok(self
            .public_access_block(bucket)
            .await?
            .is_some_and(|b| b.block_public_policy))
    }

    pub(super) async fn op_put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> Result<PutPublicAccessBlockOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let i = req.input;
        self.require_bucket(&i.bucket).await?;
        let block = Block::of(&i.public_access_block_configuration);
        let json = serde_json::to_string(&block)
            .map_err(|e| Error::Internal(format!("public access block to json: {e}")))?;
        self.store
            .set_bucket_setting(
                &i.bucket,
                SETTING_PUBLIC_ACCESS_BLOCK,
                Some(&json),
                audit.as_ref(),
            )
            .await?;
        tracing::info!(bucket = %i.bucket, ?block, "public access block set");
        Ok(PutPublicAccessBlockOutput::default())
    }

    pub(super) async fn op_get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> Result<GetPublicAccessBlockOutput> {
        let Some(block) = self.public_access_block(&req.input.bucket).await? else {
            return Err(not_found());
        };
        Ok(GetPublicAccessBlockOutput {
            public_access_block_configuration: Some(block.configuration()),
        })
    }

    pub(super) async fn op_delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> Result<DeletePublicAccessBlockOutput> {
        let audit = RequestCtx::of(&req.extensions);
        self.store
            .set_bucket_setting(
                &req.input.bucket,
                SETTING_PUBLIC_ACCESS_BLOCK,
                None,
                audit.as_ref(),
            )
            .await?;
        Ok(DeletePublicAccessBlockOutput::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_flags_are_false_and_round_trip() {
        let c = PublicAccessBlockConfiguration {
            block_public_acls: Some(true),
            ignore_public_acls: None,
            block_public_policy: Some(true),
            restrict_public_buckets: Some(false),
        };
        let b = Block::of(&c);
        let json = serde_json::to_string(&b).unwrap();
        let back: Block = serde_json::from_str(&json).unwrap();
        let out = back.configuration();
        assert_eq!(out.block_public_acls, Some(true));
        assert_eq!(out.ignore_public_acls, Some(false));
        assert_eq!(out.block_public_policy, Some(true));
        assert_eq!(out.restrict_public_buckets, Some(false));
    }
}
