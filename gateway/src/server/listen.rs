//! Accepting connections under bounds, for both listeners (S3 and admin).
//!
//! One accept loop ([`serve`]) applies the connection-level defences of docs/SECURITY.md:
//! - a cap on open connections per listener (a semaphore taken before `accept`, so further
//!   clients wait in the kernel's accept queue instead of exhausting file descriptors), lowered
//!   to fit the process's descriptor limit;
//! - a cap per client address (a connection over it is closed at once), so one peer cannot
//!   hold every slot;
//! - a deadline for the request head (hyper's `header_read_timeout`, with a timer, which also
//!   bounds how long a kept-alive connection may sit idle before its next request) and a
//!   maximum head size (larger heads answer 431);
//! - TLS when the listener has a certificate (`super::tls`): the handshake runs after the caps
//!   above admitted the connection, under its own deadline (the head deadline), and a failed
//!   or slow handshake only closes that connection (counted in
//!   `vaultgate_tls_handshake_failures_total`); ALPN picks HTTP/2 or HTTP/1.1;
//! - graceful shutdown: stop accepting, let in-flight connections finish within the grace
//!   period, then abort the rest.
//!
//! Body progress is bounded per request, not per connection: see `super::guard::TimedBody`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::tls::TlsListener;
use crate::config::Limits;
use crate::metrics::Metrics;

/// File descriptors kept free for the index, the backend, key files and the other listener.
const FD_RESERVE: u64 = 256;

/// The bounds of one listener.
#[derive(Debug, Clone)]
pub(crate) struct ListenLimits {
    /// which listener (`s3` or `admin`), for logs and metrics
    pub name: &'static str,
    /// open connections at most
    pub max_connections: usize,
    /// open connections per client address at most
    pub per_ip: u32,
    /// deadline for a complete request head
    pub header_read_timeout: Duration,
    /// largest request head in bytes
    pub max_header_bytes: usize,
}

impl ListenLimits {
    /// The S3 listener's bounds: the configured cap, at most three quarters of the descriptors
    /// the process may open (less a reserve).
    pub fn s3(l: &Limits) -> ListenLimits {
        let fds = fd_budget();
        ListenLimits::with_cap("s3", l, fds.saturating_mul(3) / 4)
    }

    /// The admin listener's bounds: at most 256 connections and a quarter of the descriptors,
    /// so a flood on the S3 port leaves the probes and the admin API reachable.
    pub fn admin(l: &Limits) -> ListenLimits {
        let fds = fd_budget();
        ListenLimits::with_cap("admin", l, (fds / 4).min(256))
    }

    fn with_cap(name: &'static str, l: &Limits, fd_cap: u64) -> ListenLimits {
        let max = u64::from(l.max_connections()).min(fd_cap.max(16));
        ListenLimits {
            name,
            max_connections: usize::try_from(max).unwrap_or(usize::MAX),
            per_ip: l.max_connections_per_ip(),
            header_read_timeout: Duration::from_secs(l.header_read_timeout_secs()),
            max_header_bytes: usize::try_from(l.max_header_bytes()).unwrap_or(usize::MAX),
        }
    }
}

/// Descriptors available for connections: the soft `RLIMIT_NOFILE` less [`FD_RESERVE`]
/// (read from /proc; 1024 when it cannot be read).
fn fd_budget() -> u64 {
    let soft = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
        })
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1024);
    soft.saturating_sub(FD_RESERVE)
}

/// Open connections per client address.
#[derive(Debug, Clone, Default)]
struct PerIp(Arc<Mutex<HashMap<IpAddr, u32>>>);

/// One connection's place in [`PerIp`]; given back on drop.
struct IpSlot {
    map: PerIp,
    ip: IpAddr,
}

