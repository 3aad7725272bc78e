//! Loading a log for benchmarks, written fast (idempotent producer, large batches) and
//! acknowledged by the broker: N `InviteCreated` events spread over 10 tenants and a few inviters
//! ([`invites_created`]), or a realistic mix of whole invite lives ([`invite_lives`]).

use chrono::Utc;
use events::event::{DeliveryStatusChanged, InviteAccepted, InviteClosed, InviteSent};
use events::{
    Actor, ActorKind, DeliveryId, DeliveryMethod, DeliveryStatus, DomainEvent, Envelope, EventMeta, InvitationType,
    InviteCreated, InviteEvent, InviteId, Inviter, StreamId, Target, TargetKind, TenantId,
};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// A realistic spread: 10 tenants, a few inviters each, one InviteCreated per invite.
pub async fn invites_created(brokers: &str, topic: &str, n: usize) -> anyhow::Result<()> {
    invites_created_by(brokers, topic, n, 10).await
}

/// [`invites_created`] spread over `tenants` tenants.
pub async fn invites_created_by(brokers: &str, topic: &str, n: usize, tenants: usize) -> anyhow::Result<()> {
    let tenants: Vec<TenantId> = (0..tenants.max(1)).map(|_| TenantId::from_uuid(Uuid::now_v7())).collect();
    let now = Utc::now();
    produce(brokers, topic, (0..n).map(|i| created_envelope(tenants[i % tenants.len()], now, i))).await
}

/// About `n` events (a few more, to finish the last lives) of whole invite lives, as a busy tenant
/// makes them: every invite is created, sent by email, reported sent, delivered and opened; then
/// three in ten are accepted and one in ten is revoked (5.4 events per invite). The stages of
/// successive groups of 500 invites interleave in the log (while one group is created, the one
/// before is sent, the one before that reported...), so a consumer's batches mix every kind of
/// event, as they do in production. Returns how many events were written.
pub async fn invite_lives(brokers: &str, topic: &str, n: usize) -> anyhow::Result<usize> {
    const GROUP: usize = 500;
    const STAGES: usize = 6;
    let tenants: Arc<Vec<TenantId>> = Arc::new((0..10).map(|_| TenantId::from_uuid(Uuid::now_v7())).collect());
    let now = Utc::now();
    let invites = n.div_ceil(54).max(1) * 10;
    let groups = invites.div_ceil(GROUP);
    let created: Arc<Vec<(InviteId, DeliveryId)>> = Arc::new(
        (0..invites).map(|_| (InviteId::from_uuid(Uuid::now_v7()), DeliveryId::from_uuid(Uuid::now_v7()))).collect(),
    );
    let records = (0..groups + STAGES - 1).flat_map(move |step| {
        let created = created.clone();
        let tenants = tenants.clone();
        (0..STAGES).filter(move |stage| step >= *stage && step - stage < groups).flat_map(move |stage| {
            let group = step - stage;
            let (created, tenants) = (created.clone(), tenants.clone());
            (group * GROUP..((group + 1) * GROUP).min(invites))
                .filter_map(move |i| life_event(tenants[i % tenants.len()], created[i], now, i, stage))
        })
    });
    let mut count = 0;
    produce(brokers, topic, records.inspect(|_| count += 1)).await?;
    Ok(count)
}

