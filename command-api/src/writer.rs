//! The single writer. It owns the state of every tenant, rebuilt from the log when it takes the
//! lease, and runs commands strictly one after another on one thread. Commands that arrive while
//! a Kafka transaction is in flight are decided against the evolving state and written together
//! in the next transaction (group commit); every caller is answered after that commit.
//!
//! Delivery guarantee: a caller gets `Ok` only after `commit_transaction` returned, i.e. the
//! events are replicated per `acks=all`. On any failure the transaction is aborted, every caller
//! of the batch gets `Unavailable`, and the writer is opened anew, which re-reads the log: the
//! state never runs ahead of Kafka. A second writer with the same `transactional.id` fences this
//! one: it then refuses everything until it holds the lease again (see [`crate::lease`]).

use crate::lease::Lease;
use crate::state::{ChangeRef, WriterState};
use anyhow::Context as _;
use chrono::{SubsecRound, Utc};
use events::{
    Actor, Context, DeliveryId, Envelope, EventMeta, LinkToken, Rejection, StreamId, TenantCommand, TenantId,
};
use rand::RngCore;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Most commands decided into one transaction.
const MAX_BATCH: usize = 1024;
const TX_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a commit whose outcome Kafka has not confirmed is resumed before giving up on it.
const COMMIT_RESUME: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub brokers: String,
    pub topic: String,
    pub transactional_id: String,
    /// The lease's session timeout: how long a crashed leader keeps the lease.
    pub lease_timeout: Duration,
}

/// Everything about a command that is not the command itself.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    pub tenant_id: TenantId,
    pub actor: Actor,
    pub correlation_id: Option<Uuid>,
    /// `Idempotency-Key` and the fingerprint of the request that carried it.
    pub idempotency: Option<(String, String)>,
    /// `If-Match`: the version the invite must be at.
    pub if_match: Option<u64>,
}

/// A command's result once its events are durable (or, for a repeated idempotent command, the
/// result it had the first time).
#[derive(Debug, Clone)]
pub struct Committed {
    pub changes: Vec<ChangeRef>,
    pub replayed: bool,
    /// For a create: the invite's public link token, read in the same turn as the decision, so
    /// that the answer never depends on this instance still being the writer after the commit.
    pub link_token: Option<LinkToken>,
}

impl Committed {
    /// The version a stream reached by this command.
    pub fn version_of(&self, stream: StreamId) -> Option<u64> {
        self.changes.iter().filter(|c| c.stream == stream).map(|c| c.version).max()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Rejected(Rejection),
    #[error("the invite is at version {current}")]
    PreconditionFailed { current: u64 },
    #[error("the idempotency key was used with another request")]
    IdempotencyMismatch,
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
}

type Reply = oneshot::Sender<Result<Committed, WriteError>>;
type Read = Box<dyn FnOnce(&WriterState) + Send>;

enum Request {
    Write { command: TenantCommand, meta: CommandMeta, reply: Reply },
    Read(Read),
}

/// The writer's life, readable from the HTTP side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Waiting for the lease: another instance is the writer.
    Standby = 0,
    /// Holds the lease; fencing the previous writer and reading the log to its end.
    Starting = 1,
    Ready = 2,
}

#[derive(Clone)]
pub struct WriterHandle {
    tx: Sender<Request>,
    phase: Arc<AtomicU8>,
    lease: crate::lease::Release,
}

impl WriterHandle {
    /// Leaves the lease group, handing the lease to a standby at once (a clean stop); this
    /// instance takes no write after it. Blocks until the group was left.
    pub fn release_lease(&self) {
        self.lease.release();
    }

    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            2 => Phase::Ready,
            1 => Phase::Starting,
            _ => Phase::Standby,
        }
    }

    pub async fn submit(&self, command: TenantCommand, meta: CommandMeta) -> Result<Committed, WriteError> {
        if self.phase() != Phase::Ready {
            return Err(WriteError::Unavailable("this instance is not the writer now".into()));
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request::Write { command, meta, reply })
            .map_err(|_| WriteError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| WriteError::Unavailable("the writer has stopped".into()))?
    }

    /// Runs `f` on the writer's current state, in order with the writes.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriterState) -> T + Send + 'static,
    ) -> Result<T, WriteError> {
        if self.phase() != Phase::Ready {
            return Err(WriteError::Unavailable("this instance is not the writer now".into()));
        }
        let (reply, answer) = oneshot::channel();
        let read: Read = Box::new(move |state| {
            let _ = reply.send(f(state));
        });
        self.tx.send(Request::Read(read)).map_err(|_| WriteError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| WriteError::Unavailable("the writer is not the leader any more".into()))
    }
}

