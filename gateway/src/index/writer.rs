//! Group commit of the hot index writes (`put_object`, `delete_version`, `gc_done`).
//!
//! Callers send a [`Job`] (the write, with owned data, and a oneshot for the answer) over a
//! bounded channel to one writer task. The task takes everything waiting (up to
//! [`MAX_BATCH`] jobs), borrows the connection of the write pool (so the other writers of the
//! pool — multipart, buckets, the policy store, the audit ledger — keep taking turns with it), and
//! runs the batch as one transaction:
//!
//! ```text
//! BEGIN IMMEDIATE                            -- PostgreSQL: BEGIN
//!   SELECT pg_advisory_xact_lock…(k1); …     -- PostgreSQL only: every job's locks, k ascending
//!   <lock the audit chain, read its head>    -- only when a job carries an audit event
//!   SAVEPOINT w; <job 1>; RELEASE w          -- a job that fails: ROLLBACK TO w; RELEASE w
//!   SAVEPOINT w; <job 2>; RELEASE w          -- a batch of one job: no savepoint; if it
//!   ...                                      --   fails, ROLLBACK (nothing else to keep)
//!   <insert the events of the puts that went in, write the chain's head>
//! COMMIT
//! ```
//!
//! A put may carry its request's audit event (`Index::put_object_audited`): once every job has
//! run, the events of the puts that went in are linked into the chain, in job order, and
//! inserted with the COMMIT, so the event and the object commit together (or neither: a put
//! that fails appends no event). On SQLite, `BEGIN IMMEDIATE` rides with the chain's head read
//! and the events' `INSERT`, the head's and the `COMMIT` are one script (`audit::ChainAppender`):
//! a put at one client is four round trips to the database thread (those two, the version
//! lookup and the one-script row insert).
//!
//! Only after the COMMIT does the task answer its jobs: a failed job its own error (its savepoint
//! undid its changes, the others stay), the rest their results; if the batch as a whole fails
//! (BEGIN, a savepoint statement, the events, or COMMIT) every job gets that error and nothing of
//! the batch is committed. No caller is answered before the COMMIT (with `synchronous=FULL`, its
//! fsync) that covers its write. Jobs apply in arrival order, so sequential writes of one key keep
//! last-writer-wins; concurrent writers pay one fsync per batch instead of one each.
//!
//! Several instances on one PostgreSQL database: each has its own writer task, so two batches
//! may run at once. Each batch first takes the cross-instance locks of all its jobs (`locks.rs`:
//! the object key, and the bucket shared for a put) in one round trip, in ascending key order,
//! and holds them to its COMMIT. Taking them all up front in one global order (rather than
//! per job, as it runs) means two batches never hold one key each while waiting for the
//! other's: they queue on their first common key and run one after the other. Should the
//! server still report a deadlock or a serialization failure (a job's statement or the batch's
//! own), the whole batch is rolled back and run again (up to `locks::MAX_ATTEMPTS` times, with
//! a jittered backoff); no caller is answered until the run that commits. On SQLite nothing
//! of this runs: no lock keys are computed, no statement is added.
//!
//! Shutdown: [`Writer::close`] (from `Index::close`) closes the channel; the task commits what
//! was already queued and ends. It also ends when every sender is dropped. Once it has stopped,
//! submitting fails with [`IndexError::Unavailable`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use audit::db::Dialect;
use audit::{AuditEvent, ChainAppender, Receipt};
use sqlx::{AnyConnection, AnyPool};
use tokio::sync::{mpsc, oneshot, watch};

use super::gc::gc_done_in;
use super::locks::{self, LockSet};
use super::objects::{DeletedVersion, delete_version_in, put_object_in};
use super::{DeleteCondition, IndexError, ObjectRecord, Precondition};

/// Most jobs committed in one transaction.
pub(crate) const MAX_BATCH: usize = 256;
/// Jobs waiting for the writer before senders wait for room.
const QUEUE_CAPACITY: usize = 1024;

type Reply<T> = oneshot::Sender<Result<T, IndexError>>;

/// One write for the writer task, with the channel its caller waits on.
pub(crate) enum Job {
    /// `Index::put_object`: answers the replaced backend ids now garbage, and the receipt of
    /// its audit event when it carries one (appended in the same transaction).
    PutObject {
        rec: Box<ObjectRecord>,
        cond: Option<Precondition>,
        event: Option<Box<AuditEvent>>,
        reply: Reply<(Vec<String>, Option<Receipt>)>,
    },
    /// `Index::delete_version`: answers None if there was no such version, else the garbage.
    DeleteVersion {
        bucket: String,
        key: String,
        version_id: String,
        bypass_governance: bool,
        cond: Option<DeleteCondition>,
        reply: Reply<Option<DeletedVersion>>,
    },
    /// `Index::gc_done`: removes ids from the gc queue.
    GcDone { ids: Vec<String>, reply: Reply<()> },
    /// `Index::inline_written`: inline streams now on the backend (their flags).
    InlineWritten { ids: Vec<String>, reply: Reply<()> },
}

