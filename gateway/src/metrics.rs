//! Prometheus metrics of the S3 listener: requests by operation and status, bytes in/out,
//! request duration histogram and in-flight requests. Rendered at `/metrics` on the admin listener.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

/// The gateway's metric set (cheap to clone: the collectors are Arc inside).
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    /// `vaultgate_s3_requests_total{op,status}`
    pub requests: IntCounterVec,
    /// `vaultgate_s3_request_duration_seconds{op}`
    pub duration: HistogramVec,
    /// `vaultgate_s3_bytes_in_total` (plaintext bytes accepted into objects and parts)
    pub bytes_in: IntCounter,
    /// `vaultgate_s3_bytes_out_total` (response body bytes sent)
    pub bytes_out: IntCounter,
    /// `vaultgate_s3_in_flight_requests`
    pub in_flight: IntGauge,
}

impl Metrics {
    /// The registry `/metrics` exports; other parts (the backend decorator) register into it.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Creates and registers every collector.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "vaultgate_s3_requests_total",
                "S3 requests by operation and HTTP status",
            ),
            &["op", "status"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "vaultgate_s3_request_duration_seconds",
                "S3 request duration until response headers",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["op"],
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let bytes_in = IntCounter::new(
            "vaultgate_s3_bytes_in_total",
            "Plaintext bytes received into objects and parts",
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let bytes_out = IntCounter::new("vaultgate_s3_bytes_out_total", "Response body bytes sent")
            .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        let in_flight = IntGauge::new(
            "vaultgate_s3_in_flight_requests",
            "S3 requests being served",
        )
        .unwrap_or_else(|e| unreachable!("static metric definition: {e}"));
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(duration.clone()),
            Box::new(bytes_in.clone()),
            Box::new(bytes_out.clone()),
            Box::new(in_flight.clone()),
        ] {
            if let Err(e) = registry.register(c) {
                tracing::error!(error = %e, "metric registration failed");
            }
        }
        Metrics {
            registry,
            requests,
            duration,
            bytes_in,
            bytes_out,
            in_flight,
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8_lossy(&buf).into_owned()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_recorded_values() {
        let m = Metrics::new();
        m.requests.with_label_values(&["GetObject", "200"]).inc();
        m.bytes_out.inc_by(42);
        m.duration.with_label_values(&["GetObject"]).observe(0.002);
        let text = m.render();
        assert!(
            text.contains("vaultgate_s3_requests_total{op=\"GetObject\",status=\"200\"} 1"),
            "{text}"
        );
        assert!(text.contains("vaultgate_s3_bytes_out_total 42"), "{text}");
        assert!(
            text.contains("vaultgate_s3_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.contains("vaultgate_s3_in_flight_requests 0"), "{text}");
    }
}
