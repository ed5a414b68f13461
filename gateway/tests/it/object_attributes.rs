//! GetObjectAttributes (issue 16 item 6) through the real aws-sdk-s3 against an in-process
//! gateway: ETag without quotes, size, storage class and stored checksum of a single PUT; the
//! parts of a multipart object paged by `PartNumberMarker` / `MaxParts`; a `versionId`; SSE-C
//! objects only with their key; S3's codes for an unknown attribute, a missing key and a
//! delete marker; one audit event per request. Also `GET/HEAD ?partNumber` beyond the parts
//! (400 InvalidPart, before any SSE-C key check, as S3), and the COMPOSITE checksums of
//! multipart uploads created with `x-amz-checksum-algorithm` (checked on completion, reported
//! by CompleteMultipartUpload, HEAD with checksum mode and GetObjectAttributes) and each part's
//! own checksum (GetObjectAttributes' ObjectParts, `GET ?partNumber` with checksum mode); the
//! FULL_OBJECT CRC32 / CRC32C / CRC64NVME checksums of multipart uploads (the parts' CRCs
//! combined; the test computes every value with the `crc` crate, another implementation).

use crate::common;

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumType, CompletedMultipartUpload, CompletedPart, ObjectAttributes,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::*;

const MIB: usize = 1024 * 1024;

/// Asserts that an SDK call was refused with this status and S3 error code.
fn assert_refused<T, E: aws_sdk_s3::error::ProvideErrorMetadata>(
    r: Result<T, aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>>,
    want: (u16, &str),
) {
    match r {
        Ok(_) => panic!("accepted, want {want:?}"),
        Err(e) => assert_eq!((status(&e), code(&e).as_str()), want),
    }
}
const KEY_B64: &str = "pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs=";
const KEY_MD5: &str = "DWygnHRtgiJ77HCm+1rvHw==";

fn all() -> Vec<ObjectAttributes> {
    vec![
        ObjectAttributes::Etag,
        ObjectAttributes::Checksum,
        ObjectAttributes::ObjectParts,
        ObjectAttributes::StorageClass,
        ObjectAttributes::ObjectSize,
    ]
}

/// GetObjectAttributes of `k`, asking for `want`.
async fn attrs(
    c: &Client,
    b: &str,
    k: &str,
    want: Vec<ObjectAttributes>,
) -> aws_sdk_s3::operation::get_object_attributes::GetObjectAttributesOutput {
    c.get_object_attributes()
        .bucket(b)
        .key(k)
        .set_object_attributes(Some(want))
        .send()
        .await
        .unwrap()
}

/// A completed multipart upload of parts of `sizes` bytes; returns its data and ETag (quoted).
async fn multipart(c: &Client, b: &str, k: &str, sizes: &[usize]) -> (Vec<u8>, String) {
    let id = c
        .create_multipart_upload()
        .bucket(b)
        .key(k)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let mut all = Vec::new();
    let mut done = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        let part = data(*n, i as u64 + 1);
        let pn = i32::try_from(i + 1).unwrap();
        let r = c
            .upload_part()
            .bucket(b)
            .key(k)
            .upload_id(&id)
            .part_number(pn)
            .body(ByteStream::from(part.clone()))
            .send()
            .await
            .unwrap();
        done.push(
            CompletedPart::builder()
                .part_number(pn)
                .e_tag(r.e_tag().unwrap())
                .build(),
        );
        all.extend_from_slice(&part);
    }
    let r = c
        .complete_multipart_upload()
        .bucket(b)
        .key(k)
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(done))
                .build(),
        )
        .send()
        .await
        .unwrap();
    (all, r.e_tag().unwrap().to_owned())
}

