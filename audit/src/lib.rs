//! Tamper evidence for rsvp's event log.
//!
//! Every event carries hash chains over its stream and its tenant (`events::chain`); the writer
//! signs checkpoints of each tenant's chain ([`checkpoint`]) into `<topic>.audit`. `rsvp-audit`
//! replays the log and checks both ([`verify`]), exports a tenant's events with what proves them as
//! CloudEvents JSON lines ([`export`]) and checks such a file offline.

pub mod checkpoint;
pub mod cli;
pub mod export;
pub mod log;
pub mod verify;

pub use checkpoint::{audit_topic, Checkpoint, PublicKey, SigningKey};
