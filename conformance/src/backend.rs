//! The backend conformance suite: public async checks over `&dyn Backend`, written once and run
//! against every storage backend (local disk now; S3 and Azure later). Each check uses fresh
//! random ids, so checks may run in parallel and against a backend that holds other objects.
//! A failed check panics with a message naming the backend and the property that broke.

use gateway::index::now_ms;
use std::ops::Range;

use bytes::Bytes;
use futures::StreamExt;
use gateway::backend::{Backend, BackendError, ByteStream, new_backend_id};
use sha2::{Digest, Sha256};

/// Deterministic pseudo-random bytes (xorshift64*), so content differs per seed and position.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A body stream yielding `data` in pieces of `piece` bytes.
pub fn body_of(data: &[u8], piece: usize) -> ByteStream {
    let bytes = Bytes::copy_from_slice(data);
    let piece = piece.max(1);
    let chunks: Vec<std::io::Result<Bytes>> = (0..data.len())
        .step_by(piece)
        .map(|start| Ok(bytes.slice(start..(start + piece).min(bytes.len()))))
        .collect();
    futures::stream::iter(chunks).boxed()
}

/// Reads a whole stream into memory (for small objects).
pub async fn read_all(mut stream: ByteStream) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

async fn get_bytes(b: &dyn Backend, id: &str, range: Option<Range<u64>>) -> Vec<u8> {
    let what = format!("{}: get {id} {range:?}", b.name());
    let stream = b
        .get(id, range)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    read_all(stream)
        .await
        .unwrap_or_else(|e| panic!("{what}: read: {e}"))
}

