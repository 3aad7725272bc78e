//! Rebuilding the writer's state when it takes the lease: from each shard's snapshot and the log
//! after it (see [`crate::snapshot`]), or from the whole log.
//!
//! Readers, two per core and each with some of the partitions, poll Kafka and decode (JSON is
//! most of the cost); one thread folds the events and their hash chains into the state in log
//! order per partition, which is all the order the state needs (every stream lives in one
//! partition, and a reader sends its partitions' events in their order).

use crate::chains::Observed;
use crate::snapshot::{Covered, Stored};
use crate::state::WriterState;
use anyhow::Context as _;
use events::Envelope;
use std::collections::HashMap;
use std::sync::mpsc::SyncSender;
use std::time::{Duration, Instant};

const CHUNK: usize = 2048;
const TIMEOUT: Duration = Duration::from_secs(1800);

type Chunk = Vec<(Envelope, Observed)>;

/// The state a start read, and where it read to.
pub struct Rebuilt {
    pub state: WriterState,
    /// The topic's partition count.
    pub partitions: usize,
    /// Every event is in its tenant's shard (`events::shard_of`): the writer places new ones so
    /// and keeps snapshots. When not (a topic written before shards, until `rsvp-admin reshard`
    /// copies it), new events go where the old ones of their stream are: the record key's
    /// partition.
    pub by_tenant: bool,
    /// The last record read or restored, per partition that has one.
    pub last: HashMap<i32, Covered>,
    /// Events read from the log (all of them without snapshots, the tails with).
    pub read: u64,
    /// Per partition, the events read after its snapshot (or from the start without one).
    pub tails: HashMap<i32, u64>,
    /// Tenants restored from snapshots.
    pub restored: usize,
    /// Snapshots were given and did not match the log (they should be deleted).
    pub snapshots_refused: bool,
}

/// A shard's state kept up to date beside its log by an instance that does not own it (a warm
/// standby, as Kafka Streams' standby replicas): taking the shard over then reads only the records
/// after `last`.
pub struct Warm {
    pub state: WriterState,
    /// The last record folded in, per partition that has one.
    pub last: HashMap<i32, Covered>,
    /// Records folded since the snapshot it started from: the next owner's snapshot is due that
    /// much sooner.
    pub since_snapshot: u64,
}

/// Where a start begins: the snapshots (none: the log whole), or a warm standby's state.
pub enum From {
    Snapshots(Vec<Stored>),
    Warm(Warm),
}

/// Reads the state held in `partitions` of `topic` (of `count` partitions, asked of the cluster):
/// every partition for the writer of a whole topic, one for a shard's owner. From `snapshots` and
/// the log after them when they all match the log, or else from the start of those partitions
/// (read_committed). An event this version cannot read is a bug to fix, not something to skip:
/// the state would be wrong, so the writer refuses to start.
pub fn read_state(
    brokers: &str,
    topic: &str,
    count: usize,
    partitions: &[i32],
    master: &service_kit::vault::MasterKey,
    snapshots: Vec<Stored>,
) -> anyhow::Result<Rebuilt> {
    let snapshots: Vec<Stored> = snapshots.into_iter().filter(|s| partitions.contains(&s.partition)).collect();
    let mut refused = false;
    if !snapshots.is_empty() {
        match read(brokers, topic, master, count, partitions, From::Snapshots(snapshots)) {
            Ok(rebuilt) if rebuilt.by_tenant => return Ok(rebuilt),
            Ok(_) => tracing::warn!("events outside their tenant's shard after the snapshots; reading the log whole"),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "snapshots not used; reading the log whole"),
        }
        refused = true;
    }
    let mut rebuilt = read(brokers, topic, master, count, partitions, From::Snapshots(Vec::new()))?;
    rebuilt.snapshots_refused = refused;
    Ok(rebuilt)
}

/// [`read_state`] from a warm standby's state and the log after it; an error when it does not
/// match the log (the caller then reads as without one).
pub fn read_after_warm(
    brokers: &str,
    topic: &str,
    count: usize,
    partitions: &[i32],
    master: &service_kit::vault::MasterKey,
    warm: Warm,
) -> anyhow::Result<Rebuilt> {
    let since_snapshot = warm.since_snapshot;
    let mut rebuilt = read(brokers, topic, master, count, partitions, From::Warm(warm))?;
    anyhow::ensure!(rebuilt.by_tenant, "events outside their tenant's shard after the standby's state");
    for p in partitions {
        *rebuilt.tails.entry(*p).or_default() += since_snapshot;
    }
    Ok(rebuilt)
}

