//! `vaultgate keys reencrypt --bucket B` and `POST /admin/v1/kek/reencrypt`: a new data key
//! version for a bucket, then every version of every object in it (delete markers included)
//! re-sealed under that version, so that nothing depends on the older data key versions or on
//! the KEKs that wrapped them in stream headers (after it, `keys retire` of an old KEK needs no
//! `--accept-header-copies`).
//!
//! One version at a time, through the object layer's write protocol:
//!
//! 1. read the old streams (plaintext, SHA-256 of it) and seal them into new backend objects
//!    under the target data key — same object id, chunk size, part numbers and sealed metadata
//!    (a multipart object gets a new manifest listing the new parts);
//! 2. verify: read every new stream back and compare its plaintext SHA-256 and MD5 with the old;
//! 3. commit with a compare-and-swap ([`Index::reseal_version`]): the index points at the new
//!    streams only if the version still references exactly the old ones, so an overwrite or a
//!    delete racing the re-seal wins and the new streams are deleted; the version id, ETag,
//!    size, metadata, tags and object lock of the version are untouched (it is not a new
//!    version);
//! 4. the old streams go to the garbage collection queue in the same transaction.
//!
//! A crash at any point leaves either the old streams referenced (the new ones are orphans the
//! start-up sweep deletes) or the new ones (the old ones queued for collection). The state is
//! the index itself: the target version is kept in the bucket setting [`SETTING_REENCRYPT`],
//! and a version is done once its row names a data key of that version or newer, so a restart
//! continues where it stopped. SSE-C objects cannot be opened without their customer key: they
//! are skipped and counted.
//!
//! A bucket with SSE-KMS objects has data keys bound to several KMS keys, each its own version
//! sequence: the run gives each of them a new version numbered at least the target (one
//! target for the bucket, so "done" stays "its data key's version ≥ target"), and re-seals
//! each version under the new data key of the KMS key it was under — never under another.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use keys::format::{Header, StreamKind};
use keys::meta::ObjectMeta;
use keys::sealer::SealParams;
use keys::{DataKeyId, StreamKey};
use md5::Digest as _;
use serde::{Deserialize, Serialize};

use super::{collect_bytes, read_bytes};
use crate::error::{Error, Result};
use crate::index::{IndexError, ObjectRecord, ReencryptCandidate, StreamRecord, now_ms};
use crate::store::Store;

/// Name of the bucket setting holding the state of the bucket's re-encryption.
pub const SETTING_REENCRYPT: &str = "reencrypt";

/// Versions fetched from the index at a time.
const BATCH: u32 = 100;
/// The persisted state is written at most this often while a run goes on.
const SAVE_EVERY: Duration = Duration::from_secs(5);
/// A run stops after this many failures in a row (the backend or the key provider is down).
const MAX_FAILURES_IN_A_ROW: u32 = 10;

/// How fast a run may go (both limits apply when both are given).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rate {
    /// plaintext bytes per second
    pub bytes_per_sec: Option<u64>,
    /// object versions per second
    pub objects_per_sec: Option<f64>,
}

impl Rate {
    /// The time `objects` versions of `bytes` bytes may take at the earliest.
    fn min_elapsed(&self, objects: u64, bytes: u64) -> Duration {
        let by_bytes = self
            .bytes_per_sec
            .filter(|r| *r > 0)
            .map(|r| bytes as f64 / r as f64)
            .unwrap_or(0.0);
        let by_objects = self
            .objects_per_sec
            .filter(|r| *r > 0.0)
            .map(|r| objects as f64 / r)
            .unwrap_or(0.0);
        Duration::from_secs_f64(by_bytes.max(by_objects))
    }
}

