//! A short run of the fault injection (`make reliability` runs the long one): a steady mixed load
//! while the projector and the leading command-api are SIGKILLed, Kafka is restarted and
//! PostgreSQL crashes, each twice, on a broker and a database server of the test's own. Nothing
//! acknowledged is lost or duplicated, nothing refused is in the log, the query API agrees with
//! the log for every touched invite, and `projector verify` finds no drift.

use rsvp_tests::chaos::{self, FaultKind, Plan};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn under_kills_and_restarts_every_acknowledged_command_is_in_the_log_once_and_the_read_side_agrees() {
    let seed = rand::random();
    let plan = Plan {
        faults: Plan::mixed(&FaultKind::ALL.map(|k| (k, 2)), seed),
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
