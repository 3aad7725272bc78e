//! How long the writer takes to become ready over a long log: loads N events (default 1,000,000,
//! of 10 tenants or `--tenants=T`) into a fresh topic of 12 partitions (or `--partitions=P`), starts a writer (it
//! fences nothing, reads the whole log, folds it) and waits until it has stored a snapshot of
//! every shard; then starts another one (the take-over an operator sees after a crash or a
//! failover: snapshots and the log after them), and one more with the snapshots deleted (the
//! whole log, as before snapshots), for the baseline in the same run.
//!
//!   cargo bench -p command-api --bench restart -- [N] [--tenants=T] [--partitions=P] [--per-shard]
//!
//! With `--per-shard`, the take-over of one shard as an owner by shard does it (see `per_shard`).
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

/// Starts a writer and waits until it is ready: (the writer, from the start, from when it held the
/// lease: the take-over itself, without the lease's hand-over).
async fn ready(config: WriterConfig) -> anyhow::Result<(WriterHandle, Duration, Duration)> {
    let started = Instant::now();
    let handle = writer::start(config, WriterMetrics::register(&prometheus::Registry::new())?).await?;
    let mut leased = None;
    while handle.phase() != Phase::Ready {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(900), "writer not ready after 15 minutes");
        if leased.is_none() && handle.phase() == Phase::Starting {
            leased = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let leased = leased.unwrap_or(started);
    Ok((handle, started.elapsed(), leased.elapsed()))
}

/// Stops a writer as the service does on a graceful stop: the lease is released first.
fn stop(handle: WriterHandle) {
    handle.release_lease();
    drop(handle);
}

/// The writer's resident memory, from /proc (Linux).
fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok());
    kb.unwrap_or(0.0) / 1024.0
}

/// Waits until every shard with events has a snapshot stored (the first writer takes them one
/// after another once it is ready).
async fn snapshots_stored(pool: &sqlx::PgPool, topic: &str, shards: i64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM writer.snapshots WHERE topic = $1")
            .bind(topic)
            .fetch_one(pool)
            .await?;
        if n >= shards {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(started.elapsed() < Duration::from_secs(900), "{n} of {shards} snapshots after 15 minutes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let tenants: usize =
        args.iter().find_map(|a| a.strip_prefix("--tenants=").and_then(|t| t.parse().ok())).unwrap_or(10);
    if std::env::var_os("RUST_LOG").is_some() {
        service_kit::telemetry::init("restart-bench");
    }
    let brokers = std::env::var("RSVP_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topic = format!("rsvp-bench-restart-{}", Uuid::new_v4().simple());
    let partitions: i32 =
        args.iter().find_map(|a| a.strip_prefix("--partitions=").and_then(|t| t.parse().ok())).unwrap_or(12);
    rsvp_tests::infra::create_topic(&brokers, &topic, partitions).await?;
    let started = Instant::now();
    rsvp_tests::load::invites_created_by(&brokers, &topic, n, tenants).await?;
    println!("loaded {n} events of {tenants} tenants in {:.1?}", started.elapsed());
    let shards = {
        let mut with_events = 0;
        for p in 0..partitions {
            let (low, high) = service_kit::kafka::watermarks(&brokers, &topic, p, Duration::from_secs(10))?;
            with_events += i64::from(high > low);
        }
        with_events
    };

    // The key store the writer loads at start (empty here: the log's values are sealed by the
    // loader, whose keys a start never needs), and the snapshots.
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
        snapshots: writer::SnapshotConfig { every_events: 10_000, interval: Duration::from_secs(300) },
        ownership: writer::Ownership::Lease,
        shard: None,
    };
    if args.iter().any(|a| a == "--per-shard") {
        let measured = per_shard(config, &pool, &topic, n, tenants).await;
        pool.close().await;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).execute(&admin).await?;
        return measured;
    }
    let before = rss_mb();
    let (first, first_s, _) = ready(config.clone()).await?;
    let rss_growth = rss_mb() - before;
    println!("first start (whole log): ready over {n} events in {first_s:.2?}; memory grew {rss_growth:.0} MB");
    let snapshotted = snapshots_stored(&pool, &topic, shards).await?;
    let bytes: i64 = sqlx::query_scalar("SELECT sum(length(state))::bigint FROM writer.snapshots WHERE topic = $1")
        .bind(&topic)
        .fetch_one(&pool)
        .await?;
    println!(
        "{shards} shard snapshots stored {snapshotted:.2?} after it was ready ({:.1} MB compressed)",
        bytes as f64 / 1e6
    );
    stop(first);
    let (second, takeover_s, takeover_leased_s) = ready(config.clone()).await?;
    println!(
        "take-over (snapshots and the log after them): ready in {takeover_s:.2?}, {takeover_leased_s:.2?} of it after the lease was held"
    );
    stop(second);
    sqlx::query("DELETE FROM writer.snapshots").execute(&pool).await?;
    let (third, whole_s, whole_leased_s) = ready(config.clone()).await?;
    println!("restart without snapshots (whole log): ready in {whole_s:.2?}, {whole_leased_s:.2?} of it after the lease was held");
    stop(third);

    rsvp_tests::infra::delete_topic(&brokers, &topic).await;
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)")).execute(&admin).await?;
    println!(
        "result: {}",
        serde_json::json!({
            "events": n,
            "tenants": tenants,
            "first_start_s": first_s.as_secs_f64(),
            "takeover_from_snapshots_s": takeover_s.as_secs_f64(),
            "takeover_from_snapshots_after_lease_s": takeover_leased_s.as_secs_f64(),
            "restart_whole_log_s": whole_s.as_secs_f64(),
            "restart_whole_log_after_lease_s": whole_leased_s.as_secs_f64(),
            "rss_growth_mb": rss_growth,
            "snapshot_mb": bytes as f64 / 1e6,
        })
    );
    Ok(())
}