/// The re-encryption state of a bucket (the setting [`SETTING_REENCRYPT`], and the answer of
/// the CLI and the admin API). Counts are those of the runs since `started_ms`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReencryptState {
    /// bucket
    pub bucket: String,
    /// the data key version everything is re-sealed under
    pub target_version: u32,
    /// its id (hex)
    pub target_key_id: String,
    /// when the re-encryption started (ms since the epoch)
    pub started_ms: i64,
    /// when it finished (every version re-sealed, SSE-C objects aside); None while not done
    pub finished_ms: Option<i64>,
    /// versions re-sealed
    pub resealed: u64,
    /// their plaintext bytes
    pub bytes: u64,
    /// SSE-C versions left under their old data key (no customer key to open them), counted
    /// by the last run
    pub skipped_sse_c: u64,
    /// re-seals dropped because an overwrite or a delete of the version won the race
    pub raced: u64,
    /// versions that failed in the last run (run again to retry)
    pub failed: u64,
    /// versions still under an older data key, SSE-C included, when last saved
    pub remaining: u64,
    /// the last failures (object key, version id, reason), at most 20
    #[serde(default)]
    pub errors: Vec<(String, String, String)>,
    /// a run is going on in this gateway (online only; not persisted meaningfully)
    #[serde(default)]
    pub running: bool,
}

impl ReencryptState {
    /// One line for the CLI.
    pub fn summary(&self) -> String {
        format!(
            "reencrypt {}: data key version {}, {} versions re-sealed ({} bytes), {} SSE-C skipped, \
             {} raced by a write, {} failed, {} remaining{}",
            self.bucket,
            self.target_version,
            self.resealed,
            self.bytes,
            self.skipped_sse_c,
            self.raced,
            self.failed,
            self.remaining,
            if self.finished_ms.is_some() {
                ", finished"
            } else {
                ", not finished (run again to continue)"
            }
        )
    }
}

/// What happened to one version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Resealed,
    SkippedSseC,
    Raced,
}

fn idx(e: IndexError) -> Error {
    e.into()
}

/// The saved state of `bucket`'s re-encryption, if any. `NotFound` if the bucket does not exist.
pub async fn load_state(store: &Store, bucket: &str) -> Result<Option<ReencryptState>> {
    let Some(v) = store
        .index()
        .bucket_setting(bucket, SETTING_REENCRYPT)
        .await
        .map_err(idx)?
    else {
        return Ok(None);
    };
    serde_json::from_str(&v)
        .map(Some)
        .map_err(|e| Error::Internal(format!("bucket {bucket}: bad re-encryption state: {e}")))
}

async fn save_state(store: &Store, state: &ReencryptState) -> Result<()> {
    let mut s = state.clone();
    s.running = false;
    let v = serde_json::to_string(&s)
        .map_err(|e| Error::Internal(format!("re-encryption state: {e}")))?;
    store
        .index()
        .set_bucket_setting(&state.bucket, SETTING_REENCRYPT, Some(&v), None)
        .await
        .map_err(idx)?;
    Ok(())
}

/// Starts (a new data key version, state saved) or resumes (the saved target) the
/// re-encryption of `bucket`, and returns its state before any version is re-sealed.
/// `NotFound` if the bucket does not exist.
pub async fn begin(store: &Store, bucket: &str) -> Result<ReencryptState> {
    if let Some(s) = load_state(store, bucket).await?
        && s.finished_ms.is_none()
    {
        tracing::info!(
            bucket,
            version = s.target_version,
            "resuming the re-encryption"
        );
        return Ok(s);
    }
    let key = rotate_every_kms_key(store, bucket).await?;
    let (remaining, _) = store
        .index()
        .reencrypt_remaining(bucket, key.key_version())
        .await
        .map_err(idx)?;
    let state = ReencryptState {
        bucket: bucket.to_owned(),
        target_version: key.key_version(),
        target_key_id: key.data_key_id().to_hex(),
        started_ms: now_ms(),
        remaining,
        ..Default::default()
    };
    save_state(store, &state).await?;
    tracing::info!(
        bucket,
        version = state.target_version,
        versions = remaining,
        "re-encryption started under a new data key version"
    );
    Ok(state)
}

