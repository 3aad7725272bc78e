//! Prometheus metrics: HTTP request counts and latencies per route (from `actix-web-prom`) and
//! each service's own metrics, all in one registry served at `/metrics` (behind the operator
//! token: see [`crate::edge::guard_metrics`]). Routes are labelled by their pattern
//! (`/i/{token}`, never the token), and every path that matches no route shares the one label
//! `unmatched`, so no client can grow the label set.

use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};
use prometheus::Registry;

/// The middleware that records HTTP metrics and serves `/metrics` for `registry`.
pub fn http_metrics(service: &str, registry: Registry) -> PrometheusMetrics {
    PrometheusMetricsBuilder::new(&service.replace('-', "_"))
        .registry(registry)
        .endpoint("/metrics")
        .mask_unmatched_patterns("unmatched")
        .build()
        .expect("http metrics register once per registry")
}
