//! What a read model could refuse is refused at the command boundary: a NUL or a stray control
//! character in any string of any command, a string or a count too large for the read models, a
//! landing URL that is not one, an invitation named twice in a multi-accept. Each is a 422
//! problem naming the field, and the log gets nothing; and the public link never answers 500
//! for what is already in the log.

use chrono::Utc;
use reqwest::{Method, StatusCode};
use rsvp_tests::{command_api as start, invite_for, Api, TestEnv};
use serde_json::{json, Value};
use uuid::Uuid;

async fn create(api: &Api, body: &Value) -> Value {
    let r = api.post("/v1/invites", body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body
}

/// A string PostgreSQL `text` and `jsonb` cannot hold.
const NUL: &str = "a\u{0}b";

/// `invite_for("bob@example.com")` with `pointer` set to `value` (objects made on the way).
fn create_with(pointer: &str, value: Value) -> Value {
    let mut body = invite_for("bob@example.com");
    let mut at = &mut body;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        at = match part.parse::<usize>() {
            Ok(index) => {
                let items = at.as_array_mut().unwrap();
                while items.len() <= index {
                    items.push(json!({}));
                }
                &mut items[index]
            }
            Err(_) => {
                let map = at.as_object_mut().unwrap();
                map.entry(part.to_string()).or_insert(if last { Value::Null } else { json!({}) })
            }
        };
    }
    *at = value;
    body
}

