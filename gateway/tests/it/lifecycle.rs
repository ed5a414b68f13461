//! Lifecycle with the real aws-sdk-s3 against the in-process gateway: the configuration's
//! validation (S3's codes) and round trip, and the background worker running every second
//! with two-second "days": current versions expire (deleted in an unversioned bucket, hidden
//! by a delete marker in a versioned one), noncurrent versions are removed keeping the newer
//! ones asked for, lone delete markers are cleaned, incomplete multipart uploads are aborted,
//! prefix and tag filters select, locked versions stay, and every change is an audit event of
//! the lifecycle principal and counted in the metrics.

use crate::common;

use std::time::Duration;

use audit::{AuditFilter, AuditQuery};
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectLockMode, Tag, Transition, TransitionStorageClass,
};
use common::*;

/// A gateway whose lifecycle worker runs every second with two-second days.
async fn start_fast() -> TestGateway {
    start_configured(|cfg| {
        cfg.limits.lifecycle_interval_secs = Some(1);
        cfg.limits.lifecycle_day_secs = Some(2);
    })
    .await
}

fn rule(id: &str) -> aws_sdk_s3::types::builders::LifecycleRuleBuilder {
    LifecycleRule::builder()
        .id(id)
        .status(ExpirationStatus::Enabled)
}

fn prefix(p: &str) -> LifecycleRuleFilter {
    LifecycleRuleFilter::builder().prefix(p).build()
}

fn days(n: i32) -> LifecycleExpiration {
    LifecycleExpiration::builder().days(n).build()
}

async fn set_rules(c: &Client, b: &str, rules: Vec<LifecycleRule>) {
    c.put_bucket_lifecycle_configuration()
        .bucket(b)
        .lifecycle_configuration(
            BucketLifecycleConfiguration::builder()
                .set_rules(Some(rules))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("put lifecycle");
}

async fn put(c: &Client, b: &str, k: &str, body: &[u8]) -> Option<String> {
    c.put_object()
        .bucket(b)
        .key(k)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .expect("put")
        .version_id()
        .map(str::to_owned)
}

async fn exists(c: &Client, b: &str, k: &str) -> bool {
    match c.head_object().bucket(b).key(k).send().await {
        Ok(_) => true,
        Err(e) => {
            assert_eq!(status(&e), 404, "head {b}/{k}");
            false
        }
    }
}

/// (key, version id, is delete marker) of every version in the bucket.
async fn versions(c: &Client, b: &str) -> Vec<(String, String, bool)> {
    let out = c.list_object_versions().bucket(b).send().await.unwrap();
    let mut v: Vec<(String, String, bool)> = out
        .versions()
        .iter()
        .map(|v| {
            (
                v.key().unwrap().to_owned(),
                v.version_id().unwrap().to_owned(),
                false,
            )
        })
        .chain(out.delete_markers().iter().map(|m| {
            (
                m.key().unwrap().to_owned(),
                m.version_id().unwrap().to_owned(),
                true,
            )
        }))
        .collect();
    v.sort();
    v
}

/// Polls `cond` every 200 ms for at most `secs` seconds.
async fn eventually<F, Fut>(secs: u64, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if cond().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn metric(g: &TestGateway, line_prefix: &str) -> u64 {
    g.server
        .metrics
        .render()
        .lines()
        .filter(|l| l.starts_with(line_prefix))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()))
        .sum()
}

