//! The one-time migration of a log written before personal data was sealed: copies every event
//! of `--from` into `--to`, each into the same partition and in the same order (so every stream
//! keeps its order), its addresses given their blind index and its personal fields sealed under
//! their subjects' keys, exactly as the writer writes an event now. Events sealed already are
//! copied as they are. The keys are stored before the events that rest on them are produced.
//!
//!   command-api stopped (no writer may append meanwhile), then:
//!   rsvp-reseal --from rsvp.invite-events --to rsvp.invite-events.sealed
//!   then every service on RSVP_KAFKA_TOPIC=rsvp.invite-events.sealed, and `projector rebuild`.
//!
//! The old topic still holds the clear values: delete it once the new one is in use (and its
//! backups with it), or the erasure of its data is not complete.

use anyhow::{bail, Context as _};
use clap::Parser;
use command_api::vault::Vault;
use events::{Change, DomainEvent, Envelope, Tenant, TenantId};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "rsvp-reseal", about = "Copy a log with clear-text personal data into a new topic, sealed")]
struct Cli {
    #[arg(long, env = "RSVP_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    brokers: String,
    /// The topic to copy (left as it is).
    #[arg(long)]
    from: String,
    /// The new topic: created with as many partitions as `--from`; it must be empty.
    #[arg(long)]
    to: String,
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    #[command(flatten)]
    vault: service_kit::vault::VaultConfig,
}

/// Events produced between two key-store writes.
const CHUNK: usize = 5_000;

fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init("rsvp-reseal");
    let cli = Cli::parse();
    let runtime = tokio::runtime::Runtime::new()?;
    let pool = runtime.block_on(async {
        let pool = service_kit::db::connect(&cli.database_url, 2).await?;
        service_kit::db::migrate(&pool).await?;
        anyhow::Ok(pool)
    })?;
    let partitions = partition_count(&cli.brokers, &cli.from)?;
    runtime.block_on(create_empty(&cli.brokers, &cli.to, partitions))?;
    let mut vault = Vault::load(cli.vault.master()?, &pool, runtime.handle(), |_| true)?;
    let secrets = vault.secrets().clone();
    let producer: ThreadedProducer<DefaultProducerContext> =
        service_kit::kafka::client_config(&cli.brokers, "rsvp-reseal")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "20")
            .create()
            .context("cannot create the producer")?;

    let mut tenants: HashMap<TenantId, Tenant> = HashMap::new();
    let mut pending: Vec<(i32, Envelope)> = Vec::new();
    let mut keys = Vec::new();
    let mut copied = 0u64;
    let flush = |pending: &mut Vec<(i32, Envelope)>, keys: &mut Vec<_>| -> anyhow::Result<()> {
        if !keys.is_empty() {
            runtime.block_on(service_kit::vault::store::apply(&pool, keys))?;
            keys.clear();
        }
        for (partition, envelope) in pending.drain(..) {
            let (key, payload) = (envelope.key(), envelope.data_json());
            let mut record = BaseRecord::to(&cli.to)
                .partition(partition)
                .key(&key)
                .payload(&payload)
                .headers(service_kit::kafka::headers_of(&envelope))
                .timestamp(envelope.meta.occurred_at.timestamp_millis());
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((
                        rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        r,
                    )) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            }
        }
        producer.flush(Duration::from_secs(120))?;
        Ok(())
    };
    service_kit::kafka::read_to_end(&cli.brokers, &cli.from, &HashMap::new(), Duration::from_secs(3600), |p, o, m| {
        let mut envelope = service_kit::kafka::envelope_of(m)
            .with_context(|| format!("undecodable event at partition {p} offset {o}"))?;
        let tenant_id = envelope.meta.tenant_id;
        if let DomainEvent::Invite(event) = &mut envelope.event {
            if events::personal::needs_index(event) {
                events::personal::index_legacy(event, &secrets.for_tenant(tenant_id));
            }
        }
        let tenant = tenants.entry(tenant_id).or_default();
        let mut change = Change { stream: envelope.meta.stream, version: envelope.meta.version, event: envelope.event };
        vault.seal(tenant_id, tenant, &mut change, &mut keys);
        tenant.apply(change.stream, &change.event);
        envelope.event = change.event;
        pending.push((p, envelope));
        copied += 1;
        if pending.len() >= CHUNK {
            flush(&mut pending, &mut keys)?;
        }
        Ok(())
    })?;
    flush(&mut pending, &mut keys)?;
    println!("{copied} events copied from {} into {}, sealed", cli.from, cli.to);
    Ok(())
}

fn partition_count(brokers: &str, topic: &str) -> anyhow::Result<i32> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = service_kit::kafka::client_config(brokers, "rsvp-reseal").create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
    let n = metadata.topics().first().map_or(0, |t| t.partitions().len() as i32);
    if n == 0 {
        bail!("topic {topic} does not exist");
    }
    Ok(n)
}

/// Creates the topic (infinite retention, as the log's) or checks that it is empty.
async fn create_empty(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        service_kit::kafka::client_config(brokers, "rsvp-reseal").create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1)).set("retention.ms", "-1");
    for result in admin.create_topics([&new], &AdminOptions::new()).await? {
        match result {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, e)) => bail!("cannot create {topic}: {e}"),
        }
    }
    let mut records = 0;
    let topic = topic.to_owned();
    let brokers = brokers.to_owned();
    tokio::task::spawn_blocking(move || {
        service_kit::kafka::read_to_end(&brokers, &topic, &HashMap::new(), Duration::from_secs(60), |_, _, _| {
            records += 1;
            Ok(())
        })
        .map(|()| records)
    })
    .await??
    .eq(&0)
    .then_some(())
    .context("the new topic is not empty: rsvp-reseal copies into an empty topic only")
}
