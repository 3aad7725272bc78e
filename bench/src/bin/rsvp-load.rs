//! A closed-loop load of creates against a running command API, for a quick A/B of two builds
//! where `oha` is not at hand: `rsvp-load URL KEY [connections] [seconds]` prints creates/s and
//! the latency percentiles (`make bench` is the full measurement).

use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, key) = (args[0].clone(), args[1].clone());
    let connections: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(32);
    let seconds: u64 = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(10);
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build()?;
    // One request alone first: the latency of a single write on an idle system.
    let mut single = Vec::new();
    for i in 0..200 {
        let started = Instant::now();
        create(&client, &url, &key, i).await?;
        single.push(started.elapsed());
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|c| {
            let (client, url, key) = (client.clone(), url.clone(), key.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 1_000_000 * (c + 1);
                while Instant::now() < deadline {
                    let started = Instant::now();
                    create(&client, &url, &key, i).await?;
                    latencies.push(started.elapsed());
                    i += 1;
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await??);
    }
    let pct = |v: &mut Vec<Duration>, p: f64| {
        v.sort();
        v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
    };
    println!(
        "single request: p50 {:?} p99 {:?}; {connections} connections for {seconds}s: {:.0} creates/s, p50 {:?} p99 {:?}",
        pct(&mut single, 0.5),
        pct(&mut single, 0.99),
        all.len() as f64 / seconds as f64,
        pct(&mut all, 0.5),
        pct(&mut all, 0.99)
    );
    Ok(())
}

async fn create(client: &reqwest::Client, url: &str, key: &str, i: usize) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "inviter": { "id": format!("inviter-{}", i % 97), "name": "Ann Inviter", "email": "ann@example.com" },
        "targets": [{ "type": "email", "value": format!("person{i}@example.com"), "name": "Bob" }],
        "message": "join us",
    });
    let r = client.post(format!("{url}/v1/invites")).bearer_auth(key).json(&body).send().await?;
    anyhow::ensure!(r.status().is_success(), "{}: {}", r.status(), r.text().await.unwrap_or_default());
    Ok(())
}
