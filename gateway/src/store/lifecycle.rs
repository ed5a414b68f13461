//! Lifecycle: a bucket's rules (the stored form of PutBucketLifecycleConfiguration) and the
//! background worker that applies them through the object layer.
//!
//! Every `interval` the worker reads the rules of each bucket that has some and walks the
//! bucket's versions in key order, a page of keys at a time:
//! - **current-version expiration** (`Days` after the last write, or from a `Date`): in a bucket
//!   that never had versioning the object is deleted; with versioning Enabled a delete marker
//!   is added (the version stays, noncurrent); Suspended adds a `null` delete marker (which
//!   replaces the `null` version unless that one is locked);
//! - **noncurrent-version expiration** (`NoncurrentDays` after the version stopped being
//!   current, keeping the `NewerNoncurrentVersions` newest noncurrent versions);
//! - **expired delete markers** (a delete marker that is the only version of its key);
//! - **incomplete multipart uploads** aborted `DaysAfterInitiation` days after they started.
//!
//! Each change is conditional on the state the worker read (a version written since is never
//! expired by a decision about its predecessor), never removes a version that object lock
//! protects (retention or legal hold; checked before and again in the index transaction, and
//! never bypassed), and is recorded in the audit ledger before it becomes visible, as principal
//! [`LIFECYCLE_PRINCIPAL`] with action [`ACTION_EXPIRATION`] or [`ACTION_ABORT_UPLOAD`]; what
//! the worker did is counted in `vaultgate_lifecycle_*` metrics.
//!
//! A "day" is `day_secs` seconds (86400; tests and the Ceph suite shorten it, as RGW's
//! `rgw_lc_debug_interval` does). With real days an expiry is due at the midnight UTC that
//! follows the due time, as on S3.

use std::collections::BTreeMap;
use std::time::Duration;

use audit::EventKind;
use audit::scope::RequestAudit;
use prometheus::{IntCounter, IntCounterVec, Opts};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::Store;
use super::write::NewVersion;
use crate::audit as gw_audit;
use crate::error::{Error, Result};
use crate::index::{
    BucketState, IndexError, LifecycleVersion, NULL_VERSION, ObjectLock, SETTING_LIFECYCLE,
    Versioning,
};
use crate::request::RequestCtx;

/// Principal of the lifecycle worker's audit events.
pub const LIFECYCLE_PRINCIPAL: &str = "system:lifecycle";
/// Audit action of a version expired (deleted, or hidden by a delete marker) by a rule.
pub const ACTION_EXPIRATION: &str = "LifecycleExpiration";
/// Audit action of a multipart upload aborted by a rule.
pub const ACTION_ABORT_UPLOAD: &str = "LifecycleAbortMultipartUpload";

const DAY_MS: i64 = 86_400_000;
/// Keys read per page while walking a bucket.
const PAGE_KEYS: u32 = 500;

/// What a rule applies to: every key under `prefix` whose tags include `tags` and whose size
/// is within the bounds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    #[serde(default)]
    pub prefix: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_greater_than: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_less_than: Option<u64>,
}

/// How the rule named its filter (kept so that GetBucketLifecycleConfiguration answers what
/// was put).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterForm {
    /// `<Prefix>` directly in the rule (the legacy form)
    RulePrefix,
    /// no filter at all
    #[default]
    None,
    /// `<Filter>` with one condition, or empty
    Single,
    /// `<Filter><And>…</And></Filter>`
    And,
}

/// One lifecycle rule, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub enabled: bool,
    #[serde(default)]
    pub form: FilterForm,
    #[serde(default)]
    pub filter: Filter,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_days: Option<u32>,
    /// midnight UTC, ms since the epoch
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiration_date_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expired_object_delete_marker: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noncurrent_days: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newer_noncurrent_versions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_upload_days: Option<u32>,
}

/// A bucket's lifecycle configuration, as stored (JSON in the bucket setting `lifecycle`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub rules: Vec<Rule>,
}

