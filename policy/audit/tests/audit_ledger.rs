//! Integration tests of the audit ledger against a real SQLite database file: appends,
//! queries, concurrency, source-address modes, fail-closed errors, tampering with rows and
//! with the JSON-lines mirror, and retention checkpoints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use audit::cli::{verify_bytes, verify_database, verify_file};
use audit::evidence::EvidenceKey;
use audit::verify::IssueKind;
use audit::{
    AuditEvent, AuditFilter, AuditQuery, EventKind, Ledger, LedgerConfig, Outcome, ReadPolicy,
    SourceMode, StoredEvent, open_pool,
};

struct Fixture {
    _dir: tempfile::TempDir,
    url: String,
    mirror: PathBuf,
    ledger: Ledger,
}

fn event(i: u64) -> AuditEvent {
    AuditEvent {
        time_ms: 1_000_000 + i as i64,
        request_id: format!("req-{i}"),
        kind: if i.is_multiple_of(7) {
            EventKind::Admin
        } else {
            EventKind::S3
        },
        principal: Some(if i.is_multiple_of(2) { "alice" } else { "bob" }.to_owned()),
        tenant: Some("t1".into()),
        action: if i.is_multiple_of(3) {
            "GetObject"
        } else {
            "PutObject"
        }
        .to_owned(),
        bucket: Some(if i.is_multiple_of(5) { "logs" } else { "data" }.to_owned()),
        key: Some(format!("dir{}/obj-{i}", i % 2)),
        outcome: if i.is_multiple_of(4) {
            Outcome::Denied
        } else {
            Outcome::Success
        },
        status: if i.is_multiple_of(4) { 403 } else { 200 },
        error_code: (i.is_multiple_of(4)).then(|| "AccessDenied".to_owned()),
        bytes_in: i * 10,
        bytes_out: i,
        key_version: Some(1),
        source: Some(format!("10.0.0.{}", i % 250)),
        duration_us: 100 + i,
    }
}

async fn fixture_with(cfg: impl FnOnce(&Path) -> LedgerConfig) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let url = audit::db::test_database_url()
        .unwrap_or_else(|| format!("sqlite://{}/index.db", dir.path().display()));
    let pool = open_pool(&url, true).await.unwrap();
    let ledger = Ledger::open(pool, cfg(dir.path())).await.unwrap();
    Fixture {
        mirror: dir.path().join("audit.jsonl"),
        _dir: dir,
        url,
        ledger,
    }
}

async fn fixture(n: u64) -> Fixture {
    let f = fixture_with(|d| LedgerConfig {
        mirror_path: Some(d.join("audit.jsonl")),
        ..LedgerConfig::default()
    })
    .await;
    for i in 1..=n {
        let r = f.ledger.append(event(i)).await.unwrap();
        assert_eq!(r.seq, i as i64);
    }
    f
}

async fn exec(f: &Fixture, sql: &str) {
    sqlx::query(sql).execute(f.ledger.pool()).await.unwrap();
}

/// A trigger that makes every insert into `audit_events` fail (`on`), or its removal.
async fn refuse_inserts(f: &Fixture, on: bool) {
    let dialect = audit::db::Dialect::of(f.ledger.pool());
    for sql in audit::db::test_refuse_inserts(dialect, "audit_events", "refuse", on) {
        exec(f, &sql).await;
    }
}

async fn db_issue(f: &Fixture) -> (i64, IssueKind, String) {
    let report = verify_database(&f.url, None).await.unwrap();
    let issue = report
        .issue
        .clone()
        .unwrap_or_else(|| panic!("expected a break: {report}"));
    let text = report.to_string();
    assert!(text.contains("BROKEN"), "{text}");
    (issue.seq, issue.kind, text)
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn file_issue(lines: &[String]) -> (i64, IssueKind) {
    let mut text = lines.join("\n");
    text.push('\n');
    let report = verify_bytes("mirror".into(), text.as_bytes());
    let issue = report.issue.unwrap_or_else(|| panic!("expected a break"));
    (issue.seq, issue.kind)
}

#[tokio::test]
async fn untouched_ledger_and_mirror_verify() {
    let f = fixture(40).await;
    let report = f.ledger.verify(None).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.events, 40);
    assert_eq!((report.first_seq, report.last_seq), (Some(1), Some(40)));
    assert_eq!(report.head_hash, f.ledger.head().await.unwrap().hash);
    let db = verify_database(&f.url, None).await.unwrap();
    assert!(db.is_ok(), "{db}");
    assert!(db.to_string().contains("OK, 40 events"), "{db}");
    let file = verify_file(&f.mirror).await.unwrap();
    assert!(file.is_ok(), "{file}");
    assert_eq!(file.events, 40);
    assert_eq!(file.head_hash, report.head_hash);
    // The mirror holds exactly the database rows.
    let from_file: Vec<StoredEvent> = read_lines(&f.mirror)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for e in &from_file {
        assert_eq!(f.ledger.get(e.seq).await.unwrap().as_ref(), Some(e));
    }
    assert_eq!(f.ledger.stats().snapshot().appended, 40);
    assert_eq!(f.ledger.stats().snapshot().failures, 0);
}

