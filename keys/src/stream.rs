//! Per-stream cipher state: HKDF derivation of the stream key, key commitment and nonce prefix
//! from the bucket data key, and sealing/opening of single records with nonce and length checks.

use bytes::{Bytes, BytesMut};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::aead::{AwsLcGcm, ChunkAead, NONCE_LEN, TAG_LEN};
use crate::envelope::StreamKey;
use crate::error::{Error, Result};
use crate::format::{Header, HeaderFields, RECORD_OVERHEAD, StreamKind, record_nonce};

const STREAM_INFO: &[u8] = b"vaultgate/v1/stream";
/// Info label of the data-record derivation of an SSE-C stream (header flag 1).
const STREAM_INFO_CUSTOMER: &[u8] = b"vaultgate/v1/stream-sse-c";

/// Keyed state for sealing or opening the records of one stream.
pub(crate) struct StreamCipher {
    aead: Box<dyn ChunkAead>,
    prefix: [u8; 5],
    part: u16,
    aad: [u8; 32],
}

struct Derived {
    aead: AwsLcGcm,
    commitment: [u8; 32],
    prefix: [u8; 5],
}

/// `customer`: derive the data-record key of an SSE-C stream, from the data key and the customer
/// key together (`ikm = data key ‖ customer key`, its own info label); `None`: the data-key-only
/// derivation (every stream's header commitment and metadata trailer).
fn derive(
    key: &StreamKey,
    customer: Option<&crate::customer::CustomerKey>,
    kind: StreamKind,
    object_id: &[u8; 16],
    part_number: u32,
    chunk_size: u32,
    salt: &[u8; 32],
) -> Result<Derived> {
    let label = if customer.is_some() {
        STREAM_INFO_CUSTOMER
    } else {
        STREAM_INFO
    };
    let mut info = Vec::with_capacity(label.len() + 1 + 16 + 4 + 4 + 16 + 4);
    info.extend_from_slice(label);
    info.push(kind as u8);
    info.extend_from_slice(object_id);
    info.extend_from_slice(&part_number.to_be_bytes());
    info.extend_from_slice(&chunk_size.to_be_bytes());
    info.extend_from_slice(&key.data_key_id().0);
    info.extend_from_slice(&key.key_version().to_be_bytes());
    let mut ikm = Zeroizing::new(Vec::with_capacity(64));
    ikm.extend_from_slice(key.material().expose());
    if let Some(ck) = customer {
        ikm.extend_from_slice(ck.expose());
    }
    let mut okm = Zeroizing::new([0u8; 69]);
    hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), &ikm)
        .expand(&info, &mut okm[..])
        .map_err(|_| Error::Format("HKDF output length".into()))?;
    let mut k = Zeroizing::new([0u8; 32]);
    k.copy_from_slice(&okm[..32]);
    let mut commitment = [0u8; 32];
    commitment.copy_from_slice(&okm[32..64]);
    let mut prefix = [0u8; 5];
    prefix.copy_from_slice(&okm[64..69]);
    Ok(Derived {
        aead: AwsLcGcm::new(&k)?,
        commitment,
        prefix,
    })
}

impl StreamCipher {
    /// AEAD only, in place (benchmark reference).
    pub(crate) fn raw_seal_in_place(
        &self,
        counter: u32,
        buf: &mut [u8],
        tag: &mut [u8],
    ) -> Result<()> {
        self.aead
            .seal_in_place(self.nonce(counter, 0), &self.aad, buf, tag)
    }

    /// Opens a record held in an owned buffer in place; returns its plaintext without copying.
    pub(crate) fn open_record_owned(
        &self,
        counter: u32,
        flag: u8,
        plain_len: usize,
        mut record: BytesMut,
    ) -> Result<Bytes> {
        self.check_record(counter, flag, plain_len, &record)?;
        let nonce = self.nonce(counter, flag);
        self.aead
            .open_in_place(nonce, &self.aad, &mut record[16..])?;
        Ok(record.freeze().slice(16..16 + plain_len))
    }

