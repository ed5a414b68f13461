//! Conditional deletes and 304s against the in-process gateway with aws-sdk-s3: DeleteObject with
//! `If-Match`, `x-amz-if-match-last-modified-time` and `x-amz-if-match-size` (412 on mismatch,
//! the object untouched; a missing key is deleted already; a delete marker matches only `*`),
//! the same per key in DeleteObjects (`ETag`, `LastModifiedTime`, `Size` → a per-key
//! PreconditionFailed beside the keys that matched), and a 304 that carries ETag and
//! Last-Modified.

use crate::common;

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use common::*;

async fn put(
    g: &TestGateway,
    bucket: &str,
    key: &str,
    body: &'static [u8],
) -> (String, Option<String>) {
    let out = g
        .client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(body))
        .send()
        .await
        .unwrap();
    (
        out.e_tag().unwrap().to_owned(),
        out.version_id().map(str::to_owned),
    )
}

async fn exists(g: &TestGateway, bucket: &str, key: &str) -> bool {
    g.client
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .is_ok()
}

async fn mtime(g: &TestGateway, bucket: &str, key: &str) -> DateTime {
    *g.client
        .head_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap()
        .last_modified()
        .unwrap()
}

fn long_ago() -> DateTime {
    DateTime::from_secs(1_420_070_400) // 2015-01-01
}

#[tokio::test]
async fn delete_object_conditions() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("cd1").send().await.unwrap();
    let (etag, _) = put(&g, "cd1", "obj", b"twelve bytes").await;

    // mismatches: 412, and the object is still there
    let e = c
        .delete_object()
        .bucket("cd1")
        .key("obj")
        .if_match("\"0000\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (412, "PreconditionFailed"));
    let e = c
        .delete_object()
        .bucket("cd1")
        .key("obj")
        .if_match_last_modified_time(long_ago())
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (412, "PreconditionFailed"));
    let e = c
        .delete_object()
        .bucket("cd1")
        .key("obj")
        .if_match_size(9999)
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (412, "PreconditionFailed"));
    // all three right, one wrong: still refused
    let lm = mtime(&g, "cd1", "obj").await;
    let e = c
        .delete_object()
        .bucket("cd1")
        .key("obj")
        .if_match(&etag)
        .if_match_last_modified_time(lm)
        .if_match_size(11)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    assert!(exists(&g, "cd1", "obj").await);
    // all three right: deleted
    c.delete_object()
        .bucket("cd1")
        .key("obj")
        .if_match(&etag)
        .if_match_last_modified_time(lm)
        .if_match_size(12)
        .send()
        .await
        .unwrap();
    assert!(!exists(&g, "cd1", "obj").await);
    // a missing key is deleted already, whatever the condition
    for r in [
        c.delete_object()
            .bucket("cd1")
            .key("obj")
            .if_match("\"0000\"")
            .send()
            .await,
        c.delete_object()
            .bucket("cd1")
            .key("obj")
            .if_match_size(1)
            .send()
            .await,
        c.delete_object()
            .bucket("cd1")
            .key("obj")
            .if_match("*")
            .send()
            .await,
    ] {
        r.unwrap();
    }
    // in a versioned bucket, a conditional delete of a missing key writes no delete marker
    common::enable_versioning(c, "cd1").await;
    c.delete_object()
        .bucket("cd1")
        .key("ghost")
        .if_match("*")
        .send()
        .await
        .unwrap();
    c.delete_object()
        .bucket("cd1")
        .key("ghost")
        .if_match("\"0000\"")
        .send()
        .await
        .unwrap();
    let versions = c
        .list_object_versions()
        .bucket("cd1")
        .prefix("ghost")
        .send()
        .await
        .unwrap();
    assert!(versions.delete_markers().is_empty() && versions.versions().is_empty());
    // If-Match: * deletes whatever is there
    put(&g, "cd1", "obj", b"x").await;
    c.delete_object()
        .bucket("cd1")
        .key("obj")
        .if_match("*")
        .send()
        .await
        .unwrap();
    assert!(!exists(&g, "cd1", "obj").await);
    g.stop().await;
}

