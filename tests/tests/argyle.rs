//! The Argyle dialect end to end, through the gateway as an Argyle client calls it: HTTP Basic
//! (username = key id, password = secret), `GET /v2/invites` with `next`/`previous` links,
//! `limit`, `status` and `reply_to`, `POST /v2/invites` and `/revoke`, in the seed's shapes
//! (`../shared/seeds/argyle-list-invites.txt`), compared field by field.

use reqwest::StatusCode;
use rsvp_tests::{eventually, invite_for, Api, Gateway, Services, TestEnv};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// The first invite object of the seed, as Argyle documents it: the names, JSON types and
/// nullability every answer must have.
fn seed_invite() -> Value {
    json!({
        "id": "0424137bc-edc5-35de-c1b5-1c3cddb4b227",
        "user": "018051aa-f7a9-a0db-2f38-6cfa325e9d69",
        "user_token": null,
        "email": "[email protected]",
        "phone_number": "212-555-5555",
        "full_name": "Sarah Longfield",
        "first_name": "Sarah",
        "last_name": "Longfield",
        "revoked_at": null,
        "status": "completed",
        "group_id": "d8a07e5b-13a3-11ef-af7e-c7eb00762562",
        "url": "https://console.argyle.com/add-work-accounts/0424137bc-edc5-35de-c1b5-1c3cddb4b227",
        "created_at": "2023-03-09T23:57:05.756Z",
        "updated_at": "2023-03-09T23:57:05.756Z",
        "invited_at": "2023-03-09T23:57:05.756Z",
        "flow_id": "8DRRA4XC",
        "flow_items": ["item_000000001", "item_000000002"],
        "reply_to": ["[email protected]", "[email protected]"],
        "deliveries": [{
            "id": "d7c85e44-9729-11f0-b297-f3718e19503e",
            "method": "email",
            "status": "opened",
            "sent_at": "2023-03-09T23:57:24.000Z",
            "updated_at": "2023-03-09T23:57:24.000Z"
        }],
        "invite_template_id": null
    })
}

/// Fields Argyle documents as nullable (the rest are strings, or arrays, always).
const NULLABLE: [&str; 9] =
    ["user", "user_token", "email", "phone_number", "revoked_at", "group_id", "url", "flow_id", "invite_template_id"];
const TIMES: [&str; 4] = ["created_at", "updated_at", "invited_at", "revoked_at"];
const STATUS_WORDS: [&str; 7] = ["initiated", "sent", "opened", "completed", "declined", "revoked", "expired"];

fn is_argyle_time(v: &Value) -> bool {
    let Some(s) = v.as_str() else { return false };
    let b = s.as_bytes();
    s.len() == 24
        && s.ends_with('Z')
        && b[10] == b'T'
        && b[19] == b'.'
        && chrono::DateTime::parse_from_rfc3339(s).is_ok()
}

/// Every field of the seed's invite object, no other, each of the seed's JSON type (or null
/// where Argyle allows it), times ISO 8601 with milliseconds and `Z`, a status word of Argyle's.
fn assert_argyle_invite(invite: &Value) {
    let seed = seed_invite();
    let names = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<BTreeSet<_>>();
    assert_eq!(names(invite), names(&seed), "{invite}");
    for (name, example) in seed.as_object().unwrap() {
        let value = &invite[name];
        let same_type = std::mem::discriminant(value) == std::mem::discriminant(example)
            || (example.is_null() && value.is_string());
        assert!(same_type || (value.is_null() && NULLABLE.contains(&name.as_str())), "{name}: {value} in {invite}");
    }
    for time in TIMES {
        assert!(invite[time].is_null() || is_argyle_time(&invite[time]), "{time}: {}", invite[time]);
    }
    assert!(STATUS_WORDS.contains(&invite["status"].as_str().unwrap()), "{}", invite["status"]);
    for delivery in invite["deliveries"].as_array().unwrap() {
        assert_eq!(names(delivery), names(&seed["deliveries"][0]), "{delivery}");
        assert!(delivery["id"].is_string() && delivery["method"].is_string() && delivery["status"].is_string());
        assert!(is_argyle_time(&delivery["sent_at"]) && is_argyle_time(&delivery["updated_at"]), "{delivery}");
    }
}

