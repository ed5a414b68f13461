//! Object lock with the real aws-sdk-s3 against the in-process gateway: buckets created with
//! object lock, default retention, per-version retention (GOVERNANCE / COMPLIANCE) and legal
//! hold; a compromised SuperAdmin key cannot destroy a COMPLIANCE-locked version by any S3 route
//! (delete, batch delete, bypass header, overwrite, copy over, retention shortening or removal,
//! suspending versioning, deleting the bucket); governance bypass needs its right and, under a
//! quorum rule, an approval; the rights of each new operation and tenant isolation.

use crate::common;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, DefaultRetention, Delete, ObjectIdentifier, ObjectLockConfiguration,
    ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus, ObjectLockMode,
    ObjectLockRetention, ObjectLockRetentionMode, ObjectLockRule, VersioningConfiguration,
};
use common::*;
use policy::Role;

fn in_secs(s: i64) -> DateTime {
    DateTime::from_secs(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
            + s,
    )
}

async fn locked_bucket(c: &Client, b: &str) {
    c.create_bucket()
        .bucket(b)
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
}

async fn put(c: &Client, b: &str, k: &str, body: &'static [u8]) -> String {
    c.put_object()
        .bucket(b)
        .key(k)
        .body(ByteStream::from_static(body))
        .send()
        .await
        .expect("put")
        .version_id()
        .expect("version id")
        .to_owned()
}

async fn get(c: &Client, b: &str, k: &str, v: &str) -> Vec<u8> {
    c.get_object()
        .bucket(b)
        .key(k)
        .version_id(v)
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes()
        .to_vec()
}

fn retention(mode: ObjectLockRetentionMode, secs: i64) -> ObjectLockRetention {
    ObjectLockRetention::builder()
        .mode(mode)
        .retain_until_date(in_secs(secs))
        .build()
}

