//! [`MeteredBackend`]: a decorator that forwards every [`Backend`] method to an inner backend and
//! counts calls, errors and latency in Prometheus metrics:
//!
//! - `vaultgate_backend_requests_total{backend,op}`
//! - `vaultgate_backend_errors_total{backend,op,kind}` (`kind`: `not_found`, `unavailable`, `io`, `other`)
//! - `vaultgate_backend_request_duration_seconds{backend,op}`
//!
//! `op` is `put`, `get`, `head`, `delete`, `list` or `check`. The duration of `get` and `list` is
//! the time until the stream is handed back (time to first byte); errors that surface later in
//! those streams are counted as errors of the same op.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::{Backend, BackendError, ByteStream, ObjectInfo};

/// The backend metric families (cheap to clone; share one set between backends of a registry).
#[derive(Clone, Debug)]
pub struct BackendMetrics {
    requests: IntCounterVec,
    errors: IntCounterVec,
    duration: HistogramVec,
}

fn metric_error(e: prometheus::Error) -> BackendError {
    BackendError::Refused(format!("backend metrics: {e}"))
}

impl BackendMetrics {
    /// Creates the three families and registers them into `registry` (an error if they are
    /// registered there already: share the [`BackendMetrics`] instead).
    pub fn register(registry: &Registry) -> Result<BackendMetrics, BackendError> {
        let requests = IntCounterVec::new(
            Opts::new(
                "vaultgate_backend_requests_total",
                "Storage backend calls by backend and operation",
            ),
            &["backend", "op"],
        )
        .map_err(metric_error)?;
        let errors = IntCounterVec::new(
            Opts::new(
                "vaultgate_backend_errors_total",
                "Storage backend errors by backend, operation and kind",
            ),
            &["backend", "op", "kind"],
        )
        .map_err(metric_error)?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "vaultgate_backend_request_duration_seconds",
                "Storage backend call duration (streams: until the stream is returned)",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                120.0,
            ]),
            &["backend", "op"],
        )
        .map_err(metric_error)?;
        registry
            .register(Box::new(requests.clone()))
            .map_err(metric_error)?;
        registry
            .register(Box::new(errors.clone()))
            .map_err(metric_error)?;
        registry
            .register(Box::new(duration.clone()))
            .map_err(metric_error)?;
        Ok(BackendMetrics {
            requests,
            errors,
            duration,
        })
    }

    fn error(&self, backend: &str, op: &str, e: &BackendError) {
        self.errors
            .with_label_values(&[backend, op, kind_of(e)])
            .inc();
    }
}

/// The `kind` label of an error.
pub fn kind_of(e: &BackendError) -> &'static str {
    match e {
        BackendError::NotFound(_) => "not_found",
        BackendError::Unavailable(_) => "unavailable",
        BackendError::Io(_) => "io",
        BackendError::InvalidId(_) => "invalid_id",
        BackendError::Config(_) => "config",
        BackendError::Denied(_) => "denied",
        BackendError::SizeMismatch(_) => "size_mismatch",
        BackendError::InvalidRange(_) => "invalid_range",
        BackendError::Refused(_) => "refused",
    }
}

/// A [`Backend`] that meters every call of the backend it wraps.
#[derive(Debug, Clone)]
pub struct MeteredBackend {
    inner: Arc<dyn Backend>,
    metrics: BackendMetrics,
    name: String,
}

impl MeteredBackend {
    /// Wraps `inner`, registering the backend metric families into `registry`.
    pub fn new(
        inner: Arc<dyn Backend>,
        registry: &Registry,
    ) -> Result<MeteredBackend, BackendError> {
        Ok(MeteredBackend::with_metrics(
            inner,
            BackendMetrics::register(registry)?,
        ))
    }

