//! Checks made on an S3 request before s3s sees it, and the body's progress bound.
//!
//! [`precheck`] refuses, from the request head alone and before any key lookup:
//! - legacy Signature Version 2 unless `limits.sigv2` is on (400 InvalidRequest, as AWS regions
//!   without SigV2 answer); when it is on, a SigV2 header request must carry a `Date` or
//!   `x-amz-date` within 15 minutes of the server clock (403 RequestTimeTooSkewed; s3s checks no
//!   clock for SigV2) and a SigV2 presigned URL may not expire more than 7 days ahead;
//! - SigV4 presigned URLs whose `X-Amz-Expires` is negative, not a number or over 604800 s
//!   (400 AuthorizationQueryParametersError, as AWS; s3s sets no maximum);
//! - access key ids longer than any key can be (403 InvalidAccessKeyId), so an attacker's
//!   oversized id never reaches a cache or a limiter.
//!
//! [`TimedBody`] cuts off a request body that delivers fewer than `body_min_bytes_per_sec` ×
//! window bytes in a window of `body_read_timeout_secs` (a client sending 1 byte/s would
//! otherwise hold a connection and a task forever).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, StatusCode, Uri};
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::config::Limits;

/// Longest access key id accepted: the policy store's bound (AWS: 16 to 128 characters).
pub use policy::store::MAX_ACCESS_KEY_ID_LEN;

/// Longest lifetime of a presigned URL (AWS: 7 days).
pub const MAX_PRESIGN_SECS: i64 = 604_800;

/// Largest distance between a SigV2 request's date and the server clock.
const MAX_SKEW_SECS: i64 = 900;

/// A request refused before s3s: status, S3 error code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status
    pub status: StatusCode,
    /// S3 error code
    pub code: &'static str,
    /// message for the client
    pub message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }

    /// The S3 XML error response (the pipeline adds the request id).
    pub fn response(&self) -> http::Response<s3s::Body> {
        error_response(self.status, self.code, &self.message)
    }
}

/// An S3 XML error response with `code` and `message`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> http::Response<s3s::Body> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code><Message>{}</Message></Error>",
        xml_escape(code),
        xml_escape(message)
    );
    let mut r = http::Response::new(s3s::Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/xml"),
    );
    r
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The decoded query parameters (empty when there is no query).
fn query_pairs(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// How a request is signed, as far as the head tells.
#[derive(Debug, PartialEq, Eq)]
enum Signing<'a> {
    /// `Authorization: AWS id:signature`
    V2Header { access_key: &'a str },
    /// `?AWSAccessKeyId=..&Expires=..&Signature=..`
    V2Query,
    /// `Authorization: AWS4-HMAC-SHA256 Credential=id/...`
    V4Header { access_key: &'a str },
    /// `?X-Amz-Signature=..`
    V4Query,
    /// unsigned (or a POST form, signed in its body)
    None,
}

fn signing<'a>(h: &'a HeaderMap, q: &[(String, String)]) -> Signing<'a> {
    if let Some(auth) = header(h, "authorization") {
        if let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256") {
            let access_key = rest
                .split(',')
                .find_map(|p| p.trim().strip_prefix("Credential="))
                .and_then(|c| c.split('/').next())
                .unwrap_or("");
            return Signing::V4Header { access_key };
        }
        if let Some(rest) = auth.strip_prefix("AWS ") {
            let access_key = rest.rsplit_once(':').map_or(rest, |(id, _)| id);
            return Signing::V2Header { access_key };
        }
    }
    if param(q, "X-Amz-Signature").is_some() || param(q, "X-Amz-Credential").is_some() {
        return Signing::V4Query;
    }
    if param(q, "Signature").is_some() && param(q, "AWSAccessKeyId").is_some() {
        return Signing::V2Query;
    }
    Signing::None
}

const SIGV2_REFUSED: &str = "The authorization mechanism you have provided is not supported. \
     Please use AWS4-HMAC-SHA256 (Signature Version 2 is turned off on this gateway).";

/// The checks of the module doc, at time `now`.
pub fn precheck(
    h: &HeaderMap,
    uri: &Uri,
    limits: &Limits,
    now: time::OffsetDateTime,
) -> Result<(), Refusal> {
    let q = query_pairs(uri);
    let sig = signing(h, &q);
    let access_key = match &sig {
        Signing::V2Header { access_key } | Signing::V4Header { access_key } => Some(*access_key),
        Signing::V4Query => param(&q, "X-Amz-Credential").and_then(|c| c.split('/').next()),
        Signing::V2Query => param(&q, "AWSAccessKeyId"),
        Signing::None => None,
    };
    if access_key.is_some_and(|k| k.len() > MAX_ACCESS_KEY_ID_LEN) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        ));
    }
    match sig {
        Signing::V2Header { .. } | Signing::V2Query if !limits.sigv2() => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            SIGV2_REFUSED,
        )),
        Signing::V2Header { .. } => check_v2_date(h, now),
        Signing::V2Query => check_v2_expires(&q, now),
        Signing::V4Query => check_v4_expires(&q),
        Signing::V4Header { .. } | Signing::None => Ok(()),
    }
}

