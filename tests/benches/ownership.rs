//! Ownership by shard (issue 16) measured on real processes: the release `command-api` binary in
//! `RSVP_WRITER_OWNERSHIP=shards`, over a topic of 12 partitions with `--events=N` invites of
//! `--tenants=T` tenants loaded first (default 1,000,000 of 1,000).
//!
//! 0. The baseline, in the same run: throughput of one instance with ownership by lease (one
//!    writer and one producer for every shard).
//! 1. Throughput with one instance, then with two (requests spread evenly over both, as a load
//!    balancer would: half of them are handed to the other instance). Closed loop, `--clients=C`
//!    (32) at once, `--seconds=S` (10) each; CPU seconds per 1,000 commands per instance, from
//!    /proc; peak RSS (VmHWM) per instance.
//! 2. Failover of one of two instances under load, after a graceful stop (SIGTERM) and after a
//!    SIGKILL: the load goes to the survivor only; every answer is timed per shard. The survivor's
//!    own shards must answer throughout (any 503 there is counted); each moved shard's outage is
//!    from the signal to its first success after its last refusal.
//!
//!   cargo build --release --bins && cargo bench -p rsvp-tests --bench ownership -- [--events=N]
//!     [--tenants=T] [--clients=C] [--seconds=S] [--warm]
//!
//! `--warm`: the instances keep warm standbys (`RSVP_WRITER_WARM_STANDBYS=true`); each failover
//! starts once the survivor is warm on the other's shards.
//!
//! Needs Kafka and PostgreSQL as the tests do (`RSVP_TEST_KAFKA_BROKERS`, `RSVP_TEST_DATABASE_URL`;
//! the README's test section).

use reqwest::StatusCode;
use rsvp_tests::{Service, TestEnv};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 12;
/// Tenants with API keys the load writes for, at least one per shard.
const LOAD_TENANTS: usize = 48;

fn arg(name: &str, default: u64) -> u64 {
    std::env::args().find_map(|a| a.strip_prefix(&format!("--{name}=")).and_then(|v| v.parse().ok())).unwrap_or(default)
}

/// `--warm`: every instance keeps warm standbys of the shards it does not own.
fn warm_standbys() -> bool {
    std::env::args().any(|a| a == "--warm")
}

fn shards_mode() -> Vec<(&'static str, String)> {
    vec![
        ("RSVP_WRITER_OWNERSHIP", "shards".into()),
        ("RSVP_WRITER_WARM_STANDBYS", warm_standbys().to_string()),
        ("RSVP_RATE_LIMIT_PER_SECOND", "0".into()),
        ("RUST_LOG", "warn,command_api=info".into()),
    ]
}

/// With `--warm`, waits until `service` keeps warm standbys of `shards`.
async fn warm_on(http: &reqwest::Client, service: &Service, shards: &BTreeSet<i32>) {
    if !warm_standbys() {
        return;
    }
    let started = Instant::now();
    until("warm standbys", || async {
        let body: Value = http.get(format!("{}/readyz", service.url)).send().await.ok()?.json().await.ok()?;
        let warm: BTreeSet<i32> = body["warm"].as_array()?.iter().filter_map(|p| Some(p.as_i64()? as i32)).collect();
        (warm == *shards).then_some(())
    })
    .await;
    println!("{} warm on {shards:?} after {:.2?}", service.url, started.elapsed());
}

/// (utime + stime in seconds, VmHWM in MB) of a process.
fn usage(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After the command name: state is field 3, utime 14 and stime 15 (1-based), so 11 and 12 here.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    (cpu, hwm / 1024.0)
}

async fn owned(http: &reqwest::Client, service: &Service) -> Option<BTreeSet<i32>> {
    service.shards_served(http).await
}

