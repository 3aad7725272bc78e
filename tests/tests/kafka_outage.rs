//! A Kafka outage, on a broker of the test's own: while it is down, writes answer 503 and leave
//! nothing in the log; once it is back, the writer takes writes again and the projector, which
//! kept running, picks up where it was.

use reqwest::StatusCode;
use rsvp_tests::broker::PrivateKafka;
use rsvp_tests::{eventually, Api, Services, TestEnv};
use serde_json::{json, Value};
use std::time::Duration;

fn invite(target: &str) -> Value {
    json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": target }] })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kafka_outage_refuses_writes_with_503_and_everything_resumes_when_the_broker_is_back() {
    let kafka = PrivateKafka::start().await;
    let mut env = TestEnv::new().await;
    env.brokers = kafka.brokers.clone();
    rsvp_tests::infra::create_topic(&env.brokers, &env.topic, 3).await.unwrap();
    let mut services = Services::start(&env).await;
    let command = Api::new(&services.command.url, &env.key);
    let query = Api::new(&services.query.url, &env.key);
    let listed = |n: usize| {
        let query = query.clone();
        async move { (query.get("/v1/invites").await.body["data"].as_array()?.len() == n).then_some(()) }
    };

    assert_eq!(command.post("/v1/invites", &invite("before@example.com")).await.status, StatusCode::CREATED);
    eventually(Duration::from_secs(30), "the first invite to be listed", || listed(1)).await;

    kafka.stop().await;
    for i in 0..3 {
        let r = command.post("/v1/invites", &invite(&format!("during{i}@example.com"))).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "write {i} during the outage: {}", r.body);
        assert!(r.header("retry-after").is_some());
    }
    assert!(services.projector.is_running(), "the projector waits the outage out");

    kafka.resume().await;
    eventually(Duration::from_secs(120), "the writer to take writes again", || async {
        let r = command.post("/v1/invites", &invite("after@example.com")).await;
        (r.status == StatusCode::CREATED).then_some(())
    })
    .await;
    eventually(Duration::from_secs(60), "the running projector to catch up", || listed(2)).await;
    assert!(services.projector.is_running());

    let targets = env.created_targets().await;
    assert_eq!(targets.len(), 2, "only the acknowledged writes: {targets:?}");
    assert!(!targets.iter().any(|t| t.starts_with("during")), "{targets:?}");
}