#[tokio::test]
async fn attributes_of_single_and_multipart_objects_with_paging() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("attrs").send().await.unwrap();

    // a single PUT with a SHA-256 checksum
    let body = b"attributes!".to_vec();
    let sha = {
        use sha2::Digest;
        B64.encode(sha2::Sha256::digest(&body))
    };
    c.put_object()
        .bucket("attrs")
        .key("one")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from(body.clone()))
        .send()
        .await
        .unwrap();
    let a = attrs(c, "attrs", "one", all()).await;
    // S3 sends this ETag without quotes
    assert_eq!(a.e_tag(), Some(md5_hex(&body).as_str()));
    assert_eq!(a.object_size(), Some(11));
    assert_eq!(a.storage_class().map(|s| s.as_str()), Some("STANDARD"));
    let ck = a.checksum().expect("checksum");
    assert_eq!(ck.checksum_sha256(), Some(sha.as_str()));
    assert_eq!(ck.checksum_type().map(|t| t.as_str()), Some("FULL_OBJECT"));
    assert!(a.object_parts().is_none());
    assert!(a.version_id().is_none());
    assert!(a.last_modified().is_some());

    // only what is asked for
    let a = attrs(c, "attrs", "one", vec![ObjectAttributes::ObjectSize]).await;
    assert_eq!(a.object_size(), Some(11));
    assert!(a.e_tag().is_none() && a.checksum().is_none() && a.storage_class().is_none());

    // a multipart object: parts in order with their sizes, paged
    let sizes = [5 * MIB, 5 * MIB, 5 * MIB, 1234];
    let (whole, etag) = multipart(c, "attrs", "multi", &sizes).await;
    let a = attrs(c, "attrs", "multi", all()).await;
    assert_eq!(a.e_tag(), Some(etag.trim_matches('"')));
    assert!(etag.trim_matches('"').ends_with("-4"));
    assert_eq!(a.object_size(), Some(whole.len() as i64));
    let p = a.object_parts().expect("parts");
    assert_eq!(p.total_parts_count(), Some(4));
    assert_eq!(p.is_truncated(), Some(false));
    let listed: Vec<(i32, i64)> = p
        .parts()
        .iter()
        .map(|x| (x.part_number().unwrap(), x.size().unwrap()))
        .collect();
    let want: Vec<(i32, i64)> = sizes
        .iter()
        .enumerate()
        .map(|(i, n)| (i as i32 + 1, *n as i64))
        .collect();
    assert_eq!(listed, want);

    let a = c
        .get_object_attributes()
        .bucket("attrs")
        .key("multi")
        .object_attributes(ObjectAttributes::ObjectParts)
        .max_parts(2)
        .part_number_marker("1")
        .send()
        .await
        .unwrap();
    let p = a.object_parts().unwrap();
    let listed: Vec<i32> = p.parts().iter().filter_map(|x| x.part_number()).collect();
    assert_eq!(listed, vec![2, 3]);
    assert_eq!(p.is_truncated(), Some(true));
    assert_eq!(p.next_part_number_marker(), Some("3"));
    assert_eq!(p.max_parts(), Some(2));
    let a = c
        .get_object_attributes()
        .bucket("attrs")
        .key("multi")
        .object_attributes(ObjectAttributes::ObjectParts)
        .part_number_marker("3")
        .send()
        .await
        .unwrap();
    let p = a.object_parts().unwrap();
    assert_eq!(p.parts().len(), 1);
    assert_eq!(p.parts()[0].size(), Some(1234));
    assert_eq!(p.is_truncated(), Some(false));

    // S3's codes
    assert_refused(
        c.get_object_attributes()
            .bucket("attrs")
            .key("one")
            .object_attributes(ObjectAttributes::from("Colour"))
            .send()
            .await,
        (400, "InvalidArgument"),
    );
    assert_refused(
        c.get_object_attributes()
            .bucket("attrs")
            .key("none")
            .object_attributes(ObjectAttributes::Etag)
            .send()
            .await,
        (404, "NoSuchKey"),
    );

    // one audit event per request, under the right it used
    let count = |g: &TestGateway| {
        let ledger = g.server.audit.ledger.clone();
        async move {
            ledger
                .query(&audit::AuditQuery {
                    filter: audit::AuditFilter {
                        action: Some("GetObject".into()),
                        ..Default::default()
                    },
                    limit: 1000,
                    ..Default::default()
                })
                .await
                .unwrap()
                .events
                .len()
        }
    };
    let before = count(&g).await;
    c.get_object_attributes()
        .bucket("attrs")
        .key("one")
        .object_attributes(ObjectAttributes::Etag)
        .send()
        .await
        .unwrap();
    assert_eq!(count(&g).await, before + 1);
    g.stop().await;
}

