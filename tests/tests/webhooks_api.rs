//! The webhook admin API of the command API over real PostgreSQL: registering an endpoint (its
//! secret shown once), who may (a tenant-wide admin key; another tenant sees nothing), the URL and
//! event type rules, enabling and disabling, secret rotation, the messages and attempts the
//! dispatcher records (inserted here with SQL), a resend, and a delete that takes them all.

use reqwest::{Method, StatusCode};
use rsvp_tests::{Api, Service, TestEnv};
use serde_json::{json, Value};
use service_kit::Scope;
use std::time::Duration;
use uuid::Uuid;

async fn start(env: &TestEnv, extra: &[(&str, String)]) -> (Service, Api) {
    let command = Service::start("command-api", env, extra).await;
    command.wait_ready(Duration::from_secs(60)).await;
    let api = Api::new(&command.url, &env.key);
    (command, api)
}

async fn register(api: &Api, body: Value) -> Value {
    let r = api.post("/v1/webhooks", &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

fn assert_problem(r: &rsvp_tests::Reply, status: StatusCode, field: &str) {
    assert_eq!(r.status, status, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/problem+json"));
    assert_eq!(r.body["field"], field, "{}", r.body);
}

async fn patch(api: &Api, path: &str, body: Value) -> rsvp_tests::Reply {
    api.call(Method::PATCH, path, Some(&body), &[]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_registers_changes_rotates_resends_and_deletes_webhook_endpoints() {
    let env = TestEnv::new().await;
    let (command, api) = start(&env, &[("RSVP_WEBHOOK_SECRET_OVERLAP_SECONDS", "3600".into())]).await;

    // Registered: the secret comes back this once, in the Standard Webhooks format.
    let created = register(
        &api,
        json!({ "url": "https://hooks.example.com/rsvp", "description": "CRM sync", "event_types": ["InviteCreated"] }),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() == 50, "{secret}");
    assert_eq!(created["format"], "standard");
    assert_eq!(created["event_types"], json!(["InviteCreated"]));
    assert_eq!((created["disabled"].as_bool(), created["failure_streak"].as_i64()), (Some(false), Some(0)));
    let second = register(&api, json!({ "url": "https://other.example.com/hook", "format": "vortex" })).await;
    assert_eq!((second["format"].as_str(), second["event_types"].clone()), (Some("vortex"), json!([])));

    // Listed and read: never the secret.
    let listed = api.get("/v1/webhooks").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let data = listed.body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!((data[0]["id"].as_str(), data[1]["id"].clone()), (Some(id.as_str()), second["id"].clone()));
    let one = api.get(&format!("/v1/webhooks/{id}")).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["description"], "CRM sync");
    for body in [&listed.body, &one.body] {
        assert!(!body.to_string().contains("whsec_"), "{body}");
        assert!(body.to_string().contains("\"failure_streak\""));
    }

    // Only a tenant-wide key with `admin`: an inviter's key is refused even with the scope.
    let inviter = api.with_key(&env.key_with(&[Scope::Admin], Some("ann")).await);
    let writer = api.with_key(&env.key_with(&[Scope::InvitesWrite, Scope::InvitesRead], None).await);
    for who in [&inviter, &writer] {
        assert_eq!(who.get("/v1/webhooks").await.status, StatusCode::FORBIDDEN);
        assert_eq!(who.get(&format!("/v1/webhooks/{id}")).await.status, StatusCode::FORBIDDEN);
        let r = who.post("/v1/webhooks", &json!({ "url": "https://hooks.example.com/x" })).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    }
    // Another tenant: its list is empty, and each of this tenant's endpoints a 404 naming nothing.
    let (_, other_key) = env.other_tenant("tenant-b").await;
    let other = api.with_key(&other_key);
    assert_eq!(other.get("/v1/webhooks").await.body["data"], json!([]));
    let foreign = [
        other.get(&format!("/v1/webhooks/{id}")).await,
        patch(&other, &format!("/v1/webhooks/{id}"), json!({ "disabled": true })).await,
        other.call(Method::DELETE, &format!("/v1/webhooks/{id}"), None, &[]).await,
        other.call(Method::POST, &format!("/v1/webhooks/{id}/rotate-secret"), None, &[]).await,
        other.get(&format!("/v1/webhooks/{id}/attempts")).await,
        other.get(&format!("/v1/webhooks/{id}/messages")).await,
    ];
    let unknown = api.get(&format!("/v1/webhooks/{}", Uuid::now_v7())).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    for r in foreign {
        assert_eq!((r.status, &r.body), (StatusCode::NOT_FOUND, &unknown.body), "the same 404 as no endpoint");
    }

    // URL rules: private and loopback hosts are refused (the setting is off), as are credentials.
    for url in [
        "http://127.0.0.1:9000/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:192.168.0.1]/",
        "http://localhost:8080/",
        "https://user:pw@hooks.example.com/",
        "ftp://hooks.example.com/",
        "https://hooks.example.com/#top",
    ] {
        let r = api.post("/v1/webhooks", &json!({ "url": url })).await;
        assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "url");
        assert!(!r.body.to_string().contains(url), "the problem does not echo the URL: {}", r.body);
    }
    // Format and event types: each named when wrong.
    let r = api.post("/v1/webhooks", &json!({ "url": "https://hooks.example.com/", "format": "xml" })).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "format");
    let r = api
        .post(
            "/v1/webhooks",
            &json!({ "url": "https://hooks.example.com/", "event_types": ["InviteSent", "invitation.created"] }),
        )
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "event_types[1]");
    let r = api
        .post(
            "/v1/webhooks",
            &json!({ "url": "https://hooks.example.com/", "event_types": ["InviteSent", "InviteSent"] }),
        )
        .await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "event_types[1]");
    let r = api.post("/v1/webhooks", &json!({ "url": "https://hooks.example.com/", "secret": "mine" })).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "secret");
    let r = patch(&api, &format!("/v1/webhooks/{id}"), json!({ "format": "vortex" })).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "event_types[0]");
    let r = patch(&api, &format!("/v1/webhooks/{id}"), json!({ "url": "http://10.0.0.1/" })).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "url");
    let r = patch(&api, &format!("/v1/webhooks/{id}"), json!({ "url": null })).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "url");
    let r = api.call(Method::PATCH, &format!("/v1/webhooks/{id}"), None, &[]).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "body");

    // Disabled by the dispatcher after a run of failures; enabling clears the run and the reason.
    sqlx::query(
        "UPDATE dispatch.webhook_endpoints SET disabled = true, disabled_reason = 'failing for 5 days', \
         failure_streak = 12, failing_since = now() - interval '5 days' WHERE endpoint_id = $1",
    )
    .bind(Uuid::parse_str(&id).unwrap())
    .execute(&env.pool)
    .await
    .unwrap();
    let failing = api.get(&format!("/v1/webhooks/{id}")).await.body;
    assert_eq!((failing["disabled"].as_bool(), failing["failure_streak"].as_i64()), (Some(true), Some(12)));
    assert_eq!(failing["disabled_reason"], "failing for 5 days");
    assert!(failing["failing_since"].is_string());
    let enabled = patch(&api, &format!("/v1/webhooks/{id}"), json!({ "disabled": false })).await;
    assert_eq!(enabled.status, StatusCode::OK, "{}", enabled.body);
    assert_eq!(
        (
            &enabled.body["disabled"],
            &enabled.body["disabled_reason"],
            &enabled.body["failure_streak"],
            &enabled.body["failing_since"]
        ),
        (&json!(false), &Value::Null, &json!(0), &Value::Null)
    );
    let disabled = patch(&api, &format!("/v1/webhooks/{id}"), json!({ "disabled": true, "description": null })).await;
    assert_eq!(disabled.status, StatusCode::OK, "{}", disabled.body);
    assert_eq!((disabled.body["disabled"].as_bool(), disabled.body["description"].clone()), (Some(true), Value::Null));
    assert_eq!(disabled.body["disabled_reason"], "disabled through the API");
    let changed = patch(
        &api,
        &format!("/v1/webhooks/{id}"),
        json!({ "url": "https://hooks.example.com/v2", "event_types": [], "disabled": false }),
    )
    .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert_eq!(
        (changed.body["url"].as_str(), changed.body["event_types"].clone()),
        (Some("https://hooks.example.com/v2"), json!([]))
    );
    assert_eq!(changed.body["disabled_reason"], Value::Null);

    // Rotation: a new secret, answered once; the old one keeps signing for the overlap.
    let rotated = api.call(Method::POST, &format!("/v1/webhooks/{id}/rotate-secret"), None, &[]).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    let new_secret = rotated.body["secret"].as_str().unwrap().to_owned();
    assert!(new_secret.starts_with("whsec_") && new_secret != secret);
    let expires: chrono::DateTime<chrono::Utc> =
        rotated.body["previous_secret_expires_at"].as_str().unwrap().parse().unwrap();
    let overlap = expires - chrono::Utc::now();
    assert!(overlap > chrono::Duration::seconds(3500) && overlap <= chrono::Duration::seconds(3600), "{overlap}");
    let (stored, previous): (String, Option<String>) =
        sqlx::query_as("SELECT secret, previous_secret FROM dispatch.webhook_endpoints WHERE endpoint_id = $1")
            .bind(Uuid::parse_str(&id).unwrap())
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!((stored.as_str(), previous.as_deref()), (new_secret.as_str(), Some(secret.as_str())));
    let after = api.get(&format!("/v1/webhooks/{id}")).await.body;
    assert!(after["previous_secret_expires_at"].is_string() && !after.to_string().contains("whsec_"), "{after}");

    // A message the dispatcher gave up on, sent again on request.
    let endpoint = Uuid::parse_str(&id).unwrap();
    let message = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO dispatch.webhook_messages (endpoint_id, event_id, tenant_id, stream_id, stream_version, \
         event_type, body, state, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, 1, 'InviteCreated', '{}', 'failed', 8, now() + interval '1 day', now())",
    )
    .bind(endpoint)
    .bind(message)
    .bind(env.tenant.as_uuid())
    .bind(Uuid::now_v7())
    .execute(&env.pool)
    .await
    .unwrap();
    let failed = api.get(&format!("/v1/webhooks/{id}/messages?state=failed")).await;
    assert_eq!(failed.status, StatusCode::OK, "{}", failed.body);
    assert_eq!(failed.body["data"][0]["message_id"], message.to_string());
    assert_eq!((failed.body["data"][0]["attempts"].as_i64(), failed.body["next"].clone()), (Some(8), Value::Null));
    let resend_path = format!("/v1/webhooks/{id}/messages/{message}/resend");
    assert_eq!(other.call(Method::POST, &resend_path, None, &[]).await.status, StatusCode::NOT_FOUND);
    let unknown_message = format!("/v1/webhooks/{id}/messages/{}/resend", Uuid::now_v7());
    assert_eq!(api.call(Method::POST, &unknown_message, None, &[]).await.status, StatusCode::NOT_FOUND);
    let resent = api.call(Method::POST, &resend_path, None, &[]).await;
    assert_eq!(resent.status, StatusCode::ACCEPTED, "{}", resent.body);
    assert_eq!(resent.body["state"], "pending");
    let (state, due, requested): (String, bool, bool) = sqlx::query_as(
        "SELECT state, next_attempt_at <= now(), resend_requested FROM dispatch.webhook_messages \
         WHERE endpoint_id = $1 AND event_id = $2",
    )
    .bind(endpoint)
    .bind(message)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!((state.as_str(), due, requested), ("pending", true, true));
    assert_eq!(api.get(&format!("/v1/webhooks/{id}/messages?state=failed")).await.body["data"], json!([]));
    assert_eq!(
        api.get(&format!("/v1/webhooks/{id}/messages?state=pending")).await.body["data"].as_array().unwrap().len(),
        1
    );

    // Attempts, newest first, two to a page, `next` leading through all of them.
    for (i, status) in [Some(500), None, Some(503), Some(429), Some(200)].into_iter().enumerate() {
        sqlx::query(
            "INSERT INTO dispatch.webhook_attempts (endpoint_id, event_id, attempted_at, response_status, latency_ms, \
             error, succeeded, trigger) VALUES ($1, $2, now() + make_interval(secs => $3), $4, 40, $5, $6, $7)",
        )
        .bind(endpoint)
        .bind(message)
        .bind(i as f64)
        .bind(status)
        .bind(status.is_none().then_some("connection refused"))
        .bind(status == Some(200))
        .bind(if i == 4 { "manual" } else { "scheduled" })
        .execute(&env.pool)
        .await
        .unwrap();
    }
    let mut seen = Vec::new();
    let mut path = format!("/v1/webhooks/{id}/attempts?limit=2");
    let mut pages = 0;
    loop {
        let page = api.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.body);
        pages += 1;
        for a in page.body["data"].as_array().unwrap() {
            assert_eq!(
                (a["message_id"].as_str(), a["event_type"].as_str()),
                (Some(message.to_string().as_str()), Some("InviteCreated"))
            );
            seen.push((a["attempt_id"].as_i64().unwrap(), a["response_status"].clone(), a["trigger"].clone()));
        }
        match page.body["next"].as_str() {
            Some(next) => path = next.strip_prefix(&api.base).expect("next is a URL of this API").to_owned(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let ids: Vec<i64> = seen.iter().map(|s| s.0).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    assert_eq!(seen.len(), 5);
    assert_eq!((seen[0].1.clone(), seen[0].2.clone()), (json!(200), json!("manual")));
    assert_eq!(seen[3].1, Value::Null);
    let r = api.get(&format!("/v1/webhooks/{id}/attempts?limit=101")).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "limit");

    // Deleted: gone, with its messages and attempts.
    let deleted = api.call(Method::DELETE, &format!("/v1/webhooks/{id}"), None, &[]).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(api.get(&format!("/v1/webhooks/{id}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(api.call(Method::DELETE, &format!("/v1/webhooks/{id}"), None, &[]).await.status, StatusCode::NOT_FOUND);
    let (messages, attempts): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM dispatch.webhook_messages WHERE endpoint_id = $1), \
                (SELECT count(*) FROM dispatch.webhook_attempts WHERE endpoint_id = $1)",
    )
    .bind(endpoint)
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!((messages, attempts), (0, 0));
    assert_eq!(api.get("/v1/webhooks").await.body["data"].as_array().unwrap().len(), 1);

    // No secret ever reaches the log.
    let log = std::fs::read_to_string(&command.log).unwrap();
    for s in [&secret, &new_secret] {
        assert!(!log.contains(s.as_str()), "the log holds a secret");
    }
    assert!(!log.contains("whsec_"), "the log holds a secret");
}

#[tokio::test(flavor = "multi_thread")]
async fn private_urls_are_taken_when_the_operator_allows_them() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env, &[("RSVP_WEBHOOK_ALLOW_PRIVATE", "true".into())]).await;
    for url in ["http://127.0.0.1:9000/hook", "http://localhost:8080/", "http://10.0.0.1/"] {
        let created = register(&api, json!({ "url": url })).await;
        assert_eq!(created["url"].as_str().unwrap().trim_end_matches('/'), url.trim_end_matches('/'));
    }
    // Credentials and other schemes stay refused.
    let r = api.post("/v1/webhooks", &json!({ "url": "http://user:pw@127.0.0.1/" })).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "url");
}