/// Stage `stage` of the `i`-th invite's life (version `stage + 1`), if it goes that far.
fn life_event(
    tenant: TenantId,
    (invite, delivery): (InviteId, DeliveryId),
    at: chrono::DateTime<Utc>,
    i: usize,
    stage: usize,
) -> Option<Envelope> {
    let status = |status| {
        InviteEvent::DeliveryStatusChanged(DeliveryStatusChanged { delivery_id: delivery, status, detail: None })
    };
    let event = match stage {
        0 => InviteEvent::Created(Box::new(sample(i))),
        1 => InviteEvent::Sent(InviteSent {
            delivery_id: delivery,
            method: DeliveryMethod::Email,
            target: format!("person{i}@example.com"),
            target_index: None,
            resend: false,
        }),
        2 => status(DeliveryStatus::Sent),
        3 => status(DeliveryStatus::Delivered),
        4 => status(DeliveryStatus::Opened),
        5 if i % 10 < 3 => InviteEvent::Accepted(InviteAccepted {
            accepted_by: Some(format!("user-{i}")),
            target: Some(format!("person{i}@example.com")),
            target_index: None,
        }),
        5 if i % 10 == 3 => InviteEvent::Revoked(InviteClosed { reason: Some("bench".into()) }),
        _ => return None,
    };
    let mut envelope = created_envelope(tenant, at, i);
    envelope.meta.stream = StreamId::Invite(invite);
    envelope.meta.version = stage as u64 + 1;
    envelope.event = DomainEvent::Invite(event);
    Some(envelope)
}

/// Writes `records` in order (per key) and waits until the broker has acknowledged every one.
async fn produce(brokers: &str, topic: &str, records: impl Iterator<Item = Envelope>) -> anyhow::Result<()> {
    let producer: FutureProducer = service_kit::kafka::client_config(brokers, "bench-loader")
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let mut inflight = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    let (key, secrets) = (service_kit::vault::DataKey::generate(), events::Secrets::new([1; 32], [2; 32]));
    let mut chains = Chains::default();
    // Where the writer puts them: every tenant's events in its shard.
    let partitions = service_kit::kafka::topic_partitions(brokers, topic, Duration::from_secs(30))?.len();
    for envelope in records {
        let envelope = as_written(envelope, &key, &secrets);
        let key = envelope.key();
        let payload = envelope.data_json();
        let headers = chains.chained(&envelope, service_kit::kafka::headers_of(&envelope), &payload);
        let mut record = FutureRecord::to(topic)
            .key(&key)
            .payload(&payload)
            .headers(headers)
            .partition(events::shard_of(envelope.meta.tenant_id, partitions));
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break inflight.push(delivery),
                Err((_, r)) => {
                    // Queue full: wait for some deliveries before enqueuing more.
                    record = r;
                    if let Some(done) = inflight.next().await {
                        done?.map_err(|(e, _)| e)?;
                    }
                }
            }
        }
    }
    while let Some(done) = inflight.next().await {
        done?.map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(())
}

/// The hash chains (`events::chain`) of a synthetic log, as the writer links its events: every
/// event carries its stream chain, tenant seq and tenant chain.
#[derive(Default)]
struct Chains {
    streams: std::collections::HashMap<StreamId, events::chain::Hash>,
    tenants: std::collections::HashMap<TenantId, events::chain::TenantHead>,
}

impl Chains {
    fn chained(
        &mut self,
        envelope: &Envelope,
        headers: rdkafka::message::OwnedHeaders,
        payload: &[u8],
    ) -> rdkafka::message::OwnedHeaders {
        use events::chain;
        use rdkafka::message::{Header, Headers as _};
        let canonical =
            chain::canonical_of_headers(headers.iter().map(|h| (h.key, h.value.unwrap_or_default())), payload);
        let before = self.streams.get(&envelope.meta.stream).copied().unwrap_or(chain::Hash::ZERO);
        let stream_chain = chain::stream_chain(before, chain::event_digest(&canonical));
        self.streams.insert(envelope.meta.stream, stream_chain);
        let head = self.tenants.entry(envelope.meta.tenant_id).or_default();
        *head = head.next(stream_chain);
        let link = chain::Link { stream_chain, tenant_seq: head.seq, tenant_chain: head.chain };
        link.headers().iter().fold(headers, |h, (key, value)| h.insert(Header { key, value: Some(value.as_bytes()) }))
    }
}

