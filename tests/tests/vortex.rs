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
    // The click is the last: two views can be read before it is.
    let body = read_until(&s.vortex, &id, "the engagements", |b| b["views"] == 2 && b["clickThroughs"] == 1).await;

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
    // Waiting for a version (read-your-writes) of an invitation that is someone else's, or no
    // invitation rsvp minted, is a 404 at once, never a 503 after the wait.
    for (who, unknown) in [(&other, id.clone()), (&s.vortex, uuid::Uuid::new_v4().to_string())] {
        let url = format!("{}/api/v1/invitations/{unknown}", s.gateway.url);
        let r = reply(who.http.get(url).header("x-api-key", &who.key).header("x-min-version", "1")).await;
        assert_vortex_error(&r, StatusCode::NOT_FOUND, None);
    }

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

/// A Vortex create body for `target` (an email), in `group` when given.
fn create_body(target: &str, group: Option<&str>) -> Value {
    let groups: Vec<Value> =
        group.map(|g| json!({ "type": "workspace", "groupId": g, "name": "Development Team" })).into_iter().collect();
    json!({
        "widgetConfigurationId": "widget-12345",
        "target": { "type": "email", "value": target, "name": "Foo" },
        "inviter": { "userId": "creator-12345", "userEmail": "ann@example.com", "name": "Ann" },
        "groups": groups,
        "source": "email-share",
        "templateVariables": { "first_name": "Foo" },
        "metadata": { "plan": "gold" },
        "subtype": "referral",
    })
}

