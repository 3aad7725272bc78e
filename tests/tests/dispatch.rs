//! Deliveries that really go out: the dispatcher over real Kafka and PostgreSQL, sending to a
//! real SMTP server (Mailpit, a process of the test's own) and to an SMS provider of the test's
//! own, recording each step through the command API; what a client sees through the query API.

use reqwest::StatusCode;
use rsvp_tests::mailpit::{Chaos, Mailpit, MailpitOptions};
use rsvp_tests::{dispatcher, eventually, Api, Receiver, Service, Services, TestEnv};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

struct System {
    env: TestEnv,
    services: Services,
    /// The command API.
    api: Api,
    /// The query API.
    reads: Api,
}

async fn system() -> System {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let api = Api::new(&services.command.url, &env.key);
    let reads = Api::new(&services.query.url, &env.key);
    System { env, services, api, reads }
}

impl System {
    async fn dispatcher(&self, mailpit: &Mailpit, extra: &[(&str, String)]) -> Service {
        let mut settings = vec![("RSVP_SMTP_URL", mailpit.smtp_url()), ("RSVP_SEND_RETRY_MS", "100".to_owned())];
        settings.extend(extra.iter().cloned());
        dispatcher(&self.env, &self.services.command, &settings).await
    }

    /// Creates an invite for `email` and sends it by email at once; returns its id.
    async fn invite(&self, email: &str, extra: Value) -> String {
        let mut body = json!({
            "inviter": { "id": "ann", "name": "Ann Inviter" },
            "targets": [{ "type": "email", "value": email, "name": "Bob" }],
            "message": "Come & see <b>this</b>",
            "send": "email",
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let created = self.api.post("/v1/invites", &body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        created.body["id"].as_str().unwrap().to_owned()
    }

    /// Waits until the invite's deliveries (as the query API shows them) all stand at a final
    /// status (or `sent`), and returns them.
    async fn deliveries_when(&self, id: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        eventually(Duration::from_secs(60), "the deliveries to move on", || async {
            let detail = self.reads.get(&format!("/v1/invites/{id}")).await;
            let deliveries = detail.body["deliveries"].as_array()?.clone();
            done(&deliveries).then_some(deliveries)
        })
        .await
    }
}

fn statuses(deliveries: &[Value]) -> Vec<&str> {
    deliveries.iter().map(|d| d["status"].as_str().unwrap()).collect()
}

fn history(delivery: &Value) -> Vec<&str> {
    delivery["history"].as_array().unwrap().iter().map(|h| h["status"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invite_sent_by_email_arrives_with_a_working_link_from_its_definition_s_template_and_shows_sent() {
    let system = system().await;
    let mailpit = Mailpit::start_default().await;
    let definition = system
        .api
        .post(
            "/v1/definitions",
            &json!({
                "handle": "welcome",
                "templates": {
                    "email_subject": "{{ inviter_name }} invites you to {{ company }}",
                    "email_text": "Hi {{ recipient_name }}, {{ message }}\nOpen: {{ link }}",
                },
            }),
        )
        .await;
    assert_eq!(definition.status, StatusCode::CREATED, "{}", definition.body);
    let _dispatcher = system.dispatcher(&mailpit, &[]).await;
    let id = system
        .invite(
            "bob@example.com",
            json!({ "definition_id": definition.body["id"], "template_variables": { "company": "Acme" } }),
        )
        .await;

    let deliveries = system.deliveries_when(&id, |d| statuses(d) == ["sent"]).await;
    assert_eq!(history(&deliveries[0]), ["queued", "sending", "sent"], "{deliveries:?}");
    let delivery_id = deliveries[0]["id"].as_str().unwrap();

    let arrived = mailpit.wait_for_count(1, Duration::from_secs(10)).await;
    let email = mailpit.message(&arrived[0].id).await;
    assert_eq!(email.subject, "Ann Inviter invites you to Acme");
    assert_eq!(email.to[0].address, "bob@example.com");
    assert_eq!(email.message_id.split('@').next(), Some(delivery_id), "the Message-ID is the delivery id");
    assert!(email.text.contains("Hi Bob, Come & see <b>this</b>"), "{}", email.text);
    assert!(email.html.contains("Come &amp; see &lt;b&gt;this&lt;"), "the built-in HTML part, escaped: {}", email.html);
    // The link in the email opens the invitation (and records the click).
    let link = email.text.split("Open: ").nth(1).unwrap().trim().to_owned();
    assert!(link.starts_with(&system.services.command.url), "{link}");
    let opened = reqwest::get(&link).await.unwrap();
    assert_eq!(opened.status(), StatusCode::OK);
    assert!(opened.text().await.unwrap().contains(&id));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_smtp_refusal_is_bounced_with_the_server_s_words_and_nothing_arrives() {
    let system = system().await;
    let mailpit =
        Mailpit::start(MailpitOptions { allowed_recipients: Some("@example\\.com$".into()), chaos: false }).await;
    let _dispatcher = system.dispatcher(&mailpit, &[]).await;
    let refused = system.invite("nobody@refused.example.org", json!({})).await;
    let taken = system.invite("bob@example.com", json!({})).await;

    let deliveries = system.deliveries_when(&refused, |d| statuses(d) == ["bounced"]).await;
    let bounce = deliveries[0]["history"].as_array().unwrap().last().unwrap().clone();
    assert!(bounce["detail"].as_str().unwrap().contains("550"), "{bounce}");
    system.deliveries_when(&taken, |d| statuses(d) == ["sent"]).await;
    let arrived = mailpit.messages().await;
    assert_eq!(arrived.len(), 1);
    assert_eq!(arrived[0].to[0].address, "bob@example.com");
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_smtp_errors_are_tried_again_until_the_server_takes_the_email() {
    let system = system().await;
    let mailpit = Mailpit::start(MailpitOptions { allowed_recipients: None, chaos: true }).await;
    mailpit.set_chaos(&Chaos::every_recipient(451)).await;
    let dispatcher = system.dispatcher(&mailpit, &[]).await;
    let id = system.invite("bob@example.com", json!({})).await;
    // Tried and refused for now: still `sending`, nothing arrived.
    eventually(Duration::from_secs(30), "a refused try", || async {
        dispatcher
            .metrics()
            .await
            .contains("rsvp_dispatcher_sends_total{channel=\"email\",outcome=\"retry\"}")
            .then_some(())
    })
    .await;
    assert_eq!(mailpit.count().await, 0);
    mailpit.set_chaos(&Chaos::off()).await;
    let deliveries = system.deliveries_when(&id, |d| statuses(d) == ["sent"]).await;
    assert_eq!(history(&deliveries[0]), ["queued", "sending", "sent"]);
    assert_eq!(mailpit.wait_for_count(1, Duration::from_secs(10)).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_send_that_keeps_failing_ends_failed_after_its_tries() {
    let system = system().await;
    let mailpit = Mailpit::start(MailpitOptions { allowed_recipients: None, chaos: true }).await;
    mailpit.set_chaos(&Chaos::every_recipient(451)).await;
    let _dispatcher = system.dispatcher(&mailpit, &[("RSVP_SEND_MAX_ATTEMPTS", "3".into())]).await;
    let id = system.invite("bob@example.com", json!({})).await;
    let deliveries = system.deliveries_when(&id, |d| statuses(d) == ["failed"]).await;
    let last = deliveries[0]["history"].as_array().unwrap().last().unwrap().clone();
    assert!(last["detail"].as_str().unwrap().contains("after 3 tries"), "{last}");
    assert_eq!(mailpit.count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resend_sends_a_second_email_and_resends_stop_at_the_definition_s_max_send_count() {
    let system = system().await;
    let mailpit = Mailpit::start_default().await;
    let definition = system.api.post("/v1/definitions", &json!({ "handle": "twice", "max_send_count": 2 })).await;
    let _dispatcher = system.dispatcher(&mailpit, &[]).await;
    let id = system.invite("bob@example.com", json!({ "definition_id": definition.body["id"] })).await;
    system.deliveries_when(&id, |d| statuses(d) == ["sent"]).await;
    let resent = system.api.post(&format!("/v1/invites/{id}/resend"), &json!({ "method": "email" })).await;
    assert_eq!(resent.status, StatusCode::ACCEPTED, "{}", resent.body);
    let deliveries = system.deliveries_when(&id, |d| statuses(d) == ["sent", "sent"]).await;
    let refused = system.api.post(&format!("/v1/invites/{id}/resend"), &json!({ "method": "email" })).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.body["code"], "max-sends-reached");

    let arrived = mailpit.wait_for_count(2, Duration::from_secs(10)).await;
    let mut ids: Vec<String> = arrived.iter().map(|m| m.message_id.split('@').next().unwrap().to_owned()).collect();
    let mut expected: Vec<String> = deliveries.iter().map(|d| d["id"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected, "one email per delivery");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mailpit.count().await, 2, "no third email");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_whose_invite_was_revoked_before_the_send_is_never_sent() {
    let system = system().await;
    let mailpit = Mailpit::start_default().await;
    // The invite is revoked before any dispatcher runs.
    let id = system.invite("bob@example.com", json!({})).await;
    let revoked = system.api.post(&format!("/v1/invites/{id}/revoke"), &json!({})).await;
    assert!(revoked.status.is_success(), "{}", revoked.body);
    let _dispatcher = system.dispatcher(&mailpit, &[]).await;
    let deliveries = system.deliveries_when(&id, |d| statuses(d) == ["failed"]).await;
    let last = deliveries[0]["history"].as_array().unwrap().last().unwrap().clone();
    assert!(last["detail"].as_str().unwrap().contains("closed"), "{last}");
    assert_eq!(mailpit.count().await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_template_is_refused_when_saved_naming_its_field() {
    let system = system().await;
    for (templates, field) in [
        (json!({ "email_html": "{% if %}" }), "templates.email_html"),
        (json!({ "sms_text": "{{ link | no_such_filter }}" }), "templates.sms_text"),
    ] {
        let refused = system.api.post("/v1/definitions", &json!({ "handle": "bad", "templates": templates })).await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", refused.body);
        assert_eq!(refused.body["field"], field, "{}", refused.body);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sms_goes_through_the_provider_with_the_link_and_its_refusals_and_outages_are_told_apart() {
    let system = system().await;
    let mailpit = Mailpit::start_default().await;
    let provider = Receiver::start().await;
    // First a refusal (422: the number cannot take SMS), then an outage (503), then fine.
    provider.answer_next(&[422, 503]);
    let _dispatcher = system
        .dispatcher(
            &mailpit,
            &[("RSVP_SMS_URL", format!("{}/sms", provider.url)), ("RSVP_SMS_TOKEN", "provider-token".into())],
        )
        .await;
    let phone = |n: &str| json!({ "inviter": { "id": "ann", "name": "Ann" }, "targets": [{ "type": "phone", "value": n }], "send": "sms" });
    let refused = system.api.post("/v1/invites", &phone("+15550000001")).await.body["id"].as_str().unwrap().to_owned();
    system.deliveries_when(&refused, |d| statuses(d) == ["bounced"]).await;
    let retried = system.api.post("/v1/invites", &phone("+15550000002")).await.body["id"].as_str().unwrap().to_owned();
    let deliveries = system.deliveries_when(&retried, |d| statuses(d) == ["sent"]).await;
    let requests = provider.received();
    let sent = requests.last().unwrap();
    assert_eq!(sent.header("authorization"), Some("Bearer provider-token"));
    let body = sent.json();
    assert_eq!(body["to"], "+15550000002");
    assert_eq!(body["id"], deliveries[0]["id"]);
    assert!(body["text"].as_str().unwrap().contains(&format!("{}/i/", system.services.command.url)), "{body}");
    assert_eq!(requests.iter().map(|r| r.answered).collect::<Vec<_>>(), [422, 503, 200]);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_smtp_server_holds_back_neither_writes_nor_projections() {
    let system = system().await;
    // No Mailpit at all: the dispatcher's SMTP server is a closed port.
    let _dispatcher = dispatcher(&system.env, &system.services.command, &[("RSVP_SEND_RETRY_MS", "100".into())]).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let created = system
            .api
            .post(
                "/v1/invites",
                &json!({ "inviter": { "id": "ann" }, "targets": [{ "type": "email", "value": format!("u{n}@example.com") }], "send": "email" }),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        // Projected, with its delivery begun and waiting for the server.
        system.deliveries_when(id, |d| statuses(d) == ["sending"] || statuses(d) == ["queued"]).await;
    }
    let revoked = system.api.post(&format!("/v1/invites/{}/revoke", ids[0]), &json!({})).await;
    assert!(revoked.status.is_success());
}

/// Kills the dispatcher (SIGKILL) three times while it sends 60 emails; every delivery ends
/// `sent`, every email arrived, and duplicates are at most one per kill (the one in flight).
#[tokio::test(flavor = "multi_thread")]
async fn a_dispatcher_killed_mid_stream_loses_no_send_and_duplicates_at_most_the_one_in_flight() {
    const INVITES: usize = 60;
    const KILLS: usize = 3;
    let system = system().await;
    let mailpit = Mailpit::start_default().await;
    let mut ids = Vec::new();
    for n in 0..INVITES {
        ids.push(system.invite(&format!("user{n}@example.com"), json!({})).await);
    }
    for _ in 0..KILLS {
        let mut dispatcher = system.dispatcher(&mailpit, &[]).await;
        // Let it send some, then kill it wherever it is.
        let before = mailpit.count().await;
        eventually(Duration::from_secs(60), "some emails to go out", || async {
            (mailpit.count().await >= before + 5).then_some(())
        })
        .await;
        dispatcher.kill().await;
    }
    let _last = system.dispatcher(&mailpit, &[]).await;
    for id in &ids {
        system.deliveries_when(id, |d| statuses(d) == ["sent"]).await;
    }
    let mut delivery_ids = Vec::new();
    for id in &ids {
        let detail = system.reads.get(&format!("/v1/invites/{id}")).await;
        delivery_ids.push(detail.body["deliveries"][0]["id"].as_str().unwrap().to_owned());
    }
    let arrived = mailpit.messages().await;
    let mut per_delivery: HashMap<String, usize> = HashMap::new();
    for m in &arrived {
        *per_delivery.entry(m.message_id.split('@').next().unwrap().to_owned()).or_default() += 1;
    }
    for d in &delivery_ids {
        assert!(per_delivery.contains_key(d), "delivery {d} never arrived");
    }
    let duplicates = arrived.len() - per_delivery.len();
    assert_eq!(per_delivery.len(), INVITES, "only the deliveries' emails");
    assert!(duplicates <= KILLS, "{duplicates} duplicates for {KILLS} kills");
    eprintln!("{} emails for {INVITES} deliveries over {KILLS} kills: {duplicates} duplicates", arrived.len());
}

/// A rolling deploy of the dispatcher: SIGTERM three times while it sends 60 emails. Each stop
/// ends the send in flight and records it, so every email arrives exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn a_dispatcher_stopped_with_sigterm_mid_stream_sends_every_email_exactly_once() {
    const INVITES: usize = 60;
    const STOPS: usize = 3;
    let system = system().await;
    let mailpit = Mailpit::start_default().await;
    let mut ids = Vec::new();
    for n in 0..INVITES {
        ids.push(system.invite(&format!("user{n}@example.com"), json!({})).await);
    }
    for _ in 0..STOPS {
        let mut dispatcher = system.dispatcher(&mailpit, &[]).await;
        let before = mailpit.count().await;
        eventually(Duration::from_secs(60), "some emails to go out", || async {
            (mailpit.count().await >= before + 5).then_some(())
        })
        .await;
        dispatcher.signal("TERM");
        eventually(Duration::from_secs(40), "the dispatcher to stop", || {
            let running = dispatcher.is_running();
            async move { (!running).then_some(()) }
        })
        .await;
        assert!(dispatcher.log_text().contains("dispatcher stopped"), "{}", dispatcher.log_text());
    }
    let _last = system.dispatcher(&mailpit, &[]).await;
    for id in &ids {
        system.deliveries_when(id, |d| statuses(d) == ["sent"]).await;
    }
    let arrived = mailpit.messages().await;
    let mut per_delivery: HashMap<String, usize> = HashMap::new();
    for m in &arrived {
        *per_delivery.entry(m.message_id.split('@').next().unwrap().to_owned()).or_default() += 1;
    }
    assert_eq!(per_delivery.len(), INVITES, "every delivery's email, and only those");
    let twice: Vec<_> = per_delivery.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once across {STOPS} graceful stops: {twice:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_internal_route_takes_the_dispatcher_s_token_only_and_the_gateway_never_forwards_it() {
    let system = system().await;
    let id = system.invite("bob@example.com", json!({})).await;
    let detail = system.deliveries_when(&id, |d| !d.is_empty()).await;
    let delivery = detail[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/internal/v1/deliveries/{delivery}/status");
    let report = json!({ "tenant_id": system.env.tenant.to_string(), "status": "sending" });
    let http = reqwest::Client::new();
    let url = format!("{}{path}", system.services.command.url);
    for token in [None, Some(system.env.key.as_str()), Some("rsvp-test-dispatcher-token0")] {
        let mut request = http.post(&url).json(&report);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        assert_eq!(request.send().await.unwrap().status(), StatusCode::UNAUTHORIZED, "{token:?}");
    }
    let taken = http.post(&url).bearer_auth(rsvp_tests::DISPATCHER_TOKEN).json(&report).send().await.unwrap();
    assert_eq!(taken.status(), StatusCode::OK);
    assert_eq!(taken.json::<Value>().await.unwrap()["changed"], true);
    let again = http.post(&url).bearer_auth(rsvp_tests::DISPATCHER_TOKEN).json(&report).send().await.unwrap();
    assert_eq!(again.json::<Value>().await.unwrap()["changed"], false, "a repeated step changes nothing");

    let gateway = rsvp_tests::Gateway::start(&system.services.command.url, &system.services.query.url).await;
    let through = http
        .post(format!("{}{path}", gateway.url))
        .bearer_auth(rsvp_tests::DISPATCHER_TOKEN)
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(through.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_s_sends_are_limited_to_its_rate_and_another_tenant_s_go_past_them() {
    let system = system().await;
    let mailpit = Mailpit::start_default().await;
    let (_, other_key) = system.env.other_tenant("tenant-b").await;
    let other = system.api.with_key(&other_key);
    // A burst of 4, then 2 a second: 12 emails of one tenant take 4 seconds at least.
    let _dispatcher = system.dispatcher(&mailpit, &[("RSVP_SEND_RATE_PER_TENANT", "2".into())]).await;
    for n in 0..12 {
        system.invite(&format!("a{n}@example.com"), json!({})).await;
    }
    for n in 0..2 {
        let created = other
            .post(
                "/v1/invites",
                &json!({ "inviter": { "id": "bea" }, "targets": [{ "type": "email", "value": format!("b{n}@example.com") }], "send": "email" }),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
    }
    let arrived = mailpit.wait_for_count(14, Duration::from_secs(60)).await;
    let at = |m: &rsvp_tests::mailpit::Summary| chrono::DateTime::parse_from_rfc3339(&m.created).unwrap();
    let (a, b): (Vec<_>, Vec<_>) = arrived.iter().partition(|m| m.to[0].address.starts_with('a'));
    let first_a = a.iter().map(|m| at(m)).min().unwrap();
    let last_a = a.iter().map(|m| at(m)).max().unwrap();
    let span = (last_a - first_a).num_milliseconds();
    assert!(span >= 3_000, "12 sends at 2/s after a burst of 4 took only {span} ms");
    assert!(b.iter().all(|m| at(m) < last_a), "the other tenant's emails did not wait behind the first's");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_dispatcher_stands_by_until_the_first_is_gone_and_no_email_goes_twice() {
    let system = system().await;
    let mailpit = Mailpit::start_default().await;
    let mut first = system.dispatcher(&mailpit, &[]).await;
    let settings = [
        ("RSVP_COMMAND_API_URL", system.services.command.url.clone()),
        ("RSVP_PUBLIC_URL", system.services.command.url.clone()),
        ("RSVP_SMTP_URL", mailpit.smtp_url()),
    ];
    let second = Service::start("dispatcher", &system.env, &settings).await;
    let mut ids = Vec::new();
    for n in 0..10 {
        ids.push(system.invite(&format!("u{n}@example.com"), json!({})).await);
    }
    for id in &ids {
        system.deliveries_when(id, |d| statuses(d) == ["sent"]).await;
    }
    let ready = reqwest::get(format!("{}/readyz", second.url)).await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "the second one stands by");
    first.kill().await;
    second.wait_ready(Duration::from_secs(30)).await;
    let later = system.invite("later@example.com", json!({})).await;
    system.deliveries_when(&later, |d| statuses(d) == ["sent"]).await;
    let arrived = mailpit.wait_for_count(11, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mailpit.count().await, 11, "each email once: {}", arrived.len());
}
