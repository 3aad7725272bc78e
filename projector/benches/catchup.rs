//! Catch-up speed of the projector against the floor PostgreSQL sets: loads N events (default
//! 1,000,000 `InviteCreated`, or with `lifecycles` the realistic mix of
//! `rsvp_tests::load::Lifecycles`: creates, sends, delivery statuses, opens, accepts, revokes)
//! into a fresh topic, lets the projector catch up into a fresh
//! database, then COPYs the very rows it produced into empty copies of the same tables (same
//! indexes) and compares.
//!
//!   cargo bench -p projector --bench catchup -- [N] [lifecycles]
//!
//! Needs Kafka and PostgreSQL (`make run`); `RSVP_BENCH_DATABASE_URL` names a role that may create
//! databases (default: the local one).

use futures::TryStreamExt;
use projector::consumer::{self, ConsumerConfig, PoisonPolicy};
use projector::metrics::Metrics;
use sqlx::{Connection, PgConnection};
use std::time::{Duration, Instant};
use uuid::Uuid;

const TABLES: [&str; 7] = [
    "events",
    "invites",
    "invite_targets",
    "inviter_counters",
    "deliveries",
    "delivery_status_history",
    "invite_accepts",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: u64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let brokers = std::env::var("RSVP_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let admin_url = std::env::var("RSVP_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://rsvp:rsvp@127.0.0.1:5433/postgres".into());
    let id = Uuid::new_v4().simple().to_string();
    let (topic, database) = (format!("rsvp-bench-catchup-{id}"), format!("rsvp_bench_{id}"));
    rsvp_tests::infra::create_topic(&brokers, &topic, 12).await?;
    let started = Instant::now();
    let mix = std::env::args().skip(1).any(|a| a == "lifecycles");
    if mix {
        rsvp_tests::load::lifecycles(&brokers, &topic, n as usize).await?;
    } else {
        rsvp_tests::load::invites_created(&brokers, &topic, n as usize).await?;
    }
    println!("loaded {n} events ({}) in {:.1?}", if mix { "lifecycles" } else { "creations" }, started.elapsed());

    let mut admin = PgConnection::connect(&admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE \"{database}\"")).execute(&mut admin).await?;
    let url = rsvp_tests::infra::with_database(&admin_url, &database);
    let pool = service_kit::db::connect(&url, 4).await?;
    service_kit::db::migrate(&pool).await?;

    let metrics = Metrics::register(&prometheus::Registry::new())?;
    let config = ConsumerConfig {
        brokers: brokers.clone(),
        topic: topic.clone(),
        name: "bench".into(),
        batch: std::env::var("RSVP_PROJECTOR_BATCH").ok().and_then(|b| b.parse().ok()).unwrap_or(1000),
        linger: Duration::from_millis(
            std::env::var("RSVP_PROJECTOR_LINGER_MS").ok().and_then(|b| b.parse().ok()).unwrap_or(0),
        ),
        on_poison: PoisonPolicy::Halt,
    };
    let started = Instant::now();
    let follower = tokio::spawn(consumer::run(pool.clone(), config, metrics.clone()));
    while metrics.applied.get() < n {
        anyhow::ensure!(!follower.is_finished(), "the projector stopped");
        anyhow::ensure!(started.elapsed() < Duration::from_secs(3600), "no catch-up within an hour");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let catchup = started.elapsed();
    follower.abort();

    // The floor: COPY the same final rows into empty twins of the same tables.
    let mut conn = pool.acquire().await?;
    sqlx::raw_sql("CREATE SCHEMA floor").execute(&mut *conn).await?;
    let mut copied = Duration::ZERO;
    let mut rows = 0u64;
    for table in TABLES {
        sqlx::query(&format!("CREATE TABLE floor.{table} (LIKE read_model.{table} INCLUDING ALL)"))
            .execute(&mut *conn)
            .await?;
        let data: Vec<u8> = conn
            .copy_out_raw(&format!("COPY read_model.{table} TO STDOUT"))
            .await?
            .try_fold(Vec::new(), |mut all, chunk| async move {
                all.extend_from_slice(&chunk);
                Ok(all)
            })
            .await?;
        rows += data.iter().filter(|&&b| b == b'\n').count() as u64;
        let started = Instant::now();
        let mut copy = conn.copy_in_raw(&format!("COPY floor.{table} FROM STDIN")).await?;
        copy.send(data).await?;
        copy.finish().await?;
        copied += started.elapsed();
    }
    drop(conn);
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE \"{database}\" WITH (FORCE)")).execute(&mut admin).await?;
    rsvp_tests::infra::delete_topic(&brokers, &topic).await;

    let rate = n as f64 / catchup.as_secs_f64();
    let floor = n as f64 / copied.as_secs_f64();
    println!("projector catch-up: {n} events in {catchup:.2?} = {rate:.0} events/s");
    println!("raw COPY of the same {rows} rows ({} tables): {copied:.2?} = {floor:.0} events/s", TABLES.len());
    println!("ratio projector / COPY: {:.2}", rate / floor);
    Ok(())
}
