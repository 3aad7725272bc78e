//! What every service does at its edge, before and after a handler: the access log, the guard of
//! `/metrics`, CORS, and the per-key rate limits, with their settings.
//!
//! Guarantees:
//! - the access log names the route pattern (`/i/{token}`, `/v1/invites`), never the path or the
//!   query string: link tokens, email addresses and other filter values never reach a log line;
//! - `/metrics` answers only a request carrying the operator token (`RSVP_METRICS_TOKEN`, as a
//!   Bearer credential); with no token set it answers nobody;
//! - CORS is off unless the operator lists origins; then only those get CORS headers;
//! - a key over its rate gets 429 problem+json with `Retry-After`; other keys are not affected.

use crate::problem::Problem;
use actix_cors::Cors;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Condition, Next};
use actix_web::ResponseError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Settings both APIs share (flattened into their configurations).
#[derive(Debug, Clone, clap::Args)]
pub struct EdgeConfig {
    /// Browser origins allowed to call the API (CORS), comma-separated, e.g.
    /// `https://dash.example.com`. Unset: CORS is off.
    #[arg(long, env = "RSVP_CORS_ORIGINS")]
    pub cors_origins: Option<String>,
    /// Requests per second each API key may make on average; 0: no limit.
    #[arg(long, env = "RSVP_RATE_LIMIT_PER_SECOND", default_value_t = 10_000)]
    pub rate_limit_per_second: u32,
    /// Requests a key may make at once above its rate (the bucket size).
    #[arg(long, env = "RSVP_RATE_LIMIT_BURST", default_value_t = 20_000)]
    pub rate_limit_burst: u32,
    /// How long a verified key is trusted without asking PostgreSQL again, in seconds: a revoked
    /// key stops working within this time. 0: every request is checked.
    #[arg(long, env = "RSVP_AUTH_CACHE_SECONDS", default_value_t = 10)]
    pub auth_cache_seconds: u64,
    /// `production` refuses to start with a secret left at its local default, a placeholder
    /// (`REPLACE-ME`) or shorter than 32 characters; `development` (the default) only warns.
    #[arg(long = "environment", env = "RSVP_ENV", value_enum, default_value_t = Environment::Development)]
    pub environment: Environment,
    #[command(flatten)]
    pub metrics: MetricsConfig,
}

/// Where a service runs: what it forgives in its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Environment {
    Development,
    Production,
}

impl Default for EdgeConfig {
    /// The documented defaults, for services built in code (benchmarks).
    fn default() -> Self {
        Self {
            cors_origins: None,
            rate_limit_per_second: 10_000,
            rate_limit_burst: 20_000,
            auth_cache_seconds: 10,
            environment: Environment::Development,
            metrics: MetricsConfig { metrics_token: None },
        }
    }
}

impl EdgeConfig {
    /// A secret setting (`name`) fit for this environment: in production not `local_default`, not
    /// a placeholder and at least 32 characters; in development such a value is only warned of.
    pub fn check_secret(&self, name: &str, value: &str, local_default: Option<&str>) -> anyhow::Result<()> {
        let value = value.trim();
        let lower = value.to_ascii_lowercase();
        let distinct = value.chars().collect::<std::collections::HashSet<_>>().len();
        let weak = if local_default.is_some_and(|d| lower.starts_with(&d.to_ascii_lowercase())) {
            Some("is its local default")
        } else if ["replace-me", "replace_me", "changeme", "change-me", "example"].iter().any(|p| lower.contains(p)) {
            Some("is a placeholder")
        } else if value.chars().count() < 32 {
            Some("is shorter than 32 characters")
        } else if distinct < 10 {
            Some("is not random (fewer than 10 different characters)")
        } else {
            None
        };
        match (weak, self.environment) {
            (None, _) => Ok(()),
            (Some(why), Environment::Production) => anyhow::bail!(
                "{name} {why}: RSVP_ENV=production refuses to start with it; set a random secret of at least 32 characters"
            ),
            (Some(why), Environment::Development) => {
                tracing::warn!("{name} {why}: fine for a local setup, refused with RSVP_ENV=production");
                Ok(())
            }
        }
    }

    /// The allowed origins, trimmed, without empty entries.
    pub fn cors_origins(&self) -> Vec<String> {
        self.cors_origins
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(|o| o.trim().trim_end_matches('/').to_owned())
            .filter(|o| !o.is_empty())
            .collect()
    }

    pub fn rate_limits(&self) -> RateLimits {
        RateLimits::new(self.rate_limit_per_second, self.rate_limit_burst)
    }

    pub fn auth_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.auth_cache_seconds)
    }
}

/// The operator's credential for `/metrics`, shared by every service including the projector.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsConfig {
    /// Bearer token that `/metrics` requires. Unset or empty: `/metrics` answers 401 to everyone.
    #[arg(long, env = "RSVP_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,
}

/// App data read by [`guard_metrics`].
#[derive(Clone)]
pub struct MetricsToken(Option<String>);

impl MetricsConfig {
    pub fn token(&self) -> MetricsToken {
        MetricsToken(self.metrics_token.clone().filter(|t| !t.is_empty()))
    }
}