/// An event as the writer writes it now: its addresses indexed, its personal fields sealed (one
/// key for all: the bytes and the work to read them are what a deployment's log has).
fn as_written(mut envelope: Envelope, key: &service_kit::vault::DataKey, secrets: &events::Secrets) -> Envelope {
    let tenant = envelope.meta.tenant_id;
    if let (StreamId::Invite(id), DomainEvent::Invite(event)) = (envelope.meta.stream, &mut envelope.event) {
        events::personal::index_legacy(event, secrets);
        events::personal::for_each(id, None, event, &mut |_, field| match field {
            events::personal::Field::Text(text) => *text = key.seal_text(tenant, text),
            events::personal::Field::Json(value) => *value = serde_json::Value::String(key.seal_json(tenant, value)),
        });
    }
    envelope
}

/// The `i`-th invite of a synthetic log: an `InviteCreated` at version 1 for `tenant`.
pub fn created_envelope(tenant: TenantId, at: chrono::DateTime<Utc>, i: usize) -> Envelope {
    Envelope {
        meta: EventMeta {
            event_id: Uuid::now_v7(),
            stream: StreamId::Invite(InviteId::from_uuid(Uuid::now_v7())),
            tenant_id: tenant,
            version: 1,
            occurred_at: at,
            actor: Actor { kind: ActorKind::ApiKey, id: "bench".into() },
            correlation_id: Some(Uuid::now_v7()),
            causation_id: None,
            idempotency_key: None,
            request_hash: None,
        },
        event: DomainEvent::Invite(InviteEvent::Created(Box::new(sample(i)))),
    }
}

fn sample(i: usize) -> InviteCreated {
    InviteCreated {
        inviter: Inviter {
            id: format!("inviter-{}", i % 97),
            name: Some("Ann Inviter".into()),
            email: Some("ann@example.com".into()),
            email_index: None,
        },
        targets: vec![Target {
            kind: TargetKind::Email,
            value: format!("person{i}@example.com"),
            name: Some("Bob".into()),
            index: None,
        }],
        recipient_names: vec![],
        message: Some("join us".into()),
        invitation_type: InvitationType::SingleUse,
        expires_at: None,
        scopes: vec![],
        reply_to: vec![],
        reply_to_index: vec![],
        metadata: Default::default(),
        personal_metadata: vec![],
        template_variables: Default::default(),
        widget_id: None,
        flow_id: None,
        template_id: None,
        landing_url: None,
        definition_id: None,
        token: None,
        source: None,
        subtype: None,
    }
}

/// A realistic mix of whole lifecycles, interleaved the way a live system writes them: about
/// `active` invites are under way at any time; each next event either creates an invite or moves
/// a random one on by one step (sent; sending, sent, delivered or straight to opened; a view or a
/// click; then accepted, revoked or nothing). About one event in seven is a creation.
pub struct Lifecycles {
    tenants: Vec<TenantId>,
    active: Vec<Lifecycle>,
    target_active: usize,
    created: usize,
    rng: rand::rngs::StdRng,
}

struct Lifecycle {
    id: InviteId,
    tenant: TenantId,
    delivery: events::DeliveryId,
    version: u64,
    script: &'static [Step],
}

#[derive(Clone, Copy)]
enum Step {
    Send,
    Status(events::DeliveryStatus),
    Engage(events::EngagementKind),
    Accept,
    Revoke,
}

/// Each script follows the creation; all are valid histories for the domain.
const SCRIPTS: [&[Step]; 5] = {
    use events::DeliveryStatus::{Delivered, Opened, Sending, Sent};
    use events::EngagementKind::{Click, View};
    use Step::*;
    [
        &[Send, Status(Sending), Status(Sent), Status(Delivered), Status(Opened), Engage(View), Accept],
        &[Send, Status(Sent), Status(Delivered), Engage(View), Engage(Click), Accept],
        &[Send, Status(Sending), Status(Opened), Engage(View)],
        &[Send, Status(Sent), Status(Delivered), Revoke],
        &[Send, Status(Sending), Status(Sent)],
    ]
};