#[tokio::test]
async fn versioned_delete_conditions() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("cd2").send().await.unwrap();
    common::enable_versioning(c, "cd2").await;
    let (etag, v1) = put(&g, "cd2", "obj", b"first").await;
    let v1 = v1.unwrap();
    put(&g, "cd2", "obj", b"second!").await;
    // a named version is checked against itself, not the current one
    let e = c
        .delete_object()
        .bucket("cd2")
        .key("obj")
        .version_id(&v1)
        .if_match_size(7)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    c.delete_object()
        .bucket("cd2")
        .key("obj")
        .version_id(&v1)
        .if_match(&etag)
        .if_match_size(5)
        .send()
        .await
        .unwrap();
    // the current version, then a delete marker: it matches only "*"
    let out = c
        .delete_object()
        .bucket("cd2")
        .key("obj")
        .if_match_size(7)
        .send()
        .await
        .unwrap();
    assert_eq!(out.delete_marker(), Some(true));
    let e = c
        .delete_object()
        .bucket("cd2")
        .key("obj")
        .if_match("\"0000\"")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    let e = c
        .delete_object()
        .bucket("cd2")
        .key("obj")
        .if_match_last_modified_time(long_ago())
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 412);
    c.delete_object()
        .bucket("cd2")
        .key("obj")
        .if_match("*")
        .send()
        .await
        .unwrap();
    g.stop().await;
}

#[tokio::test]
async fn delete_objects_conditions_are_per_key() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("cd3").send().await.unwrap();
    let (etag_a, _) = put(&g, "cd3", "a", b"aaaa").await;
    put(&g, "cd3", "b", b"bbbb").await;
    put(&g, "cd3", "c", b"cccc").await;
    put(&g, "cd3", "d", b"dddd").await;
    let lm_c = mtime(&g, "cd3", "c").await;
    let id = |k: &str| ObjectIdentifier::builder().key(k);
    let out = c
        .delete_objects()
        .bucket("cd3")
        .delete(
            Delete::builder()
                .objects(id("a").e_tag(&etag_a).build().unwrap())
                .objects(id("b").e_tag("\"0000\"").build().unwrap())
                .objects(id("c").last_modified_time(lm_c).size(4).build().unwrap())
                .objects(id("d").size(9999).build().unwrap())
                .objects(id("e").last_modified_time(long_ago()).build().unwrap())
                .objects(id("d").last_modified_time(long_ago()).build().unwrap())
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let mut deleted: Vec<&str> = out.deleted().iter().filter_map(|d| d.key()).collect();
    deleted.sort_unstable();
    assert_eq!(deleted, ["a", "c", "e"]);
    let mut failed: Vec<(&str, &str)> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap(), e.code().unwrap()))
        .collect();
    failed.sort_unstable();
    assert_eq!(
        failed,
        [
            ("b", "PreconditionFailed"),
            ("d", "PreconditionFailed"),
            ("d", "PreconditionFailed")
        ]
    );
    assert!(!exists(&g, "cd3", "a").await && !exists(&g, "cd3", "c").await);
    assert!(exists(&g, "cd3", "b").await && exists(&g, "cd3", "d").await);
    g.stop().await;
}

#[tokio::test]
async fn not_modified_carries_etag_and_last_modified() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("nm1").send().await.unwrap();
    let (etag, _) = put(&g, "nm1", "k", b"cached").await;
    let addr = g.server.s3_addr;
    // an anonymous raw request is refused before conditions: use a presigned GET
    let presigned = c
        .get_object()
        .bucket("nm1")
        .key("k")
        .presigned(
            aws_sdk_s3::presigning::PresigningConfig::expires_in(std::time::Duration::from_secs(
                60,
            ))
            .unwrap(),
        )
        .await
        .unwrap();
    let uri: http::Uri = presigned.uri().parse().unwrap();
    let path = uri.path_and_query().unwrap().as_str();
    let (st, head, _) = raw(addr, "GET", path, &[("If-None-Match", &etag)], b"").await;
    assert_eq!(st, 304, "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains(&format!("etag: {}", etag.to_ascii_lowercase())),
        "{head}"
    );
    assert!(lower.contains("last-modified: "), "{head}");
    let far = "Fri, 01 Jan 2100 00:00:00 GMT";
    let (st, head, _) = raw(addr, "GET", path, &[("If-Modified-Since", far)], b"").await;
    assert_eq!(st, 304, "{head}");
    assert!(head.to_ascii_lowercase().contains("etag: "), "{head}");
    // another ETag: the object
    let (st, head, _) = raw(addr, "GET", path, &[("If-None-Match", "\"other\"")], b"").await;
    assert_eq!(st, 200, "{head}");
    g.stop().await;
}
