//! The HTTP contract both OpenAPI documents promise, over the real system: preconditions as RFC
//! 9110 has them (`If-Match: *`, entity-tag lists, strong comparison, no lost update of a
//! definition), idempotency keyed on the JSON rather than its bytes, whole numbers in any JSON
//! notation, 405 with `Allow` for a known path, and query parameters that are values (never
//! empty, never a control character) with 400s naming them. `tests/tests/schemathesis.rs` then
//! checks the documents against behaviour at large.

use reqwest::{Method, StatusCode};
use rsvp_tests::{eventually, Api, Reply, Services, TestEnv};
use serde_json::{json, Value};
use std::time::Duration;

struct World {
    env: TestEnv,
    _services: Services,
    command: Api,
    query: Api,
}

async fn world() -> World {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let command = Api::new(&services.command.url, &env.key);
    let query = Api::new(&services.query.url, &env.key);
    World { env, _services: services, command, query }
}

fn invite_for(target: &str) -> Value {
    json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": target }] })
}

impl World {
    async fn create(&self, target: &str) -> String {
        let r = self.command.post("/v1/invites", &invite_for(target)).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.body["id"].as_str().unwrap().to_owned()
    }

    async fn post_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
        self.command.call(Method::POST, path, Some(body), headers).await
    }

    /// Waits until the query API shows the invite.
    async fn projected(&self, id: &str) {
        eventually(Duration::from_secs(30), "the invite to be projected", || async {
            (self.query.get(&format!("/v1/invites/{id}")).await.status == StatusCode::OK).then_some(())
        })
        .await;
    }
}

/// A request with a raw body (the bytes as given, not re-serialized).
async fn post_raw(api: &Api, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    let mut request = api
        .http
        .post(format!("{}{path}", api.base))
        .bearer_auth(&api.key)
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status(), response.headers().clone());
    let body = serde_json::from_str(&response.text().await.unwrap()).unwrap_or(Value::Null);
    Reply { status, headers, body }
}

