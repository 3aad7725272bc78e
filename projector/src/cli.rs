//! The projector binary: `run` (default) follows the log.

use crate::as_of;
use crate::consumer::{self, ConsumerConfig, PoisonPolicy};
use crate::metrics::Metrics;
use crate::redrive;
use crate::replay::{self, Interleaving, Source};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::net::TcpListener;

#[derive(Debug, Parser)]
#[command(name = "projector", about = "rsvp's projector: the log into PostgreSQL read models")]
pub struct Cli {
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Opens the sealed personal data `as-of` prints (see `RSVP_MASTER_KEY`); the projector
    /// itself never needs it: the read models keep the data sealed.
    #[arg(long = "master-key", env = "RSVP_MASTER_KEY", hide_env_values = true)]
    pub master_key: Option<String>,
    #[arg(long, env = "RSVP_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,
    #[arg(long, env = "RSVP_KAFKA_TOPIC", default_value = "rsvp.invite-events")]
    pub kafka_topic: String,
    /// Name under which positions are stored; two projectors with different names are independent.
    #[arg(long, env = "RSVP_PROJECTOR_NAME", default_value = "rsvp-projector")]
    pub name: String,
    #[command(flatten)]
    pub follow: FollowArgs,
    #[command(subcommand)]
    pub command: Option<Cmd>,
}

/// Settings of `run`.
#[derive(Debug, clap::Args)]
pub struct FollowArgs {
    #[arg(long, env = "PROJECTOR_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Port of /healthz; 0 picks a free one.
    #[arg(long, env = "PROJECTOR_PORT", default_value_t = 8083)]
    pub port: u16,
    /// Most events applied in one PostgreSQL transaction.
    #[arg(long, env = "RSVP_PROJECTOR_BATCH", default_value_t = 1000)]
    pub batch: usize,
    /// At most how many milliseconds a batch the backlog does not fill waits for more events (in
    /// all, from its first); 0 applies what is waiting at once.
    #[arg(long, env = "RSVP_PROJECTOR_LINGER_MS", default_value_t = 0)]
    pub linger_ms: u64,
    /// What to do with an event that cannot be projected.
    #[arg(long, env = "RSVP_PROJECTOR_ON_POISON", value_enum, default_value_t = PoisonPolicy::DeadLetter)]
    pub on_poison: PoisonPolicy,
    /// The operator token `/metrics` requires.
    #[command(flatten)]
    pub metrics: service_kit::edge::MetricsConfig,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Follow the log and keep the read models current (the default).
    Run,
    /// Replay the log from offset 0 into new tables beside the live ones, then swap them in one
    /// transaction; readers go on throughout. The old tables are dropped. Lists every event the
    /// replay passed over.
    Rebuild {
        #[command(flatten)]
        order: OrderArgs,
    },
    /// Replay the log up to the live positions into scratch tables and compare them with the live
    /// read models; exits 1 and prints the first differences on any drift, 2 when there is no drift
    /// but events were passed over (by the replay, or parked by the live projector and still
    /// missing): the read models lack them.
    Verify {
        /// How many differences to print at most.
        #[arg(long, default_value_t = 20)]
        limit: usize,
        #[command(flatten)]
        order: OrderArgs,
    },
    /// Re-apply the events parked in the dead-letter topic (`<topic>.dlq`), per stream in version
    /// order, once a fix lets the read models take them; exactly once in effect. Exits 2 when some
    /// are still refused (they stay parked).
    Redrive,
    /// Print the state of one invite (`--invite`) or of every invite of a tenant (`--tenant`) as
    /// it was at TIMESTAMP (RFC 3339), from the log alone, as JSON.
    AsOf {
        timestamp: chrono::DateTime<chrono::Utc>,
        #[arg(long, conflicts_with = "tenant", required_unless_present = "tenant")]
        invite: Option<uuid::Uuid>,
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
    },
}

/// How a replay reads the partitions.
#[derive(Debug, clap::Args)]
pub struct OrderArgs {
    /// `as-read` (every partition at once, as the broker hands them out), `ascending` or
    /// `descending` (one partition after another), or partitions in order (`2,0,1`: these first,
    /// any other after them). The read models must come out the same in every order.
    #[arg(long, default_value = "as-read")]
    pub partition_order: Interleaving,
}

