//! Following the log: each batch of events becomes jobs (deliveries to send, webhook messages)
//! in one PostgreSQL transaction together with the new positions, so every event makes its jobs
//! once, whatever crashes and redeliveries happen. Nothing is sent here: the senders pick the jobs
//! up (and a slow SMTP server or endpoint never holds the intake back).

use crate::metrics::Metrics;
use crate::payload;
use anyhow::Context;
use chrono::{DateTime, Utc};
use events::{DefinitionEvent, DeliveryMethod, DeliveryStatus, DomainEvent, Envelope, InviteEvent};
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use service_kit::webhooks::Format;
use sqlx::{PgPool, Postgres, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use uuid::Uuid;

pub struct IntakeConfig {
    pub brokers: String,
    pub topic: String,
    pub name: String,
    /// Deliveries asked for longer ago than this are recorded as failed, not sent.
    pub max_age: Duration,
}

/// One record of the log, read.
struct Read {
    partition: i32,
    offset: i64,
    envelope: Result<Envelope, events::DecodeError>,
}

/// An endpoint, as the intake matches events to it.
struct Endpoint {
    id: Uuid,
    tenant_id: Uuid,
    format: Format,
    event_types: Vec<String>,
    created_at: DateTime<Utc>,
}

pub async fn run(pool: PgPool, config: IntakeConfig, wake: Arc<Notify>, metrics: Arc<Metrics>) -> anyhow::Result<()> {
    let positions: HashMap<i32, i64> = sqlx::query_as::<_, (i32, i64)>(
        "SELECT partition, next_offset FROM dispatch.offsets WHERE consumer = $1 AND topic = $2",
    )
    .bind(&config.name)
    .bind(&config.topic)
    .fetch_all(&pool)
    .await
    .context("cannot read the dispatcher's positions")?
    .into_iter()
    .collect();
    let (consumer, partitions) =
        service_kit::kafka::follow(&config.brokers, "rsvp-dispatcher", &config.name, &config.topic, &positions)?;
    metrics.following.store(true, std::sync::atomic::Ordering::Release);
    tracing::info!(topic = %config.topic, partitions = partitions.len(), "dispatcher following the log");
    loop {
        let batch = next_batch(&consumer, 500, Duration::from_millis(20)).await;
        let mut tries = 0u32;
        loop {
            match apply(&pool, &config, &batch, &metrics).await {
                Ok(()) => break,
                Err(e) => {
                    tries += 1;
                    tracing::warn!(error = %format!("{e:#}"), tries, "taking in a batch failed; trying again");
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(tries.min(10)))).await;
                }
            }
        }
        metrics.events.inc_by(batch.len() as u64);
        wake.notify_waiters();
    }
}

/// Waits for one record, then takes what follows within `linger`, up to `max`.
async fn next_batch(consumer: &StreamConsumer, max: usize, linger: Duration) -> Vec<Read> {
    let mut batch = vec![next(consumer).await];
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() < max {
        match tokio::time::timeout_at(deadline, next(consumer)).await {
            Ok(read) => batch.push(read),
            Err(_) => break,
        }
    }
    batch
}

