//! What one audit event holds ([`AuditEvent`] as the gateway submits it, [`StoredEvent`] as
//! the ledger keeps it) and the canonical serialization that the hash chain is built on.
//!
//! Canonical form (documented in docs/AUDIT.md, do not change without a new version tag):
//!
//! ```text
//! body_json   = compact JSON object, keys in this order:
//!               v, time_ms, request_id, kind, principal, tenant, action, bucket, key,
//!               outcome, status, error_code, bytes_in, bytes_out, key_version, source,
//!               duration_us   (absent values are null; strings escaped as serde_json does)
//! body_sha256 = lower-case hex SHA-256 of body_json
//! link        = "vaultgate-audit-v1|" seq "|" prev_hash "|" body_sha256
//! hash        = lower-case hex SHA-256 of link
//! ```
//!
//! The first event (seq 1) has `prev_hash` = 64 zeros; after retention pruning the first
//! remaining event's `prev_hash` is the hash stored in the signed checkpoint.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{AuditError, AuditResult};

/// `prev_hash` of the very first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Version tag of the canonical link string.
pub const LINK_TAG: &str = "vaultgate-audit-v1";

/// Which front end served the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventKind {
    /// An S3 request on the S3 listener.
    S3,
    /// An admin API request.
    Admin,
}

impl EventKind {
    /// `s3` or `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::S3 => "s3",
            EventKind::Admin => "admin",
        }
    }

    /// Parses `s3` / `admin`.
    pub fn parse(s: &str) -> AuditResult<EventKind> {
        match s {
            "s3" => Ok(EventKind::S3),
            "admin" => Ok(EventKind::Admin),
            _ => Err(AuditError::Invalid(format!("unknown event kind {s:?}"))),
        }
    }
}

/// How the request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Outcome {
    /// Served (2xx/3xx, including 304 and 206).
    Success,
    /// Refused by authentication, authorisation, quorum or rate limit.
    Denied,
    /// Allowed but failed (4xx other than denial, 5xx).
    Error,
}

