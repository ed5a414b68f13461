//! Published test vectors (docs/FORMAT.md): fixed key, salt and plaintext must give exactly the
//! published bytes, and the published bytes must open to the plaintext.

mod common;

use common::*;
use keys::{Header, ObjectMeta, SealParams, StreamKind};

fn salt_v1() -> [u8; 32] {
    let mut s = [0u8; 32];
    for (i, b) in s.iter_mut().enumerate() {
        *b = i as u8;
    }
    s
}

fn v1_params() -> SealParams {
    SealParams {
        chunk_size: 16,
        ..SealParams::part("vectors", [0x22; 16], 1)
    }
}
const V1_PLAINTEXT: &[u8] = b"Vaultgate sealed stream v1!";

fn v2_params() -> SealParams {
    let meta = ObjectMeta {
        bucket: "vectors".into(),
        key: "empty".into(),
        ..ObjectMeta::default()
    };
    SealParams {
        chunk_size: 16,
        ..SealParams::object("vectors", [0x44; 16], meta)
    }
}

const HUB_KEY_HEX: &str = VECTOR_KEY_HEX;

#[test]
#[ignore = "prints the vectors for docs/FORMAT.md"]
fn print_vectors() {
    let key = fixed_key();
    let v1 =
        keys::vectors::seal_bytes_with_salt(&key, &v1_params(), salt_v1(), V1_PLAINTEXT).unwrap();
    println!("V1 {}", hex::encode(&v1));
    let v2 = keys::vectors::seal_bytes_with_salt(&key, &v2_params(), [0x33; 32], b"").unwrap();
    println!("V2 {}", hex::encode(&v2));
    let h = Header::decode(&v1).unwrap();
    println!(
        "V1 header_len {} commitment {}",
        h.len(),
        hex::encode(h.commitment())
    );
    println!("V1 nonce0 {}", hex::encode(&v1[h.len()..h.len() + 12]));
    println!("V1 aad {}", hex::encode(h.sha256()));
    println!("HUB {}", hex::encode(hub_record()));
}

fn hub_record() -> Vec<u8> {
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    let k = LessSafeKey::new(
        UnboundKey::new(&AES_256_GCM, &hex::decode(HUB_KEY_HEX).unwrap()).unwrap(),
    );
    let mut buf = b"hub blob record".to_vec();
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key([0x0a; 12]),
        Aad::empty(),
        &mut buf,
    )
    .unwrap();
    let mut out = vec![0x0a; 12];
    out.extend_from_slice(&(buf.len() as u32).to_be_bytes());
    out.extend_from_slice(&buf);
    out
}

const V1_HEX: &str = "56475353010102000000009f000000100000000122222222222222222222222222222222000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fbf415c201dca32cc44ace3e365dcc495a7c190487a70b24b51dcd18b4715e9c911111111111111111111111111111111000000010007766563746f727300166c6f63616c3a303030303030303030303030303030300004aaaaaaaa5506d42b600001000000000000000020b51118cd3e22f8c3ce1fab508141676c05e445e2337eaea3211f882a13b6d5d45506d42b60000100000001010000001b79ce5bae0402d091cd50cc10c40e425de64a54aa6dc07a4cc280f6";
const V2_HEX: &str = "56475353010101000000009f000000100000000044444444444444444444444444444444333333333333333333333333333333333333333333333333333333333333333335922514bfffe9385dabfe87f087b4f97ed488a70c9255aed4072836454cbbe611111111111111111111111111111111000000010007766563746f727300166c6f63616c3a303030303030303030303030303030300004aaaaaaaad5a9afca950000000000000100000010bd18928aa9518de13e5101aec30be492d5a9afca950000ffffffff02000000b441f8e3e5bd9cc338a955af64fb7f6d7954195ea0a1c397db5f75d99243b81f4e774cfcd2ceb3457bb0fb92305013bcf38d492bd27b118b991685a71a0bc4ae4d0d8ef5913662db03ce03324d6ef625dce896bd35f4c4d141b9cd67e8339cda8ad8d7ac2691ff113d28d4c28463e58ad50c815d7686126a88a98abf2a10a6e6c245961e2f0ec2bd14e77e4acbc3ca6765e1fa296afa3417145de1d53cd7ac475f38f7f056d62bb8ba6e4290a2811b612272bbecae000000c4";
const HUB_HEX: &str = "0a0a0a0a0a0a0a0a0a0a0a0a0000001fc1573db0a842189010f4bdc602c9dd19ef3a17ef6b0257da82b3c5d611224d";