fn check_v2_date(h: &HeaderMap, now: time::OffsetDateTime) -> Result<(), Refusal> {
    let raw = header(h, "x-amz-date").or_else(|| header(h, "date"));
    let parsed = raw.and_then(|d| {
        time::OffsetDateTime::parse(d.trim(), &time::format_description::well_known::Rfc2822)
            .ok()
            .or_else(|| {
                s3s::dto::Timestamp::parse(s3s::dto::TimestampFormat::HttpDate, d.trim())
                    .ok()
                    .map(time::OffsetDateTime::from)
            })
    });
    let Some(date) = parsed else {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "AWS authentication requires a valid Date or x-amz-date header",
        ));
    };
    if (now - date).whole_seconds().abs() > MAX_SKEW_SECS {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            "RequestTimeTooSkewed",
            "The difference between the request time and the current time is too large.",
        ));
    }
    Ok(())
}

fn check_v2_expires(q: &[(String, String)], now: time::OffsetDateTime) -> Result<(), Refusal> {
    let expires = param(q, "Expires").and_then(|e| e.parse::<i64>().ok());
    match expires {
        Some(e) if e - now.unix_timestamp() <= MAX_PRESIGN_SECS => Ok(()),
        Some(_) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "AuthorizationQueryParametersError",
            "Expires must be less than a week (in seconds) that is 604800 from now",
        )),
        None => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "AuthorizationQueryParametersError",
            "Expires must be a number of seconds since the epoch",
        )),
    }
}

fn check_v4_expires(q: &[(String, String)]) -> Result<(), Refusal> {
    let Some(raw) = param(q, "X-Amz-Expires") else {
        return Ok(()); // s3s answers the missing parameter itself
    };
    match raw.trim().parse::<i64>() {
        Ok(n) if n < 0 => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "AuthorizationQueryParametersError",
            "X-Amz-Expires must be non-negative",
        )),
        Ok(n) if n > MAX_PRESIGN_SECS => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "AuthorizationQueryParametersError",
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        )),
        Ok(_) => Ok(()),
        Err(_) => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "AuthorizationQueryParametersError",
            "X-Amz-Expires should be a number",
        )),
    }
}

/// The body bound: `min_bytes` must arrive within every `window`.
#[derive(Debug, Clone, Copy)]
pub struct BodyRate {
    /// window length
    pub window: Duration,
    /// bytes required per window
    pub min_bytes: u64,
}

impl BodyRate {
    /// From the `[limits]` settings.
    pub fn of(l: &Limits) -> BodyRate {
        BodyRate {
            window: Duration::from_secs(l.body_read_timeout_secs()),
            min_bytes: l
                .body_min_bytes_per_sec()
                .saturating_mul(l.body_read_timeout_secs()),
        }
    }
}

/// The error a [`TimedBody`] ends with.
#[derive(Debug, thiserror::Error)]
#[error("request body made too little progress")]
pub struct BodyTimedOut;

/// A request body cut off when it makes too little progress (see the module doc); sets
/// `timed_out` so the pipeline can answer 400 RequestTimeout.
pub struct TimedBody<B> {
    inner: B,
    rate: BodyRate,
    got: u64,
    deadline: Pin<Box<Sleep>>,
    timed_out: Arc<AtomicBool>,
    done: bool,
}

