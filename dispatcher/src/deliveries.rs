//! Sending the deliveries: email and SMS, one at a time, each recorded through the writer.
//!
//! The guarantee is *at least once, and at most one duplicate per crash*:
//! 1. `sending` is recorded through the writer (the command API) before the send begins. The
//!    writer decides it against the delivery's current state, so a delivery already further on
//!    (reported by someone else, or by this dispatcher before a crash) is never sent, and no send
//!    begins after the invite closed.
//! 2. The send itself; the Message-ID is the delivery id, so a repeated send is the same message
//!    to the receiving side.
//! 3. The outcome is committed to PostgreSQL at once, then reported through the writer.
//!
//! A crash between 2 and 3 leaves the delivery `sending` here: it is sent again after the restart
//! (the one duplicate). A crash after 3 only repeats the report, which the writer takes once.

use crate::channels::{Email, HttpSms, SendError, Smtp};
use crate::metrics::Metrics;
use crate::report::{ReportError, Reporter};
use events::message::{self, MessageContext, MessageTemplates};
use events::{DeliveryStatus, InviteCreated};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sqlx::PgPool;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

pub struct Deliverer {
    pub pool: PgPool,
    /// Opens the invite's personal data (sealed in the log and in `dispatch.invites`) to send.
    pub unsealer: service_kit::vault::Unsealer,
    pub reporter: Reporter,
    pub smtp: Smtp,
    pub sms: Option<HttpSms>,
    pub public_url: String,
    pub max_attempts: u32,
    pub retry: Duration,
    pub limiter: DefaultKeyedRateLimiter<Uuid>,
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
}

/// Sends per second per tenant, with bursts of twice that.
pub fn tenant_limiter(per_second: u32) -> DefaultKeyedRateLimiter<Uuid> {
    let rate = NonZeroU32::new(per_second.max(1)).expect("at least 1");
    let burst = NonZeroU32::new(per_second.saturating_mul(2).max(1)).expect("at least 1");
    RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
}

#[derive(Debug, sqlx::FromRow)]
struct Job {
    delivery_id: Uuid,
    tenant_id: Uuid,
    invite_id: Uuid,
    method: String,
    target: String,
    state: String,
    attempts: i32,
    last_error: Option<String>,
    created: Option<serde_json::Value>,
    templates: Option<serde_json::Value>,
}