/// A new data key version for each KMS key `bucket` has data keys under (the configured key
/// always), all numbered alike: the highest current version + 1. Returns the configured key's.
async fn rotate_every_kms_key(store: &Store, bucket: &str) -> Result<StreamKey> {
    let keyring = store.keyring();
    let mut kms_keys: Vec<String> = Vec::new();
    let mut top = 0;
    for k in keyring.store().list().await? {
        if k.bucket == bucket {
            top = top.max(k.version);
            if !k.kms_key.is_empty() && !kms_keys.contains(&k.kms_key) {
                kms_keys.push(k.kms_key);
            }
        }
    }
    let target = top
        .checked_add(1)
        .ok_or_else(|| Error::Internal("data key version overflow".into()))?;
    let key = keyring.rotate_data_key_under(bucket, "", target).await?;
    for k in kms_keys {
        keyring.rotate_data_key_under(bucket, &k, target).await?;
    }
    Ok(key)
}

/// The data key a version sealed under `data_key_id` is re-sealed under: the current data key
/// of `bucket` bound to the same KMS key, brought to `target` if it is older (a KMS key first
/// used in the bucket after the run began).
async fn target_key(
    store: &Store,
    bucket: &str,
    data_key_id: &str,
    target: u32,
) -> Result<StreamKey> {
    let keyring = store.keyring();
    let kms_key = match keyring
        .store()
        .get(&DataKeyId::from_hex(data_key_id)?)
        .await?
    {
        Some(rec) => rec.kms_key,
        None => String::new(),
    };
    let key = keyring.sealing_key_under(bucket, &kms_key).await?;
    if key.key_version() >= target {
        return Ok(key);
    }
    Ok(keyring
        .rotate_data_key_under(bucket, &kms_key, target)
        .await?)
}

/// Re-seals every version of the bucket of `state` not yet under its target data key version,
/// at most at `rate`, keeping `shared` up to date (the online status) and `pb` advancing (the
/// offline progress bar, in bytes). Returns the state as saved at the end.
pub async fn run(
    store: &Store,
    state: ReencryptState,
    rate: Rate,
    shared: Option<Arc<Mutex<ReencryptState>>>,
    pb: Option<indicatif::ProgressBar>,
) -> Result<ReencryptState> {
    let bucket = state.bucket.clone();
    let target = state.target_version;
    let mut progress = Progress::start(store, state, shared, pb).await?;
    let mut cursor: Option<(String, String)> = None;
    'outer: loop {
        let batch = store
            .index()
            .reencrypt_candidates(
                &bucket,
                progress.state.target_version,
                cursor.as_ref().map(|(k, v)| (k.as_str(), v.as_str())),
                BATCH,
            )
            .await
            .map_err(idx)?;
        if batch.is_empty() {
            break;
        }
        for c in batch {
            cursor = Some((c.key.clone(), c.version_id.clone()));
            let r = reseal_version(store, target, &bucket, &c.key, &c.version_id).await;
            progress.tally(&c, r);
            if progress.advance(store, rate, c.size).await? {
                break 'outer;
            }
        }
    }
    progress.finish(store).await
}

/// One run's progress: the state it keeps (published to `shared` after every version, saved
/// every [`SAVE_EVERY`]), the offline progress bar, and the counters that pace the run and stop
/// it after [`MAX_FAILURES_IN_A_ROW`].
struct Progress {
    state: ReencryptState,
    shared: Option<Arc<Mutex<ReencryptState>>>,
    pb: Option<indicatif::ProgressBar>,
    /// versions left when the run started
    remaining: u64,
    started: Instant,
    done_objects: u64,
    done_bytes: u64,
    last_save: Instant,
    in_a_row: u32,
}

