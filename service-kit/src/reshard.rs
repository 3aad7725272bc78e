//! `rsvp-admin reshard`: copies an events topic written before writer shards (each event on its
//! stream's partition) into a new topic partitioned by tenant (every event of a tenant on its
//! shard, `events::shard_of`), the layout the writer keeps snapshots of.
//!
//! Order: a stream's events sit on one partition of the old topic and are read there in order,
//! and all go to one partition of the new one through an idempotent producer (which keeps the
//! order of what it sends to a partition), so each stream keeps its order. The events of a tenant
//! from different old partitions could interleave in any order for the writer and the projector,
//! but `rsvp-audit` requires a tenant chain's numbers (`ce_tenantseq`) to ascend in a partition
//! (anything else is a reordering it reports), so the copy takes each tenant's events in the
//! order of their numbers (a merge of the old partitions; see [`Merge`]). The checkpoints of `<old>.audit` go to `<new>.audit`, partition for
//! partition.
//!
//! The copy is then read back and checked: the same events per stream in the same order, every
//! one in its tenant's shard. Records the tool cannot read a tenant from (none, in a log the
//! writer wrote) are copied to their key's partition and counted.

use crate::kafka::{client_config, topic_partitions};
use anyhow::Context as _;
use rdkafka::message::{Headers as _, Message as _, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use std::collections::HashMap;
use std::hash::{Hash as _, Hasher as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3600);

/// What a reshard copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resharded {
    pub events: u64,
    pub streams: usize,
    pub tenants: usize,
    pub partitions: usize,
    pub checkpoints: u64,
    /// Records without a readable tenant, copied to their key's partition.
    pub unplaced: u64,
}

/// Each stream's records in order: (how many, a digest of their event ids in order).
type Streams = HashMap<Vec<u8>, (u64, u64)>;

fn note(streams: &mut Streams, key: &[u8], id: &[u8]) {
    let (count, digest) = streams.entry(key.to_vec()).or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (*digest, id).hash(&mut h);
    *count += 1;
    *digest = h.finish();
}

fn header<'a>(m: &'a impl rdkafka::message::Message, name: &str) -> Option<&'a [u8]> {
    m.headers()?.iter().find(|h| h.key == name)?.value
}

fn tenant_of(m: &impl rdkafka::message::Message) -> Option<events::TenantId> {
    events::TenantId::parse(std::str::from_utf8(header(m, "ce_tenantid")?).ok()?).ok()
}

/// Counts failed deliveries: a copy with one is refused.
#[derive(Default)]
struct Failures(AtomicU64);

impl ClientContext for Failures {}

impl ProducerContext for Failures {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            tracing::error!(error = %e, "a record was not copied");
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn producer(brokers: &str) -> anyhow::Result<ThreadedProducer<Failures>> {
    client_config(brokers, "rsvp-admin-reshard")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .set("compression.type", "lz4")
        .create_with_context(Failures::default())
        .context("cannot create the producer")
}

fn send(producer: &ThreadedProducer<Failures>, mut record: BaseRecord<'_, [u8], [u8]>) -> anyhow::Result<()> {
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((rdkafka::error::KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(Duration::from_millis(2));
            }
            Err((e, _)) => return Err(e).context("cannot copy a record"),
        }
    }
}

fn owned_headers(m: &impl rdkafka::message::Message) -> OwnedHeaders {
    m.headers()
        .into_iter()
        .flat_map(|h| h.iter())
        .fold(OwnedHeaders::new(), |owned, h| owned.insert(rdkafka::message::Header { key: h.key, value: h.value }))
}

/// Creates `topic` (refusing one that holds records) with infinite retention, like the events
/// topic of a deployment.
async fn create_empty(brokers: &str, topic: &str, partitions: i32) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::types::RDKafkaErrorCode;
    if let Ok(existing) = topic_partitions(brokers, topic, Duration::from_secs(10)) {
        let consumer: BaseConsumer = client_config(brokers, "rsvp-admin-reshard").create()?;
        for p in existing {
            let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(30))?;
            anyhow::ensure!(high == low, "topic {topic} already holds records: reshard copies into a new topic");
        }
    }
    let admin: AdminClient<DefaultClientContext> = client_config(brokers, "rsvp-admin").create()?;
    let new = NewTopic::new(topic, partitions, TopicReplication::Fixed(-1))
        .set("retention.ms", "-1")
        .set("retention.bytes", "-1");
    for result in admin.create_topics([&new], &AdminOptions::new()).await.context("cannot create a topic")? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => anyhow::bail!("cannot create topic {t}: {e}"),
        }
    }
    Ok(())
}

