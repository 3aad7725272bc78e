//! The single writer. It owns the state of every tenant, rebuilt from the log when it takes the
//! lease, and decides commands strictly one after another on one thread, each against the state
//! every earlier decision left (the state moves as it decides). A second thread, the committer,
//! appends: while it commits one transaction, the writer thread decides whatever arrives, and the
//! committer takes everything decided by then as its next transaction. Transactions are thus
//! sized by what is waiting: one command alone when the API is idle, hundreds under load.
//!
//! Delivery guarantee: a caller gets `Ok` only after `commit_transaction` returned for the
//! transaction holding its events, i.e. they are replicated per `acks=all`; a refusal, a replay
//! or a read is answered only once everything decided before it is committed, since it may rest
//! on those decisions. When a transaction fails it is aborted, and every caller whose command was
//! decided after the last good commit gets `Unavailable`; the writer is then opened anew, which
//! re-reads the log, so the state never keeps a decision that did not reach Kafka. A second writer
//! with the same `transactional.id` fences this one: it then refuses everything until it holds the
//! lease again (see [`crate::lease`]).

use crate::lease::Lease;
use crate::metrics::WriterMetrics;
use crate::snapshot::Covered;
use crate::state::{ChangeRef, WriterState};
use crate::vault::Vault;
use anyhow::Context as _;
use chrono::{SubsecRound, Utc};
use events::{
    Actor, Context, DeliveryId, Envelope, EventMeta, InviteCommand, InviteId, InviteStatus, LinkToken, Rejection,
    StreamId, TenantCommand, TenantId,
};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;
use service_kit::vault::{KeyChange, MasterKey};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Most requests the writer thread takes off the channel before handing their decisions over.
const MAX_DECIDE: usize = 1024;
/// The writer thread waits while this many events are decided and not yet taken by the
/// committer: a transaction carries at most about this many.
const MAX_TX_EVENTS: usize = 4096;
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
    /// Seals personal data; the data keys live in PostgreSQL (see [`crate::vault`]).
    pub master: MasterKey,
    pub pool: sqlx::PgPool,
    /// Where the committer runs its key-store statements.
    pub runtime: tokio::runtime::Handle,
    /// Signed checkpoints of the chains (tamper evidence).
    pub audit: crate::chains::AuditConfig,
    /// When each shard's state is snapshotted.
    pub snapshots: SnapshotConfig,
    /// How the instances divide the writes (see [`Ownership`]).
    pub ownership: Ownership,
    /// The one shard this writer decides for (ownership by shard); `None`: the whole topic.
    pub shard: Option<i32>,
}

/// How command-api instances divide the writes among themselves.
#[derive(Debug, Clone)]
pub enum Ownership {
    /// One writer holds every shard, chosen by a lease ([`crate::lease`]); the other instances
    /// stand by and refuse writes.
    Lease,
    /// Each shard (a partition of the events topic) has its own owner among the instances, and
    /// any instance hands a request to its shard's owner ([`crate::shards`]).
    Shards {
        /// The URL the other instances reach this one at.
        advertised_url: String,
        /// Keep every shard this instance does not own warm (its state followed from the log,
        /// as Kafka Streams' standby replicas), so taking one over reads only the last records.
        warm_standbys: bool,
    },
}

/// When a shard's state is snapshotted (see [`crate::snapshot`]).
#[derive(Debug, Clone, Copy)]
pub struct SnapshotConfig {
    /// After this many events decided in the shard since its last snapshot (0: never).
    pub every_events: u64,
    /// Or this long after the first of them.
    pub interval: Duration,
}

/// Everything about a command that is not the command itself.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    pub tenant_id: TenantId,
    pub actor: Actor,
    pub correlation_id: Option<Uuid>,
    /// `Idempotency-Key` and the fingerprint of the request that carried it.
    pub idempotency: Option<(String, String)>,
    /// The unkeyed fingerprint the same request had before fingerprints were keyed: a key used
    /// then still matches its retry.
    pub legacy_request_hash: Option<String>,
    /// `If-Match`: what the command's target must be for it to run.
    pub if_match: Option<IfMatch>,
}

/// An `If-Match` precondition (RFC 9110 section 13.1.1), evaluated against the command's target
/// right before it is decided, so no other command can slip in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IfMatch {
    /// `*`: the target exists.
    Any,
    /// A list of entity tags, compared strongly: only a strong tag `"<n>"` can match, when the
    /// target is at version `n`. Weak tags and other opaque tags never match and are left out,
    /// so the list may be empty (then the precondition fails whenever it is evaluated).
    Versions(Vec<u64>),
}

/// What an `If-Match` is evaluated against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// An invite or definition at this version (its `ETag`).
    Versioned(&'static str, u64),
    /// A collection (a create, or a command spanning several invites): it always exists and has
    /// no entity tag, so `*` holds and every tag fails.
    Collection,
    /// The target does not exist: the precondition is not evaluated and the command answers 404
    /// as it would without it (RFC 9110 section 13.2.1).
    Missing,
}

/// A command's result once its events are durable (or, for a repeated idempotent command, the
/// result it had the first time).
#[derive(Debug, Clone)]
pub struct Committed {
    pub changes: Vec<ChangeRef>,
    pub replayed: bool,
    /// The invite the command was about, as the command left it (for a replay: as it is now).
    pub invite: Option<InviteNow>,
}

/// What an answer says about an invite: taken when the command is decided, so that answering
/// needs no second trip to the writer.
#[derive(Debug, Clone)]
pub struct InviteNow {
    pub id: InviteId,
    pub version: u64,
    pub status: InviteStatus,
    /// The public link's token: a secret, shown to the creator only.
    pub token: LinkToken,
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
    #[error("the precondition failed")]
    PreconditionFailed {
        /// What the precondition was evaluated against: `invite`, `definition` or `collection`.
        target: &'static str,
        /// Its version, if it has one.
        current: Option<u64>,
    },
    #[error("the idempotency key was used with another request")]
    IdempotencyMismatch,
    #[error("the event log is unavailable: {0}")]
    Unavailable(String),
    /// The command's shard has no owner that can decide it right now (between owners, or its new
    /// owner is still reading its log): retry shortly.
    #[error("the shard is moving between instances")]
    ShardMoving,
    /// The writer failed (panicked) deciding this command: nothing of it was written, and the
    /// writer's state is rebuilt from the log before the next command.
    #[error("the writer failed on this command")]
    Failed,
}

type Reply = oneshot::Sender<Result<Committed, WriteError>>;
/// A read runs on the writer's state at once; what it found is handed over once everything
/// decided before it is committed.
type Read = Box<dyn FnOnce(&WriterState) -> Deliver + Send>;
type Deliver = Box<dyn FnOnce() + Send>;

pub(crate) enum Request {
    /// `span`: the request's, which the decision and the answer are logged in.
    Write {
        command: TenantCommand,
        meta: CommandMeta,
        reply: Reply,
        span: tracing::Span,
    },
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

/// One writer's inbox and life: the whole topic's (lease) or one shard's.
#[derive(Clone)]
pub(crate) struct Unit {
    pub(crate) tx: Sender<Request>,
    pub(crate) phase: Arc<AtomicU8>,
}

impl Unit {
    pub(crate) fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            2 => Phase::Ready,
            1 => Phase::Starting,
            _ => Phase::Standby,
        }
    }

    async fn submit(&self, command: TenantCommand, meta: CommandMeta) -> Result<Committed, WriteError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Request::Write { command, meta, reply, span: tracing::Span::current() })
            .map_err(|_| WriteError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| WriteError::Unavailable("the writer has stopped".into()))?
    }

    pub(crate) async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriterState) -> T + Send + 'static,
    ) -> Result<T, WriteError> {
        let (reply, answer) = oneshot::channel();
        let read: Read = Box::new(move |state| {
            let found = f(state);
            Box::new(move || {
                let _ = reply.send(found);
            })
        });
        self.tx.send(Request::Read(read)).map_err(|_| WriteError::Unavailable("the writer has stopped".into()))?;
        answer.await.map_err(|_| WriteError::Unavailable("the writer is not the leader any more".into()))
    }
}

