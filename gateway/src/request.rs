//! The one per-request context of an S3 request ([`RequestCtx`]): made by the request pipeline
//! (`server::request`) when the request arrives and put into the request extensions once; the
//! access check fills in what it learns (operation, caller, bucket, key), the handlers record
//! the audit event before a change becomes visible through it, and the errors they answer leave
//! their code here. The pipeline reads it back when the response head is ready (metrics, log,
//! the audit event of reads and refusals).
//!
//! Everything the access check learns is written into the audit event as it is learned, so an
//! event recorded at any point (before a change, at the end, or by the drop-to-499 guard when the
//! client goes away) names what was known then.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use audit::RequestAudit;
use policy::{Action, Identity};

/// What the access check learned about a request (read by the request logger, metrics and the
/// audit recorder).
#[derive(Clone, Debug, Default)]
pub struct OpInfo {
    /// the operation (None: an operation the gateway does not serve, refused)
    pub action: Option<Action>,
    /// the s3s operation name (`PostObject` for a form upload whose action is PutObject)
    pub op_name: Option<String>,
    /// caller's access key id
    pub access_key: Option<String>,
    /// authenticated principal (None until the key was looked up, or when it is unknown)
    pub principal: Option<String>,
    /// the principal's tenant
    pub tenant: Option<String>,
    /// bucket named by the request
    pub bucket: Option<String>,
    /// object key named by the request (as given)
    pub key: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    /// filled by the access check (None: the request was refused before it)
    op: Option<OpInfo>,
    /// the S3 error code the gateway answered with, captured where the error was made
    error_code: Option<String>,
}

#[derive(Debug)]
struct Inner {
    id: String,
    peer: Option<SocketAddr>,
    /// the operation read off the request line before authentication (see
    /// `audit::guess_action`): the action of requests refused before the access check
    requested: Option<Action>,
    audit: Option<RequestAudit>,
    state: Mutex<State>,
}

/// The context of one S3 request. Cheap to clone (one shared state).
#[derive(Clone, Debug)]
pub struct RequestCtx(Arc<Inner>);

impl RequestCtx {
    /// The context of a request with id `id` from `peer`; `requested` is the guessed action,
    /// `audit` the scope of its event (None only for a gateway without a ledger).
    pub fn new(
        id: String,
        peer: Option<SocketAddr>,
        requested: Option<Action>,
        audit: Option<RequestAudit>,
    ) -> RequestCtx {
        if let (Some(a), Some(r)) = (&audit, requested) {
            a.set_action(r.s3_name());
        }
        RequestCtx(Arc::new(Inner {
            id,
            peer,
            requested,
            audit,
            state: Mutex::new(State::default()),
        }))
    }

    /// The context in these request extensions (None when the s3s service runs without the
    /// request pipeline).
    pub fn of(ext: &http::Extensions) -> Option<RequestCtx> {
        ext.get::<RequestCtx>().cloned()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // plain data: a panic while holding the lock cannot leave it inconsistent
        self.0
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The request id (also `x-amz-request-id` and the audit event's id).
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The client address as the listener saw it.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.0.peer
    }

    /// The audit scope of the request's event.
    pub fn audit(&self) -> Option<&RequestAudit> {
        self.0.audit.as_ref()
    }

    /// The action of the request: the access check's, else the one guessed from the request line.
    pub fn action(&self) -> Option<Action> {
        match &self.state().op {
            Some(i) => i.action,
            None => self.0.requested,
        }
    }

    /// What the access check recorded, if the request got that far.
    pub fn op(&self) -> Option<OpInfo> {
        self.state().op.clone()
    }

    /// Records what the access check learned (operation, key id, bucket, key).
    pub(crate) fn set_op(&self, info: OpInfo) {
        if let Some(a) = self.audit() {
            match (info.action, &info.op_name) {
                (Some(x), _) => a.set_action(x.s3_name()),
                (None, Some(op)) => a.set_action(op),
                (None, None) => {}
            }
            a.set_principal(info.principal.clone(), info.tenant.clone());
            a.set_target(info.bucket.clone(), info.key.clone());
        }
        self.state().op = Some(info);
    }

    /// Records the object key of a request that names it in its body (a POST form upload).
    pub(crate) fn set_key(&self, key: &str) {
        let mut st = self.state();
        let info = st.op.get_or_insert_with(OpInfo::default);
        info.key = Some(key.to_owned());
        if let Some(a) = self.audit() {
            a.set_target(info.bucket.clone(), info.key.clone());
        }
    }

    /// Records the authenticated caller.
    pub(crate) fn set_identity(&self, identity: &Identity) {
        let mut st = self.state();
        let info = st.op.get_or_insert_with(OpInfo::default);
        info.principal = Some(identity.principal.clone());
        info.tenant = Some(identity.tenant.clone());
        if let Some(a) = self.audit() {
            a.set_principal(info.principal.clone(), info.tenant.clone());
        }
    }

    /// Records the data key version used to seal or open the object.
    pub(crate) fn set_key_version(&self, v: u32) {
        if let Some(a) = self.audit() {
            a.set_key_version(v);
        }
    }

    /// Whether the request's body is data the client sends (PutObject, UploadPart): their
    /// events carry the plaintext size as `bytes_in`.
    pub fn receives_body(&self) -> bool {
        self.state()
            .op
            .as_ref()
            .and_then(|i| i.action)
            .is_some_and(|a| matches!(a, Action::PutObject | Action::UploadPart))
    }

    /// An error the gateway answers: its code is kept for the audit event, metrics and log, and
    /// its body names this request's id (as on AWS).
    pub fn note_error(&self, mut e: s3s::S3Error) -> s3s::S3Error {
        e.set_request_id(self.0.id.clone());
        self.state().error_code = Some(e.code().as_str().to_owned());
        e
    }

    /// The code of the error the gateway answered with (None: no error, or one s3s raised
    /// itself before or after the gateway's code ran).
    pub fn error_code(&self) -> Option<String> {
        self.state().error_code.clone()
    }
}

/// Keeps an error's code and request id in the request's context, if there is one.
pub(crate) fn noted(ctx: Option<&RequestCtx>, e: s3s::S3Error) -> s3s::S3Error {
    match ctx {
        Some(c) => c.note_error(e),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_leave_their_code_and_get_the_request_id() {
        let ctx = RequestCtx::new("ABC".into(), None, Some(Action::GetObject), None);
        assert_eq!(ctx.action(), Some(Action::GetObject));
        assert_eq!(ctx.error_code(), None);
        let e = ctx.note_error(s3s::s3_error!(NoSuchKey));
        assert_eq!(e.request_id(), Some("ABC"));
        assert_eq!(ctx.error_code().as_deref(), Some("NoSuchKey"));
    }

    #[test]
    fn the_access_check_overrides_the_guess() {
        let ctx = RequestCtx::new("X".into(), None, Some(Action::GetObject), None);
        ctx.set_op(OpInfo {
            action: Some(Action::HeadObject),
            ..OpInfo::default()
        });
        assert_eq!(ctx.action(), Some(Action::HeadObject));
        ctx.set_key("k");
        assert_eq!(ctx.op().and_then(|i| i.key).as_deref(), Some("k"));
        assert!(!ctx.receives_body());
    }
}
