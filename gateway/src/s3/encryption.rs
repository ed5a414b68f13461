//! Per-request encryption (issue 16): SSE-C customer keys from the request headers, the
//! encryption headers a response echoes, and what an SSE-C object keeps in its header map.
//!
//! An SSE-C object records three entries in its `headers` map (sealed in its metadata and stored
//! in the index, so `reindex` restores them): the algorithm (`AES256`), the base64 MD5 of the
//! customer key (echoed on every response, as S3 does) and the keyed check value
//! (`keys::customer::customer_check`) that lets a wrong key be refused before any record is
//! opened. The customer key itself is never stored, logged or audited. Any other object records
//! the `x-amz-server-side-encryption` it asked for, or got from its bucket's default encryption
//! ([`SSE_MODE`], see `Gateway::stamp_sse`), which its responses report; without one they report
//! the gateway's own mode.
//!
//! An SSE-KMS object (`aws:kms`, on a gateway with a KMS) also records the ARN of its KMS key
//! ([`SSE_KMS_KEY_ID`]: the key the request or the bucket default named, resolved; else the
//! gateway's configured key), which picks the bucket data key it is sealed under (one per
//! bucket and KMS key, see `Store::kms_key_of`) and which its responses report with
//! `x-amz-server-side-encryption-bucket-key-enabled: true`; and the encryption context the
//! request gave ([`SSE_CONTEXT`], base64 JSON as given, validated), reported back by
//! PutObject, CopyObject and CreateMultipartUpload as S3 does. The context does not enter the
//! KMS call: with bucket keys the KMS context is the bucket (docs/KEYS.md).

use std::collections::BTreeMap;

use keys::{CustomerKey, CustomerKeyError};
use s3s::dto::{SSECustomerAlgorithm, SSECustomerKeyMD5, ServerSideEncryption};
use s3s::{S3Error, S3ErrorCode};

use crate::error::{Error, Result};

/// Header-map entry: the SSE-C algorithm of an object (`AES256`).
pub(crate) const SSE_C_ALGORITHM: &str = "x-amz-server-side-encryption-customer-algorithm";
/// Header-map entry: base64 MD5 of the object's customer key.
pub(crate) const SSE_C_KEY_MD5: &str = "x-amz-server-side-encryption-customer-key-md5";
/// Header-map entry: the keyed check value of the object's customer key (never echoed).
pub(crate) const SSE_C_CHECK: &str = "x-vaultgate-sse-c-check";
/// Header-map entry: the `x-amz-server-side-encryption` a write asked for, or got from its
/// bucket's default encryption (absent: the gateway's own mode is reported).
pub(crate) const SSE_MODE: &str = "x-amz-server-side-encryption";
/// Header-map entry: the ARN of an SSE-KMS object's KMS key.
pub(crate) const SSE_KMS_KEY_ID: &str = "x-amz-server-side-encryption-aws-kms-key-id";
/// Header-map entry: the encryption context of an SSE-KMS write (base64 JSON, as given).
pub(crate) const SSE_CONTEXT: &str = "x-amz-server-side-encryption-context";

/// What an SSE-KMS write asks for besides `aws:kms`: a KMS key id and an encryption context,
/// as the request headers carry them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct KmsRequest<'a> {
    /// `x-amz-server-side-encryption-aws-kms-key-id`
    pub key_id: Option<&'a str>,
    /// `x-amz-server-side-encryption-context`
    pub context: Option<&'a str>,
}

/// Checks an encryption context as S3 does: base64 of a JSON object whose values are strings
/// (400 InvalidArgument otherwise).
pub(crate) fn check_context(b64: &str) -> Result<()> {
    use base64::Engine;
    let bad = |why: &str| {
        Error::InvalidArgument(format!(
            "x-amz-server-side-encryption-context must be base64 of a JSON object of strings ({why})."
        ))
    };
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| bad("not base64"))?;
    let v: serde_json::Value = serde_json::from_slice(&raw).map_err(|_| bad("not JSON"))?;
    let obj = v.as_object().ok_or_else(|| bad("not a JSON object"))?;
    if obj.values().any(|x| !x.is_string()) {
        return Err(bad("a value is not a string"));
    }
    Ok(())
}

