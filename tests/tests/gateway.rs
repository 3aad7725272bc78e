//! The gateway (`deploy/gateway/nginx.conf`, the file `make run` uses) in front of a test's own
//! services: reads reach the query API, writes, the invite link and the webhook endpoints the
//! command API; the services' answers pass through unchanged; its logs hold no path and no query string.

use reqwest::{Method, StatusCode};
use rsvp_tests::{eventually, invite_for, Api, Gateway, Services, TestEnv};
use serde_json::json;
use std::time::Duration;

/// Status, content type and exact body bytes of one request to `base`.
async fn raw(
    http: &reqwest::Client,
    method: Method,
    url: String,
    key: &str,
    body: Option<&str>,
) -> (u16, String, Vec<u8>) {
    let mut request = http.request(method, url).bearer_auth(key);
    if let Some(body) = body {
        request = request.header("content-type", "application/json").body(body.to_owned());
    }
    let response = request.send().await.expect("the request is answered");
    let content_type = response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (response.status().as_u16(), content_type, response.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_sends_writes_and_links_to_the_command_api_and_reads_to_the_query_api() {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let gateway = Gateway::for_services(&services).await;
    let api = Api::new(&gateway.url, &env.key);

    // A native create through the gateway reaches the command API (the query API has no POST).
    let target = "secret-bob@example.com";
    let created =
        api.call(Method::POST, "/v1/invites", Some(&invite_for(target)), &[("Idempotency-Key", "gw-1")]).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    // Its headers pass both ways: the same Idempotency-Key gives the same invite.
    let again = api.call(Method::POST, "/v1/invites", Some(&invite_for(target)), &[("Idempotency-Key", "gw-1")]).await;
    assert_eq!(again.body["id"], id.as_str(), "{}", again.body);
    assert_eq!(created.header("etag"), Some("\"1\""));

    // A GET reaches the query API (the command API has no such route).
    let detail = eventually(Duration::from_secs(30), "the invite through the gateway", || async {
        let r = api.get(&format!("/v1/invites/{id}")).await;
        (r.status == StatusCode::OK).then_some(r)
    })
    .await;
    assert_eq!(detail.body["id"], id.as_str());
    let listed = api.get(&format!("/v1/invites?target={target}")).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(listed.body["data"][0]["id"], id.as_str());
    // HEAD goes to the query API too: the same answer as the query API's own.
    let head = |base: String| {
        let request = api.http.head(format!("{base}/v1/invites/{id}")).bearer_auth(&env.key);
        async move {
            let r = request.send().await.unwrap();
            (r.status(), r.headers().get("allow").cloned())
        }
    };
    let through = head(gateway.url.clone()).await;
    assert_eq!(through, head(services.query.url.clone()).await);
    assert_ne!(through, head(services.command.url.clone()).await);
    // The definitions, whose GET the command API serves, stay on the command API.
    let definitions = api.get("/v1/definitions").await;
    assert_eq!(definitions.status, StatusCode::OK, "{}", definitions.body);
    // So do the webhook endpoints, every method (the query API has no such route: a 404 there).
    let webhooks = api.get("/v1/webhooks").await;
    assert_eq!((webhooks.status, webhooks.body["data"].clone()), (StatusCode::OK, json!([])), "{}", webhooks.body);
    let registered = api.post("/v1/webhooks", &json!({ "url": "https://hooks.example.com/rsvp" })).await;
    assert_eq!(registered.status, StatusCode::CREATED, "{}", registered.body);
    let hook = registered.body["id"].as_str().unwrap();
    let read = api.get(&format!("/v1/webhooks/{hook}/attempts")).await;
    assert_eq!((read.status, read.body["data"].clone()), (StatusCode::OK, json!([])), "{}", read.body);
    let head = api.http.head(format!("{}/v1/webhooks/{hook}", gateway.url)).bearer_auth(&env.key).send().await.unwrap();
    assert_eq!(head.status(), StatusCode::OK);
    let gone = api.call(Method::DELETE, &format!("/v1/webhooks/{hook}"), None, &[]).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    // And the tenant's API keys.
    let keys = api.get("/v1/api-keys").await;
    assert_eq!(keys.status, StatusCode::OK, "{}", keys.body);
    assert!(keys.body["data"].as_array().is_some_and(|k| !k.is_empty()), "{}", keys.body);

    // The invite link, any method, reaches the command API: a click and a redirect.
    let link = created.body["link_url"].as_str().unwrap();
    let token = link.rsplit('/').next().unwrap();
    let followed = api.http.get(format!("{}/i/{token}", gateway.url)).send().await.unwrap();
    assert!(followed.status().is_redirection() || followed.status() == StatusCode::OK, "{}", followed.status());
    let direct = api.http.get(format!("{}/i/{token}", services.command.url)).send().await.unwrap();
    assert_eq!(followed.status(), direct.status());
    let head = api.http.head(format!("{}/i/{token}", gateway.url)).send().await.unwrap();
    let head_direct = api.http.head(format!("{}/i/{token}", services.command.url)).send().await.unwrap();
    assert_eq!(head.status(), head_direct.status(), "HEAD on a link goes to the command API");

    // Problems pass through unchanged: status, content type and every byte of the body, from
    // either service, compared with the same request made to the service directly.
    let http = &api.http;
    let cases: [(Method, &str, Option<&str>, &str); 4] = [
        (Method::POST, "/v1/invites", Some(r#"{"inviter":{"id":"ann"},"targets":[]}"#), &services.command.url),
        (Method::POST, "/v1/invites", Some("{not json"), &services.command.url),
        (Method::GET, "/v1/invites?limit=0", None, &services.query.url),
        (Method::GET, "/v1/invites/not-a-uuid", None, &services.query.url),
    ];
    for (method, path, body, direct) in cases {
        let through = raw(http, method.clone(), format!("{}{path}", gateway.url), &env.key, body).await;
        let straight = raw(http, method.clone(), format!("{direct}{path}"), &env.key, body).await;
        assert!((400..500).contains(&through.0), "{method} {path}: {}", through.0);
        assert_eq!(through.1, "application/problem+json", "{method} {path}");
        assert_eq!(through, straight, "{method} {path} through the gateway and directly");
    }
    let unauthorized = raw(http, Method::GET, format!("{}/v1/invites", gateway.url), "wrong", None).await;
    assert_eq!(unauthorized, raw(http, Method::GET, format!("{}/v1/invites", services.query.url), "wrong", None).await);
    assert_eq!(unauthorized.0, 401);

    // The access log has a line per request but no path and no query string: link tokens and
    // email addresses never reach it.
    let log = gateway.access_log();
    assert!(log.lines().count() >= 10, "{log}");
    for secret in [token, target, "/v1/invites", "limit=0"] {
        assert!(!log.contains(secret), "the access log holds {secret}: {log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_limit_and_a_service_that_is_down_are_problems_from_the_gateway() {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let gateway = Gateway::for_services(&services).await;
    let http = reqwest::Client::new();

    let huge =
        format!(r#"{{"inviter":{{"id":"ann"}},"message":"{}"}}"#, "x".repeat(rsvp_tests::gateway::MAX_BODY_BYTES));
    let (status, content_type, body) =
        raw(&http, Method::POST, format!("{}/v1/invites", gateway.url), &env.key, Some(&huge)).await;
    assert_eq!((status, content_type.as_str()), (413, "application/problem+json"));
    let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON problem");
    assert_eq!(body["code"], "payload-too-large");

    // A body just under the limit reaches the command API, which judges it.
    let fits = json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": "a@example.com" }] });
    let r = Api::new(&gateway.url, &env.key).post("/v1/invites", &fits).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // The command API gone: a 503 problem, not nginx's HTML page.
    let mut services = services;
    services.command.kill().await;
    let (status, content_type, _) =
        raw(&http, Method::POST, format!("{}/v1/invites", gateway.url), &env.key, Some("{}")).await;
    assert_eq!((status, content_type.as_str()), (503, "application/problem+json"));
}
