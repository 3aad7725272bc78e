//! The whole system end to end: three processes over real Kafka and PostgreSQL.

use reqwest::StatusCode;
use rsvp_tests::{eventually, Services, TestEnv};
use serde_json::{json, Value};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn an_invite_created_over_http_appears_in_the_list_with_its_fields() {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let http = reqwest::Client::new();

    let created = http
        .post(format!("{}/v1/invites", services.command.url))
        .bearer_auth(&env.key)
        .json(&json!({
            "inviter": { "id": "user-1", "name": "Ann Inviter", "email": "ann@example.com" },
            "targets": [{ "type": "email", "value": "bob@example.com", "name": "Bob" }],
            "message": "join our workspace",
            "scopes": [{ "type": "workspace", "id": "ws-9", "name": "Acme" }],
            "expires_in_days": 7
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(created.headers()["etag"], "\"1\"");
    let body: Value = created.json().await.unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(body["version"], 1);
    assert_eq!(location, format!("{}/v1/invites/{id}", services.query.url));

    let listed = eventually(Duration::from_secs(30), "the invite to be listed", || async {
        let page: Value = http
            .get(format!("{}/v1/invites", services.query.url))
            .bearer_auth(&env.key)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let data = page["data"].as_array()?;
        data.iter().find(|i| i["id"] == id.as_str()).cloned()
    })
    .await;
    assert_eq!(listed["status"], "created");
    assert_eq!(listed["version"], 1);
    assert_eq!(listed["inviter"]["id"], "user-1");
    assert_eq!(listed["inviter"]["name"], "Ann Inviter");
    assert_eq!(listed["targets"][0]["value"], "bob@example.com");
    assert_eq!(listed["targets"][0]["type"], "email");
    assert_eq!(listed["message"], "join our workspace");
    assert_eq!(listed["scopes"][0]["id"], "ws-9");
    assert_eq!(listed["expired"], false);
    assert!(listed["expires_at"].is_string());

    let detail = http.get(&location).bearer_auth(&env.key).send().await.unwrap();
    assert_eq!(detail.status(), StatusCode::OK);
    let detail: Value = detail.json().await.unwrap();
    assert_eq!(detail["id"], id.as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_without_a_valid_key_gets_401_problem_json() {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let http = reqwest::Client::new();
    let forged = format!("{}0", env.key);
    let body = json!({ "inviter": { "id": "u" }, "targets": [{ "type": "email", "value": "x@example.com" }] });

    let attempts = [
        http.post(format!("{}/v1/invites", services.command.url)).json(&body),
        http.post(format!("{}/v1/invites", services.command.url)).bearer_auth(&forged).json(&body),
        http.post(format!("{}/v1/invites", services.command.url)).bearer_auth("rsvp_nope_nope").json(&body),
        http.get(format!("{}/v1/invites", services.query.url)),
        http.get(format!("{}/v1/invites", services.query.url)).bearer_auth(&forged),
        http.get(format!("{}/v1/invites", services.query.url)).header("authorization", format!("Basic {}", env.key)),
    ];
    for attempt in attempts {
        let response = attempt.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["content-type"], "application/problem+json");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["status"], 401);
        assert_eq!(problem["code"], "unauthorized");
        assert!(problem["type"].as_str().unwrap().ends_with("/unauthorized"));
    }

    // Nothing was written by the refused creates.
    let page: Value = http
        .get(format!("{}/v1/invites", services.query.url))
        .bearer_auth(&env.key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["data"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_service_answers_healthz_without_a_key_and_the_projector_readyz() {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    for url in [&services.command.url, &services.query.url, &services.projector.url] {
        let response = reqwest::get(format!("{url}/healthz")).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{url}");
    }
    // The projector is ready once it follows the log and its database answers.
    let ready = eventually(Duration::from_secs(30), "the projector to be ready", || async {
        let r = reqwest::get(format!("{}/readyz", services.projector.url)).await.ok()?;
        (r.status() == StatusCode::OK).then_some(r)
    })
    .await;
    assert_eq!(ready.json::<Value>().await.unwrap()["following"], true);
}