async fn put_bytes(b: &dyn Backend, id: &str, data: &[u8], piece: usize) {
    let n = b
        .put(id, body_of(data, piece), Some(data.len() as u64))
        .await
        .unwrap_or_else(|e| panic!("{}: put {id} ({} bytes): {e}", b.name(), data.len()));
    assert_eq!(
        n,
        data.len() as u64,
        "{}: put returned a wrong byte count",
        b.name()
    );
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn assert_not_found<T: std::fmt::Debug>(b: &dyn Backend, what: &str, r: Result<T, BackendError>) {
    match r {
        Err(BackendError::NotFound(_)) => {}
        other => panic!("{}: {what}: expected NotFound, got {other:?}", b.name()),
    }
}

/// Put then get returns the same bytes (SHA-256 equal) for sizes around chunk boundaries,
/// whatever the body's piece size; head reports the size; an empty object works.
pub async fn put_get_roundtrip(b: &dyn Backend) {
    let cases: [(usize, usize); 7] = [
        (0, 1),
        (1, 1),
        (1000, 7),
        (65_536, 65_536),
        (65_536 + 33, 4096),
        (256 * 1024 + 1, 100_000),
        (3 * 1024 * 1024 + 5, 1 << 20),
    ];
    for (seed, (len, piece)) in cases.into_iter().enumerate() {
        let id = new_backend_id();
        let data = pseudo_random(seed as u64 + 1, len);
        put_bytes(b, &id, &data, piece).await;
        let back = get_bytes(b, &id, None).await;
        assert_eq!(back.len(), len, "{}: length after round trip", b.name());
        assert_eq!(
            sha256(&back),
            sha256(&data),
            "{}: content of a {len}-byte object",
            b.name()
        );
        let info = b
            .head(&id)
            .await
            .unwrap_or_else(|e| panic!("{}: head: {e}", b.name()));
        assert_eq!(
            (info.id.as_str(), info.size),
            (id.as_str(), len as u64),
            "{}: head",
            b.name()
        );
        b.delete(&id)
            .await
            .unwrap_or_else(|e| panic!("{}: delete: {e}", b.name()));
    }
}

/// Ranged gets return exactly the slice, including ranges that cross read-buffer boundaries,
/// the first and last byte, the whole object and an empty range.
pub async fn ranges(b: &dyn Backend) {
    let len: u64 = 1024 * 1024 + 123;
    let data = pseudo_random(42, len as usize);
    let id = new_backend_id();
    put_bytes(b, &id, &data, 65_536).await;
    let ranges = [
        0..1,
        0..len,
        len - 1..len,
        100..300_000,
        262_143..262_145,
        65_536..131_072,
        len - 70_000..len,
        500..500,
    ];
    for r in ranges {
        let got = get_bytes(b, &id, Some(r.clone())).await;
        let want = &data[r.start as usize..r.end as usize];
        assert_eq!(got.len(), want.len(), "{}: length of range {r:?}", b.name());
        assert!(got == want, "{}: content of range {r:?} differs", b.name());
    }
    b.delete(&id)
        .await
        .unwrap_or_else(|e| panic!("{}: delete: {e}", b.name()));
}

/// Head reports size and a plausible modification time.
pub async fn head(b: &dyn Backend) {
    let id = new_backend_id();
    let before = now_ms();
    put_bytes(b, &id, b"head check", 4).await;
    let info = b
        .head(&id)
        .await
        .unwrap_or_else(|e| panic!("{}: head: {e}", b.name()));
    assert_eq!(info.size, 10, "{}: head size", b.name());
    // Allow clock skew between us and a remote backend, and coarse filesystem timestamps.
    let skew = 10 * 60 * 1000;
    assert!(
        info.modified_ms >= before - skew && info.modified_ms <= now_ms() + skew,
        "{}: modified_ms {} not near now {before}",
        b.name(),
        info.modified_ms
    );
    b.delete(&id)
        .await
        .unwrap_or_else(|e| panic!("{}: delete: {e}", b.name()));
}

/// Delete removes the object; deleting again, or deleting an id never written, is Ok.
pub async fn delete(b: &dyn Backend) {
    let id = new_backend_id();
    put_bytes(b, &id, b"to be deleted", 5).await;
    b.delete(&id)
        .await
        .unwrap_or_else(|e| panic!("{}: delete: {e}", b.name()));
    assert_not_found(b, "get after delete", b.get(&id, None).await.map(|_| ()));
    assert_not_found(b, "head after delete", b.head(&id).await);
    b.delete(&id)
        .await
        .unwrap_or_else(|e| panic!("{}: second delete: {e}", b.name()));
    b.delete(&new_backend_id())
        .await
        .unwrap_or_else(|e| panic!("{}: delete of a never-written id: {e}", b.name()));
}

/// Get and head of an id that was never written are NotFound, also for a ranged get.
pub async fn missing_object_errors(b: &dyn Backend) {
    let id = new_backend_id();
    assert_not_found(b, "get of a missing id", b.get(&id, None).await.map(|_| ()));
    assert_not_found(
        b,
        "ranged get of a missing id",
        b.get(&id, Some(0..1)).await.map(|_| ()),
    );
    assert_not_found(b, "head of a missing id", b.head(&id).await);
}

/// List yields every stored object with its size, and no longer yields deleted ones.
pub async fn list(b: &dyn Backend) {
    let mut ids = Vec::new();
    for i in 0..25u64 {
        let id = new_backend_id();
        put_bytes(b, &id, &pseudo_random(i, i as usize * 3), 16).await;
        ids.push(id);
    }
    let listed = list_all(b).await;
    for (i, id) in ids.iter().enumerate() {
        let size = listed.iter().find(|(l, _)| l == id).map(|(_, s)| *s);
        assert_eq!(size, Some(i as u64 * 3), "{}: list entry of {id}", b.name());
    }
    for id in &ids[..10] {
        b.delete(id)
            .await
            .unwrap_or_else(|e| panic!("{}: delete: {e}", b.name()));
    }
    let listed = list_all(b).await;
    for (i, id) in ids.iter().enumerate() {
        let present = listed.iter().any(|(l, _)| l == id);
        assert_eq!(
            present,
            i >= 10,
            "{}: {id} listed after deleting the first 10",
            b.name()
        );
    }
    for id in &ids[10..] {
        b.delete(id)
            .await
            .unwrap_or_else(|e| panic!("{}: delete: {e}", b.name()));
    }
}

async fn list_all(b: &dyn Backend) -> Vec<(String, u64)> {
    let mut stream = b
        .list()
        .await
        .unwrap_or_else(|e| panic!("{}: list: {e}", b.name()));
    let mut out = Vec::new();
    while let Some(item) = stream.next().await {
        let info = item.unwrap_or_else(|e| panic!("{}: list item: {e}", b.name()));
        out.push((info.id, info.size));
    }
    out
}

/// Putting to an existing id replaces its content entirely (longer and shorter).
pub async fn overwrite(b: &dyn Backend) {
    let id = new_backend_id();
    let first = pseudo_random(1, 100_000);
    let second = pseudo_random(2, 300_000);
    let third = pseudo_random(3, 10);
    put_bytes(b, &id, &first, 4096).await;
    put_bytes(b, &id, &second, 65_536).await;
    assert_eq!(
        sha256(&get_bytes(b, &id, None).await),
        sha256(&second),
        "{}: after overwrite",
        b.name()
    );
    put_bytes(b, &id, &third, 3).await;
    assert_eq!(
        get_bytes(b, &id, None).await,
        third,
        "{}: after shrinking overwrite",
        b.name()
    );
    assert_eq!(
        b.head(&id).await.map(|i| i.size).ok(),
        Some(10),
        "{}: head after overwrite",
        b.name()
    );
    b.delete(&id)
        .await
        .unwrap_or_else(|e| panic!("{}: delete: {e}", b.name()));
}

/// A put whose body stream fails part-way (or whose length differs from the size hint) returns
/// Err and leaves nothing visible: no object under a fresh id, the old content under an
/// existing one.
pub async fn failed_put_leaves_nothing(b: &dyn Backend) {
    fn failing_body(good: usize) -> ByteStream {
        let data = pseudo_random(9, good);
        let items: Vec<std::io::Result<Bytes>> = vec![
            Ok(Bytes::from(data)),
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "client went away",
            )),
            Ok(Bytes::from_static(b"never read")),
        ];
        futures::stream::iter(items).boxed()
    }
    let fresh = new_backend_id();
    let r = b.put(&fresh, failing_body(300_000), None).await;
    assert!(
        r.is_err(),
        "{}: put with a failing body returned {r:?}",
        b.name()
    );
    assert_not_found(b, "head after a failed put", b.head(&fresh).await);
    assert!(
        !list_all(b).await.iter().any(|(id, _)| *id == fresh),
        "{}: a failed put is listed",
        b.name()
    );

    let short = new_backend_id();
    let r = b.put(&short, body_of(b"12345", 2), Some(6)).await;
    assert!(
        r.is_err(),
        "{}: put shorter than its size hint returned {r:?}",
        b.name()
    );
    assert_not_found(b, "head after a short put", b.head(&short).await);
    let long = new_backend_id();
    let r = b.put(&long, body_of(b"1234567", 2), Some(6)).await;
    assert!(
        r.is_err(),
        "{}: put longer than its size hint returned {r:?}",
        b.name()
    );
    assert_not_found(b, "head after a long put", b.head(&long).await);

    let existing = new_backend_id();
    let old = pseudo_random(10, 5000);
    put_bytes(b, &existing, &old, 1000).await;
    let r = b.put(&existing, failing_body(70_000), None).await;
    assert!(r.is_err(), "{}: failing overwrite returned {r:?}", b.name());
    assert_eq!(
        get_bytes(b, &existing, None).await,
        old,
        "{}: old content after a failed overwrite",
        b.name()
    );
    b.delete(&existing)
        .await
        .unwrap_or_else(|e| panic!("{}: delete: {e}", b.name()));
}

