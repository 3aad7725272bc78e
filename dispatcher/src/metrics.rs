//! The dispatcher's metrics. Labels are fixed sets of names (a channel, an outcome): never an
//! id, an address or a URL.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub struct Metrics {
    /// Events read from the log and taken in.
    pub events: IntCounter,
    /// Records that are not events this code reads (the projector parks them); passed over here.
    pub undecodable: IntCounter,
    /// Send attempts, by channel (`email`, `sms`) and outcome (`sent`, `bounced`, `retry`, `failed`).
    pub sends: IntCounterVec,
    /// Webhook attempts, by outcome (`delivered`, `retry`, `failed`).
    pub webhook_attempts: IntCounterVec,
    /// Endpoints disabled after a long run of failures.
    pub endpoints_disabled: IntCounter,
    /// Set once the intake follows its partitions.
    pub following: AtomicBool,
}

impl Metrics {
    pub fn register(registry: &Registry) -> anyhow::Result<Arc<Self>> {
        let metrics = Self {
            events: IntCounter::new("rsvp_dispatcher_events_total", "events taken in from the log")?,
            undecodable: IntCounter::new(
                "rsvp_dispatcher_undecodable_total",
                "records that are no readable event, passed over (the projector parks them)",
            )?,
            sends: IntCounterVec::new(
                Opts::new("rsvp_dispatcher_sends_total", "send attempts by channel and outcome"),
                &["channel", "outcome"],
            )?,
            webhook_attempts: IntCounterVec::new(
                Opts::new("rsvp_dispatcher_webhook_attempts_total", "webhook attempts by outcome"),
                &["outcome"],
            )?,
            endpoints_disabled: IntCounter::new(
                "rsvp_dispatcher_endpoints_disabled_total",
                "webhook endpoints disabled after a long run of failures",
            )?,
            following: AtomicBool::new(false),
        };
        registry.register(Box::new(metrics.events.clone()))?;
        registry.register(Box::new(metrics.undecodable.clone()))?;
        registry.register(Box::new(metrics.sends.clone()))?;
        registry.register(Box::new(metrics.webhook_attempts.clone()))?;
        registry.register(Box::new(metrics.endpoints_disabled.clone()))?;
        Ok(Arc::new(metrics))
    }
}
