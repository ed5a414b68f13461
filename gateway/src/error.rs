//! The gateway's one error enum and its single conversion, at the edge, into an S3 error.
//!
//! Everything below the S3 front end returns [`Error`]; `From<Error> for S3Error` picks the
//! S3 code and HTTP status. Internal details (integrity failures, database errors) are logged
//! here and replaced by a generic message, never returned to the client.

use s3s::{S3Error, S3ErrorCode};

use crate::backend::BackendError;
use crate::index::IndexError;

/// Gateway errors, named by what the client sees.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bucket does not exist.
    #[error("no such bucket: {0}")]
    NoSuchBucket(String),
    /// The object does not exist.
    #[error("no such key: {0}")]
    NoSuchKey(String),
    /// The multipart upload does not exist (or was completed/aborted).
    #[error("no such upload: {0}")]
    NoSuchUpload(String),
    /// CreateBucket on an existing bucket.
    #[error("bucket already exists: {0}")]
    BucketAlreadyOwnedByYou(String),
    /// DeleteBucket on a bucket with objects or uploads.
    #[error("bucket not empty: {0}")]
    BucketNotEmpty(String),
    /// Range not satisfiable (416).
    #[error("the requested range is not satisfiable")]
    InvalidRange,
    /// If-Match / If-Unmodified-Since failed (412).
    #[error("at least one of the preconditions you specified did not hold")]
    PreconditionFailed,
    /// If-None-Match / If-Modified-Since (304).
    #[error("not modified")]
    NotModified,
    /// A part named in CompleteMultipartUpload is missing or its ETag differs.
    #[error("invalid part: {0}")]
    InvalidPart(String),
    /// Parts of CompleteMultipartUpload not in ascending order.
    #[error("the list of parts was not in ascending order")]
    InvalidPartOrder,
    /// A part other than the last is smaller than 5 MiB.
    #[error("your proposed upload is smaller than the minimum allowed object size: {0}")]
    EntityTooSmall(String),
    /// Content-MD5 or x-amz-checksum-* does not match the body.
    #[error("{0}")]
    BadDigest(String),
    /// Content-MD5 / checksum header is not valid base64 of the right length.
    #[error("{0}")]
    InvalidDigest(String),
    /// Object key longer than 1024 bytes.
    #[error("your key is too long")]
    KeyTooLong,
    /// A bad argument.
    #[error("{0}")]
    InvalidArgument(String),
    /// A request that is not valid as a whole.
    #[error("{0}")]
    InvalidRequest(String),
    /// Malformed XML body.
    #[error("{0}")]
    MalformedXml(String),
    /// The body ended before Content-Length bytes or the client stream failed.
    #[error("{0}")]
    IncompleteBody(String),
    /// Backend, index or key provider unavailable (503).
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// The audit ledger could not record the request's event; nothing was changed (503).
    #[error("audit ledger unavailable: {0}")]
    AuditUnavailable(String),
    /// Too many requests (503 SlowDown).
    #[error("slow down: {0}")]
    SlowDown(String),
    /// Authenticated but not allowed.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// Stored data failed authentication or is malformed (logged, answered as InternalError).
    #[error("integrity failure: {0}")]
    Integrity(String),
    /// Anything else that is our fault.
    #[error("internal error: {0}")]
    Internal(String),
    /// Invalid configuration (refuse to start).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A start-up step failed for a reason outside the configuration's syntax (a port in use,
    /// a data dir this user cannot write, a backend that refuses the credentials): the message
    /// says what failed, why, and which setting to check.
    #[error("cannot start: {0}")]
    Start(String),
    /// An S3 error raised by s3s while reading the request (e.g. a bad aws-chunked signature),
    /// passed through unchanged.
    #[error("{0}")]
    Client(S3Error),
}

/// Result alias of the gateway.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The one mapping of the policy library's errors: refusals become the S3 error the client
/// sees through [`crate::auth::denial`]; failures of the store are the gateway's own.
impl From<policy::Error> for Error {
    fn from(e: policy::Error) -> Self {
        match e {
            refusal @ (policy::Error::RateLimited { .. }
            | policy::Error::AccessDenied { .. }
            | policy::Error::Denied { .. }
            | policy::Error::ApprovalRequired { .. }
            | policy::Error::Forbidden(_)
            | policy::Error::Unauthenticated(_)) => Error::Client(crate::auth::denial(refusal)),
            policy::Error::Database(m) => Error::Unavailable(format!("policy store: {m}")),
            policy::Error::Seal(m) => Error::Unavailable(format!("access key secret: {m}")),
            policy::Error::Config(m) => Error::Config(m),
            e @ (policy::Error::UnknownRole(_)
            | policy::Error::NotFound(_)
            | policy::Error::Conflict(_)
            | policy::Error::Invalid(_)
            | policy::Error::Expired(_)) => Error::Internal(format!("policy: {e}")),
        }
    }
}