impl Progress {
    /// A run's start: the versions and bytes left counted, the per-run counters reset, the
    /// state published as running.
    async fn start(
        store: &Store,
        mut state: ReencryptState,
        shared: Option<Arc<Mutex<ReencryptState>>>,
        pb: Option<indicatif::ProgressBar>,
    ) -> Result<Progress> {
        let (remaining, remaining_bytes) = store
            .index()
            .reencrypt_remaining(&state.bucket, state.target_version)
            .await
            .map_err(idx)?;
        state.remaining = remaining;
        // per run: each run passes over every version still under an older key
        state.skipped_sse_c = 0;
        state.failed = 0;
        state.errors.clear();
        state.running = true;
        if let Some(pb) = &pb {
            pb.set_length(remaining_bytes);
        }
        let progress = Progress {
            state,
            shared,
            pb,
            remaining,
            started: Instant::now(),
            done_objects: 0,
            done_bytes: 0,
            last_save: Instant::now(),
            in_a_row: 0,
        };
        progress.publish();
        Ok(progress)
    }

    /// Makes the state what the online status shows.
    fn publish(&self) {
        if let Some(sh) = &self.shared
            && let Ok(mut g) = sh.lock()
        {
            *g = self.state.clone();
        }
    }

    /// Counts what happened to version `c`.
    fn tally(&mut self, c: &ReencryptCandidate, r: Result<Option<Outcome>>) {
        let state = &mut self.state;
        match r {
            Ok(Some(Outcome::Resealed)) => {
                state.resealed += 1;
                state.bytes += c.size;
                self.in_a_row = 0;
            }
            Ok(Some(Outcome::SkippedSseC)) => state.skipped_sse_c += 1,
            Ok(Some(Outcome::Raced)) | Ok(None) => state.raced += 1,
            Err(e) => {
                tracing::warn!(bucket = %state.bucket, key = %c.key, version_id = %c.version_id, error = %e, "re-seal failed");
                state.failed += 1;
                if state.errors.len() < 20 {
                    state
                        .errors
                        .push((c.key.clone(), c.version_id.clone(), e.to_string()));
                }
                self.in_a_row += 1;
            }
        }
    }

    /// After a version of `size` bytes: progress shown and published, the state saved when it
    /// is time, the pace kept. Whether the run must stop (too many failures in a row).
    async fn advance(&mut self, store: &Store, rate: Rate, size: u64) -> Result<bool> {
        self.done_objects += 1;
        self.done_bytes += size;
        let (done_objects, done_bytes) = (self.done_objects, self.done_bytes);
        if let Some(pb) = &self.pb {
            pb.inc(size);
            pb.set_message(format!("{done_objects}/{} versions", self.remaining));
        }
        self.publish();
        let bucket = &self.state.bucket;
        if self.in_a_row >= MAX_FAILURES_IN_A_ROW {
            tracing::error!(bucket = %bucket, "re-encryption stopped: {MAX_FAILURES_IN_A_ROW} failures in a row");
            return Ok(true);
        }
        if self.last_save.elapsed() >= SAVE_EVERY {
            // the offline bar logs its own progress lines where it is not drawn
            if self.pb.is_none() {
                let secs = self.started.elapsed().as_secs_f64().max(0.001);
                tracing::info!(
                    bucket = %bucket,
                    done = done_objects,
                    of = self.remaining,
                    bytes = done_bytes,
                    mb_per_sec = format!("{:.2}", done_bytes as f64 / secs / 1e6),
                    "re-encryption progress"
                );
            }
            save_state(store, &self.state).await?;
            self.last_save = Instant::now();
        }
        let wait = rate
            .min_elapsed(done_objects, done_bytes)
            .saturating_sub(self.started.elapsed());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(false)
    }