impl<B> TimedBody<B> {
    /// Wraps `inner`; the first window starts now.
    pub fn new(inner: B, rate: BodyRate, timed_out: Arc<AtomicBool>) -> TimedBody<B> {
        TimedBody {
            inner,
            rate,
            got: 0,
            deadline: Box::pin(tokio::time::sleep(rate.window)),
            timed_out,
            done: false,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(f))) => {
                if let Some(d) = f.data_ref() {
                    this.got = this.got.saturating_add(d.len() as u64);
                }
                return Poll::Ready(Some(Ok(f)));
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.done = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        while this.deadline.as_mut().poll(cx).is_ready() {
            if this.got < this.rate.min_bytes {
                this.done = true;
                this.timed_out.store(true, Ordering::Relaxed);
                return Poll::Ready(Some(Err(Box::new(BodyTimedOut))));
            }
            this.got = 0;
            let next = Instant::now() + this.rate.window;
            this.deadline.as_mut().reset(next);
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(auth: Option<&str>, uri: &str) -> (HeaderMap, Uri) {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert("authorization", a.parse().unwrap());
        }
        (h, uri.parse().unwrap())
    }

    fn now() -> time::OffsetDateTime {
        time::OffsetDateTime::now_utc()
    }

    #[test]
    fn sigv2_is_refused_by_default() {
        let l = Limits::default();
        let (h, u) = req(Some("AWS AKID:c2lnbmF0dXJl"), "/b/k");
        let r = precheck(&h, &u, &l, now()).unwrap_err();
        assert_eq!((r.status.as_u16(), r.code), (400, "InvalidRequest"));
        let (h, u) = req(None, "/b/k?AWSAccessKeyId=AKID&Expires=1&Signature=x");
        assert_eq!(
            precheck(&h, &u, &l, now()).unwrap_err().code,
            "InvalidRequest"
        );
    }

    #[test]
    fn sigv2_when_on_checks_the_clock_and_the_presign_cap() {
        let l = Limits {
            sigv2: Some(true),
            ..Limits::default()
        };
        let (mut h, u) = req(Some("AWS AKID:c2ln"), "/b/k");
        h.insert("date", "Mon, 01 Jan 2001 00:00:00 GMT".parse().unwrap());
        assert_eq!(
            precheck(&h, &u, &l, now()).unwrap_err().code,
            "RequestTimeTooSkewed"
        );
        h.insert("date", "not a date at all".parse().unwrap());
        assert_eq!(
            precheck(&h, &u, &l, now()).unwrap_err().code,
            "AccessDenied"
        );
        let fresh = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap();
        h.insert("date", fresh.parse().unwrap());
        assert_eq!(precheck(&h, &u, &l, now()), Ok(()));
        let far = now().unix_timestamp() + MAX_PRESIGN_SECS + 100;
        let (h, u) = req(
            None,
            &format!("/b/k?AWSAccessKeyId=AKID&Expires={far}&Signature=x"),
        );
        assert_eq!(
            precheck(&h, &u, &l, now()).unwrap_err().code,
            "AuthorizationQueryParametersError"
        );
        let near = now().unix_timestamp() + 3600;
        let (h, u) = req(
            None,
            &format!("/b/k?AWSAccessKeyId=AKID&Expires={near}&Signature=x"),
        );
        assert_eq!(precheck(&h, &u, &l, now()), Ok(()));
    }

    #[test]
    fn v4_presign_lifetime_is_capped() {
        let l = Limits::default();
        let base = "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=00";
        for (exp, ok) in [
            ("604800", true),
            ("1", true),
            ("604801", false),
            ("999999999", false),
            ("-1", false),
            ("abc", false),
        ] {
            let (h, u) = req(None, &format!("{base}&X-Amz-Expires={exp}"));
            let r = precheck(&h, &u, &l, now());
            assert_eq!(r.is_ok(), ok, "{exp}: {r:?}");
            if let Err(r) = r {
                assert_eq!(
                    (r.status.as_u16(), r.code),
                    (400, "AuthorizationQueryParametersError")
                );
            }
        }
    }

    #[test]
    fn oversized_access_key_ids_are_refused_before_lookup() {
        let l = Limits::default();
        let long = "A".repeat(MAX_ACCESS_KEY_ID_LEN + 1);
        let (h, u) = req(
            Some(&format!(
                "AWS4-HMAC-SHA256 Credential={long}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"
            )),
            "/b",
        );
        let r = precheck(&h, &u, &l, now()).unwrap_err();
        assert_eq!((r.status.as_u16(), r.code), (403, "InvalidAccessKeyId"));
        let ok = "A".repeat(MAX_ACCESS_KEY_ID_LEN);
        let (h, u) = req(
            Some(&format!(
                "AWS4-HMAC-SHA256 Credential={ok}/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"
            )),
            "/b",
        );
        assert_eq!(precheck(&h, &u, &l, now()), Ok(()));
        let (h, u) = req(
            None,
            &format!("/b?X-Amz-Credential={long}%2Fx&X-Amz-Signature=0"),
        );
        assert_eq!(
            precheck(&h, &u, &l, now()).unwrap_err().code,
            "InvalidAccessKeyId"
        );
    }

    #[test]
    fn error_response_is_escaped_xml() {
        let r = error_response(StatusCode::BAD_REQUEST, "InvalidRequest", "a<b & c");
        assert_eq!(r.status(), 400);
        let body = r.body().bytes().unwrap();
        assert!(
            std::str::from_utf8(&body)
                .unwrap()
                .contains("<Message>a&lt;b &amp; c</Message>")
        );
    }

    #[tokio::test]
    async fn a_trickling_body_is_cut_off_and_a_steady_one_is_not() {
        use http_body_util::{BodyExt, StreamBody};
        let rate = BodyRate {
            window: Duration::from_millis(300),
            min_bytes: 100,
        };
        // one byte every 50 ms: too little by the end of the first window
        let trickle = futures::stream::unfold(0u32, |n| async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            (n < 100).then(|| {
                (
                    Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"x"))),
                    n + 1,
                )
            })
        });
        let flag = Arc::new(AtomicBool::new(false));
        let body = TimedBody::new(StreamBody::new(Box::pin(trickle)), rate, flag.clone());
        let err = body.collect().await.unwrap_err();
        assert!(err.to_string().contains("too little progress"));
        assert!(flag.load(Ordering::Relaxed));
        // 100 bytes every 100 ms for a second: every window gets enough
        let steady = futures::stream::unfold(0u32, |n| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            (n < 10).then(|| {
                (
                    Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![0u8; 100]))),
                    n + 1,
                )
            })
        });
        let flag = Arc::new(AtomicBool::new(false));
        let body = TimedBody::new(StreamBody::new(Box::pin(steady)), rate, flag.clone());
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(got.len(), 1000);
        assert!(!flag.load(Ordering::Relaxed));
    }
}
