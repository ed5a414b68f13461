//! `s3bench`: the side-by-side S3 benchmark client (issue 6).
//!
//! Owns the client half of the harness: it drives any S3 endpoint with the
//! real aws-sdk-s3 (default checksum settings, or checksums only when
//! required), runs the phases below, verifies every byte it reads back, and
//! samples the server process's CPU time (`/proc/PID/stat`) and peak RSS
//! (`/proc/PID/status`, reset per phase through `/proc/PID/clear_refs`).
//! One JSON object per phase goes to `--out` (JSON lines); `bench/run`
//! aggregates them into the table in docs/PERFORMANCE.md.
//!
//! Phases (`--phases`, comma-separated, in this order):
//! `put` single PUT of `--big-size` streamed from memory; `mpput` multipart
//! PUT of the same bytes (`--part-size`, `--mp-concurrency`); `get` GET of the
//! whole object verifying SHA-256; `range` `--ranges` random `--range-size`
//! range GETs (latency p50/p99, bytes compared); `small` `--small-size` PUTs
//! then GETs at concurrency 1 and 16 (ops/s, bytes compared); `list` LIST of a
//! bucket holding `--list-objects` keys; `cget` `--cget-streams` concurrent
//! GETs of one `--cget-size` object (aggregate MB/s, server peak RSS).

#[path = "s3bench/growth.rs"]
mod growth;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use md5::Md5;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;
const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ChecksumMode {
    /// The SDK defaults: CRC32 on every PUT/UploadPart (aws-chunked body with a trailer).
    Default,
    /// Checksums only when an operation requires them (request and response).
    Required,
}

impl ChecksumMode {
    fn name(self) -> &'static str {
        match self {
            ChecksumMode::Default => "default",
            ChecksumMode::Required => "required",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum BodyKind {
    /// A streaming body fed from memory in `--frame-size` frames: the SDK cannot hash it up
    /// front, so it signs UNSIGNED-PAYLOAD and, with default checksums, sends `aws-chunked`
    /// with a trailing CRC32 (what a client streaming a file does).
    Stream,
    /// One in-memory buffer: the SDK signs the payload's SHA-256 and sends CRC32 as a header.
    Bytes,
}

/// Command line of the benchmark client. Sizes accept `K`, `M`, `G` (binary) suffixes.
#[derive(Parser, Debug)]
#[command(
    name = "s3bench",
    about = "S3 benchmark client (aws-sdk-s3) for bench/run",
    // bench/run passes its sizes first and the user's flags after `--`: the last one counts
    args_override_self = true
)]
struct Args {
    /// S3 endpoint, e.g. http://127.0.0.1:9000 (path-style addressing is used).
    #[arg(long)]
    endpoint: String,
    #[arg(long, env = "S3BENCH_ACCESS_KEY")]
    access_key: String,
    #[arg(long, env = "S3BENCH_SECRET_KEY", hide_env_values = true)]
    secret_key: String,
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Buckets used are PREFIX-data and PREFIX-list (created unless --no-create-buckets).
    #[arg(long, default_value = "s3bench")]
    bucket_prefix: String,
    #[arg(long)]
    no_create_buckets: bool,
    /// PIDs of the server processes to sample (CPU seconds and RSS, summed over them; a
    /// comma-separated list for several instances behind a balancer).
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    #[arg(long, value_enum, default_value_t = ChecksumMode::Default)]
    checksums: ChecksumMode,
    /// How PUT/UploadPart bodies are handed to the SDK.
    #[arg(long, value_enum, default_value_t = BodyKind::Stream)]
    body: BodyKind,
    /// Frame size of streaming bodies.
    #[arg(long, default_value = "64K", value_parser = parse_size)]
    frame_size: u64,
    /// Comma-separated phases: put,mpput,get,range,small,list,cget,growth (growth is not in
    /// the default list: it fills a bucket to `--growth-steps` keys).
    #[arg(long, default_value = "put,mpput,get,range,small,list,cget")]
    phases: String,
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    big_size: u64,
    #[arg(long, default_value = "16M", value_parser = parse_size)]
    part_size: u64,
    #[arg(long, default_value_t = 4)]
    mp_concurrency: usize,
    #[arg(long, default_value_t = 1000)]
    ranges: usize,
    #[arg(long, default_value = "64K", value_parser = parse_size)]
    range_size: u64,
    #[arg(long, default_value = "4K", value_parser = parse_size)]
    small_size: u64,
    /// Operations per small phase (PUT c1, PUT c16, GET c1, GET c16).
    #[arg(long, default_value_t = 2000)]
    small_ops: usize,
    #[arg(long, default_value_t = 10_000)]
    list_objects: usize,
    /// Bucket sizes (keys) the growth phase measures at, ascending.
    /// A list given again replaces the first (clap would append it).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10000,100000,1000000",
        action = clap::ArgAction::Set
    )]
    growth_steps: Vec<usize>,
    /// Operations per growth measurement (PUT c16 and GET c16 each).
    #[arg(long, default_value_t = 1000)]
    growth_ops: usize,
    #[arg(long, default_value = "256M", value_parser = parse_size)]
    cget_size: u64,
    #[arg(long, default_value_t = 16)]
    cget_streams: usize,
    /// Seed of the payload and of the range offsets.
    #[arg(long, default_value_t = 0x5eed_0006)]
    seed: u64,
    /// Free-form labels copied into every JSON record.
    #[arg(long, default_value = "")]
    server: String,
    #[arg(long, default_value_t = 0)]
    round: u32,
    /// Append one JSON object per phase to this file (also printed to stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Clock ticks per second of /proc/PID/stat (getconf CLK_TCK).
    #[arg(long, default_value_t = 100)]
    clk_tck: u64,
}

