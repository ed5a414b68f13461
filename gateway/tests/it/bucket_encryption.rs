//! Bucket default encryption against the in-process gateway (local key): Put/Get/
//! DeleteBucketEncryption through aws-sdk-s3 and raw XML (validation with S3's codes,
//! ServerSideEncryptionConfigurationNotFoundError when unset, aws:kms refused on a gateway
//! without a KMS exactly as the request header is), what new objects report, one audit event per
//! change, and the setting restored by `vaultgate reindex`.

use crate::common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ServerSideEncryption, ServerSideEncryptionConfiguration};
use common::*;
use gateway::ops::OpsContext;
use gateway::ops::reindex::{ReindexOptions, run};

fn config(alg: ServerSideEncryption, key: Option<&str>) -> ServerSideEncryptionConfiguration {
    default_encryption(alg, key)
}

/// GetBucketEncryption answers S3's NotFound code (404).
async fn assert_unset(c: &aws_sdk_s3::Client, bucket: &str) {
    let e = c
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (code(&e).as_str(), status(&e)),
        ("ServerSideEncryptionConfigurationNotFoundError", 404)
    );
}

/// PutBucketEncryption of `cfg` on `bucket`.
async fn put(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    cfg: ServerSideEncryptionConfiguration,
) -> Result<(), (String, u16, Option<String>)> {
    match c
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(cfg)
        .send()
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => Err((
            code(&e),
            status(&e),
            e.as_service_error()
                .and_then(|s| s.meta().message())
                .map(str::to_owned),
        )),
    }
}

/// The stored default's (algorithm, KMSMasterKeyID, BucketKeyEnabled).
async fn stored(
    c: &aws_sdk_s3::Client,
    bucket: &str,
) -> (ServerSideEncryption, Option<String>, Option<bool>) {
    let got = c
        .get_bucket_encryption()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let rule = &got.server_side_encryption_configuration().unwrap().rules()[0];
    let d = rule.apply_server_side_encryption_by_default().unwrap();
    (
        d.sse_algorithm().clone(),
        d.kms_master_key_id().map(str::to_owned),
        rule.bucket_key_enabled(),
    )
}

/// A PutBucketEncryption whose XML is replaced by `body` before it is signed (the SDK only
/// builds well-formed ones): its error code and status.
async fn put_raw(g: &TestGateway, bucket: &str, body: &'static str) -> (u16, String) {
    let e = g
        .client
        .put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(config(ServerSideEncryption::Aes256, None))
        .customize()
        .mutate_request(move |r| {
            *r.body_mut() = aws_smithy_types::body::SdkBody::from(body);
            r.headers_mut().remove("content-md5");
            r.headers_mut().remove("content-length");
            let names: Vec<String> = r
                .headers()
                .iter()
                .map(|(k, _)| k.to_owned())
                .filter(|k| k.starts_with("x-amz-checksum-"))
                .collect();
            for n in names {
                r.headers_mut().remove(n);
            }
        })
        .send()
        .await
        .unwrap_err();
    (status(&e), code(&e))
}