/// The customer key (SSE-C) of a request whose input has the three `sse_customer_*` fields,
/// through `Gateway::customer_key`; with `copy_source`, of its copy source
/// (`copy_source_sse_customer_*`).
macro_rules! customer_key_of {
    ($gw:expr, $input:expr) => {
        $gw.customer_key(
            $input.sse_customer_algorithm.as_deref(),
            $input.sse_customer_key.as_deref(),
            $input.sse_customer_key_md5.as_deref(),
            false,
        )
    };
    ($gw:expr, $input:expr, copy_source) => {
        $gw.customer_key(
            $input.copy_source_sse_customer_algorithm.as_deref(),
            $input.copy_source_sse_customer_key.as_deref(),
            $input.copy_source_sse_customer_key_md5.as_deref(),
            true,
        )
    };
}
pub(crate) use customer_key_of;

/// The [`KmsRequest`] of a request whose input has `ssekms_key_id` and
/// `ssekms_encryption_context`.
macro_rules! kms_request {
    ($input:expr) => {
        $crate::s3::encryption::KmsRequest {
            key_id: $input.ssekms_key_id.as_deref(),
            context: $input.ssekms_encryption_context.as_deref(),
        }
    };
}
pub(crate) use kms_request;

impl super::Gateway {
    /// The customer key of a request ([`customer_key`]), refused when this gateway's S3
    /// listener is plain HTTP on a non-loopback address (as S3 refuses SSE-C over HTTP).
    pub(crate) fn customer_key(
        &self,
        algorithm: Option<&str>,
        key: Option<&str>,
        key_md5: Option<&str>,
        copy_source: bool,
    ) -> Result<Option<CustomerKey>> {
        let ck = customer_key(algorithm, key, key_md5, copy_source)?;
        if ck.is_some() && self.sse_c_refused {
            return Err(Error::InvalidRequest(
                "Requests specifying Server Side Encryption with Customer provided keys must be made over a secure connection.".into(),
            ));
        }
        Ok(ck)
    }
}

/// Whether SSE-C must be refused on an S3 listener at `addr` (plain HTTP unless `tls`): only
/// TLS and loopback keep a customer key off the network in clear.
pub fn sse_c_refused_on(addr: &str, tls: bool) -> bool {
    if tls {
        return false;
    }
    match addr.parse::<std::net::SocketAddr>() {
        Ok(a) => !a.ip().is_loopback(),
        Err(_) => !addr.starts_with("localhost:"),
    }
}

/// The customer key of a request from its three SSE-C headers (`copy_source`: the
/// `x-amz-copy-source-server-side-encryption-customer-*` set), or the S3 error for a bad set.
pub(crate) fn customer_key(
    algorithm: Option<&str>,
    key: Option<&str>,
    key_md5: Option<&str>,
    copy_source: bool,
) -> Result<Option<CustomerKey>> {
    let prefix = if copy_source {
        "x-amz-copy-source-server-side-encryption-customer"
    } else {
        "x-amz-server-side-encryption-customer"
    };
    CustomerKey::from_headers(algorithm, key, key_md5).map_err(|e| match e {
        CustomerKeyError::UnsupportedAlgorithm => Error::Client(S3Error::with_message(
            S3ErrorCode::InvalidEncryptionAlgorithmError,
            "The encryption request that you specified is not valid. The valid value is AES256.",
        )),
        CustomerKeyError::MissingAlgorithm => Error::InvalidArgument(format!(
            "Requests specifying Server Side Encryption with Customer provided keys must provide a valid encryption algorithm ({prefix}-algorithm)."
        )),
        CustomerKeyError::MissingKey => Error::InvalidArgument(format!(
            "Requests specifying Server Side Encryption with Customer provided keys must provide an appropriate secret key ({prefix}-key)."
        )),
        CustomerKeyError::MissingMd5 => Error::InvalidArgument(format!(
            "Requests specifying Server Side Encryption with Customer provided keys must provide the client calculated MD5 of the secret key ({prefix}-key-MD5)."
        )),
        CustomerKeyError::BadKey => Error::InvalidArgument(format!(
            "The secret key was invalid for the specified algorithm ({prefix}-key must be the base64 encoding of 32 bytes)."
        )),
        CustomerKeyError::Md5Mismatch => Error::InvalidArgument(format!(
            "The calculated MD5 hash of the key did not match the hash that was provided ({prefix}-key-MD5)."
        )),
    })
}

/// SSE-C and `x-amz-server-side-encryption` name two different modes: a request carrying both is
/// refused (400 InvalidArgument, as S3).
pub(crate) fn one_mode(ck: Option<&CustomerKey>, sse: Option<&ServerSideEncryption>) -> Result<()> {
    if ck.is_some() && sse.is_some() {
        return Err(Error::InvalidArgument(
            "Server Side Encryption with Customer provided key is incompatible with the encryption method specified (x-amz-server-side-encryption).".into(),
        ));
    }
    Ok(())
}