async fn until<T, F: std::future::Future<Output = Option<T>>>(what: &str, mut f: impl FnMut() -> F) -> T {
    let started = Instant::now();
    loop {
        if let Some(t) = f().await {
            return t;
        }
        assert!(started.elapsed() < Duration::from_secs(900), "{what}: not within 15 minutes");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn divided(http: &reqwest::Client, a: &Service, b: &Service) -> (BTreeSet<i32>, BTreeSet<i32>) {
    rsvp_tests::shards_divided(http, a, b, PARTITIONS as usize, Duration::from_secs(900)).await
}

/// One answer: when (since the load started), the tenant's shard, its status.
type Answer = (Duration, i32, StatusCode);

/// Creates invites for `seconds`, `clients` at a time, each request to `targets[i % len]`.
async fn load(
    http: &reqwest::Client,
    tenants: &[(events::TenantId, String)],
    targets: &[String],
    clients: usize,
    seconds: Duration,
    during: impl std::future::Future<Output = ()>,
) -> (Vec<Answer>, Instant) {
    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (http, tenants, targets, next) = (http.clone(), tenants.to_vec(), targets.to_vec(), next.clone());
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while started.elapsed() < seconds {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let (tenant, key) = &tenants[i % tenants.len()];
                    let url = &targets[i % targets.len()];
                    let sent = http
                        .post(format!("{url}/v1/invites"))
                        .bearer_auth(key)
                        .json(&json!({ "inviter": { "id": "u" }, "targets": [{ "type": "email", "value": format!("l{i}@example.com") }] }))
                        .send()
                        .await;
                    let status = sent.map(|r| r.status()).unwrap_or(StatusCode::BAD_GATEWAY);
                    answers.push((started.elapsed(), events::shard_of(*tenant, PARTITIONS as usize), status));
                    if !status.is_success() {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                answers
            })
        })
        .collect();
    during.await;
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (all, started)
}

fn throughput(label: &str, answers: &[Answer], seconds: Duration, cpu: &[(String, f64)]) -> Value {
    let ok = answers.iter().filter(|a| a.2 == StatusCode::CREATED).count();
    let refused = answers.len() - ok;
    let per_second = ok as f64 / seconds.as_secs_f64();
    let cpu_per_1000: Vec<String> =
        cpu.iter().map(|(name, s)| format!("{name} {:.2} CPU s", s / ok.max(1) as f64 * 1000.0)).collect();
    println!(
        "{label}: {per_second:.0} commands/s ({ok} created, {refused} refused); per 1,000 commands: {}",
        cpu_per_1000.join(", ")
    );
    json!({ "label": label, "per_second": per_second, "created": ok, "refused": refused,
            "cpu_s_per_1000": cpu.iter().map(|(n, s)| (n.clone(), s / ok.max(1) as f64 * 1000.0)).collect::<BTreeMap<_, _>>() })
}

