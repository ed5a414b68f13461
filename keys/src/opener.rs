//! Streaming opener: opens a plaintext range of a sealed stream from exactly the covering records,
//! checking every record's nonce (position, part, last flag), length and tag before releasing a
//! byte; plus whole-stream helpers for manifests, the metadata trailer and small objects.

use std::ops::Range;

use bytes::{Bytes, BytesMut};
use futures::stream::{BoxStream, Stream, StreamExt};

use crate::envelope::StreamKey;
use crate::error::{Error, Result};
use crate::format::{
    Header, Layout, MAX_RECORDS, RECORD_OVERHEAD, StreamKind, TRAILER_COUNTER, TRAILER_FLAG,
    TRAILER_LEN_SIZE, trailer_len_from_suffix,
};
use crate::meta::ObjectMeta;
use crate::stream::StreamCipher;

/// Received bytes not yet consumed. `Owned` when the input handed over the only reference to its
/// buffer (the local backend reads into fresh buffers): whole records are then split off and
/// opened in place without a copy. `Shared` otherwise: each record is copied once into an owned
/// buffer before it is opened in place.
enum Pending {
    Owned(BytesMut),
    Shared(Bytes),
}

impl Pending {
    fn len(&self) -> usize {
        match self {
            Pending::Owned(b) => b.len(),
            Pending::Shared(b) => b.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next `n` bytes (`n <= len`) as an owned buffer: no copy when owned.
    fn take_owned(&mut self, n: usize) -> BytesMut {
        match self {
            Pending::Owned(b) => b.split_to(n),
            Pending::Shared(b) => BytesMut::from(&b.split_to(n)[..]),
        }
    }

    /// Moves the next `n` bytes (`n <= len`) to the end of `buf`.
    fn append_to(&mut self, n: usize, buf: &mut BytesMut) {
        match self {
            Pending::Owned(b) => buf.extend_from_slice(&b.split_to(n)),
            Pending::Shared(b) => buf.extend_from_slice(&b.split_to(n)),
        }
    }
}

struct Opener {
    input: BoxStream<'static, std::io::Result<Bytes>>,
    pending: Pending,
    buf: BytesMut,
    cipher: StreamCipher,
    layout: Layout,
    plain: Range<u64>,
    next: u64,
    last: u64,
    records: u64,
}

impl Opener {
    async fn fill(&mut self) -> Result<bool> {
        loop {
            match self.input.next().await {
                Some(Ok(b)) if b.is_empty() => continue,
                Some(Ok(b)) => {
                    self.pending = match b.try_into_mut() {
                        Ok(owned) => Pending::Owned(owned),
                        Err(shared) => Pending::Shared(shared),
                    };
                    return Ok(true);
                }
                Some(Err(e)) => return Err(Error::Io(e)),
                None => return Ok(false),
            }
        }
    }

    async fn step(&mut self) -> Result<Option<Bytes>> {
        loop {
            if self.next > self.last {
                if !self.pending.is_empty() || !self.buf.is_empty() || self.fill().await? {
                    return Err(Error::Integrity(
                        "unexpected bytes after the last requested record (extended stream)".into(),
                    ));
                }
                return Ok(None);
            }
            let i = self.next;
            let plain_len = self.layout.record_plain_len(i);
            let need = (plain_len + RECORD_OVERHEAD) as usize;
            // The record as an owned buffer, opened in place: split off the received buffer when
            // it holds the whole record (no copy if owned), else assembled across pieces (one copy).
            let record: BytesMut = loop {
                if self.buf.is_empty() && self.pending.len() >= need {
                    break self.pending.take_owned(need);
                }
                if !self.pending.is_empty() {
                    let take = (need - self.buf.len()).min(self.pending.len());
                    if self.buf.capacity() < need {
                        self.buf.reserve(need - self.buf.len());
                    }
                    self.pending.append_to(take, &mut self.buf);
                    if self.buf.len() == need {
                        break self.buf.split();
                    }
                    continue;
                }
                if !self.fill().await? {
                    return Err(Error::Integrity(format!(
                        "stream truncated inside record {i}"
                    )));
                }
            };
            let counter =
                u32::try_from(i).map_err(|_| Error::Format("record index out of range".into()))?;
            let flag = u8::from(i + 1 == self.records);
            let pt = self
                .cipher
                .open_record_owned(counter, flag, plain_len as usize, record)?;
            self.next += 1;
            let rec_start = i * u64::from(self.layout.chunk_size);
            let s = self.plain.start.max(rec_start) - rec_start;
            let e = self
                .plain
                .end
                .min(rec_start + plain_len)
                .saturating_sub(rec_start);
            if s < e {
                return Ok(Some(pt.slice(s as usize..e as usize)));
            }
        }
    }
}

fn check_layout(header: &Header, layout: &Layout) -> Result<()> {
    if layout.chunk_size != header.chunk_size() || layout.header_len != header.len() as u64 {
        return Err(Error::Integrity("layout does not match the header".into()));
    }
    if layout.records() > MAX_RECORDS {
        return Err(Error::Integrity("stream has too many records".into()));
    }
    Ok(())
}

/// Opens plaintext `plain` of the stream with `header` and `layout`. `input` must yield exactly the
/// backend bytes `layout.cipher_range(plain)` (start..end). Yields plaintext for `plain` only;
/// refuses (`Error::Integrity`) to release any byte of a record whose nonce, length or tag does not
/// check, and reports truncation and extra bytes. `plain.end` is clamped to the plaintext length.
pub fn open_range<S>(
    key: &StreamKey,
    header: &Header,
    layout: Layout,
    plain: Range<u64>,
    input: S,
) -> BoxStream<'static, Result<Bytes>>
where
    S: Stream<Item = std::io::Result<Bytes>> + Send + 'static,
{
    let setup = (|| {
        check_layout(header, &layout)?;
        let cipher = StreamCipher::for_header(key, header)?;
        let plain = plain.start..plain.end.min(layout.plaintext_len);
        let cr = layout.cipher_range(plain.clone());
        let (next, last) = if cr.start == cr.end {
            (1, 0)
        } else {
            (cr.first_record, cr.last_record)
        };
        Ok::<_, Error>(Opener {
            input: input.boxed(),
            pending: Pending::Shared(Bytes::new()),
            buf: BytesMut::new(),
            cipher,
            records: layout.records(),
            layout,
            plain,
            next,
            last,
        })
    })();
    match setup {
        Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        Ok(state) => futures::stream::unfold(Some(state), |st| async move {
            let mut st = st?;
            match st.step().await {
                Ok(Some(b)) => Some((Ok(b), Some(st))),
                Ok(None) => None,
                Err(e) => Some((Err(e), None)),
            }
        })
        .boxed(),
    }
}

/// Opens the data records of a whole in-memory stream (no trailer) into one buffer.
/// On error the partial buffer is dropped, never returned.
fn open_records(cipher: &StreamCipher, layout: &Layout, data: &[u8]) -> Result<Vec<u8>> {
    let total = usize::try_from(layout.plaintext_len)
        .map_err(|_| Error::Format("stream too large".into()))?;
    if data.len() as u64 != layout.data_end() - layout.header_len {
        return Err(Error::Integrity(
            "stream data section does not match its layout".into(),
        ));
    }
    let mut out = vec![0u8; total];
    let n = layout.records();
    let (mut pos, mut opos) = (0usize, 0usize);
    for i in 0..n {
        let plain_len = layout.record_plain_len(i) as usize;
        let need = plain_len + RECORD_OVERHEAD as usize;
        let rec = data
            .get(pos..pos + need)
            .ok_or_else(|| Error::Integrity(format!("stream truncated inside record {i}")))?;
        let counter =
            u32::try_from(i).map_err(|_| Error::Format("record index out of range".into()))?;
        cipher.open_record_into(
            counter,
            u8::from(i + 1 == n),
            rec,
            &mut out[opos..opos + plain_len],
        )?;
        pos += need;
        opos += plain_len;
    }
    Ok(out)
}

/// Reads the sealed metadata trailer of a kind-Object stream. `total_len` is the stored size of the
/// stream and `tail` its last bytes (at least the trailer record plus the 4-byte trailer length;
/// fetch the last 4 bytes first to learn the trailer length). Returns the layout derived from the
/// stored size and the metadata, whose `size` is checked against that layout.
pub fn read_meta(
    key: &StreamKey,
    header: &Header,
    total_len: u64,
    tail: &[u8],
) -> Result<(Layout, ObjectMeta)> {
    if header.kind() != StreamKind::Object {
        return Err(Error::Format(
            "only Object streams have a metadata trailer".into(),
        ));
    }
    let tl = trailer_len_from_suffix(tail)?;
    let layout = Layout::from_stored_len(header, total_len, Some(tl))?;
    let end = tail.len() - TRAILER_LEN_SIZE as usize;
    let start = end.checked_sub(tl as usize).ok_or_else(|| {
        Error::Format(format!(
            "need the last {} bytes of the stream",
            tl + TRAILER_LEN_SIZE
        ))
    })?;
    let cipher = StreamCipher::for_meta(key, header)?;
    let json = cipher.open_record(
        TRAILER_COUNTER,
        TRAILER_FLAG,
        (tl - RECORD_OVERHEAD) as usize,
        &tail[start..end],
    )?;
    let meta = ObjectMeta::decode(&json)?;
    if meta.size != layout.plaintext_len {
        return Err(Error::Integrity(
            "sealed metadata size does not match the stored layout".into(),
        ));
    }
    Ok((layout, meta))
}

/// A fully opened in-memory stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Opened {
    /// The stream header.
    pub header: Header,
    /// The plaintext.
    pub plaintext: Vec<u8>,
    /// The sealed metadata (kind Object) or manifest body (kind Manifest).
    pub meta: Option<ObjectMeta>,
}

/// Opens a whole sealed stream held in memory (small objects, tests, tools): layout from the stored
/// size alone, every record and the trailer verified.
pub fn open_sealed_bytes(key: &StreamKey, sealed: &[u8]) -> Result<Opened> {
    let header = Header::decode(sealed)?;
    let cipher = StreamCipher::for_header(key, &header)?;
    let hl = header.len();
    match header.kind() {
        StreamKind::Object => {
            let (layout, meta) = read_meta(key, &header, sealed.len() as u64, sealed)?;
            let data_end = layout.data_end() as usize;
            let plaintext = open_records(&cipher, &layout, &sealed[hl..data_end])?;
            Ok(Opened {
                header,
                plaintext,
                meta: Some(meta),
            })
        }
        StreamKind::Part | StreamKind::Manifest => {
            let layout = Layout::from_stored_len(&header, sealed.len() as u64, None)?;
            let plaintext = open_records(&cipher, &layout, &sealed[hl..])?;
            let meta = if header.kind() == StreamKind::Manifest {
                Some(ObjectMeta::decode(&plaintext)?)
            } else {
                None
            };
            Ok(Opened {
                header,
                plaintext,
                meta,
            })
        }
    }
}

/// Opens a sealed multipart manifest: its header and the `ObjectMeta` with the part list.
pub fn open_manifest(key: &StreamKey, sealed: &[u8]) -> Result<(Header, ObjectMeta)> {
    let header = Header::decode(sealed)?;
    if header.kind() != StreamKind::Manifest {
        return Err(Error::Integrity("not a manifest stream".into()));
    }
    let o = open_sealed_bytes(key, sealed)?;
    let meta = o
        .meta
        .ok_or_else(|| Error::Format("manifest has no metadata".into()))?;
    Ok((o.header, meta))
}
