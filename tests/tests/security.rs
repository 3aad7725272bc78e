//! What a key can reach and what leaks to whom, over the running services: an inviter's key acts
//! on its own invites only, on every path; cursors are bound to the key that got them; the public
//! link token stays out of the events API, the access logs and the metrics; `/metrics` needs the
//! operator's token and keeps a bounded set of labels; query strings stay out of the logs; keys
//! are rate limited one by one; CORS is the operator's choice; verified keys are cached briefly.

use reqwest::{Method, StatusCode};
use rsvp_tests::{eventually, Api, Service, Services, TestEnv};
use serde_json::{json, Value};
use service_kit::Scope;
use std::time::Duration;

async fn command_api(env: &TestEnv, extra: &[(&str, String)]) -> (Service, Api) {
    let command = Service::start("command-api", env, extra).await;
    command.wait_ready(Duration::from_secs(60)).await;
    let api = Api::new(&command.url, &env.key);
    (command, api)
}

fn invite_of(inviter: &str, target: &str) -> Value {
    json!({ "inviter": { "id": inviter }, "targets": [{ "type": "email", "value": target }] })
}

async fn create(api: &Api, body: Value) -> Value {
    let r = api.post("/v1/invites", &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

/// The delivery id of the first `InviteSent` of `invite` in the log.
fn delivery_of(env: &TestEnv, invite: &str) -> events::DeliveryId {
    env.read_log()
        .into_iter()
        .filter(|e| e.meta.stream.as_uuid().to_string() == invite)
        .find_map(|e| match e.invite_event() {
            Some((_, events::InviteEvent::Sent(s))) => Some(s.delivery_id),
            _ => None,
        })
        .expect("the invite was sent")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inviter_key_cannot_write_to_another_inviters_invite_on_any_path() {
    let env = TestEnv::new().await;
    let (_command, admin) = command_api(&env, &[]).await;
    let ann = create(&admin, invite_of("ann", "bob@example.com")).await["id"].as_str().unwrap().to_owned();
    let sent = admin.post(&format!("/v1/invites/{ann}/send"), &json!({})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let delivery = delivery_of(&env, &ann);
    let def = admin.post("/v1/definitions", &json!({ "handle": "gold", "max_invites_per_inviter": 5 })).await;
    let def_id = def.body["id"].as_str().unwrap().to_owned();
    create(&admin, json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": "c@example.com" }], "definition_id": def_id })).await;
    let before = env.read_log().len();

    let scopes = [Scope::InvitesWrite, Scope::InvitesRead, Scope::Admin];
    let other = admin.with_key(&env.key_with(&scopes, Some("user-42")).await);
    // The multi-accept answers for another inviter's invite exactly as for one that does not exist.
    let unknown = uuid::Uuid::now_v7().to_string();
    let foreign =
        other.post("/v1/invites/accept", &json!({ "target": "bob@example.com", "invitation_ids": [ann] })).await;
    let absent =
        other.post("/v1/invites/accept", &json!({ "target": "bob@example.com", "invitation_ids": [unknown] })).await;
    assert_eq!(foreign.status, absent.status, "{} / {}", foreign.body, absent.body);
    assert_eq!(foreign.body["code"], absent.body["code"]);
    assert_eq!(foreign.body["detail"].as_str().unwrap().replace(&ann, &unknown), absent.body["detail"]);
    // Over the cap of a multi-accept, the key's reach is not worked out id by id (nor every id
    // named back in the answer): the cap refuses it first, as it does a tenant's key.
    let many: Vec<String> = (0..1000).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let r = other.post("/v1/invites/accept", &json!({ "target": "bob@example.com", "invitation_ids": many })).await;
    assert_eq!(
        (r.status, r.body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invitation_ids")),
        "{}",
        r.body
    );
    assert!(r.body.to_string().len() < 1000, "the refusal names the ids: {} bytes", r.body.to_string().len());
    // Every path on one invite answers as another tenant gets: the invite does not exist.
    for action in ["send", "resend", "accept", "decline", "revoke", "expire"] {
        let r = other.post(&format!("/v1/invites/{ann}/{action}"), &json!({})).await;
        assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::NOT_FOUND, Some("invite-not-found")), "{action}");
    }
    let r = other.post(&format!("/v1/invites/{ann}/engagements"), &json!({ "kind": "view" })).await;
    assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::NOT_FOUND, Some("invite-not-found")), "{}", r.body);
    let r = other.post(&format!("/v1/deliveries/{delivery}/events"), &json!({ "status": "delivered" })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert!(!r.body.to_string().contains(&ann), "the response names the invite: {}", r.body);
    // Definitions are the tenant's: an inviter's key neither changes them nor reads another's quota.
    let r = other.post("/v1/definitions", &json!({ "handle": "mine" })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r =
        other.call(Method::PUT, &format!("/v1/definitions/{def_id}"), Some(&json!({ "handle": "gold" })), &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let r = other.get("/v1/definitions?inviter=ann").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "another inviter's quota: {}", r.body);
    let own = other.get("/v1/definitions").await;
    assert_eq!(own.body["data"][0]["remaining"], 5, "its own quota: {}", own.body);
    assert_eq!(env.read_log().len(), before, "the inviter key changed nothing of ann's");

    // Its own invites it still runs, on every path.
    let mine = create(&other, json!({ "targets": [{ "type": "email", "value": "bob@example.com" }] })).await;
    let mine = mine["id"].as_str().unwrap().to_owned();
    assert_eq!(other.post(&format!("/v1/invites/{mine}/send"), &json!({})).await.status, StatusCode::ACCEPTED);
    let r = other
        .post(&format!("/v1/deliveries/{}/events", delivery_of(&env, &mine)), &json!({ "status": "delivered" }))
        .await;
    assert_eq!((r.status, r.body["id"].as_str()), (StatusCode::OK, Some(mine.as_str())), "{}", r.body);
    let r = other.post("/v1/invites/accept", &json!({ "target": "bob@example.com", "invitation_ids": [mine] })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inviter_key_reads_nothing_of_another_inviter_on_any_read_path() {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let command = Api::new(&services.command.url, &env.key);
    let query = Api::new(&services.query.url, &env.key);
    let ann = create(&command, invite_of("ann", "bob@example.com")).await["id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(30), "the invite to be projected", || async {
        (query.get(&format!("/v1/invites/{ann}")).await.status == StatusCode::OK).then_some(())
    })
    .await;
    let other = query.with_key(&env.key_with(&[Scope::InvitesRead], Some("user-42")).await);
    assert_eq!(other.get(&format!("/v1/invites/{ann}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(other.get(&format!("/v1/invites/{ann}/events")).await.status, StatusCode::NOT_FOUND);
    for path in ["/v1/invites", "/v1/invites?inviter=ann", "/v1/invites?target=bob@example.com"] {
        let r = other.get(path).await;
        assert_eq!((r.status, &r.body["data"]), (StatusCode::OK, &json!([])), "{path}");
    }
    assert_eq!(other.get("/v1/stats?inviter=ann").await.body["funnel"]["created"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cursor_works_only_for_the_tenant_and_inviter_scope_it_was_issued_to() {
    let env = TestEnv::new().await;
    // The read models are all the list needs: the test writes the rows itself.
    let query = Service::start("query-api", &env, &[]).await;
    let now = chrono::Utc::now();
    for i in 0..3 {
        env.produce_event(&rsvp_tests::load::created_envelope(env.tenant, now, i)).await;
    }
    let _projector = Service::start("projector", &env, &[]).await;
    let a = Api::new(&query.url, &env.key);
    let next = eventually(Duration::from_secs(30), "a second page", || async {
        let r = a.get("/v1/invites?limit=1").await;
        r.body["next"].as_str().map(|s| s.trim_start_matches(&a.base).to_owned())
    })
    .await;
    assert_eq!(a.get(&next).await.status, StatusCode::OK, "the cursor works for its own key");

    let (_, key_b) = env.other_tenant("tenant-b").await;
    let inviter = env.key_with(&[Scope::InvitesRead], Some("user-0")).await;
    for (who, key) in [("another tenant", key_b), ("an inviter of the tenant", inviter)] {
        let r = a.with_key(&key).get(&next).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{who}: {}", r.body);
        assert_eq!(r.body["field"], "cursor", "{who}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_replays_only_to_the_inviter_who_used_it_first() {
    let env = TestEnv::new().await;
    let (_command, admin) = command_api(&env, &[]).await;
    let scopes = [Scope::InvitesWrite, Scope::InvitesRead];
    let alice = admin.with_key(&env.key_with(&scopes, Some("alice")).await);
    let bob = admin.with_key(&env.key_with(&scopes, Some("bob")).await);
    let body = json!({ "targets": [{ "type": "email", "value": "i@example.com" }], "message": "m" });
    let key = [("Idempotency-Key", "shared-key-1")];

    let first = alice.call(Method::POST, "/v1/invites", Some(&body), &key).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = alice.call(Method::POST, "/v1/invites", Some(&body), &key).await;
    assert_eq!(again.body["id"], first.body["id"], "the same inviter gets the first answer again");

    // Bob's request is another request, whatever its key: never Alice's invite or her link.
    let other = bob.call(Method::POST, "/v1/invites", Some(&body), &key).await;
    assert_ne!(other.body["id"], first.body["id"], "{}", other.body);
    assert!(!other.body.to_string().contains(first.body["link_url"].as_str().unwrap()), "{}", other.body);
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", other.body);
    assert_eq!(other.body["field"], "Idempotency-Key");
}

/// The public link of an invite created through `api`, and its token.
async fn link_of(api: &Api) -> (String, String, String) {
    let mut body = invite_of("ann", "bob@example.com");
    body["landing_url"] = json!("https://app.example.org/join");
    let created = create(api, body).await;
    let link = created["link_url"].as_str().unwrap().to_owned();
    let token = link.rsplit('/').next().unwrap().to_owned();
    (created["id"].as_str().unwrap().to_owned(), link, token)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_link_token_is_in_neither_the_events_api_nor_the_access_log_nor_the_metrics() {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let command = Api::new(&services.command.url, &env.key);
    let query = Api::new(&services.query.url, &env.key);
    let (id, link, token) = link_of(&command).await;
    let anonymous = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    assert_eq!(anonymous.get(&link).send().await.unwrap().status(), StatusCode::FOUND);
    // A near miss too: the token with a path after it matches no route.
    assert_eq!(anonymous.get(format!("{link}/x")).send().await.unwrap().status(), StatusCode::NOT_FOUND);

    let events = eventually(Duration::from_secs(30), "the click in the events API", || async {
        let r = query.get(&format!("/v1/invites/{id}/events")).await;
        (r.body["data"].as_array().map_or(0, Vec::len) == 2).then_some(r.body)
    })
    .await;
    assert_eq!(events["data"][0]["type"], "InviteCreated");
    assert!(!events.to_string().contains(&token), "the token in the events API: {events}");
    assert!(events["data"][0]["data"]["token"].is_null(), "{events}");
    // Derived from a server secret and the invite id, the token was never recorded: no hash of it
    // either (invites from before keep theirs, as `token_sha256`).
    assert!(events["data"][0]["data"]["token_sha256"].is_null(), "{events}");

    let log = eventually(Duration::from_secs(10), "the access log line of the link", || async {
        let log = services.command.log_text();
        log.contains("/i/{token}").then_some(log)
    })
    .await;
    assert!(!log.contains(&token), "the token in command-api's log:\n{log}");
    let metrics = services.command.metrics().await;
    assert!(metrics.contains("endpoint=\"/i/{token}\""), "{metrics}");
    assert!(!metrics.contains(&token), "the token in a metrics label:\n{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_need_the_operator_token_and_unmatched_paths_share_one_label() {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let http = reqwest::Client::new();
    for service in [&services.command, &services.query, &services.projector] {
        let url = format!("{}/metrics", service.url);
        let name = service.name;
        assert_eq!(http.get(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "{name} without a token");
        let wrong = http.get(&url).bearer_auth("not-the-token").send().await.unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{name} with a wrong token");
        assert_eq!(wrong.headers()["content-type"], "application/problem+json");
        let tenant_key = http.get(&url).bearer_auth(&env.key).send().await.unwrap();
        assert_eq!(tenant_key.status(), StatusCode::UNAUTHORIZED, "{name}: a tenant's key is no operator token");
        for i in 0..20 {
            let r = http.get(format!("{}/no-such-path-{i}", service.url)).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::NOT_FOUND);
        }
        let metrics = service.metrics().await;
        assert!(!metrics.contains("no-such-path"), "{name} keeps unmatched paths as labels:\n{metrics}");
        assert!(metrics.contains("endpoint=\"unmatched\""), "{name}:\n{metrics}");
    }
    // Without a token set, nobody reads the metrics.
    let open = Service::start("query-api", &env, &[("RSVP_METRICS_TOKEN", String::new())]).await;
    let r = http.get(format!("{}/metrics", open.url)).bearer_auth("").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_query_api_logs_the_path_but_never_the_query_string() {
    let env = TestEnv::new().await;
    let query = Service::start("query-api", &env, &[]).await;
    let api = Api::new(&query.url, &env.key);
    let r = api.get("/v1/invites?target=secret.person%40example.com&inviter=private-inviter").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(api.get("/v1/stats?target=secret.person@example.com").await.status, StatusCode::OK);
    let log = eventually(Duration::from_secs(10), "the access log lines", || async {
        let log = query.log_text();
        log.contains("/v1/stats").then_some(log)
    })
    .await;
    assert!(log.contains("/v1/invites"), "{log}");
    for personal in ["secret.person", "private-inviter", "target="] {
        assert!(!log.contains(personal), "{personal} in query-api's log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_over_its_rate_limit_gets_429_with_retry_after_and_other_keys_go_on() {
    let env = TestEnv::new().await;
    let limits = [("RSVP_RATE_LIMIT_PER_SECOND", "1".to_owned()), ("RSVP_RATE_LIMIT_BURST", "3".to_owned())];
    let query = Service::start("query-api", &env, &limits).await;
    let api = Api::new(&query.url, &env.key);
    let mut statuses = Vec::new();
    let limited = loop {
        let r = api.get("/v1/invites").await;
        statuses.push(r.status);
        if r.status != StatusCode::OK || statuses.len() == 50 {
            break r;
        }
    };
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    assert!(statuses.len() >= 4, "the burst of 3 passes first: {statuses:?}");
    assert_eq!(limited.header("content-type"), Some("application/problem+json"));
    assert_eq!(limited.body["code"], "rate-limited");
    let retry: u64 = limited.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    let other = api.with_key(&env.key_with(&[Scope::InvitesRead], None).await);
    assert_eq!(other.get("/v1/invites").await.status, StatusCode::OK, "another key is not limited");

    let command = Service::start("command-api", &env, &limits).await;
    command.wait_ready(Duration::from_secs(60)).await;
    let api = Api::new(&command.url, &env.key);
    let statuses = futures::future::join_all((0..10).map(|_| api.get("/v1/definitions"))).await;
    assert!(statuses.iter().any(|r| r.status == StatusCode::TOO_MANY_REQUESTS), "the command API limits too");
}

async fn preflight(http: &reqwest::Client, url: &str, origin: &str) -> reqwest::Response {
    http.request(Method::OPTIONS, format!("{url}/v1/invites"))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", "GET")
        .header("Access-Control-Request-Headers", "authorization")
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_answers_the_origins_the_operator_allows_and_is_off_by_default() {
    let env = TestEnv::new().await;
    let allowed = "https://dash.example.com";
    let origins = [("RSVP_CORS_ORIGINS", format!("{allowed}, https://other.example.com"))];
    let query = Service::start("query-api", &env, &origins).await;
    let command = Service::start("command-api", &env, &origins).await;
    let http = reqwest::Client::new();
    for url in [&query.url, &command.url] {
        let ok = preflight(&http, url, allowed).await;
        assert!(ok.status().is_success(), "{url}: {}", ok.status());
        assert_eq!(ok.headers()["access-control-allow-origin"], allowed);
        let methods = ok.headers()["access-control-allow-methods"].to_str().unwrap().to_owned();
        assert!(methods.contains("GET"), "{methods}");
        // A browser client of the Vortex dialect: its key in `x-api-key`, its revokes as DELETE.
        let vortex = http
            .request(Method::OPTIONS, format!("{url}/api/v1/invitations/x"))
            .header("Origin", allowed)
            .header("Access-Control-Request-Method", "DELETE")
            .header("Access-Control-Request-Headers", "x-api-key")
            .send()
            .await
            .unwrap();
        assert!(vortex.status().is_success(), "{url}: {}", vortex.status());
        assert_eq!(vortex.headers()["access-control-allow-origin"], allowed);
        let refused = preflight(&http, url, "https://evil.example.net").await;
        assert!(refused.headers().get("access-control-allow-origin").is_none(), "{url}");
        let get = http.get(format!("{url}/healthz")).header("Origin", allowed).send().await.unwrap();
        assert_eq!(get.headers()["access-control-allow-origin"], allowed);
    }

    let plain = Service::start("query-api", &env, &[]).await;
    let r = preflight(&http, &plain.url, allowed).await;
    assert!(r.headers().keys().all(|k| !k.as_str().starts_with("access-control-")), "{:?}", r.headers());
    let get = http.get(format!("{}/healthz", plain.url)).header("Origin", allowed).send().await.unwrap();
    assert!(get.headers().keys().all(|k| !k.as_str().starts_with("access-control-")), "{:?}", get.headers());
}

async fn revoke(env: &TestEnv, key: &str) {
    let key_id = key.split('_').nth(1).unwrap();
    sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE key_id = $1")
        .bind(key_id)
        .execute(&env.pool)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_verified_key_is_cached_for_the_configured_time_only() {
    let env = TestEnv::new().await;
    let cached = Service::start("query-api", &env, &[("RSVP_AUTH_CACHE_SECONDS", "600".into())]).await;
    let uncached = Service::start("query-api", &env, &[("RSVP_AUTH_CACHE_SECONDS", "0".into())]).await;
    let key = env.key_with(&[Scope::InvitesRead], None).await;
    let (cached, uncached) = (Api::new(&cached.url, &key), Api::new(&uncached.url, &key));
    assert_eq!(cached.get("/v1/invites").await.status, StatusCode::OK);
    assert_eq!(uncached.get("/v1/invites").await.status, StatusCode::OK);
    // A revocation reaches every cache within a second through the change feed (tests/api_keys.rs):
    // with the feed's trigger off, the revocation goes unheard, which shows the cache is used.
    sqlx::query("ALTER TABLE api_keys DISABLE TRIGGER api_key_changed").execute(&env.pool).await.unwrap();
    revoke(&env, &key).await;
    assert_eq!(uncached.get("/v1/invites").await.status, StatusCode::UNAUTHORIZED, "no cache: revoked at once");
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert_eq!(cached.get("/v1/invites").await.status, StatusCode::OK, "a cached key is not looked up again");
    // A forged secret for a cached key id is still refused: the cache holds the whole key's hash.
    let forged = format!("{}0", key);
    assert_eq!(cached.with_key(&forged).get("/v1/invites").await.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn help_never_prints_the_database_password_or_the_cursor_secret_from_the_environment() {
    for binary in ["command-api", "query-api", "projector", "rsvp-admin"] {
        let out = std::process::Command::new(rsvp_tests::services::bin_path(binary))
            .arg("--help")
            .env("DATABASE_URL", "postgres://rsvp:db-password-in-env@127.0.0.1/rsvp")
            .env("RSVP_CURSOR_SECRET", "cursor-secret-in-env")
            .output()
            .expect("the binary runs");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("DATABASE_URL"), "{binary}: {help}");
        assert!(!help.contains("db-password-in-env"), "{binary} --help shows the password:\n{help}");
        assert!(!help.contains("cursor-secret-in-env"), "{binary} --help shows the cursor secret:\n{help}");
    }
}