/// Starts the writer: joins the lease group and, whenever it holds the lease, fences the previous
/// writer, reads the log to its end and serves commands until it loses the lease or is fenced.
pub async fn start(config: WriterConfig) -> anyhow::Result<WriterHandle> {
    let lease = Lease::join(&config.brokers, &config.topic, &config.transactional_id, config.lease_timeout).await?;
    let (tx, rx) = std::sync::mpsc::channel();
    let phase = Arc::new(AtomicU8::new(Phase::Standby as u8));
    let thread_phase = phase.clone();
    let release = lease.releaser();
    std::thread::Builder::new()
        .name("rsvp-writer".into())
        .spawn(move || lead_when_leased(config, lease, rx, &thread_phase))
        .context("cannot start the writer thread")?;
    Ok(WriterHandle { tx, phase, lease: release })
}

fn lead_when_leased(config: WriterConfig, lease: Lease, rx: Receiver<Request>, phase: &AtomicU8) {
    let set = |p: Phase| phase.store(p as u8, Ordering::Release);
    loop {
        set(Phase::Standby);
        refuse_pending(&rx);
        while !lease.is_held() {
            std::thread::sleep(Duration::from_millis(50));
            refuse_pending(&rx);
        }
        set(Phase::Starting);
        let mut writer = match Writer::open(config.clone()) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(error = ?e, "cannot become the writer; retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        set(Phase::Ready);
        match writer.serve(&rx, &lease) {
            Stop::LeaseLost => tracing::warn!("lease lost; standing by"),
            Stop::Fenced(e) => tracing::error!(error = %e, "fenced by another writer; standing by"),
            Stop::AppendFailed(e) => tracing::error!(error = %e, "append failed; re-reading the log"),
            Stop::Closed => return,
        }
    }
}

/// Answers every queued request with 503: the caller may retry against the writer.
fn refuse_pending(rx: &Receiver<Request>) {
    while let Ok(r) = rx.try_recv() {
        if let Request::Write { reply, .. } = r {
            let _ = reply.send(Err(WriteError::Unavailable("this instance is not the writer now".into())));
        }
    }
}

/// Why a writer stopped serving.
#[derive(Debug)]
enum Stop {
    LeaseLost,
    /// Another instance initialised transactions with our id: we can write nothing more.
    Fenced(KafkaError),
    /// An append failed: the state is rebuilt from the log before the next command.
    AppendFailed(KafkaError),
    /// The request channel closed: the process is shutting down.
    Closed,
}

struct Writer {
    config: WriterConfig,
    producer: ThreadedProducer<DefaultProducerContext>,
    state: WriterState,
}

impl Writer {
    fn open(config: WriterConfig) -> anyhow::Result<Self> {
        let producer: ThreadedProducer<DefaultProducerContext> =
            service_kit::kafka::client_config(&config.brokers, "rsvp-command-api")
                .set("transactional.id", &config.transactional_id)
                // Java-compatible murmur2, so every client agrees on an invite's partition.
                .set("partitioner", "murmur2_random")
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "1")
                .set("transaction.timeout.ms", "60000")
                .create()
                .context("cannot create the transactional producer")?;
        // Fences every earlier producer with this id and aborts its open transaction, so the
        // read below sees everything that will ever be committed before us.
        producer.init_transactions(TX_TIMEOUT).context("cannot initialise transactions")?;
        let started = Instant::now();
        let state = crate::rebuild::read_state(&config.brokers, &config.topic)?;
        tracing::info!(events = state.events, tenants = state.tenants.len(), elapsed = ?started.elapsed(), "state rebuilt from the log");
        Ok(Self { config, producer, state })
    }

    fn serve(&mut self, rx: &Receiver<Request>, lease: &Lease) -> Stop {
        loop {
            if !lease.is_held() {
                return Stop::LeaseLost;
            }
            let first = match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(r) => r,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Stop::Closed,
            };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if let Err(stop) = self.run_batch(batch) {
                return stop;
            }
        }
    }

    /// Decides every command in order against the evolving state, commits all their events in one
    /// transaction, then answers. `Err` when this writer must stop serving.
    fn run_batch(&mut self, batch: Vec<Request>) -> Result<(), Stop> {
        // Microseconds: the precision PostgreSQL and every API show, so that a time read from a
        // read model names exactly the events that happened at it (e.g. for `projector as-of`).
        let now = Utc::now().trunc_subsecs(6);
        let mut records: Vec<Envelope> = Vec::new();
        let mut answers: Vec<(Reply, Result<Committed, WriteError>)> = Vec::new();
        for request in batch {
            match request {
                Request::Read(f) => f(&self.state),
                Request::Write { command, meta, reply } => {
                    let result = self.decide_and_apply(&command, &meta, now, &mut records);
                    answers.push((reply, result));
                }
            }
        }
        if !records.is_empty() {
            if let Err(e) = self.commit(&records) {
                tracing::error!(error = %e, events = records.len(), "append failed; transaction aborted");
                // Rejections too: they may rest on a decision that is now void.
                for (reply, _) in answers {
                    let _ = reply.send(Err(WriteError::Unavailable("the events could not be appended".into())));
                }
                return Err(if is_fenced(&e) { Stop::Fenced(e) } else { Stop::AppendFailed(e) });
            }
        }
        for (reply, result) in answers {
            let _ = reply.send(result);
        }
        Ok(())
    }

    fn decide_and_apply(
        &mut self,
        command: &TenantCommand,
        meta: &CommandMeta,
        now: chrono::DateTime<Utc>,
        records: &mut Vec<Envelope>,
    ) -> Result<Committed, WriteError> {
        if let Some((key, hash)) = &meta.idempotency {
            if let Some(record) = self.state.idempotency.get(&(meta.tenant_id, key.clone())) {
                if record.request_hash.as_deref() != Some(hash.as_str()) {
                    return Err(WriteError::IdempotencyMismatch);
                }
                let link_token = self.link_token(meta.tenant_id, &record.changes);
                return Ok(Committed { changes: record.changes.clone(), replayed: true, link_token });
            }
        }
        let tenant = self.state.tenants.entry(meta.tenant_id).or_default();
        if let (Some(expected), TenantCommand::Invite { invite_id, .. }) = (meta.if_match, command) {
            let current = tenant.invite_state(*invite_id).version();
            if current != expected {
                return Err(WriteError::PreconditionFailed { current });
            }
        }
        let ctx = Context {
            now,
            new_token: new_link_token(),
            new_delivery_id: DeliveryId::from_uuid(Uuid::now_v7()),
            rules: None,
        };
        let changes = tenant.decide(command, &ctx).map_err(WriteError::Rejected)?;
        let command_id = Uuid::now_v7();
        let mut refs = Vec::with_capacity(changes.len());
        for change in changes {
            let envelope = Envelope::new(
                EventMeta {
                    event_id: Uuid::now_v7(),
                    stream: change.stream,
                    tenant_id: meta.tenant_id,
                    version: change.version,
                    occurred_at: now,
                    actor: meta.actor.clone(),
                    correlation_id: meta.correlation_id,
                    causation_id: Some(command_id),
                    idempotency_key: meta.idempotency.as_ref().map(|(k, _)| k.clone()),
                    request_hash: meta.idempotency.as_ref().map(|(_, h)| h.clone()),
                },
                change.event,
            );
            // The state moves as we decide: the next command of the batch sees this one.
            self.state.apply(&envelope);
            refs.push(ChangeRef {
                stream: envelope.meta.stream,
                version: envelope.meta.version,
                event_type: envelope.event_type(),
            });
            records.push(envelope);
        }
        let link_token = self.link_token(meta.tenant_id, &refs);
        Ok(Committed { changes: refs, replayed: false, link_token })
    }

    /// The link token of the invite `changes` created, if they start with a creation.
    fn link_token(&self, tenant: TenantId, changes: &[ChangeRef]) -> Option<LinkToken> {
        let first = changes.first().filter(|c| c.event_type == "InviteCreated")?;
        let invite = self.state.tenant(tenant)?.invite(first.stream.invite_id()?)?;
        Some(invite.created.token.clone())
    }

    fn commit(&self, records: &[Envelope]) -> Result<(), KafkaError> {
        self.producer.begin_transaction()?;
        let result = (|| {
            for envelope in records {
                let key = envelope.key();
                let payload = envelope.data_json();
                let mut record = BaseRecord::to(&self.config.topic)
                    .key(&key)
                    .payload(&payload)
                    .headers(service_kit::kafka::headers_of(envelope))
                    .timestamp(envelope.meta.occurred_at.timestamp_millis());
                loop {
                    match self.producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            record = r;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err((e, _)) => return Err(e),
                    }
                }
            }
            self.wait_for_deliveries()?;
            // Fails if any record of the transaction failed.
            let mut committed = self.producer.commit_transaction(TX_TIMEOUT);
            // A commit that timed out (Kafka away) may still complete once the coordinator has it:
            // aborting then would not undo it, and the callers would be told 503 for events that
            // are in the log. librdkafka's contract for a retriable error: call commit again to
            // resume it, until it is decided one way or the other.
            let deadline = Instant::now() + COMMIT_RESUME;
            while let Err(KafkaError::Transaction(e)) = &committed {
                if !e.is_retriable() || Instant::now() > deadline {
                    break;
                }
                tracing::warn!(error = %e, "commit not confirmed yet; resuming it");
                committed = self.producer.commit_transaction(TX_TIMEOUT);
            }
            committed
        })();
        if let Err(e) = &result {
            if !is_fenced(e) {
                let _ = self.producer.abort_transaction(TX_TIMEOUT);
            }
        }
        result
    }
}

