//! Lifecycle configuration: Put/Get/DeleteBucketLifecycleConfiguration, validated as S3 does
//! (1 to 1000 rules, IDs of at most 255 characters and unique, Status `Enabled` or `Disabled`,
//! positive day counts, dates at midnight UTC, one filter form per rule, at least one action;
//! MalformedXML / InvalidArgument). Conditions side by side in `<Filter>` (without `<And>`) are
//! taken as their conjunction, as RGW does. Transitions need storage classes the gateway does not have
//! and are refused (501 NotImplemented) rather than ignored. The worker that applies the rules
//! is `store::lifecycle`.

use std::collections::BTreeMap;

use s3s::S3Request;
use s3s::dto::*;

use super::Gateway;
use super::tagging::{MAX_OBJECT_TAGS, validate};
use crate::error::{Error, Result};
use crate::index::SETTING_LIFECYCLE;
use crate::request::RequestCtx;
use crate::store::lifecycle::{Filter, FilterForm, Lifecycle, Rule};

/// Most rules in one configuration (S3).
pub const MAX_RULES: usize = 1000;
/// Longest rule ID (S3).
pub const MAX_RULE_ID: usize = 255;

fn malformed(msg: &str) -> Error {
    Error::MalformedXml(msg.to_owned())
}

fn invalid(msg: &str) -> Error {
    Error::InvalidArgument(msg.to_owned())
}

fn positive(v: Option<i32>, what: &str) -> Result<Option<u32>> {
    match v {
        None => Ok(None),
        Some(n) if n > 0 => Ok(u32::try_from(n).ok()),
        Some(_) => Err(invalid(&format!("'{what}' must be a positive integer"))),
    }
}

fn size_bound(v: Option<i64>) -> Result<Option<u64>> {
    match v {
        None => Ok(None),
        Some(n) => u64::try_from(n)
            .map(Some)
            .map_err(|_| invalid("object size bounds must not be negative")),
    }
}

fn tag_pairs(tags: Vec<Tag>) -> Vec<(String, String)> {
    tags.into_iter()
        .map(|t| (t.key.unwrap_or_default(), t.value.unwrap_or_default()))
        .collect()
}

/// The stored filter of a rule.
fn filter_of(
    rule_prefix: Option<String>,
    f: Option<LifecycleRuleFilter>,
) -> Result<(FilterForm, Filter)> {
    match (rule_prefix, f) {
        (Some(_), Some(_)) => Err(malformed("a rule has both Prefix and Filter")),
        (Some(p), None) => Ok((
            FilterForm::RulePrefix,
            Filter {
                prefix: p,
                ..Default::default()
            },
        )),
        (None, None) => Ok((FilterForm::None, Filter::default())),
        (None, Some(f)) => {
            // S3 wants several conditions inside <And>; RGW (and the Ceph suite) also take
            // them side by side in <Filter>, beside an <And> too, which means their
            // conjunction: every form is accepted (reported back as one <And>)
            if let Some(and) = f.and {
                let mut pairs = tag_pairs(and.tags.unwrap_or_default());
                pairs.extend(tag_pairs(f.tag.into_iter().collect()));
                let tags = validate(pairs, MAX_OBJECT_TAGS)?;
                let prefix = match (and.prefix.unwrap_or_default(), f.prefix.unwrap_or_default()) {
                    (a, b) if a.starts_with(&b) => a,
                    (a, b) if b.starts_with(&a) => b,
                    _ => return Err(malformed("the prefixes of a Filter contradict each other")),
                };
                return Ok((
                    FilterForm::And,
                    Filter {
                        prefix,
                        tags,
                        size_greater_than: size_bound(
                            and.object_size_greater_than.or(f.object_size_greater_than),
                        )?,
                        size_less_than: size_bound(
                            and.object_size_less_than.or(f.object_size_less_than),
                        )?,
                    },
                ));
            }
            let tags = match f.tag {
                Some(t) => validate(tag_pairs(vec![t]), 1)?,
                None => BTreeMap::new(),
            };
            Ok((
                FilterForm::Single,
                Filter {
                    prefix: f.prefix.unwrap_or_default(),
                    tags,
                    size_greater_than: size_bound(f.object_size_greater_than)?,
                    size_less_than: size_bound(f.object_size_less_than)?,
                },
            ))
        }
    }
}