/// Many concurrent writers: distinct ids all land intact; racing writers to one id leave exactly
/// one writer's complete content, never a mix.
pub async fn concurrent_writers(b: &dyn Backend) {
    let distinct: Vec<(String, Vec<u8>)> = (0..16u64)
        .map(|i| {
            (
                new_backend_id(),
                pseudo_random(100 + i, 200_000 + i as usize),
            )
        })
        .collect();
    futures::future::join_all(
        distinct
            .iter()
            .map(|(id, data)| put_bytes(b, id, data, 8192)),
    )
    .await;
    for (id, data) in &distinct {
        assert_eq!(
            sha256(&get_bytes(b, id, None).await),
            sha256(data),
            "{}: concurrent put of {id}",
            b.name()
        );
    }

    let shared = new_backend_id();
    let versions: Vec<Vec<u8>> = (0..8u64).map(|i| pseudo_random(200 + i, 150_000)).collect();
    futures::future::join_all(
        versions
            .iter()
            .map(|data| put_bytes(b, &shared, data, 4096)),
    )
    .await;
    let got = sha256(&get_bytes(b, &shared, None).await);
    assert!(
        versions.iter().any(|v| sha256(v) == got),
        "{}: racing writers left content that is none of the written versions",
        b.name()
    );
    for (id, _) in &distinct {
        b.delete(id)
            .await
            .unwrap_or_else(|e| panic!("{}: delete: {e}", b.name()));
    }
    b.delete(&shared)
        .await
        .unwrap_or_else(|e| panic!("{}: delete: {e}", b.name()));
}

