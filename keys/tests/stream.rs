//! Sealer/opener round trips, range opens, sealed lengths, checksums, and every kind of tampering
//! (header/record bytes, reorder, duplication, truncation, extension, splicing) being rejected.

mod common;

use common::*;
use keys::{ChecksumSet, Error, Header, Layout, ObjectMeta, SealParams, StreamKind};
use proptest::prelude::*;

fn obj_params(chunk: u32) -> SealParams {
    let meta = ObjectMeta {
        bucket: "b1".into(),
        key: "dir/obj.bin".into(),
        last_modified_ms: 1_700_000_000_000,
        headers: [(
            "content-type".to_string(),
            "application/octet-stream".to_string(),
        )]
        .into(),
        user_metadata: [("mtime".to_string(), "1700000000.5".to_string())].into(),
        ..ObjectMeta::default()
    };
    SealParams {
        chunk_size: chunk,
        ..SealParams::object("b1", [7; 16], meta)
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_sizes_and_summary() {
    let key = random_key("b1");
    for (len, chunk, piece) in [
        (0usize, 16u32, 7usize),
        (1, 16, 1),
        (16, 16, 16),
        (17, 16, 5),
        (48, 16, 100),
        (100_000, 65536, 4096),
        (200_000, 65536, 1 << 20),
        // Several batches for the hashing thread, and a tail batch at the end.
        (1_000_003, 65536, 9_999),
        (700_000, 1000, 65_536),
    ] {
        let plain = data(len, len as u64);
        let params = obj_params(chunk);
        let expect_len = keys::sealed_len(len as u64, &params, &key);
        let (sealed, sum) = seal_all(&key, params.clone(), &plain, piece).await;
        assert_eq!(
            sealed.len() as u64,
            expect_len,
            "sealed_len exact for {len}"
        );
        assert_eq!(sum.sealed_len, expect_len);
        assert_eq!(sum.plaintext_len, len as u64);
        use md5::Digest;
        let md5: [u8; 16] = md5::Md5::digest(&plain).into();
        assert_eq!(sum.md5, md5);
        let opened = keys::open_sealed_bytes(&key, &sealed).unwrap();
        assert_eq!(opened.plaintext, plain);
        let meta = opened.meta.unwrap();
        assert_eq!(meta.size, len as u64);
        assert_eq!(meta.etag, hex::encode(md5));
        assert_eq!(meta.key, "dir/obj.bin");
        assert_eq!(meta.user_metadata["mtime"], "1700000000.5");
        assert_eq!(&sealed[..sum.header.len()], &sum.header[..]);
        // Layout from stored size alone.
        let h = Header::decode(&sealed).unwrap();
        let tl = keys::format::trailer_len_from_suffix(&sealed).unwrap();
        let l = Layout::from_stored_len(&h, sealed.len() as u64, Some(tl)).unwrap();
        assert_eq!(l.plaintext_len, len as u64);
        // Streaming output equals the deterministic sealer with the same salt.
        let det = keys::vectors::seal_bytes_with_salt(&key, &params, h.salt(), &plain).unwrap();
        assert_eq!(det, sealed);
        // Full open through the range opener.
        let full = open_range_of(&key, &sealed, len as u64, 0..len as u64, 777)
            .await
            .unwrap();
        assert_eq!(full, plain);
    }
}

#[test]
fn sealer_works_without_a_runtime_context_for_hashing() {
    // Hashing falls back to inline when polled outside tokio.
    let key = random_key("b1");
    let plain = data(5000, 3);
    let (s, h) = keys::seal(&key, obj_params(1024), pieces(&plain, 333));
    let sealed = futures::executor::block_on(collect(s)).unwrap();
    let sum = futures::executor::block_on(h.summary()).unwrap();
    assert_eq!(sum.plaintext_len, 5000);
    assert_eq!(
        keys::open_sealed_bytes(&key, &sealed).unwrap().plaintext,
        plain
    );
}

#[tokio::test]
async fn checksums_match_known_values() {
    let key = random_key("b1");
    let params = SealParams {
        checksums: ChecksumSet::all(),
        ..obj_params(16)
    };
    let expect_len = keys::sealed_len(9, &params, &key);
    let (sealed, sum) = seal_all(&key, params, b"123456789", 4).await;
    assert_eq!(sealed.len() as u64, expect_len);
    let c = &sum.checksums;
    assert_eq!(c.crc32, Some(0xCBF4_3926u32.to_be_bytes()));
    assert_eq!(c.crc32c, Some(0xE306_9283u32.to_be_bytes()));
    assert_eq!(c.crc64nvme, Some(0xAE8B_1486_0A79_9888u64.to_be_bytes()));
    assert_eq!(
        hex::encode(c.sha1.unwrap()),
        "f7c3bc1d808e04732adf679965ccc34ca7ae3441"
    );
    assert_eq!(
        hex::encode(c.sha256.unwrap()),
        "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"
    );
    let meta = keys::open_sealed_bytes(&key, &sealed)
        .unwrap()
        .meta
        .unwrap();
    assert_eq!(meta.checksums["crc32"], "y/Q5Jg==");
    assert_eq!(meta.checksums.len(), 5);
}

#[tokio::test]
async fn input_error_ends_stream_and_summary() {
    let key = random_key("b1");
    let items: Vec<Result<bytes::Bytes, std::io::Error>> = vec![
        Ok(bytes::Bytes::from(vec![1u8; 40])),
        Err(std::io::Error::other("client went away")),
    ];
    let (s, h) = keys::seal(&key, obj_params(16), futures::stream::iter(items));
    let r = collect(s).await;
    assert!(matches!(r, Err(Error::Io(_))), "{r:?}");
    assert!(matches!(h.summary().await, Err(Error::Io(_))));
}

#[tokio::test]
async fn bad_params_are_refused() {
    let key = random_key("b1");
    for p in [
        SealParams {
            chunk_size: 8,
            ..obj_params(16)
        },
        SealParams {
            part_number: 1,
            ..obj_params(16)
        },
        SealParams::part("b1", [1; 16], 0),
        SealParams::part("b1", [1; 16], 10_001),
    ] {
        let (s, h) = keys::seal(&key, p, pieces(b"abc", 1));
        assert!(matches!(collect(s).await, Err(Error::Format(_))));
        assert!(h.summary().await.is_err());
    }
}

#[test]
fn cipher_range_arithmetic() {
    let l = Layout {
        header_len: 200,
        chunk_size: 100,
        plaintext_len: 250,
    };
    assert_eq!(l.records(), 3);
    assert_eq!(l.data_end(), 200 + 250 + 96);
    let r = l.cipher_range(0..1);
    assert_eq!(
        (r.first_record, r.last_record, r.start, r.end),
        (0, 0, 200, 332)
    );
    let r = l.cipher_range(99..101);
    assert_eq!(
        (r.first_record, r.last_record, r.start, r.end),
        (0, 1, 200, 464)
    );
    let r = l.cipher_range(200..250);
    assert_eq!(
        (r.first_record, r.last_record, r.start, r.end),
        (2, 2, 464, 546)
    );
    let r = l.cipher_range(200..10_000); // clamped
    assert_eq!(r.end, l.data_end());
    let z = Layout {
        header_len: 200,
        chunk_size: 100,
        plaintext_len: 0,
    };
    assert_eq!(z.records(), 1);
    let r = z.cipher_range(0..0);
    assert_eq!((r.start, r.end), (200, 232));
    let exact = Layout {
        header_len: 10,
        chunk_size: 100,
        plaintext_len: 300,
    };
    assert_eq!(
        exact.records(),
        3,
        "no extra empty record at a chunk multiple"
    );
    for p in 0..1000u64 {
        let l = Layout {
            header_len: 150,
            chunk_size: 64,
            plaintext_len: p,
        };
        let back = Layout::from_data_len(150, 64, l.data_end() - 150).unwrap();
        assert_eq!(back, l);
    }
    assert!(Layout::from_data_len(150, 64, 31).is_err());
    assert_eq!(
        Layout::from_data_len(150, 64, 96 + 1 + 64)
            .unwrap()
            .plaintext_len,
        97
    );
    // 106 bytes would need 2 records but 42 plaintext bytes fit in one: no valid layout.
    assert!(matches!(
        Layout::from_data_len(150, 64, 106),
        Err(Error::Integrity(_))
    ));
}

#[tokio::test]
async fn empty_object_open_range() {
    let key = random_key("b1");
    let (sealed, _) = seal_all(&key, obj_params(16), b"", 1).await;
    assert_eq!(open_range_of(&key, &sealed, 0, 0..0, 3).await.unwrap(), b"");
    // The single empty record is still authenticated.
    let h = Header::decode(&sealed).unwrap();
    let mut bad = sealed.clone();
    bad[h.len() + 20] ^= 1;
    assert!(matches!(
        open_range_of(&key, &bad, 0, 0..0, 3).await,
        Err(Error::Integrity(_))
    ));
}

/// Sealed object with 4 records of 16 bytes + 1 byte (5 records).
async fn five_records(key: &keys::StreamKey) -> (Vec<u8>, Vec<u8>) {
    let plain = data(65, 9);
    let (sealed, _) = seal_all(key, obj_params(16), &plain, 13).await;
    (sealed, plain)
}

fn open_full(key: &keys::StreamKey, sealed: &[u8]) -> keys::Result<Vec<u8>> {
    keys::open_sealed_bytes(key, sealed).map(|o| o.plaintext)
}

#[tokio::test]
async fn every_single_byte_flip_is_rejected() {
    let key = random_key("b1");
    let (sealed, plain) = five_records(&key).await;
    assert_eq!(open_full(&key, &sealed).unwrap(), plain);
    for i in 0..sealed.len() {
        for bit in [0x01u8, 0x80] {
            let mut t = sealed.clone();
            t[i] ^= bit;
            let r = open_full(&key, &t);
            assert!(r.is_err(), "flip of byte {i} bit {bit:#x} accepted");
        }
    }
    // And through the range opener with the index's length (header and record bytes).
    let h = Header::decode(&sealed).unwrap();
    let data_end = Layout::new(&h, 65).data_end() as usize;
    for i in 0..data_end {
        let mut t = sealed.clone();
        t[i] ^= 0x04;
        let r = open_range_of(&key, &t, 65, 0..65, 11).await;
        assert!(r.is_err(), "range open accepted flip of byte {i}");
    }
}

fn records(sealed: &[u8]) -> (Vec<u8>, Vec<Vec<u8>>, Vec<u8>) {
    let h = Header::decode(sealed).unwrap();
    let tl = keys::format::trailer_len_from_suffix(sealed).unwrap();
    let l = Layout::from_stored_len(&h, sealed.len() as u64, Some(tl)).unwrap();
    let recs = (0..l.records())
        .map(|i| {
            let s = l.record_offset(i) as usize;
            sealed[s..s + 32 + l.record_plain_len(i) as usize].to_vec()
        })
        .collect();
    (
        sealed[..h.len()].to_vec(),
        recs,
        sealed[l.data_end() as usize..].to_vec(),
    )
}

fn assemble(h: &[u8], recs: &[Vec<u8>], trailer: &[u8]) -> Vec<u8> {
    let mut v = h.to_vec();
    for r in recs {
        v.extend_from_slice(r);
    }
    v.extend_from_slice(trailer);
    v
}

#[tokio::test]
async fn reorder_duplicate_truncate_extend_splice_are_rejected() {
    let key = random_key("b1");
    let (sealed, plain) = five_records(&key).await;
    let (h, recs, trailer) = records(&sealed);
    assert_eq!(recs.len(), 5);
    assert_eq!(
        open_full(&key, &assemble(&h, &recs, &trailer)).unwrap(),
        plain
    );

    let mut swapped = recs.clone();
    swapped.swap(1, 2);
    assert!(matches!(
        open_full(&key, &assemble(&h, &swapped, &trailer)),
        Err(Error::Integrity(_))
    ));

    let mut dup = recs.clone();
    dup[2] = recs[1].clone();
    assert!(matches!(
        open_full(&key, &assemble(&h, &dup, &trailer)),
        Err(Error::Integrity(_))
    ));

    // Duplicate inserted (stream grows by one full record).
    let mut dup_ins = recs.clone();
    dup_ins.insert(1, recs[0].clone());
    assert!(open_full(&key, &assemble(&h, &dup_ins, &trailer)).is_err());

    // Truncation at a chunk boundary: drop the last record(s), keep the trailer.
    assert!(open_full(&key, &assemble(&h, &recs[..4], &trailer)).is_err());
    // Drop the final short record and the (full) one before: still detected.
    assert!(open_full(&key, &assemble(&h, &recs[..3], &trailer)).is_err());
    // Truncation through the index-driven range opener: the backend returns fewer bytes.
    let short = assemble(&h, &recs[..4], &[]);
    let hd = Header::decode(&sealed).unwrap();
    let layout = Layout::new(&hd, 65);
    let cr = layout.cipher_range(0..65);
    let got = collect(keys::open_range(
        &key,
        &hd,
        layout,
        0..65,
        pieces(&short[cr.start as usize..], 16),
    ))
    .await;
    assert!(matches!(got, Err(Error::Integrity(_))), "{got:?}");
    // Truncated without the trailer at all.
    assert!(open_full(&key, &sealed[..sealed.len() - 10]).is_err());

    // Extension: an extra record appended after the last one.
    let mut ext = recs.clone();
    ext.push(recs[4].clone());
    assert!(open_full(&key, &assemble(&h, &ext, &trailer)).is_err());
    // Extension seen by the range opener: more bytes than the cipher range.
    let mut longer = sealed[cr.start as usize..cr.end as usize].to_vec();
    longer.extend_from_slice(&recs[4]);
    let got = collect(keys::open_range(
        &key,
        &hd,
        layout,
        0..65,
        pieces(&longer, 7),
    ))
    .await;
    assert!(matches!(got, Err(Error::Integrity(_))), "{got:?}");

    // Splice a record from another object sealed under the same data key (same position).
    let (other, _) = five_records(&key).await;
    let (_, orecs, otrailer) = records(&other);
    let mut spliced = recs.clone();
    spliced[2] = orecs[2].clone();
    assert!(matches!(
        open_full(&key, &assemble(&h, &spliced, &trailer)),
        Err(Error::Integrity(_))
    ));
    // Another object's trailer (metadata) spliced onto this one.
    assert!(open_full(&key, &assemble(&h, &recs, &otrailer)).is_err());
    // Another object's header on this object's records.
    let (oh, _, _) = records(&other);
    assert!(open_full(&key, &assemble(&oh, &recs, &trailer)).is_err());
}

#[tokio::test]
async fn splice_between_parts_of_one_upload_is_rejected() {
    let key = random_key("b1");
    let oid = [3u8; 16];
    let p1 = data(40, 1);
    let p2 = data(40, 2);
    let (s1, _) = seal_all(
        &key,
        SealParams {
            chunk_size: 16,
            ..SealParams::part("b1", oid, 1)
        },
        &p1,
        8,
    )
    .await;
    let (s2, _) = seal_all(
        &key,
        SealParams {
            chunk_size: 16,
            ..SealParams::part("b1", oid, 2)
        },
        &p2,
        8,
    )
    .await;
    let h1 = Header::decode(&s1).unwrap();
    let h2 = Header::decode(&s2).unwrap();
    let l = Layout::new(&h1, 40);
    // Record 1 of part 2 put in place of record 1 of part 1.
    let mut t = s1.clone();
    let off1 = l.record_offset(1) as usize;
    let off2 = Layout::new(&h2, 40).record_offset(1) as usize;
    t[off1..off1 + 48].copy_from_slice(&s2[off2..off2 + 48]);
    assert!(matches!(
        keys::open_sealed_bytes(&key, &t),
        Err(Error::Integrity(_))
    ));
    // Part 2's header on part 1's records.
    let mut t = s2[..h2.len()].to_vec();
    t.extend_from_slice(&s1[h1.len()..]);
    assert!(keys::open_sealed_bytes(&key, &t).is_err());
    assert_eq!(keys::open_sealed_bytes(&key, &s1).unwrap().plaintext, p1);
}

#[tokio::test]
async fn wrong_key_and_commitment_are_rejected() {
    let key = random_key("b1");
    let (sealed, _) = five_records(&key).await;
    // Another data key with the same id (what a key-substitution attack would need) fails the commitment.
    let rec = keys::WrappedDataKey {
        id: key.data_key_id(),
        bucket: "b1".into(),
        kms_key: String::new(),
        version: 1,
        kek_id: "local:test".into(),
        wrapped: vec![],
        created_ms: 0,
    };
    let other = keys::StreamKey::new(&rec, keys::DataKeyMaterial::random().unwrap());
    match keys::open_sealed_bytes(&other, &sealed) {
        Err(Error::Integrity(m)) => assert!(m.contains("commitment"), "{m}"),
        r => panic!("expected commitment failure, got {r:?}"),
    }
    // A key with another id is refused before any record is touched.
    assert!(matches!(
        keys::open_sealed_bytes(&random_key("b1"), &sealed),
        Err(Error::Integrity(_))
    ));
}

#[tokio::test]
async fn range_open_reads_only_covering_records() {
    let key = random_key("b1");
    let plain = data(10_000, 5);
    let (sealed, _) = seal_all(&key, obj_params(1000), &plain, 999).await;
    let h = Header::decode(&sealed).unwrap();
    let l = Layout::new(&h, 10_000);
    let cr = l.cipher_range(2500..3500);
    assert_eq!((cr.first_record, cr.last_record), (2, 3));
    assert_eq!(cr.end - cr.start, 2 * 1032);
    // Corrupting a record outside the range does not matter: it is never read.
    let mut t = sealed.clone();
    t[l.record_offset(5) as usize + 40] ^= 1;
    let got = open_range_of(&key, &t, 10_000, 2500..3500, 100)
        .await
        .unwrap();
    assert_eq!(got, &plain[2500..3500]);
}

/// Input pieces the opener owns are opened in place (records split off one buffer, several per
/// piece, some across pieces); shared pieces are copied and the caller's buffer keeps the sealed
/// bytes. Both give the plaintext, and tampering is caught on both paths.
#[tokio::test]
async fn owned_and_shared_input_open_alike_and_shared_input_is_not_modified() {
    let key = random_key("b1");
    let plain = data(100_000, 77);
    let (sealed, _) = seal_all(&key, obj_params(1000), &plain, 4096).await;
    let h = Header::decode(&sealed).unwrap();
    let l = Layout::new(&h, plain.len() as u64);
    let cr = l.cipher_range(0..plain.len() as u64);
    let body = bytes::Bytes::copy_from_slice(&sealed[cr.start as usize..cr.end as usize]);
    for piece in [1032 * 3, 5000, 1032, 700, 200_000] {
        let owned = collect(keys::open_range(
            &key,
            &h,
            l,
            0..l.plaintext_len,
            pieces(&body, piece),
        ))
        .await
        .unwrap();
        assert!(owned == plain, "owned pieces of {piece}");
        let shared = collect(keys::open_range(
            &key,
            &h,
            l,
            0..l.plaintext_len,
            shared_pieces(&body, piece),
        ))
        .await
        .unwrap();
        assert!(shared == plain, "shared pieces of {piece}");
        assert!(
            body[..] == sealed[cr.start as usize..cr.end as usize],
            "the opener wrote into a buffer it did not own"
        );
    }
    // A flipped tag bit in the middle of an owned piece: the records before it are released,
    // nothing of it or after it.
    let mut bad = body.to_vec();
    let rec = 40usize;
    bad[rec * 1032 + 1031] ^= 0x10;
    let mut s = keys::open_range(&key, &h, l, 0..l.plaintext_len, pieces(&bad, 50_000));
    let mut got = Vec::new();
    let mut failed = false;
    while let Some(item) = futures::StreamExt::next(&mut s).await {
        match item {
            Ok(b) => got.extend_from_slice(&b),
            Err(e) => {
                assert!(matches!(e, Error::Integrity(_)), "{e:?}");
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "tampered record accepted");
    assert_eq!(got.len(), rec * 1000);
    assert!(got[..] == plain[..rec * 1000]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]
    #[test]
    fn range_open_equals_slice_of_full_open(
        len in prop_oneof![Just(0usize), Just(16), Just(64), 1usize..600],
        chunk in prop_oneof![Just(16u32), Just(17), Just(64), Just(100)],
        a in 0usize..700, b in 0usize..700, piece in 1usize..200,
    ) {
        let key = random_key("b1");
        let plain = data(len, (len * 31 + chunk as usize) as u64);
        let rt = rt();
        let (sealed, _) = rt.block_on(seal_all(&key, obj_params(chunk), &plain, piece));
        let full = keys::open_sealed_bytes(&key, &sealed).unwrap().plaintext;
        prop_assert_eq!(&full, &plain);
        let (s, e) = if len == 0 { (0, 0) } else { let s = a % len; (s, (s + 1 + b % (len - s)).min(len)) };
        let got = rt.block_on(open_range_of(&key, &sealed, len as u64, s as u64..e as u64, piece)).unwrap();
        prop_assert_eq!(&got[..], &full[s..e]);
        if len > 0 {
            // Always include ranges touching the last chunk.
            let s2 = len - 1 - (a % len.min(chunk as usize + 3)).min(len - 1);
            let got = rt.block_on(open_range_of(&key, &sealed, len as u64, s2 as u64..len as u64, piece)).unwrap();
            prop_assert_eq!(&got[..], &full[s2..]);
        }
    }
}

#[test]
fn kinds_and_header_accessors() {
    let key = fixed_key();
    let p = SealParams {
        chunk_size: 16,
        ..SealParams::part("vectors", [9; 16], 42)
    };
    let sealed = keys::vectors::seal_bytes_with_salt(&key, &p, [5; 32], b"x").unwrap();
    let h = Header::decode(&sealed).unwrap();
    assert_eq!(h.kind(), StreamKind::Part);
    assert_eq!(h.part_number(), 42);
    assert_eq!(h.object_id(), [9; 16]);
    assert_eq!(h.bucket(), "vectors");
    assert_eq!(h.data_key_id(), key.data_key_id());
    assert_eq!(
        Header::encoded_len_from_prefix(&sealed[..12]).unwrap(),
        h.len()
    );
    assert!(Header::encoded_len_from_prefix(&sealed[..11]).is_err());
    assert!(Header::decode(&sealed[..h.len() - 1]).is_err());
}