#[derive(Clone)]
pub struct WriterHandle {
    units: Units,
}

#[derive(Clone)]
enum Units {
    Lease { unit: Unit, lease: crate::lease::Release },
    Shards(Arc<crate::shards::Shards>),
}

impl WriterHandle {
    /// Leaves the lease group (or the shards' group), handing the lease or the shards over at
    /// once (a clean stop); this instance takes no write after it. Blocks until the group was left.
    pub fn release_lease(&self) {
        match &self.units {
            Units::Lease { unit, lease } => {
                // The writer commits what it decided before the lease goes to the next one, whose
                // `init_transactions` would abort it.
                lease.let_go();
                let deadline = Instant::now() + Duration::from_secs(10);
                while unit.phase() != Phase::Standby && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(5));
                }
                lease.release()
            }
            Units::Shards(shards) => shards.release(),
        }
    }

    /// Whether this instance can take requests: the writer of the whole topic, or with its
    /// shards (possibly none) assigned and read.
    pub fn phase(&self) -> Phase {
        match &self.units {
            Units::Lease { unit, .. } => unit.phase(),
            Units::Shards(shards) => shards.phase(),
        }
    }

    /// The shards this instance owns, and those of them it serves, with ownership by shard.
    /// With ownership by shard: the shards owned, those of them serving, and the warm standbys.
    pub fn owned_shards(&self) -> Option<(Vec<i32>, Vec<i32>, Vec<i32>)> {
        match &self.units {
            Units::Lease { .. } => None,
            Units::Shards(shards) => Some((shards.owned(), shards.serving(), shards.warm())),
        }
    }

    pub(crate) fn shards(&self) -> Option<&Arc<crate::shards::Shards>> {
        match &self.units {
            Units::Lease { .. } => None,
            Units::Shards(shards) => Some(shards),
        }
    }

    /// The writer that decides `tenant`'s commands here, if this instance holds it now; else
    /// `ShardMoving` (its owner is another instance: the request is handed to it, see
    /// [`crate::forward`]) or `Unavailable` (this instance stands by).
    fn unit_of(&self, tenant: TenantId) -> Result<&Unit, WriteError> {
        match &self.units {
            Units::Lease { unit, .. } if unit.phase() == Phase::Ready => Ok(unit),
            Units::Lease { .. } => Err(WriteError::Unavailable("this instance is not the writer now".into())),
            Units::Shards(shards) => shards.unit_of(tenant),
        }
    }

    pub async fn submit(&self, command: TenantCommand, meta: CommandMeta) -> Result<Committed, WriteError> {
        let unit = self.unit_of(meta.tenant_id)?;
        crate::forward::submitted_here();
        unit.submit(command, meta).await
    }

    /// Runs `f` on the state of `tenant`'s writer, in order with the writes; answers once the
    /// writes decided before it are committed.
    pub async fn read<T: Send + 'static>(
        &self,
        tenant: TenantId,
        f: impl FnOnce(&WriterState) -> T + Send + 'static,
    ) -> Result<T, WriteError> {
        self.unit_of(tenant)?.read(f).await
    }

    /// The first `Some` that `f` finds on the state of any writer this instance holds (a public
    /// link names no tenant). With shards held elsewhere, a `None` here hands the request to the
    /// other instances in turn ([`crate::forward`]).
    pub async fn find<T: Send + 'static>(
        &self,
        f: impl Fn(&WriterState) -> Option<T> + Send + Sync + 'static,
    ) -> Result<Option<T>, WriteError> {
        match &self.units {
            Units::Lease { .. } => {
                let unit = self.unit_of(TenantId::from_uuid(Uuid::nil()))?;
                unit.read(move |s| f(s)).await
            }
            Units::Shards(shards) => shards.find(f).await,
        }
    }
}

/// Starts the writer. With a lease: joins the lease group and, whenever it holds the lease,
/// fences the previous writer, reads the log to its end and serves commands until it loses the
/// lease or is fenced. With shards: joins the shards' group and does the same per shard it is
/// assigned ([`crate::shards`]).
pub async fn start(config: WriterConfig, metrics: WriterMetrics) -> anyhow::Result<WriterHandle> {
    audit::log::ensure_audit_topic(&config.brokers, &config.topic).await?;
    let panics = Arc::new(Mutex::new(PanicBreaker::default()));
    if let Ownership::Shards { advertised_url, warm_standbys } = &config.ownership {
        let shards =
            crate::shards::Shards::start(config.clone(), advertised_url.clone(), *warm_standbys, metrics, panics)
                .await?;
        return Ok(WriterHandle { units: Units::Shards(shards) });
    }
    let lease = Lease::join(&config.brokers, &config.topic, &config.transactional_id, config.lease_timeout).await?;
    let (tx, rx) = std::sync::mpsc::channel();
    let phase = Arc::new(AtomicU8::new(Phase::Standby as u8));
    let unit = Unit { tx, phase: phase.clone() };
    let release = lease.releaser();
    std::thread::Builder::new()
        .name("rsvp-writer".into())
        .spawn(move || lead_while_held(config, metrics, panics, &|| lease.is_held(), &rx, &phase, &Hooks::none()))
        .context("cannot start the writer thread")?;
    Ok(WriterHandle { units: Units::Lease { unit, lease: release } })
}

/// What a writer's owner does when the writer becomes ready and when it stops serving.
pub(crate) struct Hooks {
    pub(crate) ready: Box<dyn Fn() + Send + Sync>,
    pub(crate) stopped: Box<dyn Fn() + Send + Sync>,
    /// While not held: whether to keep the shard's state warm now (see
    /// [`Ownership::Shards::warm_standbys`]); checked as it is followed, `false` drops it.
    pub(crate) keep_warm: Box<dyn Fn() -> bool + Send + Sync>,
    /// The shard's state is warm (`true`) or no longer (`false`).
    pub(crate) warm: Box<dyn Fn(bool) + Send + Sync>,
}

impl Hooks {
    fn none() -> Self {
        Self { ready: Box::new(|| ()), stopped: Box::new(|| ()), keep_warm: Box::new(|| false), warm: Box::new(|_| ()) }
    }
}

