//! Tagging with the real aws-sdk-s3 against the in-process gateway: `x-amz-tagging` on PUT,
//! CopyObject (directive COPY / REPLACE) and multipart uploads, Put/Get/DeleteObjectTagging by
//! version, `x-amz-tagging-count` on GET and HEAD, bucket tags, S3's limits and codes, the audit
//! event of each change, rights (a Viewer cannot tag, another tenant cannot read tags), and
//! `vaultgate reindex` restoring tags as last changed.

use crate::common;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Tag, Tagging,
    TaggingDirective, VersioningConfiguration,
};
use common::*;
use policy::Role;

fn tags(pairs: &[(&str, &str)]) -> Tagging {
    Tagging::builder()
        .set_tag_set(Some(
            pairs
                .iter()
                .map(|(k, v)| Tag::builder().key(*k).value(*v).build().unwrap())
                .collect(),
        ))
        .build()
        .unwrap()
}

async fn get_tags(c: &Client, b: &str, k: &str, v: Option<&str>) -> Vec<(String, String)> {
    c.get_object_tagging()
        .bucket(b)
        .key(k)
        .set_version_id(v.map(str::to_owned))
        .send()
        .await
        .expect("get tagging")
        .tag_set()
        .iter()
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// `x-amz-tagging-count` of a HEAD (None when absent).
/// (through a presigned HEAD: the SDK's HeadObject output does not model the header)
async fn head_count(g: &TestGateway, b: &str, k: &str) -> Option<String> {
    let req = g
        .client
        .head_object()
        .bucket(b)
        .key(k)
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(
                60,
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    let uri: http::Uri = req.uri().parse().unwrap();
    let (status, head, _) = raw(
        g.server.s3_addr,
        "HEAD",
        uri.path_and_query().unwrap().as_str(),
        &[],
        b"",
    )
    .await;
    assert_eq!(status, 200, "{head}");
    head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("x-amz-tagging-count")
            .then(|| value.trim().to_owned())
    })
}

