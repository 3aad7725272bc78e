//! The writer's shards (issue 16, first steps): every event of a tenant goes to one partition, its
//! shard; a log written before shards keeps its layout; each shard's state is snapshotted, and a
//! writer taking over reads the snapshots and the log after them, and ignores a snapshot of
//! another format or one that does not match the log.

use reqwest::{Method, StatusCode};
use rsvp_tests::infra::placed;
use rsvp_tests::services::bin_path;
use rsvp_tests::{eventually, invite_for, partition_of, run_command, Api, Service, TestEnv};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

fn json_lines(service: &Service) -> Vec<Value> {
    service.log_text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// The fields of the service's last log line saying `message`.
fn last_line(service: &Service, message: &str) -> Option<Value> {
    json_lines(service).into_iter().rev().find(|l| l["fields"]["message"] == message).map(|l| l["fields"].clone())
}

/// Makes the test's topic one written before shards: an invite created on its stream's partition,
/// which is not its tenant's shard. Returns its creation.
async fn written_before_shards(env: &TestEnv, partitions: i32) -> events::Envelope {
    let shard = events::shard_of(env.tenant, partitions as usize);
    let old = loop {
        let e = rsvp_tests::load::created_envelope(env.tenant, chrono::Utc::now(), 0);
        if partition_of(&e.key(), partitions) != shard {
            break e;
        }
    };
    env.produce_event(&old).await;
    old
}

async fn create(api: &Api, target: &str) -> String {
    let created = api.post("/v1/invites", &invite_for(target)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body["id"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_of_a_tenant_goes_to_its_shard_and_a_log_written_before_shards_keeps_its_layout() {
    const PARTITIONS: i32 = 6;
    let env = TestEnv::with_partitions(PARTITIONS).await;
    let (_command, api) = rsvp_tests::command_api(&env).await;
    let mut apis = vec![(env.tenant, api.clone())];
    for name in ["second", "third", "fourth"] {
        let (tenant, key) = env.other_tenant(name).await;
        apis.push((tenant, api.with_key(&key)));
    }
    for (tenant, api) in &apis {
        for i in 0..4 {
            let id = create(api, &format!("p{i}@example.com")).await;
            let sent = api.post(&format!("/v1/invites/{id}/send"), &json!({})).await;
            assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
        }
        let definition = api.post("/v1/definitions", &json!({ "handle": format!("gold-{tenant}") })).await;
        assert_eq!(definition.status, StatusCode::CREATED, "{}", definition.body);
    }
    let log = placed(&env);
    assert_eq!(log.len(), 4 * 9);
    for (p, o, tenant, key, _) in &log {
        assert_eq!(*p, events::shard_of(*tenant, PARTITIONS as usize), "{key} at offset {o} of tenant {tenant}");
    }
    let shards: std::collections::BTreeSet<i32> = log.iter().map(|(p, ..)| *p).collect();
    assert!(shards.len() > 1 || apis.iter().all(|(t, _)| events::shard_of(*t, 6) == shards.first().copied().unwrap()));

    // A log written before shards: its first event (by stream key, as then) is off its tenant's
    // shard. The writer keeps placing events by stream, so no stream is ever split, and says so.
    let legacy = TestEnv::with_partitions(PARTITIONS).await;
    let old = written_before_shards(&legacy, PARTITIONS).await;
    let (command, api) = rsvp_tests::command_api(&legacy).await;
    for i in 0..8 {
        create(&api, &format!("l{i}@example.com")).await;
    }
    let accepted = api.post(&format!("/v1/invites/{}/accept", old.key()), &json!({})).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    let log = placed(&legacy);
    assert_eq!(log.len(), 10);
    for (p, o, _, key, _) in &log {
        assert_eq!(*p, partition_of(key, PARTITIONS), "{key} at offset {o}: by its stream");
    }
    assert!(command.log_text().contains("not partitioned by tenant"), "{}", command.log_text());

    // Placed by neither (partitions added to a topic, or writers of both placements): the writer
    // does not start, as any placement of new events could split a stream over two partitions.
    let mixed = TestEnv::with_partitions(PARTITIONS).await;
    let (event, partition) = loop {
        let e = rsvp_tests::load::created_envelope(mixed.tenant, chrono::Utc::now(), 0);
        let (by_tenant, by_stream) =
            (events::shard_of(mixed.tenant, PARTITIONS as usize), partition_of(&e.key(), PARTITIONS));
        if let Some(p) = (0..PARTITIONS).find(|p| *p != by_tenant && *p != by_stream) {
            break (e, p);
        }
    };
    let producer: rdkafka::producer::FutureProducer =
        service_kit::kafka::client_config(&mixed.brokers, "rsvp-tests").create().unwrap();
    let (key, payload) = (event.key(), event.data_json());
    let record = rdkafka::producer::FutureRecord::to(&mixed.topic)
        .key(&key)
        .payload(&payload)
        .headers(service_kit::kafka::headers_of(&event))
        .partition(partition);
    producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).unwrap();
    let refused = Service::start("command-api", &mixed, &[]).await;
    eventually(Duration::from_secs(30), "the writer to refuse the topic", || async {
        refused.log_text().contains("placed neither by tenant").then_some(())
    })
    .await;
    let ready = reqwest::get(format!("{}/readyz", refused.url)).await.unwrap().status();
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE);
}

/// A command API that snapshots a shard one second after its first unsnapshotted event.
async fn snapshotting(env: &TestEnv) -> (Service, Api) {
    let settings = [
        ("RSVP_WRITER_SNAPSHOT_INTERVAL_SECONDS", "1".to_owned()),
        ("RSVP_LOG_FORMAT", "json".to_owned()),
        ("RSVP_AUDIT_CHECKPOINT_INTERVAL_MS", "200".to_owned()),
    ];
    let command = Service::start("command-api", env, &settings).await;
    command.wait_ready(Duration::from_secs(60)).await;
    let api = Api::new(&command.url, &env.key);
    (command, api)
}

/// Waits until the tenant's shard has a snapshot holding the last event of the log.
async fn snapshot_of_everything(env: &TestEnv) {
    let last = placed(env).last().map(|(_, _, _, _, id)| *id).unwrap();
    eventually(Duration::from_secs(30), "a snapshot holding the last event", || async {
        let id: Option<uuid::Uuid> = sqlx::query_scalar("SELECT last_event FROM writer.snapshots WHERE topic = $1")
            .bind(&env.topic)
            .fetch_optional(&env.pool)
            .await
            .ok()?;
        (id == Some(last)).then_some(())
    })
    .await;
}

/// Writes what a take-over must know: invites (one under an idempotency key), one accepted.
/// Returns (the accepted invite, the idempotent create's id).
async fn history(api: &Api) -> (String, String) {
    let keyed = api
        .call(Method::POST, "/v1/invites", Some(&invite_for("keyed@example.com")), &[("Idempotency-Key", "k-1")])
        .await;
    assert_eq!(keyed.status, StatusCode::CREATED, "{}", keyed.body);
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(create(api, &format!("h{i}@example.com")).await);
    }
    let accepted = api.post(&format!("/v1/invites/{}/accept", ids[0]), &json!({})).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    (ids[0].clone(), keyed.body["id"].as_str().unwrap().to_owned())
}

/// What the writer decides must rest on everything before the take-over: the accepted invite
/// stays accepted, the idempotent create replays, and the hash chains continue unbroken.
async fn decides_on_the_whole_history(env: &TestEnv, api: &Api, accepted: &str, keyed: &str) {
    let again = api.post(&format!("/v1/invites/{accepted}/accept"), &json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    let before = placed(env).len();
    let replay = api
        .call(Method::POST, "/v1/invites", Some(&invite_for("keyed@example.com")), &[("Idempotency-Key", "k-1")])
        .await;
    assert_eq!(replay.status, StatusCode::CREATED, "{}", replay.body);
    assert_eq!(replay.body["id"], keyed, "the first create's answer");
    let reused = api
        .call(Method::POST, "/v1/invites", Some(&invite_for("other@example.com")), &[("Idempotency-Key", "k-1")])
        .await;
    assert_eq!(reused.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", reused.body);
    assert_eq!(placed(env).len(), before, "a replay appends nothing");
    create(api, "after@example.com").await;
    // Every chained event of the tenant numbered 1, 2, 3, ... with no number given twice.
    let tenant = env.tenant.to_string();
    let mut seqs: Vec<u64> = env
        .read_raw(&env.topic)
        .iter()
        .filter(|r| r.header("ce_tenantid") == Some(tenant.as_str()))
        .filter_map(|r| r.header("ce_tenantseq")?.parse().ok())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let total = placed(env).len();
    // And the chains verify, stream by stream and tenant by tenant.
    let key = api.get("/v1/audit/public-key").await.body["public_key"].as_str().unwrap().to_owned();
    let output = tokio::process::Command::new(bin_path("rsvp-audit"))
        .args(["verify", "--topic", &env.topic, "--public-key", &key])
        .env_clear()
        .env("RSVP_KAFKA_BROKERS", &env.brokers)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let out = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success() && out.contains(&format!("OK: {total} events")), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_writer_taking_over_after_a_crash_reads_the_shards_snapshot_and_the_log_after_it_only() {
    let env = TestEnv::new().await;
    let (mut first, api) = snapshotting(&env).await;
    let (accepted, keyed) = history(&api).await;
    snapshot_of_everything(&env).await;
    // The tail: events after the snapshot, which the next writer reads from the log.
    for i in 0..2 {
        create(&api, &format!("tail{i}@example.com")).await;
    }
    first.kill().await;

    let (covered,): (i64,) = sqlx::query_as("SELECT last_offset FROM writer.snapshots WHERE topic = $1")
        .bind(&env.topic)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    let shard = events::shard_of(env.tenant, 3);
    let log = placed(&env);
    let tail = log.iter().filter(|(p, o, ..)| *p == shard && *o > covered).count();
    assert!(tail >= 1, "events after the snapshot");
    let (second, api) = snapshotting(&env).await;
    let rebuilt = last_line(&second, "state rebuilt").expect("the writer says how it rebuilt its state");
    assert_eq!(rebuilt["tenants_from_snapshots"], 1, "{rebuilt}");
    assert_eq!(rebuilt["events_read"], tail, "only the log after the snapshot is read: {rebuilt}");
    assert!(log.len() > tail + 6);
    decides_on_the_whole_history(&env, &api, &accepted, &keyed).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_of_another_format_or_that_the_log_does_not_hold_is_ignored_and_the_log_read_whole() {
    let env = TestEnv::new().await;
    let (mut first, api) = snapshotting(&env).await;
    let (accepted, keyed) = history(&api).await;
    snapshot_of_everything(&env).await;
    first.kill().await;
    let total = placed(&env).len();

    // Taken by code of an older snapshot format.
    let current: i32 = sqlx::query_scalar("SELECT format FROM writer.snapshots").fetch_one(&env.pool).await.unwrap();
    sqlx::query("UPDATE writer.snapshots SET format = format - 1").execute(&env.pool).await.unwrap();
    let (mut second, _) = snapshotting(&env).await;
    let rebuilt = last_line(&second, "state rebuilt").unwrap();
    assert_eq!(
        (rebuilt["tenants_from_snapshots"].as_u64(), rebuilt["events_read"].as_u64()),
        (Some(0), Some(total as u64))
    );
    let ignored = json_lines(&second)
        .into_iter()
        .any(|l| l["fields"]["message"].as_str().is_some_and(|m| m.starts_with("snapshot ignored")));
    assert!(ignored, "{}", second.log_text());
    // It snapshots anew (its format replaces the old one).
    eventually(Duration::from_secs(30), "a snapshot of this format", || async {
        let format: i32 = sqlx::query_scalar("SELECT format FROM writer.snapshots WHERE topic = $1")
            .bind(&env.topic)
            .fetch_one(&env.pool)
            .await
            .ok()?;
        (format == current).then_some(())
    })
    .await;
    second.kill().await;

    // A row changed by anyone but a writer (here its state, one byte): it does not open under the
    // master key for what the row says, and is ignored.
    sqlx::query("UPDATE writer.snapshots SET state = overlay(state placing '\\x00'::bytea from 40 for 1)")
        .execute(&env.pool)
        .await
        .unwrap();
    let (mut third, api) = snapshotting(&env).await;
    let rebuilt = last_line(&third, "state rebuilt").unwrap();
    assert_eq!(rebuilt["tenants_from_snapshots"].as_u64(), Some(0), "{rebuilt}");
    assert!(third.log_text().contains("does not open under this master key"), "{}", third.log_text());
    decides_on_the_whole_history(&env, &api, &accepted, &keyed).await;
    snapshot_of_everything(&env).await;
    third.kill().await;

    // Sealed by a writer, but naming a record the log no longer holds (here deleted, as retention
    // or a topic made anew under the same name would): the log is read whole, and the snapshot
    // that did not match is deleted so that new ones can be stored.
    let (covered,): (i64,) =
        sqlx::query_as("SELECT last_offset FROM writer.snapshots").fetch_one(&env.pool).await.unwrap();
    let shard = events::shard_of(env.tenant, 3);
    let admin: rdkafka::admin::AdminClient<rdkafka::client::DefaultClientContext> =
        service_kit::kafka::client_config(&env.brokers, "rsvp-tests").create().unwrap();
    let mut before = rdkafka::TopicPartitionList::new();
    before.add_partition_offset(&env.topic, shard, rdkafka::Offset::Offset(covered + 1)).unwrap();
    admin.delete_records(&before, &rdkafka::admin::AdminOptions::new()).await.unwrap();
    let left = placed(&env).len();
    let (fourth, _) = snapshotting(&env).await;
    let rebuilt = last_line(&fourth, "state rebuilt").unwrap();
    assert_eq!(
        (rebuilt["tenants_from_snapshots"].as_u64(), rebuilt["events_read"].as_u64()),
        (Some(0), Some(left as u64)),
        "{rebuilt}"
    );
    let refused = json_lines(&fourth)
        .into_iter()
        .find(|l| l["fields"]["message"] == "snapshots not used; reading the log whole")
        .map(|l| l["fields"]["error"].to_string())
        .unwrap_or_default();
    assert!(refused.contains(&format!("offset {covered}")), "{refused}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM writer.snapshots WHERE last_offset = $1")
        .bind(covered)
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(rows, 0, "the snapshot that did not match is gone");
}

#[tokio::test(flavor = "multi_thread")]
async fn reshard_copies_a_log_written_before_shards_by_tenant_keeping_every_stream_in_order_and_the_services_take_it_over(
) {
    const PARTITIONS: i32 = 4;
    let mut env = TestEnv::with_partitions(PARTITIONS).await;
    let old = written_before_shards(&env, PARTITIONS).await;
    let (mut command, api) = snapshotting(&env).await;
    let (accepted, keyed) = history(&api).await;
    let (_, other_key) = env.other_tenant("second").await;
    for i in 0..6 {
        let id = create(&api.with_key(&other_key), &format!("o{i}@example.com")).await;
        let sent = api.with_key(&other_key).post(&format!("/v1/invites/{id}/send"), &json!({})).await;
        assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    }
    let accepted_old = api.post(&format!("/v1/invites/{}/accept", old.key()), &json!({})).await;
    assert_eq!(accepted_old.status, StatusCode::OK, "{}", accepted_old.body);
    // A checkpoint covers the chains so far (every 200 ms), then the old writer stops.
    tokio::time::sleep(Duration::from_secs(1)).await;
    command.kill().await;
    let before = placed(&env);
    let spread: std::collections::BTreeSet<i32> = before.iter().map(|(p, ..)| *p).collect();
    assert!(spread.len() > 1, "the old log spreads a tenant's streams over partitions");

    let to = format!("{}-by-tenant", env.topic);
    let (code, out) = run_command("rsvp-admin", &env, &["reshard", "--from", &env.topic, "--to", &to]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("copied {} events", before.len())) && out.contains("2 tenants"), "{out}");
    // Copying into a topic that holds records is refused.
    let (code, out) = run_command("rsvp-admin", &env, &["reshard", "--from", &env.topic, "--to", &to]).await;
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("already holds records"), "{out}");

    env.topic = to;
    let after = placed(&env);
    assert_eq!(after.len(), before.len());
    let by_stream = |log: &[(i32, i64, events::TenantId, String, uuid::Uuid)]| {
        let mut streams: HashMap<String, Vec<uuid::Uuid>> = HashMap::new();
        for (_, _, _, key, id) in log {
            streams.entry(key.clone()).or_default().push(*id);
        }
        streams
    };
    assert_eq!(by_stream(&after), by_stream(&before), "every stream's events, in their order");
    for (p, _, tenant, key, _) in &after {
        assert_eq!(*p, events::shard_of(*tenant, PARTITIONS as usize), "{key}");
    }

    // The services on the new topic: a writer that places by tenant and decides on the whole
    // history, and read models rebuilt from it that verify.
    let (command, api) = snapshotting(&env).await;
    decides_on_the_whole_history(&env, &api, &accepted, &keyed).await;
    assert!(!command.log_text().contains("not partitioned by tenant"), "{}", command.log_text());
    let (code, out) = run_command("projector", &env, &["rebuild"]).await;
    assert_eq!(code, 0, "{out}");
    let (code, out) = run_command("projector", &env, &["verify"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no drift"), "{out}");
}
