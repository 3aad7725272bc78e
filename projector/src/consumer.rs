//! Following the log: batches of committed events, applied in one PostgreSQL transaction each
//! together with the new positions. Positions live in `projector_offsets`, never in Kafka.
//!
//! A reader task decodes records into a bounded queue while the previous batch is applied; each
//! batch takes what is waiting (up to the batch size), so batches grow with the backlog and a
//! quiet log is applied event by event, at once.
//!
//! Poison events (undecodable, unknown type or version, or refused by the database even alone
//! after retries) are parked in the dead-letter topic with the reason, counted, and passed over;
//! with `--on-poison halt` the projector stops on them instead. Nothing is skipped silently.

use crate::metrics::Metrics;
use crate::projection;
use anyhow::Context;
use events::Envelope;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PoisonPolicy {
    /// Park the event in the dead-letter topic and go on.
    DeadLetter,
    /// Stop the projector: an operator looks first.
    Halt,
}

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub brokers: String,
    pub topic: String,
    pub name: String,
    /// Most events applied in one transaction.
    pub batch: usize,
    /// At most how long a batch the backlog does not fill waits for more events, in all (counted
    /// from its first event). Zero: apply what is waiting at once.
    pub linger: Duration,
    pub on_poison: PoisonPolicy,
}

impl ConsumerConfig {
    pub fn dead_letter_topic(&self) -> String {
        crate::redrive::dead_letter_topic(&self.topic)
    }
}

/// One event with its place in the log.
#[derive(Debug, Clone)]
pub struct Positioned {
    pub partition: i32,
    pub offset: i64,
    pub envelope: Envelope,
}

/// A record that cannot be projected, with everything needed to look at it later.
struct Poison {
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    reason: String,
}

enum Item {
    Event(Positioned),
    Poison(Poison),
}

pub async fn load_positions(pool: &PgPool, name: &str, topic: &str) -> anyhow::Result<HashMap<i32, i64>> {
    let rows: Vec<(i32, i64)> =
        sqlx::query_as("SELECT partition, next_offset FROM projector_offsets WHERE consumer = $1 AND topic = $2")
            .bind(name)
            .bind(topic)
            .fetch_all(pool)
            .await
            .context("cannot read projector positions")?;
    Ok(rows.into_iter().collect())
}

/// Follows the log until `stop` turns true: then returns once the batch being applied (if any)
/// is committed.
pub async fn run(
    pool: PgPool,
    config: ConsumerConfig,
    metrics: Arc<Metrics>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let dead_letters: FutureProducer = service_kit::kafka::client_config(&config.brokers, "rsvp-projector-dlq")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .create()
        .context("cannot create the dead-letter producer")?;
    service_kit::kafka::ensure_topic(&config.brokers, &config.dead_letter_topic(), 1).await?;
    let mut positions = load_positions(&pool, &config.name, &config.topic).await?;
    let (consumer, partitions) =
        service_kit::kafka::follow(&config.brokers, "rsvp-projector", &config.name, &config.topic, &positions)?;
    let consumer = Arc::new(consumer);
    metrics.following.store(true, std::sync::atomic::Ordering::Release);
    tracing::info!(topic = %config.topic, partitions = partitions.len(), "projector following the log");
    metrics.watch_lag(consumer.clone(), config.topic.clone(), partitions, &positions);

    // The reader decodes records into a queue while the previous batch is being applied.
    let (queue, mut waiting) = tokio::sync::mpsc::channel(config.batch.max(1));
    let _reader = AbortOnDrop(tokio::spawn(read(consumer.clone(), queue)));
    loop {
        let items = tokio::select! {
            items = next_batch(&mut waiting, config.batch, config.linger) => items,
            Ok(_) = stop.wait_for(|stop| *stop) => return Ok(()),
        };
        let Some(items) = items else {
            anyhow::bail!("the log reader stopped");
        };
        let mut next: BTreeMap<i32, i64> = BTreeMap::new();
        let mut events = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Item::Event(e) => {
                    next.insert(e.partition, e.offset + 1);
                    events.push(e);
                }
                Item::Poison(p) => {
                    next.insert(p.partition, p.offset + 1);
                    park(&dead_letters, &config, &metrics, p).await?;
                }
            }
        }
        let timer = metrics.batch_seconds.start_timer();
        let batch = tracing::info_span!("batch", events = events.len());
        apply_with_retries(&pool, &config, &metrics, &dead_letters, &events, &next).instrument(batch.clone()).await?;
        timer.observe_duration();
        // One line per event once its batch is committed (`RUST_LOG=projector=debug`), with the
        // correlation id its command got from its request's `X-Request-Id`.
        if tracing::enabled!(tracing::Level::DEBUG) {
            for e in &events {
                let m = &e.envelope.meta;
                tracing::debug!(
                    parent: &batch,
                    event_id = %m.event_id,
                    event_type = e.envelope.event_type(),
                    correlation_id = m.correlation_id.map(|c| c.to_string()).as_deref().unwrap_or(""),
                    partition = e.partition,
                    offset = e.offset,
                    "projected"
                );
            }
        }
        metrics.applied.inc_by(events.len() as u64);
        metrics.batch_events.observe(events.len() as f64);
        positions.extend(next.iter().map(|(&p, &o)| (p, o)));
        metrics.record_positions(&next);
    }
}

