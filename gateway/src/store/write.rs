//! Writes: the write protocol, once. A body is sealed into a new backend id held by an
//! [`Uncommitted`] guard; the digests the request promised are verified; the request's audit
//! event is recorded before the change becomes visible (fail closed: if the ledger cannot take
//! it, nothing changes); the index commit makes it visible and consumes the guard; whatever the
//! commit replaced is collected. Every failure before the commit deletes the new backend
//! objects (awaited on the error paths, and by the guard's `Drop` if the request is abandoned).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use keys::CustomerKey;
use keys::checksum::ChecksumSet;
use keys::envelope::StreamKey;
use keys::format::{DEFAULT_CHUNK_SIZE, StreamKind};
use keys::meta::ObjectMeta;
use keys::sealer::{SealParams, SealSummary};

use super::Store;
use crate::audit;
use crate::backend::{Backend, new_backend_id};
use crate::error::{Error, Result};
use crate::index::{
    DeleteCondition, IndexError, NULL_VERSION, ObjectLock, ObjectRecord, PartRecord, Precondition,
    StreamRecord, UploadRecord, WriteCondition, now_ms,
};

/// The version a write creates: its id ([`NULL_VERSION`] unless the bucket has versioning
/// Enabled) and its object lock state (from the request's headers or the bucket's default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVersion {
    pub version_id: String,
    pub lock: ObjectLock,
}

impl NewVersion {
    /// The `null` version without object lock (an unversioned bucket).
    pub fn null() -> NewVersion {
        NewVersion {
            version_id: NULL_VERSION.to_owned(),
            lock: ObjectLock::default(),
        }
    }

    /// A fresh version id: 16 hex digits of a strictly increasing microsecond clock (so that
    /// ids sort by creation in one process, and `reindex` can order versions written in the
    /// same millisecond) and 16 random hex digits.
    pub fn new_id() -> Result<String> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static LAST: AtomicU64 = AtomicU64::new(0);
        let now = u64::try_from(now_ms()).unwrap_or(0).saturating_mul(1000);
        let mut prev = LAST.load(Ordering::Relaxed);
        let t = loop {
            let t = now.max(prev + 1);
            match LAST.compare_exchange_weak(prev, t, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => break t,
                Err(p) => prev = p,
            }
        };
        let mut r = [0u8; 8];
        getrandom::fill(&mut r).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
        Ok(format!("{t:016x}{}", hex::encode(r)))
    }

    /// Copies the version id and lock into sealed metadata (the `null` version is left out, as
    /// in every stream written before versioning).
    pub fn seal_into(&self, meta: &mut ObjectMeta) {
        meta.version_id = (self.version_id != NULL_VERSION).then(|| self.version_id.clone());
        if let Some((mode, until)) = self.lock.retention {
            meta.lock_mode = Some(mode.as_str().to_owned());
            meta.lock_until_ms = Some(until);
        }
        meta.legal_hold = self.lock.legal_hold;
    }
}
use crate::request::RequestCtx;

/// A sealed stream that reached the backend but is not yet committed in the index.
#[derive(Debug)]
pub struct Sealed {
    /// backend object id
    pub backend_id: String,
    /// sizes, MD5, checksums and the header of the stream
    pub summary: SealSummary,
    /// The sealed stream itself when it was kept for the index row instead of being written
    /// to the backend (an inline object, [`Sealing::into_memory`]).
    pub inline: Option<Bytes>,
}

impl ObjectRecord {
    /// The index row of an object stored as one sealed stream (a PUT, a copy, an import): ETag and
    /// size from the seal summary, part number 0.
    #[allow(clippy::too_many_arguments)]
    pub fn single_stream(
        bucket: &str,
        key: &str,
        last_modified_ms: i64,
        headers: std::collections::BTreeMap<String, String>,
        user_metadata: std::collections::BTreeMap<String, String>,
        skey: &StreamKey,
        sealed: &Sealed,
        version: &NewVersion,
    ) -> ObjectRecord {
        let s = &sealed.summary;
        let etag = hex::encode(s.md5);
        ObjectRecord {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version_id: version.version_id.clone(),
            is_latest: true,
            delete_marker: false,
            lock: version.lock,
            size: s.plaintext_len,
            etag: etag.clone(),
            last_modified_ms,
            headers,
            user_metadata,
            checksums: s.checksums.to_base64_map(),
            data_key_id: skey.data_key_id().to_string(),
            key_version: skey.key_version(),
            streams: vec![StreamRecord {
                backend_id: sealed.backend_id.clone(),
                part_number: 0,
                header: s.header.clone(),
                plaintext_len: s.plaintext_len,
                md5_hex: etag,
                checksums: Default::default(),
                inline: sealed.inline.clone().map(|data| crate::index::Inline {
                    data,
                    pending: true,
                }),
            }],
            manifest_id: None,
        }
    }
}