#[tokio::test]
async fn a_superadmin_cannot_destroy_a_compliance_locked_version() {
    let g = start().await;
    let c = &g.client; // the bootstrap SuperAdmin: the compromised key
    locked_bucket(c, "worm").await;
    let v = c
        .get_bucket_versioning()
        .bucket("worm")
        .send()
        .await
        .unwrap();
    assert_eq!(v.status(), Some(&BucketVersioningStatus::Enabled));
    c.put_object_lock_configuration()
        .bucket("worm")
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .rule(
                    ObjectLockRule::builder()
                        .default_retention(
                            DefaultRetention::builder()
                                .mode(ObjectLockRetentionMode::Compliance)
                                .days(1)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let cfg = c
        .get_object_lock_configuration()
        .bucket("worm")
        .send()
        .await
        .unwrap();
    let rule = cfg.object_lock_configuration().unwrap().rule().unwrap();
    assert_eq!(rule.default_retention().unwrap().days(), Some(1));

    let v1 = put(c, "worm", "backup", b"precious").await;
    let r = c
        .get_object_retention()
        .bucket("worm")
        .key("backup")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    let r = r.retention().unwrap();
    assert_eq!(r.mode(), Some(&ObjectLockRetentionMode::Compliance));
    let until = r.retain_until_date().unwrap().secs();
    let day_from_now = in_secs(86_400).secs();
    assert!(
        (day_from_now - until).abs() < 60,
        "default retention of one day"
    );
    let head = c
        .head_object()
        .bucket("worm")
        .key("backup")
        .send()
        .await
        .unwrap();
    assert_eq!(head.object_lock_mode(), Some(&ObjectLockMode::Compliance));

    // delete the version, with and without the bypass header
    for bypass in [false, true] {
        let e = c
            .delete_object()
            .bucket("worm")
            .key("backup")
            .version_id(&v1)
            .bypass_governance_retention(bypass)
            .send()
            .await
            .unwrap_err();
        assert_eq!((status(&e), code(&e).as_str()), (403, "AccessDenied"));
    }
    // batch delete naming the version
    let out = c
        .delete_objects()
        .bucket("worm")
        .bypass_governance_retention(true)
        .delete(
            Delete::builder()
                .objects(
                    ObjectIdentifier::builder()
                        .key("backup")
                        .version_id(&v1)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.deleted().is_empty());
    assert_eq!(out.errors()[0].code(), Some("AccessDenied"));
    // shorten, remove, or weaken the retention
    for r in [
        retention(ObjectLockRetentionMode::Compliance, 60),
        retention(ObjectLockRetentionMode::Governance, 2 * 86_400),
    ] {
        for bypass in [false, true] {
            let e = c
                .put_object_retention()
                .bucket("worm")
                .key("backup")
                .version_id(&v1)
                .retention(r.clone())
                .bypass_governance_retention(bypass)
                .send()
                .await
                .unwrap_err();
            assert_eq!((status(&e), code(&e).as_str()), (403, "AccessDenied"));
        }
    }
    let e = c
        .put_object_retention()
        .bucket("worm")
        .key("backup")
        .version_id(&v1)
        .retention(ObjectLockRetention::builder().build())
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    // extending is allowed
    c.put_object_retention()
        .bucket("worm")
        .key("backup")
        .version_id(&v1)
        .retention(retention(ObjectLockRetentionMode::Compliance, 3 * 86_400))
        .send()
        .await
        .unwrap();
    // overwrite and copy over: new versions, the locked one untouched
    put(c, "worm", "backup", b"ransomware").await;
    c.copy_object()
        .bucket("worm")
        .key("backup")
        .copy_source("worm/backup")
        .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
        .send()
        .await
        .unwrap();
    // a delete without a version only hides it behind a marker
    c.delete_object()
        .bucket("worm")
        .key("backup")
        .send()
        .await
        .unwrap();
    // versioning cannot be suspended, the bucket cannot be deleted
    let e = c
        .put_bucket_versioning()
        .bucket("worm")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::Suspended)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (409, "InvalidBucketState"));
    let e = c.delete_bucket().bucket("worm").send().await.unwrap_err();
    assert_eq!(code(&e), "BucketNotEmpty");
    assert_eq!(get(c, "worm", "backup", &v1).await, b"precious");
    g.stop().await;
}

#[tokio::test]
async fn governance_bypass_needs_its_right_and_the_quorum() {
    let g = start().await;
    let c = &g.client;
    locked_bucket(c, "gov-bucket").await;
    let manager = client_as(&g, "mgr", "default", Role::Manager).await;
    let approver = client_as(&g, "second", "default", Role::SuperAdmin).await;
    drop(approver);
    let v1 = c
        .put_object()
        .bucket("gov-bucket")
        .key("k")
        .body(ByteStream::from_static(b"governed"))
        .object_lock_mode(ObjectLockMode::Governance)
        .object_lock_retain_until_date(in_secs(3600))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    // without the header: refused, for everyone
    let e = c
        .delete_object()
        .bucket("gov-bucket")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    // a manager may write versions but not bypass (nor delete versions)
    let e = manager
        .delete_object()
        .bucket("gov-bucket")
        .key("k")
        .version_id(&v1)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = manager
        .put_object_retention()
        .bucket("gov-bucket")
        .key("k")
        .version_id(&v1)
        .retention(retention(ObjectLockRetentionMode::Governance, 60))
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    // a quorum rule on the bypass: the SuperAdmin's bypass waits for an approval
    let store = g.server.authz.store();
    let admin = store.identity("admin").await.unwrap().unwrap();
    store
        .set_quorum_rule(
            &admin,
            &policy::QuorumRule {
                name: "bypass-guard".into(),
                action: "s3:BypassGovernanceRetention".into(),
                bucket_pattern: "gov-*".into(),
                approvals: 1,
                approver_roles: vec!["superadmin".into()],
                ttl_secs: 600,
            },
            policy::now_ms(),
        )
        .await
        .unwrap();
    let e = c
        .delete_object()
        .bucket("gov-bucket")
        .key("k")
        .version_id(&v1)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let text = format!("{e:?}");
    let at = text.find("apr-").expect("names the approval request");
    let approval: String = text[at..]
        .chars()
        .take_while(|ch| ch.is_ascii_alphanumeric() || *ch == '-')
        .collect();
    assert_eq!(get(c, "gov-bucket", "k", &v1).await, b"governed");
    let second = store.identity("second").await.unwrap().unwrap();
    store
        .approve(&approval, &second, policy::now_ms())
        .await
        .unwrap();
    let d = c
        .delete_object()
        .bucket("gov-bucket")
        .key("k")
        .version_id(&v1)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap();
    assert_eq!(d.version_id(), Some(v1.as_str()));
    let e = c
        .get_object()
        .bucket("gov-bucket")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchVersion");
    g.stop().await;
}

#[tokio::test]
async fn legal_hold_blocks_deletes_until_released() {
    let g = start().await;
    let c = &g.client;
    locked_bucket(c, "hold-bucket").await;
    let v1 = put(c, "hold-bucket", "k", b"evidence").await;
    c.put_object_legal_hold()
        .bucket("hold-bucket")
        .key("k")
        .version_id(&v1)
        .legal_hold(
            ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::On)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let h = c
        .get_object_legal_hold()
        .bucket("hold-bucket")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(
        h.legal_hold().unwrap().status(),
        Some(&ObjectLockLegalHoldStatus::On)
    );
    let e = c
        .delete_object()
        .bucket("hold-bucket")
        .key("k")
        .version_id(&v1)
        .bypass_governance_retention(true)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    c.put_object_legal_hold()
        .bucket("hold-bucket")
        .key("k")
        .version_id(&v1)
        .legal_hold(
            ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::Off)
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("hold-bucket")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    c.delete_bucket()
        .bucket("hold-bucket")
        .send()
        .await
        .unwrap();
    g.stop().await;
}

#[tokio::test]
async fn lock_requests_are_checked_and_need_their_rights() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("plain").send().await.unwrap();
    let e = c
        .get_object_lock_configuration()
        .bucket("plain")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ObjectLockConfigurationNotFoundError");
    let e = c
        .put_object()
        .bucket("plain")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_secs(60))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    // lock configuration needs versioning Enabled first
    let e = c
        .put_object_lock_configuration()
        .bucket("plain")
        .object_lock_configuration(
            ObjectLockConfiguration::builder()
                .object_lock_enabled(ObjectLockEnabled::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidBucketState");

    locked_bucket(c, "locked").await;
    // a date in the past, a mode without a date
    let e = c
        .put_object()
        .bucket("locked")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_secs(-60))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidArgument"));
    let e = c
        .put_object()
        .bucket("locked")
        .key("k")
        .body(ByteStream::from_static(b"x"))
        .object_lock_mode(ObjectLockMode::Compliance)
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidArgument"));
    let v1 = put(c, "locked", "k", b"data").await;
    let e = c
        .get_object_retention()
        .bucket("locked")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchObjectLockConfiguration");

    let viewer = client_as(&g, "lv", "default", Role::Viewer).await;
    let manager = client_as(&g, "lm", "default", Role::Manager).await;
    let other = client_as(&g, "lo", "elsewhere", Role::SuperAdmin).await;
    viewer
        .get_object_lock_configuration()
        .bucket("locked")
        .send()
        .await
        .unwrap();
    viewer
        .get_object_legal_hold()
        .bucket("locked")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    for (who, ok_retention) in [(&viewer, false), (&other, false), (&manager, true)] {
        let r = who
            .put_object_retention()
            .bucket("locked")
            .key("k")
            .version_id(&v1)
            .retention(retention(ObjectLockRetentionMode::Governance, 60))
            .send()
            .await;
        match (r, ok_retention) {
            (Ok(_), true) => {}
            (Err(e), false) => assert_eq!(code(&e), "AccessDenied"),
            (r, _) => panic!("unexpected {r:?}"),
        }
        let e = who
            .put_object_lock_configuration()
            .bucket("locked")
            .object_lock_configuration(
                ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&e), "AccessDenied");
    }
    let e = other
        .get_object_retention()
        .bucket("locked")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = viewer
        .put_object_legal_hold()
        .bucket("locked")
        .key("k")
        .version_id(&v1)
        .legal_hold(
            ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::On)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    g.stop().await;
}

