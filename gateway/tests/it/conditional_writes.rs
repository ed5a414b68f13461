//! Conditional writes that race: `If-None-Match: *` and `If-Match: <etag>` on PutObject and
//! CompleteMultipartUpload sent by many clients at the same moment. The condition is checked
//! again inside the write's index transaction (under the key's lock), so exactly the writes the
//! condition admits succeed — one creator of a key, one writer per ETag — and the others get
//! 412 PreconditionFailed with nothing of theirs left behind (no version, no blob). Conditional
//! deletes (`If-Match` on DeleteObject) racing a PUT never remove the newer object. Runs on
//! SQLite, and on PostgreSQL when `VAULTGATE_TEST_DATABASE_URL` is set.

use crate::common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::*;

const RACERS: u64 = 12;

/// The test's client with the SDK's retries off: every answer is seen as sent.
fn no_retries(g: &TestGateway) -> aws_sdk_s3::Client {
    let conf = g
        .client
        .config()
        .to_builder()
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

/// Collects the racers' outcomes: the winners' indices, and asserts every loser got 412.
async fn outcomes(racers: Vec<tokio::task::JoinHandle<Result<(), (u16, String)>>>) -> Vec<usize> {
    let mut winners = Vec::new();
    for (i, r) in racers.into_iter().enumerate() {
        match r.await.expect("racer") {
            Ok(()) => winners.push(i),
            Err((status, code)) => {
                assert_eq!(status, 412, "racer {i}: {code:?}");
                assert_eq!(code, "PreconditionFailed", "racer {i}");
            }
        }
    }
    winners
}

async fn body_of(c: &aws_sdk_s3::Client, key: &str) -> Vec<u8> {
    let out = c.get_object().bucket("race").key(key).send().await.unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

/// The backend holds exactly what the index references once garbage is collected.
async fn no_orphans(g: &TestGateway) {
    let index = g.server.store.index();
    gateway::index::collect_garbage(index, g.server.store.backend().as_ref())
        .await
        .unwrap();
    let live = index.referenced_backend_ids().await.unwrap();
    assert_eq!(
        backend_objects(g).await,
        live.len(),
        "no blob of a refused write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_puts_with_if_none_match_create_a_key_once() {
    let g = start().await;
    let c = no_retries(&g);
    c.create_bucket().bucket("race").send().await.unwrap();
    for round in 0..3u64 {
        let key = format!("once-{round}");
        let racers = (0..RACERS)
            .map(|i| {
                let (c, key) = (c.clone(), key.clone());
                tokio::spawn(async move {
                    c.put_object()
                        .bucket("race")
                        .key(key)
                        .if_none_match("*")
                        .body(ByteStream::from(data(5000, round * 100 + i)))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| (status(&e), code(&e)))
                })
            })
            .collect();
        let winners = outcomes(racers).await;
        assert_eq!(
            winners.len(),
            1,
            "round {round}: one creator, got {winners:?}"
        );
        let won = winners[0] as u64;
        assert_eq!(body_of(&c, &key).await, data(5000, round * 100 + won));
    }
    let listed = c
        .list_object_versions()
        .bucket("race")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.versions().len(), 3, "one version per key");
    no_orphans(&g).await;
    // the audit trail says so: every refused PUT ends in an error event with its 412
    let events = audit_events(&g).await;
    let refused = |e: &&audit::StoredEvent| {
        e.action == "PutObject"
            && e.status == 412
            && e.error_code.as_deref() == Some("PreconditionFailed")
    };
    assert_eq!(
        events.iter().filter(refused).count() as u64,
        3 * (RACERS - 1),
        "one 412 event per refused PUT"
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_puts_with_if_match_of_one_etag_admit_one_writer() {
    let g = start().await;
    let c = no_retries(&g);
    c.create_bucket().bucket("race").send().await.unwrap();
    enable_versioning(&c, "race").await;
    let first = c
        .put_object()
        .bucket("race")
        .key("doc")
        .body(ByteStream::from(data(3000, 1)))
        .send()
        .await
        .unwrap();
    let etag = first.e_tag().unwrap().to_owned();
    // every racer read the same ETag and sends a different body: only one can replace it
    let racers = (0..RACERS)
        .map(|i| {
            let (c, etag) = (c.clone(), etag.clone());
            tokio::spawn(async move {
                c.put_object()
                    .bucket("race")
                    .key("doc")
                    .if_match(etag)
                    .body(ByteStream::from(data(3000, 10 + i)))
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| (status(&e), code(&e)))
            })
        })
        .collect();
    let winners = outcomes(racers).await;
    assert_eq!(winners.len(), 1, "one writer per ETag, got {winners:?}");
    assert_eq!(body_of(&c, "doc").await, data(3000, 10 + winners[0] as u64));
    let listed = c
        .list_object_versions()
        .bucket("race")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.versions().len(), 2, "the first and the winner's");
    no_orphans(&g).await;
    g.stop().await;
}

/// Creates an upload of `key` with one part of `seed`'s data; answers its id and parts.
async fn upload_of(
    c: &aws_sdk_s3::Client,
    key: &str,
    seed: u64,
) -> (String, CompletedMultipartUpload) {
    let up = c
        .create_multipart_upload()
        .bucket("race")
        .key(key)
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap().to_owned();
    let part = c
        .upload_part()
        .bucket("race")
        .key(key)
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from(data(6000, seed)))
        .send()
        .await
        .unwrap();
    let done = CompletedMultipartUpload::builder()
        .parts(
            CompletedPart::builder()
                .part_number(1)
                .e_tag(part.e_tag().unwrap())
                .build(),
        )
        .build();
    (id, done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_completions_with_if_none_match_create_a_key_once_and_keep_the_losers_uploads() {
    let g = start().await;
    let c = no_retries(&g);
    c.create_bucket().bucket("race").send().await.unwrap();
    let mut uploads = Vec::new();
    for i in 0..6u64 {
        uploads.push(upload_of(&c, "assembled", 50 + i).await);
    }
    let racers = uploads
        .iter()
        .cloned()
        .map(|(id, done)| {
            let c = c.clone();
            tokio::spawn(async move {
                c.complete_multipart_upload()
                    .bucket("race")
                    .key("assembled")
                    .upload_id(id)
                    .multipart_upload(done)
                    .if_none_match("*")
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| (status(&e), code(&e)))
            })
        })
        .collect();
    let winners = outcomes(racers).await;
    assert_eq!(
        winners.len(),
        1,
        "one completion creates the key, got {winners:?}"
    );
    assert_eq!(
        body_of(&c, "assembled").await,
        data(6000, 50 + winners[0] as u64)
    );
    // a refused completion changed nothing: its upload is still there, and can be aborted
    let open = c
        .list_multipart_uploads()
        .bucket("race")
        .send()
        .await
        .unwrap();
    assert_eq!(open.uploads().len(), 5, "the losers' uploads remain");
    for (i, (id, _)) in uploads.iter().enumerate() {
        if i != winners[0] {
            c.abort_multipart_upload()
                .bucket("race")
                .key("assembled")
                .upload_id(id)
                .send()
                .await
                .unwrap();
        }
    }
    no_orphans(&g).await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copy_object_honours_conditions_on_its_destination() {
    let g = start().await;
    let c = no_retries(&g);
    c.create_bucket().bucket("race").send().await.unwrap();
    let put = |key: &'static str, seed: u64| {
        c.put_object()
            .bucket("race")
            .key(key)
            .body(ByteStream::from(data(4000, seed)))
            .send()
    };
    put("src", 1).await.unwrap();
    let dst = put("dst", 2).await.unwrap();
    let copy = |key: &'static str| {
        c.copy_object()
            .bucket("race")
            .key(key)
            .copy_source("race/src")
    };

    let e = copy("dst").if_none_match("*").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (412, "PreconditionFailed"));
    let e = copy("dst").if_match("\"0123\"").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (412, "PreconditionFailed"));
    let e = copy("absent").if_match("*").send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (404, "NoSuchKey"));
    assert_eq!(
        body_of(&c, "dst").await,
        data(4000, 2),
        "refused copies changed nothing"
    );

    copy("fresh").if_none_match("*").send().await.unwrap();
    assert_eq!(body_of(&c, "fresh").await, data(4000, 1));
    copy("dst")
        .if_match(dst.e_tag().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(body_of(&c, "dst").await, data(4000, 1));
    no_orphans(&g).await;
    g.stop().await;
}

