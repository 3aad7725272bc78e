//! The test harness: real Kafka and real PostgreSQL for every test, each test with its own topic,
//! database and tenant, so tests run in parallel; and the three services started as processes.
//!
//! Where Kafka and PostgreSQL come from:
//! - `RSVP_TEST_KAFKA_BROKERS` and `RSVP_TEST_DATABASE_URL` (a role that may create databases),
//!   when set: the README's test command starts both locally and sets them;
//! - otherwise testcontainers starts them in Docker, once per test binary.
//!
//! The email tests send to a Mailpit (the SMTP server) of their own: [`Mailpit`].

pub mod api;
pub mod broker;
pub mod chaos;
pub mod gateway;
pub mod infra;
pub mod load;
pub mod mailpit;
pub mod postgres;
pub mod receiver;
pub mod services;

pub use api::{invite_for, Api, Reply};
pub use gateway::Gateway;
pub use infra::TestEnv;
pub use mailpit::{Mailpit, MailpitOptions};
pub use receiver::Receiver;
pub use services::{
    command_api, create_invite, dispatcher, run_command, run_command_split, shards_divided, Service, Services,
};

use std::future::Future;

/// The master key (`RSVP_MASTER_KEY`) every service and command started by the harness gets.
pub const MASTER_KEY: &str = "rsvp-test-master-key-of-at-least-32-characters";

/// The operator token (`RSVP_METRICS_TOKEN`) every service started by the harness gets.
pub const METRICS_TOKEN: &str = "rsvp-test-metrics-token";
/// The key every command API started by the harness signs its checkpoints with (base64 seed).
pub const AUDIT_SIGNING_KEY: &str = "cnN2cC10ZXN0LWF1ZGl0LXNpZ25pbmcta2V5LTAwMDA=";
/// The token between the dispatcher and the command API in every test.
pub const DISPATCHER_TOKEN: &str = "rsvp-test-dispatcher-token";
use std::time::{Duration, Instant};

/// Polls `check` until it returns `Some`, at most `timeout`; panics naming `what` otherwise.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The partition Kafka's default partitioner (Java-compatible murmur2, which the writer uses)
/// gives a record key in a topic of `partitions` partitions.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    ((murmur2::murmur2(key.as_bytes(), murmur2::KAFKA_SEED) & 0x7fff_ffff) % partitions as u32) as i32
}

/// This crate's folder (`tests/`), read when the test runs (cargo sets `CARGO_MANIFEST_DIR` for
/// it): a test binary reused from a build in another checkout (the shared `CARGO_TARGET_DIR`)
/// must read this checkout's files, not those of the checkout it was built in.
pub fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), Into::into)
}
