//! Leadership among command-api instances: a Kafka consumer group over a one-partition lease
//! topic. The member that holds partition 0 is the writer; the others wait as hot standbys.
//! The assignment is sticky, so an instance that joins never takes the lease from a live leader:
//! it moves only when the leader leaves or stops heartbeating (session timeout).
//!
//! The lease alone does not make a single writer safe (a paused leader may not know it lost it):
//! the new leader's `init_transactions` fences the old one, which is what stops a zombie.

use anyhow::Context as _;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::RDKafkaErrorCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

struct LeaseContext {
    held: Arc<AtomicBool>,
    topic: String,
}

impl ClientContext for LeaseContext {}

impl ConsumerContext for LeaseContext {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let names_lease = |tpl: &rdkafka::TopicPartitionList| {
            tpl.elements().iter().any(|e| e.topic() == self.topic && e.partition() == 0)
        };
        match rebalance {
            Rebalance::Assign(tpl) if names_lease(tpl) => {
                tracing::info!("writer lease acquired");
                self.held.store(true, Ordering::Release);
            }
            Rebalance::Revoke(tpl) if names_lease(tpl) => {
                tracing::warn!("writer lease lost");
                self.held.store(false, Ordering::Release);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "lease rebalance error"),
            _ => {}
        }
    }
}

/// A member of a group whose assignment is ownership (the lease's, the shards'): sticky and
/// cooperative, so a rebalance moves only what must move, with nothing ever committed.
pub(crate) fn group_config(
    brokers: &str,
    client_id: &str,
    group: &str,
    session_timeout: Duration,
) -> rdkafka::ClientConfig {
    let session_timeout_ms = session_timeout.as_millis() as u64;
    let mut config = service_kit::kafka::client_config(brokers, client_id);
    config
        .set("group.id", group)
        .set("partition.assignment.strategy", "cooperative-sticky")
        // How long a dead member keeps what it holds: the failover time after a crash.
        .set("session.timeout.ms", session_timeout_ms.to_string())
        // Several heartbeats per session, so one late heartbeat does not cost the assignment.
        .set("heartbeat.interval.ms", (session_timeout_ms / 4).min(500).to_string())
        .set("enable.auto.commit", "false");
    config
}

/// Membership in the lease group, kept alive by a background thread.
pub struct Lease {
    held: Arc<AtomicBool>,
    release: Release,
}

/// Leaves the lease group for good, handing the lease over at once: what a clean stop does, so
/// that a standby (or the next instance) need not wait out the session timeout.
#[derive(Clone)]
pub struct Release {
    held: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Release {
    /// Stops holding the lease here (the writer stops deciding and commits what it decided)
    /// while still a member of the group, so that nobody takes it over yet.
    pub fn let_go(&self) {
        self.held.store(false, Ordering::Release);
    }

    /// Stops the membership and waits until the group was left.
    pub fn release(&self) {
        self.let_go();
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.lock().unwrap().take() {
            let _ = thread.join();
        }
    }
}

impl Lease {
    /// Joins the group `<writer id>.lease` on topic `<topic>.writer-lease` (created if missing).
    /// `session_timeout` is how long a leader that stops heartbeating keeps the lease.
    pub async fn join(brokers: &str, topic: &str, writer_id: &str, session_timeout: Duration) -> anyhow::Result<Self> {
        let lease_topic = format!("{topic}.writer-lease");
        service_kit::kafka::ensure_topic(brokers, &lease_topic, 1).await?;
        let held = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let session_timeout_ms = session_timeout.as_millis() as u64;
        let consumer: BaseConsumer<LeaseContext> =
            group_config(brokers, "rsvp-writer-lease", &format!("{writer_id}.lease"), session_timeout)
                .create_with_context(LeaseContext { held: held.clone(), topic: lease_topic.clone() })
                .context("cannot create the lease consumer")?;
        consumer.subscribe(&[&lease_topic]).context("cannot join the lease group")?;
        let (thread_stop, thread_held) = (stop.clone(), held.clone());
        let thread = std::thread::Builder::new()
            .name("rsvp-writer-lease".into())
            .spawn(move || {
                // Nothing is ever produced to the lease topic: polling only serves the group.
                while !thread_stop.load(Ordering::Acquire) {
                    match consumer.poll(Duration::from_millis(100)) {
                        Some(Err(e)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::InvalidSessionTimeout) => {
                            tracing::error!(
                                session_timeout_ms,
                                "the broker refuses this lease session timeout: set RSVP_WRITER_LEASE_TIMEOUT_MS \
                                 within its group.min.session.timeout.ms and group.max.session.timeout.ms"
                            )
                        }
                        Some(Err(e)) => tracing::debug!(error = %e, "lease consumer"),
                        _ => {}
                    }
                }
                thread_held.store(false, Ordering::Release);
                drop(consumer); // leaves the group at once, handing the lease over
            })
            .context("cannot start the lease thread")?;
        Ok(Self { held: held.clone(), release: Release { held, stop, thread: Arc::new(Mutex::new(Some(thread))) } })
    }

    pub fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    pub fn releaser(&self) -> Release {
        self.release.clone()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.release.stop.store(true, Ordering::Release);
    }
}
