//! Rebuilding the writer's state from the log when it takes the lease.
//!
//! Readers, two per core and each with some of the partitions, poll Kafka and decode (JSON is
//! most of the cost); one thread folds the events and their hash chains into the state in log
//! order per partition, which is all the order the state needs (every stream lives in one
//! partition, and a reader sends its partitions' events in their order).

use crate::chains::{Chains, Observed};
use crate::state::WriterState;
use anyhow::Context as _;
use events::Envelope;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

const CHUNK: usize = 2048;
const TIMEOUT: Duration = Duration::from_secs(1800);

type Chunk = Vec<(Envelope, Observed)>;

/// Reads the whole log (read_committed) and folds it. An event this version cannot read is a bug
/// to fix, not something to skip: the state would be wrong, so the writer refuses to start.
pub fn read_state(brokers: &str, topic: &str, secrets: &events::Secrets) -> anyhow::Result<WriterState> {
    let partitions = service_kit::kafka::topic_partitions(brokers, topic, Duration::from_secs(30))?;
    let mut chains = Chains::default();
    // Two per core: a reader also waits for its fetches (measured on 2 cores, 300,000 events:
    // one reader 4.4 s, two 2.8-4.4 s, four 2.8-4.1 s).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let readers = (cores * 2).clamp(2, 8).min(partitions.len());
    let secrets = secrets.clone();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Chunk>(16);
    let folder = std::thread::Builder::new()
        .name("rsvp-writer-fold".into())
        .spawn(move || {
            let mut state = WriterState::default();
            for chunk in rx {
                for (mut envelope, observed) in chunk {
                    chains.observe(&envelope.meta, observed);
                    // Invites from before blind indexes match like every other.
                    if let events::DomainEvent::Invite(event) = &mut envelope.event {
                        if events::personal::needs_index(event) {
                            events::personal::index_legacy(event, &secrets.for_tenant(envelope.meta.tenant_id));
                        }
                    }
                    state.apply_owned(envelope);
                }
            }
            state.chains = chains;
            state
        })
        .context("cannot start the folding thread")?;
    let read = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..readers)
            .map(|r| {
                let mine: Vec<i32> = partitions.iter().copied().skip(r).step_by(readers).collect();
                let tx = tx.clone();
                std::thread::Builder::new()
                    .name(format!("rsvp-writer-read-{r}"))
                    .spawn_scoped(scope, move || read_partitions(brokers, topic, &mine, tx))
                    .context("cannot start a reading thread")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        handles.into_iter().try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("a reading thread panicked"))?)
    });
    drop(tx);
    let state = folder.join().map_err(|_| anyhow::anyhow!("the folding thread panicked"))?;
    read?;
    Ok(state)
}

/// Reads `partitions` to their end, sending their events in chunks to the folding thread.
fn read_partitions(brokers: &str, topic: &str, partitions: &[i32], tx: SyncSender<Chunk>) -> anyhow::Result<()> {
    let mut chunk = Vec::with_capacity(CHUNK);
    service_kit::kafka::read_partitions_to_end(brokers, topic, partitions, TIMEOUT, |p, o, message| {
        use rdkafka::message::Message as _;
        let headers = service_kit::kafka::record_headers(message);
        let payload = message.payload().unwrap_or_default();
        let envelope = service_kit::kafka::envelope_of_parts(&headers, payload)
            .with_context(|| format!("undecodable event at partition {p} offset {o}"))?;
        chunk.push((envelope, Observed::of_record(headers.iter().copied(), payload)));
        if chunk.len() >= CHUNK {
            tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK))).context("the folding thread stopped")?;
        }
        Ok(())
    })?;
    if !chunk.is_empty() {
        tx.send(chunk).context("the folding thread stopped")?;
    }
    Ok(())
}