impl From<keys::Error> for Error {
    fn from(e: keys::Error) -> Self {
        match e {
            keys::Error::KeyUnavailable(m) => Error::Unavailable(format!("key unavailable: {m}")),
            keys::Error::Kms(m) => Error::Unavailable(format!("key service refused: {m}")),
            keys::Error::Integrity(m) => Error::Integrity(m),
            keys::Error::Format(m) => Error::Integrity(format!("format: {m}")),
            keys::Error::Io(e) => Error::Unavailable(format!("stream read failed: {e}")),
            keys::Error::Config(m) => Error::Config(m),
            keys::Error::KmsKey { code, message } => Error::Client(kms_key_refused(code, message)),
        }
    }
}

/// S3's answer to a request naming a KMS key that cannot be used (unknown, disabled, not for
/// encryption: 400 with the `KMS.*` code AWS S3 answers; denied to the gateway: 403
/// AccessDenied). The message names only the key as the request gave it.
fn kms_key_refused(code: &str, message: String) -> S3Error {
    let (code, status) = match code {
        "AccessDenied" => (S3ErrorCode::AccessDenied, http::StatusCode::FORBIDDEN),
        other => (
            S3ErrorCode::Custom(other.to_owned().into()),
            http::StatusCode::BAD_REQUEST,
        ),
    };
    let mut e = S3Error::with_message(code, message);
    e.set_status_code(status);
    e
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::NotFound(m) => Error::Integrity(format!("backend object missing: {m}")),
            BackendError::Unavailable(m) => Error::Unavailable(format!("backend: {m}")),
            BackendError::Io(e) => Error::Unavailable(format!("backend io: {e}")),
            BackendError::Denied(m) => Error::Unavailable(format!("backend access denied: {m}")),
            e @ (BackendError::Config(_) | BackendError::Refused(_)) => {
                Error::Internal(e.to_string())
            }
            e @ (BackendError::InvalidId(_)
            | BackendError::SizeMismatch(_)
            | BackendError::InvalidRange(_)) => Error::Integrity(e.to_string()),
        }
    }
}

impl From<IndexError> for Error {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::NoSuchUpload(m) => Error::NoSuchUpload(m),
            IndexError::NotEmpty(m) => Error::BucketNotEmpty(m),
            IndexError::AlreadyExists(m) => Error::BucketAlreadyOwnedByYou(m),
            IndexError::NotFound(m) => Error::NoSuchBucket(m),
            IndexError::Corrupt(m) => Error::Integrity(format!("index: {m}")),
            // object lock refused the change (issue 15): S3 answers AccessDenied
            IndexError::Locked(m) => Error::AccessDenied(format!("object lock: {m}")),
            IndexError::PreconditionFailed => Error::PreconditionFailed,
            IndexError::NoCurrentObject(k) => Error::NoSuchKey(k),
            // answered by the store as "nothing deleted" (Store::put_delete_marker_if); a
            // caller that does not expect it sees the key missing
            IndexError::NothingToDelete(k) => Error::NoSuchKey(k),
            IndexError::NoSuchVersion(m) => Error::Client(s3s::S3Error::with_message(
                S3ErrorCode::NoSuchVersion,
                format!("The specified version does not exist: {m}"),
            )),
            IndexError::Database(e) if unrepresentable(&e) => Error::InvalidArgument(
                "Object keys, prefixes and markers may not contain the character U+0000.".into(),
            ),
            e @ (IndexError::Database(_) | IndexError::Unavailable(_)) => {
                Error::Unavailable(format!("index: {e}"))
            }
        }
    }
}

/// The database refused a value of the request as text it cannot hold: PostgreSQL's `TEXT` has
/// no U+0000 (SQLSTATE 22021 `character_not_in_repertoire`, 22P05 `untranslatable_character`).
/// Such a key cannot exist in the index, so the request is the client's mistake, not an outage.
fn unrepresentable(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|c| c == "22021" || c == "22P05")
}

