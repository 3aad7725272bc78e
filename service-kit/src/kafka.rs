//! Kafka client settings shared by every service.

use rdkafka::ClientConfig;

/// The common part: brokers, and a client id that names the service in broker logs.
/// `RSVP_KAFKA_DEBUG`, when set, is librdkafka's `debug` setting (e.g. `eos,broker,protocol`):
/// its contexts' lines go to the service's log, for diagnosing a client against a broker.
pub fn client_config(brokers: &str, client_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", brokers).set("client.id", client_id);
    if let Some(debug) = std::env::var("RSVP_KAFKA_DEBUG").ok().filter(|d| !d.is_empty()) {
        config.set("debug", debug);
    }
    config
}

use events::{DecodeError, Envelope};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

/// The `ce_*` headers of an envelope, as Kafka headers (CloudEvents binary content mode).
pub fn headers_of(envelope: &Envelope) -> OwnedHeaders {
    envelope
        .cloudevents_headers()
        .into_iter()
        .fold(OwnedHeaders::new(), |h, (key, value)| h.insert(Header { key, value: Some(value.as_bytes()) }))
}

/// Reads an envelope back from a Kafka record written with [`headers_of`].
pub fn envelope_of<M: Message>(message: &M) -> Result<Envelope, DecodeError> {
    envelope_of_parts(&record_headers(message), message.payload().unwrap_or_default())
}

/// A record's headers (key, value), read once: `from_cloudevent` asks for a dozen headers, and
/// each visit of a librdkafka header measures and checks its key anew (a fifth of a writer's
/// start-up went there).
pub fn record_headers<M: Message>(message: &M) -> Vec<(&str, &[u8])> {
    message.headers().map(|h| h.iter().filter_map(|h| Some((h.key, h.value?))).collect()).unwrap_or_default()
}