impl PerIp {
    fn take(&self, ip: IpAddr, cap: u32) -> Option<IpSlot> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            map: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut m = self.map.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// The hyper connection builder with the listener's head deadline and size bound.
fn builder(limits: &ListenLimits) -> hyper_util::server::conn::auto::Builder<TokioExecutor> {
    let mut b = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(limits.header_read_timeout);
    b
}

/// Serves `listener` until `stop`, one task per connection, with the service `make(peer)`,
/// over TLS when `tls` is given.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn serve<F, S, B>(
    listener: TcpListener,
    limits: ListenLimits,
    metrics: Metrics,
    tls: Option<Arc<TlsListener>>,
    make: F,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) where
    F: Fn(SocketAddr) -> S,
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = builder(&limits);
    let total = Arc::new(Semaphore::new(limits.max_connections));
    let per_ip = PerIp::default();
    let refused = metrics
        .connections_refused
        .with_label_values(&[limits.name]);
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            p = total.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stopped(&mut stop) => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stopped(&mut stop) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(listener = limits.name, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = per_ip.take(peer.ip(), limits.per_ip) else {
            refused.inc();
            tracing::debug!(listener = limits.name, peer = %peer.ip(), "connection over the per-address cap closed");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let svc = make(peer);
        let b = builder.clone();
        let mut conn_stop = stop.clone();
        let tls = tls.clone();
        conns.spawn(async move {
            let _held = (permit, slot);
            let Some(tls) = tls else {
                return connection(&b, TokioIo::new(tcp), svc, conn_stop).await;
            };
            if let Some(stream) = handshake(&tls, tcp, peer, &mut conn_stop).await {
                connection(&b, TokioIo::new(stream), svc, conn_stop).await;
            }
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    drain(conns, grace, limits.name).await;
}

/// The TLS handshake of a connection from `peer`, within the listener's handshake timeout;
/// None when it fails, times out (both counted) or the listener stops first.
async fn handshake(
    tls: &TlsListener,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    stop: &mut watch::Receiver<bool>,
) -> Option<tokio_rustls::server::TlsStream<tokio::net::TcpStream>> {
    let handshake = tokio::time::timeout(tls.handshake_timeout, tls.acceptor().accept(tcp));
    let stream = tokio::select! {
        r = handshake => r,
        _ = stopped(stop) => return None,
    };
    match stream {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(e)) => {
            tls.handshake_failed();
            tracing::debug!(peer = %peer.ip(), error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tls.handshake_failed();
            tracing::debug!(peer = %peer.ip(), "TLS handshake timed out");
            None
        }
    }
}

/// Serves one connection (plain or TLS) until it ends, or shuts it down gracefully on `stop`.
async fn connection<I, S, B>(
    b: &hyper_util::server::conn::auto::Builder<TokioExecutor>,
    io: I,
    svc: S,
    mut stop: watch::Receiver<bool>,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<http::Request<Incoming>, Response = http::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let conn = b.serve_connection(io, svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r { tracing::debug!(error = %e, "connection ended with error"); }
        }
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            if let Err(e) = conn.await { tracing::debug!(error = %e, "connection ended with error"); }
        }
    }
}

/// Waits for the open connections, at most `grace`, then aborts the rest.
async fn drain(mut conns: JoinSet<()>, grace: Duration, name: &'static str) {
    tracing::info!(
        listener = name,
        connections = conns.len(),
        "stopped accepting; waiting for in-flight requests"
    );
    if tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        tracing::warn!(
            listener = name,
            remaining = conns.len(),
            "grace period over; aborting remaining connections"
        );
        conns.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_slots_are_capped_and_given_back() {
        let m = PerIp::default();
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let a = m.take(ip, 2).unwrap();
        let _b = m.take(ip, 2).unwrap();
        assert!(m.take(ip, 2).is_none());
        assert!(m.take("127.0.0.3".parse().unwrap(), 2).is_some());
        drop(a);
        assert!(m.take(ip, 2).is_some());
    }

    #[test]
    fn caps_fit_the_descriptor_budget() {
        let l = Limits::default();
        let s3 = ListenLimits::s3(&l);
        let admin = ListenLimits::admin(&l);
        assert!(s3.max_connections as u64 + admin.max_connections as u64 <= fd_budget().max(32));
        assert!(admin.max_connections <= 256);
        assert_eq!(s3.per_ip, 128);
    }
}
