//! Freshness: how long after the command API's 2xx an invite is visible in the query API. A probe
//! creates an invite every `interval` (a load of its own of 1/interval writes per second), then
//! reads its detail until it is there; the time from the 2xx to the first 200 is its freshness.
//! The reads back off with the wait (every 1 ms at first, then every 5% of the time waited), so the
//! probe measures to within 5% and never floods the query API while the projector is behind.

use std::time::{Duration, Instant};

pub struct Sample {
    /// Seconds since the probe started, at the 2xx.
    pub at: f64,
    /// The create's own latency, seconds.
    pub write: f64,
    /// 2xx to visible, seconds.
    pub fresh: f64,
}

pub struct Probe {
    pub http: reqwest::Client,
    pub command_url: String,
    pub query_url: String,
    pub key: String,
}

impl Probe {
    /// Probes until `stop` is set; the samples in order.
    pub async fn run(
        &self,
        interval: Duration,
        stop: tokio::sync::watch::Receiver<bool>,
        body: &str,
    ) -> anyhow::Result<Vec<Sample>> {
        let started = Instant::now();
        let mut samples = Vec::new();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !*stop.borrow() {
            tick.tick().await;
            let sent = Instant::now();
            let created = self
                .http
                .post(format!("{}/v1/invites", self.command_url))
                .bearer_auth(&self.key)
                .header("content-type", "application/json")
                .body(body.to_owned())
                .send()
                .await?;
            let acked = Instant::now();
            if !created.status().is_success() {
                anyhow::bail!("probe create: {} {}", created.status(), created.text().await.unwrap_or_default());
            }
            let json: serde_json::Value = created.json().await?;
            let id = json["id"].as_str().ok_or_else(|| anyhow::anyhow!("probe create: no id in {json}"))?.to_owned();
            let url = format!("{}/v1/invites/{id}", self.query_url);
            loop {
                let r = self.http.get(&url).bearer_auth(&self.key).send().await?;
                let status = r.status();
                r.bytes().await?;
                if status.is_success() {
                    break;
                }
                anyhow::ensure!(status == reqwest::StatusCode::NOT_FOUND, "probe read: {status}");
                anyhow::ensure!(acked.elapsed() < Duration::from_secs(60), "invite {id} not visible after 60 s");
                tokio::time::sleep(Duration::from_millis(1).max(acked.elapsed() / 20)).await;
            }
            samples.push(Sample {
                at: (acked - started).as_secs_f64(),
                write: (acked - sent).as_secs_f64(),
                fresh: acked.elapsed().as_secs_f64(),
            });
        }
        Ok(samples)
    }
}
