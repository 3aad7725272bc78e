//! A short run of the fault injection (`make reliability` runs the long one): a steady mixed load
//! while the projector and the leading command-api are SIGKILLed, PostgreSQL crashes and Kafka
//! restarts, each twice, on a broker and a database server of the test's own. Nothing acknowledged
//! is lost or duplicated, nothing refused is in the log, the query API agrees with the log for every
//! touched invite, and `projector verify` finds no drift.
//!
//! A Kafka restart once made this test report an acknowledged create missing from the log. The
//! likeliest cause, found and fixed since: every read of the log to its end (this audit's too)
//! ended at the first transaction not yet decided, such as one whose commit markers were still
//! pending after a broker restart, and left out what committed after it (`log_reader.rs`). That it
//! was this could not be shown after the fact; the test restarts Kafka so a recurrence is seen.

use rsvp_tests::chaos::{self, FaultKind, Plan};
use std::time::Duration;

const UNDER_TEST: [FaultKind; 4] =
    [FaultKind::ProjectorKill, FaultKind::LeaderKill, FaultKind::PostgresRestart, FaultKind::KafkaRestart];

#[tokio::test(flavor = "multi_thread")]
async fn under_kills_and_restarts_every_acknowledged_command_is_in_the_log_once_and_the_read_side_agrees() {
    let seed = rand::random();
    let plan = Plan {
        faults: Plan::mixed(&UNDER_TEST.map(|k| (k, 2)), seed),
        clients: 4,
        think: Duration::from_millis(20),
        // The test's broker allows short sessions: a quicker failover keeps the test short.
        lease_timeout_ms: 2000,
        partitions: 3,
        settle: Duration::from_millis(1000),
        hold: Duration::from_millis(500),
        recovery_timeout: Duration::from_secs(120),
        seed,
    };
    let report = chaos::run(&plan, |line| eprintln!("{line}")).await.expect("the run could not go on");
    eprintln!("seed {seed}\n{}", report.summary());
    assert_eq!(report.faults.len(), 8, "{:?}", report.aborted);
    assert!(report.audit.acknowledged > 100, "the load kept going: {}", report.summary());
    assert_eq!(report.violations(), Vec::<String>::new(), "seed {seed}");
}
