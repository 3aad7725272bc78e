//! Following the log: batches of committed events, applied in one PostgreSQL transaction each
//! together with the new positions. Positions live in `projector_offsets`, never in Kafka.

use crate::projection;
use anyhow::Context;
use events::Envelope;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub brokers: String,
    pub topic: String,
    pub name: String,
    pub batch: usize,
}

/// One event with its place in the log.
#[derive(Debug, Clone)]
pub struct Positioned {
    pub partition: i32,
    pub offset: i64,
    pub envelope: Envelope,
}

pub async fn load_positions(
    pool: &PgPool,
    name: &str,
    topic: &str,
) -> anyhow::Result<HashMap<i32, i64>> {
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM projector_offsets WHERE consumer = $1 AND topic = $2",
    )
    .bind(name)
    .bind(topic)
    .fetch_all(pool)
    .await
    .context("cannot read projector positions")?;
    Ok(rows.into_iter().collect())
}

pub async fn run(pool: PgPool, config: ConsumerConfig) -> anyhow::Result<()> {
    let consumer: StreamConsumer =
        service_kit::kafka::client_config(&config.brokers, "rsvp-projector")
            .set("group.id", &config.name)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("isolation.level", "read_committed")
            .create()
            .context("cannot create the consumer")?;
    let positions = load_positions(&pool, &config.name, &config.topic).await?;
    let mut assignment = TopicPartitionList::new();
    let partitions =
        service_kit::kafka::partitions(&consumer, &config.topic, Duration::from_secs(10))?;
    for &p in &partitions {
        let offset = positions
            .get(&p)
            .map_or(Offset::Beginning, |&o| Offset::Offset(o));
        assignment.add_partition_offset(&config.topic, p, offset)?;
    }
    consumer
        .assign(&assignment)
        .context("cannot assign partitions")?;
    tracing::info!(topic = %config.topic, partitions = partitions.len(), "projector following the log");

    let linger = Duration::from_millis(20);
    loop {
        let first = consumer.recv().await.context("cannot read the log")?;
        let mut batch = vec![decode(&first)?];
        while batch.len() < config.batch {
            match tokio::time::timeout(linger, consumer.recv()).await {
                Ok(message) => batch.push(decode(&message.context("cannot read the log")?)?),
                Err(_) => break,
            }
        }
        let applied = projection::apply_batch(&pool, &config.name, &config.topic, &batch).await?;
        tracing::debug!(events = batch.len(), applied, "batch projected");
    }
}

fn decode<M: Message>(message: &M) -> anyhow::Result<Positioned> {
    let envelope = service_kit::kafka::envelope_of(message).with_context(|| {
        format!(
            "undecodable event at partition {} offset {}",
            message.partition(),
            message.offset()
        )
    })?;
    Ok(Positioned {
        partition: message.partition(),
        offset: message.offset(),
        envelope,
    })
}