/// The SSE-C entries of an object's header map: `(algorithm, key MD5, check value)`.
pub(crate) fn sse_c_of(headers: &BTreeMap<String, String>) -> Option<(&str, &str, &str)> {
    Some((
        headers.get(SSE_C_ALGORITHM)?.as_str(),
        headers.get(SSE_C_KEY_MD5)?.as_str(),
        headers.get(SSE_C_CHECK)?.as_str(),
    ))
}

/// Removes the SSE-C entries (a copy gets its own, or none).
pub(crate) fn strip_sse_c(headers: &mut BTreeMap<String, String>) {
    headers.remove(SSE_C_ALGORITHM);
    headers.remove(SSE_C_KEY_MD5);
    headers.remove(SSE_C_CHECK);
}

/// What a response reports about an object's encryption: `x-amz-server-side-encryption` for an
/// object under the gateway's keys (with the KMS key, bucket-key flag and context of an SSE-KMS
/// object), the SSE-C algorithm and key MD5 for an SSE-C object.
#[derive(Debug, Clone, Default)]
pub(crate) struct Echo {
    pub sse: Option<ServerSideEncryption>,
    pub algorithm: Option<SSECustomerAlgorithm>,
    pub key_md5: Option<SSECustomerKeyMD5>,
    pub kms_key_id: Option<String>,
    pub bucket_key: Option<bool>,
    pub context: Option<String>,
}

impl Echo {
    /// The echo for an object with `headers`; `sse` is the gateway's own mode.
    pub(crate) fn of(
        headers: &BTreeMap<String, String>,
        sse: Option<ServerSideEncryption>,
    ) -> Echo {
        match sse_c_of(headers) {
            Some((alg, md5, _)) => Echo {
                sse: None,
                algorithm: Some(alg.to_owned()),
                key_md5: Some(md5.to_owned()),
                ..Echo::default()
            },
            None => {
                let sse = headers
                    .get(SSE_MODE)
                    .map(|m| ServerSideEncryption::from(m.clone()))
                    .or(sse);
                let kms = sse
                    .as_ref()
                    .is_some_and(|m| m.as_str() == ServerSideEncryption::AWS_KMS);
                let kms_key_id = headers.get(SSE_KMS_KEY_ID).filter(|_| kms).cloned();
                Echo {
                    sse,
                    bucket_key: kms_key_id.as_ref().map(|_| true),
                    context: headers.get(SSE_CONTEXT).filter(|_| kms).cloned(),
                    kms_key_id,
                    ..Echo::default()
                }
            }
        }
    }
}

impl super::Gateway {
    /// Records in a new object's (or upload's) `headers` the encryption it reports: the
    /// request's `x-amz-server-side-encryption` (with its KMS key and context), else its
    /// bucket's default encryption (with its `KMSMasterKeyID`), else nothing (the gateway's
    /// own mode). An SSE-C write records none (it reports SSE-C). An `aws:kms` mode records
    /// the KMS key's ARN (the gateway's configured key when none is named); a named key that
    /// does not exist, is disabled or denied is the client's error (`KMS.NotFoundException`…).
    pub(crate) async fn stamp_sse(
        &self,
        bucket: &str,
        requested: Option<&ServerSideEncryption>,
        kms: KmsRequest<'_>,
        sse_c: bool,
        headers: &mut BTreeMap<String, String>,
    ) -> Result<()> {
        headers.remove(SSE_MODE);
        headers.remove(SSE_KMS_KEY_ID);
        headers.remove(SSE_CONTEXT);
        if sse_c {
            return Ok(());
        }
        let (mode, key_id) = match requested {
            Some(r) => (Some(r.as_str().to_owned()), kms.key_id.map(str::to_owned)),
            None => match self.bucket_encryption(bucket).await? {
                Some(d) => (Some(d.algorithm), d.kms_key),
                None => (None, None),
            },
        };
        let Some(mode) = mode else {
            return Ok(());
        };
        if mode == ServerSideEncryption::AWS_KMS {
            let arn = self.kms_key_arn(key_id.as_deref()).await?;
            headers.insert(SSE_KMS_KEY_ID.to_owned(), arn);
            if let Some(c) = kms.context {
                check_context(c)?;
                headers.insert(SSE_CONTEXT.to_owned(), c.trim().to_owned());
            }
        }
        headers.insert(SSE_MODE.to_owned(), mode);
        Ok(())
    }

