//! Shared helpers for the keys integration tests: fixed test keys, stream plumbing.
#![allow(dead_code)]

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use keys::{DataKeyId, DataKeyMaterial, StreamKey, WrappedDataKey};

/// Fixed data key used by the published vectors (docs/FORMAT.md).
pub const VECTOR_KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

pub fn fixed_key() -> StreamKey {
    let rec = WrappedDataKey {
        id: DataKeyId([0x11; 16]),
        bucket: "vectors".into(),
        kms_key: String::new(),
        version: 1,
        kek_id: "local:0000000000000000".into(),
        wrapped: vec![0xAA; 4],
        created_ms: 0,
    };
    StreamKey::new(&rec, DataKeyMaterial::from_hex(VECTOR_KEY_HEX).unwrap())
}

pub fn random_key(bucket: &str) -> StreamKey {
    let rec = WrappedDataKey {
        id: DataKeyId::random().unwrap(),
        bucket: bucket.into(),
        kms_key: String::new(),
        version: 1,
        kek_id: "local:test".into(),
        wrapped: vec![1, 2, 3],
        created_ms: 0,
    };
    StreamKey::new(&rec, DataKeyMaterial::random().unwrap())
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A stream that yields `bytes` in pieces of `piece` bytes.
pub fn pieces(bytes: &[u8], piece: usize) -> BoxStream<'static, std::io::Result<Bytes>> {
    let v: Vec<std::io::Result<Bytes>> = bytes
        .chunks(piece.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(v).boxed()
}

pub async fn collect(s: BoxStream<'static, keys::Result<Bytes>>) -> keys::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut s = s;
    while let Some(b) = s.next().await {
        out.extend_from_slice(&b?);
    }
    Ok(out)
}

/// Seals `plain` with the streaming sealer; returns (sealed bytes, summary).
pub async fn seal_all(
    key: &StreamKey,
    params: keys::SealParams,
    plain: &[u8],
    piece: usize,
) -> (Vec<u8>, keys::SealSummary) {
    let (s, h) = keys::seal(key, params, pieces(plain, piece));
    let sealed = collect(s).await.unwrap();
    let sum = h.summary().await.unwrap();
    (sealed, sum)
}

/// A stream that yields `bytes` as `piece`-byte slices of one shared buffer (the opener cannot
/// take them over and must copy what it decrypts; `bytes` itself stays untouched).
#[allow(dead_code)]
pub fn shared_pieces(bytes: &Bytes, piece: usize) -> BoxStream<'static, std::io::Result<Bytes>> {
    let v: Vec<std::io::Result<Bytes>> = (0..bytes.len().div_ceil(piece.max(1)))
        .map(|i| Ok(bytes.slice(i * piece.max(1)..((i + 1) * piece.max(1)).min(bytes.len()))))
        .collect();
    futures::stream::iter(v).boxed()
}

/// Opens plaintext range `r` of a sealed stream the way the gateway does: header, layout, backend range.
pub async fn open_range_of(
    key: &StreamKey,
    sealed: &[u8],
    plain_len: u64,
    r: std::ops::Range<u64>,
    piece: usize,
) -> keys::Result<Vec<u8>> {
    let header = keys::Header::decode(sealed)?;
    let layout = keys::Layout::new(&header, plain_len);
    let cr = layout.cipher_range(r.clone());
    let slice = sealed
        .get(cr.start as usize..cr.end as usize)
        .unwrap_or(&[])
        .to_vec();
    collect(keys::open_range(
        key,
        &header,
        layout,
        r,
        pieces(&slice, piece),
    ))
    .await
}
