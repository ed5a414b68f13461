//! Chain verification: walks the ledger (database rows or JSON-lines mirror) from its anchor
//! (genesis or the newest signed checkpoint) and reports the first broken link precisely —
//! which sequence number and what is wrong (edited, altered and re-hashed, deleted,
//! inserted, reordered, malformed, bad checkpoint, head mismatch).

use std::collections::{HashMap, HashSet};
use std::fmt;

use sqlx::AnyConnection;
use sqlx::AnyPool;
use sqlx::Row;

use crate::error::AuditResult;
use crate::event::{GENESIS_HASH, StoredEvent};
use crate::evidence::PublicKey;
use crate::retention::{Checkpoint, latest_checkpoint};
use crate::{COLUMNS, Ledger, row_to_event};

/// Rows fetched per page while walking the database.
const PAGE: i64 = 2000;

/// Where verification starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// seq 1 with the all-zero previous hash
    Genesis,
    /// after a retention prune: the chain continues after `seq`, whose hash was `hash`
    Checkpoint {
        /// last pruned seq
        seq: i64,
        /// its hash
        hash: String,
        /// fingerprint of the key that signed the checkpoint
        signer: String,
        /// whether the signer was checked against a trusted (given) public key
        pinned: bool,
    },
}

impl fmt::Display for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Anchor::Genesis => f.write_str("genesis"),
            Anchor::Checkpoint {
                seq,
                signer,
                pinned,
                ..
            } => write!(
                f,
                "checkpoint after seq {seq} signed by {signer}{}",
                if *pinned {
                    " (trusted key)"
                } else {
                    " (key recorded in the checkpoint; pass --public-key to pin it)"
                }
            ),
        }
    }
}

/// What kind of break was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueKind {
    /// a line or row that cannot be decoded
    Malformed,
    /// the event's fields do not hash to its stored hash (a field was edited)
    ContentChanged,
    /// the event was changed and its hash recomputed (or replaced): the next event does not link to it
    Altered,
    /// one or more events are missing (deleted)
    Deleted,
    /// an event that is not part of the chain was inserted
    Inserted,
    /// events are out of order (moved or swapped)
    Reordered,
    /// the first event does not link to the anchor
    BadStart,
    /// the retention checkpoint's signature does not verify
    BadCheckpoint,
    /// the recorded chain head does not match the last event
    HeadMismatch,
}

impl fmt::Display for IssueKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IssueKind::Malformed => "malformed record",
            IssueKind::ContentChanged => "content changed",
            IssueKind::Altered => "event altered and re-hashed",
            IssueKind::Deleted => "event(s) deleted",
            IssueKind::Inserted => "event inserted",
            IssueKind::Reordered => "events reordered",
            IssueKind::BadStart => "chain does not start at its anchor",
            IssueKind::BadCheckpoint => "bad checkpoint",
            IssueKind::HeadMismatch => "head mismatch",
        })
    }
}

/// The first broken link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// the sequence number the problem is at
    pub seq: i64,
    /// what is wrong
    pub kind: IssueKind,
    /// the precise finding
    pub detail: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {}: {}: {}", self.seq, self.kind, self.detail)
    }
}

/// Result of walking a ledger; `Display` is what `vaultgate audit verify` prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// database URL or file path
    pub source: String,
    /// where the walk started
    pub anchor: Anchor,
    /// events verified (before the first issue, if any)
    pub events: u64,
    /// first verified seq
    pub first_seq: Option<i64>,
    /// last verified seq
    pub last_seq: Option<i64>,
    /// hash of the last verified event (the anchor's hash if none)
    pub head_hash: String,
    /// the first broken link, `None` when the ledger verifies
    pub issue: Option<Issue>,
}

impl VerifyReport {
    /// True when no issue was found.
    pub fn is_ok(&self) -> bool {
        self.issue.is_none()
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.issue {
            None => {
                write!(
                    f,
                    "audit ledger {}: OK, {} events",
                    self.source, self.events
                )?;
                if let (Some(a), Some(b)) = (self.first_seq, self.last_seq) {
                    write!(f, " (seq {a}..={b})")?;
                }
                write!(f, ", from {}, head {}", self.anchor, self.head_hash)
            }
            Some(issue) => write!(
                f,
                "audit ledger {}: BROKEN at {issue} ({} events verified before it, from {})",
                self.source, self.events, self.anchor
            ),
        }
    }
}

