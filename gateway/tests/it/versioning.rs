//! Versioning with the real aws-sdk-s3 against the in-process gateway: version ids on PUT,
//! COPY and multipart, GET/HEAD/DELETE/copy by versionId, delete markers, suspended `null`
//! versions, ListObjectVersions paging and grouping, DeleteObjects with versions, garbage
//! collection of versions, the rights of each new operation (a role without them and another
//! tenant refused) and quorum rules on version deletes.

use crate::common;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier,
    VersioningConfiguration,
};
use common::*;
use policy::Role;

async fn set_versioning(c: &Client, b: &str, status: BucketVersioningStatus) {
    c.put_bucket_versioning()
        .bucket(b)
        .versioning_configuration(VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .expect("put bucket versioning");
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

async fn get(c: &Client, b: &str, k: &str, v: Option<&str>) -> Vec<u8> {
    c.get_object()
        .bucket(b)
        .key(k)
        .set_version_id(v.map(str::to_owned))
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

/// (key, version id, is latest, is delete marker) of every version, in listing order.
async fn versions(c: &Client, b: &str) -> Vec<(String, String, bool, bool)> {
    let out = c.list_object_versions().bucket(b).send().await.unwrap();
    let mut all: Vec<(String, String, bool, bool, i64)> = Vec::new();
    for v in out.versions() {
        all.push((
            v.key().unwrap().to_owned(),
            v.version_id().unwrap().to_owned(),
            v.is_latest().unwrap(),
            false,
            0,
        ));
    }
    for m in out.delete_markers() {
        all.push((
            m.key().unwrap().to_owned(),
            m.version_id().unwrap().to_owned(),
            m.is_latest().unwrap(),
            true,
            0,
        ));
    }
    // the SDK splits versions and markers; order them back by key then newest first, which
    // for this gateway's ids (time-ordered hex, `null` aside) is the id order reversed
    all.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)));
    all.into_iter()
        .map(|(k, v, l, d, _)| (k, v, l, d))
        .collect()
}

