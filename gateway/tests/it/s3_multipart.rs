//! In-process aws-sdk-s3 tests of multipart uploads (ETag "-N", part-spanning ranges, partNumber,
//! UploadPartCopy, InvalidPart / InvalidPartOrder / EntityTooSmall / NoSuchUpload, ListParts,
//! ListMultipartUploads, abort).

use crate::common;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use common::*;

const MIB: usize = 1024 * 1024;

fn part(n: i32, etag: &str) -> CompletedPart {
    CompletedPart::builder().part_number(n).e_tag(etag).build()
}

fn multipart_etag(parts: &[&[u8]]) -> String {
    use md5::Digest;
    let mut all = Vec::new();
    for p in parts {
        all.extend_from_slice(&md5::Md5::digest(p));
    }
    format!(
        "\"{}-{}\"",
        hex::encode(md5::Md5::digest(&all)),
        parts.len()
    )
}

#[tokio::test]
async fn multipart_upload_round_trip() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("mpu").send().await.unwrap();
    let p1 = data(5 * MIB, 11);
    let p2 = data(5 * MIB + 7, 12);
    let p3 = data(1234, 13);
    let up = c
        .create_multipart_upload()
        .bucket("mpu")
        .key("obj")
        .content_type("video/mp4")
        .metadata("origin", "test")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap().to_owned();
    assert_eq!(
        up.server_side_encryption().map(|s| s.as_str()),
        Some("AES256")
    );

    // upload out of order; re-upload part 2 (replaces the first attempt)
    let mut etags = std::collections::BTreeMap::new();
    for (n, body) in [(3, &p3), (2, &p1), (1, &p1), (2, &p2)] {
        let r = c
            .upload_part()
            .bucket("mpu")
            .key("obj")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(body.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.e_tag().unwrap(), format!("\"{}\"", md5_hex(body)));
        etags.insert(n, r.e_tag().unwrap().to_owned());
    }
    let parts = c
        .list_parts()
        .bucket("mpu")
        .key("obj")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    let listed: Vec<(i32, i64)> = parts
        .parts()
        .iter()
        .map(|p| (p.part_number().unwrap(), p.size().unwrap()))
        .collect();
    assert_eq!(
        listed,
        vec![
            (1, p1.len() as i64),
            (2, p2.len() as i64),
            (3, p3.len() as i64)
        ]
    );
    let paged = c
        .list_parts()
        .bucket("mpu")
        .key("obj")
        .upload_id(&id)
        .max_parts(2)
        .send()
        .await
        .unwrap();
    assert_eq!(paged.parts().len(), 2);
    assert_eq!(paged.is_truncated(), Some(true));
    let rest = c
        .list_parts()
        .bucket("mpu")
        .key("obj")
        .upload_id(&id)
        .part_number_marker(paged.next_part_number_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.parts().len(), 1);
    let uploads = c
        .list_multipart_uploads()
        .bucket("mpu")
        .send()
        .await
        .unwrap();
    assert_eq!(uploads.uploads().len(), 1);
    assert_eq!(uploads.uploads()[0].upload_id(), Some(id.as_str()));

    let done = c
        .complete_multipart_upload()
        .bucket("mpu")
        .key("obj")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(part(1, &etags[&1]))
                .parts(part(2, &etags[&2]))
                .parts(part(3, &etags[&3]))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let want = multipart_etag(&[&p1, &p2, &p3]);
    assert_eq!(done.e_tag(), Some(want.as_str()));
    assert!(want.ends_with("-3\""));

    let mut whole = p1.clone();
    whole.extend_from_slice(&p2);
    whole.extend_from_slice(&p3);
    let head = c
        .head_object()
        .bucket("mpu")
        .key("obj")
        .send()
        .await
        .unwrap();
    assert_eq!(head.e_tag(), Some(want.as_str()));
    assert_eq!(head.content_length(), Some(whole.len() as i64));
    assert_eq!(head.content_type(), Some("video/mp4"));
    assert_eq!(
        head.metadata().unwrap().get("origin").map(String::as_str),
        Some("test")
    );
    let list = c.list_objects_v2().bucket("mpu").send().await.unwrap();
    assert_eq!(list.contents()[0].e_tag(), Some(want.as_str()));
    assert_eq!(list.contents()[0].size(), Some(whole.len() as i64));

    let get = c
        .get_object()
        .bucket("mpu")
        .key("obj")
        .send()
        .await
        .unwrap();
    assert_eq!(get.e_tag(), Some(want.as_str()));
    let got = get.body.collect().await.unwrap().into_bytes();
    assert_eq!(sha256_hex(&got), sha256_hex(&whole));

    // a range spanning the part boundary, and a suffix range in the last part
    let a = 5 * MIB as u64 - 100;
    let r = c
        .get_object()
        .bucket("mpu")
        .key("obj")
        .range(format!("bytes={a}-{}", a + 299))
        .send()
        .await
        .unwrap();
    let got = r.body.collect().await.unwrap().into_bytes();
    assert_eq!(&got[..], &whole[a as usize..a as usize + 300]);
    let r = c
        .get_object()
        .bucket("mpu")
        .key("obj")
        .range("bytes=-2000")
        .send()
        .await
        .unwrap();
    let got = r.body.collect().await.unwrap().into_bytes();
    assert_eq!(&got[..], &whole[whole.len() - 2000..]);

    // partNumber
    let pn = c
        .get_object()
        .bucket("mpu")
        .key("obj")
        .part_number(2)
        .send()
        .await
        .unwrap();
    assert_eq!(pn.parts_count(), Some(3));
    assert_eq!(pn.content_length(), Some(p2.len() as i64));
    let got = pn.body.collect().await.unwrap().into_bytes();
    assert_eq!(&got[..], &p2[..]);
    let e = c
        .get_object()
        .bucket("mpu")
        .key("obj")
        .part_number(4)
        .send()
        .await
        .unwrap_err();
    // beyond the part count: 400 InvalidPart, as S3 answers
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidPart"));

    // the upload is gone
    assert!(
        c.list_multipart_uploads()
            .bucket("mpu")
            .send()
            .await
            .unwrap()
            .uploads()
            .is_empty()
    );
    let e = c
        .upload_part()
        .bucket("mpu")
        .key("obj")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");

    // copy of a multipart object: same bytes
    c.copy_object()
        .bucket("mpu")
        .key("copy")
        .copy_source("mpu/obj")
        .send()
        .await
        .unwrap();
    let got = c
        .get_object()
        .bucket("mpu")
        .key("copy")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(sha256_hex(&got), sha256_hex(&whole));
    // the backend holds exactly: 3 parts + manifest, and the copy (replaced part 2 collected)
    let n = backend_objects(&g).await;
    assert_eq!(n, 5);
    g.stop().await;
}