/// What a write must verify beyond sealing (the S3 layer's Content-Length, Content-MD5 and
/// flexible checksums).
pub trait WriteCheck: Send + Sync {
    /// The checksums to compute over the plaintext.
    fn checksums(&self) -> ChecksumSet;
    /// The plaintext length the request announced, if any.
    fn content_length(&self) -> Option<u64>;
    /// Checks a sealed body against what the request promised.
    fn verify(&self, s: &SealSummary) -> Result<()>;
}

/// Backend objects written for a change that is not committed yet. [`Uncommitted::discard`]
/// deletes them (the error paths await it); dropped without [`Uncommitted::committed`] they are
/// deleted by a task of their own (a request abandoned mid-write), so no error path can leave
/// an orphan behind (the start-up sweep stays the last resort for a crash).
pub struct Uncommitted {
    backend: Arc<dyn Backend>,
    ids: Vec<String>,
}

impl std::fmt::Debug for Uncommitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uncommitted")
            .field("ids", &self.ids)
            .finish()
    }
}

impl Uncommitted {
    pub(super) fn new(backend: Arc<dyn Backend>, id: String) -> Uncommitted {
        Uncommitted {
            backend,
            ids: vec![id],
        }
    }

    /// Adds a backend object written for the same change.
    pub fn push(&mut self, id: String) {
        self.ids.push(id);
    }

    /// The change is visible: nothing to delete.
    pub fn committed(mut self) {
        self.ids.clear();
    }

    /// Deletes the backend objects now, logging (not returning) failures.
    pub async fn discard(mut self) {
        for id in std::mem::take(&mut self.ids) {
            delete_quietly(self.backend.as_ref(), &id).await;
        }
    }
}

impl Drop for Uncommitted {
    fn drop(&mut self) {
        if self.ids.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.ids);
        let backend = self.backend.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    for id in ids {
                        delete_quietly(backend.as_ref(), &id).await;
                    }
                });
            }
            Err(_) => tracing::warn!(
                ?ids,
                "uncommitted backend objects left for the orphan sweep (no runtime)"
            ),
        }
    }
}

async fn delete_quietly(backend: &dyn Backend, id: &str) {
    if let Err(e) = backend.delete(id).await {
        tracing::warn!(backend_id = id, error = %e, "could not delete uncommitted backend object");
    }
}

type ErrSlot = Arc<Mutex<Option<Error>>>;

fn remember(slot: &ErrSlot, e: Error) {
    if let Ok(mut g) = slot.lock()
        && g.is_none()
    {
        *g = Some(e);
    }
}

fn take(slot: &ErrSlot) -> Option<Error> {
    slot.lock().ok().and_then(|mut g| g.take())
}

/// A seal under way ([`Store::start_seal`]): the sealed stream, its summary to come, the
/// client's error kept apart, and the sealed length expected when the plaintext length is known.
/// It ends on the backend ([`Store::store_sealed`]) or in memory ([`Sealing::into_memory`]).
struct Sealing {
    sealed: futures::stream::BoxStream<'static, keys::Result<Bytes>>,
    handle: keys::sealer::SealHandle,
    input_err: ErrSlot,
    hint: Option<u64>,
}

