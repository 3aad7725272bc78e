//! The projector's metrics: events applied (in all and by event type), batch durations and sizes,
//! apply time by event type, dead letters, and the lag of every partition (high watermark minus
//! the next offset to apply), refreshed every two seconds. No label carries an id.

use prometheus::{CounterVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};
use rdkafka::consumer::{Consumer, StreamConsumer};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Metrics {
    pub applied: IntCounter,
    pub dead_letters: IntCounter,
    /// Batches the database failed for a passing reason (and that were tried again).
    pub retries: IntCounter,
    pub batch_seconds: Histogram,
    /// Events per applied batch: how far batches follow the backlog.
    pub batch_events: Histogram,
    pub lag: IntGaugeVec,
    /// Events that changed the read models, by event type (a fixed set of names).
    pub applied_by_type: IntCounterVec,
    /// Time spent applying, by event type: each statement's time shared among the types of the
    /// events it wrote.
    pub apply_seconds: CounterVec,
    /// Set once the consumer follows its partitions from the stored positions.
    pub following: std::sync::atomic::AtomicBool,
    positions: Mutex<HashMap<i32, i64>>,
}

impl Metrics {
    pub fn register(registry: &Registry) -> anyhow::Result<Arc<Self>> {
        let metrics = Self {
            applied: IntCounter::new("rsvp_projector_events_applied_total", "events applied to the read models")?,
            dead_letters: IntCounter::new(
                "rsvp_projector_dead_letters_total",
                "events parked in the dead-letter topic",
            )?,
            retries: IntCounter::new(
                "rsvp_projector_batch_retries_total",
                "batch attempts the database failed for a passing reason, tried again",
            )?,
            batch_seconds: Histogram::with_opts(HistogramOpts::new(
                "rsvp_projector_batch_seconds",
                "time to apply one batch in PostgreSQL",
            ))?,
            batch_events: Histogram::with_opts(
                HistogramOpts::new("rsvp_projector_batch_events", "events in one applied batch")
                    .buckets(vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0]),
            )?,
            lag: IntGaugeVec::new(
                Opts::new("rsvp_projector_lag_events", "events in the log not yet applied, per partition"),
                &["partition"],
            )?,
            applied_by_type: IntCounterVec::new(
                Opts::new("rsvp_projector_applied_events_total", "events that changed the read models, by type"),
                &["event_type"],
            )?,
            apply_seconds: CounterVec::new(
                Opts::new(
                    "rsvp_projector_apply_seconds_total",
                    "time spent applying events in PostgreSQL, by event type (each statement's time shared among \
                     the types of the events it wrote)",
                ),
                &["event_type"],
            )?,
            following: Default::default(),
            positions: Mutex::default(),
        };
        registry.register(Box::new(metrics.applied.clone()))?;
        registry.register(Box::new(metrics.dead_letters.clone()))?;
        registry.register(Box::new(metrics.retries.clone()))?;
        registry.register(Box::new(metrics.batch_seconds.clone()))?;
        registry.register(Box::new(metrics.batch_events.clone()))?;
        registry.register(Box::new(metrics.lag.clone()))?;
        registry.register(Box::new(metrics.applied_by_type.clone()))?;
        registry.register(Box::new(metrics.apply_seconds.clone()))?;
        Ok(Arc::new(metrics))
    }

    /// How many batches were applied and how many events they held together, if any.
    pub fn batch_sizes(&self) -> Option<(u64, f64)> {
        let count = self.batch_events.get_sample_count();
        (count > 0).then(|| (count, self.batch_events.get_sample_sum()))
    }

    /// Adds what one applied batch cost, by event type.
    pub fn record_costs(&self, costs: &crate::projection::Costs) {
        for (event_type, (events, spent)) in &costs.0 {
            self.applied_by_type.with_label_values(&[event_type]).inc_by(*events);
            self.apply_seconds.with_label_values(&[event_type]).inc_by(spent.as_secs_f64());
        }
    }

    pub fn record_positions(&self, next: &BTreeMap<i32, i64>) {
        self.positions.lock().unwrap().extend(next.iter().map(|(&p, &o)| (p, o)));
    }

    /// Starts refreshing the lag gauges from the brokers' high watermarks.
    pub fn watch_lag(
        self: &Arc<Self>,
        consumer: Arc<StreamConsumer>,
        topic: String,
        partitions: Vec<i32>,
        start: &HashMap<i32, i64>,
    ) {
        self.positions.lock().unwrap().extend(start.iter().map(|(&p, &o)| (p, o)));
        let metrics = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            loop {
                tick.tick().await;
                let Some(metrics) = metrics.upgrade() else { return };
                let (consumer, topic, partitions) = (consumer.clone(), topic.clone(), partitions.clone());
                let highs = tokio::task::spawn_blocking(move || {
                    partitions
                        .iter()
                        .filter_map(|&p| {
                            let (low, high) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(5)).ok()?;
                            Some((p, low, high))
                        })
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default();
                let positions = metrics.positions.lock().unwrap().clone();
                for (p, low, high) in highs {
                    let next = positions.get(&p).copied().unwrap_or(low);
                    // Commit markers count as offsets: a caught-up partition may show a lag of 1.
                    metrics.lag.with_label_values(&[&p.to_string()]).set((high - next).max(0));
                }
            }
        });
    }
}