impl Lifecycle {
    /// The stored JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Internal(format!("lifecycle: {e}")))
    }

    /// The expiry of a current version (key, size, URL-encoded tags, last write) that
    /// `x-amz-expiration` announces: the earliest due time (in real days, rounded up to
    /// midnight UTC, as S3 reports it) of the enabled expiration rules that select it, with
    /// that rule's id.
    pub fn expiration_of(
        &self,
        key: &str,
        size: u64,
        tagging: &str,
        last_modified_ms: i64,
    ) -> Option<(i64, &str)> {
        let v = LifecycleVersion {
            key: key.to_owned(),
            version_id: String::new(),
            is_latest: true,
            delete_marker: false,
            size,
            last_modified_ms,
            tagging: tagging.to_owned(),
            lock: ObjectLock::default(),
        };
        self.rules
            .iter()
            .filter(|r| r.enabled && r.filter.matches(&v))
            .filter_map(|r| {
                let by_days = r
                    .expiration_days
                    .map(|d| due_after(last_modified_ms, d, DAY_MS));
                let due = match (by_days, r.expiration_date_ms) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => a.or(b)?,
                };
                Some((due, r.id.as_str()))
            })
            .min()
    }

    /// Parses the stored JSON.
    pub fn from_json(bucket: &str, s: &str) -> Result<Lifecycle> {
        serde_json::from_str(s)
            .map_err(|e| Error::Integrity(format!("stored lifecycle of {bucket}: {e}")))
    }
}

/// When something `days` days after `from_ms` is due: with real days, the following midnight
/// UTC (S3's rounding); with shortened test days, exactly then.
fn due_after(from_ms: i64, days: u32, day_ms: i64) -> i64 {
    let t = from_ms.saturating_add(i64::from(days).saturating_mul(day_ms));
    if day_ms == DAY_MS {
        let rem = t.rem_euclid(DAY_MS);
        if rem == 0 { t } else { t - rem + DAY_MS }
    } else {
        t
    }
}

impl Filter {
    fn matches_key(&self, key: &str) -> bool {
        key.starts_with(&self.prefix)
    }

    /// Whether the filter selects version `v` (delete markers have neither tags nor size).
    fn matches(&self, v: &LifecycleVersion) -> bool {
        if !self.matches_key(&v.key) {
            return false;
        }
        if v.delete_marker {
            return self.tags.is_empty()
                && self.size_greater_than.is_none()
                && self.size_less_than.is_none();
        }
        if !self.tags.is_empty() {
            let tags: BTreeMap<String, String> = url::form_urlencoded::parse(v.tagging.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if !self.tags.iter().all(|(k, val)| tags.get(k) == Some(val)) {
                return false;
            }
        }
        self.size_greater_than.is_none_or(|n| v.size > n)
            && self.size_less_than.is_none_or(|n| v.size < n)
    }
}

impl Rule {
    /// Whether the current version `v` (not a delete marker) is expired at `now`.
    fn expires_current(&self, v: &LifecycleVersion, now: i64, day_ms: i64) -> bool {
        if !self.enabled || !self.filter.matches(v) {
            return false;
        }
        let by_days = self
            .expiration_days
            .is_some_and(|d| now >= due_after(v.last_modified_ms, d, day_ms));
        let by_date = self.expiration_date_ms.is_some_and(|d| now >= d);
        by_days || by_date
    }

    /// Whether a delete marker that is the only version of its key is removed at `now`: at
    /// once under `ExpiredObjectDeleteMarker`, or once it is `Days` old under an expiration
    /// by days (as RGW does).
    fn removes_lone_marker(&self, v: &LifecycleVersion, now: i64, day_ms: i64) -> bool {
        self.enabled
            && self.filter.matches(v)
            && (self.expired_object_delete_marker == Some(true)
                || self
                    .expiration_days
                    .is_some_and(|d| now >= due_after(v.last_modified_ms, d, day_ms)))
    }