impl Sealing {
    /// The sealed stream kept in memory under a new backend id, for the index row (an inline
    /// object; its body is a small one, at most `inline_max_bytes`): the backend is not
    /// touched. Errors as [`Store::seal_into_backend`]'s.
    async fn into_memory(self) -> Result<Sealed> {
        let Sealing {
            mut sealed,
            handle,
            input_err,
            hint,
        } = self;
        let mut buf =
            bytes::BytesMut::with_capacity(usize::try_from(hint.unwrap_or(0)).unwrap_or(0));
        let mut failed = None;
        while let Some(piece) = sealed.next().await {
            match piece {
                Ok(b) => buf.extend_from_slice(&b),
                Err(e) => {
                    failed = Some(Error::from(e));
                    break;
                }
            }
        }
        drop(sealed);
        if let Some(e) = failed {
            return Err(take(&input_err).unwrap_or(e));
        }
        let summary = match handle.summary().await {
            Ok(summary) => summary,
            Err(e) => return Err(take(&input_err).unwrap_or_else(|| e.into())),
        };
        if hint.is_some_and(|h| h != buf.len() as u64) {
            return Err(Error::Internal(format!(
                "sealed {} bytes where {} were expected",
                buf.len(),
                hint.unwrap_or(0)
            )));
        }
        Ok(Sealed {
            backend_id: new_backend_id(),
            summary,
            inline: Some(buf.freeze()),
        })
    }
}

/// Bytes of the body to record in the audit event: the plaintext received, for requests that
/// carried it (not for copies).
fn received(audit: Option<&RequestCtx>, n: u64) -> u64 {
    if audit.is_some_and(|a| a.receives_body()) {
        n
    } else {
        0
    }
}

impl Store {
    /// A sealed empty stream whose only content is `meta` (a delete marker, a lock record):
    /// what `reindex` reads back to rebuild the index rows that have no object bytes.
    pub(super) async fn seal_empty(&self, key: &StreamKey, meta: ObjectMeta) -> Result<Sealed> {
        let params = SealParams {
            bucket: meta.bucket.clone(),
            kind: StreamKind::Object,
            object_id: random_id()?,
            part_number: 0,
            chunk_size: DEFAULT_CHUNK_SIZE,
            checksums: ChecksumSet::default(),
            meta: Some(meta),
        };
        let empty = futures::stream::empty::<std::result::Result<Bytes, std::io::Error>>();
        self.seal_into_backend(key, params, empty, Some(0)).await
    }

