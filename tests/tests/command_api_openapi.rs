//! The OpenAPI document matches behaviour: every documented operation, sent its own example,
//! answers with one of its documented success statuses; methods it does not document are not
//! routed.

use reqwest::{Method, StatusCode};
use rsvp_tests::{Api, Service, TestEnv};
use serde_json::{json, Value};
use std::time::Duration;

async fn fresh_invite(api: &Api, target: &str) -> Value {
    let r = api
        .post("/v1/invites", &json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": target }] }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    r.body
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_operation_answers_its_example_with_a_documented_success() {
    let env = TestEnv::new().await;
    let command = Service::start("command-api", &env, &[]).await;
    command.wait_ready(Duration::from_secs(60)).await;
    let api = Api::new(&command.url, &env.key);
    let spec = api.get("/openapi.json").await;
    assert_eq!(spec.status, StatusCode::OK);
    let spec = spec.body;
    assert_eq!(spec["openapi"], "3.1.0");

    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in ["get", "post", "put", "delete", "patch"] {
            let Some(operation) = item.get(method) else {
                // Not documented: not routed either.
                let r = api
                    .call(
                        Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(),
                        &path.replace('{', "x").replace('}', ""),
                        None,
                        &[],
                    )
                    .await;
                assert!(
                    matches!(r.status, StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED),
                    "{method} {path}: {}",
                    r.status
                );
                continue;
            };
            // Make the state each example needs, and fill the path.
            let invite = fresh_invite(&api, "bob@example.com").await;
            let id = invite["id"].as_str().unwrap().to_owned();
            let mut concrete = path.replace("{id}", &id);
            if path.ends_with("/resend") || path.contains("{delivery_id}") {
                api.post(&format!("/v1/invites/{id}/send"), &json!({})).await;
            }
            if path.contains("{delivery_id}") {
                let delivery = env.read_log().into_iter().rev().find_map(|e| match e.invite_event() {
                    Some((_, events::InviteEvent::Sent(s))) => Some(s.delivery_id),
                    _ => None,
                });
                concrete = path.replace("{delivery_id}", &delivery.unwrap().to_string());
            }
            if path == "/v1/definitions/{id}" {
                let def = api.post("/v1/definitions", &json!({ "handle": "silver-definition" })).await;
                concrete = path.replace("{id}", def.body["id"].as_str().unwrap());
            }
            if path.starts_with("/v1/webhooks/{id}") {
                let hook = api.post("/v1/webhooks", &json!({ "url": "https://hooks.example.com/rsvp" })).await;
                assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.body);
                let hook = hook.body["id"].as_str().unwrap().to_owned();
                concrete = path.replace("{id}", &hook);
                if path.contains("{message_id}") {
                    // A message of the endpoint, as the dispatcher records one.
                    let message = uuid::Uuid::now_v7();
                    sqlx::query(
                        "INSERT INTO dispatch.webhook_messages (endpoint_id, event_id, tenant_id, stream_id, \
                         stream_version, event_type, body, state, attempts, next_attempt_at, created_at) \
                         VALUES ($1, $2, $3, $4, 1, 'InviteCreated', '{}', 'failed', 3, now(), now())",
                    )
                    .bind(uuid::Uuid::parse_str(&hook).unwrap())
                    .bind(message)
                    .bind(env.tenant.as_uuid())
                    .bind(uuid::Uuid::parse_str(&id).unwrap())
                    .execute(&env.pool)
                    .await
                    .unwrap();
                    concrete = concrete.replace("{message_id}", &message.to_string());
                }
            }
            if path.starts_with("/v1/api-keys/{id}") {
                // A key of its own: the test's key must keep working for the operations after it.
                let key = api.post("/v1/api-keys", &json!({ "label": "to revoke or rotate" })).await;
                assert_eq!(key.status, StatusCode::CREATED, "{}", key.body);
                concrete = path.replace("{id}", key.body["id"].as_str().unwrap());
            }
            if path.contains("{token}") {
                let link = invite["link_url"].as_str().unwrap();
                concrete = link.trim_start_matches(&api.base).to_owned();
            }
            let example = operation["requestBody"]["content"]["application/json"]["example"].clone();
            let body = (!example.is_null())
                .then(|| serde_json::from_str::<Value>(&example.to_string().replace("{id}", &id)).unwrap());
            // The credential the operation documents: a tenant key, or the operator's metrics token.
            let api = match operation["security"][0].get("metricsToken") {
                Some(_) => api.with_key(rsvp_tests::METRICS_TOKEN),
                None => api.clone(),
            };
            let r = api
                .call(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap(), &concrete, body.as_ref(), &[])
                .await;
            let documented: Vec<u16> =
                operation["responses"].as_object().unwrap().keys().map(|k| k.parse().unwrap()).collect();
            assert!(
                documented.contains(&r.status.as_u16()),
                "{method} {path}: {} not documented: {}",
                r.status,
                r.body
            );
            assert!(r.status.is_success() || r.status == StatusCode::FOUND, "{method} {path}: {} {}", r.status, r.body);
            checked += 1;
        }
    }
    assert!(checked >= 18, "{checked} operations checked");
}
