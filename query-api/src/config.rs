//! Configuration, from flags or environment variables.

use clap::Parser;

/// The cursor secret of a local setup: refused with `RSVP_ENV=production`.
pub const LOCAL_CURSOR_SECRET: &str = "rsvp-local-cursor-secret";

#[derive(Debug, Clone, Parser)]
#[command(name = "query-api", about = "rsvp's query API (reads)")]
pub struct Config {
    #[arg(long, env = "QUERY_API_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks a free one (printed on stdout).
    #[arg(long, env = "QUERY_API_PORT", default_value_t = 8082)]
    pub port: u16,
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Base URL clients reach this API at, for `next`/`previous` links.
    /// Default: the address it is bound to.
    #[arg(long, env = "RSVP_QUERY_API_URL")]
    pub public_url: Option<String>,
    /// Key that signs pagination cursors (tamper-evident). Every instance must share it; with
    /// `RSVP_ENV=production` the local default is refused.
    #[arg(
        long,
        env = "RSVP_CURSOR_SECRET",
        default_value = LOCAL_CURSOR_SECRET,
        hide_env_values = true,
        hide_default_value = true
    )]
    pub cursor_secret: String,
    /// Read-your-writes: how long a read with `min_version` may wait for the projection.
    #[arg(long, env = "RSVP_READ_YOUR_WRITES_TIMEOUT_MS", default_value_t = 2000)]
    pub read_your_writes_timeout_ms: u64,
    /// CORS, rate limits, the authentication cache and the `/metrics` token.
    #[command(flatten)]
    pub edge: service_kit::edge::EdgeConfig,

    #[command(flatten)]
    pub vault: service_kit::vault::VaultConfig,
}