impl Outcome {
    /// `success`, `denied` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Error => "error",
        }
    }

    /// Parses `success` / `denied` / `error`.
    pub fn parse(s: &str) -> AuditResult<Outcome> {
        match s {
            "success" => Ok(Outcome::Success),
            "denied" => Ok(Outcome::Denied),
            "error" => Ok(Outcome::Error),
            _ => Err(AuditError::Invalid(format!(
                "unknown outcome {s:?} (expected success, denied or error)"
            ))),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares an event struct: its own leading fields, then the fields every form of an event
/// has (declared here once; `$count` is the type of the byte counters and the duration:
/// `u64` as measured, `i64` as stored), then its own trailing fields.
macro_rules! event_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$hm:meta])* pub $h:ident : $ht:ty, )*
            ..event(count = $count:ty),
            $( $(#[$tm:meta])* pub $t:ident : $tt:ty, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$hm])* pub $h: $ht, )*
            /// request start, Unix milliseconds
            pub time_ms: i64,
            /// the request id returned to the client (x-amz-request-id / admin request_id)
            pub request_id: String,
            /// `s3` or `admin`
            pub kind: EventKind,
            /// authenticated principal, `None` when authentication failed or was absent
            pub principal: Option<String>,
            /// tenant of the principal or bucket, if any
            pub tenant: Option<String>,
            /// S3 operation name (`PutObject`) or admin action (`admin.CreateAccessKey`)
            pub action: String,
            /// bucket, if the request names one
            pub bucket: Option<String>,
            /// object key, if the request names one (stored as given)
            pub key: Option<String>,
            /// `success`, `denied` or `error`
            pub outcome: Outcome,
            /// HTTP status sent
            pub status: u16,
            /// S3 error code (`AccessDenied`, `NoSuchKey`, ...) or admin error code
            pub error_code: Option<String>,
            /// request body bytes received
            pub bytes_in: $count,
            /// response body bytes sent
            pub bytes_out: $count,
            /// data key version used to seal or open the object, if any
            pub key_version: Option<u32>,
            /// client address: as seen by the listener in an [`AuditEvent`], after the
            /// ledger's [`crate::SourceMode`] (kept, `hmac-sha256:<hex>` or null) once stored
            pub source: Option<String>,
            /// time to serve the request, microseconds
            pub duration_us: $count,
            $( $(#[$tm])* pub $t: $tt, )*
        }
    };
}

event_struct! {
    /// One request as the gateway reports it to [`crate::Ledger::append`].
    ///
    /// `source` is the client address as seen by the listener; the ledger keeps, hashes or
    /// drops it according to its [`crate::SourceMode`]. Object keys are stored exactly as given,
    /// but for U+0000, stored as U+FFFD (see [`AuditEvent::storable`]).
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct AuditEvent {
        ..event(count = u64),
    }
}

event_struct! {
    /// An event as recorded in the ledger: the event plus its place in the chain.
    ///
    /// This is also the JSON of one line of the JSON-lines mirror, of `events.jsonl` in an
    /// evidence bundle and of the admin API (`GET /admin/v1/audit`).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
    #[serde(deny_unknown_fields)]
    pub struct StoredEvent {
        /// position in the chain, 1-based, without gaps (the `{seq}` of `GET /audit/{seq}`)
        pub seq: i64,
        ..event(count = i64),
        /// hash of the previous event (or of the checkpoint), lower-case hex
        pub prev_hash: String,
        /// hash of this event, lower-case hex
        pub hash: String,
    }
}

impl AuditEvent {
    /// The event as every database can store it: U+0000 in a text field (a key, bucket or
    /// access key id a client sent) becomes U+FFFD, since PostgreSQL's `TEXT` cannot hold it —
    /// one such event would otherwise fail the whole group commit it was batched with. Done
    /// before the event is hashed, on SQLite too, so a ledger means the same on both.
    pub(crate) fn storable(mut self) -> AuditEvent {
        fn no_nul(s: &mut String) {
            if s.contains('\0') {
                *s = s.replace('\0', "\u{FFFD}");
            }
        }
        no_nul(&mut self.request_id);
        no_nul(&mut self.action);
        for s in [
            &mut self.principal,
            &mut self.tenant,
            &mut self.bucket,
            &mut self.key,
            &mut self.error_code,
            &mut self.source,
        ]
        .into_iter()
        .flatten()
        {
            no_nul(s);
        }
        self
    }
}

/// The canonical body, in its fixed key order.
#[derive(Serialize)]
struct Body<'a> {
    v: u8,
    time_ms: i64,
    request_id: &'a str,
    kind: EventKind,
    principal: Option<&'a str>,
    tenant: Option<&'a str>,
    action: &'a str,
    bucket: Option<&'a str>,
    key: Option<&'a str>,
    outcome: Outcome,
    status: u16,
    error_code: Option<&'a str>,
    bytes_in: i64,
    bytes_out: i64,
    key_version: Option<u32>,
    source: Option<&'a str>,
    duration_us: i64,
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The canonical link string of event `seq` (see the module documentation).
pub fn link_string(seq: i64, prev_hash: &str, body_sha256: &str) -> String {
    format!("{LINK_TAG}|{seq}|{prev_hash}|{body_sha256}")
}

/// The hash of event `seq` from its predecessor's hash and its body digest.
pub fn link_hash(seq: i64, prev_hash: &str, body_sha256: &str) -> String {
    sha256_hex(link_string(seq, prev_hash, body_sha256).as_bytes())
}

/// Clamps a byte count or duration into the signed 64-bit range the database stores.
pub(crate) fn clamp_u64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl StoredEvent {
    /// Builds the stored form of `ev` at position `seq` after `prev_hash`; `source` is the
    /// address after the source mode was applied.
    pub(crate) fn chain(
        ev: AuditEvent,
        source: Option<String>,
        seq: i64,
        prev_hash: String,
    ) -> StoredEvent {
        let mut s = StoredEvent {
            seq,
            time_ms: ev.time_ms,
            request_id: ev.request_id,
            kind: ev.kind,
            principal: ev.principal,
            tenant: ev.tenant,
            action: ev.action,
            bucket: ev.bucket,
            key: ev.key,
            outcome: ev.outcome,
            status: ev.status,
            error_code: ev.error_code,
            bytes_in: clamp_u64(ev.bytes_in),
            bytes_out: clamp_u64(ev.bytes_out),
            key_version: ev.key_version,
            source,
            duration_us: clamp_u64(ev.duration_us),
            prev_hash,
            hash: String::new(),
        };
        s.hash = s.computed_hash();
        s
    }

    /// The canonical body JSON (bytes hashed into `body_sha256`).
    pub fn body_json(&self) -> String {
        let body = Body {
            v: 1,
            time_ms: self.time_ms,
            request_id: &self.request_id,
            kind: self.kind,
            principal: self.principal.as_deref(),
            tenant: self.tenant.as_deref(),
            action: &self.action,
            bucket: self.bucket.as_deref(),
            key: self.key.as_deref(),
            outcome: self.outcome,
            status: self.status,
            error_code: self.error_code.as_deref(),
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            key_version: self.key_version,
            source: self.source.as_deref(),
            duration_us: self.duration_us,
        };
        // Serialising a struct of strings and integers into a String cannot fail.
        serde_json::to_string(&body).unwrap_or_default()
    }

    /// Lower-case hex SHA-256 of [`StoredEvent::body_json`].
    pub fn body_sha256(&self) -> String {
        sha256_hex(self.body_json().as_bytes())
    }

    /// The hash this event should carry, recomputed from its content, seq and prev_hash.
    pub fn computed_hash(&self) -> String {
        link_hash(self.seq, &self.prev_hash, &self.body_sha256())
    }

    /// One JSON line (no trailing newline): the mirror / bundle form.
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AuditEvent {
        AuditEvent {
            time_ms: 1_700_000_000_000,
            request_id: "req-1".into(),
            kind: EventKind::S3,
            principal: Some("alice".into()),
            tenant: None,
            action: "PutObject".into(),
            bucket: Some("b1".into()),
            key: Some("dir/ä \"quoted\"\n".into()),
            outcome: Outcome::Success,
            status: 200,
            error_code: None,
            bytes_in: 5,
            bytes_out: 0,
            key_version: Some(1),
            source: Some("127.0.0.1".into()),
            duration_us: 1234,
        }
    }

    #[test]
    fn canonical_body_has_fixed_order_and_known_hash() {
        let s = StoredEvent::chain(sample(), Some("127.0.0.1".into()), 1, GENESIS_HASH.into());
        assert_eq!(
            s.body_json(),
            r#"{"v":1,"time_ms":1700000000000,"request_id":"req-1","kind":"s3","principal":"alice","tenant":null,"action":"PutObject","bucket":"b1","key":"dir/ä \"quoted\"\n","outcome":"success","status":200,"error_code":null,"bytes_in":5,"bytes_out":0,"key_version":1,"source":"127.0.0.1","duration_us":1234}"#
        );
        let body = sha256_hex(s.body_json().as_bytes());
        let link = format!("vaultgate-audit-v1|1|{GENESIS_HASH}|{body}");
        assert_eq!(s.hash, sha256_hex(link.as_bytes()));
        assert_eq!(s.hash, s.computed_hash());
    }

    #[test]
    fn known_answer_vector_from_docs_audit_md() {
        let mut ev = sample();
        ev.key = Some("photos/cat.jpg".into());
        let s = StoredEvent::chain(ev, Some("127.0.0.1".into()), 1, GENESIS_HASH.into());
        assert_eq!(
            s.body_sha256(),
            "21f745dac48e69acb3b681ffb957b066566b02cf1348b64051f7dad7ad643192"
        );
        assert_eq!(
            s.hash,
            "243080e7e3b872b6ccb7f03534d52f25e5906feef2842103a4d4080be8e61d91"
        );
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = StoredEvent::chain(sample(), Some("127.0.0.1".into()), 7, "ab".repeat(32));
        let mut variants: Vec<StoredEvent> = Vec::new();
        let mut push = |f: &dyn Fn(&mut StoredEvent)| {
            let mut v = base.clone();
            f(&mut v);
            variants.push(v);
        };
        push(&|e| e.seq += 1);
        push(&|e| e.time_ms += 1);
        push(&|e| e.request_id.push('x'));
        push(&|e| e.kind = EventKind::Admin);
        push(&|e| e.principal = None);
        push(&|e| e.tenant = Some("t".into()));
        push(&|e| e.action = "GetObject".into());
        push(&|e| e.bucket = Some("b2".into()));
        push(&|e| e.key = Some("other".into()));
        push(&|e| e.outcome = Outcome::Denied);
        push(&|e| e.status = 403);
        push(&|e| e.error_code = Some("AccessDenied".into()));
        push(&|e| e.bytes_in += 1);
        push(&|e| e.bytes_out += 1);
        push(&|e| e.key_version = Some(2));
        push(&|e| e.source = None);
        push(&|e| e.duration_us += 1);
        push(&|e| e.prev_hash = "cd".repeat(32));
        assert_eq!(variants.len(), 18);
        for v in &variants {
            assert_ne!(v.computed_hash(), base.hash, "{v:?}");
        }
    }

    #[test]
    fn json_line_round_trips_and_rejects_unknown_fields() {
        let s = StoredEvent::chain(sample(), None, 3, GENESIS_HASH.into());
        let line = s.to_json_line();
        let back: StoredEvent = serde_json::from_str(&line).unwrap();
        assert_eq!(back, s);
        let extra = line.replacen("{", "{\"extra\":1,", 1);
        assert!(serde_json::from_str::<StoredEvent>(&extra).is_err());
        assert!(Outcome::parse("ok").is_err());
        assert_eq!(Outcome::parse("denied").unwrap(), Outcome::Denied);
        assert!(EventKind::parse("S3").is_err());
    }
}
