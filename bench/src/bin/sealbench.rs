//! Seal/open throughput of the `keys` sealed-stream format, per core, for several chunk sizes:
//! AEAD-only sealing (no MD5), streaming sealing with MD5 (the PUT path: MD5 on a second thread),
//! MD5 alone for reference, and opening (whole-buffer and the streaming range opener, fed shared
//! slices of one buffer or pieces it owns, as the local backend hands them over).
//! Run: `cargo run --release -p bench --bin sealbench [-- MIB]` (default 256 MiB per measurement).

use std::time::Instant;

use bench::cpu_ns;
use bytes::Bytes;
use futures::StreamExt;
use keys::{DataKeyId, DataKeyMaterial, Header, Layout, SealParams, StreamKey, WrappedDataKey};
use md5::Digest;

const REPEATS: usize = 3;

fn key() -> StreamKey {
    let rec = WrappedDataKey {
        id: DataKeyId([1; 16]),
        bucket: "bench".into(),
        kms_key: String::new(),
        version: 1,
        kek_id: "local:bench".into(),
        wrapped: vec![0; 60],
        created_ms: 0,
    };
    StreamKey::new(&rec, DataKeyMaterial::random().expect("OS random"))
}

/// Throughput of `f` over `bytes` bytes, best of REPEATS: (wall GB/s, GB per CPU-second).
/// GB = 10^9 bytes. The CPU figure is what one core achieves and does not suffer from other
/// load on the machine; the wall figure is what one stream achieves here and now.
#[derive(Clone, Copy)]
struct Rate {
    wall: f64,
    cpu: f64,
}

fn best<F: FnMut()>(bytes: usize, mut f: F) -> Rate {
    best_with(bytes, || (), |()| f())
}

/// Like [`best`], with an untimed `setup` before each run whose result `f` consumes.
fn best_with<T, S: FnMut() -> T, F: FnMut(T)>(bytes: usize, mut setup: S, mut f: F) -> Rate {
    let (mut wall, mut cpu) = (f64::MAX, f64::MAX);
    for _ in 0..REPEATS {
        let input = setup();
        let (t, c) = (Instant::now(), cpu_ns());
        f(input);
        wall = wall.min(t.elapsed().as_secs_f64());
        cpu = cpu.min((cpu_ns().saturating_sub(c)) as f64 / 1e9);
    }
    Rate {
        wall: bytes as f64 / wall / 1e9,
        cpu: bytes as f64 / cpu.max(1e-9) / 1e9,
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2} ({:.2})", self.cpu, self.wall)
    }
}

fn input(
    plain: &Bytes,
    piece: usize,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let p = plain.clone();
    let n = p.len().div_ceil(piece);
    futures::stream::iter(
        (0..n).map(move |i| Ok(p.slice(i * piece..((i + 1) * piece).min(p.len())))),
    )
}

/// The same pieces as [`input`], each in a buffer of its own (as the local backend reads them), so
/// the opener may take ownership of them and open records in place.
fn owned_pieces(plain: &Bytes, piece: usize) -> Vec<std::io::Result<Bytes>> {
    plain
        .chunks(piece.max(1))
        .map(|c| Ok(Bytes::from(c.to_vec())))
        .collect()
}

