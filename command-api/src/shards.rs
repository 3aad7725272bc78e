//! Ownership by shard (`RSVP_WRITER_OWNERSHIP=shards`): command-api instances divide the shards
//! (the partitions of the events topic, see `events::shard_of`) among themselves, as Kafka
//! Streams divides its tasks.
//!
//! - The instances are the members of the consumer group `<writer id>.shards` on the topic
//!   `<topic>.writer-shards`, which has as many partitions as the events topic and holds no
//!   record: the group's assignment of partition `p` is the ownership of shard `p`. The
//!   assignment is cooperative-sticky, so a rebalance revokes only the shards that move; the
//!   others keep deciding throughout.
//! - Each shard has its own writer with its own transactional producer,
//!   `transactional.id = <writer id>-shard-<p>`: its new owner's `init_transactions` fences the
//!   previous one and aborts its open transaction, so a paused or cut-off owner can write nothing
//!   to the shard once it moved, whatever it believes.
//! - A shard's writer reads its snapshot and its partition after it, decides strictly one command
//!   after another as the single writer does, and snapshots its own state.
//! - An owner publishes itself in PostgreSQL (`writer.shard_owners`) once its shard is ready and
//!   withdraws when it stops; any instance hands a request for a shard it does not own to the
//!   owner named there ([`crate::forward`]). A shard between owners answers 503 `shard-moving`.

use crate::metrics::WriterMetrics;
use crate::state::WriterState;
use crate::writer::{lead_while_held, Hooks, PanicBreaker, Phase, Unit, WriteError, WriterConfig};
use anyhow::Context as _;
use events::TenantId;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::producer::{BaseProducer, Producer};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a revoked shard's owner waits for its writer to commit what it decided and stop
/// before the shard goes to its next owner (which fences it anyway).
const HANDOVER: Duration = Duration::from_secs(10);

/// The transactional id of shard `p`'s writer.
pub fn transactional_id(writer_id: &str, p: i32) -> String {
    format!("{writer_id}-shard-{p}")
}

/// This instance's part in the ownership of the shards.
pub struct Shards {
    count: usize,
    units: Vec<Unit>,
    owned: Arc<Vec<AtomicBool>>,
    /// The shards whose state this instance keeps warm (not owned).
    warm: Arc<Vec<AtomicBool>>,
    /// The group gave this instance its first assignment (possibly empty).
    assigned: Arc<AtomicBool>,
    /// Every shard of that first assignment was read: the instance serves from then on (a shard
    /// it takes over later answers 503 `shard-moving` until read, and never makes the whole
    /// instance unready).
    started: AtomicBool,
    pool: sqlx::PgPool,
    topic: String,
    me: String,
    stop: Arc<AtomicBool>,
    group: Mutex<Option<JoinHandle<()>>>,
}

