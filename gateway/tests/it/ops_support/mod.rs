//! Shared by the ops_* tests: fills a real in-process gateway with a known set of objects (single
//! PUTs with headers, user metadata and checksums, an empty object, an overwritten key, a
//! multipart object, a non-ASCII key, an upload left in progress) and snapshots what S3 clients
//! see (listings, sizes, ETags, last-modified, headers, metadata, SHA-256 of the bodies).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use sha2::{Digest, Sha256};

pub const BUCKETS: [&str; 2] = ["alpha", "beta"];

/// What a client sees of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjState {
    pub key: String,
    pub size: i64,
    pub etag: String,
    pub last_modified: String,
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub metadata: Option<HashMap<String, String>>,
    pub checksum_sha256: Option<String>,
    pub checksum_crc32c: Option<String>,
    pub checksum_type: Option<String>,
    /// each part's CRC32C (GetObjectAttributes' ObjectParts) of a multipart object
    pub part_checksums: Vec<Option<String>>,
    pub sha256: String,
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    getrandom::fill(&mut v).expect("random");
    v
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// Fills the gateway; returns the number of backend objects that should be referenced
/// (object streams + parts + manifest + the pending upload's part).
pub async fn populate(c: &Client) -> usize {
    for b in BUCKETS {
        c.create_bucket()
            .bucket(b)
            .send()
            .await
            .expect("create bucket");
    }
    c.put_object()
        .bucket("alpha")
        .key("a/one.txt")
        .content_type("text/plain")
        .metadata("color", "blue")
        .metadata("owner-id", "42")
        .checksum_algorithm(ChecksumAlgorithm::Sha256)
        .body(ByteStream::from_static(b"hello, reindex"))
        .send()
        .await
        .expect("put one");
    c.put_object()
        .bucket("alpha")
        .key("a/two.bin")
        .cache_control("max-age=60")
        .body(ByteStream::from(random_bytes(200 * 1024 + 7)))
        .send()
        .await
        .expect("put two");
    c.put_object()
        .bucket("alpha")
        .key("empty")
        .body(ByteStream::from_static(b""))
        .send()
        .await
        .expect("put empty");
    for body in [&b"first version"[..], &b"second version, longer"[..]] {
        c.put_object()
            .bucket("alpha")
            .key("over")
            .body(ByteStream::from(body.to_vec()))
            .send()
            .await
            .expect("put over");
    }
    // multipart: 5 MiB + 1 MiB + 3 bytes, with a FULL_OBJECT CRC32C and per-part CRC32Cs
    let up = c
        .create_multipart_upload()
        .bucket("alpha")
        .key("mp/big.dat")
        .content_type("application/x-test")
        .metadata("kind", "multipart")
        .checksum_algorithm(ChecksumAlgorithm::Crc32C)
        .checksum_type(aws_sdk_s3::types::ChecksumType::FullObject)
        .send()
        .await
        .expect("create mpu");
    let uid = up.upload_id().expect("upload id").to_owned();
    let mut parts = Vec::new();
    for (n, len) in [(1, 5 * 1024 * 1024), (2, 1024 * 1024 + 3)] {
        let r = c
            .upload_part()
            .bucket("alpha")
            .key("mp/big.dat")
            .upload_id(&uid)
            .part_number(n)
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .body(ByteStream::from(random_bytes(len)))
            .send()
            .await
            .expect("upload part");
        parts.push(
            CompletedPart::builder()
                .part_number(n)
                .e_tag(r.e_tag().expect("etag"))
                .build(),
        );
    }
    c.complete_multipart_upload()
        .bucket("alpha")
        .key("mp/big.dat")
        .upload_id(&uid)
        .multipart_upload(
            CompletedMultipartUpload::builder()
                .set_parts(Some(parts))
                .build(),
        )
        .send()
        .await
        .expect("complete");
    c.put_object()
        .bucket("beta")
        .key("ünï/cödé key")
        .content_type("text/x-unicode")
        .body(ByteStream::from(random_bytes(70_000)))
        .send()
        .await
        .expect("put unicode");
    // an upload left in progress: its part is referenced by the index, not by any object
    let pending = c
        .create_multipart_upload()
        .bucket("beta")
        .key("pending")
        .send()
        .await
        .expect("create pending");
    c.upload_part()
        .bucket("beta")
        .key("pending")
        .upload_id(pending.upload_id().expect("upload id"))
        .part_number(1)
        .body(ByteStream::from(random_bytes(1000)))
        .send()
        .await
        .expect("pending part");
    // one, two, empty, over, 2 parts + manifest, unicode, pending part
    9
}

/// Everything a client sees, per bucket, in listing order.
pub async fn snapshot(c: &Client) -> BTreeMap<String, Vec<ObjState>> {
    let mut out = BTreeMap::new();
    for b in BUCKETS {
        let list = c.list_objects_v2().bucket(b).send().await.expect("list");
        let mut objs = Vec::new();
        for o in list.contents() {
            let key = o.key().expect("key").to_owned();
            let head = c
                .head_object()
                .bucket(b)
                .key(&key)
                .checksum_mode(aws_sdk_s3::types::ChecksumMode::Enabled)
                .send()
                .await
                .expect("head");
            let body = c
                .get_object()
                .bucket(b)
                .key(&key)
                .send()
                .await
                .expect("get")
                .body
                .collect()
                .await
                .expect("body")
                .into_bytes();
            assert_eq!(Some(body.len() as i64), o.size(), "{b}/{key}: body length");
            assert_eq!(o.e_tag(), head.e_tag(), "{b}/{key}: list and head ETag");
            let attrs = c
                .get_object_attributes()
                .bucket(b)
                .key(&key)
                .object_attributes(aws_sdk_s3::types::ObjectAttributes::ObjectParts)
                .send()
                .await
                .expect("attributes");
            let part_checksums = attrs
                .object_parts()
                .map(|p| {
                    p.parts()
                        .iter()
                        .map(|x| x.checksum_crc32_c().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            objs.push(ObjState {
                key,
                size: o.size().expect("size"),
                etag: o.e_tag().expect("etag").to_owned(),
                last_modified: format!("{:?}", o.last_modified()),
                content_type: head.content_type().map(str::to_owned),
                cache_control: head.cache_control().map(str::to_owned),
                metadata: head.metadata().cloned(),
                checksum_sha256: head.checksum_sha256().map(str::to_owned),
                checksum_crc32c: head.checksum_crc32_c().map(str::to_owned),
                checksum_type: head.checksum_type().map(|t| t.as_str().to_owned()),
                part_checksums,
                sha256: sha256_hex(&body),
            });
        }
        out.insert(b.to_owned(), objs);
    }
    out
}
