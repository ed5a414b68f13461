//! Multipart: parts sealed in parallel and out of order, the sealed manifest, and detection of a
//! dropped, swapped, resized or foreign part and of a tampered manifest.

mod common;

use common::*;
use keys::{Error, Header, ObjectMeta, PartEntry, SealParams, StreamKind};

struct Upload {
    key: keys::StreamKey,
    oid: [u8; 16],
    parts: Vec<(Vec<u8>, Vec<u8>, keys::SealSummary)>, // (plaintext, sealed, summary) in part order
}

async fn upload(oid: [u8; 16], sizes: &[usize]) -> Upload {
    let key = random_key("b1");
    // Seal all parts concurrently, started in reverse order.
    let mut handles = Vec::new();
    for (i, &len) in sizes.iter().enumerate().rev() {
        let key = key.clone();
        handles.push(tokio::spawn(async move {
            let plain = data(len, i as u64 + 100);
            let p = SealParams {
                chunk_size: 1024,
                ..SealParams::part("b1", oid, i as u32 + 1)
            };
            let (sealed, sum) = seal_all(&key, p, &plain, 700).await;
            (i, plain, sealed, sum)
        }));
    }
    let mut parts: Vec<_> = Vec::new();
    for h in handles {
        parts.push(h.await.unwrap());
    }
    parts.sort_by_key(|p| p.0);
    Upload {
        key,
        oid,
        parts: parts.into_iter().map(|(_, a, b, c)| (a, b, c)).collect(),
    }
}

fn entries(u: &Upload) -> Vec<PartEntry> {
    u.parts
        .iter()
        .enumerate()
        .map(|(i, (_, sealed, sum))| PartEntry {
            part_number: i as u32 + 1,
            size: sum.plaintext_len,
            md5_hex: hex::encode(sum.md5),
            backend_id: format!("backend-{i}"),
            header_sha256_hex: hex::encode(Header::decode(sealed).unwrap().sha256()),
            checksums: Default::default(),
        })
        .collect()
}

fn manifest_params(oid: [u8; 16]) -> SealParams {
    SealParams {
        kind: StreamKind::Manifest,
        part_number: 0,
        ..SealParams::part("b1", oid, 1)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multipart_roundtrip_and_part_checks() {
    let u = upload([5; 16], &[5000, 3000, 1]).await;
    let parts = entries(&u);
    let total: u64 = parts.iter().map(|p| p.size).sum();
    let meta = ObjectMeta {
        bucket: "b1".into(),
        key: "big".into(),
        size: total,
        etag: keys::multipart_etag(&parts).unwrap(),
        parts: parts.clone(),
        ..ObjectMeta::default()
    };
    assert!(meta.etag.ends_with("-3"));
    let sealed_manifest = keys::seal_manifest(&u.key, manifest_params(u.oid), &meta).unwrap();
    let (mh, opened) = keys::open_manifest(&u.key, &sealed_manifest).unwrap();
    assert_eq!(opened, meta);
    assert_eq!(mh.object_id(), u.oid);

    let headers: Vec<(Header, u64)> = u
        .parts
        .iter()
        .map(|(p, s, _)| (Header::decode(s).unwrap(), p.len() as u64))
        .collect();
    keys::verify_parts(&mh, &opened, &headers).unwrap();
    // Reassemble the object through the range opener.
    let mut whole = Vec::new();
    for (plain, sealed, _) in &u.parts {
        let got = open_range_of(
            &u.key,
            sealed,
            plain.len() as u64,
            0..plain.len() as u64,
            512,
        )
        .await
        .unwrap();
        assert_eq!(&got, plain);
        whole.extend_from_slice(&got);
    }
    assert_eq!(whole.len() as u64, total);

    // Dropped part.
    let dropped = vec![headers[0].clone(), headers[2].clone()];
    assert!(matches!(
        keys::verify_parts(&mh, &opened, &dropped),
        Err(Error::Integrity(_))
    ));
    // Swapped parts.
    let swapped = vec![headers[1].clone(), headers[0].clone(), headers[2].clone()];
    assert!(matches!(
        keys::verify_parts(&mh, &opened, &swapped),
        Err(Error::Integrity(_))
    ));
    // Wrong size.
    let mut resized = headers.clone();
    resized[1].1 -= 1;
    assert!(matches!(
        keys::verify_parts(&mh, &opened, &resized),
        Err(Error::Integrity(_))
    ));
    // A part of the same number from another upload (same data key).
    let other = {
        let p = SealParams {
            chunk_size: 1024,
            ..SealParams::part("b1", [6; 16], 2)
        };
        seal_all(&u.key, p, &data(3000, 101), 700).await.0
    };
    let mut foreign = headers.clone();
    foreign[1].0 = Header::decode(&other).unwrap();
    assert!(matches!(
        keys::verify_parts(&mh, &opened, &foreign),
        Err(Error::Integrity(_))
    ));
    // Same upload, re-uploaded part 2 (new header) that the manifest did not choose.
    let reup = {
        let p = SealParams {
            chunk_size: 1024,
            ..SealParams::part("b1", u.oid, 2)
        };
        seal_all(&u.key, p, &data(3000, 101), 700).await.0
    };
    let mut replaced = headers.clone();
    replaced[1].0 = Header::decode(&reup).unwrap();
    assert!(matches!(
        keys::verify_parts(&mh, &opened, &replaced),
        Err(Error::Integrity(_))
    ));
    // A truncated part (last record dropped) fails to open with the manifest's size.
    let (plain, sealed, _) = &u.parts[0];
    let h0 = Header::decode(sealed).unwrap();
    let l0 = keys::Layout::new(&h0, plain.len() as u64);
    let cut = &sealed[..l0.record_offset(l0.records() - 1) as usize];
    let cr = l0.cipher_range(0..plain.len() as u64);
    let r = collect(keys::open_range(
        &u.key,
        &h0,
        l0,
        0..plain.len() as u64,
        pieces(&cut[cr.start as usize..], 4096),
    ))
    .await;
    assert!(matches!(r, Err(Error::Integrity(_))));

    // Tampered manifest bytes are rejected.
    for i in [
        0usize,
        10,
        mh.len() - 1,
        mh.len() + 5,
        sealed_manifest.len() - 1,
    ] {
        let mut t = sealed_manifest.clone();
        t[i] ^= 1;
        assert!(
            keys::open_manifest(&u.key, &t).is_err(),
            "manifest byte {i}"
        );
    }
    // A part stream is not a manifest.
    assert!(keys::open_manifest(&u.key, &u.parts[0].1).is_err());
    // seal_manifest insists on kind Manifest.
    assert!(keys::seal_manifest(&u.key, SealParams::part("b1", u.oid, 1), &meta).is_err());
}

#[test]
fn multipart_etag_matches_s3() {
    // Two parts whose MD5s are md5("a") and md5("b").
    let p = |n: u32, md5: &str| PartEntry {
        part_number: n,
        size: 1,
        md5_hex: md5.into(),
        backend_id: String::new(),
        header_sha256_hex: String::new(),
        checksums: Default::default(),
    };
    let parts = [
        p(1, "0cc175b9c0f1b6a831c399e269772661"),
        p(2, "92eb5ffee6ae2fec3ad71c777531578f"),
    ];
    // md5(bytes of both digests) computed independently with python hashlib.
    assert_eq!(
        keys::multipart_etag(&parts).unwrap(),
        "96e024ba2074fe77e8e965ba43a704be-2"
    );
    assert!(keys::multipart_etag(&[p(1, "zz")]).is_err());
}
