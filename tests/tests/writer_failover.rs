//! One writer at a time: a standby waits while the leader lives, takes over when it is gone, and
//! a paused leader that wakes up after a takeover can write nothing.

use reqwest::StatusCode;
use rsvp_tests::{eventually, Service, TestEnv};
use serde_json::json;
use std::time::Duration;

use rsvp_tests::create_invite as create;

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

/// A command API whose writer panics (forced in this test build with `RSVP_FAULT_WRITER_PANIC_ON`,
/// once the state has moved) on the command whose `X-Request-Id` is the returned fault, with one
/// invite created.
async fn panicking_writer() -> (TestEnv, reqwest::Client, uuid::Uuid, Service, serde_json::Value) {
    let env = TestEnv::new().await;
    let http = reqwest::Client::new();
    let fault = uuid::Uuid::now_v7();
    let command = Service::start("command-api", &env, &[("RSVP_FAULT_WRITER_PANIC_ON", fault.to_string())]).await;
    command.wait_ready(Duration::from_secs(60)).await;
    let first = create(&http, &command.url, &env.key, "first@example.com").await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first = first.json().await.unwrap();
    (env, http, fault, command, first)
}

/// The create that panics the writer.
async fn poison(http: &reqwest::Client, command: &Service, env: &TestEnv, fault: uuid::Uuid) -> reqwest::Response {
    http.post(format!("{}/v1/invites", command.url))
        .bearer_auth(&env.key)
        .header("X-Request-Id", fault.to_string())
        .json(&json!({ "inviter": { "id": "u" }, "targets": [{ "type": "email", "value": "boom@example.com" }] }))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_command_that_panics_the_writer_again_and_again_is_refused_after_the_second_time_without_a_rebuild() {
    // Each panic makes the writer read the whole log again, stopping every tenant's writes: a
    // request that always panics must not be a way to keep the writer rebuilding.
    let (env, http, fault, command, first) = panicking_writer().await;
    let rebuilds = || command.log_text().matches("state rebuilt").count();
    for attempt in 1..=3 {
        let failed = poison(&http, &command, &env, fault).await;
        assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR, "attempt {attempt}");
        let problem: serde_json::Value = failed.json().await.unwrap();
        assert_eq!(problem["code"], "writer-failed", "attempt {attempt}: {problem}");
        if attempt < 3 {
            // The first start and one rebuild per panic so far.
            eventually(Duration::from_secs(60), "the writer to rebuild", || async {
                (rebuilds() == attempt + 1).then_some(())
            })
            .await;
            command.wait_ready(Duration::from_secs(60)).await;
        }
    }
    // Other commands of the same caller go on (after a rebuild, had there been one).
    let id = first["id"].as_str().unwrap().to_owned();
    let revoked = eventually(Duration::from_secs(60), "a revoke to be taken", || async {
        let r = http
            .post(format!("{}/v1/invites/{id}/revoke", command.url))
            .bearer_auth(&env.key)
            .json(&json!({}))
            .send()
            .await
            .ok()?;
        (r.status() != StatusCode::SERVICE_UNAVAILABLE).then_some(r.status())
    })
    .await;
    assert_eq!(revoked, StatusCode::OK);
    // The third was refused undecided: two panics in the log, not three, and no rebuild after it.
    let log_text = command.log_text();
    assert_eq!(log_text.matches("the writer panicked deciding a command").count(), 2, "{log_text}");
    assert_eq!(log_text.matches("refused undecided").count(), 1, "{log_text}");
    assert_eq!(rebuilds(), 3, "the start and one per panic: {log_text}");
}

/// A writer that panics on a command answers that command 500 with nothing of it written, says it
/// is not ready while it reads the log again, and then serves on a state that is the log's.
#[tokio::test(flavor = "multi_thread")]
async fn a_writer_that_panics_on_a_command_answers_500_rebuilds_from_the_log_and_serves_again() {
    let (env, http, fault, command, first) = panicking_writer().await;

    let failed = poison(&http, &command, &env, fault).await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let problem: serde_json::Value = failed.json().await.unwrap();
    assert_eq!(problem["code"], "writer-failed", "{problem}");

    // The thread lives on: within a bounded time the writer takes commands again.
    let again = rsvp_tests::eventually(Duration::from_secs(60), "the writer to serve again", || async {
        let r = create(&http, &command.url, &env.key, "after@example.com").await;
        (r.status() == StatusCode::CREATED).then_some(())
    })
    .await;
    let () = again;
    assert_eq!(ready_status(&http, &command).await, StatusCode::OK);

    // The panicking command's event, decided into the state before the panic, is in neither the
    // log nor the rebuilt state: the first invite is there, the failed one is not.
    let log = env.read_log();
    let targets = env.created_targets().await;
    assert_eq!(log.len(), 2, "the first and the last create, nothing of the failed one: {targets:?}");
    assert!(!targets.iter().any(|t| t.contains("boom")), "{targets:?}");
    let revoked = http
        .post(format!("{}/v1/invites/{}/revoke", command.url, first["id"].as_str().unwrap()))
        .bearer_auth(&env.key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::OK, "the rebuilt state knows the first invite");
    let log_text = command.log_text();
    assert!(
        log_text.contains("the writer panicked deciding a command") && log_text.contains(&fault.to_string()),
        "the panic is logged with the command: {log_text}"
    );
}
