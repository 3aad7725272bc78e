//! How long the writer takes to become ready over a long log: loads N events (default 1,000,000)
//! into a fresh topic, then starts the writer in-process and times `start` → `Ready`.
//!
//!   RSVP_KAFKA_BROKERS=127.0.0.1:9092 cargo bench -p command-api --bench restart -- [N]
//!
//! Needs a running Kafka (`make run` or `deploy/local/kafka.sh start`).

use chrono::Utc;
use command_api::writer::{self, Phase, WriterConfig};
use events::{
    Actor, ActorKind, DomainEvent, Envelope, EventMeta, InvitationType, InviteCreated, InviteEvent, InviteId, Inviter,
    LinkToken, StreamId, Target, TargetKind, TenantId,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let brokers = std::env::var("RSVP_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topic = format!("rsvp-bench-restart-{}", Uuid::new_v4().simple());
    let admin: AdminClient<DefaultClientContext> = service_kit::kafka::client_config(&brokers, "bench").create()?;
    admin.create_topics([&NewTopic::new(&topic, 12, TopicReplication::Fixed(1))], &AdminOptions::new()).await?;

    let started = Instant::now();
    load(&brokers, &topic, n).await?;
    println!("loaded {n} events into {topic} in {:.1?}", started.elapsed());

    let started = Instant::now();
    let handle =
        writer::start(WriterConfig { brokers, topic: topic.clone(), transactional_id: format!("bench-{topic}") })
            .await?;
    while handle.phase() != Phase::Ready {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(900), "writer not ready after 15 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    println!("writer ready over {n} events in {:.2?} ({:.0} events/s)", elapsed, n as f64 / elapsed.as_secs_f64());
    let _ = admin.delete_topics(&[&topic], &AdminOptions::new()).await;
    Ok(())
}

/// A realistic spread: 10 tenants, a few inviters each, one InviteCreated per invite.
async fn load(brokers: &str, topic: &str, n: usize) -> anyhow::Result<()> {
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
        let envelope = Envelope {
            meta: EventMeta {
                event_id: Uuid::now_v7(),
                stream: StreamId::Invite(InviteId::from_uuid(Uuid::now_v7())),
                tenant_id: tenants[i % tenants.len()],
                version: 1,
                occurred_at: now,
                actor: Actor { kind: ActorKind::ApiKey, id: "bench".into() },
                correlation_id: Some(Uuid::now_v7()),
                causation_id: None,
                idempotency_key: None,
                request_hash: None,
            },
            event: DomainEvent::Invite(InviteEvent::Created(Box::new(sample(i)))),
        };
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
