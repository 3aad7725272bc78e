//! The Omneo dialect (`../shared/seeds/omneo-invites-api.txt`) end to end, through the gateway
//! as an Omneo client would call it: whole responses compared with the seed's shapes (names,
//! types, nullability, status words, time formats), its error bodies, its credential (and no
//! other dialect's), and tenant isolation.

use reqwest::{Method, StatusCode};
use rsvp_tests::{eventually, Api, Gateway, Reply, Services, TestEnv};
use serde_json::{json, Value};
use service_kit::auth::{ensure_tenant, issue_key, Scope};
use std::time::Duration;

const INVITER: &str = "omneo-profile-42";

/// An Omneo time: `YYYY-MM-DD HH:MM:SS`.
fn assert_time(value: &Value, what: &str) -> chrono::NaiveDateTime {
    let s = value.as_str().unwrap_or_else(|| panic!("{what} is not a string: {value}"));
    assert_eq!(s.len(), 19, "{what}: {s}");
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap_or_else(|e| panic!("{what}: {s}: {e}"))
}

struct World {
    env: TestEnv,
    _services: Services,
    gateway: Gateway,
    /// The inviter's Omneo token (an inviter-scoped key).
    omneo: Api,
    /// The tenant's admin key on the native API.
    native: Api,
    starts_at: chrono::DateTime<chrono::Utc>,
    ends_at: chrono::DateTime<chrono::Utc>,
}

async fn world() -> World {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let gateway = Gateway::for_services(&services).await;
    let native = Api::new(&gateway.url, &env.key);
    let now = chrono::Utc::now();
    let (starts_at, ends_at) = (now - chrono::Duration::hours(1), now + chrono::Duration::days(1));
    let definition = native
        .post(
            "/v1/definitions",
            &json!({
                "handle": "gold-definition",
                "max_invites_per_inviter": 10,
                "max_send_count": 2,
                "starts_at": starts_at,
                "ends_at": ends_at,
                "default_expiry_days": 30
            }),
        )
        .await;
    assert_eq!(definition.status, StatusCode::CREATED, "{}", definition.body);
    // Definitions are read from the read model: wait until it holds this one.
    let token = env.key_with(&[Scope::InvitesWrite, Scope::InvitesRead], Some(INVITER)).await;
    let omneo = Api::new(&gateway.url, &token);
    eventually(Duration::from_secs(30), "the definition to be projected", || async {
        let r = omneo.get("/v1/me/invites").await;
        (r.body["meta"][0]["eligible_definition"]["handle"] == "gold-definition").then_some(())
    })
    .await;
    World { env, _services: services, gateway, omneo, native, starts_at, ends_at }
}

/// The seed's invite with this invite's own values; the times are checked for their format and
/// taken from the response.
fn expected_invite(got: &Value, id: &str, email: &str, status: &str, send_count: u64) -> Value {
    let invited = assert_time(&got["invited_at"], "invited_at");
    let expires = assert_time(&got["expires_at"], "expires_at");
    assert_eq!(expires - invited, chrono::Duration::days(30), "the definition's default expiry");
    for field in ["accepted_at", "rejected_at", "revoked_at"] {
        if !got[field].is_null() {
            assert_time(&got[field], field);
        }
    }
    json!({
        "id": id,
        "source_omneo_id": INVITER,
        "recipient_email": email,
        "status": status,
        "send_count": send_count,
        "invited_at": got["invited_at"],
        "expires_at": got["expires_at"],
        "accepted_at": null,
        "rejected_at": null,
        "revoked_at": got["revoked_at"],
        "definition": "gold-definition"
    })
}