impl Lifecycles {
    pub fn new(tenants: usize, active: usize, seed: u64) -> Self {
        use rand::SeedableRng;
        Self {
            tenants: (0..tenants).map(|_| TenantId::from_uuid(Uuid::now_v7())).collect(),
            active: Vec::with_capacity(active),
            target_active: active,
            created: 0,
            rng: rand::rngs::StdRng::seed_from_u64(seed),
        }
    }

    /// The next event of the mix, stamped `at`.
    pub fn next_event(&mut self, at: chrono::DateTime<Utc>) -> Envelope {
        use rand::Rng;
        if self.active.len() < self.target_active && (self.active.is_empty() || self.rng.random_ratio(1, 4)) {
            let i = self.created;
            self.created += 1;
            let tenant = self.tenants[i % self.tenants.len()];
            let created = created_envelope(tenant, at, i);
            self.active.push(Lifecycle {
                id: InviteId::from_uuid(*created.meta.stream.as_uuid()),
                tenant,
                delivery: events::DeliveryId::from_uuid(Uuid::now_v7()),
                version: 1,
                script: SCRIPTS[self.rng.random_range(0..SCRIPTS.len())],
            });
            return created;
        }
        let slot = self.rng.random_range(0..self.active.len());
        let life = &mut self.active[slot];
        let step = life.script[(life.version - 1) as usize];
        life.version += 1;
        let event = match step {
            Step::Send => InviteEvent::Sent(events::event::InviteSent {
                delivery_id: life.delivery,
                method: events::event::DeliveryMethod::Email,
                target: "person@example.com".into(),
                target_index: None,
                resend: false,
            }),
            Step::Status(status) => InviteEvent::DeliveryStatusChanged(events::event::DeliveryStatusChanged {
                delivery_id: life.delivery,
                status,
                detail: None,
            }),
            Step::Engage(kind) => InviteEvent::Engaged(events::event::InviteEngaged { kind, source: None }),
            Step::Accept => InviteEvent::Accepted(events::event::InviteAccepted {
                accepted_by: None,
                target: None,
                target_index: None,
            }),
            Step::Revoke => InviteEvent::Revoked(events::event::InviteClosed { reason: None }),
        };
        let envelope = Envelope {
            meta: EventMeta {
                event_id: Uuid::now_v7(),
                stream: StreamId::Invite(life.id),
                tenant_id: life.tenant,
                version: life.version,
                occurred_at: at,
                actor: Actor { kind: ActorKind::ApiKey, id: "bench".into() },
                correlation_id: Some(Uuid::now_v7()),
                causation_id: None,
                idempotency_key: None,
                request_hash: None,
            },
            event: DomainEvent::Invite(event),
        };
        if life.version as usize > life.script.len() {
            self.active.swap_remove(slot);
        }
        envelope
    }
}

/// A producer for loading logs fast: idempotent, large batches.
pub fn bulk_producer(brokers: &str, linger_ms: u32) -> anyhow::Result<FutureProducer> {
    Ok(service_kit::kafka::client_config(brokers, "bench-loader")
        .set("enable.idempotence", "true")
        .set("linger.ms", linger_ms.to_string())
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()?)
}

/// N events of the [`Lifecycles`] mix, written as fast as the broker takes them.
pub async fn lifecycles(brokers: &str, topic: &str, n: usize) -> anyhow::Result<()> {
    use futures::StreamExt;
    let producer = bulk_producer(brokers, 20)?;
    let mut mix = Lifecycles::new(10, 20_000, 7);
    let now = Utc::now();
    let mut inflight = futures::stream::FuturesUnordered::new();
    for _ in 0..n {
        let envelope = mix.next_event(now);
        let (key, payload) = (envelope.key(), envelope.data_json());
        let mut record =
            FutureRecord::to(topic).key(&key).payload(&payload).headers(service_kit::kafka::headers_of(&envelope));
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break inflight.push(delivery),
                Err((_, r)) => {
                    record = r;
                    if let Some(done) = inflight.next().await {
                        done?.map_err(|(e, _)| e)?;
                    }
                }
            }
        }
    }
    while let Some(done) = inflight.next().await {
        done?.map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(())
}
