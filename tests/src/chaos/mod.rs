//! Fault injection under load, end to end, on servers of the run's own (loopback only): a steady
//! mixed load runs over HTTP while the projector and the leading command-api are SIGKILLed, Kafka
//! is restarted and PostgreSQL crashes and restarts. Every command is recorded with its outcome.
//! Once the faults are over and everything has recovered, [`check`] holds the log against the
//! ledger, the query API is compared with the log for every touched invite, and `projector
//! verify` must find no drift. Used by the `rsvp-chaos` binary (`make reliability`) and, briefly,
//! by the test suite (`tests/tests/reliability.rs`).

pub mod check;
pub mod failover;
pub mod ledger;
pub mod load;
pub mod report;
pub mod system;

pub use report::Report;
pub use system::{FaultKind, System};

use ledger::{CommandKind, Ledger, Outcome};
use load::Request;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Plan {
    /// The faults, in the order they are injected.
    pub faults: Vec<FaultKind>,
    pub clients: usize,
    /// Each client's pause between two commands.
    pub think: Duration,
    /// The command-api's writer lease session timeout.
    pub lease_timeout_ms: u64,
    pub partitions: i32,
    /// Steady load between a fault's recovery and the next fault: a random time up to this.
    pub settle: Duration,
    /// How long a stopped server stays down: a random time up to this.
    pub hold: Duration,
    /// Longest wait for the system to serve again after one fault, and for the read side to
    /// agree with the log at the end.
    pub recovery_timeout: Duration,
    pub seed: u64,
}

impl Plan {
    /// `counts` faults of each kind, in an order shuffled by `seed`.
    pub fn mixed(counts: &[(FaultKind, usize)], seed: u64) -> Vec<FaultKind> {
        let mut faults: Vec<FaultKind> = counts.iter().flat_map(|(k, n)| std::iter::repeat_n(*k, *n)).collect();
        let mut rng = StdRng::seed_from_u64(seed);
        for i in (1..faults.len()).rev() {
            faults.swap(i, rng.random_range(0..=i));
        }
        faults
    }
}

/// One injected fault and how long the system took to come back from it.
#[derive(Debug, Clone)]
pub struct FaultRecord {
    pub kind: FaultKind,
    /// Since the start of the run.
    pub at: Duration,
    /// From the fault to the first acknowledged write sent after it.
    pub write_recovery: Option<Duration>,
    /// From the fault to a write made after it being readable on the query API.
    pub read_recovery: Option<Duration>,
}

/// Runs the plan and audits the outcome. `Err` only when the run itself could not go on (a server
/// would not start); the system's failures are in the report's violations.
pub async fn run(plan: &Plan, progress: impl Fn(&str)) -> anyhow::Result<Report> {
    let started_at = chrono::Utc::now();
    progress("starting Kafka, PostgreSQL and the services of the run");
    let mut system = System::start(plan.partitions, plan.lease_timeout_ms).await?;
    let start = Instant::now();
    let ledger = Arc::new(Ledger::new(start));
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load::start(
        plan.clients,
        plan.think,
        &system.env.key,
        system.router.clone(),
        ledger.clone(),
        stop.clone(),
        plan.seed,
    );
    let mut rng = StdRng::seed_from_u64(plan.seed ^ 0x5eed);
    let http = reqwest::Client::new();
    let mut faults = Vec::new();
    let mut aborted = None;
    tokio::time::sleep(plan.settle).await;
    for (n, kind) in plan.faults.iter().enumerate() {
        let hold = plan.hold.mul_f64(rng.random::<f64>());
        let at = system.inject(*kind, hold).await?;
        let recovered = probe(&system, &http, &ledger, at, plan.recovery_timeout).await;
        progress(&format!(
            "fault {}/{}: {} - readable again after {}",
            n + 1,
            plan.faults.len(),
            kind.as_str(),
            recovered.map_or("never".to_owned(), |d| format!("{:.1} s", d.as_secs_f64()))
        ));
        faults.push(FaultRecord { kind: *kind, at: at - start, write_recovery: None, read_recovery: recovered });
        if recovered.is_none() {
            aborted =
                Some(format!("the system did not recover within {:?} from {}", plan.recovery_timeout, kind.as_str()));
            break;
        }
        tokio::time::sleep(plan.settle.mul_f64(0.5 + rng.random::<f64>() / 2.0)).await;
    }
    stop.store(true, Ordering::Release);
    for client in clients {
        client.await?;
    }
    let load_time = start.elapsed();
    let commands = ledger.commands();
    for f in &mut faults {
        f.write_recovery = commands
            .iter()
            .filter(|c| c.sent >= f.at && matches!(c.outcome, Outcome::Acked { .. }))
            .map(|c| c.answered - f.at)
            .min();
    }

    progress("reading the log and checking it against every answer");
    let log = tokio::task::block_in_place(|| system.env.read_log());
    let audit = check::audit(&commands, &log, chrono::Utc::now());
    progress(&format!("comparing {} invites with the query API", audit.invites.len()));
    let disagreements = query_disagreements(&system, &audit, plan.recovery_timeout).await;
    progress("running projector verify");
    let (code, verify) = crate::run_command("projector", &system.env, &["verify"]).await;
    let dead_letters = dead_letters(&system);
    Ok(Report {
        started_at,
        plan: plan.clone(),
        faults,
        aborted,
        load_time,
        commands,
        audit,
        disagreements,
        verify_clean: code == 0 && verify.contains("no drift"),
        verify_output: verify.trim().to_owned(),
        dead_letters,
    })
}

