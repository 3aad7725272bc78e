//! Freshness under a steady load: produces events at a fixed rate into a fresh topic (the
//! realistic mix of `rsvp_tests::load::Lifecycles`, or creations only) while the projector
//! follows it into a fresh database, and measures for every event the time from handing it to
//! the producer to its rows being visible in PostgreSQL. Visibility is read from the stored
//! positions, which commit in the same transaction as the rows: a poller reads them every 2 ms.
//!
//!   cargo bench -p projector --bench freshness -- [events/s] [seconds] [lifecycles|creations]
//!
//! (defaults: 1100 events/s for 20 s, lifecycles; the first 3 s are warm-up and not counted).
//! `RSVP_PROJECTOR_BATCH` and `RSVP_PROJECTOR_LINGER_MS` set the projector as they do the service.
//! Needs Kafka and PostgreSQL (`make run`); `RSVP_BENCH_DATABASE_URL` as for `catchup`.

use projector::consumer::{self, ConsumerConfig, PoisonPolicy};
use projector::metrics::Metrics;
use rdkafka::producer::FutureRecord;
use sqlx::{Connection, PgConnection};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use uuid::Uuid;

const WARM_UP: Duration = Duration::from_secs(3);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let rate: f64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(1100.0);
    let seconds: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20);
    let creations_only = args.iter().any(|a| a == "creations");
    let brokers = std::env::var("RSVP_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let admin_url = std::env::var("RSVP_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://rsvp:rsvp@127.0.0.1:5433/postgres".into());
    let env = |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let id = Uuid::new_v4().simple().to_string();
    let (topic, database) = (format!("rsvp-bench-freshness-{id}"), format!("rsvp_bench_{id}"));
    rsvp_tests::infra::create_topic(&brokers, &topic, 12).await?;
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
        batch: env("RSVP_PROJECTOR_BATCH", 1000) as usize,
        linger: Duration::from_millis(env("RSVP_PROJECTOR_LINGER_MS", 0)),
        on_poison: PoisonPolicy::Halt,
    };
    let follower =
        tokio::spawn(consumer::run(pool.clone(), config, metrics.clone(), tokio::sync::watch::channel(false).1));

    // The poller: when each partition's stored position moved past which offset.
    let mut positions = PgConnection::connect(&url).await?;
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let poller = tokio::spawn(async move {
        let mut seen: Vec<(Instant, HashMap<i32, i64>)> = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(2));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop_rx => return Ok::<_, anyhow::Error>(seen),
                _ = tick.tick() => {}
            }
            let rows: Vec<(i32, i64)> = sqlx::query_as(
                "SELECT partition, next_offset FROM read_model.projector_offsets WHERE consumer = 'bench'",
            )
            .fetch_all(&mut positions)
            .await?;
            let now = Instant::now();
            let rows: HashMap<i32, i64> = rows.into_iter().collect();
            if seen.last().is_none_or(|(_, last)| *last != rows) {
                seen.push((now, rows));
            }
        }
    });

    // The producer: a steady rate, each record stamped with when it was handed over.
    let producer = rsvp_tests::load::bulk_producer(&brokers, 1)?;
    let mut mix = rsvp_tests::load::Lifecycles::new(10, 2_000, 11);
    let mut created = 0usize;
    let mut deliveries = Vec::new();
    let started = Instant::now();
    let total = (rate * seconds as f64) as usize;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut sent = 0usize;
    while sent < total {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * rate) as usize).min(total);
        while sent < due {
            let now = chrono::Utc::now();
            let envelope = if creations_only {
                created += 1;
                rsvp_tests::load::created_envelope(events::TenantId::from_uuid(Uuid::nil()), now, created)
            } else {
                mix.next_event(now)
            };
            let (key, payload) = (envelope.key(), envelope.data_json());
            let record =
                FutureRecord::to(&topic).key(&key).payload(&payload).headers(service_kit::kafka::headers_of(&envelope));
            let handed = Instant::now();
            let delivery = producer.send_result(record).map_err(|(e, _)| e)?;
            deliveries.push((handed, delivery));
            sent += 1;
        }
    }
    let offered = sent as f64 / started.elapsed().as_secs_f64();
    let mut produced = Vec::with_capacity(deliveries.len());
    for (handed, delivery) in deliveries {
        let delivered = delivery.await?.map_err(|(e, _)| e)?;
        produced.push((handed, delivered.partition, delivered.offset));
    }
    while metrics.applied.get() < sent as u64 {
        anyhow::ensure!(!follower.is_finished(), "the projector stopped");
        anyhow::ensure!(started.elapsed() < Duration::from_secs(seconds + 300), "the projector did not catch up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _ = stop_tx.send(());
    let seen = poller.await??;
    follower.abort();

    // For each record, the first poll at which its partition's position was past it.
    let mut lags: Vec<f64> = produced
        .iter()
        .filter(|(handed, _, _)| handed.duration_since(started) >= WARM_UP)
        .map(|&(handed, partition, offset)| {
            let first = seen.partition_point(|(_, p)| p.get(&partition).is_none_or(|&next| next <= offset));
            let visible = seen.get(first).map_or_else(Instant::now, |(at, _)| *at);
            visible.saturating_duration_since(handed).as_secs_f64() * 1000.0
        })
        .collect();
    lags.sort_by(f64::total_cmp);
    let pct = |q: f64| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)];
    let batches = metrics.batch_sizes();
    println!(
        "{} at {offered:.0} events/s for {seconds} s (batch {}, linger {} ms): {} events measured",
        if creations_only { "creations" } else { "lifecycles" },
        env("RSVP_PROJECTOR_BATCH", 1000),
        env("RSVP_PROJECTOR_LINGER_MS", 0),
        lags.len()
    );
    println!(
        "freshness (produce -> visible in PostgreSQL): p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        lags.last().copied().unwrap_or_default()
    );
    if let Some((count, sum)) = batches {
        println!("batches: {count}, mean {:.1} events", sum / count as f64);
    }

    pool.close().await;
    sqlx::query(&format!("DROP DATABASE \"{database}\" WITH (FORCE)")).execute(&mut admin).await?;
    rsvp_tests::infra::delete_topic(&brokers, &topic).await;
    Ok(())
}
