//! Failover figures for the README: with a standby running, the time from a SIGKILL of the
//! leading command-api to the first 2xx on the standby; with none, the time a command-api
//! started right after the leader's SIGKILL (or after a clean stop) takes to be ready. On a
//! broker of the run's own that allows session timeouts down to 1 s.

use super::System;
use crate::Service;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde_json::json;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Figures {
    pub lease_timeout_ms: u64,
    /// SIGKILL of the leader to the first 2xx on the standby.
    pub failover: Vec<Duration>,
    /// Start of a new instance right after the only one was SIGKILLed, to its `/readyz` 200.
    pub restart_after_kill: Vec<Duration>,
    /// The same after a clean stop (SIGTERM), which hands the lease over at once.
    pub restart_after_stop: Vec<Duration>,
}

impl Figures {
    pub fn line(&self) -> String {
        format!(
            "lease {} ms: failover {}; restart after SIGKILL ready in {}; restart after a clean stop ready in {}",
            self.lease_timeout_ms,
            spread(&self.failover),
            spread(&self.restart_after_kill),
            spread(&self.restart_after_stop)
        )
    }
}

fn spread(values: &[Duration]) -> String {
    let mut v = values.to_vec();
    v.sort();
    match v.len() {
        0 => "-".into(),
        n => format!(
            "{:.1}-{:.1} s (median {:.1} s, {n} runs)",
            v[0].as_secs_f64(),
            v[n - 1].as_secs_f64(),
            v[n / 2].as_secs_f64()
        ),
    }
}

async fn create(http: &reqwest::Client, url: &str, key: &str) -> bool {
    http.post(format!("{url}/v1/invites"))
        .bearer_auth(key)
        .json(&json!({ "inviter": { "id": "f" }, "targets": [{ "type": "email", "value": "f@example.com" }] }))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

/// Waits until the lease group has `n` live members: a standby counts only once it has joined.
async fn members(system: &System, n: usize) -> anyhow::Result<()> {
    let consumer: BaseConsumer = service_kit::kafka::client_config(&system.env.brokers, "rsvp-chaos").create()?;
    let group = format!("writer-{}.lease", system.env.topic);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = tokio::task::block_in_place(|| consumer.fetch_group_list(Some(&group), Duration::from_secs(5)))?;
        let live = list.groups().iter().map(|g| g.members().len()).sum::<usize>();
        if live == n {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the lease group never had {n} members (it has {live})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn time_to_ready(system: &System) -> (Service, Duration) {
    let started = Instant::now();
    let service = system.start_command_api().await;
    service.wait_ready(Duration::from_secs(120)).await;
    (service, started.elapsed())
}

/// Measures `rounds` of each figure with the given lease session timeout.
pub async fn measure(lease_timeout_ms: u64, rounds: usize) -> anyhow::Result<Figures> {
    let mut system = System::start(3, lease_timeout_ms).await?;
    let http = reqwest::Client::new();
    let key = system.env.key.clone();
    let mut figures = Figures {
        lease_timeout_ms,
        failover: Vec::new(),
        restart_after_kill: Vec::new(),
        restart_after_stop: Vec::new(),
    };
    for _ in 0..rounds {
        // commands[0] leads, commands[1] stands by.
        let leader = system.leader(Duration::from_secs(120)).await.ok_or_else(|| anyhow::anyhow!("no leader"))?;
        system.commands.swap(0, leader);
        members(&system, 2).await?;
        anyhow::ensure!(create(&http, &system.commands[0].url, &key).await, "the leader refused a write");
        let killed = Instant::now();
        system.commands[0].kill().await;
        let standby = system.commands[1].url.clone();
        while !create(&http, &standby, &key).await {
            anyhow::ensure!(killed.elapsed() < Duration::from_secs(120), "the standby never took over");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        figures.failover.push(killed.elapsed());
        system.commands.remove(0);
        let next = system.start_command_api().await;
        system.commands.push(next);
    }
    // One instance only from here on.
    let leader = system.leader(Duration::from_secs(120)).await.ok_or_else(|| anyhow::anyhow!("no leader"))?;
    system.commands.swap(0, leader);
    system.commands.truncate(1);
    members(&system, 1).await?;
    for _ in 0..rounds {
        system.commands[0].kill().await;
        let (service, took) = time_to_ready(&system).await;
        figures.restart_after_kill.push(took);
        system.commands[0] = service;
    }
    for _ in 0..rounds {
        system.commands[0].signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while system.commands[0].is_running() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (service, took) = time_to_ready(&system).await;
        figures.restart_after_stop.push(took);
        system.commands[0] = service;
    }
    Ok(figures)
}