/// One round of the delete race: `key` holds `old`; one PUT of `new` and eight DELETEs with
/// `If-Match: <old's ETag>` go at once. Whatever the order, the newer object survives: a
/// delete either ran before the PUT (then the PUT recreated the key) or saw the new ETag (412).
async fn delete_race_round(c: &aws_sdk_s3::Client, bucket: &str, key: &str, round: u64) -> usize {
    let old = data(2000, 1000 + round);
    let new = data(2000, 2000 + round);
    let etag = c
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(old))
        .send()
        .await
        .unwrap()
        .e_tag()
        .unwrap()
        .to_owned();
    let mut deletes = Vec::new();
    for _ in 0..8 {
        let (c, b, k, e) = (c.clone(), bucket.to_owned(), key.to_owned(), etag.clone());
        deletes.push(tokio::spawn(async move {
            c.delete_object().bucket(b).key(k).if_match(e).send().await
        }));
    }
    c.put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(new.clone()))
        .send()
        .await
        .unwrap();
    let mut refused = 0;
    for d in deletes {
        match d.await.unwrap() {
            Ok(_) => {}
            Err(e) => {
                assert_eq!((status(&e), code(&e).as_str()), (412, "PreconditionFailed"));
                refused += 1;
            }
        }
    }
    let got = c.get_object().bucket(bucket).key(key).send().await;
    let got = got.unwrap_or_else(|e| panic!("round {round}: the newer object was deleted: {e:?}"));
    let body = got.body.collect().await.unwrap().into_bytes();
    assert_eq!(body.as_ref(), new.as_slice(), "round {round}");
    refused
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_conditional_deletes_never_remove_a_newer_object() {
    let g = start().await;
    let c = no_retries(&g);
    c.create_bucket().bucket("race").send().await.unwrap();
    c.create_bucket().bucket("race-v").send().await.unwrap();
    enable_versioning(&c, "race-v").await;
    let mut refused = 0;
    for round in 0..15u64 {
        refused += delete_race_round(&c, "race", "plain", round).await;
        refused += delete_race_round(&c, "race-v", "versioned", round).await;
    }
    eprintln!("{refused} of 240 conditional deletes refused with 412");
    no_orphans(&g).await;
    g.stop().await;
}