    /// The run's end: what is left counted, finished when only SSE-C versions (which cannot be
    /// re-sealed) are left and nothing failed, the state saved and published.
    async fn finish(mut self, store: &Store) -> Result<ReencryptState> {
        let (remaining, _) = store
            .index()
            .reencrypt_remaining(&self.state.bucket, self.state.target_version)
            .await
            .map_err(idx)?;
        self.state.remaining = remaining;
        self.state.running = false;
        if self.state.failed == 0 && remaining <= self.state.skipped_sse_c_left(store).await? {
            self.state.finished_ms = Some(now_ms());
        }
        save_state(store, &self.state).await?;
        self.publish();
        if let Some(pb) = &self.pb {
            pb.finish_and_clear();
        }
        let state = self.state;
        tracing::info!(
            bucket = %state.bucket,
            resealed = state.resealed,
            skipped_sse_c = state.skipped_sse_c,
            raced = state.raced,
            failed = state.failed,
            remaining = state.remaining,
            finished = state.finished_ms.is_some(),
            "re-encryption run ended"
        );
        Ok(state)
    }
}

impl ReencryptState {
    /// SSE-C versions still under an older data key (what a finished re-encryption leaves).
    async fn skipped_sse_c_left(&self, store: &Store) -> Result<u64> {
        let mut n = 0u64;
        let mut cursor: Option<(String, String)> = None;
        loop {
            let batch = store
                .index()
                .reencrypt_candidates(
                    &self.bucket,
                    self.target_version,
                    cursor.as_ref().map(|(k, v)| (k.as_str(), v.as_str())),
                    BATCH,
                )
                .await
                .map_err(idx)?;
            if batch.is_empty() {
                return Ok(n);
            }
            for c in batch {
                if let Some(rec) = store
                    .index()
                    .get_version(&self.bucket, &c.key, Some(&c.version_id))
                    .await
                    .map_err(idx)?
                    && crate::s3::encryption::sse_c_of(&rec.headers).is_some()
                {
                    n += 1;
                }
                cursor = Some((c.key, c.version_id));
            }
        }
    }
}

/// Re-seals one version under the `target` data key of its KMS key (None: the version is gone).
async fn reseal_version(
    store: &Store,
    target: u32,
    bucket: &str,
    object_key: &str,
    version_id: &str,
) -> Result<Option<Outcome>> {
    let Some(rec) = store
        .index()
        .get_version(bucket, object_key, Some(version_id))
        .await
        .map_err(idx)?
    else {
        return Ok(None);
    };
    let key = &target_key(store, bucket, &rec.data_key_id, target).await?;
    if rec.data_key_id == key.data_key_id().to_string() {
        // overwritten under the new key since it was listed
        return Ok(Some(Outcome::Raced));
    }
    if crate::s3::encryption::sse_c_of(&rec.headers).is_some() {
        return Ok(Some(Outcome::SkippedSseC));
    }
    let expected: Vec<String> = rec.backend_ids().map(str::to_owned).collect();
    let mut written = store.uncommitted();
    let new = match reseal_streams(store, key, &rec, &mut written).await {
        Ok(new) => new,
        Err(e) => {
            written.discard().await;
            return Err(e);
        }
    };
    match store.index().reseal_version(&expected, &new).await {
        Ok(Some(garbage)) => {
            written.committed();
            store.collect(garbage).await;
            Ok(Some(Outcome::Resealed))
        }
        Ok(None) => {
            tracing::info!(
                bucket,
                key = object_key,
                version_id,
                "re-seal dropped: the version changed meanwhile"
            );
            written.discard().await;
            Ok(Some(Outcome::Raced))
        }
        Err(e) => {
            written.discard().await;
            Err(idx(e))
        }
    }
}