    /// Whether noncurrent version `v`, noncurrent since `since` with `newer` noncurrent
    /// versions newer than it, is expired at `now`.
    fn expires_noncurrent(
        &self,
        v: &LifecycleVersion,
        since: i64,
        newer: usize,
        now: i64,
        day_ms: i64,
    ) -> bool {
        let Some(days) = self.noncurrent_days else {
            return false;
        };
        self.enabled
            && self.filter.matches(v)
            && self
                .newer_noncurrent_versions
                .is_none_or(|keep| newer >= keep as usize)
            && now >= due_after(since, days, day_ms)
    }

    /// Whether an upload of `key` started at `initiated` is aborted at `now`.
    fn aborts_upload(&self, key: &str, initiated: i64, now: i64, day_ms: i64) -> bool {
        self.enabled
            && self.filter.matches_key(key)
            && self
                .abort_upload_days
                .is_some_and(|d| now >= due_after(initiated, d, day_ms))
    }
}

/// The `vaultgate_lifecycle_*` metrics.
#[derive(Clone, Debug)]
struct LifecycleMetrics {
    runs: IntCounter,
    actions: IntCounterVec,
    skipped_locked: IntCounter,
    errors: IntCounter,
}

impl LifecycleMetrics {
    fn new(registry: &prometheus::Registry) -> LifecycleMetrics {
        let runs = IntCounter::new(
            "vaultgate_lifecycle_runs_total",
            "Passes of the lifecycle worker over the buckets with lifecycle rules",
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let actions = IntCounterVec::new(
            Opts::new(
                "vaultgate_lifecycle_actions_total",
                "Changes made by lifecycle rules, by kind (expired_current, expired_noncurrent, \
                 removed_delete_marker, aborted_upload)",
            ),
            &["action"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let skipped_locked = IntCounter::new(
            "vaultgate_lifecycle_skipped_locked_total",
            "Versions a lifecycle rule selected but object lock protects (left alone)",
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let errors = IntCounter::new(
            "vaultgate_lifecycle_errors_total",
            "Lifecycle changes that failed (retried on the next pass)",
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        for c in [
            Box::new(runs.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(actions.clone()),
            Box::new(skipped_locked.clone()),
            Box::new(errors.clone()),
        ] {
            // a second worker over the same registry (tests) shares the first one's collectors
            if let Err(e) = registry.register(c) {
                tracing::debug!(error = %e, "lifecycle metric already registered");
            }
        }
        LifecycleMetrics {
            runs,
            actions,
            skipped_locked,
            errors,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleReport {
    pub buckets: usize,
    pub expired_current: usize,
    pub expired_noncurrent: usize,
    pub removed_delete_markers: usize,
    pub aborted_uploads: usize,
    pub skipped_locked: usize,
    pub errors: usize,
}

/// The lifecycle worker of one gateway.
#[derive(Clone, Debug)]
pub struct LifecycleWorker {
    store: Store,
    ledger: Option<audit::Ledger>,
    day_ms: i64,
    metrics: LifecycleMetrics,
}

/// The outcome of one attempted change.
enum Done {
    Changed,
    Unchanged,
    Locked,
}

impl LifecycleWorker {
    /// A worker over `store` recording into `ledger`; a day lasts `day_secs` seconds.
    pub fn new(store: Store, ledger: Option<audit::Ledger>, day_secs: u64) -> LifecycleWorker {
        let metrics = LifecycleMetrics::new(store.metrics.registry());
        LifecycleWorker {
            store,
            ledger,
            day_ms: i64::try_from(day_secs.max(1).saturating_mul(1000)).unwrap_or(DAY_MS),
            metrics,
        }
    }

    /// Runs a pass now, then one every `interval`, until `stop`; each pass only while this
    /// instance holds the `lifecycle` lease.
    pub fn spawn(
        self,
        interval: Duration,
        leases: crate::lease::Leases,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if !leases.try_hold(crate::lease::Job::Lifecycle).await {
                    tokio::select! {
                        _ = tokio::time::sleep(interval) => continue,
                        _ = stop.wait_for(|v| *v) => break,
                    }
                }
                match self.run_once(crate::index::now_ms()).await {
                    Ok(r) if r != LifecycleReport::default() && r.buckets > 0 => {
                        tracing::info!(report = ?r, "lifecycle pass done");
                    }
                    Ok(r) => tracing::debug!(report = ?r, "lifecycle pass done"),
                    Err(e) => {
                        self.metrics.errors.inc();
                        tracing::error!(error = %e, "lifecycle pass failed");
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.wait_for(|v| *v) => break,
                }
            }
        })
    }

    /// One pass over every bucket with lifecycle rules, as of `now` (ms since the epoch).
    pub async fn run_once(&self, now: i64) -> Result<LifecycleReport> {
        self.metrics.runs.inc();
        let mut report = LifecycleReport::default();
        let configs = self
            .store
            .index
            .buckets_with_setting(SETTING_LIFECYCLE)
            .await?;
        for (bucket, json) in configs {
            let lc = match Lifecycle::from_json(&bucket, &json) {
                Ok(lc) => lc,
                Err(e) => {
                    tracing::error!(%bucket, error = %e, "lifecycle configuration unreadable");
                    report.errors += 1;
                    continue;
                }
            };
            let rules: Vec<Rule> = lc.rules.into_iter().filter(|r| r.enabled).collect();
            if rules.is_empty() {
                continue;
            }
            let Some(state) = self.store.index.bucket_state(&bucket).await? else {
                continue; // deleted meanwhile
            };
            report.buckets += 1;
            self.bucket_pass(&bucket, &state, &rules, now, &mut report)
                .await?;
            self.abort_uploads(&bucket, &rules, now, &mut report)
                .await?;
        }
        self.metrics
            .skipped_locked
            .inc_by(report.skipped_locked as u64);
        Ok(report)
    }

    async fn bucket_pass(
        &self,
        bucket: &str,
        state: &BucketState,
        rules: &[Rule],
        now: i64,
        report: &mut LifecycleReport,
    ) -> Result<()> {
        let mut after = String::new();
        loop {
            let page = self
                .store
                .index
                .lifecycle_versions(bucket, &after, PAGE_KEYS)
                .await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            after = last.key.clone();
            let mut start = 0;
            while start < page.len() {
                let end = page[start..]
                    .iter()
                    .position(|v| v.key != page[start].key)
                    .map_or(page.len(), |n| start + n);
                self.key_pass(bucket, state, rules, &page[start..end], now, report)
                    .await;
                start = end;
            }
        }
    }

    /// Applies the rules to the versions of one key (newest first).
    async fn key_pass(
        &self,
        bucket: &str,
        state: &BucketState,
        rules: &[Rule],
        versions: &[LifecycleVersion],
        now: i64,
        report: &mut LifecycleReport,
    ) {
        let Some(latest) = versions.first().filter(|v| v.is_latest) else {
            return;
        };
        if !latest.delete_marker {
            if rules
                .iter()
                .any(|r| r.expires_current(latest, now, self.day_ms))
            {
                let r = self.expire_current(bucket, state, latest, now).await;
                tally(r, report, &self.metrics, "expired_current");
                // the key changed: its noncurrent versions are looked at on the next pass
                return;
            }
        } else if versions.len() == 1
            && rules
                .iter()
                .any(|r| r.removes_lone_marker(latest, now, self.day_ms))
        {
            let r = self.delete_version(bucket, latest, now).await;
            tally(r, report, &self.metrics, "removed_delete_marker");
            return;
        }
        for (i, v) in versions.iter().enumerate().skip(1) {
            let since = versions[i - 1].last_modified_ms;
            let newer = i - 1;
            if rules
                .iter()
                .any(|r| r.expires_noncurrent(v, since, newer, now, self.day_ms))
            {
                let r = self.delete_version(bucket, v, now).await;
                tally(r, report, &self.metrics, "expired_noncurrent");
            }
        }
    }

    /// The audit scope of one change by the worker (None without a ledger).
    fn scope(&self, action: &str, bucket: &str, key: &str) -> Option<RequestCtx> {
        let ledger = self.ledger.as_ref()?;
        let id = audit::new_request_id();
        let a = RequestAudit::new(ledger.clone(), EventKind::S3, id.clone(), None);
        a.set_action(action);
        a.set_principal(Some(LIFECYCLE_PRINCIPAL.to_owned()), None);
        a.set_target(Some(bucket.to_owned()), Some(key.to_owned()));
        Some(RequestCtx::new(id, None, None, Some(a)))
    }

    /// Records that the change whose event was recorded did not happen.
    async fn not_done(ctx: Option<&RequestCtx>, status: u16, code: &str) {
        if let Some(a) = ctx.and_then(RequestCtx::audit)
            && let Err(e) = a.finish(status, Some(code.to_owned()), 0).await
        {
            tracing::warn!(error = %e, "lifecycle: audit event of a change not made failed");
        }
    }

    /// Expires the current version `v` (not a delete marker) of its key.
    async fn expire_current(
        &self,
        bucket: &str,
        state: &BucketState,
        v: &LifecycleVersion,
        now: i64,
    ) -> Result<Done> {
        if state.versioning == Versioning::Unversioned {
            return self.delete_version(bucket, v, now).await;
        }
        let version = match state.versioning {
            Versioning::Enabled => NewVersion {
                version_id: NewVersion::new_id()?,
                lock: ObjectLock::default(),
            },
            _ => {
                // the null delete marker replaces the null version: not while it is locked
                if v.version_id == NULL_VERSION && v.lock.protects(now, false).is_some() {
                    return Ok(Done::Locked);
                }
                NewVersion::null()
            }
        };
        let (rec, guard) = self
            .store
            .seal_delete_marker(bucket, &v.key, &version)
            .await?;
        let ctx = self.scope(ACTION_EXPIRATION, bucket, &v.key);
        if let Err(e) = gw_audit::before_change(ctx.as_ref(), 0, None).await {
            guard.discard().await;
            return Err(e);
        }
        match self
            .store
            .index
            .put_marker_if_latest(&rec, (&v.version_id, v.last_modified_ms))
            .await
        {
            Ok(Some(garbage)) => {
                guard.committed();
                self.store.collect(garbage).await;
                tracing::info!(%bucket, key = %v.key, version = %v.version_id,
                    marker = %rec.version_id, "lifecycle: current version expired");
                Ok(Done::Changed)
            }
            Ok(None) => {
                guard.discard().await;
                Self::not_done(ctx.as_ref(), 409, "Conflict").await;
                Ok(Done::Unchanged)
            }
            Err(IndexError::Locked(_)) => {
                guard.discard().await;
                Self::not_done(ctx.as_ref(), 409, "ObjectLocked").await;
                Ok(Done::Locked)
            }
            Err(e) => {
                guard.discard().await;
                Self::not_done(ctx.as_ref(), 500, "InternalError").await;
                Err(e.into())
            }
        }
    }

    /// Removes version `v` for good (a noncurrent version, a lone delete marker, or the object
    /// of a bucket without versioning), unless object lock protects it.
    async fn delete_version(&self, bucket: &str, v: &LifecycleVersion, now: i64) -> Result<Done> {
        if v.lock.protects(now, false).is_some() {
            return Ok(Done::Locked);
        }
        let ctx = self.scope(ACTION_EXPIRATION, bucket, &v.key);
        gw_audit::before_change(ctx.as_ref(), 0, None).await?;
        match self
            .store
            .index
            .delete_version_if(bucket, &v.key, &v.version_id, v.last_modified_ms)
            .await
        {
            Ok(Some(d)) => {
                self.store.collect(d.garbage).await;
                tracing::info!(%bucket, key = %v.key, version = %v.version_id,
                    delete_marker = d.delete_marker, "lifecycle: version removed");
                Ok(Done::Changed)
            }
            Ok(None) => {
                Self::not_done(ctx.as_ref(), 409, "Conflict").await;
                Ok(Done::Unchanged)
            }
            Err(IndexError::Locked(_)) => {
                Self::not_done(ctx.as_ref(), 409, "ObjectLocked").await;
                Ok(Done::Locked)
            }
            Err(e) => {
                Self::not_done(ctx.as_ref(), 500, "InternalError").await;
                Err(e.into())
            }
        }
    }

    async fn abort_uploads(
        &self,
        bucket: &str,
        rules: &[Rule],
        now: i64,
        report: &mut LifecycleReport,
    ) -> Result<()> {
        if rules.iter().all(|r| r.abort_upload_days.is_none()) {
            return Ok(());
        }
        let mut marker: Option<(String, String)> = None;
        loop {
            let page = self
                .store
                .index
                .list_uploads(
                    bucket,
                    "",
                    marker.as_ref().map(|m| m.0.as_str()),
                    marker.as_ref().map(|m| m.1.as_str()),
                    1000,
                )
                .await?;
            let Some(last) = page.last() else {
                return Ok(());
            };
            marker = Some((last.key.clone(), last.upload_id.clone()));
            for u in &page {
                if !rules
                    .iter()
                    .any(|r| r.aborts_upload(&u.key, u.initiated_ms, now, self.day_ms))
                {
                    continue;
                }
                let ctx = self.scope(ACTION_ABORT_UPLOAD, bucket, &u.key);
                gw_audit::before_change(ctx.as_ref(), 0, None).await?;
                match self.store.abort_upload(bucket, &u.upload_id).await {
                    Ok(()) => {
                        report.aborted_uploads += 1;
                        self.metrics
                            .actions
                            .with_label_values(&["aborted_upload"])
                            .inc();
                        tracing::info!(%bucket, key = %u.key, upload = %u.upload_id,
                            "lifecycle: incomplete multipart upload aborted");
                    }
                    Err(IndexError::NoSuchUpload(_)) => {
                        Self::not_done(ctx.as_ref(), 404, "NoSuchUpload").await;
                    }
                    Err(e) => {
                        Self::not_done(ctx.as_ref(), 500, "InternalError").await;
                        report.errors += 1;
                        self.metrics.errors.inc();
                        tracing::warn!(%bucket, upload = %u.upload_id, error = %e,
                            "lifecycle: abort failed");
                    }
                }
            }
        }
    }
}

fn tally(r: Result<Done>, report: &mut LifecycleReport, metrics: &LifecycleMetrics, label: &str) {
    match r {
        Ok(Done::Changed) => {
            match label {
                "expired_current" => report.expired_current += 1,
                "expired_noncurrent" => report.expired_noncurrent += 1,
                _ => report.removed_delete_markers += 1,
            }
            metrics.actions.with_label_values(&[label]).inc();
        }
        Ok(Done::Unchanged) => {}
        Ok(Done::Locked) => report.skipped_locked += 1,
        Err(e) => {
            report.errors += 1;
            metrics.errors.inc();
            tracing::warn!(error = %e, "lifecycle: change failed (retried next pass)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_days_round_up_to_midnight_utc() {
        // 2026-01-01T10:00Z + 1 day -> due 2026-01-03T00:00Z
        let t = 1_767_261_600_000;
        assert_eq!(due_after(t, 1, DAY_MS), 1_767_398_400_000);
        // a short test day is exact
        assert_eq!(due_after(t, 2, 1000), t + 2000);
    }
}
