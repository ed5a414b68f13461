//! TLS on both listeners: rustls with the aws-lc-rs provider, TLS 1.2 and 1.3 only, HTTP/2 and
//! HTTP/1.1 offered through ALPN, certificates reloaded in place.
//!
//! - [`load`] reads a PEM chain (leaf first) and its key, and refuses what would fail clients
//!   later: no certificate, a key that does not match the leaf, a chain whose certificates do not
//!   follow each other, a certificate not yet or no longer valid, a key file readable by others.
//! - [`TlsListener`] holds the listener's current `ServerConfig` behind a lock; every accepted
//!   connection takes the config of that moment, so a reload serves new connections with the new
//!   certificate while open ones keep theirs (nothing is dropped).
//! - [`watch`] reloads when the files change (their contents are compared every few seconds:
//!   certbot and cert-manager renew in place, through symlinks) and at once on SIGHUP. A reload
//!   that fails (a half-written pair, a mismatched key) keeps the current certificate, logs why
//!   and counts `vaultgate_tls_reloads_total{result="error"}`.
//! - `vaultgate_tls_cert_not_after_seconds{listener}` exposes the expiry of each served
//!   certificate; [`check`] (for `vaultgate config check`) warns [`EXPIRY_WARNING`] ahead.
//!
//! The handshake runs inside the connection caps of `super::listen` and has its own deadline
//! (the request head deadline, `limits.header_read_timeout_secs`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{IntCounterVec, IntGaugeVec, Opts};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use x509_cert::der::{Decode, Encode};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::metrics::Metrics;

/// `vaultgate config check` warns when a certificate expires within this time.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// How often the certificate files are compared with what is served.
pub const RELOAD_POLL: Duration = Duration::from_secs(5);

/// Largest PEM file read (a chain with a few certificates is a few KiB).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// The PEM files of one listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// certificate chain, leaf first
    pub cert: PathBuf,
    /// private key (PKCS#8, PKCS#1 or SEC1)
    pub key: PathBuf,
    /// CA bundle client certificates must chain to (mTLS); admin listener only
    pub client_ca: Option<PathBuf>,
}

/// What a loaded certificate says about itself (for logs, `config check` and the metric).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// subject of the leaf certificate
    pub subject: String,
    /// certificates in the chain
    pub chain_len: usize,
    /// start of validity (seconds since the Unix epoch)
    pub not_before: u64,
    /// end of validity (seconds since the Unix epoch)
    pub not_after: u64,
}

impl CertSummary {
    /// The expiry as RFC 3339.
    pub fn not_after_rfc3339(&self) -> String {
        rfc3339(self.not_after)
    }
}

fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{secs}"))
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Reads a PEM file (bounded), naming the setting in errors.
fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let f = std::fs::File::open(path)
        .map_err(|e| Error::Config(format!("{what} {}: {e}", path.display())))?;
    let mut buf = Vec::new();
    f.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::Config(format!("{what} {}: {e}", path.display())))?;
    if buf.len() as u64 > MAX_PEM_BYTES {
        return Err(Error::Config(format!(
            "{what} {}: larger than {MAX_PEM_BYTES} bytes",
            path.display()
        )));
    }
    Ok(buf)
}