/// The `map_err` of an SDK call: `what` and the SDK error with its whole source chain.
fn sdk_err<E: std::error::Error + 'static>(
    what: impl std::fmt::Display,
) -> impl FnOnce(E) -> anyhow::Error {
    move |e| anyhow!("{what}: {}", aws_sdk_s3::error::DisplayErrorContext(&e))
}

fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = s[i..].to_ascii_uppercase();
            let mult = match unit.trim_end_matches("IB").trim_end_matches('B') {
                "" => 1,
                "K" => 1024,
                "M" => MIB,
                "G" => 1024 * MIB,
                _ => return Err(format!("unknown size unit in {s:?}")),
            };
            (&s[..i], mult)
        }
        None => (s, 1),
    };
    let n: u64 = num.parse().map_err(|e| format!("bad size {s:?}: {e}"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} overflows"))
}

/// splitmix64: a fast deterministic generator for incompressible payloads and offsets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

fn payload(len: u64, seed: u64) -> Result<Bytes> {
    let len = usize::try_from(len).context("payload size does not fit in memory")?;
    let mut v = Vec::with_capacity(len + 8);
    let mut rng = Rng(seed);
    while v.len() < len {
        v.extend_from_slice(&rng.next().to_le_bytes());
    }
    v.truncate(len);
    Ok(Bytes::from(v))
}

/// A request body streamed from an in-memory buffer in fixed-size frames, with an exact
/// size hint (the SDK needs the length to frame `aws-chunked`).
struct FramedBody {
    data: Bytes,
    frame: usize,
}

impl hyper::body::Body for FramedBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if self.data.is_empty() {
            return std::task::Poll::Ready(None);
        }
        let n = self.frame.min(self.data.len());
        let chunk = self.data.split_to(n);
        std::task::Poll::Ready(Some(Ok(hyper::body::Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_empty()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.data.len() as u64)
    }
}

/// The body of a PUT or UploadPart as `--body` asks; retryable either way.
fn request_body(kind: BodyKind, frame: u64, data: Bytes) -> ByteStream {
    match kind {
        BodyKind::Bytes => ByteStream::from(data),
        BodyKind::Stream => {
            let frame = usize::try_from(frame).unwrap_or(usize::MAX).max(1);
            ByteStream::new(SdkBody::retryable(move || {
                SdkBody::from_body_1_x(FramedBody {
                    data: data.clone(),
                    frame,
                })
            }))
        }
    }
}

/// Reads of the server processes' /proc files (summed over them).
#[derive(Clone)]
struct Proc {
    pids: Arc<[u32]>,
    clk_tck: u64,
}

