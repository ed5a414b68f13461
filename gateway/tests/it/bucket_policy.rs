//! Bucket policies against the in-process gateway (aws-sdk-s3, SigV4): the document stored and
//! returned as sent, removed, refused with 400 MalformedPolicy when it says something the gateway
//! does not evaluate; Deny statements refusing requests (encryption headers, SSE-C algorithm,
//! prefixes, listings, batch deletes key by key, copy sources, plain HTTP) with 403 for every
//! principal, SuperAdmins included, while the SuperAdmin can still replace or delete the policy;
//! Allow statements granting nothing (a Viewer stays a Viewer, another tenant stays out);
//! BlockPublicPolicy; another tenant refused the policy operations; one audit event per request.

use crate::common;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    Delete, ObjectIdentifier, PublicAccessBlockConfiguration, ServerSideEncryption,
};
use common::*;
use policy::Role;

fn deny(bucket: &str, action: &str, resource: &str, condition: &str) -> String {
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"d1","Effect":"Deny","Principal":"*","Action":"{action}","Resource":"arn:aws:s3:::{bucket}{resource}"{condition}}}]}}"#
    )
}

async fn put(c: &Client, bucket: &str, key: &str) -> Result<(), String> {
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{} {}", status(&e), code(&e)))
}

async fn get(c: &Client, bucket: &str, key: &str) -> Result<Vec<u8>, String> {
    match c.get_object().bucket(bucket).key(key).send().await {
        Ok(o) => Ok(o.body.collect().await.unwrap().into_bytes().to_vec()),
        Err(e) => Err(format!("{} {}", status(&e), code(&e))),
    }
}

async fn set_policy(c: &Client, bucket: &str, doc: &str) -> Result<(), String> {
    c.put_bucket_policy()
        .bucket(bucket)
        .policy(doc)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| format!("{} {}", status(&e), code(&e)))
}

#[tokio::test]
async fn a_policy_is_stored_as_sent_reported_and_removed() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("pol1").send().await.unwrap();
    let e = c
        .get_bucket_policy()
        .bucket("pol1")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e)), (404, "NoSuchBucketPolicy".into()));
    // spacing and order kept: GetBucketPolicy returns the very document
    let doc = "{\n  \"Version\": \"2012-10-17\",\n  \"Statement\": [{\"Effect\": \"Allow\", \"Principal\": {\"AWS\": \"*\"}, \"Action\": \"s3:ListBucket\", \"Resource\": [\"arn:aws:s3:::pol1\", \"arn:aws:s3:::pol1/*\"]}]\n}";
    set_policy(c, "pol1", doc).await.unwrap();
    let got = c.get_bucket_policy().bucket("pol1").send().await.unwrap();
    assert_eq!(got.policy.as_deref(), Some(doc));
    // nothing is public here, whatever the document says
    let st = c
        .get_bucket_policy_status()
        .bucket("pol1")
        .send()
        .await
        .unwrap();
    assert_eq!(st.policy_status.unwrap().is_public, Some(false));
    // kept across a restart
    let dir = g.dir;
    g.server.shutdown().await;
    let server = gateway::server::start(config(dir.path()), admin_api)
        .await
        .unwrap();
    let c = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    let got = c.get_bucket_policy().bucket("pol1").send().await.unwrap();
    assert_eq!(got.policy.as_deref(), Some(doc));
    for _ in 0..2 {
        c.delete_bucket_policy()
            .bucket("pol1")
            .send()
            .await
            .unwrap();
    }
    let e = c
        .get_bucket_policy()
        .bucket("pol1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucketPolicy");
    let e = c
        .put_bucket_policy()
        .bucket("nope")
        .policy(deny("nope", "s3:*", "/*", ""))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e)), (404, "NoSuchBucket".into()));
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_policies_are_refused_and_nothing_is_stored() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("pol2").send().await.unwrap();
    let bad = [
        "not json".to_owned(),
        // another bucket
        deny("other", "s3:GetObject", "/*", ""),
        // a condition key the gateway does not fill
        deny(
            "pol2",
            "s3:GetObject",
            "/*",
            r#","Condition":{"StringEquals":{"aws:SourceVpc":"vpc-1"}}"#,
        ),
        // an operator it does not know
        deny(
            "pol2",
            "s3:GetObject",
            "/*",
            r#","Condition":{"StringRoughly":{"s3:prefix":"a"}}"#,
        ),
        // another service's action
        deny("pol2", "iam:PassRole", "/*", ""),
        // existing-object tags are not evaluated
        deny(
            "pol2",
            "s3:GetObject",
            "/*",
            r#","Condition":{"StringEquals":{"s3:ExistingObjectTag/team":"a"}}"#,
        ),
    ];
    for doc in bad {
        let e = c
            .put_bucket_policy()
            .bucket("pol2")
            .policy(&doc)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            (status(&e), code(&e)),
            (400, "MalformedPolicy".into()),
            "{doc}"
        );
    }
    let e = c
        .get_bucket_policy()
        .bucket("pol2")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchBucketPolicy");
    put(c, "pol2", "k").await.unwrap();
    g.stop().await;
}

