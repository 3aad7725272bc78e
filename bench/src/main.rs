//! `make bench` (see `deploy/local/bench.sh`, which starts everything and sets the environment
//! read here): runs every figure of the benchmark list against the running system and its raw
//! baseline side by side, alternating within each round, and writes `BENCHMARKS.md`, the plots
//! (`benchmarks/*.svg`, drawn by gnuplot) and the raw figures (`benchmarks/results.json`).
//!
//! Every figure is the median of `BENCH_ROUNDS` (3) rounds unless its table says otherwise; each
//! round runs the system, then its baseline, so slow drift of the machine hits both alike.

mod probe;
mod procs;
mod raw;
mod report;

use anyhow::Context as _;
use procs::{Service, Usage, Window};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What a create request carries: what a product typically sends.
const CREATE_BODY: &str = r#"{"inviter":{"id":"user-1","name":"Ann Inviter","email":"ann@example.com"},"targets":[{"type":"email","value":"bob@example.com","name":"Bob"}],"message":"join us","expires_in_days":7}"#;
const WRITE_CONNECTIONS: usize = 64;
const READ_CONNECTIONS: usize = 32;

fn env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("{name} is not set (run `make bench`)"))
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// One measured run: which figure, which side, its numbers, and what each process spent.
pub struct Run {
    pub figure: String,
    pub side: String,
    pub round: usize,
    pub usage: BTreeMap<String, Usage>,
}

/// An `oha` run's summary (latencies in milliseconds).
#[derive(Clone, Debug)]
pub struct Oha {
    pub rps: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub ok: u64,
    pub failed: u64,
}

pub struct Bench {
    pub command_url: String,
    pub query_url: String,
    pub key: String,
    pub brokers: String,
    pub pg: PgTarget,
    pub services: Vec<Service>,
    pub seconds: u64,
    pub rounds: usize,
    pub oha: String,
    pub runs: Vec<Run>,
    pub results: serde_json::Map<String, Value>,
    pub notes: Vec<String>,
}

pub struct PgTarget {
    pub host: String,
    pub port: String,
    pub user: String,
    pub password: String,
}

impl Bench {
    fn duration(&self) -> Duration {
        Duration::from_secs(self.seconds)
    }

    fn record(&mut self, figure: &str, side: &str, round: usize, usage: BTreeMap<String, Usage>) {
        self.runs.push(Run { figure: figure.into(), side: side.into(), round, usage });
    }

    async fn oha(
        &self,
        url: &str,
        connections: usize,
        rate: Option<f64>,
        post: Option<&str>,
        secs: u64,
    ) -> anyhow::Result<(Oha, Option<Usage>)> {
        let mut args: Vec<String> = vec![
            "--no-tui".into(),
            "--output-format".into(),
            "json".into(),
            "-z".into(),
            format!("{secs}s"),
            "-c".into(),
            connections.to_string(),
            "-H".into(),
            format!("Authorization: Bearer {}", self.key),
        ];
        if let Some(rate) = rate {
            args.extend(["-q".into(), format!("{rate:.0}"), "--latency-correction".into()]);
        }
        if let Some(body) = post {
            args.extend(["-m".into(), "POST".into(), "-T".into(), "application/json".into(), "-d".into(), body.into()]);
        }
        args.push(url.into());
        let (stdout, usage) = procs::timed(&self.oha, &args).await?;
        let v: Value = serde_json::from_str(&stdout).with_context(|| format!("oha output: {stdout}"))?;
        let pct = |k: &str| v["latencyPercentiles"][k].as_f64().unwrap_or(f64::NAN) * 1000.0;
        let (mut ok, mut failed) = (0, 0);
        for (code, n) in v["statusCodeDistribution"].as_object().into_iter().flatten() {
            let n = n.as_u64().unwrap_or(0);
            if code.starts_with('2') {
                ok += n
            } else {
                failed += n
            }
        }
        // Requests cut by the end of the run are not failures of the system.
        for (error, n) in v["errorDistribution"].as_object().into_iter().flatten() {
            if !error.contains("deadline") {
                failed += n.as_u64().unwrap_or(0);
            }
        }
        // oha's own rate counts every response; ours counts the 2xx.
        let rps = ok as f64 / v["summary"]["total"].as_f64().unwrap_or(secs as f64);
        Ok((Oha { rps, p50: pct("p50"), p99: pct("p99"), p999: pct("p99.9"), ok, failed }, usage))
    }