#[tokio::test]
async fn attributes_by_version_and_of_sse_c_objects() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("attrs-v").send().await.unwrap();
    common::enable_versioning(c, "attrs-v").await;
    let mut versions = Vec::new();
    for body in [&b"foo"[..], b"longer"] {
        let out = c
            .put_object()
            .bucket("attrs-v")
            .key("k")
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap();
        versions.push(out.version_id().unwrap().to_owned());
    }
    let (v1, v2) = (versions[0].clone(), versions[1].clone());
    let at = |v: Option<&str>| {
        c.get_object_attributes()
            .bucket("attrs-v")
            .key("k")
            .set_version_id(v.map(str::to_owned))
            .object_attributes(ObjectAttributes::ObjectSize)
            .send()
    };
    let a = at(None).await.unwrap();
    assert_eq!(
        (a.object_size(), a.version_id()),
        (Some(6), Some(v2.as_str()))
    );
    let a = at(Some(&v1)).await.unwrap();
    assert_eq!(
        (a.object_size(), a.version_id()),
        (Some(3), Some(v1.as_str()))
    );
    // the current version is a delete marker: 404 with x-amz-delete-marker, as HEAD
    c.delete_object()
        .bucket("attrs-v")
        .key("k")
        .send()
        .await
        .unwrap();
    let e = at(None).await.unwrap_err();
    assert_eq!(status(&e), 404);
    assert_eq!(
        e.raw_response()
            .and_then(|r| r.headers().get("x-amz-delete-marker")),
        Some("true")
    );
    assert_eq!(at(Some(&v1)).await.unwrap().object_size(), Some(3));

    // SSE-C: the key is needed, as for HEAD
    c.put_object()
        .bucket("attrs-v")
        .key("secret")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(KEY_B64)
        .sse_customer_key_md5(KEY_MD5)
        .body(ByteStream::from_static(b"sealed twice"))
        .send()
        .await
        .unwrap();
    let req = || {
        c.get_object_attributes()
            .bucket("attrs-v")
            .key("secret")
            .object_attributes(ObjectAttributes::ObjectSize)
    };
    let e = req().send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    let other = B64.encode([7u8; 32]);
    let other_md5 = {
        use md5::Digest;
        B64.encode(md5::Md5::digest([7u8; 32]))
    };
    let e = req()
        .sse_customer_algorithm("AES256")
        .sse_customer_key(&other)
        .sse_customer_key_md5(&other_md5)
        .send()
        .await
        .unwrap_err();
    // another key: refused as GET and HEAD refuse it
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    let a = req()
        .sse_customer_algorithm("AES256")
        .sse_customer_key(KEY_B64)
        .sse_customer_key_md5(KEY_MD5)
        .send()
        .await
        .unwrap();
    assert_eq!(a.object_size(), Some(12));
    g.stop().await;
}

