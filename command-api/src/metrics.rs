//! The writer's own metrics, beside the HTTP ones in the same registry: how long an append takes,
//! how many commands and events each transaction carries (the group commit at work), and how
//! commands end, by type. Labels are a command type and an outcome, both from fixed sets: never
//! an id, a key or a token.

use crate::writer::WriteError;
use events::RejectionClass;
use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};
use std::time::Duration;

#[derive(Clone)]
pub struct WriterMetrics {
    append_seconds: Histogram,
    batch_commands: Histogram,
    batch_events: Histogram,
    commands: IntCounterVec,
}

impl WriterMetrics {
    pub fn register(registry: &Registry) -> anyhow::Result<Self> {
        let sizes = vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0];
        let append_seconds = Histogram::with_opts(
            HistogramOpts::new("rsvp_command_append_seconds", "Time to append one transaction, begin to commit")
                .buckets(vec![0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]),
        )?;
        let batch_commands = Histogram::with_opts(
            HistogramOpts::new("rsvp_command_batch_commands", "Commands whose events one transaction carries")
                .buckets(sizes.clone()),
        )?;
        let batch_events = Histogram::with_opts(
            HistogramOpts::new("rsvp_command_batch_events", "Events per transaction").buckets(sizes),
        )?;
        let commands = IntCounterVec::new(
            Opts::new("rsvp_commands_total", "Commands answered, by command type and outcome"),
            &["type", "outcome"],
        )?;
        registry.register(Box::new(append_seconds.clone()))?;
        registry.register(Box::new(batch_commands.clone()))?;
        registry.register(Box::new(batch_events.clone()))?;
        registry.register(Box::new(commands.clone()))?;
        Ok(Self { append_seconds, batch_commands, batch_events, commands })
    }

    /// One committed transaction.
    pub(crate) fn committed(&self, took: Duration, commands: usize, events: usize) {
        self.append_seconds.observe(took.as_secs_f64());
        self.batch_commands.observe(commands as f64);
        self.batch_events.observe(events as f64);
    }

    /// One command answered.
    pub(crate) fn answered<T>(&self, command_type: &'static str, result: &Result<T, WriteError>, replayed: bool) {
        let outcome = match result {
            Ok(_) if replayed => "replayed",
            Ok(_) => "committed",
            Err(WriteError::Rejected(r)) => match r.class() {
                RejectionClass::Invalid => "invalid",
                RejectionClass::Conflict => "conflict",
                RejectionClass::NotFound => "not_found",
                RejectionClass::Gone => "gone",
            },
            Err(WriteError::ShardMoving) => "shard_moving",
            Err(WriteError::PreconditionFailed { .. }) => "precondition_failed",
            Err(WriteError::IdempotencyMismatch) => "idempotency_mismatch",
            Err(WriteError::Unavailable(_)) => "unavailable",
            Err(WriteError::Failed) => "failed",
        };
        self.commands.with_label_values(&[command_type, outcome]).inc();
    }
}
