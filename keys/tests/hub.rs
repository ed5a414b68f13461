//! Hub blob import: blobs produced by a plain AES-256-GCM loop (the original hub's writer) open as a
//! plaintext stream; tampering, truncation and bad lengths are rejected; and a hub blob can be
//! re-sealed into the Vaultgate format in one streaming pass.

mod common;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use common::*;
use futures::StreamExt;
use keys::{Error, HubKey, ObjectMeta, SealParams};

const BLOB_KEY: &str = "8f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";

/// The hub's writer: random nonce per record, [nonce][len BE][ct‖tag], len = ct‖tag length.
fn hub_write(plain: &[u8], record: usize) -> Vec<u8> {
    let k =
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &hex::decode(BLOB_KEY).unwrap()).unwrap());
    let mut out = Vec::new();
    for chunk in plain.chunks(record) {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).unwrap();
        let mut buf = chunk.to_vec();
        k.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut buf)
            .unwrap();
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&(buf.len() as u32).to_be_bytes());
        out.extend_from_slice(&buf);
    }
    out
}

async fn import(blob: &[u8], piece: usize) -> keys::Result<Vec<u8>> {
    collect(keys::open_hub_blob(
        &HubKey::from_hex(BLOB_KEY).unwrap(),
        pieces(blob, piece),
    ))
    .await
}

#[tokio::test]
async fn hub_blobs_open() {
    for (len, rec, piece) in [
        (0usize, 100usize, 1usize),
        (1, 100, 1),
        (100_000, 4096, 999),
        (65536, 65536, 1 << 20),
        (12345, 1000, 16),
    ] {
        let plain = data(len, len as u64);
        let blob = hub_write(&plain, rec);
        assert_eq!(import(&blob, piece).await.unwrap(), plain, "len {len}");
    }
}

#[tokio::test]
async fn hub_tamper_and_truncation_rejected() {
    let plain = data(5000, 1);
    let blob = hub_write(&plain, 1000);
    for i in (0..blob.len()).step_by(37) {
        let mut t = blob.clone();
        t[i] ^= 0x20;
        assert!(import(&t, 100).await.is_err(), "flip at {i}");
    }
    // Truncation inside a record.
    assert!(matches!(
        import(&blob[..blob.len() - 1], 100).await,
        Err(Error::Integrity(_))
    ));
    assert!(matches!(
        import(&blob[..10], 100).await,
        Err(Error::Integrity(_))
    ));
    // Length field shorter than a tag / absurdly large.
    let mut t = blob.clone();
    t[12..16].copy_from_slice(&3u32.to_be_bytes());
    assert!(matches!(import(&t, 100).await, Err(Error::Format(_))));
    t[12..16].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(import(&t, 100).await, Err(Error::Format(_))));
    // Wrong key.
    let other = HubKey::from_bytes([7; 32]);
    assert!(matches!(
        collect(keys::open_hub_blob(&other, pieces(&blob, 64))).await,
        Err(Error::Integrity(_))
    ));
    // Plaintext of a bad record is never released: records before it are, nothing after.
    let mut t = blob.clone();
    let second = 16 + 1000 + 16;
    t[second + 20] ^= 1;
    let mut s = keys::open_hub_blob(&HubKey::from_hex(BLOB_KEY).unwrap(), pieces(&t, 333));
    assert_eq!(s.next().await.unwrap().unwrap(), &plain[..1000]);
    assert!(s.next().await.unwrap().is_err());
    assert!(s.next().await.is_none());
    assert!(HubKey::from_hex("nothex").is_err());
}

#[tokio::test]
async fn hub_blob_reseals_into_vaultgate_format() {
    let plain = data(300_000, 4);
    let blob = hub_write(&plain, 65536);
    let key = random_key("migrated");
    let hub = keys::open_hub_blob(&HubKey::from_hex(BLOB_KEY).unwrap(), pieces(&blob, 8192));
    let (s, h) = keys::seal(
        &key,
        SealParams::object("migrated", [1; 16], ObjectMeta::default()),
        hub,
    );
    let sealed = collect(s).await.unwrap();
    let sum = h.summary().await.unwrap();
    assert_eq!(sum.plaintext_len, 300_000);
    assert_eq!(
        keys::open_sealed_bytes(&key, &sealed).unwrap().plaintext,
        plain
    );
}