/// Folds one event read back from the log into `state`, with its hash chain. `false` when
/// `check` and it does not continue its tenant's chain from where `state` holds it.
fn fold(
    state: &mut WriterState,
    secrets: &events::Secrets,
    mut envelope: Envelope,
    observed: Observed,
    check: bool,
) -> bool {
    let continues = !check || state.chains.continues(&envelope.meta, &observed);
    state.chains.observe(&envelope.meta, observed);
    // Invites from before blind indexes match like every other.
    if let events::DomainEvent::Invite(event) = &mut envelope.event {
        if events::personal::needs_index(event) {
            events::personal::index_legacy(event, &secrets.for_tenant(envelope.meta.tenant_id));
        }
    }
    state.apply_owned(envelope);
    continues
}

/// Keeps `warm` (shard `p`'s state, read up to `warm.last`) up to date with the records committed
/// to the partition after it, until `go_on()` says to stop (`Ok`). With `snapshot`, the record it
/// names is read first and must be the one named (else `Err`). `caught_up()` is called each time
/// the end of the partition is reached. An error leaves `warm` not to be used (it may be behind a
/// record it could not fold); errors of the connection are waited out, not errors.
pub fn follow(
    brokers: &str,
    topic: &str,
    p: i32,
    master: &service_kit::vault::MasterKey,
    warm: &mut Warm,
    snapshot: Option<Covered>,
    caught_up: &dyn Fn(),
    go_on: &dyn Fn() -> bool,
) -> anyhow::Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::error::KafkaError;
    use rdkafka::message::Message as _;
    use rdkafka::types::RDKafkaErrorCode;
    let consumer: BaseConsumer<service_kit::kafka::EofIsNotAnError> =
        service_kit::kafka::client_config(brokers, "rsvp-command-api-standby")
            .set("group.id", "rsvp-writer-standby")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "error")
            .set("fetch.wait.max.ms", "50")
            .create_with_context(service_kit::kafka::EofIsNotAnError)
            .context("cannot create the standby's consumer")?;
    let offset = match (snapshot, warm.last.get(&p)) {
        (Some(c), _) => rdkafka::Offset::Offset(c.offset),
        (None, Some(c)) => rdkafka::Offset::Offset(c.offset + 1),
        (None, None) => rdkafka::Offset::Beginning,
    };
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment.add_partition_offset(topic, p, offset)?;
    consumer.assign(&assignment).context("cannot assign the standby's partition")?;
    let secrets = master.secrets();
    let mut unchecked = snapshot;
    let followed = (|| {
        while go_on() {
            let message = match consumer.poll(Duration::from_millis(50)) {
                None => continue,
                Some(Ok(message)) => message,
                Some(Err(KafkaError::PartitionEOF(_))) => {
                    caught_up();
                    continue;
                }
                // The partition no longer holds the record to read next (retention, a topic made
                // anew): this state cannot be continued.
                Some(Err(e @ KafkaError::MessageConsumption(RDKafkaErrorCode::AutoOffsetReset)))
                | Some(Err(e @ KafkaError::MessageConsumption(RDKafkaErrorCode::OffsetOutOfRange))) => {
                    return Err(e).with_context(|| format!("partition {p} as a standby"));
                }
                // A broker away: librdkafka reconnects and goes on where it was.
                Some(Err(e)) => {
                    tracing::debug!(shard = p, error = %e, "standby's consumer");
                    continue;
                }
            };
            let o = message.offset();
            let headers = service_kit::kafka::record_headers(&message);
            let payload = message.payload().unwrap_or_default();
            let envelope = service_kit::kafka::envelope_of_parts(&headers, payload)
                .with_context(|| format!("undecodable event at partition {p} offset {o}"))?;
            let event_id = envelope.meta.event_id;
            if let Some(expected) = unchecked.take() {
                anyhow::ensure!(
                    o == expected.offset && event_id == expected.event_id,
                    "the snapshot of partition {p} names event {} at offset {}, the log has event {event_id} at \
                     offset {o}",
                    expected.event_id,
                    expected.offset
                );
                continue;
            }
            let observed = Observed::of_record(headers.iter().copied(), payload);
            anyhow::ensure!(
                fold(&mut warm.state, &secrets, envelope, observed, true),
                "event {event_id} at partition {p} offset {o} does not continue its tenant's chain"
            );
            warm.last.insert(p, Covered { offset: o, event_id });
            warm.since_snapshot += 1;
        }
        Ok(())
    })();
    let stopping = Instant::now();
    drop(consumer);
    tracing::info!(shard = p, closed_in = ?stopping.elapsed(), "standby stopped following");
    followed
}