impl Proc {
    fn cpu_ticks_of(path: &str) -> Option<u64> {
        let stat = std::fs::read_to_string(path).ok()?;
        // Fields after the command name "(…)": state is field 3, utime 14, stime 15.
        let rest = &stat[stat.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = f.get(11)?.parse().ok()?;
        let stime: u64 = f.get(12)?.parse().ok()?;
        Some(utime + stime)
    }
    /// The sum of `f(pid)` over the server processes; None without any or when one fails.
    fn sum(&self, f: impl Fn(u32) -> Option<u64>) -> Option<u64> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids.iter().map(|p| f(*p)).sum()
    }
    fn server_cpu_s(&self) -> Option<f64> {
        self.sum(|pid| Self::cpu_ticks_of(&format!("/proc/{pid}/stat")))
            .map(|t| t as f64 / self.clk_tck as f64)
    }
    fn client_cpu_s(&self) -> Option<f64> {
        Self::cpu_ticks_of("/proc/self/stat").map(|t| t as f64 / self.clk_tck as f64)
    }
    fn status_kib(&self, field: &str) -> Option<u64> {
        self.sum(|pid| {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            status
                .lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
    }
    /// Bytes the server processes had read from storage (`/proc/PID/io` `read_bytes`: what
    /// the page cache did not hold), so a window shows whether its requests read the disk.
    fn server_read_bytes(&self) -> Option<u64> {
        self.sum(|pid| {
            let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
            io.lines()
                .find_map(|l| l.strip_prefix("read_bytes:"))
                .and_then(|v| v.trim().parse().ok())
        })
    }
    /// Voluntary context switches of the server processes: the sum over every thread alive
    /// now (`/proc/PID/task/*/status`; a thread that ended since takes its count with it).
    /// Each is a thread going to sleep to wait for another: the hand-off cost of a request.
    fn server_ctx_switches(&self) -> Option<u64> {
        self.sum(|pid| {
            let mut total = 0;
            for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
                let Ok(status) = std::fs::read_to_string(task.ok()?.path().join("status")) else {
                    continue; // the thread ended meanwhile
                };
                total += status
                    .lines()
                    .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
                    .and_then(|v| v.trim().parse::<u64>().ok())?;
            }
            Some(total)
        })
    }
    /// Resets VmHWM (peak RSS) to the current RSS of every server process; false when not
    /// permitted.
    fn reset_peak(&self) -> bool {
        !self.pids.is_empty()
            && self
                .pids
                .iter()
                .all(|pid| std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok())
    }
}

/// Per-phase measurement window: server/client CPU, server disk reads, peak RSS (VmHWM after a
/// reset, and a 10 ms VmRSS sampler as a cross-check), wall time.
struct Window {
    proc_: Proc,
    t0: Instant,
    server_cpu0: Option<f64>,
    client_cpu0: Option<f64>,
    server_ctx0: Option<u64>,
    server_read0: Option<u64>,
    hwm_reset: bool,
    stop: Arc<AtomicBool>,
    sampled_max_kib: Arc<AtomicU64>,
    sampler: Option<tokio::task::JoinHandle<()>>,
}

/// Waits until the server uses under 5 % of a core over 100 ms, at most `max`; the seconds
/// waited (0 when there is no server process to watch).
async fn settle(proc_: &Proc, max: Duration) -> f64 {
    const STEP: Duration = Duration::from_millis(100);
    let t = Instant::now();
    let Some(mut last) = proc_.server_cpu_s() else {
        return 0.0;
    };
    while t.elapsed() < max {
        tokio::time::sleep(STEP).await;
        let Some(now) = proc_.server_cpu_s() else {
            break;
        };
        if now - last < 0.05 * STEP.as_secs_f64() {
            break;
        }
        last = now;
    }
    t.elapsed().as_secs_f64()
}

impl Window {
    fn open(proc_: Proc) -> Window {
        let hwm_reset = proc_.reset_peak();
        let stop = Arc::new(AtomicBool::new(false));
        let sampled_max_kib = Arc::new(AtomicU64::new(0));
        let sampler = (!proc_.pids.is_empty()).then(|| {
            let stop = stop.clone();
            let max = sampled_max_kib.clone();
            let proc_ = proc_.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kib) = proc_.status_kib("VmRSS:") {
                        max.fetch_max(kib, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        });
        let (server_cpu0, client_cpu0) = (proc_.server_cpu_s(), proc_.client_cpu_s());
        let server_ctx0 = proc_.server_ctx_switches();
        let server_read0 = proc_.server_read_bytes();
        Window {
            proc_,
            t0: Instant::now(),
            server_cpu0,
            client_cpu0,
            server_ctx0,
            server_read0,
            hwm_reset,
            stop,
            sampled_max_kib,
            sampler,
        }
    }

    /// Closes the window and returns (seconds, fields to merge into the record).
    async fn close(self, bytes: Option<u64>) -> (f64, serde_json::Map<String, Value>) {
        let secs = self.t0.elapsed().as_secs_f64();
        self.finish(secs, bytes).await
    }

    /// Closes the window once the server has settled: the seconds are the requests' (until
    /// now), the server's CPU and context switches also count what it does after the last
    /// answer until it is idle (work a request left for later, such as Vaultgate's write-back
    /// of inline objects, is charged to the row that caused it, not to the next row); the
    /// time that took (at most 10 s) is `settle_s`.
    async fn close_settled(self, bytes: Option<u64>) -> (f64, serde_json::Map<String, Value>) {
        let secs = self.t0.elapsed().as_secs_f64();
        let settled = settle(&self.proc_, Duration::from_secs(10)).await;
        let (secs, mut m) = self.finish(secs, bytes).await;
        m.insert("settle_s".into(), json!(settled));
        (secs, m)
    }

    async fn finish(
        mut self,
        secs: f64,
        bytes: Option<u64>,
    ) -> (f64, serde_json::Map<String, Value>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.sampler.take() {
            let _ = h.await;
        }
        let mut m = serde_json::Map::new();
        m.insert("secs".into(), json!(secs));
        if let (Some(a), Some(b)) = (self.server_cpu0, self.proc_.server_cpu_s()) {
            m.insert("server_cpu_s".into(), json!(b - a));
            if let Some(n) = bytes.filter(|n| *n > 0) {
                m.insert(
                    "server_cpu_s_per_gib".into(),
                    json!((b - a) * GIB / n as f64),
                );
            }
        }
        if let (Some(a), Some(b)) = (self.client_cpu0, self.proc_.client_cpu_s()) {
            m.insert("client_cpu_s".into(), json!(b - a));
        }
        if let (Some(a), Some(b)) = (self.server_ctx0, self.proc_.server_ctx_switches()) {
            m.insert("server_ctx_switches".into(), json!(b.saturating_sub(a)));
        }
        if let (Some(a), Some(b)) = (self.server_read0, self.proc_.server_read_bytes()) {
            m.insert(
                "server_disk_read_mib".into(),
                json!(b.saturating_sub(a) as f64 / MIB as f64),
            );
        }
        if let Some(n) = bytes {
            m.insert("bytes".into(), json!(n));
            m.insert("mb_s".into(), json!(n as f64 / secs / 1e6));
        }
        if self.hwm_reset
            && let Some(kib) = self.proc_.status_kib("VmHWM:")
        {
            m.insert("rss_peak_mib".into(), json!(kib as f64 / 1024.0));
        }
        let sampled = self.sampled_max_kib.load(Ordering::Relaxed);
        if sampled > 0 {
            m.insert("rss_sampled_max_mib".into(), json!(sampled as f64 / 1024.0));
        }
        (secs, m)
    }
}

struct Bench {
    args: Args,
    s3: Client,
    proc_: Proc,
    data: Bytes,
    data_bucket: String,
    list_bucket: String,
}

fn etag_trim(e: Option<&str>) -> String {
    e.unwrap_or_default().trim_matches('"').to_string()
}

/// Reads a GET body to the end, comparing every byte to `expected`; returns bytes read.
async fn drain_compare(mut body: ByteStream, expected: &[u8]) -> Result<u64> {
    let mut off = 0usize;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.context("reading GET body")?;
        let end = off + chunk.len();
        if end > expected.len() || chunk[..] != expected[off..end] {
            bail!("body differs from the uploaded bytes at offset {off}");
        }
        off = end;
    }
    if off != expected.len() {
        bail!("short body: {off} of {} bytes", expected.len());
    }
    Ok(off as u64)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Bench {
    fn body(&self, data: Bytes) -> ByteStream {
        request_body(self.args.body, self.args.frame_size, data)
    }

    fn big(&self) -> Bytes {
        self.data.slice(..self.args.big_size as usize)
    }

    fn small_body(&self, i: usize) -> Bytes {
        let n = self.args.small_size as usize;
        let span = self.data.len().saturating_sub(n).max(1);
        let off = (i.wrapping_mul(7919 * 4096)) % span;
        self.data.slice(off..off + n)
    }

    async fn ensure_bucket(&self, b: &str) -> Result<()> {
        if self.args.no_create_buckets {
            return Ok(());
        }
        match self.s3.create_bucket().bucket(b).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let code = e.as_service_error().and_then(|s| {
                    use aws_sdk_s3::error::ProvideErrorMetadata;
                    s.code().map(str::to_string)
                });
                match code.as_deref() {
                    Some("BucketAlreadyOwnedByYou") | Some("BucketAlreadyExists") => Ok(()),
                    _ => Err(sdk_err(format!("CreateBucket {b}"))(e)),
                }
            }
        }
    }