    /// Starts sealing a request body: its bytes counted into `bytes_in`, its first error kept
    /// apart (the client's error, told from the sealer's and the backend's), and the sealed
    /// length expected when the plaintext length is known.
    fn start_seal<S, E>(
        &self,
        key: &StreamKey,
        params: SealParams,
        body: S,
        plaintext_len: Option<u64>,
    ) -> Sealing
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let input_err: ErrSlot = Arc::default();
        let slot = input_err.clone();
        let counter = self.metrics.bytes_in.clone();
        let body = body.map(move |r| match r {
            Ok(b) => {
                counter.inc_by(b.len() as u64);
                Ok(b)
            }
            Err(e) => {
                remember(&slot, crate::error::body_error(e.into()));
                Err(std::io::Error::other("request body failed"))
            }
        });
        let hint = plaintext_len.map(|n| keys::sealer::sealed_len(n, &params, key));
        let (sealed, handle) = keys::sealer::seal(key, params, body);
        Sealing {
            sealed,
            handle,
            input_err,
            hint,
        }
    }

    /// Seals `body` into a new backend object. On error nothing is left under the new id.
    /// Input failures (client disconnects, bad aws-chunked signatures) come back as the client's
    /// error, backend failures as `Unavailable`.
    pub async fn seal_into_backend<S, E>(
        &self,
        key: &StreamKey,
        params: SealParams,
        body: S,
        plaintext_len: Option<u64>,
    ) -> Result<Sealed>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.store_sealed(self.start_seal(key, params, body, plaintext_len))
            .await
    }

    /// Writes a started seal to a new backend object ([`Store::seal_into_backend`]).
    async fn store_sealed(&self, s: Sealing) -> Result<Sealed> {
        let Sealing {
            sealed,
            handle,
            input_err,
            hint,
        } = s;
        let seal_err: ErrSlot = Arc::default();
        let slot = seal_err.clone();
        let sealed = sealed
            .map(move |r| {
                r.map_err(|e| {
                    let msg = e.to_string();
                    remember(&slot, Error::from(e));
                    std::io::Error::other(msg)
                })
            })
            .boxed();
        let id = new_backend_id();
        if let Err(be) = self.backend.put(&id, sealed, hint).await {
            self.delete_quietly(&id).await;
            if let Some(e) = take(&input_err) {
                return Err(e);
            }
            if let Some(e) = take(&seal_err) {
                return Err(e);
            }
            return Err(be.into());
        }
        match handle.summary().await {
            Ok(summary) => Ok(Sealed {
                backend_id: id,
                summary,
                inline: None,
            }),
            Err(e) => {
                self.delete_quietly(&id).await;
                Err(take(&input_err).unwrap_or_else(|| e.into()))
            }
        }
    }

    /// An empty [`Uncommitted`]: for backend objects written outside the write protocol (the
    /// re-encryption job), deleted unless the caller commits them, and as the guard of an
    /// inline object (nothing on the backend to delete).
    pub fn uncommitted(&self) -> Uncommitted {
        Uncommitted {
            backend: self.backend.clone(),
            ids: Vec::new(),
        }
    }

    /// Deletes a backend object, logging (not returning) failures; used on error paths where the
    /// object was never committed (an orphan sweep would catch it later anyway).
    pub async fn delete_quietly(&self, id: &str) {
        delete_quietly(self.backend.as_ref(), id).await;
    }

    /// Commits a single-PUT or copied object and collects what it replaced. On failure the new
    /// streams are deleted.
    pub async fn commit(&self, rec: &ObjectRecord) -> Result<()> {
        match self.index.put_object(rec).await {
            Ok(garbage) => {
                self.collect(garbage).await;
                Ok(())
            }
            Err(e) => {
                for s in &rec.streams {
                    self.delete_quietly(&s.backend_id).await;
                }
                Err(e.into())
            }
        }
    }

    /// Deletes backend ids the index queued as garbage and acknowledges the deleted ones.
    pub async fn collect(&self, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        let (done, _failed) = crate::index::gc::delete_all(self.backend.as_ref(), ids).await;
        if let Err(e) = self.index.gc_done(&done).await {
            tracing::warn!(error = %e, "gc_done failed; ids stay queued (deletes are idempotent)");
        }
    }

    /// The body sealed into a new backend object under `guard`, with the request's promises
    /// checked: on any failure nothing is left under the new id.
    /// `inline`: keep the sealed stream for the index row instead of writing it to the backend
    /// ([`Sealing::into_memory`]; nothing to delete then).
    async fn seal_checked<S, E>(
        &self,
        key: &StreamKey,
        params: SealParams,
        body: S,
        check: &dyn WriteCheck,
        inline: bool,
    ) -> Result<(Uncommitted, Sealed)>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let sealing = self.start_seal(key, params, body, check.content_length());
        let (sealed, guard) = if inline {
            (sealing.into_memory().await?, self.uncommitted())
        } else {
            let sealed = self.store_sealed(sealing).await?;
            let guard = Uncommitted::new(self.backend.clone(), sealed.backend_id.clone());
            (sealed, guard)
        };
        if let Err(e) = check.verify(&sealed.summary) {
            guard.discard().await;
            return Err(e);
        }
        Ok((guard, sealed))
    }

    /// The end of every write: the audit event first (fail closed), then `commit`, which makes
    /// the change visible; the guard's objects are deleted if either fails.
    async fn finish<T>(
        &self,
        guard: Uncommitted,
        audit: Option<&RequestCtx>,
        bytes_in: u64,
        key_version: Option<u32>,
        commit: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if let Err(e) = audit::before_change(audit, bytes_in, key_version).await {
            guard.discard().await;
            return Err(e);
        }
        match commit.await {
            Ok(t) => {
                guard.committed();
                Ok(t)
            }
            Err(e) => {
                guard.discard().await;
                Err(e)
            }
        }
    }

    /// [`Store::finish`] for a write whose index commit can carry the request's audit event
    /// (PutObject): `commit` gets the event to append in its own transaction and answers its
    /// receipt with its result, so the change and its event are durable together (one COMMIT).
    /// Without such an event (no audit context, already recorded, a ledger that cannot share a
    /// transaction) `commit` gets `None` and the event is recorded first, as by `finish`.
    async fn finish_in_index<T, F>(
        &self,
        guard: Uncommitted,
        audit: Option<&RequestCtx>,
        bytes_in: u64,
        key_version: Option<u32>,
        commit: impl FnOnce(Option<::audit::AuditEvent>) -> F,
    ) -> Result<T>
    where
        F: Future<Output = Result<(T, Option<::audit::Receipt>)>>,
    {
        let Some(event) = audit::event_for_change(audit, bytes_in, key_version) else {
            let commit = async { commit(None).await.map(|(t, _)| t) };
            return self
                .finish(guard, audit, bytes_in, key_version, commit)
                .await;
        };
        match commit(Some(event)).await {
            Ok((t, receipt)) => {
                guard.committed();
                if let Some(r) = receipt {
                    audit::recorded(audit, r);
                }
                Ok(t)
            }
            Err(e) => {
                guard.discard().await;
                Err(e)
            }
        }
    }

    /// The header-map entries of a new SSE-C object or upload under the data key `skey`:
    /// algorithm, key MD5 and the keyed check value (never the key).
    pub fn sse_c_entries(
        skey: &StreamKey,
        ck: &CustomerKey,
        headers: &mut BTreeMap<String, String>,
    ) -> Result<()> {
        use crate::s3::encryption::{SSE_C_ALGORITHM, SSE_C_CHECK, SSE_C_KEY_MD5};
        headers.insert(
            SSE_C_ALGORITHM.to_owned(),
            keys::customer::ALGORITHM_AES256.to_owned(),
        );
        headers.insert(SSE_C_KEY_MD5.to_owned(), ck.md5_b64().to_owned());
        headers.insert(
            SSE_C_CHECK.to_owned(),
            keys::customer::customer_check(skey, ck)?,
        );
        Ok(())
    }

    /// The KMS key whose bucket data key seals an object with `headers`: the SSE-KMS key the
    /// object records (`SSE_KMS_KEY_ID`), empty when that is the gateway's configured key or
    /// when it records none (every data key of a local-key gateway).
    pub fn kms_key_of(&self, headers: &BTreeMap<String, String>) -> String {
        match headers.get(crate::s3::encryption::SSE_KMS_KEY_ID) {
            Some(arn)
                if self.keyring.provider().kek_id_for("")
                    != self.keyring.provider().kek_id_for(arn) =>
            {
                arn.clone()
            }
            _ => String::new(),
        }
    }

    /// The current data key of `bucket` for an object (or upload) with `headers`: the one bound
    /// to its SSE-KMS key ([`Store::kms_key_of`]); one KMS call per bucket and key per cache
    /// lifetime, not per object.
    async fn object_sealing_key(
        &self,
        bucket: &str,
        headers: &BTreeMap<String, String>,
    ) -> Result<keys::StreamKey> {
        Ok(self
            .keyring
            .sealing_key_under(bucket, &self.kms_key_of(headers))
            .await?)
    }

    /// The header-map entries of a new SSE-C upload (CreateMultipartUpload), under the bucket's
    /// current data key.
    pub async fn sse_c_upload_entries(
        &self,
        bucket: &str,
        ck: &CustomerKey,
        headers: &mut BTreeMap<String, String>,
    ) -> Result<()> {
        let skey = self.keyring.sealing_key(bucket).await?;
        Self::sse_c_entries(&skey, ck, headers)
    }

    /// PutObject (and the copy and form upload that are one): seals `body` as a single-stream
    /// object, verifies it, records the audit event and commits it, replacing any object under
    /// the key. Nothing is visible, and no backend object remains, unless every step passes.
    /// `sse_c`: the customer key of an SSE-C object (mixed into the data records' key; its
    /// check value recorded in `headers`). `cond`: the write's `If-Match` / `If-None-Match`,
    /// checked by the index in the commit's transaction (a racing write cannot slip between).
    #[allow(clippy::too_many_arguments)]
    pub async fn put_object<S, E>(
        &self,
        bucket: &str,
        key: &str,
        headers: BTreeMap<String, String>,
        user_metadata: BTreeMap<String, String>,
        body: S,
        check: &dyn WriteCheck,
        version: &NewVersion,
        sse_c: Option<&CustomerKey>,
        cond: Option<&WriteCondition>,
        audit: Option<&RequestCtx>,
    ) -> Result<ObjectRecord>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut headers = headers;
        crate::s3::encryption::strip_sse_c(&mut headers);
        let skey = self.object_sealing_key(bucket, &headers).await?;
        let skey = match sse_c {
            Some(ck) => {
                Self::sse_c_entries(&skey, ck, &mut headers)?;
                skey.with_customer_key(ck)
            }
            None => skey,
        };
        let now = now_ms();
        let mut meta = ObjectMeta {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            size: 0,
            etag: String::new(),
            last_modified_ms: now,
            headers: headers.clone(),
            user_metadata: user_metadata.clone(),
            checksums: BTreeMap::new(),
            parts: Vec::new(),
            ..Default::default()
        };
        version.seal_into(&mut meta);
        let params = SealParams {
            bucket: bucket.to_owned(),
            kind: StreamKind::Object,
            object_id: random_id()?,
            part_number: 0,
            chunk_size: DEFAULT_CHUNK_SIZE,
            checksums: check.checksums(),
            meta: Some(meta),
        };
        let inline = self.inline.admits(check.content_length());
        let (guard, sealed) = self
            .seal_checked(&skey, params, body, check, inline.is_some())
            .await?;
        let rec = ObjectRecord::single_stream(
            bucket,
            key,
            now,
            headers,
            user_metadata,
            &skey,
            &sealed,
            version,
        );
        let cond = cond.cloned().map(Precondition::Write);
        let garbage = self
            .finish_in_index(
                guard,
                audit,
                received(audit, rec.size),
                Some(rec.key_version),
                |event| async {
                    self.index
                        .put_object_audited(&rec, cond.as_ref(), event)
                        .await
                        .map_err(Error::from)
                },
            )
            .await?;
        if let Some(admitted) = inline {
            admitted.committed();
        }
        self.collect(garbage).await;
        Ok(rec)
    }

    /// UploadPart: seals one part of `upload` and records it (replacing an earlier upload of
    /// the same number). An SSE-C upload needs its customer key on every part (`sse_c`,
    /// checked against the upload's check value before anything is sealed); an upload without
    /// one refuses a customer key.
    pub async fn put_part<S, E>(
        &self,
        upload: &UploadRecord,
        number: u32,
        body: S,
        check: &dyn WriteCheck,
        sse_c: Option<&CustomerKey>,
        audit: Option<&RequestCtx>,
    ) -> Result<PartRecord>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        self.require_customer_key(&upload.bucket, &upload.headers, None, sse_c)
            .await?;
        let skey = self
            .object_sealing_key(&upload.bucket, &upload.headers)
            .await?;
        let skey = match sse_c {
            Some(ck) => skey.with_customer_key(ck),
            None => skey,
        };
        let params = SealParams {
            bucket: upload.bucket.clone(),
            kind: StreamKind::Part,
            object_id: object_id_of(upload)?,
            part_number: number,
            chunk_size: DEFAULT_CHUNK_SIZE,
            checksums: check.checksums(),
            meta: None,
        };
        let (guard, sealed) = self.seal_checked(&skey, params, body, check, false).await?;
        let s = &sealed.summary;
        let part = PartRecord {
            bucket: upload.bucket.clone(),
            upload_id: upload.upload_id.clone(),
            part_number: number,
            backend_id: sealed.backend_id.clone(),
            header: s.header.clone(),
            size: s.plaintext_len,
            md5_hex: hex::encode(s.md5),
            checksums: s.checksums.to_base64_map(),
            last_modified_ms: now_ms(),
        };
        let commit = async {
            self.index.put_part(&part).await.map_err(|e| match e {
                IndexError::NoSuchUpload(_) | IndexError::NotFound(_) => {
                    Error::NoSuchUpload(upload.upload_id.clone())
                }
                e => e.into(),
            })
        };
        let replaced = self
            .finish(
                guard,
                audit,
                received(audit, part.size),
                Some(skey.key_version()),
                commit,
            )
            .await?;
        self.collect(replaced.into_iter().collect()).await;
        Ok(part)
    }

    /// CompleteMultipartUpload: seals the part manifest `meta` (the authenticated list of the
    /// chosen parts), records the audit event and commits the object made of `parts` (when
    /// `cond` holds, checked in the commit's transaction).
    pub async fn complete_upload(
        &self,
        upload: &UploadRecord,
        parts: &[&PartRecord],
        meta: &ObjectMeta,
        version: &NewVersion,
        cond: Option<&WriteCondition>,
        audit: Option<&RequestCtx>,
    ) -> Result<ObjectRecord> {
        let mut meta = meta.clone();
        version.seal_into(&mut meta);
        let meta = &meta;
        let skey = self
            .object_sealing_key(&upload.bucket, &upload.headers)
            .await?;
        let params = SealParams {
            bucket: upload.bucket.clone(),
            kind: StreamKind::Manifest,
            object_id: object_id_of(upload)?,
            part_number: 0,
            chunk_size: DEFAULT_CHUNK_SIZE,
            checksums: ChecksumSet::default(),
            meta: None,
        };
        let manifest = keys::sealer::seal_manifest(&skey, params, meta)?;
        let manifest_id = new_backend_id();
        let mlen = manifest.len() as u64;
        let body =
            futures::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(manifest)) });
        self.backend
            .put(&manifest_id, Box::pin(body), Some(mlen))
            .await?;
        let guard = Uncommitted::new(self.backend.clone(), manifest_id.clone());
        let rec = ObjectRecord {
            bucket: upload.bucket.clone(),
            key: upload.key.clone(),
            version_id: version.version_id.clone(),
            is_latest: true,
            delete_marker: false,
            lock: version.lock,
            size: meta.size,
            etag: meta.etag.clone(),
            last_modified_ms: meta.last_modified_ms,
            headers: upload.headers.clone(),
            user_metadata: upload.user_metadata.clone(),
            checksums: meta.checksums.clone(),
            data_key_id: skey.data_key_id().to_string(),
            key_version: skey.key_version(),
            streams: parts
                .iter()
                .zip(&meta.parts)
                .map(|(p, entry)| StreamRecord {
                    backend_id: p.backend_id.clone(),
                    part_number: p.part_number,
                    header: p.header.clone(),
                    plaintext_len: p.size,
                    md5_hex: p.md5_hex.clone(),
                    checksums: entry.checksums.clone(),
                    inline: None,
                })
                .collect(),
            manifest_id: Some(manifest_id),
        };
        let commit = async {
            self.index
                .complete_upload_if(&upload.bucket, &upload.upload_id, &rec, cond)
                .await
                .map_err(|e| match e {
                    IndexError::NoSuchUpload(_) => Error::NoSuchUpload(upload.upload_id.clone()),
                    e => e.into(),
                })
        };
        let garbage = self
            .finish(guard, audit, 0, Some(rec.key_version), commit)
            .await?;
        self.collect(garbage).await;
        Ok(rec)
    }
}

