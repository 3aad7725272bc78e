//! One writer at a time: a standby waits while the leader lives, takes over when it is gone, and
//! a paused leader that wakes up after a takeover can write nothing.

use reqwest::StatusCode;
use rsvp_tests::{eventually, Service, TestEnv};
use serde_json::json;
use std::time::Duration;

async fn create(http: &reqwest::Client, url: &str, key: &str, target: &str) -> reqwest::Response {
    http.post(format!("{url}/v1/invites"))
        .bearer_auth(key)
        .json(&json!({ "inviter": { "id": "u" }, "targets": [{ "type": "email", "value": target }] }))
        .send()
        .await
        .unwrap()
}

async fn ready_status(http: &reqwest::Client, service: &Service) -> StatusCode {
    http.get(format!("{}/readyz", service.url)).send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_instance_stands_by_until_the_leader_is_gone_then_takes_over() {
    let env = TestEnv::new().await;
    let http = reqwest::Client::new();
    let mut leader = Service::start("command-api", &env, &[]).await;
    leader.wait_ready(Duration::from_secs(60)).await;
    let standby = Service::start("command-api", &env, &[]).await;

    // While the leader lives, the standby never becomes the writer and refuses writes.
    for i in 0..10 {
        assert_eq!(ready_status(&http, &standby).await, StatusCode::SERVICE_UNAVAILABLE);
        let refused = create(&http, &standby.url, &env.key, "s@example.com").await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(refused.headers().contains_key("retry-after"));
        let accepted = create(&http, &leader.url, &env.key, &format!("l{i}@example.com")).await;
        assert_eq!(accepted.status(), StatusCode::CREATED);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    leader.kill().await;
    standby.wait_ready(Duration::from_secs(60)).await;
    let after = create(&http, &standby.url, &env.key, "after@example.com").await;
    assert_eq!(after.status(), StatusCode::CREATED);

    let log = env.read_log();
    assert_eq!(log.len(), 11, "ten creates by the leader and one by its successor, nothing else");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_leader_is_fenced_by_its_successor_and_writes_nothing_after_waking() {
    let env = TestEnv::new().await;
    // No pooled connections: the old instance's keep-alive connections die while it is frozen.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let old = Service::start("command-api", &env, &[]).await;
    old.wait_ready(Duration::from_secs(60)).await;
    assert_eq!(create(&http, &old.url, &env.key, "before@example.com").await.status(), StatusCode::CREATED);

    old.signal("STOP");
    let new = Service::start("command-api", &env, &[]).await;
    new.wait_ready(Duration::from_secs(60)).await;
    assert_eq!(create(&http, &new.url, &env.key, "new@example.com").await.status(), StatusCode::CREATED);

    old.signal("CONT");
    // Whether it first learns from the lease or from the fenced commit, it refuses every write.
    for i in 0..20 {
        let response = create(&http, &old.url, &env.key, &format!("zombie{i}@example.com")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "write {i} of the old leader");
    }
    assert_eq!(create(&http, &new.url, &env.key, "still@example.com").await.status(), StatusCode::CREATED);

    let targets = env.created_targets().await;
    assert_eq!(targets.len(), 3, "{targets:?}");
    assert!(targets.iter().all(|t| !t.starts_with("zombie")), "{targets:?}");
    // The old instance does not take the lease back either.
    let old_ready = eventually(Duration::from_secs(5), "the old instance's readiness", || async {
        Some(ready_status(&http, &old).await)
    })
    .await;
    assert_eq!(old_ready, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_stopped_cleanly_hands_the_lease_to_the_standby_without_waiting_for_its_session_to_expire() {
    let env = TestEnv::new().await;
    let http = reqwest::Client::new();
    // A crashed leader would keep this lease for a minute: only a handover lets the standby in sooner.
    let minute_lease = [("RSVP_WRITER_LEASE_TIMEOUT_MS", "60000".to_owned())];
    let mut leader = Service::start("command-api", &env, &minute_lease).await;
    leader.wait_ready(Duration::from_secs(60)).await;
    let standby = Service::start("command-api", &env, &minute_lease).await;
    assert_eq!(ready_status(&http, &standby).await, StatusCode::SERVICE_UNAVAILABLE);

    leader.signal("TERM");
    standby.wait_ready(Duration::from_secs(30)).await;
    assert_eq!(create(&http, &standby.url, &env.key, "after@example.com").await.status(), StatusCode::CREATED);
    eventually(Duration::from_secs(30), "the old leader to exit", || {
        let running = leader.is_running();
        async move { (!running).then_some(()) }
    })
    .await;
}
