//! `rsvp-chaos`: fault injection under load (`run`) and failover figures (`failover`), on a Kafka
//! broker and a PostgreSQL server of its own (loopback, free ports; never the shared ones). The
//! services are the binaries built next to this one (`cargo build --bins`). See README,
//! "Reliability".

use clap::{Parser, Subcommand};
use rsvp_tests::chaos::{self, FaultKind, Plan};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "rsvp-chaos", about = "Fault injection under load, and failover figures, on servers of its own")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a mixed load while injecting faults, then checks the log, the query API and
    /// `projector verify`; exit 1 on any violation.
    Run {
        /// Projector SIGKILLs.
        #[arg(long, default_value_t = 16)]
        projector_kills: usize,
        /// SIGKILLs of the leading command-api (a standby runs).
        #[arg(long, default_value_t = 14)]
        leader_kills: usize,
        /// PostgreSQL crashes (immediate shutdown) and restarts.
        #[arg(long, default_value_t = 14)]
        postgres_restarts: usize,
        /// Kafka restarts.
        #[arg(long, default_value_t = 8)]
        kafka_restarts: usize,
        /// Concurrent load clients.
        #[arg(long, default_value_t = 6)]
        clients: usize,
        /// Each client's pause between commands, in milliseconds.
        #[arg(long, default_value_t = 40)]
        think_ms: u64,
        /// The command-api's writer lease session timeout.
        #[arg(long, default_value_t = 6000)]
        lease_timeout_ms: u64,
        /// How long Kafka stays stopped in a restart and PostgreSQL down in a crash, in milliseconds.
        #[arg(long, default_value_t = 2000)]
        hold_ms: u64,
        /// Partitions of the run's invite topic.
        #[arg(long, default_value_t = 6)]
        partitions: i32,
        /// Steady load between faults: up to this many milliseconds.
        #[arg(long, default_value_t = 3000)]
        settle_ms: u64,
        /// Write the figures as Markdown to this file (RELIABILITY.md).
        #[arg(long)]
        report: Option<std::path::PathBuf>,
        /// How the run was started, for the report.
        #[arg(long, default_value = "rsvp-chaos run")]
        command_line: String,
        /// The source revision the binaries were built from, for the report.
        #[arg(long, default_value = "unknown")]
        revision: String,
        /// Seconds already spent before this run (fuzzing), for the report.
        #[arg(long, default_value_t = 0)]
        earlier_seconds: u64,
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Measures failover and restart times at each lease session timeout.
    Failover {
        #[arg(long, value_delimiter = ',', default_value = "6000,2000")]
        lease_timeout_ms: Vec<u64>,
        #[arg(long, default_value_t = 5)]
        rounds: usize,
    },
}

fn machine() -> String {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let memory_gib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb / 1024 / 1024);
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|v| v.split_once(':')).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_default();
    let load = read("/proc/loadavg").split_whitespace().next().unwrap_or_default().to_owned();
    format!("{cores} cores ({cpu}), {memory_gib} GiB, load average {load} at the start (the machine is shared); debug builds")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run {
            projector_kills,
            leader_kills,
            postgres_restarts,
            kafka_restarts,
            clients,
            think_ms,
            lease_timeout_ms,
            settle_ms,
            hold_ms,
            partitions,
            report,
            command_line,
            revision,
            earlier_seconds,
            seed,
        } => {
            let began = Instant::now();
            let machine = machine();
            let seed = seed.unwrap_or_else(rand::random);
            let plan = Plan {
                faults: Plan::mixed(
                    &[
                        (FaultKind::ProjectorKill, projector_kills),
                        (FaultKind::LeaderKill, leader_kills),
                        (FaultKind::PostgresRestart, postgres_restarts),
                        (FaultKind::KafkaRestart, kafka_restarts),
                    ],
                    seed,
                ),
                clients,
                think: Duration::from_millis(think_ms),
                lease_timeout_ms,
                partitions,
                settle: Duration::from_millis(settle_ms),
                hold: Duration::from_millis(hold_ms),
                recovery_timeout: Duration::from_secs(180),
                seed,
            };
            println!("rsvp-chaos: {} faults, seed {seed}", plan.faults.len());
            let outcome = chaos::run(&plan, |line| println!("rsvp-chaos: {line}")).await?;
            print!("{}", outcome.summary());
            if let Some(path) = report {
                let took = began.elapsed() + Duration::from_secs(earlier_seconds);
                std::fs::write(&path, outcome.markdown(&command_line, &revision, &machine, took))?;
                println!("rsvp-chaos: wrote {}", path.display());
            }
            if !outcome.violations().is_empty() {
                std::process::exit(1);
            }
        }
        Command::Failover { lease_timeout_ms, rounds } => {
            for timeout in lease_timeout_ms {
                let figures = chaos::failover::measure(timeout, rounds).await?;
                println!("{}", figures.line());
            }
        }
    }
    Ok(())
}
