//! Bucket default encryption: Put/Get/DeleteBucketEncryption (a bucket setting, validated as S3
//! does: one rule with `ApplyServerSideEncryptionByDefault`, `SSEAlgorithm` AES256 or aws:kms,
//! `KMSMasterKeyID` only with aws:kms, `BucketKeyEnabled`), and the mode a write without
//! encryption headers gets from it.
//!
//! Every object is sealed under its bucket's data key whatever the configuration says; the
//! default decides what a new object reports (`x-amz-server-side-encryption` on PUT, HEAD, GET,
//! CopyObject and multipart answers), recorded in the object's header map when it is written
//! (see `encryption::stamp`), so that changing the default later does not change what existing
//! objects report (as on S3). `aws:kms` needs a gateway configured with a KMS, as the request
//! header does; a `KMSMasterKeyID` (key id, ARN or alias) is checked with the KMS when the
//! configuration is put (unknown or disabled: 400 `KMS.NotFoundException` /
//! `KMS.DisabledException`), kept as given and reported back as given (as S3 does); writes
//! without encryption headers are then sealed under the bucket data key of that KMS key and
//! report its ARN. GetBucketEncryption of a bucket without a configuration answers
//! `ServerSideEncryptionConfigurationNotFoundError` (404), as S3 did before 2023 and as
//! s3-tests expects; docs/S3-COMPATIBILITY.md says why.

use s3s::S3Request;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode};
use serde::{Deserialize, Serialize};

use super::Gateway;
use crate::error::{Error, Result};
use crate::request::RequestCtx;

/// Name of the bucket setting holding the bucket's default encryption.
pub(crate) const SETTING_ENCRYPTION: &str = "encryption";

/// A bucket's stored default encryption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BucketEncryption {
    /// `AES256` or `aws:kms`
    pub algorithm: String,
    /// `BucketKeyEnabled` as given (reported back by GetBucketEncryption)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket_key: Option<bool>,
    /// `KMSMasterKeyID` as given (aws:kms only)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
}

fn malformed(msg: &str) -> Error {
    Error::MalformedXml(msg.to_owned())
}

impl BucketEncryption {
    /// The configuration a PutBucketEncryption carries, validated; `kms`: the gateway runs on
    /// a KMS, so aws:kms is honoured.
    pub(crate) fn from_request(
        cfg: ServerSideEncryptionConfiguration,
        kms: bool,
    ) -> Result<BucketEncryption> {
        let mut rules = cfg.rules.into_iter();
        let (Some(rule), None) = (rules.next(), rules.next()) else {
            return Err(malformed(
                "a ServerSideEncryptionConfiguration has exactly one Rule",
            ));
        };
        let Some(by_default) = rule.apply_server_side_encryption_by_default else {
            return Err(malformed(
                "a Rule needs an ApplyServerSideEncryptionByDefault",
            ));
        };
        let algorithm = by_default.sse_algorithm.as_str();
        match algorithm {
            ServerSideEncryption::AES256 => {
                if by_default.kms_master_key_id.is_some() {
                    return Err(Error::InvalidArgument(
                        "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms or aws:kms:dsse".into(),
                    ));
                }
            }
            ServerSideEncryption::AWS_KMS => {
                if !kms {
                    return Err(Error::InvalidArgument(crate::auth::KMS_NEEDED.into()));
                }
            }
            ServerSideEncryption::AWS_KMS_DSSE => {
                return Err(Error::Client(S3Error::with_message(
                    S3ErrorCode::NotImplemented,
                    "aws:kms:dsse (dual-layer SSE-KMS) is not supported by this gateway.",
                )));
            }
            _ => {
                return Err(malformed(&format!(
                    "SSEAlgorithm {algorithm:?} is not AES256 or aws:kms"
                )));
            }
        }
        Ok(BucketEncryption {
            algorithm: algorithm.to_owned(),
            bucket_key: rule.bucket_key_enabled,
            kms_key: by_default.kms_master_key_id,
        })
    }

    fn to_json(&self) -> Result<String> {
        serde_json::to_string(self)
            .map_err(|e| Error::Internal(format!("bucket encryption to json: {e}")))
    }

    fn from_json(bucket: &str, json: &str) -> Result<BucketEncryption> {
        serde_json::from_str(json).map_err(|e| {
            Error::Internal(format!("stored encryption configuration of {bucket}: {e}"))
        })
    }

    fn to_configuration(&self) -> ServerSideEncryptionConfiguration {
        ServerSideEncryptionConfiguration {
            rules: vec![ServerSideEncryptionRule {
                apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                    kms_master_key_id: self.kms_key.clone(),
                    sse_algorithm: ServerSideEncryption::from(self.algorithm.clone()),
                }),
                bucket_key_enabled: self.bucket_key,
            }],
        }
    }
}

fn not_found() -> Error {
    let mut e = S3Error::with_message(
        S3ErrorCode::ServerSideEncryptionConfigurationNotFoundError,
        "The server side encryption configuration was not found",
    );
    e.set_status_code(http::StatusCode::NOT_FOUND);
    Error::Client(e)
}