/// Copies `from` into a new topic `to` of `partitions` partitions (default: as many as `from`)
/// partitioned by tenant, with its checkpoints, and checks the copy.
pub async fn reshard(brokers: &str, from: &str, to: &str, partitions: Option<usize>) -> anyhow::Result<Resharded> {
    anyhow::ensure!(from != to, "--to must name a new topic");
    let source = topic_partitions(brokers, from, Duration::from_secs(30)).with_context(|| format!("topic {from}"))?;
    let n = partitions.unwrap_or(source.len());
    anyhow::ensure!(n > 0, "--partitions must be at least 1");
    create_empty(brokers, to, n as i32).await?;
    let (audit_from, audit_to) = (format!("{from}.audit"), format!("{to}.audit"));
    let audit_partitions = topic_partitions(brokers, &audit_from, Duration::from_secs(10)).ok();
    if let Some(p) = &audit_partitions {
        create_empty(brokers, &audit_to, p.len() as i32).await?;
    }

    let (brokers, from, to) = (brokers.to_owned(), from.to_owned(), to.to_owned());
    tokio::task::spawn_blocking(move || copy_and_check(&brokers, &from, &to, n, audit_partitions.is_some()))
        .await
        .context("the copy stopped")?
}

/// A record read from the old topic, waiting for its turn.
struct Pending {
    key: Vec<u8>,
    payload: Option<Vec<u8>>,
    headers: OwnedHeaders,
    timestamp: Option<i64>,
    tenant: Option<events::TenantId>,
    /// Its tenant chain's number (`ce_tenantseq`); `None` before chaining.
    seq: Option<u64>,
}

/// Sends what may go now: a tenant's chained events in the order of their numbers, which are
/// 1, 2, 3, ... without a gap (each old partition holds a tenant's events in that order, so the
/// next one is always at the head of some partition's queue).
struct Merge {
    queues: std::collections::BTreeMap<i32, std::collections::VecDeque<Pending>>,
    next: HashMap<events::TenantId, u64>,
}

impl Merge {
    fn ready(&mut self, r: &Pending) -> bool {
        match (r.tenant, r.seq) {
            (Some(tenant), Some(seq)) => {
                let next = self.next.entry(tenant).or_insert(1);
                if seq > *next {
                    return false;
                }
                // A number given twice goes out as it is (rsvp-audit names it); never back.
                *next = (*next).max(seq + 1);
                true
            }
            _ => true,
        }
    }

    fn drain(&mut self, mut send: impl FnMut(Pending) -> anyhow::Result<()>) -> anyhow::Result<()> {
        loop {
            let mut moved = false;
            let partitions: Vec<i32> = self.queues.keys().copied().collect();
            for p in partitions {
                while let Some(front) = self.queues.get_mut(&p).and_then(|q| q.pop_front()) {
                    if self.ready(&front) {
                        send(front)?;
                        moved = true;
                    } else {
                        self.queues.get_mut(&p).expect("the queue is there").push_front(front);
                        break;
                    }
                }
            }
            if !moved {
                return Ok(());
            }
        }
    }
}

/// The end of every partition of `topic`.
fn ends(brokers: &str, topic: &str) -> anyhow::Result<Vec<i64>> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let consumer: BaseConsumer = client_config(brokers, "rsvp-admin-reshard").create()?;
    topic_partitions(brokers, topic, Duration::from_secs(30))?
        .into_iter()
        .map(|p| Ok(consumer.fetch_watermarks(topic, p, Duration::from_secs(30))?.1))
        .collect()
}

