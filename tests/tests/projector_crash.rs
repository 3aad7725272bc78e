//! Exactly-once effect under crashes: while events flow, the projector is killed with SIGKILL at
//! random points twenty times and restarted; afterwards every event is applied once and `verify`
//! finds no drift.

use reqwest::StatusCode;
use rsvp_tests::{eventually, run_command, Service, TestEnv};
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn a_projector_killed_twenty_times_mid_stream_applies_every_event_exactly_once() {
    let env = TestEnv::new().await;
    let small_batches = [("RSVP_PROJECTOR_BATCH", "7".to_owned()), ("RSVP_PROJECTOR_LINGER_MS", "5".to_owned())];
    let mut projector = Service::start("projector", &env, &small_batches).await;
    let command = Service::start("command-api", &env, &[]).await;
    command.wait_ready(Duration::from_secs(60)).await;

    let total = 600;
    // Six concurrent clients: events keep flowing through every kill.
    let writers: Vec<_> = (0..6)
        .map(|w| {
        let (url, key) = (command.url.clone(), env.key.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for i in (w..total).step_by(6) {
                let r = http
                    .post(format!("{url}/v1/invites"))
                    .bearer_auth(&key)
                    .json(&json!({ "inviter": { "id": format!("u{}", i % 7) }, "targets": [{ "type": "email", "value": format!("c{i}@example.com") }] }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
                // Updates too, so counters and statuses are in play, not only inserts.
                let id = r.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
                let action = ["send", "accept", "revoke"][i % 3];
                let r = http.post(format!("{url}/v1/invites/{id}/{action}")).bearer_auth(&key).json(&json!({})).send().await.unwrap();
                assert!(r.status().is_success());
            }
        })
        })
        .collect();

    let seed = uuid::Uuid::new_v4().as_u128();
    for kill in 0..20u32 {
        // 50..=450 ms of life, a different spread every run.
        let pause = 50 + ((seed >> (kill * 5)) % 400) as u64;
        tokio::time::sleep(Duration::from_millis(pause)).await;
        projector.kill().await;
        projector = Service::start("projector", &env, &small_batches).await;
    }
    for writer in writers {
        writer.await.unwrap();
    }

    let expected = env.read_log().len();
    assert_eq!(expected, 2 * total);
    eventually(Duration::from_secs(60), "the projector to catch up", || async {
        let applied: i64 =
            sqlx::query_scalar("SELECT count(*) FROM read_model.events").fetch_one(&env.pool).await.ok()?;
        (applied as usize == expected).then_some(())
    })
    .await;
    let invites: i64 =
        sqlx::query_scalar("SELECT count(*) FROM read_model.invites").fetch_one(&env.pool).await.unwrap();
    assert_eq!(invites as usize, total, "one row per invite");
    // The history's keys cannot hold an event twice; the counters can, so they are the witness.
    let (created, accepted): (i64, i64) = sqlx::query_as(
        "SELECT sum(invites_created)::bigint, sum(invites_accepted)::bigint FROM read_model.inviter_counters",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!((created as usize, accepted as usize), (total, total / 3), "each creation and accept counted once");
    let (at_two, accepts, revoked): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE version = 2), sum(accept_count)::bigint, count(*) FILTER (WHERE status = 'revoked') \
         FROM read_model.invites",
    )
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(at_two as usize, total, "every invite at version 2, its two events applied once each");
    assert_eq!((accepts as usize, revoked as usize), (total / 3, total / 3));

    let (code, out) = run_command("projector", &env, &["verify"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("no drift: {} events replayed", 2 * total)), "{out}");
    let sends: i64 =
        sqlx::query_scalar("SELECT sum(send_count) FROM read_model.invites").fetch_one(&env.pool).await.unwrap();
    assert_eq!(sends as usize, total / 3, "each send counted once");
}