fn assert_problem(r: &Reply, status: StatusCode, field: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(r.header("content-type"), Some("application/problem+json"), "{what}");
    assert_eq!(r.body["field"], field, "{what}: {}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn if_match_takes_a_star_and_entity_tag_lists_compared_strongly_and_refuses_what_is_neither() {
    let w = world().await;
    let id = w.create("bob@example.com").await;
    let view = json!({ "kind": "view" });
    let engage = format!("/v1/invites/{id}/engagements");

    // `*`: the invite exists.
    let r = w.post_with(&engage, &view, &[("if-match", "*")]).await;
    assert_eq!(r.status, StatusCode::OK, "If-Match: * on an existing invite: {}", r.body);
    assert_eq!(r.body["version"], 2);
    // A list holding the current version.
    let r = w.post_with(&engage, &view, &[("if-match", r#""9", "2""#)]).await;
    assert_eq!(r.status, StatusCode::OK, "a list with the current tag: {}", r.body);
    assert_eq!(r.body["version"], 3);
    // Stale, weak (strong comparison never matches a weak tag), or an opaque tag: 412, nothing written.
    for stale in [r#""2""#, r#"W/"3""#, r#""abc""#] {
        let r = w.post_with(&engage, &view, &[("if-match", stale)]).await;
        assert_problem(&r, StatusCode::PRECONDITION_FAILED, "If-Match", stale);
    }
    // Send and resend take the precondition too, and document its 412.
    let r = w.post_with(&format!("/v1/invites/{id}/send"), &json!({}), &[("if-match", r#""1""#)]).await;
    assert_problem(&r, StatusCode::PRECONDITION_FAILED, "If-Match", "a stale send");
    let r = w.post_with(&format!("/v1/invites/{id}/send"), &json!({}), &[("if-match", r#""3""#)]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "a send at the current version: {}", r.body);
    let spec = w.command.get("/openapi.json").await.body;
    for path in ["/v1/invites", "/v1/invites/{id}/send", "/v1/invites/{id}/resend"] {
        assert!(spec["paths"][path]["post"]["responses"].get("412").is_some(), "{path} documents its 412");
    }
    // Not a precondition at all: 400 naming the header.
    for malformed in ["", "3", "\"3", "\"3\" \"4\"", "**"] {
        let r = w.post_with(&engage, &view, &[("if-match", malformed)]).await;
        assert_problem(&r, StatusCode::BAD_REQUEST, "If-Match", malformed);
    }
    // An unknown invite is a 404 whatever the precondition.
    let unknown = uuid::Uuid::now_v7();
    for condition in ["*", "\"1\""] {
        let r = w.post_with(&format!("/v1/invites/{unknown}/revoke"), &json!({}), &[("if-match", condition)]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{condition} on an unknown invite: {}", r.body);
    }
    // A create acts on the collection: it exists (`*` holds) and has no entity tag.
    let r = w.post_with("/v1/invites", &invite_for("cy@example.com"), &[("if-match", "*")]).await;
    assert_eq!(r.status, StatusCode::CREATED, "If-Match: * on a create: {}", r.body);
    let r = w.post_with("/v1/invites", &invite_for("di@example.com"), &[("if-match", "\"0\"")]).await;
    assert_problem(&r, StatusCode::PRECONDITION_FAILED, "If-Match", "a tag on a create");
    let events = w.env.read_log().iter().filter(|e| e.meta.stream.as_uuid().to_string() == id).count();
    assert_eq!(events, 4, "created, two views and one send: the refused commands wrote nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stale_if_match_on_a_definition_update_is_a_412_and_loses_no_update() {
    let w = world().await;
    let created = w.command.post("/v1/definitions", &json!({ "handle": "spring", "max_send_count": 2 })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let etag = created.header("etag").unwrap().to_owned();
    let path = format!("/v1/definitions/{id}");
    // Two editors read the same version; the first one's update lands.
    let first = w
        .command
        .call(Method::PUT, &path, Some(&json!({ "handle": "spring", "max_send_count": 5 })), &[("if-match", &etag)])
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    // The second one's, made against the version it read, must not overwrite it.
    let second = w
        .command
        .call(Method::PUT, &path, Some(&json!({ "handle": "spring", "max_send_count": 9 })), &[("if-match", &etag)])
        .await;
    assert_problem(&second, StatusCode::PRECONDITION_FAILED, "If-Match", "a stale definition update");
    let list = w.command.get("/v1/definitions").await.body;
    assert_eq!(list["data"][0]["max_send_count"], 5, "{list}");
    // `*` holds for an existing definition; an unknown one is a 404 whatever the precondition.
    let star = w
        .command
        .call(Method::PUT, &path, Some(&json!({ "handle": "spring", "max_send_count": 6 })), &[("if-match", "*")])
        .await;
    assert_eq!(star.status, StatusCode::OK, "{}", star.body);
    let unknown = format!("/v1/definitions/{}", uuid::Uuid::now_v7());
    let r = w.command.call(Method::PUT, &unknown, Some(&json!({ "handle": "x" })), &[("if-match", "\"1\"")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idempotency_key_matches_the_same_json_whatever_its_key_order_and_spacing() {
    let w = world().await;
    let key = [("idempotency-key", "create-once")];
    let first = post_raw(
        &w.command,
        "/v1/invites",
        r#"{"inviter":{"id":"ann","name":"Ann"},"targets":[{"type":"email","value":"bob@example.com"}]}"#,
        &key,
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = post_raw(
        &w.command,
        "/v1/invites",
        r#"{ "targets": [ { "value": "bob@example.com", "type": "email" } ],
             "inviter": { "name": "Ann", "id": "ann" } }"#,
        &key,
    )
    .await;
    assert_eq!(again.status, StatusCode::CREATED, "the same JSON, reordered: {}", again.body);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body["id"], first.body["id"]);
    let other = post_raw(
        &w.command,
        "/v1/invites",
        r#"{"inviter":{"id":"ann","name":"Ann"},"targets":[{"type":"email","value":"eve@example.com"}]}"#,
        &key,
    )
    .await;
    assert_problem(&other, StatusCode::UNPROCESSABLE_ENTITY, "Idempotency-Key", "another body");
    assert_eq!(w.env.created_targets().await, ["bob@example.com"], "one invite created");
    let r = w.post_with("/v1/invites", &invite_for("cy@example.com"), &[("idempotency-key", "")]).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "Idempotency-Key", "an empty key");
    // Not ASCII: refused, not silently taken for no key.
    let response = w
        .command
        .http
        .post(format!("{}/v1/invites", w.command.base))
        .bearer_auth(&w.command.key)
        .header("idempotency-key", reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap())
        .json(&invite_for("cy@example.com"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "a key that is not ASCII");
    assert_eq!(w.env.created_targets().await, ["bob@example.com"], "still one invite");
}

#[tokio::test(flavor = "multi_thread")]
async fn whole_numbers_are_integers_in_any_json_notation_in_bodies_and_parameters() {
    let w = world().await;
    let mut body = invite_for("bob@example.com");
    body["invitation_type"] = json!("multi_use");
    body["max_accepts"] = json!(715.0);
    body["expires_in_days"] = json!(7e0);
    let r = w.command.post("/v1/invites", &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "715.0 and 7e0 are integers: {}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let version = r.body["version"].as_u64().unwrap();
    let r = w.command.post("/v1/definitions", &json!({ "handle": "h", "default_expiry_days": 30.0 })).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["default_expiry_days"], 30);
    body["max_accepts"] = json!(7.5);
    let r = w.command.post("/v1/invites", &body).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "max_accepts", "7.5");

    let r = w.query.get(&format!("/v1/invites/{id}?min_version={version}.0")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["max_accepts"], 715);
    let r = w.query.get("/v1/invites?limit=1.0").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_problem(&w.query.get("/v1/invites?limit=1.5").await, StatusCode::BAD_REQUEST, "limit", "1.5");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_known_path_asked_with_another_method_is_a_405_with_allow_on_both_apis() {
    let w = world().await;
    let id = uuid::Uuid::now_v7();
    for (api, method, path, allow) in [
        (&w.command, Method::DELETE, "/v1/invites".to_owned(), "POST"),
        (&w.command, Method::GET, "/v1/invites/accept".to_owned(), "POST"),
        (&w.command, Method::GET, format!("/v1/definitions/{id}"), "PUT"),
        (&w.command, Method::DELETE, "/v1/definitions".to_owned(), "GET, POST"),
        (&w.command, Method::POST, "/healthz".to_owned(), "GET"),
        (&w.query, Method::POST, "/v1/invites".to_owned(), "GET"),
        (&w.query, Method::DELETE, format!("/v1/invites/{id}"), "GET"),
        (&w.query, Method::TRACE, "/openapi.json".to_owned(), "GET"),
    ] {
        let r = api.call(method.clone(), &path, None, &[]).await;
        let what = format!("{method} {path}");
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{what}: {}", r.body);
        assert_eq!(r.header("allow"), Some(allow), "{what}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"), "{what}");
        assert_eq!(r.body["code"], "method-not-allowed", "{what}");
    }
    for api in [&w.command, &w.query] {
        let r = api.get("/v1/nothing-here").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "an unknown path");
        assert!(r.header("allow").is_none());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn min_version_on_an_unknown_or_another_tenants_invite_is_a_404() {
    let w = world().await;
    let (_, other_key) = w.env.other_tenant("tenant-b").await;
    let other = w.command.with_key(&other_key);
    let r = other.post("/v1/invites", &invite_for("bob@example.com")).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let foreign = r.body["id"].as_str().unwrap().to_owned();
    // Projected, so the query API knows it is another tenant's, not one still on its way.
    let other_query = w.query.with_key(&other_key);
    eventually(Duration::from_secs(30), "the other tenant's invite to be projected", || async {
        (other_query.get(&format!("/v1/invites/{foreign}")).await.status == StatusCode::OK).then_some(())
    })
    .await;
    // Never minted by the command API: a random UUID, a UUIDv7 of long ago.
    let random = uuid::Uuid::new_v4().to_string();
    let old = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, 1_600_000_000, 0)).to_string();
    for id in [foreign, random, old] {
        for query in ["min_version=1", "min_version=7"] {
            let r = w.query.get(&format!("/v1/invites/{id}?{query}")).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{id}?{query}: {}", r.body);
            assert_eq!(r.header("content-type"), Some("application/problem+json"));
        }
        let r = w.query.call(Method::GET, &format!("/v1/invites/{id}"), None, &[("x-min-version", "1")]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{id} with X-Min-Version: {}", r.body);
    }
    // An invite of the caller's own that the projection has not reached yet is still waited for.
    let mine = w.create("eve@example.com").await;
    let r = w.query.get(&format!("/v1/invites/{mine}?min_version=1")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_text_filter_that_is_empty_or_holds_a_control_character_is_a_400_naming_it() {
    let w = world().await;
    let id = w.create("bob@example.com").await;
    w.projected(&id).await;
    let texts = ["inviter", "target", "reply_to", "scope_type", "scope_id", "status", "cursor"];
    for endpoint in ["/v1/invites", "/v1/stats"] {
        for name in texts {
            if endpoint == "/v1/stats" && name == "cursor" {
                continue;
            }
            for value in ["a%00b", "%00", "x%01", "x%7F", "%C2%85"] {
                let query = format!("{endpoint}?{name}={value}");
                assert_problem(&w.query.get(&query).await, StatusCode::BAD_REQUEST, name, &query);
            }
        }
        let mut empty: Vec<&str> = texts.to_vec();
        empty.extend(["definition", "created_after", "created_before", "expired"]);
        if endpoint == "/v1/invites" {
            empty.extend(["limit", "order"]);
        } else {
            empty.retain(|n| *n != "cursor");
            empty.extend(["from", "to", "bucket"]);
        }
        for name in empty {
            let query = format!("{endpoint}?{name}=");
            assert_problem(&w.query.get(&query).await, StatusCode::BAD_REQUEST, name, &query);
        }
        let query = format!("{endpoint}?status=queued,,sent");
        assert_problem(&w.query.get(&query).await, StatusCode::BAD_REQUEST, "status", &query);
    }
    // A cursor's syntax but not one this API issued: well-formed, so 422 rather than 400.
    let forged = "A".repeat(40);
    let r = w.query.get(&format!("/v1/invites?cursor={forged}")).await;
    assert_problem(&r, StatusCode::UNPROCESSABLE_ENTITY, "cursor", "a forged cursor");
    let r = w.query.get(&format!("/v1/invites/{id}?min_version=")).await;
    assert_problem(&r, StatusCode::BAD_REQUEST, "min_version", "an empty min_version");
    // The same filters with real values still answer.
    for query in ["/v1/invites?inviter=ann&target=bob@example.com", "/v1/stats?inviter=ann&status=created"] {
        assert_eq!(w.query.get(query).await.status, StatusCode::OK, "{query}");
    }
}
