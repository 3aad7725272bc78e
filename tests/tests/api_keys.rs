//! The API key lifecycle (issue 15), over the real command and query APIs and PostgreSQL: a
//! revoked key is refused by both APIs within a second although their key caches hold it (the
//! cache time is 10 s, the default), an expired key is refused and no cache outlives the expiry,
//! rotation keeps both keys working for the overlap, listing never shows a secret nor another
//! tenant's key, only a tenant-wide admin key manages keys, and `rsvp-admin` does it all too.

use reqwest::{Method, StatusCode};
use rsvp_tests::{run_command_split, Api, Reply, Service, TestEnv};
use serde_json::{json, Value};
use service_kit::Scope;
use std::time::{Duration, Instant};

/// What the issue asks: a revoked key refused within a second, on every instance.
const REVOKED_WITHIN: Duration = Duration::from_secs(1);

struct World {
    env: TestEnv,
    command: Service,
    query: Service,
    /// The command API with the test's tenant-wide, all-scopes key.
    admin: Api,
}

impl World {
    async fn new() -> Self {
        let env = TestEnv::new().await;
        let query = Service::start("query-api", &env, &[]).await;
        let command = Service::start("command-api", &env, &[("RSVP_QUERY_API_URL", query.url.clone())]).await;
        command.wait_ready(Duration::from_secs(60)).await;
        let admin = Api::new(&command.url, &env.key);
        Self { env, command, query, admin }
    }

    /// A request with `key` to the command API (listing keys: any admin key may) and to the
    /// query API (listing invites): their statuses.
    async fn use_key(&self, key: &str) -> (StatusCode, StatusCode) {
        let command = Api::new(&self.command.url, key).get("/v1/api-keys").await.status;
        let query = Api::new(&self.query.url, key).get("/v1/invites").await.status;
        (command, query)
    }

    /// Uses `key` until both APIs accept it a few times in a row: it is in both caches.
    async fn warm(&self, key: &str) {
        for _ in 0..3 {
            assert_eq!(self.use_key(key).await, (StatusCode::OK, StatusCode::OK), "a live key is accepted");
        }
    }