/// Every event of the ledger, oldest first.
async fn ledger_events(g: &TestGateway) -> Vec<audit::StoredEvent> {
    let mut ev = audit_events(g).await;
    ev.reverse();
    ev
}

#[tokio::test]
async fn each_versioning_and_lock_request_is_one_audit_event() {
    let g = start().await;
    let c = &g.client;
    let before = ledger_events(&g).await.len();
    locked_bucket(c, "audited").await;
    let v1 = put(c, "audited", "k", b"audited").await;
    c.get_bucket_versioning()
        .bucket("audited")
        .send()
        .await
        .unwrap();
    c.list_object_versions()
        .bucket("audited")
        .send()
        .await
        .unwrap();
    c.put_object_retention()
        .bucket("audited")
        .key("k")
        .version_id(&v1)
        .retention(retention(ObjectLockRetentionMode::Compliance, 3600))
        .send()
        .await
        .unwrap();
    // refused: shortening a COMPLIANCE retention, deleting the locked version
    c.put_object_retention()
        .bucket("audited")
        .key("k")
        .version_id(&v1)
        .retention(retention(ObjectLockRetentionMode::Compliance, 60))
        .send()
        .await
        .unwrap_err();
    c.delete_object()
        .bucket("audited")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap_err();
    c.put_object_legal_hold()
        .bucket("audited")
        .key("k")
        .version_id(&v1)
        .legal_hold(
            ObjectLockLegalHold::builder()
                .status(ObjectLockLegalHoldStatus::On)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ev = ledger_events(&g).await;
    let ours: Vec<(&str, u16)> = ev[before..]
        .iter()
        .map(|e| (e.action.as_str(), e.status))
        .collect();
    assert_eq!(
        ours,
        vec![
            ("CreateBucket", 200),
            ("PutObject", 200),
            ("GetBucketVersioning", 200),
            ("ListBucketVersions", 200),
            ("PutObjectRetention", 200),
            ("PutObjectRetention", 403),
            ("DeleteObject", 403),
            ("PutObjectLegalHold", 200),
        ],
        "one event per request, in order"
    );
    let denied = &ev[before + 5];
    assert_eq!(denied.outcome, audit::Outcome::Denied, "{denied:?}");
    assert_eq!(denied.key.as_deref(), Some("k"));
    g.stop().await;
}

/// The lifecycle route of a compromised SuperAdmin key: a rule expiring everything after one
/// (one-second) day, current and noncurrent, over a COMPLIANCE-locked version. The worker
/// hides the version behind a delete marker (as S3 does) but never removes it: after many
/// passes it is still there, byte for byte, and still locked.
#[tokio::test]
async fn a_lifecycle_rule_cannot_destroy_a_compliance_locked_version() {
    use aws_sdk_s3::types::{
        BucketLifecycleConfiguration, ExpirationStatus, LifecycleExpiration, LifecycleRule,
        LifecycleRuleFilter, NoncurrentVersionExpiration,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.limits.lifecycle_interval_secs = Some(1);
    cfg.limits.lifecycle_day_secs = Some(1);
    let server = gateway::server::start(cfg, admin_api).await.unwrap();
    let c = &client_for(&format!("http://{}", server.s3_addr), AK, SK);
    locked_bucket(c, "worm-lc").await;
    let v = c
        .put_object()
        .bucket("worm-lc")
        .key("evidence")
        .body(ByteStream::from_static(b"keep me"))
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(in_secs(3600))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    c.put_bucket_lifecycle_configuration()
        .bucket("worm-lc")
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .rules(
                    LifecycleRule::builder()
                        .id("destroy-all")
                        .status(ExpirationStatus::Enabled)
                        .filter(LifecycleRuleFilter::builder().prefix("").build())
                        .expiration(LifecycleExpiration::builder().days(1).build())
                        .noncurrent_version_expiration(
                            NoncurrentVersionExpiration::builder()
                                .noncurrent_days(1)
                                .build(),
                        )
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("a SuperAdmin may set rules");
    // a few passes after the version is due, current and noncurrent
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    assert_eq!(get(c, "worm-lc", "evidence", &v).await, b"keep me");
    let r = c
        .get_object_retention()
        .bucket("worm-lc")
        .key("evidence")
        .version_id(&v)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.retention().unwrap().mode(),
        Some(&ObjectLockRetentionMode::Compliance)
    );
    // the rule did act (the version is hidden behind a delete marker), it just destroyed nothing
    let e = c
        .get_object()
        .bucket("worm-lc")
        .key("evidence")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    server.shutdown().await;
}
