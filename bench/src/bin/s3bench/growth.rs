//! The growth phase (issue 19): how per-request cost and memory change as a bucket grows.
//! For each step N of `--growth-steps` (ascending), the bucket PREFIX-growth is filled with
//! small objects up to N keys (16 clients), then measured: PUT and GET of `--growth-ops`
//! small objects at 16 clients (GETs of random existing keys, bytes compared; then the same
//! keys again, `get_again_ops_s`, with their pages in the page cache; each pass's server disk
//! reads, `server_disk_read_mib` and `get_again_disk_read_mib`), the first
//! ListObjectsV2 page (1,000 keys) from the start and from a random key (median of 5), and the
//! server's RSS. One JSON record per step, phase `growth_<N>`. As in the small rows, the
//! server settles (goes idle) after the fill (up to 10 minutes: `fill_settle_s`) and after each
//! measured row (its CPU counted in that row), so work the fill left behind (Vaultgate's
//! write-back of inline objects) is not measured as the next row's cost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::{Bench, Rng, Window, drain_compare, emit, sdk_err, settle};

const CLIENTS: usize = 16;
const LIST_REPS: usize = 5;

/// The key of the `i`-th filled object.
fn key(i: usize) -> String {
    format!("g/{i:08}")
}

impl Bench {
    /// Runs `n` operations `op(i)` over `CLIENTS` clients; the failures and the first error.
    async fn each<F, Fut>(&self, n: usize, op: F) -> (usize, Option<String>)
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let next = AtomicUsize::new(0);
        let errors = AtomicUsize::new(0);
        let first = std::sync::Mutex::new(None::<String>);
        let worker = || async {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                if let Err(e) = op(i).await {
                    errors.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut f) = first.lock() {
                        f.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
        };
        futures::future::join_all((0..CLIENTS).map(|_| worker())).await;
        let first = first.lock().ok().and_then(|mut f| f.take());
        (errors.load(Ordering::Relaxed), first)
    }

    async fn put_small(&self, bucket: &str, key: String, i: usize) -> Result<()> {
        self.s3
            .put_object()
            .bucket(bucket)
            .key(&key)
            .body(self.body(self.small_body(i)))
            .send()
            .await
            .map(|_| ())
            .map_err(sdk_err(format!("PutObject {key}")))
    }

    /// The milliseconds of the first ListObjectsV2 page (1,000 keys) after `start_after`,
    /// median of `LIST_REPS`.
    async fn first_page_ms(&self, bucket: &str, start_after: Option<String>) -> Result<f64> {
        let mut ms = Vec::new();
        for _ in 0..LIST_REPS {
            let t = Instant::now();
            let page = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .max_keys(1000)
                .set_start_after(start_after.clone())
                .send()
                .await
                .map_err(sdk_err("ListObjectsV2"))?;
            ms.push(t.elapsed().as_secs_f64() * 1e3);
            if page.contents().is_empty() {
                bail!("ListObjectsV2 returned no keys");
            }
        }
        ms.sort_by(f64::total_cmp);
        Ok(ms[ms.len() / 2])
    }

    /// GETs of `keys(picks[i])` over `CLIENTS` clients, bytes compared; failures and the first.
    async fn get_keys(&self, bucket: &str, picks: &[usize]) -> (usize, Option<String>) {
        self.each(picks.len(), |i| {
            let k = picks[i];
            async move {
                let out = self
                    .s3
                    .get_object()
                    .bucket(bucket)
                    .key(key(k))
                    .send()
                    .await
                    .map_err(sdk_err(format!("GetObject {}", key(k))))?;
                drain_compare(out.body, &self.small_body(k))
                    .await
                    .map(|_| ())
            }
        })
        .await
    }

