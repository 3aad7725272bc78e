//! Webhooks end to end: the command API (endpoints registered through its admin API), the
//! dispatcher reading the real log, and a receiver of the tests' own. Signatures are checked with
//! implementations that are not rsvp's: the Standard Webhooks project's own Rust library, and
//! OpenSSL's command line for the Vortex HMAC.

use reqwest::{Method, StatusCode};
use rsvp_tests::receiver::Received;
use rsvp_tests::{dispatcher, eventually, invite_for, Api, Receiver, Service, TestEnv};
use serde_json::{json, Value};
use std::time::Duration;

async fn command_api(env: &TestEnv, allow_private: bool) -> (Service, Api) {
    let command =
        Service::start("command-api", env, &[("RSVP_WEBHOOK_ALLOW_PRIVATE", allow_private.to_string())]).await;
    command.wait_ready(Duration::from_secs(60)).await;
    let api = Api::new(&command.url, &env.key);
    (command, api)
}

/// Registers an endpoint; returns its id and secret.
async fn register(api: &Api, body: Value) -> (String, String) {
    let reply = api.post("/v1/webhooks", &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    (reply.body["id"].as_str().unwrap().to_owned(), reply.body["secret"].as_str().unwrap().to_owned())
}

/// Checks a Standard Webhooks request with the specification's reference library.
fn verify_standard(secret: &str, request: &Received) -> Result<(), String> {
    let mut headers = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let value = request.header(name).ok_or(format!("no {name} header"))?;
        headers.insert(name, http::HeaderValue::from_str(value).unwrap());
    }
    let webhook = standardwebhooks::Webhook::new(secret).map_err(|e| format!("{e:?}"))?;
    webhook.verify(&request.body, &headers).map_err(|e| format!("{e:?}"))
}

/// The lowercase hex HMAC-SHA256 of the body, by `openssl dgst`.
fn openssl_hmac(secret: &str, body: &[u8]) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", secret, "-r"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("openssl runs");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_owned()
}