#[test]
fn v1_part_stream_vector() {
    let key = fixed_key();
    let expected = hex::decode(V1_HEX).unwrap();
    let sealed =
        keys::vectors::seal_bytes_with_salt(&key, &v1_params(), salt_v1(), V1_PLAINTEXT).unwrap();
    assert_eq!(hex::encode(&sealed), V1_HEX);
    let o = keys::open_sealed_bytes(&key, &expected).unwrap();
    assert_eq!(o.plaintext, V1_PLAINTEXT);
    assert_eq!(o.header.kind(), StreamKind::Part);
    assert_eq!(o.header.part_number(), 1);
    assert_eq!(o.header.salt(), salt_v1());
    // Two records: 16 + 11 bytes; nonces = prefix ‖ part 0x0001 ‖ counter ‖ last flag.
    let hl = o.header.len();
    assert_eq!(expected.len(), hl + 27 + 64);
    let n0 = &expected[hl..hl + 12];
    let n1 = &expected[hl + 48..hl + 60];
    assert_eq!(&n0[..5], &n1[..5], "same per-stream prefix");
    assert_eq!(&n0[5..], &[0, 1, 0, 0, 0, 0, 0]);
    assert_eq!(&n1[5..], &[0, 1, 0, 0, 0, 1, 1]);
    assert_eq!(&expected[hl + 12..hl + 16], &32u32.to_be_bytes());
    assert_eq!(&expected[hl + 60..hl + 64], &27u32.to_be_bytes());
    // Independent implementation of the derivation in FORMAT.md: HKDF-SHA256 → key ‖ commitment ‖
    // prefix, AAD = SHA-256(header), then plain AES-256-GCM opens record 0.
    let mut info = b"vaultgate/v1/stream".to_vec();
    info.push(2);
    info.extend_from_slice(&[0x22; 16]);
    info.extend_from_slice(&1u32.to_be_bytes());
    info.extend_from_slice(&16u32.to_be_bytes());
    info.extend_from_slice(&[0x11; 16]);
    info.extend_from_slice(&1u32.to_be_bytes());
    let mut okm = [0u8; 69];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt_v1()), &hex::decode(VECTOR_KEY_HEX).unwrap())
        .expand(&info, &mut okm)
        .unwrap();
    assert_eq!(&okm[32..64], &o.header.commitment(), "commitment");
    assert_eq!(&okm[64..69], &n0[..5], "nonce prefix");
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use sha2::Digest;
    let aad: [u8; 32] = sha2::Sha256::digest(&expected[..hl]).into();
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &okm[..32]).unwrap());
    let mut rec0 = expected[hl + 16..hl + 48].to_vec();
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(n0);
    let pt = k
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut rec0,
        )
        .unwrap();
    assert_eq!(pt, &V1_PLAINTEXT[..16]);
}

#[test]
fn v2_empty_object_vector() {
    let key = fixed_key();
    let sealed = keys::vectors::seal_bytes_with_salt(&key, &v2_params(), [0x33; 32], b"").unwrap();
    assert_eq!(hex::encode(&sealed), V2_HEX);
    let o = keys::open_sealed_bytes(&key, &hex::decode(V2_HEX).unwrap()).unwrap();
    assert!(o.plaintext.is_empty());
    let m = o.meta.unwrap();
    assert_eq!(m.key, "empty");
    assert_eq!(m.size, 0);
    assert_eq!(m.etag, "d41d8cd98f00b204e9800998ecf8427e");
}

#[tokio::test]
async fn hub_vector() {
    let blob = hex::decode(HUB_HEX).unwrap();
    assert_eq!(blob, hub_record());
    let key = keys::HubKey::from_hex(HUB_KEY_HEX).unwrap();
    let got = collect(keys::open_hub_blob(&key, pieces(&blob, 5)))
        .await
        .unwrap();
    assert_eq!(got, b"hub blob record");
}

// ---- V4: SSE-C (header flag 1) -------------------------------------------------------------

/// The customer key of V4: bytes 0x77 × 32.
const V4_CUSTOMER: [u8; 32] = [0x77; 32];
const V4_PLAINTEXT: &[u8] = b"customer key";

fn v4_params() -> SealParams {
    let meta = ObjectMeta {
        bucket: "vectors".into(),
        key: "sse-c".into(),
        ..ObjectMeta::default()
    };
    SealParams {
        chunk_size: 16,
        ..SealParams::object("vectors", [0x55; 16], meta)
    }
}

fn v4_key() -> keys::StreamKey {
    fixed_key().with_customer_key(&keys::CustomerKey::from_bytes(V4_CUSTOMER))
}

#[test]
#[ignore = "prints the SSE-C vector for docs/FORMAT.md"]
fn print_vector_v4() {
    let v4 = keys::vectors::seal_bytes_with_salt(&v4_key(), &v4_params(), [0x66; 32], V4_PLAINTEXT)
        .unwrap();
    println!("V4 {}", hex::encode(&v4));
}