    /// Checks a record's size, nonce and length field against its expected position.
    fn check_record(&self, counter: u32, flag: u8, plain_len: usize, record: &[u8]) -> Result<()> {
        if record.len() != plain_len + RECORD_OVERHEAD as usize {
            return Err(Error::Integrity(format!(
                "record {counter} has the wrong size"
            )));
        }
        let nonce = self.nonce(counter, flag);
        if !bool::from(record[..NONCE_LEN].ct_eq(&nonce)) {
            return Err(Error::Integrity(format!(
                "record {counter}: unexpected nonce (reordered, duplicated, truncated or spliced stream)"
            )));
        }
        let len = u32::from_be_bytes([record[12], record[13], record[14], record[15]]) as usize;
        if len != plain_len + TAG_LEN {
            return Err(Error::Integrity(format!(
                "record {counter}: length field {len} does not match the layout"
            )));
        }
        Ok(())
    }

    /// New stream: random salt, derived key, header with the key commitment.
    pub(crate) fn for_new_stream(
        key: &StreamKey,
        kind: StreamKind,
        object_id: [u8; 16],
        part_number: u32,
        chunk_size: u32,
    ) -> Result<(Header, StreamCipher)> {
        crate::format::check_params(kind, chunk_size, part_number)?;
        let mut salt = [0u8; 32];
        crate::random_fill(&mut salt)?;
        Self::with_salt(key, kind, object_id, part_number, chunk_size, salt)
    }

    /// Like [`for_new_stream`] with a caller-chosen salt (test vectors).
    pub(crate) fn with_salt(
        key: &StreamKey,
        kind: StreamKind,
        object_id: [u8; 16],
        part_number: u32,
        chunk_size: u32,
        salt: [u8; 32],
    ) -> Result<(Header, StreamCipher)> {
        let d = derive(key, None, kind, &object_id, part_number, chunk_size, &salt)?;
        // SSE-C: data records under the key that mixes in the customer key (never a manifest,
        // whose records are metadata)
        let customer = key.customer().filter(|_| kind != StreamKind::Manifest);
        let flags = if customer.is_some() {
            crate::format::FLAG_CUSTOMER_KEY
        } else {
            0
        };
        let header = Header::build(HeaderFields {
            kind,
            flags,
            chunk_size,
            part_number,
            object_id,
            salt,
            commitment: d.commitment,
            data_key_id: key.data_key_id(),
            data_key_version: key.key_version(),
            bucket: key.bucket(),
            kek_id: key.kek_id(),
            wrapped: key.wrapped(),
        })?;
        let aad = header.sha256();
        let d = match customer {
            Some(ck) => derive(
                key,
                Some(ck),
                kind,
                &object_id,
                part_number,
                chunk_size,
                &salt,
            )?,
            None => d,
        };
        Ok((
            header,
            StreamCipher {
                aead: Box::new(d.aead),
                prefix: d.prefix,
                part: part_number as u16,
                aad,
            },
        ))
    }

    /// Existing stream, its data records: checks the key id and the key commitment; an SSE-C
    /// stream (header flag) needs the customer key on `key` (without the flag, a customer key
    /// on `key` is not used).
    pub(crate) fn for_header(key: &StreamKey, header: &Header) -> Result<StreamCipher> {
        let meta = Self::for_meta(key, header)?;
        if !header.customer_key() {
            return Ok(meta);
        }
        let ck = key.customer().ok_or_else(|| {
            Error::Integrity("stream needs its customer-provided key (SSE-C)".into())
        })?;
        let d = derive(
            key,
            Some(ck),
            header.kind(),
            &header.object_id(),
            header.part_number(),
            header.chunk_size(),
            &header.salt(),
        )?;
        Ok(StreamCipher {
            aead: Box::new(d.aead),
            prefix: d.prefix,
            part: header.part_number() as u16,
            aad: header.sha256(),
        })
    }