enum Message {
    Job(Job),
    Close,
}

/// What a job's statements answered, kept until the batch's fate is known.
enum Outcome {
    Put(Result<(Vec<String>, Option<Receipt>), IndexError>),
    Delete(Result<Option<DeletedVersion>, IndexError>),
    Gc(Result<(), IndexError>),
    Written(Result<(), IndexError>),
}

impl Outcome {
    /// The job's own error, if it failed.
    fn error(&self) -> Option<&IndexError> {
        match self {
            Outcome::Put(r) => r.as_ref().err(),
            Outcome::Delete(r) => r.as_ref().err(),
            Outcome::Gc(r) => r.as_ref().err(),
            Outcome::Written(r) => r.as_ref().err(),
        }
    }

    /// The job's error as the batch's when it is a conflict with another instance's
    /// transaction (a deadlock or serialization failure: the batch runs again), else itself.
    fn conflict(self) -> Result<Outcome, sqlx::Error> {
        if !self.error().is_some_and(super::locks::is_conflict) {
            return Ok(self);
        }
        match self {
            Outcome::Put(Err(IndexError::Database(e)))
            | Outcome::Delete(Err(IndexError::Database(e)))
            | Outcome::Gc(Err(IndexError::Database(e)))
            | Outcome::Written(Err(IndexError::Database(e))) => Err(e),
            other => Ok(other),
        }
    }
}

impl Job {
    /// The audit event the job carries, to append when it succeeds.
    fn event(&self) -> Option<&AuditEvent> {
        match self {
            Job::PutObject { event, .. } => event.as_deref(),
            _ => None,
        }
    }

    /// The locks the job needs across instances (see `locks.rs`); none on SQLite.
    fn locks(&self, dialect: Dialect) -> LockSet {
        let set = LockSet::new(dialect);
        match self {
            Job::PutObject { rec, .. } => {
                set.bucket_shared(&rec.bucket).object(&rec.bucket, &rec.key)
            }
            Job::DeleteVersion { bucket, key, .. } => set.object(bucket, key),
            // queued ids are unique and never referenced again: nothing to exclude
            Job::GcDone { .. } => set,
            // a flag on rows whose bytes are written; a racing delete either sees it or not
            Job::InlineWritten { .. } => set,
        }
    }

    /// Runs the job's statements in the open transaction (inside its savepoint). A job can run
    /// more than once (its batch lost a conflict and runs again); only the last run counts.
    async fn apply(&self, conn: &mut AnyConnection) -> Outcome {
        match self {
            Job::PutObject { rec, cond, .. } => Outcome::Put(
                put_object_in(conn, rec, cond.as_ref())
                    .await
                    .map(|garbage| (garbage, None)),
            ),
            Job::DeleteVersion {
                bucket,
                key,
                version_id,
                bypass_governance,
                cond,
                ..
            } => Outcome::Delete(
                delete_version_in(
                    conn,
                    bucket,
                    key,
                    version_id,
                    *bypass_governance,
                    cond.as_ref(),
                )
                .await,
            ),
            Job::GcDone { ids, .. } => Outcome::Gc(gc_done_in(conn, ids).await),
            Job::InlineWritten { ids, .. } => {
                Outcome::Written(super::inline::inline_written_in(conn, ids).await)
            }
        }
    }

    /// Answers the caller with its outcome in the committed batch.
    fn answer(self, outcome: Outcome) {
        match (self, outcome) {
            (Job::PutObject { reply, .. }, Outcome::Put(r)) => answer(reply, r),
            (Job::DeleteVersion { reply, .. }, Outcome::Delete(r)) => answer(reply, r),
            (Job::GcDone { reply, .. }, Outcome::Gc(r)) => answer(reply, r),
            (Job::InlineWritten { reply, .. }, Outcome::Written(r)) => answer(reply, r),
            (job, _) => job.fail("internal error: a job's outcome does not match it"),
        }
    }

    /// Answers the caller that its batch was not committed.
    fn fail(self, why: &str) {
        match self {
            Job::PutObject { reply, .. } => answer(reply, Err(batch_failed(why))),
            Job::DeleteVersion { reply, .. } => answer(reply, Err(batch_failed(why))),
            Job::GcDone { reply, .. } => answer(reply, Err(batch_failed(why))),
            Job::InlineWritten { reply, .. } => answer(reply, Err(batch_failed(why))),
        }
    }
}