/// While shard `p` is not held and `hooks.keep_warm()`: its state, from its snapshot (unless
/// `*from_snapshot` is false), then followed record by record. `Some` when held again (the state
/// to open with, however far it got: the take-over reads the rest), `None` when told to stop
/// keeping it or it failed (the writer then reads as without one). A snapshot that does not match
/// the log turns `*from_snapshot` off for the next tries. Never blocks a take-over for longer than
/// restoring the snapshot: the log is read by polling, `held()` checked between polls.
fn keep_warm(
    config: &WriterConfig,
    p: i32,
    held: &dyn Fn() -> bool,
    hooks: &Hooks,
    from_snapshot: &mut bool,
) -> Option<crate::rebuild::Warm> {
    let started = Instant::now();
    let kept = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let stored = if config.snapshots.every_events > 0 && *from_snapshot {
            let count = service_kit::kafka::topic_partitions(&config.brokers, &config.topic, TX_TIMEOUT)?.len();
            config.runtime.block_on(crate::snapshot::load(&config.pool, &config.topic, count, &[p]))?
        } else {
            Vec::new()
        };
        let snapshot = stored.first().map(|s| s.covered);
        let (state, _) = crate::rebuild::restored_state(&config.master, &stored)?;
        let mut warm =
            crate::rebuild::Warm { state, last: snapshot.map(|c| (p, c)).into_iter().collect(), since_snapshot: 0 };
        let announced = std::cell::Cell::new(false);
        let caught_up = || {
            if !announced.replace(true) {
                tracing::info!(shard = p, elapsed = ?started.elapsed(), "standby warm");
                (hooks.warm)(true);
            }
        };
        let go_on = || !held() && (hooks.keep_warm)();
        let followed = crate::rebuild::follow(
            &config.brokers,
            &config.topic,
            p,
            &config.master,
            &mut warm,
            snapshot,
            &caught_up,
            &go_on,
        );
        (hooks.warm)(false);
        if followed.is_err() && snapshot.is_some() && warm.last.get(&p) == snapshot.as_ref() {
            // Failed before anything after the snapshot was folded: the snapshot is the cause.
            *from_snapshot = false;
        }
        followed.map(|()| held().then_some(warm))
    }));
    match kept {
        Ok(Ok(warm)) => warm,
        Ok(Err(e)) => {
            tracing::warn!(shard = p, error = format!("{e:#}"), "standby state dropped");
            None
        }
        Err(panic) => {
            tracing::error!(shard = p, panic = panic_message(&*panic), "standby state dropped: it panicked");
            None
        }
    }
}