/// The new streams (and manifest) of `rec` under `key`, written and verified; every backend id
/// written is added to `written` (deleted unless the caller commits them).
async fn reseal_streams(
    store: &Store,
    key: &StreamKey,
    rec: &ObjectRecord,
    written: &mut crate::store::Uncommitted,
) -> Result<ObjectRecord> {
    let mut new = rec.clone();
    new.data_key_id = key.data_key_id().to_string();
    new.key_version = key.key_version();
    new.streams.clear();
    match &rec.manifest_id {
        None => {
            let [s] = rec.streams.as_slice() else {
                return Err(Error::Integrity(format!(
                    "{}/{}: a single-stream version with {} streams",
                    rec.bucket,
                    rec.key,
                    rec.streams.len()
                )));
            };
            let header = Header::decode(&s.header)?;
            let meta = stream_meta(store, &rec.bucket, s, &header).await?;
            let ns =
                reseal_stream(store, key, &rec.bucket, s, &header, Some(meta), written).await?;
            new.streams.push(ns);
        }
        Some(manifest_id) => {
            let sealed = read_bytes(store.backend().as_ref(), manifest_id, None).await?;
            let mheader = Header::decode(&sealed)?;
            let mkey = store.keyring().opening_key(&rec.bucket, &mheader).await?;
            let (mheader, mut meta) = keys::open_manifest(&mkey, &sealed)?;
            if meta.parts.len() != rec.streams.len() {
                return Err(Error::Integrity(format!(
                    "{}/{}: the manifest lists {} parts, the index {}",
                    rec.bucket,
                    rec.key,
                    meta.parts.len(),
                    rec.streams.len()
                )));
            }
            for (entry, s) in meta.parts.iter_mut().zip(&rec.streams) {
                let header = Header::decode(&s.header)?;
                let ns = reseal_stream(store, key, &rec.bucket, s, &header, None, written).await?;
                let nh = Header::decode(&ns.header)?;
                entry.backend_id = ns.backend_id.clone();
                entry.header_sha256_hex = hex::encode(nh.sha256());
                new.streams.push(ns);
            }
            let params = SealParams {
                bucket: rec.bucket.clone(),
                kind: StreamKind::Manifest,
                object_id: mheader.object_id(),
                part_number: 0,
                chunk_size: mheader.chunk_size(),
                checksums: Default::default(),
                meta: None,
            };
            let manifest = keys::sealer::seal_manifest(key, params, &meta)?;
            // the new manifest opens and lists exactly the new parts
            let (check_header, check_meta) = keys::open_manifest(key, &manifest)?;
            let part_headers = new
                .streams
                .iter()
                .map(|s| Ok((Header::decode(&s.header)?, s.plaintext_len)))
                .collect::<Result<Vec<_>>>()?;
            keys::verify_parts(&check_header, &check_meta, &part_headers)?;
            let id = crate::backend::new_backend_id();
            let len = manifest.len() as u64;
            let body =
                futures::stream::once(
                    async move { Ok::<_, std::io::Error>(Bytes::from(manifest)) },
                );
            written.push(id.clone());
            store.backend().put(&id, Box::pin(body), Some(len)).await?;
            new.manifest_id = Some(id);
        }
    }
    Ok(new)
}

/// The sealed metadata of a kind Object stream (its trailer).
async fn stream_meta(
    store: &Store,
    bucket: &str,
    s: &StreamRecord,
    header: &Header,
) -> Result<ObjectMeta> {
    // an inline stream (maybe not written back yet) is read from its row
    let size = store.sealed_size(s).await?;
    if size < 4 {
        return Err(Error::Integrity(format!("{}: too short", s.backend_id)));
    }
    let read = |range: std::ops::Range<u64>| async move {
        collect_bytes(store.sealed_range(s, range).await?, &s.backend_id).await
    };
    let last4 = read(size - 4..size).await?;
    let tl = keys::format::trailer_len_from_suffix(&last4)?;
    let need = (tl + 4).min(size);
    let tail = read(size - need..size).await?;
    let okey = store.keyring().opening_key(bucket, header).await?;
    let (_, meta) = keys::read_meta(&okey, header, size, &tail)?;
    Ok(meta)
}

#[derive(Default)]
struct Digests {
    sha: sha2::Sha256,
    md5: md5::Md5,
}