async fn vortex_create(vortex: &Vortex, target: &str, group: Option<&str>) -> String {
    let r = vortex.call(Method::POST, "/api/v1/invitations", Some(&create_body(target, group))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["id"].as_str().unwrap().to_owned()
}

/// The invite events of the log by type, for `id`.
fn events_of(env: &TestEnv, id: &str) -> Vec<events::Envelope> {
    env.read_log().into_iter().filter(|e| e.invite_event().is_some_and(|(i, _)| i.to_string() == id)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_answers_id_short_link_status_and_time_and_records_every_field() {
    let s = system().await;
    let r = s.vortex.call(Method::POST, "/api/v1/invitations", Some(&create_body("foo@bar.com", Some("ws-1")))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(
        shape(&r.body),
        json!({ "id": "string", "shortLink": "string", "status": "string", "createdAt": "string" })
    );
    let id = r.body["id"].as_str().unwrap().to_owned();
    assert_eq!(r.body["status"], "queued");
    assert!(is_iso_time(&r.body["createdAt"]), "{}", r.body);
    let short_link = r.body["shortLink"].as_str().unwrap();
    let token = short_link.rsplit_once("/i/").map(|(_, t)| t.to_owned()).unwrap();
    assert!(token.len() >= 22, "{short_link}");

    let body = read_until(&s.vortex, &id, "the created invitation", |_| true).await;
    assert_eq!(body["createdAt"], r.body["createdAt"], "the create answers the time every read shows");
    assert_eq!(body["target"], json!([{ "type": "email", "value": "foo@bar.com" }]));
    assert_eq!(body["groups"], json!([{ "type": "workspace", "id": "ws-1", "name": "Development Team" }]));
    assert_eq!((&body["scope"], &body["scopeType"]), (&json!("ws-1"), &json!("workspace")));
    assert_eq!(body["widgetConfigurationId"], "widget-12345");
    assert_eq!(body["foreignCreatorId"], "creator-12345");
    assert_eq!(body["configurationAttributes"], json!({ "first_name": "Foo" }));
    assert_eq!(body["deliveryTypes"], json!(["email"]), "the create requested its delivery");
    assert!(body.get("expires").is_none() && body["expired"] == false);
    assert!(!body.to_string().contains(&token), "the link token is never read back");

    // One decision: the create and its delivery, with what exists nowhere else in rsvp recorded.
    let log = events_of(&s.env, &id);
    let types: Vec<&str> = log.iter().map(|e| e.event_type()).collect();
    assert_eq!(types, ["InviteCreated", "InviteSent"]);
    assert_eq!(log[0].meta.correlation_id, log[1].meta.correlation_id);
    let Some((_, events::InviteEvent::Created(created))) = log[0].invite_event() else { panic!() };
    assert_eq!((created.source.as_deref(), created.subtype.as_deref()), (Some("email-share"), Some("referral")));
    // Personal data is sealed in the log, and opens with the tenant's key.
    let email = created.inviter.email.clone().unwrap();
    assert!(email.starts_with("rsvp-sealed:"), "{email}");
    let mut opened = serde_json::json!(email);
    s.env.unsealer().unseal(s.env.tenant, &mut opened).await.unwrap();
    assert_eq!(opened, "ann@example.com");
    assert_eq!(created.metadata["plan"], "gold");
    // The link works through the gateway, as the native one does.
    let followed = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/i/{token}", s.gateway.url))
        .send()
        .await
        .unwrap();
    assert!(followed.status().is_success() || followed.status().is_redirection(), "{}", followed.status());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_repeated_with_its_idempotency_key_answers_the_first_invitation_again() {
    let s = system().await;
    let create = || {
        s.vortex
            .http
            .post(format!("{}/api/v1/invitations", s.gateway.url))
            .header("x-api-key", &s.env.key)
            .header("Idempotency-Key", "vortex-create-1")
            .json(&create_body("foo@bar.com", None))
    };
    let first = reply(create()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let again = reply(create()).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.body, first.body);
    assert_eq!(s.env.read_log().len(), 2, "one create and its delivery, once");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_create_is_a_4xx_naming_the_vortex_field_and_writes_nothing() {
    let s = system().await;
    let mut cases = Vec::new();
    let mut body = create_body("foo@bar.com", None);
    body["target"]["type"] = json!("fax");
    cases.push((body, StatusCode::BAD_REQUEST, "target.type"));
    let mut body = create_body("not-an-address", None);
    body["target"]["type"] = json!("email");
    cases.push((body, StatusCode::UNPROCESSABLE_ENTITY, "target.value"));
    let mut body = create_body("foo@bar.com", None);
    body.as_object_mut().unwrap().remove("widgetConfigurationId");
    cases.push((body, StatusCode::BAD_REQUEST, "widgetConfigurationId"));
    let mut body = create_body("foo@bar.com", Some("ws\u{0}1"));
    body["inviter"]["userId"] = json!("creator");
    cases.push((body, StatusCode::UNPROCESSABLE_ENTITY, "groups[0].groupId"));
    let mut body = create_body("foo@bar.com", None);
    body["source"] = json!("a\u{0}b");
    cases.push((body, StatusCode::UNPROCESSABLE_ENTITY, "source"));
    for (body, status, field) in cases {
        let r = s.vortex.call(Method::POST, "/api/v1/invitations", Some(&body)).await;
        assert_vortex_error(&r, status, Some(field));
    }
    let not_json = reply(
        s.vortex.http.post(format!("{}/api/v1/invitations", s.gateway.url)).header("x-api-key", &s.env.key).body("{"),
    )
    .await;
    assert!(not_json.status.is_client_error(), "{}", not_json.status);
    assert_eq!(not_json.body["statusCode"], not_json.status.as_u16());
    assert!(s.env.read_log().is_empty(), "nothing was written");
}

#[tokio::test(flavor = "multi_thread")]
async fn both_accept_forms_accept_every_named_invitation_or_none() {
    let s = system().await;
    // The seed's form: {invitationIds, target{type, value}}.
    let a = vortex_create(&s.vortex, "foo@bar.com", Some("ws-1")).await;
    let a_twin = vortex_create(&s.vortex, "foo@bar.com", Some("ws-1")).await;
    let accepted = s
        .vortex
        .call(
            Method::POST,
            "/api/v1/invitations/accept",
            Some(&json!({ "invitationIds": [a], "target": { "type": "email", "value": "FOO@bar.com" } })),
        )
        .await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(accepted.body["id"], a.as_str());
    assert_eq!(accepted.body["status"], "accepted");
    assert_eq!(accepted.body["accepts"].as_array().unwrap().len(), 1);
    assert_eq!(accepted.body["accepts"][0]["status"], "accepted");
    // The seed's answer, field for field (its sample leaves scope and expiry out; ours has them).
    let seed_accept = shape(&seed_invitation());
    for (field, kind) in seed_accept.as_object().unwrap() {
        if field != "expires" && field != "configurationAttributes" {
            assert_eq!(&shape(&accepted.body)[field], kind, "{field}: {}", accepted.body);
        }
    }
    let accept_id = accepted.body["accepts"][0]["id"].as_str().unwrap();
    let log = events_of(&s.env, &a);
    assert_eq!(log.last().unwrap().meta.event_id.to_string(), accept_id, "an accept's id is its event's");
    // The other invitation of the same person and scope is no longer needed.
    read_until(&s.vortex, &a_twin, "the twin accepted elsewhere", |b| b["status"] == "accepted_elsewhere").await;

    // The other form: {invitationIds, user{email | phone, name, isExisting}}; all or none.
    let b = vortex_create(&s.vortex, "bo@bar.com", Some("ws-2")).await;
    let c = vortex_create(&s.vortex, "bo@bar.com", Some("ws-3")).await;
    let user = json!({ "email": "bo@bar.com", "name": "Bo", "isExisting": false });
    let before = s.env.read_log().len();
    let refused = s
        .vortex
        .call(Method::POST, "/api/v1/invitations/accept", Some(&json!({ "invitationIds": [b, a], "user": user })))
        .await;
    assert_vortex_error(&refused, StatusCode::CONFLICT, None);
    assert_eq!(s.env.read_log().len(), before, "one refused invitation refuses all");
    let both = s
        .vortex
        .call(Method::POST, "/api/v1/invitations/accept", Some(&json!({ "invitationIds": [b, c], "user": user })))
        .await;
    assert_eq!(both.status, StatusCode::OK, "{}", both.body);
    assert_eq!((&both.body["id"], &both.body["status"]), (&json!(b), &json!("accepted")));
    let c_now = read_until(&s.vortex, &c, "the second accepted", |b| b["status"] == "accepted").await;
    assert_eq!(c_now["accepts"].as_array().unwrap().len(), 1);
    let accepted_b = events_of(&s.env, &b).pop().unwrap();
    let accepted_c = events_of(&s.env, &c).pop().unwrap();
    assert_eq!((accepted_b.event_type(), accepted_c.event_type()), ("InviteAccepted", "InviteAccepted"));
    assert_eq!(accepted_b.meta.correlation_id, accepted_c.meta.correlation_id, "one command");

    for (body, field) in [
        (json!({ "invitationIds": [b] }), "target"),
        (json!({ "invitationIds": ["nope"], "user": user }), "invitationIds[0]"),
        (json!({ "invitationIds": [b], "user": { "name": "Bo" } }), "user.email"),
        (json!({ "invitationIds": [b], "target": { "type": "email" } }), "target.value"),
    ] {
        let r = s.vortex.call(Method::POST, "/api/v1/invitations/accept", Some(&body)).await;
        assert_vortex_error(&r, StatusCode::BAD_REQUEST, Some(field));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn revoking_a_scope_deactivates_all_its_open_invitations_in_one_transaction() {
    let s = system().await;
    let a = vortex_create(&s.vortex, "a@bar.com", Some("ws-1")).await;
    let b = vortex_create(&s.vortex, "b@bar.com", Some("ws-1")).await;
    let done = vortex_create(&s.vortex, "c@bar.com", Some("ws-1")).await;
    let accept = json!({ "invitationIds": [done], "target": { "type": "email", "value": "c@bar.com" } });
    assert_eq!(s.vortex.call(Method::POST, "/api/v1/invitations/accept", Some(&accept)).await.status, StatusCode::OK);
    let other = vortex_create(&s.vortex, "a@bar.com", Some("ws-2")).await;

    let r = s.vortex.call(Method::DELETE, "/api/v1/invitations/by-scope/workspace/ws-1", None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mut revoked: Vec<&str> = r.body["revoked"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    revoked.sort();
    let mut expected = vec![a.as_str(), b.as_str()];
    expected.sort();
    assert_eq!(revoked, expected);
    // One command: its events carry one correlation id, and were appended together.
    let revokes: Vec<events::Envelope> =
        s.env.read_log().into_iter().filter(|e| e.event_type() == "InviteRevoked").collect();
    assert_eq!(revokes.len(), 2);
    assert_eq!(revokes[0].meta.correlation_id, revokes[1].meta.correlation_id);

    let listed = eventually(Duration::from_secs(30), "the scope deactivated", || async {
        let r = s.vortex.get("/api/v1/invitations/by-scope/workspace/ws-1").await;
        let all = r.body["invitations"].as_array()?.clone();
        (all.len() == 3 && all.iter().filter(|i| i["deactivated"] == true).count() == 2).then_some(all)
    })
    .await;
    let kept = listed.iter().find(|i| i["id"] == done.as_str()).unwrap();
    assert_eq!((&kept["deactivated"], &kept["status"]), (&json!(false), &json!("accepted")));
    let untouched = s.vortex.get(&format!("/api/v1/invitations/{other}")).await;
    assert_eq!(untouched.body["deactivated"], false);
    // Nothing open is left: the same request again revokes nothing.
    let again = s.vortex.call(Method::DELETE, "/api/v1/invitations/by-scope/workspace/ws-1", None).await;
    assert_eq!(again.body, json!({ "revoked": [] }));
    // A scope that cannot be one is refused, naming it, and nothing is written.
    let before = s.env.read_log().len();
    for scope in ["ws%011", &"w".repeat(201)] {
        let bad = s.vortex.call(Method::DELETE, &format!("/api/v1/invitations/by-scope/workspace/{scope}"), None).await;
        assert_vortex_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, Some("scope"));
    }
    assert_eq!(s.env.read_log().len(), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_deactivates_one_invitation_and_reinvite_delivers_it_again() {
    let s = system().await;
    let id = vortex_create(&s.vortex, "foo@bar.com", None).await;
    let again = s.vortex.call(Method::POST, &format!("/api/v1/invitations/{id}/reinvite"), None).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body["id"], id.as_str());
    assert_eq!(again.body["status"], "queued");
    let sent: Vec<bool> = events_of(&s.env, &id)
        .iter()
        .filter_map(|e| match e.invite_event() {
            Some((_, events::InviteEvent::Sent(sent))) => Some(sent.resend),
            _ => None,
        })
        .collect();
    assert_eq!(sent, [false, true], "the create's delivery, then the reinvite's");

    let revoked = s.vortex.call(Method::DELETE, &format!("/api/v1/invitations/{id}"), None).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert_eq!(revoked.body["deactivated"], true);
    assert_eq!(revoked.body["status"], "queued", "it keeps the stage it had reached");
    let twice = s.vortex.call(Method::DELETE, &format!("/api/v1/invitations/{id}"), None).await;
    assert_vortex_error(&twice, StatusCode::CONFLICT, None);
    let resend = s.vortex.call(Method::POST, &format!("/api/v1/invitations/{id}/reinvite"), None).await;
    assert_vortex_error(&resend, StatusCode::CONFLICT, None);
    let bad = s.vortex.call(Method::DELETE, "/api/v1/invitations/not-an-id", None).await;
    assert_vortex_error(&bad, StatusCode::BAD_REQUEST, Some("invitationId"));
}

#[tokio::test(flavor = "multi_thread")]
async fn another_tenants_key_cannot_write_to_an_invitation_and_writes_nothing() {
    let s = system().await;
    let id = vortex_create(&s.vortex, "foo@bar.com", Some("ws-1")).await;
    let (_, other_key) = s.env.other_tenant("vortex-writer").await;
    let other = Vortex::new(&s.gateway.url, &other_key);
    let before = s.env.read_log().len();
    let accept = json!({ "invitationIds": [id], "target": { "type": "email", "value": "foo@bar.com" } });
    assert_vortex_error(
        &other.call(Method::POST, "/api/v1/invitations/accept", Some(&accept)).await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert_vortex_error(
        &other.call(Method::DELETE, &format!("/api/v1/invitations/{id}"), None).await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert_vortex_error(
        &other.call(Method::POST, &format!("/api/v1/invitations/{id}/reinvite"), None).await,
        StatusCode::NOT_FOUND,
        None,
    );
    let scope = other.call(Method::DELETE, "/api/v1/invitations/by-scope/workspace/ws-1", None).await;
    assert_eq!(scope.body, json!({ "revoked": [] }));
    assert_eq!(s.env.read_log().len(), before, "nothing was written");
    let mine = read_until(&s.vortex, &id, "the invitation", |_| true).await;
    assert_eq!((&mine["deactivated"], &mine["status"]), (&json!(false), &json!("queued")));

    // The other dialects' credential forms are refused on Vortex's writes, with Vortex's 401.
    let http = reqwest::Client::new();
    let (key_id, secret) = service_kit::credential::split_api_key(&s.env.key).unwrap();
    let url = format!("{}/api/v1/invitations", s.gateway.url);
    let body = create_body("foo@bar.com", None);
    for request in [
        http.post(&url).bearer_auth(&s.env.key).json(&body),
        http.post(&url).basic_auth(key_id, Some(secret)).json(&body),
    ] {
        assert_vortex_error(&reply(request).await, StatusCode::UNAUTHORIZED, None);
    }
    assert_eq!(s.env.read_log().len(), before);
}

/// The seed's fields in the seed's order.
const SEED_ORDER: [&str; 23] = [
    "id",
    "accountId",
    "attributes",
    "clickThroughs",
    "configurationAttributes",
    "createdAt",
    "deactivated",
    "deliveryCount",
    "deliveryTypes",
    "foreignCreatorId",
    "invitationType",
    "modifiedAt",
    "status",
    "target",
    "views",
    "widgetConfigurationId",
    "projectId",
    "groups",
    "accepts",
    "scope",
    "scopeType",
    "expired",
    "expires",
];

/// Whether the first invitation in `text` names the seed's fields in the seed's order.
fn in_seed_order(text: &str) -> bool {
    let at: Vec<usize> = SEED_ORDER.iter().filter_map(|k| text.find(&format!("\"{k}\":"))).collect();
    at.len() >= SEED_ORDER.len() - 1 && at.windows(2).all(|w| w[0] < w[1])
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_and_answers_name_their_fields_in_the_seeds_order() {
    let s = system().await;
    let id = vortex_create(&s.vortex, "foo@bar.com", Some("ws-1")).await;
    read_until(&s.vortex, &id, "the invitation", |_| true).await;
    let text = |path: String| {
        let request = s.vortex.http.get(format!("{}{path}", s.gateway.url)).header("x-api-key", &s.env.key);
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let one = text(format!("/api/v1/invitations/{id}")).await;
    assert!(in_seed_order(&one), "{one}");
    let by_target = text("/api/v1/invitations?targetType=email&targetValue=foo%40bar.com".into()).await;
    assert!(in_seed_order(&by_target), "{by_target}");
    let by_scope = text("/api/v1/invitations/by-scope/workspace/ws-1".into()).await;
    assert!(in_seed_order(&by_scope), "{by_scope}");
    let accepted = s
        .vortex
        .http
        .post(format!("{}/api/v1/invitations/accept", s.gateway.url))
        .header("x-api-key", &s.env.key)
        .json(&json!({ "invitationIds": [id], "target": { "type": "email", "value": "foo@bar.com" } }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(in_seed_order(&accepted), "{accepted}");
}

/// `create_body` for an invitation by `inviter`.
fn create_by(inviter: &str, target: &str, group: &str) -> Value {
    let mut body = create_body(target, Some(group));
    body["inviter"]["userId"] = json!(inviter);
    body
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inviters_key_reads_creates_and_revokes_its_own_invitations_only() {
    use service_kit::Scope;
    let s = system().await;
    let mut ids = Vec::new();
    for inviter in ["eve", "ann"] {
        let r =
            s.vortex.call(Method::POST, "/api/v1/invitations", Some(&create_by(inviter, "foo@bar.com", "ws-1"))).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        ids.push(r.body["id"].as_str().unwrap().to_owned());
    }
    let (eves, anns) = (ids[0].clone(), ids[1].clone());
    read_until(&s.vortex, &anns, "ann's invitation", |_| true).await;
    read_until(&s.vortex, &eves, "eve's invitation", |_| true).await;
    let ann =
        Vortex::new(&s.gateway.url, &s.env.key_with(&[Scope::InvitesRead, Scope::InvitesWrite], Some("ann")).await);

    assert_eq!(ann.get(&format!("/api/v1/invitations/{anns}")).await.status, StatusCode::OK);
    assert_vortex_error(&ann.get(&format!("/api/v1/invitations/{eves}")).await, StatusCode::NOT_FOUND, None);
    for path in [
        "/api/v1/invitations?targetType=email&targetValue=foo%40bar.com",
        "/api/v1/invitations/by-scope/workspace/ws-1",
    ] {
        let listed = ann.get(path).await;
        let ids: Vec<&str> =
            listed.body["invitations"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [anns.as_str()], "{path}");
    }

    let before = s.env.read_log().len();
    let as_eve = ann.call(Method::POST, "/api/v1/invitations", Some(&create_by("eve", "x@bar.com", "ws-1"))).await;
    assert_vortex_error(&as_eve, StatusCode::UNPROCESSABLE_ENTITY, Some("inviter.userId"));
    assert_vortex_error(
        &ann.call(Method::DELETE, &format!("/api/v1/invitations/{eves}"), None).await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert_vortex_error(
        &ann.call(Method::POST, &format!("/api/v1/invitations/{eves}/reinvite"), None).await,
        StatusCode::NOT_FOUND,
        None,
    );
    let accept = json!({ "invitationIds": [eves], "target": { "type": "email", "value": "foo@bar.com" } });
    assert_vortex_error(
        &ann.call(Method::POST, "/api/v1/invitations/accept", Some(&accept)).await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert_eq!(s.env.read_log().len(), before, "nothing was written");

    let revoked = ann.call(Method::DELETE, "/api/v1/invitations/by-scope/workspace/ws-1", None).await;
    assert_eq!(revoked.body, json!({ "revoked": [anns] }));
    let eve_now = read_until(&s.vortex, &eves, "eve's invitation", |_| true).await;
    assert_eq!(eve_now["deactivated"], false, "another inviter's invitation is left alone");
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_are_answered_while_the_read_models_lag_and_show_up_once_they_catch_up() {
    let mut s = system().await;
    s._services.projector.kill().await;
    let r = s.vortex.call(Method::POST, "/api/v1/invitations", Some(&create_body("foo@bar.com", None))).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(is_iso_time(&r.body["createdAt"]), "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_owned();
    let accept = json!({ "invitationIds": [id], "target": { "type": "email", "value": "foo@bar.com" } });
    let accepted = s.vortex.call(Method::POST, "/api/v1/invitations/accept", Some(&accept)).await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.body);
    assert_eq!(accepted.body, json!({ "id": id, "status": "accepted" }));
    let types: Vec<String> = events_of(&s.env, &id).iter().map(|e| e.event_type().to_owned()).collect();
    assert_eq!(types, ["InviteCreated", "InviteSent", "InviteAccepted"]);

    s._services.projector = rsvp_tests::Service::start("projector", &s.env, &[]).await;
    let body = read_until(&s.vortex, &id, "the accepted invitation", |b| b["status"] == "accepted").await;
    // Answered without the read model, the creation time is the id's own (minted just before).
    let time = |v: &Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
    assert!((time(&body["createdAt"]) - time(&r.body["createdAt"])).num_milliseconds().abs() < 1000);
}