async fn next(consumer: &StreamConsumer) -> Read {
    loop {
        match consumer.recv().await {
            Ok(m) => {
                return Read {
                    partition: m.partition(),
                    offset: m.offset(),
                    envelope: service_kit::kafka::envelope_of(&m),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading the log failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn apply(pool: &PgPool, config: &IntakeConfig, batch: &[Read], metrics: &Metrics) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    let tenants: Vec<Uuid> = {
        let mut t: Vec<Uuid> =
            batch.iter().filter_map(|r| r.envelope.as_ref().ok()).map(|e| *e.meta.tenant_id.as_uuid()).collect();
        t.sort();
        t.dedup();
        t
    };
    let endpoints = endpoints_of(&mut tx, &tenants).await?;
    let oldest_sendable = Utc::now() - chrono::Duration::from_std(config.max_age).unwrap_or(chrono::Duration::MAX);
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for read in batch {
        next.insert(read.partition, read.offset + 1);
        let envelope = match &read.envelope {
            Ok(e) => e,
            Err(e) => {
                metrics.undecodable.inc();
                tracing::warn!(partition = read.partition, offset = read.offset, error = %e, "passing over a record that is no event");
                continue;
            }
        };
        let method = take_in(&mut tx, envelope, oldest_sendable).await?;
        for endpoint in endpoints.iter().filter(|e| e.tenant_id == *envelope.meta.tenant_id.as_uuid()) {
            // An endpoint gets what is written after it was registered, never the history before.
            if envelope.meta.occurred_at < endpoint.created_at {
                continue;
            }
            let Some(name) = payload::type_name(endpoint.format, envelope, method) else { continue };
            if !endpoint.event_types.is_empty() && !endpoint.event_types.iter().any(|t| t == name) {
                continue;
            }
            let Some(body) = payload::body(endpoint.format, envelope, method) else { continue };
            sqlx::query(
                "INSERT INTO dispatch.webhook_messages \
                 (endpoint_id, event_id, tenant_id, stream_id, stream_version, event_type, body, state, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', now(), now()) ON CONFLICT DO NOTHING",
            )
            .bind(endpoint.id)
            .bind(envelope.meta.event_id)
            .bind(endpoint.tenant_id)
            .bind(envelope.meta.stream.as_uuid())
            .bind(envelope.meta.version as i64)
            .bind(name)
            .bind(body)
            .execute(&mut *tx)
            .await?;
        }
    }
    for (partition, offset) in next {
        sqlx::query(
            "INSERT INTO dispatch.offsets (consumer, topic, partition, next_offset) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
        )
        .bind(&config.name)
        .bind(&config.topic)
        .bind(partition)
        .bind(offset)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn endpoints_of(tx: &mut Transaction<'_, Postgres>, tenants: &[Uuid]) -> anyhow::Result<Vec<Endpoint>> {
    if tenants.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Uuid, Uuid, String, Vec<String>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT endpoint_id, tenant_id, format, event_types, created_at FROM dispatch.webhook_endpoints \
         WHERE tenant_id = ANY($1) AND NOT disabled",
    )
    .bind(tenants)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, tenant_id, format, event_types, created_at)| {
            Some(Endpoint { id, tenant_id, format: Format::parse(&format)?, event_types, created_at })
        })
        .collect())
}

/// Records what the senders need of one event; returns the delivery method of a delivery's event.
async fn take_in(
    tx: &mut Transaction<'_, Postgres>,
    envelope: &Envelope,
    oldest_sendable: DateTime<Utc>,
) -> anyhow::Result<Option<DeliveryMethod>> {
    let meta = &envelope.meta;
    let tenant = *meta.tenant_id.as_uuid();
    let stream = *meta.stream.as_uuid();
    match &envelope.event {
        DomainEvent::Invite(InviteEvent::Created(_)) => {
            sqlx::query(
                "INSERT INTO dispatch.invites (invite_id, tenant_id, created) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(stream)
            .bind(tenant)
            .bind(envelope.event.to_data())
            .execute(&mut **tx)
            .await?;
            Ok(None)
        }
        DomainEvent::Invite(InviteEvent::Sent(sent)) => {
            let (state, error) = match sent.method {
                DeliveryMethod::Email | DeliveryMethod::Sms if meta.occurred_at < oldest_sendable => {
                    ("failed", Some("asked for too long before the dispatcher saw it (RSVP_SEND_MAX_AGE_SECONDS)"))
                }
                DeliveryMethod::Email | DeliveryMethod::Sms => ("queued", None),
                // Shown in the product or handed to the inviter: nothing to send.
                DeliveryMethod::InApp | DeliveryMethod::Link => ("external", None),
            };
            sqlx::query(
                "INSERT INTO dispatch.deliveries (delivery_id, tenant_id, invite_id, method, target, state, reported, \
                 last_error, next_attempt_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), now(), now()) ON CONFLICT DO NOTHING",
            )
            .bind(sent.delivery_id.as_uuid())
            .bind(tenant)
            .bind(stream)
            .bind(sent.method.as_str())
            .bind(&sent.target)
            .bind(state)
            .bind(state == "external")
            .bind(error)
            .execute(&mut **tx)
            .await?;
            Ok(Some(sent.method))
        }
        DomainEvent::Invite(InviteEvent::DeliveryStatusChanged(change)) => {
            let method: Option<String> =
                sqlx::query_scalar("SELECT method FROM dispatch.deliveries WHERE delivery_id = $1")
                    .bind(change.delivery_id.as_uuid())
                    .fetch_optional(&mut **tx)
                    .await?;
            // An outcome someone else reported (a provider's callback through the API) ends a
            // send that has not begun.
            if !matches!(change.status, DeliveryStatus::Queued | DeliveryStatus::Sending) {
                sqlx::query(
                    "UPDATE dispatch.deliveries SET state = 'cancelled', reported = true, updated_at = now() \
                     WHERE delivery_id = $1 AND state = 'queued'",
                )
                .bind(change.delivery_id.as_uuid())
                .execute(&mut **tx)
                .await?;
            }
            Ok(method.as_deref().and_then(method_of))
        }
        DomainEvent::Definition(DefinitionEvent::Created(rules) | DefinitionEvent::Updated(rules)) => {
            let templates = rules.templates.as_ref().map(|t| serde_json::to_value(t).expect("templates serialize"));
            sqlx::query(
                "INSERT INTO dispatch.definitions (definition_id, tenant_id, templates) VALUES ($1, $2, $3) \
                 ON CONFLICT (definition_id) DO UPDATE SET templates = EXCLUDED.templates",
            )
            .bind(stream)
            .bind(tenant)
            .bind(templates)
            .execute(&mut **tx)
            .await?;
            Ok(None)
        }
        _ => Ok(None),
    }
}

fn method_of(s: &str) -> Option<DeliveryMethod> {
    [DeliveryMethod::Email, DeliveryMethod::Sms, DeliveryMethod::InApp, DeliveryMethod::Link]
        .into_iter()
        .find(|m| m.as_str() == s)
}
