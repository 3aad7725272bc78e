//! Logging. `RUST_LOG` picks the filter (default `info`); `RSVP_LOG_FORMAT=json` for JSON lines.

use tracing_subscriber::{fmt, EnvFilter};

pub fn init(service: &'static str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,rdkafka=warn,sqlx=warn,actix_server=warn"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let json = std::env::var("RSVP_LOG_FORMAT").is_ok_and(|v| v == "json");
    // A second init (tests start services in-process more than once) is harmless.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
    tracing::debug!(service, "telemetry ready");
}

/// Printed on stdout once a server is bound: the local scripts and the test harness read the
/// port from it, which is what makes `PORT=0` usable.
pub fn announce_listening(service: &str, addr: std::net::SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{service} listening on http://{addr}");
    let _ = out.flush();
}
