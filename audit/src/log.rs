//! Reading the log and its checkpoints from Kafka (read_committed, to the end as it is when the
//! read begins).

use crate::checkpoint::{audit_topic, Checkpoint};
use crate::verify::Record;
use anyhow::Context as _;
use rdkafka::message::{Headers, Message};
use std::collections::HashMap;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(1800);

/// Calls `each` with every committed record of `topic`, in per-partition order.
pub fn read_events(brokers: &str, topic: &str, mut each: impl FnMut(Record)) -> anyhow::Result<()> {
    service_kit::kafka::read_to_end(brokers, topic, &HashMap::new(), TIMEOUT, |p, o, m| {
        each(record_of(topic, p, o, m));
        Ok(())
    })
}

/// A Kafka record as the checks see it: its CloudEvents attributes and its value.
pub fn record_of<M: Message>(topic: &str, partition: i32, offset: i64, message: &M) -> Record {
    let attributes = message
        .headers()
        .map(|h| {
            h.iter()
                .filter_map(|h| {
                    let name = events::chain::attribute_of_header(h.key)?;
                    Some((name.to_owned(), h.value.unwrap_or_default().to_vec()))
                })
                .collect()
        })
        .unwrap_or_default();
    Record {
        at: format!("{topic}/{partition}/{offset}"),
        lane: partition as i64,
        attributes,
        value: message.payload().unwrap_or_default().to_vec(),
    }
}

/// Every checkpoint in `<topic>.audit` with where it was read; none when the topic does not exist
/// (a log written before checkpoints). A record that is not a checkpoint is an error: the topic
/// holds nothing else.
pub fn read_checkpoints(brokers: &str, topic: &str) -> anyhow::Result<Option<Vec<(Checkpoint, String)>>> {
    let audit = audit_topic(topic);
    let mut checkpoints = Vec::new();
    let read = service_kit::kafka::read_to_end(brokers, &audit, &HashMap::new(), TIMEOUT, |p, o, m| {
        let at = format!("{audit}/{p}/{o}");
        let checkpoint: Checkpoint = serde_json::from_slice(m.payload().unwrap_or_default())
            .with_context(|| format!("{at} is not a checkpoint"))?;
        checkpoints.push((checkpoint, at));
        Ok(())
    });
    match read {
        Ok(()) => Ok(Some(checkpoints)),
        Err(e) if format!("{e:#}").contains("does not exist") => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates `<topic>.audit` unless it exists: one partition (checkpoints are few), kept forever,
/// with the main topic's replication factor and `min.insync.replicas`.
pub async fn ensure_audit_topic(brokers: &str, topic: &str) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::error::RDKafkaErrorCode;
    let admin: AdminClient<DefaultClientContext> =
        service_kit::kafka::client_config(brokers, "rsvp-admin").create().context("cannot create admin client")?;
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .with_context(|| format!("cannot read metadata of topic {topic}"))?;
    let replicas = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none())
        .and_then(|t| t.partitions().first())
        .map_or(-1, |p| p.replicas().len() as i32);
    let mut min_insync = None;
    let described = admin.describe_configs([&ResourceSpecifier::Topic(topic)], &AdminOptions::new()).await;
    if let Ok(results) = described {
        for resource in results.into_iter().flatten() {
            min_insync = resource.get("min.insync.replicas").and_then(|e| e.value.clone());
        }
    }
    let audit = audit_topic(topic);
    let mut new = NewTopic::new(
        &audit,
        1,
        if replicas > 0 { TopicReplication::Fixed(replicas) } else { TopicReplication::Fixed(-1) },
    )
    .set("retention.ms", "-1")
    .set("retention.bytes", "-1");
    if let Some(m) = &min_insync {
        new = new.set("min.insync.replicas", m);
    }
    for result in admin.create_topics([&new], &AdminOptions::new()).await.context("cannot create a topic")? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("cannot create topic {t}: {e}"),
        }
    }
    Ok(())
}
