//! The S3 side of the audit ledger: opening the ledger and the evidence key from the config,
//! [`before_change`] (the S3 handlers record a request's event through its
//! [`RequestCtx`] before a change becomes visible), the action guessed from a request line,
//! request ids, the S3 error code of a response s3s rendered itself, and the daily retention
//! prune.

use std::sync::Arc;
use std::time::Duration;

use audit::Ledger;
use audit::evidence::EvidenceKey;
use tokio::sync::watch;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::request::RequestCtx;

/// The ledger of a running gateway and the key that signs its checkpoints and bundles.
#[derive(Clone, Debug)]
pub struct Audit {
    /// the ledger (in the index's SQLite file)
    pub ledger: Ledger,
    /// `<data dir>/evidence.key`
    pub evidence_key: Arc<EvidenceKey>,
}

impl Audit {
    /// Loads (or creates, 0600) the evidence key and opens the ledger on the index's pools.
    pub async fn open(config: &Config, index: &Index) -> Result<Audit> {
        let (key, created) = EvidenceKey::load_or_generate(&config.data_dir)
            .map_err(|e| Error::Config(format!("evidence key: {e}")))?;
        if created {
            tracing::info!(
                path = %EvidenceKey::path_in(&config.data_dir).display(),
                "generated evidence key"
            );
        }
        let mut cfg = config.ledger_config()?;
        cfg.source_secret = Some(key.source_secret());
        let ledger =
            Ledger::open_with_reader(index.write_pool().clone(), index.read_pool().clone(), cfg)
                .await
                .map_err(|e| Error::Unavailable(format!("audit ledger: {e}")))?;
        Ok(Audit {
            ledger,
            evidence_key: Arc::new(key),
        })
    }

    /// Prunes events older than the retention now, then once a day, until `stop`; each run
    /// only while this instance holds the `retention` lease.
    pub fn spawn_pruner(
        &self,
        leases: crate::lease::Leases,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let ledger = self.ledger.clone();
        let key = self.evidence_key.clone();
        tokio::spawn(async move {
            loop {
                if leases.try_hold(crate::lease::Job::Retention).await {
                    match ledger.prune(&key, audit::now_ms()).await {
                        Ok(r) => tracing::info!(report = ?r, "audit retention prune done"),
                        Err(e) => tracing::error!(error = %e, "audit retention prune failed"),
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(24 * 3600)) => {}
                    _ = stop.wait_for(|v| *v) => break,
                }
            }
        })
    }
}

/// Records the request's event before a change becomes visible (no-op without a ledger).
/// `bytes_in`: plaintext bytes received (PutObject, UploadPart); `key_version`: data key used.
/// `Err(AuditUnavailable)`: nothing may change; the caller cleans up and answers 503.
pub async fn before_change(
    ctx: Option<&RequestCtx>,
    bytes_in: u64,
    key_version: Option<u32>,
) -> Result<()> {
    let Some((ctx, a)) = ctx.and_then(|c| c.audit().map(|a| (c, a))) else {
        return Ok(());
    };
    if a.recorded() {
        return Ok(());
    }
    note_write(a, bytes_in, key_version);
    // the status the operation answers on success (s3s: 204 for the deletes and abort)
    let status = match ctx.action() {
        Some(
            policy::Action::DeleteObject
            | policy::Action::DeleteBucket
            | policy::Action::AbortMultipartUpload,
        ) => 204,
        _ => 200,
    };
    a.record_before_change(status)
        .await
        .map(|_| ())
        .map_err(|e| Error::AuditUnavailable(e.to_string()))
}

/// For a write that commits its audit event in its own index transaction (PutObject: the object
/// row and the event together, one COMMIT): the event [`before_change`] would record, with
/// `bytes_in` and `key_version`. `None`: nothing to pass (no audit context, already recorded, or
/// a ledger that cannot share a transaction) — the caller then calls [`before_change`].
pub fn event_for_change(
    ctx: Option<&RequestCtx>,
    bytes_in: u64,
    key_version: Option<u32>,
) -> Option<audit::AuditEvent> {
    let a = ctx?.audit()?;
    if !a.shares_transaction() {
        return None;
    }
    note_write(a, bytes_in, key_version);
    a.event_for_change(200)
}

/// What a change adds to its event: the body bytes received and the data key version used.
fn note_write(a: &audit::RequestAudit, bytes_in: u64, key_version: Option<u32>) {
    a.add_bytes_in(bytes_in);
    if let Some(v) = key_version {
        a.set_key_version(v);
    }
}

/// The event of [`event_for_change`] was committed with its change, at `receipt`.
pub fn recorded(ctx: Option<&RequestCtx>, receipt: audit::Receipt) {
    if let Some(a) = ctx.and_then(RequestCtx::audit) {
        a.set_recorded(receipt);
    }
}