    fn note_failures(&mut self, what: &str, o: &Oha) {
        if o.failed > 0 {
            self.notes.push(format!("{what}: {} of {} requests failed (not 2xx)", o.failed, o.ok + o.failed));
        }
    }

    fn psql_env(&self, c: &mut tokio::process::Command) {
        c.env("PGHOST", &self.pg.host)
            .env("PGPORT", &self.pg.port)
            .env("PGUSER", &self.pg.user)
            .env("PGPASSWORD", &self.pg.password);
    }
}

fn oha_json(o: &Oha) -> Value {
    json!({ "rps": o.rps, "p50_ms": o.p50, "p99_ms": o.p99, "p999_ms": o.p999, "ok": o.ok, "failed": o.failed })
}

fn ms_percentiles(sorted: &[f64]) -> Value {
    json!({
        "p50_ms": percentile(sorted, 0.5) * 1000.0,
        "p99_ms": percentile(sorted, 0.99) * 1000.0,
        "p999_ms": percentile(sorted, 0.999) * 1000.0,
        "samples": sorted.len(),
    })
}

fn merge(usage: &mut BTreeMap<String, Usage>, name: &str, extra: Option<Usage>) {
    if let Some(u) = extra {
        usage.insert(name.into(), u);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let out_dir = std::path::PathBuf::from(env("BENCH_OUT_DIR")?);
    let services: Vec<Service> = env("BENCH_PIDS")?
        .split(',')
        .filter_map(|p| {
            let (name, pid) = p.split_once('=')?;
            Some(Service { name: name.into(), pid: pid.parse().ok()?, tree: name == "postgresql" })
        })
        .collect();
    let mut bench = Bench {
        command_url: env("BENCH_COMMAND_URL")?,
        query_url: env("BENCH_QUERY_URL")?,
        key: env("BENCH_API_KEY")?,
        brokers: env("RSVP_KAFKA_BROKERS")?,
        pg: PgTarget {
            host: "127.0.0.1".into(),
            port: env("PG_PORT")?,
            user: env("PG_USER")?,
            password: env("PG_PASSWORD")?,
        },
        services,
        seconds: env_or("BENCH_SECONDS", 10),
        rounds: env_or("BENCH_ROUNDS", 3),
        oha: env_or("BENCH_OHA", "oha".to_string()),
        runs: Vec::new(),
        results: serde_json::Map::new(),
        notes: Vec::new(),
    };
    let (machine_before, ours_before) = (procs::machine_busy_ticks(), procs::our_ticks(&bench.services));
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    bench.results.insert("load_before".into(), json!(load_before.trim()));

    writes(&mut bench).await.context("write figures")?;
    reads(&mut bench).await.context("read figures")?;
    in_process(&mut bench).await.context("catch-up, writer start, deep page, emails")?;

    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    bench.results.insert("load_after".into(), json!(load_after.trim()));
    // What the rest of the machine took meanwhile (other builds and tests): the noise in the figures.
    let machine = procs::machine_busy_ticks().saturating_sub(machine_before);
    let ours = procs::our_ticks(&bench.services).saturating_sub(ours_before);
    bench.results.insert(
        "cpu".into(),
        json!({
            "machine_busy_s": procs::seconds(machine),
            "ours_s": procs::seconds(ours),
            "others_s": procs::seconds(machine.saturating_sub(ours)),
            "available_s": started.elapsed().as_secs_f64() * std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
        }),
    );
    bench.results.insert("elapsed_s".into(), json!(started.elapsed().as_secs_f64()));
    report::write(&bench, &out_dir).await?;
    println!("wrote {} in {:.0?}", out_dir.join("BENCHMARKS.md").display(), started.elapsed());
    Ok(())
}

/// Items 1-3: throughput at saturation, latency at 50% and 80% of it, freshness under that load.
async fn writes(bench: &mut Bench) -> anyhow::Result<()> {
    let create_url = format!("{}/v1/invites", bench.command_url);
    let raw_topic = format!("rsvp-bench-raw-{}", uuid::Uuid::new_v4().simple());
    rsvp_tests::infra::create_topic(&bench.brokers, &raw_topic, env_or("RSVP_KAFKA_PARTITIONS", 12)).await?;
    let writer = raw::RawWriter::open(&bench.brokers, &raw_topic)?;
    // The raw baseline runs in this process; Kafka works for it as for the system.
    let me: Vec<Service> = std::iter::once(procs::this_process())
        .chain(bench.services.iter().filter(|s| s.name == "kafka").cloned())
        .collect();

    println!("warming up the write path");
    bench.oha(&create_url, WRITE_CONNECTIONS, None, Some(CREATE_BODY), 3).await?;
    raw::saturate(&writer, WRITE_CONNECTIONS, Duration::from_secs(3)).await?;

    // Freshness with the system idle, as a reference.
    let probe = probe::Probe {
        http: reqwest::Client::new(),
        command_url: bench.command_url.clone(),
        query_url: bench.query_url.clone(),
        key: bench.key.clone(),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let idle = {
        let run = probe.run(Duration::from_millis(50), stopped, CREATE_BODY);
        let timer = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let _ = stop.send(true);
        };
        let (samples, ()) = tokio::join!(run, timer);
        samples?
    };

    // 1. Saturation.
    // Kafka's own load generator, when its tools jar is at hand (`make run` fetches it).
    let kafka_lib = std::env::var("KAFKA_LIB_DIR").ok().filter(|dir| {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("kafka-tools-"))
    });
    let (mut system, mut baseline, mut kafka) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=bench.rounds {
        println!("1. write saturation, round {round}");
        let w = Window::begin(&bench.services);
        let (o, u) = bench.oha(&create_url, WRITE_CONNECTIONS, None, Some(CREATE_BODY), bench.seconds).await?;
        let mut usage = w.end();
        merge(&mut usage, "oha", u);
        bench.record("1. writes at saturation", "rsvp", round, usage);
        bench.note_failures("1. writes at saturation", &o);
        system.push(o);

        let w = Window::begin(&me);
        let rate = raw::saturate(&writer, WRITE_CONNECTIONS, bench.duration()).await?;
        bench.record("1. writes at saturation", "raw rdkafka", round, w.end());
        baseline.push(rate);

        if let Some(lib) = &kafka_lib {
            let w = Window::begin(&bench.services);
            let (perf, usage) = producer_performance(bench, lib).await?;
            let mut all = w.end();
            merge(&mut all, "ProducerPerformance", usage);
            bench.record("1. writes at saturation", "Kafka ProducerPerformance", round, all);
            kafka.push(perf);
        }
    }
    let saturation = median(&system.iter().map(|o| o.rps).collect::<Vec<_>>());
    bench.results.insert(
        "saturation".into(),
        json!({
            "connections": WRITE_CONNECTIONS,
            "system": system.iter().map(oha_json).collect::<Vec<_>>(),
            "raw": baseline,
            "kafka_producer_performance": kafka,
        }),
    );

    // 2 and 3. Fixed rates, with the freshness probe running beside the system's load.
    let loads: Vec<f64> =
        env_or("BENCH_WRITE_LOADS", "0.5,0.8".to_string()).split(',').filter_map(|l| l.trim().parse().ok()).collect();
    let mut fixed = Vec::new();
    for load in loads {
        let rate = (saturation * load).max(1.0);
        let (mut system, mut baseline, mut fresh) = (Vec::new(), Vec::new(), Vec::new());
        for round in 1..=bench.rounds {
            println!("2-3. writes at {:.0}% of saturation ({rate:.0}/s), round {round}", load * 100.0);
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let w = Window::begin(&bench.services);
            let probing = probe.run(Duration::from_millis(50), stopped, CREATE_BODY);
            let loading = async {
                let r = bench.oha(&create_url, WRITE_CONNECTIONS, Some(rate), Some(CREATE_BODY), bench.seconds).await;
                let _ = stop.send(true);
                r
            };
            let (samples, loaded) = tokio::join!(probing, loading);
            let (o, u) = loaded?;
            let samples = samples?;
            let mut usage = w.end();
            merge(&mut usage, "oha", u);
            let figure = format!("2. writes at {:.0}%", load * 100.0);
            bench.record(&figure, "rsvp (+ freshness probe)", round, usage);
            bench.note_failures(&figure, &o);
            system.push(o);
            let mut f: Vec<f64> = samples.iter().map(|s| s.fresh).collect();
            f.sort_by(f64::total_cmp);
            fresh.push(json!({
                "p50_ms": percentile(&f, 0.5) * 1000.0,
                "p99_ms": percentile(&f, 0.99) * 1000.0,
                "max_ms": f.last().copied().unwrap_or(f64::NAN) * 1000.0,
                "samples": f.len(),
                "trace": samples.iter().map(|s| [s.at, s.fresh * 1000.0, s.write * 1000.0]).collect::<Vec<_>>(),
            }));

            let w = Window::begin(&me);
            let latencies = raw::at_rate(&writer, rate, bench.duration()).await?;
            bench.record(&figure, "raw rdkafka", round, w.end());
            baseline.push(ms_percentiles(&latencies));
        }
        fixed.push(json!({
            "load": load,
            "rate": rate,
            "system": system.iter().map(oha_json).collect::<Vec<_>>(),
            "raw": baseline,
            "freshness": fresh,
        }));
    }
    let mut idle_f: Vec<f64> = idle.iter().map(|s| s.fresh).collect();
    idle_f.sort_by(f64::total_cmp);
    bench.results.insert("fixed_rate".into(), json!(fixed));
    bench.results.insert(
        "freshness_idle".into(),
        json!({
            "p50_ms": percentile(&idle_f, 0.5) * 1000.0,
            "p99_ms": percentile(&idle_f, 0.99) * 1000.0,
            "samples": idle_f.len(),
            "write_p50_ms": median(&idle.iter().map(|s| s.write * 1000.0).collect::<Vec<_>>()),
        }),
    );
    rsvp_tests::infra::delete_topic(&bench.brokers, &raw_topic).await;
    Ok(())
}