#[tokio::test]
async fn object_tags_on_put_copy_multipart_and_by_version() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("tags-b").send().await.unwrap();
    // PUT with the header: stored sorted, empty values kept, encoded characters decoded
    c.put_object()
        .bucket("tags-b")
        .key("a")
        .tagging("foo=bar&bar&sp%20ace=a%26b")
        .body(ByteStream::from_static(b"alpha"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        get_tags(c, "tags-b", "a", None).await,
        pairs(&[("bar", ""), ("foo", "bar"), ("sp ace", "a&b")])
    );
    let got = c
        .get_object()
        .bucket("tags-b")
        .key("a")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count(), Some(3));
    assert_eq!(head_count(&g, "tags-b", "a").await.as_deref(), Some("3"));
    // replace, then delete
    c.put_object_tagging()
        .bucket("tags-b")
        .key("a")
        .tagging(tags(&[("k", "v")]))
        .send()
        .await
        .unwrap();
    assert_eq!(get_tags(c, "tags-b", "a", None).await, pairs(&[("k", "v")]));
    c.delete_object_tagging()
        .bucket("tags-b")
        .key("a")
        .send()
        .await
        .unwrap();
    assert!(get_tags(c, "tags-b", "a", None).await.is_empty());
    assert_eq!(head_count(&g, "tags-b", "a").await, None);
    let got = c
        .get_object()
        .bucket("tags-b")
        .key("a")
        .send()
        .await
        .unwrap();
    assert_eq!(got.tag_count(), None);
    // the body is untouched by tag changes
    let body = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(&body[..], b"alpha");

    // copy: COPY (the default) keeps the source's tags, REPLACE takes the request's
    c.put_object_tagging()
        .bucket("tags-b")
        .key("a")
        .tagging(tags(&[("src", "1")]))
        .send()
        .await
        .unwrap();
    c.copy_object()
        .bucket("tags-b")
        .key("copied")
        .copy_source("tags-b/a")
        .send()
        .await
        .unwrap();
    assert_eq!(
        get_tags(c, "tags-b", "copied", None).await,
        pairs(&[("src", "1")])
    );
    c.copy_object()
        .bucket("tags-b")
        .key("replaced")
        .copy_source("tags-b/a")
        .tagging_directive(TaggingDirective::Replace)
        .tagging("dst=2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        get_tags(c, "tags-b", "replaced", None).await,
        pairs(&[("dst", "2")])
    );
    c.copy_object()
        .bucket("tags-b")
        .key("untagged")
        .copy_source("tags-b/a")
        .tagging_directive(TaggingDirective::Replace)
        .send()
        .await
        .unwrap();
    assert!(get_tags(c, "tags-b", "untagged", None).await.is_empty());

    // multipart: the tags of CreateMultipartUpload land on the completed object
    let up = c
        .create_multipart_upload()
        .bucket("tags-b")
        .key("mp")
        .tagging("part=yes")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let p = c
        .upload_part()
        .bucket("tags-b")
        .key("mp")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"only part"))
        .send()
        .await
        .unwrap();
    c.complete_multipart_upload()
        .bucket("tags-b")
        .key("mp")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(p.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        get_tags(c, "tags-b", "mp", None).await,
        pairs(&[("part", "yes")])
    );

    // by version: tagging an old version leaves the current one alone
    c.create_bucket().bucket("tags-v").send().await.unwrap();
    common::enable_versioning(c, "tags-v").await;
    let v1 = c
        .put_object()
        .bucket("tags-v")
        .key("k")
        .tagging("gen=1")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    let v2 = c
        .put_object()
        .bucket("tags-v")
        .key("k")
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_owned();
    let out = c
        .put_object_tagging()
        .bucket("tags-v")
        .key("k")
        .version_id(&v1)
        .tagging(tags(&[("gen", "old")]))
        .send()
        .await
        .unwrap();
    assert_eq!(out.version_id(), Some(v1.as_str()));
    assert_eq!(
        get_tags(c, "tags-v", "k", Some(&v1)).await,
        pairs(&[("gen", "old")])
    );
    assert!(get_tags(c, "tags-v", "k", Some(&v2)).await.is_empty());
    assert!(get_tags(c, "tags-v", "k", None).await.is_empty());
    // a delete marker has no tags: 404 / 405 as S3, never a 500
    c.delete_object()
        .bucket("tags-v")
        .key("k")
        .send()
        .await
        .unwrap();
    let e = c
        .get_object_tagging()
        .bucket("tags-v")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert!(matches!(status(&e), 404 | 405), "{}", status(&e));
    let e = c
        .put_object_tagging()
        .bucket("tags-b")
        .key("missing")
        .tagging(tags(&[("a", "b")]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchKey");

    // every change is one audit event with its own action
    for (action, n) in [
        ("PutObjectTagging", 3),
        ("DeleteObjectTagging", 1),
        ("GetObjectTagging", 1),
    ] {
        let page = g
            .server
            .audit
            .ledger
            .query(&audit::AuditQuery {
                filter: audit::AuditFilter {
                    action: Some(action.into()),
                    ..Default::default()
                },
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert!(page.events.len() >= n, "{action}: {}", page.events.len());
    }
    g.stop().await;
}

#[tokio::test]
async fn tag_limits_answer_s3_codes_and_change_nothing() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("lim").send().await.unwrap();
    c.put_object()
        .bucket("lim")
        .key("k")
        .tagging("keep=me")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let ten: Vec<(String, String)> = (0..10).map(|i| (format!("k{i}"), "v".into())).collect();
    let eleven: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
    let as_tags = |p: &[(String, String)]| {
        Tagging::builder()
            .set_tag_set(Some(
                p.iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build().unwrap())
                    .collect(),
            ))
            .build()
            .unwrap()
    };
    let long_key = "k".repeat(129);
    let long_value = "v".repeat(257);
    let bad: Vec<Tagging> = vec![
        as_tags(&eleven),
        tags(&[("dup", "1"), ("dup", "2")]),
        tags(&[(long_key.as_str(), "v")]),
        tags(&[("k", long_value.as_str())]),
        tags(&[("aws:reserved", "v")]),
        tags(&[("", "v")]),
    ];
    for t in bad {
        let e = c
            .put_object_tagging()
            .bucket("lim")
            .key("k")
            .tagging(t)
            .send()
            .await
            .unwrap_err();
        assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidTag"));
    }
    assert_eq!(
        get_tags(c, "lim", "k", None).await,
        pairs(&[("keep", "me")])
    );
    // at the limits it works
    let key128 = "k".repeat(128);
    let value256 = "v".repeat(256);
    c.put_object_tagging()
        .bucket("lim")
        .key("k")
        .tagging(tags(&[(key128.as_str(), value256.as_str())]))
        .send()
        .await
        .unwrap();
    c.put_object_tagging()
        .bucket("lim")
        .key("k")
        .tagging(as_tags(&ten))
        .send()
        .await
        .unwrap();
    assert_eq!(get_tags(c, "lim", "k", None).await.len(), 10);
    // a PUT with a bad header stores nothing
    let header: Vec<String> = eleven.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let e = c
        .put_object()
        .bucket("lim")
        .key("new")
        .tagging(header.join("&"))
        .body(ByteStream::from_static(b"y"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidTag");
    let e = c
        .head_object()
        .bucket("lim")
        .key("new")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);

    // bucket tags: 404 NoSuchTagSet, then put / get / delete, 50 at most
    let e = c
        .get_bucket_tagging()
        .bucket("lim")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchTagSet"));
    let fifty: Vec<(String, String)> = (0..50).map(|i| (format!("b{i:02}"), "v".into())).collect();
    c.put_bucket_tagging()
        .bucket("lim")
        .tagging(as_tags(&fifty))
        .send()
        .await
        .unwrap();
    let got = c.get_bucket_tagging().bucket("lim").send().await.unwrap();
    assert_eq!(got.tag_set().len(), 50);
    assert_eq!(got.tag_set()[0].key(), "b00");
    let fifty_one: Vec<(String, String)> =
        (0..51).map(|i| (format!("b{i:02}"), "v".into())).collect();
    let e = c
        .put_bucket_tagging()
        .bucket("lim")
        .tagging(as_tags(&fifty_one))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidTag");
    assert_eq!(
        c.get_bucket_tagging()
            .bucket("lim")
            .send()
            .await
            .unwrap()
            .tag_set()
            .len(),
        50
    );
    c.delete_bucket_tagging()
        .bucket("lim")
        .send()
        .await
        .unwrap();
    let e = c
        .get_bucket_tagging()
        .bucket("lim")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchTagSet");
    let e = c
        .get_bucket_tagging()
        .bucket("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    // deleting a bucket queues its settings' sealed records as garbage (none left behind)
    c.create_bucket()
        .bucket("short-lived")
        .send()
        .await
        .unwrap();
    c.put_bucket_tagging()
        .bucket("short-lived")
        .tagging(tags(&[("a", "b")]))
        .send()
        .await
        .unwrap();
    let index = g.server.store.index();
    assert!(index.gc_pending(100).await.unwrap().is_empty());
    c.delete_bucket()
        .bucket("short-lived")
        .send()
        .await
        .unwrap();
    assert_eq!(index.gc_pending(100).await.unwrap().len(), 1);
    g.stop().await;
}

#[tokio::test]
async fn rights_and_tenants_are_enforced() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("own").send().await.unwrap();
    c.put_object()
        .bucket("own")
        .key("k")
        .tagging("secret=plan")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap();
    let viewer = client_as(&g, "viewer", "default", Role::Viewer).await;
    let manager = client_as(&g, "manager", "default", Role::Manager).await;
    let other = client_as(&g, "intruder", "other", Role::SuperAdmin).await;
    // a Viewer reads tags but cannot change them
    assert_eq!(
        get_tags(&viewer, "own", "k", None).await,
        pairs(&[("secret", "plan")])
    );
    let e = viewer
        .put_object_tagging()
        .bucket("own")
        .key("k")
        .tagging(tags(&[("x", "y")]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = viewer
        .delete_object_tagging()
        .bucket("own")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    // a Manager tags objects but does not administer the bucket's tags
    manager
        .put_object_tagging()
        .bucket("own")
        .key("k")
        .tagging(tags(&[("by", "manager")]))
        .send()
        .await
        .unwrap();
    let e = manager
        .put_bucket_tagging()
        .bucket("own")
        .tagging(tags(&[("x", "y")]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    // another tenant's SuperAdmin sees nothing of it
    let e = other
        .get_object_tagging()
        .bucket("own")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = other
        .put_bucket_tagging()
        .bucket("own")
        .tagging(tags(&[("x", "y")]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    assert_eq!(
        get_tags(c, "own", "k", None).await,
        pairs(&[("by", "manager")])
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_restores_tags_as_last_changed() {
    let gw = start().await;
    let c = &gw.client;
    c.create_bucket().bucket("reidx").send().await.unwrap();
    for (k, t) in [("written", "w=1"), ("changed", "c=1"), ("cleared", "x=1")] {
        c.put_object()
            .bucket("reidx")
            .key(k)
            .tagging(t)
            .body(ByteStream::from_static(b"body"))
            .send()
            .await
            .unwrap();
    }
    c.put_object_tagging()
        .bucket("reidx")
        .key("changed")
        .tagging(tags(&[("c", "2")]))
        .send()
        .await
        .unwrap();
    c.put_object_tagging()
        .bucket("reidx")
        .key("changed")
        .tagging(tags(&[("c", "3"), ("d", "4")]))
        .send()
        .await
        .unwrap();
    c.delete_object_tagging()
        .bucket("reidx")
        .key("cleared")
        .send()
        .await
        .unwrap();
    // bucket settings: tags (set twice: the second counts), and on another bucket a
    // Suspended versioning state and lifecycle rules
    c.put_bucket_tagging()
        .bucket("reidx")
        .tagging(tags(&[("team", "old")]))
        .send()
        .await
        .unwrap();
    c.put_bucket_tagging()
        .bucket("reidx")
        .tagging(tags(&[("team", "new")]))
        .send()
        .await
        .unwrap();
    c.create_bucket().bucket("susp").send().await.unwrap();
    for s in [
        BucketVersioningStatus::Enabled,
        BucketVersioningStatus::Suspended,
    ] {
        c.put_bucket_versioning()
            .bucket("susp")
            .versioning_configuration(VersioningConfiguration::builder().status(s).build())
            .send()
            .await
            .unwrap();
    }
    c.put_object()
        .bucket("susp")
        .key("n")
        .body(ByteStream::from_static(b"null version"))
        .send()
        .await
        .unwrap();
    let lc = aws_sdk_s3::types::BucketLifecycleConfiguration::builder()
        .rules(
            aws_sdk_s3::types::LifecycleRule::builder()
                .id("r")
                .status(aws_sdk_s3::types::ExpirationStatus::Enabled)
                .filter(
                    aws_sdk_s3::types::LifecycleRuleFilter::builder()
                        .prefix("tmp/")
                        .build(),
                )
                .expiration(
                    aws_sdk_s3::types::LifecycleExpiration::builder()
                        .days(30)
                        .build(),
                )
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    c.put_bucket_lifecycle_configuration()
        .bucket("susp")
        .lifecycle_configuration(lc.clone())
        .send()
        .await
        .unwrap();
    // the replaced records are collected: one live record per changed version and setting
    let cfg = config(gw.dir.path());
    let TestGateway { server, dir, .. } = gw;
    server.shutdown().await;
    let report = common::reindex_from_backend(&cfg).await;
    assert_eq!(report.objects, 4, "{report:?}");
    assert_eq!(
        report.scanned, 9,
        "4 objects, 2 tag records, 3 bucket records: {report:?}"
    );
    assert_eq!(report.bucket_settings, 3, "{report:?}");
    assert!(
        report.superseded.is_empty() && report.unreadable.is_empty(),
        "{report:?}"
    );
    let server = gateway::server::start(cfg.clone(), admin_api)
        .await
        .expect("restart");
    let client = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    assert_eq!(
        get_tags(&client, "reidx", "written", None).await,
        pairs(&[("w", "1")])
    );
    assert_eq!(
        get_tags(&client, "reidx", "changed", None).await,
        pairs(&[("c", "3"), ("d", "4")])
    );
    assert!(get_tags(&client, "reidx", "cleared", None).await.is_empty());
    let bt = client
        .get_bucket_tagging()
        .bucket("reidx")
        .send()
        .await
        .unwrap();
    assert_eq!(bt.tag_set().len(), 1);
    assert_eq!(bt.tag_set()[0].value(), "new");
    let v = client
        .get_bucket_versioning()
        .bucket("susp")
        .send()
        .await
        .unwrap();
    assert_eq!(v.status(), Some(&BucketVersioningStatus::Suspended));
    let got = client
        .get_bucket_lifecycle_configuration()
        .bucket("susp")
        .send()
        .await
        .unwrap();
    assert_eq!(got.rules(), lc.rules());
    // and tagging keeps working on the rebuilt index (the record is referenced, not orphaned)
    client
        .put_object_tagging()
        .bucket("reidx")
        .key("changed")
        .tagging(tags(&[("c", "5")]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        get_tags(&client, "reidx", "changed", None).await,
        pairs(&[("c", "5")])
    );
    server.shutdown().await;
    drop(dir);
}
