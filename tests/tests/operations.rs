//! What an operator follows and relies on: one request id from the HTTP request through the
//! decision, the Kafka headers and the projector's line for the event.

use reqwest::StatusCode;
use rsvp_tests::{eventually, Service, TestEnv};
use serde_json::{json, Value};
use std::time::Duration;

/// The JSON log lines of a service (`RSVP_LOG_FORMAT=json`).
fn json_lines(service: &Service) -> Vec<Value> {
    service.log_text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Whether a JSON log line is in a span (its own or an enclosing one) with `field` = `value`.
fn in_span_with(line: &Value, field: &str, value: &str) -> bool {
    let spans = line["spans"].as_array().into_iter().flatten().chain(std::iter::once(&line["span"]));
    spans.into_iter().any(|s| s[field].as_str() == Some(value))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_id_is_followed_from_http_through_the_kafka_headers_to_the_projectors_line() {
    let env = TestEnv::new().await;
    let logs =
        [("RSVP_LOG_FORMAT", "json".to_owned()), ("RUST_LOG", "info,command_api=debug,projector=debug".to_owned())];
    let projector = Service::start("projector", &env, &logs).await;
    let command = Service::start("command-api", &env, &logs).await;
    command.wait_ready(Duration::from_secs(60)).await;
    let http = reqwest::Client::new();
    let create = |id: Option<uuid::Uuid>| {
        let mut request = http
            .post(format!("{}/v1/invites", command.url))
            .bearer_auth(&env.key)
            .json(&json!({ "inviter": { "id": "u" }, "targets": [{ "type": "email", "value": "t@example.com" }] }));
        if let Some(id) = id {
            request = request.header("X-Request-Id", id.to_string());
        }
        request.send()
    };

    // Given by the client, or made by the API when absent: either way echoed in the response.
    let given = uuid::Uuid::now_v7();
    let first = create(Some(given)).await.unwrap();
    assert_eq!(first.status(), StatusCode::CREATED);
    assert_eq!(first.headers()["x-request-id"].to_str().unwrap(), given.to_string());
    let second = create(None).await.unwrap();
    assert_eq!(second.status(), StatusCode::CREATED);
    let made: uuid::Uuid = second.headers()["x-request-id"].to_str().unwrap().parse().expect("a UUID");
    assert_ne!(made, given);

    for id in [given, made] {
        let id_text = id.to_string();
        // The Kafka record carries it (the `ce_correlationid` header).
        let log = env.read_log();
        assert!(log.iter().any(|e| e.meta.correlation_id == Some(id)), "no event of the log has correlation id {id}");
        // The command API's lines of the request: the access line, the decision, the commit.
        let lines = json_lines(&command);
        for message in ["decided", "committed to the log"] {
            assert!(
                lines.iter().any(|l| l["fields"]["message"] == message && in_span_with(l, "request_id", &id_text)),
                "no `{message}` line in the span of request {id}: {}",
                command.log_text()
            );
        }
        assert!(
            lines.iter().any(|l| l["target"] == "rsvp::http" && in_span_with(l, "request_id", &id_text)),
            "no access line for request {id}"
        );
        // The projector's line for the event, once it is in PostgreSQL.
        eventually(Duration::from_secs(30), "the projector's line for the event", || async {
            json_lines(&projector)
                .iter()
                .any(|l| l["fields"]["message"] == "projected" && l["fields"]["correlation_id"] == id_text.as_str())
                .then_some(())
        })
        .await;
    }
}

/// A rolling restart under load: the command API's leader and then the projector get SIGTERM
/// while clients keep writing (to whichever instance answers, as behind a load balancer). Every
/// acknowledged create is in the log and, once the new projector caught up, in the read model,
/// once.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_to_each_service_under_load_loses_no_acknowledged_write() {
    let env = TestEnv::new().await;
    let mut projector = Service::start("projector", &env, &[]).await;
    let mut leader = Service::start("command-api", &env, &[]).await;
    leader.wait_ready(Duration::from_secs(60)).await;
    let standby = Service::start("command-api", &env, &[]).await;
    let urls = std::sync::Arc::new(std::sync::Mutex::new(vec![leader.url.clone(), standby.url.clone()]));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (urls, stop, key) = (urls.clone(), stop.clone(), env.key.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
            let (mut acknowledged, mut refused, mut i) = (Vec::new(), 0, 0usize);
            // Bounded: at most 5,000 attempts per client, and the test stops it long before.
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 5_000 {
                i += 1;
                let url = { let u = urls.lock().unwrap(); u[i % u.len()].clone() };
                let sent = http
                    .post(format!("{url}/v1/invites"))
                    .bearer_auth(&key)
                    .json(&json!({ "inviter": { "id": "u" }, "targets": [{ "type": "email", "value": format!("c{c}-{i}@example.com") }] }))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == StatusCode::CREATED => {
                        let body: Value = r.json().await.unwrap();
                        acknowledged.push(body["id"].as_str().unwrap().to_owned());
                    }
                    // 503 from a standby or a stopping instance, or a closed connection: retried
                    // elsewhere, as a client behind a load balancer does.
                    _ => {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            (acknowledged, refused)
        }));
    }
    let exited = |service: &mut Service| service.is_running();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The leader stops: it answers what it took, hands the lease over, and exits.
    leader.signal("TERM");
    eventually(Duration::from_secs(30), "the old leader to exit", || {
        let running = exited(&mut leader);
        async move { (!running).then_some(()) }
    })
    .await;
    standby.wait_ready(Duration::from_secs(30)).await;
    let successor = Service::start("command-api", &env, &[]).await;
    urls.lock().unwrap()[0] = successor.url.clone();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // The projector stops after the batch it is applying, and a new one goes on from there.
    projector.signal("TERM");
    eventually(Duration::from_secs(30), "the projector to exit", || {
        let running = exited(&mut projector);
        async move { (!running).then_some(()) }
    })
    .await;
    assert!(projector.log_text().contains("projector stopped"), "{}", projector.log_text());
    let _projector = Service::start("projector", &env, &[]).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);

    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for c in clients {
        let (a, r) = c.await.unwrap();
        acknowledged.extend(a);
        refused += r;
    }
    assert!(acknowledged.len() > 20, "too little load to show anything: {}", acknowledged.len());
    let in_log: std::collections::HashSet<String> =
        env.read_log().iter().filter_map(|e| e.invite_event().map(|(id, _)| id.to_string())).collect();
    let lost: Vec<_> = acknowledged.iter().filter(|id| !in_log.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged but not in the log: {lost:?}");
    let projected: i64 = eventually(Duration::from_secs(60), "the new projector to catch up", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM invites").fetch_one(&env.pool).await.unwrap();
        (n as usize >= in_log.len()).then_some(n)
    })
    .await;
    assert_eq!(projected as usize, in_log.len(), "every invite of the log in the read model, once");
    println!("acknowledged {}, refused and retried {refused}, in the log {}", acknowledged.len(), in_log.len());
}