impl Store {
    /// DeleteObject in a bucket with versioning Enabled or Suspended: writes a delete marker as
    /// the latest version of the key (`version.version_id`: a new id, or `null` when suspended,
    /// which replaces the `null` version). The marker is a sealed empty stream whose metadata
    /// says `delete_marker`, so that `reindex` can rebuild it; the write protocol is the same as
    /// for an object (audit before change, then the index commit).
    pub async fn put_delete_marker(
        &self,
        bucket: &str,
        key: &str,
        version: &NewVersion,
        audit: Option<&RequestCtx>,
    ) -> Result<ObjectRecord> {
        self.put_delete_marker_if(bucket, key, version, None, audit)
            .await?
            .ok_or_else(|| Error::NoSuchKey(key.to_owned()))
    }

    /// `put_delete_marker` when `cond` (a conditional delete's) holds over the key's latest
    /// version, checked in the commit's transaction under the key's lock: None when there is
    /// nothing to delete (no marker written, its sealed stream removed), `PreconditionFailed`
    /// when it does not match.
    pub async fn put_delete_marker_if(
        &self,
        bucket: &str,
        key: &str,
        version: &NewVersion,
        cond: Option<&DeleteCondition>,
        audit: Option<&RequestCtx>,
    ) -> Result<Option<ObjectRecord>> {
        let (rec, guard) = self.seal_delete_marker(bucket, key, version).await?;
        let pre = cond
            .filter(|c| !c.is_empty())
            .cloned()
            .map(Precondition::Delete);
        let garbage = self
            .finish(guard, audit, 0, None, async {
                match self.index.put_object_if(&rec, pre.as_ref()).await {
                    Ok(g) => Ok(Some(g)),
                    Err(IndexError::NothingToDelete(_)) => Ok(None),
                    Err(e) => Err(Error::from(e)),
                }
            })
            .await?;
        let Some(garbage) = garbage else {
            // nothing was committed: the marker's sealed stream is nobody's
            for s in &rec.streams {
                self.delete_quietly(&s.backend_id).await;
            }
            return Ok(None);
        };
        self.collect(garbage).await;
        Ok(Some(rec))
    }
}