    /// Existing stream, its metadata trailer (and every record of a stream without the SSE-C
    /// flag): the data-key-only derivation; checks the key id and the key commitment.
    pub(crate) fn for_meta(key: &StreamKey, header: &Header) -> Result<StreamCipher> {
        if key.data_key_id() != header.data_key_id() {
            return Err(Error::Integrity(
                "stream was sealed under another data key".into(),
            ));
        }
        let d = derive(
            key,
            None,
            header.kind(),
            &header.object_id(),
            header.part_number(),
            header.chunk_size(),
            &header.salt(),
        )?;
        if !bool::from(d.commitment.ct_eq(&header.commitment())) {
            return Err(Error::Integrity("key commitment does not match".into()));
        }
        Ok(StreamCipher {
            aead: Box::new(d.aead),
            prefix: d.prefix,
            part: header.part_number() as u16,
            aad: header.sha256(),
        })
    }

    pub(crate) fn nonce(&self, counter: u32, flag: u8) -> [u8; NONCE_LEN] {
        record_nonce(&self.prefix, self.part, counter, flag)
    }

    /// One record `[nonce][len][ct‖tag]` for `plaintext`, encrypted out of place straight into
    /// the record buffer (one pass over the plaintext instead of a copy and an in-place pass).
    pub(crate) fn seal_record(&self, counter: u32, flag: u8, plaintext: &[u8]) -> Result<Bytes> {
        let mut out = BytesMut::zeroed(plaintext.len() + RECORD_OVERHEAD as usize);
        self.seal_record_into(counter, flag, plaintext, &mut out)?;
        Ok(out.freeze())
    }

    /// Writes one record into `out`, which must be exactly `plaintext.len() + 32` bytes.
    pub(crate) fn seal_record_into(
        &self,
        counter: u32,
        flag: u8,
        plaintext: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        if out.len() != plaintext.len() + RECORD_OVERHEAD as usize {
            return Err(Error::Format("record buffer size".into()));
        }
        let nonce = self.nonce(counter, flag);
        out[..NONCE_LEN].copy_from_slice(&nonce);
        out[NONCE_LEN..16].copy_from_slice(&((plaintext.len() + TAG_LEN) as u32).to_be_bytes());
        let (ct, tag) = out[16..].split_at_mut(plaintext.len());
        self.aead.seal(nonce, &self.aad, plaintext, ct, tag)
    }

    /// Opens one whole record (`record` = nonce ‖ len ‖ ct ‖ tag) that must be record `counter`
    /// with `flag` and `plain_len` plaintext bytes. Plaintext is returned only if everything checks.
    pub(crate) fn open_record(
        &self,
        counter: u32,
        flag: u8,
        plain_len: usize,
        record: &[u8],
    ) -> Result<Bytes> {
        let mut out = BytesMut::zeroed(plain_len);
        self.open_record_into(counter, flag, record, &mut out)?;
        Ok(out.freeze())
    }

    /// Like [`open_record`] into `out` (exactly the expected plaintext length). On error the
    /// contents of `out` are unspecified and must not be released.
    pub(crate) fn open_record_into(
        &self,
        counter: u32,
        flag: u8,
        record: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        let plain_len = out.len();
        self.check_record(counter, flag, plain_len, record)?;
        let nonce = self.nonce(counter, flag);
        let (ct, tag) = record[16..].split_at(plain_len);
        self.aead.open(nonce, &self.aad, ct, tag, out)
    }

    /// Seals a whole in-memory plaintext as data records appended to `out`.
    pub(crate) fn seal_all(
        &self,
        chunk_size: u32,
        plaintext: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let chunk = chunk_size as usize;
        let n = plaintext.len().div_ceil(chunk).max(1);
        let start = out.len();
        out.resize(start + plaintext.len() + n * RECORD_OVERHEAD as usize, 0);
        let mut pos = start;
        for i in 0..n {
            let s = (i * chunk).min(plaintext.len());
            let e = ((i + 1) * chunk).min(plaintext.len());
            let counter = u32::try_from(i).map_err(|_| Error::Format("too many records".into()))?;
            let rec_len = e - s + RECORD_OVERHEAD as usize;
            self.seal_record_into(
                counter,
                u8::from(i + 1 == n),
                &plaintext[s..e],
                &mut out[pos..pos + rec_len],
            )?;
            pos += rec_len;
        }
        Ok(())
    }
}
