//! Rate limits (governor).
//!
//! * Per-principal quotas ([`RateLimits`]): S3 reads, S3 writes (deletes count as writes) and
//!   admin API calls, each "N requests per minute" with a burst of N. The S3 quotas are off by
//!   default (backup jobs syncing thousands of files must not meet SlowDown on a fresh install)
//!   and opt-in globally (`VAULTGATE_RATE_S3_*`) or per principal and per built-in role through
//!   overrides stored in the policy store ([`LimitOverride`], `store/limits.rs`; principal >
//!   role > global). Admin calls default to 600 per minute per principal (far above a human or
//!   a CLI script).
//! * Failed authentications per source address ([`AuthFailures`], on by default: 60 per
//!   minute): brute-force protection for the S3 and admin listeners.
//!
//! Both are quotas of the whole deployment, not of one process: with several gateway instances
//! on one database each enforces its share ([`Instances::share`]: the quota divided by the live
//! instances, rounded up), so behind a balancer that spreads requests the instances together
//! admit about the configured number and never more than it plus one per extra instance. The
//! count of live instances is kept by `gateway::lease` (1 on SQLite).
//!
//! Exceeding one gives [`Error::RateLimited`] with the wait; the gateway answers 503 SlowDown
//! (S3) and the admin API 429, both with Retry-After. The limiters' per-key state is pruned at
//! most once a minute from their own calls (no background task), so a flood of distinct keys
//! or addresses costs bounded memory. The clock of [`RateLimits`] is a type parameter so tests
//! drive time by hand.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::{Action, Error, Result};

/// Failed authentications per minute per source address before it is refused (burst: as many).
pub const DEFAULT_AUTH_FAILURES_PER_MIN: u32 = 60;

/// Default admin API calls per minute per principal.
pub const DEFAULT_ADMIN_PER_MIN: u32 = 600;

/// How often limiter state is pruned (at most).
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Most source addresses tracked by [`AuthFailures`] at once (beyond: new addresses are
/// tracked only after the next prune).
const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// What kind of request is being limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitClass {
    /// S3 list/get/head
    S3Read,
    /// S3 put/copy/multipart/delete/bucket changes
    S3Write,
    /// admin API
    Admin,
}

impl LimitClass {
    /// The class of an S3 action.
    pub fn of(action: Action) -> LimitClass {
        if action.is_read() {
            LimitClass::S3Read
        } else {
            LimitClass::S3Write
        }
    }
}

/// Requests per minute per principal; 0 disables a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// S3 reads per minute (`VAULTGATE_RATE_S3_READS_PER_MIN`, default 0 = off)
    pub s3_reads_per_min: u32,
    /// S3 writes per minute (`VAULTGATE_RATE_S3_WRITES_PER_MIN`, default 0 = off)
    pub s3_writes_per_min: u32,
    /// admin calls per minute (`VAULTGATE_RATE_ADMIN_PER_MIN`, default 600)
    pub admin_per_min: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            s3_reads_per_min: 0,
            s3_writes_per_min: 0,
            admin_per_min: DEFAULT_ADMIN_PER_MIN,
        }
    }
}

impl RateLimitConfig {
    /// Defaults overridden by the `VAULTGATE_RATE_*` variables found through `lookup`
    /// (pass `|k| std::env::var(k).ok()`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<RateLimitConfig> {
        let mut c = RateLimitConfig::default();
        for (var, slot) in [
            ("VAULTGATE_RATE_S3_READS_PER_MIN", &mut c.s3_reads_per_min),
            ("VAULTGATE_RATE_S3_WRITES_PER_MIN", &mut c.s3_writes_per_min),
            ("VAULTGATE_RATE_ADMIN_PER_MIN", &mut c.admin_per_min),
        ] {
            if let Some(v) = lookup(var) {
                *slot = v.trim().parse().map_err(|_| {
                    Error::Config(format!("{var} must be a whole number, got {v:?}"))
                })?;
            }
        }
        Ok(c)
    }

    /// The configured quota of `class`.
    pub fn per_min(&self, class: LimitClass) -> u32 {
        match class {
            LimitClass::S3Read => self.s3_reads_per_min,
            LimitClass::S3Write => self.s3_writes_per_min,
            LimitClass::Admin => self.admin_per_min,
        }
    }
}

/// How many gateway instances share the deployment's quotas (at least 1): each instance enforces
/// its [`Instances::share`] of every quota. Set by whoever counts the live instances
/// (`gateway::lease`); 1 until then.
#[derive(Debug)]
pub struct Instances(AtomicU32);

