//! Audit tooling: `verify` finds no drift in an honest projection and catches a corrupted row;
//! `rebuild` swaps fresh tables in while readers keep reading.

use reqwest::StatusCode;
use rsvp_tests::{eventually, run_command, Services, TestEnv};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

async fn create_invites(http: &reqwest::Client, services: &Services, key: &str, n: usize, tag: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let response = http
            .post(format!("{}/v1/invites", services.command.url))
            .bearer_auth(key)
            .json(&json!({ "inviter": { "id": "u" }, "targets": [{ "type": "email", "value": format!("{tag}{i}@example.com") }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        ids.push(response.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    ids
}

async fn wait_listed(http: &reqwest::Client, services: &Services, key: &str, n: usize) {
    eventually(Duration::from_secs(30), &format!("{n} invites to be listed"), || async {
        let page: Value = http
            .get(format!("{}/v1/invites?limit=200", services.query.url))
            .bearer_auth(key)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (page["data"].as_array()?.len() == n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_finds_no_drift_in_an_honest_projection_and_catches_a_corrupted_row() {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let http = reqwest::Client::new();
    let ids = create_invites(&http, &services, &env.key, 5, "v").await;
    wait_listed(&http, &services, &env.key, 5).await;

    let (code, out) = run_command("projector", &env, &["verify"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no drift: 5 events replayed"), "{out}");

    sqlx::query("UPDATE read_model.invites SET status = 'revoked' WHERE invite_id = $1::uuid")
        .bind(&ids[2])
        .execute(&env.pool)
        .await
        .unwrap();
    let (code, out) = run_command("projector", &env, &["verify"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DRIFT"), "{out}");
    assert!(out.contains(&ids[2]) && out.contains("revoked"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rebuild_swaps_fresh_tables_in_while_readers_keep_reading() {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let http = reqwest::Client::new();
    let ids = create_invites(&http, &services, &env.key, 30, "r").await;
    wait_listed(&http, &services, &env.key, 30).await;
    // A damaged row that only a rebuild from the log repairs.
    sqlx::query("UPDATE read_model.invites SET inviter_id = 'damaged' WHERE invite_id = $1::uuid")
        .bind(&ids[0])
        .execute(&env.pool)
        .await
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let (reads, failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut readers = Vec::new();
    for r in 0..4 {
        let (stop, reads, failures) = (stop.clone(), reads.clone(), failures.clone());
        let (http, key, query) = (http.clone(), env.key.clone(), services.query.url.clone());
        let id = ids[r].clone();
        readers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                for url in [format!("{query}/v1/invites?limit=50"), format!("{query}/v1/invites/{id}")] {
                    let ok = match http.get(&url).bearer_auth(&key).send().await {
                        Ok(r) => r.status() == StatusCode::OK,
                        Err(_) => false,
                    };
                    reads.fetch_add(1, Ordering::Relaxed);
                    if !ok {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    // Writes go on during the rebuild too.
    let writer = {
        let (http, key, command) = (http.clone(), env.key.clone(), services.command.url.clone());
        tokio::spawn(async move {
            for i in 0..20 {
                let r = http
                    .post(format!("{command}/v1/invites"))
                    .bearer_auth(&key)
                    .json(&json!({ "inviter": { "id": "u" }, "targets": [{ "type": "email", "value": format!("during{i}@example.com") }] }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
            }
        })
    };
    let reads_before = reads.load(Ordering::Relaxed);
    let (code, out) = run_command("projector", &env, &["rebuild"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("rebuilt the read models"), "{out}");
    writer.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
    assert!(reads.load(Ordering::Relaxed) > reads_before, "readers were reading during the rebuild");
    assert_eq!(failures.load(Ordering::Relaxed), 0, "no read failed during the swap");

    wait_listed(&http, &services, &env.key, 50).await;
    let repaired: Value = http
        .get(format!("{}/v1/invites/{}", services.query.url, ids[0]))
        .bearer_auth(&env.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(repaired["inviter"]["id"], "u");
    let (code, out) = run_command("projector", &env, &["verify"]).await;
    assert_eq!(code, 0, "after the rebuild the live projector and the log agree: {out}");
    let leftovers: Vec<String> =
        sqlx::query_scalar("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'read_model%' ORDER BY 1")
            .fetch_all(&env.pool)
            .await
            .unwrap();
    assert_eq!(leftovers, vec!["read_model".to_owned()], "the old tables are gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn as_of_tells_an_invites_state_at_any_moment_of_a_known_history_from_the_log_alone() {
    let env = TestEnv::new().await;
    let command = rsvp_tests::Service::start("command-api", &env, &[]).await;
    command.wait_ready(Duration::from_secs(60)).await;
    let api = rsvp_tests::Api::new(&command.url, &env.key);
    let id = api
        .post(
            "/v1/invites",
            &json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": "bob@example.com" }] }),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.post(&format!("/v1/invites/{id}/send"), &json!({})).await;
    api.post(&format!("/v1/invites/{id}/accept"), &json!({ "accepted_by": "user-9" })).await;
    let times: Vec<String> = env
        .read_log()
        .iter()
        .map(|e| e.meta.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .collect();
    assert_eq!(times.len(), 3);

    let mut seen = Vec::new();
    for t in &times {
        let (code, out, _) = rsvp_tests::run_command_split("projector", &env, &["as-of", t, "--invite", &id]).await;
        assert_eq!(code, 0, "{out}");
        let state: Value = serde_json::from_str(&out).unwrap();
        seen.push((state["status"].as_str().unwrap().to_owned(), state["version"].as_u64().unwrap()));
    }
    assert_eq!(seen, [("created".to_owned(), 1), ("queued".to_owned(), 2), ("accepted".to_owned(), 3)]);
    // The facts come with the times the log gives them.
    let (_, out, _) = rsvp_tests::run_command_split("projector", &env, &["as-of", &times[2], "--invite", &id]).await;
    let state: Value = serde_json::from_str(&out).unwrap();
    let time =
        |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("{state}"))).unwrap();
    let log_time = |i: usize| chrono::DateTime::parse_from_rfc3339(&times[i]).unwrap();
    assert_eq!(time(&state["created_at"]), log_time(0));
    assert_eq!(time(&state["deliveries"][0]["sent_at"]), log_time(1));
    assert_eq!(time(&state["accepts"][0]["at"]), log_time(2));
    assert_eq!(time(&state["updated_at"]), log_time(2));

    let (code, out, _) =
        rsvp_tests::run_command_split("projector", &env, &["as-of", "2000-01-01T00:00:00Z", "--invite", &id]).await;
    assert_eq!((code, out.trim()), (0, "null"), "it did not exist yet");
    let (code, out, _) =
        rsvp_tests::run_command_split("projector", &env, &["as-of", &times[1], "--tenant", &env.tenant.to_string()])
            .await;
    assert_eq!(code, 0, "{out}");
    let tenant: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(tenant["invites"][0]["counters"]["sends"], 1);
    assert_eq!(tenant["invites"][0]["deliveries"][0]["status"], "queued");
}