fn copy_and_check(brokers: &str, from: &str, to: &str, n: usize, audit: bool) -> anyhow::Result<Resharded> {
    let producer = producer(brokers)?;
    let ends_before = ends(brokers, from)?;
    let mut copied = Streams::new();
    let mut tenants = std::collections::HashSet::new();
    let (mut events, mut unplaced) = (0u64, 0u64);
    let mut merge = Merge { queues: Default::default(), next: HashMap::new() };
    let mut emit = |r: Pending| {
        let partition = match r.tenant {
            Some(tenant) => events::shard_of(tenant, n),
            None => events::shard::partition_of_key(&r.key, n),
        };
        let mut record = BaseRecord::to(to).key(r.key.as_slice()).partition(partition).headers(r.headers);
        if let Some(payload) = &r.payload {
            record = record.payload(payload.as_slice());
        }
        if let Some(ts) = r.timestamp {
            record = record.timestamp(ts);
        }
        send(&producer, record)
    };
    crate::kafka::read_to_end(brokers, from, &HashMap::new(), TIMEOUT, |p, _, m| {
        let key = m.key().unwrap_or_default();
        let tenant = tenant_of(m);
        match tenant {
            Some(tenant) => {
                tenants.insert(tenant);
            }
            None => unplaced += 1,
        }
        note(&mut copied, key, header(m, "ce_id").unwrap_or_default());
        events += 1;
        let seq = header(m, "ce_tenantseq").and_then(|s| std::str::from_utf8(s).ok()?.parse().ok());
        let pending = Pending {
            key: key.to_vec(),
            payload: m.payload().map(<[u8]>::to_vec),
            headers: owned_headers(m),
            timestamp: m.timestamp().to_millis(),
            tenant,
            seq,
        };
        merge.queues.entry(p).or_default().push_back(pending);
        merge.drain(&mut emit)
    })?;
    if let Some(stuck) = merge.queues.values().find_map(|q| q.front()) {
        anyhow::bail!(
            "tenant {:?}: its chain has no event numbered {:?} (the next after what was copied); nothing after it \
             was copied",
            stuck.tenant,
            stuck.tenant.and_then(|t| merge.next.get(&t))
        );
    }
    let mut checkpoints = 0u64;
    if audit {
        let (audit_from, audit_to) = (format!("{from}.audit"), format!("{to}.audit"));
        crate::kafka::read_to_end(brokers, &audit_from, &HashMap::new(), TIMEOUT, |p, _, m| {
            checkpoints += 1;
            let mut record = BaseRecord::to(&audit_to).key(m.key().unwrap_or_default()).partition(p);
            record = record.headers(owned_headers(m)).payload(m.payload().unwrap_or_default());
            if let Some(ts) = m.timestamp().to_millis() {
                record = record.timestamp(ts);
            }
            send(&producer, record)
        })?;
    }
    producer.flush(TIMEOUT).context("cannot finish the copy")?;
    anyhow::ensure!(
        ends(brokers, from)? == ends_before,
        "events were appended to {from} during the copy (a command API still writing to it?): stop every writer, \
         delete {to} and copy again"
    );
    let failed = producer.context().0.load(Ordering::Relaxed);
    anyhow::ensure!(failed == 0, "{failed} records were not copied: the copy in {to} is incomplete");

    // Read back: every stream's events, in their order, each in its tenant's shard.
    let mut read = Streams::new();
    let mut misplaced = 0u64;
    crate::kafka::read_to_end(brokers, to, &HashMap::new(), TIMEOUT, |p, _, m| {
        if tenant_of(m).is_some_and(|t| events::shard_of(t, n) != p) {
            misplaced += 1;
        }
        note(&mut read, m.key().unwrap_or_default(), header(m, "ce_id").unwrap_or_default());
        Ok(())
    })?;
    anyhow::ensure!(misplaced == 0, "{misplaced} events of {to} are outside their tenant's shard");
    let differing =
        copied.iter().filter(|(k, v)| read.get(*k) != Some(v)).count() + read.len().saturating_sub(copied.len());
    anyhow::ensure!(differing == 0, "{differing} streams of {to} differ from {from} (count or order of their events)");
    Ok(Resharded { events, streams: copied.len(), tenants: tenants.len(), partitions: n, checkpoints, unplaced })
}