impl Gateway {
    /// The bucket's default encryption, if it has one.
    pub(crate) async fn bucket_encryption(&self, bucket: &str) -> Result<Option<BucketEncryption>> {
        match self
            .store
            .bucket_setting(bucket, SETTING_ENCRYPTION)
            .await?
        {
            Some(json) => Ok(Some(BucketEncryption::from_json(bucket, &json)?)),
            None => Ok(None),
        }
    }

    pub(super) async fn op_put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> Result<PutBucketEncryptionOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let i = req.input;
        self.require_bucket(&i.bucket).await?;
        let kms = self.sse == ServerSideEncryption::AWS_KMS;
        let enc = BucketEncryption::from_request(i.server_side_encryption_configuration, kms)?;
        if let Some(k) = &enc.kms_key {
            // an unknown or disabled key is refused now, not at the first write
            self.kms_key_arn(Some(k)).await?;
        }
        self.store
            .set_bucket_setting(
                &i.bucket,
                SETTING_ENCRYPTION,
                Some(&enc.to_json()?),
                audit.as_ref(),
            )
            .await?;
        tracing::info!(bucket = %i.bucket, algorithm = %enc.algorithm, "default encryption set");
        Ok(PutBucketEncryptionOutput::default())
    }

    pub(super) async fn op_get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> Result<GetBucketEncryptionOutput> {
        let Some(enc) = self.bucket_encryption(&req.input.bucket).await? else {
            return Err(not_found());
        };
        Ok(GetBucketEncryptionOutput {
            server_side_encryption_configuration: Some(enc.to_configuration()),
        })
    }

    pub(super) async fn op_delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> Result<DeleteBucketEncryptionOutput> {
        let audit = RequestCtx::of(&req.extensions);
        self.store
            .set_bucket_setting(&req.input.bucket, SETTING_ENCRYPTION, None, audit.as_ref())
            .await?;
        Ok(DeleteBucketEncryptionOutput::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(alg: &str, key: Option<&str>, rules: usize) -> ServerSideEncryptionConfiguration {
        let rule = ServerSideEncryptionRule {
            apply_server_side_encryption_by_default: Some(ServerSideEncryptionByDefault {
                kms_master_key_id: key.map(str::to_owned),
                sse_algorithm: ServerSideEncryption::from(alg.to_owned()),
            }),
            bucket_key_enabled: Some(true),
        };
        ServerSideEncryptionConfiguration {
            rules: vec![rule; rules],
        }
    }

    fn code(e: Error) -> (String, u16) {
        let s = S3Error::from(e);
        (
            s.code().as_str().to_owned(),
            s.status_code().map_or(0, |c| c.as_u16()),
        )
    }

    #[test]
    fn configurations_are_validated_as_s3_does() {
        let ok = BucketEncryption::from_request(cfg("AES256", None, 1), false).unwrap();
        assert_eq!(ok.algorithm, "AES256");
        assert_eq!(ok.bucket_key, Some(true));
        let kms = BucketEncryption::from_request(cfg("aws:kms", None, 1), true).unwrap();
        assert_eq!(kms.algorithm, "aws:kms");
        let named = BucketEncryption::from_request(cfg("aws:kms", Some("alias/k"), 1), true);
        assert_eq!(named.unwrap().kms_key.as_deref(), Some("alias/k"));
        let bad = [
            (cfg("AES256", None, 0), true, ("MalformedXML", 400)),
            (cfg("AES256", None, 2), true, ("MalformedXML", 400)),
            (cfg("AES128", None, 1), true, ("MalformedXML", 400)),
            (cfg("AES256", Some("k"), 1), true, ("InvalidArgument", 400)),
            (cfg("aws:kms", None, 1), false, ("InvalidArgument", 400)),
            (
                cfg("aws:kms", Some("k"), 1),
                false,
                ("InvalidArgument", 400),
            ),
            (cfg("aws:kms:dsse", None, 1), true, ("NotImplemented", 501)),
        ];
        for (c, kms, (want, status)) in bad {
            let got = code(BucketEncryption::from_request(c.clone(), kms).unwrap_err());
            assert_eq!((got.0.as_str(), got.1), (want, status), "{c:?} kms={kms}");
        }
        let no_default = ServerSideEncryptionConfiguration {
            rules: vec![ServerSideEncryptionRule {
                apply_server_side_encryption_by_default: None,
                bucket_key_enabled: Some(true),
            }],
        };
        assert_eq!(
            code(BucketEncryption::from_request(no_default, true).unwrap_err()).0,
            "MalformedXML"
        );
        assert_eq!(
            code(not_found()),
            (
                "ServerSideEncryptionConfigurationNotFoundError".to_owned(),
                404
            )
        );
    }

    #[test]
    fn stored_form_round_trips() {
        let e = BucketEncryption::from_request(cfg("aws:kms", None, 1), true).unwrap();
        let back = BucketEncryption::from_json("b", &e.to_json().unwrap()).unwrap();
        assert_eq!(back, e);
        let out = back.to_configuration();
        let d = out.rules[0]
            .apply_server_side_encryption_by_default
            .as_ref()
            .unwrap();
        assert_eq!(d.sse_algorithm.as_str(), "aws:kms");
        assert_eq!(out.rules[0].bucket_key_enabled, Some(true));
    }
}