/// The S3 operation a request asks for, read from its method, path, query and headers: the
/// action of requests refused before the access check named it (bad signature, unknown key).
/// `None` for requests that name no operation the gateway serves.
pub fn guess_action(
    method: &http::Method,
    path: &str,
    query: Option<&str>,
    headers: &http::HeaderMap,
) -> Option<policy::Action> {
    use policy::Action as A;
    let params: Vec<String> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(name, _)| name.into_owned())
        .collect();
    let has = |name: &str| params.iter().any(|p| p == name);
    // a sub-resource the gateway does not serve (?acl, ?versioning, ?tagging, ...): no guess
    const KNOWN: [&str; 20] = [
        "location",
        "uploads",
        "uploadId",
        "partNumber",
        "delete",
        "list-type",
        "prefix",
        "delimiter",
        "marker",
        "max-keys",
        "continuation-token",
        "start-after",
        "fetch-owner",
        "encoding-type",
        "key-marker",
        "upload-id-marker",
        "max-uploads",
        "max-parts",
        "part-number-marker",
        "x-id",
    ];
    let unknown = params.iter().any(|p| {
        !KNOWN.contains(&p.as_str())
            && !p.to_ascii_lowercase().starts_with("x-amz-")
            && !p.starts_with("response-")
            && *p != "versionId"
    });
    if unknown {
        return None;
    }
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let bucket = parts.next().unwrap_or("");
    let key = parts.next().unwrap_or("");
    let copy = headers.contains_key("x-amz-copy-source");
    let m = method.as_str();
    if bucket.is_empty() {
        return (m == "GET").then_some(A::ListBuckets);
    }
    if key.is_empty() {
        return match m {
            "GET" if has("location") => Some(A::GetBucketLocation),
            "GET" if has("uploads") => Some(A::ListMultipartUploads),
            "GET" if query.is_some_and(|q| q.contains("list-type=2")) => Some(A::ListObjectsV2),
            "GET" => Some(A::ListObjects),
            "HEAD" => Some(A::HeadBucket),
            "PUT" => Some(A::CreateBucket),
            "DELETE" => Some(A::DeleteBucket),
            "POST" if has("delete") => Some(A::DeleteObjects),
            _ => None,
        };
    }
    match m {
        "GET" if has("uploadId") => Some(A::ListParts),
        "GET" => Some(A::GetObject),
        "HEAD" => Some(A::HeadObject),
        "PUT" if has("partNumber") && has("uploadId") && copy => Some(A::UploadPartCopy),
        "PUT" if has("partNumber") && has("uploadId") => Some(A::UploadPart),
        "PUT" if copy => Some(A::CopyObject),
        "PUT" => Some(A::PutObject),
        "DELETE" if has("uploadId") => Some(A::AbortMultipartUpload),
        "DELETE" => Some(A::DeleteObject),
        "POST" if has("uploads") => Some(A::CreateMultipartUpload),
        "POST" if has("uploadId") => Some(A::CompleteMultipartUpload),
        _ => None,
    }
}

/// The `<Code>` of an S3 error XML body (s3s renders errors as `<Error><Code>…</Code>…`).
pub fn error_code_of(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    let code = &text[start..start + len];
    (!code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| code.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_error_bodies() {
        let body = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code><Message>no such key: k</Message></Error>";
        assert_eq!(error_code_of(body).as_deref(), Some("NoSuchKey"));
        assert_eq!(error_code_of(b"<Error><Message>x</Message></Error>"), None);
        assert_eq!(error_code_of(b"<Code></Code>"), None);
        assert_eq!(error_code_of(b"<Code>a b</Code>"), None);
        assert_eq!(error_code_of(b"<Code>Unterminated"), None);
        assert_eq!(error_code_of(&[0xff, 0xfe]), None);
    }

    #[test]
    fn actions_are_read_from_the_request_line() {
        use http::{HeaderMap, Method};
        use policy::Action as A;
        let h = HeaderMap::new();
        let mut copy = HeaderMap::new();
        copy.insert("x-amz-copy-source", "/b/k".parse().unwrap());
        type Case<'a> = (Method, &'a str, Option<&'a str>, &'a HeaderMap, Option<A>);
        let cases: Vec<Case<'_>> = vec![
            (Method::GET, "/", None, &h, Some(A::ListBuckets)),
            (Method::PUT, "/b", None, &h, Some(A::CreateBucket)),
            (
                Method::GET,
                "/b",
                Some("list-type=2&prefix=a"),
                &h,
                Some(A::ListObjectsV2),
            ),
            (Method::GET, "/b", None, &h, Some(A::ListObjects)),
            (
                Method::GET,
                "/b",
                Some("location"),
                &h,
                Some(A::GetBucketLocation),
            ),
            (
                Method::POST,
                "/b",
                Some("delete"),
                &h,
                Some(A::DeleteObjects),
            ),
            (Method::GET, "/b/k/x", None, &h, Some(A::GetObject)),
            (Method::PUT, "/b/k", None, &h, Some(A::PutObject)),
            (Method::PUT, "/b/k", None, &copy, Some(A::CopyObject)),
            (
                Method::PUT,
                "/b/k",
                Some("partNumber=1&uploadId=u"),
                &h,
                Some(A::UploadPart),
            ),
            (
                Method::PUT,
                "/b/k",
                Some("partNumber=1&uploadId=u"),
                &copy,
                Some(A::UploadPartCopy),
            ),
            (
                Method::POST,
                "/b/k",
                Some("uploads"),
                &h,
                Some(A::CreateMultipartUpload),
            ),
            (
                Method::POST,
                "/b/k",
                Some("uploadId=u"),
                &h,
                Some(A::CompleteMultipartUpload),
            ),
            (
                Method::DELETE,
                "/b/k",
                Some("uploadId=u"),
                &h,
                Some(A::AbortMultipartUpload),
            ),
            (Method::DELETE, "/b/k", None, &h, Some(A::DeleteObject)),
            (
                Method::GET,
                "/b/k",
                Some("uploadId=u"),
                &h,
                Some(A::ListParts),
            ),
            (Method::PATCH, "/b/k", None, &h, None),
            (Method::POST, "/", None, &h, None),
            (Method::GET, "/b", Some("versioning"), &h, None),
            (Method::PUT, "/b/k", Some("tagging"), &h, None),
            (
                Method::GET,
                "/b/k",
                Some("X-Amz-Signature=x&response-content-type=a"),
                &h,
                Some(A::GetObject),
            ),
        ];
        for (m, p, q, hd, want) in cases {
            assert_eq!(guess_action(&m, p, q, hd), want, "{m} {p} {q:?}");
        }
    }
}