#[tokio::test]
async fn part_numbers_beyond_the_parts_are_invalid_part() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("parts").send().await.unwrap();
    c.put_object()
        .bucket("parts")
        .key("single")
        .body(ByteStream::from_static(b"whole"))
        .send()
        .await
        .unwrap();
    // a single PUT is one part: N=1 is the whole object, N=2 InvalidPart
    let r = c
        .get_object()
        .bucket("parts")
        .key("single")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(r.parts_count(), Some(1));
    assert_eq!(&r.body.collect().await.unwrap().into_bytes()[..], b"whole");
    assert_refused(
        c.get_object()
            .bucket("parts")
            .key("single")
            .part_number(2)
            .send()
            .await,
        (400, "InvalidPart"),
    );
    let e = c
        .head_object()
        .bucket("parts")
        .key("single")
        .part_number(2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&e), 400);

    // an SSE-C multipart object: beyond its parts is InvalidPart even without the key
    let id = c
        .create_multipart_upload()
        .bucket("parts")
        .key("mp")
        .sse_customer_algorithm("AES256")
        .sse_customer_key(KEY_B64)
        .sse_customer_key_md5(KEY_MD5)
        .send()
        .await
        .unwrap()
        .upload_id()
        .unwrap()
        .to_owned();
    let r = c
        .upload_part()
        .bucket("parts")
        .key("mp")
        .upload_id(&id)
        .part_number(1)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(KEY_B64)
        .sse_customer_key_md5(KEY_MD5)
        .body(ByteStream::from_static(b"only part"))
        .send()
        .await
        .unwrap();
    c.complete_multipart_upload()
        .bucket("parts")
        .key("mp")
        .upload_id(&id)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .parts(
                    CompletedPart::builder()
                        .part_number(1)
                        .e_tag(r.e_tag().unwrap())
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let part = |n: i32| c.get_object().bucket("parts").key("mp").part_number(n);
    let e = part(2).send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidPart"));
    // within the parts, the key is still needed
    let e = part(1).send().await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidRequest"));
    let r = part(1)
        .sse_customer_algorithm("AES256")
        .sse_customer_key(KEY_B64)
        .sse_customer_key_md5(KEY_MD5)
        .send()
        .await
        .unwrap();
    assert_eq!(r.parts_count(), Some(1));
    assert_eq!(
        &r.body.collect().await.unwrap().into_bytes()[..],
        b"only part"
    );
    g.stop().await;
}

/// A SHA-256 multipart upload of `parts`; returns its id and each part's checksum.
async fn sha256_upload(c: &Client, b: &str, k: &str, parts: &[&[u8]]) -> (String, Vec<String>) {
    let up = c
        .create_multipart_upload()
        .bucket(b)
        .key(k)
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .send()
        .await
        .unwrap();
    assert_eq!(up.checksum_algorithm(), Some(&ChecksumAlgorithm::Sha256));
    let id = up.upload_id().unwrap().to_owned();
    let mut sums = Vec::new();
    for (i, body) in parts.iter().enumerate() {
        let want = {
            use sha2::Digest;
            B64.encode(sha2::Sha256::digest(body))
        };
        let r = c
            .upload_part()
            .bucket(b)
            .key(k)
            .upload_id(&id)
            .part_number(i32::try_from(i + 1).unwrap())
            .checksum_sha256(&want)
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.checksum_sha256(), Some(want.as_str()));
        sums.push(want);
    }
    (id, sums)
}

fn listed(sums: &[String], tamper: Option<usize>) -> CompletedMultipartUpload {
    let parts = sums
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let v = if tamper == Some(i) {
                B64.encode([0u8; 32])
            } else {
                s.clone()
            };
            CompletedPart::builder()
                .part_number(i32::try_from(i + 1).unwrap())
                .checksum_sha256(v)
                .build()
        })
        .collect();
    CompletedMultipartUpload::builder()
        .set_parts(Some(parts))
        .build()
}