    async fn phase_put(&self) -> Result<Value> {
        let body = self.big();
        let md5 = hex::encode(Md5::digest(&body));
        let w = Window::open(self.proc_.clone());
        let out = self
            .s3
            .put_object()
            .bucket(&self.data_bucket)
            .key("big")
            .body(self.body(body.clone()))
            .send()
            .await
            .map_err(sdk_err("PutObject"))?;
        let (_, mut m) = w.close(Some(body.len() as u64)).await;
        m.insert("etag_is_md5".into(), json!(etag_trim(out.e_tag()) == md5));
        Ok(Value::Object(m))
    }

    async fn phase_mpput(&self) -> Result<Value> {
        let body = self.big();
        let part = self.args.part_size as usize;
        let w = Window::open(self.proc_.clone());
        let up = self
            .s3
            .create_multipart_upload()
            .bucket(&self.data_bucket)
            .key("mp")
            .send()
            .await
            .map_err(sdk_err("CreateMultipartUpload"))?;
        let upload_id = up
            .upload_id()
            .ok_or_else(|| anyhow!("no UploadId"))?
            .to_string();
        let nparts = body.len().div_ceil(part).max(1);
        let mut parts = self
            .upload_mp_parts(&body, part, nparts, &upload_id)
            .await?;
        parts.sort_by_key(|p| p.part_number());
        self.s3
            .complete_multipart_upload()
            .bucket(&self.data_bucket)
            .key("mp")
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(sdk_err("CompleteMultipartUpload"))?;
        let (_, mut m) = w.close(Some(body.len() as u64)).await;
        let head = self
            .s3
            .head_object()
            .bucket(&self.data_bucket)
            .key("mp")
            .send()
            .await
            .map_err(sdk_err("HeadObject mp"))?;
        if head.content_length() != Some(body.len() as i64) {
            bail!(
                "multipart object size {:?} != {}",
                head.content_length(),
                body.len()
            );
        }
        m.insert("parts".into(), json!(nparts));
        Ok(Value::Object(m))
    }

