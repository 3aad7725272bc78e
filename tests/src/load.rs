//! Loading a log for benchmarks: N `InviteCreated` events spread over 10 tenants and a few
//! inviters, written fast (idempotent producer, large batches), acknowledged by the broker.

use chrono::Utc;
use events::{
    Actor, ActorKind, DomainEvent, Envelope, EventMeta, InvitationType, InviteCreated, InviteEvent, InviteId, Inviter,
    LinkToken, StreamId, Target, TargetKind, TenantId,
};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::time::Duration;
use uuid::Uuid;

/// A realistic spread: 10 tenants, a few inviters each, one InviteCreated per invite.
pub async fn invites_created(brokers: &str, topic: &str, n: usize) -> anyhow::Result<()> {
    let producer: FutureProducer = service_kit::kafka::client_config(brokers, "bench-loader")
        .set("enable.idempotence", "true")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000")
        .create()?;
    let tenants: Vec<TenantId> = (0..10).map(|_| TenantId::from_uuid(Uuid::now_v7())).collect();
    let now = Utc::now();
    let mut inflight = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    for i in 0..n {
        let envelope = created_envelope(tenants[i % tenants.len()], now, i);
        let key = envelope.key();
        let payload = envelope.data_json();
        let mut record =
            FutureRecord::to(topic).key(&key).payload(&payload).headers(service_kit::kafka::headers_of(&envelope));
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
        },
        targets: vec![Target {
            kind: TargetKind::Email,
            value: format!("person{i}@example.com"),
            name: Some("Bob".into()),
        }],
        recipient_names: vec![],
        message: Some("join us".into()),
        invitation_type: InvitationType::SingleUse,
        expires_at: None,
        scopes: vec![],
        reply_to: vec![],
        metadata: Default::default(),
        template_variables: Default::default(),
        widget_id: None,
        flow_id: None,
        template_id: None,
        landing_url: None,
        definition_id: None,
        token: LinkToken::new(format!("token-{i}")),
    }
}