/// Kafka's own load generator, as the issue measured it: 600-byte records, acks=all, one
/// transaction every 50 ms. Records per second and its latency percentiles (ms).
async fn producer_performance(bench: &Bench, lib: &str) -> anyhow::Result<(Value, Option<Usage>)> {
    let topic = format!("rsvp-bench-perf-{}", uuid::Uuid::new_v4().simple());
    rsvp_tests::infra::create_topic(&bench.brokers, &topic, 12).await?;
    let records: u64 = env_or("BENCH_KAFKA_PERF_RECORDS", 500_000);
    let args: Vec<String> = vec![
        "-Xmx512m".into(),
        "-cp".into(),
        format!("{lib}/*"),
        "org.apache.kafka.tools.ProducerPerformance".into(),
        "--topic".into(),
        topic.clone(),
        "--num-records".into(),
        records.to_string(),
        "--record-size".into(),
        "600".into(),
        "--throughput".into(),
        "-1".into(),
        "--transactional-id".into(),
        format!("rsvp-bench-perf-{}", uuid::Uuid::new_v4().simple()),
        "--transaction-duration-ms".into(),
        "50".into(),
        "--producer-props".into(),
        format!("bootstrap.servers={}", bench.brokers),
        "acks=all".into(),
    ];
    let (stdout, usage) = procs::timed("java", &args).await?;
    rsvp_tests::infra::delete_topic(&bench.brokers, &topic).await;
    // "500000 records sent, 62735.0 records/sec (35.90 MB/sec), 7.70 ms avg latency, 331.00 ms max
    // latency, 3 ms 50th, 22 ms 95th, 43 ms 99th, 134 ms 99.9th."
    let last = stdout.lines().rev().find(|l| l.contains("records/sec")).unwrap_or_default().to_owned();
    let number_before = |suffix: &str| -> f64 {
        last.split(", ")
            .find(|part| part.ends_with(suffix) || part.trim_end_matches('.').ends_with(suffix))
            .and_then(|part| part.split_whitespace().next()?.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let rate: f64 = last.split(", ").nth(1).and_then(|p| p.split_whitespace().next()?.parse().ok()).unwrap_or(f64::NAN);
    Ok((
        json!({
            "records": records,
            "rate": rate,
            "avg_ms": number_before("avg latency"),
            "p50_ms": number_before("50th"),
            "p99_ms": number_before("99th"),
            "p999_ms": number_before("99.9th"),
            "line": last,
        }),
        usage,
    ))
}

/// Item 6: detail and list throughput at 32 connections beside `pgbench -S` at 32 clients, then
/// their latency at 50% and 80% of that throughput.
async fn reads(bench: &mut Bench) -> anyhow::Result<()> {
    // An invite to read: created and sent, so its detail has a delivery.
    let http = reqwest::Client::new();
    let created: Value = http
        .post(format!("{}/v1/invites", bench.command_url))
        .bearer_auth(&bench.key)
        .header("content-type", "application/json")
        .body(CREATE_BODY.replacen('{', r#"{"send":"email","#, 1))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = created["id"].as_str().context("no id")?.to_owned();
    let version = created["version"].as_u64().unwrap_or(1);
    http.get(format!("{}/v1/invites/{id}?min_version={version}", bench.query_url))
        .bearer_auth(&bench.key)
        .send()
        .await?
        .error_for_status()?;
    let detail_url = format!("{}/v1/invites/{id}", bench.query_url);
    let list_url = format!("{}/v1/invites?limit=50", bench.query_url);

    let database = "rsvp_bench_pgbench";
    let scale: u32 = env_or("BENCH_PGBENCH_SCALE", 10);
    let mut c = tokio::process::Command::new("psql");
    bench.psql_env(&mut c);
    let drop = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
    c.args(["-d", "postgres", "-X", "-q", "-c", drop.as_str(), "-c", format!("CREATE DATABASE {database}").as_str()]);
    anyhow::ensure!(c.status().await?.success(), "cannot create the pgbench database");
    let mut c = tokio::process::Command::new("pgbench");
    bench.psql_env(&mut c);
    c.args(["-i", "-q", "-s", scale.to_string().as_str(), database])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    anyhow::ensure!(c.status().await?.success(), "pgbench -i failed");

    println!("warming up the read path");
    bench.oha(&detail_url, READ_CONNECTIONS, None, None, 2).await?;
    bench.oha(&list_url, READ_CONNECTIONS, None, None, 2).await?;

    let (mut detail, mut list, mut pg) = (Vec::new(), Vec::new(), Vec::new());
    for round in 1..=bench.rounds {
        println!("6. reads at {READ_CONNECTIONS} connections, round {round}");
        for (what, url, into) in [("detail", &detail_url, &mut detail), ("list limit=50", &list_url, &mut list)] {
            let w = Window::begin(&bench.services);
            let (o, u) = bench.oha(url, READ_CONNECTIONS, None, None, bench.seconds).await?;
            let mut usage = w.end();
            merge(&mut usage, "oha", u);
            let figure = format!("6. {what} at saturation");
            bench.record(&figure, "rsvp", round, usage);
            bench.note_failures(&figure, &o);
            into.push(o);
        }
        let w = Window::begin(&bench.services);
        let (clients, seconds) = (READ_CONNECTIONS.to_string(), bench.seconds.to_string());
        let args = ["-S", "-n", "-c", clients.as_str(), "-j", "2", "-T", seconds.as_str(), database];
        let mut c = tokio::process::Command::new("pgbench");
        bench.psql_env(&mut c);
        let output = c.args(&args).output().await?;
        let usage = w.end();
        bench.record("6. pgbench -S", "PostgreSQL", round, usage);
        let text = String::from_utf8_lossy(&output.stdout);
        let tps = text
            .lines()
            .find(|l| l.starts_with("tps = "))
            .and_then(|l| l[6..].split_whitespace().next()?.parse::<f64>().ok())
            .with_context(|| format!("pgbench output: {text}{}", String::from_utf8_lossy(&output.stderr)))?;
        let latency = text
            .lines()
            .find(|l| l.starts_with("latency average = "))
            .and_then(|l| l[18..].split_whitespace().next()?.parse::<f64>().ok());
        pg.push(json!({ "tps": tps, "latency_avg_ms": latency }));
    }

    // Latency against offered load: 50% and 80% of each endpoint's own throughput.
    let mut curves = Vec::new();
    for (what, url, sat) in [("detail", &detail_url, &detail), ("list", &list_url, &list)] {
        let max = median(&sat.iter().map(|o| o.rps).collect::<Vec<_>>());
        for load in [0.5, 0.8] {
            println!("6. {what} at {:.0}% ({:.0} req/s)", load * 100.0, max * load);
            let w = Window::begin(&bench.services);
            let (o, u) = bench.oha(url, READ_CONNECTIONS, Some(max * load), None, bench.seconds).await?;
            let mut usage = w.end();
            merge(&mut usage, "oha", u);
            bench.record(&format!("6. {what} at {:.0}%", load * 100.0), "rsvp", 1, usage);
            curves.push(json!({ "endpoint": what, "load": load, "rate": max * load, "result": oha_json(&o) }));
        }
    }
    bench.results.insert(
        "reads".into(),
        json!({
            "connections": READ_CONNECTIONS,
            "detail": detail.iter().map(oha_json).collect::<Vec<_>>(),
            "list": list.iter().map(oha_json).collect::<Vec<_>>(),
            "pgbench": pg,
            "pgbench_scale": scale,
            "fixed_rate": curves,
        }),
    );
    let mut c = tokio::process::Command::new("psql");
    bench.psql_env(&mut c);
    c.args(["-d", "postgres", "-X", "-q", "-c", drop.as_str()]);
    c.status().await?;
    Ok(())
}

/// Items 4, 5, the deep page of 6 and 7: the benches of the crates (`cargo bench`), run as they
/// are. `emails` starts a command API, a dispatcher and a Mailpit of its own as processes.
async fn in_process(bench: &mut Bench) -> anyhow::Result<()> {
    let servers: Vec<Service> =
        bench.services.iter().filter(|s| s.name == "kafka" || s.name == "postgresql").cloned().collect();
    let items = [
        (
            "4. projector catch-up",
            "BENCH_CATCHUP_BIN",
            "catchup",
            vec![env_or("BENCH_CATCHUP_EVENTS", 300_000u64).to_string(), "--rounds".into(), bench.rounds.to_string()],
        ),
        (
            "5. writer ready",
            "BENCH_RESTART_BIN",
            "restart",
            vec![env_or("BENCH_RESTART_EVENTS", 1_000_000u64).to_string(), "--tenants=1000".into()],
        ),
        ("6. deep page", "BENCH_LIST_BIN", "list", vec![env_or("BENCH_LIST_INVITES", 1_000_000u64).to_string()]),
        (
            "7. emails",
            "BENCH_EMAILS_BIN",
            "emails",
            // One round by default: at lettre's ~22 emails/s a round of 2,000 takes over 3 minutes.
            vec![
                env_or("BENCH_EMAILS", 2_000u64).to_string(),
                "--rounds".into(),
                env_or("BENCH_EMAILS_ROUNDS", 1usize).to_string(),
            ],
        ),
    ];
    for (figure, bin, key, args) in items {
        let program = env(bin)?;
        println!("{figure}: {program} {}", args.join(" "));
        let w = Window::begin(&servers);
        let (stdout, usage) = procs::timed(&program, &args).await?;
        let mut all = w.end();
        merge(&mut all, &format!("bench process ({key})"), usage);
        bench.record(figure, "in-process", 1, all);
        print!("{stdout}");
        let result = stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("result: "))
            .with_context(|| format!("{program}: no result line"))?;
        let mut result: Value = serde_json::from_str(result)?;
        result["output"] = json!(stdout.lines().filter(|l| !l.starts_with("result: ")).collect::<Vec<_>>());
        bench.results.insert(key.into(), result);
    }
    Ok(())
}