/// A writer's life: while `held()` (the lease, or the shard's assignment) it opens (fencing the
/// previous writer of its `transactional.id`, reading its log) and serves; whenever it stops it
/// waits to hold again. Returns when the request channel closes.
pub(crate) fn lead_while_held(
    config: WriterConfig,
    metrics: WriterMetrics,
    panics: Arc<Mutex<PanicBreaker>>,
    held: &dyn Fn() -> bool,
    rx: &Receiver<Request>,
    phase: &AtomicU8,
    hooks: &Hooks,
) {
    let set = |p: Phase| phase.store(p as u8, Ordering::Release);
    let mut warm_from_snapshot = true;
    loop {
        set(Phase::Standby);
        refuse_pending(rx, &metrics);
        let (mut warm, mut warm_after) = (None, Instant::now());
        while !held() {
            std::thread::sleep(Duration::from_millis(20));
            refuse_pending(rx, &metrics);
            if let (Some(p), true) = (config.shard, Instant::now() >= warm_after && (hooks.keep_warm)()) {
                warm = keep_warm(&config, p, held, hooks, &mut warm_from_snapshot);
                // Not again at once after a failure (or after being told to stop).
                warm_after = Instant::now() + Duration::from_secs(5);
            }
        }
        set(Phase::Starting);
        // A panic anywhere in a writer's life (a command's own is caught where it is decided)
        // ends that writer, never the thread: readiness says so, and the next one starts over
        // from the log.
        let lead = std::panic::AssertUnwindSafe(|| {
            let writer = Writer::open(config.clone(), metrics.clone(), panics.clone(), warm.take())?;
            // Revoked while it read (the next owner may already serve): it neither publishes
            // itself nor decides.
            if !held() {
                return anyhow::Ok((Stop::LeaseLost, WriterState::default()));
            }
            // Published first: once this instance says it serves the shard, others find it.
            (hooks.ready)();
            set(Phase::Ready);
            anyhow::Ok(writer.serve(rx, held))
        });
        let (stop, state) = match std::panic::catch_unwind(lead) {
            Ok(Ok(stopped)) => stopped,
            Ok(Err(e)) => {
                set(Phase::Standby);
                tracing::error!(error = ?e, shard = ?config.shard, "cannot become the writer; retrying");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            Err(panic) => {
                set(Phase::Standby);
                (hooks.stopped)();
                tracing::error!(panic = panic_message(&*panic), "the writer panicked; starting over from the log");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        set(Phase::Standby);
        (hooks.stopped)();
        drop(state);
        match stop {
            Stop::LeaseLost if config.shard.is_some() => tracing::info!(shard = ?config.shard, "shard handed over"),
            Stop::LeaseLost => tracing::warn!("lease lost; standing by"),
            Stop::Fenced(e) => {
                tracing::error!(error = %e, shard = ?config.shard, "fenced by another writer; standing by");
                // Another writer took over while this one still held: its group (or lease) said
                // so first, and this one will hear it within a session. Opening again at once
                // would fence the rightful writer in turn; only a hold that outlasts a session
                // is this one's again.
                let deadline = Instant::now() + config.lease_timeout;
                while held() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                    refuse_pending(rx, &metrics);
                }
            }
            Stop::AppendFailed(e) => {
                tracing::error!(error = %e, shard = ?config.shard, "append failed; re-reading the log")
            }
            Stop::Panicked => tracing::error!(shard = ?config.shard, "the writer panicked; re-reading the log"),
            Stop::Closed => return,
        }
    }
}

/// What a panic said, for the log.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// Answers every queued request with 503: the caller may retry against the writer.
fn refuse_pending(rx: &Receiver<Request>, metrics: &WriterMetrics) {
    while let Ok(r) = rx.try_recv() {
        if let Request::Write { command, reply, .. } = r {
            let result = Err(WriteError::Unavailable("this instance is not the writer now".into()));
            metrics.answered(command.command_type(), &result, false);
            let _ = reply.send(result);
        }
    }
}

/// Commands that made the writer panic, remembered for as long as the process lives (across the
/// writer's restarts): a command type that panicked twice within [`PANIC_WINDOW`] for one actor
/// (an API key, or the public) of a tenant is refused to it, undecided, for [`PANIC_COOLDOWN`]. A request that panics every time could otherwise
/// be resent to force one full rebuild of every tenant's state after another, each stopping all
/// writes while it reads the log.
#[derive(Default)]
pub(crate) struct PanicBreaker {
    recent: HashMap<PanicKey, PanicCount>,
}

/// Whose commands: (tenant, actor id, command type).
type PanicKey = (TenantId, String, &'static str);
/// (its first recent panic, how many since, refused until)
type PanicCount = (Instant, u32, Option<Instant>);

const PANIC_WINDOW: Duration = Duration::from_secs(60);
const PANIC_COOLDOWN: Duration = Duration::from_secs(300);

impl PanicBreaker {
    fn refuses(&self, meta: &CommandMeta, command_type: &'static str, now: Instant) -> bool {
        self.recent
            .get(&(meta.tenant_id, meta.actor.id.clone(), command_type))
            .and_then(|(_, _, until)| *until)
            .is_some_and(|until| now < until)
    }

    fn panicked(&mut self, meta: &CommandMeta, command_type: &'static str, now: Instant) {
        self.recent.retain(|_, (first, _, until)| {
            now.duration_since(*first) < PANIC_WINDOW || until.is_some_and(|until| now < until)
        });
        let key = (meta.tenant_id, meta.actor.id.clone(), command_type);
        let (first, count, until) = self.recent.entry(key).or_insert((now, 0, None));
        if now.duration_since(*first) >= PANIC_WINDOW {
            (*first, *count, *until) = (now, 0, None);
        }
        *count += 1;
        if *count >= 2 {
            *until = Some(now + PANIC_COOLDOWN);
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
    /// Deciding a command panicked: the state is rebuilt from the log before the next command.
    Panicked,
}

/// A decided event as the log takes it, serialized on the writer thread, off the commit path.
struct Record {
    /// Its tenant's shard; `None`: the record key's partition (a topic not partitioned by tenant).
    partition: Option<i32>,
    key: String,
    payload: Vec<u8>,
    headers: OwnedHeaders,
    timestamp: i64,
    /// A checkpoint, for `<topic>.audit`.
    checkpoint: bool,
}

impl Record {
    fn of(envelope: &Envelope, partition: Option<i32>) -> Self {
        Self {
            partition,
            key: envelope.key(),
            payload: envelope.data_json(),
            headers: service_kit::kafka::headers_of(envelope),
            timestamp: envelope.meta.occurred_at.timestamp_millis(),
            checkpoint: false,
        }
    }

    /// Adds the chain values, over the headers and value exactly as they will be written.
    fn chained(mut self, chains: &mut crate::chains::Chains, meta: &EventMeta) -> Self {
        use rdkafka::message::{Header, Headers as _};
        let headers = self.headers.iter().map(|h| (h.key, h.value.unwrap_or_default()));
        let link = chains.link(meta, &events::chain::canonical_of_headers(headers, &self.payload));
        for (key, value) in link.headers() {
            self.headers = self.headers.insert(Header { key, value: Some(value.as_bytes()) });
        }
        self
    }

    fn checkpoint(checkpoint: &audit::Checkpoint, at: chrono::DateTime<Utc>) -> Self {
        Self {
            partition: None,
            key: checkpoint.tenant_id.to_string(),
            payload: checkpoint.to_json(),
            headers: OwnedHeaders::new()
                .insert(rdkafka::message::Header { key: "content-type", value: Some("application/json") }),
            timestamp: at.timestamp_millis(),
            checkpoint: true,
        }
    }
}

/// Someone waiting for what was decided before them to be committed.
enum Answer {
    Write { reply: Reply, result: Result<Committed, WriteError>, command_type: &'static str, span: tracing::Span },
    Read(Deliver),
}

/// Decisions not yet committed, in the order they were taken.
#[derive(Default)]
struct Decided {
    records: Vec<Record>,
    /// Data keys made or destroyed for these records: stored before they are appended.
    keys: Vec<KeyChange>,
    answers: Vec<Answer>,
    /// Commands with events among `answers`.
    commands: usize,
    /// A command panicked: the state may not be the log's any more.
    poisoned: bool,
}

impl Decided {
    fn append(&mut self, mut other: Decided) {
        self.records.append(&mut other.records);
        self.keys.append(&mut other.keys);
        self.answers.append(&mut other.answers);
        self.commands += other.commands;
        self.poisoned |= other.poisoned;
    }
}

/// Where the writer thread leaves its decisions for the committer.
#[derive(Default)]
struct Handover {
    pipe: Mutex<Pipe>,
    changed: Condvar,
}

#[derive(Default)]
struct Pipe {
    decided: Decided,
    /// The writer thread stops: the committer commits what is decided, then ends.
    closing: bool,
    /// The committer holds decisions it has not answered yet.
    committing: bool,
    /// A commit failed: everything decided since is void.
    failed: bool,
}

impl Handover {
    /// Leaves decisions for the committer; waits while it is more than a transaction behind.
    /// `Err` gives them back when a commit failed: they rest on void decisions.
    fn push(&self, decided: Decided) -> Result<(), Decided> {
        let mut pipe = self.pipe.lock().expect("the handover lock is never poisoned");
        loop {
            if pipe.failed {
                return Err(decided);
            }
            if pipe.decided.records.len() < MAX_TX_EVENTS {
                break;
            }
            pipe = self.changed.wait(pipe).expect("the handover lock is never poisoned");
        }
        pipe.decided.append(decided);
        drop(pipe);
        self.changed.notify_all();
        Ok(())
    }

    fn failed(&self) -> bool {
        self.pipe.lock().expect("the handover lock is never poisoned").failed
    }

    /// Everything decided so far, once there is something (`None`: closing and nothing left).
    fn take(&self) -> Option<Decided> {
        let mut pipe = self.pipe.lock().expect("the handover lock is never poisoned");
        // Checkpoints alone (an idle writer's) are a transaction too.
        while pipe.decided.answers.is_empty() && pipe.decided.records.is_empty() {
            if pipe.closing {
                return None;
            }
            pipe = self.changed.wait(pipe).expect("the handover lock is never poisoned");
        }
        let decided = std::mem::take(&mut pipe.decided);
        pipe.committing = true;
        drop(pipe);
        self.changed.notify_all();
        Some(decided)
    }

    /// The committer answered everything it took.
    fn settled(&self) {
        self.pipe.lock().expect("the handover lock is never poisoned").committing = false;
        self.changed.notify_all();
    }

    /// Waits until everything decided is committed and answered (`false`: not within `timeout`,
    /// or a commit failed): the state is then exactly the log's.
    fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut pipe = self.pipe.lock().expect("the handover lock is never poisoned");
        loop {
            if pipe.failed || pipe.closing {
                return false;
            }
            if !pipe.committing && pipe.decided.answers.is_empty() && pipe.decided.records.is_empty() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            pipe = self.changed.wait_timeout(pipe, left).expect("the handover lock is never poisoned").0;
        }
    }

    /// Marks the pipe failed and gives back what was decided after the failed transaction.
    fn fail(&self) -> Decided {
        let mut pipe = self.pipe.lock().expect("the handover lock is never poisoned");
        pipe.failed = true;
        let rest = std::mem::take(&mut pipe.decided);
        drop(pipe);
        self.changed.notify_all();
        rest
    }

    fn close(&self) {
        self.pipe.lock().expect("the handover lock is never poisoned").closing = true;
        self.changed.notify_all();
    }
}

fn answer(a: Answer, metrics: &WriterMetrics) {
    match a {
        Answer::Write { reply, result, command_type, span } => {
            metrics.answered(command_type, &result, result.as_ref().is_ok_and(|c| c.replayed));
            if let Ok(c) = &result {
                span.in_scope(|| {
                    tracing::debug!(events = c.changes.len(), replayed = c.replayed, "committed to the log")
                });
            }
            let _ = reply.send(result);
        }
        Answer::Read(deliver) => deliver(),
    }
}

/// 503 for a decision that cannot stand; a dropped read answers its caller `Unavailable`.
fn refuse(a: Answer, metrics: &WriterMetrics) {
    if let Answer::Write { reply, command_type, .. } = a {
        let result = Err(WriteError::Unavailable("the events could not be appended".into()));
        metrics.answered(command_type, &result, false);
        let _ = reply.send(result);
    }
}

struct Writer {
    state: WriterState,
    /// The topic's partition count, and whether new events go to their tenant's shard.
    partitions: usize,
    by_tenant: bool,
    /// `None` when the topic is not partitioned by tenant, or snapshots are off.
    snapshots: Option<Snapshots>,
    panics: Arc<Mutex<PanicBreaker>>,
    vault: Vault,
    checkpointer: crate::chains::Checkpointer,
    handover: Arc<Handover>,
    committer: std::thread::JoinHandle<Result<(), KafkaError>>,
    metrics: WriterMetrics,
    /// However the writer ends (a panic unwinding through `serve` too), its committer is told to
    /// finish and stop, never left waiting with its producer for ever.
    _closes: ClosesOnDrop,
}

struct ClosesOnDrop(Arc<Handover>);

impl Drop for ClosesOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Writer {
    fn open(
        config: WriterConfig,
        metrics: WriterMetrics,
        panics: Arc<Mutex<PanicBreaker>>,
        warm: Option<crate::rebuild::Warm>,
    ) -> anyhow::Result<Self> {
        let opening = Instant::now();
        let delivered = Arc::new(Mutex::new(HashMap::new()));
        let transactional_id = match config.shard {
            Some(p) => crate::shards::transactional_id(&config.transactional_id, p),
            None => config.transactional_id.clone(),
        };
        let producer: ThreadedProducer<Tracking> =
            service_kit::kafka::client_config(&config.brokers, "rsvp-command-api")
                .set("transactional.id", &transactional_id)
                // Java-compatible murmur2, so every client agrees on an invite's partition.
                .set("partitioner", "murmur2_random")
                .set("enable.idempotence", "true")
                .set("acks", "all")
                .set("linger.ms", "1")
                .set("transaction.timeout.ms", "60000")
                .create_with_context(Tracking { topic: config.topic.clone(), last: delivered.clone() })
                .context("cannot create the transactional producer")?;
        // Fences every earlier producer with this id and aborts its open transaction, so the
        // read below sees everything that will ever be committed before us.
        // librdkafka asks for the transaction coordinator at once and, when no broker connection
        // is up yet, again only 500 ms later: a request to a broker first saves a start 500 ms.
        let _ = producer.client().fetch_watermarks(&config.topic, 0, TX_TIMEOUT);
        producer.init_transactions(TX_TIMEOUT).context("cannot initialise transactions")?;
        let fenced_in = opening.elapsed();
        // Checked once this writer's producer is initialised: an instance that turned the topic
        // over to ownership by shard recorded it before fencing the lease's writer, so a lease
        // writer either sees the record here or is fenced.
        if matches!(config.ownership, Ownership::Lease) {
            config.runtime.block_on(crate::shards::refuse_if_owned_by_shard(&config.pool, &config.topic))?;
        }
        let started = Instant::now();
        // The keys first: any key made before the log's end is in the store by then.
        let topic_partitions = service_kit::kafka::topic_partitions(&config.brokers, &config.topic, TX_TIMEOUT)?;
        let count = topic_partitions.len();
        // A shard's owner reads its partition only, and holds its tenants' keys only.
        let reading = match config.shard {
            Some(p) => vec![p],
            None => topic_partitions.clone(),
        };
        let mine = |tenant: TenantId| config.shard.is_none_or(|p| events::shard_of(tenant, count) == p);
        let vault = Vault::load(config.master.clone(), &config.pool, &config.runtime, mine)?;
        let snapshots = || {
            if config.snapshots.every_events == 0 {
                return Vec::new();
            }
            let stored = config.runtime.block_on(crate::snapshot::load(&config.pool, &config.topic, count, &reading));
            let stored = stored.unwrap_or_else(|e| {
                tracing::warn!(error = format!("{e:#}"), "snapshots not read; reading the log whole");
                Vec::new()
            });
            let bytes: usize = stored.iter().map(|s| s.state.len()).sum();
            tracing::info!(snapshots = stored.len(), bytes, elapsed = ?started.elapsed(), "snapshots read");
            stored
        };
        let read = || {
            let from_snapshots = || {
                crate::rebuild::read_state(&config.brokers, &config.topic, count, &reading, &config.master, snapshots())
            };
            let Some(warm) = warm else { return from_snapshots() };
            tracing::info!(
                tenants = warm.state.tenants.len(),
                shard = ?config.shard,
                ?fenced_in,
                keys_read_in = ?started.elapsed(),
                "taking over from a warm standby"
            );
            crate::rebuild::read_after_warm(&config.brokers, &config.topic, count, &reading, &config.master, warm)
                .or_else(|e| {
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "standby state not used; reading the snapshots and the log after them"
                    );
                    from_snapshots()
                })
        };
        // The checkpoints are read beside the log (a read's fixed cost is about 150 ms).
        let (rebuilt, (signed, checkpoints_read_in), log_read_in) = std::thread::scope(|scope| {
            let signed = scope.spawn(|| {
                let started = Instant::now();
                (crate::chains::read_signed(&config.brokers, &config.topic), started.elapsed())
            });
            let rebuilt = read();
            let log_read_in = started.elapsed();
            let signed = signed
                .join()
                .unwrap_or_else(|_| (Err(anyhow::anyhow!("reading the checkpoints panicked")), Duration::ZERO));
            (rebuilt, signed, log_read_in)
        });
        let crate::rebuild::Rebuilt {
            mut state,
            partitions,
            by_tenant,
            last,
            read,
            tails,
            restored,
            snapshots_refused,
        } = rebuilt?;
        if snapshots_refused {
            if let Err(e) = config.runtime.block_on(crate::snapshot::forget(&config.pool, &config.topic, &reading)) {
                tracing::warn!(error = format!("{e:#}"), "the snapshots that did not match the log are not deleted");
            }
        }
        // A shard decided alone must hold every event of its tenants: the topic's placement is
        // checked once for all (`crate::shards::check_placement`), and here for this partition.
        anyhow::ensure!(
            by_tenant || config.shard.is_none(),
            "partition {:?} holds events outside their tenant's shard: ownership by shard needs a topic placed by \
             tenant (`rsvp-admin reshard`)",
            config.shard
        );
        state.chains.signed_up_to(signed?);
        tracing::info!(
            events_read = read,
            tenants_from_snapshots = restored,
            tenants = state.tenants.len(),
            partitions,
            by_tenant,
            shard = ?config.shard,
            ?checkpoints_read_in,
            ?log_read_in,
            elapsed = ?started.elapsed(),
            "state rebuilt"
        );
        if !by_tenant {
            tracing::warn!(
                "the topic is not partitioned by tenant (written before shards): new events go to their stream's \
                 partition and no snapshots are taken; `rsvp-admin reshard` copies it into a topic partitioned by tenant"
            );
        }
        delivered.lock().expect("never poisoned").extend(last);
        let snapshots = (by_tenant && config.snapshots.every_events > 0)
            .then(|| {
                Snapshots::start(
                    config.snapshots,
                    delivered,
                    tails,
                    config.master.clone(),
                    config.pool.clone(),
                    config.runtime.clone(),
                    config.topic.clone(),
                    partitions,
                )
            })
            .transpose()?;
        let handover = Arc::new(Handover::default());
        let committer = {
            let (handover, metrics) = (handover.clone(), metrics.clone());
            std::thread::Builder::new()
                .name("rsvp-committer".into())
                .spawn(move || {
                    Committer {
                        producer,
                        topic: config.topic,
                        handover,
                        metrics,
                        pool: config.pool,
                        runtime: config.runtime,
                    }
                    .run()
                })
                .context("cannot start the committer thread")?
        };
        let checkpointer = crate::chains::Checkpointer::new(config.audit);
        let _closes = ClosesOnDrop(handover.clone());
        Ok(Self {
            state,
            partitions,
            by_tenant,
            snapshots,
            panics,
            vault,
            checkpointer,
            handover,
            committer,
            metrics,
            _closes,
        })
    }

    /// Decides until the writer must stop, then lets the committer finish what was decided.
    fn serve(mut self, rx: &Receiver<Request>, held: &dyn Fn() -> bool) -> (Stop, WriterState) {
        let stop = loop {
            if !held() {
                break Stop::LeaseLost;
            }
            self.snapshot_when_due();
            let first = match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(r) => Some(r),
                Err(RecvTimeoutError::Timeout) if self.handover.failed() => break Stop::Closed,
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break Stop::Closed,
            };
            // Microseconds: the precision PostgreSQL and every API show, so that a time read from
            // a read model names exactly the events that happened at it (`projector as-of`).
            let now = Utc::now().trunc_subsecs(6);
            let mut decided = Decided::default();
            if let Some(first) = first {
                self.take(first, now, &mut decided);
                while decided.answers.len() < MAX_DECIDE && !decided.poisoned {
                    match rx.try_recv() {
                        Ok(r) => self.take(r, now, &mut decided),
                        Err(_) => break,
                    }
                }
            }
            if decided.poisoned {
                // What was decided before the panic stands (it was decided on a sound state).
                if let Err(void) = self.handover.push(decided) {
                    for a in void.answers {
                        refuse(a, &self.metrics);
                    }
                }
                break Stop::Panicked;
            }
            // In the transaction of the last events they cover.
            if self.checkpointer.due() {
                let checkpoints = self.state.chains.checkpoints(&self.checkpointer.config.key, now);
                decided.records.extend(checkpoints.iter().map(|c| Record::checkpoint(c, now)));
            }
            if decided.answers.is_empty() && decided.records.is_empty() {
                continue;
            }
            if let Err(void) = self.handover.push(decided) {
                for a in void.answers {
                    refuse(a, &self.metrics);
                }
                break Stop::Closed;
            }
        };
        self.handover.close();
        let stop = match self.committer.join() {
            Ok(Err(e)) if is_fenced(&e) => Stop::Fenced(e),
            Ok(Err(e)) => Stop::AppendFailed(e),
            Ok(Ok(())) => stop,
            Err(_) => Stop::AppendFailed(KafkaError::Canceled),
        };
        // Freed by the caller once it said it stopped: a shard's next owner does not wait for
        // the free of its state (a tenth of a second per 100,000 invites).
        (stop, std::mem::take(&mut self.state))
    }

    fn take(&mut self, request: Request, now: chrono::DateTime<Utc>, decided: &mut Decided) {
        match request {
            Request::Read(f) => decided.answers.push(Answer::Read(f(&self.state))),
            Request::Write { command, meta, reply, span } => {
                let command_type = command.command_type();
                let decision = tracing::info_span!(parent: &span, "decide", command = command_type).entered();
                let (before, keys_before) = (decided.records.len(), decided.keys.len());
                let panics = self.panics.clone();
                if panics.lock().unwrap_or_else(|p| p.into_inner()).refuses(&meta, command_type, Instant::now()) {
                    tracing::error!(
                        command = command_type,
                        tenant = %meta.tenant_id,
                        correlation_id = ?meta.correlation_id,
                        "refused undecided: this actor's commands of this type made the writer panic twice in a minute"
                    );
                    drop(decision);
                    let result = Err(WriteError::Failed);
                    decided.answers.push(Answer::Write { reply, result, command_type, span });
                    return;
                }
                let decide = std::panic::AssertUnwindSafe(|| {
                    self.decide_and_apply(&command, &meta, now, &mut decided.records, &mut decided.keys)
                });
                let result = match std::panic::catch_unwind(decide) {
                    Ok(result) => result,
                    Err(panic) => {
                        // What this command changed of the state is unknown: none of its records
                        // is written, and the writer stops after what was decided before it.
                        tracing::error!(
                            command = command_type,
                            tenant = %meta.tenant_id,
                            correlation_id = ?meta.correlation_id,
                            panic = panic_message(&*panic),
                            "the writer panicked deciding a command; nothing of it is written, the state is rebuilt from the log"
                        );
                        decided.records.truncate(before);
                        decided.keys.truncate(keys_before);
                        decided.poisoned = true;
                        panics.lock().unwrap_or_else(|p| p.into_inner()).panicked(&meta, command_type, Instant::now());
                        Err(WriteError::Failed)
                    }
                };
                if decided.records.len() > before {
                    decided.commands += 1;
                }
                tracing::debug!(events = decided.records.len() - before, ok = result.is_ok(), "decided");
                drop(decision);
                decided.answers.push(Answer::Write { reply, result, command_type, span });
            }
        }
    }

    fn decide_and_apply(
        &mut self,
        command: &TenantCommand,
        meta: &CommandMeta,
        now: chrono::DateTime<Utc>,
        records: &mut Vec<Record>,
        keys: &mut Vec<KeyChange>,
    ) -> Result<Committed, WriteError> {
        // An inviter's key reaches its own invites only, also when replaying a key of another.
        let tenant = self.state.tenants.entry(meta.tenant_id).or_default();
        tenant.authorize(command, &meta.actor).map_err(WriteError::Rejected)?;
        if let Some((key, hash)) = &meta.idempotency {
            if let Some(record) = self.state.idempotency_record(meta.tenant_id, key) {
                let same = record.request_hash.as_deref() == Some(hash.as_str())
                    || (record.request_hash.is_some() && record.request_hash == meta.legacy_request_hash);
                if !same {
                    return Err(WriteError::IdempotencyMismatch);
                }
                // The invite of the first time: a replayed create names a fresh id of its own.
                let id = record.changes.iter().find_map(|c| c.stream.invite_id());
                let invite = id.and_then(|id| self.invite_now(meta.tenant_id, id, now));
                return Ok(Committed { changes: record.changes.clone(), replayed: true, invite });
            }
        }
        let tenant = self.state.tenants.entry(meta.tenant_id).or_default();
        if let Some(condition) = &meta.if_match {
            let target = match command {
                TenantCommand::Invite { command: InviteCommand::Create(_), .. }
                | TenantCommand::CreateDefinition { .. }
                | TenantCommand::AcceptMany { .. }
                | TenantCommand::RevokeByScope { .. } => Target::Collection,
                TenantCommand::Invite { invite_id, .. } => invite_target(tenant, *invite_id),
                TenantCommand::ReportDelivery { delivery_id, .. } => {
                    tenant.invite_of_delivery(*delivery_id).map_or(Target::Missing, |id| invite_target(tenant, id))
                }
                TenantCommand::UpdateDefinition { definition_id, .. } => tenant
                    .definition(*definition_id)
                    .map_or(Target::Missing, |d| Target::Versioned("definition", d.version)),
                TenantCommand::EngageByToken { .. } => Target::Missing,
                TenantCommand::ErasePersonalData { .. } => Target::Collection,
            };
            let holds = match (condition, target) {
                (_, Target::Missing) | (IfMatch::Any, _) => true,
                (IfMatch::Versions(versions), Target::Versioned(_, current)) => versions.contains(&current),
                (IfMatch::Versions(_), Target::Collection) => false,
            };
            if !holds {
                return Err(match target {
                    Target::Versioned(target, current) => {
                        WriteError::PreconditionFailed { target, current: Some(current) }
                    }
                    _ => WriteError::PreconditionFailed { target: "collection", current: None },
                });
            }
        }
        let ctx = Context {
            now,
            secrets: self.vault.secrets().for_tenant(meta.tenant_id),
            new_delivery_id: DeliveryId::from_uuid(Uuid::now_v7()),
            rules: None,
        };
        let mut changes = tenant.decide(command, &ctx).map_err(WriteError::Rejected)?;
        // Personal data never reaches the log in clear: sealed under its subject's key here.
        for change in &mut changes {
            self.vault.seal(meta.tenant_id, tenant, change, keys);
        }
        // An erasure destroys the keys; its events say so.
        if let TenantCommand::ErasePersonalData { address } = command {
            self.vault.destroy(meta.tenant_id, address.as_ref(), keys);
        }
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
            refs.push(ChangeRef {
                stream: envelope.meta.stream,
                version: envelope.meta.version,
                event_type: envelope.event_type(),
            });
            let partition = self.by_tenant.then(|| events::shard_of(meta.tenant_id, self.partitions));
            if let (Some(snapshots), Some(p)) = (&mut self.snapshots, partition) {
                snapshots.decided(p);
            }
            records.push(Record::of(&envelope, partition).chained(&mut self.state.chains, &envelope.meta));
            // The state moves as we decide: the next command sees this one.
            self.state.apply_owned(envelope);
        }
        // A test build fails here on purpose, once the state has moved, for the command whose
        // correlation id (`X-Request-Id`) is `RSVP_FAULT_WRITER_PANIC_ON`: a release build has
        // no such switch.
        #[cfg(debug_assertions)]
        if meta
            .correlation_id
            .is_some_and(|id| std::env::var("RSVP_FAULT_WRITER_PANIC_ON").is_ok_and(|at| at.parse() == Ok(id)))
        {
            panic!("RSVP_FAULT_WRITER_PANIC_ON: the fault a test asked for");
        }
        let invite = self.invite_of(meta.tenant_id, command).and_then(|id| self.invite_now(meta.tenant_id, id, now));
        Ok(Committed { changes: refs, replayed: false, invite })
    }

    /// Snapshots a shard whose snapshot is due, once everything decided is committed (waiting
    /// for at most one transaction): the state is then exactly the log up to the last records
    /// delivered, which the snapshot names.
    fn snapshot_when_due(&mut self) {
        let Some(snapshots) = &mut self.snapshots else { return };
        let Some(partition) = snapshots.due() else { return };
        // A commit takes milliseconds; one that takes longer (Kafka slow or away) is not waited
        // for here on every turn: the snapshot is tried again a second later.
        if !self.handover.wait_idle(Duration::from_millis(200)) {
            snapshots.not_before = Instant::now() + Duration::from_secs(1);
            return;
        }
        snapshots.take(&self.state, partition);
    }

    /// The invite a command is about, if it is about one.
    fn invite_of(&self, tenant: TenantId, command: &TenantCommand) -> Option<InviteId> {
        let tenant = self.state.tenant(tenant)?;
        match command {
            TenantCommand::Invite { invite_id, .. } => Some(*invite_id),
            TenantCommand::ReportDelivery { delivery_id, .. } => tenant.invite_of_delivery(*delivery_id),
            TenantCommand::EngageByToken { token, .. } => {
                tenant.invite_by_token(token, self.vault.secrets()).map(|(id, _)| id)
            }
            _ => None,
        }
    }

    /// An invite as it stands now: an answer needs no second trip to the writer, which could
    /// fail (the lease moved) after the command was committed.
    fn invite_now(&self, tenant: TenantId, id: InviteId, now: chrono::DateTime<Utc>) -> Option<InviteNow> {
        let invite = self.state.tenant(tenant)?.invite(id)?;
        Some(InviteNow {
            id,
            version: invite.version,
            status: invite.status_at(now),
            token: events::personal::link_token_of(id, &invite.created, self.vault.secrets()),
        })
    }
}

/// The key-store statements of a transaction, running beside it.
type KeyStore = tokio::task::JoinHandle<anyhow::Result<()>>;

/// The producer's context: takes note of the last record delivered to each partition of the
/// events topic (where a snapshot taken with nothing uncommitted stands).
struct Tracking {
    topic: String,
    last: Arc<Mutex<HashMap<i32, Covered>>>,
}

impl ClientContext for Tracking {}

impl ProducerContext for Tracking {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        use rdkafka::message::{Headers as _, Message as _};
        let Ok(message) = result else { return };
        if message.topic() != self.topic {
            return;
        }
        let id = message.headers().and_then(|h| {
            h.iter().find(|h| h.key == "ce_id").and_then(|h| std::str::from_utf8(h.value?).ok()?.parse::<Uuid>().ok())
        });
        if let Some(event_id) = id {
            let covered = Covered { offset: message.offset(), event_id };
            self.last.lock().expect("never poisoned").insert(message.partition(), covered);
        }
    }
}

/// Which shards are due a snapshot, and the thread that compresses and stores them.
struct Snapshots {
    config: SnapshotConfig,
    partitions: usize,
    /// Per shard: events decided (or read past its last snapshot) since, and when the first was.
    pending: HashMap<i32, (u64, Instant)>,
    delivered: Arc<Mutex<HashMap<i32, Covered>>>,
    store: std::sync::mpsc::SyncSender<(i32, Covered, crate::snapshot::Encoded)>,
    /// The snapshot thread is compressing and storing one: the next waits (its encoding would
    /// pause the writer for nothing).
    storing: Arc<std::sync::atomic::AtomicBool>,
    /// No snapshot before this (the last try found the committer busy).
    not_before: Instant,
}

impl Snapshots {
    fn start(
        config: SnapshotConfig,
        delivered: Arc<Mutex<HashMap<i32, Covered>>>,
        tails: HashMap<i32, u64>,
        master: MasterKey,
        pool: sqlx::PgPool,
        runtime: tokio::runtime::Handle,
        topic: String,
        partitions: usize,
    ) -> anyhow::Result<Self> {
        // One waiting at most: a writer faster than the store skips a turn, never waits.
        let (store, rx) = std::sync::mpsc::sync_channel::<(i32, Covered, crate::snapshot::Encoded)>(1);
        let storing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let busy = storing.clone();
        std::thread::Builder::new()
            .name("rsvp-snapshots".into())
            .spawn(move || {
                for (partition, covered, encoded) in rx {
                    let (started, tenants) = (Instant::now(), encoded.tenants);
                    let compressed = crate::snapshot::compress(&encoded);
                    let stored = runtime.block_on(crate::snapshot::store(
                        &pool,
                        &master,
                        &topic,
                        partitions,
                        partition,
                        covered,
                        tenants,
                        &compressed,
                    ));
                    match stored {
                        Ok(false) => tracing::warn!(
                            partition,
                            offset = covered.offset,
                            "snapshot not stored: the table holds one of a later offset for this topic (a topic \
                             deleted and made again under this name?); it is deleted when a start finds it does not \
                             match the log"
                        ),
                        Ok(true) => tracing::info!(
                            partition,
                            tenants,
                            offset = covered.offset,
                            bytes = compressed.len(),
                            elapsed = ?started.elapsed(),
                            "snapshot stored"
                        ),
                        Err(e) => tracing::warn!(partition, error = format!("{e:#}"), "snapshot not stored"),
                    }
                    busy.store(false, Ordering::Release);
                }
            })
            .context("cannot start the snapshot thread")?;
        let now = Instant::now();
        let pending = tails.into_iter().filter(|(_, n)| *n > 0).map(|(p, n)| (p, (n, now))).collect();
        Ok(Self { config, partitions, pending, delivered, store, storing, not_before: now })
    }

    fn decided(&mut self, partition: i32) {
        self.pending.entry(partition).or_insert((0, Instant::now())).0 += 1;
    }

    /// A shard due a snapshot, if one is (and the last one is stored).
    fn due(&self) -> Option<i32> {
        if self.storing.load(Ordering::Acquire) || Instant::now() < self.not_before {
            return None;
        }
        self.pending
            .iter()
            .find(|(_, (n, since))| *n >= self.config.every_events || since.elapsed() >= self.config.interval)
            .map(|(p, _)| *p)
    }

    /// Encodes the shard's state (on the writer thread, which decides nothing meanwhile) and
    /// hands it to the snapshot thread.
    fn take(&mut self, state: &WriterState, partition: i32) {
        let Some(covered) = self.delivered.lock().expect("never poisoned").get(&partition).copied() else {
            self.pending.remove(&partition);
            return;
        };
        let started = Instant::now();
        let Some(encoded) = crate::snapshot::encode(state, partition, self.partitions) else {
            self.pending.remove(&partition);
            return;
        };
        let (tenants, bytes) = (encoded.tenants, encoded.len());
        self.storing.store(true, Ordering::Release);
        if self.store.try_send((partition, covered, encoded)).is_ok() {
            self.pending.remove(&partition);
            tracing::debug!(partition, tenants, bytes, elapsed = ?started.elapsed(), "snapshot taken");
        } else {
            // The snapshot thread is gone (it never is while the writer lives).
            self.storing.store(false, Ordering::Release);
        }
    }
}

/// Appends what the writer thread decided, one transaction at a time, and answers.
struct Committer {
    producer: ThreadedProducer<Tracking>,
    topic: String,
    handover: Arc<Handover>,
    metrics: WriterMetrics,
    pool: sqlx::PgPool,
    runtime: tokio::runtime::Handle,
}

impl Committer {
    /// Until the writer thread closes the handover (`Ok`) or a commit fails (`Err`: every caller
    /// decided since the last good commit has been refused).
    fn run(self) -> Result<(), KafkaError> {
        while let Some(batch) = self.handover.take() {
            if !batch.records.is_empty() || !batch.keys.is_empty() {
                let events = batch.records.iter().filter(|r| !r.checkpoint).count();
                let started = Instant::now();
                // One Kafka transaction; each command in it logs its own `committed to the log`
                // in its request's span.
                let _append = tracing::info_span!("append", events, commands = batch.commands).entered();
                // For a post-mortem (`RUST_LOG=command_api=trace`): which streams each commit holds.
                let keys = tracing::enabled!(tracing::Level::TRACE)
                    .then(|| batch.records.iter().map(|r| r.key.clone()).collect::<Vec<_>>());
                // The keys the events are sealed under are durable before the events are (an event
                // in the log always opens, until its key is destroyed): stored while the records are
                // sent, and waited for before the transaction commits.
                let keys_stored = (!batch.keys.is_empty()).then(|| {
                    let (pool, changes) = (self.pool.clone(), batch.keys);
                    self.runtime.spawn(async move { service_kit::vault::store::apply(&pool, &changes).await })
                });
                if let Err(e) = self.commit(batch.records, keys_stored) {
                    tracing::error!(error = %e, events, "append failed; transaction aborted");
                    let rest = self.handover.fail();
                    for a in batch.answers.into_iter().chain(rest.answers) {
                        refuse(a, &self.metrics);
                    }
                    return Err(e);
                }
                self.metrics.committed(started.elapsed(), batch.commands, events);
                if let Some(keys) = keys {
                    tracing::trace!(events, elapsed = ?started.elapsed(), ?keys, "committed");
                }
            }
            for a in batch.answers {
                answer(a, &self.metrics);
            }
            self.handover.settled();
        }
        Ok(())
    }

    /// One transaction of `records`, committed only once `keys_stored` (the key changes they
    /// rest on) succeeded; with no records, only the key changes.
    fn commit(&self, records: Vec<Record>, keys_stored: Option<KeyStore>) -> Result<(), KafkaError> {
        let stored = |keys_stored: Option<KeyStore>| match keys_stored.map(|h| self.runtime.block_on(h)) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => {
                tracing::error!(error = ?e, "the key store refused the transaction's keys");
                Err(KafkaError::Canceled)
            }
            Some(Err(_)) => Err(KafkaError::Canceled),
        };
        if records.is_empty() {
            return stored(keys_stored);
        }
        self.producer.begin_transaction()?;
        let audit_topic = audit::audit_topic(&self.topic);
        let result = (|| {
            for r in records {
                let mut record = BaseRecord::to(if r.checkpoint { &audit_topic } else { &self.topic })
                    .key(&r.key)
                    .payload(&r.payload)
                    .headers(r.headers)
                    .timestamp(r.timestamp);
                if let Some(p) = r.partition {
                    record = record.partition(p);
                }
                loop {
                    match self.producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            record = back;
                            std::thread::sleep(Duration::from_millis(1));
                        }
                        Err((e, _)) => return Err(e),
                    }
                }
            }
            self.wait_for_deliveries()?;
            stored(keys_stored)?;
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

    /// Waits until every record sent is delivered (or failed), without polling.
    ///
    /// `commit_transaction` of rdkafka 0.39 first calls its `flush`, which, while records are
    /// undelivered, polls the event queue itself in slices of 100 ms that each run to their end
    /// (`BaseProducer::poll` loops until its deadline), even though the `ThreadedProducer`'s own
    /// thread already takes the delivery reports: every commit took 100 ms. librdkafka's own
    /// `rd_kafka_flush`, with delivery reports as events (as rdkafka sets it up), instead waits on
    /// a condition variable signalled when the count of undelivered records reaches zero, which
    /// the polling thread does as it handles the last report. Once it returns, rdkafka's flush
    /// finds nothing to wait for and `commit_transaction` goes straight to EndTxn.
    fn wait_for_deliveries(&self) -> Result<(), KafkaError> {
        let timeout_ms = TX_TIMEOUT.as_millis() as i32;
        // SAFETY: the pointer is the producer's live handle (we hold the producer), and
        // `rd_kafka_flush` may be called from any thread.
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

/// An invite as an `If-Match` target: missing until it is created (version 0).
fn invite_target(tenant: &events::Tenant, id: events::InviteId) -> Target {
    match tenant.invite_state(id).version() {
        0 => Target::Missing,
        version => Target::Versioned("invite", version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(tenant: TenantId, actor: &str) -> CommandMeta {
        CommandMeta {
            tenant_id: tenant,
            actor: events::Actor { kind: events::ActorKind::ApiKey, id: actor.into() },
            correlation_id: None,
            idempotency: None,
            legacy_request_hash: None,
            if_match: None,
        }
    }

    #[test]
    fn a_command_type_that_panics_twice_in_a_minute_is_refused_to_its_actor_for_five_minutes() {
        let tenant = TenantId::from_uuid(uuid::Uuid::now_v7());
        let (key, other_key) = (meta(tenant, "key-1"), meta(tenant, "key-2"));
        let other_tenant = meta(TenantId::from_uuid(uuid::Uuid::now_v7()), "key-1");
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut breaker = PanicBreaker::default();
        breaker.panicked(&key, "create_invite", t0);
        assert!(!breaker.refuses(&key, "create_invite", t0), "one panic may be bad luck");
        breaker.panicked(&key, "create_invite", at(30));
        assert!(breaker.refuses(&key, "create_invite", at(31)));
        assert!(!breaker.refuses(&key, "revoke_invite", at(31)), "only that type");
        assert!(!breaker.refuses(&other_key, "create_invite", at(31)), "only that actor");
        assert!(!breaker.refuses(&other_tenant, "create_invite", at(31)), "only that tenant");
        assert!(!breaker.refuses(&key, "create_invite", at(331)), "for five minutes");
        // Two panics further apart than the window are two pieces of bad luck.
        breaker.panicked(&other_key, "create_invite", t0);
        breaker.panicked(&other_key, "create_invite", at(61));
        assert!(!breaker.refuses(&other_key, "create_invite", at(62)));
    }
}
