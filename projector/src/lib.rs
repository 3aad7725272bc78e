//! rsvp's projector: consumes the invite event log and maintains the read models in PostgreSQL.
//!
//! Exactly-once effect: the position of every partition is stored in PostgreSQL in the same
//! transaction as the rows its events produced, and read back on start; Kafka's own consumer
//! offsets are never used. Each event's per-invite version is a second guard: an event whose
//! version is not the next one for its invite changes nothing. The consumer reads with
//! `isolation.level=read_committed`, so events of aborted writer transactions never show.

pub mod as_of;
pub mod bulk;
pub mod cli;
pub mod consumer;
pub mod metrics;
pub mod projection;
pub mod redrive;
pub mod replay;
