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