/// Ends a task when its handle goes: the reader stops with the loop that owns it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads the log in order and queues each record, decoded; stops when the queue's reader is gone.
async fn read(consumer: Arc<StreamConsumer>, queue: tokio::sync::mpsc::Sender<Item>) {
    loop {
        let item = classify(&next_message(&consumer).await);
        if queue.send(item).await.is_err() {
            return;
        }
    }
}

/// The next batch: waits for the first item, then takes every item already waiting, up to `max`.
/// Under load the backlog fills a batch and it goes at once; below that, what is waiting goes
/// after at most `linger` in all (counted from the first item, never per item: a steady trickle
/// must not hold a batch back until it is full). `None` once the queue is closed and empty.
async fn next_batch<T>(waiting: &mut tokio::sync::mpsc::Receiver<T>, max: usize, linger: Duration) -> Option<Vec<T>> {
    let mut items = vec![waiting.recv().await?];
    let deadline = tokio::time::Instant::now() + linger;
    while items.len() < max {
        match waiting.try_recv() {
            Ok(item) => items.push(item),
            Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => break,
            Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout_at(deadline, waiting.recv()).await {
                    Ok(Some(item)) => items.push(item),
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
    Some(items)
}

/// The next record of the log. A broker that is down or restarting is waited out: the client
/// reconnects by itself and goes on from where it was (anything read again meets the version guard).
/// No pause between errors: an outage queues one error per failed connection attempt, and pausing
/// on each would leave the projector draining that backlog long after the broker is back.
async fn next_message(consumer: &StreamConsumer) -> rdkafka::message::BorrowedMessage<'_> {
    let mut last_error = String::new();
    loop {
        match consumer.recv().await {
            Ok(message) => return message,
            Err(e) => {
                let error = e.to_string();
                if error != last_error {
                    tracing::warn!(%error, "reading the log failed; retrying");
                } else {
                    tracing::debug!(%error, "reading the log failed again");
                }
                last_error = error;
            }
        }
    }
}

/// Applies a batch. Passing faults of the database are waited out for as long as they last (they
/// say nothing about the events); a batch the read models refuse is applied again event by event,
/// and the events refused even alone are parked, their positions committed past them.
async fn apply_with_retries(
    pool: &PgPool,
    config: &ConsumerConfig,
    metrics: &Metrics,
    dead_letters: &FutureProducer,
    events: &[Positioned],
    next: &BTreeMap<i32, i64>,
) -> anyhow::Result<()> {
    let error = match apply_until_refused(pool, config, metrics, events, next).await {
        Ok(()) => return Ok(()),
        Err(refused) => refused,
    };
    if config.on_poison == PoisonPolicy::Halt {
        return Err(error.context("halting on a batch that cannot be projected"));
    }
    tracing::warn!(error = ?error, events = events.len(), "a batch was refused; applying it event by event");
    for event in events {
        let position = BTreeMap::from([(event.partition, event.offset + 1)]);
        if let Err(e) = apply_until_refused(pool, config, metrics, std::slice::from_ref(event), &position).await {
            let poison = Poison {
                partition: event.partition,
                offset: event.offset,
                key: Some(event.envelope.key().into_bytes()),
                payload: Some(event.envelope.data_json()),
                headers: event
                    .envelope
                    .cloudevents_headers()
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.into_bytes()))
                    .collect(),
                reason: format!("the read models refuse the event: {e:#}"),
            };
            park(dead_letters, config, metrics, poison).await?;
            apply_until_refused(pool, config, metrics, &[], &position).await?;
        }
    }
    // Positions of partitions whose events all went through one by one.
    apply_until_refused(pool, config, metrics, &[], next).await
}

