//! Streaming sealer: an async adapter from a plaintext byte stream to a sealed stream (header,
//! records, and for kind Object the sealed metadata trailer). Memory is bounded by a few chunks.
//! MD5 and the optional checksums run on a blocking thread fed by a bounded channel (batches of a
//! few records, one wake-up each) while AEAD runs in the consumer's task, so one PUT can use two
//! cores.

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};

use crate::checksum::{ChecksumSet, Checksums, PlainHasher};
use crate::envelope::StreamKey;
use crate::error::{Error, Result};
use crate::format::{
    Header, Layout, RECORD_OVERHEAD, StreamKind, TRAILER_COUNTER, TRAILER_FLAG, TRAILER_LEN_SIZE,
};
use crate::meta::ObjectMeta;
use crate::stream::StreamCipher;

/// Batches in flight between the sealer and the hashing thread.
const HASH_QUEUE: usize = 2;
/// Plaintext bytes handed to the hashing thread at a time (a few records: one wake-up each).
const HASH_BATCH: usize = 256 * 1024;

/// What to seal.
#[derive(Clone, Debug)]
pub struct SealParams {
    /// Bucket (informational; the key's bucket is written into the header).
    pub bucket: String,
    /// Stream kind.
    pub kind: StreamKind,
    /// Random per object / per multipart upload (shared by its parts and manifest).
    pub object_id: [u8; 16],
    /// 1..=10000 for parts, 0 otherwise.
    pub part_number: u32,
    /// Plaintext bytes per record.
    pub chunk_size: u32,
    /// Optional checksums to compute.
    pub checksums: ChecksumSet,
    /// Kind Object: metadata sealed into the trailer; `size`, `etag` and the computed checksums
    /// are filled in by the sealer (computed checksums replace same-named entries). `None` = empty metadata.
    pub meta: Option<ObjectMeta>,
}

impl SealParams {
    /// Parameters for a single-PUT object with the default chunk size.
    pub fn object(bucket: &str, object_id: [u8; 16], meta: ObjectMeta) -> SealParams {
        SealParams {
            bucket: bucket.to_owned(),
            kind: StreamKind::Object,
            object_id,
            part_number: 0,
            chunk_size: crate::format::DEFAULT_CHUNK_SIZE,
            checksums: ChecksumSet::default(),
            meta: Some(meta),
        }
    }

    /// Parameters for part `part_number` of the upload `object_id`.
    pub fn part(bucket: &str, object_id: [u8; 16], part_number: u32) -> SealParams {
        SealParams {
            bucket: bucket.to_owned(),
            kind: StreamKind::Part,
            object_id,
            part_number,
            chunk_size: crate::format::DEFAULT_CHUNK_SIZE,
            checksums: ChecksumSet::default(),
            meta: None,
        }
    }
}

/// Result of a finished seal.
#[derive(Clone, Debug, PartialEq)]
pub struct SealSummary {
    /// Plaintext bytes consumed.
    pub plaintext_len: u64,
    /// Sealed bytes produced.
    pub sealed_len: u64,
    /// MD5 of the plaintext.
    pub md5: [u8; 16],
    /// Requested checksums of the plaintext.
    pub checksums: Checksums,
    /// The header bytes.
    pub header: Vec<u8>,
}

/// Resolves to the summary once the sealed stream has been fully consumed.
#[derive(Debug)]
pub struct SealHandle {
    rx: oneshot::Receiver<Result<SealSummary>>,
}

impl SealHandle {
    /// The summary, or the error that ended the stream.
    pub async fn summary(self) -> Result<SealSummary> {
        self.rx.await.unwrap_or_else(|_| {
            Err(Error::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "sealed stream dropped before it was fully consumed",
            )))
        })
    }
}

/// Fills the sealer-owned fields of the trailer metadata.
fn fill_meta(meta: &mut ObjectMeta, plaintext_len: u64, md5: &[u8; 16], sums: &Checksums) {
    meta.size = plaintext_len;
    meta.etag = hex::encode(md5);
    meta.checksums.extend(sums.to_base64_map());
}