#[tokio::test]
async fn empty_ledger_verifies_and_missing_database_is_an_error() {
    let f = fixture(0).await;
    assert!(f.ledger.verify(None).await.unwrap().is_ok());
    assert_eq!(f.ledger.head().await.unwrap().seq, 0);
    assert!(f.ledger.get(1).await.unwrap().is_none());
    let missing = format!("sqlite://{}/nope.db", f._dir.path().display());
    assert!(verify_database(&missing, None).await.is_err());
    assert!(
        verify_file(&f._dir.path().join("nope.jsonl"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn concurrent_appenders_produce_one_unbroken_chain() {
    let f = fixture(0).await;
    let mut tasks = Vec::new();
    for t in 0..32u64 {
        let ledger = f.ledger.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..50u64 {
                seqs.push(ledger.append(event(t * 1000 + i)).await.unwrap().seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "per-task order kept");
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=1600).collect::<Vec<i64>>());
    let report = verify_database(&f.url, None).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.events, 1600);
    let file = verify_file(&f.mirror).await.unwrap();
    assert!(file.is_ok(), "{file}");
    assert_eq!(file.events, 1600);
    let stats = f.ledger.stats().snapshot();
    assert_eq!(stats.appended, 1600);
    assert!(
        stats.batches < 1600,
        "group commit batches events: {stats:?}"
    );
}

/// A client can put U+0000 in a key, bucket or access key id (PostgreSQL's `TEXT` cannot hold
/// it): the event is kept with U+FFFD in its place, and the events batched with it in the same
/// group commit are kept too (on PostgreSQL one unstorable row failed the whole batch).
#[tokio::test]
async fn a_nul_in_a_text_field_is_kept_as_u_fffd_and_fails_no_batch() {
    let f = fixture(0).await;
    let mut tasks = Vec::new();
    for i in 1..=40u64 {
        let ledger = f.ledger.clone();
        let mut e = event(i);
        if i % 4 == 0 {
            e.key = Some(format!("a\u{0}b-{i}"));
            e.bucket = Some("b\u{0}".into());
            e.principal = Some("AK\u{0}".into());
        }
        tasks.push(tokio::spawn(async move { ledger.append(e).await }));
    }
    for t in tasks {
        t.await.unwrap().expect("every event is recorded");
    }
    let page = f
        .ledger
        .query(&AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), 40);
    let odd: Vec<&StoredEvent> = page
        .events
        .iter()
        .filter(|e| {
            e.key
                .as_deref()
                .is_some_and(|k| k.starts_with("a\u{FFFD}b-"))
        })
        .collect();
    assert_eq!(odd.len(), 10, "{:?}", page.events);
    for e in odd {
        assert_eq!(e.bucket.as_deref(), Some("b\u{FFFD}"));
        assert_eq!(e.principal.as_deref(), Some("AK\u{FFFD}"));
    }
    assert!(
        page.events
            .iter()
            .all(|e| !e.key.as_deref().unwrap_or("").contains('\0'))
    );
    let report = verify_database(&f.url, None).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.events, 40);
    let file = verify_file(&f.mirror).await.unwrap();
    assert!(file.is_ok(), "{file}");
}

/// Two gateway instances on one database (PostgreSQL in the CI's second pass, one SQLite file
/// otherwise) append concurrently: one chain, every event once, in one total order, and each
/// instance's mirror file (gaps filled from the database) verifies too.
#[tokio::test]
async fn two_ledgers_on_one_database_append_one_chain() {
    let f = fixture(0).await;
    let dir2 = tempfile::tempdir().unwrap();
    let mirror2 = dir2.path().join("audit.jsonl");
    let second = Ledger::open(
        open_pool(&f.url, false).await.unwrap(),
        LedgerConfig {
            mirror_path: Some(mirror2.clone()),
            ..LedgerConfig::default()
        },
    )
    .await
    .unwrap();
    let mut tasks = Vec::new();
    for t in 0..16u64 {
        let ledger = if t % 2 == 0 {
            f.ledger.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..40u64 {
                seqs.push(ledger.append(event(t * 1000 + i)).await.unwrap().seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "per-task order kept");
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=640).collect::<Vec<i64>>(),
        "every event once, no gap"
    );
    // one more event through each, in turn: each mirror fills what the other instance appended
    // before its event (during the concurrent run, whether a mirror had gaps to fill depended
    // on how the two writers' batches interleaved)
    assert_eq!(f.ledger.append(event(90_000)).await.unwrap().seq, 641);
    assert_eq!(second.append(event(90_001)).await.unwrap().seq, 642);
    let report = verify_database(&f.url, None).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.events, 642);
    for (mirror, events) in [(&f.mirror, 641), (&mirror2, 642)] {
        let file = verify_file(mirror).await.unwrap();
        assert!(file.is_ok(), "{}: {file}", mirror.display());
        assert_eq!(file.events, events, "{}: {file}", mirror.display());
    }
}

#[tokio::test]
async fn query_filters_and_paginates_newest_first() {
    let f = fixture(60).await;
    let mut q = AuditQuery {
        filter: AuditFilter {
            principal: Some("alice".into()),
            bucket: Some("data".into()),
            ..AuditFilter::default()
        },
        before_seq: None,
        limit: 7,
    };
    let mut seen = Vec::new();
    loop {
        let page = f.ledger.query(&q).await.unwrap();
        assert!(page.events.len() <= 7);
        seen.extend(page.events.iter().map(|e| e.seq));
        for e in &page.events {
            assert_eq!(e.principal.as_deref(), Some("alice"));
            assert_eq!(e.bucket.as_deref(), Some("data"));
        }
        match page.next_before_seq {
            Some(c) => q.before_seq = Some(c),
            None => break,
        }
    }
    let expected: Vec<i64> = (1..=60)
        .rev()
        .filter(|i| i % 2 == 0 && i % 5 != 0)
        .collect();
    assert_eq!(seen, expected);

    let by = |filter: AuditFilter| {
        let l = f.ledger.clone();
        async move {
            l.query(&AuditQuery {
                filter,
                before_seq: None,
                limit: 1000,
            })
            .await
            .unwrap()
            .events
            .iter()
            .map(|e| e.seq)
            .collect::<Vec<_>>()
        }
    };
    let time = by(AuditFilter {
        from_ms: Some(1_000_010),
        to_ms: Some(1_000_013),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(time, vec![12, 11, 10]);
    let denied = by(AuditFilter {
        outcome: Some(Outcome::Denied),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(
        denied,
        (1..=60).rev().filter(|i| i % 4 == 0).collect::<Vec<_>>()
    );
    let prefix = by(AuditFilter {
        key_prefix: Some("dir1/obj-5".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(prefix, vec![59, 57, 55, 53, 51, 5]);
    // LIKE metacharacters are literal in a prefix.
    let none = by(AuditFilter {
        key_prefix: Some("dir%".into()),
        ..AuditFilter::default()
    })
    .await;
    assert!(none.is_empty());
    let admin = by(AuditFilter {
        kind: Some(EventKind::Admin),
        action: Some("GetObject".into()),
        tenant: Some("t1".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(admin, vec![42, 21]);
    assert!(
        f.ledger
            .query(&AuditQuery {
                limit: 5000,
                ..AuditQuery::default()
            })
            .await
            .is_err()
    );
    assert_eq!(
        f.ledger.get(17).await.unwrap().unwrap().request_id,
        "req-17"
    );
}

#[tokio::test]
async fn source_address_modes() {
    let key = EvidenceKey::from_seed(&[9u8; 32]);
    let hashed = fixture_with(|_| LedgerConfig {
        source_mode: SourceMode::Hash,
        source_secret: Some(key.source_secret()),
        ..LedgerConfig::default()
    })
    .await;
    let a = hashed.ledger.append(event(1)).await.unwrap();
    let b = hashed.ledger.append(event(251)).await.unwrap(); // same address 10.0.0.1
    let c = hashed.ledger.append(event(2)).await.unwrap();
    let src = |seq| {
        let l = hashed.ledger.clone();
        async move { l.get(seq).await.unwrap().unwrap().source.unwrap() }
    };
    let (sa, sb, sc) = (src(a.seq).await, src(b.seq).await, src(c.seq).await);
    assert!(
        sa.starts_with("hmac-sha256:") && sa.len() == 12 + 64,
        "{sa}"
    );
    assert_eq!(sa, sb);
    assert_ne!(sa, sc);
    assert!(!sa.contains("10.0.0.1"));
    // Not a plain SHA-256 of the address: without the secret it cannot be recomputed.
    assert_ne!(&sa[12..], audit::sha256_hex(b"10.0.0.1"));

    let dropped = fixture_with(|_| LedgerConfig {
        source_mode: SourceMode::Drop,
        ..LedgerConfig::default()
    })
    .await;
    let r = dropped.ledger.append(event(1)).await.unwrap();
    assert_eq!(
        dropped.ledger.get(r.seq).await.unwrap().unwrap().source,
        None
    );

    let kept = fixture(1).await;
    assert_eq!(
        kept.ledger.get(1).await.unwrap().unwrap().source.as_deref(),
        Some("10.0.0.1")
    );

    assert_eq!(
        "fail-open".parse::<ReadPolicy>().unwrap(),
        ReadPolicy::FailOpen
    );
    assert_eq!(
        "fail_closed".parse::<ReadPolicy>().unwrap(),
        ReadPolicy::FailClosed
    );
    assert!("maybe".parse::<ReadPolicy>().is_err());
    assert!(audit::now_ms() > 1_700_000_000_000);
    assert_eq!("HASH".parse::<SourceMode>().unwrap(), SourceMode::Hash);
    assert!("hide".parse::<SourceMode>().is_err());
    // Hash mode without a secret is refused at open.
    let dir = tempfile::tempdir().unwrap();
    let pool = open_pool(&format!("sqlite://{}/x.db", dir.path().display()), true)
        .await
        .unwrap();
    let err = Ledger::open(
        pool,
        LedgerConfig {
            source_mode: SourceMode::Hash,
            ..LedgerConfig::default()
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("source secret"), "{err}");
    assert_eq!(format!("{:?}", key.source_secret()), "[redacted]");
}

#[tokio::test]
async fn append_fails_closed_and_counts_failures() {
    let f = fixture(3).await;
    assert!(f.ledger.fail_request_on_error(false));
    assert!(f.ledger.fail_request_on_error(true));
    f.ledger.pool().close().await;
    let err = f.ledger.append(event(4)).await.unwrap_err();
    assert!(err.to_string().contains("unavailable"), "{err}");
    assert_eq!(f.ledger.stats().snapshot().failures, 1);

    let open_reads = fixture_with(|_| LedgerConfig {
        read_policy: ReadPolicy::FailOpen,
        ..LedgerConfig::default()
    })
    .await;
    assert!(!open_reads.ledger.fail_request_on_error(true));
    assert!(open_reads.ledger.fail_request_on_error(false));
}

#[tokio::test]
async fn append_refuses_to_continue_a_truncated_chain() {
    let f = fixture(10).await;
    exec(&f, "DELETE FROM audit_events WHERE seq = 10").await;
    let err = f.ledger.append(event(11)).await.unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
    let (seq, kind, text) = db_issue(&f).await;
    assert_eq!((seq, kind), (10, IssueKind::Deleted), "{text}");
}

#[tokio::test]
async fn db_edited_field_is_pinpointed() {
    let f = fixture(30).await;
    exec(
        &f,
        "UPDATE audit_events SET object_key = 'other' WHERE seq = 17",
    )
    .await;
    let (seq, kind, text) = db_issue(&f).await;
    assert_eq!((seq, kind), (17, IssueKind::ContentChanged), "{text}");
    assert!(text.contains("seq 17"), "{text}");
}

#[tokio::test]
async fn db_edited_and_rehashed_event_is_pinpointed() {
    let f = fixture(30).await;
    let mut e = f.ledger.get(12).await.unwrap().unwrap();
    e.status = 500;
    let new_hash = e.computed_hash();
    sqlx::query("UPDATE audit_events SET status = 500, hash = $1 WHERE seq = 12")
        .bind(&new_hash)
        .execute(f.ledger.pool())
        .await
        .unwrap();
    let (seq, kind, text) = db_issue(&f).await;
    assert_eq!((seq, kind), (12, IssueKind::Altered), "{text}");
}

#[tokio::test]
async fn db_deleted_event_is_pinpointed() {
    let f = fixture(30).await;
    exec(&f, "DELETE FROM audit_events WHERE seq IN (8, 9)").await;
    let (seq, kind, text) = db_issue(&f).await;
    assert_eq!((seq, kind), (8, IssueKind::Deleted), "{text}");
    assert!(text.contains("8..=9"), "{text}");
    // Deleting the first event.
    let g = fixture(5).await;
    exec(&g, "DELETE FROM audit_events WHERE seq = 1").await;
    assert_eq!(db_issue(&g).await.0, 1);
    assert_eq!(db_issue(&g).await.1, IssueKind::Deleted);
    // Deleting the last event (the head record remembers it).
    let h = fixture(5).await;
    exec(&h, "DELETE FROM audit_events WHERE seq = 5").await;
    let (seq, kind, text) = db_issue(&h).await;
    assert_eq!((seq, kind), (5, IssueKind::Deleted), "{text}");
}

#[tokio::test]
async fn db_inserted_event_is_pinpointed() {
    let f = fixture(30).await;
    // Make room at seq 10 and insert a well-formed forged event that links to seq 9.
    exec(
        &f,
        "UPDATE audit_events SET seq = seq + 1000 WHERE seq >= 10",
    )
    .await;
    exec(
        &f,
        "UPDATE audit_events SET seq = seq - 999 WHERE seq >= 1000",
    )
    .await;
    exec(&f, "UPDATE audit_head SET seq = seq + 1").await;
    let nine = f.ledger.get(9).await.unwrap().unwrap();
    let mut forged = f.ledger.get(11).await.unwrap().unwrap();
    forged.seq = 10;
    forged.request_id = "forged".into();
    forged.prev_hash = nine.hash.clone();
    forged.hash = forged.computed_hash();
    sqlx::query(
        "INSERT INTO audit_events SELECT 10, time_ms, 'forged', kind, principal, tenant, action, \
         bucket, object_key, outcome, status, error_code, bytes_in, bytes_out, key_version, source, \
         duration_us, $1, $2 FROM audit_events WHERE seq = 11",
    )
    .bind(&forged.prev_hash)
    .bind(&forged.hash)
    .execute(f.ledger.pool())
    .await
    .unwrap();
    let (seq, kind, text) = db_issue(&f).await;
    assert_eq!((seq, kind), (10, IssueKind::Inserted), "{text}");

    // An event appended behind the ledger's back (head not updated).
    let g = fixture(5).await;
    let last = g.ledger.get(5).await.unwrap().unwrap();
    let mut extra = last.clone();
    extra.seq = 6;
    extra.prev_hash = last.hash.clone();
    extra.hash = extra.computed_hash();
    sqlx::query(
        "INSERT INTO audit_events SELECT 6, time_ms, request_id, kind, principal, tenant, action, \
         bucket, object_key, outcome, status, error_code, bytes_in, bytes_out, key_version, source, \
         duration_us, $1, $2 FROM audit_events WHERE seq = 5",
    )
    .bind(&extra.prev_hash)
    .bind(&extra.hash)
    .execute(g.ledger.pool())
    .await
    .unwrap();
    let (seq, kind, text) = db_issue(&g).await;
    assert_eq!((seq, kind), (6, IssueKind::Inserted), "{text}");
}

#[tokio::test]
async fn db_swapped_events_are_pinpointed() {
    let f = fixture(30).await;
    // Swap the whole rows of seq 20 and 21 (every column except seq).
    exec(&f, "UPDATE audit_events SET seq = -20 WHERE seq = 20").await;
    exec(&f, "UPDATE audit_events SET seq = 20 WHERE seq = 21").await;
    exec(&f, "UPDATE audit_events SET seq = 21 WHERE seq = -20").await;
    let (seq, kind, text) = db_issue(&f).await;
    assert_eq!((seq, kind), (20, IssueKind::Reordered), "{text}");
}

#[tokio::test]
async fn mirror_tampering_is_pinpointed() {
    let f = fixture(25).await;
    let lines = read_lines(&f.mirror);
    assert_eq!(lines.len(), 25);
    assert!(verify_bytes("m".into(), format!("{}\n", lines.join("\n")).as_bytes()).is_ok());

    // edit a field
    let mut edited = lines.clone();
    edited[9] = edited[9].replace("\"bytes_in\":100", "\"bytes_in\":101");
    assert_ne!(edited[9], lines[9]);
    assert_eq!(file_issue(&edited), (10, IssueKind::ContentChanged));

    // delete a line
    let mut deleted = lines.clone();
    deleted.remove(14);
    assert_eq!(file_issue(&deleted), (15, IssueKind::Deleted));

    // insert a forged line claiming seq 5 before the real one
    let mut inserted = lines.clone();
    let mut forged: StoredEvent = serde_json::from_str(&lines[4]).unwrap();
    forged.request_id = "forged".into();
    forged.hash = forged.computed_hash();
    inserted.insert(4, forged.to_json_line());
    assert_eq!(file_issue(&inserted), (5, IssueKind::Inserted));

    // swap two lines
    let mut swapped = lines.clone();
    swapped.swap(6, 7);
    assert_eq!(file_issue(&swapped), (7, IssueKind::Reordered));

    // a line that is not an event
    let mut garbage = lines.clone();
    garbage[3] = "{\"seq\":4}".into();
    assert_eq!(file_issue(&garbage), (4, IssueKind::Malformed));

    // truncated start
    let headless = lines[2..].to_vec();
    assert_eq!(file_issue(&headless), (1, IssueKind::Deleted));

    // and the file on disk: tamper in place and verify the path
    std::fs::write(&f.mirror, format!("{}\n", edited.join("\n"))).unwrap();
    let report = verify_file(&f.mirror).await.unwrap();
    assert_eq!(report.issue.as_ref().map(|i| i.seq), Some(10));
    assert!(report.to_string().contains("BROKEN at seq 10"), "{report}");
}

#[tokio::test]
async fn retention_prunes_and_chain_verifies_from_checkpoint() {
    let f = fixture(50).await;
    let key = EvidenceKey::from_seed(&[3u8; 32]);
    // Events 1..=20 have time_ms < 1_000_021.
    let report = f
        .ledger
        .prune_before(&key, 1_000_021, 2_000_000)
        .await
        .unwrap();
    assert_eq!(report.deleted, 20);
    let cp = report.checkpoint.clone().unwrap();
    assert_eq!(cp.seq, 20);
    assert!(cp.check_signature(Some(&key.public_key())).is_ok());
    assert!(f.ledger.get(20).await.unwrap().is_none());
    assert!(f.ledger.get(21).await.unwrap().is_some());

    let v = verify_database(&f.url, Some(&key.public_key()))
        .await
        .unwrap();
    assert!(v.is_ok(), "{v}");
    assert_eq!(v.events, 30);
    assert_eq!(v.first_seq, Some(21));
    assert!(v.to_string().contains("checkpoint after seq 20"), "{v}");

    // Appending continues the chain after pruning.
    assert_eq!(f.ledger.append(event(51)).await.unwrap().seq, 51);
    assert!(
        f.ledger
            .verify(Some(&key.public_key()))
            .await
            .unwrap()
            .is_ok()
    );

    // Nothing more to prune at the same cutoff.
    let again = f
        .ledger
        .prune_before(&key, 1_000_021, 2_000_001)
        .await
        .unwrap();
    assert_eq!(again.deleted, 0);
    assert!(again.checkpoint.is_none());

    // Default retention (90 days) measured from "now": everything is older, all pruned.
    let all = f.ledger.prune(&key, 10_000_000_000).await.unwrap();
    assert_eq!(all.deleted, 31);
    assert!(
        f.ledger
            .verify(Some(&key.public_key()))
            .await
            .unwrap()
            .is_ok()
    );
    assert_eq!(f.ledger.append(event(52)).await.unwrap().seq, 52);
    let v = f.ledger.verify(Some(&key.public_key())).await.unwrap();
    assert!(v.is_ok(), "{v}");
    assert_eq!((v.events, v.first_seq), (1, Some(52)));

    // Another key does not pin the checkpoint.
    let other = EvidenceKey::from_seed(&[4u8; 32]).public_key();
    let v = verify_database(&f.url, Some(&other)).await.unwrap();
    assert_eq!(v.issue.unwrap().kind, IssueKind::BadCheckpoint);

    // A forged checkpoint (moved forward to hide events) fails its signature.
    exec(
        &f,
        "UPDATE audit_checkpoints SET seq = seq + 1 WHERE seq = 51",
    )
    .await;
    let v = verify_database(&f.url, None).await.unwrap();
    let issue = v.issue.unwrap();
    assert_eq!((issue.seq, issue.kind), (52, IssueKind::BadCheckpoint));
}

#[tokio::test]
async fn events_deleted_after_a_checkpoint_are_found_and_pruning_refuses_broken_ledgers() {
    let f = fixture(30).await;
    let key = EvidenceKey::from_seed(&[3u8; 32]);
    f.ledger
        .prune_before(&key, 1_000_011, 2_000_000)
        .await
        .unwrap();
    exec(&f, "DELETE FROM audit_events WHERE seq = 11").await;
    let v = verify_database(&f.url, Some(&key.public_key()))
        .await
        .unwrap();
    let issue = v.issue.unwrap();
    assert_eq!((issue.seq, issue.kind), (11, IssueKind::Deleted));

    let g = fixture(30).await;
    exec(
        &g,
        "UPDATE audit_events SET principal = 'mallory' WHERE seq = 3",
    )
    .await;
    let err = g
        .ledger
        .prune_before(&key, 1_000_020, 2_000_000)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refusing to prune"), "{err}");
    assert!(g.ledger.get(1).await.unwrap().is_some());
}

/// Throughput of the group-committed append path under 64 concurrent appenders on a file
/// database (debug build). Prints appends/s; fails if the ledger cannot sustain 1000/s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_throughput_with_group_commit() {
    let f = fixture_with(|_| LedgerConfig::default()).await;
    let n_tasks = 64u64;
    let per_task = 100u64;
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for t in 0..n_tasks {
        let ledger = f.ledger.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_task {
                ledger.append(event(t * 1000 + i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let total = n_tasks * per_task;
    let rate = total as f64 / secs;
    let stats = f.ledger.stats().snapshot();
    println!(
        "audit appends: {total} in {secs:.3} s = {rate:.0}/s, {} transactions (avg batch {:.1})",
        stats.batches,
        total as f64 / stats.batches as f64
    );
    assert_eq!(stats.appended, total);
    assert!(rate > 1000.0, "only {rate:.0} appends/s");
    assert!(f.ledger.verify(None).await.unwrap().is_ok());
}

#[tokio::test]
async fn mirror_enabled_later_is_caught_up_from_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = audit::db::test_database_url()
        .unwrap_or_else(|| format!("sqlite://{}/index.db", dir.path().display()));
    let mirror = dir.path().join("audit.jsonl");
    let pool = open_pool(&url, true).await.unwrap();
    let plain = Ledger::open(pool.clone(), LedgerConfig::default())
        .await
        .unwrap();
    for i in 1..=10 {
        plain.append(event(i)).await.unwrap();
    }
    drop(plain);
    let cfg = || LedgerConfig {
        mirror_path: Some(mirror.clone()),
        ..LedgerConfig::default()
    };
    let with_mirror = Ledger::open(pool.clone(), cfg()).await.unwrap();
    assert_eq!(read_lines(&mirror).len(), 10);
    for i in 11..=15 {
        with_mirror.append(event(i)).await.unwrap();
    }
    // Simulate a crash after a commit but before the mirror write: drop the last line.
    let mut lines = read_lines(&mirror);
    lines.pop();
    std::fs::write(&mirror, format!("{}\n", lines.join("\n"))).unwrap();
    drop(with_mirror);
    let reopened = Ledger::open(pool.clone(), cfg()).await.unwrap();
    reopened.append(event(16)).await.unwrap();
    let report = verify_file(&mirror).await.unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.events, 16);

    // A mirror that is not a regular file is refused.
    let err = Ledger::open(
        pool.clone(),
        LedgerConfig {
            mirror_path: Some(dir.path().to_path_buf()),
            ..LedgerConfig::default()
        },
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string().contains(&dir.path().display().to_string()),
        "{err}"
    );

    // A mirror whose tail is unreadable is refused rather than extended.
    std::fs::write(&mirror, "garbage without events\n").unwrap();
    drop(reopened);
    assert!(Ledger::open(pool, cfg()).await.is_err());
}

#[tokio::test]
async fn verification_during_concurrent_appends_sees_a_consistent_snapshot() {
    let f = fixture(100).await;
    let writer = {
        let ledger = f.ledger.clone();
        tokio::spawn(async move {
            for i in 101..=400 {
                ledger.append(event(i)).await.unwrap();
            }
        })
    };
    let mut checks = 0;
    while !writer.is_finished() {
        let report = f.ledger.verify(None).await.unwrap();
        assert!(report.is_ok(), "{report}");
        checks += 1;
    }
    writer.await.unwrap();
    assert!(checks > 0);
    assert_eq!(f.ledger.verify(None).await.unwrap().events, 400);
}

/// Queued (read) events: committed by the writer without the caller waiting; every reader of
/// the ledger sees them (it syncs first); after a failed commit the next queued event is
/// appended and waited for, so it fails closed, and the first one kept clears the failure.
#[tokio::test]
async fn queued_events_are_committed_and_fail_closed_after_a_failed_commit() {
    let f = fixture(3).await;
    for i in 4..=53 {
        f.ledger.enqueue(event(i)).await.unwrap();
    }
    // the head, queries and verification wait for what was queued before them
    assert_eq!(f.ledger.head().await.unwrap().seq, 53);
    assert!(f.ledger.verify(None).await.unwrap().is_ok());
    assert_eq!(f.ledger.stats().snapshot().failures, 0);

    refuse_inserts(&f, true).await;
    // queued into a batch that fails: accepted, then counted as lost
    f.ledger.enqueue(event(54)).await.unwrap();
    f.ledger.sync().await;
    assert_eq!(f.ledger.stats().snapshot().failures, 1);
    // now the ledger is failing: the next read's event is waited for, and refused
    assert!(f.ledger.enqueue(event(55)).await.is_err());
    assert_eq!(f.ledger.stats().snapshot().failures, 2);
    refuse_inserts(&f, false).await;
    // the first event kept clears the failure; queued events flow again
    f.ledger.enqueue(event(56)).await.unwrap();
    f.ledger.enqueue(event(57)).await.unwrap();
    assert_eq!(f.ledger.head().await.unwrap().seq, 55);
    assert!(f.ledger.verify(None).await.unwrap().is_ok());
}

#[tokio::test]
async fn a_reads_event_waits_for_the_linger_until_a_waited_event_or_a_sync_ends_it() {
    // a linger far longer than the test: only a waited append or a sync can end it
    let f = fixture_with(|_| LedgerConfig {
        read_linger: Duration::from_secs(600),
        ..LedgerConfig::default()
    })
    .await;
    f.ledger.enqueue(event(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        f.ledger.stats().snapshot().appended,
        0,
        "a read's queued event is gathered for the linger, not committed at once"
    );
    f.ledger.enqueue(event(2)).await.unwrap();
    let receipt = tokio::time::timeout(Duration::from_secs(30), f.ledger.append(event(3)))
        .await
        .expect("an event somebody waits for ends the linger")
        .unwrap();
    assert_eq!(receipt.seq, 3);
    let s = f.ledger.stats().snapshot();
    assert_eq!(
        (s.appended, s.batches),
        (3, 1),
        "the three in one transaction"
    );

    f.ledger.enqueue(event(4)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), f.ledger.sync())
        .await
        .expect("a sync ends the linger");
    assert_eq!(f.ledger.stats().snapshot().appended, 4);
    assert!(f.ledger.verify(None).await.unwrap().is_ok());
}

#[tokio::test]
async fn reads_events_arriving_one_by_one_share_transactions() {
    let f = fixture_with(|_| LedgerConfig::default()).await;
    let start = std::time::Instant::now();
    for i in 1..=40 {
        f.ledger.enqueue(event(i)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    f.ledger.sync().await;
    let elapsed = start.elapsed();
    let s = f.ledger.stats().snapshot();
    assert_eq!(s.appended, 40);
    // each transaction but the last gathered reads' events for a whole linger, and the lingers
    // do not overlap; without the linger each event (1 ms apart) would be a transaction
    let bound = (elapsed.as_secs_f64() / audit::READ_LINGER.as_secs_f64()).floor() as u64 + 1;
    assert!(
        s.batches <= bound,
        "{} transactions for 40 events in {elapsed:?} (at most {bound})",
        s.batches
    );
    assert!(f.ledger.verify(None).await.unwrap().is_ok());
}

#[tokio::test]
async fn a_batch_larger_than_one_insert_is_committed_whole_and_verifies() {
    let f = fixture(0).await;
    // queued faster than the writer commits: batches of up to 512 events, each inserted by
    // statements of 256 rows
    for i in 1..=1100 {
        f.ledger.enqueue(event(i)).await.unwrap();
    }
    assert_eq!(f.ledger.head().await.unwrap().seq, 1100);
    let s = f.ledger.stats().snapshot();
    assert_eq!((s.appended, s.failures), (1100, 0));
    assert!(s.batches < 1100, "{} transactions", s.batches);
    let page = f
        .ledger
        .query(&AuditQuery {
            limit: 3,
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let seqs: Vec<i64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1100, 1099, 1098]);
    assert_eq!(page.events[0].request_id, "req-1100");
    assert!(f.ledger.verify(None).await.unwrap().is_ok());
    assert_eq!(read_lines(&f.mirror).len(), 1100);
    assert!(verify_file(&f.mirror).await.unwrap().is_ok());
}