impl Digests {
    fn update(&mut self, b: &[u8]) {
        sha2::Digest::update(&mut self.sha, b);
        self.md5.update(b);
    }
    fn finish(self) -> ([u8; 32], [u8; 16]) {
        (
            sha2::Digest::finalize(self.sha).into(),
            self.md5.finalize().into(),
        )
    }
}

/// Plaintext digests of a whole stream, read through the object layer.
async fn digest_stream(
    store: &Store,
    bucket: &str,
    s: &StreamRecord,
) -> Result<([u8; 32], [u8; 16])> {
    let mut d = Digests::default();
    let mut body = store
        .open_stream(bucket, s, 0..s.plaintext_len, None)
        .await?;
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| Error::Integrity(format!("{}: {e}", s.backend_id)))?;
        n += chunk.len() as u64;
        d.update(&chunk);
    }
    if n != s.plaintext_len {
        return Err(Error::Integrity(format!(
            "{}: {n} plaintext bytes, {} expected",
            s.backend_id, s.plaintext_len
        )));
    }
    Ok(d.finish())
}

/// Seals the plaintext of stream `s` again under `key` (same kind, object id, part number and
/// chunk size; `meta`: the trailer of a kind Object stream) and verifies the new stream by
/// reading it back: the same plaintext SHA-256 and MD5 as the old one, and the MD5 the index
/// records.
async fn reseal_stream(
    store: &Store,
    key: &StreamKey,
    bucket: &str,
    s: &StreamRecord,
    header: &Header,
    meta: Option<ObjectMeta>,
    written: &mut crate::store::Uncommitted,
) -> Result<StreamRecord> {
    let expected_meta = meta.clone();
    let params = SealParams {
        bucket: bucket.to_owned(),
        kind: header.kind(),
        object_id: header.object_id(),
        part_number: header.part_number(),
        chunk_size: header.chunk_size(),
        checksums: Default::default(),
        meta,
    };
    let digests: Arc<Mutex<Digests>> = Arc::default();
    let d = digests.clone();
    let body = store
        .open_stream(bucket, s, 0..s.plaintext_len, None)
        .await?
        .inspect_ok(move |b| {
            if let Ok(mut g) = d.lock() {
                g.update(b);
            }
        });
    let sealed = store
        .seal_into_backend(key, params, body, Some(s.plaintext_len))
        .await?;
    written.push(sealed.backend_id.clone());
    let old = std::mem::take(
        &mut *digests
            .lock()
            .map_err(|_| Error::Internal("digest lock poisoned".into()))?,
    )
    .finish();
    let sum = &sealed.summary;
    if sum.plaintext_len != s.plaintext_len
        || hex::encode(old.1) != s.md5_hex && !s.md5_hex.is_empty()
    {
        return Err(Error::Integrity(format!(
            "{}: the plaintext read ({} bytes, MD5 {}) is not what the index records ({} bytes, MD5 {})",
            s.backend_id,
            sum.plaintext_len,
            hex::encode(old.1),
            s.plaintext_len,
            s.md5_hex
        )));
    }
    let ns = StreamRecord {
        backend_id: sealed.backend_id.clone(),
        part_number: s.part_number,
        header: sum.header.clone(),
        plaintext_len: sum.plaintext_len,
        md5_hex: s.md5_hex.clone(),
        checksums: s.checksums.clone(),
        inline: None,
    };
    let back = digest_stream(store, bucket, &ns).await?;
    if back != old || sum.md5 != old.1 {
        return Err(Error::Integrity(format!(
            "{}: the re-sealed stream {} does not read back to the same plaintext",
            s.backend_id, ns.backend_id
        )));
    }
    if let Some(meta) = expected_meta {
        let nh = Header::decode(&ns.header)?;
        if stream_meta(store, bucket, &ns, &nh).await? != meta {
            return Err(Error::Integrity(format!(
                "{}: the re-sealed stream {} does not carry the same sealed metadata",
                s.backend_id, ns.backend_id
            )));
        }
    }
    Ok(ns)
}
