//! Bucket ownership controls and the public access block against the in-process gateway
//! (aws-sdk-s3, SigV4): Put/Get/DeleteBucketOwnershipControls and `x-amz-object-ownership` on
//! CreateBucket, Put/Get/DeletePublicAccessBlock — stored per bucket, reported back, removed,
//! validated with S3's codes (MalformedXML for a bad body, InvalidArgument for a bad header, 404
//! OwnershipControlsNotFoundError / NoSuchPublicAccessBlockConfiguration without a setting,
//! NoSuchBucket), kept across a restart, one audit event per request named by its action.

use crate::common;

use aws_sdk_s3::types::{
    ObjectOwnership, OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration,
};
use common::*;

fn rule(o: ObjectOwnership) -> OwnershipControlsRule {
    OwnershipControlsRule::builder()
        .object_ownership(o)
        .build()
        .unwrap()
}

fn controls(rules: Vec<OwnershipControlsRule>) -> OwnershipControls {
    OwnershipControls::builder()
        .set_rules(Some(rules))
        .build()
        .unwrap()
}

async fn ownership_of(c: &aws_sdk_s3::Client, bucket: &str) -> Result<String, String> {
    match c
        .get_bucket_ownership_controls()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(o) => {
            let rules = o.ownership_controls.map(|c| c.rules).unwrap_or_default();
            assert_eq!(rules.len(), 1, "{rules:?}");
            Ok(rules[0].object_ownership.as_str().to_owned())
        }
        Err(e) => Err(format!("{} {}", status(&e), code(&e))),
    }
}

#[tokio::test]
async fn ownership_controls_are_stored_reported_and_removed() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("own1").send().await.unwrap();
    // none yet
    assert_eq!(
        ownership_of(c, "own1").await,
        Err("404 OwnershipControlsNotFoundError".into())
    );
    for v in [
        ObjectOwnership::BucketOwnerEnforced,
        ObjectOwnership::BucketOwnerPreferred,
        ObjectOwnership::ObjectWriter,
    ] {
        c.put_bucket_ownership_controls()
            .bucket("own1")
            .ownership_controls(controls(vec![rule(v.clone())]))
            .send()
            .await
            .unwrap();
        assert_eq!(ownership_of(c, "own1").await, Ok(v.as_str().to_owned()));
    }
    // bad bodies: two rules, an unknown value; the stored value is unchanged
    for bad in [
        controls(vec![
            rule(ObjectOwnership::ObjectWriter),
            rule(ObjectOwnership::BucketOwnerEnforced),
        ]),
        controls(vec![rule(ObjectOwnership::from("Nobody"))]),
    ] {
        let e = c
            .put_bucket_ownership_controls()
            .bucket("own1")
            .ownership_controls(bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!((status(&e), code(&e)), (400, "MalformedXML".into()));
    }
    assert_eq!(ownership_of(c, "own1").await, Ok("ObjectWriter".into()));
    // no such bucket
    let e = c
        .put_bucket_ownership_controls()
        .bucket("nope")
        .ownership_controls(controls(vec![rule(ObjectOwnership::ObjectWriter)]))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e)), (404, "NoSuchBucket".into()));
    // removed (twice: the second is not an error, as on S3)
    for _ in 0..2 {
        c.delete_bucket_ownership_controls()
            .bucket("own1")
            .send()
            .await
            .unwrap();
        assert_eq!(
            ownership_of(c, "own1").await,
            Err("404 OwnershipControlsNotFoundError".into())
        );
    }
    let ev = audit_events(&g).await;
    let count = |a: &str, st: u16| {
        ev.iter()
            .filter(|e| e.action == a && e.status == st)
            .count()
    };
    // Put x3 and Delete x2 (204 on the wire) are PutBucketOwnershipControls (as on AWS);
    // refusals audited too
    assert_eq!(count("PutBucketOwnershipControls", 200), 5);
    assert_eq!(count("PutBucketOwnershipControls", 400), 2);
    assert_eq!(count("GetBucketOwnershipControls", 200), 4);
    g.stop().await;
}

#[tokio::test]
async fn create_bucket_records_x_amz_object_ownership() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket()
        .bucket("own2")
        .object_ownership(ObjectOwnership::ObjectWriter)
        .send()
        .await
        .unwrap();
    assert_eq!(ownership_of(c, "own2").await, Ok("ObjectWriter".into()));
    // an unknown value is refused before anything is created
    let e = c
        .create_bucket()
        .bucket("own3")
        .object_ownership(ObjectOwnership::from("Nobody"))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e)), (400, "InvalidArgument".into()));
    let e = c.head_bucket().bucket("own3").send().await.unwrap_err();
    assert_eq!(status(&e), 404);
    // kept across a restart (it is an index setting with its sealed backend record)
    let dir = g.dir;
    g.server.shutdown().await;
    let server = gateway::server::start(config(dir.path()), admin_api)
        .await
        .unwrap();
    let c2 = client_for(&format!("http://{}", server.s3_addr), AK, SK);
    assert_eq!(ownership_of(&c2, "own2").await, Ok("ObjectWriter".into()));
    server.shutdown().await;
}

fn block(
    acls: bool,
    ignore: Option<bool>,
    policy: bool,
    restrict: bool,
) -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration::builder()
        .block_public_acls(acls)
        .set_ignore_public_acls(ignore)
        .block_public_policy(policy)
        .restrict_public_buckets(restrict)
        .build()
}

#[tokio::test]
async fn public_access_block_is_stored_reported_and_removed() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("pab1").send().await.unwrap();
    let e = c
        .get_public_access_block()
        .bucket("pab1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (status(&e), code(&e)),
        (404, "NoSuchPublicAccessBlockConfiguration".into())
    );
    // an absent flag is reported false
    c.put_public_access_block()
        .bucket("pab1")
        .public_access_block_configuration(block(true, None, true, false))
        .send()
        .await
        .unwrap();
    let got = c
        .get_public_access_block()
        .bucket("pab1")
        .send()
        .await
        .unwrap()
        .public_access_block_configuration
        .unwrap();
    assert_eq!(got.block_public_acls, Some(true));
    assert_eq!(got.ignore_public_acls, Some(false));
    assert_eq!(got.block_public_policy, Some(true));
    assert_eq!(got.restrict_public_buckets, Some(false));
    let e = c
        .put_public_access_block()
        .bucket("nope")
        .public_access_block_configuration(block(true, Some(true), true, true))
        .send()
        .await
        .unwrap_err();
    assert_eq!((status(&e), code(&e)), (404, "NoSuchBucket".into()));
    let del = c.delete_public_access_block().bucket("pab1").send().await;
    assert!(del.is_ok(), "{del:?}");
    let e = c
        .get_public_access_block()
        .bucket("pab1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (status(&e), code(&e)),
        (404, "NoSuchPublicAccessBlockConfiguration".into())
    );
    let ev = audit_events(&g).await;
    let count = |a: &str, st: u16| {
        ev.iter()
            .filter(|e| e.action == a && e.status == st)
            .count()
    };
    // the Put and the Delete
    assert_eq!(count("PutBucketPublicAccessBlock", 200), 2);
    assert_eq!(count("PutBucketPublicAccessBlock", 404), 1);
    assert_eq!(count("GetBucketPublicAccessBlock", 404), 2);
    assert_eq!(count("GetBucketPublicAccessBlock", 200), 1);
    g.stop().await;
}