impl Default for Instances {
    fn default() -> Self {
        Instances(AtomicU32::new(1))
    }
}

impl Instances {
    /// One instance, shared as `Arc`.
    pub fn new() -> Arc<Instances> {
        Arc::new(Instances::default())
    }

    /// Records `n` live instances (0 is taken as 1: this one is live).
    pub fn set(&self, n: u32) {
        self.0.store(n.max(1), Ordering::Relaxed);
    }

    /// The live instances last recorded.
    pub fn get(&self) -> u32 {
        self.0.load(Ordering::Relaxed).max(1)
    }

    /// This instance's share of a deployment-wide quota of `per_min`: `per_min` divided by the
    /// live instances, rounded up (0, no limit, stays 0).
    pub fn share(&self, per_min: u32) -> u32 {
        per_min.div_ceil(self.get())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Calls `f` when at least [`PRUNE_EVERY`] passed since the last call that ran it.
struct Pruner {
    started: Instant,
    last_secs: AtomicU64,
}

impl Pruner {
    fn new() -> Pruner {
        Pruner {
            started: Instant::now(),
            last_secs: AtomicU64::new(0),
        }
    }

    fn maybe(&self, now: Instant, f: impl FnOnce()) {
        let at = now.saturating_duration_since(self.started).as_secs();
        let last = self.last_secs.load(Ordering::Relaxed);
        if at >= last + PRUNE_EVERY.as_secs()
            && self
                .last_secs
                .compare_exchange(last, at, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            f();
        }
    }
}

type Limiter<C> =
    RateLimiter<String, HashMapStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The keyed limiters of one class: one per quota in use (the configured one, and those of
/// per-principal or per-role overrides), keyed by principal (or `ip:<address>` for
/// unauthenticated admin calls).
struct ClassLimiters<C: Clock> {
    by_quota: Mutex<HashMap<u32, Arc<Limiter<C>>>>,
}

/// The per-principal limiters of every class.
pub struct RateLimits<C: Clock + Clone = DefaultClock> {
    cfg: RateLimitConfig,
    read: ClassLimiters<C>,
    write: ClassLimiters<C>,
    admin: ClassLimiters<C>,
    clock: C,
    pruner: Pruner,
    instances: Arc<Instances>,
}

impl<C: Clock + Clone> std::fmt::Debug for RateLimits<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RateLimits({:?})", self.cfg)
    }
}

impl RateLimits<DefaultClock> {
    /// Limits on the monotonic clock.
    pub fn new(cfg: RateLimitConfig) -> RateLimits<DefaultClock> {
        RateLimits::with_clock(cfg, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// Limits on a given clock (tests: `governor::clock::FakeRelativeClock`).
    pub fn with_clock(cfg: RateLimitConfig, clock: C) -> RateLimits<C> {
        let empty = || ClassLimiters {
            by_quota: Mutex::new(HashMap::new()),
        };
        RateLimits {
            cfg,
            read: empty(),
            write: empty(),
            admin: empty(),
            clock,
            pruner: Pruner::new(),
            instances: Instances::new(),
        }
    }

    /// These limits as this instance's share of quotas the `instances` share (see [`Instances`]).
    pub fn sharing(mut self, instances: Arc<Instances>) -> Self {
        self.instances = instances;
        self
    }

    /// The global configuration.
    pub fn config(&self) -> RateLimitConfig {
        self.cfg
    }

    /// Takes one request of `class` for `key` under the configured quota, or says how long to
    /// wait.
    pub fn check(&self, class: LimitClass, key: &str) -> Result<()> {
        self.check_quota(class, key, self.cfg.per_min(class))
    }

    /// Takes one request of `class` for `key` under a deployment-wide quota of `per_min` (0:
    /// unlimited), e.g. a per-principal override: this instance enforces its share of it.
    pub fn check_quota(&self, class: LimitClass, key: &str, per_min: u32) -> Result<()> {
        self.pruner.maybe(Instant::now(), || self.housekeeping());
        let per_min = self.instances.share(per_min);
        let Some(n) = NonZeroU32::new(per_min) else {
            return Ok(());
        };
        let class = match class {
            LimitClass::S3Read => &self.read,
            LimitClass::S3Write => &self.write,
            LimitClass::Admin => &self.admin,
        };
        let limiter = lock(&class.by_quota)
            .entry(per_min)
            .or_insert_with(|| {
                Arc::new(RateLimiter::new(
                    Quota::per_minute(n),
                    HashMapStateStore::default(),
                    self.clock.clone(),
                ))
            })
            .clone();
        match limiter.check_key(&key.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(Error::RateLimited {
                    retry_after_secs: secs.max(1),
                })
            }
        }
    }

    /// Drops state of keys that are back at full quota (called at most once a minute from
    /// [`RateLimits::check`]; callable any time).
    pub fn housekeeping(&self) {
        for class in [&self.read, &self.write, &self.admin] {
            let limiters: Vec<_> = lock(&class.by_quota).values().cloned().collect();
            for l in limiters {
                l.retain_recent();
                l.shrink_to_fit();
            }
        }
    }

    /// Keys currently tracked across every limiter (tests, metrics).
    pub fn tracked_keys(&self) -> usize {
        [&self.read, &self.write, &self.admin]
            .iter()
            .map(|c| lock(&c.by_quota).values().map(|l| l.len()).sum::<usize>())
            .sum()
    }
}

/// How long an address that used up its failure budget is refused.
const LOCKOUT: Duration = Duration::from_secs(60);

/// Failed authentications per source address (brute-force protection): an address that used
/// up its failures (burst = the per-minute quota) is refused for a minute, and for another
/// minute after each further failure, until its budget has regenerated (60 s / quota each). Share it as `Arc<AuthFailures>`. IPv6 addresses count per /64 (one host's
/// usual allocation), so rotating addresses within it does not reset the count.
pub struct AuthFailures {
    per_min: u32,
    /// theoretical arrival time of the next failure (GCRA) per address
    state: Mutex<HashMap<IpAddr, Instant>>,
    failures: AtomicU64,
    blocked: AtomicU64,
    pruner: Pruner,
    instances: Arc<Instances>,
}

impl std::fmt::Debug for AuthFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthFailures")
            .field("per_min", &self.per_min)
            .field("failures_total", &self.failures_total())
            .field("blocked_total", &self.blocked_total())
            .finish()
    }
}

fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl AuthFailures {
    /// A limiter allowing `failures_per_min` failed authentications per minute per address
    /// (burst: as many); 0 turns it off.
    pub fn new(failures_per_min: u32) -> AuthFailures {
        AuthFailures {
            per_min: failures_per_min,
            state: Mutex::new(HashMap::new()),
            failures: AtomicU64::new(0),
            blocked: AtomicU64::new(0),
            pruner: Pruner::new(),
            instances: Instances::new(),
        }
    }

    /// This limiter as this instance's share of a budget the `instances` share (see
    /// [`Instances`]).
    pub fn sharing(mut self, instances: Arc<Instances>) -> Self {
        self.instances = instances;
        self
    }

    /// The configured quota of the deployment (0: off).
    pub fn per_min(&self) -> u32 {
        self.per_min
    }

    /// This instance's share of the quota now, and the interval one failure costs under it.
    fn budget(&self) -> (u32, Duration) {
        let n = self.instances.share(self.per_min);
        (n, Duration::from_secs(60) / n.max(1))
    }

    /// `Err(Error::RateLimited{retry_after_secs})` while `ip` is blocked (it used up its failures).
    pub fn check(&self, ip: IpAddr) -> Result<()> {
        self.check_at(ip, Instant::now())
    }

    /// Counts one failed authentication from `ip` (a bad signature, unknown key, wrong secret,
    /// bad token).
    pub fn record_failure(&self, ip: IpAddr) {
        self.record_failure_at(ip, Instant::now());
    }

    /// Failures recorded so far.
    pub fn failures_total(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Requests refused by [`AuthFailures::check`] so far.
    pub fn blocked_total(&self) -> u64 {
        self.blocked.load(Ordering::Relaxed)
    }

    /// Addresses currently tracked (tests, metrics).
    pub fn tracked_addresses(&self) -> usize {
        lock(&self.state).len()
    }

    pub(crate) fn check_at(&self, ip: IpAddr, now: Instant) -> Result<()> {
        if self.per_min == 0 {
            return Ok(());
        }
        self.prune_maybe(now);
        let tat = lock(&self.state).get(&address_key(ip)).copied();
        // blocked while one more failure would exceed the burst: tat - now > (n - 1) * T
        let (n, interval) = self.budget();
        let allowance = interval * (n - 1);
        match tat.and_then(|t| t.checked_duration_since(now)) {
            Some(ahead) if ahead > allowance => {
                self.blocked.fetch_add(1, Ordering::Relaxed);
                let wait = ahead - allowance;
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(Error::RateLimited {
                    retry_after_secs: secs.max(1),
                })
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn record_failure_at(&self, ip: IpAddr, now: Instant) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if self.per_min == 0 {
            return;
        }
        self.prune_maybe(now);
        let (n, interval) = self.budget();
        let cap = interval * n;
        let mut state = lock(&self.state);
        let key = address_key(ip);
        if !state.contains_key(&key) && state.len() >= MAX_TRACKED_ADDRESSES {
            Self::prune(&mut state, now);
            if state.len() >= MAX_TRACKED_ADDRESSES {
                return;
            }
        }
        let tat = state.entry(key).or_insert(now);
        let next = ((*tat).max(now) + interval).min(now + cap);
        let allowance = interval * (n - 1);
        // the failure that uses up the budget locks the address out for a whole minute (and
        // so does every further failure after the lockout): a guesser gets `per_min` tries,
        // then one per minute, not one per interval
        *tat = if next.saturating_duration_since(now) > allowance {
            now + allowance + LOCKOUT
        } else {
            next
        };
    }

    fn prune(state: &mut HashMap<IpAddr, Instant>, now: Instant) {
        state.retain(|_, tat| *tat > now);
        state.shrink_to_fit();
    }

    fn prune_maybe(&self, now: Instant) {
        self.pruner
            .maybe(now, || Self::prune(&mut lock(&self.state), now));
    }
}

// ---- per-principal and per-role overrides ----

/// Per-principal or per-role S3 quotas (requests per minute): `None` inherits (principal →
/// its built-in role → the global configuration), 0 means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LimitOverride {
    /// S3 reads per minute (absent/null: inherit; 0: unlimited)
    #[serde(default, deserialize_with = "crate::integral::option")]
    #[cfg_attr(feature = "openapi", schema(format = Int64, minimum = 0, maximum = 4294967295_u64))]
    pub s3_reads_per_min: Option<u32>,
    /// S3 writes per minute, deletes included (absent/null: inherit; 0: unlimited)
    #[serde(default, deserialize_with = "crate::integral::option")]
    #[cfg_attr(feature = "openapi", schema(format = Int64, minimum = 0, maximum = 4294967295_u64))]
    pub s3_writes_per_min: Option<u32>,
}

impl LimitOverride {
    pub(crate) fn get(&self, class: LimitClass) -> Option<u32> {
        match class {
            LimitClass::S3Read => self.s3_reads_per_min,
            LimitClass::S3Write => self.s3_writes_per_min,
            LimitClass::Admin => None,
        }
    }
}

/// What an override applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// one principal
    Principal,
    /// every principal holding a built-in role (`none`: principals with grants only)
    Role,
}

impl LimitScope {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LimitScope::Principal => "principal",
            LimitScope::Role => "role",
        }
    }
}