impl Shards {
    /// Checks the topic's placement, fences any writer of the whole topic, starts a writer
    /// thread per shard (each waits until it is assigned) and joins the group.
    pub(crate) async fn start(
        config: WriterConfig,
        advertised_url: String,
        warm_standbys: bool,
        metrics: WriterMetrics,
        panics: Arc<Mutex<PanicBreaker>>,
    ) -> anyhow::Result<Arc<Self>> {
        let partitions = {
            let (brokers, topic) = (config.brokers.clone(), config.topic.clone());
            tokio::task::spawn_blocking(move || {
                service_kit::kafka::topic_partitions(&brokers, &topic, Duration::from_secs(30))
            })
            .await??
        };
        let count = partitions.len();
        check_placement(&config, count).await?;
        // Recorded before the lease's writer is fenced: a lease writer opening after the fence
        // finds the record and refuses (`refuse_if_owned_by_shard`).
        sqlx::query(
            "INSERT INTO writer.topic_ownership (topic, mode) VALUES ($1, 'shards') \
             ON CONFLICT (topic) DO UPDATE SET mode = 'shards', since = now()",
        )
        .bind(&config.topic)
        .execute(&config.pool)
        .await
        .context("cannot record the topic's ownership by shard")?;
        fence_whole_topic_writer(&config).await?;
        let shards_topic = format!("{}.writer-shards", config.topic);
        service_kit::kafka::ensure_topic(&config.brokers, &shards_topic, count as i32).await?;
        let (brokers, t) = (config.brokers.clone(), shards_topic.clone());
        let found = tokio::task::spawn_blocking(move || {
            service_kit::kafka::topic_partitions(&brokers, &t, Duration::from_secs(30))
        })
        .await??;
        anyhow::ensure!(
            found.len() == count,
            "{shards_topic} has {} partitions and {} has {count}: the shards' group needs one partition per shard; \
             delete {shards_topic} (it holds no record) and start again",
            found.len(),
            config.topic
        );
        let owned: Arc<Vec<AtomicBool>> = Arc::new((0..count).map(|_| AtomicBool::new(false)).collect());
        let warm: Arc<Vec<AtomicBool>> = Arc::new((0..count).map(|_| AtomicBool::new(false)).collect());
        // Set once the instance is made: standbys are kept warm once it serves its own shards.
        let this: Arc<std::sync::OnceLock<std::sync::Weak<Self>>> = Arc::new(std::sync::OnceLock::new());
        let mut units = Vec::with_capacity(count);
        for p in 0..count as i32 {
            let (tx, rx) = std::sync::mpsc::channel();
            let phase = Arc::new(AtomicU8::new(Phase::Standby as u8));
            units.push(Unit { tx, phase: phase.clone() });
            let config = WriterConfig { shard: Some(p), ..config.clone() };
            let (metrics, panics, owned) = (metrics.clone(), panics.clone(), owned.clone());
            let registry = Registry {
                pool: config.pool.clone(),
                topic: config.topic.clone(),
                me: advertised_url.clone(),
                runtime: config.runtime.clone(),
            };
            let hooks = Hooks {
                ready: Box::new({
                    let registry = registry.clone();
                    move || registry.publish(p)
                }),
                stopped: Box::new(move || registry.withdraw(p)),
                warm: Box::new({
                    let warm = warm.clone();
                    move |is| warm[p as usize].store(is, Ordering::Release)
                }),
                keep_warm: Box::new({
                    let this = this.clone();
                    move || {
                        warm_standbys
                            && this.get().and_then(std::sync::Weak::upgrade).is_some_and(|s| s.phase() == Phase::Ready)
                    }
                }),
            };
            std::thread::Builder::new()
                .name(format!("rsvp-shard-{p}"))
                .spawn(move || {
                    let held = || owned[p as usize].load(Ordering::Acquire);
                    lead_while_held(config, metrics, panics, &held, &rx, &phase, &hooks)
                })
                .context("cannot start a shard's writer thread")?;
        }
        let shards = Arc::new(Self {
            count,
            units,
            owned,
            warm,
            assigned: Arc::new(AtomicBool::new(false)),
            started: AtomicBool::new(false),
            pool: config.pool.clone(),
            topic: config.topic.clone(),
            me: advertised_url,
            stop: Arc::new(AtomicBool::new(false)),
            group: Mutex::new(None),
        });
        let _ = this.set(Arc::downgrade(&shards));
        let group = join_group(&config, &shards_topic, &shards)?;
        *shards.group.lock().expect("never poisoned") = Some(group);
        Ok(shards)
    }

    /// Leaves the group: every shard is handed over (each writer commits what it decided first).
    pub fn release(&self) {
        self.stop.store(true, Ordering::Release);
        if let Some(group) = self.group.lock().expect("never poisoned").take() {
            let _ = group.join();
        }
    }

    /// Ready once the group assigned this instance its first shards (possibly none) and each
    /// was read; from then on for good (shards taken over later are reported per shard).
    pub fn phase(&self) -> Phase {
        if self.stop.load(Ordering::Acquire) {
            return Phase::Standby;
        }
        if self.started.load(Ordering::Acquire) {
            return Phase::Ready;
        }
        if !self.assigned.load(Ordering::Acquire) {
            return Phase::Starting;
        }
        if self.owned().iter().all(|p| self.units[*p as usize].phase() == Phase::Ready) {
            self.started.store(true, Ordering::Release);
            Phase::Ready
        } else {
            Phase::Starting
        }
    }

    /// The shards this instance keeps a warm standby of.
    pub fn warm(&self) -> Vec<i32> {
        (0..self.count as i32).filter(|p| self.warm[*p as usize].load(Ordering::Acquire)).collect()
    }