impl Store {
    /// A delete marker (DeleteObject on a versioned bucket, or a lifecycle expiry): sealed into a
    /// new backend stream whose metadata says `delete_marker`, held by the returned guard until
    /// the index takes it, and its record.
    pub(crate) async fn seal_delete_marker(
        &self,
        bucket: &str,
        key: &str,
        version: &NewVersion,
    ) -> Result<(ObjectRecord, Uncommitted)> {
        let skey = self.keyring.sealing_key(bucket).await?;
        let now = now_ms();
        let mut meta = ObjectMeta {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            last_modified_ms: now,
            delete_marker: true,
            ..Default::default()
        };
        version.seal_into(&mut meta);
        meta.delete_marker = true;
        let sealed = self.seal_empty(&skey, meta).await?;
        let guard = Uncommitted::new(self.backend.clone(), sealed.backend_id.clone());
        let mut rec = ObjectRecord::single_stream(
            bucket,
            key,
            now,
            BTreeMap::new(),
            BTreeMap::new(),
            &skey,
            &sealed,
            version,
        );
        rec.delete_marker = true;
        rec.etag = String::new();
        rec.checksums.clear();
        rec.lock = ObjectLock::default();
        Ok((rec, guard))
    }
}

impl Store {
    /// PutObjectRetention / PutObjectLegalHold: the new lock of one version, under S3's rules
    /// (checked in the index transaction). The change is written to the backend first as a
    /// sealed lock record (an empty kind Object stream whose metadata says `lock_record` and
    /// names the version), so that `reindex` restores the lock as changed; then the audit event,
    /// then the index commit, which replaces the version's previous record. Returns the lock
    /// before the change.
    pub async fn set_lock(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
        lock: ObjectLock,
        bypass_governance: bool,
        audit: Option<&RequestCtx>,
    ) -> Result<ObjectLock> {
        let skey = self.keyring.sealing_key(bucket).await?;
        let mut meta = ObjectMeta {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            last_modified_ms: now_ms(),
            lock_record: true,
            ..Default::default()
        };
        NewVersion {
            version_id: version_id.to_owned(),
            lock,
        }
        .seal_into(&mut meta);
        let sealed = self.seal_empty(&skey, meta).await?;
        let record_id = sealed.backend_id.clone();
        let guard = Uncommitted::new(self.backend.clone(), record_id.clone());
        let (old, garbage) = self
            .finish(guard, audit, 0, None, async {
                self.index
                    .set_lock(
                        bucket,
                        key,
                        Some(version_id),
                        lock,
                        bypass_governance,
                        Some(&record_id),
                    )
                    .await
                    .map_err(|e| match e {
                        IndexError::NoSuchVersion(_) => Error::NoSuchKey(key.to_owned()),
                        e => e.into(),
                    })
            })
            .await?;
        self.collect(garbage).await;
        Ok(old)
    }
}

/// Random 16-byte object id.
pub fn random_id() -> Result<[u8; 16]> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(id)
}

/// The 16-byte object id of an upload (its parts and manifest share it).
pub fn object_id_of(upload: &UploadRecord) -> Result<[u8; 16]> {
    let mut id = [0u8; 16];
    hex::decode_to_slice(&upload.object_id_hex, &mut id).map_err(|_| {
        Error::Integrity(format!("upload {} has a bad object id", upload.upload_id))
    })?;
    Ok(id)
}
