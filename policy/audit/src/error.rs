//! The error type of the audit ledger and the evidence bundles ([`AuditError`]), and the
//! reasons an evidence bundle is refused ([`BundleReason`]).

use std::fmt;

/// Errors of the audit ledger, its retention checkpoints and evidence bundles.
///
/// For the request path: any `Err` from [`crate::Ledger::append`] means the event was
/// not recorded; the gateway fails writes/deletes/admin changes with 503 and consults
/// [`crate::Ledger::fail_request_on_error`] for reads.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The metadata database refused a query.
    #[error("audit database: {0}")]
    Database(#[from] sqlx::Error),
    /// The audit migrations could not be applied.
    #[error("audit migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The ledger writer is gone or a batch could not be committed (the event was not recorded).
    #[error("audit ledger unavailable: {0}")]
    Unavailable(String),
    /// Reading or writing a file (mirror, key file, bundle) failed.
    #[error("{path}: {source}")]
    Io {
        /// the file concerned
        path: String,
        /// the underlying error
        source: std::io::Error,
    },
    /// An event or a query argument that cannot be stored or executed.
    #[error("invalid audit input: {0}")]
    Invalid(String),
    /// A bad setting (source-address mode, missing secret, ...).
    #[error("audit configuration: {0}")]
    Config(String),
    /// A stored row or mirror line that cannot be decoded.
    #[error("corrupt audit record: {0}")]
    Corrupt(String),
    /// The evidence key file is missing, unreadable, malformed or too open.
    #[error("evidence key: {0}")]
    Key(String),
    /// An evidence bundle failed verification (or could not be built).
    #[error("evidence bundle rejected ({reason}): {detail}")]
    Bundle {
        /// what kind of failure
        reason: BundleReason,
        /// the precise finding (file name, sequence number, fingerprints)
        detail: String,
    },
}

impl AuditError {
    pub(crate) fn io(path: impl fmt::Display, source: std::io::Error) -> AuditError {
        AuditError::Io {
            path: path.to_string(),
            source,
        }
    }

    pub(crate) fn bundle(reason: BundleReason, detail: impl Into<String>) -> AuditError {
        AuditError::Bundle {
            reason,
            detail: detail.into(),
        }
    }

    /// The bundle failure reason, if this is a bundle rejection.
    pub fn bundle_reason(&self) -> Option<BundleReason> {
        match self {
            AuditError::Bundle { reason, .. } => Some(*reason),
            _ => None,
        }
    }
}

/// Why an evidence bundle was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BundleReason {
    /// Not a bundle, not canonical JSON, bad base64, unknown format version or unexpected file.
    Malformed,
    /// A file listed in the manifest is absent, or a file is present that the manifest does not list.
    MissingFile,
    /// A file's SHA-256 or size differs from the manifest.
    FileHashMismatch,
    /// The manifest signature does not verify with the bundle's public key.
    BadSignature,
    /// The bundle was signed by a different key than the one the verifier trusts.
    WrongKey,
    /// The events do not link up into the hash chain the bundle claims.
    ChainBroken,
    /// The bundle could not be built (too many events, empty selection, ...).
    Build,
}

impl fmt::Display for BundleReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BundleReason::Malformed => "malformed bundle",
            BundleReason::MissingFile => "missing or unlisted file",
            BundleReason::FileHashMismatch => "file hash mismatch",
            BundleReason::BadSignature => "bad signature",
            BundleReason::WrongKey => "signed by another key",
            BundleReason::ChainBroken => "hash chain broken",
            BundleReason::Build => "cannot build",
        })
    }
}

/// Result alias of the ledger and evidence modules.
pub type AuditResult<T> = std::result::Result<T, AuditError>;