#[tokio::test]
async fn complete_rejects_bad_part_lists() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("bad").send().await.unwrap();
    let small = data(1000, 21);
    let big = data(5 * MIB, 22);
    let id = c
        .create_multipart_upload()
        .bucket("bad")
        .key("k")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let mut et = Vec::new();
    for (n, b) in [(1, &small), (2, &big), (3, &small)] {
        let r = c
            .upload_part()
            .bucket("bad")
            .key("k")
            .upload_id(&id)
            .part_number(n)
            .body(ByteStream::from(b.clone()))
            .send()
            .await
            .unwrap();
        et.push(r.e_tag().unwrap().to_owned());
    }
    let complete = |parts: Vec<CompletedPart>| {
        c.complete_multipart_upload()
            .bucket("bad")
            .key("k")
            .upload_id(&id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
    };
    let e = complete(vec![part(2, &et[1]), part(1, &et[0])])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidPartOrder");
    let e = complete(vec![part(2, &et[1]), part(4, &et[1])])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidPart");
    let e = complete(vec![part(2, "\"00000000000000000000000000000000\"")])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidPart");
    let e = complete(vec![part(1, &et[0]), part(2, &et[1])])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "EntityTooSmall");
    assert_eq!(status(&e), 400);
    // nothing became visible
    assert_eq!(
        status(
            &c.head_object()
                .bucket("bad")
                .key("k")
                .send()
                .await
                .unwrap_err()
        ),
        404
    );
    // a valid subset works: 2 (5 MiB) then 3 (small, last)
    let ok = complete(vec![part(2, &et[1]), part(3, &et[2])])
        .await
        .unwrap();
    assert_eq!(ok.e_tag().unwrap(), multipart_etag(&[&big, &small]));
    let got = c
        .get_object()
        .bucket("bad")
        .key("k")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let mut want = big.clone();
    want.extend_from_slice(&small);
    assert_eq!(sha256_hex(&got), sha256_hex(&want));
    // unused part 1 was collected: 2 parts + manifest remain
    let n = backend_objects(&g).await;
    assert_eq!(n, 3);

    let e = c
        .upload_part()
        .bucket("bad")
        .key("k")
        .upload_id("does-not-exist")
        .part_number(1)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    g.stop().await;
}