/// Exact sealed length, known before sealing (the input must then yield exactly `plaintext_len` bytes).
pub fn sealed_len(plaintext_len: u64, params: &SealParams, key: &StreamKey) -> u64 {
    let header_len = Header::encoded_len(key.bucket(), key.kek_id(), key.wrapped()) as u64;
    let layout = Layout {
        header_len,
        chunk_size: params.chunk_size,
        plaintext_len,
    };
    let mut total = layout.data_end();
    if params.kind == StreamKind::Object {
        let mut m = params.meta.clone().unwrap_or_default();
        fill_meta(
            &mut m,
            plaintext_len,
            &[0; 16],
            &Checksums::placeholder(params.checksums),
        );
        let json_len = m.encode().map(|j| j.len() as u64).unwrap_or(0);
        total += RECORD_OVERHEAD + json_len + TRAILER_LEN_SIZE;
    }
    total
}

/// Plaintext hashing (MD5 and the requested checksums). The first [`HASH_BATCH`] bytes are hashed
/// in the sealing task itself; a stream that grows past them moves its hasher to a blocking
/// thread, so that large bodies hash on another core while this one encrypts, and a small
/// object costs no thread hand-off at all.
enum Hashing {
    Inline {
        h: Box<PlainHasher>,
        fed: usize,
    },
    Thread {
        tx: mpsc::Sender<Vec<Bytes>>,
        join: tokio::task::JoinHandle<PlainHasher>,
        batch: Vec<Bytes>,
        batched: usize,
    },
}

impl Hashing {
    fn start(set: ChecksumSet) -> Hashing {
        Hashing::Inline {
            h: Box::new(PlainHasher::new(set)),
            fed: 0,
        }
    }

    /// The hasher `h` continued on a blocking thread of `rt`.
    fn on_thread(rt: &tokio::runtime::Handle, h: Box<PlainHasher>) -> Hashing {
        let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(HASH_QUEUE);
        let join = rt.spawn_blocking(move || {
            let mut h = *h;
            while let Some(batch) = rx.blocking_recv() {
                for b in &batch {
                    h.update(b);
                }
            }
            h
        });
        Hashing::Thread {
            tx,
            join,
            batch: Vec::new(),
            batched: 0,
        }
    }

    async fn feed(&mut self, b: &Bytes) -> Result<()> {
        if let Hashing::Inline { h, fed } = self {
            *fed += b.len();
            // the runtime is looked up once, when the stream outgrows HASH_BATCH; without one
            // everything is hashed here
            let rt = match (*fed > HASH_BATCH)
                .then(tokio::runtime::Handle::try_current)
                .and_then(|r| r.ok())
            {
                Some(rt) => rt,
                None => {
                    h.update(b);
                    return Ok(());
                }
            };
            let hasher = std::mem::replace(h, Box::new(PlainHasher::new(ChecksumSet::default())));
            *self = Hashing::on_thread(&rt, hasher);
        }
        match self {
            Hashing::Inline { h, .. } => {
                h.update(b);
                Ok(())
            }
            Hashing::Thread {
                tx, batch, batched, ..
            } => {
                *batched += b.len();
                batch.push(b.clone());
                if *batched < HASH_BATCH {
                    return Ok(());
                }
                *batched = 0;
                tx.send(std::mem::take(batch))
                    .await
                    .map_err(|_| Error::Io(std::io::Error::other("hashing thread stopped")))
            }
        }
    }