impl Error {
    /// The S3 error code this error is answered with.
    pub fn s3_code(&self) -> S3ErrorCode {
        match self {
            Error::NoSuchBucket(_) => S3ErrorCode::NoSuchBucket,
            Error::NoSuchKey(_) => S3ErrorCode::NoSuchKey,
            Error::NoSuchUpload(_) => S3ErrorCode::NoSuchUpload,
            Error::BucketAlreadyOwnedByYou(_) => S3ErrorCode::BucketAlreadyOwnedByYou,
            Error::BucketNotEmpty(_) => S3ErrorCode::BucketNotEmpty,
            Error::InvalidRange => S3ErrorCode::InvalidRange,
            Error::PreconditionFailed => S3ErrorCode::PreconditionFailed,
            Error::NotModified => S3ErrorCode::NotModified,
            Error::InvalidPart(_) => S3ErrorCode::InvalidPart,
            Error::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
            Error::EntityTooSmall(_) => S3ErrorCode::EntityTooSmall,
            Error::BadDigest(_) => S3ErrorCode::BadDigest,
            Error::InvalidDigest(_) => S3ErrorCode::InvalidDigest,
            Error::KeyTooLong => S3ErrorCode::KeyTooLongError,
            Error::InvalidArgument(_) => S3ErrorCode::InvalidArgument,
            Error::InvalidRequest(_) => S3ErrorCode::InvalidRequest,
            Error::MalformedXml(_) => S3ErrorCode::MalformedXML,
            Error::IncompleteBody(_) => S3ErrorCode::IncompleteBody,
            Error::Unavailable(_) | Error::AuditUnavailable(_) => S3ErrorCode::ServiceUnavailable,
            Error::SlowDown(_) => S3ErrorCode::SlowDown,
            Error::AccessDenied(_) => S3ErrorCode::AccessDenied,
            Error::Integrity(_) | Error::Internal(_) | Error::Config(_) | Error::Start(_) => {
                S3ErrorCode::InternalError
            }
            Error::Client(e) => e.code().clone(),
        }
    }
}

/// The client's error for a request body that failed while being read. s3s keeps its stream
/// error types private, so the two that are the client's signing mistakes are told apart by
/// their message (s3s is pinned; `body_errors_are_named` checks the texts): a bad aws-chunked
/// chunk signature is 403 SignatureDoesNotMatch, a body that does not hash to its
/// `x-amz-content-sha256` is 400 XAmzContentSHA256Mismatch; anything else is IncompleteBody.
pub fn body_error(e: Box<dyn std::error::Error + Send + Sync>) -> Error {
    let e = match e.downcast::<S3Error>() {
        Ok(s3) => return Error::Client(*s3),
        Err(e) => e,
    };
    let mut text = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        text.push_str(": ");
        text.push_str(&s.to_string());
        src = s.source();
    }
    if text.contains("AwsChunkedStreamError: SignatureMismatch") {
        return Error::Client(S3Error::with_message(
            S3ErrorCode::SignatureDoesNotMatch,
            "The chunk signature we calculated does not match the signature you provided.",
        ));
    }
    if text.contains("UploadStreamError: Sha256Mismatch") {
        let mut err = S3Error::with_message(
            S3ErrorCode::Custom("XAmzContentSHA256Mismatch".into()),
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        );
        err.set_status_code(http::StatusCode::BAD_REQUEST);
        return Error::Client(err);
    }
    Error::IncompleteBody(format!("request body ended early: {e}"))
}

/// `err` with a `Retry-After: secs` header (at least 1 s): the client may retry then.
pub fn with_retry_after(mut err: S3Error, secs: u64) -> S3Error {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(secs.max(1)),
    );
    err.set_headers(h);
    err
}

/// `Retry-After` of a 503 ServiceUnavailable answered because a dependency (backend, key
/// provider, index) failed.
pub const UNAVAILABLE_RETRY_AFTER_SECS: u32 = 5;