/// Why a record did not continue the chain.
pub(crate) enum Break {
    Behind,
    Gap,
    Link,
    Content(String),
}

/// The first 16 characters of a hash, for messages.
fn short(h: &str) -> String {
    h.get(..16).unwrap_or(h).to_owned()
}

/// Walk state: what the next event must link to.
pub(crate) struct Walker {
    pub(crate) expected: i64,
    pub(crate) prev_hash: String,
    prev_prev_hash: Option<String>,
    pub(crate) prev_seq: i64,
    pub(crate) count: u64,
    pub(crate) first: Option<i64>,
}

impl Walker {
    pub(crate) fn new(anchor_seq: i64, anchor_hash: &str) -> Walker {
        Walker {
            expected: anchor_seq + 1,
            prev_hash: anchor_hash.to_owned(),
            prev_prev_hash: None,
            prev_seq: anchor_seq,
            count: 0,
            first: None,
        }
    }

    pub(crate) fn step(&mut self, r: &StoredEvent) -> Result<(), Break> {
        if r.seq < self.expected {
            return Err(Break::Behind);
        }
        if r.seq > self.expected {
            return Err(Break::Gap);
        }
        if r.prev_hash != self.prev_hash {
            return Err(Break::Link);
        }
        let computed = r.computed_hash();
        if computed != r.hash {
            return Err(Break::Content(computed));
        }
        self.prev_prev_hash = Some(std::mem::replace(&mut self.prev_hash, r.hash.clone()));
        self.prev_seq = r.seq;
        self.expected = r.seq + 1;
        self.count += 1;
        self.first.get_or_insert(r.seq);
        Ok(())
    }

    /// Turns a break into an issue. `hash_owner`: seq of another record whose stored hash equals
    /// `r.prev_hash`; `expected_later`: whether the expected seq appears further on.
    pub(crate) fn classify(
        &self,
        r: &StoredEvent,
        b: Break,
        hash_owner: Option<i64>,
        expected_later: bool,
    ) -> Issue {
        match b {
            Break::Behind if r.seq == self.prev_seq => Issue {
                seq: r.seq,
                kind: IssueKind::Inserted,
                detail: format!("two events claim seq {}; one of them was inserted", r.seq),
            },
            Break::Behind => Issue {
                seq: r.seq,
                kind: IssueKind::Reordered,
                detail: format!("event seq {} appears after seq {}", r.seq, self.prev_seq),
            },
            Break::Gap if expected_later => Issue {
                seq: self.expected,
                kind: IssueKind::Reordered,
                detail: format!(
                    "event seq {} appears later, after seq {} (events moved or swapped)",
                    self.expected, r.seq
                ),
            },
            Break::Gap => Issue {
                seq: self.expected,
                kind: IssueKind::Deleted,
                detail: if r.seq - 1 == self.expected {
                    format!("event {} is missing (deleted)", self.expected)
                } else {
                    format!(
                        "events {}..={} are missing (deleted)",
                        self.expected,
                        r.seq - 1
                    )
                },
            },
            Break::Link => self.classify_link(r, hash_owner),
            Break::Content(computed) => Issue {
                seq: r.seq,
                kind: IssueKind::ContentChanged,
                detail: format!(
                    "stored hash {} but the fields hash to {}: a field was edited",
                    short(&r.hash),
                    short(&computed)
                ),
            },
        }
    }

    /// A broken link (`r.prev_hash` is not the previous event's hash): an event inserted
    /// between two others, events moved or swapped, a bad start, or the previous event altered.
    fn classify_link(&self, r: &StoredEvent, hash_owner: Option<i64>) -> Issue {
        if self.prev_prev_hash.as_deref() == Some(r.prev_hash.as_str()) {
            Issue {
                seq: self.prev_seq,
                kind: IssueKind::Inserted,
                detail: format!(
                    "event {} is not part of the chain: event {} links directly to event {}",
                    self.prev_seq,
                    r.seq,
                    self.prev_seq - 1
                ),
            }
        } else if let Some(s) = hash_owner {
            Issue {
                seq: r.seq,
                kind: IssueKind::Reordered,
                detail: format!(
                    "the event stored at seq {} links after the event stored at seq {s} (events moved or swapped)",
                    r.seq
                ),
            }
        } else if self.count == 0 {
            Issue {
                seq: r.seq,
                kind: IssueKind::BadStart,
                detail: format!(
                    "prev_hash {} does not match the anchor hash {}",
                    short(&r.prev_hash),
                    short(&self.prev_hash)
                ),
            }
        } else {
            Issue {
                seq: self.prev_seq,
                kind: IssueKind::Altered,
                detail: format!(
                    "event {} was changed and its hash recomputed, or replaced: event {} expects prev_hash {}",
                    self.prev_seq,
                    r.seq,
                    short(&r.prev_hash)
                ),
            }
        }
    }