/// After a fault: sends creates (recorded like any command) until one is acknowledged, then
/// reads it on the query API until it is there. The time from the fault to that read.
async fn probe(
    system: &System,
    http: &reqwest::Client,
    ledger: &Ledger,
    fault: Instant,
    timeout: Duration,
) -> Option<Duration> {
    let deadline = fault + timeout;
    let mut attempt = 0usize;
    let id = loop {
        if Instant::now() > deadline {
            return None;
        }
        let urls = system.router.urls();
        let base = &urls[attempt % urls.len()];
        attempt += 1;
        let request = Request {
            kind: CommandKind::Probe,
            subject: None,
            method: reqwest::Method::POST,
            path: "/v1/invites".into(),
            body: json!({ "inviter": { "id": "probe" }, "targets": [{ "type": "email", "value": format!("probe{attempt}@example.com") }] }),
        };
        match load::send(http, base, &system.env.key, ledger, request).await {
            (Outcome::Acked { stream: Some(id), .. }, _) => break id,
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    let url = format!("{}/v1/invites/{id}", system.query.url);
    while Instant::now() < deadline {
        let read = http.get(&url).bearer_auth(&system.env.key).timeout(Duration::from_secs(5)).send().await;
        if read.is_ok_and(|r| r.status().is_success()) {
            return Some(fault.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Invites whose status or version on the query API differs from the log's, once the projector
/// had `timeout` to catch up.
async fn query_disagreements(system: &System, audit: &check::Audit, timeout: Duration) -> Vec<String> {
    use futures::StreamExt;
    let http = reqwest::Client::new();
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<_> = audit.invites.iter().map(|(id, expected)| (*id, expected.clone())).collect();
    let mut last = Vec::new();
    while !pending.is_empty() {
        let answers: Vec<_> = futures::stream::iter(pending.iter().cloned())
            .map(|(id, expected)| {
                let http = http.clone();
                let url = format!("{}/v1/invites/{id}", system.query.url);
                let key = system.env.key.clone();
                async move {
                    let got = async {
                        let r = http.get(&url).bearer_auth(&key).timeout(Duration::from_secs(10)).send().await.ok()?;
                        let body: serde_json::Value = r.json().await.ok()?;
                        Some((body["status"].as_str()?.to_owned(), body["version"].as_u64()?))
                    }
                    .await;
                    (id, expected, got)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let wrong: Vec<_> = answers.into_iter().filter(|(_, expected, got)| got.as_ref() != Some(expected)).collect();
        last = wrong
            .iter()
            .map(|(id, expected, got)| format!("invite {id}: the log says {expected:?}, the query API {got:?}"))
            .collect();
        pending = wrong.into_iter().map(|(id, expected, _)| (id, expected)).collect();
        if pending.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    last
}

/// Records in the dead-letter topic: events the projector refused (none is expected).
fn dead_letters(system: &System) -> usize {
    let mut n = 0;
    let topic = format!("{}.dlq", system.env.topic);
    let read = service_kit::kafka::read_to_end(
        &system.env.brokers,
        &topic,
        &Default::default(),
        Duration::from_secs(30),
        |_, _, _| {
            n += 1;
            Ok(())
        },
    );
    // No dead-letter topic: nothing was ever dead-lettered.
    if read.is_err() {
        return 0;
    }
    n
}
