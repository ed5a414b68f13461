//! Bucket ownership controls: Put/Get/DeleteBucketOwnershipControls and `x-amz-object-ownership`
//! on CreateBucket (a bucket setting, validated as S3 does: exactly one rule whose
//! `ObjectOwnership` is `BucketOwnerEnforced`, `BucketOwnerPreferred` or `ObjectWriter`).
//!
//! The setting is stored and reported; it changes no access decision. The gateway has no ACLs:
//! every object belongs to its bucket's tenant and roles, grants and tenants decide access, which
//! is what `BucketOwnerEnforced` (ACLs disabled) means on S3, whatever value a bucket records.
//! A bucket without the setting answers GetBucketOwnershipControls with 404
//! `OwnershipControlsNotFoundError` (S3 before April 2023, and s3-tests); docs/S3-COMPATIBILITY.md.

use s3s::S3Request;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode};

use super::Gateway;
use crate::error::{Error, Result};
use crate::request::RequestCtx;

/// Name of the bucket setting holding the bucket's `ObjectOwnership`.
pub(crate) const SETTING_OWNERSHIP: &str = "ownership";

/// The value, validated (one of S3's three).
pub(crate) fn validated(o: &ObjectOwnership) -> Result<&str> {
    match o.as_str() {
        v @ (ObjectOwnership::BUCKET_OWNER_ENFORCED
        | ObjectOwnership::BUCKET_OWNER_PREFERRED
        | ObjectOwnership::OBJECT_WRITER) => Ok(v),
        other => Err(Error::InvalidArgument(format!(
            "Invalid x-amz-object-ownership / ObjectOwnership {other:?}: expected BucketOwnerEnforced, BucketOwnerPreferred or ObjectWriter"
        ))),
    }
}

/// The one rule's value of a PutBucketOwnershipControls body.
fn of_request(c: OwnershipControls) -> Result<String> {
    let mut rules = c.rules.into_iter();
    let (Some(rule), None) = (rules.next(), rules.next()) else {
        return Err(Error::MalformedXml(
            "OwnershipControls has exactly one Rule".into(),
        ));
    };
    match validated(&rule.object_ownership) {
        Ok(v) => Ok(v.to_owned()),
        // in a body, an unknown value is a malformed document (S3's answer)
        Err(_) => Err(Error::MalformedXml(format!(
            "ObjectOwnership {:?} is not BucketOwnerEnforced, BucketOwnerPreferred or ObjectWriter",
            rule.object_ownership.as_str()
        ))),
    }
}

fn not_found() -> Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::OwnershipControlsNotFoundError,
        "The bucket ownership controls were not found",
    );
    e.set_status_code(http::StatusCode::NOT_FOUND);
    Error::Client(e)
}

impl Gateway {
    pub(super) async fn op_put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> Result<PutBucketOwnershipControlsOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let i = req.input;
        self.require_bucket(&i.bucket).await?;
        let value = of_request(i.ownership_controls)?;
        self.store
            .set_bucket_setting(&i.bucket, SETTING_OWNERSHIP, Some(&value), audit.as_ref())
            .await?;
        tracing::info!(bucket = %i.bucket, ownership = %value, "ownership controls set");
        Ok(PutBucketOwnershipControlsOutput::default())
    }

    pub(super) async fn op_get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> Result<GetBucketOwnershipControlsOutput> {
        let bucket = req.input.bucket;
        let Some(value) = self
            .store
            .bucket_setting(&bucket, SETTING_OWNERSHIP)
            .await?
        else {
            return Err(not_found());
        };
        Ok(GetBucketOwnershipControlsOutput {
            ownership_controls: Some(OwnershipControls {
                rules: vec![OwnershipControlsRule {
                    object_ownership: ObjectOwnership::from(value),
                }],
            }),
        })
    }

    pub(super) async fn op_delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> Result<DeleteBucketOwnershipControlsOutput> {
        let audit = RequestCtx::of(&req.extensions);
        self.store
            .set_bucket_setting(&req.input.bucket, SETTING_OWNERSHIP, None, audit.as_ref())
            .await?;
        Ok(DeleteBucketOwnershipControlsOutput::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controls(values: &[&str]) -> OwnershipControls {
        OwnershipControls {
            rules: values
                .iter()
                .map(|v| OwnershipControlsRule {
                    object_ownership: ObjectOwnership::from((*v).to_owned()),
                })
                .collect(),
        }
    }

    #[test]
    fn one_rule_of_three_values() {
        for v in [
            "BucketOwnerEnforced",
            "BucketOwnerPreferred",
            "ObjectWriter",
        ] {
            assert_eq!(of_request(controls(&[v])).unwrap(), v);
        }
        assert!(matches!(
            of_request(controls(&[])),
            Err(Error::MalformedXml(_))
        ));
        assert!(matches!(
            of_request(controls(&["ObjectWriter", "ObjectWriter"])),
            Err(Error::MalformedXml(_))
        ));
        assert!(matches!(
            of_request(controls(&["bucketownerenforced"])),
            Err(Error::MalformedXml(_))
        ));
        assert!(matches!(
            validated(&ObjectOwnership::from("Nobody".to_owned())),
            Err(Error::InvalidArgument(_))
        ));
    }
}