/// The audit error of the batch as a whole (locking the chain, appending its events) as the
/// database error the batch fails with.
fn batch_audit_error(e: audit::AuditError) -> sqlx::Error {
    match e {
        audit::AuditError::Database(d) => d,
        e => sqlx::Error::Protocol(format!("audit chain: {e}")),
    }
}

fn answer<T>(reply: Reply<T>, result: Result<T, IndexError>) {
    // The caller may have gone (request cancelled); the write stands either way.
    let _ = reply.send(result);
}

fn batch_failed(why: &str) -> IndexError {
    IndexError::Unavailable(format!("index write not committed: {why}"))
}

/// Counters of the writer task (committed batches only).
#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    jobs: AtomicU64,
    largest: AtomicU64,
}

/// A snapshot of the group-commit counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Transactions the writer task committed.
    pub batches: u64,
    /// Writes those transactions carried (failed jobs of a committed batch included).
    pub jobs: u64,
    /// Most writes in one committed transaction.
    pub largest_batch: u64,
}

/// The handle to the writer task; cheap to clone (every `Index` clone holds one).
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Message>,
    /// Never written; its sender lives in the task, so `changed()` returns once the task ended.
    stopped: watch::Receiver<()>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Spawns the writer task on the current tokio runtime, writing through `pool`.
    pub(crate) fn start(pool: AnyPool, dialect: Dialect) -> Writer {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (alive, stopped) = watch::channel(());
        let counters = Arc::new(Counters::default());
        tokio::spawn(run(pool, dialect, rx, alive, Arc::clone(&counters)));
        Writer {
            tx,
            stopped,
            counters,
        }
    }

    /// Queues a job and waits for its answer (given after the COMMIT covering it).
    pub(crate) async fn submit<T>(
        &self,
        job: impl FnOnce(Reply<T>) -> Job,
    ) -> Result<T, IndexError> {
        let (reply, wait) = oneshot::channel();
        self.tx.send(Message::Job(job(reply))).await.map_err(|_| {
            IndexError::Unavailable("the index writer has stopped (index closed)".into())
        })?;
        wait.await.map_err(|_| {
            IndexError::Unavailable(
                "the index writer stopped before answering; the write may or may not be committed"
                    .into(),
            )
        })?
    }

    /// Stops the writer: jobs already queued are committed and answered, later ones fail.
    /// Returns once the task has ended.
    pub(crate) async fn close(&self) {
        // Fails only if the writer is already closing or gone: then just wait for it.
        let _ = self.tx.send(Message::Close).await;
        let mut stopped = self.stopped.clone();
        // The watch sender is dropped when the task ends; nothing is ever sent on it.
        while stopped.changed().await.is_ok() {}
    }

    pub(crate) fn stats(&self) -> WriteStats {
        WriteStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            jobs: self.counters.jobs.load(Ordering::Relaxed),
            largest_batch: self.counters.largest.load(Ordering::Relaxed),
        }
    }
}

async fn run(
    pool: AnyPool,
    dialect: Dialect,
    mut rx: mpsc::Receiver<Message>,
    _alive: watch::Sender<()>,
    counters: Arc<Counters>,
) {
    let mut messages = Vec::with_capacity(MAX_BATCH);
    // Ends when every sender is gone, or after Close once the queue is drained.
    while rx.recv_many(&mut messages, MAX_BATCH).await > 0 {
        let mut jobs = Vec::with_capacity(messages.len());
        for m in messages.drain(..) {
            match m {
                Message::Job(job) => jobs.push(job),
                // No new jobs from now on; those already queued are still received.
                Message::Close => rx.close(),
            }
        }
        if jobs.is_empty() {
            continue;
        }
        let n = jobs.len() as u64;
        let committed = commit_retrying(&pool, dialect, &jobs);
        match audit::db::timed(audit::db::DbOp::IndexWriteBatch, committed).await {
            Ok(outcomes) => {
                counters.batches.fetch_add(1, Ordering::Relaxed);
                counters.jobs.fetch_add(n, Ordering::Relaxed);
                counters.largest.fetch_max(n, Ordering::Relaxed);
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    job.answer(outcome);
                }
            }
            Err(e) => {
                let why = e.to_string();
                tracing::error!(error = %why, jobs = n, "index write batch not committed");
                for job in jobs {
                    job.fail(&why);
                }
            }
        }
    }
}

