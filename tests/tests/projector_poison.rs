//! Poison events: parked in the dead-letter topic with the reason, counted, and the projector goes
//! on; or, with the halt policy, the projector stops on them. Never silently dropped.

use reqwest::StatusCode;
use rsvp_tests::{eventually, Service, Services, TestEnv};
use serde_json::{json, Value};
use std::time::Duration;

const GARBAGE_HEADERS: [(&str, &str); 3] =
    [("ce_specversion", "1.0"), ("ce_type", "dev.rsvp.invite.InviteCreated.v1"), ("ce_id", "not-a-uuid")];

/// Creates an invite through the command API and waits until the query API serves it: the
/// projector has gone past everything before it in its partition.
async fn create_and_see_it_projected(http: &reqwest::Client, services: &Services, env: &TestEnv, target: &str) {
    let created = http
        .post(format!("{}/v1/invites", services.command.url))
        .bearer_auth(&env.key)
        .json(&json!({ "inviter": { "id": "u" }, "targets": [{ "type": "email", "value": target }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let id = created.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(30), &format!("{target}'s invite to be projected"), || async {
        let r = http.get(format!("{}/v1/invites/{id}", services.query.url)).bearer_auth(&env.key).send().await.ok()?;
        (r.status() == StatusCode::OK).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn undecodable_and_unknown_events_are_parked_with_their_reason_and_projection_goes_on() {
    let env = TestEnv::new().await;
    let mut services = Services::start(&env).await;
    let http = reqwest::Client::new();

    env.produce_raw("poison-1", b"{not json", &GARBAGE_HEADERS).await;
    env.produce_raw(
        "poison-2",
        br#"{"teleported": true}"#,
        &[("ce_specversion", "1.0"), ("ce_type", "dev.rsvp.invite.InviteTeleported.v1")],
    )
    .await;
    create_and_see_it_projected(&http, &services, &env, "after@example.com").await;

    let dlq = format!("{}.dlq", env.topic);
    let parked = eventually(Duration::from_secs(30), "two records in the dead-letter topic", || async {
        let records = env.read_raw(&dlq);
        (records.len() == 2).then_some(records)
    })
    .await;
    let first = parked.iter().find(|r| r.key.as_deref() == Some("poison-1")).expect("poison-1 parked");
    assert_eq!(first.payload, b"{not json");
    assert_eq!(first.header("ce_id"), Some("not-a-uuid"), "original headers are kept");
    assert_eq!(first.header("rsvp_dlq_topic"), Some(env.topic.as_str()));
    assert!(first.header("rsvp_dlq_offset").is_some());
    assert!(first.header("rsvp_dlq_reason").unwrap().contains("undecodable"));
    let second = parked.iter().find(|r| r.key.as_deref() == Some("poison-2")).expect("poison-2 parked");
    assert!(second.header("rsvp_dlq_reason").unwrap().contains("InviteTeleported"), "{:?}", second.headers);

    let metrics = services.projector.metrics().await;
    assert!(metrics.lines().any(|l| l == "rsvp_projector_dead_letters_total 2"), "{metrics}");
    assert!(metrics.contains("rsvp_projector_lag_events"), "{metrics}");

    // The positions went past the parked events: a restarted projector does not meet them again.
    services.projector.kill().await;
    let projector = Service::start("projector", &env, &[]).await;
    projector.wait_ready(Duration::from_secs(60)).await;
    create_and_see_it_projected(&http, &services, &env, "later@example.com").await;
    let metrics = projector.metrics().await;
    assert!(metrics.lines().any(|l| l == "rsvp_projector_dead_letters_total 0"), "{metrics}");
    assert_eq!(env.read_raw(&dlq).len(), 2, "nothing parked twice");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_halt_policy_the_projector_stops_at_a_poison_event_and_parks_nothing() {
    let env = TestEnv::new().await;
    let mut projector = Service::start("projector", &env, &[("RSVP_PROJECTOR_ON_POISON", "halt".into())]).await;
    env.produce_raw("poison", b"\xff\xfe", &GARBAGE_HEADERS).await;

    eventually(Duration::from_secs(30), "the projector to stop", || {
        let stopped = !projector.is_running();
        async move { stopped.then_some(()) }
    })
    .await;
    assert!(projector.log_text().contains("halting on a poison event"), "{}", projector.log_text());
    assert!(env.read_raw(&format!("{}.dlq", env.topic)).is_empty());
}

/// A database outage is no poison: the projector waits it out for as long as it lasts (longer
/// than any retry budget), then applies every event, and parks nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_outage_is_waited_out_and_parks_nothing() {
    let env = TestEnv::new().await;
    let projector = Service::start("projector", &env, &[]).await;
    projector.wait_ready(Duration::from_secs(60)).await;
    let http = reqwest::Client::new();
    let metric = |name: &'static str| {
        let (http, url) = (http.clone(), format!("{}/metrics", projector.url));
        async move {
            let text = http.get(url).bearer_auth(rsvp_tests::METRICS_TOKEN).send().await.ok()?.text().await.ok()?;
            text.lines().find_map(|l| l.strip_prefix(name)?.trim().parse::<u64>().ok())
        }
    };

    env.set_database_online(false).await;
    let now = chrono::Utc::now();
    for i in 0..10 {
        env.produce_event(&rsvp_tests::load::created_envelope(env.tenant, now, i)).await;
    }
    eventually(Duration::from_secs(120), "the projector to retry through the outage", || async {
        (metric("rsvp_projector_batch_retries_total").await? >= 6).then_some(())
    })
    .await;
    env.set_database_online(true).await;

    eventually(Duration::from_secs(60), "every event to be projected after the outage", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM read_model.invites").fetch_one(&env.pool).await.ok()?;
        (n == 10).then_some(())
    })
    .await;
    assert_eq!(metric("rsvp_projector_dead_letters_total").await, Some(0));
    assert!(env.read_raw(&format!("{}.dlq", env.topic)).is_empty());
}
