//! Catch-up speed of the projector against the floor PostgreSQL sets: loads about N events
//! (default 1,000,000) of whole invite lives into a fresh topic (creates, sends, delivery
//! reports, opens, accepts, revokes, interleaved as in production: `rsvp_tests::load::invite_lives`),
//! lets the projector catch up into a fresh database, then COPYs the very rows it produced into
//! empty copies of the same tables (same indexes) and compares. `--rounds R` repeats catch-up and
//! COPY R times over the same log (a fresh database each time), alternating, and reports each
//! round and the medians; `--creations-only` loads only `InviteCreated` events.
//!
//!   cargo bench -p projector --bench catchup -- [N] [--rounds R] [--creations-only]
//!
//! The last line, `result: {...}`, is the same figures as JSON (with the applied count sampled
//! every 100 ms), for `make bench`. Needs Kafka and PostgreSQL (`make run`);
//! `RSVP_BENCH_DATABASE_URL` names a role that may create databases (default: the local one).

use futures::TryStreamExt;
use projector::consumer::{self, ConsumerConfig, PoisonPolicy};
use projector::metrics::Metrics;
use sqlx::{Connection, PgConnection};
use std::time::{Duration, Instant};
use uuid::Uuid;

struct Round {
    catchup: Duration,
    copied: Duration,
    rows: u64,
    tables: usize,
    /// (seconds since the projector started, events applied)
    trace: Vec<(f64, u64)>,
}

async fn round(brokers: &str, topic: &str, admin_url: &str, n: u64) -> anyhow::Result<Round> {
    let database = format!("rsvp_bench_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE \"{database}\"")).execute(&mut admin).await?;
    let url = rsvp_tests::infra::with_database(admin_url, &database);
    let pool = service_kit::db::connect(&url, 4).await?;
    service_kit::db::migrate(&pool).await?;

    let metrics = Metrics::register(&prometheus::Registry::new())?;
    let config = ConsumerConfig {
        brokers: brokers.into(),
        topic: topic.into(),
        name: format!("bench-{database}"),
        batch: std::env::var("RSVP_PROJECTOR_BATCH").ok().and_then(|b| b.parse().ok()).unwrap_or(1000),
        linger: Duration::from_millis(20),
        on_poison: PoisonPolicy::Halt,
    };
    let started = Instant::now();
    let follower =
        tokio::spawn(consumer::run(pool.clone(), config, metrics.clone(), tokio::sync::watch::channel(false).1));
    let mut trace = vec![(0.0, 0)];
    while metrics.applied.get() < n {
        anyhow::ensure!(!follower.is_finished(), "the projector stopped");
        anyhow::ensure!(started.elapsed() < Duration::from_secs(3600), "no catch-up within an hour");
        tokio::time::sleep(Duration::from_millis(10)).await;
        if started.elapsed().as_secs_f64() >= trace.last().map_or(0.0, |t| t.0) + 0.1 {
            trace.push((started.elapsed().as_secs_f64(), metrics.applied.get()));
        }
    }
    let catchup = started.elapsed();
    trace.push((catchup.as_secs_f64(), metrics.applied.get()));
    follower.abort();

    // The floor: COPY the same final rows into empty twins of every read-model table.
    let mut conn = pool.acquire().await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'read_model' AND table_type = 'BASE TABLE' ORDER BY table_name",
    )
    .fetch_all(&mut *conn)
    .await?;
    sqlx::raw_sql("CREATE SCHEMA floor").execute(&mut *conn).await?;
    let mut copied = Duration::ZERO;
    let mut rows = 0u64;
    for table in &tables {
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
    Ok(Round { catchup, copied, rows, tables: tables.len(), trace })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let rounds: usize =
        args.iter().position(|a| a == "--rounds").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(1).max(1);
    let creations_only = args.iter().any(|a| a == "--creations-only");
    let brokers = std::env::var("RSVP_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let admin_url = std::env::var("RSVP_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://rsvp:rsvp@127.0.0.1:5433/postgres".into());
    let topic = format!("rsvp-bench-catchup-{}", Uuid::new_v4().simple());
    rsvp_tests::infra::create_topic(&brokers, &topic, 12).await?;
    let started = Instant::now();
    let (n, mix) = if creations_only {
        rsvp_tests::load::invites_created(&brokers, &topic, n).await?;
        (n as u64, "InviteCreated only")
    } else {
        let written = rsvp_tests::load::invite_lives(&brokers, &topic, n).await?;
        (written as u64, "whole invite lives (create, send, sent, delivered, opened; 30% accepted, 10% revoked)")
    };
    println!("loaded {n} events ({mix}) in {:.1?}", started.elapsed());

    let mut all = Vec::new();
    for r in 1..=rounds {
        let result = round(&brokers, &topic, &admin_url, n).await?;
        let rate = n as f64 / result.catchup.as_secs_f64();
        let floor = n as f64 / result.copied.as_secs_f64();
        println!("round {r}: projector catch-up: {n} events in {:.2?} = {rate:.0} events/s", result.catchup);
        println!(
            "round {r}: raw COPY of the same {} rows ({} tables): {:.2?} = {floor:.0} events/s; ratio {:.2}",
            result.rows,
            result.tables,
            result.copied,
            rate / floor
        );
        all.push(result);
    }
    rsvp_tests::infra::delete_topic(&brokers, &topic).await;

    let rates: Vec<f64> = all.iter().map(|r| n as f64 / r.catchup.as_secs_f64()).collect();
    let floors: Vec<f64> = all.iter().map(|r| n as f64 / r.copied.as_secs_f64()).collect();
    let ratios: Vec<f64> = rates.iter().zip(&floors).map(|(a, b)| a / b).collect();
    println!(
        "median of {rounds}: projector {:.0} events/s, COPY {:.0} events/s, ratio projector / COPY {:.2}",
        median(rates.clone()),
        median(floors.clone()),
        median(ratios.clone())
    );
    let result = serde_json::json!({
        "events": n,
        "mix": mix,
        "rows": all[0].rows,
        "tables": all[0].tables,
        "catchup_s": all.iter().map(|r| r.catchup.as_secs_f64()).collect::<Vec<_>>(),
        "copy_s": all.iter().map(|r| r.copied.as_secs_f64()).collect::<Vec<_>>(),
        "rate": rates,
        "copy_rate": floors,
        "ratio": ratios,
        "trace": all.iter().map(|r| &r.trace).collect::<Vec<_>>(),
    });
    println!("result: {result}");
    Ok(())
}