/// The failover figures: refusals on the survivor's shards, and each moved shard's outage.
fn failover(
    label: &str,
    answers: &[Answer],
    signal_at: Duration,
    kept: &BTreeSet<i32>,
    moved: &BTreeSet<i32>,
) -> Value {
    let refused_kept = answers.iter().filter(|a| kept.contains(&a.1) && a.2 != StatusCode::CREATED).count();
    let served_kept = answers.iter().filter(|a| kept.contains(&a.1) && a.2 == StatusCode::CREATED).count();
    let mut outages = BTreeMap::new();
    for p in moved {
        let mine: Vec<&Answer> = answers.iter().filter(|a| a.1 == *p && a.0 >= signal_at).collect();
        let last_refusal = mine.iter().filter(|a| a.2 != StatusCode::CREATED).map(|a| a.0).max();
        let back = match last_refusal {
            None => Some(Duration::ZERO),
            Some(at) => mine.iter().filter(|a| a.2 == StatusCode::CREATED && a.0 > at).map(|a| a.0).min(),
        };
        outages.insert(*p, back.map(|b| b.saturating_sub(signal_at).as_secs_f64()));
    }
    let worst = outages.values().filter_map(|o| *o).fold(0.0, f64::max);
    println!(
        "{label}: the survivor's {} shards: {served_kept} created, {refused_kept} refused; the {} moved shards answer \
         again after (s from the signal): {outages:?}; worst {worst:.2} s",
        kept.len(),
        moved.len()
    );
    json!({ "label": label, "kept_refused": refused_kept, "kept_created": served_kept, "moved_outage_s": outages, "worst_s": worst })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (events_n, tenants_n) = (arg("events", 1_000_000) as usize, arg("tenants", 1000) as usize);
    let (clients, seconds) = (arg("clients", 32) as usize, Duration::from_secs(arg("seconds", 10)));
    let env = TestEnv::with_partitions(PARTITIONS).await;
    let http = reqwest::Client::builder().pool_max_idle_per_host(64).timeout(Duration::from_secs(30)).build()?;
    let started = Instant::now();
    if events_n > 0 {
        rsvp_tests::load::invites_created_by(&env.brokers, &env.topic, events_n, tenants_n).await?;
    }
    println!("loaded {events_n} invites of {tenants_n} tenants in {:.1?}", started.elapsed());
    let mut tenants = vec![(env.tenant, env.key.clone())];
    while tenants.len() < LOAD_TENANTS
        || (0..PARTITIONS).any(|p| !tenants.iter().any(|(t, _)| events::shard_of(*t, PARTITIONS as usize) == p))
    {
        tenants.push(env.other_tenant(&format!("load-{}", tenants.len())).await);
    }
    let mut report = serde_json::Map::new();

    // The baseline: one instance holding every shard under one lease (one writer, one producer).
    let lease = vec![("RSVP_RATE_LIMIT_PER_SECOND", "0".into()), ("RUST_LOG", "warn".into())];
    let mut baseline = Service::start("command-api", &env, &lease).await;
    baseline.wait_ready(Duration::from_secs(900)).await;
    let pid = baseline.pid().expect("running");
    let before = usage(pid).0;
    let (answers, _) = load(&http, &tenants, std::slice::from_ref(&baseline.url), clients, seconds, async {}).await;
    let one =
        throughput("baseline: one instance, one lease", &answers, seconds, &[("a".into(), usage(pid).0 - before)]);
    report.insert("baseline_lease".into(), one);
    baseline.signal("TERM");
    until("the baseline to stop", || {
        let running = baseline.is_running();
        async move { (!running).then_some(()) }
    })
    .await;

    // One instance.
    let started = Instant::now();
    let a = Service::start("command-api", &env, &shards_mode()).await;
    a.wait_ready(Duration::from_secs(900)).await;
    let pid_a = a.pid().expect("running");
    println!(
        "one instance ready over {events_n} events in {:.2?} (the placement found once, then every shard read); peak RSS {:.0} MB",
        started.elapsed(),
        usage(pid_a).1
    );
    // Let the first snapshots be stored (they are due at once after a start over this many events).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let before = usage(pid_a).0;
    let (answers, _) = load(&http, &tenants, std::slice::from_ref(&a.url), clients, seconds, async {}).await;
    let one = throughput("one instance", &answers, seconds, &[("a".into(), usage(pid_a).0 - before)]);
    report.insert("one_instance".into(), one);

    // Two instances, requests spread over both.
    let started = Instant::now();
    let b = Service::start("command-api", &env, &shards_mode()).await;
    let (on_a, on_b) = divided(&http, &a, &b).await;
    println!("two instances: divided in {:.2?}: {on_a:?} / {on_b:?}", started.elapsed());
    let pid_b = b.pid().expect("running");
    let (ca, cb) = (usage(pid_a).0, usage(pid_b).0);
    let (answers, _) = load(&http, &tenants, &[a.url.clone(), b.url.clone()], clients, seconds, async {}).await;
    let two = throughput(
        "two instances",
        &answers,
        seconds,
        &[("a".into(), usage(pid_a).0 - ca), ("b".into(), usage(pid_b).0 - cb)],
    );
    report.insert("two_instances".into(), two);
    let (rss_a, rss_b) = (usage(pid_a).1, usage(pid_b).1);
    println!("peak RSS: a {rss_a:.0} MB, b {rss_b:.0} MB");
    report.insert("peak_rss_mb".into(), json!({ "a": rss_a, "b": rss_b }));

    // Failover after a graceful stop: the load goes to a; b is stopped at 2 s.
    warm_on(&http, &a, &on_b).await;
    if warm_standbys() {
        println!("peak RSS with warm standbys: a {:.0} MB, b {:.0} MB", usage(pid_a).1, usage(pid_b).1);
    }
    let signal_at = Duration::from_secs(2);
    let stop_b = async {
        tokio::time::sleep(signal_at).await;
        b.signal("TERM");
    };
    let (answers, _) = load(&http, &tenants, std::slice::from_ref(&a.url), clients, seconds, stop_b).await;
    report.insert("failover_graceful".into(), failover("graceful stop (SIGTERM)", &answers, signal_at, &on_a, &on_b));
    until("a to own every shard", || async { (owned(&http, &a).await?.len() == PARTITIONS as usize).then_some(()) })
        .await;
    drop(b);

    // Failover after a SIGKILL.
    let mut b = Service::start("command-api", &env, &shards_mode()).await;
    let (on_a, on_b) = divided(&http, &a, &b).await;
    warm_on(&http, &a, &on_b).await;
    let kill_b = async {
        tokio::time::sleep(signal_at).await;
        b.kill().await;
    };
    let (answers, _) =
        load(&http, &tenants, std::slice::from_ref(&a.url), clients, seconds.max(Duration::from_secs(20)), kill_b)
            .await;
    report.insert("failover_sigkill".into(), failover("SIGKILL", &answers, signal_at, &on_a, &on_b));
    println!("result: {}", Value::Object(report));
    Ok(())
}