    /// The shards this instance owns that are read and deciding.
    pub fn serving(&self) -> Vec<i32> {
        self.owned().into_iter().filter(|p| self.units[*p as usize].phase() == Phase::Ready).collect()
    }

    pub fn owned(&self) -> Vec<i32> {
        (0..self.count as i32).filter(|p| self.owned[*p as usize].load(Ordering::Acquire)).collect()
    }

    pub fn count(&self) -> usize {
        self.count
    }

    /// The URL this instance is published at.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The writer of `tenant`'s shard, if this instance holds it ready; else the request goes to
    /// the shard's owner ([`crate::forward`]).
    pub(crate) fn unit_of(&self, tenant: TenantId) -> Result<&Unit, WriteError> {
        let p = events::shard_of(tenant, self.count);
        let unit = &self.units[p as usize];
        if self.owned[p as usize].load(Ordering::Acquire) && unit.phase() == Phase::Ready {
            return Ok(unit);
        }
        crate::forward::to_shard(p);
        Err(WriteError::ShardMoving)
    }

    /// The first `Some` of `f` over the shards this instance holds ready; `None` there hands the
    /// request to the other owners, unless this instance holds every shard.
    pub(crate) async fn find<T: Send + 'static>(
        &self,
        f: impl Fn(&WriterState) -> Option<T> + Send + Sync + 'static,
    ) -> Result<Option<T>, WriteError> {
        let f = Arc::new(f);
        // `everywhere`: this instance holds every shard; `complete`: every shard it owns answered.
        let (mut everywhere, mut complete) = (true, true);
        for (p, unit) in self.units.iter().enumerate() {
            if !self.owned[p].load(Ordering::Acquire) {
                everywhere = false;
                continue;
            }
            if unit.phase() != Phase::Ready {
                (everywhere, complete) = (false, false);
                continue;
            }
            let f = f.clone();
            match unit.read(move |s| f(s)).await {
                Ok(Some(found)) => return Ok(Some(found)),
                Ok(None) => {}
                Err(_) => (everywhere, complete) = (false, false),
            }
        }
        // Not everywhere: the first instance asks the other owners; an owner asked by another
        // says "not found" only for shards it answered for.
        if everywhere || crate::forward::to_every_owner() || complete {
            Ok(None)
        } else {
            Err(WriteError::ShardMoving)
        }
    }

    /// The published owner of shard `p`, unless it is this instance.
    pub async fn owner_of(&self, p: i32) -> anyhow::Result<Option<String>> {
        let owner: Option<String> =
            sqlx::query_scalar("SELECT owner_url FROM writer.shard_owners WHERE topic = $1 AND partition = $2")
                .bind(&self.topic)
                .bind(p)
                .fetch_optional(&self.pool)
                .await?;
        Ok(owner.filter(|o| *o != self.me))
    }

    /// Some shard has no published owner (it is moving).
    pub async fn unowned(&self) -> bool {
        let owned: Result<i64, _> =
            sqlx::query_scalar("SELECT count(*) FROM writer.shard_owners WHERE topic = $1 AND partition < $2")
                .bind(&self.topic)
                .bind(self.count as i32)
                .fetch_one(&self.pool)
                .await;
        owned.map_or(true, |n| n < self.count as i64)
    }

    /// Every published owner but this instance.
    pub async fn other_owners(&self) -> anyhow::Result<Vec<String>> {
        let owners: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT owner_url FROM writer.shard_owners WHERE topic = $1 AND owner_url <> $2 ORDER BY 1",
        )
        .bind(&self.topic)
        .bind(&self.me)
        .fetch_all(&self.pool)
        .await?;
        Ok(owners)
    }
}

/// Where a shard's writer publishes itself as the owner (`writer.shard_owners`), from its thread.
#[derive(Clone)]
struct Registry {
    pool: sqlx::PgPool,
    topic: String,
    me: String,
    runtime: tokio::runtime::Handle,
}

impl Registry {
    fn publish(&self, p: i32) {
        let published = self.runtime.block_on(
            sqlx::query(
                "INSERT INTO writer.shard_owners (topic, partition, owner_url) VALUES ($1, $2, $3) \
                 ON CONFLICT (topic, partition) DO UPDATE SET owner_url = EXCLUDED.owner_url, since = now()",
            )
            .bind(&self.topic)
            .bind(p)
            .bind(&self.me)
            .execute(&self.pool),
        );
        if let Err(e) = published {
            tracing::warn!(shard = p, error = %e, "shard owner not published");
        }
        tracing::info!(shard = p, "shard ready");
    }