    /// Uploads `body` as the `nparts` parts of `part` bytes of upload `upload_id` of `mp`,
    /// `mp_concurrency` at a time; the first failure aborts the upload.
    async fn upload_mp_parts(
        &self,
        body: &Bytes,
        part: usize,
        nparts: usize,
        upload_id: &str,
    ) -> Result<Vec<CompletedPart>> {
        let results: Vec<Result<CompletedPart>> = futures::stream::iter(0..nparts)
            .map(|i| {
                let chunk = body.slice(i * part..((i + 1) * part).min(body.len()));
                let req = self
                    .s3
                    .upload_part()
                    .bucket(&self.data_bucket)
                    .key("mp")
                    .upload_id(upload_id)
                    .part_number(i as i32 + 1)
                    .body(self.body(chunk));
                async move {
                    let out = req
                        .send()
                        .await
                        .map_err(sdk_err(format!("UploadPart {}", i + 1)))?;
                    let mut cp = CompletedPart::builder().part_number(i as i32 + 1);
                    if let Some(e) = out.e_tag() {
                        cp = cp.e_tag(e);
                    }
                    if let Some(c) = out.checksum_crc32() {
                        cp = cp.checksum_crc32(c);
                    }
                    Ok(cp.build())
                }
            })
            .buffer_unordered(self.args.mp_concurrency.max(1))
            .collect()
            .await;
        let mut parts = Vec::with_capacity(nparts);
        for r in results {
            match r {
                Ok(p) => parts.push(p),
                Err(e) => {
                    let _ = self
                        .s3
                        .abort_multipart_upload()
                        .bucket(&self.data_bucket)
                        .key("mp")
                        .upload_id(upload_id)
                        .send()
                        .await;
                    return Err(e);
                }
            }
        }
        Ok(parts)
    }