/// Commits the batch, running it again (after [`locks::backoff`]) while it loses a conflict
/// with another instance's transaction (a deadlock or serialization failure, the whole batch
/// rolled back), at most [`locks::MAX_ATTEMPTS`] times.
async fn commit_retrying(
    pool: &AnyPool,
    dialect: Dialect,
    jobs: &[Job],
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut attempt = 1;
    loop {
        match commit_batch(pool, dialect, jobs).await {
            Err(e) if attempt < locks::MAX_ATTEMPTS && audit::db::is_transient_conflict(&e) => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "index write batch lost a conflict; running it again");
                tokio::time::sleep(locks::backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

/// Runs `jobs` in one transaction and commits it; returns each job's outcome. On PostgreSQL the
/// transaction first takes every job's locks at once, in ascending key order (so two
/// instances' batches never wait for each other in a cycle); they are held to the COMMIT. On an
/// error of the batch as a whole the transaction is rolled back ([`audit::db::rollback`]: it is
/// plain SQL on a pooled connection, not an `sqlx::Transaction`, which a transaction SQLite
/// rolled back itself would leave unusable).
async fn commit_batch(
    pool: &AnyPool,
    dialect: Dialect,
    jobs: &[Job],
) -> Result<Vec<Outcome>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let result = apply_and_commit(&mut conn, dialect, jobs).await;
    if result.is_err() {
        audit::db::rollback(&mut conn).await;
    }
    result
}

/// Opens the batch's transaction: on PostgreSQL with every job's locks; with the audit chain
/// locked and its head read when a job carries an event. The chain is locked before any
/// savepoint: a lock taken inside one would be released by its rollback (PostgreSQL) while the
/// head read under it is still used. On SQLite the BEGIN rides with the head read (one round
/// trip); on PostgreSQL the keys' locks come first, in the order every writer takes them.
async fn begin_batch(
    conn: &mut AnyConnection,
    dialect: Dialect,
    jobs: &[Job],
) -> Result<Option<ChainAppender>, sqlx::Error> {
    let with_events = jobs.iter().any(|j| j.event().is_some());
    if with_events && !dialect.needs_write_locks() {
        let chain = ChainAppender::begin(conn, dialect).await;
        return chain.map(Some).map_err(batch_audit_error);
    }
    sqlx::query(dialect.begin_write())
        .execute(&mut *conn)
        .await?;
    if dialect.needs_write_locks() {
        let mut all = LockSet::new(dialect);
        for job in jobs {
            all.extend(job.locks(dialect));
        }
        dialect.lock_keys(conn, all.keys()).await?;
    }
    if !with_events {
        return Ok(None);
    }
    let chain = ChainAppender::lock(conn, dialect).await;
    chain.map(Some).map_err(batch_audit_error)
}

async fn apply_and_commit(
    conn: &mut AnyConnection,
    dialect: Dialect,
    jobs: &[Job],
) -> Result<Vec<Outcome>, sqlx::Error> {
    let chain = begin_batch(conn, dialect, jobs).await?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    // A job alone in its batch (every write at one client) needs no savepoint: when it fails,
    // the whole transaction, which holds nothing else, is rolled back. Two round trips fewer.
    let alone = jobs.len() == 1;
    for job in jobs {
        if !alone {
            sqlx::query("SAVEPOINT w").execute(&mut *conn).await?;
        }
        // a job that lost a conflict fails the batch (it runs again whole)
        let outcome = job.apply(conn).await.conflict()?;
        if outcome.error().is_some() {
            if alone {
                // its locks on PostgreSQL go with the transaction
                sqlx::query("ROLLBACK").execute(&mut *conn).await?;
                return Ok(vec![outcome]);
            }
            sqlx::query("ROLLBACK TO w").execute(&mut *conn).await?;
        }
        if !alone {
            sqlx::query("RELEASE w").execute(&mut *conn).await?;
        }
        outcomes.push(outcome);
    }
    let Some(chain) = chain else {
        sqlx::query("COMMIT").execute(&mut *conn).await?;
        return Ok(outcomes);
    };
    // The events of the puts that went in, in job order, appended with the COMMIT (on SQLite
    // in its round trip); a put that failed appends none.
    let events = jobs
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| outcome.error().is_none())
        .filter_map(|(job, _)| job.event().cloned())
        .collect();
    let mut receipts = chain
        .commit(conn, events)
        .await
        .map_err(batch_audit_error)?
        .into_iter();
    for (job, outcome) in jobs.iter().zip(outcomes.iter_mut()) {
        if job.event().is_some()
            && let Outcome::Put(Ok((_, receipt))) = outcome
        {
            *receipt = receipts.next();
        }
    }
    Ok(outcomes)
}
