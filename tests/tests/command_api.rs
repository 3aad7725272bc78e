//! The command API over real Kafka and PostgreSQL: every endpoint's happy path and rejections,
//! concurrency on one invite, idempotency across a restart, and tenant isolation.

use reqwest::{Method, StatusCode};
use rsvp_tests::{command_api as start, eventually, invite_for, Api, TestEnv};
use serde_json::{json, Value};
use service_kit::Scope;
use std::time::Duration;

async fn create(api: &Api, body: Value) -> String {
    let r = api.post("/v1/invites", &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// The delivery id of the first `InviteSent` in the log.
fn first_delivery(env: &TestEnv) -> events::DeliveryId {
    env.read_log()
        .into_iter()
        .find_map(|e| match e.invite_event() {
            Some((_, events::InviteEvent::Sent(s))) => Some(s.delivery_id),
            _ => None,
        })
        .expect("an invite was sent")
}

fn events_of(env: &TestEnv, id: &str) -> Vec<events::Envelope> {
    env.read_log().into_iter().filter(|e| e.meta.stream.as_uuid().to_string() == id).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_lifecycle_endpoint_answers_with_the_new_version_an_etag_and_a_location() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;

    let created = api.post("/v1/invites", &invite_for("bob@example.com")).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert!(created.header("location").unwrap().ends_with(&format!("/v1/invites/{id}")));
    assert_eq!(created.body["status"], "created");
    assert!(created.body["link_url"].as_str().unwrap().contains("/i/"));

    let sent = api.post(&format!("/v1/invites/{id}/send"), &json!({ "method": "email" })).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    assert_eq!((sent.body["version"].as_u64(), sent.header("etag")), (Some(2), Some("\"2\"")));
    let resent = api.call(Method::POST, &format!("/v1/invites/{id}/resend"), None, &[]).await;
    assert_eq!(resent.status, StatusCode::ACCEPTED, "an empty body is fine: {}", resent.body);
    assert_eq!(resent.body["version"], 3);

    let delivery = first_delivery(&env);
    let delivered = api.post(&format!("/v1/deliveries/{delivery}/events"), &json!({ "status": "delivered" })).await;
    assert_eq!(delivered.status, StatusCode::OK, "{}", delivered.body);
    assert_eq!(delivered.body["status"], "delivered");
    let accepted = api.post(&format!("/v1/invites/{id}/accept"), &json!({ "accepted_by": "user-7" })).await;
    assert_eq!(accepted.status, StatusCode::OK);
    assert_eq!((accepted.body["status"].as_str(), accepted.body["version"].as_u64()), (Some("accepted"), Some(5)));

    for (path, status) in [("decline", "declined"), ("revoke", "revoked"), ("expire", "expired")] {
        let other = create(&api, invite_for("eve@example.com")).await;
        let r = api.post(&format!("/v1/invites/{other}/{path}"), &json!({ "reason": "test" })).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        assert_eq!(r.body["status"], status);
    }

    let history: Vec<&str> = events_of(&env, &id).iter().map(|e| e.event_type()).collect();
    assert_eq!(history, ["InviteCreated", "InviteSent", "InviteSent", "DeliveryStatusChanged", "InviteAccepted"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn rejections_are_problem_json_with_a_stable_code_naming_the_field_and_write_nothing() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;
    let id = create(&api, invite_for("bob@example.com")).await;
    let revoked = create(&api, invite_for("eve@example.com")).await;
    api.post(&format!("/v1/invites/{revoked}/revoke"), &json!({})).await;
    let before = env.read_log().len();

    let cases: Vec<(Method, String, Option<Value>, Vec<(&str, &str)>, StatusCode, &str, Option<&str>)> = vec![
        (
            Method::POST,
            format!("/v1/invites/{id}/engagements"),
            Some(json!({ "kind": "teleport" })),
            vec![],
            StatusCode::BAD_REQUEST,
            "invalid-request",
            Some("kind"),
        ),
        (
            Method::POST,
            format!("/v1/invites/{revoked}/engagements"),
            Some(json!({ "kind": "view" })),
            vec![],
            StatusCode::CONFLICT,
            "invite-revoked",
            None,
        ),
        (
            Method::POST,
            "/v1/invites".into(),
            Some(json!({ "inviter": { "id": "a" } })),
            vec![],
            StatusCode::BAD_REQUEST,
            "invalid-request",
            Some("targets"),
        ),
        (
            Method::POST,
            "/v1/invites".into(),
            Some(json!({ "inviter": { "id": "a" }, "targets": [{ "type": "email", "value": "nope" }] })),
            vec![],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            Some("targets[0].value"),
        ),
        (
            Method::POST,
            "/v1/invites".into(),
            Some(json!({ "inviter": { "id": "a" }, "targets": [{ "type": "fax", "value": "1" }] })),
            vec![],
            StatusCode::BAD_REQUEST,
            "invalid-request",
            Some("targets[0].type"),
        ),
        (
            Method::POST,
            "/v1/invites".into(),
            Some(json!({ "inviter": { "id": "a" }, "targets": [], "colour": 1 })),
            vec![],
            StatusCode::BAD_REQUEST,
            "invalid-request",
            Some("colour"),
        ),
        (
            Method::POST,
            "/v1/invites".into(),
            Some(
                json!({ "inviter": { "id": "a" }, "targets": [{ "type": "email", "value": "a@b.co" }], "expires_in_days": 0 }),
            ),
            vec![],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            Some("expires_in_days"),
        ),
        (Method::POST, format!("/v1/invites/{id}/resend"), None, vec![], StatusCode::CONFLICT, "not-sent-yet", None),
        (
            Method::POST,
            format!("/v1/invites/{revoked}/accept"),
            None,
            vec![],
            StatusCode::CONFLICT,
            "invite-revoked",
            None,
        ),
        (
            Method::POST,
            format!("/v1/invites/{}/accept", uuid::Uuid::now_v7()),
            None,
            vec![],
            StatusCode::NOT_FOUND,
            "invite-not-found",
            None,
        ),
        (
            Method::POST,
            "/v1/invites/not-a-uuid/accept".into(),
            None,
            vec![],
            StatusCode::BAD_REQUEST,
            "invalid-request",
            Some("id"),
        ),
        (
            Method::POST,
            format!("/v1/invites/{id}/accept"),
            Some(json!({})),
            vec![("if-match", "\"7\"")],
            StatusCode::PRECONDITION_FAILED,
            "version-mismatch",
            Some("If-Match"),
        ),
        (
            Method::POST,
            format!("/v1/invites/{id}/send"),
            Some(json!({ "method": "pigeon" })),
            vec![],
            StatusCode::BAD_REQUEST,
            "invalid-request",
            Some("method"),
        ),
        (
            Method::POST,
            format!("/v1/deliveries/{}/events", uuid::Uuid::now_v7()),
            Some(json!({ "status": "delivered" })),
            vec![],
            StatusCode::NOT_FOUND,
            "delivery-not-found",
            None,
        ),
        (
            Method::POST,
            "/v1/definitions".into(),
            Some(json!({ "handle": "has spaces" })),
            vec![],
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            Some("handle"),
        ),
    ];
    for (method, path, body, headers, status, code, field) in cases {
        let r = api.call(method, &path, body.as_ref(), &headers).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("application/problem+json"), "{path}");
        assert_eq!(r.body["code"], code, "{path}: {}", r.body);
        assert_eq!(r.body["field"].as_str(), field, "{path}: {}", r.body);
    }
    // Not JSON, and too large.
    let r = api.http.post(format!("{}/v1/invites", api.base)).bearer_auth(&env.key).body("x").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = json!({ "inviter": { "id": "a" }, "targets": [], "message": "x".repeat(2 << 20) });
    assert_eq!(api.post("/v1/invites", &huge).await.status, StatusCode::PAYLOAD_TOO_LARGE);
    // A read-only key may not write; admin work needs `admin`.
    let reader = api.with_key(&env.key_with(&[Scope::InvitesRead], None).await);
    let r = reader.post("/v1/invites", &invite_for("x@example.com")).await;
    assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::FORBIDDEN, Some("forbidden")));
    let writer = api.with_key(&env.key_with(&[Scope::InvitesWrite], None).await);
    assert_eq!(writer.post("/v1/definitions", &json!({ "handle": "gold" })).await.status, StatusCode::FORBIDDEN);

    assert_eq!(env.read_log().len(), before, "no refused command wrote anything");
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_concurrent_conflicting_commands_on_one_invite_give_exactly_one_success() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;
    let id = create(&api, invite_for("bob@example.com")).await;
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (api, id) = (api.clone(), id.clone());
            tokio::spawn(async move {
                let action = ["accept", "revoke", "accept", "decline"][i % 4];
                api.post(&format!("/v1/invites/{id}/{action}"), &json!({})).await.status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let successes = statuses.iter().filter(|s| s.is_success()).count();
    assert_eq!(successes, 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| s.is_success() || *s == StatusCode::CONFLICT), "{statuses:?}");

    let history = events_of(&env, &id);
    assert_eq!(history.len(), 2, "created, then exactly one terminal event");
    assert_eq!(history.iter().map(|e| e.meta.version).collect::<Vec<_>>(), [1, 2]);
    assert!(["InviteAccepted", "InviteRevoked", "InviteDeclined"].contains(&history[1].event_type()));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_replays_the_first_response_and_appends_nothing_even_after_a_restart() {
    let env = TestEnv::new().await;
    let (mut command, api) = start(&env).await;
    let body = invite_for("bob@example.com");
    let key = [("idempotency-key", "create-bob-1")];
    let first = api.call(Method::POST, "/v1/invites", Some(&body), &key).await;
    assert_eq!(first.status, StatusCode::CREATED);
    let again = api.call(Method::POST, "/v1/invites", Some(&body), &key).await;
    assert_eq!((again.status, &again.body["id"]), (StatusCode::CREATED, &first.body["id"]));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = api.call(Method::POST, "/v1/invites", Some(&invite_for("eve@example.com")), &key).await;
    assert_eq!(
        (other.status, other.body["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("idempotency-key-reused"))
    );
    assert_eq!(env.read_log().len(), 1);

    command.kill().await;
    let (_restarted, api) = start(&env).await;
    let after = api.call(Method::POST, "/v1/invites", Some(&body), &key).await;
    assert_eq!((after.status, &after.body["id"]), (StatusCode::CREATED, &first.body["id"]));
    let other = api.call(Method::POST, "/v1/invites", Some(&invite_for("eve@example.com")), &key).await;
    assert_eq!(other.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(env.read_log().len(), 1, "the key travels in the envelope: nothing new after the restart");
    // Keys are per tenant: another tenant's same key is a new command.
    let (_, other_key) = env.other_tenant("tenant-b").await;
    assert_eq!(
        api.with_key(&other_key).call(Method::POST, "/v1/invites", Some(&body), &key).await.status,
        StatusCode::CREATED
    );
}

/// Every record of one stream in the log: (partition, offset, CloudEvents type, causation id).
fn records_of(env: &TestEnv, id: &str) -> Vec<(i32, i64, String, Option<uuid::Uuid>)> {
    let mut records = Vec::new();
    service_kit::kafka::read_to_end(
        &env.brokers,
        &env.topic,
        &Default::default(),
        Duration::from_secs(60),
        |p, o, m| {
            let e = service_kit::kafka::envelope_of(m)?;
            if e.meta.stream.as_uuid().to_string() == id {
                records.push((p, o, e.event_type().to_owned(), e.meta.causation_id));
            }
            Ok(())
        },
    )
    .expect("cannot read the log");
    records
}

#[tokio::test(flavor = "multi_thread")]
async fn creating_with_send_is_one_command_in_one_transaction_and_a_retry_replays_the_delivery_too() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;
    let mut body = invite_for("bob@example.com");
    body["send"] = json!("email");
    let key = [("idempotency-key", "create-and-send-bob")];
    let first = api.call(Method::POST, "/v1/invites", Some(&body), &key).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    assert_eq!(first.body["events"], json!(["InviteCreated", "InviteSent"]));
    assert_eq!((first.body["version"].as_u64(), first.body["status"].as_str()), (Some(2), Some("queued")));
    let id = first.body["id"].as_str().unwrap().to_owned();

    let records = records_of(&env, &id);
    let types: Vec<&str> = records.iter().map(|r| r.2.as_str()).collect();
    assert_eq!(types, ["InviteCreated", "InviteSent"]);
    // One stream, one partition: a commit marker between the two would take an offset.
    let ((p1, o1, _, c1), (p2, o2, _, c2)) = (&records[0], &records[1]);
    assert_eq!((p1, *o1 + 1), (p2, *o2), "the two events are consecutive, in one transaction");
    assert!(c1.is_some() && c1 == c2, "one command caused both: {c1:?} {c2:?}");

    let again = api.call(Method::POST, "/v1/invites", Some(&body), &key).await;
    assert_eq!(again.status, StatusCode::CREATED);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body, "the retry answers what the first call did, delivery included");
    assert_eq!(records_of(&env, &id).len(), 2, "and appends nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_show_append_latency_group_commit_sizes_and_commands_by_type_and_outcome() {
    let env = TestEnv::new().await;
    let (command, api) = start(&env).await;
    let id = create(&api, invite_for("bob@example.com")).await;
    api.post(&format!("/v1/invites/{id}/revoke"), &json!({})).await;
    let refused = api.post(&format!("/v1/invites/{id}/revoke"), &json!({})).await;
    assert_eq!(refused.status, StatusCode::CONFLICT);

    // Read with the operator token, as a scraper would.
    let metrics = command.metrics().await;
    let value = |line: &str| -> f64 {
        let found = metrics.lines().find(|l| l.starts_with(line)).unwrap_or_else(|| panic!("no {line} in\n{metrics}"));
        found.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("rsvp_command_append_seconds_count ") >= 2.0);
    assert!(value("rsvp_command_batch_commands_count ") >= 2.0);
    assert!(value("rsvp_command_batch_events_sum ") >= 2.0);
    assert_eq!(value("rsvp_commands_total{outcome=\"committed\",type=\"create\"} "), 1.0);
    assert_eq!(value("rsvp_commands_total{outcome=\"committed\",type=\"revoke\"} "), 1.0);
    assert_eq!(value("rsvp_commands_total{outcome=\"gone\",type=\"revoke\"} "), 1.0);
    assert!(!metrics.contains(&id), "no ids in labels");
    assert!(!metrics.contains(&env.key), "no secrets in labels");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_invites_deliveries_and_definitions_are_invisible_on_every_endpoint() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;
    let id = create(&api, invite_for("bob@example.com")).await;
    api.post(&format!("/v1/invites/{id}/send"), &json!({})).await;
    let delivery = first_delivery(&env);
    api.post("/v1/definitions", &json!({ "handle": "gold" })).await;
    let before = env.read_log().len();

    let (_, key_b) = env.other_tenant("tenant-b").await;
    let b = api.with_key(&key_b);
    for action in ["send", "resend", "revoke", "accept", "decline", "expire"] {
        let r = b.post(&format!("/v1/invites/{id}/{action}"), &json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{action}: {}", r.body);
        assert_eq!(r.body["code"], "invite-not-found");
    }
    let r = b.post(&format!("/v1/invites/{id}/engagements"), &json!({ "kind": "view" })).await;
    assert_eq!((r.status, r.body["code"].as_str()), (StatusCode::NOT_FOUND, Some("invite-not-found")));
    let r = b.post(&format!("/v1/deliveries/{delivery}/events"), &json!({ "status": "delivered" })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = b.post("/v1/invites/accept", &json!({ "target": "bob@example.com", "invitation_ids": [id] })).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(r.body["detail"].as_str().unwrap().contains("invite-not-found"), "{}", r.body);
    assert_eq!(b.get("/v1/definitions").await.body["data"], json!([]));
    assert_eq!(env.read_log().len(), before, "tenant B changed nothing of tenant A");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inviter_token_acts_as_its_inviter_on_its_own_invites_only() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;
    let others = create(&api, invite_for("x@example.com")).await;
    let me = api.with_key(&env.key_with(&[Scope::InvitesWrite, Scope::InvitesRead], Some("user-42")).await);
    let mine =
        me.post("/v1/invites", &json!({ "targets": [{ "type": "email", "value": "friend@example.com" }] })).await;
    assert_eq!(mine.status, StatusCode::CREATED, "{}", mine.body);
    let created = events_of(&env, mine.body["id"].as_str().unwrap());
    let Some((_, events::InviteEvent::Created(c))) = created[0].invite_event() else { panic!() };
    assert_eq!(c.inviter.id, "user-42");
    assert_eq!(created[0].meta.actor.kind, events::ActorKind::Inviter);
    assert_eq!(me.post(&format!("/v1/invites/{others}/revoke"), &json!({})).await.status, StatusCode::NOT_FOUND);
    let impersonating = me
        .post(
            "/v1/invites",
            &json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": "f@example.com" }] }),
        )
        .await;
    assert_eq!(impersonating.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread")]
async fn accepting_several_invitations_for_a_target_at_once_is_all_or_nothing() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;
    let in_scope = |ws: &str| json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": "bob@example.com" }], "scopes": [{ "type": "workspace", "id": ws }] });
    let a = create(&api, in_scope("ws-1")).await;
    let b = create(&api, in_scope("ws-2")).await;
    let leftover = create(&api, in_scope("ws-1")).await;
    let revoked = create(&api, in_scope("ws-3")).await;
    api.post(&format!("/v1/invites/{revoked}/revoke"), &json!({})).await;

    let refused = api
        .post(
            "/v1/invites/accept",
            &json!({ "target": { "type": "email", "value": "bob@example.com" }, "invitation_ids": [a, revoked] }),
        )
        .await;
    assert_eq!((refused.status, refused.body["code"].as_str()), (StatusCode::CONFLICT, Some("batch-refused")));
    assert!(refused.body["detail"].as_str().unwrap().contains(&revoked));
    assert_eq!(events_of(&env, &a).len(), 1, "nothing was accepted");

    let ok = api
        .post(
            "/v1/invites/accept",
            &json!({ "target": { "type": "email", "value": "BOB@example.com" }, "invitation_ids": [a, b] }),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["accepted"].as_array().unwrap().len(), 2);
    assert_eq!(ok.body["accepted_elsewhere"][0]["id"], leftover.as_str());
    assert_eq!(events_of(&env, &leftover).last().unwrap().event_type(), "InviteAcceptedElsewhere");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_create_answers_each_item_and_one_bad_item_stops_no_other() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;
    let body = json!({ "invites": [invite_for("a@example.com"), { "inviter": { "id": "a" }, "targets": [{ "type": "email", "value": "bad" }] }, invite_for("c@example.com")] });
    let r = api.post("/v1/invites/batch", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let results = r.body["results"].as_array().unwrap();
    assert_eq!(results.iter().map(|x| x["status"].as_u64().unwrap()).collect::<Vec<_>>(), [201, 422, 201]);
    assert_eq!(results[1]["problem"]["field"], "invites[1].targets[0].value");
    assert_eq!(env.read_log().len(), 2);
    let too_many = json!({ "invites": vec![invite_for("a@example.com"); 1001] });
    assert_eq!(api.post("/v1/invites/batch", &too_many).await.status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread")]
async fn definitions_set_quotas_that_creates_respect_and_the_list_shows_what_remains() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;
    let def = api
        .post(
            "/v1/definitions",
            &json!({ "handle": "gold-definition", "max_invites_per_inviter": 2, "max_send_count": 1 }),
        )
        .await;
    assert_eq!(def.status, StatusCode::CREATED, "{}", def.body);
    let def_id = def.body["id"].as_str().unwrap().to_owned();
    let with_def = json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": "a@example.com" }], "definition_id": def_id });
    let first = create(&api, with_def.clone()).await;
    create(&api, with_def.clone()).await;
    let third = api.post("/v1/invites", &with_def).await;
    assert_eq!((third.status, third.body["code"].as_str()), (StatusCode::CONFLICT, Some("quota-exhausted")));
    let list = api.get("/v1/definitions?inviter=ann").await;
    assert_eq!(list.body["data"][0]["remaining"], 0);
    assert_eq!(list.body["data"][0]["handle"], "gold-definition");

    api.post(&format!("/v1/invites/{first}/send"), &json!({})).await;
    let resend = api.post(&format!("/v1/invites/{first}/resend"), &json!({})).await;
    assert_eq!(resend.body["code"], "max-sends-reached");
    let raised = api
        .call(
            Method::PUT,
            &format!("/v1/definitions/{def_id}"),
            Some(&json!({ "handle": "gold-definition", "max_invites_per_inviter": 3, "max_send_count": 2 })),
            &[],
        )
        .await;
    assert_eq!((raised.status, raised.body["version"].as_u64()), (StatusCode::OK, Some(2)));
    assert_eq!(api.post(&format!("/v1/invites/{first}/resend"), &json!({})).await.status, StatusCode::ACCEPTED);
    assert_eq!(api.post("/v1/invites", &with_def).await.status, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_public_link_records_a_click_and_redirects_or_says_why_not() {
    let env = TestEnv::new().await;
    let (_command, api) = start(&env).await;
    let mut body = invite_for("bob@example.com");
    body["landing_url"] = json!("https://app.example.org/join?from=mail");
    let created = api.post("/v1/invites", &body).await;
    let (id, link) =
        (created.body["id"].as_str().unwrap().to_owned(), created.body["link_url"].as_str().unwrap().to_owned());

    let anonymous = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = anonymous.get(&link).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FOUND);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("https://app.example.org/join?from=mail&invitation_id={id}")
    );
    let clicks = eventually(Duration::from_secs(5), "the click in the log", || async {
        let n = events_of(&env, &id).iter().filter(|e| e.event_type() == "InviteEngaged").count();
        (n == 1).then_some(n)
    })
    .await;
    assert_eq!(clicks, 1);
    assert_eq!(events_of(&env, &id)[1].meta.actor.kind, events::ActorKind::Public);

    let unknown = anonymous.get(format!("{}/i/no-such-token", api.base)).send().await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(unknown.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    api.post(&format!("/v1/invites/{id}/revoke"), &json!({})).await;
    let gone = anonymous.get(&link).send().await.unwrap();
    assert_eq!(gone.status(), StatusCode::GONE);
    assert!(gone.text().await.unwrap().contains("no longer valid"));
}