    async fn finish(self) -> Result<(u64, [u8; 16], Checksums)> {
        match self {
            Hashing::Inline { h, .. } => Ok(h.finish()),
            Hashing::Thread {
                tx, join, batch, ..
            } => {
                if !batch.is_empty() {
                    tx.send(batch)
                        .await
                        .map_err(|_| Error::Io(std::io::Error::other("hashing thread stopped")))?;
                }
                drop(tx);
                let h = join.await.map_err(|e| {
                    Error::Io(std::io::Error::other(format!("hashing thread failed: {e}")))
                })?;
                Ok(h.finish())
            }
        }
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Sealer {
    input: BoxStream<'static, std::result::Result<Bytes, BoxError>>,
    input_done: bool,
    leftover: Bytes,
    acc: BytesMut,
    pending: Option<Bytes>,
    chunk: usize,
    counter: u64,
    data_done: bool,
    cipher: StreamCipher,
    /// SSE-C stream of kind Object: the data-key-only cipher of the metadata trailer
    trailer_cipher: Option<StreamCipher>,
    header_out: Option<Bytes>,
    header: Vec<u8>,
    kind: StreamKind,
    meta: Option<ObjectMeta>,
    checksums: ChecksumSet,
    hashing: Option<Hashing>,
    sealed_len: u64,
    summary_tx: Option<oneshot::Sender<Result<SealSummary>>>,
}

impl Sealer {
    async fn emit(&mut self, plain: Bytes, last: bool) -> Result<Bytes> {
        let counter = u32::try_from(self.counter)
            .ok()
            .filter(|c| *c != TRAILER_COUNTER)
            .ok_or_else(|| Error::Format("stream too long for its chunk size".into()))?;
        let hashing = self
            .hashing
            .as_mut()
            .ok_or_else(|| Error::Format("sealer state".into()))?;
        hashing.feed(&plain).await?;
        let rec = self.cipher.seal_record(counter, u8::from(last), &plain)?;
        self.counter += 1;
        if last {
            self.data_done = true;
        }
        Ok(rec)
    }

    async fn finish(&mut self) -> Result<Option<Bytes>> {
        let Some(hashing) = self.hashing.take() else {
            return Ok(None);
        };
        let (plaintext_len, md5, sums) = hashing.finish().await?;
        let trailer = if self.kind == StreamKind::Object {
            let mut meta = self.meta.take().unwrap_or_default();
            fill_meta(&mut meta, plaintext_len, &md5, &sums);
            let json = meta.encode()?;
            let rec = self
                .trailer_cipher
                .as_ref()
                .unwrap_or(&self.cipher)
                .seal_record(TRAILER_COUNTER, TRAILER_FLAG, &json)?;
            let mut out = BytesMut::with_capacity(rec.len() + 4);
            out.extend_from_slice(&rec);
            out.extend_from_slice(&(rec.len() as u32).to_be_bytes());
            Some(out.freeze())
        } else {
            None
        };
        self.sealed_len += trailer.as_ref().map_or(0, |t| t.len() as u64);
        let summary = SealSummary {
            plaintext_len,
            sealed_len: self.sealed_len,
            md5,
            checksums: sums,
            header: std::mem::take(&mut self.header),
        };
        if let Some(tx) = self.summary_tx.take() {
            let _ = tx.send(Ok(summary));
        }
        Ok(trailer)
    }

    async fn step(&mut self) -> Result<Option<Bytes>> {
        if let Some(h) = self.header_out.take() {
            self.sealed_len += h.len() as u64;
            return Ok(Some(h));
        }
        if self.data_done {
            return self.finish().await;
        }
        loop {
            // A whole chunk straight from the input, without copying.
            if self.acc.is_empty() && self.leftover.len() >= self.chunk {
                let full = self.leftover.split_to(self.chunk);
                if let Some(p) = self.pending.replace(full) {
                    return self.emit_counted(p, false).await;
                }
                continue;
            }
            if !self.leftover.is_empty() {
                let take = (self.chunk - self.acc.len()).min(self.leftover.len());
                self.acc.extend_from_slice(&self.leftover.split_to(take));
                if self.acc.len() == self.chunk {
                    let full = self.acc.split().freeze();
                    if let Some(p) = self.pending.replace(full) {
                        return self.emit_counted(p, false).await;
                    }
                }
                continue;
            }
            if !self.input_done {
                match self.input.next().await {
                    Some(Ok(b)) => self.leftover = b,
                    Some(Err(e)) => return Err(Error::Io(std::io::Error::other(e))),
                    None => self.input_done = true,
                }
                continue;
            }
            // Input is finished; `acc` holds less than a chunk.
            if !self.acc.is_empty() {
                if let Some(p) = self.pending.take() {
                    return self.emit_counted(p, false).await;
                }
                let tail = self.acc.split().freeze();
                return self.emit_counted(tail, true).await;
            }
            return match self.pending.take() {
                Some(p) => self.emit_counted(p, true).await,
                None if self.counter == 0 => self.emit_counted(Bytes::new(), true).await,
                None => self.finish().await,
            };
        }
    }

    async fn emit_counted(&mut self, plain: Bytes, last: bool) -> Result<Option<Bytes>> {
        let rec = self.emit(plain, last).await?;
        self.sealed_len += rec.len() as u64;
        Ok(Some(rec))
    }

    fn fail(&mut self, e: &Error) {
        if let Some(tx) = self.summary_tx.take() {
            let _ = tx.send(Err(e.duplicate()));
        }
    }
}

/// Seals `input`. Returns the sealed byte stream (header, records, and for kind Object the sealed
/// metadata trailer) and a handle that resolves to the summary once the stream has been fully
/// consumed. An `Err` from `input` is passed through as `Error::Io` and ends the stream.
pub fn seal<S, E>(
    key: &StreamKey,
    params: SealParams,
    input: S,
) -> (BoxStream<'static, Result<Bytes>>, SealHandle)
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Send + 'static,
    E: Into<BoxError>,
{
    let (tx, rx) = oneshot::channel();
    let handle = SealHandle { rx };
    let ciphers = StreamCipher::for_new_stream(
        key,
        params.kind,
        params.object_id,
        params.part_number,
        params.chunk_size,
    )
    .and_then(|(header, cipher)| {
        let trailer = if header.customer_key() && params.kind == StreamKind::Object {
            Some(StreamCipher::for_meta(key, &header)?)
        } else {
            None
        };
        Ok((header, cipher, trailer))
    });
    let (header, cipher, trailer_cipher) = match ciphers {
        Ok(v) => v,
        Err(e) => {
            let _ = tx.send(Err(e.duplicate()));
            return (futures::stream::once(async move { Err(e) }).boxed(), handle);
        }
    };
    let state = Sealer {
        input: input.map(|r| r.map_err(Into::into)).boxed(),
        input_done: false,
        leftover: Bytes::new(),
        acc: BytesMut::new(),
        pending: None,
        chunk: params.chunk_size as usize,
        counter: 0,
        data_done: false,
        cipher,
        trailer_cipher,
        header_out: Some(Bytes::copy_from_slice(header.as_bytes())),
        header: header.as_bytes().to_vec(),
        kind: params.kind,
        meta: params.meta,
        checksums: params.checksums,
        hashing: None,
        sealed_len: 0,
        summary_tx: Some(tx),
    };
    let stream = futures::stream::unfold(Some(state), |st| async move {
        let mut st = st?;
        if st.hashing.is_none() && !st.data_done {
            st.hashing = Some(Hashing::start(st.checksums));
        }
        match st.step().await {
            Ok(Some(b)) => Some((Ok(b), Some(st))),
            Ok(None) => None,
            Err(e) => {
                st.fail(&e);
                Some((Err(e), None))
            }
        }
    })
    .boxed();
    (stream, handle)
}

/// Seals a multipart manifest (kind Manifest): header ‖ records holding `meta` as JSON.
pub fn seal_manifest(key: &StreamKey, params: SealParams, meta: &ObjectMeta) -> Result<Vec<u8>> {
    if params.kind != StreamKind::Manifest {
        return Err(Error::Format("seal_manifest needs kind Manifest".into()));
    }
    let (header, cipher) = StreamCipher::for_new_stream(
        key,
        StreamKind::Manifest,
        params.object_id,
        0,
        params.chunk_size,
    )?;
    let json = meta.encode()?;
    let mut out = Vec::with_capacity(header.len() + json.len() + 64);
    out.extend_from_slice(header.as_bytes());
    cipher.seal_all(params.chunk_size, &json, &mut out)?;
    Ok(out)
}