    async fn phase_get(&self) -> Result<Value> {
        let expected = self.big();
        let want = Sha256::digest(&expected);
        let w = Window::open(self.proc_.clone());
        let out = self
            .s3
            .get_object()
            .bucket(&self.data_bucket)
            .key("big")
            .send()
            .await
            .map_err(sdk_err("GetObject"))?;
        let etag = etag_trim(out.e_tag());
        let mut body = out.body;
        let mut h = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.context("reading GET body")?;
            n += chunk.len() as u64;
            h.update(&chunk);
        }
        let (_, mut m) = w.close(Some(n)).await;
        if n != expected.len() as u64 || h.finalize() != want {
            bail!("GET body SHA-256 differs from the uploaded object ({n} bytes read)");
        }
        m.insert("sha256_ok".into(), json!(true));
        m.insert(
            "etag_is_md5".into(),
            json!(etag == hex::encode(Md5::digest(&expected))),
        );
        Ok(Value::Object(m))
    }

    async fn phase_range(&self) -> Result<Value> {
        let big = self.big();
        let len = self.args.range_size.min(big.len() as u64);
        let mut rng = Rng(self.args.seed ^ 0x7261_6e67);
        let w = Window::open(self.proc_.clone());
        let mut lat_ms = Vec::with_capacity(self.args.ranges);
        let mut total = 0u64;
        for _ in 0..self.args.ranges {
            let a = rng.below(big.len() as u64 - len + 1);
            let t = Instant::now();
            let out = self
                .s3
                .get_object()
                .bucket(&self.data_bucket)
                .key("big")
                .range(format!("bytes={}-{}", a, a + len - 1))
                .send()
                .await
                .map_err(sdk_err("ranged GetObject"))?;
            total += drain_compare(out.body, &big[a as usize..(a + len) as usize]).await?;
            lat_ms.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (_, mut m) = w.close(Some(total)).await;
        lat_ms.sort_by(f64::total_cmp);
        m.insert("requests".into(), json!(lat_ms.len()));
        m.insert("p50_ms".into(), json!(percentile(&lat_ms, 50.0)));
        m.insert("p99_ms".into(), json!(percentile(&lat_ms, 99.0)));
        Ok(Value::Object(m))
    }

    /// Runs `ops` operations at `conc` concurrency; returns (ok, errors, first error).
    async fn run_small(&self, conc: usize, put: bool) -> (Value, usize) {
        let next = AtomicUsize::new(0);
        let errors = AtomicUsize::new(0);
        let first_err = std::sync::Mutex::new(None::<String>);
        let w = Window::open(self.proc_.clone());
        let worker = || async {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= self.args.small_ops {
                    break;
                }
                let key = format!("small/c{conc}/{i:06}");
                let body = self.small_body(i);
                let r: Result<()> = if put {
                    self.s3
                        .put_object()
                        .bucket(&self.data_bucket)
                        .key(&key)
                        .body(self.body(body))
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(sdk_err(format!("PutObject {key}")))
                } else {
                    match self
                        .s3
                        .get_object()
                        .bucket(&self.data_bucket)
                        .key(&key)
                        .send()
                        .await
                    {
                        Ok(out) => drain_compare(out.body, &body).await.map(|_| ()),
                        Err(e) => Err(sdk_err(format!("GetObject {key}"))(e)),
                    }
                };
                if let Err(e) = r {
                    errors.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut f) = first_err.lock() {
                        f.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
        };
        futures::future::join_all((0..conc.max(1)).map(|_| worker())).await;
        let errs = errors.load(Ordering::Relaxed);
        let ok = self.args.small_ops - errs;
        let (secs, mut m) = w.close_settled(None).await;
        m.insert("ops".into(), json!(ok));
        m.insert("errors".into(), json!(errs));
        if ok > 0 {
            m.insert("ops_s".into(), json!(ok as f64 / secs));
            // per request: what the server spends (CPU) and how often its threads wait for
            // each other (voluntary context switches)
            let per_op = |field: &str| m.get(field).and_then(Value::as_f64).map(|v| v / ok as f64);
            let (cpu, cs) = (per_op("server_cpu_s"), per_op("server_ctx_switches"));
            if let Some(cpu) = cpu {
                m.insert("server_cpu_ms_per_op".into(), json!(cpu * 1000.0));
            }
            if let Some(cs) = cs {
                m.insert("server_ctx_switches_per_op".into(), json!(cs));
            }
        }
        if let Some(e) = first_err.lock().ok().and_then(|mut f| f.take()) {
            m.insert("first_error".into(), json!(e));
        }
        (Value::Object(m), errs)
    }

    async fn phase_list(&self) -> Result<Value> {
        let n = self.args.list_objects;
        // Populate (timed separately, reported as list_fill).
        let next = AtomicUsize::new(0);
        let errors = AtomicUsize::new(0);
        let body = Bytes::from_static(b"vaultgate-bench\n");
        let t = Instant::now();
        let worker = || async {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let r = self
                    .s3
                    .put_object()
                    .bucket(&self.list_bucket)
                    .key(format!("k/{i:06}"))
                    .body(self.body(body.clone()))
                    .send()
                    .await;
                if r.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        futures::future::join_all((0..16).map(|_| worker())).await;
        let fill_s = t.elapsed().as_secs_f64();
        let fill_err = errors.load(Ordering::Relaxed);
        if fill_err > 0 {
            bail!("{fill_err} of {n} PUTs failed while filling the list bucket");
        }
        let mut times = Vec::new();
        let mut w_fields = None;
        for rep in 0..3 {
            let w = Window::open(self.proc_.clone());
            let mut count = 0usize;
            let mut pages = self
                .s3
                .list_objects_v2()
                .bucket(&self.list_bucket)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(sdk_err("ListObjectsV2"))?;
                count += page.contents().len();
            }
            let (secs, m) = w.close(None).await;
            if count != n {
                bail!("LIST returned {count} keys, expected {n}");
            }
            times.push(secs * 1e3);
            if rep == 0 {
                w_fields = Some(m);
            }
        }
        times.sort_by(f64::total_cmp);
        let mut m = w_fields.unwrap_or_default();
        m.insert("keys".into(), json!(n));
        m.insert("list_ms".into(), json!(times[times.len() / 2]));
        m.insert("list_ms_all".into(), json!(times));
        m.insert("fill_ops_s".into(), json!(n as f64 / fill_s));
        Ok(Value::Object(m))
    }

    async fn phase_cget(&self) -> Result<Value> {
        let size = self.args.cget_size as usize;
        let obj = self.data.slice(..size);
        self.s3
            .put_object()
            .bucket(&self.data_bucket)
            .key("cget")
            .body(self.body(obj.clone()))
            .send()
            .await
            .map_err(sdk_err("PutObject cget"))?;
        let streams = self.args.cget_streams.max(1);
        let w = Window::open(self.proc_.clone());
        let results = futures::future::join_all((0..streams).map(|_| {
            let obj = obj.clone();
            async move {
                let out = self
                    .s3
                    .get_object()
                    .bucket(&self.data_bucket)
                    .key("cget")
                    .send()
                    .await
                    .map_err(sdk_err("GetObject cget"))?;
                drain_compare(out.body, &obj).await
            }
        }))
        .await;
        let mut total = 0u64;
        for r in results {
            total += r?;
        }
        let (_, mut m) = w.close(Some(total)).await;
        m.insert("streams".into(), json!(streams));
        Ok(Value::Object(m))
    }
}

fn emit(args: &Args, phase: &str, result: Result<Value>) -> Result<bool> {
    let ok = result.is_ok();
    let mut rec = match result {
        Ok(Value::Object(m)) => m,
        Ok(other) => {
            let mut m = serde_json::Map::new();
            m.insert("value".into(), other);
            m
        }
        Err(e) => {
            let mut m = serde_json::Map::new();
            m.insert("error".into(), json!(format!("{e:#}")));
            m
        }
    };
    rec.insert("server".into(), json!(args.server));
    rec.insert("round".into(), json!(args.round));
    rec.insert("mode".into(), json!(args.checksums.name()));
    rec.insert(
        "body".into(),
        json!(format!("{:?}", args.body).to_lowercase()),
    );
    rec.insert("phase".into(), json!(phase));
    rec.insert("ok".into(), json!(ok));
    let line = serde_json::to_string(&Value::Object(rec))?;
    println!("{line}");
    if let Some(path) = &args.out {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(f, "{line}")?;
    }
    Ok(ok)
}

/// The phases `--phases` names, all known, after the size options are checked.
fn phases_of(args: &Args) -> Result<Vec<String>> {
    const KNOWN: [&str; 8] = [
        "put", "mpput", "get", "range", "small", "list", "cget", "growth",
    ];
    let phases: Vec<String> = args
        .phases
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    if let Some(bad) = phases.iter().find(|p| !KNOWN.contains(&p.as_str())) {
        bail!("unknown phase {bad:?} (known: {})", KNOWN.join(","));
    }
    if args.part_size < 5 * MIB && args.big_size > args.part_size {
        bail!("--part-size must be at least 5 MiB (S3 minimum for all but the last part)");
    }
    if args.range_size == 0 || args.small_size == 0 {
        bail!("--range-size and --small-size must be positive");
    }
    Ok(phases)
}

/// The S3 client of the run: the endpoint, region and key given, path style, and the SDK's
/// checksums only where required when `--checksums required`.
fn client_of(args: &Args) -> Client {
    let mut cfg = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(args.region.clone()))
        .endpoint_url(&args.endpoint)
        .credentials_provider(Credentials::new(
            &args.access_key,
            &args.secret_key,
            None,
            None,
            "s3bench",
        ))
        .force_path_style(true);
    if args.checksums == ChecksumMode::Required {
        cfg = cfg
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    }
    Client::from_conf(cfg.build())
}