    /// One step: fills `bucket` from `have` to `n` keys, then measures.
    async fn growth_step(&self, bucket: &str, have: usize, n: usize) -> Result<Value> {
        let t = Instant::now();
        let (errs, first) = self
            .each(n - have, |j| {
                self.put_small(bucket, key(have + j), have + j)
            })
            .await;
        if errs > 0 {
            bail!("{errs} PUTs failed while filling to {n} keys: {first:?}");
        }
        let fill_ops_s = (n - have) as f64 / t.elapsed().as_secs_f64().max(1e-9);
        let fill_settle_s = settle(&self.proc_, Duration::from_secs(600)).await;
        let ops = self.args.growth_ops;

        let w = Window::open(self.proc_.clone());
        let (put_errs, _) = self
            .each(ops, |i| {
                self.put_small(bucket, format!("p/{n:08}/{i:06}"), i)
            })
            .await;
        let (put_s, _) = w.close_settled(None).await;

        let picks: Vec<usize> = {
            let mut rng = Rng(self.args.seed ^ n as u64);
            (0..ops).map(|_| rng.below(n as u64) as usize).collect()
        };
        let w = Window::open(self.proc_.clone());
        let (get_errs, get_first) = self.get_keys(bucket, &picks).await;
        let (get_s, mut m) = w.close_settled(None).await;
        // The same keys again, their pages now in the page cache: the first pass may read the
        // disk (a bucket larger than the memory, or, on the benchmark VM, file pages the host's
        // DAMON reclaim paged out after a minute unused), the second measures the index alone.
        let w = Window::open(self.proc_.clone());
        let (again_errs, _) = self.get_keys(bucket, &picks).await;
        let (again_s, again) = w.close_settled(None).await;
        if let Some(mib) = again.get("server_disk_read_mib") {
            m.insert("get_again_disk_read_mib".into(), mib.clone());
        }
        let errors = put_errs + get_errs + again_errs;
        if errors > 0 {
            m.insert("errors".into(), json!(errors));
            m.insert("first_error".into(), json!(get_first));
        }
        let mid = key(picks.first().copied().unwrap_or(0));
        m.insert("objects".into(), json!(n));
        m.insert("fill_ops_s".into(), json!(fill_ops_s));
        m.insert("fill_settle_s".into(), json!(fill_settle_s));
        m.insert("put_ops_s".into(), json!((ops - put_errs) as f64 / put_s));
        m.insert("get_ops_s".into(), json!((ops - get_errs) as f64 / get_s));
        m.insert(
            "get_again_ops_s".into(),
            json!((ops - again_errs) as f64 / again_s),
        );
        m.insert(
            "list_first_ms".into(),
            json!(self.first_page_ms(bucket, None).await?),
        );
        m.insert(
            "list_mid_ms".into(),
            json!(self.first_page_ms(bucket, Some(mid)).await?),
        );
        if let Some(kib) = self.proc_.status_kib("VmRSS:") {
            m.insert("rss_mib".into(), json!(kib as f64 / 1024.0));
        }
        Ok(Value::Object(m))
    }

    /// The growth phase: one record per step; whether they all passed.
    pub(super) async fn phase_growth(&self) -> Result<bool> {
        let bucket = format!("{}-growth", self.args.bucket_prefix);
        self.ensure_bucket(&bucket).await?;
        let mut steps = self.args.growth_steps.clone();
        steps.sort_unstable();
        steps.dedup();
        let (mut have, mut ok) = (0usize, true);
        for n in steps.into_iter().filter(|n| *n > 0) {
            eprintln!("s3bench growth: filling to {n} keys");
            let r = self.growth_step(&bucket, have, n).await;
            let failed = r.is_err();
            let errs = r
                .as_ref()
                .ok()
                .and_then(|v| v.get("errors"))
                .is_some_and(|e| e.as_u64().unwrap_or(0) > 0);
            ok &= emit(&self.args, &format!("growth_{n}"), r)? && !errs;
            if failed {
                break;
            }
            have = n;
        }
        Ok(ok)
    }
}
