//! Configuration, from flags or environment variables.

use clap::Parser;
use std::time::Duration;

#[derive(Debug, Clone, Parser)]
#[command(name = "dispatcher", about = "rsvp's dispatcher: sends invitations (email, SMS) and webhooks")]
pub struct Config {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "DISPATCHER_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Their port; 0 picks a free one (printed on stdout).
    #[arg(long, env = "DISPATCHER_PORT", default_value_t = 8084)]
    pub port: u16,
    #[arg(long, env = "RSVP_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    #[arg(long, env = "RSVP_KAFKA_TOPIC", default_value = "rsvp.invite-events")]
    pub kafka_topic: String,
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// The name its positions in the log are stored under.
    #[arg(long, env = "RSVP_DISPATCHER_NAME", default_value = "rsvp-dispatcher")]
    pub name: String,
    /// The command API, where the dispatcher records what happened to each delivery.
    #[arg(long, env = "RSVP_COMMAND_API_URL", default_value = "http://127.0.0.1:8081")]
    pub command_api_url: String,
    /// The token the command API's internal routes take (the same `RSVP_DISPATCHER_TOKEN`).
    #[arg(long, env = "RSVP_DISPATCHER_TOKEN", hide_env_values = true)]
    pub dispatcher_token: String,
    /// Base of the public invite links in messages: the command API's `RSVP_PUBLIC_URL`.
    #[arg(long, env = "RSVP_PUBLIC_URL", default_value = "http://127.0.0.1:8080")]
    pub public_url: String,
    /// The SMTP server: `smtp://host:port` (plain, or `?tls=required` for STARTTLS),
    /// `smtps://host:port` (TLS), with `user:password@` when it asks for a login.
    #[arg(long, env = "RSVP_SMTP_URL", default_value = "smtp://127.0.0.1:1025", hide_env_values = true)]
    pub smtp_url: String,
    /// The sender of every email: `Name <address>` or an address.
    #[arg(long, env = "RSVP_MAIL_FROM", default_value = "rsvp <invites@rsvp.localhost>")]
    pub mail_from: String,
    /// The SMS provider's HTTP endpoint (see README); unset: SMS deliveries fail, saying so.
    #[arg(long, env = "RSVP_SMS_URL")]
    pub sms_url: Option<String>,
    /// Bearer token for the SMS provider.
    #[arg(long, env = "RSVP_SMS_TOKEN", hide_env_values = true)]
    pub sms_token: Option<String>,
    /// Tries of one send (email or SMS) before it is `failed`; a permanent refusal ends it at once.
    #[arg(long, env = "RSVP_SEND_MAX_ATTEMPTS", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub send_max_attempts: u32,
    /// Wait before the second try of a send, in milliseconds; it doubles with each try (at most
    /// ten minutes).
    #[arg(long, env = "RSVP_SEND_RETRY_MS", default_value_t = 2000)]
    pub send_retry_ms: u64,
    /// Sends per second each tenant may make, on average (bursts of twice that).
    #[arg(long, env = "RSVP_SEND_RATE_PER_TENANT", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub send_rate_per_tenant: u32,
    /// A delivery asked for longer ago than this (seconds) when the dispatcher first sees it is
    /// not sent any more but recorded as failed (a dispatcher started on an old log).
    #[arg(long, env = "RSVP_SEND_MAX_AGE_SECONDS", default_value_t = 86_400)]
    pub send_max_age_seconds: u64,
    /// Waits between the tries of a webhook message, comma list of durations (`500ms`, `5s`,
    /// `5m`, `2h`): the default retries for 27.6 hours over 8 tries.
    #[arg(long, env = "RSVP_WEBHOOK_RETRY_SCHEDULE", default_value = "5s,5m,30m,2h,5h,10h,10h", value_parser = parse_schedule)]
    pub webhook_retry_schedule: Schedule,
    /// How long one webhook request may take, in milliseconds.
    #[arg(long, env = "RSVP_WEBHOOK_TIMEOUT_MS", default_value_t = 10_000)]
    pub webhook_timeout_ms: u64,
    /// An endpoint is disabled after this many failed tries in a row ...
    #[arg(long, env = "RSVP_WEBHOOK_DISABLE_AFTER_FAILURES", default_value_t = 10)]
    pub webhook_disable_after_failures: u32,
    /// ... spanning at least this many seconds (default five days).
    #[arg(long, env = "RSVP_WEBHOOK_DISABLE_AFTER_SECONDS", default_value_t = 432_000)]
    pub webhook_disable_after_seconds: u64,
    /// Deliver webhooks to loopback and private addresses too (tests, a private network).
    #[arg(
        long,
        env = "RSVP_WEBHOOK_ALLOW_PRIVATE",
        default_value_t = false,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub webhook_allow_private: bool,
    /// Webhook requests in flight at once, over all endpoints; one endpoint takes at most 4.
    #[arg(long, env = "RSVP_WEBHOOK_CONCURRENCY", default_value_t = 32)]
    pub webhook_concurrency: usize,
    #[command(flatten)]
    pub metrics: service_kit::edge::MetricsConfig,

    #[command(flatten)]
    pub vault: service_kit::vault::VaultConfig,
}

/// The waits between tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule(pub Vec<Duration>);

fn parse_schedule(raw: &str) -> Result<Schedule, String> {
    let waits = raw.split(',').map(|s| parse_duration(s.trim())).collect::<Result<Vec<_>, _>>()?;
    Ok(Schedule(waits))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let split =
        s.find(|c: char| !c.is_ascii_digit()).ok_or_else(|| format!("{s:?}: a number and a unit (ms, s, m, h)"))?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("{s:?}: a number and a unit (ms, s, m, h)"))?;
    Ok(match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("{s:?}: the unit is ms, s, m or h")),
    })
}

impl Config {
    pub fn webhook_timeout(&self) -> Duration {
        Duration::from_millis(self.webhook_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_retries_for_more_than_a_day() {
        let Schedule(waits) = parse_schedule("5s,5m,30m,2h,5h,10h,10h").unwrap();
        let total: Duration = waits.iter().sum();
        assert!(total > Duration::from_secs(86_400), "{total:?}");
        assert_eq!(parse_schedule("100ms, 1s").unwrap().0, [Duration::from_millis(100), Duration::from_secs(1)]);
        assert!(parse_schedule("5").is_err());
        assert!(parse_schedule("5d").is_err());
    }
}