async fn run(args: Args) -> Result<bool> {
    let phases = phases_of(&args)?;
    let s3 = client_of(&args);
    let data = payload(
        args.big_size.max(args.cget_size).max(args.small_size * 2),
        args.seed,
    )?;
    let proc_ = Proc {
        pids: Arc::from(args.server_pid.as_slice()),
        clk_tck: args.clk_tck.max(1),
    };
    if !args.server_pid.is_empty() && proc_.server_cpu_s().is_none() {
        bail!(
            "cannot read /proc/PID/stat of {:?}: is the server running?",
            args.server_pid
        );
    }
    let bench = Bench {
        data_bucket: format!("{}-data", args.bucket_prefix),
        list_bucket: format!("{}-list", args.bucket_prefix),
        s3,
        proc_,
        data,
        args,
    };
    bench.ensure_bucket(&bench.data_bucket).await?;
    if phases.iter().any(|p| p == "list") {
        bench.ensure_bucket(&bench.list_bucket).await?;
    }
    let mut all_ok = true;
    for p in &phases {
        eprintln!(
            "s3bench [{} r{} {}] phase {p}",
            bench.args.server,
            bench.args.round,
            bench.args.checksums.name()
        );
        all_ok &= bench.run_phase(p).await?;
    }
    Ok(all_ok)
}