#[tokio::test]
#[allow(deprecated)] // the rule-level <Prefix> (S3's legacy form) is part of what is tested
async fn configuration_is_validated_and_round_trips() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("cfg").send().await.unwrap();
    let e = c
        .get_bucket_lifecycle_configuration()
        .bucket("cfg")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (status(&e), code(&e).as_str()),
        (404, "NoSuchLifecycleConfiguration")
    );
    let put = |rules: Vec<LifecycleRule>| {
        c.put_bucket_lifecycle_configuration()
            .bucket("cfg")
            .lifecycle_configuration(
                BucketLifecycleConfiguration::builder()
                    .set_rules(Some(rules))
                    .build()
                    .unwrap(),
            )
            .send()
    };
    // refusals, each with S3's code
    let bad: Vec<(Vec<LifecycleRule>, &str)> = vec![
        (
            vec![
                rule(&"i".repeat(256))
                    .filter(prefix(""))
                    .expiration(days(1))
                    .build()
                    .unwrap(),
            ],
            "InvalidArgument",
        ),
        (
            vec![
                rule("same")
                    .filter(prefix("a/"))
                    .expiration(days(1))
                    .build()
                    .unwrap(),
                rule("same")
                    .filter(prefix("b/"))
                    .expiration(days(1))
                    .build()
                    .unwrap(),
            ],
            "InvalidArgument",
        ),
        (
            vec![
                LifecycleRule::builder()
                    .id("st")
                    .status(ExpirationStatus::from("enabled"))
                    .filter(prefix(""))
                    .expiration(days(1))
                    .build()
                    .unwrap(),
            ],
            "MalformedXML",
        ),
        (
            vec![
                rule("zero")
                    .filter(prefix(""))
                    .expiration(days(0))
                    .build()
                    .unwrap(),
            ],
            "InvalidArgument",
        ),
        (
            vec![
                rule("noon")
                    .filter(prefix(""))
                    .expiration(
                        LifecycleExpiration::builder()
                            .date(DateTime::from_secs(1_767_268_800)) // 2026-01-01T12:00Z
                            .build(),
                    )
                    .build()
                    .unwrap(),
            ],
            "InvalidArgument",
        ),
        (
            vec![rule("nothing").filter(prefix("")).build().unwrap()],
            "InvalidArgument",
        ),
        (
            vec![
                rule("both")
                    .prefix("a/")
                    .filter(prefix("b/"))
                    .expiration(days(1))
                    .build()
                    .unwrap(),
            ],
            "MalformedXML",
        ),
        (
            vec![
                rule("nc0")
                    .filter(prefix(""))
                    .noncurrent_version_expiration(
                        NoncurrentVersionExpiration::builder()
                            .noncurrent_days(0)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            ],
            "InvalidArgument",
        ),
        (
            vec![
                rule("tr")
                    .filter(prefix(""))
                    .transitions(
                        Transition::builder()
                            .days(30)
                            .storage_class(TransitionStorageClass::Glacier)
                            .build(),
                    )
                    .build()
                    .unwrap(),
            ],
            "NotImplemented",
        ),
    ];
    for (rules, want) in bad {
        let e = put(rules).await.unwrap_err();
        assert_eq!(code(&e), want);
        assert!(matches!(status(&e), 400 | 501), "{}", status(&e));
    }
    // nothing was stored by the refusals
    assert!(
        c.get_bucket_lifecycle_configuration()
            .bucket("cfg")
            .send()
            .await
            .is_err()
    );
    let rules = vec![
        rule("logs")
            .filter(prefix("logs/"))
            .expiration(days(30))
            .build()
            .unwrap(),
        rule("tmp")
            .filter(
                LifecycleRuleFilter::builder()
                    .and(
                        LifecycleRuleAndOperator::builder()
                            .prefix("tmp/")
                            .tags(Tag::builder().key("kind").value("scratch").build().unwrap())
                            .build(),
                    )
                    .build(),
            )
            .noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder()
                    .noncurrent_days(7)
                    .newer_noncurrent_versions(3)
                    .build(),
            )
            .build()
            .unwrap(),
        rule("uploads")
            .prefix("up/")
            .abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder()
                    .days_after_initiation(2)
                    .build(),
            )
            .build()
            .unwrap(),
        LifecycleRule::builder()
            .id("off")
            .status(ExpirationStatus::Disabled)
            .filter(prefix("x/"))
            .expiration(
                LifecycleExpiration::builder()
                    .date(DateTime::from_secs(1_767_225_600)) // 2026-01-01T00:00Z
                    .build(),
            )
            .build()
            .unwrap(),
    ];
    put(rules.clone()).await.expect("valid configuration");
    let got = c
        .get_bucket_lifecycle_configuration()
        .bucket("cfg")
        .send()
        .await
        .unwrap();
    assert_eq!(got.rules(), rules.as_slice());
    // x-amz-expiration on PUT, GET and HEAD of what a rule will expire (30 real days, at the
    // midnight UTC after), and not on anything else
    let out = c
        .put_object()
        .bucket("cfg")
        .key("logs/x")
        .body(ByteStream::from_static(b"log"))
        .send()
        .await
        .unwrap();
    let h = out
        .expiration()
        .expect("x-amz-expiration on PUT")
        .to_owned();
    assert!(h.ends_with("GMT\", rule-id=\"logs\""), "{h}");
    let due = time::OffsetDateTime::now_utc() + time::Duration::days(31);
    let want = format!(
        "{:02} {} {}",
        due.day(),
        &format!("{:?}", due.month())[..3],
        due.year()
    );
    assert!(
        h.contains(&want) && h.contains("00:00:00 GMT"),
        "{h} (want {want} 00:00:00)"
    );
    let head = c
        .head_object()
        .bucket("cfg")
        .key("logs/x")
        .send()
        .await
        .unwrap();
    assert_eq!(head.expiration(), Some(h.as_str()));
    let get = c
        .get_object()
        .bucket("cfg")
        .key("logs/x")
        .send()
        .await
        .unwrap();
    assert_eq!(get.expiration(), Some(h.as_str()));
    let out = c
        .put_object()
        .bucket("cfg")
        .key("other/x")
        .body(ByteStream::from_static(b"kept"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.expiration(), None);
    let d = c
        .delete_bucket_lifecycle()
        .bucket("cfg")
        .send()
        .await
        .unwrap();
    drop(d);
    assert!(
        c.get_bucket_lifecycle_configuration()
            .bucket("cfg")
            .send()
            .await
            .is_err()
    );
    // a bucket that does not exist
    let e = c
        .get_bucket_lifecycle_configuration()
        .bucket("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    g.stop().await;
}

#[tokio::test]
async fn the_worker_expires_what_the_rules_say_and_nothing_else() {
    let g = start_fast().await;
    let c = &g.client;

    // unversioned: prefix and tag filters, objects deleted for good
    c.create_bucket().bucket("plain").send().await.unwrap();
    put(c, "plain", "logs/a", b"old log a").await;
    put(c, "plain", "logs/b", b"old log b").await;
    put(c, "plain", "keep/c", b"kept").await;
    c.put_object()
        .bucket("plain")
        .key("t/scratch")
        .tagging("kind=scratch")
        .body(ByteStream::from_static(b"tagged"))
        .send()
        .await
        .unwrap();
    c.put_object()
        .bucket("plain")
        .key("t/precious")
        .tagging("kind=precious")
        .body(ByteStream::from_static(b"tagged too"))
        .send()
        .await
        .unwrap();
    let up = c
        .create_multipart_upload()
        .bucket("plain")
        .key("up/big")
        .send()
        .await
        .unwrap();
    let upload_id = up.upload_id().unwrap().to_owned();
    c.upload_part()
        .bucket("plain")
        .key("up/big")
        .upload_id(&upload_id)
        .part_number(1)
        .body(ByteStream::from_static(b"part one"))
        .send()
        .await
        .unwrap();
    set_rules(
        c,
        "plain",
        vec![
            rule("logs")
                .filter(prefix("logs/"))
                .expiration(days(1))
                .build()
                .unwrap(),
            rule("scratch")
                .filter(
                    LifecycleRuleFilter::builder()
                        .tag(Tag::builder().key("kind").value("scratch").build().unwrap())
                        .build(),
                )
                .expiration(days(1))
                .build()
                .unwrap(),
            rule("uploads")
                .filter(prefix("up/"))
                .abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder()
                        .days_after_initiation(1)
                        .build(),
                )
                .build()
                .unwrap(),
        ],
    )
    .await;

    // versioned: a current version expires behind a delete marker; noncurrent versions go,
    // the newest noncurrent one kept; then the lone marker of a key goes
    c.create_bucket().bucket("ver").send().await.unwrap();
    common::enable_versioning(c, "ver").await;
    let v1 = put(c, "ver", "doc", b"one").await.unwrap();
    let v2 = put(c, "ver", "doc", b"two").await.unwrap();
    let v3 = put(c, "ver", "doc", b"three").await.unwrap();
    // a key whose only version is a delete marker
    let gone = put(c, "ver", "gone", b"x").await.unwrap();
    c.delete_object()
        .bucket("ver")
        .key("gone")
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("ver")
        .key("gone")
        .version_id(&gone)
        .send()
        .await
        .unwrap();
    set_rules(
        c,
        "ver",
        vec![
            rule("noncurrent")
                .filter(prefix(""))
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(1)
                        .newer_noncurrent_versions(1)
                        .build(),
                )
                .expiration(
                    LifecycleExpiration::builder()
                        .expired_object_delete_marker(true)
                        .build(),
                )
                .build()
                .unwrap(),
        ],
    )
    .await;

    // object lock: a COMPLIANCE version under an expiring rule is hidden, never removed
    c.create_bucket()
        .bucket("worm")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let until = std::time::SystemTime::now() + Duration::from_secs(3600);
    let locked = c
        .put_object()
        .bucket("worm")
        .key("ledger")
        .object_lock_mode(ObjectLockMode::Compliance)
        .object_lock_retain_until_date(DateTime::from(until))
        .body(ByteStream::from_static(b"must survive"))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    set_rules(
        c,
        "worm",
        vec![
            rule("all")
                .filter(prefix(""))
                .expiration(days(1))
                .noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(1)
                        .build(),
                )
                .build()
                .unwrap(),
        ],
    )
    .await;

    // the unversioned bucket: expired keys disappear, the rest stays byte for byte
    eventually(20, "logs and scratch expire", || async {
        !exists(c, "plain", "logs/a").await
            && !exists(c, "plain", "logs/b").await
            && !exists(c, "plain", "t/scratch").await
    })
    .await;
    let kept = c
        .get_object()
        .bucket("plain")
        .key("keep/c")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(&kept[..], b"kept");
    assert!(exists(c, "plain", "t/precious").await);
    eventually(20, "the upload is aborted", || async {
        c.list_multipart_uploads()
            .bucket("plain")
            .send()
            .await
            .unwrap()
            .uploads()
            .is_empty()
    })
    .await;
    let e = c
        .list_parts()
        .bucket("plain")
        .key("up/big")
        .upload_id(&upload_id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");

    // the versioned bucket: v1 goes (v2 is the one newer noncurrent version kept), the lone
    // marker goes, v2 and v3 stay
    let mut want = vec![
        ("doc".to_owned(), v2.clone(), false),
        ("doc".to_owned(), v3.clone(), false),
    ];
    want.sort();
    eventually(20, "noncurrent v1 and the lone marker go", || async {
        versions(c, "ver").await == want
    })
    .await;
    let e = c
        .get_object()
        .bucket("ver")
        .key("doc")
        .version_id(&v1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    let cur = c
        .get_object()
        .bucket("ver")
        .key("doc")
        .send()
        .await
        .unwrap();
    assert_eq!(cur.version_id(), Some(v3.as_str()));

    // the locked bucket: the current version is hidden by a marker, and the locked version
    // survives many passes although the noncurrent rule selects it
    eventually(20, "the locked version is hidden", || async {
        !exists(c, "worm", "ledger").await
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let body = c
        .get_object()
        .bucket("worm")
        .key("ledger")
        .version_id(&locked)
        .send()
        .await
        .expect("the locked version is still there")
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(&body[..], b"must survive");
    assert!(metric(&g, "vaultgate_lifecycle_skipped_locked_total") > 0);

    // every change is an audit event of the lifecycle principal, and counted
    let page = g
        .server
        .audit
        .ledger
        .query(&AuditQuery {
            filter: AuditFilter {
                action: Some("LifecycleExpiration".into()),
                ..Default::default()
            },
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut keys: Vec<(String, String)> = page
        .events
        .iter()
        .filter(|e| e.status == 200)
        .map(|e| {
            assert_eq!(e.principal.as_deref(), Some("system:lifecycle"));
            (e.bucket.clone().unwrap(), e.key.clone().unwrap())
        })
        .collect();
    keys.sort();
    keys.dedup();
    for want in [
        ("plain", "logs/a"),
        ("plain", "logs/b"),
        ("plain", "t/scratch"),
        ("ver", "doc"),
        ("ver", "gone"),
        ("worm", "ledger"),
    ] {
        assert!(
            keys.contains(&(want.0.to_owned(), want.1.to_owned())),
            "no expiry event for {want:?}: {keys:?}"
        );
    }
    assert!(!keys.iter().any(|(_, k)| k == "keep/c" || k == "t/precious"));
    let aborts = g
        .server
        .audit
        .ledger
        .query(&AuditQuery {
            filter: AuditFilter {
                action: Some("LifecycleAbortMultipartUpload".into()),
                ..Default::default()
            },
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(aborts.events.len(), 1);
    assert_eq!(aborts.events[0].key.as_deref(), Some("up/big"));
    assert!(
        metric(
            &g,
            "vaultgate_lifecycle_actions_total{action=\"expired_current\"}"
        ) >= 4
    );
    assert!(
        metric(
            &g,
            "vaultgate_lifecycle_actions_total{action=\"expired_noncurrent\"}"
        ) >= 1
    );
    assert!(
        metric(
            &g,
            "vaultgate_lifecycle_actions_total{action=\"removed_delete_marker\"}"
        ) >= 1
    );
    assert_eq!(
        metric(
            &g,
            "vaultgate_lifecycle_actions_total{action=\"aborted_upload\"}"
        ),
        1
    );
    assert!(metric(&g, "vaultgate_lifecycle_runs_total") >= 2);
    // the ledger still verifies
    g.stop().await;
}
