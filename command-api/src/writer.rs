//! The single writer. It owns the current state of every invite, rebuilt from the log at start,
//! and runs commands strictly one after another on one thread. Commands that arrive while a
//! Kafka transaction is in flight are decided against the evolving state and written together in
//! the next transaction (group commit); every caller is answered after that commit.
//!
//! Delivery guarantee: a caller gets `Ok` only after `commit_transaction` returned, i.e. the
//! events are replicated per `acks=all`. On any failure the transaction is aborted, the callers
//! get `Unavailable`, and the state is rebuilt from the log, so it never runs ahead of Kafka.
//! A second writer with the same `transactional.id` fences this one: it then refuses everything.

use crate::lease::Lease;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use events::{
    decide, evolve, Actor, Command, Context, Envelope, EventMeta, InviteId, InviteState, LinkToken, Rejection, TenantId,
};
use rand::RngCore;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use uuid::Uuid;

/// Most commands decided into one transaction.
const MAX_BATCH: usize = 512;
const TX_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
pub struct WriterConfig {
    pub brokers: String,
    pub topic: String,
    pub transactional_id: String,
}

/// Everything about a command that is not the command itself.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    pub tenant_id: TenantId,
    pub invite_id: InviteId,
    pub actor: Actor,
    pub correlation_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
}

/// A command's result once its events are durable.
#[derive(Debug, Clone)]
pub struct Committed {
    pub invite_id: InviteId,
    pub version: u64,
    pub events: Vec<Envelope>,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Rejected(Rejection),
    #[error("the invite does not exist")]
    NotFound,
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
}

struct Request {
    command: Command,
    meta: CommandMeta,
    reply: oneshot::Sender<Result<Committed, WriteError>>,
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
    tx: std::sync::mpsc::Sender<Request>,
    phase: Arc<AtomicU8>,
}

impl WriterHandle {
    pub fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            2 => Phase::Ready,
            1 => Phase::Starting,
            _ => Phase::Standby,
        }
    }

    pub async fn submit(&self, command: Command, meta: CommandMeta) -> Result<Committed, WriteError> {
        if self.phase() != Phase::Ready {
            return Err(WriteError::Unavailable("this instance is not the writer now".into()));
        }
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request { command, meta, reply })
            .map_err(|_| WriteError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| WriteError::Unavailable("the writer has stopped".into()))?
    }
}

/// Starts the writer: joins the lease group and, whenever it holds the lease, fences the previous
/// writer, reads the log to its end and serves commands until it loses the lease or is fenced.
pub async fn start(config: WriterConfig) -> anyhow::Result<WriterHandle> {
    let lease = Lease::join(&config.brokers, &config.topic, &config.transactional_id).await?;
    let (tx, rx) = std::sync::mpsc::channel();
    let phase = Arc::new(AtomicU8::new(Phase::Standby as u8));
    let thread_phase = phase.clone();
    std::thread::Builder::new()
        .name("rsvp-writer".into())
        .spawn(move || lead_when_leased(config, lease, rx, &thread_phase))
        .context("cannot start the writer thread")?;
    Ok(WriterHandle { tx, phase })
}

fn lead_when_leased(config: WriterConfig, lease: Lease, rx: Receiver<Request>, phase: &AtomicU8) {
    let set = |p: Phase| phase.store(p as u8, Ordering::Release);
    loop {
        set(Phase::Standby);
        refuse_pending(&rx, "this instance is not the writer now");
        while !lease.is_held() {
            std::thread::sleep(Duration::from_millis(50));
            refuse_pending(&rx, "this instance is not the writer now");
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
            Stop::AppendFailed(e) => {
                tracing::error!(error = %e, "append failed; re-reading the log")
            }
            Stop::Closed => return,
        }
    }
}