#[tokio::test]
async fn deny_statements_refuse_every_principal_and_the_superadmin_keeps_the_policy() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("pol3").send().await.unwrap();
    let manager = client_as(&g, "pol-manager", "default", Role::Manager).await;
    // writes without an encryption header are refused
    set_policy(
        c,
        "pol3",
        &deny(
            "pol3",
            "s3:PutObject",
            "/*",
            r#","Condition":{"Null":{"s3:x-amz-server-side-encryption":"true"}}"#,
        ),
    )
    .await
    .unwrap();
    for who in [c, &manager] {
        assert_eq!(
            put(who, "pol3", "plain").await,
            Err("403 AccessDenied".into())
        );
        let ok = who
            .put_object()
            .bucket("pol3")
            .key("sealed")
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(ByteStream::from_static(b"data"))
            .send()
            .await;
        assert!(ok.is_ok(), "{ok:?}");
    }
    assert_eq!(get(c, "pol3", "plain").await, Err("404 NoSuchKey".into()));
    assert_eq!(get(c, "pol3", "sealed").await.unwrap(), b"data");
    // a multipart upload is a PutObject too
    let e = c
        .create_multipart_upload()
        .bucket("pol3")
        .key("mp")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e)), (403, "AccessDenied".into()));
    // an upload that named the encryption goes through: its parts and completion carry the
    // upload's encryption (they repeat no header), as on AWS
    let up = c
        .create_multipart_upload()
        .bucket("pol3")
        .key("mp")
        .server_side_encryption(ServerSideEncryption::Aes256)
        .send()
        .await
        .unwrap();
    let id = up.upload_id.unwrap();
    let part = c
        .upload_part()
        .bucket("pol3")
        .key("mp")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"part"))
        .send()
        .await
        .unwrap();
    c.complete_multipart_upload()
        .bucket("pol3")
        .key("mp")
        .upload_id(&id)
        .multipart_upload(
            aws_sdk_s3::types::CompletedMultipartUpload::builder()
                .parts(
                    aws_sdk_s3::types::CompletedPart::builder()
                        .part_number(1)
                        .e_tag(part.e_tag.unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(get(c, "pol3", "mp").await.unwrap(), b"part");
    // an encryption the gateway does not have is refused by the policy first (403, as S3)
    set_policy(
        c,
        "pol3",
        &deny(
            "pol3",
            "s3:PutObject",
            "/*",
            r#","Condition":{"StringNotEquals":{"s3:x-amz-server-side-encryption":"AES256"}}"#,
        ),
    )
    .await
    .unwrap();
    let e = c
        .put_object()
        .bucket("pol3")
        .key("k")
        .server_side_encryption(ServerSideEncryption::from("AES192"))
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e)), (403, "AccessDenied".into()));
    // everything denied to everybody: the SuperAdmin still reads, replaces and deletes the
    // policy (no policy locks its bucket for good); a Manager cannot
    let all = r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::pol3","arn:aws:s3:::pol3/*"]}]}"#;
    set_policy(c, "pol3", all).await.unwrap();
    assert_eq!(
        get(c, "pol3", "sealed").await,
        Err("403 AccessDenied".into())
    );
    let e = c.list_objects_v2().bucket("pol3").send().await.unwrap_err();
    assert_eq!(status(&e), 403);
    assert!(c.get_bucket_policy().bucket("pol3").send().await.is_ok());
    let e = manager
        .get_bucket_policy()
        .bucket("pol3")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 403);
    c.delete_bucket_policy()
        .bucket("pol3")
        .send()
        .await
        .unwrap();
    assert_eq!(get(c, "pol3", "sealed").await.unwrap(), b"data");
    let ev = audit_events(&g).await;
    let count = |a: &str, st: u16| {
        ev.iter()
            .filter(|e| e.action == a && e.status == st)
            .count()
    };
    assert_eq!(count("PutBucketPolicy", 200), 3);
    assert_eq!(count("DeleteBucketPolicy", 200), 1);
    assert_eq!(count("GetBucketPolicy", 200), 1);
    assert_eq!(count("GetBucketPolicy", 403), 1);
    assert!(
        count("PutObject", 403) >= 3,
        "the policy's refusals are audited"
    );
    g.stop().await;
}

#[tokio::test]
async fn prefixes_listings_batch_deletes_and_copy_sources() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("pol4").send().await.unwrap();
    c.create_bucket().bucket("pol4-dst").send().await.unwrap();
    for k in ["secret/a", "secret/b", "public/a", "public/b"] {
        put(c, "pol4", k).await.unwrap();
    }
    let doc = r#"{"Version":"2012-10-17","Statement":[
        {"Sid":"reads","Effect":"Deny","Principal":"*","Action":["s3:GetObject","s3:DeleteObject"],"Resource":"arn:aws:s3:::pol4/secret/*"},
        {"Sid":"lists","Effect":"Deny","Principal":"*","Action":"s3:ListBucket","Resource":"arn:aws:s3:::pol4","Condition":{"StringNotLike":{"s3:prefix":"public/*"}}}]}"#;
    set_policy(c, "pol4", doc).await.unwrap();
    assert_eq!(
        get(c, "pol4", "secret/a").await,
        Err("403 AccessDenied".into())
    );
    assert_eq!(get(c, "pol4", "public/a").await.unwrap(), b"data");
    // a Range header s3s cannot parse goes another route (served whole, as AWS): the policy
    // holds there too
    for range in ["bytes=abc", "bytes=0-1,3-4"] {
        let e = c
            .get_object()
            .bucket("pol4")
            .key("secret/a")
            .range(range)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            (status(&e), code(&e)),
            (403, "AccessDenied".into()),
            "{range}"
        );
        let ok = c
            .get_object()
            .bucket("pol4")
            .key("public/a")
            .range(range)
            .send()
            .await
            .unwrap();
        assert_eq!(
            ok.body.collect().await.unwrap().into_bytes().as_ref(),
            b"data"
        );
    }
    let e = c
        .head_object()
        .bucket("pol4")
        .key("secret/a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 403);
    // listings only under public/ (and a listing without a prefix is refused)
    let l = c
        .list_objects_v2()
        .bucket("pol4")
        .prefix("public/")
        .send()
        .await
        .unwrap();
    assert_eq!(l.key_count, Some(2));
    for p in [None, Some("secret/")] {
        let e = c
            .list_objects_v2()
            .bucket("pol4")
            .set_prefix(p.map(str::to_owned))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            (status(&e), code(&e)),
            (403, "AccessDenied".into()),
            "{p:?}"
        );
    }
    // a batch delete: the denied key refused on its own, the other deleted
    let del = Delete::builder()
        .objects(ObjectIdentifier::builder().key("secret/b").build().unwrap())
        .objects(ObjectIdentifier::builder().key("public/b").build().unwrap())
        .build()
        .unwrap();
    let out = c
        .delete_objects()
        .bucket("pol4")
        .delete(del)
        .send()
        .await
        .unwrap();
    let errors: Vec<_> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap(), e.code().unwrap()))
        .collect();
    assert_eq!(errors, [("secret/b", "AccessDenied")]);
    assert_eq!(out.deleted().len(), 1);
    assert_eq!(
        get(c, "pol4", "public/b").await,
        Err("404 NoSuchKey".into())
    );
    // a copy out of the denied prefix is a read of it
    let e = c
        .copy_object()
        .bucket("pol4-dst")
        .key("x")
        .copy_source("pol4/secret/b")
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e)), (403, "AccessDenied".into()));
    assert!(
        c.copy_object()
            .bucket("pol4-dst")
            .key("y")
            .copy_source("pol4/public/a")
            .send()
            .await
            .is_ok()
    );
    g.stop().await;
}

#[tokio::test]
async fn allow_statements_grant_nothing_and_other_tenants_stay_out() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("pol5").send().await.unwrap();
    put(c, "pol5", "k").await.unwrap();
    let viewer = client_as(&g, "pol-viewer", "default", Role::Viewer).await;
    let stranger = client_as(&g, "pol-stranger", "elsewhere", Role::SuperAdmin).await;
    let open = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::pol5","arn:aws:s3:::pol5/*"]},
        {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::elsewhere:user/pol-stranger"},"Action":"s3:*","Resource":["arn:aws:s3:::pol5","arn:aws:s3:::pol5/*"]}]}"#;
    set_policy(c, "pol5", open).await.unwrap();
    // the Viewer reads, as its role says, and still cannot write
    assert_eq!(get(&viewer, "pol5", "k").await.unwrap(), b"data");
    assert_eq!(
        put(&viewer, "pol5", "v").await,
        Err("403 AccessDenied".into())
    );
    // another tenant, even named in an Allow, reads and writes nothing
    assert_eq!(
        get(&stranger, "pol5", "k").await,
        Err("403 AccessDenied".into())
    );
    assert_eq!(
        put(&stranger, "pol5", "s").await,
        Err("403 AccessDenied".into())
    );
    // nor reads, replaces or deletes the policy
    let e = stranger
        .get_bucket_policy()
        .bucket("pol5")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 403);
    assert_eq!(
        set_policy(&stranger, "pol5", &deny("pol5", "s3:*", "/*", "")).await,
        Err("403 AccessDenied".into())
    );
    let e = stranger
        .delete_bucket_policy()
        .bucket("pol5")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 403);
    let got = c.get_bucket_policy().bucket("pol5").send().await.unwrap();
    assert_eq!(got.policy.as_deref(), Some(open));
    // a Viewer may read the policy, not change it
    assert!(
        viewer
            .get_bucket_policy()
            .bucket("pol5")
            .send()
            .await
            .is_ok()
    );
    let e = viewer
        .delete_bucket_policy()
        .bucket("pol5")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 403);
    g.stop().await;
}

#[tokio::test]
async fn block_public_policy_and_secure_transport() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("pol6").send().await.unwrap();
    c.put_public_access_block()
        .bucket("pol6")
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_policy(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let public = r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::pol6/*"}]}"#;
    assert_eq!(
        set_policy(c, "pol6", public).await,
        Err("403 AccessDenied".into())
    );
    let account = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::default:root"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::pol6/*"}]}"#;
    set_policy(c, "pol6", account).await.unwrap();
    // the usual "TLS only" policy: this test gateway serves plain HTTP, so it refuses
    let tls_only = deny(
        "pol6",
        "s3:*",
        "/*",
        r#","Condition":{"Bool":{"aws:SecureTransport":"false"}}"#,
    );
    set_policy(c, "pol6", &tls_only).await.unwrap();
    assert_eq!(put(c, "pol6", "k").await, Err("403 AccessDenied".into()));
    // and an address condition the loopback client meets
    let not_loopback = deny(
        "pol6",
        "s3:*",
        "/*",
        r#","Condition":{"NotIpAddress":{"aws:SourceIp":"127.0.0.0/8"}}"#,
    );
    set_policy(c, "pol6", &not_loopback).await.unwrap();
    put(c, "pol6", "k").await.unwrap();
    g.stop().await;
}