#[tokio::test]
async fn versions_are_kept_read_deleted_and_restored() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("ver").send().await.unwrap();
    let out = c
        .get_bucket_versioning()
        .bucket("ver")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), None, "a new bucket was never versioned");
    assert_eq!(put(c, "ver", "k", b"unversioned").await, None);
    let head = c.head_object().bucket("ver").key("k").send().await.unwrap();
    assert_eq!(head.version_id(), None, "no version ids before versioning");
    set_versioning(c, "ver", BucketVersioningStatus::Enabled).await;
    let out = c
        .get_bucket_versioning()
        .bucket("ver")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), Some(&BucketVersioningStatus::Enabled));

    let v1 = put(c, "ver", "k", b"first").await.expect("a version id");
    let v2 = put(c, "ver", "k", b"second").await.expect("a version id");
    assert_ne!(v1, v2);
    assert_eq!(v1.len(), 32);
    assert_eq!(get(c, "ver", "k", None).await, b"second");
    assert_eq!(get(c, "ver", "k", Some(&v1)).await, b"first");
    assert_eq!(get(c, "ver", "k", Some("null")).await, b"unversioned");
    // the null version of a versioned bucket reports its id, as S3 does
    let null = c
        .get_object()
        .bucket("ver")
        .key("k")
        .version_id("null")
        .send()
        .await
        .unwrap();
    assert_eq!(null.version_id(), Some("null"));
    let head = c
        .head_object()
        .bucket("ver")
        .key("k")
        .version_id("null")
        .send()
        .await
        .unwrap();
    assert_eq!(head.version_id(), Some("null"));
    let head = c
        .head_object()
        .bucket("ver")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_length(), Some(5));
    assert_eq!(head.version_id(), Some(v1.as_str()));
    assert_eq!(
        head.e_tag(),
        Some(format!("\"{}\"", md5_hex(b"first")).as_str())
    );

    // a ranged GET of an old version reads that version's bytes
    let out = c
        .get_object()
        .bucket("ver")
        .key("k")
        .version_id(&v1)
        .range("bytes=1-3")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.body.collect().await.unwrap().into_bytes().as_ref(),
        b"irs"
    );

    // unknown and malformed version ids
    let e = c
        .get_object()
        .bucket("ver")
        .key("k")
        .version_id("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchVersion"));
    let e = c
        .get_object()
        .bucket("ver")
        .key("k")
        .version_id("../../etc")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidArgument"));

    // DELETE without a version id puts a delete marker
    let d = c
        .delete_object()
        .bucket("ver")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(d.delete_marker(), Some(true));
    let marker = d.version_id().expect("marker id").to_owned();
    let e = c
        .get_object()
        .bucket("ver")
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    let h = e.raw_response().unwrap().headers();
    assert_eq!(h.get("x-amz-delete-marker"), Some("true"));
    assert_eq!(h.get("x-amz-version-id"), Some(marker.as_str()));
    let e = c
        .get_object()
        .bucket("ver")
        .key("k")
        .version_id(&marker)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 405, "GET of a delete marker by id is 405");
    let listed = c.list_objects_v2().bucket("ver").send().await.unwrap();
    assert_eq!(
        listed.key_count(),
        Some(0),
        "a key behind a marker is not listed"
    );
    let listed = versions(c, "ver").await;
    let expect: Vec<(String, String, bool, bool)> = vec![
        ("k".into(), marker.clone(), true, true),
        ("k".into(), v2.clone(), false, false),
        ("k".into(), v1.clone(), false, false),
        ("k".into(), "null".into(), false, false),
    ];
    assert_eq!(
        versions_sorted(listed.clone()),
        versions_sorted(expect),
        "{listed:?}"
    );
    // old versions stay readable behind the marker
    assert_eq!(get(c, "ver", "k", Some(&v2)).await, b"second");

    // deleting the marker brings the object back
    let d = c
        .delete_object()
        .bucket("ver")
        .key("k")
        .version_id(&marker)
        .send()
        .await
        .unwrap();
    assert_eq!(d.delete_marker(), Some(true));
    assert_eq!(d.version_id(), Some(marker.as_str()));
    assert_eq!(get(c, "ver", "k", None).await, b"second");

    // deleting the latest version for good makes the previous one current
    c.delete_object()
        .bucket("ver")
        .key("k")
        .version_id(&v2)
        .send()
        .await
        .unwrap();
    assert_eq!(get(c, "ver", "k", None).await, b"first");
    let e = c
        .get_object()
        .bucket("ver")
        .key("k")
        .version_id(&v2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchVersion");

    // restore an old version by copying it over its key: a new version with its bytes
    let out = c
        .copy_object()
        .bucket("ver")
        .key("k")
        .copy_source("ver/k?versionId=null")
        .send()
        .await
        .unwrap();
    let restored = out.version_id().expect("copy makes a version").to_owned();
    assert_eq!(
        out.copy_source_version_id(),
        None,
        "the null version has no id to report"
    );
    assert_eq!(get(c, "ver", "k", None).await, b"unversioned");
    assert_eq!(get(c, "ver", "k", Some(&restored)).await, b"unversioned");
    let out = c
        .copy_object()
        .bucket("ver")
        .key("copy")
        .copy_source(format!("ver/k?versionId={v1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.copy_source_version_id(), Some(v1.as_str()));
    assert_eq!(get(c, "ver", "copy", None).await, b"first");

    // a multipart upload completes into a new version
    let up = c
        .create_multipart_upload()
        .bucket("ver")
        .key("k")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap();
    let part = c
        .upload_part()
        .bucket("ver")
        .key("k")
        .upload_id(id)
        .part_number(1)
        .body(ByteStream::from_static(b"multipart"))
        .send()
        .await
        .unwrap();
    let done = c
        .complete_multipart_upload()
        .bucket("ver")
        .key("k")
        .upload_id(id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let vm = done.version_id().expect("version of the upload").to_owned();
    assert_eq!(get(c, "ver", "k", Some(&vm)).await, b"multipart");
    assert_eq!(get(c, "ver", "k", Some(&restored)).await, b"unversioned");

    // suspended: writes replace the null version, a delete is a null marker
    set_versioning(c, "ver", BucketVersioningStatus::Suspended).await;
    assert_eq!(
        put(c, "ver", "k", b"s1").await,
        None,
        "the null version has no id"
    );
    assert_eq!(put(c, "ver", "k", b"s2").await, None);
    let nulls: Vec<_> = versions(c, "ver")
        .await
        .into_iter()
        .filter(|v| v.0 == "k" && v.1 == "null")
        .collect();
    assert_eq!(nulls.len(), 1, "one null version: {nulls:?}");
    assert_eq!(get(c, "ver", "k", Some("null")).await, b"s2");
    assert_eq!(get(c, "ver", "k", Some(&vm)).await, b"multipart");
    let d = c
        .delete_object()
        .bucket("ver")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (d.delete_marker(), d.version_id()),
        (Some(true), Some("null"))
    );
    let e = c
        .get_object()
        .bucket("ver")
        .key("k")
        .version_id("null")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 405, "the null version is now the marker");

    // a versioned bucket is not empty while versions remain
    let e = c.delete_bucket().bucket("ver").send().await.unwrap_err();
    assert_eq!(code(&e), "BucketNotEmpty");
    // never back to unversioned
    let raw_status = c
        .put_bucket_versioning()
        .bucket("ver")
        .versioning_configuration(
            VersioningConfiguration::builder()
                .status(BucketVersioningStatus::from("Disabled"))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&raw_status), 400);
    g.stop().await;
}