/// Middleware: `/metrics` only for the operator token (register [`MetricsToken`] as app data;
/// without it, nobody reads the metrics). Wrap it outside the metrics middleware.
pub async fn guard_metrics(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    // The metrics middleware serves `GET /metrics` only; any other method falls through to a 404.
    if req.path() != "/metrics" || req.method() != actix_web::http::Method::GET {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let expected = req.app_data::<MetricsToken>().and_then(|t| t.0.clone());
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::credential::bearer_token);
    let allowed = match (&expected, presented) {
        (Some(expected), Some(presented)) => bool::from(expected.as_bytes().ct_eq(presented.as_bytes())),
        _ => false,
    };
    if allowed {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let detail = if expected.is_some() {
        "send the operator token as `Authorization: Bearer <token>`"
    } else {
        "metrics are off: the operator sets RSVP_METRICS_TOKEN to read them"
    };
    let problem =
        Problem::new(actix_web::http::StatusCode::UNAUTHORIZED, "unauthorized", "the metrics need the operator token")
            .with_detail(detail);
    Ok(req.into_response(problem.error_response()).map_into_right_body())
}

/// The id of a request: its `X-Request-Id` when that is a UUID, else a new one (UUIDv7). Every
/// log line of the request carries it (its span), the response echoes it, and a command takes it
/// as the correlation id of its events, which the projector logs: one id follows a command from
/// HTTP to row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestId(pub uuid::Uuid);

impl RequestId {
    pub fn of(req: &actix_web::HttpRequest) -> Option<Self> {
        actix_web::HttpMessage::extensions(req).get::<Self>().copied()
    }
}

/// Middleware: the request's span (`request`, with its id, method and route) and one line per
/// request with the method, the route pattern, the status and the time taken. The path itself is
/// never logged (it can hold a link token), nor the query string.
pub async fn access_log(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage as _;
    use tracing::Instrument as _;
    let started = Instant::now();
    let method = req.method().clone();
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| uuid::Uuid::parse_str(v.trim()).ok())
        .unwrap_or_else(uuid::Uuid::now_v7);
    req.extensions_mut().insert(RequestId(id));
    let span = tracing::info_span!("request", request_id = %id, %method, route = tracing::field::Empty);
    let mut response = next.call(req).instrument(span.clone()).await?;
    let request = response.request();
    let route = match request.match_pattern() {
        Some(pattern) => pattern,
        None if request.path() == "/metrics" => "/metrics".to_owned(),
        None => "unmatched".to_owned(),
    };
    span.record("route", route.as_str());
    if let Ok(value) = header::HeaderValue::from_str(&id.to_string()) {
        response.headers_mut().insert(header::HeaderName::from_static("x-request-id"), value);
    }
    span.in_scope(|| {
        tracing::info!(
            target: "rsvp::http",
            "{method} {route} {} {:.1}ms",
            response.status().as_u16(),
            started.elapsed().as_secs_f64() * 1000.0
        )
    });
    Ok(response)
}

/// CORS for browser dashboards: only the listed origins, the methods and headers the APIs use;
/// with no origin listed the middleware is off and no CORS header is ever sent.
pub fn cors(origins: &[String]) -> Condition<Cors> {
    let mut cors = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "DELETE"])
        .allowed_headers([
            header::AUTHORIZATION,
            // The Vortex dialect's credential.
            header::HeaderName::from_static("x-api-key"),
            header::CONTENT_TYPE,
            header::IF_MATCH,
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("x-request-id"),
            header::HeaderName::from_static("x-min-version"),
        ])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::RETRY_AFTER,
            header::HeaderName::from_static("idempotent-replayed"),
            header::HeaderName::from_static("x-request-id"),
        ])
        .max_age(600);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    Condition::new(!origins.is_empty(), cors)
}

/// Per-key rate limits: a token bucket per API key (GCRA, from `governor`).
pub struct RateLimits {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl RateLimits {
    /// `per_second` requests a second on average, `burst` at once; `per_second == 0`: no limit.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter }
    }

    pub fn unlimited() -> Self {
        Self { limiter: None }
    }

    /// `Ok` when `key_id` may make one more request now; else 429 saying when to come back.
    pub fn check(&self, key_id: &str) -> Result<(), Problem> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        match limiter.check_key(&key_id.to_owned()) {
            Ok(()) => Ok(()),
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                // Whole seconds, rounded up: a client that waits that long gets through.
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Err(Problem::too_many_requests(seconds.max(1)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_429_and_another_key_its_own_burst() {
        let limits = RateLimits::new(1, 2);
        assert!(limits.check("a").is_ok());
        assert!(limits.check("a").is_ok());
        let refused = limits.check("a").unwrap_err();
        assert_eq!((refused.status, refused.retry_after), (429, Some(1)));
        assert!(limits.check("b").is_ok());
        assert!(RateLimits::new(0, 0).check("a").is_ok());
    }

    #[test]
    fn cors_origins_are_a_trimmed_comma_list() {
        let config = EdgeConfig {
            cors_origins: Some(" https://a.example, https://b.example/ ,,".into()),
            rate_limit_per_second: 1,
            rate_limit_burst: 1,
            auth_cache_seconds: 0,
            environment: Environment::Development,
            metrics: MetricsConfig { metrics_token: None },
        };
        assert_eq!(config.cors_origins(), ["https://a.example", "https://b.example"]);
    }
}