/// [`envelope_of`] from headers already read with [`record_headers`] and the record's value.
pub fn envelope_of_parts(headers: &[(&str, &[u8])], payload: &[u8]) -> Result<Envelope, DecodeError> {
    let lookup = |name: &str| {
        headers.iter().find(|(key, _)| *key == name).and_then(|(_, value)| std::str::from_utf8(value).ok())
    };
    Envelope::from_cloudevent(lookup, payload)
}

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Partitions of a topic, from the cluster's metadata.
pub fn partitions<X: rdkafka::consumer::ConsumerContext, C: Consumer<X>>(
    consumer: &C,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<Vec<i32>> {
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("cannot read metadata of topic {topic}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    anyhow::ensure!(!partitions.is_empty(), "topic {topic} does not exist");
    Ok(partitions)
}

/// A consumer that follows every partition of `topic` from the positions a service keeps itself
/// (in PostgreSQL, beside what it made of the events), from the beginning where it has none:
/// committed transactions only, nothing committed to Kafka. Returns it with the partitions.
pub fn follow(
    brokers: &str,
    client_id: &str,
    group: &str,
    topic: &str,
    positions: &HashMap<i32, i64>,
) -> anyhow::Result<(rdkafka::consumer::StreamConsumer, Vec<i32>)> {
    let consumer: rdkafka::consumer::StreamConsumer = client_config(brokers, client_id)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .create()
        .context("cannot create the consumer")?;
    let partitions = partitions(&consumer, topic, Duration::from_secs(10))?;
    let mut assignment = TopicPartitionList::new();
    for &p in &partitions {
        let offset = positions.get(&p).map_or(Offset::Beginning, |&o| Offset::Offset(o));
        assignment.add_partition_offset(topic, p, offset)?;
    }
    consumer.assign(&assignment).context("cannot assign partitions")?;
    Ok((consumer, partitions))
}

/// The log reader asks to be told of partition ends: they are how it knows it is done, not errors
/// to log.
pub struct EofIsNotAnError;

impl rdkafka::client::ClientContext for EofIsNotAnError {
    fn error(&self, error: KafkaError, reason: &str) {
        // librdkafka reports some as a global error (`Fetch from broker ... reached end of partition`).
        if !matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::error!(%error, reason, "kafka client error");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for EofIsNotAnError {}

/// Reads every committed record of `topic` from `start` (per partition; missing = beginning) up
/// to the end of the log as it is when the call begins, in per-partition order, calling `each`
/// with (partition, offset, record). Aborted transactions are skipped (read_committed).
pub fn read_to_end(
    brokers: &str,
    topic: &str,
    start: &HashMap<i32, i64>,
    timeout: Duration,
    each: impl FnMut(i32, i64, &rdkafka::message::BorrowedMessage<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    read_range(brokers, topic, start, None, timeout, each)
}

/// Like [`read_to_end`], stopping each partition before the offset `end` gives for it; with an
/// `end`, partitions it does not name are not read at all.
pub fn read_range(
    brokers: &str,
    topic: &str,
    start: &HashMap<i32, i64>,
    end: Option<&HashMap<i32, i64>>,
    timeout: Duration,
    each: impl FnMut(i32, i64, &rdkafka::message::BorrowedMessage<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    read(brokers, topic, None, start, end, timeout, each)
}

/// Like [`read_to_end`] for the partitions `only` of `topic` (from [`topic_partitions`]): several threads, each reading some
/// of the partitions, read a log faster than one (decoding is the cost, and it is per record).
pub fn read_partitions_to_end(
    brokers: &str,
    topic: &str,
    only: &[i32],
    timeout: Duration,
    each: impl FnMut(i32, i64, &rdkafka::message::BorrowedMessage<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    read(brokers, topic, Some(only), &HashMap::new(), None, timeout, each)
}

/// [`read_partitions_to_end`] starting each partition at its offset in `start` (the partition's
/// first record when not there, or when the log no longer holds that offset).
pub fn read_partitions_from(
    brokers: &str,
    topic: &str,
    only: &[i32],
    start: &HashMap<i32, i64>,
    timeout: Duration,
    each: impl FnMut(i32, i64, &rdkafka::message::BorrowedMessage<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    read(brokers, topic, Some(only), start, None, timeout, each)
}

/// A partition's (low, high) watermarks: the offsets of its first record and after its last.
pub fn watermarks(brokers: &str, topic: &str, partition: i32, timeout: Duration) -> anyhow::Result<(i64, i64)> {
    let consumer: BaseConsumer =
        client_config(brokers, "rsvp-log-reader").create().context("cannot create log reader")?;
    Ok(consumer.fetch_watermarks(topic, partition, timeout)?)
}

/// The partitions of `topic`, asked of the cluster.
pub fn topic_partitions(brokers: &str, topic: &str, timeout: Duration) -> anyhow::Result<Vec<i32>> {
    let consumer: BaseConsumer =
        client_config(brokers, "rsvp-log-reader").create().context("cannot create log reader")?;
    partitions(&consumer, topic, timeout)
}

fn read(
    brokers: &str,
    topic: &str,
    only: Option<&[i32]>,
    start: &HashMap<i32, i64>,
    end: Option<&HashMap<i32, i64>>,
    timeout: Duration,
    mut each: impl FnMut(i32, i64, &rdkafka::message::BorrowedMessage<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer<EofIsNotAnError> = client_config(brokers, "rsvp-log-reader")
        .set("group.id", "rsvp-log-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("fetch.max.bytes", "104857600")
        .set("max.partition.fetch.bytes", "10485760")
        // librdkafka prefetches up to 100,000 records or 64 MiB per partition by default: a
        // reader that decodes slower than the broker sends would hold most of the log in buffers
        // of fresh memory (which the kernel must zero), where a little read ahead keeps it busy.
        // The record count stays librdkafka's: at 10,000 a partition holding most of the log (a
        // shard of a few big tenants) was read 2.5 times slower (100,000 events of 3 tenants in
        // 12 partitions: 3.4 s against 1.4 s; 1,000 tenants: no difference).
        .set("queued.max.messages.kbytes", "8192")
        // At a partition's end the broker holds an empty fetch this long before the reader is
        // told it reached the end (librdkafka's default is 500 ms: half a second added to every
        // read that ends on a commit marker, as most do).
        .set("fetch.wait.max.ms", "10")
        .create_with_context(EofIsNotAnError)
        .context("cannot create log reader")?;
    // The end of each partition is its high watermark, which only a read_uncommitted client is
    // told: a read_committed one gets the last stable offset, which stops at the first transaction
    // still open, and reading to that would silently leave out whatever committed after it.
    let probe: BaseConsumer = client_config(brokers, "rsvp-log-reader")
        .set("isolation.level", "read_uncommitted")
        .create()
        .context("cannot create log reader")?;
    let deadline = Instant::now() + timeout;
    // partition → the offset to stop before
    let mut pending = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    // Partitions given are taken as they are: their caller asked the cluster already.
    let all = match only {
        Some(only) => only.to_vec(),
        None => partitions(&consumer, topic, timeout)?,
    };
    for p in all {
        let (low, high) = watermarks_once_led(&probe, topic, p, deadline)?;
        let from = start.get(&p).copied().unwrap_or(low).max(low);
        let stop = end.map_or(high, |e| e.get(&p).copied().unwrap_or(0)).min(high);
        if from < stop {
            wait_until_stable(&consumer, topic, p, stop, deadline)?;
            pending.insert(p, stop);
            assignment.add_partition_offset(topic, p, Offset::Offset(from))?;
        }
    }
    if pending.is_empty() {
        return Ok(());
    }
    consumer.assign(&assignment).context("cannot assign partitions")?;
    while !pending.is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "reading {topic} took longer than {timeout:?}");
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => {
                let (p, offset) = (message.partition(), message.offset());
                let Some(&stop) = pending.get(&p) else { continue };
                // Offsets have gaps under transactions (commit markers): compare, never count.
                if offset < stop {
                    each(p, offset, &message)?;
                }
                if offset + 1 >= stop {
                    pending.remove(&p);
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                // End reached: the rest up to the high watermark was markers or aborted records.
                pending.remove(&p);
            }
            Some(Err(e)) => return Err(e).context("cannot read the log"),
        }
    }
    Ok(())
}

/// A partition's watermarks, waiting while it has no leader yet (a topic just created, or a
/// leader moving): the broker answers `NotLeaderForPartition` for a moment then.
fn watermarks_once_led<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    p: i32,
    deadline: Instant,
) -> anyhow::Result<(i64, i64)> {
    use rdkafka::types::RDKafkaErrorCode::{LeaderNotAvailable, NotLeaderForPartition};
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match consumer.fetch_watermarks(topic, p, remaining.max(Duration::from_millis(100))) {
            Err(KafkaError::MetadataFetch(NotLeaderForPartition | LeaderNotAvailable)) if !remaining.is_zero() => {
                std::thread::sleep(Duration::from_millis(50).min(remaining));
            }
            watermarks => return watermarks.with_context(|| format!("cannot read the watermarks of {topic}/{p}")),
        }
    }
}

/// Waits until every transaction with records below `stop` in partition `p` is decided (its last
/// stable offset reached `stop`): only then does a read_committed read up to `stop` see all that
/// committed there. A writer's transaction is decided within its commit; a crashed writer's is
/// aborted when the next one fences it, or by the broker after `transaction.timeout.ms`.
fn wait_until_stable<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    p: i32,
    stop: i64,
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let (_, stable) = consumer.fetch_watermarks(topic, p, remaining.max(Duration::from_millis(100)))?;
        if stable >= stop {
            return Ok(());
        }
        anyhow::ensure!(
            !remaining.is_zero(),
            "partition {p} of {topic} has an open transaction below offset {stop} (stable up to {stable}): \
             its end is not known yet"
        );
        std::thread::sleep(Duration::from_millis(50).min(remaining));
    }
}

/// Creates a topic unless it exists, with the broker's default replication factor.
pub async fn ensure_topic(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::error::RDKafkaErrorCode;
    let admin: AdminClient<DefaultClientContext> =
        client_config(brokers, "rsvp-admin").create().context("cannot create admin client")?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1));
    for result in admin.create_topics([&new], &AdminOptions::new()).await.context("cannot create a topic")? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("cannot create topic {t}: {e}"),
        }
    }
    Ok(())
}
