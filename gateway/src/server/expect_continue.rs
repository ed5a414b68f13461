//! `Expect: 100-continue`, answered only once the request is allowed.
//!
//! hyper sends `100 Continue` the first time the request body is polled. The body of a request
//! that expects it is therefore kept out of reach ([`defer`]): s3s gets a [`Deferred`] body and the
//! request a [`ContinueGate`] in its extensions. Until the access check has allowed the request
//! nothing polls the real body, so a request refused by authentication (unknown key, bad
//! signature, anonymous) or by the access check gets its S3 error instead of `100 Continue`, and
//! a stranger cannot make the gateway read a large body it is about to refuse.
//!
//! Once the access check allows the request it calls [`open`]: the body is polled once, which
//! makes hyper send `100 Continue` at once (clients such as botocore wait only a second for it
//! and then send the body anyway), and a frame already there is kept for the handler. The body
//! is otherwise read when its reader first polls it: a POST Object form (signed in its body)
//! and a chunked body of unknown length (read to learn it) are read before the check.
//!
//! A response to a request whose body was never read says `Connection: close`
//! ([`ContinueGate::unread`]): hyper then closes the connection instead of waiting for a body
//! the client may or may not send.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::guard::TimedBody;

type ReqBody = TimedBody<hyper::body::Incoming>;
type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether the request head says `Expect: 100-continue`.
pub(super) fn expects_continue(h: &http::HeaderMap) -> bool {
    h.get(http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// The request with its body as s3s reads it, and the gate of a request expecting 100-continue
/// (also in its extensions, for the access check).
pub(super) fn defer(
    req: http::Request<ReqBody>,
) -> (http::Request<s3s::Body>, Option<ContinueGate>) {
    if !expects_continue(req.headers()) {
        return (req.map(s3s::Body::http_body), None);
    }
    let (mut parts, body) = req.into_parts();
    let gate = ContinueGate(Arc::new(Mutex::new(Slot::Unread(body))));
    parts.extensions.insert(gate.clone());
    let deferred = Deferred {
        gate: gate.clone(),
        body: None,
    };
    let req = http::Request::from_parts(parts, s3s::Body::http_body(deferred));
    (req, Some(gate))
}

/// Called by the access check when it allows a request: sends `100 Continue` now if the request
/// expects it (see the module doc); does nothing otherwise.
pub(crate) async fn open(extensions: &http::Extensions) {
    if let Some(gate) = extensions.get::<ContinueGate>() {
        gate.open().await;
    }
}

/// Where the body of a request expecting 100-continue waits for its reader.
#[derive(Clone)]
pub(crate) struct ContinueGate(Arc<Mutex<Slot>>);

enum Slot {
    /// nobody polled it yet
    Unread(ReqBody),
    /// polled once by [`open`] (hyper sent `100 Continue`)
    Opened(Primed),
    /// with its reader ([`Deferred`]), or being opened
    Taken,
}

impl ContinueGate {
    fn slot(&self) -> MutexGuard<'_, Slot> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the body was never polled (the client was not told to send it).
    pub(super) fn unread(&self) -> bool {
        matches!(*self.slot(), Slot::Unread(_))
    }

    async fn open(&self) {
        let was = std::mem::replace(&mut *self.slot(), Slot::Taken);
        let rest = match was {
            Slot::Unread(b) => b,
            other => {
                *self.slot() = other;
                return;
            }
        };
        let mut primed = Primed { first: None, rest };
        // one poll: hyper's connection task learns the body is wanted and sends the interim
        // response; a frame that is already there is kept for the reader
        std::future::poll_fn(|cx| {
            if let Poll::Ready(Some(f)) = Pin::new(&mut primed.rest).poll_frame(cx) {
                primed.first = Some(f);
            }
            Poll::Ready(())
        })
        .await;
        *self.slot() = Slot::Opened(primed);
    }

    /// The body for its reader (once).
    fn take(&self) -> Option<Primed> {
        let was = std::mem::replace(&mut *self.slot(), Slot::Taken);
        match was {
            Slot::Unread(rest) => Some(Primed { first: None, rest }),
            Slot::Opened(p) => Some(p),
            Slot::Taken => None,
        }
    }
}

/// The body s3s reads for a request expecting 100-continue: the gate's, taken at the first poll.
struct Deferred {
    gate: ContinueGate,
    body: Option<Primed>,
}

impl Body for Deferred {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.body.is_none() {
            this.body = this.gate.take();
        }
        match &mut this.body {
            Some(b) => Pin::new(b).poll_frame(cx),
            None => Poll::Ready(Some(Err("the request body was taken twice".into()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match (&self.body, &*self.gate.slot()) {
            (Some(b), _) | (None, Slot::Opened(b)) => b.is_end_stream(),
            (None, Slot::Unread(b)) => b.is_end_stream(),
            (None, Slot::Taken) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.body, &*self.gate.slot()) {
            (Some(b), _) | (None, Slot::Opened(b)) => b.size_hint(),
            (None, Slot::Unread(b)) => b.size_hint(),
            (None, Slot::Taken) => SizeHint::default(),
        }
    }
}

/// A request body whose first frame may already have been read (by [`ContinueGate::open`]).
struct Primed {
    first: Option<Result<Frame<Bytes>, BoxError>>,
    rest: ReqBody,
}

impl Body for Primed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if let Some(f) = this.first.take() {
            return Poll::Ready(Some(f));
        }
        Pin::new(&mut this.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let rest = self.rest.size_hint();
        let n = match &self.first {
            Some(Ok(f)) => f.data_ref().map_or(0, |d| d.len() as u64),
            _ => 0,
        };
        match rest.exact() {
            Some(e) => SizeHint::with_exact(e + n),
            None => {
                let mut h = SizeHint::new();
                h.set_lower(rest.lower() + n);
                if let Some(u) = rest.upper() {
                    h.set_upper(u + n);
                }
                h
            }
        }
    }
}