fn assert_refused(r: &rsvp_tests::Reply, field: &str, what: &str) {
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {}", r.body);
    assert!(r.header("content-type").unwrap().starts_with("application/problem+json"), "{what}");
    assert_eq!(r.body["field"], field, "{what}: {}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nul_in_any_string_of_any_command_is_a_422_naming_the_field_and_the_log_gets_nothing() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;
    let open = create(&api, &invite_for("bob@example.com")).await["id"].as_str().unwrap().to_owned();
    let sent = api.post(&format!("/v1/invites/{open}/send"), &json!({})).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED);
    let delivery = env
        .read_log()
        .into_iter()
        .find_map(|e| match e.invite_event() {
            Some((_, events::InviteEvent::Sent(s))) => Some(s.delivery_id),
            _ => None,
        })
        .unwrap();
    let definition = api.post("/v1/definitions", &json!({ "handle": "spring" })).await;
    assert_eq!(definition.status, StatusCode::CREATED);
    let definition = definition.body["id"].as_str().unwrap().to_owned();
    let before = env.read_log().len();

    let creates = [
        ("/inviter/id", json!(NUL), "inviter.id"),
        ("/inviter/name", json!(NUL), "inviter.name"),
        ("/inviter/email", json!("ann\u{0}@example.com"), "inviter.email"),
        ("/targets/0/value", json!("bob\u{0}@example.com"), "targets[0].value"),
        ("/targets/1", json!({ "type": "internal", "value": NUL }), "targets[1].value"),
        ("/targets/0/name", json!(NUL), "targets[0].name"),
        ("/recipient_names", json!([NUL]), "recipient_names[0]"),
        ("/message", json!(NUL), "message"),
        ("/scopes", json!([{ "type": NUL, "id": "ws-1" }]), "scopes[0].type"),
        ("/scopes", json!([{ "type": "workspace", "id": NUL }]), "scopes[0].id"),
        ("/scopes", json!([{ "type": "workspace", "id": "ws-1", "name": NUL }]), "scopes[0].name"),
        ("/reply_to", json!(["help\u{0}@example.com"]), "reply_to[0]"),
        ("/metadata/foo", json!(NUL), "metadata.foo"),
        ("/metadata/foo", json!({ "bar": [1, NUL] }), "metadata.foo.bar[1]"),
        ("/metadata/foo", json!({ NUL: true }), "metadata.foo"),
        ("/metadata", json!({ NUL: 1 }), "metadata"),
        ("/template_variables/name", json!(NUL), "template_variables.name"),
        ("/template_variables", json!({ NUL: "x" }), "template_variables"),
        ("/widget_id", json!(NUL), "widget_id"),
        ("/flow_id", json!(NUL), "flow_id"),
        ("/template_id", json!(NUL), "template_id"),
        ("/landing_url", json!("https://app.example.org/\u{0}"), "landing_url"),
    ];
    for (pointer, value, field) in creates {
        let body = create_with(pointer, value);
        assert_refused(&api.post("/v1/invites", &body).await, field, &format!("create {pointer}"));
        let batch = api.post("/v1/invites/batch", &json!({ "invites": [body] })).await;
        assert_eq!(batch.status, StatusCode::OK, "{}", batch.body);
        let item = &batch.body["results"][0];
        assert_eq!(
            (item["status"].as_u64(), item["problem"]["field"].as_str()),
            (Some(422), Some(format!("invites[0].{field}").as_str())),
            "batch {pointer}: {}",
            batch.body
        );
    }

    let others = [
        (format!("/v1/invites/{open}/engagements"), json!({ "kind": "view", "source": NUL }), "source"),
        (format!("/v1/invites/{open}/revoke"), json!({ "reason": NUL }), "reason"),
        (format!("/v1/invites/{open}/decline"), json!({ "reason": NUL }), "reason"),
        (format!("/v1/invites/{open}/expire"), json!({ "reason": NUL }), "reason"),
        (format!("/v1/invites/{open}/accept"), json!({ "accepted_by": NUL }), "accepted_by"),
        (format!("/v1/invites/{open}/accept"), json!({ "target": "bob\u{0}@example.com" }), "target"),
        (format!("/v1/invites/{open}/resend"), json!({ "target": NUL }), "target"),
        (
            "/v1/invites/accept".to_owned(),
            json!({ "target": "bob@example.com", "invitation_ids": [open], "accepted_by": NUL }),
            "accepted_by",
        ),
        (
            "/v1/invites/accept".to_owned(),
            json!({ "target": { "type": "email", "value": NUL }, "invitation_ids": [open] }),
            "target",
        ),
        (format!("/v1/deliveries/{delivery}/events"), json!({ "status": "sent", "detail": NUL }), "detail"),
        ("/v1/definitions".to_owned(), json!({ "handle": NUL }), "handle"),
    ];
    for (path, body, field) in others {
        assert_refused(&api.post(&path, &body).await, field, &format!("{path} {body}"));
    }
    let put =
        api.call(Method::PUT, &format!("/v1/definitions/{definition}"), Some(&json!({ "handle": NUL })), &[]).await;
    assert_refused(&put, "handle", "PUT definition");

    let after = env.read_log();
    assert_eq!(
        after.len(),
        before,
        "nothing was appended: {:?}",
        after[before..].iter().map(|e| e.event_type()).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn strings_and_counts_larger_than_a_read_model_holds_are_a_422_and_the_log_gets_nothing() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;
    let long = "x".repeat(3000);
    let cases = [
        ("/scopes", json!([{ "type": "workspace", "id": long }]), "scopes[0].id"),
        ("/scopes", json!([{ "type": long, "id": "ws-1" }]), "scopes[0].type"),
        ("/widget_id", json!(long), "widget_id"),
        ("/targets/0/name", json!(long), "targets[0].name"),
        ("/inviter/id", json!("ann\nann"), "inviter.id"),
    ];
    for (pointer, value, field) in cases {
        assert_refused(&api.post("/v1/invites", &create_with(pointer, value)).await, field, pointer);
    }
    let mut multi = invite_for("bob@example.com");
    multi["invitation_type"] = json!("multi_use");
    multi["max_accepts"] = json!(2_147_483_648u64);
    assert_refused(&api.post("/v1/invites", &multi).await, "max_accepts", "max_accepts");
    let definition = json!({ "handle": "gold", "max_invites_per_inviter": 3_000_000_000u64 });
    assert_refused(&api.post("/v1/definitions", &definition).await, "max_invites_per_inviter", "definition quota");
    assert!(env.read_log().is_empty(), "nothing was appended");

    // The limits hold as documented, not lower: these are taken.
    let mut fits = create_with("/message", json!("Hi Bob,\r\n\tjoin us"));
    fits["scopes"] = json!([{ "type": "workspace", "id": "x".repeat(200) }]);
    fits["invitation_type"] = json!("multi_use");
    fits["max_accepts"] = json!(2_147_483_647u64);
    create(&api, &fits).await;
}

/// The writer holds every tenant's state in memory, with an entry per (target, scope) pair of
/// every open invite: lists without bound (scopes, reply-to addresses, metadata, template
/// variables) would let one create of a megabyte grow it by millions of entries, again at every
/// start, since the log keeps them. They are refused before anything is decided.
#[tokio::test(flavor = "multi_thread")]
async fn a_create_with_more_than_a_hundred_scopes_addresses_or_entries_is_a_422_and_the_log_gets_nothing() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;
    let many = |n: usize, item: &dyn Fn(usize) -> Value| Value::Array((0..n).map(item).collect());
    let cases = [
        ("/scopes", many(101, &|i| json!({ "type": "workspace", "id": format!("ws-{i}") })), "scopes"),
        ("/reply_to", many(101, &|i| json!(format!("r{i}@example.com"))), "reply_to"),
        ("/metadata", Value::Object((0..101).map(|i| (format!("k{i}"), json!(i))).collect()), "metadata"),
        (
            "/template_variables",
            Value::Object((0..101).map(|i| (format!("k{i}"), json!("v"))).collect()),
            "template_variables",
        ),
    ];
    for (pointer, value, field) in cases {
        assert_refused(&api.post("/v1/invites", &create_with(pointer, value)).await, field, pointer);
    }
    assert!(env.read_log().is_empty(), "nothing was appended");
    // A hundred of each is still taken.
    let mut fits = create_with("/scopes", many(100, &|i| json!({ "type": "workspace", "id": format!("ws-{i}") })));
    fits["reply_to"] = many(100, &|i| json!(format!("r{i}@example.com")));
    create(&api, &fits).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_landing_url_that_is_not_an_absolute_http_url_is_a_422_and_the_log_gets_nothing() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;
    for bad in [
        "https://app.example.org/join\r\nSet-Cookie: session=stolen",
        "https://app.example.org/\njoin",
        "https://app.example.org/a b",
        "https:app.example.org",
        "https://",
        "/join",
        "ftp://app.example.org/",
        // Credentials in the URL: a secret in every invitee's link, or a host that reads like
        // another (`app.example.org@evil.example` goes to evil.example).
        "https://user:secret@app.example.org/join",
        "https://app.example.org@evil.example/join",
    ] {
        let r = api.post("/v1/invites", &create_with("/landing_url", json!(bad))).await;
        assert_refused(&r, "landing_url", bad);
    }
    assert!(env.read_log().is_empty(), "nothing was appended");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_public_link_adds_the_invitation_id_to_the_query_and_keeps_the_landing_urls_fragment_last() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;
    let created = create(&api, &create_with("/landing_url", json!("https://app.example.org/#/welcome?step=2"))).await;
    let (id, link) = (created["id"].as_str().unwrap(), created["link_url"].as_str().unwrap());
    let anonymous = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = anonymous.get(link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("https://app.example.org/?invitation_id={id}#/welcome?step=2")
    );
}

