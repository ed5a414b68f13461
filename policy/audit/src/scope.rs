//! The per-request audit scope ([`RequestAudit`]) shared by the S3 front end and the admin API:
//! it collects the fields of the request's event while the request is served, records the
//! event either before a change is made visible ([`RequestAudit::record_before_change`],
//! fail closed) or at the end of the request ([`RequestAudit::finish`]), and guarantees one
//! event per request (plus one error event when a change failed after its event was recorded).

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::error::AuditResult;
use crate::event::{AuditEvent, EventKind, Outcome};
use crate::{Ledger, Receipt};

/// A fresh request id: 16 upper-case hex characters (like S3's `x-amz-request-id`), the
/// nanoseconds since the Unix epoch as MinIO forms its own, strictly increasing within the
/// process (one more than the last when the clock has not moved on or went back). So the ids of
/// one instance never repeat, and each new audit event's id sorts after nearly every earlier
/// one: the ledger's index on `request_id` grows at its end instead of having a random page
/// written per event (docs/PERFORMANCE.md, session 16). The S3 listener and the admin API
/// both use it, so one audit table holds one shape of id. Two instances on one PostgreSQL
/// database could give the same id only to requests of the same nanosecond.
pub fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let next = |last: u64| now.max(last.saturating_add(1));
    let last = match LAST.fetch_update(Relaxed, Relaxed, |last| Some(next(last))) {
        Ok(last) | Err(last) => last,
    };
    format!("{:016X}", next(last))
}

/// The outcome of a request from its final HTTP status and error code:
/// `denied` for 401/403 (authentication, authorisation, quorum), 429 and 503 `SlowDown`
/// (rate limit); `error` for any other status ≥ 400; `success` below 400.
pub fn outcome_for(status: u16, error_code: Option<&str>) -> Outcome {
    match status {
        401 | 403 | 429 => Outcome::Denied,
        503 if error_code == Some("SlowDown") => Outcome::Denied,
        s if s >= 400 => Outcome::Error,
        _ => Outcome::Success,
    }
}

struct State {
    event: AuditEvent,
    /// receipt of the event recorded by `record_before_change`
    recorded: Option<Receipt>,
    /// `finish` ran (later calls record nothing)
    finished: bool,
}

struct Scope {
    ledger: Ledger,
    started: Instant,
    state: Mutex<State>,
}

/// The audit event of one request under construction. Cheap to clone (one shared state); put
/// it in the request extensions and fill it in as the request is served.
#[derive(Clone)]
pub struct RequestAudit {
    inner: Arc<Scope>,
}

impl fmt::Debug for RequestAudit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state();
        f.debug_struct("RequestAudit")
            .field("request_id", &st.event.request_id)
            .field("action", &st.event.action)
            .field("recorded", &st.recorded.is_some())
            .finish_non_exhaustive()
    }
}