fn assert_message_only(reply: &Reply, status: StatusCode, what: &str) {
    assert_eq!(reply.status, status, "{what}: {}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"), "{what}");
    let body = reply.body.as_object().unwrap_or_else(|| panic!("{what}: not a JSON object: {}", reply.body));
    assert_eq!(body.keys().collect::<Vec<_>>(), ["message"], "{what}: {}", reply.body);
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_omneo_client_creates_lists_resends_and_revokes_through_the_gateway_in_the_seeds_shapes() {
    let w = world().await;
    let email = "alex@example.org";

    // Create: 201 {data: invite}, sent at once (send_count 1), under the eligible definition.
    let created = w
        .omneo
        .post(
            "/v1/me/invites",
            &json!({
                "recipient_first_name": "Alex",
                "recipient_email": email,
                "public_message": "Hey Alex, thought you'd like this!"
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.header("content-type"), Some("application/json"));
    let id = created.body["data"]["id"].as_str().expect("an id").to_owned();
    uuid::Uuid::parse_str(&id).expect("the id is a UUID");
    let invite = &created.body["data"];
    assert_eq!(created.body, json!({ "data": expected_invite(invite, &id, email, "PENDING", 1) }));
    assert!(invite["revoked_at"].is_null());

    // List: {data: [invite], meta: [{...}]} with the caller's quota.
    let listed = w.omneo.get("/v1/me/invites").await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
    let expected = json!({
        "data": [expected_invite(&listed.body["data"][0], &id, email, "PENDING", 1)],
        "meta": [{
            "remaining": 9,
            "override_count": null,
            "eligible_definition": {
                "id": 1,
                "handle": "gold-definition",
                "in_range": true,
                "starts_at": fmt(w.starts_at),
                "ends_at": fmt(w.ends_at),
                "max_invites": 10
            },
            "profile_statuses": ["gold-definition"]
        }]
    });
    assert_eq!(listed.body, expected);
    assert_eq!(listed.body["data"][0]["invited_at"], invite["invited_at"]);

    // Resend: 202 and Omneo's message; refused once send_count reached max_send_count (2).
    let resent = w.omneo.post(&format!("/v1/me/invites/{id}/resend"), &json!({})).await;
    assert_eq!(resent.status, StatusCode::ACCEPTED, "{}", resent.body);
    assert_eq!(resent.body, json!({ "data": { "message": "Invite scheduled for re-send." } }));
    let again = w.omneo.post(&format!("/v1/me/invites/{id}/resend"), &json!({})).await;
    assert!(again.status.is_client_error(), "{}: {}", again.status, again.body);
    assert_message_only(&again, again.status, "a resend past max_send_count");

    // Revoke: {data: invite} with status REVOKED and revoked_at.
    let revoked = w.omneo.call(Method::POST, &format!("/v1/me/invites/{id}/revoke"), None, &[]).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    let data = &revoked.body["data"];
    assert_time(&data["revoked_at"], "revoked_at");
    assert_eq!(revoked.body, json!({ "data": expected_invite(data, &id, email, "REVOKED", 2) }));
    let twice = w.omneo.call(Method::POST, &format!("/v1/me/invites/{id}/revoke"), None, &[]).await;
    assert!(twice.status.is_client_error(), "{}", twice.status);
    assert_message_only(&twice, twice.status, "a second revoke");

    // The same invite, the same history, on the native API.
    let history = eventually(Duration::from_secs(30), "the revoke in the history", || async {
        let r = w.native.get(&format!("/v1/invites/{id}/events")).await;
        let types: Vec<String> =
            r.body["data"].as_array()?.iter().filter_map(|e| e["type"].as_str().map(str::to_owned)).collect();
        types.contains(&"InviteRevoked".to_owned()).then_some(types)
    })
    .await;
    assert_eq!(history, ["InviteCreated", "InviteSent", "InviteSent", "InviteRevoked"]);
    let listed = w.omneo.get("/v1/me/invites").await;
    assert_eq!(listed.body["data"][0], revoked.body["data"]);
    assert_eq!(listed.body["meta"][0]["remaining"], 9, "a revoked invite still counts against the quota");
}

#[tokio::test(flavor = "multi_thread")]
async fn omneo_errors_are_its_json_and_only_its_own_inviters_token_is_let_in() {
    let w = world().await;

    // Bad input: 4xx naming the field, Laravel's shape.
    for (body, field) in [
        (json!({ "recipient_first_name": "Alex" }), "recipient_email"),
        (json!({ "recipient_email": "not-an-address" }), "recipient_email"),
        (json!({ "recipient_email": "a@example.org", "public_message": 7 }), "public_message"),
    ] {
        let r = w.omneo.post("/v1/me/invites", &body).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.body);
        let keys: Vec<_> = r.body.as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["errors", "message"], "{}", r.body);
        assert!(r.body["message"].is_string());
        let errors = r.body["errors"].as_object().unwrap();
        assert_eq!(errors.keys().collect::<Vec<_>>(), [field], "{}", r.body);
        assert!(errors[field][0].is_string(), "{}", r.body);
    }
    let http = &w.omneo.http;
    let url = format!("{}/v1/me/invites", w.gateway.url);
    let malformed = http
        .post(&url)
        .bearer_auth(&w.omneo.key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let body: Value = malformed.json().await.unwrap();
    assert!(body["message"].is_string() && body.as_object().unwrap().len() == 1, "{body}");
    let unknown = w.omneo.post("/v1/me/invites/not-an-id/revoke", &json!({})).await;
    assert_message_only(&unknown, StatusCode::NOT_FOUND, "a malformed id");

    // Omneo's 401 for no credential and for the other dialects' forms of a valid key.
    let token = w.omneo.key.clone();
    let (key_id, secret) = service_kit::credential::split_api_key(&token).unwrap();
    let mut ways: Vec<(&str, reqwest::RequestBuilder)> = Vec::new();
    for (method, path) in [(Method::GET, "/v1/me/invites"), (Method::POST, "/v1/me/invites")] {
        let url = format!("{}{path}", w.gateway.url);
        let request = || http.request(method.clone(), &url).json(&json!({ "recipient_email": "b@example.org" }));
        ways.push(("no credential", request()));
        ways.push(("HTTP Basic key_id:secret", request().basic_auth(key_id, Some(secret))));
        ways.push(("x-api-key", request().header("x-api-key", &token)));
        ways.push(("a wrong token", request().bearer_auth("rsvp_0000_1111")));
    }
    for (what, request) in ways {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(response.headers()["content-type"], "application/json", "{what}");
        assert_eq!(response.json::<Value>().await.unwrap(), json!({ "message": "Unauthenticated." }), "{what}");
    }
    // A key that is not an inviter's has no "me".
    let tenant_wide = w.omneo.with_key(&w.env.key).get("/v1/me/invites").await;
    assert_message_only(&tenant_wide, StatusCode::FORBIDDEN, "a tenant-wide key");
    assert_eq!(w.env.read_log().len(), 1, "nothing but the definition was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_or_another_inviters_token_finds_nothing_and_writes_nothing() {
    let w = world().await;
    let created = w.omneo.post("/v1/me/invites", &json!({ "recipient_email": "alex@example.org" })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["data"]["id"].as_str().unwrap().to_owned();
    let written = w.env.read_log().len();

    // The same inviter id in another tenant, and another inviter of the same tenant.
    let other = ensure_tenant(&w.env.pool, "tenant-b").await.unwrap();
    let scopes = [Scope::InvitesWrite, Scope::InvitesRead];
    let foreign = issue_key(&w.env.pool, other, &scopes, Some(INVITER), None).await.unwrap().token;
    let colleague = w.env.key_with(&scopes, Some("someone-else")).await;
    for (who, key) in [("another tenant", foreign), ("another inviter", colleague)] {
        let api = w.omneo.with_key(&key);
        for action in ["revoke", "resend"] {
            let r = api.post(&format!("/v1/me/invites/{id}/{action}"), &json!({})).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{who} {action}: {}", r.body);
            assert_eq!(r.body, json!({ "message": "Invite not found." }), "{who} {action}");
        }
        let listed = api.get("/v1/me/invites").await;
        assert_eq!(listed.status, StatusCode::OK, "{who}");
        assert_eq!(listed.body["data"], json!([]), "{who}");
    }
    assert_eq!(w.env.read_log().len(), written, "nothing was written");
    let mine = w.omneo.get("/v1/me/invites").await;
    assert_eq!(mine.body["data"][0]["status"], "PENDING");
    assert_eq!(mine.body["data"][0]["send_count"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invite_made_on_the_native_api_is_the_inviters_on_omneo_and_its_omneo_revoke_is_in_its_history() {
    let w = world().await;
    let body = json!({
        "inviter": { "id": INVITER },
        "targets": [{ "type": "phone", "value": "+14155550100" }, { "type": "email", "value": "drew@example.org" }]
    });
    let created = w.native.post("/v1/invites", &body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();

    let listed = eventually(Duration::from_secs(30), "the native invite on Omneo", || async {
        let r = w.omneo.get("/v1/me/invites").await;
        r.body["data"].as_array()?.iter().find(|i| i["id"] == id.as_str()).cloned()
    })
    .await;
    assert_time(&listed["invited_at"], "invited_at");
    let expected = json!({
        "id": id,
        "source_omneo_id": INVITER,
        "recipient_email": "drew@example.org",
        "status": "PENDING",
        "send_count": 0,
        "invited_at": listed["invited_at"],
        "expires_at": null,
        "accepted_at": null,
        "rejected_at": null,
        "revoked_at": null,
        "definition": null
    });
    assert_eq!(listed, expected, "the first email target, no definition, never sent");

    let revoked = w.omneo.post(&format!("/v1/me/invites/{id}/revoke"), &json!({})).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(revoked.body["data"]["status"], "REVOKED");
    let detail = w.native.get(&format!("/v1/invites/{id}")).await;
    assert_eq!(detail.body["status"], "revoked", "{}", detail.body);
    let history = w.native.get(&format!("/v1/invites/{id}/events")).await;
    let events: Vec<&Value> = history.body["data"].as_array().unwrap().iter().collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["InviteCreated", "InviteRevoked"]);
    assert_eq!(events[1]["actor"], json!({ "kind": "inviter", "id": INVITER }), "the Omneo token acted as its inviter");
}