    fn withdraw(&self, p: i32) {
        let withdrawn = self.runtime.block_on(
            sqlx::query("DELETE FROM writer.shard_owners WHERE topic = $1 AND partition = $2 AND owner_url = $3")
                .bind(&self.topic)
                .bind(p)
                .bind(&self.me)
                .execute(&self.pool),
        );
        if let Err(e) = withdrawn {
            tracing::warn!(shard = p, error = %e, "shard owner not withdrawn");
        }
    }
}

/// Ownership by shard is only sound on a topic where every event is in its tenant's shard: a
/// shard's writer reads its partition alone. The placement is recorded once per topic
/// (`writer.topic_placements`): an empty topic is placed by tenant from its start; a topic with
/// events and no record is read whole once to find out.
async fn check_placement(config: &WriterConfig, count: usize) -> anyhow::Result<()> {
    let recorded: Option<bool> =
        sqlx::query_scalar("SELECT by_tenant FROM writer.topic_placements WHERE topic = $1 AND partitions = $2")
            .bind(&config.topic)
            .bind(count as i32)
            .fetch_optional(&config.pool)
            .await
            .context("cannot read the topic's placement")?;
    let by_tenant = match recorded {
        Some(by_tenant) => by_tenant,
        None => {
            let reading = config.clone();
            let by_tenant = tokio::task::spawn_blocking(move || -> anyhow::Result<bool> {
                let config = reading;
                let partitions: Vec<i32> = (0..count as i32).collect();
                let empty = partitions.iter().all(|p| {
                    service_kit::kafka::watermarks(&config.brokers, &config.topic, *p, Duration::from_secs(30))
                        .is_ok_and(|(low, high)| low == high)
                });
                if empty {
                    return Ok(true);
                }
                let started = Instant::now();
                tracing::info!("the topic's placement is not recorded: reading its events' tenants once to find it");
                let (by_tenant, events) = crate::rebuild::placed_by_tenant(&config.brokers, &config.topic, count)?;
                tracing::info!(by_tenant, events, elapsed = ?started.elapsed(), "placement found");
                Ok(by_tenant)
            })
            .await??;
            sqlx::query(
                "INSERT INTO writer.topic_placements (topic, partitions, by_tenant) VALUES ($1, $2, $3) \
                 ON CONFLICT (topic) DO UPDATE SET partitions = EXCLUDED.partitions, by_tenant = EXCLUDED.by_tenant, \
                   checked_at = now()",
            )
            .bind(&config.topic)
            .bind(count as i32)
            .bind(by_tenant)
            .execute(&config.pool)
            .await
            .context("cannot record the topic's placement")?;
            by_tenant
        }
    };
    anyhow::ensure!(
        by_tenant,
        "{} was written before shards (events placed by stream, not by tenant): ownership by shard cannot decide \
         a tenant from one partition. Run with RSVP_WRITER_OWNERSHIP=lease, or copy the topic with `rsvp-admin \
         reshard` (README, Operations guide)",
        config.topic
    );
    Ok(())
}

/// A writer of the whole topic (ownership by lease) refuses a topic that instances own by shard:
/// the two would decide the same tenants side by side (their producers do not fence each other).
pub async fn refuse_if_owned_by_shard(pool: &sqlx::PgPool, topic: &str) -> anyhow::Result<()> {
    let mode: Option<String> = sqlx::query_scalar("SELECT mode FROM writer.topic_ownership WHERE topic = $1")
        .bind(topic)
        .fetch_optional(pool)
        .await
        .context("cannot read the topic's ownership")?;
    anyhow::ensure!(
        mode.as_deref() != Some("shards"),
        "{topic} is owned by shard (instances with RSVP_WRITER_OWNERSHIP=shards took it over): this instance, with \
         RSVP_WRITER_OWNERSHIP=lease, would decide beside them. Run it with RSVP_WRITER_OWNERSHIP=shards; to go back \
         to a lease, stop every instance, then `DELETE FROM writer.topic_ownership WHERE topic = '{topic}'` \
         (README, Operations guide)"
    );
    Ok(())
}