impl Writer {
    /// Waits until every record sent is delivered (or failed), without polling.
    ///
    /// `commit_transaction` of rdkafka 0.39 first calls its `flush`, which, while records are
    /// undelivered, polls the event queue itself in slices of 100 ms that each run to their end
    /// (`BaseProducer::poll` loops until its deadline), although the `ThreadedProducer`'s own
    /// thread takes the delivery reports: every commit took 100 ms. librdkafka's `rd_kafka_flush`,
    /// with delivery reports as events (as rdkafka sets it up), instead waits on a condition
    /// variable that is signalled when the count of undelivered records reaches zero, which the
    /// polling thread does as it handles the last report. After it, rdkafka's flush finds nothing
    /// to wait for and `commit_transaction` goes straight to ending the transaction.
    fn wait_for_deliveries(&self) -> Result<(), KafkaError> {
        let timeout_ms = i32::try_from(TX_TIMEOUT.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: the pointer is the live handle of the producer we hold, and librdkafka allows
        // `rd_kafka_flush` from any thread.
        let code = unsafe { rdkafka::bindings::rd_kafka_flush(self.producer.client().native_ptr(), timeout_ms) };
        match RDKafkaErrorCode::from(code) {
            RDKafkaErrorCode::NoError => Ok(()),
            e => Err(KafkaError::Flush(e)),
        }
    }
}

fn is_fenced(e: &KafkaError) -> bool {
    match e {
        KafkaError::Transaction(e) => {
            e.is_fatal()
                || matches!(
                    e.code(),
                    RDKafkaErrorCode::Fenced
                        | RDKafkaErrorCode::ProducerFenced
                        | RDKafkaErrorCode::InvalidProducerEpoch
                )
        }
        _ => false,
    }
}

/// 192 random bits, URL-safe: unguessable, and unrelated to the invite id.
fn new_link_token() -> LinkToken {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let token: String = bytes
        .chunks(3)
        .flat_map(|c| {
            let n = (c[0] as u32) << 16 | (c[1] as u32) << 8 | c[2] as u32;
            (0..4).rev().map(move |i| ALPHABET[((n >> (6 * i)) & 63) as usize] as char)
        })
        .collect();
    LinkToken::new(token)
}

#[cfg(test)]
mod tests {
    use super::new_link_token;
    use std::collections::HashSet;

    #[test]
    fn link_tokens_carry_192_random_bits_in_url_safe_characters_and_never_repeat() {
        let tokens: Vec<String> = (0..10_000).map(|_| new_link_token().as_str().to_owned()).collect();
        for t in &tokens {
            // 32 characters of a 64-letter alphabet: 192 bits, above the 128 the design asks for.
            assert_eq!(t.len(), 32, "{t}");
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{t}");
        }
        assert_eq!(tokens.iter().collect::<HashSet<_>>().len(), tokens.len());
        // Every position takes many values: nothing fixed, nothing derived from an id.
        for i in 0..32 {
            let seen: HashSet<u8> = tokens.iter().map(|t| t.as_bytes()[i]).collect();
            assert!(seen.len() > 50, "position {i} takes only {} values", seen.len());
        }
    }
}
