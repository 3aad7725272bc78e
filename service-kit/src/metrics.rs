//! Prometheus metrics: HTTP request counts and latencies per route (from `actix-web-prom`) and
//! each service's own metrics, all in one registry served at `/metrics`.

use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};
use prometheus::Registry;

/// The middleware that records HTTP metrics and serves `/metrics` for `registry`.
pub fn http_metrics(service: &str, registry: Registry) -> PrometheusMetrics {
    PrometheusMetricsBuilder::new(&service.replace('-', "_"))
        .registry(registry)
        .endpoint("/metrics")
        .build()
        .expect("http metrics register once per registry")
}