#[tokio::test]
async fn abort_and_upload_part_copy() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("abt").send().await.unwrap();
    let id = c
        .create_multipart_upload()
        .bucket("abt")
        .key("gone")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    c.upload_part()
        .bucket("abt")
        .key("gone")
        .upload_id(&id)
        .part_number(1)
        .body(ByteStream::from(data(1000, 1)))
        .send()
        .await
        .unwrap();
    c.abort_multipart_upload()
        .bucket("abt")
        .key("gone")
        .upload_id(&id)
        .send()
        .await
        .unwrap();
    assert!(
        c.list_multipart_uploads()
            .bucket("abt")
            .send()
            .await
            .unwrap()
            .uploads()
            .is_empty()
    );
    let e = c
        .list_parts()
        .bucket("abt")
        .key("gone")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    let e = c
        .abort_multipart_upload()
        .bucket("abt")
        .key("gone")
        .upload_id(&id)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "NoSuchUpload");
    assert_eq!(backend_objects(&g).await, 0);

    // UploadPartCopy with a source range
    let src = data(6 * MIB + 10, 31);
    c.put_object()
        .bucket("abt")
        .key("src")
        .body(ByteStream::from(src.clone()))
        .send()
        .await
        .unwrap();
    let id = c
        .create_multipart_upload()
        .bucket("abt")
        .key("dst")
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let r1 = c
        .upload_part_copy()
        .bucket("abt")
        .key("dst")
        .upload_id(&id)
        .part_number(1)
        .copy_source("abt/src")
        .copy_source_range(format!("bytes=0-{}", 5 * MIB - 1))
        .send()
        .await
        .unwrap();
    let r2 = c
        .upload_part_copy()
        .bucket("abt")
        .key("dst")
        .upload_id(&id)
        .part_number(2)
        .copy_source("abt/src")
        .copy_source_range(format!("bytes={}-{}", 5 * MIB, src.len() - 1))
        .send()
        .await
        .unwrap();
    let e1 = r1.copy_part_result().unwrap().e_tag().unwrap().to_owned();
    let e2 = r2.copy_part_result().unwrap().e_tag().unwrap().to_owned();
    assert_eq!(e1, format!("\"{}\"", md5_hex(&src[..5 * MIB])));
    let e = c
        .upload_part_copy()
        .bucket("abt")
        .key("dst")
        .upload_id(&id)
        .part_number(3)
        .copy_source("abt/src")
        .copy_source_range(format!("bytes=0-{}", src.len()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 416);
    c.complete_multipart_upload()
        .bucket("abt")
        .key("dst")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(part(1, &e1))
                .parts(part(2, &e2))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let got = c
        .get_object()
        .bucket("abt")
        .key("dst")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert_eq!(sha256_hex(&got), sha256_hex(&src));
    g.stop().await;
}
