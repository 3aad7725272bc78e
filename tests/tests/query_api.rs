//! The query API over the real pipeline (command API → Kafka → projector → PostgreSQL): filters,
//! keyset pagination both ways across inserts, detail, history, read-your-writes, statistics,
//! bad parameters, tenant isolation, and its OpenAPI document.

use reqwest::StatusCode;
use rsvp_tests::{eventually, Api, Services, TestEnv};
use serde_json::{json, Value};
use service_kit::Scope;
use std::collections::BTreeSet;
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

impl World {
    async fn create(&self, body: Value) -> (String, u64) {
        let r = self.command.post("/v1/invites", &body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        (r.body["id"].as_str().unwrap().to_owned(), r.body["version"].as_u64().unwrap())
    }

    /// Waits until the query API lists `n` invites of the tenant.
    async fn settle(&self, n: usize) {
        eventually(Duration::from_secs(30), &format!("{n} invites to be projected"), || async {
            let r = self.query.get("/v1/invites?limit=200").await;
            (r.body["data"].as_array()?.len() == n).then_some(())
        })
        .await;
    }

    /// Follows a `next`/`previous` URL (or a path) and returns the page.
    async fn page(&self, url: &str) -> Value {
        let r = self.query.get(url.trim_start_matches(&self.query.base)).await;
        assert_eq!(r.status, StatusCode::OK, "{url}: {}", r.body);
        r.body
    }

    async fn ids(&self, query: &str) -> BTreeSet<String> {
        let r = self.query.get(&format!("/v1/invites?{query}")).await;
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
        r.body["data"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
    }
}

/// The ids of a list page, in order.
fn page_ids(page: &Value) -> Vec<String> {
    page["data"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_owned()).collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).clone()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_filter_and_the_combinations_dashboards_use_select_the_right_invites() {
    let w = world().await;
    let (a, _) = w
        .create(json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": "Bob@Example.com" }],
            "scopes": [{ "type": "workspace", "id": "ws-1" }], "reply_to": ["help@example.com"], "send": "email" }))
        .await;
    let (b, _) = w
        .create(json!({ "inviter": { "id": "bea" }, "targets": [{ "type": "email", "value": "eve@example.com" }],
            "scopes": [{ "type": "workspace", "id": "ws-2" }] }))
        .await;
    w.command.post(&format!("/v1/invites/{b}/revoke"), &json!({})).await;
    let (c, _) = w
        .create(json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "phone", "value": "+1 212 555 5555" }] }))
        .await;
    w.settle(3).await;
    eventually(Duration::from_secs(30), "the revoke to be projected", || async {
        (w.ids("status=revoked").await.len() == 1).then_some(())
    })
    .await;

    assert_eq!(w.ids("status=queued").await, set(&[&a]));
    assert_eq!(w.ids("status=queued,revoked").await, set(&[&a, &b]));
    assert_eq!(w.ids("status=queued&status=revoked").await, set(&[&a, &b]), "a repeated parameter");
    assert_eq!(w.ids("target=bob@EXAMPLE.com").await, set(&[&a]));
    assert_eq!(w.ids("target=%2B1%20(212)%20555-5555").await, set(&[&c]));
    assert_eq!(w.ids("reply_to=HELP@example.com").await, set(&[&a]));
    assert_eq!(w.ids("inviter=bea").await, set(&[&b]));
    assert_eq!(w.ids("scope_type=workspace&scope_id=ws-2").await, set(&[&b]));
    assert_eq!(w.ids("scope_type=workspace").await, set(&[&a, &b]), "a scope type alone");
    assert_eq!(w.ids("scope_id=ws-1").await, set(&[&a]), "a scope id alone");
    assert!(w.ids("scope_type=team&scope_id=ws-1").await.is_empty());
    assert_eq!(w.ids("inviter=ann&status=created").await, set(&[&c]));
    assert_eq!(w.ids("expired=false").await, set(&[&a, &b, &c]));
    assert!(w.ids("expired=true").await.is_empty());
    assert!(w.ids("created_after=2999-01-01T00:00:00Z").await.is_empty());
    assert_eq!(w.ids("created_before=2999-01-01T00:00:00Z&inviter=ann").await, set(&[&a, &c]));
    let definition = uuid::Uuid::now_v7();
    assert!(w.ids(&format!("definition={definition}")).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_definition_creation_time_and_expiry_filters_select_real_invites() {
    let w = world().await;
    let definition = w.command.post("/v1/definitions", &json!({ "handle": "spring" })).await;
    assert_eq!(definition.status, StatusCode::CREATED, "{}", definition.body);
    let definition = definition.body["id"].as_str().unwrap().to_owned();
    let email = |v: &str| json!([{ "type": "email", "value": v }]);
    let (early, _) = w.create(json!({ "inviter": { "id": "ann" }, "targets": email("a@example.com") })).await;
    w.settle(1).await;
    let split = w.query.get(&format!("/v1/invites/{early}")).await.body["created_at"].as_str().unwrap().to_owned();
    let split = chrono::DateTime::parse_from_rfc3339(&split).unwrap() + chrono::Duration::milliseconds(1);
    let split = split.to_utc().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    // Created strictly after the split: the clock of the command API has moved on by then.
    while chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true) <= split {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (campaign, _) = w
        .create(json!({ "inviter": { "id": "ann" }, "targets": email("b@example.com"), "definition_id": definition }))
        .await;
    let expires_at = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let (short, _) = w
        .create(json!({ "inviter": { "id": "bea" }, "targets": email("c@example.com"), "expires_at": expires_at }))
        .await;
    w.settle(3).await;

    assert_eq!(w.ids(&format!("definition={definition}")).await, set(&[&campaign]));
    assert_eq!(w.ids(&format!("created_before={split}")).await, set(&[&early]));
    assert_eq!(w.ids(&format!("created_after={split}")).await, set(&[&campaign, &short]));
    assert_eq!(w.ids(&format!("created_after={split}&inviter=bea")).await, set(&[&short]));
    assert_eq!(w.ids(&format!("created_after={split}&definition={definition}")).await, set(&[&campaign]));
    // Expiry is a function of time: nothing was written when the moment passed.
    eventually(Duration::from_secs(30), "the short invite to read as expired", || async {
        (w.ids("expired=true").await == set(&[&short])).then_some(())
    })
    .await;
    assert_eq!(w.ids("expired=false").await, set(&[&early, &campaign]));
    assert_eq!(w.ids("status=expired").await, set(&[&short]));
    assert_eq!(w.ids("expired=true&inviter=ann").await, set(&[]));
}

#[tokio::test(flavor = "multi_thread")]
async fn paging_oldest_first_walks_forward_and_back_to_the_first_page() {
    let w = world().await;
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(w.create(json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": format!("o{i}@example.com") }] })).await.0);
    }
    w.settle(5).await;
    let ids = page_ids;
    let first = w.page("/v1/invites?order=oldest&limit=2").await;
    let second = w.page(first["next"].as_str().unwrap()).await;
    let third = w.page(second["next"].as_str().unwrap()).await;
    assert!(third["next"].is_null());
    assert_eq!([ids(&first), ids(&second), ids(&third)].concat(), created, "creation order, each once");
    let back = w.page(third["previous"].as_str().unwrap()).await;
    assert_eq!(ids(&back), ids(&second));
    let front = w.page(back["previous"].as_str().unwrap()).await;
    assert_eq!(ids(&front), ids(&first));
    assert!(front["previous"].is_null(), "the first page has no previous: {front}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_bad_parameter_is_a_400_problem_naming_it() {
    let w = world().await;
    for (query, field) in [
        ("status=nope", "status"),
        ("limit=201", "limit"),
        ("limit=0", "limit"),
        ("limit=ten", "limit"),
        ("colour=red", "colour"),
        ("created_after=yesterday", "created_after"),
        ("definition=42", "definition"),
        ("expired=maybe", "expired"),
        ("order=sideways", "order"),
        ("scope_type=", "scope_type"),
        ("target=%00", "target"),
        ("cursor=not-a-cursor", "cursor"),
    ] {
        let r = w.query.get(&format!("/v1/invites?{query}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(r.header("content-type"), Some("application/problem+json"));
        assert_eq!(r.body["field"], field, "{query}: {}", r.body);
    }
    assert_eq!(w.query.get("/v1/invites/not-a-uuid").await.body["field"], "id");
    assert_eq!(w.query.get("/v1/stats?bucket=week").await.body["field"], "bucket");
    let id = uuid::Uuid::now_v7();
    assert_eq!(w.query.get(&format!("/v1/invites/{id}/events?limit=5")).await.body["field"], "limit");
}

#[tokio::test(flavor = "multi_thread")]
async fn paging_both_ways_while_invites_arrive_never_repeats_or_skips_one() {
    let w = world().await;
    let mut before = BTreeSet::new();
    for i in 0..7 {
        before.insert(w.create(json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": format!("p{i}@example.com") }] })).await.0);
    }
    w.settle(7).await;
    let first = w.page("/v1/invites?limit=3").await;
    assert!(first["previous"].is_null());
    // New invites arrive while the client pages.
    for i in 0..2 {
        w.create(json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": format!("new{i}@example.com") }] })).await;
    }
    w.settle(9).await;
    let second = w.page(first["next"].as_str().unwrap()).await;
    let third = w.page(second["next"].as_str().unwrap()).await;
    assert!(third["next"].is_null(), "the end: {third}");
    let ids = page_ids;
    let seen: Vec<String> = [ids(&first), ids(&second), ids(&third)].concat();
    assert_eq!(seen.len(), 7, "no repeats: {seen:?}");
    assert_eq!(
        seen.iter().cloned().collect::<BTreeSet<_>>(),
        before,
        "no skips, and nothing newer than the first page"
    );
    // And back.
    let back = w.page(third["previous"].as_str().unwrap()).await;
    assert_eq!(ids(&back), ids(&second));
    let oldest = w.query.get("/v1/invites?order=oldest&limit=200").await;
    let oldest: Vec<String> = ids(&oldest.body);
    let newest: Vec<String> = ids(&w.query.get("/v1/invites?limit=200").await.body);
    assert_eq!(oldest.iter().rev().cloned().collect::<Vec<_>>(), newest);
    // A cursor from one query does not fit another: well-formed, so 422 rather than 400.
    let cursor = first["next"].as_str().unwrap().split("cursor=").nth(1).unwrap().to_owned();
    let r = w.query.get(&format!("/v1/invites?limit=3&order=oldest&cursor={cursor}")).await;
    assert_eq!((r.status, r.body["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("cursor")));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_detail_waits_for_the_version_the_command_api_gave_and_carries_the_whole_story() {
    let w = world().await;
    let (id, _) = w
        .create(json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": "bob@example.com" }] }))
        .await;
    w.command.post(&format!("/v1/invites/{id}/send"), &json!({})).await;
    let delivery = w
        .env
        .read_log()
        .into_iter()
        .find_map(|e| match e.invite_event() {
            Some((_, events::InviteEvent::Sent(s))) => Some(s.delivery_id),
            _ => None,
        })
        .unwrap();
    w.command.post(&format!("/v1/deliveries/{delivery}/events"), &json!({ "status": "delivered" })).await;
    let accepted = w.command.post(&format!("/v1/invites/{id}/accept"), &json!({ "accepted_by": "user-9" })).await;
    let version = accepted.body["version"].as_u64().unwrap();

    // Straight after the write: the read waits for the projection instead of answering stale.
    let r = w.query.get(&format!("/v1/invites/{id}?min_version={version}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.header("etag"), Some(format!("\"{version}\"").as_str()));
    assert_eq!(r.body["status"], "accepted");
    assert_eq!(r.body["accepts"][0]["accepted_by"], "user-9");
    let history: Vec<&str> =
        r.body["deliveries"][0]["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect();
    assert_eq!(history, ["queued", "delivered"]);
    assert_eq!(r.body["deliveries"][0]["status"], "delivered");

    let never =
        w.query.call(reqwest::Method::GET, &format!("/v1/invites/{id}"), None, &[("x-min-version", "99")]).await;
    assert_eq!(never.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(never.header("retry-after"), Some("1"));
    let never = w.query.get(&format!("/v1/invites/{id}?min_version=99")).await;
    assert_eq!((never.status, never.body["field"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("min_version")));
    let bad = w.query.get(&format!("/v1/invites/{id}?min_version=soon")).await;
    assert_eq!((bad.status, bad.body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("min_version")));

    let counters = &r.body["counters"];
    assert_eq!(
        (&counters["sends"], &counters["deliveries"], &counters["accepts"], &counters["views"]),
        (&json!(1), &json!(1), &json!(1), &json!(0)),
        "{}",
        r.body
    );
    for stamp in ["first_sent_at", "delivered_at", "accepted_at"] {
        assert!(r.body["timestamps"][stamp].is_string(), "{stamp}: {}", r.body);
    }
    assert!(r.body["timestamps"]["revoked_at"].is_null());
    let empty = (&r.body["scopes"], &r.body["reply_to"], &r.body["metadata"], &r.body["template_variables"]);
    assert_eq!(empty, (&json!([]), &json!([]), &json!({}), &json!({})), "empty, never null");

    let events = w.query.get(&format!("/v1/invites/{id}/events")).await;
    let types: Vec<&str> =
        events.body["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["InviteCreated", "InviteSent", "DeliveryStatusChanged", "InviteAccepted"]);
    let versions: Vec<u64> =
        events.body["data"].as_array().unwrap().iter().map(|e| e["version"].as_u64().unwrap()).collect();
    assert_eq!(versions, [1, 2, 3, 4]);
    assert_eq!(events.body["data"][0]["actor"]["kind"], "api_key");
    assert!(events.body["data"][0]["correlation_id"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn statistics_count_by_status_and_follow_the_funnel() {
    let w = world().await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(w.create(json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": format!("s{i}@example.com") }] })).await.0);
    }
    w.command.post(&format!("/v1/invites/{}/send", ids[0]), &json!({})).await;
    w.command.post(&format!("/v1/invites/{}/send", ids[1]), &json!({})).await;
    let delivery_of = |invite: &String| {
        w.env
            .read_log()
            .into_iter()
            .find_map(|e| match e.invite_event() {
                Some((id, events::InviteEvent::Sent(s))) if id.to_string() == *invite => Some(s.delivery_id),
                _ => None,
            })
            .unwrap()
    };
    let r = w
        .command
        .post(&format!("/v1/deliveries/{}/events", delivery_of(&ids[0])), &json!({ "status": "delivered" }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    // The provider reports the open alone: it arrived all the same.
    let r = w
        .command
        .post(&format!("/v1/deliveries/{}/events", delivery_of(&ids[1])), &json!({ "status": "opened" }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    for kind in ["view", "click"] {
        let r = w.command.post(&format!("/v1/invites/{}/engagements", ids[0]), &json!({ "kind": kind })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    let done = w.command.post(&format!("/v1/invites/{}/accept", ids[1]), &json!({})).await;
    w.command.post(&format!("/v1/invites/{}/revoke", ids[3]), &json!({})).await;
    let (other, _) = w
        .create(json!({ "inviter": { "id": "bea" }, "targets": [{ "type": "email", "value": "t@example.com" }],
            "scopes": [{ "type": "team", "id": "t-9" }] }))
        .await;
    w.settle(5).await;
    w.query.get(&format!("/v1/invites/{}?min_version={}", ids[1], done.body["version"])).await;
    let stats = eventually(Duration::from_secs(30), "the revoke in the stats", || async {
        let r = w.query.get("/v1/stats?bucket=hour").await;
        (r.body["by_status"]["revoked"] == 1).then_some(r.body)
    })
    .await;
    assert_eq!(stats["by_status"], json!({ "created": 2, "opened": 1, "accepted": 1, "revoked": 1 }));
    assert_eq!(
        stats["funnel"],
        json!({ "created": 5, "sent": 2, "delivered": 2, "viewed": 2, "clicked": 1, "accepted": 1 })
    );
    assert_eq!(stats["bucket"], "hour");
    let buckets = stats["buckets"].as_array().unwrap();
    assert_eq!(buckets.iter().map(|b| b["created"].as_i64().unwrap()).sum::<i64>(), 5);
    assert_eq!(buckets.iter().map(|b| b["clicked"].as_i64().unwrap()).sum::<i64>(), 1);
    let hour = chrono::Utc::now().format("%Y-%m-%dT%H:00:00").to_string();
    assert!(buckets.iter().any(|b| b["start"].as_str().unwrap().starts_with(&hour)), "UTC hours: {buckets:?}");
    let days = w.query.get("/v1/stats?bucket=day").await.body;
    let today = chrono::Utc::now().format("%Y-%m-%dT00:00:00").to_string();
    assert!(days["buckets"][0]["start"].as_str().unwrap().starts_with(&today), "UTC days: {days}");
    // The dashboard filters narrow the statistics as they narrow the list.
    let bea = w.query.get("/v1/stats?inviter=bea").await.body;
    assert_eq!(bea["funnel"]["created"], 1, "{bea}");
    let team = w.query.get("/v1/stats?scope_type=team&scope_id=t-9").await.body;
    assert_eq!((team["funnel"]["created"].as_i64(), team["by_status"].clone()), (Some(1), json!({ "created": 1 })));
    let opened = w.query.get("/v1/stats?status=opened").await.body;
    assert_eq!(
        opened["funnel"],
        json!({ "created": 1, "sent": 1, "delivered": 1, "viewed": 1, "clicked": 1, "accepted": 0 })
    );
    assert_eq!(w.ids("inviter=bea").await, set(&[&other]));
    let opened_only = w.query.get(&format!("/v1/invites/{}", ids[1])).await.body;
    assert_eq!(opened_only["counters"]["deliveries"], 1, "{opened_only}");
    assert!(opened_only["timestamps"]["delivered_at"].is_string(), "{opened_only}");
    let none = w.query.get("/v1/stats?from=2999-01-01T00:00:00Z").await;
    assert_eq!(none.body["funnel"]["created"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn reads_are_scoped_to_the_tenant_and_need_the_read_scope() {
    let w = world().await;
    let (id, _) = w
        .create(json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": "bob@example.com" }] }))
        .await;
    w.settle(1).await;
    let (_, key_b) = w.env.other_tenant("tenant-b").await;
    let b = w.query.with_key(&key_b);
    assert_eq!(b.get(&format!("/v1/invites/{id}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(b.get(&format!("/v1/invites/{id}/events")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(b.get("/v1/invites").await.body["data"], json!([]));
    assert_eq!(b.get("/v1/stats").await.body["funnel"]["created"], 0);
    let writer_only = w.query.with_key(&w.env.key_with(&[Scope::InvitesWrite], None).await);
    for path in [
        "/v1/invites".to_owned(),
        format!("/v1/invites/{id}"),
        format!("/v1/invites/{id}/events"),
        "/v1/stats".to_owned(),
    ] {
        assert_eq!(writer_only.get(&path).await.status, StatusCode::FORBIDDEN, "{path}");
    }
    let inviter = w.query.with_key(&w.env.key_with(&[Scope::InvitesRead], Some("someone-else")).await);
    assert_eq!(inviter.get(&format!("/v1/invites/{id}")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_read_answers_with_what_its_schema_requires() {
    let w = world().await;
    let (id, _) = w
        .create(json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": "bob@example.com" }] }))
        .await;
    // A delivery and an accept, so the nested lists have items to check.
    w.command.post(&format!("/v1/invites/{id}/send"), &json!({})).await;
    let accepted = w.command.post(&format!("/v1/invites/{id}/accept"), &json!({})).await;
    w.query.get(&format!("/v1/invites/{id}?min_version={}", accepted.body["version"])).await;
    let spec = w.query.get("/openapi.json").await.body;
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().unwrap();
    assert!(paths.len() >= 8);
    let mut checked = 0;
    for (path, item) in paths {
        assert!(item.get("get").is_some(), "{path}: reads only");
        // The credential the operation documents: a tenant key, or the operator's metrics token.
        let reader = match item["get"]["security"][0].get("metricsToken") {
            Some(_) => w.query.with_key(rsvp_tests::METRICS_TOKEN),
            None => w.query.clone(),
        };
        let r = reader.get(&path.replace("{id}", &id)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        let schema = &item["get"]["responses"]["200"]["content"]["application/json"]["schema"];
        if !schema.is_null() {
            conforms(&spec, schema, &r.body, path);
            checked += 1;
        }
    }
    assert_eq!(checked, 4, "the list, the detail, the history and the statistics have schemas");
}

/// `value` has every property its schema requires, through `$ref`, `allOf`, nested objects and
/// array items.
fn conforms(spec: &Value, schema: &Value, value: &Value, at: &str) {
    if let Some(name) = schema["$ref"].as_str() {
        let name = name.trim_start_matches("#/components/schemas/");
        let target = &spec["components"]["schemas"][name];
        assert!(target.is_object(), "{at}: no schema {name}");
        return conforms(spec, target, value, at);
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        conforms(spec, part, value, at);
    }
    for key in schema["required"].as_array().into_iter().flatten() {
        let key = key.as_str().unwrap();
        assert!(value.get(key).is_some(), "{at}: `{key}` is required but missing: {value}");
    }
    for (key, property) in schema["properties"].as_object().into_iter().flatten() {
        if let Some(v) = value.get(key).filter(|v| !v.is_null()) {
            conforms(spec, property, v, &format!("{at}.{key}"));
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, v) in values.iter().enumerate() {
            conforms(spec, items, v, &format!("{at}[{i}]"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_query_api_pool_plans_every_statement_with_its_own_values() {
    let env = TestEnv::new().await;
    let pool = service_kit::db::connect_for_reads(&env.database_url, 1).await.unwrap();
    let mode: String = sqlx::query_scalar("SHOW plan_cache_mode").fetch_one(&pool).await.unwrap();
    assert_eq!(mode, "force_custom_plan");
    let path: String = sqlx::query_scalar("SHOW search_path").fetch_one(&pool).await.unwrap();
    assert!(path.starts_with("read_model"), "{path}");
}

/// HTTP's HEAD (RFC 9110: every general-purpose server supports GET and HEAD): every read answers
/// it as it answers GET, status and headers (the ETag, the length of what GET would send), with
/// no body. The gateway sends HEAD to the query API; the command API's reads take it too, but not
/// the public link, whose GET records a click.
#[tokio::test(flavor = "multi_thread")]
async fn every_read_answers_head_as_it_answers_get_without_a_body() {
    let w = world().await;
    let id = w.command.post("/v1/invites", &rsvp_tests::invite_for("bob@example.com")).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually(Duration::from_secs(10), "the invite projected", || async {
        (w.query.get(&format!("/v1/invites/{id}")).await.status == StatusCode::OK).then_some(())
    })
    .await;
    let head = reqwest::Method::HEAD;
    for (api, path) in [
        (&w.query, format!("/v1/invites/{id}")),
        (&w.query, "/v1/invites?limit=5".to_owned()),
        (&w.query, format!("/v1/invites/{id}/events")),
        (&w.query, "/v1/stats".to_owned()),
        (&w.query, "/healthz".to_owned()),
        (&w.command, "/v1/definitions".to_owned()),
        (&w.command, "/healthz".to_owned()),
    ] {
        let get = api.get(&path).await;
        let r = api.call(head.clone(), &path, None, &[]).await;
        assert_eq!(r.status, get.status, "HEAD {path}: {}", r.body);
        assert_eq!(r.body, Value::String(String::new()), "HEAD {path} sent a body");
        assert_eq!(r.header("etag"), get.header("etag"), "HEAD {path}");
        assert_eq!(r.header("content-type"), get.header("content-type"), "HEAD {path}");
    }
    let missing = w.query.call(head.clone(), "/v1/invites/00000000-0000-0000-0000-000000000000", None, &[]).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}
