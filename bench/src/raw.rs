//! The raw baseline of the write path: rdkafka (the crate and settings the command API's writer
//! uses) appending the same records, with nothing of rsvp around it: no HTTP, no deciding, no
//! state. Callers hand it a record and wait for its commit, exactly as a request waits on the
//! writer; one thread takes everything waiting (at most [`MAX_BATCH`], as the writer does), writes
//! it in one transaction and answers after the commit (group commit).
//!
//! It polls a `BaseProducer` itself, so `commit_transaction`'s flush returns as soon as the last
//! delivery report is in (what rdkafka can do, not a 100 ms poll of a producer thread).

use chrono::{SubsecRound, Utc};
use events::{Envelope, TenantId};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

const MAX_BATCH: usize = 1024;
const TX_TIMEOUT: Duration = Duration::from_secs(30);

type Job = (Envelope, oneshot::Sender<Result<(), String>>);

#[derive(Clone)]
pub struct RawWriter {
    tx: mpsc::Sender<Job>,
    next: Arc<AtomicUsize>,
    tenant: TenantId,
}

impl RawWriter {
    pub fn open(brokers: &str, topic: &str) -> anyhow::Result<Self> {
        let producer: BaseProducer = service_kit::kafka::client_config(brokers, "rsvp-bench-raw")
            .set("transactional.id", format!("rsvp-bench-raw-{}", Uuid::new_v4().simple()))
            .set("partitioner", "murmur2_random")
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("transaction.timeout.ms", "60000")
            .create()?;
        producer.init_transactions(TX_TIMEOUT)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let topic = topic.to_owned();
        std::thread::Builder::new().name("raw-writer".into()).spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let result = commit(&producer, &topic, batch.iter().map(|(e, _)| e)).map_err(|e| e.to_string());
                if result.is_err() {
                    let _ = producer.abort_transaction(TX_TIMEOUT);
                }
                for (_, reply) in batch {
                    let _ = reply.send(result.clone());
                }
            }
        })?;
        Ok(Self { tx, next: Arc::new(AtomicUsize::new(0)), tenant: TenantId::from_uuid(Uuid::now_v7()) })
    }

    /// Appends one `InviteCreated` like the ones the command API writes for a create, and waits
    /// for its commit.
    pub async fn append_one(&self) -> anyhow::Result<()> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let envelope = rsvp_tests::load::created_envelope(self.tenant, Utc::now().trunc_subsecs(6), i);
        let (reply, answer) = oneshot::channel();
        self.tx.send((envelope, reply)).map_err(|_| anyhow::anyhow!("the raw writer stopped"))?;
        answer.await?.map_err(|e| anyhow::anyhow!(e))
    }
}

fn commit<'a>(
    producer: &BaseProducer,
    topic: &str,
    records: impl Iterator<Item = &'a Envelope>,
) -> Result<(), KafkaError> {
    producer.begin_transaction()?;
    for envelope in records {
        let key = envelope.key();
        let payload = envelope.data_json();
        let mut record = BaseRecord::to(topic)
            .key(&key)
            .payload(&payload)
            .headers(service_kit::kafka::headers_of(envelope))
            .timestamp(envelope.meta.occurred_at.timestamp_millis());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }
    // rdkafka 0.39's `commit_transaction` flushes by polling in 100 ms slices that run to their
    // end; the command API waits for its deliveries first (see its writer), so the baseline does
    // too: it polls the delivery reports itself until none is in flight, then commits.
    while producer.in_flight_count() > 0 {
        producer.poll(Duration::from_millis(1));
    }
    producer.commit_transaction(TX_TIMEOUT)
}

/// Closed loop, as `oha -c` does: `connections` callers, each appending and waiting, for
/// `duration`. Returns appends per second.
pub async fn saturate(writer: &RawWriter, connections: usize, duration: Duration) -> anyhow::Result<f64> {
    let started = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..connections)
        .map(|_| {
            let (writer, done) = (writer.clone(), done.clone());
            tokio::spawn(async move {
                while started.elapsed() < duration {
                    writer.append_one().await?;
                    if started.elapsed() <= duration {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for c in callers {
        c.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / duration.as_secs_f64())
}

/// Open loop at `rate` appends per second for `duration`: each append is due at its slot and its
/// latency runs from that slot to its commit (no coordinated omission: a slow commit delays
/// nobody's start). Returns the sorted latencies in seconds.
pub async fn at_rate(writer: &RawWriter, rate: f64, duration: Duration) -> anyhow::Result<Vec<f64>> {
    let started = tokio::time::Instant::now();
    let total = (rate * duration.as_secs_f64()) as usize;
    let mut pending = Vec::with_capacity(total);
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due).await;
        let writer = writer.clone();
        pending.push(tokio::spawn(async move {
            writer.append_one().await?;
            anyhow::Ok(due.elapsed().as_secs_f64())
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for p in pending {
        latencies.push(p.await??);
    }
    latencies.sort_by(f64::total_cmp);
    Ok(latencies)
}