/// `--per-shard`: the take-over of one shard, as an owner by shard does it. Shard 0 is first read
/// by a writer of its own (its whole partition: one shard's state in memory, whatever the log's
/// size), which stores its snapshot; then shard 0 is taken over from its snapshot and the log
/// after it, and once more with its snapshot deleted (its whole partition again), the baseline in
/// the same run.
async fn per_shard(
    config: WriterConfig,
    pool: &sqlx::PgPool,
    topic: &str,
    n: usize,
    tenants: usize,
) -> anyhow::Result<()> {
    let shard = |p: i32| WriterConfig { shard: Some(p), ..config.clone() };
    let stored = |p: i32| async move {
        let started = Instant::now();
        loop {
            let n: i64 =
                sqlx::query_scalar("SELECT count(*) FROM writer.snapshots WHERE topic = $1 AND partition = $2")
                    .bind(topic)
                    .bind(p)
                    .fetch_one(pool)
                    .await?;
            if n > 0 {
                return anyhow::Ok(started.elapsed());
            }
            anyhow::ensure!(started.elapsed() < Duration::from_secs(900), "no snapshot of shard {p} after 15 minutes");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let mut firsts = Vec::new();
    for p in 0..1 {
        let (writer, first_s, _) = ready(shard(p)).await?;
        stored(p).await?;
        stop(writer);
        firsts.push(first_s.as_secs_f64());
    }
    let bytes: i64 =
        sqlx::query_scalar("SELECT length(state)::bigint FROM writer.snapshots WHERE topic = $1 AND partition = 0")
            .bind(topic)
            .fetch_one(pool)
            .await?;
    println!(
        "shard 0 first read by a writer of its own (its whole partition) in {:.2} s; its snapshot {:.1} MB",
        firsts[0],
        bytes as f64 / 1e6
    );
    let (writer, takeover_s, takeover_leased_s) = ready(shard(0)).await?;
    println!("take-over of shard 0 (its snapshot and the log after it): ready in {takeover_s:.2?}, {takeover_leased_s:.2?} of it after the lease");
    stop(writer);
    sqlx::query("DELETE FROM writer.snapshots WHERE partition = 0").execute(pool).await?;
    let (writer, whole_s, whole_leased_s) = ready(shard(0)).await?;
    println!("shard 0 without its snapshot (its whole partition): ready in {whole_s:.2?}, {whole_leased_s:.2?} of it after the lease");
    stop(writer);
    rsvp_tests::infra::delete_topic(&config.brokers, topic).await;
    println!(
        "result: {}",
        serde_json::json!({
            "events": n,
            "tenants": tenants,
            "per_shard": true,
            "shard_takeover_s": takeover_s.as_secs_f64(),
            "shard_takeover_after_lease_s": takeover_leased_s.as_secs_f64(),
            "shard_whole_partition_s": whole_s.as_secs_f64(),
            "shard_whole_partition_after_lease_s": whole_leased_s.as_secs_f64(),
            "shard_snapshot_mb": bytes as f64 / 1e6,
        })
    );
    Ok(())
}