fn versions_sorted(mut v: Vec<(String, String, bool, bool)>) -> Vec<(String, String, bool, bool)> {
    v.sort_by(|a, b| a.0.cmp(&b.0).then(b.2.cmp(&a.2)));
    v
}

#[tokio::test]
async fn deleting_every_version_frees_the_backend() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("gc-bucket").send().await.unwrap();
    set_versioning(c, "gc-bucket", BucketVersioningStatus::Enabled).await;
    let before = backend_objects(&g).await;
    let mut ids = Vec::new();
    for i in 0..4u64 {
        ids.push(
            put(c, "gc-bucket", "k", &data(1000 + i as usize, i))
                .await
                .unwrap(),
        );
    }
    c.delete_object()
        .bucket("gc-bucket")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        backend_objects(&g).await,
        before + 5,
        "4 versions and a sealed marker"
    );
    // a batch delete naming versions removes exactly those
    let mut del = Delete::builder();
    for id in &ids[..2] {
        del = del.objects(
            ObjectIdentifier::builder()
                .key("k")
                .version_id(id)
                .build()
                .unwrap(),
        );
    }
    let out = c
        .delete_objects()
        .bucket("gc-bucket")
        .delete(del.build().unwrap())
        .send()
        .await
        .unwrap();
    assert!(out.errors().is_empty(), "{out:?}");
    let got: Vec<_> = out
        .deleted()
        .iter()
        .map(|d| d.version_id().unwrap())
        .collect();
    assert_eq!(got, vec![ids[0].as_str(), ids[1].as_str()]);
    assert_eq!(backend_objects(&g).await, before + 3);
    assert_eq!(get(c, "gc-bucket", "k", Some(&ids[2])).await, data(1002, 2));
    // the rest, marker included
    for v in versions(c, "gc-bucket").await {
        c.delete_object()
            .bucket("gc-bucket")
            .key(&v.0)
            .version_id(&v.1)
            .send()
            .await
            .unwrap();
    }
    assert!(versions(c, "gc-bucket").await.is_empty());
    assert_eq!(
        backend_objects(&g).await,
        before,
        "no version left, no blob left"
    );
    c.delete_bucket().bucket("gc-bucket").send().await.unwrap();
    g.stop().await;
}

#[tokio::test]
async fn list_object_versions_pages_and_groups() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("lv-bucket").send().await.unwrap();
    set_versioning(c, "lv-bucket", BucketVersioningStatus::Enabled).await;
    let mut expected = Vec::new();
    for key in ["a", "b/1", "b/2", "c"] {
        let mut ids = Vec::new();
        for i in 0..3 {
            ids.push(
                put(c, "lv-bucket", key, format!("{key}{i}").as_bytes())
                    .await
                    .unwrap(),
            );
        }
        // newest first within a key
        for id in ids.into_iter().rev() {
            expected.push((key.to_owned(), id));
        }
    }
    // pages of 2 through key and version-id markers
    let mut seen = Vec::new();
    let (mut km, mut vm): (Option<String>, Option<String>) = (None, None);
    loop {
        let out = c
            .list_object_versions()
            .bucket("lv-bucket")
            .max_keys(2)
            .set_key_marker(km.clone())
            .set_version_id_marker(vm.clone())
            .send()
            .await
            .unwrap();
        for v in out.versions() {
            seen.push((
                v.key().unwrap().to_owned(),
                v.version_id().unwrap().to_owned(),
            ));
        }
        assert!(out.versions().len() <= 2);
        if out.is_truncated() != Some(true) {
            break;
        }
        km = out.next_key_marker().map(str::to_owned);
        vm = out.next_version_id_marker().map(str::to_owned);
    }
    assert_eq!(seen, expected, "every version once, in order");
    // delimiter: b/ is one common prefix
    let out = c
        .list_object_versions()
        .bucket("lv-bucket")
        .delimiter("/")
        .send()
        .await
        .unwrap();
    let prefixes: Vec<_> = out
        .common_prefixes()
        .iter()
        .filter_map(|p| p.prefix())
        .collect();
    assert_eq!(prefixes, vec!["b/"]);
    assert_eq!(out.versions().len(), 6);
    // prefix
    let out = c
        .list_object_versions()
        .bucket("lv-bucket")
        .prefix("b/")
        .send()
        .await
        .unwrap();
    assert_eq!(out.versions().len(), 6);
    assert!(
        out.versions()
            .iter()
            .all(|v| v.key().unwrap().starts_with("b/"))
    );
    // a malformed version-id marker is refused; one that is gone (deleted since the previous
    // page) restarts at its key, so a client emptying the bucket page by page misses nothing
    let e = c
        .list_object_versions()
        .bucket("lv-bucket")
        .key_marker("a")
        .version_id_marker("../not-a-version")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidArgument"));
    let out = c
        .list_object_versions()
        .bucket("lv-bucket")
        .key_marker("a")
        .version_id_marker("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = out.versions().iter().filter_map(|v| v.key()).collect();
    assert_eq!(keys.len(), 12, "{keys:?}");
    assert_eq!(keys[0], "a");
    let e = c
        .list_object_versions()
        .bucket("nosuch")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucket");
    g.stop().await;
}