/// Every stored override (cached as one entry: the table is small and admin-written).
#[derive(Debug, Clone, Default)]
pub(crate) struct LimitOverrides {
    pub(crate) principals: HashMap<String, LimitOverride>,
    pub(crate) roles: HashMap<String, LimitOverride>,
}

impl crate::cache::Weight for LimitOverrides {
    fn weight(&self) -> usize {
        self.principals
            .keys()
            .chain(self.roles.keys())
            .map(|k| k.len() + 48)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use governor::clock::FakeRelativeClock;

    use super::*;

    #[test]
    fn slowdown_past_the_limit_and_recovery_after_the_window() {
        let clock = FakeRelativeClock::default();
        let cfg = RateLimitConfig {
            s3_reads_per_min: 0,
            s3_writes_per_min: 3,
            admin_per_min: 2,
        };
        let rl = RateLimits::with_clock(cfg, clock.clone());
        for _ in 0..3 {
            rl.check(LimitClass::S3Write, "ci").unwrap();
        }
        let e = rl.check(LimitClass::S3Write, "ci").unwrap_err();
        assert_eq!(
            e,
            Error::RateLimited {
                retry_after_secs: 20
            }
        );
        // Other principals and other classes are independent; reads are unlimited here.
        rl.check(LimitClass::S3Write, "other").unwrap();
        for _ in 0..1000 {
            rl.check(LimitClass::S3Read, "ci").unwrap();
        }
        rl.check(LimitClass::Admin, "ci").unwrap();
        rl.check(LimitClass::Admin, "ci").unwrap();
        assert!(rl.check(LimitClass::Admin, "ci").is_err());
        // One slot comes back every 20 s.
        clock.advance(Duration::from_secs(19));
        assert_eq!(
            rl.check(LimitClass::S3Write, "ci").unwrap_err(),
            Error::RateLimited {
                retry_after_secs: 1
            }
        );
        clock.advance(Duration::from_secs(1));
        rl.check(LimitClass::S3Write, "ci").unwrap();
        assert!(rl.check(LimitClass::S3Write, "ci").is_err());
        // After a whole window the full burst is available again.
        clock.advance(Duration::from_secs(60));
        for _ in 0..3 {
            rl.check(LimitClass::S3Write, "ci").unwrap();
        }
        assert!(rl.check(LimitClass::S3Write, "ci").is_err());
        rl.housekeeping();
    }

    #[test]
    fn classes_and_config() {
        assert_eq!(LimitClass::of(Action::GetObject), LimitClass::S3Read);
        assert_eq!(LimitClass::of(Action::PutObject), LimitClass::S3Write);
        assert_eq!(LimitClass::of(Action::DeleteObject), LimitClass::S3Write);
        // Per-principal S3 limits are opt-in (issue 12: defaults broke `aws s3 sync`).
        assert_eq!(RateLimitConfig::default().s3_reads_per_min, 0);
        assert_eq!(RateLimitConfig::default().s3_writes_per_min, 0);
        assert_eq!(
            RateLimitConfig::default().admin_per_min,
            DEFAULT_ADMIN_PER_MIN
        );
        let c = RateLimitConfig::from_lookup(|k| {
            (k == "VAULTGATE_RATE_S3_WRITES_PER_MIN").then(|| "7".to_owned())
        })
        .unwrap();
        assert_eq!(c.s3_writes_per_min, 7);
        assert_eq!(c.admin_per_min, DEFAULT_ADMIN_PER_MIN);
        assert!(matches!(
            RateLimitConfig::from_lookup(|_| Some("many".into())),
            Err(Error::Config(_))
        ));
    }

    #[test]
    fn quota_overrides_use_their_own_limiters() {
        let clock = FakeRelativeClock::default();
        let rl = RateLimits::with_clock(RateLimitConfig::default(), clock);
        // off by default
        for _ in 0..5000 {
            rl.check(LimitClass::S3Write, "sync").unwrap();
        }
        // an override of 2 per minute
        rl.check_quota(LimitClass::S3Write, "sync", 2).unwrap();
        rl.check_quota(LimitClass::S3Write, "sync", 2).unwrap();
        assert!(rl.check_quota(LimitClass::S3Write, "sync", 2).is_err());
        rl.check_quota(LimitClass::S3Write, "sync", 0).unwrap();
        assert_eq!(rl.tracked_keys(), 1);
    }

    #[test]
    fn quotas_are_the_deployments_each_instance_enforces_its_share() {
        let clock = FakeRelativeClock::default();
        let instances = Instances::new();
        let cfg = RateLimitConfig {
            s3_reads_per_min: 0,
            s3_writes_per_min: 10,
            admin_per_min: 600,
        };
        // three instances behind a balancer, each with its own limiter, sharing the count
        let rls: Vec<_> = (0..3)
            .map(|_| RateLimits::with_clock(cfg, clock.clone()).sharing(instances.clone()))
            .collect();
        instances.set(3);
        assert_eq!((instances.get(), instances.share(10)), (3, 4));
        assert_eq!(instances.share(0), 0, "no limit stays no limit");
        // round robin: 10 per minute for the deployment means 4 on each (12 at most in all)
        let admitted = (0..30)
            .filter(|i| rls[i % 3].check(LimitClass::S3Write, "sync").is_ok())
            .count();
        assert_eq!(admitted, 12);
        // an override is the deployment's too; unlimited stays unlimited
        assert_eq!(
            (0..9)
                .filter(|i| rls[i % 3].check_quota(LimitClass::S3Write, "o", 3).is_ok())
                .count(),
            3
        );
        for _ in 0..100 {
            rls[0].check(LimitClass::S3Read, "sync").unwrap();
        }
        // alone again (the others died): the whole quota on the one left, after the window
        instances.set(0);
        assert_eq!(instances.get(), 1, "this instance is live");
        clock.advance(Duration::from_secs(60));
        let alone = (0..30)
            .filter(|_| rls[0].check(LimitClass::S3Write, "sync").is_ok())
            .count();
        assert_eq!(alone, 10);
    }

    #[test]
    fn auth_failures_are_shared_by_the_instances_too() {
        let instances = Instances::new();
        let f = AuthFailures::new(60).sharing(instances.clone());
        instances.set(2);
        let t0 = Instant::now();
        let a = ip("192.0.2.7");
        // 60 per minute for the deployment: 30 on this instance of two, then locked out
        for i in 0..30 {
            f.check_at(a, t0).unwrap();
            f.record_failure_at(a, t0 + Duration::from_millis(i));
        }
        assert!(f.check_at(a, t0 + Duration::from_millis(31)).is_err());
        assert_eq!(
            f.per_min(),
            60,
            "the configured figure is reported as configured"
        );
    }

    #[test]
    fn limiter_state_is_pruned() {
        let rl = RateLimits::new(RateLimitConfig {
            s3_reads_per_min: 0,
            s3_writes_per_min: 0,
            admin_per_min: 600,
        });
        for i in 0..1000 {
            rl.check(
                LimitClass::Admin,
                &format!("ip:10.0.{}.{}", i / 256, i % 256),
            )
            .unwrap();
        }
        assert_eq!(rl.tracked_keys(), 1000);
        // each key spent 1 of 600 slots (one every 100 ms); governor drops a key once its
        // state is indistinguishable from a fresh one (another 100 ms later)
        std::thread::sleep(Duration::from_millis(300));
        rl.housekeeping();
        assert_eq!(rl.tracked_keys(), 0);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn auth_failures_block_after_the_burst_and_recover() {
        let f = AuthFailures::new(3);
        let t0 = Instant::now();
        let a = ip("192.0.2.7");
        for i in 0..3 {
            f.check_at(a, t0).unwrap();
            f.record_failure_at(a, t0 + Duration::from_millis(i));
        }
        // the failure that used up the budget locks the address out for a minute
        let e = f.check_at(a, t0 + Duration::from_millis(3)).unwrap_err();
        assert_eq!(
            e,
            Error::RateLimited {
                retry_after_secs: 60
            }
        );
        assert_eq!(f.blocked_total(), 1);
        assert_eq!(f.failures_total(), 3);
        // other addresses are independent
        f.check_at(ip("192.0.2.8"), t0).unwrap();
        assert!(f.check_at(a, t0 + Duration::from_secs(59)).is_err());
        // after the lockout one more try; failing it locks out for another minute
        f.check_at(a, t0 + Duration::from_secs(61)).unwrap();
        f.record_failure_at(a, t0 + Duration::from_secs(61));
        assert!(f.check_at(a, t0 + Duration::from_secs(62)).is_err());
        assert!(f.check_at(a, t0 + Duration::from_secs(61 + 59)).is_err());
        // failures while blocked (requests that got through before the block) do not push the
        // lockout past a minute from the last one
        for _ in 0..1000 {
            f.record_failure_at(a, t0 + Duration::from_secs(62));
        }
        f.check_at(a, t0 + Duration::from_secs(62 + 61)).unwrap();
        // a quiet address gets its whole budget back
        let b = ip("192.0.2.9");
        f.record_failure_at(b, t0);
        f.record_failure_at(b, t0);
        f.check_at(b, t0 + Duration::from_secs(1)).unwrap();
        f.record_failure_at(b, t0 + Duration::from_secs(60));
        f.record_failure_at(b, t0 + Duration::from_secs(60));
        f.check_at(b, t0 + Duration::from_secs(60)).unwrap();
        // IPv6: one /64 counts as one address
        let v6 = |s: &str| ip(s);
        for i in 0..3u16 {
            f.record_failure_at(v6(&format!("2001:db8:1:2::{i:x}")), t0);
        }
        assert!(f.check_at(v6("2001:db8:1:2::ffff"), t0).is_err());
        f.check_at(v6("2001:db8:1:3::1"), t0).unwrap();
        // off
        let off = AuthFailures::new(0);
        for _ in 0..100 {
            off.record_failure(a);
        }
        off.check(a).unwrap();
        assert_eq!(off.failures_total(), 100);
        assert!(format!("{f:?}").contains("per_min: 3"));
    }

    #[test]
    fn auth_failure_state_is_pruned_and_bounded() {
        let f = AuthFailures::new(60);
        let t0 = Instant::now();
        for i in 0..5000u32 {
            f.record_failure_at(IpAddr::V4(std::net::Ipv4Addr::from(i)), t0);
        }
        assert_eq!(f.tracked_addresses(), 5000);
        // a minute later every one of them is back at full quota and is dropped
        f.check_at(ip("192.0.2.1"), t0 + Duration::from_secs(61))
            .unwrap();
        assert_eq!(f.tracked_addresses(), 0);
    }
}