fn read(
    brokers: &str,
    topic: &str,
    master: &service_kit::vault::MasterKey,
    count: usize,
    partitions: &[i32],
    from: From,
) -> anyhow::Result<Rebuilt> {
    let started = Instant::now();
    let (mut state, restored, covered) = match from {
        From::Snapshots(snapshots) => {
            let (state, restored) = restored_state(master, &snapshots)?;
            if !snapshots.is_empty() {
                tracing::info!(snapshots = snapshots.len(), tenants = restored, elapsed = ?started.elapsed(), "snapshots restored");
            }
            (state, restored, snapshots.iter().map(|s| (s.partition, s.covered)).collect())
        }
        From::Warm(warm) => {
            let tenants = warm.state.tenants.len();
            (warm.state, tenants, warm.last)
        }
    };
    let start: HashMap<i32, i64> = covered.iter().map(|(p, c)| (*p, c.offset)).collect();
    // Two per core: a reader also waits for its fetches (measured on 2 cores, 300,000 events:
    // one reader 4.4 s, two 2.8-4.4 s, four 2.8-4.1 s).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let readers = (cores * 2).clamp(2, 8).min(partitions.len());
    let secrets = master.secrets();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(16);
    // After a snapshot (or a standby's state), each tenant's first event read must continue the
    // chain head it holds (and every next one the one before, as a shard holds its tenants'
    // events in order): a state that is not exactly the log up to where it says fails here.
    let check_chains = !covered.is_empty();
    let folder = std::thread::Builder::new()
        .name("rsvp-writer-fold".into())
        .spawn(move || {
            let mut broken = None;
            for chunk in rx {
                for (envelope, observed) in chunk {
                    let event_id = envelope.meta.event_id;
                    if !fold(&mut state, &secrets, envelope, observed, check_chains && broken.is_none()) {
                        broken = Some(event_id);
                    }
                }
            }
            (state, broken)
        })
        .context("cannot start the folding thread")?;
    let read = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..readers)
            .map(|r| {
                let mine: Vec<i32> = partitions.iter().copied().skip(r).step_by(readers).collect();
                let (tx, start, covered) = (tx.clone(), &start, &covered);
                std::thread::Builder::new()
                    .name(format!("rsvp-writer-read-{r}"))
                    .spawn_scoped(scope, move || read_partitions(brokers, topic, &mine, count, start, covered, tx))
                    .context("cannot start a reading thread")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("a reading thread panicked"))?)
            .collect::<anyhow::Result<Vec<Read>>>()
    });
    drop(tx);
    let (state, broken) = folder.join().map_err(|_| anyhow::anyhow!("the folding thread panicked"))?;
    if let Some(event) = broken {
        anyhow::bail!(
            "event {event} does not continue its tenant's chain from where the snapshot (or standby) leaves it"
        );
    }
    let mut rebuilt = Rebuilt {
        state,
        partitions: count,
        by_tenant: true,
        last: covered,
        read: 0,
        tails: HashMap::new(),
        restored,
        snapshots_refused: false,
    };
    let (mut off_shard, mut off_stream) = (0, 0);
    for r in read? {
        off_shard += r.off_shard;
        off_stream += r.off_stream;
        rebuilt.read += r.tails.values().sum::<u64>();
        rebuilt.last.extend(r.last);
        rebuilt.tails.extend(r.tails);
    }
    rebuilt.by_tenant = off_shard == 0;
    // Placing new events by stream is right only where every stream already is on its key's
    // partition; anywhere else (partitions added to the topic, a writer of another placement
    // wrote to it) a stream would be split over two partitions, and its order lost.
    anyhow::ensure!(
        rebuilt.by_tenant || off_stream == 0,
        "the topic's events are placed neither by tenant ({off_shard} outside their tenant's shard) nor by \
         stream ({off_stream} outside their stream's partition): partitions were added, or writers of both \
         placements wrote to it. No placement of new events keeps every stream on one partition, so the writer \
         does not start; `rsvp-admin reshard` copies the topic into one placed by tenant"
    );
    Ok(rebuilt)
}