#[tokio::test]
async fn each_version_operation_needs_its_right_and_the_tenant() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("rights").send().await.unwrap();
    set_versioning(c, "rights", BucketVersioningStatus::Enabled).await;
    let v1 = put(c, "rights", "k", b"one").await.unwrap();
    put(c, "rights", "k", b"two").await.unwrap();
    let viewer = client_as(&g, "vv", "default", Role::Viewer).await;
    let manager = client_as(&g, "vm", "default", Role::Manager).await;
    let other = client_as(&g, "boss", "elsewhere", Role::SuperAdmin).await;

    // reads: the viewer may, another tenant's SuperAdmin may not
    viewer
        .get_bucket_versioning()
        .bucket("rights")
        .send()
        .await
        .unwrap();
    viewer
        .list_object_versions()
        .bucket("rights")
        .send()
        .await
        .unwrap();
    assert_eq!(get(&viewer, "rights", "k", Some(&v1)).await, b"one");
    let e = other
        .get_bucket_versioning()
        .bucket("rights")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = other
        .list_object_versions()
        .bucket("rights")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    let e = other
        .get_object()
        .bucket("rights")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");

    // PutBucketVersioning: SuperAdmin of the bucket's tenant only
    for who in [&viewer, &manager, &other] {
        let e = who
            .put_bucket_versioning()
            .bucket("rights")
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Suspended)
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!((status(&e), code(&e).as_str()), (403, "AccessDenied"));
    }
    let out = c
        .get_bucket_versioning()
        .bucket("rights")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), Some(&BucketVersioningStatus::Enabled));

    // a version delete: not for the manager (no delete right), nor another tenant
    for who in [&viewer, &manager, &other] {
        let e = who
            .delete_object()
            .bucket("rights")
            .key("k")
            .version_id(&v1)
            .send()
            .await
            .unwrap_err();
        assert_eq!((status(&e), code(&e).as_str()), (403, "AccessDenied"));
    }
    let batch = Delete::builder()
        .objects(
            ObjectIdentifier::builder()
                .key("k")
                .version_id(&v1)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let e = manager
        .delete_objects()
        .bucket("rights")
        .delete(batch)
        .send()
        .await;
    match e {
        Err(e) => assert_eq!(code(&e), "AccessDenied"),
        Ok(out) => {
            assert!(out.deleted().is_empty());
            assert_eq!(out.errors()[0].code(), Some("AccessDenied"));
        }
    }
    assert_eq!(
        get(c, "rights", "k", Some(&v1)).await,
        b"one",
        "still there"
    );

    // a role with DeleteObject but not DeleteObjectVersion can hide, not destroy
    let store = g.server.authz.store();
    store
        .create_role("Hider", &["DeleteObject".into(), "GetObject".into()])
        .await
        .unwrap();
    store
        .create_principal("hider", "service", "default", None)
        .await
        .unwrap();
    store
        .create_grant("hider", "Hider", "rights", "")
        .await
        .unwrap();
    let k = store.create_access_key("hider", None).await.unwrap();
    let hider = client_for(&g.endpoint, &k.access_key_id, k.secret.expose());
    let d = hider
        .delete_object()
        .bucket("rights")
        .key("k")
        .send()
        .await
        .unwrap();
    assert_eq!(d.delete_marker(), Some(true));
    let e = hider
        .delete_object()
        .bucket("rights")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    assert_eq!(get(c, "rights", "k", Some(&v1)).await, b"one");
    g.stop().await;
}