/// Readiness probe works.
pub async fn check(b: &dyn Backend) {
    b.check()
        .await
        .unwrap_or_else(|e| panic!("{}: check: {e}", b.name()));
}

/// Every check above except the large object (run that one on its own: it measures memory).
pub async fn run_all(b: &dyn Backend) {
    put_get_roundtrip(b).await;
    ranges(b).await;
    head(b).await;
    delete(b).await;
    missing_object_errors(b).await;
    list(b).await;
    overwrite(b).await;
    failed_put_leaves_nothing(b).await;
    concurrent_writers(b).await;
    check(b).await;
}

/// Outcome of [`large_streamed_object`].
#[derive(Debug, Clone, Copy)]
pub struct LargeObjectReport {
    pub size: u64,
    /// Largest piece the backend's get stream yielded.
    pub max_read_chunk: usize,
    /// Growth of the process's peak resident memory during the check, if measurable (Linux).
    pub peak_rss_growth: Option<u64>,
}

/// Streams a `size`-byte object in and out without ever holding it in memory: the body is
/// generated piece by piece, the read-back is hashed piece by piece, SHA-256 must match, a range
/// near the end must match, and (on Linux) the process's peak RSS must grow by less than
/// `max_rss_growth` bytes. Run it alone in its process for the memory figure to mean anything.
pub async fn large_streamed_object(
    b: &dyn Backend,
    size: u64,
    max_rss_growth: u64,
) -> LargeObjectReport {
    const PIECE: usize = 1 << 20;
    let id = new_backend_id();
    let rss_before = reset_peak_rss();

    // The body is generated piece by piece and hashed as the backend pulls it.
    let pieces = size.div_ceil(PIECE as u64);
    let hasher = std::sync::Arc::new(std::sync::Mutex::new(Sha256::new()));
    let feed = hasher.clone();
    let body = futures::stream::iter(0..pieces)
        .map(move |i| {
            let len = (size - i * PIECE as u64).min(PIECE as u64) as usize;
            let piece = pseudo_random(1_000_000 + i, len);
            feed.lock()
                .map_err(|_| std::io::Error::other("hasher poisoned"))?
                .update(&piece);
            Ok::<_, std::io::Error>(Bytes::from(piece))
        })
        .boxed();

    let n = b
        .put(&id, body, Some(size))
        .await
        .unwrap_or_else(|e| panic!("{}: large put: {e}", b.name()));
    assert_eq!(n, size, "{}: large put byte count", b.name());
    let want = hasher
        .lock()
        .map(|h| h.clone().finalize())
        .unwrap_or_else(|_| panic!("{}: hasher poisoned", b.name()));

    let max_read_chunk = check_read_back(b, &id, size, want.as_slice()).await;
    if size > 10 {
        check_tail(b, &id, size, PIECE as u64).await;
    }
    b.delete(&id)
        .await
        .unwrap_or_else(|e| panic!("{}: delete: {e}", b.name()));

    let peak_rss_growth = match (rss_before, peak_rss()) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    if let Some(growth) = peak_rss_growth {
        assert!(
            growth < max_rss_growth,
            "{}: peak RSS grew by {growth} bytes streaming a {size}-byte object (limit {max_rss_growth})",
            b.name()
        );
    }
    LargeObjectReport {
        size,
        max_read_chunk,
        peak_rss_growth,
    }
}