/// One rule of a PutBucketLifecycleConfiguration, validated.
fn rule_of(r: LifecycleRule) -> Result<Rule> {
    let enabled = match r.status.as_str() {
        ExpirationStatus::ENABLED => true,
        ExpirationStatus::DISABLED => false,
        _ => return Err(malformed("Status must be Enabled or Disabled")),
    };
    let id = rule_id(r.id)?;
    refuse_transitions(
        r.transitions.as_deref(),
        r.noncurrent_version_transitions.as_deref(),
    )?;
    let (form, filter) = filter_of(r.prefix, r.filter)?;
    let mut rule = Rule {
        id,
        enabled,
        form,
        filter,
        ..Default::default()
    };
    if let Some(e) = r.expiration {
        set_expiration(&mut rule, e)?;
    }
    if let Some(n) = r.noncurrent_version_expiration {
        set_noncurrent_expiration(&mut rule, n)?;
    }
    if let Some(a) = r.abort_incomplete_multipart_upload {
        rule.abort_upload_days = positive(a.days_after_initiation, "DaysAfterInitiation")?;
        if rule.abort_upload_days.is_none() {
            return Err(malformed(
                "AbortIncompleteMultipartUpload needs DaysAfterInitiation",
            ));
        }
        if !rule.filter.tags.is_empty() {
            return Err(invalid(
                "AbortIncompleteMultipartUpload cannot be specified with a tag filter",
            ));
        }
    }
    if rule.expiration_days.is_none()
        && rule.expiration_date_ms.is_none()
        && rule.expired_object_delete_marker.is_none()
        && rule.noncurrent_days.is_none()
        && rule.abort_upload_days.is_none()
    {
        return Err(invalid(
            "At least one action needs to be specified in a rule",
        ));
    }
    Ok(rule)
}

/// A rule's ID: the one given (at most 255 characters), or a random one.
fn rule_id(id: Option<String>) -> Result<String> {
    match id {
        Some(id) if id.chars().count() > MAX_RULE_ID => {
            Err(invalid("ID length should not exceed allowed limit of 255"))
        }
        Some(id) if !id.is_empty() => Ok(id),
        _ => {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
            Ok(hex::encode(b))
        }
    }
}

/// Transitions are refused (one storage class here), after S3's check of their dates.
fn refuse_transitions(
    transitions: Option<&[Transition]>,
    noncurrent: Option<&[NoncurrentVersionTransition]>,
) -> Result<()> {
    for t in transitions.into_iter().flatten() {
        if let Some(d) = &t.date
            && super::ms_of(d).rem_euclid(86_400_000) != 0
        {
            return Err(invalid("'Date' must be at midnight GMT"));
        }
    }
    if transitions.is_some_and(|t| !t.is_empty()) || noncurrent.is_some_and(|t| !t.is_empty()) {
        return Err(Error::Client(s3s::s3_error!(
            NotImplemented,
            "Lifecycle transitions are not supported: this gateway has one storage class."
        )));
    }
    Ok(())
}

/// A rule's Expiration: exactly one of Days, Date (midnight GMT) and
/// ExpiredObjectDeleteMarker (not with a tag filter).
fn set_expiration(rule: &mut Rule, e: LifecycleExpiration) -> Result<()> {
    rule.expiration_days = positive(e.days, "Days")?;
    if let Some(d) = e.date {
        let ms = super::ms_of(&d);
        if ms.rem_euclid(86_400_000) != 0 {
            return Err(invalid("'Date' must be at midnight GMT"));
        }
        rule.expiration_date_ms = Some(ms);
    }
    rule.expired_object_delete_marker = e.expired_object_delete_marker;
    let set = usize::from(rule.expiration_days.is_some())
        + usize::from(rule.expiration_date_ms.is_some())
        + usize::from(rule.expired_object_delete_marker.is_some());
    if set != 1 {
        return Err(malformed(
            "Expiration holds exactly one of Days, Date and ExpiredObjectDeleteMarker",
        ));
    }
    if rule.expired_object_delete_marker.is_some() && !rule.filter.tags.is_empty() {
        return Err(invalid(
            "ExpiredObjectDeleteMarker cannot be specified with a tag filter",
        ));
    }
    Ok(())
}

