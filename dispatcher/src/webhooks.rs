//! Delivering webhook messages: every pending message whose turn it is (messages of one invite
//! go in version order to each endpoint), several endpoints at once, at most a few requests per
//! endpoint, each bounded by a timeout, so a slow or failing endpoint never holds back the others.
//!
//! A message is tried on the retry schedule (by default for 27.6 hours), then `failed`; every
//! attempt is recorded. An endpoint that has failed every try for long enough (by default 10
//! tries over at least five days) is disabled: nothing more is tried until it is enabled again.
//! Addresses resolve to public IPs only, unless the operator allows private ones.

use crate::config::Schedule;
use crate::metrics::Metrics;
use crate::signing;
use chrono::{DateTime, Utc};
use service_kit::webhooks::Format;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use uuid::Uuid;

/// Requests in flight to one endpoint at most.
const PER_ENDPOINT: usize = 4;

pub struct WebhookSender {
    pub pool: PgPool,
    pub client: reqwest::Client,
    pub schedule: Schedule,
    pub disable_after_failures: u32,
    pub disable_after: Duration,
    pub allow_private: bool,
    pub concurrency: usize,
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    /// Opens the personal data a body carries sealed, when it is sent.
    pub unsealer: service_kit::vault::Unsealer,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct Due {
    endpoint_id: Uuid,
    tenant_id: Uuid,
    event_id: Uuid,
    body: String,
    attempts: i32,
    resend_requested: bool,
    url: String,
    format: String,
    secret: String,
    previous_secret: Option<String>,
    previous_secret_expires_at: Option<DateTime<Utc>>,
}

/// What one attempt gave.
struct Attempt {
    status: Option<u16>,
    error: Option<String>,
    latency: Duration,
}

/// The HTTP client webhooks go out with: no redirects followed (a 3xx is a failure), a timeout,
/// and names resolved to public addresses only unless `allow_private`.
pub fn client(timeout: Duration, allow_private: bool) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        // A proxy would resolve the names itself, past the public-address check.
        .no_proxy()
        .user_agent("rsvp-webhooks/1")
        .dns_resolver(Arc::new(PublicOnly { allow_private }))
        .build()?)
}