/// Reads a large object back piece by piece: `size` bytes whose SHA-256 is `want`. The largest
/// piece the get stream yielded.
async fn check_read_back(b: &dyn Backend, id: &str, size: u64, want: &[u8]) -> usize {
    let mut stream = b
        .get(id, None)
        .await
        .unwrap_or_else(|e| panic!("{}: large get: {e}", b.name()));
    let mut got = Sha256::new();
    let mut total = 0u64;
    let mut max_read_chunk = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("{}: large get read: {e}", b.name()));
        max_read_chunk = max_read_chunk.max(chunk.len());
        total += chunk.len() as u64;
        got.update(&chunk);
    }
    assert_eq!(total, size, "{}: large get byte count", b.name());
    assert_eq!(
        got.finalize().as_slice(),
        want,
        "{}: large object SHA-256",
        b.name()
    );
    max_read_chunk
}

/// The last 10 bytes of a large object (generated in pieces of `piece` bytes), read as a range.
async fn check_tail(b: &dyn Backend, id: &str, size: u64, piece: u64) {
    let last_piece = (size - 1) / piece;
    let piece_start = last_piece * piece;
    let bytes = pseudo_random(1_000_000 + last_piece, (size - piece_start) as usize);
    let start = size - 10;
    let tail = get_bytes(b, id, Some(start..size)).await;
    assert_eq!(
        tail,
        bytes[(start - piece_start) as usize..],
        "{}: tail range of a large object",
        b.name()
    );
}

/// Resets the kernel's peak-RSS mark of this process (Linux `clear_refs` 5) and returns the
/// current RSS; None where unsupported.
fn reset_peak_rss() -> Option<u64> {
    std::fs::write("/proc/self/clear_refs", "5").ok()?;
    status_kib("VmRSS:")
}

fn peak_rss() -> Option<u64> {
    status_kib("VmHWM:")
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The values of the variables naming a test service (`VAULTGATE_TEST_S3_ENDPOINT`, …), or
/// `None` when one is unset: the test then prints "skipped" and passes, unless
/// `VAULTGATE_REQUIRE_SERVICES=1` (CI), where it fails and says how to start the service
/// (`hint`).
pub fn service_vars(test: &str, vars: &[&str], hint: &str) -> Option<Vec<String>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let values: Option<Vec<String>> = vars.iter().map(|k| var(k)).collect();
    if values.is_none() {
        if var("VAULTGATE_REQUIRE_SERVICES").as_deref() == Some("1") {
            panic!(
                "{test}: VAULTGATE_REQUIRE_SERVICES=1 but {} is not set ({hint})",
                vars.join(", ")
            );
        }
        eprintln!("{test}: skipped ({} not set)", vars.join(", "));
    }
    values
}

/// Declares one `#[tokio::test]` per check of this suite (every check [`run_all`] runs), each
/// on its own backend: `fresh(test_name).await` gives `Some((guard, backend))` (the guard
/// keeps e.g. a temp dir alive; `None` skips the test, see [`service_vars`]), and after the
/// check `after(&guard, &backend).await` asserts what the backend promises to leave behind.
#[macro_export]
macro_rules! backend_tests {
    (fresh: $fresh:path, after: $after:path) => {
        $crate::backend_tests!(@each $fresh, $after;
            put_get_roundtrip ranges head delete missing_object_errors list overwrite
            failed_put_leaves_nothing concurrent_writers check);
    };
    (@each $fresh:path, $after:path; $($name:ident)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let Some((guard, backend)) = $fresh(stringify!($name)).await else {
                return;
            };
            $crate::backend::$name(&backend).await;
            $after(&guard, &backend).await;
        }
    )*};
}
