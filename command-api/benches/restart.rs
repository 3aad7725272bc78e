//! How long the writer takes to become ready over a long log: loads N events (default 1,000,000)
//! into a fresh topic, then starts the writer in-process and times `start` → `Ready`.
//!
//!   RSVP_KAFKA_BROKERS=127.0.0.1:9092 cargo bench -p command-api --bench restart -- [N]
//!
//! Needs a running Kafka (`make run` or `deploy/local/kafka.sh start`).

use command_api::writer::{self, Phase, WriterConfig};
use std::time::{Duration, Instant};
use uuid::Uuid;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let brokers = std::env::var("RSVP_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topic = format!("rsvp-bench-restart-{}", Uuid::new_v4().simple());
    rsvp_tests::infra::create_topic(&brokers, &topic, 12).await?;

    let started = Instant::now();
    rsvp_tests::load::invites_created(&brokers, &topic, n).await?;
    println!("loaded {n} events into {topic} in {:.1?}", started.elapsed());

    let started = Instant::now();
    let handle = writer::start(WriterConfig {
        brokers: brokers.clone(),
        topic: topic.clone(),
        transactional_id: format!("bench-{topic}"),
    })
    .await?;
    while handle.phase() != Phase::Ready {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(900), "writer not ready after 15 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    println!("writer ready over {n} events in {:.2?} ({:.0} events/s)", elapsed, n as f64 / elapsed.as_secs_f64());
    rsvp_tests::infra::delete_topic(&brokers, &topic).await;
    Ok(())
}