/// A rule's NoncurrentVersionExpiration: NoncurrentDays, and NewerNoncurrentVersions in
/// 1..=100 when given.
fn set_noncurrent_expiration(rule: &mut Rule, n: NoncurrentVersionExpiration) -> Result<()> {
    rule.noncurrent_days = positive(n.noncurrent_days, "NoncurrentDays")?;
    if rule.noncurrent_days.is_none() {
        return Err(malformed(
            "NoncurrentVersionExpiration needs NoncurrentDays",
        ));
    }
    rule.newer_noncurrent_versions = match n.newer_noncurrent_versions {
        None => None,
        Some(v) if (1..=100).contains(&v) => u32::try_from(v).ok(),
        Some(_) => {
            return Err(invalid(
                "'NewerNoncurrentVersions' must be between 1 and 100",
            ));
        }
    };
    Ok(())
}

/// A whole configuration, validated.
pub(crate) fn lifecycle_of(cfg: BucketLifecycleConfiguration) -> Result<Lifecycle> {
    if cfg.rules.is_empty() || cfg.rules.len() > MAX_RULES {
        return Err(malformed("a lifecycle configuration holds 1 to 1000 rules"));
    }
    let rules = cfg
        .rules
        .into_iter()
        .map(rule_of)
        .collect::<Result<Vec<_>>>()?;
    let mut ids = std::collections::HashSet::new();
    if !rules.iter().all(|r| ids.insert(r.id.as_str())) {
        return Err(invalid(
            "Rule ID must be unique. Found same ID for more than one rule",
        ));
    }
    Ok(Lifecycle { rules })
}

fn tags_out(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag {
            key: Some(k.clone()),
            value: Some(v.clone()),
        })
        .collect()
}

fn i32_of(v: Option<u32>) -> Option<i32> {
    v.and_then(|n| i32::try_from(n).ok())
}

fn i64_of(v: Option<u64>) -> Option<i64> {
    v.and_then(|n| i64::try_from(n).ok())
}

/// A stored rule as S3 reports it.
fn rule_out(r: &Rule) -> LifecycleRule {
    let f = &r.filter;
    let (prefix, filter) = match r.form {
        FilterForm::RulePrefix => (Some(f.prefix.clone()), None),
        FilterForm::None => (None, None),
        FilterForm::And => (
            None,
            Some(LifecycleRuleFilter {
                and: Some(LifecycleRuleAndOperator {
                    prefix: (!f.prefix.is_empty()).then(|| f.prefix.clone()),
                    tags: (!f.tags.is_empty()).then(|| tags_out(&f.tags)),
                    object_size_greater_than: i64_of(f.size_greater_than),
                    object_size_less_than: i64_of(f.size_less_than),
                }),
                ..Default::default()
            }),
        ),
        FilterForm::Single => (
            None,
            Some(LifecycleRuleFilter {
                prefix: (!f.prefix.is_empty()
                    || (f.tags.is_empty()
                        && f.size_greater_than.is_none()
                        && f.size_less_than.is_none()))
                .then(|| f.prefix.clone()),
                tag: tags_out(&f.tags).into_iter().next(),
                object_size_greater_than: i64_of(f.size_greater_than),
                object_size_less_than: i64_of(f.size_less_than),
                ..Default::default()
            }),
        ),
    };
    let expiration = (r.expiration_days.is_some()
        || r.expiration_date_ms.is_some()
        || r.expired_object_delete_marker.is_some())
    .then(|| LifecycleExpiration {
        days: i32_of(r.expiration_days),
        date: r.expiration_date_ms.map(super::ts),
        expired_object_delete_marker: r.expired_object_delete_marker,
    });
    LifecycleRule {
        id: Some(r.id.clone()),
        status: ExpirationStatus::from_static(if r.enabled {
            ExpirationStatus::ENABLED
        } else {
            ExpirationStatus::DISABLED
        }),
        prefix,
        filter,
        expiration,
        noncurrent_version_expiration: r.noncurrent_days.map(|d| NoncurrentVersionExpiration {
            noncurrent_days: i32_of(Some(d)),
            newer_noncurrent_versions: i32_of(r.newer_noncurrent_versions),
        }),
        abort_incomplete_multipart_upload: r.abort_upload_days.map(|d| {
            AbortIncompleteMultipartUpload {
                days_after_initiation: i32_of(Some(d)),
            }
        }),
        noncurrent_version_transitions: None,
        transitions: None,
    }
}

