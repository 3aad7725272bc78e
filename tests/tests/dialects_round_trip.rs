//! One invite across every dialect, through the gateway: what one dialect writes, every other
//! reads, with one history (`GET /v1/invites/{id}/events`). The dialects are mappings onto the
//! same commands, events and read models, so each sees the others' changes as its own.

use reqwest::{Method, StatusCode};
use rsvp_tests::{eventually, Api, Gateway, Services, TestEnv};
use serde_json::{json, Value};
use service_kit::Scope;
use std::time::Duration;

/// The inviter the invites belong to, and whose Omneo token ("me") acts on them.
const INVITER: &str = "ann";

/// `2026-11-25T15:38:01.258123Z` (an event's time) as Argyle writes it, to the millisecond.
fn argyle_time(rfc3339: &str) -> String {
    let at: chrono::DateTime<chrono::Utc> = rfc3339.parse().expect("an RFC 3339 time");
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invite_changed_through_one_dialect_reads_the_same_through_the_others_with_one_history() {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let gateway = Gateway::for_services(&services).await;
    let native = Api::new(&gateway.url, &env.key);
    let omneo = Api::new(&gateway.url, &env.key_with(&[Scope::InvitesWrite, Scope::InvitesRead], Some(INVITER)).await);
    let (key_id, secret) = env.key.strip_prefix("rsvp_").and_then(|k| k.split_once('_')).expect("rsvp_<id>_<secret>");
    let http = reqwest::Client::new();
    let argyle_list = || http.get(format!("{}/v2/invites?limit=200", gateway.url)).basic_auth(key_id, Some(secret));
    let vortex_get =
        |id: &str| http.get(format!("{}/api/v1/invitations/{id}", gateway.url)).header("x-api-key", &env.key);

    // Created through Vortex, by inviter `ann`: created and delivered in one command.
    let vortex_create = |target: &str| {
        let body = json!({
            "widgetConfigurationId": "widget-1",
            "target": { "type": "email", "value": target, "name": "Carol Jones" },
            "inviter": { "userId": INVITER, "userEmail": "ann@example.com", "name": "Ann" },
            "groups": [{ "type": "workspace", "groupId": "ws-1", "name": "Team" }],
        });
        let request =
            http.post(format!("{}/api/v1/invitations", gateway.url)).header("x-api-key", &env.key).json(&body);
        async move {
            let r = request.send().await.unwrap();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            assert_eq!(status, StatusCode::CREATED, "{body}");
            body["id"].as_str().unwrap().to_owned()
        }
    };
    let revoked = vortex_create("carol@example.com").await;
    let accepted = vortex_create("dave@example.com").await;

    // Vortex reads it once projected: open, not deactivated.
    let seen = eventually(Duration::from_secs(30), "the invite on Vortex", || async {
        let r = vortex_get(&revoked).send().await.unwrap();
        (r.status() == StatusCode::OK).then_some(())?;
        Some(r.json::<Value>().await.unwrap())
    })
    .await;
    assert_eq!((seen["id"].as_str(), seen["deactivated"].as_bool()), (Some(revoked.as_str()), Some(false)), "{seen}");

    // Revoked through Omneo, by its inviter's token; accepted through the native API.
    let r = omneo.call(Method::POST, &format!("/v1/me/invites/{revoked}/revoke"), None, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["data"]["status"], "REVOKED", "{}", r.body);
    let r = native.post(&format!("/v1/invites/{accepted}/accept"), &json!({"accepted_by": "user-dave"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Listed through Argyle: revoked and completed, once each.
    let listed = eventually(Duration::from_secs(30), "both changes on Argyle", || async {
        let page: Value = argyle_list().send().await.unwrap().json().await.unwrap();
        let results = page["results"].as_array()?.clone();
        let status = |id: &str| results.iter().find(|i| i["id"] == id).map(|i| i["status"].clone());
        (status(&revoked)? == "revoked" && status(&accepted)? == "completed").then_some(results)
    })
    .await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let on_argyle = |id: &str| listed.iter().find(|i| i["id"] == id).unwrap().clone();
    let (a_revoked, a_accepted) = (on_argyle(&revoked), on_argyle(&accepted));
    assert_eq!(a_accepted["user"], "user-dave");
    assert_eq!(
        (a_revoked["email"].as_str(), a_revoked["full_name"].as_str()),
        (Some("carol@example.com"), Some("Carol Jones"))
    );

    // The same history everywhere: the native trail holds what each dialect did, and Argyle's
    // times are the events' times.
    let history = native.get(&format!("/v1/invites/{revoked}/events")).await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    let events = history.body["data"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"InviteCreated"), "{types:?}");
    assert_eq!(types.last(), Some(&"InviteRevoked"), "{types:?}");
    assert!(types.contains(&"InviteSent"), "Vortex's create delivers: {types:?}");
    let revoke = events.last().unwrap();
    assert_eq!(revoke["actor"], json!({"kind": "inviter", "id": INVITER}), "the Omneo token acted as its inviter");
    let at = |e: &Value| argyle_time(e["occurred_at"].as_str().unwrap());
    let last_sent = events.iter().rev().find(|e| e["type"] == "InviteSent").unwrap();
    assert_eq!(a_revoked["created_at"], at(&events[0]));
    assert_eq!(a_revoked["invited_at"], at(last_sent));
    assert_eq!(a_revoked["revoked_at"], at(revoke));
    assert_eq!(a_revoked["updated_at"], at(revoke));
    assert_eq!(a_revoked["deliveries"].as_array().unwrap().len(), types.iter().filter(|t| **t == "InviteSent").count());
    let history = native.get(&format!("/v1/invites/{accepted}/events")).await;
    let types: Vec<&str> =
        history.body["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!((types.first(), types.last()), (Some(&"InviteCreated"), Some(&"InviteAccepted")), "{types:?}");

    // And Vortex sees both changes: the revoked invite deactivated, the other accepted.
    let v: Value = vortex_get(&revoked).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["deactivated"], true, "{v}");
    let v: Value = vortex_get(&accepted).send().await.unwrap().json().await.unwrap();
    assert_eq!(v["status"], "accepted", "{v}");
    // Omneo's list shows the revoke it made, with the time Argyle shows.
    let mine = omneo.get("/v1/me/invites").await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    let on_omneo = mine.body["data"].as_array().unwrap().iter().find(|i| i["id"] == revoked.as_str()).cloned();
    assert_eq!(on_omneo.expect("the revoked invite on Omneo")["status"], "REVOKED");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invite_sent_through_argyle_is_accepted_through_vortex_and_read_the_same_on_omneo_and_natively() {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let gateway = Gateway::for_services(&services).await;
    let native = Api::new(&gateway.url, &env.key);
    let ann = env.key_with(&[Scope::InvitesWrite, Scope::InvitesRead], Some(INVITER)).await;
    let omneo = Api::new(&gateway.url, &ann);
    let (key_id, secret) = ann.strip_prefix("rsvp_").and_then(|k| k.split_once('_')).expect("rsvp_<id>_<secret>");
    let http = reqwest::Client::new();

    // Sent through Argyle with `ann`'s key: the invite is hers.
    let created = http
        .post(format!("{}/v2/invites", gateway.url))
        .basic_auth(key_id, Some(secret))
        .json(&json!({"first_name": "Erin", "last_name": "Stone", "email": "erin@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_owned();

    // Accepted through Vortex, by its target.
    let accepted = http
        .post(format!("{}/api/v1/invitations/accept", gateway.url))
        .header("x-api-key", &env.key)
        .json(&json!({"invitationIds": [id], "target": {"type": "email", "value": "Erin@Example.com"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), StatusCode::OK);
    let accepted: Value = accepted.json().await.unwrap();
    assert_eq!((accepted["id"].as_str(), accepted["status"].as_str()), (Some(id.as_str()), Some("accepted")));

    // Omneo, Argyle and the native API read the same acceptance at the same time.
    let history = native.get(&format!("/v1/invites/{id}/events")).await;
    let events = history.body["data"].as_array().unwrap().clone();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["InviteCreated", "InviteSent", "InviteAccepted"]);
    assert_eq!(events[0]["actor"], json!({"kind": "inviter", "id": INVITER}), "made through Argyle as ann");
    let on_argyle = eventually(Duration::from_secs(30), "the acceptance on Argyle", || async {
        let r = http.get(format!("{}/v2/invites/{id}", gateway.url)).basic_auth(key_id, Some(secret)).send().await;
        let body: Value = r.ok()?.json().await.ok()?;
        (body["status"] == "completed").then_some(body)
    })
    .await;
    assert_eq!(on_argyle["updated_at"], argyle_time(events[2]["occurred_at"].as_str().unwrap()));
    assert_eq!((on_argyle["first_name"].as_str(), on_argyle["last_name"].as_str()), (Some("Erin"), Some("Stone")));
    let mine = omneo.get("/v1/me/invites").await;
    let on_omneo = &mine.body["data"][0];
    assert_eq!(
        (on_omneo["id"].as_str(), on_omneo["status"].as_str()),
        (Some(id.as_str()), Some("ACCEPTED")),
        "{}",
        mine.body
    );
    assert!(on_omneo["accepted_at"].is_string(), "{on_omneo}");
    let detail = native.get(&format!("/v1/invites/{id}")).await;
    assert_eq!(detail.body["status"], "accepted", "{}", detail.body);
}