#[tokio::test]
async fn multipart_uploads_get_composite_checksums() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("mpck").send().await.unwrap();
    let (p1, p2) = (data(5 * MIB, 1), data(1000, 2));
    let (id, sums) = sha256_upload(c, "mpck", "obj", &[&p1, &p2]).await;
    let composite = {
        use sha2::Digest;
        let mut raw = Vec::new();
        for s in &sums {
            raw.extend(B64.decode(s).unwrap());
        }
        format!("{}-2", B64.encode(sha2::Sha256::digest(&raw)))
    };

    let complete = |tamper: Option<usize>, whole: String| {
        c.complete_multipart_upload()
            .bucket("mpck")
            .key("obj")
            .upload_id(&id)
            .checksum_sha256(whole)
            .multipart_upload(listed(&sums, tamper))
            .send()
    };
    // a part listed with another checksum than it was uploaded with: InvalidPart
    let e = complete(Some(1), composite.clone()).await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "InvalidPart"));
    // a whole-object checksum that is not the composite: BadDigest
    let wrong = format!("{}-2", B64.encode([1u8; 32]));
    let e = complete(None, wrong).await.unwrap_err();
    assert_eq!((status(&e), code(&e).as_str()), (400, "BadDigest"));
    let done = complete(None, composite.clone()).await.unwrap();
    assert_eq!(done.checksum_sha256(), Some(composite.as_str()));
    assert_eq!(done.checksum_type().map(|t| t.as_str()), Some("COMPOSITE"));

    let h = c
        .head_object()
        .bucket("mpck")
        .key("obj")
        .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
        .send()
        .await
        .unwrap();
    assert_eq!(h.checksum_sha256(), Some(composite.as_str()));
    assert_eq!(h.checksum_type().map(|t| t.as_str()), Some("COMPOSITE"));
    let h = c
        .head_object()
        .bucket("mpck")
        .key("obj")
        .send()
        .await
        .unwrap();
    assert_eq!(h.checksum_sha256(), None);
    let a = attrs(c, "mpck", "obj", vec![ObjectAttributes::Checksum]).await;
    let ck = a.checksum().unwrap();
    assert_eq!(ck.checksum_sha256(), Some(composite.as_str()));
    assert_eq!(ck.checksum_type().map(|t| t.as_str()), Some("COMPOSITE"));
    let mut whole = p1.clone();
    whole.extend_from_slice(&p2);
    let got = c
        .get_object()
        .bucket("mpck")
        .key("obj")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.body.collect().await.unwrap().into_bytes().to_vec(),
        whole
    );

    // each part keeps its own checksum: GetObjectAttributes' ObjectParts (paged) and
    // GET/HEAD ?partNumber with checksum mode report it, with the object's type
    let a = c
        .get_object_attributes()
        .bucket("mpck")
        .key("obj")
        .object_attributes(ObjectAttributes::ObjectParts)
        .max_parts(1)
        .part_number_marker("1")
        .send()
        .await
        .unwrap();
    let parts = a.object_parts().unwrap();
    assert_eq!(parts.total_parts_count(), Some(2));
    assert_eq!(parts.parts().len(), 1);
    assert_eq!(parts.parts()[0].part_number(), Some(2));
    assert_eq!(parts.parts()[0].checksum_sha256(), Some(sums[1].as_str()));
    let a = attrs(c, "mpck", "obj", vec![ObjectAttributes::ObjectParts]).await;
    let listed: Vec<_> = a
        .object_parts()
        .unwrap()
        .parts()
        .iter()
        .map(|p| p.checksum_sha256().unwrap().to_owned())
        .collect();
    assert_eq!(listed, sums);
    for (n, (sum, body)) in sums.iter().zip([&p1, &p2]).enumerate() {
        let n = i32::try_from(n + 1).unwrap();
        let got = c
            .get_object()
            .bucket("mpck")
            .key("obj")
            .part_number(n)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(got.checksum_sha256(), Some(sum.as_str()));
        assert_eq!(got.checksum_type().map(|t| t.as_str()), Some("COMPOSITE"));
        assert_eq!(got.parts_count(), Some(2));
        let bytes = got.body.collect().await.unwrap().into_bytes();
        assert_eq!(&bytes[..], &body[..]);
    }
    // without checksum mode, and for a range, none
    let h = c
        .head_object()
        .bucket("mpck")
        .key("obj")
        .part_number(1)
        .send()
        .await
        .unwrap();
    assert_eq!(h.checksum_sha256(), None);
    g.stop().await;
}

