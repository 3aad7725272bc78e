//! Rebuilding the writer's state from the log when it takes the lease.
//!
//! Two threads share the work: this one polls Kafka and decodes (JSON is most of the cost), the
//! other folds the events into the state in log order per partition, which is all the order
//! the state needs (every stream lives in one partition).

use crate::state::WriterState;
use anyhow::Context as _;
use events::Envelope;
use std::collections::HashMap;
use std::time::Duration;

const CHUNK: usize = 2048;

/// Reads the whole log (read_committed) and folds it. An event this version cannot read is a bug
/// to fix, not something to skip: the state would be wrong, so the writer refuses to start.
pub fn read_state(brokers: &str, topic: &str, secrets: &events::Secrets) -> anyhow::Result<WriterState> {
    let secrets = secrets.clone();
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Envelope>>(16);
    let folder = std::thread::Builder::new()
        .name("rsvp-writer-fold".into())
        .spawn(move || {
            let mut state = WriterState::default();
            for chunk in rx {
                for mut envelope in chunk {
                    // Invites from before blind indexes match like every other.
                    if let events::DomainEvent::Invite(event) = &mut envelope.event {
                        if events::personal::needs_index(event) {
                            events::personal::index_legacy(event, &secrets.for_tenant(envelope.meta.tenant_id));
                        }
                    }
                    state.apply_owned(envelope);
                }
            }
            state
        })
        .context("cannot start the folding thread")?;
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut chains = crate::chains::Chains::default();
    let read =
        service_kit::kafka::read_to_end(brokers, topic, &HashMap::new(), Duration::from_secs(1800), |p, o, message| {
            let envelope = service_kit::kafka::envelope_of(message)
                .with_context(|| format!("undecodable event at partition {p} offset {o}"))?;
            chains.observe(&envelope.meta, observed(message));
            chunk.push(envelope);
            if chunk.len() >= CHUNK {
                tx.send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                    .context("the folding thread stopped")?;
            }
            Ok(())
        });
    if read.is_ok() && !chunk.is_empty() {
        tx.send(chunk).context("the folding thread stopped")?;
    }
    drop(tx);
    let mut state = folder.join().map_err(|_| anyhow::anyhow!("the folding thread panicked"))?;
    read?;
    state.chains = chains;
    Ok(state)
}

fn observed(message: &rdkafka::message::BorrowedMessage<'_>) -> crate::chains::Observed {
    use rdkafka::message::{Headers as _, Message as _};
    let headers: Vec<(&str, &[u8])> =
        message.headers().map(|h| h.iter().map(|h| (h.key, h.value.unwrap_or_default())).collect()).unwrap_or_default();
    crate::chains::Observed::of_record(headers.iter().copied(), message.payload().unwrap_or_default())
}