    fn report(&self, source: String, anchor: Anchor, issue: Option<Issue>) -> VerifyReport {
        VerifyReport {
            source,
            anchor,
            events: self.count,
            first_seq: self.first,
            last_seq: self.first.map(|_| self.prev_seq),
            head_hash: self.prev_hash.clone(),
            issue,
        }
    }
}

/// Verifies events given in file order from genesis (the JSON-lines mirror). `lines` holds
/// each line's 1-based number and its parse result.
pub(crate) fn verify_lines(
    source: String,
    lines: Vec<(usize, Result<StoredEvent, String>)>,
) -> VerifyReport {
    let mut events = Vec::with_capacity(lines.len());
    let mut w = Walker::new(0, GENESIS_HASH);
    for (line, parsed) in lines {
        match parsed {
            Ok(e) => events.push(e),
            Err(reason) => {
                // Walk what came before so the report says how far the chain was good.
                let expected = events.len() as i64 + 1;
                for e in &events {
                    if let Err(b) = w.step(e) {
                        let issue = w.classify(e, b, None, false);
                        return w.report(source, Anchor::Genesis, Some(issue));
                    }
                }
                let issue = Issue {
                    seq: expected.max(w.expected),
                    kind: IssueKind::Malformed,
                    detail: format!("line {line}: {reason}"),
                };
                return w.report(source, Anchor::Genesis, Some(issue));
            }
        }
    }
    let mut owners: HashMap<&str, i64> = HashMap::with_capacity(events.len());
    for e in &events {
        owners.entry(e.hash.as_str()).or_insert(e.seq);
    }
    for (i, e) in events.iter().enumerate() {
        if let Err(b) = w.step(e) {
            let owner = owners
                .get(e.prev_hash.as_str())
                .copied()
                .filter(|s| *s != e.seq);
            let expected_later = matches!(b, Break::Gap)
                && events[i + 1..]
                    .iter()
                    .map(|x| x.seq)
                    .collect::<HashSet<_>>()
                    .contains(&w.expected);
            let issue = w.classify(e, b, owner, expected_later);
            return w.report(source, Anchor::Genesis, Some(issue));
        }
    }
    w.report(source, Anchor::Genesis, None)
}

/// Verifies the ledger tables in `pool`. `trusted`: the evidence public key checkpoints must be
/// signed with (otherwise the key recorded in the checkpoint is used and reported as unpinned).
pub async fn verify_pool(
    pool: &AnyPool,
    source: &str,
    trusted: Option<&PublicKey>,
) -> AuditResult<VerifyReport> {
    // One read transaction: the walk and the head check see the same snapshot even while
    // appends continue.
    let mut conn = pool
        .begin_with(crate::db::Dialect::of(pool).begin_snapshot())
        .await?;
    let cp = latest_checkpoint(&mut conn).await?;
    let (anchor, mut w, bad_checkpoint) = anchor_of(cp.as_ref(), trusted);
    let issue = match bad_checkpoint {
        Some(issue) => Some(issue),
        None => first_issue(&mut conn, cp.as_ref(), &mut w).await?,
    };
    Ok(w.report(source.to_owned(), anchor, issue))
}

/// Where the walk starts: the genesis, or the latest checkpoint (with its signer), or a
/// checkpoint whose signature does not hold (the issue).
fn anchor_of(
    cp: Option<&Checkpoint>,
    trusted: Option<&PublicKey>,
) -> (Anchor, Walker, Option<Issue>) {
    let Some(c) = cp else {
        return (Anchor::Genesis, Walker::new(0, GENESIS_HASH), None);
    };
    let w = Walker::new(c.seq, &c.hash);
    let (signer, issue) = match c.check_signature(trusted) {
        Ok(signer) => (signer, None),
        Err(reason) => (
            "unverified".into(),
            Some(Issue {
                seq: c.seq,
                kind: IssueKind::BadCheckpoint,
                detail: reason,
            }),
        ),
    };
    let anchor = Anchor::Checkpoint {
        seq: c.seq,
        hash: c.hash.clone(),
        signer,
        pinned: trusted.is_some(),
    };
    (anchor, w, issue)
}