/// A writer of the whole topic (ownership by lease) uses the bare writer id: initialising
/// transactions with it fences any such writer still running, so that it cannot write beside the
/// shards' writers.
async fn fence_whole_topic_writer(config: &WriterConfig) -> anyhow::Result<()> {
    let (brokers, id) = (config.brokers.clone(), config.transactional_id.clone());
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        let producer: BaseProducer = service_kit::kafka::client_config(&brokers, "rsvp-command-api")
            .set("transactional.id", &id)
            .create()
            .context("cannot create the fencing producer")?;
        producer.init_transactions(Duration::from_secs(30)).context("cannot fence the writer of the whole topic")?;
        Ok(())
    })
    .await?
}

struct GroupContext {
    topic: String,
    shards: Arc<Shards>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else { return };
        let revoked: Vec<i32> =
            tpl.elements().iter().filter(|e| e.topic() == self.topic).map(|e| e.partition()).collect();
        if revoked.is_empty() {
            return;
        }
        tracing::info!(?revoked, "shards revoked");
        // A test build can keep deciding for revoked shards, as an owner that has not heard of
        // the rebalance would (cut off from the group's coordinator but not from the brokers):
        // only the fencing of each shard's producer then stops it. A release build has no such
        // switch.
        #[cfg(debug_assertions)]
        if std::env::var_os("RSVP_FAULT_SHARDS_IGNORE_REVOKE").is_some() {
            tracing::warn!("RSVP_FAULT_SHARDS_IGNORE_REVOKE: still deciding for the revoked shards");
            return;
        }
        for p in &revoked {
            self.shards.owned[*p as usize].store(false, Ordering::Release);
        }
        // Each revoked writer commits what it decided and stops before the shard is handed on.
        let deadline = Instant::now() + HANDOVER;
        while Instant::now() < deadline
            && revoked.iter().any(|p| self.shards.units[*p as usize].phase() != Phase::Standby)
        {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let assigned: Vec<i32> =
                    tpl.elements().iter().filter(|e| e.topic() == self.topic).map(|e| e.partition()).collect();
                tracing::info!(?assigned, "shards assigned");
                for p in assigned {
                    self.shards.owned[p as usize].store(true, Ordering::Release);
                }
                self.shards.assigned.store(true, Ordering::Release);
            }
            Rebalance::Revoke(_) => self.shards.assigned.store(true, Ordering::Release),
            Rebalance::Error(e) => tracing::warn!(error = %e, "shards rebalance error"),
        }
    }
}

/// Joins the shards' group; its thread keeps the membership alive until [`Shards::release`].
fn join_group(config: &WriterConfig, shards_topic: &str, shards: &Arc<Shards>) -> anyhow::Result<JoinHandle<()>> {
    let group = format!("{}.shards", config.transactional_id);
    let consumer: BaseConsumer<GroupContext> =
        crate::lease::group_config(&config.brokers, "rsvp-writer-shards", &group, config.lease_timeout)
            .create_with_context(GroupContext { topic: shards_topic.to_owned(), shards: shards.clone() })
            .context("cannot create the shards' group consumer")?;
    consumer.subscribe(&[shards_topic]).context("cannot join the shards' group")?;
    let stop = shards.stop.clone();
    let shards = shards.clone();
    std::thread::Builder::new()
        .name("rsvp-writer-shards".into())
        .spawn(move || {
            // Nothing is ever produced to the shards' topic: polling only serves the group.
            while !stop.load(Ordering::Acquire) {
                if let Some(Err(e)) = consumer.poll(Duration::from_millis(100)) {
                    tracing::debug!(error = %e, "shards' group consumer");
                }
            }
            // Every writer commits what it decided and stops; then leaving the group hands the
            // shards on at once, without their next owners waiting out the session.
            for owned in shards.owned.iter() {
                owned.store(false, Ordering::Release);
            }
            let deadline = Instant::now() + HANDOVER;
            while Instant::now() < deadline && shards.units.iter().any(|u| u.phase() != Phase::Standby) {
                std::thread::sleep(Duration::from_millis(5));
            }
            drop(consumer);
        })
        .context("cannot start the shards' group thread")
}