impl Gateway {
    /// `x-amz-expiration` of the current version `rec` (PUT, GET, HEAD): when a lifecycle rule
    /// will expire it and which (None without such a rule, for older versions and markers).
    pub(super) async fn expiration_header(
        &self,
        rec: &crate::index::ObjectRecord,
    ) -> Option<String> {
        if rec.delete_marker || !rec.is_latest {
            return None;
        }
        let json = match self
            .store
            .bucket_setting(&rec.bucket, SETTING_LIFECYCLE)
            .await
        {
            Ok(j) => j?,
            Err(e) => {
                tracing::warn!(bucket = %rec.bucket, error = %e, "lifecycle rules unreadable");
                return None;
            }
        };
        let lc = Lifecycle::from_json(&rec.bucket, &json).ok()?;
        let tagging = rec
            .headers
            .get(crate::index::TAGGING_HEADER)
            .map_or("", String::as_str);
        let (due, id) = lc.expiration_of(&rec.key, rec.size, tagging, rec.last_modified_ms)?;
        if id
            .chars()
            .any(|c| c == '"' || c == '\\' || !(' '..='~').contains(&c))
        {
            return None; // an id a header cannot carry as a quoted string
        }
        let mut date = Vec::new();
        super::ts(due)
            .format(TimestampFormat::HttpDate, &mut date)
            .ok()?;
        Some(format!(
            "expiry-date=\"{}\", rule-id=\"{id}\"",
            String::from_utf8(date).ok()?
        ))
    }

    pub(super) async fn op_put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> Result<PutBucketLifecycleConfigurationOutput> {
        let audit = RequestCtx::of(&req.extensions);
        let i = req.input;
        self.require_bucket(&i.bucket).await?;
        let cfg = i
            .lifecycle_configuration
            .ok_or_else(|| malformed("missing LifecycleConfiguration"))?;
        let lc = lifecycle_of(cfg)?;
        self.store
            .set_bucket_setting(
                &i.bucket,
                SETTING_LIFECYCLE,
                Some(&lc.to_json()?),
                audit.as_ref(),
            )
            .await?;
        tracing::info!(bucket = %i.bucket, rules = lc.rules.len(), "lifecycle configuration set");
        Ok(PutBucketLifecycleConfigurationOutput::default())
    }

    pub(super) async fn op_get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> Result<GetBucketLifecycleConfigurationOutput> {
        let bucket = req.input.bucket;
        let Some(json) = self
            .store
            .bucket_setting(&bucket, SETTING_LIFECYCLE)
            .await?
        else {
            return Err(Error::Client(s3s::s3_error!(
                NoSuchLifecycleConfiguration,
                "The lifecycle configuration does not exist"
            )));
        };
        let lc = Lifecycle::from_json(&bucket, &json)?;
        Ok(GetBucketLifecycleConfigurationOutput {
            rules: Some(lc.rules.iter().map(rule_out).collect()),
            ..Default::default()
        })
    }

    pub(super) async fn op_delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> Result<DeleteBucketLifecycleOutput> {
        let audit = RequestCtx::of(&req.extensions);
        self.store
            .set_bucket_setting(&req.input.bucket, SETTING_LIFECYCLE, None, audit.as_ref())
            .await?;
        Ok(DeleteBucketLifecycleOutput::default())
    }
}
