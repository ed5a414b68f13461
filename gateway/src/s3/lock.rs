//! Object lock: PutObjectLockConfiguration / GetObjectLockConfiguration (object lock on a
//! bucket and its default retention), PutObjectRetention / GetObjectRetention and
//! PutObjectLegalHold / GetObjectLegalHold on one version. The rules that protect a locked
//! version (no delete, no overwrite of a `null` version, COMPLIANCE never shortened) are
//! enforced by the index inside the transaction that would break them (`ObjectLock::protects`,
//! `check_lock_change`); this file parses, authorises and reports.

use std::collections::BTreeMap;

use s3s::S3Request;
use s3s::dto::*;

use super::Gateway;
use super::versioning::{lock_error, parse_hold, until_ms};
use crate::audit;
use crate::error::{Error, Result};
use crate::index::{
    BucketState, DefaultRetention, IndexError, LockMode, NULL_VERSION, ObjectLock, Versioning,
};
use crate::request::RequestCtx;
use crate::store::NewVersion;

/// Names under which a multipart upload keeps the lock its CreateMultipartUpload asked for
/// (in the upload's header map, removed again at completion; never object headers).
const STASH_MODE: &str = "x-vaultgate-lock-mode";
const STASH_UNTIL: &str = "x-vaultgate-lock-until-ms";
const STASH_HOLD: &str = "x-vaultgate-legal-hold";

/// Keeps an upload's requested lock with the upload.
pub(super) fn stash_lock(headers: &mut BTreeMap<String, String>, lock: &ObjectLock) {
    if let Some((m, u)) = lock.retention {
        headers.insert(STASH_MODE.into(), m.as_str().into());
        headers.insert(STASH_UNTIL.into(), u.to_string());
    }
    if lock.legal_hold {
        headers.insert(STASH_HOLD.into(), "ON".into());
    }
}

/// The version a completed upload becomes: its id from the bucket's state now, its lock from
/// what CreateMultipartUpload asked for (removed from `headers`) or the bucket's default.
pub(super) fn version_of_upload(
    state: &BucketState,
    headers: &mut BTreeMap<String, String>,
) -> Result<NewVersion> {
    let version_id = match state.versioning {
        Versioning::Enabled => NewVersion::new_id()?,
        _ => NULL_VERSION.to_owned(),
    };
    let mode = headers.remove(STASH_MODE);
    let until = headers.remove(STASH_UNTIL);
    let hold = headers.remove(STASH_HOLD).is_some();
    let mut lock = ObjectLock {
        retention: None,
        legal_hold: hold,
    };
    if let (Some(m), Some(u)) = (mode, until) {
        let m = LockMode::parse(&m)
            .ok_or_else(|| Error::Integrity(format!("upload has a bad lock mode {m:?}")))?;
        let u: i64 = u
            .parse()
            .map_err(|_| Error::Integrity("upload has a bad lock date".into()))?;
        lock.retention = Some((m, u));
    } else if state.object_lock
        && let Some(d) = state.default_retention
    {
        lock.retention = Some((d.mode, d.until(crate::index::now_ms())));
    }
    Ok(NewVersion { version_id, lock })
}

fn lock_not_configured() -> Error {
    Error::Client(s3s::s3_error!(
        ObjectLockConfigurationNotFoundError,
        "Object Lock configuration does not exist for this bucket"
    ))
}

fn invalid_request(msg: &'static str) -> Error {
    Error::InvalidRequest(msg.into())
}

/// A configuration's default retention, validated: a valid mode and exactly one of Days
/// (at most 36,500) and Years (at most 100), positive.
fn default_retention_of(d: s3s::dto::DefaultRetention) -> Result<DefaultRetention> {
    let mode = d
        .mode
        .as_ref()
        .and_then(|m| LockMode::parse(m.as_str()))
        .ok_or_else(|| Error::MalformedXml("default retention needs a valid Mode".into()))?;
    let (days, years) = (retention_period(d.days)?, retention_period(d.years)?);
    match (days, years) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(Error::MalformedXml(
                "default retention needs exactly one of Days and Years".into(),
            ));
        }
        _ => {}
    }
    if days.is_some_and(|d| d > 36_500) || years.is_some_and(|y| y > 100) {
        return Err(Error::InvalidArgument(
            "Default retention period is too large (at most 100 years)".into(),
        ));
    }
    Ok(DefaultRetention { mode, days, years })
}