async fn create_and_revoke(api: &Api, target: &str) -> String {
    let mut body = invite_for(target);
    body["send"] = json!("link");
    let created = api.post("/v1/invites", &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let revoked = api.post(&format!("/v1/invites/{id}/revoke"), &json!({})).await;
    assert!(revoked.status.is_success(), "{}", revoked.body);
    id
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_reaches_a_standard_endpoint_signed_and_in_order_per_invite_after_500s() {
    let env = TestEnv::new().await;
    let (command, api) = command_api(&env, true).await;
    let receiver = Receiver::start().await;
    // The first three tries fail: the first invite's first event is tried four times.
    receiver.answer_next(&[500, 500, 503]);
    let (endpoint, secret) = register(&api, json!({ "url": format!("{}/hooks", receiver.url) })).await;
    let _dispatcher =
        dispatcher(&env, &command, &[("RSVP_WEBHOOK_RETRY_SCHEDULE", "50ms,100ms,200ms,400ms".into())]).await;

    let first = create_and_revoke(&api, "bob@example.com").await;
    let second = create_and_revoke(&api, "carol@example.com").await;

    // Two invites, three events each (created, sent, revoked).
    let all = receiver.wait_for_accepted(6, Duration::from_secs(60)).await;
    let accepted: Vec<&Received> = all.iter().filter(|r| r.answered == 200).collect();
    for request in &all {
        verify_standard(&secret, request).unwrap_or_else(|e| panic!("signature of {}: {e}", request.json()));
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.json()["id"].as_str(), request.header("webhook-id"), "webhook-id is the event id");
        assert!(!String::from_utf8_lossy(&request.body).contains("\"token\""), "no link token: {}", request.json());
    }
    for invite in [&first, &second] {
        let seen: Vec<(String, u64)> = accepted
            .iter()
            .map(|r| r.json())
            .filter(|b| b["stream"]["id"] == invite.as_str())
            .map(|b| (b["type"].as_str().unwrap().to_owned(), b["version"].as_u64().unwrap()))
            .collect();
        assert_eq!(
            seen,
            [("InviteCreated".to_owned(), 1), ("InviteSent".to_owned(), 2), ("InviteRevoked".to_owned(), 3)],
            "in order, once each"
        );
    }
    let created = accepted.iter().map(|r| r.json()).find(|b| b["type"] == "InviteCreated").unwrap();
    assert_eq!(created["tenant_id"], env.tenant.to_string());
    assert!(created["data"]["token"].is_null() && created["data"]["token_sha256"].is_null(), "{created}");
    assert!(!created.to_string().contains("rsvp-sealed:"), "personal data is sent opened: {created}");
    // A retried message keeps its id and its bytes: each failed try is followed by its success.
    let failed: Vec<&Received> = all.iter().filter(|r| r.answered >= 500).collect();
    assert_eq!(failed.len(), 3);
    for try_ in &failed {
        let success = accepted.iter().find(|r| r.header("webhook-id") == try_.header("webhook-id"));
        assert_eq!(success.map(|r| &r.body), Some(&try_.body), "{}", try_.json());
    }

    // Every attempt is listed, newest first, with its status and latency.
    let attempts = eventually(Duration::from_secs(10), "the attempts to be listed", || async {
        let reply = api.get(&format!("/v1/webhooks/{endpoint}/attempts?limit=100")).await;
        let data = reply.body["data"].as_array()?.clone();
        (data.len() >= all.len()).then_some(data)
    })
    .await;
    let statuses: Vec<i64> = attempts.iter().filter_map(|a| a["response_status"].as_i64()).collect();
    assert_eq!(statuses.iter().filter(|s| **s >= 500).count(), 3, "{attempts:?}");
    assert!(attempts.iter().all(|a| a["latency_ms"].is_number()));
    assert_eq!(attempts.iter().filter(|a| a["succeeded"] == true).count(), 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vortex_endpoint_gets_vortex_names_and_an_hmac_of_the_raw_body() {
    let env = TestEnv::new().await;
    let (command, api) = command_api(&env, true).await;
    let receiver = Receiver::start().await;
    let (_, secret) = register(
        &api,
        json!({
            "url": receiver.url,
            "format": "vortex",
            "event_types": ["invitation.created", "invitation.deactivated"],
        }),
    )
    .await;
    let _dispatcher = dispatcher(&env, &command, &[]).await;
    let id = create_and_revoke(&api, "bob@example.com").await;

    let all = receiver.wait_for_accepted(2, Duration::from_secs(60)).await;
    let bodies: Vec<Value> = all.iter().map(Received::json).collect();
    let types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["invitation.created", "invitation.deactivated"],
        "the filter holds; InviteSent has no Vortex name"
    );
    for (request, body) in all.iter().zip(&bodies) {
        let signature = request.header("x-vortex-signature").expect("signed");
        assert_eq!(signature, openssl_hmac(&secret, &request.body));
        assert_eq!(body["accountId"], env.tenant.to_string());
        assert_eq!(body["data"]["invitationId"], id.as_str());
        for field in ["id", "timestamp", "environmentId", "sourceTable", "operation"] {
            assert!(!body[field].is_null(), "{field} in {body}");
        }
    }
    assert_eq!(bodies[0]["operation"], "insert");
    assert_eq!(bodies[1]["operation"], "update");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endpoint_failing_for_long_is_disabled_and_stops_while_a_healthy_one_gets_everything() {
    let env = TestEnv::new().await;
    let (command, api) = command_api(&env, true).await;
    let failing = Receiver::start().await;
    failing.answer_always(500);
    let healthy = Receiver::start().await;
    let (broken, _) = register(&api, json!({ "url": failing.url })).await;
    let _ = register(&api, json!({ "url": healthy.url })).await;
    let _dispatcher = dispatcher(
        &env,
        &command,
        &[
            ("RSVP_WEBHOOK_RETRY_SCHEDULE", "20ms,20ms,20ms,20ms,20ms,20ms,20ms,20ms".into()),
            ("RSVP_WEBHOOK_DISABLE_AFTER_FAILURES", "5".into()),
            ("RSVP_WEBHOOK_DISABLE_AFTER_SECONDS", "0".into()),
        ],
    )
    .await;
    for n in 0..4 {
        create_and_revoke(&api, &format!("user{n}@example.com")).await;
    }
    healthy.wait_for_accepted(12, Duration::from_secs(60)).await;
    let disabled = eventually(Duration::from_secs(30), "the failing endpoint to be disabled", || async {
        let reply = api.get(&format!("/v1/webhooks/{broken}")).await;
        (reply.body["disabled"] == true).then_some(reply.body)
    })
    .await;
    assert!(disabled["disabled_reason"].as_str().is_some_and(|r| r.contains("failed")), "{disabled}");
    let tries = failing.received().len();
    assert!(tries >= 5, "{tries} tries");
    // Disabled: nothing more goes to it, even for new events.
    create_and_revoke(&api, "later@example.com").await;
    healthy.wait_for_accepted(15, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(failing.received().len(), tries, "a disabled endpoint gets nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_endpoint_holds_back_no_other() {
    let env = TestEnv::new().await;
    let (command, api) = command_api(&env, true).await;
    let slow = Receiver::start().await;
    slow.delay(Duration::from_secs(3));
    let fast = Receiver::start().await;
    register(&api, json!({ "url": slow.url })).await;
    register(&api, json!({ "url": fast.url })).await;
    let _dispatcher = dispatcher(&env, &command, &[("RSVP_WEBHOOK_TIMEOUT_MS", "20000".into())]).await;
    for n in 0..5 {
        create_and_revoke(&api, &format!("user{n}@example.com")).await;
    }
    let started = std::time::Instant::now();
    fast.wait_for_accepted(15, Duration::from_secs(60)).await;
    // The slow one takes 3 s per request, 4 at a time: 15 requests take 12 s or more there.
    assert!(slow.received().len() < 15, "the fast endpoint did not wait for the slow one");
    assert!(started.elapsed() < Duration::from_secs(12), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_is_sent_again_on_request_with_its_id_and_a_rotated_secret_signs_beside_the_old() {
    let env = TestEnv::new().await;
    let (command, api) = command_api(&env, true).await;
    let receiver = Receiver::start().await;
    let (endpoint, old_secret) = register(&api, json!({ "url": receiver.url, "event_types": ["InviteCreated"] })).await;
    let _dispatcher = dispatcher(&env, &command, &[]).await;
    api.post("/v1/invites", &invite_for("bob@example.com")).await;
    let first = receiver.wait_for_accepted(1, Duration::from_secs(60)).await;
    let message = first[0].header("webhook-id").unwrap().to_owned();

    let rotated = api.post(&format!("/v1/webhooks/{endpoint}/rotate-secret"), &json!({})).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    let resent = api.post(&format!("/v1/webhooks/{endpoint}/messages/{message}/resend"), &json!({})).await;
    assert_eq!(resent.status, StatusCode::ACCEPTED, "{}", resent.body);
    let again = receiver.wait_for_accepted(2, Duration::from_secs(30)).await;
    let second = &again[1];
    assert_eq!(second.header("webhook-id"), Some(message.as_str()));
    assert_eq!(second.body, first[0].body, "the same bytes");
    assert_eq!(second.header("webhook-signature").unwrap().split(' ').count(), 2, "both secrets sign");
    verify_standard(&new_secret, second).unwrap();
    verify_standard(&old_secret, second).unwrap();
    // The attempt is recorded once its answer came back: the receiver may see it first.
    let attempts = eventually(Duration::from_secs(10), "the second attempt recorded", || async {
        let attempts = api.get(&format!("/v1/webhooks/{endpoint}/attempts")).await;
        (attempts.body["data"].as_array().map_or(0, Vec::len) == 2).then_some(attempts.body)
    })
    .await;
    assert_eq!(attempts["data"][0]["trigger"], "manual", "{attempts}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_address_is_never_called_unless_the_operator_allows_it() {
    let env = TestEnv::new().await;
    let (command, api) = command_api(&env, false).await;
    let receiver = Receiver::start().await;
    let refused = api.post("/v1/webhooks", &json!({ "url": receiver.url })).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
    assert_eq!(refused.body["field"], "url", "{}", refused.body);

    // Endpoints written behind the API's back (or registered while an operator allowed private
    // addresses): the dispatcher, not allowing them, calls neither a literal IP nor a name that
    // resolves to one.
    let mut endpoints = Vec::new();
    for url in [receiver.url.clone(), receiver.url.replace("127.0.0.1", "localhost")] {
        let id = uuid::Uuid::new_v4();
        sqlx::query(
            "INSERT INTO dispatch.webhook_endpoints (endpoint_id, tenant_id, url, format, event_types, secret, \
             created_at, updated_at) VALUES ($1, $2, $3, 'standard', '{}', 'whsec_AAAA', now(), now())",
        )
        .bind(id)
        .bind(env.tenant.as_uuid())
        .bind(url)
        .execute(&env.pool)
        .await
        .unwrap();
        endpoints.push(id.to_string());
    }
    let _dispatcher = dispatcher(&env, &command, &[("RSVP_WEBHOOK_ALLOW_PRIVATE", "false".into())]).await;
    api.post("/v1/invites", &invite_for("bob@example.com")).await;
    for endpoint in endpoints {
        let attempt = eventually(Duration::from_secs(30), "a refused attempt", || async {
            let reply = api.call(Method::GET, &format!("/v1/webhooks/{endpoint}/attempts"), None, &[]).await;
            reply.body["data"].as_array()?.first().cloned()
        })
        .await;
        assert_eq!(attempt["succeeded"], false);
        assert!(attempt["response_status"].is_null());
        assert!(attempt["error"].as_str().unwrap().contains("public"), "{attempt}");
    }
    assert!(receiver.received().is_empty());
}