    /// Wraps `inner` with metric families registered before (several backends, one registry).
    pub fn with_metrics(inner: Arc<dyn Backend>, metrics: BackendMetrics) -> MeteredBackend {
        let name = inner.name().to_string();
        MeteredBackend {
            inner,
            metrics,
            name,
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &Arc<dyn Backend> {
        &self.inner
    }

    fn start(&self, op: &str) -> Instant {
        self.metrics
            .requests
            .with_label_values(&[self.name.as_str(), op])
            .inc();
        Instant::now()
    }

    fn finish<T>(
        &self,
        op: &str,
        started: Instant,
        result: Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        self.metrics
            .duration
            .with_label_values(&[self.name.as_str(), op])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &result {
            self.metrics.error(&self.name, op, e);
        }
        result
    }
}

#[async_trait]
impl Backend for MeteredBackend {
    fn name(&self) -> &str {
        &self.name
    }

    async fn put(
        &self,
        id: &str,
        body: ByteStream,
        size_hint: Option<u64>,
    ) -> Result<u64, BackendError> {
        let t = self.start("put");
        let r = self.inner.put(id, body, size_hint).await;
        self.finish("put", t, r)
    }

    async fn put_batch(&self, items: Vec<(String, bytes::Bytes)>) -> Vec<Result<(), BackendError>> {
        let t = self.start("put_batch");
        let results = self.inner.put_batch(items).await;
        // the batch's duration once, each failed item's error with its own kind
        let _ = self.finish("put_batch", t, Ok(()));
        for e in results.iter().filter_map(|r| r.as_ref().err()) {
            self.metrics.error(&self.name, "put_batch", e);
        }
        results
    }

    async fn get(&self, id: &str, range: Option<Range<u64>>) -> Result<ByteStream, BackendError> {
        let t = self.start("get");
        let r = self.inner.get(id, range).await;
        let stream = self.finish("get", t, r)?;
        let (metrics, name) = (self.metrics.clone(), self.name.clone());
        Ok(stream
            .inspect(move |item| {
                if let Err(e) = item {
                    let e = BackendError::Io(std::io::Error::new(e.kind(), e.to_string()));
                    metrics.error(&name, "get", &e);
                }
            })
            .boxed())
    }

    async fn head(&self, id: &str) -> Result<ObjectInfo, BackendError> {
        let t = self.start("head");
        let r = self.inner.head(id).await;
        self.finish("head", t, r)
    }

    async fn delete(&self, id: &str) -> Result<(), BackendError> {
        let t = self.start("delete");
        let r = self.inner.delete(id).await;
        self.finish("delete", t, r)
    }

    async fn list(
        &self,
    ) -> Result<BoxStream<'static, Result<ObjectInfo, BackendError>>, BackendError> {
        let t = self.start("list");
        let r = self.inner.list().await;
        let stream = self.finish("list", t, r)?;
        let (metrics, name) = (self.metrics.clone(), self.name.clone());
        Ok(stream
            .inspect(move |item| {
                if let Err(e) = item {
                    metrics.error(&name, "list", e);
                }
            })
            .boxed())
    }

    async fn check(&self) -> Result<(), BackendError> {
        let t = self.start("check");
        let r = self.inner.check().await;
        self.finish("check", t, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{LocalBackend, new_backend_id};
    use bytes::Bytes;

    fn value(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
        for family in registry.gather() {
            if family.name() != name {
                continue;
            }
            for m in family.get_metric() {
                let matches = labels.iter().all(|(k, v)| {
                    m.get_label()
                        .iter()
                        .any(|l| l.name() == *k && l.value() == *v)
                });
                if matches {
                    return if name.ends_with("_seconds") {
                        m.get_histogram().get_sample_count() as f64
                    } else {
                        m.get_counter().get_value()
                    };
                }
            }
        }
        0.0
    }

    #[tokio::test]
    async fn counts_calls_errors_and_latency_while_forwarding() {
        let dir = tempfile::tempdir().unwrap();
        let local: Arc<dyn Backend> = Arc::new(LocalBackend::open(dir.path()).await.unwrap());
        let registry = Registry::new();
        let b = MeteredBackend::new(local.clone(), &registry).unwrap();
        assert_eq!(b.name(), "file");

        let id = new_backend_id();
        let body = futures::stream::iter([Ok(Bytes::from_static(b"hello"))]).boxed();
        assert_eq!(b.put(&id, body, Some(5)).await.unwrap(), 5);
        // Forwarded for real: the inner backend holds the bytes.
        assert_eq!(local.head(&id).await.unwrap().size, 5);
        let got: Vec<_> = b.get(&id, Some(1..4)).await.unwrap().collect().await;
        assert_eq!(
            got.into_iter()
                .map(|c| c.unwrap())
                .collect::<Vec<_>>()
                .concat(),
            b"ell"
        );
        let missing = new_backend_id();
        assert!(matches!(
            b.head(&missing).await,
            Err(BackendError::NotFound(_))
        ));
        assert!(matches!(
            b.get(&id, Some(3..99)).await,
            Err(BackendError::InvalidRange(_))
        ));
        b.delete(&id).await.unwrap();
        assert_eq!(b.list().await.unwrap().count().await, 0);
        b.check().await.unwrap();

        let l = |op: &'static str| [("backend", "file"), ("op", op)];
        assert_eq!(
            value(&registry, "vaultgate_backend_requests_total", &l("put")),
            1.0
        );
        assert_eq!(
            value(&registry, "vaultgate_backend_requests_total", &l("get")),
            2.0
        );
        assert_eq!(
            value(&registry, "vaultgate_backend_requests_total", &l("head")),
            1.0
        );
        assert_eq!(
            value(&registry, "vaultgate_backend_requests_total", &l("check")),
            1.0
        );
        assert_eq!(
            value(
                &registry,
                "vaultgate_backend_errors_total",
                &[("op", "head"), ("kind", "not_found")]
            ),
            1.0
        );
        assert_eq!(
            value(
                &registry,
                "vaultgate_backend_errors_total",
                &[("op", "get"), ("kind", "invalid_range")]
            ),
            1.0
        );
        assert_eq!(
            value(
                &registry,
                "vaultgate_backend_errors_total",
                &[("op", "put")]
            ),
            0.0
        );
        assert_eq!(
            value(
                &registry,
                "vaultgate_backend_request_duration_seconds",
                &l("get")
            ),
            2.0
        );

        // A second registration into the same registry is refused; sharing the metrics works.
        assert!(MeteredBackend::new(local.clone(), &registry).is_err());
        let metrics = BackendMetrics::register(&Registry::new()).unwrap();
        let shared = MeteredBackend::with_metrics(local, metrics);
        assert!(shared.head(&missing).await.is_err());
    }
}
