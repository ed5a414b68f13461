//! Proptest-based fuzzing of everything that parses untrusted bytes: header decode, whole-stream
//! open, range open, metadata trailer, layout inversion, manifests and hub blobs. Properties: never
//! panic; a mutated stream never opens to different plaintext.

mod common;

use common::*;
use keys::{Header, Layout, ObjectMeta, SealParams, StreamKind};
use proptest::prelude::*;

fn sample() -> (keys::StreamKey, Vec<u8>, Vec<u8>) {
    let key = fixed_key();
    let plain = data(100, 1);
    let p = SealParams {
        chunk_size: 16,
        ..SealParams::object("vectors", [1; 16], ObjectMeta::default())
    };
    let sealed = keys::vectors::seal_bytes_with_salt(&key, &p, [2; 32], &plain).unwrap();
    (key, plain, sealed)
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Overwrite(usize, Vec<u8>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(i, b)| Mutation::Flip(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..64)
        )
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), 1usize..80).prop_map(|(i, n)| Mutation::Remove(i, n)),
        (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, v)| Mutation::Overwrite(i, v)),
    ]
}

fn apply(s: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut v = s.to_vec();
    for m in muts {
        let n = v.len().max(1);
        match m {
            Mutation::Flip(i, b) => {
                if !v.is_empty() {
                    v[i % n] ^= b;
                }
            }
            Mutation::Truncate(i) => v.truncate(i % n),
            Mutation::Insert(i, bytes) => {
                let at = i % (v.len() + 1);
                v.splice(at..at, bytes.iter().copied());
            }
            Mutation::Remove(i, k) => {
                let at = i % n;
                let end = (at + k).min(v.len());
                if at < end {
                    v.drain(at..end);
                }
            }
            Mutation::Overwrite(i, bytes) => {
                for (j, b) in bytes.iter().enumerate() {
                    let idx = (i + j) % n;
                    if idx < v.len() {
                        v[idx] = *b;
                    }
                }
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn header_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Header::decode(&bytes);
        let _ = Header::encoded_len_from_prefix(&bytes);
        let _ = keys::format::trailer_len_from_suffix(&bytes);
    }

    #[test]
    fn header_with_valid_prefix_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..300), kind in 0u8..5, len in 0u32..400) {
        let mut b = b"VGSS\x01\x01".to_vec();
        b.push(kind);
        b.push(0);
        b.extend_from_slice(&len.to_be_bytes());
        b.extend_from_slice(&tail);
        if let Ok(h) = Header::decode(&b) {
            // Whatever decodes re-encodes to the same bytes.
            prop_assert_eq!(h.as_bytes(), &b[..h.len()]);
        }
    }

    #[test]
    fn mutated_streams_never_panic_nor_open(muts in proptest::collection::vec(mutation(), 1..4)) {
        let (key, plain, sealed) = sample();
        let t = apply(&sealed, &muts);
        match keys::open_sealed_bytes(&key, &t) {
            Ok(o) => {
                // Only an unchanged stream may open.
                prop_assert_eq!(&t, &sealed);
                prop_assert_eq!(o.plaintext, plain);
            }
            Err(_) => prop_assert_ne!(&t, &sealed),
        }
        let _ = keys::open_manifest(&key, &t);
        if let Ok(h) = Header::decode(&t) {
            let _ = keys::read_meta(&key, &h, t.len() as u64, &t);
            let _ = Layout::from_stored_len(&h, t.len() as u64, keys::format::trailer_len_from_suffix(&t).ok());
        }
    }

    #[test]
    fn range_open_of_mutated_input_never_panics(
        muts in proptest::collection::vec(mutation(), 0..3),
        plain_len in 0u64..200, a in 0u64..200, b in 0u64..200, piece in 1usize..64,
    ) {
        let (key, plain, sealed) = sample();
        let header = Header::decode(&sealed).unwrap();
        let layout = Layout::new(&header, plain_len);
        let r = a.min(b)..a.max(b);
        let cr = layout.cipher_range(r.clone());
        let slice = sealed.get(cr.start as usize..(cr.end as usize).min(sealed.len())).unwrap_or(&[]).to_vec();
        let input = apply(&slice, &muts);
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let got = rt.block_on(collect(keys::open_range(&key, &header, layout, r.clone(), pieces(&input, piece))));
        if let Ok(g) = got {
            // Whatever is released is the true plaintext of the requested range, and only
            // untouched bytes can release anything.
            let e = r.end.min(plain_len).min(100) as usize;
            let s = (r.start as usize).min(e);
            prop_assert_eq!(&g[..], &plain[s..e]);
            if !g.is_empty() {
                prop_assert_eq!(&input, &slice);
            }
        }
    }

    #[test]
    fn arbitrary_layouts_never_panic(header_len in 0u64..10_000, chunk in 1u32..(1 << 24), plain_len in 0u64..(1 << 50), a in any::<u64>(), b in any::<u64>()) {
        let l = Layout { header_len, chunk_size: chunk, plaintext_len: plain_len };
        let cr = l.cipher_range(a.min(b) % (plain_len + 1)..a.max(b));
        prop_assert!(cr.start <= cr.end);
        prop_assert!(cr.end <= l.data_end());
        let _ = Layout::from_data_len(header_len, chunk, a % (1 << 52));
    }

    #[test]
    fn hub_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), piece in 1usize..50) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let r = rt.block_on(collect(keys::open_hub_blob(&keys::HubKey::from_bytes([1; 32]), pieces(&bytes, piece))));
        // Random bytes never authenticate (except the empty blob).
        match r {
            Ok(v) => prop_assert!(bytes.is_empty() && v.is_empty()),
            Err(_) => prop_assert!(!bytes.is_empty()),
        }
    }
}

#[test]
fn decoded_kinds() {
    let (_, _, sealed) = sample();
    assert_eq!(Header::decode(&sealed).unwrap().kind(), StreamKind::Object);
}