impl Cli {
    pub async fn run(self) -> anyhow::Result<()> {
        let source = Source {
            database_url: self.database_url.clone(),
            brokers: self.kafka_brokers.clone(),
            topic: self.kafka_topic.clone(),
            name: self.name.clone(),
            batch: self.follow.batch,
            interleaving: Interleaving::AsRead,
        };
        match self.command.unwrap_or(Cmd::Run) {
            Cmd::Rebuild { order } => {
                let source = Source { interleaving: order.partition_order, ..source };
                let done = replay::rebuild(&source).await?;
                println!(
                    "rebuilt the read models from {} events ({} passed over) in {:.1?}",
                    done.events,
                    done.passed_over.len(),
                    done.elapsed
                );
                print_passed_over(&done.passed_over);
                Ok(())
            }
            Cmd::Verify { limit, order } => {
                let source = Source { interleaving: order.partition_order, ..source };
                let verdict = replay::verify(&source, limit).await?;
                let (done, drift) = (&verdict.replayed, &verdict.drift);
                if verdict.clean() {
                    println!("no drift: {} events replayed in {:.1?}, none passed over", done.events, done.elapsed);
                    return Ok(());
                }
                if !drift.is_empty() {
                    println!("DRIFT: the read models differ from a replay of the log (first {}):", drift.len());
                    for d in drift {
                        println!("  table {}", d.table);
                        println!("    live:     {}", d.live.as_deref().unwrap_or("(missing)"));
                        println!("    replayed: {}", d.replayed.as_deref().unwrap_or("(missing)"));
                    }
                }
                print_passed_over(&done.passed_over);
                if !verdict.parked.is_empty() {
                    println!(
                        "PARKED: {} events the live projector parked in {} are missing from the read models \
                         (`projector redrive` re-applies them once they can be):",
                        verdict.parked.len(),
                        redrive::dead_letter_topic(&source.topic)
                    );
                    for p in &verdict.parked {
                        println!("  {p}");
                    }
                }
                if drift.is_empty() {
                    println!("INCOMPLETE: the live read models agree with the replay, but both lack the events above");
                    std::process::exit(2);
                }
                std::process::exit(1);
            }
            Cmd::Redrive => {
                let done = redrive::redrive(&source).await?;
                println!(
                    "re-drove {} parked events of {}: {} applied, {} already in the read models, {} still refused",
                    done.read,
                    redrive::dead_letter_topic(&source.topic),
                    done.applied.len(),
                    done.already,
                    done.refused.len()
                );
                for p in &done.applied {
                    println!("  applied {p}");
                }
                for (p, why) in &done.refused {
                    println!("  STILL REFUSED {p}");
                    println!("    now: {why}");
                }
                if !done.refused.is_empty() {
                    std::process::exit(2);
                }
                Ok(())
            }
            Cmd::AsOf { timestamp, invite, tenant } => {
                let subject = match (invite, tenant) {
                    (Some(i), _) => as_of::Subject::Invite(events::InviteId::from_uuid(i)),
                    (None, Some(t)) => as_of::Subject::Tenant(events::TenantId::from_uuid(t)),
                    (None, None) => unreachable!("clap requires one"),
                };
                let (brokers, topic) = (self.kafka_brokers.clone(), self.kafka_topic.clone());
                let (mut state, tenant) =
                    tokio::task::spawn_blocking(move || as_of::as_of(&brokers, &topic, timestamp, subject)).await??;
                // Personal data opens with the master key; without it, it stays sealed. What was
                // erased reads as erased either way.
                if let (Some(secret), Some(tenant)) = (&self.master_key, tenant) {
                    let pool = service_kit::db::connect(&self.database_url, 2).await?;
                    let master = service_kit::vault::MasterKey::new(secret)?;
                    service_kit::vault::Unsealer::new(master, pool).unseal(tenant, &mut state).await?;
                }
                println!("{}", serde_json::to_string_pretty(&state)?);
                Ok(())
            }
            Cmd::Run => {
                let FollowArgs { host, port, batch, linger_ms, on_poison, metrics: metrics_config } = self.follow;
                let pool = service_kit::db::connect(&self.database_url, 4).await?;
                service_kit::db::migrate(&pool).await?;
                let listener = TcpListener::bind((host.as_str(), port))
                    .with_context(|| format!("cannot listen on {host}:{port}"))?;
                let registry = prometheus::Registry::new();
                let metrics = Metrics::register(&registry)?;
                let watched = metrics.clone();
                let server = service_kit::health::follower_server(
                    listener,
                    "projector",
                    registry,
                    &metrics_config,
                    pool.clone(),
                    std::sync::Arc::new(move || watched.following.load(std::sync::atomic::Ordering::Acquire)),
                )?;
                let config = ConsumerConfig {
                    brokers: self.kafka_brokers,
                    topic: self.kafka_topic,
                    name: self.name,
                    batch,
                    linger: std::time::Duration::from_millis(linger_ms),
                    on_poison,
                };
                // SIGTERM or SIGINT stop the health server first (actix handles the signals);
                // then the batch being applied is committed with its positions, and the
                // projector stops before taking another.
                let (stop, stopping) = tokio::sync::watch::channel(false);
                let following = consumer::run(pool, config, metrics, stopping);
                tokio::pin!(following);
                tokio::select! {
                    r = &mut following => r,
                    r = server => {
                        let _ = stop.send(true);
                        match tokio::time::timeout(std::time::Duration::from_secs(30), following).await {
                            Ok(followed) => followed?,
                            Err(_) => tracing::warn!("the batch being applied did not end in 30 s; stopping anyway"),
                        }
                        tracing::info!("projector stopped");
                        r.context("health server failed")
                    }
                }
            }
        }
    }
}

fn print_passed_over(passed_over: &[replay::PassedOver]) {
    if !passed_over.is_empty() {
        println!("PASSED OVER: the replay could not take {} events; its read models lack them:", passed_over.len());
        for p in passed_over {
            println!("  {p}");
        }
    }
}
