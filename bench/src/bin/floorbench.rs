//! What the database work of one small GET costs on this machine, apart from everything else a
//! request does: the CPU time this process spends per operation (all its threads, Tokio's and
//! the SQLite connections') for
//!
//! - `hop`: `SELECT 1` on one SQLite connection through sqlx, whose connections each run on a
//!   thread of their own: what any query costs before SQLite does anything;
//! - `read`: the read every GET and HEAD makes (`Index::get_version` of the latest version:
//!   the version row with its stream, a 4 KiB object's sealed bytes inline), over distinct
//!   keys as `s3bench`'s GET phase reads them;
//! - `audit`: a read's audit event recorded as the S3 front end does (`RequestAudit::finish_read`:
//!   queued for the ledger), committed by its writer in batches gathered for up to `audit::READ_LINGER`, as the server does;
//! - `read+audit`: both, as one GET does.
//!
//! at 1 and at 16 concurrent callers, on a fresh SQLite index in a temporary directory under
//! `--dir`. The `s3bench` small GET rows compare these with the server's CPU per GET and with
//! the `ceiling` server's (HTTP alone): the GET floor in docs/PERFORMANCE.md.
//!
//! Run: `cargo run --release -p bench --bin floorbench [-- --ops N --dir DIR]`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use anyhow::{Context, Result};
use bench::cpu_ns;
use clap::Parser;
use gateway::index::{Index, Inline, ObjectRecord, StreamRecord};

#[derive(Parser, Debug)]
#[command(about = "CPU per operation of a small GET's database work (index read, audit event)")]
struct Args {
    /// operations per measurement (distinct keys for the reads)
    #[arg(long, default_value_t = 20_000)]
    ops: usize,
    /// where the temporary index is created (removed at the end)
    #[arg(long, default_value = "/tmp")]
    dir: std::path::PathBuf,
    /// bytes of each object's inline sealed stream
    #[arg(long, default_value_t = 4096 + 120)]
    inline_bytes: usize,
}

const BUCKET: &str = "floor";

fn key_of(set: usize, i: usize) -> String {
    format!("small/s{set}/{i:06}")
}

/// A 4 KiB single-PUT object as the gateway indexes it: one stream, its sealed bytes inline.
fn record(key: String, i: usize, inline_bytes: usize) -> ObjectRecord {
    let mut headers = BTreeMap::new();
    headers.insert("content-type".to_owned(), "binary/octet-stream".to_owned());
    let data: Vec<u8> = (0..inline_bytes)
        .map(|b| (b.wrapping_mul(31) ^ i) as u8)
        .collect();
    ObjectRecord {
        bucket: BUCKET.to_owned(),
        key,
        version_id: gateway::index::NULL_VERSION.to_owned(),
        is_latest: true,
        delete_marker: false,
        lock: Default::default(),
        size: 4096,
        etag: format!("{i:032x}"),
        last_modified_ms: 1_765_000_000_000 + i as i64,
        headers,
        user_metadata: BTreeMap::new(),
        checksums: BTreeMap::new(),
        data_key_id: "0123456789abcdef0123456789abcdef".to_owned(),
        key_version: 1,
        streams: vec![StreamRecord {
            backend_id: format!("ob/{i:032x}"),
            part_number: 0,
            header: vec![7; 64],
            plaintext_len: 4096,
            md5_hex: format!("{i:032x}"),
            checksums: BTreeMap::new(),
            inline: Some(Inline {
                data: data.into(),
                pending: false,
            }),
        }],
        manifest_id: None,
    }
}

/// A GET's audit event, recorded as the S3 front end records it: the request's scope filled
/// in as it is served, then finished as a read (queued for the ledger's next commit).
async fn audit_read(ledger: &audit::Ledger, key: &str) -> Result<()> {
    let scope = audit::RequestAudit::new(
        ledger.clone(),
        audit::EventKind::S3,
        audit::new_request_id(),
        Some("127.0.0.1:40000".to_owned()),
    );
    scope.set_action("GetObject");
    scope.set_principal(
        Some("benchaccesskey01".to_owned()),
        Some("default".to_owned()),
    );
    scope.set_target(Some(BUCKET.to_owned()), Some(key.to_owned()));
    scope.set_key_version(1);
    scope.finish_read(200, None, 4096).await?;
    Ok(())
}