/// A private key file others may read is refused (group is allowed: Kubernetes mounts secrets
/// group-readable for `fsGroup`).
fn check_key_mode(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| Error::Config(format!("TLS key {}: {e}", path.display())))?
        .permissions()
        .mode();
    if mode & 0o007 != 0 {
        return Err(Error::Config(format!(
            "TLS key {} is readable by other users (mode {:o}); run chmod o-rwx on it",
            path.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

fn parse_certs(pem: &[u8], path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("{what} {}: bad PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::Config(format!(
            "{what} {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in the file",
            path.display()
        )));
    }
    Ok(certs)
}

/// Parses and checks the chain: every certificate decodes, each is issued by the next one
/// (by name), and the leaf is valid at `now`.
fn summarize(chain: &[CertificateDer<'_>], path: &Path, now: SystemTime) -> Result<CertSummary> {
    let mut parsed = Vec::with_capacity(chain.len());
    for (i, der) in chain.iter().enumerate() {
        let c = x509_cert::Certificate::from_der(der.as_ref()).map_err(|e| {
            Error::Config(format!(
                "TLS certificate {}: certificate {} of the chain does not parse: {e}",
                path.display(),
                i + 1
            ))
        })?;
        parsed.push(c);
    }
    for (i, pair) in parsed.windows(2).enumerate() {
        let issuer = pair[0].tbs_certificate.issuer.to_der().unwrap_or_default();
        let next = pair[1].tbs_certificate.subject.to_der().unwrap_or_default();
        if issuer != next {
            return Err(Error::Config(format!(
                "TLS certificate {}: certificate {} ({}) is not the issuer of certificate {} (the chain must run leaf first, then each issuer)",
                path.display(),
                i + 2,
                pair[1].tbs_certificate.subject,
                i + 1
            )));
        }
    }
    let leaf = &parsed[0].tbs_certificate;
    let summary = CertSummary {
        subject: leaf.subject.to_string(),
        chain_len: parsed.len(),
        not_before: leaf.validity.not_before.to_unix_duration().as_secs(),
        not_after: leaf.validity.not_after.to_unix_duration().as_secs(),
    };
    let now = unix(now);
    if now >= summary.not_after {
        return Err(Error::Config(format!(
            "TLS certificate {} ({}) expired at {}",
            path.display(),
            summary.subject,
            rfc3339(summary.not_after)
        )));
    }
    if now < summary.not_before {
        return Err(Error::Config(format!(
            "TLS certificate {} ({}) is not valid before {}",
            path.display(),
            summary.subject,
            rfc3339(summary.not_before)
        )));
    }
    Ok(summary)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Loads and checks one listener's files into a rustls config: TLS 1.2/1.3, ALPN `h2` and
/// `http/1.1`, client certificates required when `client_ca` is set.
pub fn load(files: &TlsFiles, now: SystemTime) -> Result<(Arc<ServerConfig>, CertSummary)> {
    let chain = parse_certs(
        &read_pem(&files.cert, "TLS certificate")?,
        &files.cert,
        "TLS certificate",
    )?;
    let summary = summarize(&chain, &files.cert, now)?;
    check_key_mode(&files.key)?;
    let key_pem = zeroize::Zeroizing::new(read_pem(&files.key, "TLS key")?);
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        Error::Config(format!(
            "TLS key {}: no usable PEM private key ({e})",
            files.key.display()
        ))
    })?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| Error::Internal(format!("TLS versions: {e}")))?;
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in parse_certs(&read_pem(ca, "TLS client CA")?, ca, "TLS client CA")? {
                roots
                    .add(c)
                    .map_err(|e| Error::Config(format!("TLS client CA {}: {e}", ca.display())))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| Error::Config(format!("TLS client CA {}: {e}", ca.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => Error::Config(format!(
            "TLS key {} does not match the certificate {}",
            files.key.display(),
            files.cert.display()
        )),
        other => Error::Config(format!(
            "TLS key {} / certificate {}: {other}",
            files.key.display(),
            files.cert.display()
        )),
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((Arc::new(config), summary))
}

/// `vaultgate config check`: loads every configured pair as `serve` would (an error names the
/// file and the reason) and returns one line per listener, plus warnings for certificates that
/// expire within [`EXPIRY_WARNING`].
pub fn check(config: &Config, now: SystemTime) -> Result<(Vec<String>, Vec<String>)> {
    let mut lines = Vec::new();
    let mut warnings = Vec::new();
    for (name, files) in [
        ("s3", config.tls.s3_files()),
        ("admin", config.tls.admin_files()),
    ] {
        let Some(files) = files else {
            lines.push(format!("{name} listener: plain HTTP"));
            continue;
        };
        let (_, s) = load(&files, now)?;
        lines.push(format!(
            "{name} listener: TLS, certificate {} ({}, chain of {}), valid until {}{}",
            files.cert.display(),
            s.subject,
            s.chain_len,
            s.not_after_rfc3339(),
            if files.client_ca.is_some() {
                ", client certificates required"
            } else {
                ""
            }
        ));
        if s.not_after.saturating_sub(unix(now)) < EXPIRY_WARNING.as_secs() {
            warnings.push(format!(
                "the {name} listener's certificate {} expires at {} (in less than 30 days); renew it",
                files.cert.display(),
                s.not_after_rfc3339()
            ));
        }
    }
    Ok((lines, warnings))
}

/// The TLS metrics (registered once per [`Metrics`]).
#[derive(Clone)]
struct TlsMetrics {
    not_after: IntGaugeVec,
    reloads: IntCounterVec,
    handshake_failures: IntCounterVec,
}

impl TlsMetrics {
    fn register(metrics: &Metrics) -> Result<TlsMetrics> {
        let not_after = IntGaugeVec::new(
            Opts::new(
                "vaultgate_tls_cert_not_after_seconds",
                "Expiry (Unix time) of the certificate each listener serves",
            ),
            &["listener"],
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
        let reloads = IntCounterVec::new(
            Opts::new(
                "vaultgate_tls_reloads_total",
                "Certificate reloads by listener and result (ok, error)",
            ),
            &["listener", "result"],
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
        let handshake_failures = IntCounterVec::new(
            Opts::new(
                "vaultgate_tls_handshake_failures_total",
                "TLS handshakes that failed or timed out, by listener",
            ),
            &["listener"],
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
        let r = metrics.registry();
        for c in [
            Box::new(not_after.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reloads.clone()),
            Box::new(handshake_failures.clone()),
        ] {
            r.register(c).map_err(|e| Error::Internal(e.to_string()))?;
        }
        Ok(TlsMetrics {
            not_after,
            reloads,
            handshake_failures,
        })
    }
}

/// One listener's TLS: its files, the config served to new connections, and the fingerprint of
/// the file contents last looked at (so a bad pair is reported once, not every poll).
pub(crate) struct TlsListener {
    name: &'static str,
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
    seen: Mutex<[u8; 32]>,
    not_after: Mutex<u64>,
    metrics: OnceLock<TlsMetrics>,
    /// deadline for the handshake
    pub handshake_timeout: Duration,
}

impl TlsListener {
    fn open(
        name: &'static str,
        files: TlsFiles,
        handshake_timeout: Duration,
    ) -> Result<TlsListener> {
        let seen = fingerprint(&files);
        let (config, summary) = load(&files, SystemTime::now())?;
        warn_if_expiring(name, &files, &summary);
        Ok(TlsListener {
            name,
            files,
            current: RwLock::new(config),
            seen: Mutex::new(seen),
            not_after: Mutex::new(summary.not_after),
            metrics: OnceLock::new(),
            handshake_timeout,
        })
    }

    /// Starts reporting to `m` (the expiry gauge at once).
    fn report_to(&self, m: TlsMetrics) {
        let not_after = *self.not_after.lock().unwrap_or_else(|p| p.into_inner());
        m.not_after
            .with_label_values(&[self.name])
            .set(i64::try_from(not_after).unwrap_or(i64::MAX));
        let _ = self.metrics.set(m);
    }

    fn count_reload(&self, result: &str) {
        if let Some(m) = self.metrics.get() {
            m.reloads.with_label_values(&[self.name, result]).inc();
        }
    }

    /// The acceptor for the next connection (the config current at this moment).
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        let config = self
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        tokio_rustls::TlsAcceptor::from(config)
    }

    /// Counts a failed or timed-out handshake.
    pub fn handshake_failed(&self) {
        if let Some(m) = self.metrics.get() {
            m.handshake_failures.with_label_values(&[self.name]).inc();
        }
    }

    /// Reloads when the files' contents changed since last looked at (or always, `force`).
    fn reload(&self, force: bool) {
        let fp = fingerprint(&self.files);
        {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            if !force && *seen == fp {
                return;
            }
            *seen = fp;
        }
        match load(&self.files, SystemTime::now()) {
            Ok((config, summary)) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = config;
                *self.not_after.lock().unwrap_or_else(|p| p.into_inner()) = summary.not_after;
                if let Some(m) = self.metrics.get() {
                    m.not_after
                        .with_label_values(&[self.name])
                        .set(i64::try_from(summary.not_after).unwrap_or(i64::MAX));
                }
                self.count_reload("ok");
                tracing::info!(
                    listener = self.name,
                    cert = %self.files.cert.display(),
                    subject = %summary.subject,
                    not_after = %summary.not_after_rfc3339(),
                    "TLS certificate loaded for new connections"
                );
                warn_if_expiring(self.name, &self.files, &summary);
            }
            Err(e) => {
                self.count_reload("error");
                tracing::error!(
                    listener = self.name,
                    error = %e,
                    "TLS certificate reload failed; still serving the previous certificate"
                );
            }
        }
    }
}

fn warn_if_expiring(name: &str, files: &TlsFiles, s: &CertSummary) {
    if s.not_after.saturating_sub(unix(SystemTime::now())) < EXPIRY_WARNING.as_secs() {
        tracing::warn!(
            listener = name,
            cert = %files.cert.display(),
            not_after = %s.not_after_rfc3339(),
            "TLS certificate expires in less than 30 days"
        );
    }
}

/// SHA-256 over the files' contents (unreadable files hash as empty: the reload then reports
/// why).
fn fingerprint(files: &TlsFiles) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in [
        Some(&files.cert),
        Some(&files.key),
        files.client_ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        let bytes = zeroize::Zeroizing::new(std::fs::read(p).unwrap_or_default());
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(&*bytes);
    }
    h.finalize().into()
}

/// The TLS of both listeners, as configured.
pub(crate) struct Tls {
    /// the S3 listener's TLS (None: plain HTTP)
    pub s3: Option<Arc<TlsListener>>,
    /// the admin listener's TLS (None: plain HTTP)
    pub admin: Option<Arc<TlsListener>>,
}

impl Tls {
    /// Loads the configured certificates (an error names the file and the reason). Called
    /// before anything else is opened, so a bad certificate changes nothing on disk.
    pub fn open(config: &Config) -> Result<Tls> {
        let timeout = Duration::from_secs(config.limits.header_read_timeout_secs());
        let open = |name, files: Option<TlsFiles>| {
            files
                .map(|f| TlsListener::open(name, f, timeout).map(Arc::new))
                .transpose()
        };
        Ok(Tls {
            s3: open("s3", config.tls.s3_files())?,
            admin: open("admin", config.tls.admin_files())?,
        })
    }

    /// Registers the TLS metrics (when a listener has TLS) and reports to them.
    pub fn report_to(&self, metrics: &Metrics) -> Result<()> {
        if self.s3.is_none() && self.admin.is_none() {
            return Ok(());
        }
        let m = TlsMetrics::register(metrics)?;
        for l in self.s3.iter().chain(self.admin.iter()) {
            l.report_to(m.clone());
        }
        Ok(())
    }

    /// Reloads the certificates when their files change (polled every [`RELOAD_POLL`]) and on
    /// SIGHUP, until `stop`. Without TLS, SIGHUP is only logged (it no longer ends the process).
    pub fn watch(&self, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
        let listeners: Vec<Arc<TlsListener>> =
            self.s3.iter().chain(self.admin.iter()).cloned().collect();
        tokio::spawn(watch(listeners, stop, RELOAD_POLL))
    }
}

async fn watch(
    listeners: Vec<Arc<TlsListener>>,
    mut stop: watch::Receiver<bool>,
    period: Duration,
) {
    #[cfg(unix)]
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP; certificates reload on file changes only");
            None
        }
    };
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        let hup_recv = async {
            #[cfg(unix)]
            if let Some(h) = hup.as_mut() {
                h.recv().await;
                return;
            }
            std::future::pending::<()>().await
        };
        let force = tokio::select! {
            _ = tick.tick() => false,
            _ = hup_recv => true,
            _ = stop.wait_for(|v| *v) => return,
        };
        if force {
            tracing::info!(
                listeners = listeners.len(),
                "SIGHUP: reloading TLS certificates"
            );
        }
        if listeners.is_empty() {
            continue;
        }
        let ls = listeners.clone();
        // file reads and parsing off the async threads
        let _ = tokio::task::spawn_blocking(move || {
            for l in &ls {
                l.reload(force);
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::Command;

    /// A key and self-signed certificate made by the openssl CLI (`days` may be negative:
    /// `-not_after` in the past is made with a start date before it).
    fn make_pair(dir: &Path, name: &str, cn: &str) -> TlsFiles {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "365", "-subj", &format!("/CN={cn}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("openssl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        TlsFiles {
            cert,
            key,
            client_ca: None,
        }
    }

    #[test]
    fn a_good_pair_loads_with_alpn_and_its_expiry() {
        let d = tempfile::tempdir().unwrap();
        let f = make_pair(d.path(), "a", "gw.test");
        let (cfg, s) = load(&f, SystemTime::now()).unwrap();
        assert_eq!(
            cfg.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        assert_eq!(s.subject, "CN=gw.test");
        assert_eq!(s.chain_len, 1);
        let left = s.not_after - unix(SystemTime::now());
        assert!(left > 360 * 86400 && left <= 366 * 86400, "{left}");
    }

    #[test]
    fn mismatch_expiry_mode_and_garbage_are_refused_with_a_reason() {
        let d = tempfile::tempdir().unwrap();
        let a = make_pair(d.path(), "a", "a.test");
        let b = make_pair(d.path(), "b", "b.test");
        let mixed = TlsFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
            client_ca: None,
        };
        let e = load(&mixed, SystemTime::now()).unwrap_err().to_string();
        assert!(e.contains("does not match"), "{e}");
        // two years on, the one-year certificate has expired
        let later = SystemTime::now() + Duration::from_secs(2 * 365 * 86400);
        let e = load(&a, later).unwrap_err().to_string();
        assert!(e.contains("expired at"), "{e}");
        let earlier = SystemTime::now() - Duration::from_secs(86400);
        let e = load(&a, earlier).unwrap_err().to_string();
        assert!(e.contains("not valid before"), "{e}");
        std::fs::set_permissions(&a.key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = load(&a, SystemTime::now()).unwrap_err().to_string();
        assert!(e.contains("readable by other users"), "{e}");
        std::fs::set_permissions(&a.key, std::fs::Permissions::from_mode(0o640)).unwrap();
        load(&a, SystemTime::now()).unwrap();
        std::fs::write(&b.cert, "not a certificate\n").unwrap();
        let e = load(&b, SystemTime::now()).unwrap_err().to_string();
        assert!(e.contains("no PEM certificate"), "{e}");
        let e = load(
            &TlsFiles {
                cert: d.path().join("missing.crt"),
                ..a.clone()
            },
            SystemTime::now(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing.crt"), "{e}");
    }

    #[test]
    fn a_chain_out_of_order_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let a = make_pair(d.path(), "a", "a.test");
        let b = make_pair(d.path(), "b", "b.test");
        let chain = d.path().join("chain.crt");
        let mut pem = std::fs::read(&a.cert).unwrap();
        pem.extend(std::fs::read(&b.cert).unwrap());
        std::fs::write(&chain, pem).unwrap();
        let e = load(
            &TlsFiles {
                cert: chain,
                ..a.clone()
            },
            SystemTime::now(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("is not the issuer"), "{e}");
    }

    #[test]
    fn reload_swaps_the_config_and_a_bad_pair_keeps_the_old_one() {
        let d = tempfile::tempdir().unwrap();
        let f = make_pair(d.path(), "a", "one.test");
        let m = Metrics::new();
        let l = TlsListener::open("s3", f.clone(), Duration::from_secs(5)).unwrap();
        l.report_to(TlsMetrics::register(&m).unwrap());
        let first = l.current.read().unwrap().clone();
        l.reload(false);
        assert!(
            Arc::ptr_eq(&first, &l.current.read().unwrap()),
            "unchanged files: no reload"
        );
        // a new pair in place
        let n = make_pair(d.path(), "n", "two.test");
        std::fs::copy(&n.cert, &f.cert).unwrap();
        std::fs::copy(&n.key, &f.key).unwrap();
        l.reload(false);
        let second = l.current.read().unwrap().clone();
        assert!(!Arc::ptr_eq(&first, &second));
        // half a renewal (new cert, old key) is refused and the served config stays
        let o = make_pair(d.path(), "o", "three.test");
        std::fs::copy(&o.cert, &f.cert).unwrap();
        l.reload(false);
        assert!(Arc::ptr_eq(&second, &l.current.read().unwrap()));
        let text = m.render();
        assert!(
            text.contains("vaultgate_tls_reloads_total{listener=\"s3\",result=\"error\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("vaultgate_tls_reloads_total{listener=\"s3\",result=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains("vaultgate_tls_cert_not_after_seconds{listener=\"s3\"}"));
    }
}