/// An `InviteCreated` as a writer before the landing URL rule could have written it.
fn legacy_invite(env: &TestEnv, landing_url: &str, token: &str) -> events::Envelope {
    let created = events::InviteCreated {
        inviter: events::Inviter { id: "ann".into(), name: None, email: None, email_index: None },
        targets: vec![events::Target {
            kind: events::TargetKind::Email,
            value: "bob@example.com".into(),
            name: None,
            index: None,
        }],
        recipient_names: vec![],
        message: None,
        invitation_type: events::InvitationType::SingleUse,
        expires_at: None,
        scopes: vec![],
        reply_to: vec![],
        reply_to_index: vec![],
        metadata: Default::default(),
        personal_metadata: vec![],
        template_variables: Default::default(),
        widget_id: None,
        flow_id: None,
        template_id: None,
        landing_url: Some(landing_url.into()),
        definition_id: None,
        token: Some(events::LinkToken::new(token)),
        source: None,
        subtype: None,
    };
    let meta = events::EventMeta {
        event_id: Uuid::now_v7(),
        stream: events::StreamId::Invite(events::InviteId::from_uuid(Uuid::now_v7())),
        tenant_id: env.tenant,
        version: 1,
        occurred_at: Utc::now(),
        actor: events::Actor { kind: events::ActorKind::ApiKey, id: "legacy".into() },
        correlation_id: None,
        causation_id: None,
        idempotency_key: None,
        request_hash: None,
    };
    events::Envelope::new(meta, events::DomainEvent::Invite(events::InviteEvent::Created(Box::new(created))))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_public_link_never_answers_500_for_a_landing_url_already_in_the_log() {
    let env = TestEnv::new().await;
    let token = Uuid::new_v4().simple().to_string();
    let legacy = legacy_invite(&env, "https://app.example.org/join\r\nSet-Cookie: session=stolen", &token);
    let id = legacy.meta.stream.as_uuid().to_string();
    env.produce_event(&legacy).await;
    let (_command, api) = start(&env).await;
    let anonymous = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let r = anonymous.get(format!("{}/i/{token}", api.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the invitation page instead of a broken redirect");
    assert!(r.text().await.unwrap().contains(&id));

    // The tenant's landing URL stands in for the invite's, when it is one.
    sqlx::query("UPDATE tenants SET landing_url = $1 WHERE tenant_id = $2")
        .bind("https://tenant.example.org/welcome#top")
        .bind(env.tenant.as_uuid())
        .execute(&env.pool)
        .await
        .unwrap();
    let r = anonymous.get(format!("{}/i/{token}", api.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("https://tenant.example.org/welcome?invitation_id={id}#top")
    );
    sqlx::query("UPDATE tenants SET landing_url = $1 WHERE tenant_id = $2")
        .bind("https://tenant.example.org/\nwelcome")
        .bind(env.tenant.as_uuid())
        .execute(&env.pool)
        .await
        .unwrap();
    let r = anonymous.get(format!("{}/i/{token}", api.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let clicks = env.read_log().iter().filter(|e| e.event_type() == "InviteEngaged").count();
    assert_eq!(clicks, 3, "every visit is a click");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multi_accept_naming_an_invitation_twice_is_a_422_and_accepts_none() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;
    let mut multi = invite_for("bob@example.com");
    multi["invitation_type"] = json!("multi_use");
    let a = create(&api, &multi).await["id"].as_str().unwrap().to_owned();
    let b = create(&api, &multi).await["id"].as_str().unwrap().to_owned();
    let before = env.read_log().len();
    let twice = json!({ "target": "bob@example.com", "invitation_ids": [a, b, a] });
    assert_refused(&api.post("/v1/invites/accept", &twice).await, "invitation_ids", "an id twice");
    assert_eq!(env.read_log().len(), before, "nothing was accepted");
}
