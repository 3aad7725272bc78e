//! The Vortex dialect end to end, as a Vortex client sees it: through the gateway, with the key in
//! `x-api-key`, answers compared field by field with the seed's shapes
//! (`../shared/seeds/vortex-get-invitation.txt`, `vortex-accept-invitations.txt`).

use reqwest::{Method, StatusCode};
use rsvp_tests::{eventually, Api, Gateway, Reply, Services, TestEnv};
use serde_json::{json, Value};
use std::time::Duration;

/// The seed's invitation (`vortex-get-invitation.txt`), as documented.
fn seed_invitation() -> Value {
    json!({
        "id": "invitation-12345",
        "accountId": "account-12345",
        "attributes": {},
        "clickThroughs": 5,
        "configurationAttributes": {},
        "createdAt": "2023-10-01T12:00:00Z",
        "deactivated": false,
        "deliveryCount": 3,
        "deliveryTypes": ["email", "sms"],
        "foreignCreatorId": "creator-12345",
        "invitationType": "single_use",
        "modifiedAt": "2023-10-01T12:00:00Z",
        "status": "queued",
        "target": [{ "type": "email", "value": "[email protected]" }],
        "views": 10,
        "widgetConfigurationId": "widget-12345",
        "projectId": "project-67890",
        "groups": [{ "type": "workspace", "id": "workspace-12345", "name": "Development Team" }],
        "accepts": [{ "id": "accept-12345", "status": "accepted" }],
        "scope": "6b366c56-c0a9-4689-b763-20c890481bc8",
        "scopeType": "project",
        "expired": false,
        "expires": "2023-11-01T12:00:00Z"
    })
}

/// A JSON value's shape: every object key with the shape of its value, arrays by their first
/// item, scalars by their type. Two documents with the same shape have the same field names,
/// types and nesting.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(items) => Value::Array(items.first().map(shape).into_iter().collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("boolean"),
        Value::Null => json!("null"),
    }
}

/// ISO 8601 in UTC, as Vortex writes times.
fn is_iso_time(v: &Value) -> bool {
    v.as_str().is_some_and(|s| {
        chrono::DateTime::parse_from_rfc3339(s).is_ok()
            && s.ends_with('Z')
            && s.len() == "2023-10-01T12:00:00.000Z".len()
    })
}

const STATUS_WORDS: [&str; 8] =
    ["queued", "sending", "sent", "delivered", "accepted", "shared", "unfurled", "accepted_elsewhere"];