struct PublicOnly {
    allow_private: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let kept: Vec<SocketAddr> = found.into_iter().filter(|a| allow_private || is_public(a.ip())).collect();
            if kept.is_empty() {
                return Err(
                    "the name resolves to no public address (RSVP_WEBHOOK_ALLOW_PRIVATE allows private ones)".into()
                );
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The one rule of what a webhook may be sent to (the command API refuses the same at registration).
fn is_public(ip: IpAddr) -> bool {
    service_kit::webhooks::is_public_ip(ip)
}

impl WebhookSender {
    /// Delivers until `stop` turns true; then returns once the attempts in flight are done and
    /// recorded.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<()> {
        let this = Arc::new(self);
        let mut in_flight: HashSet<(Uuid, Uuid)> = HashSet::new();
        let mut tasks: JoinSet<(Uuid, Uuid)> = JoinSet::new();
        loop {
            if *stop.borrow() {
                while tasks.join_next().await.is_some() {}
                return Ok(());
            }
            if in_flight.len() < this.concurrency {
                match this.due(this.concurrency * 4).await {
                    Ok(due) => {
                        let mut per_endpoint: HashMap<Uuid, usize> = HashMap::new();
                        for key in &in_flight {
                            *per_endpoint.entry(key.0).or_default() += 1;
                        }
                        for message in due {
                            let key = (message.endpoint_id, message.event_id);
                            let n = per_endpoint.entry(message.endpoint_id).or_default();
                            if in_flight.contains(&key) || *n >= PER_ENDPOINT || in_flight.len() >= this.concurrency {
                                continue;
                            }
                            *n += 1;
                            in_flight.insert(key);
                            let this = this.clone();
                            tasks.spawn(async move {
                                if let Err(e) = this.attempt(&message).await {
                                    tracing::warn!(error = %format!("{e:#}"), "recording a webhook attempt failed");
                                    tokio::time::sleep(Duration::from_secs(1)).await;
                                }
                                (message.endpoint_id, message.event_id)
                            });
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the due webhook messages");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            tokio::select! {
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok(key) = done {
                        in_flight.remove(&key);
                    }
                    // Take whatever else finished, then look for more work.
                    while let Some(done) = tasks.try_join_next() {
                        if let Ok(key) = done {
                            in_flight.remove(&key);
                        }
                    }
                }
                _ = this.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                Ok(_) = stop.wait_for(|stop| *stop) => {}
            }
        }
    }

    /// The pending messages whose time has come and whose invite has no earlier message pending
    /// to the same endpoint, on enabled endpoints.
    async fn due(&self, limit: usize) -> Result<Vec<Due>, sqlx::Error> {
        // At most a few per endpoint: a backlog at one endpoint never fills the list.
        sqlx::query_as(
            "SELECT endpoint_id, tenant_id, event_id, body, attempts, resend_requested, url, format, secret, previous_secret, \
             previous_secret_expires_at FROM ( \
               SELECT m.endpoint_id, m.tenant_id, m.event_id, m.body, m.attempts, m.resend_requested, e.url, e.format, e.secret, \
               e.previous_secret, e.previous_secret_expires_at, m.next_attempt_at, m.stream_version, \
               row_number() OVER (PARTITION BY m.endpoint_id ORDER BY m.next_attempt_at, m.stream_version) AS turn \
               FROM dispatch.webhook_messages m JOIN dispatch.webhook_endpoints e USING (endpoint_id) \
               WHERE m.state = 'pending' AND m.next_attempt_at <= now() AND NOT e.disabled \
               AND NOT EXISTS (SELECT 1 FROM dispatch.webhook_messages p WHERE p.endpoint_id = m.endpoint_id \
                 AND p.stream_id = m.stream_id AND p.state = 'pending' AND p.stream_version < m.stream_version) \
             ) due WHERE turn <= $2 ORDER BY next_attempt_at, stream_version LIMIT $1",
        )
        .bind(limit as i64)
        .bind((PER_ENDPOINT * 2) as i64)
        .fetch_all(&self.pool)
        .await
    }

    /// One try of one message, and its record.
    async fn attempt(&self, message: &Due) -> anyhow::Result<()> {
        let now = Utc::now();
        let attempt = self.deliver(message, now).await;
        let succeeded = attempt.error.is_none();
        let attempts = message.attempts + 1;
        // After the n-th failed try, wait schedule[n - 1]; past the schedule's end: failed.
        let wait = self.schedule.0.get(attempts as usize - 1).copied();
        let state = match (succeeded, wait) {
            (true, _) => "delivered",
            (false, Some(_)) => "pending",
            (false, None) => "failed",
        };
        let outcome = match state {
            "delivered" => "delivered",
            "pending" => "retry",
            _ => "failed",
        };
        self.metrics.webhook_attempts.with_label_values(&[outcome]).inc();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO dispatch.webhook_attempts \
             (endpoint_id, event_id, attempted_at, response_status, latency_ms, error, succeeded, trigger) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(message.endpoint_id)
        .bind(message.event_id)
        .bind(now)
        .bind(attempt.status.map(i32::from))
        .bind(attempt.latency.as_millis().min(i32::MAX as u128) as i32)
        .bind(&attempt.error)
        .bind(succeeded)
        .bind(if message.resend_requested { "manual" } else { "scheduled" })
        .execute(&mut *tx)
        .await?;
        // A resend asked for while this try was in flight stands: the message goes again at once.
        sqlx::query(
            "UPDATE dispatch.webhook_messages SET \
             state = CASE WHEN resend_requested AND NOT $6 THEN 'pending' ELSE $3 END, attempts = $4, \
             next_attempt_at = CASE WHEN resend_requested AND NOT $6 THEN now() \
               ELSE now() + $5 * interval '1 millisecond' END, \
             resend_requested = resend_requested AND NOT $6 \
             WHERE endpoint_id = $1 AND event_id = $2",
        )
        .bind(message.endpoint_id)
        .bind(message.event_id)
        .bind(state)
        .bind(attempts)
        .bind(wait.unwrap_or_default().as_millis() as i64)
        .bind(message.resend_requested)
        .execute(&mut *tx)
        .await?;
        if succeeded {
            sqlx::query(
                "UPDATE dispatch.webhook_endpoints SET failure_streak = 0, failing_since = NULL WHERE endpoint_id = $1",
            )
            .bind(message.endpoint_id)
            .execute(&mut *tx)
            .await?;
        } else {
            // True only when this failure is the one that disables the endpoint.
            let disabled: Option<bool> = sqlx::query_scalar(
                "UPDATE dispatch.webhook_endpoints SET failure_streak = failure_streak + 1, \
                 failing_since = coalesce(failing_since, $2), \
                 disabled = disabled OR (failure_streak + 1 >= $3 AND coalesce(failing_since, $2) <= $2 - $4 * interval '1 second'), \
                 disabled_reason = CASE WHEN NOT disabled AND failure_streak + 1 >= $3 \
                   AND coalesce(failing_since, $2) <= $2 - $4 * interval '1 second' \
                   THEN 'disabled after ' || (failure_streak + 1) || ' failed tries in a row since ' || coalesce(failing_since, $2) \
                   ELSE disabled_reason END, \
                 updated_at = CASE WHEN NOT disabled AND failure_streak + 1 >= $3 \
                   AND coalesce(failing_since, $2) <= $2 - $4 * interval '1 second' THEN $2 ELSE updated_at END \
                 FROM (SELECT disabled AS was FROM dispatch.webhook_endpoints WHERE endpoint_id = $1) before \
                 WHERE endpoint_id = $1 RETURNING coalesce(disabled AND NOT before.was, false)",
            )
            .bind(message.endpoint_id)
            .bind(now)
            .bind(self.disable_after_failures as i32)
            .bind(self.disable_after.as_secs() as i64)
            .fetch_optional(&mut *tx)
            .await?;
            if disabled == Some(true) {
                self.metrics.endpoints_disabled.inc();
                tracing::warn!(endpoint = %message.endpoint_id, "webhook endpoint disabled after a long run of failures");
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Sends the message, signed; never follows a redirect.
    /// The body as sent: its sealed values opened for the endpoint's tenant.
    async fn opened(&self, message: &Due) -> anyhow::Result<String> {
        if !service_kit::vault::holds_sealed(message.body.as_bytes()) {
            return Ok(message.body.clone());
        }
        let tenant = events::TenantId::from_uuid(message.tenant_id);
        Ok(String::from_utf8(self.unsealer.unseal_text(tenant, message.body.as_bytes()).await?)?)
    }

    async fn deliver(&self, message: &Due, now: DateTime<Utc>) -> Attempt {
        let started = Instant::now();
        let failed =
            |status: Option<u16>, error: String| Attempt { status, error: Some(error), latency: started.elapsed() };
        let url = match url::Url::parse(&message.url) {
            Ok(url) => url,
            Err(e) => return failed(None, format!("the URL does not parse: {e}")),
        };
        // A literal IP never reaches the resolver: its address is checked here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if literal.is_some_and(|ip| !self.allow_private && !is_public(ip)) {
            return failed(None, "the address is not public (RSVP_WEBHOOK_ALLOW_PRIVATE allows it)".into());
        }
        // The stored body keeps personal data sealed; it is opened for this send (and reads as
        // erased once its subject's key is destroyed, retries included).
        let body = match self.opened(message).await {
            Ok(body) => body,
            Err(e) => return failed(None, format!("the personal data cannot be read right now: {e}")),
        };
        let id = message.event_id.to_string();
        let timestamp = now.timestamp();
        let mut request = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string());
        match Format::parse(&message.format) {
            Some(Format::Vortex) => {
                request =
                    request.header("x-vortex-signature", signing::vortex_signature(&message.secret, body.as_bytes()));
            }
            _ => {
                let mut secrets = vec![message.secret.as_str()];
                if let (Some(previous), Some(until)) = (&message.previous_secret, message.previous_secret_expires_at) {
                    if until > now {
                        secrets.push(previous);
                    }
                }
                match signing::standard_header(&secrets, &id, timestamp, body.as_bytes()) {
                    Ok(signature) => request = request.header("webhook-signature", signature),
                    Err(e) => return failed(None, e),
                }
            }
        }
        match request.body(body).send().await {
            Ok(response) => {
                let status = response.status();
                // The answer is not read beyond its status: a body is no concern of ours.
                drop(response);
                if status.is_success() {
                    Attempt { status: Some(status.as_u16()), error: None, latency: started.elapsed() }
                } else {
                    failed(Some(status.as_u16()), format!("the endpoint answered {status}"))
                }
            }
            Err(e) => failed(None, describe(&e)),
        }
    }
}

/// A request error in words, without its URL (it may carry a token in its query).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut cause = String::new();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    if cause.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {cause}")
    }
}