impl From<Error> for S3Error {
    fn from(e: Error) -> Self {
        let code = e.s3_code();
        if let Error::Client(inner) = e {
            return inner;
        }
        match &e {
            Error::Integrity(_) | Error::Internal(_) | Error::Config(_) | Error::Start(_) => {
                tracing::error!(error = %e, "internal error");
                S3Error::with_message(code, "We encountered an internal error. Please try again.")
            }
            Error::Unavailable(_) => {
                // the cause (a backend address, a KEK id, a database error) is the operator's
                // business: logged here, never sent to the client
                tracing::warn!(error = %e, "dependency unavailable");
                with_retry_after(
                    S3Error::with_message(
                        code,
                        "A service the gateway depends on is unavailable. Please try again later.",
                    ),
                    u64::from(UNAVAILABLE_RETRY_AFTER_SECS),
                )
            }
            Error::AuditUnavailable(_) => {
                tracing::error!(error = %e, "request refused: its audit event cannot be recorded");
                S3Error::with_message(
                    code,
                    "The audit log cannot record this request; nothing was changed. Please try again later.",
                )
            }
            Error::NotModified => S3Error::new(code),
            _ => S3Error::with_message(code, e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        let cases: Vec<(Error, &str, u16)> = vec![
            (Error::NoSuchKey("k".into()), "NoSuchKey", 404),
            (Error::NoSuchBucket("b".into()), "NoSuchBucket", 404),
            (Error::BucketNotEmpty("b".into()), "BucketNotEmpty", 409),
            (
                Error::BucketAlreadyOwnedByYou("b".into()),
                "BucketAlreadyOwnedByYou",
                409,
            ),
            (Error::InvalidRange, "InvalidRange", 416),
            (Error::PreconditionFailed, "PreconditionFailed", 412),
            (Error::NotModified, "NotModified", 304),
            (Error::InvalidPart("1".into()), "InvalidPart", 400),
            (Error::InvalidPartOrder, "InvalidPartOrder", 400),
            (Error::EntityTooSmall("x".into()), "EntityTooSmall", 400),
            (Error::BadDigest("x".into()), "BadDigest", 400),
            (Error::InvalidDigest("x".into()), "InvalidDigest", 400),
            (Error::KeyTooLong, "KeyTooLongError", 400),
            (Error::MalformedXml("x".into()), "MalformedXML", 400),
            (Error::IncompleteBody("x".into()), "IncompleteBody", 400),
            (Error::Unavailable("x".into()), "ServiceUnavailable", 503),
            (Error::SlowDown("x".into()), "SlowDown", 503),
            (
                Error::AuditUnavailable("x".into()),
                "ServiceUnavailable",
                503,
            ),
            (Error::Integrity("tag".into()), "InternalError", 500),
        ];
        for (e, code, status) in cases {
            let s3: S3Error = e.into();
            assert_eq!(s3.code().as_str(), code);
            assert_eq!(
                s3.code().status_code().map(|s| s.as_u16()),
                Some(status),
                "{code}"
            );
        }
    }

    #[test]
    fn integrity_detail_is_not_returned() {
        let s3: S3Error = Error::Integrity("nonce mismatch in record 7 of 0123abcd".into()).into();
        assert!(!s3.message().unwrap_or_default().contains("0123abcd"));
    }

    #[test]
    fn unavailable_detail_is_not_returned_and_a_retry_is_announced() {
        let s3: S3Error = Error::Unavailable(
            "key unavailable: KEK local:1a2b is not in this key provider".into(),
        )
        .into();
        let msg = s3.message().unwrap_or_default().to_owned();
        assert!(!msg.contains("KEK") && !msg.contains("1a2b"), "{msg}");
        let h = s3.headers().expect("headers");
        assert_eq!(
            h.get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()),
            Some("5")
        );
    }

    #[test]
    fn body_errors_are_named() {
        #[derive(Debug, thiserror::Error)]
        #[error("AwsChunkedStreamError: SignatureMismatch")]
        struct Chunked;
        #[derive(Debug, thiserror::Error)]
        #[error("UploadStreamError: Sha256Mismatch")]
        struct Sha;
        #[derive(Debug, thiserror::Error)]
        #[error("connection reset")]
        struct Reset;
        let e = S3Error::from(body_error(Box::new(Chunked)));
        assert_eq!(
            (e.code().as_str(), e.status_code().map(|s| s.as_u16())),
            ("SignatureDoesNotMatch", Some(403))
        );
        let e = S3Error::from(body_error(Box::new(Sha)));
        assert_eq!(
            (e.code().as_str(), e.status_code().map(|s| s.as_u16())),
            ("XAmzContentSHA256Mismatch", Some(400))
        );
        let e = S3Error::from(body_error(Box::new(Reset)));
        assert_eq!(e.code().as_str(), "IncompleteBody");
    }
}