impl RequestAudit {
    /// Starts the scope of one request now (`time_ms` = now, duration measured from now).
    /// `source` is the client address as seen by the listener (the ledger applies the
    /// configured source mode).
    pub fn new(
        ledger: Ledger,
        kind: EventKind,
        request_id: String,
        source: Option<String>,
    ) -> RequestAudit {
        let event = AuditEvent {
            time_ms: crate::now_ms(),
            request_id,
            kind,
            principal: None,
            tenant: None,
            action: String::from("Unknown"),
            bucket: None,
            key: None,
            outcome: Outcome::Success,
            status: 0,
            error_code: None,
            bytes_in: 0,
            bytes_out: 0,
            key_version: None,
            source,
            duration_us: 0,
        };
        RequestAudit {
            inner: Arc::new(Scope {
                ledger,
                started: Instant::now(),
                state: Mutex::new(State {
                    event,
                    recorded: None,
                    finished: false,
                }),
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // a panic while holding this lock cannot leave the plain data inconsistent
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The ledger this scope records into.
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// The request id of the event.
    pub fn request_id(&self) -> String {
        self.state().event.request_id.clone()
    }

    /// Names the action (`PutObject`, `admin.CreateAccessKey`, ...).
    pub fn set_action(&self, action: &str) {
        self.state().event.action = action.to_owned();
    }

    /// The authenticated principal and its tenant.
    pub fn set_principal(&self, principal: Option<String>, tenant: Option<String>) {
        let mut st = self.state();
        st.event.principal = principal;
        st.event.tenant = tenant;
    }

    /// The bucket and object key named by the request.
    pub fn set_target(&self, bucket: Option<String>, key: Option<String>) {
        let mut st = self.state();
        st.event.bucket = bucket;
        st.event.key = key;
    }

    /// The data key version used to seal or open the object.
    pub fn set_key_version(&self, v: u32) {
        self.state().event.key_version = Some(v);
    }

    /// Adds received body bytes.
    pub fn add_bytes_in(&self, n: u64) {
        let mut st = self.state();
        st.event.bytes_in = st.event.bytes_in.saturating_add(n);
    }

    /// Whether an event of this request is already in the ledger.
    pub fn recorded(&self) -> bool {
        self.state().recorded.is_some()
    }

    /// Records the event now as a success with `status`, BEFORE the change is made visible.
    /// Called twice, the second call returns the first receipt (DeleteObjects records once).
    ///
    /// `Err`: the event is not recorded; nothing may change and the caller answers 503.
    pub async fn record_before_change(&self, status: u16) -> AuditResult<Receipt> {
        let event = match self.success_event(status) {
            Ok(e) => e,
            Err(r) => return Ok(r),
        };
        let receipt = self.inner.ledger.append(event).await?;
        self.state().recorded = Some(receipt.clone());
        Ok(receipt)
    }

    /// The request's event as a success with `status` (as recorded before a change), or the
    /// receipt of the one already recorded.
    fn success_event(&self, status: u16) -> Result<AuditEvent, Receipt> {
        let mut st = self.state();
        if let Some(r) = &st.recorded {
            return Err(r.clone());
        }
        st.event.status = status;
        st.event.outcome = outcome_for(status, None);
        st.event.error_code = None;
        st.event.duration_us = elapsed_us(self.inner.started);
        Ok(st.event.clone())
    }

    /// The event [`RequestAudit::record_before_change`] would append, for a caller that commits
    /// it itself together with its change ([`crate::ChainAppender`], in the same transaction)
    /// and then calls [`RequestAudit::set_recorded`]. `None` when the event is already recorded
    /// or the ledger cannot share a transaction ([`crate::Ledger::shares_transactions`]): then
    /// `record_before_change` it is.
    pub fn event_for_change(&self, status: u16) -> Option<AuditEvent> {
        if !self.shares_transaction() {
            return None;
        }
        let event = self.success_event(status).ok()?;
        Some(self.inner.ledger.prepare(event))
    }

    /// Whether [`RequestAudit::event_for_change`] has an event to give: none recorded yet, and
    /// a ledger that can share a transaction.
    pub fn shares_transaction(&self) -> bool {
        self.inner.ledger.shares_transactions() && !self.recorded()
    }

    /// The event of [`RequestAudit::event_for_change`] is committed, at `receipt`.
    pub fn set_recorded(&self, receipt: Receipt) {
        self.inner.ledger.note_appended(1);
        self.state().recorded = Some(receipt);
    }

    /// At the end of the request: records the outcome (from `status` and `error_code`) unless
    /// [`RequestAudit::record_before_change`] already did. If it did and `status` is an error
    /// (the change failed after its event was recorded), appends a second event with the same
    /// request id carrying the error. Later calls record nothing (`Ok(None)`).
    pub async fn finish(
        &self,
        status: u16,
        error_code: Option<String>,
        bytes_out: u64,
    ) -> AuditResult<Option<Receipt>> {
        match self.final_event(status, error_code, bytes_out) {
            Some(event) => self.inner.ledger.append(event).await.map(Some),
            None => Ok(None),
        }
    }

    /// [`RequestAudit::finish`] for a read: the event is queued for the ledger's next commit
    /// and the answer does not wait for it ([`crate::Ledger::enqueue`]). `Err`: the ledger
    /// cannot take events now; the read is refused under the fail-closed read policy.
    pub async fn finish_read(
        &self,
        status: u16,
        error_code: Option<String>,
        bytes_out: u64,
    ) -> AuditResult<()> {
        match self.final_event(status, error_code, bytes_out) {
            Some(event) => self.inner.ledger.enqueue(event).await,
            None => Ok(()),
        }
    }

    /// The request's last event, once: `None` when it was already finished, or recorded before
    /// its change and the change succeeded.
    fn final_event(
        &self,
        status: u16,
        error_code: Option<String>,
        bytes_out: u64,
    ) -> Option<AuditEvent> {
        let mut st = self.state();
        if st.finished {
            return None;
        }
        st.finished = true;
        if st.recorded.is_some() && status < 400 {
            return None;
        }
        st.event.outcome = outcome_for(status, error_code.as_deref());
        st.event.status = status;
        st.event.error_code = error_code;
        st.event.bytes_out = bytes_out;
        st.event.duration_us = elapsed_us(self.inner.started);
        Some(st.event.clone())
    }
}

/// Status recorded for a request whose client went away before the answer (nginx's convention).
pub const CLIENT_CLOSED: u16 = 499;

/// The drop-to-499 guard of a request, shared by the S3 front end and the admin API: if the
/// request's future is dropped before it was answered (the client closed the connection), the
/// guard still records the request's event, as [`CLIENT_CLOSED`] `ClientClosedRequest`, from a
/// task of its own. [`AbandonGuard::disarm`] once the request is answered.
#[must_use = "the guard records the event when dropped; disarm it once the request is answered"]
pub struct AbandonGuard(Option<RequestAudit>);

impl AbandonGuard {
    /// Guards the event of `audit` (None: nothing to record).
    pub fn new(audit: Option<RequestAudit>) -> AbandonGuard {
        AbandonGuard(audit)
    }

    /// The request was answered: dropping the guard records nothing.
    pub fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        let Some(a) = self.0.take() else { return };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::error!(request_id = %a.request_id(), "request abandoned outside a runtime: its audit event is lost");
            return;
        };
        rt.spawn(async move {
            if let Err(e) = a
                .finish(CLIENT_CLOSED, Some("ClientClosedRequest".into()), 0)
                .await
            {
                tracing::error!(error = %e, request_id = %a.request_id(), "audit event of an abandoned request not recorded");
            }
        });
    }
}

fn elapsed_us(t0: Instant) -> u64 {
    u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes() {
        assert_eq!(outcome_for(200, None), Outcome::Success);
        assert_eq!(outcome_for(304, None), Outcome::Success);
        assert_eq!(outcome_for(403, Some("AccessDenied")), Outcome::Denied);
        assert_eq!(outcome_for(401, None), Outcome::Denied);
        assert_eq!(outcome_for(429, None), Outcome::Denied);
        assert_eq!(outcome_for(503, Some("SlowDown")), Outcome::Denied);
        assert_eq!(outcome_for(503, Some("ServiceUnavailable")), Outcome::Error);
        assert_eq!(outcome_for(404, Some("NoSuchKey")), Outcome::Error);
        assert_eq!(outcome_for(500, None), Outcome::Error);
    }

    async fn ledger(dir: &std::path::Path) -> Ledger {
        let url = format!("sqlite://{}", dir.join("a.db").display());
        let pool = crate::open_pool(&url, true).await.expect("pool");
        Ledger::open(pool, crate::LedgerConfig::default())
            .await
            .expect("ledger")
    }

    #[tokio::test]
    async fn one_event_per_request_and_an_error_event_after_a_failed_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = ledger(dir.path()).await;

        // a read: recorded at finish, with the fields set on the way
        let a = RequestAudit::new(
            ledger.clone(),
            EventKind::S3,
            "r1".into(),
            Some("10.0.0.1".into()),
        );
        a.set_action("GetObject");
        a.set_principal(Some("alice".into()), Some("t1".into()));
        a.set_target(Some("b".into()), Some("k".into()));
        a.set_key_version(3);
        assert!(!a.recorded());
        let r = a
            .finish(200, None, 42)
            .await
            .expect("finish")
            .expect("receipt");
        assert_eq!(r.seq, 1);
        assert_eq!(a.finish(200, None, 42).await.expect("again"), None);

        // a change: recorded before, finish adds nothing on success
        let b = RequestAudit::new(ledger.clone(), EventKind::S3, "r2".into(), None);
        b.set_action("PutObject");
        b.add_bytes_in(5);
        b.add_bytes_in(6);
        let r2 = b.record_before_change(200).await.expect("record");
        assert_eq!(r2.seq, 2);
        assert_eq!(b.record_before_change(200).await.expect("same"), r2);
        assert!(b.recorded());
        assert_eq!(b.finish(200, None, 0).await.expect("finish"), None);

        // a change that failed after its event: a second event with the error
        let c = RequestAudit::new(ledger.clone(), EventKind::Admin, "r3".into(), None);
        c.set_action("admin.CreateAccessKey");
        c.record_before_change(200).await.expect("record");
        let r3 = c
            .finish(500, Some("InternalError".into()), 0)
            .await
            .expect("finish")
            .expect("receipt");
        assert_eq!(r3.seq, 4);

        let e1 = ledger.get(1).await.expect("get").expect("e1");
        assert_eq!(
            (
                e1.action.as_str(),
                e1.principal.as_deref(),
                e1.tenant.as_deref()
            ),
            ("GetObject", Some("alice"), Some("t1"))
        );
        assert_eq!(
            (e1.bucket.as_deref(), e1.key.as_deref()),
            (Some("b"), Some("k"))
        );
        assert_eq!(
            (e1.bytes_out, e1.key_version, e1.status),
            (42, Some(3), 200)
        );
        assert_eq!(e1.source.as_deref(), Some("10.0.0.1"));
        let e2 = ledger.get(2).await.expect("get").expect("e2");
        assert_eq!(
            (e2.request_id.as_str(), e2.bytes_in, e2.outcome),
            ("r2", 11, Outcome::Success)
        );
        let e3 = ledger.get(3).await.expect("get").expect("e3");
        let e4 = ledger.get(4).await.expect("get").expect("e4");
        assert_eq!(
            (e3.request_id.as_str(), e3.outcome),
            ("r3", Outcome::Success)
        );
        assert_eq!(
            (e4.request_id.as_str(), e4.outcome, e4.status),
            ("r3", Outcome::Error, 500)
        );
        assert_eq!(e4.error_code.as_deref(), Some("InternalError"));
        assert_eq!(ledger.head().await.expect("head").seq, 4);
    }

    #[tokio::test]
    async fn a_failed_append_is_an_error_and_leaves_nothing_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = ledger(dir.path()).await;
        sqlx::query(
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit store read-only'); END",
        )
        .execute(ledger.pool())
        .await
        .expect("trigger");
        let a = RequestAudit::new(ledger.clone(), EventKind::S3, "r1".into(), None);
        a.set_action("PutObject");
        assert!(a.record_before_change(200).await.is_err());
        assert!(!a.recorded());
        assert!(
            a.finish(503, Some("ServiceUnavailable".into()), 0)
                .await
                .is_err()
        );
        assert_eq!(ledger.stats().snapshot().failures, 2);
        assert_eq!(ledger.head().await.expect("head").seq, 0);
    }

    #[test]
    fn request_ids_are_hex_and_increase_across_threads() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let threads: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..2000).map(|_| new_request_id()).collect::<Vec<_>>()))
            .collect();
        let mut all = Vec::new();
        for t in threads {
            let ids = t.join().unwrap();
            // each thread's ids increase (fixed width, so as strings too)
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
            all.extend(ids);
        }
        for id in &all {
            assert_eq!(id.len(), 16, "{id}");
            assert!(
                id.bytes()
                    .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)),
                "{id}"
            );
            // the time of the request, in nanoseconds
            assert!(
                u128::from(u64::from_str_radix(id, 16).unwrap()) >= before,
                "{id}"
            );
        }
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "no id given twice");
    }
}