/// The first break after the anchor: an event the checkpoint says was pruned, then the chain
/// walked event by event, then the recorded head against the last event.
async fn first_issue(
    conn: &mut AnyConnection,
    cp: Option<&Checkpoint>,
    w: &mut Walker,
) -> AuditResult<Option<Issue>> {
    if let Some(c) = cp {
        let stale: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM audit_events WHERE seq <= $1")
                .bind(c.seq)
                .fetch_one(&mut *conn)
                .await?;
        if let Some(s) = stale {
            return Ok(Some(Issue {
                seq: s,
                kind: IssueKind::Inserted,
                detail: format!(
                    "event {s} exists although the checkpoint says events up to {} were pruned",
                    c.seq
                ),
            }));
        }
    }
    if let Some(issue) = walk_events(conn, w).await? {
        return Ok(Some(issue));
    }
    head_issue(conn, w).await
}

/// Walks the events after the anchor in pages; the first that does not continue the chain is
/// classified (a broken link is matched against the event whose hash it names).
async fn walk_events(conn: &mut AnyConnection, w: &mut Walker) -> AuditResult<Option<Issue>> {
    let mut after = w.prev_seq;
    loop {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq ASC LIMIT $2"
        ))
        .bind(after)
        .bind(PAGE)
        .fetch_all(&mut *conn)
        .await?;
        let Some(last) = rows.last() else {
            return Ok(None);
        };
        after = last.try_get("seq")?;
        for row in &rows {
            let e = match row_to_event(row) {
                Ok(e) => e,
                Err(err) => {
                    return Ok(Some(Issue {
                        seq: row.try_get("seq")?,
                        kind: IssueKind::Malformed,
                        detail: err.to_string(),
                    }));
                }
            };
            if let Err(b) = w.step(&e) {
                let owner: Option<i64> = if matches!(b, Break::Link) {
                    sqlx::query_scalar(
                        "SELECT seq FROM audit_events WHERE hash = $1 AND seq <> $2 ORDER BY seq LIMIT 1",
                    )
                    .bind(&e.prev_hash)
                    .bind(e.seq)
                    .fetch_optional(&mut *conn)
                    .await?
                } else {
                    None
                };
                return Ok(Some(w.classify(&e, b, owner, false)));
            }
        }
    }
}

/// The recorded head must be the last event walked (detects deletions at the end and events
/// appended outside the ledger).
async fn head_issue(conn: &mut AnyConnection, w: &Walker) -> AuditResult<Option<Issue>> {
    let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
        .fetch_optional(&mut *conn)
        .await?;
    let head: Option<(i64, String)> = match head {
        Some(r) => Some((r.try_get("seq")?, r.try_get("hash")?)),
        None => None,
    };
    Ok(match head {
        None if w.prev_seq == 0 => None,
        None => Some(Issue {
            seq: w.prev_seq,
            kind: IssueKind::HeadMismatch,
            detail: "the chain head record is missing".into(),
        }),
        Some((hs, hh)) if hs == w.prev_seq && hh == w.prev_hash => None,
        Some((hs, _)) if hs > w.prev_seq => Some(Issue {
            seq: w.prev_seq + 1,
            kind: IssueKind::Deleted,
            detail: format!(
                "the chain ends at seq {} but the recorded head is seq {hs}: events {}..={hs} were deleted",
                w.prev_seq,
                w.prev_seq + 1
            ),
        }),
        Some((hs, _)) if hs < w.prev_seq => Some(Issue {
            seq: hs + 1,
            kind: IssueKind::Inserted,
            detail: format!(
                "events after the recorded head seq {hs} (up to {}) were added outside the ledger",
                w.prev_seq
            ),
        }),
        Some((hs, _)) => Some(Issue {
            seq: hs,
            kind: IssueKind::HeadMismatch,
            detail: "the recorded head hash differs from the last event's hash".into(),
        }),
    })
}

impl Ledger {
    /// Verifies this ledger's database chain (see [`verify_pool`]).
    pub async fn verify(&self, trusted: Option<&PublicKey>) -> AuditResult<VerifyReport> {
        self.sync().await;
        verify_pool(self.read_pool(), "database", trusted).await
    }
}
