//! The crate's one error type (`keys::Error`) and `keys::Result`.

/// Everything that can go wrong in `keys`. The gateway maps `KeyUnavailable` to 503,
/// `Integrity`/`Format` to a 500-class "stored data damaged" error and `Config` to a refusal to start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The KEK or KMS is unreachable, or the key id is unknown to the provider.
    #[error("key unavailable: {0}")]
    KeyUnavailable(String),
    /// Authentication failed: tag, nonce, header, key commitment, truncation, extension, manifest mismatch.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// Malformed header or record bytes.
    #[error("malformed sealed data: {0}")]
    Format(String),
    /// Error from the input stream (client body, backend read).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Bad key file, env key or KMS URL: refuse to start.
    #[error("key configuration error: {0}")]
    Config(String),
    /// The KMS refused the request (access denied, wrong encryption context, ...).
    #[error("kms error: {0}")]
    Kms(String),
    /// A KMS key named by a request (SSE-KMS key id, a bucket default's `KMSMasterKeyID`) is
    /// unusable: `code` is the S3 error code (`KMS.NotFoundException`, `KMS.DisabledException`,
    /// `KMS.InvalidKeyUsageException`, `AccessDenied`); `message` names only the key as given.
    #[error("{code}: {message}")]
    KmsKey {
        /// S3 error code.
        code: &'static str,
        /// Message for the client.
        message: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A copy of this error for a second consumer (the seal handle and the stream both report
    /// a failure); I/O errors keep their kind and message.
    pub(crate) fn duplicate(&self) -> Error {
        match self {
            Error::KeyUnavailable(s) => Error::KeyUnavailable(s.clone()),
            Error::Integrity(s) => Error::Integrity(s.clone()),
            Error::Format(s) => Error::Format(s.clone()),
            Error::Io(e) => Error::Io(std::io::Error::new(e.kind(), e.to_string())),
            Error::Config(s) => Error::Config(s.clone()),
            Error::Kms(s) => Error::Kms(s.clone()),
            Error::KmsKey { code, message } => Error::KmsKey {
                code,
                message: message.clone(),
            },
        }
    }
}