/// A default retention period as given: none, or a positive number (else 400
/// InvalidRetentionPeriod).
fn retention_period(v: Option<i32>) -> Result<Option<u32>> {
    match v {
        None => Ok(None),
        Some(n) if n > 0 => Ok(u32::try_from(n).ok()),
        Some(_) => {
            let mut e = s3s::S3Error::with_message(
                s3s::S3ErrorCode::Custom("InvalidRetentionPeriod".into()),
                "Default retention period must be a positive integer value.",
            );
            e.set_status_code(http::StatusCode::BAD_REQUEST);
            Err(Error::Client(e))
        }
    }
}

impl Gateway {
    pub(super) async fn op_put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> Result<PutObjectLockConfigurationOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let i = req.input;
        let state = self.bucket_state(&i.bucket).await?;
        let cfg = i
            .object_lock_configuration
            .ok_or_else(|| Error::MalformedXml("missing ObjectLockConfiguration".into()))?;
        if cfg
            .object_lock_enabled
            .as_ref()
            .map(ObjectLockEnabled::as_str)
            != Some("Enabled")
        {
            return Err(Error::MalformedXml(
                "ObjectLockEnabled must be Enabled".into(),
            ));
        }
        let default = cfg
            .rule
            .and_then(|r| r.default_retention)
            .map(default_retention_of)
            .transpose()?;
        if !state.object_lock && state.versioning != Versioning::Enabled {
            return Err(Error::Client(s3s::s3_error!(
                InvalidBucketState,
                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
            )));
        }
        audit::before_change(audit.as_ref(), 0, None).await?;
        self.store
            .set_object_lock(&i.bucket, default)
            .await
            .map_err(|e| match e {
                IndexError::Locked(_) => Error::Client(s3s::s3_error!(
                    InvalidBucketState,
                    "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
                )),
                e => e.into(),
            })?;
        self.store.record_bucket_state(&i.bucket).await;
        tracing::info!(bucket = %i.bucket, ?default, "object lock configuration set");
        Ok(PutObjectLockConfigurationOutput::default())
    }

    pub(super) async fn op_get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> Result<GetObjectLockConfigurationOutput> {
        let state = self.bucket_state(&req.input.bucket).await?;
        if !state.object_lock {
            return Err(lock_not_configured());
        }
        Ok(GetObjectLockConfigurationOutput {
            object_lock_configuration: Some(ObjectLockConfiguration {
                object_lock_enabled: Some(ObjectLockEnabled::from_static(
                    ObjectLockEnabled::ENABLED,
                )),
                rule: state.default_retention.map(|d| ObjectLockRule {
                    default_retention: Some(s3s::dto::DefaultRetention {
                        mode: Some(ObjectLockRetentionMode::from(d.mode.as_str().to_owned())),
                        days: d.days.and_then(|v| i32::try_from(v).ok()),
                        years: d.years.and_then(|v| i32::try_from(v).ok()),
                    }),
                }),
            }),
        })
    }

    /// The current lock of the version a retention / legal-hold request names.
    async fn version_lock(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<(BucketState, crate::index::ObjectRecord)> {
        let state = self.bucket_state(bucket).await?;
        if !state.object_lock {
            return Err(invalid_request(
                "Bucket is missing Object Lock Configuration",
            ));
        }
        let rec = self.require_version(bucket, key, version_id).await?;
        Ok((state, rec))
    }

    pub(super) async fn op_put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> Result<PutObjectRetentionOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let credentials = req.credentials;
        let i = req.input;
        let (_, rec) = self
            .version_lock(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        let retention = match i.retention {
            None => None,
            Some(r) => match (r.mode, r.retain_until_date) {
                (None, None) => None,
                (Some(m), Some(d)) => {
                    let m = LockMode::parse(m.as_str())
                        .ok_or_else(|| Error::MalformedXml("unknown retention Mode".into()))?;
                    let u = until_ms(&d);
                    if u <= crate::index::now_ms() {
                        return Err(Error::InvalidArgument(
                            "The retain until date must be in the future!".into(),
                        ));
                    }
                    Some((m, u))
                }
                _ => {
                    return Err(Error::MalformedXml(
                        "a retention needs both Mode and RetainUntilDate".into(),
                    ));
                }
            },
        };
        let bypass = i.bypass_governance_retention.unwrap_or(false);
        if bypass {
            let identity = self
                .caller(credentials.as_ref())
                .await
                .map_err(Error::Client)?;
            self.policy
                .authorize_item(
                    &identity,
                    policy::Action::BypassGovernanceRetention,
                    Some(&i.bucket),
                    Some(&i.key),
                )
                .await
                .map_err(Error::Client)?;
        }
        let new = ObjectLock {
            retention,
            legal_hold: rec.lock.legal_hold,
        };
        // refused changes are refused before their event says "allowed"
        crate::index::check_lock_change(&rec.lock, &new, crate::index::now_ms(), bypass)
            .map_err(|why| lock_error(IndexError::Locked(why.to_owned())))?;
        let old = self
            .store
            .set_lock(
                &i.bucket,
                &i.key,
                &rec.version_id,
                new,
                bypass,
                audit.as_ref(),
            )
            .await?;
        tracing::info!(bucket = %i.bucket, key = %i.key, version = %rec.version_id,
            old = ?old.retention, new = ?new.retention, bypass, "object retention changed");
        Ok(PutObjectRetentionOutput::default())
    }

    pub(super) async fn op_get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> Result<GetObjectRetentionOutput> {
        let i = req.input;
        let (_, rec) = self
            .version_lock(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        let Some((mode, until)) = rec.lock.retention else {
            return Err(Error::Client(s3s::s3_error!(
                NoSuchObjectLockConfiguration,
                "The specified object does not have a ObjectLock configuration"
            )));
        };
        Ok(GetObjectRetentionOutput {
            retention: Some(ObjectLockRetention {
                mode: Some(ObjectLockRetentionMode::from(mode.as_str().to_owned())),
                retain_until_date: Some(super::ts(until)),
            }),
        })
    }

    pub(super) async fn op_put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> Result<PutObjectLegalHoldOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let i = req.input;
        let (_, rec) = self
            .version_lock(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        let status = i
            .legal_hold
            .and_then(|h| h.status)
            .ok_or_else(|| Error::MalformedXml("missing legal hold Status".into()))?;
        let new = ObjectLock {
            retention: rec.lock.retention,
            legal_hold: parse_hold(status.as_str())?,
        };
        self.store
            .set_lock(
                &i.bucket,
                &i.key,
                &rec.version_id,
                new,
                false,
                audit.as_ref(),
            )
            .await?;
        tracing::info!(bucket = %i.bucket, key = %i.key, version = %rec.version_id,
            legal_hold = new.legal_hold, "object legal hold changed");
        Ok(PutObjectLegalHoldOutput::default())
    }

    pub(super) async fn op_get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> Result<GetObjectLegalHoldOutput> {
        let i = req.input;
        let (_, rec) = self
            .version_lock(&i.bucket, &i.key, i.version_id.as_deref())
            .await?;
        Ok(GetObjectLegalHoldOutput {
            legal_hold: Some(ObjectLockLegalHold {
                status: Some(ObjectLockLegalHoldStatus::from(
                    if rec.lock.legal_hold { "ON" } else { "OFF" }.to_owned(),
                )),
            }),
        })
    }
}