impl Deliverer {
    /// Sends until `stop` turns true; then returns once the send in flight is done and recorded
    /// (a graceful stop sends nothing twice).
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) -> anyhow::Result<()> {
        while !*stop.borrow() {
            let worked = match self.round(&stop).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "a delivery round failed; trying again");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    0
                }
            };
            if worked == 0 {
                // New jobs wake it; due retries are found within a second.
                tokio::select! {
                    _ = tokio::time::timeout(Duration::from_secs(1), self.wake.notified()) => {}
                    Ok(_) = stop.wait_for(|stop| *stop) => {}
                }
            }
        }
        Ok(())
    }

    /// One round over the due jobs; returns how many it took.
    async fn round(&self, stop: &tokio::sync::watch::Receiver<bool>) -> anyhow::Result<usize> {
        let jobs: Vec<Job> = sqlx::query_as(
            "SELECT d.delivery_id, d.tenant_id, d.invite_id, d.method, d.target, d.state, d.attempts, d.last_error, \
             i.created, def.templates \
             FROM dispatch.deliveries d \
             LEFT JOIN dispatch.invites i ON i.invite_id = d.invite_id \
             LEFT JOIN dispatch.definitions def ON def.definition_id = (i.created->>'definition_id')::uuid \
             WHERE (d.state IN ('queued', 'sending') OR (d.state IN ('sent', 'bounced', 'failed') AND NOT d.reported)) \
             AND d.next_attempt_at <= now() ORDER BY d.next_attempt_at, d.created_at LIMIT 100",
        )
        .fetch_all(&self.pool)
        .await?;
        let taken = jobs.len();
        let (outcomes, pending): (Vec<Job>, Vec<Job>) =
            jobs.into_iter().partition(|j| matches!(j.state.as_str(), "sent" | "bounced" | "failed"));
        // Outcomes a crash (or an unavailable command API) left unreported.
        self.report_outcomes(outcomes).await?;

        // Begin what is queued: `sending` through the writer, all of them at once (one group
        // commit). What stands at `sending` already began before a restart: it goes on.
        let mut to_send = Vec::new();
        let mut to_begin = Vec::new();
        for job in pending {
            if let Err(wait) = self.limiter.check_key(&job.tenant_id) {
                let wait = wait.wait_time_from(DefaultClock::default().now());
                self.postpone(job.delivery_id, wait).await?;
                continue;
            }
            if job.state == "sending" {
                to_send.push(job);
            } else {
                to_begin.push(job);
            }
        }
        let begun = futures::future::join_all(
            to_begin.iter().map(|j| self.reporter.report(j.tenant_id, j.delivery_id, DeliveryStatus::Sending, None)),
        )
        .await;
        for (job, result) in to_begin.into_iter().zip(begun) {
            match result {
                Ok(_) => {
                    self.set_state(job.delivery_id, "sending", None).await?;
                    to_send.push(job);
                }
                Err(ReportError::Refused { code }) if code == "invalid-delivery-transition" => {
                    // Further on already (reported by someone else): not ours to send.
                    sqlx::query(
                        "UPDATE dispatch.deliveries SET state = 'cancelled', reported = true, updated_at = now() \
                         WHERE delivery_id = $1",
                    )
                    .bind(job.delivery_id)
                    .execute(&self.pool)
                    .await?;
                }
                Err(ReportError::Refused { code }) => {
                    // The invite closed (revoked, declined, expired, accepted) before the send began.
                    self.set_state(
                        job.delivery_id,
                        "failed",
                        Some(&format!("not sent: the invite closed first ({code})")),
                    )
                    .await?;
                }
                Err(ReportError::Unavailable(e)) => {
                    tracing::warn!(error = %e, "cannot record a send's beginning; trying again later");
                    self.postpone(job.delivery_id, self.retry).await?;
                }
            }
        }

        // Send, one at a time; each outcome is committed before the next send.
        let mut ended = Vec::new();
        let mut iter = to_send.into_iter();
        for job in iter.by_ref() {
            if *stop.borrow() {
                // Stopping: what is left stays `sending`, for the next dispatcher to send.
                self.report_outcomes(ended).await?;
                return Ok(taken);
            }
            let result = self.send(&job).await.map_err(|e| without_token(e, &self.link_token(&job)));
            let attempts = job.attempts + 1;
            let channel = if job.method == "sms" { "sms" } else { "email" };
            let (state, detail) = match result {
                Ok(()) => ("sent", None),
                Err(SendError::Permanent(e)) => ("bounced", Some(e)),
                Err(SendError::Unsendable(e)) => ("failed", Some(e)),
                Err(SendError::Transient(e)) if attempts as u32 >= self.max_attempts => {
                    ("failed", Some(format!("{e} (after {attempts} tries)")))
                }
                Err(SendError::Transient(e)) => {
                    self.metrics.sends.with_label_values(&[channel, "retry"]).inc();
                    let wait = backoff(self.retry, attempts as u32);
                    tracing::info!(error = %e, attempts, ?wait, "a send failed for now; trying again later");
                    sqlx::query(
                        "UPDATE dispatch.deliveries SET attempts = $2, last_error = $3, \
                         next_attempt_at = now() + $4 * interval '1 millisecond', updated_at = now() WHERE delivery_id = $1",
                    )
                    .bind(job.delivery_id)
                    .bind(attempts)
                    .bind(&e)
                    .bind(wait.as_millis() as i64)
                    .execute(&self.pool)
                    .await?;
                    // The server is likely down for the others too: they wait as long, untried.
                    break;
                }
            };
            self.metrics.sends.with_label_values(&[channel, state]).inc();
            ended.push(self.finish(job, attempts, state, detail).await);
        }
        for job in iter {
            self.postpone(job.delivery_id, self.retry).await?;
        }
        self.report_outcomes(ended).await?;
        Ok(taken)
    }

    /// The invite's link token, as its link in the message carries it.
    fn link_token(&self, job: &Job) -> String {
        let id = events::InviteId::from_uuid(job.invite_id);
        let recorded = job.created.as_ref().and_then(|c| c["token"].as_str()).filter(|t| !t.is_empty());
        recorded.map_or_else(|| self.unsealer.master().secrets().link_token(id).as_str().to_owned(), str::to_owned)
    }

    /// Renders and sends one delivery.
    async fn send(&self, job: &Job) -> Result<(), SendError> {
        // Opened together, so the target and the invite's targets compare as clear values.
        let mut doc = serde_json::json!({ "created": job.created, "target": job.target });
        self.unsealer
            .unseal(events::TenantId::from_uuid(job.tenant_id), &mut doc)
            .await
            .map_err(|e| SendError::Transient(format!("the personal data cannot be read right now: {e}")))?;
        let target = doc["target"].as_str().unwrap_or_default().to_owned();
        if target == events::personal::ERASED {
            return Err(SendError::Unsendable("not sent: the recipient's personal data was erased".into()));
        }
        let created: InviteCreated = serde_json::from_value(doc["created"].take())
            .map_err(|_| SendError::Unsendable("the invite's creation is unknown to the dispatcher".into()))?;
        let templates: Option<MessageTemplates> = job.templates.clone().and_then(|t| serde_json::from_value(t).ok());
        let link = events::personal::link_token_of(
            events::InviteId::from_uuid(job.invite_id),
            &created,
            &self.unsealer.master().secrets(),
        )
        .link(&self.public_url);
        let ctx = context(link, &created, &target);
        match job.method.as_str() {
            "email" => {
                let rendered = message::render_email(templates.as_ref(), &ctx)
                    .map_err(|e| SendError::Unsendable(format!("the template does not render: {e}")))?;
                let recipient = created.targets.iter().find(|t| t.value == target).and_then(|t| t.name.as_deref());
                let email = Email {
                    id: job.delivery_id,
                    to: &target,
                    to_name: recipient,
                    reply_to: created.reply_to.first().map(String::as_str),
                    rendered: &rendered,
                };
                self.smtp.send(&email).await
            }
            "sms" => {
                let Some(sms) = &self.sms else {
                    return Err(SendError::Unsendable("no SMS provider is configured (RSVP_SMS_URL)".into()));
                };
                let text = message::render_sms(templates.as_ref(), &ctx)
                    .map_err(|e| SendError::Unsendable(format!("the template does not render: {e}")))?;
                sms.send(job.delivery_id, &target, &text).await
            }
            other => Err(SendError::Unsendable(format!("nothing sends by {other}"))),
        }
    }

    /// Commits a send's outcome before anything else is sent: a database that fails here is
    /// waited out, never left behind (the job would stay `sending` and be sent again). Returns the
    /// job as it now stands, to be reported.
    async fn finish(&self, mut job: Job, attempts: i32, state: &str, error: Option<String>) -> Job {
        let mut tries = 0u32;
        loop {
            let committed = sqlx::query(
                "UPDATE dispatch.deliveries SET state = $2, attempts = $3, last_error = $4, reported = false, \
                 updated_at = now() WHERE delivery_id = $1",
            )
            .bind(job.delivery_id)
            .bind(state)
            .bind(attempts)
            .bind(&error)
            .execute(&self.pool)
            .await;
            match committed {
                Ok(_) => break,
                Err(e) => {
                    tries += 1;
                    tracing::warn!(error = %e, tries, "cannot record a send's outcome; trying again");
                    tokio::time::sleep(Duration::from_millis(200 * u64::from(tries.min(25)))).await;
                }
            }
        }
        job.state = state.to_owned();
        job.attempts = attempts;
        job.last_error = error;
        job
    }

    async fn set_state(&self, delivery: Uuid, state: &str, error: Option<&str>) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE dispatch.deliveries SET state = $2, last_error = coalesce($3, last_error), updated_at = now() \
             WHERE delivery_id = $1",
        )
        .bind(delivery)
        .bind(state)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn postpone(&self, delivery: Uuid, wait: Duration) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE dispatch.deliveries SET next_attempt_at = now() + $2 * interval '1 millisecond' WHERE delivery_id = $1",
        )
        .bind(delivery)
        .bind(wait.as_millis().max(1) as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Reports each ended delivery's outcome through the writer (all at once: one group commit)
    /// and marks it reported; one the command API cannot take now is tried again later.
    async fn report_outcomes(&self, jobs: Vec<Job>) -> anyhow::Result<()> {
        let results = futures::future::join_all(jobs.iter().map(|j| {
            let status = match j.state.as_str() {
                "sent" => DeliveryStatus::Sent,
                "bounced" => DeliveryStatus::Bounced,
                _ => DeliveryStatus::Failed,
            };
            self.reporter.report(j.tenant_id, j.delivery_id, status, j.last_error.as_deref())
        }))
        .await;
        for (job, result) in jobs.iter().zip(results) {
            match result {
                Ok(_) | Err(ReportError::Refused { .. }) => {
                    if let Err(ReportError::Refused { code }) = &result {
                        // Someone else reported further on: what they said stands.
                        tracing::info!(%code, "an outcome was refused by the writer");
                    }
                    sqlx::query(
                        "UPDATE dispatch.deliveries SET reported = true, updated_at = now() WHERE delivery_id = $1",
                    )
                    .bind(job.delivery_id)
                    .execute(&self.pool)
                    .await?;
                }
                Err(ReportError::Unavailable(e)) => {
                    tracing::warn!(error = %e, "cannot report an outcome; trying again later");
                    self.postpone(job.delivery_id, self.retry).await?;
                }
            }
        }
        Ok(())
    }
}