/// The CRC of `data` under `algo` with the `crc` crate (not what the gateway uses), base64.
fn crc_b64(algo: &ChecksumAlgorithm, data: &[u8]) -> String {
    match algo {
        ChecksumAlgorithm::Crc32 => B64.encode(
            crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC)
                .checksum(data)
                .to_be_bytes(),
        ),
        ChecksumAlgorithm::Crc32C => B64.encode(
            crc::Crc::<u32>::new(&crc::CRC_32_ISCSI)
                .checksum(data)
                .to_be_bytes(),
        ),
        ChecksumAlgorithm::Crc64Nvme => B64.encode(
            crc::Crc::<u64>::new(&crc::CRC_64_NVME)
                .checksum(data)
                .to_be_bytes(),
        ),
        other => panic!("{other:?} is no CRC"),
    }
}

/// Sets `algo`'s checksum field of a request builder.
macro_rules! with_crc {
    ($builder:expr, $algo:expr, $v:expr) => {
        match $algo {
            ChecksumAlgorithm::Crc32 => $builder.checksum_crc32($v),
            ChecksumAlgorithm::Crc32C => $builder.checksum_crc32_c($v),
            _ => $builder.checksum_crc64_nvme($v),
        }
    };
}

/// The `algo` checksum a response reports.
macro_rules! crc_of {
    ($r:expr, $algo:expr) => {
        match $algo {
            ChecksumAlgorithm::Crc32 => $r.checksum_crc32(),
            ChecksumAlgorithm::Crc32C => $r.checksum_crc32_c(),
            _ => $r.checksum_crc64_nvme(),
        }
    };
}

/// A FULL_OBJECT upload of `parts` under `algo`: its id and each part's CRC (sent with the part).
async fn full_object_upload(
    c: &Client,
    k: &str,
    algo: &ChecksumAlgorithm,
    parts: &[&[u8]],
) -> (String, Vec<String>) {
    let up = c
        .create_multipart_upload()
        .bucket("full")
        .key(k)
        .checksum_algorithm(algo.clone())
        .checksum_type(ChecksumType::FullObject)
        .send()
        .await
        .unwrap();
    assert_eq!(up.checksum_type(), Some(&ChecksumType::FullObject));
    let id = up.upload_id().unwrap().to_owned();
    let mut sums = Vec::new();
    for (i, body) in parts.iter().enumerate() {
        let want = crc_b64(algo, body);
        let req = c
            .upload_part()
            .bucket("full")
            .key(k)
            .upload_id(&id)
            .part_number(i32::try_from(i + 1).unwrap())
            .body(ByteStream::from(body.to_vec()));
        let r = with_crc!(req, algo, &want).send().await.unwrap();
        assert_eq!(crc_of!(r, algo), Some(want.as_str()));
        sums.push(want);
    }
    (id, sums)
}