impl Bench {
    /// Runs phase `p` and emits its records; whether they all passed.
    async fn run_phase(&self, p: &str) -> Result<bool> {
        let args = &self.args;
        Ok(match p {
            "put" => emit(args, "put", self.phase_put().await)?,
            "mpput" => emit(args, "mpput", self.phase_mpput().await)?,
            "get" => emit(args, "get", self.phase_get().await)?,
            "range" => emit(args, "range", self.phase_range().await)?,
            "small" => {
                let mut ok = true;
                for (name, conc, put) in [
                    ("put4k_c1", 1, true),
                    ("put4k_c16", 16, true),
                    ("get4k_c1", 1, false),
                    ("get4k_c16", 16, false),
                ] {
                    let (v, errs) = self.run_small(conc, put).await;
                    ok &= emit(args, name, Ok(v))? && errs == 0;
                }
                ok
            }
            "list" => emit(args, "list", self.phase_list().await)?,
            "cget" => emit(args, "cget", self.phase_cget().await)?,
            "growth" => self.phase_growth().await?,
            _ => true,
        })
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("s3bench: cannot start the runtime: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match rt.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("s3bench: some phases failed (see the JSON records)");
            std::process::ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("s3bench: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_given_again_overrides_the_first() {
        let base = [
            "s3bench",
            "--endpoint",
            "http://x",
            "--access-key",
            "a",
            "--secret-key",
        ];
        let args = Args::try_parse_from(base.iter().copied().chain([
            "b",
            "--small-ops",
            "100",
            "--small-ops",
            "500",
        ]))
        .unwrap();
        assert_eq!(args.small_ops, 500);
        // a list too: bench/run's peers stop their growth at fewer steps this way
        let args = Args::try_parse_from(base.iter().copied().chain([
            "b",
            "--growth-steps",
            "10,100,1000",
            "--growth-steps",
            "10,100",
        ]))
        .unwrap();
        assert_eq!(args.growth_steps, [10, 100]);
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4K"), Ok(4096));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("16M"), Ok(16 * MIB));
        assert_eq!(parse_size("1G"), Ok(1024 * MIB));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("12X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v[..1], 99.0), 1.0);
        assert!(percentile(&[], 50.0).is_nan());
    }

    #[test]
    fn payload_is_deterministic_and_not_constant() {
        let a = payload(1000, 7).unwrap_or_default();
        let b = payload(1000, 7).unwrap_or_default();
        let c = payload(1000, 8).unwrap_or_default();
        assert_eq!(a.len(), 1000);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().filter(|&&x| x == a[0]).count() < 50);
    }

    #[tokio::test]
    async fn framed_body_streams_every_byte_with_an_exact_length() {
        use http_body_util::BodyExt;
        use hyper::body::Body;
        let data = payload(100_003, 1).unwrap_or_default();
        let body = FramedBody {
            data: data.clone(),
            frame: 4096,
        };
        assert_eq!(body.size_hint().exact(), Some(100_003));
        let mut body = body;
        let mut frames = 0;
        let mut got = Vec::new();
        while let Some(Ok(f)) = body.frame().await {
            let d = f.into_data().unwrap_or_default();
            assert!(d.len() <= 4096);
            got.extend_from_slice(&d);
            frames += 1;
        }
        assert_eq!(frames, 25);
        assert_eq!(got, data);
        assert!(body.is_end_stream());
        // Through the SDK's ByteStream too (what PutObject sends).
        let all = request_body(BodyKind::Stream, 1000, data.clone())
            .collect()
            .await;
        assert_eq!(all.map(|a| a.into_bytes()).ok(), Some(data));
    }

    #[test]
    fn own_cpu_time_is_readable() {
        let p = Proc {
            pids: Arc::from([std::process::id()]),
            clk_tck: 100,
        };
        assert!(p.server_cpu_s().is_some());
        // this test's threads have slept at least once (the harness waits for them)
        assert!(p.server_ctx_switches().is_some_and(|n| n > 0));
        let rss = p.status_kib("VmRSS:").unwrap_or(0);
        assert!(rss > 0);
        // several processes are summed (here the same one twice)
        let twice = Proc {
            pids: Arc::from([std::process::id(), std::process::id()]),
            clk_tck: 100,
        };
        assert!(twice.status_kib("VmSize:").unwrap_or(0) >= 2 * p.status_kib("VmSize:").unwrap());
        let gone = Proc {
            pids: Arc::from([std::process::id(), u32::MAX]),
            clk_tck: 100,
        };
        assert!(gone.server_cpu_s().is_none());
        assert!(gone.server_ctx_switches().is_none());
        let none = Proc {
            pids: Arc::from([]),
            clk_tck: 100,
        };
        assert!(none.server_cpu_s().is_none() && !none.reset_peak());
    }
}