/// An Argyle client: HTTP Basic with the key's id and secret.
struct Argyle {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

struct Answer {
    status: StatusCode,
    body: Value,
}

impl Argyle {
    fn new(base: &str, key: &str) -> Self {
        let rest = key.strip_prefix("rsvp_").expect("a native key");
        let (user, password) = rest.split_once('_').expect("rsvp_<id>_<secret>");
        Self { http: reqwest::Client::new(), base: base.to_owned(), user: user.into(), password: password.into() }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.basic_auth(&self.user, Some(&self.password)).send().await.expect("an answer");
        let status = response.status();
        let text = response.text().await.unwrap();
        Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    /// `url`: a path on the base URL, or a full URL (a `next`/`previous` link).
    async fn get(&self, url: &str) -> Answer {
        let url = if url.starts_with("http") { url.to_owned() } else { format!("{}{url}", self.base) };
        self.send(self.http.get(url)).await
    }

    async fn post(&self, path: &str, body: Option<&Value>) -> Answer {
        let mut request = self.http.post(format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request.json(body);
        }
        self.send(request).await
    }
}

struct Setup {
    env: TestEnv,
    _services: Services,
    gateway: Gateway,
    native: Api,
    argyle: Argyle,
}

async fn setup() -> Setup {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let gateway = Gateway::for_services(&services).await;
    let native = Api::new(&gateway.url, &env.key);
    let argyle = Argyle::new(&gateway.url, &env.key);
    Setup { env, _services: services, gateway, native, argyle }
}

/// Creates an invite through the native API (through the gateway) and returns its id.
async fn native_invite(native: &Api, body: Value) -> String {
    let r = native.post("/v1/invites", &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// The ids of a list answer, in order.
fn ids(page: &Value) -> Vec<String> {
    page["results"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

/// Waits until the Argyle list (`query`) holds exactly `n` invites on its first page.
async fn listed(argyle: &Argyle, query: &str, n: usize) -> Value {
    eventually(Duration::from_secs(30), &format!("{n} invites on {query}"), || async {
        let r = argyle.get(&format!("/v2/invites{query}")).await;
        (r.status == StatusCode::OK && r.body["results"].as_array().map(Vec::len) == Some(n)).then_some(r.body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_argyle_client_creates_lists_and_revokes_invites_in_argyle_s_shapes() {
    let s = setup().await;
    let body = json!({
        "first_name": "Sarah", "last_name": "Longfield", "email": "sarah@example.com",
        "phone_number": "212-555-5555", "flow_id": "8DRRA4XC", "flow_items": ["item_000000001", "item_000000002"],
        "group_id": "d8a07e5b-13a3-11ef-af7e-c7eb00762562",
        "override_invite_template": { "email": { "reply_to": ["person1@example.com", "person2@example.com"] } },
    });
    let created = s.argyle.post("/v2/invites", Some(&body)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_argyle_invite(&created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let c = &created.body;
    // Every field, compared with what was sent and what the seed says it holds.
    assert_eq!(
        json!({
            "user": c["user"], "user_token": c["user_token"], "email": c["email"], "phone_number": c["phone_number"],
            "full_name": c["full_name"], "first_name": c["first_name"], "last_name": c["last_name"],
            "revoked_at": c["revoked_at"], "status": c["status"], "group_id": c["group_id"], "flow_id": c["flow_id"],
            "flow_items": c["flow_items"], "reply_to": c["reply_to"], "invite_template_id": c["invite_template_id"],
        }),
        json!({
            "user": null, "user_token": null, "email": "sarah@example.com", "phone_number": "212-555-5555",
            "full_name": "Sarah Longfield", "first_name": "Sarah", "last_name": "Longfield",
            "revoked_at": null, "status": "initiated", "group_id": "d8a07e5b-13a3-11ef-af7e-c7eb00762562",
            "flow_id": "8DRRA4XC", "flow_items": ["item_000000001", "item_000000002"],
            "reply_to": ["person1@example.com", "person2@example.com"], "invite_template_id": null,
        })
    );
    // Argyle's create sends at once: one email delivery, queued.
    assert_eq!(c["deliveries"].as_array().unwrap().len(), 1, "{c}");
    assert_eq!(
        (c["deliveries"][0]["method"].as_str(), c["deliveries"][0]["status"].as_str()),
        (Some("email"), Some("queued"))
    );
    assert_eq!(c["created_at"], c["updated_at"]);
    // The public link is shown to its creator, through the gateway's base when so configured;
    // it opens the invite.
    let url = c["url"].as_str().expect("the creator sees the link");
    assert!(url.contains("/i/"), "{url}");

    // The list shows the same object, but never the link (a bearer capability).
    let page = listed(&s.argyle, "", 1).await;
    assert_eq!((page["next"].clone(), page["previous"].clone()), (Value::Null, Value::Null));
    let mut expected = created.body.clone();
    expected["url"] = Value::Null;
    assert_eq!(page["results"][0], expected);

    // Revoke: the same object, revoked, with its time; the list agrees.
    let revoked = s.argyle.post(&format!("/v2/invites/{id}/revoke"), None).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_argyle_invite(&revoked.body);
    assert_eq!(revoked.body["status"], "revoked");
    assert_eq!(revoked.body["revoked_at"], revoked.body["updated_at"]);
    assert!(is_argyle_time(&revoked.body["revoked_at"]));
    assert_eq!(revoked.body["created_at"], c["created_at"]);
    let page = listed(&s.argyle, "?status=revoked", 1).await;
    assert_eq!(page["results"][0], revoked.body);
    // Retrieved alone, it is the same object.
    let one = s.argyle.get(&format!("/v2/invites/{id}")).await;
    assert_eq!((one.status, &one.body), (StatusCode::OK, &revoked.body));
    let missing = s.argyle.get(&format!("/v2/invites/{}", uuid::Uuid::now_v7())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    assert!(missing.body["detail"].is_string(), "{}", missing.body);
    let bad = s.argyle.get("/v2/invites/not-an-id").await;
    assert_eq!((bad.status, bad.body["id"].is_array()), (StatusCode::BAD_REQUEST, true), "{}", bad.body);

    // A native invite with no name, no phone and nothing Argyle-specific still has every field.
    native_invite(&s.native, invite_for("bob@example.com")).await;
    let page = listed(&s.argyle, "", 2).await;
    for invite in page["results"].as_array().unwrap() {
        assert_argyle_invite(invite);
    }
    assert_eq!(page["results"][0]["email"], "bob@example.com");
    assert_eq!(page["results"][0]["status"], "initiated");
    assert_eq!(page["results"][0]["flow_items"], json!([]));
    assert_eq!(page["results"][0]["full_name"], "");
    // The native API and the Argyle dialect speak of the same events.
    let history = s.native.get(&format!("/v1/invites/{id}/events")).await;
    let types: Vec<&str> =
        history.body["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["InviteCreated", "InviteSent", "InviteRevoked"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn argyle_pages_follow_next_and_previous_across_three_pages_without_a_duplicate_or_a_gap() {
    let s = setup().await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(native_invite(&s.native, invite_for(&format!("p{i}@example.com"))).await);
    }
    created.reverse(); // newest first
    listed(&s.argyle, "?limit=7", 7).await;

    let mut pages = vec![s.argyle.get("/v2/invites?limit=3").await.body];
    while let Some(next) = pages.last().unwrap()["next"].as_str().map(str::to_owned) {
        // Full URLs at the gateway, as the client called it, carrying the cursor and the query.
        assert!(next.starts_with(&format!("{}/v2/invites?", s.gateway.url)), "{next}");
        assert!(next.contains("limit=3") && next.contains("cursor="), "{next}");
        let r = s.argyle.get(&next).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        pages.push(r.body);
        assert!(pages.len() <= 3, "more pages than rows: {pages:?}");
    }
    let walked: Vec<Vec<String>> = pages.iter().map(ids).collect();
    assert_eq!(walked.iter().map(Vec::len).collect::<Vec<_>>(), [3, 3, 1]);
    assert_eq!(walked.concat(), created, "every invite once, newest first");
    assert!(pages[0]["previous"].is_null());

    // Back again along `previous`: the same pages.
    let mut back = vec![walked[2].clone()];
    let mut previous = pages[2]["previous"].as_str().map(str::to_owned);
    while let Some(url) = previous {
        let r = s.argyle.get(&url).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        back.push(ids(&r.body));
        previous = r.body["previous"].as_str().map(str::to_owned);
    }
    back.reverse();
    assert_eq!(back, walked);
}

#[tokio::test(flavor = "multi_thread")]
async fn argyle_limit_is_ten_by_default_two_hundred_at_most_and_filters_take_several_statuses_and_reply_to() {
    let s = setup().await;
    for i in 0..10 {
        native_invite(&s.native, invite_for(&format!("l{i}@example.com"))).await;
    }
    // Three more with other statuses: revoked, sent (a delivery the provider sent), and one
    // with a reply-to address.
    let revoked = native_invite(&s.native, invite_for("revoked@example.com")).await;
    let r = s.native.post(&format!("/v1/invites/{revoked}/revoke"), &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut body = invite_for("sent@example.com");
    body["send"] = json!("email");
    let sent = native_invite(&s.native, body).await;
    let mut body = invite_for("replied@example.com");
    body["reply_to"] = json!(["Boss@Example.com"]);
    let replied = native_invite(&s.native, body).await;
    let detail = eventually(Duration::from_secs(30), "the delivery", || async {
        let r = s.native.get(&format!("/v1/invites/{sent}")).await;
        (r.status == StatusCode::OK).then_some(r.body)
    })
    .await;
    let delivery = detail["deliveries"][0]["id"].as_str().unwrap().to_owned();
    let r = s.native.post(&format!("/v1/deliveries/{delivery}/events"), &json!({"status": "sent"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    listed(&s.argyle, "?status=sent", 1).await;
    // Every invite projected first (each stream is projected on its own), then the default page.
    assert_eq!(listed(&s.argyle, "?limit=200", 13).await["next"], Value::Null);
    let first = listed(&s.argyle, "", 10).await;
    assert!(first["next"].is_string(), "13 invites, 10 by default: there is a next page");
    for (query, expected) in [
        ("?limit=201", "limit"),
        ("?limit=0", "limit"),
        ("?limit=ten", "limit"),
        ("?status=bogus", "status"),
        ("?cursor=abc", "cursor"),
        ("?colour=red", "colour"),
    ] {
        let r = s.argyle.get(&format!("/v2/invites{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}: {}", r.body);
        let messages = r.body[expected].as_array().unwrap_or_else(|| panic!("{query}: {}", r.body));
        assert!(messages.len() == 1 && messages[0].is_string(), "{query}: {}", r.body);
        assert_eq!(r.body.as_object().unwrap().len(), 1, "{query}: {}", r.body);
    }

    // Several statuses, as a comma list or repeated: the same invites.
    let comma = listed(&s.argyle, "?status=revoked,sent", 2).await;
    let repeated = listed(&s.argyle, "?status=revoked&status=sent", 2).await;
    assert_eq!(ids(&comma), ids(&repeated));
    assert_eq!(ids(&comma).into_iter().collect::<BTreeSet<_>>(), BTreeSet::from([revoked.clone(), sent.clone()]));
    assert_eq!(comma["results"][0]["status"], "sent");
    assert_eq!(listed(&s.argyle, "?status=initiated&limit=200", 11).await["results"].as_array().unwrap().len(), 11);
    // reply_to: that address only (matched as the native list matches it, case aside).
    let by_reply = listed(&s.argyle, "?reply_to=boss@example.com", 1).await;
    assert_eq!(ids(&by_reply), [replied]);
    assert_eq!(by_reply["results"][0]["reply_to"], json!(["boss@example.com"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenant_s_argyle_credential_sees_and_revokes_nothing_of_this_tenant() {
    let s = setup().await;
    let id = native_invite(&s.native, invite_for("mine@example.com")).await;
    listed(&s.argyle, "", 1).await;
    let (_, other_key) = s.env.other_tenant(&format!("other-{}", uuid::Uuid::new_v4())).await;
    let other = Argyle::new(&s.gateway.url, &other_key);

    let r = other.get("/v2/invites").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, json!({"next": null, "previous": null, "results": []}));
    let events_before = s.env.read_log().len();
    let r = other.get(&format!("/v2/invites/{id}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    let r = other.post(&format!("/v2/invites/{id}/revoke"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert!(r.body["detail"].is_string() && r.body.as_object().unwrap().len() == 1, "{}", r.body);
    // Another tenant's cursor is no cursor of this tenant's: a 4xx naming it.
    for i in 0..2 {
        native_invite(&s.native, invite_for(&format!("more{i}@example.com"))).await;
    }
    listed(&s.argyle, "?limit=3", 3).await;
    let page = listed(&s.argyle, "?limit=1", 1).await;
    let next = page["next"].as_str().unwrap();
    let r = other.get(next).await;
    assert!(r.status.is_client_error() && r.body["cursor"].is_array(), "{}: {}", r.status, r.body);

    // Nothing was written for it, and the invite is still open.
    assert_eq!(s.env.read_log().len(), events_before + 2, "only this tenant's two creates");
    let mine = s.native.get(&format!("/v1/invites/{id}")).await;
    assert_eq!(mine.body["status"], "created");
}

#[tokio::test(flavor = "multi_thread")]
async fn argyle_paths_refuse_the_other_dialects_credentials_and_bad_input_with_argyle_s_errors() {
    let s = setup().await;
    let http = reqwest::Client::new();
    let unauthorized = json!({"detail": "Invalid username/password."});
    let list = format!("{}/v2/invites", s.gateway.url);
    let create = json!({"first_name": "A", "last_name": "B", "email": "a@example.com"});
    let attempts = [
        http.get(&list).bearer_auth(&s.env.key),
        http.get(&list).header("x-api-key", &s.env.key),
        http.get(&list),
        http.get(&list).basic_auth(&s.argyle.user, Some("wrong-secret")),
        http.get(&list).basic_auth(&s.env.key, None::<&str>),
        http.post(&list).bearer_auth(&s.env.key).json(&create),
        http.post(&list).header("x-api-key", &s.env.key).json(&create),
        http.post(format!("{list}/{}/revoke", uuid::Uuid::now_v7())).bearer_auth(&s.env.key),
    ];
    for attempt in attempts {
        let r = attempt.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Basic realm=\"api\""));
        assert_eq!(r.json::<Value>().await.unwrap(), unauthorized);
    }
    // Nothing written by any of them.
    assert!(s.env.read_log().is_empty());

    // Bad input: a 4xx naming the field, in Argyle's form.
    for (body, field) in [
        (json!({"email": "a@example.com"}), "first_name"),
        (json!({"first_name": "A", "email": "a@example.com"}), "last_name"),
        (json!({"first_name": "A", "last_name": "B"}), "email"),
        (json!({"first_name": "A", "last_name": "B", "email": "a@example.com", "dds_config": {}}), "dds_config"),
        (json!({"first_name": "A", "last_name": "B", "email": 7}), "email"),
    ] {
        let r = s.argyle.post("/v2/invites", Some(&body)).await;
        assert!(r.status.is_client_error(), "{body}: {} {}", r.status, r.body);
        assert!(
            r.body[field].is_array() || r.body["detail"].as_str().is_some_and(|d| d.contains(field)),
            "{body}: {}",
            r.body
        );
    }
    let r = s
        .argyle
        .post("/v2/invites", Some(&json!({"first_name": "A", "last_name": "B", "email": "a\u{0}b@example.com"})))
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.body);
    assert!(r.body["email"].is_array(), "named as the Argyle client sent it: {}", r.body);
    for (body, field) in [
        (json!({"first_name": "A", "last_name": "B", "phone_number": "1\u{0}2"}), "phone_number"),
        (json!({"first_name": "A\u{0}", "last_name": "B", "email": "a@example.com"}), "first_name"),
        (json!({"full_name": "A\u{0}", "email": "a@example.com"}), "full_name"),
        (json!({"first_name": "A", "last_name": "B", "email": "a@example.com", "group_id": "g\u{0}"}), "group_id"),
        (
            json!({"first_name": "A", "last_name": "B", "email": "a@example.com", "flow_items": ["x", "\u{0}"]}),
            "flow_items[1]",
        ),
        (
            json!({"first_name": "A", "last_name": "B", "email": "a@example.com", "invite_template_id": "t\u{0}"}),
            "invite_template_id",
        ),
    ] {
        let r = s.argyle.post("/v2/invites", Some(&body)).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", r.body);
        assert!(r.body[field].is_array(), "{body}: {field} in {}", r.body);
    }
    let r = s.argyle.post("/v2/invites/not-a-uuid/revoke", None).await;
    assert_eq!((r.status, r.body["id"].is_array()), (StatusCode::BAD_REQUEST, true), "{}", r.body);
    let r = s.argyle.post(&format!("/v2/invites/{}/revoke", uuid::Uuid::now_v7()), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    assert!(r.body["detail"].is_string(), "{}", r.body);
    assert!(s.env.read_log().is_empty(), "no refused command wrote anything");

    // Revoking twice: the second is a conflict, not a 5xx.
    let created = s.argyle.post("/v2/invites", Some(&create)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(s.argyle.post(&format!("/v2/invites/{id}/revoke"), None).await.status, StatusCode::OK);
    let again = s.argyle.post(&format!("/v2/invites/{id}/revoke"), None).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert!(again.body["detail"].is_string(), "{}", again.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inviter_s_argyle_credential_lists_and_revokes_its_own_invites_only() {
    let s = setup().await;
    let mine = native_invite(
        &s.native,
        json!({"inviter": {"id": "ann"}, "targets": [{"type": "email", "value": "a@example.com"}]}),
    )
    .await;
    let theirs = native_invite(
        &s.native,
        json!({"inviter": {"id": "bob"}, "targets": [{"type": "email", "value": "b@example.com"}]}),
    )
    .await;
    listed(&s.argyle, "", 2).await;
    let ann = Argyle::new(
        &s.gateway.url,
        &s.env.key_with(&[service_kit::Scope::InvitesWrite, service_kit::Scope::InvitesRead], Some("ann")).await,
    );

    assert_eq!(ids(&listed(&ann, "", 1).await), [mine.clone()]);
    assert_eq!(ann.get(&format!("/v2/invites/{theirs}")).await.status, StatusCode::NOT_FOUND);
    let r = ann.post(&format!("/v2/invites/{theirs}/revoke"), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    // What it creates is its own: listed for it, and made as its inviter.
    let created = ann.post("/v2/invites", Some(&json!({"full_name": "Cy", "email": "c@example.com"}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(ids(&listed(&ann, "", 2).await)[0], id);
    let detail = s.native.get(&format!("/v1/invites/{id}")).await;
    assert_eq!(detail.body["inviter"]["id"], "ann", "{}", detail.body);
    let r = ann.post(&format!("/v2/invites/{mine}/revoke"), None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (StatusCode::OK, Some("revoked")), "{}", r.body);
}

/// The README's Argyle example, run as printed (the gateway's address and the key file aside,
/// which are the test's own): both calls answer Argyle's shapes.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_s_argyle_curl_example_works_as_printed() {
    let s = setup().await;
    let readme = std::fs::read_to_string(rsvp_tests::manifest_dir().join("../README.md")).unwrap();
    let section = &readme[readme.find("## Argyle dialect").expect("an Argyle section")..];
    let start = section.find("```sh\n").expect("an example") + "```sh\n".len();
    let script = &section[start..start + section[start..].find("```").unwrap()];
    assert!(script.contains("curl") && script.contains("http://127.0.0.1:8080"), "{script}");

    let dir = std::env::temp_dir().join(format!("rsvp-argyle-readme-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join(".local")).unwrap();
    std::fs::write(dir.join(".local/demo-api-key"), format!("{}\n", s.env.key)).unwrap();
    let script = script.replace("http://127.0.0.1:8080", &s.gateway.url);
    // Each curl's answer on a line of its own.
    let script = script.replace("curl -s ", "curl -s -w '\\n' ");
    let out = tokio::process::Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(&script)
        .current_dir(&dir)
        .output()
        .await
        .expect("bash runs");
    std::fs::remove_dir_all(&dir).ok();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let answers: Vec<Value> = stdout.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(answers.len(), 2, "{stdout}");
    assert_argyle_invite(&answers[0]);
    assert_eq!(answers[0]["email"], "sarah@example.com");
    let listed = &answers[1];
    assert_eq!(ids(listed), [answers[0]["id"].as_str().unwrap()], "{listed}");
    assert_argyle_invite(&listed["results"][0]);
}

/// A committed write is answered 2xx even when the read model cannot show it: with the projector
/// down, the create answers 202 with the id and status the writer knows (after a bounded wait),
/// and the invite is in the log; once the projector is back, it is listed.
#[tokio::test(flavor = "multi_thread")]
async fn an_argyle_write_the_read_model_cannot_show_yet_is_still_answered_2xx_with_its_id() {
    let env = TestEnv::new().await;
    let mut services = Services::start(&env).await;
    let gateway = Gateway::for_services(&services).await;
    let argyle = Argyle::new(&gateway.url, &env.key);
    services.projector.kill().await;

    let r = argyle.post("/v2/invites", Some(&json!({"full_name": "Lag", "email": "lag@example.com"}))).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    let id = r.body["id"].as_str().expect("the invite's id").to_owned();
    assert_eq!(r.body["status"], "initiated", "{}", r.body);
    assert!(r.body["url"].as_str().is_some_and(|u| u.contains("/i/")), "the creator still gets the link: {}", r.body);
    assert_eq!(env.read_log().len(), 2, "InviteCreated and InviteSent are durable");

    services.projector = rsvp_tests::Service::start("projector", &env, &[]).await;
    let page = listed(&argyle, "", 1).await;
    assert_eq!(ids(&page), [id]);
}