    async fn create_key(&self, body: Value) -> Value {
        let r = self.admin.post("/v1/api-keys", &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body
    }

    async fn list(&self) -> Reply {
        let r = self.admin.get("/v1/api-keys").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        r
    }

    async fn admin_cli(&self, args: &[&str]) -> (i32, String, String) {
        run_command_split("rsvp-admin", &self.env, args).await
    }
}

/// Polls `url` with `key` until it is refused with a 401; fails if it is still accepted
/// `REVOKED_WITHIN` after `since`. Returns how long it took.
async fn refused_within(api: &str, url: &str, key: &str, since: Instant) -> Duration {
    let client = Api::new(url, key);
    let path = if api == "command API" { "/v1/api-keys" } else { "/v1/invites" };
    loop {
        let r = client.get(path).await;
        let elapsed = since.elapsed();
        if r.status == StatusCode::UNAUTHORIZED {
            return elapsed;
        }
        assert_eq!(r.status, StatusCode::OK, "{api}: {}", r.body);
        assert!(elapsed < REVOKED_WITHIN, "the {api} still accepts the revoked key {elapsed:?} after its revocation");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn id_of(token: &str) -> &str {
    token.split('_').nth(1).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_key_is_refused_within_a_second_by_both_apis_although_both_caches_hold_it() {
    let w = World::new().await;
    // Revoked through the API.
    let key = w.env.key_with(&Scope::ALL, None).await;
    w.warm(&key).await;
    let since = Instant::now();
    let r = w.admin.post(&format!("/v1/api-keys/{}/revoke", id_of(&key)), &json!({})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "revoked");
    assert!(r.body["revoked_at"].is_string());
    let command = refused_within("command API", &w.command.url, &key, since).await;
    let query = refused_within("query API", &w.query.url, &key, since).await;
    eprintln!("revoked through the API: refused after {command:?} (command API), {query:?} (query API)");

    // Revoked by the operator's rsvp-admin (another process, straight in PostgreSQL).
    let key = w.env.key_with(&Scope::ALL, None).await;
    w.warm(&key).await;
    let since = Instant::now();
    let (code, out, err) = w.admin_cli(&["revoke-key", id_of(&key)]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("revoked"), "{out}");
    let command = refused_within("command API", &w.command.url, &key, since).await;
    let query = refused_within("query API", &w.query.url, &key, since).await;
    eprintln!("revoked by rsvp-admin: refused after {command:?} (command API), {query:?} (query API)");

    // Refused as a key that never existed is: the same problem.
    let revoked = Api::new(&w.command.url, &key).get("/v1/api-keys").await;
    let bogus =
        Api::new(&w.command.url, &format!("rsvp_{}_{}", "0".repeat(16), "0".repeat(64))).get("/v1/api-keys").await;
    assert_eq!(revoked.body, bogus.body);
    assert_eq!(revoked.header("content-type"), Some("application/problem+json"));
    // Revoking again changes nothing.
    let again = w.admin.post(&format!("/v1/api-keys/{}/revoke", id_of(&key)), &json!({})).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body["status"], "revoked");
    // The test's key, never revoked, still works everywhere.
    assert_eq!(w.use_key(&w.env.key).await, (StatusCode::OK, StatusCode::OK));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_key_is_refused_and_no_cache_outlives_the_expiry_and_rotation_keeps_both_keys_for_the_overlap() {
    let w = World::new().await;
    // Expiry: a key that expires in 2 s, used (cached) until then.
    let expires_at = chrono::Utc::now() + chrono::Duration::seconds(2);
    let created = w.create_key(json!({ "label": "short-lived", "expires_at": expires_at.to_rfc3339() })).await;
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "active");
    assert_eq!(created["label"], "short-lived");
    assert!(created["expires_at"].is_string());
    w.warm(&key).await;
    let expiry = Instant::now() + (expires_at - chrono::Utc::now()).to_std().unwrap();
    loop {
        let (command, query) = w.use_key(&key).await;
        if Instant::now() + Duration::from_millis(50) >= expiry {
            break;
        }
        assert_eq!((command, query), (StatusCode::OK, StatusCode::OK), "the key works until it expires");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep_until((expiry + Duration::from_millis(100)).into()).await;
    assert_eq!(w.use_key(&key).await, (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED), "refused once expired");
    let listed = w.list().await.body;
    let entry = listed["data"].as_array().unwrap().iter().find(|k| k["id"] == created["id"]).unwrap().clone();
    assert_eq!(entry["status"], "expired");
    // An expiry in the past is refused, naming the field.
    let r = w.admin.post("/v1/api-keys", &json!({ "expires_at": "2020-01-01T00:00:00Z" })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["field"], "expires_at");

    // Rotation with an overlap of 3 s: both keys work in it, the old one is refused after it.
    let old = w.create_key(json!({ "scopes": ["admin"], "inviter_id": null, "label": "crm" })).await;
    let old_key = old["key"].as_str().unwrap().to_owned();
    w.warm(&old_key).await;
    let since = Instant::now();
    let r = w
        .admin
        .post(&format!("/v1/api-keys/{}/rotate", old["id"].as_str().unwrap()), &json!({ "overlap_seconds": 3 }))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let new_key = r.body["key"].as_str().unwrap().to_owned();
    assert_ne!(new_key, old_key);
    assert_eq!(r.body["rotated_from"], old["id"]);
    assert_eq!(r.body["label"], "crm");
    assert_eq!(r.body["scopes"], json!(["admin"]));
    assert_eq!(r.body["previous"]["id"], old["id"]);
    assert_eq!(r.body["previous"]["status"], "active");
    assert!(r.body["previous"]["expires_at"].is_string());
    assert!(r.body["previous"].get("key").is_none(), "the old key's secret is never answered again");
    while since.elapsed() < Duration::from_millis(2500) {
        assert_eq!(w.use_key(&old_key).await, (StatusCode::OK, StatusCode::OK), "the old key works in the overlap");
        assert_eq!(w.use_key(&new_key).await, (StatusCode::OK, StatusCode::OK), "the new key works at once");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep_until((since + Duration::from_millis(3200)).into()).await;
    assert_eq!(w.use_key(&old_key).await, (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED), "the overlap is over");
    assert_eq!(w.use_key(&new_key).await, (StatusCode::OK, StatusCode::OK));
    // A key that is no longer live is not rotated.
    let r = w.admin.post(&format!("/v1/api-keys/{}/rotate", old["id"].as_str().unwrap()), &json!({})).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    // An overlap of more than 90 days is refused, naming the field.
    let r =
        w.admin.post(&format!("/v1/api-keys/{}/rotate", id_of(&new_key)), &json!({ "overlap_seconds": 7776001 })).await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(r.body["field"], "overlap_seconds");
}

#[tokio::test(flavor = "multi_thread")]
async fn listing_shows_the_callers_tenant_only_and_never_a_secret_and_only_a_tenant_admin_manages_keys() {
    let w = World::new().await;
    let (_, other_key) = w.env.other_tenant("tenant-b").await;
    let reader_writer = w.env.key_with(&[Scope::InvitesWrite, Scope::InvitesRead], None).await;
    let inviter_admin = w.env.key_with(&Scope::ALL, Some("ann")).await;
    let created = w.create_key(json!({ "scopes": ["invites:read"], "inviter_id": "bob", "label": "bob's" })).await;
    let bob = created["key"].as_str().unwrap().to_owned();
    assert_eq!(created["inviter_id"], "bob");
    // Used once: its last use is recorded (within a poll round), not at every request.
    assert_eq!(Api::new(&w.query.url, &bob).get("/v1/invites").await.status, StatusCode::OK);

    let listed = rsvp_tests::eventually(Duration::from_secs(5), "bob's key's last use to be recorded", || async {
        let listed = w.list().await;
        let bob_entry = listed.body["data"].as_array().unwrap().iter().find(|k| k["id"] == created["id"]).cloned()?;
        bob_entry["last_used_at"].is_string().then_some(listed)
    })
    .await;
    let text = listed.body.to_string();
    let keys = listed.body["data"].as_array().unwrap();
    let ids: Vec<&str> = keys.iter().map(|k| k["id"].as_str().unwrap()).collect();
    for own in [&w.env.key, &reader_writer, &inviter_admin, &bob] {
        assert!(ids.contains(&id_of(own)), "{ids:?} lists {}", id_of(own));
        let secret = own.rsplit('_').next().unwrap();
        assert!(!text.contains(secret), "a secret is listed");
    }
    assert!(!ids.contains(&id_of(&other_key)), "another tenant's key is listed");
    for k in keys {
        let fields: Vec<&String> = k.as_object().unwrap().keys().collect();
        for field in
            ["id", "scopes", "inviter_id", "label", "created_at", "last_used_at", "expires_at", "revoked_at", "status"]
        {
            assert!(k.get(field).is_some(), "{field} in {k}");
        }
        assert!(!fields.iter().any(|f| f.contains("secret") || f.contains("hash") || *f == "key"), "{fields:?}");
    }

    // Another tenant's key can be neither revoked nor rotated: a 404, and it still works.
    let other_id = id_of(&other_key);
    for action in ["revoke", "rotate"] {
        let r = w.admin.post(&format!("/v1/api-keys/{other_id}/{action}"), &json!({})).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{action}: {}", r.body);
    }
    assert_eq!(w.use_key(&other_key).await, (StatusCode::OK, StatusCode::OK));
    // ... and that tenant's admin sees its own keys only.
    let theirs = Api::new(&w.command.url, &other_key).get("/v1/api-keys").await;
    let their_ids: Vec<&str> =
        theirs.body["data"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(their_ids, [other_id]);

    // Without the admin scope, or as an inviter: 403 on every route; without a key: 401.
    let some_id = id_of(&bob);
    let routes: [(Method, String); 4] = [
        (Method::GET, "/v1/api-keys".into()),
        (Method::POST, "/v1/api-keys".into()),
        (Method::POST, format!("/v1/api-keys/{some_id}/revoke")),
        (Method::POST, format!("/v1/api-keys/{some_id}/rotate")),
    ];
    for (method, path) in &routes {
        let body = (*method == Method::POST).then(|| json!({}));
        for (who, key) in [("a key without admin", &reader_writer), ("an inviter's key", &inviter_admin)] {
            let r = w.admin.with_key(key).call(method.clone(), path, body.as_ref(), &[]).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}: {method} {path}: {}", r.body);
        }
        let r = w.admin.with_key("").call(method.clone(), path, body.as_ref(), &[]).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    assert_eq!(w.use_key(&bob).await.1, StatusCode::OK, "nothing was revoked by the refused calls");

    // Bad input: a 4xx problem naming the field.
    for (body, status, field) in [
        (json!({ "scopes": ["invites:delete"] }), StatusCode::UNPROCESSABLE_ENTITY, "scopes[0]"),
        (json!({ "scopes": [] }), StatusCode::UNPROCESSABLE_ENTITY, "scopes"),
        (json!({ "scopes": ["admin", "admin"] }), StatusCode::UNPROCESSABLE_ENTITY, "scopes[1]"),
        (json!({ "label": 5 }), StatusCode::BAD_REQUEST, "label"),
        (json!({ "label": "a\u{0}b" }), StatusCode::UNPROCESSABLE_ENTITY, "label"),
        (json!({ "inviter_id": " " }), StatusCode::UNPROCESSABLE_ENTITY, "inviter_id"),
        (json!({ "expires_at": "tomorrow" }), StatusCode::BAD_REQUEST, "expires_at"),
        (json!({ "secret": "mine" }), StatusCode::BAD_REQUEST, "secret"),
    ] {
        let r = w.admin.post("/v1/api-keys", &body).await;
        assert_eq!(r.status, status, "{body}: {}", r.body);
        assert_eq!(r.body["field"], field, "{body}: {}", r.body);
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
    }
    let r = w.admin.post("/v1/api-keys/not-a-key/revoke", &json!({})).await;
    assert_eq!((r.status, r.body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("id")));
    let r = w.admin.post(&format!("/v1/api-keys/{some_id}/rotate"), &json!({ "overlap_seconds": -1 })).await;
    assert_eq!((r.status, r.body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("overlap_seconds")));
    // Nothing of a secret in either service's log.
    for service in [&w.command, &w.query] {
        let log = service.log_text();
        for key in [&w.env.key, &bob, &other_key] {
            assert!(!log.contains(key.rsplit('_').next().unwrap()), "{} logged a secret", service.name);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rsvp_admin_creates_lists_rotates_and_revokes_keys() {
    let w = World::new().await;
    let (code, out, err) =
        w.admin_cli(&["create-key", "--tenant", "tenant-a", "--label", "cli", "--expires-in", "1h"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let key = out.trim().to_owned();
    assert!(key.starts_with("rsvp_"), "{out}");
    assert_eq!(w.use_key(&key).await, (StatusCode::OK, StatusCode::OK));

    let (code, out, err) = w.admin_cli(&["list-keys", "--tenant", "tenant-a", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains(key.rsplit('_').next().unwrap()) && !out.contains(w.env.key.rsplit('_').next().unwrap()));
    let listed: Vec<Value> = serde_json::from_str(&out).unwrap();
    let entry = listed.iter().find(|k| k["id"] == id_of(&key)).expect("the new key is listed");
    assert_eq!(entry["label"], "cli");
    let expires: chrono::DateTime<chrono::Utc> = entry["expires_at"].as_str().unwrap().parse().unwrap();
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    assert!((expires - in_an_hour).num_seconds().abs() < 60, "{expires}");
    let (code, table, _) = w.admin_cli(&["list-keys", "--tenant", "tenant-a"]).await;
    assert_eq!(code, 0);
    assert!(table.starts_with("ID\tSTATUS\tSCOPES"), "{table}");
    assert!(table.contains(id_of(&key)) && !table.contains(key.rsplit('_').next().unwrap()));
    let (code, _, err) = w.admin_cli(&["list-keys", "--tenant", "no-such-tenant"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("no-such-tenant"), "{err}");

    // Rotation: the new key is printed; the old one works for the overlap, then is refused.
    let since = Instant::now();
    let (code, out, err) = w.admin_cli(&["rotate-key", id_of(&key), "--overlap", "2s"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let new_key = out.trim().to_owned();
    assert!(new_key.starts_with("rsvp_") && new_key != key, "{out}");
    assert!(err.contains(id_of(&new_key)) && err.contains("expires at"), "{err}");
    assert_eq!(w.use_key(&new_key).await, (StatusCode::OK, StatusCode::OK));
    if since.elapsed() < Duration::from_millis(1500) {
        assert_eq!(w.use_key(&key).await, (StatusCode::OK, StatusCode::OK), "the old key works in the overlap");
    }
    tokio::time::sleep_until((since + Duration::from_millis(2300)).into()).await;
    assert_eq!(w.use_key(&key).await, (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
    let (code, _, _) = w.admin_cli(&["check-key", &key]).await;
    assert_eq!(code, 1, "check-key says the rotated-out key is not live");
    let (code, _, _) = w.admin_cli(&["check-key", &new_key]).await;
    assert_eq!(code, 0);
    let (code, _, err) = w.admin_cli(&["rotate-key", id_of(&key)]).await;
    assert_ne!(code, 0);
    assert!(err.contains("expired"), "{err}");
    let (code, _, err) = w.admin_cli(&["rotate-key", id_of(&new_key), "--overlap", "soon"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("--overlap"), "{err}");

    // Revocation by the whole key works too (its secret is not used); the key is then refused.
    let (code, out, err) = w.admin_cli(&["revoke-key", &new_key]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains(new_key.rsplit('_').next().unwrap()));
    let (code, _, _) = w.admin_cli(&["check-key", &new_key]).await;
    assert_eq!(code, 1);
    let (code, _, err) = w.admin_cli(&["revoke-key", "0000000000000000"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("no key"), "{err}");
}

/// A key's expiry cannot be escaped through the key API (found by review): an expiring admin key
/// makes keys that expire no later than itself, a rotation inherits the old key's expiry, and a
/// key is rotated once (its holder cannot mint successors during the overlap).
#[tokio::test(flavor = "multi_thread")]
async fn an_expiring_admin_key_cannot_make_or_rotate_itself_into_a_lasting_one() {
    let w = World::new().await;
    let expiring = w.create_key(json!({ "scopes": ["admin"], "expires_at": (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339() })).await;
    let own_expiry: chrono::DateTime<chrono::Utc> = serde_json::from_value(expiring["expires_at"].clone()).unwrap();
    let as_expiring = w.admin.with_key(expiring["key"].as_str().unwrap());

    // Made by it, with no expiry asked or a later one: expires when it does.
    for body in [json!({ "scopes": ["admin"] }), json!({ "scopes": ["admin"], "expires_at": "2999-01-01T00:00:00Z" })] {
        let r = as_expiring.post("/v1/api-keys", &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let made: chrono::DateTime<chrono::Utc> =
            serde_json::from_value(r.body["expires_at"].clone()).expect("an expiry");
        assert!(made <= own_expiry, "{made} after {own_expiry}");
    }
    // Rotated: the successor inherits the expiry, and a second rotation is refused.
    let id = expiring["id"].as_str().unwrap();
    let r = as_expiring.post(&format!("/v1/api-keys/{id}/rotate"), &json!({})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let successor: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(r.body["expires_at"].clone()).expect("an expiry");
    assert!(successor <= own_expiry, "{successor} after {own_expiry}");
    let again = as_expiring.post(&format!("/v1/api-keys/{id}/rotate"), &json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.body["code"], "api-key-rotated-already");
}