/// Applies `events` and the positions after them, retrying with a capped backoff until it works or
/// the read models refuse the events ([`projection::is_refusal`]), which is the only error returned.
async fn apply_until_refused(
    pool: &PgPool,
    config: &ConsumerConfig,
    metrics: &Metrics,
    events: &[Positioned],
    next: &BTreeMap<i32, i64>,
) -> anyhow::Result<()> {
    let mut wait = Duration::from_millis(100);
    loop {
        let mut costs = projection::Costs::default();
        match projection::apply_batch_costed(pool, &config.name, &config.topic, events, next, &mut costs).await {
            Ok(_) => {
                metrics.record_costs(&costs);
                return Ok(());
            }
            Err(e) if projection::is_refusal(&e) => return Err(e),
            Err(e) => {
                metrics.retries.inc();
                tracing::warn!(error = ?e, retry_in = ?wait, "the database failed a batch; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn classify<M: Message>(message: &M) -> Item {
    match service_kit::kafka::envelope_of(message) {
        Ok(envelope) => Item::Event(Positioned { partition: message.partition(), offset: message.offset(), envelope }),
        Err(e) => Item::Poison(Poison {
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: message
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect())
                .unwrap_or_default(),
            reason: format!("undecodable event: {e}"),
        }),
    }
}

/// Writes the record to the dead-letter topic, with why and where it came from, and waits for
/// the broker's acknowledgement; with the halt policy, stops instead.
async fn park(
    producer: &FutureProducer,
    config: &ConsumerConfig,
    metrics: &Metrics,
    poison: Poison,
) -> anyhow::Result<()> {
    if config.on_poison == PoisonPolicy::Halt {
        anyhow::bail!(
            "halting on a poison event at partition {} offset {}: {}",
            poison.partition,
            poison.offset,
            poison.reason
        );
    }
    tracing::error!(partition = poison.partition, offset = poison.offset, reason = %poison.reason, "event parked in the dead-letter topic");
    let (partition, offset) = (poison.partition.to_string(), poison.offset.to_string());
    let mut headers =
        poison.headers.iter().fold(OwnedHeaders::new(), |h, (key, value)| h.insert(Header { key, value: Some(value) }));
    for (key, value) in [
        ("rsvp_dlq_reason", poison.reason.as_str()),
        ("rsvp_dlq_topic", config.topic.as_str()),
        ("rsvp_dlq_partition", partition.as_str()),
        ("rsvp_dlq_offset", offset.as_str()),
        ("rsvp_dlq_consumer", config.name.as_str()),
    ] {
        headers = headers.insert(Header { key, value: Some(value) });
    }
    let topic = config.dead_letter_topic();
    let mut record: FutureRecord<'_, [u8], [u8]> = FutureRecord::to(&topic).headers(headers);
    if let Some(key) = &poison.key {
        record = record.key(key.as_slice());
    }
    if let Some(payload) = &poison.payload {
        record = record.payload(payload.as_slice());
    }
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)
        .context("cannot write to the dead-letter topic")?;
    metrics.dead_letters.inc();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    #[tokio::test]
    async fn a_backlog_that_fills_a_batch_is_taken_at_once_and_whole() {
        let (queue, mut waiting) = mpsc::channel(100);
        for i in 0..100 {
            queue.send(i).await.unwrap();
        }
        // A linger of an hour: the test would hang if a full batch waited for anything.
        let batch = next_batch(&mut waiting, 60, Duration::from_secs(3600)).await.unwrap();
        assert_eq!(batch, (0..60).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_steady_trickle_does_not_hold_a_batch_back_until_it_is_full() {
        let (queue, mut waiting) = mpsc::channel(1000);
        // One event every 5 ms, 1000 in all: always another within the linger of 20 ms.
        tokio::spawn(async move {
            for i in 0..1000 {
                if queue.send(i).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let batch = next_batch(&mut waiting, 1000, Duration::from_millis(20)).await.unwrap();
        assert!(batch.len() < 1000, "the batch waited for the whole trickle: {} events", batch.len());
    }

    #[tokio::test]
    async fn without_linger_a_batch_is_what_is_waiting() {
        let (queue, mut waiting) = mpsc::channel(10);
        for i in 0..3 {
            queue.send(i).await.unwrap();
        }
        assert_eq!(next_batch(&mut waiting, 1000, Duration::ZERO).await, Some(vec![0, 1, 2]));
        drop(queue);
        assert_eq!(next_batch(&mut waiting, 1000, Duration::ZERO).await, None);
    }
}
