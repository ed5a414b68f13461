//! Per-principal rate limits (governor): separate quotas for S3 reads, S3 writes
//! (deletes count as writes) and admin API calls, each "N requests per minute"
//! with a burst of N. Exceeding one gives [`Error::RateLimited`] with the wait;
//! the gateway answers 503 SlowDown (S3) and the admin API 429, both with
//! Retry-After. The clock is a type parameter so tests drive time by hand.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::{Quota, RateLimiter};
use serde::{Deserialize, Serialize};

use crate::{Action, Error, Result};

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
    /// S3 reads per minute (`VAULTGATE_RATE_S3_READS_PER_MIN`, default 1000)
    pub s3_reads_per_min: u32,
    /// S3 writes per minute (`VAULTGATE_RATE_S3_WRITES_PER_MIN`, default 100)
    pub s3_writes_per_min: u32,
    /// admin calls per minute (`VAULTGATE_RATE_ADMIN_PER_MIN`, default 60)
    pub admin_per_min: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            s3_reads_per_min: 1000,
            s3_writes_per_min: 100,
            admin_per_min: 60,
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
}

type Limiter<C> =
    RateLimiter<String, HashMapStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The three keyed limiters.
pub struct RateLimits<C: Clock + Clone = DefaultClock> {
    read: Option<Limiter<C>>,
    write: Option<Limiter<C>>,
    admin: Option<Limiter<C>>,
    clock: C,
}

impl<C: Clock + Clone> std::fmt::Debug for RateLimits<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RateLimits")
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
        let make = |n: u32| {
            NonZeroU32::new(n).map(|n| {
                RateLimiter::new(
                    Quota::per_minute(n),
                    HashMapStateStore::default(),
                    clock.clone(),
                )
            })
        };
        RateLimits {
            read: make(cfg.s3_reads_per_min),
            write: make(cfg.s3_writes_per_min),
            admin: make(cfg.admin_per_min),
            clock: clock.clone(),
        }
    }

    /// Takes one request of `class` for `principal`, or says how long to wait.
    pub fn check(&self, class: LimitClass, principal: &str) -> Result<()> {
        let limiter = match class {
            LimitClass::S3Read => &self.read,
            LimitClass::S3Write => &self.write,
            LimitClass::Admin => &self.admin,
        };
        let Some(l) = limiter else { return Ok(()) };
        match l.check_key(&principal.to_owned()) {
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

    /// Drops state of principals that are back at full quota (call now and then).
    pub fn housekeeping(&self) {
        for l in [&self.read, &self.write, &self.admin].into_iter().flatten() {
            l.retain_recent();
        }
    }
}

/// Default budget of failed authentications per client address per minute.
pub const DEFAULT_AUTH_FAILURES_PER_MIN: u32 = 60;

/// Failed authentications per client address (brute-force protection, on by default): every
/// failure takes a token from the address's bucket (`failures_per_min` per minute, burst of the
/// same); once the bucket is empty the address is blocked until a token is back, and
/// [`AuthFailures::check`] refuses its requests before any key lookup. State of quiet
/// addresses is pruned, so a flood of distinct addresses cannot grow it without bound.
pub struct AuthFailures {
    limiter: Option<RateLimiter<IpAddr, HashMapStateStore<IpAddr>, DefaultClock, NoOpMiddleware>>,
    blocked: Mutex<HashMap<IpAddr, Instant>>,
    last_prune: Mutex<Instant>,
    failures: AtomicU64,
    refused: AtomicU64,
}

impl std::fmt::Debug for AuthFailures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "AuthFailures(on: {}, failures: {})",
            self.limiter.is_some(),
            self.failures_total()
        )
    }
}

impl AuthFailures {
    /// A limiter allowing `failures_per_min` failures per address per minute; 0 = off.
    pub fn new(failures_per_min: u32) -> AuthFailures {
        AuthFailures {
            limiter: NonZeroU32::new(failures_per_min).map(|n| {
                RateLimiter::new(
                    Quota::per_minute(n),
                    HashMapStateStore::default(),
                    DefaultClock::default(),
                )
            }),
            blocked: Mutex::default(),
            last_prune: Mutex::new(Instant::now()),
            failures: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// `Err(RateLimited)` while `ip` is blocked.
    pub fn check(&self, ip: IpAddr) -> Result<()> {
        if self.limiter.is_none() {
            return Ok(());
        }
        self.prune();
        let now = Instant::now();
        let until = self
            .blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ip)
            .copied();
        match until {
            Some(t) if t > now => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                let wait = t - now;
                Err(Error::RateLimited {
                    retry_after_secs: (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1),
                })
            }
            _ => Ok(()),
        }
    }

    /// Counts one failed authentication from `ip`.
    pub fn record_failure(&self, ip: IpAddr) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let Some(l) = &self.limiter else { return };
        if let Err(not_until) = l.check_key(&ip) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            self.blocked
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(ip, Instant::now() + wait);
        }
    }

    /// Failures recorded so far.
    pub fn failures_total(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    /// Requests refused by [`AuthFailures::check`] so far.
    pub fn blocked_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// At most once a minute: forgets addresses back at full quota and expired blocks.
    fn prune(&self) {
        let now = Instant::now();
        {
            let mut last = self.last_prune.lock().unwrap_or_else(|p| p.into_inner());
            if now.duration_since(*last) < std::time::Duration::from_secs(60) {
                return;
            }
            *last = now;
        }
        if let Some(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
        self.blocked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, t| *t > now);
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
        assert_eq!(RateLimitConfig::default().s3_writes_per_min, 100);
        let c = RateLimitConfig::from_lookup(|k| {
            (k == "VAULTGATE_RATE_S3_WRITES_PER_MIN").then(|| "7".to_owned())
        })
        .unwrap();
        assert_eq!(c.s3_writes_per_min, 7);
        assert_eq!(c.admin_per_min, 60);
        assert!(matches!(
            RateLimitConfig::from_lookup(|_| Some("many".into())),
            Err(Error::Config(_))
        ));
    }
}