/// Answers every queued request with 503: the caller may retry against the writer.
fn refuse_pending(rx: &Receiver<Request>, why: &str) {
    while let Ok(r) = rx.try_recv() {
        let _ = r.reply.send(Err(WriteError::Unavailable(why.into())));
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
    invites: HashMap<InviteId, InviteState>,
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
        let mut writer = Self { config, producer, invites: HashMap::new() };
        writer.rebuild()?;
        Ok(writer)
    }

    fn rebuild(&mut self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let mut invites: HashMap<InviteId, InviteState> = HashMap::new();
        let mut count = 0u64;
        service_kit::kafka::read_to_end(
            &self.config.brokers,
            &self.config.topic,
            &HashMap::new(),
            Duration::from_secs(600),
            |_, _, message| {
                // An event this version cannot read is a bug to fix, not something to skip: the
                // state would be wrong. Refuse to start.
                let envelope = service_kit::kafka::envelope_of(message).context("undecodable event in the log")?;
                let state = invites.remove(&envelope.meta.invite_id).unwrap_or_default();
                invites.insert(envelope.meta.invite_id, evolve(state, &envelope.event));
                count += 1;
                Ok(())
            },
        )?;
        tracing::info!(events = count, invites = invites.len(), elapsed = ?started.elapsed(), "state rebuilt from the log");
        self.invites = invites;
        Ok(())
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

    /// Decides every command in order against the evolving state and commits their events in one
    /// transaction. `Err` when this writer must stop serving.
    fn run_batch(&mut self, batch: Vec<Request>) -> Result<(), Stop> {
        let now = Utc::now();
        // Changes are staged and merged only after the commit succeeded.
        let mut staged: HashMap<InviteId, InviteState> = HashMap::new();
        let mut records: Vec<Envelope> = Vec::new();
        let mut accepted: Vec<(oneshot::Sender<Result<Committed, WriteError>>, Committed)> = Vec::new();
        for Request { command, meta, reply } in batch {
            let state =
                staged.get(&meta.invite_id).or_else(|| self.invites.get(&meta.invite_id)).cloned().unwrap_or_default();
            let ctx = Context { now, new_token: new_link_token() };
            match decide(&state, &command, &ctx) {
                Err(rejection) => {
                    let _ = reply.send(Err(WriteError::Rejected(rejection)));
                }
                Ok(events) => {
                    let mut state = state;
                    let mut envelopes = Vec::with_capacity(events.len());
                    for event in events {
                        let version = state.version() + 1;
                        let envelope = Envelope { meta: event_meta(&meta, version, now), event };
                        state = evolve(state, &envelope.event);
                        envelopes.push(envelope);
                    }
                    let version = state.version();
                    staged.insert(meta.invite_id, state);
                    records.extend(envelopes.iter().cloned());
                    accepted.push((reply, Committed { invite_id: meta.invite_id, version, events: envelopes }));
                }
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        match self.commit(&records) {
            Ok(()) => {
                self.invites.extend(staged);
                for (reply, committed) in accepted {
                    let _ = reply.send(Ok(committed));
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, events = records.len(), "append failed; transaction aborted");
                for (reply, _) in accepted {
                    let _ = reply.send(Err(WriteError::Unavailable("the events could not be appended".into())));
                }
                if is_fenced(&e) {
                    return Err(Stop::Fenced(e));
                }
                // Ambiguous outcomes (a commit that timed out may still land) are settled by the
                // log itself: the writer is opened anew, which re-reads it.
                Err(Stop::AppendFailed(e))
            }
        }
    }

    fn commit(&self, records: &[Envelope]) -> Result<(), KafkaError> {
        self.producer.begin_transaction()?;
        let result = (|| {
            for envelope in records {
                let key = envelope.meta.invite_id.to_string();
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
            // Flushes every record and fails if any of them failed.
            self.producer.commit_transaction(TX_TIMEOUT)
        })();
        if let Err(e) = &result {
            if !is_fenced(e) {
                let _ = self.producer.abort_transaction(TX_TIMEOUT);
            }
        }
        result
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

fn event_meta(meta: &CommandMeta, version: u64, now: DateTime<Utc>) -> EventMeta {
    EventMeta {
        event_id: Uuid::now_v7(),
        invite_id: meta.invite_id,
        tenant_id: meta.tenant_id,
        version,
        occurred_at: now,
        actor: meta.actor.clone(),
        correlation_id: meta.correlation_id,
        causation_id: meta.correlation_id,
        idempotency_key: meta.idempotency_key.clone(),
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