#[tokio::test]
async fn configurations_are_validated_stored_reported_and_removed() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("enc").send().await.unwrap();
    // unset: S3's NotFound code
    assert_unset(c, "enc").await;
    // refusals, with nothing stored
    for (cfg, want, st) in [
        (
            config(ServerSideEncryption::Aes256, Some("k1")),
            "InvalidArgument",
            400,
        ),
        (
            config(ServerSideEncryption::AwsKms, None),
            "InvalidArgument",
            400,
        ),
        (
            config(ServerSideEncryption::AwsKms, Some("k1")),
            "InvalidArgument",
            400,
        ),
        (
            config(ServerSideEncryption::from("AES128"), None),
            "MalformedXML",
            400,
        ),
    ] {
        let (got, got_st, _) = put(c, "enc", cfg.clone()).await.unwrap_err();
        assert_eq!((got.as_str(), got_st), (want, st), "{cfg:?}");
    }
    let (_, _, message) = put(c, "enc", config(ServerSideEncryption::AwsKms, None))
        .await
        .unwrap_err();
    assert_eq!(
        message.as_deref(),
        Some(gateway::auth::KMS_NEEDED),
        "the same refusal as the request header"
    );
    for (body, want) in [
        ("<ServerSideEncryptionConfiguration>", "MalformedXML"),
        (
            "<ServerSideEncryptionConfiguration></ServerSideEncryptionConfiguration>",
            "MalformedXML",
        ),
        (
            "<ServerSideEncryptionConfiguration><Rule><BucketKeyEnabled>true</BucketKeyEnabled></Rule></ServerSideEncryptionConfiguration>",
            "MalformedXML",
        ),
        (
            "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule><Rule><ApplyServerSideEncryptionByDefault><SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>",
            "MalformedXML",
        ),
    ] {
        assert_eq!(
            put_raw(&g, "enc", body).await,
            (400, want.to_owned()),
            "{body}"
        );
    }
    assert_unset(c, "enc").await;
    // a missing bucket
    let aes = || config(ServerSideEncryption::Aes256, None);
    let (got, _, _) = put(c, "nosuch-enc", aes()).await.unwrap_err();
    assert_eq!(got, "NoSuchBucket");
    // stored and reported
    put(c, "enc", aes()).await.unwrap();
    assert_eq!(
        stored(c, "enc").await,
        (ServerSideEncryption::Aes256, None, Some(true))
    );
    // a plain PUT, copy and multipart upload report the default
    let put = c
        .put_object()
        .bucket("enc")
        .key("k")
        .body(ByteStream::from_static(b"data"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    let head = c.head_object().bucket("enc").key("k").send().await.unwrap();
    assert_eq!(
        head.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    let get = c.get_object().bucket("enc").key("k").send().await.unwrap();
    assert_eq!(
        get.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    assert_eq!(
        get.body.collect().await.unwrap().into_bytes().as_ref(),
        b"data"
    );
    let copy = c
        .copy_object()
        .bucket("enc")
        .key("k2")
        .copy_source("enc/k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        copy.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    let mp = c
        .create_multipart_upload()
        .bucket("enc")
        .key("m")
        .send()
        .await
        .unwrap();
    assert_eq!(
        mp.server_side_encryption(),
        Some(&ServerSideEncryption::Aes256)
    );
    // removed: NotFound again, twice (DeleteBucketEncryption of nothing is a 204 as on S3)
    for _ in 0..2 {
        c.delete_bucket_encryption()
            .bucket("enc")
            .send()
            .await
            .unwrap();
    }
    assert_unset(c, "enc").await;
    // one event per request, named by its action (DeleteBucketEncryption is a change of the
    // configuration: PutEncryptionConfiguration, as on AWS)
    let ev = audit_events(&g).await;
    let count = |action: &str, ok: bool| {
        ev.iter()
            .filter(|e| e.action == action && (e.status < 300) == ok)
            .count()
    };
    let statuses: Vec<(&str, u16)> = ev.iter().map(|e| (e.action.as_str(), e.status)).collect();
    // 1 put + 2 deletes; 4 + 1 SDK refusals, 4 malformed documents, 1 missing bucket
    assert_eq!(count("PutEncryptionConfiguration", true), 3, "{statuses:?}");
    assert_eq!(
        count("PutEncryptionConfiguration", false),
        10,
        "{statuses:?}"
    );
    assert_eq!(count("GetEncryptionConfiguration", true), 1, "{statuses:?}");
    assert_eq!(
        count("GetEncryptionConfiguration", false),
        3,
        "{statuses:?}"
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reindex_restores_the_default_encryption() {
    let g = start().await;
    g.client.create_bucket().bucket("enc").send().await.unwrap();
    put(&g.client, "enc", config(ServerSideEncryption::Aes256, None))
        .await
        .unwrap();
    let cfg = common::config(g.dir.path());
    let TestGateway {
        server, dir: _dir, ..
    } = g;
    server.shutdown().await;
    common::remove_index(&cfg);
    let ctx = OpsContext::open(&cfg).await.expect("open");
    let report = run(
        &ctx,
        &ReindexOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .await
    .expect("reindex");
    ctx.close().await;
    assert!(report.bucket_settings >= 1, "{report:?}");
    let server = gateway::server::start(cfg.clone(), common::admin_api)
        .await
        .expect("restart");
    let client = common::client_for(&format!("http://{}", server.s3_addr), AK, SK);
    assert_eq!(
        stored(&client, "enc").await,
        (ServerSideEncryption::Aes256, None, Some(true))
    );
    server.shutdown().await;
}