const V4_HEX: &str = "56475353010101010000009f0000001000000000555555555555555555555555555555556666666666666666666666666666666666666666666666666666666666666666e33725e5023bd3ef01ab1e14cb1e704401ff7b51afa2f2a59e12c0a9207fabcf11111111111111111111111111111111000000010007766563746f727300166c6f63616c3a303030303030303030303030303030300004aaaaaaaa404a98297b000000000000010000001c862c09f018baf4c6e5995705a8760b6a55cc15013ca18efd3c5b7af63d0960a4a60000ffffffff02000000b58c52efbeccdf0ca3a80befcf2c9a537bcad41fe671d91c6563093010f4b1ce60ac9d8b7cf27098a22543268db0b120f1d881dca1b8e3a9cbe7628dc073ae7e195fba7577d182b3cd31c68ec7b7d2ee990943e7f40e618978f45012448b981ebe1db531e3bdf0c6fc72c1417776f9496b3d1c3ee9fd0887062749cd3dded1483b238c03b97837143106384443c9ee42397f4a95d5aac674105a40a3bfd26f9f4972493bb13538191b2d93a8a8a53e37e002ab27a20e000000c5";

#[test]
fn v4_sse_c_object_vector() {
    let sealed =
        keys::vectors::seal_bytes_with_salt(&v4_key(), &v4_params(), [0x66; 32], V4_PLAINTEXT)
            .unwrap();
    assert_eq!(hex::encode(&sealed), V4_HEX);
    let expected = hex::decode(V4_HEX).unwrap();
    let h = Header::decode(&expected).unwrap();
    assert_eq!(h.flags(), 1);
    assert!(h.customer_key());
    // opens with data key + customer key
    let o = keys::open_sealed_bytes(&v4_key(), &expected).unwrap();
    assert_eq!(o.plaintext, V4_PLAINTEXT);
    assert_eq!(o.meta.as_ref().unwrap().key, "sse-c");
    // the data key alone does not open the data records
    let err = keys::open_sealed_bytes(&fixed_key(), &expected).unwrap_err();
    assert!(matches!(err, keys::Error::Integrity(_)), "{err}");
    // another customer key does not either
    let other = fixed_key().with_customer_key(&keys::CustomerKey::from_bytes([0x78; 32]));
    assert!(keys::open_sealed_bytes(&other, &expected).is_err());
    // ... but the sealed metadata (name, size, ETag) reads with the data key alone (reindex)
    let (layout, meta) =
        keys::read_meta(&fixed_key(), &h, expected.len() as u64, &expected).unwrap();
    assert_eq!(layout.plaintext_len, V4_PLAINTEXT.len() as u64);
    assert_eq!(meta.key, "sse-c");
    // Independent derivation per FORMAT.md: ikm = data key ‖ customer key, info label
    // "vaultgate/v1/stream-sse-c"; header commitment stays the data-key-only one.
    let mut info = b"vaultgate/v1/stream-sse-c".to_vec();
    info.push(1);
    info.extend_from_slice(&[0x55; 16]);
    info.extend_from_slice(&0u32.to_be_bytes());
    info.extend_from_slice(&16u32.to_be_bytes());
    info.extend_from_slice(&[0x11; 16]);
    info.extend_from_slice(&1u32.to_be_bytes());
    let mut ikm = hex::decode(VECTOR_KEY_HEX).unwrap();
    ikm.extend_from_slice(&V4_CUSTOMER);
    let mut okm = [0u8; 69];
    hkdf::Hkdf::<sha2::Sha256>::new(Some(&[0x66; 32]), &ikm)
        .expand(&info, &mut okm)
        .unwrap();
    let hl = h.len();
    let n0 = &expected[hl..hl + 12];
    assert_eq!(&okm[64..69], &n0[..5], "nonce prefix of the data record");
    use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
    use sha2::Digest;
    let aad: [u8; 32] = sha2::Sha256::digest(&expected[..hl]).into();
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &okm[..32]).unwrap());
    let mut rec0 = expected[hl + 16..hl + 16 + V4_PLAINTEXT.len() + 16].to_vec();
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(n0);
    let pt = k
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut rec0,
        )
        .unwrap();
    assert_eq!(pt, V4_PLAINTEXT);
}

#[test]
fn flag_bits_beyond_sse_c_are_refused() {
    let mut v = hex::decode(V4_HEX).unwrap();
    v[7] = 0x02;
    assert!(Header::decode(&v).is_err());
    v[7] = 0x01;
    v[6] = 3; // a manifest cannot carry the flag
    assert!(Header::decode(&v).is_err());
}