/// One measured row.
struct Row {
    name: String,
    ops_s: f64,
    cpu_us: f64,
}

/// Runs `op(i)` for i in 0..ops from `conc` tasks; answers the row. With `ledger`, the time and
/// CPU include its writer committing the last events queued (`Ledger::sync`).
async fn measure<F, Fut>(
    name: &str,
    ops: usize,
    conc: usize,
    ledger: Option<&audit::Ledger>,
    op: F,
) -> Result<Row>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let (t, c) = (Instant::now(), cpu_ns());
    let tasks: Vec<_> = (0..conc)
        .map(|_| {
            let (op, next) = (op.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= ops {
                        return Ok::<(), anyhow::Error>(());
                    }
                    op(i).await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    if let Some(ledger) = ledger {
        ledger.sync().await;
    }
    let (secs, cpu) = (t.elapsed().as_secs_f64(), (cpu_ns() - c) as f64 / 1e3);
    Ok(Row {
        name: name.to_owned(),
        ops_s: ops as f64 / secs,
        cpu_us: cpu / ops as f64,
    })
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = args.dir.join(format!("vgfloor-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let result = run(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    println!("| database work of a small GET | ops/s | CPU µs per op |");
    println!("|---|---|---|");
    for row in result? {
        println!("| {} | {:.0} | {:.1} |", row.name, row.ops_s, row.cpu_us);
    }
    Ok(())
}

async fn run(args: &Args, dir: &std::path::Path) -> Result<Vec<Row>> {
    let url = format!("sqlite://{}", dir.join("index.db").display());
    let index = Arc::new(Index::open(&url).await?);
    index.create_bucket(BUCKET, "bench").await?;
    let ledger = audit::Ledger::open_with_reader(
        index.write_pool().clone(),
        index.read_pool().clone(),
        audit::LedgerConfig::default(),
    )
    .await?;
    let ops = args.ops;
    // key sets: one per measurement that reads, so that no measurement reads what another did
    let sets = 4;
    let filled = Instant::now();
    for set in 0..sets {
        let ix = index.clone();
        let bytes = args.inline_bytes;
        measure("fill", ops, 16, None, move |i| {
            let ix = ix.clone();
            async move {
                ix.put_object(&record(key_of(set, i), i, bytes)).await?;
                Ok(())
            }
        })
        .await?;
    }
    eprintln!(
        "floorbench: {} objects of {} inline bytes written in {:.1} s",
        sets * ops,
        args.inline_bytes,
        filled.elapsed().as_secs_f64()
    );

    let mut rows = Vec::new();
    // hop: one connection of the read pool, taken out of it as the index keeps its own
    let conn = Arc::new(tokio::sync::Mutex::new(
        index.read_pool().acquire().await?.detach(),
    ));
    rows.push(
        measure("hop (SELECT 1), 1 caller", ops, 1, None, move |_| {
            let conn = conn.clone();
            async move {
                let mut c = conn.lock().await;
                sqlx::query("SELECT 1").fetch_all(&mut *c).await?;
                Ok(())
            }
        })
        .await?,
    );
    for (set, conc, audited) in [(0, 1, false), (1, 16, false), (2, 1, true), (3, 16, true)] {
        let (ix, lg) = (index.clone(), ledger.clone());
        let name = format!(
            "{}, {conc} caller{}",
            if audited { "read + audit" } else { "read" },
            if conc == 1 { "" } else { "s" }
        );
        rows.push(
            measure(&name, ops, conc, audited.then_some(&ledger), move |i| {
                let (ix, lg) = (ix.clone(), lg.clone());
                async move {
                    let key = key_of(set, i);
                    let rec = ix.get_object(BUCKET, &key).await?;
                    anyhow::ensure!(
                        rec.is_some_and(|r| r.streams[0].inline.is_some()),
                        "{key}: not found inline"
                    );
                    if audited {
                        audit_read(&lg, &key).await?;
                    }
                    Ok(())
                }
            })
            .await?,
        );
    }
    for conc in [1, 16] {
        let lg = ledger.clone();
        let name = format!("audit, {conc} caller{}", if conc == 1 { "" } else { "s" });
        rows.push(
            measure(&name, ops, conc, Some(&ledger), move |i| {
                let lg = lg.clone();
                async move { audit_read(&lg, &key_of(0, i)).await }
            })
            .await?,
        );
    }
    index.close().await;
    Ok(rows)
}
