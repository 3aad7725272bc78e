//! How long the writer takes to become ready over a long log: loads N events (default 1,000,000)
//! into a fresh topic, starts a writer (it fences nothing, reads the whole log, folds it), stops
//! it, and starts another one: the restart an operator sees after a crash or a failover.
//!
//!   cargo bench -p command-api --bench restart -- [N]
//!
//! The last line, `result: {...}`, is the same figures as JSON, for `make bench`.
//! Needs a running Kafka (`make run`).

use command_api::metrics::WriterMetrics;
use command_api::writer::{self, Phase, WriterConfig, WriterHandle};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// As in the binary (`src/main.rs`): the allocator is part of what is measured.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn ready(config: WriterConfig) -> anyhow::Result<(WriterHandle, Duration)> {
    let started = Instant::now();
    let handle = writer::start(config, WriterMetrics::register(&prometheus::Registry::new())?).await?;
    while handle.phase() != Phase::Ready {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(900), "writer not ready after 15 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok((handle, started.elapsed()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let brokers = std::env::var("RSVP_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topic = format!("rsvp-bench-restart-{}", Uuid::new_v4().simple());
    rsvp_tests::infra::create_topic(&brokers, &topic, 12).await?;
    let started = Instant::now();
    rsvp_tests::load::invites_created(&brokers, &topic, n).await?;
    println!("loaded {n} events in {:.1?}", started.elapsed());

    // The key store the writer loads at start (empty here: the log's values are sealed by the
    // loader, whose keys a start never needs).
    let database_url = std::env::var("RSVP_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://rsvp:rsvp@127.0.0.1:5433/postgres".into());
    let database = format!("rsvp_bench_restart_{}", Uuid::new_v4().simple());
    let admin = service_kit::db::connect(&database_url, 1).await?;
    sqlx::query(&format!("CREATE DATABASE {database}")).execute(&admin).await?;
    let pool = service_kit::db::connect(&rsvp_tests::infra::with_database(&database_url, &database), 2).await?;
    service_kit::db::migrate(&pool).await?;
    let config = WriterConfig {
        brokers: brokers.clone(),
        topic: topic.clone(),
        transactional_id: format!("bench-{topic}"),
        lease_timeout: std::time::Duration::from_secs(6),
        master: service_kit::vault::MasterKey::new(rsvp_tests::MASTER_KEY)?,
        pool: pool.clone(),
        runtime: tokio::runtime::Handle::current(),
        audit: command_api::chains::AuditConfig {
            key: audit::SigningKey::from_base64_seed(rsvp_tests::AUDIT_SIGNING_KEY)?,
            interval: std::time::Duration::from_secs(10),
        },
    };
    let mut seconds = Vec::new();
    for run in ["first start", "restart"] {
        let (handle, elapsed) = ready(config.clone()).await?;
        println!("{run}: ready over {n} events in {elapsed:.2?} ({:.0} events/s)", n as f64 / elapsed.as_secs_f64());
        seconds.push(elapsed.as_secs_f64());
        drop(handle);
    }
    rsvp_tests::infra::delete_topic(&brokers, &topic).await;
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).execute(&admin).await?;
    println!("result: {}", serde_json::json!({ "events": n, "first_start_s": seconds[0], "restart_s": seconds[1] }));
    Ok(())
}
