//! Configuration, from flags or environment variables.

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(name = "command-api", about = "rsvp's command API (writes)")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "COMMAND_API_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on; 0 picks a free one (printed on stdout).
    #[arg(long, env = "COMMAND_API_PORT", default_value_t = 8081)]
    pub port: u16,
    /// Kafka bootstrap servers.
    #[arg(long, env = "RSVP_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    /// The invite event topic: the system of record.
    #[arg(long, env = "RSVP_KAFKA_TOPIC", default_value = "rsvp.invite-events")]
    pub kafka_topic: String,
    /// Stable transactional id of this writer; a new instance with the same id fences the old.
    #[arg(long, env = "RSVP_WRITER_ID", default_value = "rsvp-command-api-writer-0")]
    pub writer_id: String,
    /// How long a leader that stopped heartbeating (crashed, frozen, cut off) keeps the writer
    /// lease, in milliseconds: the Kafka consumer group's session timeout, hence the failover time
    /// after a crash. The broker accepts values between its `group.min.session.timeout.ms`
    /// (default 6000) and `group.max.session.timeout.ms`; lower means faster failover but a
    /// leader that pauses longer (GC, a busy machine) loses the lease.
    #[arg(long, env = "RSVP_WRITER_LEASE_TIMEOUT_MS", default_value_t = 6000, value_parser = clap::value_parser!(u64).range(1000..=3_600_000))]
    pub writer_lease_timeout_ms: u64,
    /// How command-api instances divide the writes: `lease` (one writer holds every shard; the
    /// other instances stand by and refuse writes) or `shards` (the instances divide the shards
    /// through a Kafka consumer group, each shard fenced on its own, and any instance hands a
    /// request to its shard's owner). `shards` needs a topic placed by tenant.
    #[arg(long, env = "RSVP_WRITER_OWNERSHIP", default_value = "lease", value_parser = ["lease", "shards"])]
    pub writer_ownership: String,
    /// With `RSVP_WRITER_OWNERSHIP=shards`: the URL the other instances reach this one at
    /// (default: `http://` and the address it listens on).
    #[arg(long, env = "RSVP_WRITER_ADVERTISED_URL")]
    pub writer_advertised_url: Option<String>,
    /// With `RSVP_WRITER_OWNERSHIP=shards`: keep every shard this instance does not own warm (its
    /// state read from its snapshot and log, then followed as records are committed), so a shard
    /// that moves here is ready after its last few records instead of its whole snapshot. Costs
    /// the memory of those shards' state and the CPU to follow their writes.
    #[arg(long, env = "RSVP_WRITER_WARM_STANDBYS", default_value_t = false, action = clap::ArgAction::Set)]
    pub writer_warm_standbys: bool,
    /// A shard's state is snapshotted (to PostgreSQL, `writer.snapshots`) once this many events
    /// were decided in it since its last snapshot, so a take-over reads the snapshot and at most
    /// about this many events of the shard's log. 0: never snapshot.
    #[arg(long, env = "RSVP_WRITER_SNAPSHOT_EVENTS", default_value_t = 50_000)]
    pub writer_snapshot_events: u64,
    /// ... or once this many seconds passed since the first event after its last snapshot.
    #[arg(long, env = "RSVP_WRITER_SNAPSHOT_INTERVAL_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub writer_snapshot_interval_seconds: u64,
    /// PostgreSQL, for API keys.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Base URL of the query API, for `Location` headers.
    #[arg(long, env = "RSVP_QUERY_API_URL", default_value = "http://127.0.0.1:8082")]
    pub query_api_url: String,
    /// Base URL clients reach this API at (public invite links); default: the bound address.
    #[arg(long, env = "RSVP_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Largest request body accepted, in bytes.
    #[arg(long, env = "RSVP_MAX_BODY_BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// The token the dispatcher presents to record deliveries (`/internal/...`). Unset or empty:
    /// those routes answer 401 to everyone.
    #[arg(long, env = "RSVP_DISPATCHER_TOKEN", hide_env_values = true)]
    pub dispatcher_token: Option<String>,
    /// Webhook endpoints may be private or loopback addresses (`true` or `1`): for a local
    /// setup or a test; off, such URLs are a 422 and the dispatcher never sends to them.
    #[arg(
        long,
        env = "RSVP_WEBHOOK_ALLOW_PRIVATE",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub webhook_allow_private: bool,
    /// How long a webhook endpoint's previous secret keeps signing after a rotation, in seconds.
    #[arg(long, env = "RSVP_WEBHOOK_SECRET_OVERLAP_SECONDS", default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(0..=2_592_000))]
    pub webhook_secret_overlap_seconds: u64,
    /// The key the writer signs the log's checkpoints with (tamper evidence): base64 of a 32-byte
    /// ed25519 seed, e.g. `head -c 32 /dev/urandom | base64`. Required; keep it secret and stable
    /// (auditors verify with its public key, `rsvp-audit public-key`).
    #[arg(long, env = "RSVP_AUDIT_SIGNING_KEY", hide_env_values = true)]
    pub audit_signing_key: Option<String>,
    /// How often, at most, a tenant whose events moved gets a signed checkpoint, in milliseconds.
    #[arg(long, env = "RSVP_AUDIT_CHECKPOINT_INTERVAL_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(10..=86_400_000))]
    pub audit_checkpoint_interval_ms: u64,
    /// CORS, rate limits, the authentication cache and the `/metrics` token.
    #[command(flatten)]
    pub edge: service_kit::edge::EdgeConfig,

    #[command(flatten)]
    pub vault: service_kit::vault::VaultConfig,
}