#[tokio::test]
async fn a_quorum_rule_on_deletes_gates_version_deletes() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("q-ver").send().await.unwrap();
    set_versioning(c, "q-ver", BucketVersioningStatus::Enabled).await;
    let v1 = put(c, "q-ver", "k", b"keep me").await.unwrap();
    let store = g.server.authz.store();
    let admin = store.identity("admin").await.unwrap().unwrap();
    store
        .set_quorum_rule(
            &admin,
            &policy::QuorumRule {
                name: "guard".into(),
                action: "s3:DeleteObject".into(),
                bucket_pattern: "q-*".into(),
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
        .bucket("q-ver")
        .key("k")
        .version_id(&v1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "AccessDenied");
    assert!(
        format!("{e:?}").contains("apr-"),
        "names the approval: {e:?}"
    );
    let batch = Delete::builder()
        .objects(
            ObjectIdentifier::builder()
                .key("k")
                .version_id(&v1)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let out = c
        .delete_objects()
        .bucket("q-ver")
        .delete(batch)
        .send()
        .await
        .unwrap();
    assert!(out.deleted().is_empty(), "{out:?}");
    assert_eq!(out.errors()[0].code(), Some("AccessDenied"));
    // with versioning Enabled an overwrite destroys nothing, so it is not gated
    put(c, "q-ver", "k", b"new version").await.unwrap();
    assert_eq!(get(c, "q-ver", "k", Some(&v1)).await, b"keep me");
    g.stop().await;
}

#[tokio::test]
async fn delete_bucket_counts_versions_and_markers_but_aborts_open_uploads() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket()
        .bucket("only-markers")
        .send()
        .await
        .unwrap();
    set_versioning(c, "only-markers", BucketVersioningStatus::Enabled).await;
    c.delete_object()
        .bucket("only-markers")
        .key("ghost")
        .send()
        .await
        .unwrap();
    let e = c
        .delete_bucket()
        .bucket("only-markers")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "BucketNotEmpty", "a delete marker is a version");

    let before = backend_objects(&g).await;
    c.create_bucket()
        .bucket("only-uploads")
        .send()
        .await
        .unwrap();
    let up = c
        .create_multipart_upload()
        .bucket("only-uploads")
        .key("big")
        .send()
        .await
        .unwrap();
    c.upload_part()
        .bucket("only-uploads")
        .key("big")
        .upload_id(up.upload_id().unwrap())
        .part_number(1)
        .body(ByteStream::from(data(70_000, 7)))
        .send()
        .await
        .unwrap();
    assert_eq!(backend_objects(&g).await, before + 1);
    c.delete_bucket()
        .bucket("only-uploads")
        .send()
        .await
        .expect("an upload in progress does not keep a bucket (S3 aborts it)");
    assert_eq!(backend_objects(&g).await, before, "the part was collected");
    let e = c
        .head_bucket()
        .bucket("only-uploads")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 404);
    g.stop().await;
}

#[tokio::test]
async fn conditional_writes_look_at_the_current_version() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("cond-ver").send().await.unwrap();
    set_versioning(c, "cond-ver", BucketVersioningStatus::Enabled).await;
    let first = c
        .put_object()
        .bucket("cond-ver")
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"one"))
        .send()
        .await
        .unwrap();
    let etag1 = first.e_tag().unwrap().to_owned();
    let e = c
        .put_object()
        .bucket("cond-ver")
        .key("k")
        .if_none_match(&etag1)
        .body(ByteStream::from_static(b"two"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (412, "PreconditionFailed"));
    put(c, "cond-ver", "k", b"two").await;
    // If-None-Match names an older version's ETag: the current one differs, so it goes through
    c.put_object()
        .bucket("cond-ver")
        .key("k")
        .if_none_match(&etag1)
        .body(ByteStream::from_static(b"three"))
        .send()
        .await
        .unwrap();
    // behind a delete marker there is no current object
    c.delete_object()
        .bucket("cond-ver")
        .key("k")
        .send()
        .await
        .unwrap();
    let e = c
        .put_object()
        .bucket("cond-ver")
        .key("k")
        .if_match("*")
        .body(ByteStream::from_static(b"four"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchKey"));
    c.put_object()
        .bucket("cond-ver")
        .key("k")
        .if_none_match("*")
        .body(ByteStream::from_static(b"five"))
        .send()
        .await
        .unwrap();
    assert_eq!(get(c, "cond-ver", "k", None).await, b"five");
    // a conditional delete of something already gone is not an error
    c.delete_object()
        .bucket("cond-ver")
        .key("missing")
        .if_match("*")
        .send()
        .await
        .unwrap();
    g.stop().await;
}
