//! What the load driver sent and what it was told: one entry per HTTP request, each with its own
//! `X-Request-Id`, which the command API makes the correlation id of every event it appends for
//! that request. The end checks find a command's events in the log by it.

use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CommandKind {
    Create,
    Send,
    Engage,
    Accept,
    Revoke,
    DefinitionCreate,
    DefinitionUpdate,
    /// The fault loop's own create, sent until one is acknowledged after each fault.
    Probe,
}

impl CommandKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Send => "send",
            Self::Engage => "engagement",
            Self::Accept => "accept",
            Self::Revoke => "revoke",
            Self::DefinitionCreate => "definition create",
            Self::DefinitionUpdate => "definition update",
            Self::Probe => "probe create",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx: the command's events are durable. `stream` and `version` are what the answer named
    /// (the invite or definition and the version it reached); `events` how many events the answer
    /// said the command appended (`None` when the body could not be read).
    Acked { status: u16, stream: Option<Uuid>, version: Option<u64>, events: Option<usize> },
    /// Any other answer (4xx, 503, ...): nothing of it may be in the log.
    Refused { status: u16 },
    /// The connection could not be opened: the request never left.
    NotSent,
    /// Sent, but no answer came (timeout, connection cut): it may or may not be in the log.
    NoAnswer,
}

#[derive(Debug, Clone)]
pub struct Command {
    pub request_id: Uuid,
    pub kind: CommandKind,
    /// The invite or definition the command was about, when it named one.
    pub subject: Option<Uuid>,
    /// Since the start of the run.
    pub sent: Duration,
    pub answered: Duration,
    pub outcome: Outcome,
}

/// Every command of a run, appended by many clients at once.
pub struct Ledger {
    start: Instant,
    commands: Mutex<Vec<Command>>,
}

impl Ledger {
    pub fn new(start: Instant) -> Self {
        Self { start, commands: Mutex::default() }
    }

    pub fn since_start(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn record(&self, command: Command) {
        self.commands.lock().unwrap().push(command);
    }

    pub fn commands(&self) -> Vec<Command> {
        self.commands.lock().unwrap().clone()
    }
}
