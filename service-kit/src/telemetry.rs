//! Logging and traces. `RUST_LOG` picks the filter (default `info`); `RSVP_LOG_FORMAT=json` for
//! JSON lines. `RSVP_OTLP_ENDPOINT` (e.g. `http://collector:4318`; unset: off) also exports the
//! spans (`request`, `decide`, `append`, `batch`, ...) over OTLP/HTTP (protobuf) to that
//! collector, batched in the background; [`shutdown`] flushes what is left at exit.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use std::sync::OnceLock;
use tracing_subscriber::{fmt, layer::SubscriberExt as _, util::SubscriberInitExt as _, EnvFilter, Layer as _};

static PROVIDER: OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = OnceLock::new();

pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,sqlx=warn,actix_server=warn"));
    let json = std::env::var("RSVP_LOG_FORMAT").is_ok_and(|v| v == "json");
    let endpoint = std::env::var("RSVP_OTLP_ENDPOINT").ok().filter(|e| !e.trim().is_empty());
    let (otlp, otlp_error) = match endpoint.as_deref().map(|e| tracer(service, e)).transpose() {
        // Spans only, with their fields (ids, routes, command types, counts): the log lines
        // inside them (errors quoting a value, say) stay in the log and never leave the host.
        Ok(tracer) => (
            tracer.map(|t| {
                tracing_opentelemetry::layer()
                    .with_tracer(t)
                    .with_filter(tracing_subscriber::filter::filter_fn(|meta| meta.is_span()))
            }),
            None,
        ),
        Err(e) => (None, Some(e)),
    };
    // A second init (tests start services in-process more than once) is harmless.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(json.then(|| fmt::layer().json().with_writer(std::io::stderr)))
        .with((!json).then(|| fmt::layer().with_writer(std::io::stderr)))
        .with(otlp)
        .try_init();
    match (endpoint, otlp_error) {
        (Some(endpoint), None) => {
            // Without any credential its URL may carry (`user:token@`).
            let endpoint = url::Url::parse(&endpoint).map_or_else(
                |_| "(unparsable)".to_owned(),
                |mut u| {
                    let _ = u.set_username("");
                    let _ = u.set_password(None);
                    u.to_string()
                },
            );
            tracing::info!(service, %endpoint, "exporting traces over OTLP")
        }
        (_, Some(e)) => tracing::error!(service, error = %e, "RSVP_OTLP_ENDPOINT: traces are not exported"),
        _ => tracing::debug!(service, "telemetry ready"),
    }
}

/// The OTLP/HTTP exporter of `endpoint`'s `/v1/traces`, batched on a thread of its own.
fn tracer(service: &'static str, endpoint: &str) -> anyhow::Result<opentelemetry_sdk::trace::Tracer> {
    let traces = format!("{}/v1/traces", endpoint.trim_end_matches('/').trim_end_matches("/v1/traces"));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(traces)
        .build()?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(opentelemetry_sdk::Resource::builder().with_service_name(service).build())
        .build();
    let tracer = provider.tracer(service);
    let _ = PROVIDER.set(provider);
    Ok(tracer)
}

/// Sends the spans not exported yet (a clean stop); nothing without `RSVP_OTLP_ENDPOINT`.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        if let Err(e) = provider.shutdown() {
            eprintln!("the last traces could not be exported: {e}");
        }
    }
}

/// Printed on stdout once a server is bound: the local scripts and the test harness read the
/// port from it, which is what makes `PORT=0` usable.
pub fn announce_listening(service: &str, addr: std::net::SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{service} listening on http://{addr}");
    let _ = out.flush();
}
