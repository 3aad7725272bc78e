//! Personal data in an immutable log, end to end on real Kafka and PostgreSQL: what the topic's
//! bytes hold, what the APIs show, and erasure by crypto-shredding (issue 14).

use reqwest::StatusCode;
use rsvp_tests::{eventually, run_command_split, Services, TestEnv};
use serde_json::{json, Value};
use std::time::Duration;

const BOB: &str = "Bob.Erasable@Example.com";

/// Bob's personal values on the invite to him (the invite-wide ones are his: he is its first
/// address), each distinct enough to be found in any bytes. Alice's, the inviter's, are hers.
const SECRETS: [&str; 5] =
    ["bob.erasable@example.com", "Bob Erasable", "zq-message-7731", "zq-var-4412", "zq-meta-9090"];

struct World {
    env: TestEnv,
    services: Services,
    http: reqwest::Client,
}

impl World {
    async fn new() -> Self {
        let env = TestEnv::new().await;
        let services = Services::start(&env).await;
        Self { env, services, http: reqwest::Client::new() }
    }

    async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.services.command.url))
            .bearer_auth(&self.env.key)
            .json(body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn query(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.services.query.url))
            .bearer_auth(&self.env.key)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    }

    async fn query_json(&self, path: &str) -> Value {
        let (status, text) = self.query(path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Every byte of the topic: keys, header values and record values.
    fn topic_bytes(&self) -> String {
        self.env
            .read_raw(&self.env.topic)
            .into_iter()
            .map(|r| {
                let headers: Vec<String> = r.headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("{:?} {} {}\n", r.key, headers.join(" "), String::from_utf8_lossy(&r.payload))
            })
            .collect()
    }

    /// Creates the invite to Bob (sent by email at once) and one to Carol; their ids and Bob's link.
    async fn invite_bob_and_carol(&self) -> (String, String, String) {
        let (status, bob) = self
            .post(
                "/v1/invites",
                &json!({
                    "inviter": { "id": "alice", "name": "Alice Inviterson", "email": "alice@example.com" },
                    "targets": [{ "type": "email", "value": BOB, "name": "Bob Erasable" }],
                    "message": "hello zq-message-7731",
                    "template_variables": { "nick": "zq-var-4412" },
                    "metadata": { "phone_alt": "zq-meta-9090", "plan": "gold" },
                    "personal_metadata": ["phone_alt"],
                    "scopes": [{ "type": "workspace", "id": "ws-1" }],
                    "send": "email"
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{bob}");
        let (status, carol) = self
            .post(
                "/v1/invites",
                &json!({
                    "inviter": { "id": "alice" },
                    "targets": [{ "type": "email", "value": "carol@example.com", "name": "Carol Keeps" }],
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{carol}");
        let link = bob["link_url"].as_str().expect("the creator gets the link").to_owned();
        (bob["id"].as_str().unwrap().to_owned(), carol["id"].as_str().unwrap().to_owned(), link)
    }

    async fn detail(&self, id: &str) -> Value {
        eventually(Duration::from_secs(30), "the invite to be projected", || async {
            let (status, text) = self.query(&format!("/v1/invites/{id}")).await;
            (status == StatusCode::OK).then(|| serde_json::from_str(&text).unwrap())
        })
        .await
    }
}

fn token_of(link: &str) -> &str {
    link.rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_topic_holds_no_personal_data_nor_link_token_in_clear_and_the_apis_show_them_opened() {
    let w = World::new().await;
    let (bob, _carol, link) = w.invite_bob_and_carol().await;
    let bytes = w.topic_bytes();
    for secret in SECRETS.iter().chain([&"Alice Inviterson", &"alice@example.com", &"Carol Keeps", &token_of(&link)]) {
        assert!(!bytes.to_lowercase().contains(&secret.to_lowercase()), "{secret} is in the topic's bytes");
    }
    assert!(bytes.contains("rsvp-sealed:v1:"), "the values are there, sealed");
    assert!(bytes.contains("gold"), "metadata not marked personal stays as it is");

    // The tenant's own reads show them opened.
    let detail = w.detail(&bob).await;
    assert_eq!(detail["targets"][0]["value"], BOB);
    assert_eq!(detail["targets"][0]["name"], "Bob Erasable");
    assert_eq!(detail["message"], "hello zq-message-7731");
    assert_eq!(detail["inviter"]["name"], "Alice Inviterson");
    assert_eq!(detail["metadata"]["phone_alt"], "zq-meta-9090");
    assert_eq!(detail["template_variables"]["nick"], "zq-var-4412");
    // A filter on the address matches it in any spelling, through its blind index.
    let page = w.query_json("/v1/invites?target=bob.erasable%40EXAMPLE.com").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["id"], bob.as_str());
    // The derived link token opens the invite (and clicks it).
    let anonymous = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = anonymous.get(&link).send().await.unwrap();
    assert!(r.status().is_success() || r.status().is_redirection(), "{}", r.status());
    let mut forged = token_of(&link).to_owned();
    forged.replace_range(40..41, if &forged[40..41] == "A" { "B" } else { "A" });
    let r = anonymous.get(format!("{}/i/{forged}", w.services.command.url)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "a token whose MAC does not hold");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erased_address_is_gone_from_every_read_and_replay_while_the_invite_its_history_and_counts_stay() {
    let w = World::new().await;
    let (bob, carol, _link) = w.invite_bob_and_carol().await;
    w.detail(&bob).await;
    w.detail(&carol).await;
    let stats_before = w.query_json("/v1/stats").await;

    // An inviter's key cannot erase; a bad address is a 422 naming it.
    let inviter_key = w.env.key_with(&[service_kit::Scope::InvitesWrite], Some("alice")).await;
    let r = w
        .http
        .post(format!("{}/v1/personal-data/erasures", w.services.command.url))
        .bearer_auth(inviter_key)
        .json(&json!({ "address": BOB }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (status, problem) = w.post("/v1/personal-data/erasures", &json!({ "address": "not-an-address" })).await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("address")), "{problem}");

    let (status, erased) =
        w.post("/v1/personal-data/erasures", &json!({ "address": " bob.erasable@example.COM" })).await;
    assert_eq!(status, StatusCode::OK, "{erased}");
    assert_eq!(erased["erased_from_invites"], 1);
    assert_eq!(erased["invites"][0], bob.as_str());

    // The read models show the marker at once: the key is gone, nothing waits for a projection.
    let (_, text) = w.query(&format!("/v1/invites/{bob}")).await;
    let detail: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(detail["targets"][0]["value"], "[erased]");
    assert_eq!(detail["message"], "[erased]");
    assert_eq!(detail["metadata"]["phone_alt"], "[erased]");
    assert_eq!(detail["metadata"]["plan"], "gold");
    assert_eq!(detail["scopes"][0]["id"], "ws-1", "what is not personal stays");
    // Everything that reads it, the erasure recorded in its history: no secret anywhere.
    let history = eventually(Duration::from_secs(30), "the erasure in the history", || async {
        let (_, text) = w.query(&format!("/v1/invites/{bob}/events")).await;
        text.contains("InvitePersonalDataErased").then_some(text)
    })
    .await;
    let list = w.query(&format!("/v1/invites?limit=100")).await.1;
    let vortex = w
        .http
        .get(format!("{}/api/v1/invitations/{bob}", w.services.query.url))
        .header("x-api-key", &w.env.key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(vortex.contains("[erased]"), "{vortex}");
    for (what, text) in [("detail", &text), ("history", &history), ("list", &list), ("vortex", &vortex)] {
        for secret in SECRETS {
            assert!(!text.to_lowercase().contains(&secret.to_lowercase()), "{secret} in the {what}: {text}");
        }
    }
    assert!(list.contains("Carol Keeps"), "carol's data is not erased");
    // The filters forget it too, and no answer carries a blind index that would tie it to a later
    // invite of the same address.
    let found = eventually(Duration::from_secs(30), "the filter to forget the address", || async {
        let page = w.query_json("/v1/invites?target=bob.erasable%40example.com").await;
        page["data"].as_array().unwrap().is_empty().then_some(page)
    })
    .await;
    assert!(found["data"].as_array().unwrap().is_empty());
    for (what, text) in [("detail", &text), ("history", &history), ("list", &list)] {
        assert!(
            !text.contains("\"index\"") && !text.contains("email_index") && !text.contains("target_index"),
            "an index in the {what}: {text}"
        );
    }
    assert!(text.contains("Alice Inviterson"), "nor the inviter's: {text}");
    // Counts stay whole.
    let stats_after = w.query_json("/v1/stats").await;
    assert_eq!(stats_after["total"], stats_before["total"], "{stats_before} {stats_after}");
    // Nothing more is sent to it.
    let (status, refused) = w.post(&format!("/v1/invites/{bob}/resend"), &json!({ "method": "email" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["code"], "personal-data-erased");

    // Replays: `as-of`, `rebuild` and `verify` read the same log and find the marker.
    let now = chrono::Utc::now().to_rfc3339();
    let (code, out, err) = run_command_split("projector", &w.env, &["as-of", &now, "--invite", &bob]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, rebuilt, err) = run_command_split("projector", &w.env, &["rebuild"]).await;
    assert_eq!(code, 0, "{rebuilt}{err}");
    let (code, verified, err) = run_command_split("projector", &w.env, &["verify"]).await;
    assert_eq!(code, 0, "{verified}{err}");
    for (what, text) in [("as-of", &out), ("rebuild", &rebuilt), ("verify", &verified)] {
        for secret in SECRETS {
            assert!(!text.to_lowercase().contains(&secret.to_lowercase()), "{secret} in {what}: {text}");
        }
    }
    let (_, text) = w.query(&format!("/v1/invites/{bob}")).await;
    assert!(text.contains("[erased]") && !text.contains("Bob Erasable"), "after the rebuild: {text}");
    let (_, carol_now) = w.query(&format!("/v1/invites/{carol}")).await;
    assert!(carol_now.contains("Carol Keeps"), "{carol_now}");
    // The read models' rows, every table of them, hold none of it (they keep it sealed).
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'read_model'")
            .fetch_all(&w.env.pool)
            .await
            .unwrap();
    assert!(tables.len() >= 8, "{tables:?}");
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM read_model.{table} t"))
            .fetch_all(&w.env.pool)
            .await
            .unwrap();
        let rows = rows.join("\n").to_lowercase();
        for secret in SECRETS {
            assert!(!rows.contains(&secret.to_lowercase()), "{secret} in read_model.{table}");
        }
    }
    // The topic, read again, holds nothing that opens: the key is gone from the store.
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM vault.subject_keys").fetch_one(&w.env.pool).await.unwrap();
    assert!(keys >= 1, "carol's key stays");
}

#[tokio::test(flavor = "multi_thread")]
async fn offboarding_a_tenant_erases_every_subject_and_keeps_every_invite() {
    let w = World::new().await;
    let (bob, carol, _link) = w.invite_bob_and_carol().await;
    w.detail(&carol).await;
    let (status, body) = w.post("/v1/tenant/offboarding", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["erased_from_invites"], 2);
    for id in [&bob, &carol] {
        let (status, text) = w.query(&format!("/v1/invites/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(!text.contains("Carol Keeps") && !text.contains("Bob Erasable") && text.contains("[erased]"), "{text}");
    }
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM vault.subject_keys WHERE tenant_id = $1")
        .bind(w.env.tenant.as_uuid())
        .fetch_one(&w.env.pool)
        .await
        .unwrap();
    assert_eq!(keys, 0);
    // A new invite after it has a key of its own again.
    let (status, _) = w
        .post(
            "/v1/invites",
            &json!({ "inviter": { "id": "a" }, "targets": [{ "type": "email", "value": "dan@example.com" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_erases_an_address_with_rsvp_admin_and_its_one_call_key_is_revoked_after() {
    let w = World::new().await;
    let (bob, _carol, _link) = w.invite_bob_and_carol().await;
    w.detail(&bob).await;
    let api = w.services.command.url.clone();
    let (code, out, err) =
        run_command_split("rsvp-admin", &w.env, &["erase", "--tenant", "tenant-a", "--api-url", &api, BOB]).await;
    assert_eq!(code, 0, "{out}{err}");
    let answer: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(answer["erased_from_invites"], 1, "{answer}");
    let (_, text) = w.query(&format!("/v1/invites/{bob}")).await;
    assert!(text.contains("[erased]") && !text.contains("Bob Erasable"), "{text}");
    let live: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM api_keys WHERE label = 'rsvp-admin (one call)' AND revoked_at IS NULL",
    )
    .fetch_one(&w.env.pool)
    .await
    .unwrap();
    assert_eq!(live, 0, "the key made for the call is revoked");
    // A mistyped tenant is refused, and not created.
    for command in [
        &["erase", "--tenant", "tenant-aa", "--api-url", &api, BOB][..],
        &["offboard", "--tenant", "tenant-aa", "--api-url", &api],
    ] {
        let (code, out, err) = run_command_split("rsvp-admin", &w.env, command).await;
        assert_ne!(code, 0, "{out}{err}");
        assert!(err.contains("no tenant named \"tenant-aa\""), "{err}");
    }
    let made: i64 = sqlx::query_scalar("SELECT count(*) FROM tenants WHERE name = 'tenant-aa'")
        .fetch_one(&w.env.pool)
        .await
        .unwrap();
    assert_eq!(made, 0);
}

/// A log from before sealing: the invite's facts in clear, its token recorded.
fn clear_text_history(env: &TestEnv) -> Vec<events::Envelope> {
    let id = events::InviteId::from_uuid(uuid::Uuid::now_v7());
    let meta = |version| events::EventMeta {
        event_id: uuid::Uuid::now_v7(),
        stream: events::StreamId::Invite(id),
        tenant_id: env.tenant,
        version,
        occurred_at: chrono::Utc::now(),
        actor: events::Actor { kind: events::ActorKind::ApiKey, id: "legacy".into() },
        correlation_id: None,
        causation_id: None,
        idempotency_key: None,
        request_hash: None,
    };
    let created: events::InviteCreated = serde_json::from_value(json!({
        "inviter": { "id": "alice", "name": "Alice Inviterson" },
        "targets": [{ "type": "email", "value": BOB, "name": "Bob Erasable" }],
        "recipient_names": [],
        "message": "hello zq-message-7731",
        "invitation_type": { "kind": "single_use" },
        "template_variables": { "nick": "zq-var-4412" },
        "token": "legacy-token-zq-5151"
    }))
    .unwrap();
    let sent: events::event::InviteSent = serde_json::from_value(json!({
        "delivery_id": uuid::Uuid::now_v7(), "method": "email", "target": BOB, "resend": false
    }))
    .unwrap();
    vec![
        events::Envelope::new(meta(1), events::DomainEvent::Invite(events::InviteEvent::Created(Box::new(created)))),
        events::Envelope::new(meta(2), events::DomainEvent::Invite(events::InviteEvent::Sent(sent))),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn rsvp_reseal_copies_a_clear_text_history_into_a_new_topic_sealed_in_the_same_order() {
    let env = TestEnv::new().await;
    let history = clear_text_history(&env);
    env.produce_events(&history).await;
    let to = format!("{}.sealed", env.topic);
    let (code, out, err) = run_command_split("rsvp-reseal", &env, &["--from", &env.topic, "--to", &to]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("2 events copied"), "{out}");
    let raw = env.read_raw(&to);
    let bytes: String = raw.iter().map(|r| String::from_utf8_lossy(&r.payload).into_owned()).collect();
    for secret in SECRETS {
        assert!(!bytes.to_lowercase().contains(&secret.to_lowercase()), "{secret} in the new topic: {bytes}");
    }
    // Every event, in its order, opens to what it said.
    let copied: Vec<events::Envelope> = {
        let mut all = Vec::new();
        service_kit::kafka::read_to_end(&env.brokers, &to, &Default::default(), Duration::from_secs(60), |_, _, m| {
            all.push(service_kit::kafka::envelope_of(m)?);
            Ok(())
        })
        .unwrap();
        all
    };
    assert_eq!(
        copied.iter().map(|e| (e.meta.event_id, e.meta.version)).collect::<Vec<_>>(),
        history.iter().map(|e| (e.meta.event_id, e.meta.version)).collect::<Vec<_>>()
    );
    let mut created = serde_json::to_value(copied[0].event.to_data()).unwrap();
    assert!(created["targets"][0]["index"].is_string(), "{created}");
    env.unsealer().unseal(env.tenant, &mut created).await.unwrap();
    assert_eq!(created["targets"][0]["value"], BOB);
    assert_eq!(created["message"], "hello zq-message-7731");
    assert_eq!(created["token"], "legacy-token-zq-5151", "links already sent keep working");
    // A second run into the same topic is refused: it copies into an empty topic only.
    let (code, _, err) = run_command_split("rsvp-reseal", &env, &["--from", &env.topic, "--to", &to]).await;
    assert_ne!(code, 0, "{err}");
    rsvp_tests::infra::delete_topic(&env.brokers, &to).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fingerprint_an_idempotency_key_records_is_keyed_so_the_log_never_confirms_a_guessed_body() {
    use sha2::Digest as _;
    let w = World::new().await;
    let body = json!({ "address": "guess.me@example.com" });
    let post = || {
        w.http
            .post(format!("{}/v1/personal-data/erasures", w.services.command.url))
            .bearer_auth(&w.env.key)
            .header("Idempotency-Key", "erase-1")
            .json(&body)
            .send()
    };
    // Nothing holds the address yet: the erasure is recorded on no invite; make one hold it.
    let (status, _) = w
        .post(
            "/v1/invites",
            &json!({ "inviter": { "id": "a" }, "targets": [{ "type": "email", "value": "guess.me@example.com" }] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let first = post().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let again = post().await.unwrap();
    assert_eq!(again.status(), StatusCode::OK, "the same request, replayed");
    let hashes: Vec<String> = w
        .env
        .read_raw(&w.env.topic)
        .into_iter()
        .filter_map(|r| r.headers.iter().find(|(k, _)| k == "ce_requesthash").map(|(_, v)| v.clone()))
        .collect();
    assert_eq!(hashes.len(), 1, "{hashes:?}");
    let plain = sha2::Sha256::digest(format!("POST/v1/personal-data/erasures{body}").as_bytes());
    let plain: String = plain[..16].iter().map(|b| format!("{b:02x}")).collect();
    assert_ne!(hashes[0], plain, "an unkeyed hash would confirm the guess");
    assert!(hashes[0].starts_with("k1:"), "{}", hashes[0]);
}
