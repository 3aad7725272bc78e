//! rsvp's command API: takes writes, checks each against the current state of the invites it
//! touches, appends the resulting events to Kafka, and answers only once they are durable.

pub mod chains;
pub mod config;
pub mod forward;
pub mod lease;
pub mod metrics;
pub mod rebuild;
pub mod routes;
pub mod shards;
pub mod snapshot;
pub mod startup;
pub mod state;
pub mod vault;
pub mod writer;

pub use config::Config;
pub use startup::Application;