#[tokio::test]
async fn full_object_multipart_checksums_combine_the_parts_crcs() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("full").send().await.unwrap();
    let (p1, p2) = (data(5 * MIB, 3), data(70_001, 4));
    let mut whole = p1.clone();
    whole.extend_from_slice(&p2);
    for algo in [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32C,
        ChecksumAlgorithm::Crc64Nvme,
    ] {
        let k = algo.as_str().to_owned();
        let (id, sums) = full_object_upload(c, &k, &algo, &[&p1, &p2]).await;
        let want = crc_b64(&algo, &whole);
        let parts = CompletedMultipartUpload::builder()
            .set_parts(Some(
                (1..=2)
                    .map(|n| CompletedPart::builder().part_number(n).build())
                    .collect(),
            ))
            .build();
        let complete = |v: String| {
            let req = c
                .complete_multipart_upload()
                .bucket("full")
                .key(&k)
                .upload_id(&id)
                .multipart_upload(parts.clone());
            with_crc!(req, &algo, v).send()
        };
        // the CRC of another body, and a COMPOSITE-looking value: BadDigest, nothing written
        for bad in [crc_b64(&algo, &p1), format!("{want}-2")] {
            let e = complete(bad).await.unwrap_err();
            assert_eq!((status(&e), code(&e).as_str()), (400, "BadDigest"), "{k}");
        }
        let done = complete(want.clone()).await.unwrap();
        assert_eq!(crc_of!(done, &algo), Some(want.as_str()), "{k}");
        assert_eq!(done.checksum_type(), Some(&ChecksumType::FullObject));
        let h = c
            .head_object()
            .bucket("full")
            .key(&k)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(crc_of!(h, &algo), Some(want.as_str()));
        assert_eq!(h.checksum_type(), Some(&ChecksumType::FullObject));
        let a = attrs(c, "full", &k, all()).await;
        let ck = a.checksum().unwrap();
        assert_eq!(crc_of!(ck, &algo), Some(want.as_str()));
        assert_eq!(ck.checksum_type(), Some(&ChecksumType::FullObject));
        let listed: Vec<_> = a
            .object_parts()
            .unwrap()
            .parts()
            .iter()
            .map(|p| crc_of!(p, &algo).unwrap().to_owned())
            .collect();
        assert_eq!(listed, sums);
        // the whole body (the SDK checks it against the full-object CRC) and part 2 with its own
        let got = c
            .get_object()
            .bucket("full")
            .key(&k)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(
            got.body.collect().await.unwrap().into_bytes().to_vec(),
            whole
        );
        let got = c
            .get_object()
            .bucket("full")
            .key(&k)
            .part_number(2)
            .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
            .send()
            .await
            .unwrap();
        assert_eq!(crc_of!(got, &algo), Some(sums[1].as_str()));
        assert_eq!(got.checksum_type(), Some(&ChecksumType::FullObject));
        assert_eq!(got.body.collect().await.unwrap().into_bytes().to_vec(), p2);
    }
    g.stop().await;
}

#[tokio::test]
async fn checksum_types_an_algorithm_cannot_have_are_refused() {
    let g = start().await;
    let c = &g.client;
    c.create_bucket().bucket("types").send().await.unwrap();
    for (algo, kind) in [
        (ChecksumAlgorithm::Sha256, ChecksumType::FullObject),
        (ChecksumAlgorithm::Sha1, ChecksumType::FullObject),
        (ChecksumAlgorithm::Crc64Nvme, ChecksumType::Composite),
    ] {
        assert_refused(
            c.create_multipart_upload()
                .bucket("types")
                .key("k")
                .checksum_algorithm(algo)
                .checksum_type(kind)
                .send()
                .await,
            (400, "InvalidRequest"),
        );
    }
    // CRC64NVME without a type is FULL_OBJECT, as S3
    let up = c
        .create_multipart_upload()
        .bucket("types")
        .key("k")
        .checksum_algorithm(ChecksumAlgorithm::Crc64Nvme)
        .send()
        .await
        .unwrap();
    assert_eq!(up.checksum_type(), Some(&ChecksumType::FullObject));
    let list = c
        .list_multipart_uploads()
        .bucket("types")
        .send()
        .await
        .unwrap();
    assert_eq!(list.uploads().len(), 1, "only the accepted upload exists");
    assert_eq!(
        list.uploads()[0].checksum_type(),
        Some(&ChecksumType::FullObject)
    );
    // a part sent with a CRC its body does not have: BadDigest; a malformed one: InvalidRequest
    let id = up.upload_id().unwrap();
    let body = data(1000, 9);
    for (v, want) in [
        (
            crc_b64(&ChecksumAlgorithm::Crc64Nvme, b"other"),
            "BadDigest",
        ),
        ("bad".to_owned(), "InvalidRequest"),
    ] {
        assert_refused(
            c.upload_part()
                .bucket("types")
                .key("k")
                .upload_id(id)
                .part_number(1)
                .checksum_crc64_nvme(v)
                .body(ByteStream::from(body.clone()))
                .send()
                .await,
            (400, want),
        );
    }
    g.stop().await;
}