    /// The ARN of the KMS key `key_id` names (resolved by the KMS, checked usable), or of the
    /// gateway's configured key.
    pub(crate) async fn kms_key_arn(&self, key_id: Option<&str>) -> Result<String> {
        let keyring = self.store.keyring();
        match key_id {
            Some(id) => Ok(keyring.resolve_kms_key(id).await?),
            None => {
                let kek = keyring.provider().current_kek_id();
                Ok(kek
                    .strip_prefix(keys::kms::KMS_KEK_PREFIX)
                    .unwrap_or(&kek)
                    .to_owned())
            }
        }
    }
}

/// The error for a read of an SSE-C object without its key (S3's message).
pub(crate) fn key_required() -> Error {
    Error::InvalidRequest(
        "The object was stored using a form of Server Side Encryption. The correct parameters must be provided to retrieve the object.".into(),
    )
}

/// The error for a customer key that is not the object's.
pub(crate) fn key_mismatch() -> Error {
    Error::InvalidRequest(
        "The provided encryption key does not match the key the object was stored with (SSE-C)."
            .into(),
    )
}

/// The error for SSE-C headers on an object stored without a customer key.
pub(crate) fn not_applicable() -> Error {
    Error::InvalidRequest("The encryption parameters are not applicable to this object.".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs=";
    const MD5: &str = "DWygnHRtgiJ77HCm+1rvHw==";

    fn code(e: Error) -> (String, u16) {
        let s: S3Error = e.into();
        (
            s.code().as_str().to_owned(),
            s.status_code().map_or(0, |c| c.as_u16()),
        )
    }

    #[test]
    fn bad_header_sets_get_s3_codes() {
        assert!(customer_key(None, None, None, false).unwrap().is_none());
        assert!(
            customer_key(Some("AES256"), Some(KEY), Some(MD5), false)
                .unwrap()
                .is_some()
        );
        let bad = [
            (
                Some("AES128"),
                Some(KEY),
                Some(MD5),
                "InvalidEncryptionAlgorithmError",
            ),
            (None, Some(KEY), Some(MD5), "InvalidArgument"),
            (Some("AES256"), None, None, "InvalidArgument"),
            (Some("AES256"), Some(KEY), None, "InvalidArgument"),
            (
                Some("AES256"),
                Some("c2hvcnQ="),
                Some(MD5),
                "InvalidArgument",
            ),
            (
                Some("AES256"),
                Some(KEY),
                Some("AAAAAAAAAAAAAAAAAAAAAA=="),
                "InvalidArgument",
            ),
        ];
        for (a, k, m, want) in bad {
            let e = customer_key(a, k, m, true).unwrap_err();
            let (c, status) = code(e);
            assert_eq!((c.as_str(), status), (want, 400), "{a:?} {k:?} {m:?}");
        }
    }

    #[test]
    fn sse_c_only_over_tls_or_loopback() {
        assert!(!sse_c_refused_on("127.0.0.1:9000", false));
        assert!(!sse_c_refused_on("[::1]:9000", false));
        assert!(!sse_c_refused_on("localhost:9000", false));
        assert!(sse_c_refused_on("0.0.0.0:9000", false));
        assert!(sse_c_refused_on("10.1.2.3:9000", false));
        assert!(!sse_c_refused_on("0.0.0.0:9000", true));
    }

    #[test]
    fn echo_reports_sse_c_or_the_gateway_mode() {
        let mut h = BTreeMap::new();
        let e = Echo::of(&h, Some(ServerSideEncryption::from_static("AES256")));
        assert!(e.sse.is_some() && e.algorithm.is_none());
        let mut recorded = h.clone();
        recorded.insert(SSE_MODE.into(), "AES256".into());
        let e = Echo::of(
            &recorded,
            Some(ServerSideEncryption::from_static("aws:kms")),
        );
        assert_eq!(e.sse.as_ref().map(|s| s.as_str()), Some("AES256"));
        h.insert(SSE_C_ALGORITHM.into(), "AES256".into());
        h.insert(SSE_C_KEY_MD5.into(), MD5.into());
        h.insert(SSE_C_CHECK.into(), "v1:x".into());
        let e = Echo::of(&h, Some(ServerSideEncryption::from_static("AES256")));
        assert_eq!(e.algorithm.as_deref(), Some("AES256"));
        assert_eq!(e.key_md5.as_deref(), Some(MD5));
        assert!(e.sse.is_none());
        strip_sse_c(&mut h);
        assert!(h.is_empty());
    }
}