fn main() -> anyhow::Result<()> {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(256);
    let len = mib << 20;
    let plain = Bytes::from(
        (0..len)
            .map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8)
            .collect::<Vec<u8>>(),
    );
    let key = key();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;

    let md5 = best(len, || {
        std::hint::black_box(md5::Md5::digest(&plain));
    });
    println!("data {mib} MiB per run, best of {REPEATS}; GB = 10^9 plaintext bytes");
    println!(
        "each cell: GB per CPU-second (= per core), then in brackets wall-clock GB/s of one stream"
    );
    println!("MD5 alone: {md5}");
    let mut dst = vec![0u8; len];
    let copy = best(len, || {
        dst.copy_from_slice(&plain);
        std::hint::black_box(&dst);
    });
    println!("memcpy (reference for this machine's state): {copy}");
    println!();
    println!(
        "| chunk | AES-256-GCM alone, in place | seal, no MD5 | seal + MD5, streaming | open, no stream plumbing | open, streaming (shared input, copy per record) | open, streaming (owned input, in place) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for chunk in [16u32 << 10, 64 << 10, 256 << 10, 1 << 20] {
        let params = SealParams {
            chunk_size: chunk,
            ..SealParams::part("bench", [2; 16], 1)
        };
        let (aead_raw, seal_raw, open_raw) = record_rates(&key, chunk, &plain, &mut dst)?;
        let seal_md5 = best(len, || {
            rt.block_on(async {
                let (mut s, h) = keys::seal(&key, params.clone(), input(&plain, 1 << 20));
                let mut n = 0usize;
                while let Some(b) = s.next().await {
                    n += b.expect("seal").len();
                }
                let sum = h.summary().await.expect("summary");
                assert_eq!(sum.sealed_len as usize, n);
            })
        });
        let (open_stream, open_owned) = open_rates(&key, &params, &plain, &rt)?;
        println!(
            "| {} KiB | {aead_raw} | {seal_raw} | {seal_md5} | {open_raw} | {open_stream} | {open_owned} |",
            chunk >> 10
        );
    }
    Ok(())
}

/// AEAD + framing only (no MD5, no stream plumbing), every record as the sealer/opener do it:
/// (AES-256-GCM in place over `dst`, sealing the records of `plain`, opening them).
fn record_rates(
    key: &StreamKey,
    chunk: u32,
    plain: &Bytes,
    dst: &mut [u8],
) -> anyhow::Result<(Rate, Rate, Rate)> {
    let len = plain.len();
    let rc = keys::vectors::RecordCipher::new(key, chunk)?;
    let aead_raw = best(len, || {
        rc.raw_seal_in_place(dst, chunk as usize).expect("seal");
    });
    let mut records: Vec<Bytes> = Vec::new();
    let seal_raw = best(len, || {
        records = plain
            .chunks(chunk as usize)
            .enumerate()
            .map(|(i, c)| rc.seal(i as u32, c).expect("seal"))
            .collect();
    });
    let open_raw = best(len, || {
        let mut n = 0;
        for (i, r) in records.iter().enumerate() {
            n += rc
                .open(i as u32, bytes::BytesMut::from(&r[..]))
                .expect("open")
                .len();
        }
        assert_eq!(n, len);
    });
    Ok((aead_raw, seal_raw, open_raw))
}

/// The streaming range opener over `plain` sealed with `params`: (shared input, owned input).
///
/// The GET path: the backend hands over 512 KiB pieces, each in a buffer of its own that is
/// freed once its records are consumed. "shared": the same pieces with a second reference held
/// until the end of the run (so the opener copies each record, as it does for inputs it cannot
/// own); "owned": the opener takes them over and opens in place.
fn open_rates(
    key: &StreamKey,
    params: &SealParams,
    plain: &Bytes,
    rt: &tokio::runtime::Runtime,
) -> anyhow::Result<(Rate, Rate)> {
    let len = plain.len();
    let sealed = keys::vectors::seal_bytes_with_salt(key, params, [3; 32], plain)?;
    let sealed_b = Bytes::from(sealed.clone());
    let header = Header::decode(&sealed_b)?;
    let layout = Layout::new(&header, len as u64);
    let body = sealed_b.slice(header.len()..);
    let open_pieces = |keep: bool| {
        best_with(
            len,
            || owned_pieces(&body, 512 << 10),
            |pieces| {
                let held: Vec<Bytes> = if keep {
                    pieces
                        .iter()
                        .filter_map(|p| p.as_ref().ok().cloned())
                        .collect()
                } else {
                    Vec::new()
                };
                rt.block_on(async {
                    let mut s = keys::open_range(
                        key,
                        &header,
                        layout,
                        0..len as u64,
                        futures::stream::iter(pieces),
                    );
                    let mut n = 0usize;
                    while let Some(b) = s.next().await {
                        n += b.expect("open").len();
                    }
                    assert_eq!(n, len);
                });
                drop(held);
            },
        )
    };
    Ok((open_pieces(true), open_pieces(false)))
}