/// The state the snapshots hold, and how many tenants that is. They are opened on every core,
/// then their segments decoded on every core while this thread puts each decoded one into the
/// state (so one large shard's take-over uses every core too).
pub fn restored_state(
    master: &service_kit::vault::MasterKey,
    snapshots: &[Stored],
) -> anyhow::Result<(WriterState, usize)> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let mut state = WriterState::default();
    if snapshots.is_empty() {
        return Ok((state, 0));
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let opened: Vec<anyhow::Result<Vec<u8>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = snapshots
            .chunks(snapshots.len().div_ceil(cores))
            .map(|some| scope.spawn(move || some.iter().map(|s| crate::snapshot::open(master, s)).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))).collect()
    });
    let mut jobs: Vec<(i32, crate::snapshot::Segment<'_>)> = Vec::new();
    for (s, opened) in snapshots.iter().zip(&opened) {
        let opened = opened.as_ref().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let segments =
            crate::snapshot::segments(opened).with_context(|| format!("snapshot of partition {}", s.partition))?;
        jobs.extend(segments.into_iter().map(|segment| (s.partition, segment)));
    }
    crate::snapshot::reserve(&mut state, jobs.iter().map(|(_, s)| s.streams).sum());
    let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::sync_channel(cores * 2);
    let restored = std::thread::scope(|scope| {
        for _ in 0..cores.min(jobs.len()) {
            let (tx, jobs, next, failed) = (tx.clone(), &jobs, &next, &failed);
            scope.spawn(move || {
                let mut buffer = Vec::new();
                while !failed.load(Ordering::Relaxed) {
                    let Some((partition, segment)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) else { break };
                    let decoded = crate::snapshot::decode(segment, &mut buffer)
                        .with_context(|| format!("snapshot of partition {partition}"));
                    if decoded.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    if tx.send(decoded).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut tenants = 0;
        for decoded in rx {
            let parts = decoded?;
            tenants += parts.len();
            crate::snapshot::restore(&mut state, parts);
        }
        anyhow::Ok(tenants)
    });
    Ok((state, restored?))
}

/// What one reader found.
struct Read {
    last: HashMap<i32, Covered>,
    tails: HashMap<i32, u64>,
    /// Events outside their tenant's shard.
    off_shard: u64,
    /// Events outside their stream's partition (the placement before shards).
    off_stream: u64,
}

/// Reads `partitions` to their end, from their snapshot's last record (`start`, which must be the
/// one `covered` names) or their first, sending their events in chunks to the folding thread.
fn read_partitions(
    brokers: &str,
    topic: &str,
    partitions: &[i32],
    count: usize,
    start: &HashMap<i32, i64>,
    covered: &HashMap<i32, Covered>,
    tx: SyncSender<Chunk>,
) -> anyhow::Result<Read> {
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut found = Read { last: HashMap::new(), tails: HashMap::new(), off_shard: 0, off_stream: 0 };
    // Partitions whose snapshot's last record is still to be found (it is read first).
    let mut unchecked: HashMap<i32, Covered> = partitions.iter().filter_map(|p| Some((*p, *covered.get(p)?))).collect();
    service_kit::kafka::read_partitions_from(brokers, topic, partitions, start, TIMEOUT, |p, o, message| {
        use rdkafka::message::Message as _;
        let headers = service_kit::kafka::record_headers(message);
        let payload = message.payload().unwrap_or_default();
        let envelope = service_kit::kafka::envelope_of_parts(&headers, payload)
            .with_context(|| format!("undecodable event at partition {p} offset {o}"))?;
        if let Some(expected) = unchecked.remove(&p) {
            anyhow::ensure!(
                o == expected.offset && envelope.meta.event_id == expected.event_id,
                "the snapshot of partition {p} names event {} at offset {}, the log has event {} at offset {o}",
                expected.event_id,
                expected.offset,
                envelope.meta.event_id
            );
            return Ok(());
        }
        if events::shard_of(envelope.meta.tenant_id, count) != p {
            found.off_shard += 1;
        }
        if events::shard::partition_of_key(envelope.key().as_bytes(), count) != p {
            found.off_stream += 1;
        }
        found.last.insert(p, Covered { offset: o, event_id: envelope.meta.event_id });
        *found.tails.entry(p).or_default() += 1;
        chunk.push((envelope, Observed::of_record(headers.iter().copied(), payload)));
        if chunk.len() >= CHUNK {
            tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))).context("the folding thread stopped")?;
        }
        Ok(())
    })?;
    if let Some((p, c)) = unchecked.into_iter().next() {
        anyhow::bail!("the log's partition {p} no longer holds offset {} that its snapshot names", c.offset);
    }
    if !chunk.is_empty() {
        tx.send(chunk).context("the folding thread stopped")?;
    }
    Ok(found)
}

/// How the events of a topic of `count` partitions are placed, read from their headers and keys
/// only (no event is decoded, no state kept): whether every event is in its tenant's shard.
pub fn placed_by_tenant(brokers: &str, topic: &str, count: usize) -> anyhow::Result<(bool, u64)> {
    let partitions: Vec<i32> = (0..count as i32).collect();
    let (mut events, mut off_shard) = (0u64, 0u64);
    service_kit::kafka::read_partitions_from(brokers, topic, &partitions, &HashMap::new(), TIMEOUT, |p, o, m| {
        use rdkafka::message::{Headers as _, Message as _};
        let tenant = m
            .headers()
            .and_then(|h| h.iter().find(|h| h.key == "ce_tenantid").and_then(|h| h.value))
            .and_then(|v| std::str::from_utf8(v).ok()?.parse::<uuid::Uuid>().ok())
            .with_context(|| format!("the event at partition {p} offset {o} names no tenant"))?;
        events += 1;
        if events::shard_of(events::TenantId::from_uuid(tenant), count) != p {
            off_shard += 1;
        }
        Ok(())
    })?;
    Ok((off_shard == 0, events))
}