/// A Vortex client: the key in `x-api-key`, nothing in `Authorization`.
struct Vortex {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Vortex {
    fn new(base: &str, key: &str) -> Self {
        Self { http: reqwest::Client::new(), base: base.to_owned(), key: key.to_owned() }
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).header("x-api-key", &self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        reply(request).await
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }
}

async fn reply(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("the request is answered");
    let (status, headers) = (response.status(), response.headers().clone());
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Reply { status, headers, body }
}

/// A Vortex error: JSON naming its status, and the field at fault when there is one.
fn assert_vortex_error(r: &Reply, status: StatusCode, field: Option<&str>) {
    assert_eq!(r.status, status, "{}", r.body);
    assert!(r.header("content-type").is_some_and(|c| c.starts_with("application/json")), "{:?}", r.headers);
    assert_eq!(r.body["statusCode"], status.as_u16(), "{}", r.body);
    assert!(r.body["error"].is_string() && r.body["message"].is_string(), "{}", r.body);
    if let Some(field) = field {
        assert_eq!(r.body["field"], field, "{}", r.body);
    }
}

struct System {
    env: TestEnv,
    _services: Services,
    gateway: Gateway,
    native: Api,
    vortex: Vortex,
}

async fn system() -> System {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let gateway = Gateway::for_services(&services).await;
    let native = Api::new(&gateway.url, &env.key);
    let vortex = Vortex::new(&gateway.url, &env.key);
    System { env, _services: services, gateway, native, vortex }
}

/// Creates an invite through the native API and returns its id.
async fn native_invite(api: &Api, target: &str, scope: &str) -> String {
    let r = api
        .post(
            "/v1/invites",
            &json!({
                "inviter": { "id": "creator-12345" },
                "targets": [{ "type": "email", "value": target }],
                "scopes": [{ "type": "workspace", "id": scope, "name": "Development Team" }],
                "widget_id": "widget-12345",
            }),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// Waits until the Vortex read of `id` shows `version`'s effects (`check`).
async fn read_until(vortex: &Vortex, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(Duration::from_secs(30), what, || async {
        let r = vortex.get(&format!("/api/v1/invitations/{id}")).await;
        (r.status == StatusCode::OK && check(&r.body)).then_some(r.body)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invitation_reads_with_every_field_of_the_seed_in_its_types_and_formats() {
    let s = system().await;
    let create = json!({
        "inviter": { "id": "creator-12345" },
        "targets": [{ "type": "email", "value": "foo@bar.com" }],
        "scopes": [{ "type": "workspace", "id": "workspace-12345", "name": "Development Team" }],
        "widget_id": "widget-12345",
        "template_variables": { "first_name": "Foo" },
        "expires_in_days": 31,
        "send": "email",
    });
    let created = s.native.post("/v1/invites", &create).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    for kind in ["view", "view", "click"] {
        let r = s.native.post(&format!("/v1/invites/{id}/engagements"), &json!({ "kind": kind })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let body = read_until(&s.vortex, &id, "the engagements", |b| b["views"] == 2).await;

    // Every field of the seed, and no other, in the seed's types (`accepts` is empty so far).
    let mut expected_shape = shape(&seed_invitation());
    expected_shape["accepts"] = json!([]);
    expected_shape["configurationAttributes"] = json!({ "first_name": "string" });
    expected_shape["deliveryTypes"] = json!(["string"]);
    assert_eq!(shape(&body), expected_shape, "{body:#}");
    // The values rsvp knows, as Vortex words them.
    let tenant = s.env.tenant.to_string();
    let mut fixed = body.clone();
    for field in ["createdAt", "modifiedAt", "expires"] {
        assert!(is_iso_time(&body[field]), "{field}: {}", body[field]);
        fixed[field] = json!("<time>");
    }
    assert_eq!(
        fixed,
        json!({
            "id": id,
            "accountId": tenant,
            "attributes": {},
            "clickThroughs": 1,
            "configurationAttributes": { "first_name": "Foo" },
            "createdAt": "<time>",
            "deactivated": false,
            "deliveryCount": 0,
            "deliveryTypes": ["email"],
            "foreignCreatorId": "creator-12345",
            "invitationType": "single_use",
            "modifiedAt": "<time>",
            "status": "delivered",
            "target": [{ "type": "email", "value": "foo@bar.com" }],
            "views": 2,
            "widgetConfigurationId": "widget-12345",
            "projectId": tenant,
            "groups": [{ "type": "workspace", "id": "workspace-12345", "name": "Development Team" }],
            "accepts": [],
            "scope": "workspace-12345",
            "scopeType": "workspace",
            "expired": false,
            "expires": "<time>",
        })
    );
    assert!(STATUS_WORDS.contains(&body["status"].as_str().unwrap()));
    assert!(body["createdAt"].as_str() <= body["modifiedAt"].as_str());
}

#[tokio::test(flavor = "multi_thread")]
async fn invitations_read_by_target_and_by_scope_and_bad_queries_name_their_parameter() {
    let s = system().await;
    let a = native_invite(&s.native, "Foo@Bar.com", "ws-1").await;
    let b = native_invite(&s.native, "eve@bar.com", "ws-1").await;
    let c = native_invite(&s.native, "foo@bar.com", "ws-2").await;
    let ids = |r: &Reply| -> Vec<String> {
        let mut ids: Vec<String> =
            r.body["invitations"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let by_target = eventually(Duration::from_secs(30), "both invites of foo", || async {
        let r = s.vortex.get("/api/v1/invitations?targetType=email&targetValue=FOO%40bar.com").await;
        (r.status == StatusCode::OK && ids(&r).len() == 2).then_some(r)
    })
    .await;
    assert_eq!(ids(&by_target), sorted(vec![a.clone(), c.clone()]));
    // Each one is the invitation the single read shows.
    let one = s.vortex.get(&format!("/api/v1/invitations/{a}")).await;
    let listed = by_target.body["invitations"].as_array().unwrap().iter().find(|i| i["id"] == a.as_str()).unwrap();
    assert_eq!(listed, &one.body);

    let by_scope = eventually(Duration::from_secs(30), "both invites of ws-1", || async {
        let r = s.vortex.get("/api/v1/invitations/by-scope/workspace/ws-1").await;
        (r.status == StatusCode::OK && ids(&r).len() == 2).then_some(r)
    })
    .await;
    assert_eq!(ids(&by_scope), sorted(vec![a, b]));
    let none = s.vortex.get("/api/v1/invitations?targetType=phoneNumber&targetValue=%2B15551234567").await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(none.body, json!({ "invitations": [] }));

    for (path, field) in [
        ("/api/v1/invitations?targetType=fax&targetValue=1", "targetType"),
        ("/api/v1/invitations?targetType=email", "targetValue"),
        ("/api/v1/invitations?targetType=email&targetValue=", "targetValue"),
        ("/api/v1/invitations?targetValue=a%40b.co&limit=3", "limit"),
        ("/api/v1/invitations/not-an-id", "invitationId"),
    ] {
        assert_vortex_error(&s.vortex.get(path).await, StatusCode::BAD_REQUEST, Some(field));
    }
    let missing = s.vortex.get(&format!("/api/v1/invitations/{}", uuid::Uuid::now_v7())).await;
    assert_vortex_error(&missing, StatusCode::NOT_FOUND, None);
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_key_finds_nothing_and_other_credential_forms_get_vortexs_401() {
    let s = system().await;
    let id = native_invite(&s.native, "foo@bar.com", "ws-1").await;
    read_until(&s.vortex, &id, "the invitation", |_| true).await;
    let (_, other_key) = s.env.other_tenant("vortex-other").await;
    let other = Vortex::new(&s.gateway.url, &other_key);
    assert_vortex_error(&other.get(&format!("/api/v1/invitations/{id}")).await, StatusCode::NOT_FOUND, None);
    let listed = other.get("/api/v1/invitations?targetType=email&targetValue=foo%40bar.com").await;
    assert_eq!(listed.body, json!({ "invitations": [] }));
    let listed = other.get("/api/v1/invitations/by-scope/workspace/ws-1").await;
    assert_eq!(listed.body, json!({ "invitations": [] }));

    // The other dialects' credential forms, with a good key, are not Vortex's.
    let url = format!("{}/api/v1/invitations/{id}", s.gateway.url);
    let http = reqwest::Client::new();
    let (key_id, secret) = service_kit::credential::split_api_key(&s.env.key).unwrap();
    for request in [
        http.get(&url).bearer_auth(&s.env.key),
        http.get(&url).basic_auth(key_id, Some(secret)),
        http.get(&url),
        http.get(&url).header("x-api-key", "rsvp_nokey_nosecret"),
    ] {
        let r = reply(request).await;
        assert_vortex_error(&r, StatusCode::UNAUTHORIZED, None);
        assert!(r.header("www-authenticate").is_none());
    }
    // ... and Vortex's is not the native API's.
    let r = reply(http.get(format!("{}/v1/invites/{id}", s.gateway.url)).header("x-api-key", &s.env.key)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