/// A send's error without the invite's link token: a server or provider may quote the message back.
fn without_token(error: SendError, token: &str) -> SendError {
    let clean = |e: String| e.replace(token, "[link token]");
    match error {
        SendError::Permanent(e) => SendError::Permanent(clean(e)),
        SendError::Transient(e) => SendError::Transient(clean(e)),
        SendError::Unsendable(e) => SendError::Unsendable(clean(e)),
    }
}

/// The wait after the `attempts`-th failed try: `base`, doubling, at most ten minutes.
fn backoff(base: Duration, attempts: u32) -> Duration {
    let factor = 1u32.checked_shl(attempts.saturating_sub(1).min(20)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(Duration::from_secs(600))
}

/// What the templates see of an invite and the address it goes to.
pub fn context(link: String, created: &InviteCreated, target: &str) -> MessageContext {
    let recipient = created.targets.iter().position(|t| t.value == target);
    let recipient_name = recipient
        .and_then(|i| created.targets[i].name.clone().or_else(|| created.recipient_names.get(i).cloned()))
        .or_else(|| created.recipient_names.first().cloned());
    MessageContext {
        link,
        inviter_name: created.inviter.name.clone(),
        inviter_email: created.inviter.email.clone(),
        recipient_name,
        target: target.to_owned(),
        message: created.message.clone(),
        scope_name: created.scopes.first().map(|s| s.name.clone().unwrap_or_else(|| s.id.clone())),
        expires_at: created.expires_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        template_variables: created.template_variables.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_and_stops_at_ten_minutes() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff(base, 1), Duration::from_secs(2));
        assert_eq!(backoff(base, 2), Duration::from_secs(4));
        assert_eq!(backoff(base, 4), Duration::from_secs(16));
        assert_eq!(backoff(base, 40), Duration::from_secs(600));
    }
}