/// `RSVP_ENV=production` refuses a secret left at its local default (the query API's cursor
/// secret had one that was used silently), and starts once a real one is given.
#[tokio::test(flavor = "multi_thread")]
async fn production_mode_refuses_to_start_with_a_default_secret() {
    let env = TestEnv::new().await;
    let (code, _, stderr) =
        rsvp_tests::services::run_command_split("query-api", &env, &["--environment", "production", "--port", "0"])
            .await;
    assert_ne!(code, 0, "started with the default cursor secret: {stderr}");
    assert!(stderr.contains("RSVP_CURSOR_SECRET is its local default"), "{stderr}");
    let (code, _, stderr) = rsvp_tests::services::run_command_split(
        "query-api",
        &env,
        &[
            "--environment",
            "production",
            "--port",
            "0",
            "--cursor-secret",
            "REPLACE-ME-with-a-random-secret-of-32-characters",
        ],
    )
    .await;
    assert_ne!(code, 0, "started with a placeholder: {stderr}");
    assert!(stderr.contains("RSVP_CURSOR_SECRET is a placeholder"), "{stderr}");

    let secret = "a-real-secret-of-at-least-32-characters-0123456789";
    let query =
        Service::start("query-api", &env, &[("RSVP_ENV", "production".into()), ("RSVP_CURSOR_SECRET", secret.into())])
            .await;
    query.wait_ready(Duration::from_secs(30)).await;
}

/// With `RSVP_OTLP_ENDPOINT` set, the spans go to that collector over OTLP/HTTP: the request's
/// span carries its id, and the writer's decision is a span of the same trace. A clean stop
/// flushes what was not sent yet.
#[tokio::test(flavor = "multi_thread")]
async fn with_an_otlp_endpoint_the_request_and_its_decision_are_exported_as_one_trace() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message as _;
    let env = TestEnv::new().await;
    let collector = rsvp_tests::receiver::Receiver::start().await;
    let mut command = Service::start("command-api", &env, &[("RSVP_OTLP_ENDPOINT", collector.url.clone())]).await;
    command.wait_ready(Duration::from_secs(60)).await;
    let id = uuid::Uuid::now_v7();
    let created = reqwest::Client::new()
        .post(format!("{}/v1/invites", command.url))
        .bearer_auth(&env.key)
        .header("X-Request-Id", id.to_string())
        .json(&json!({ "inviter": { "id": "u" }, "targets": [{ "type": "email", "value": "t@example.com" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    command.signal("TERM");
    eventually(Duration::from_secs(30), "the command API to stop", || {
        let running = command.is_running();
        async move { (!running).then_some(()) }
    })
    .await;

    let spans: Vec<_> = collector
        .received()
        .iter()
        .filter(|r| r.path == "/v1/traces")
        .flat_map(|r| {
            ExportTraceServiceRequest::decode(r.body.as_slice()).expect("an OTLP protobuf body").resource_spans
        })
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect();
    let attribute = |span: &opentelemetry_proto::tonic::trace::v1::Span, key: &str| {
        span.attributes.iter().find(|a| a.key == key).and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            Any::StringValue(s) => Some(s.clone()),
            _ => None,
        })
    };
    let request = spans
        .iter()
        .find(|s| s.name == "request" && attribute(s, "request_id").as_deref() == Some(id.to_string().as_str()))
        .unwrap_or_else(|| {
            panic!("no request span with request_id {id} among {:?}", spans.iter().map(|s| &s.name).collect::<Vec<_>>())
        });
    let decide = spans.iter().find(|s| s.name == "decide" && s.trace_id == request.trace_id);
    let decide = decide.expect("the decision is a span of the request's trace");
    assert_eq!(decide.parent_span_id, request.span_id, "the decision is the request's child");
    assert_eq!(attribute(decide, "command").as_deref(), Some("create"));
}
