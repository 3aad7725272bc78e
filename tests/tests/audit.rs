//! Tamper evidence end to end (issue 14): events written through the real command API carry hash
//! chains and are covered by signed checkpoints; `rsvp-audit verify` passes on the log and fails,
//! naming the record, on a copy of it with one record deleted or edited, even when the editor
//! recomputed the chains (without the signing key); the same for an export and `verify-export`.

use events::chain::{self, Hash, TenantHead};
use reqwest::StatusCode;
use rsvp_tests::services::bin_path;
use rsvp_tests::{eventually, invite_for, Api, Service, TestEnv};
use serde_json::json;
use std::collections::HashMap;
use std::time::Duration;

const PARTITIONS: i32 = 3;

/// A record as it sits in a partition.
#[derive(Clone)]
struct Raw {
    partition: i32,
    key: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    value: Vec<u8>,
    timestamp: Option<i64>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    fn set_header(&mut self, name: &str, value: String) {
        for (k, v) in &mut self.headers {
            if k == name {
                *v = value.into_bytes();
                return;
            }
        }
    }

    fn seq(&self) -> Option<u64> {
        self.header("ce_tenantseq").and_then(|s| s.parse().ok())
    }
}

fn read(brokers: &str, topic: &str) -> Vec<Raw> {
    use rdkafka::message::{Headers, Message};
    let mut records = Vec::new();
    service_kit::kafka::read_to_end(brokers, topic, &HashMap::new(), Duration::from_secs(60), |p, _, m| {
        records.push(Raw {
            partition: p,
            key: m.key().unwrap_or_default().to_vec(),
            headers: m
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec())).collect())
                .unwrap_or_default(),
            value: m.payload().unwrap_or_default().to_vec(),
            timestamp: m.timestamp().to_millis(),
        });
        Ok(())
    })
    .expect("cannot read the topic");
    records
}

/// Writes `records` to a new topic (each to its partition, in order) and `checkpoints` to its audit
/// topic: a copy of the log someone with broker access made.
async fn copy(env: &TestEnv, records: &[Raw], checkpoints: &[Raw]) -> String {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let topic = format!("{}-copy-{}", env.topic, uuid::Uuid::new_v4().simple());
    rsvp_tests::infra::create_topic(&env.brokers, &topic, PARTITIONS).await.unwrap();
    rsvp_tests::infra::create_topic(&env.brokers, &audit::audit_topic(&topic), 1).await.unwrap();
    let producer: FutureProducer = service_kit::kafka::client_config(&env.brokers, "rsvp-tests")
        .set("enable.idempotence", "true")
        .create()
        .unwrap();
    for (to, records) in [(topic.clone(), records), (audit::audit_topic(&topic), checkpoints)] {
        for r in records {
            let headers = r
                .headers
                .iter()
                .fold(OwnedHeaders::new(), |h, (key, value)| h.insert(Header { key, value: Some(value) }));
            let mut record =
                FutureRecord::to(&to).partition(r.partition).key(&r.key).payload(&r.value).headers(headers);
            if let Some(t) = r.timestamp {
                record = record.timestamp(t);
            }
            producer.send(record, Duration::from_secs(30)).await.map_err(|(e, _)| e).expect("cannot copy");
        }
    }
    topic
}

/// Runs `rsvp-audit` against the test's broker; (exit code, stdout and stderr).
async fn rsvp_audit(env: &TestEnv, args: &[&str]) -> (i32, String) {
    let output = tokio::process::Command::new(bin_path("rsvp-audit"))
        .args(args)
        .env_clear()
        .env("RSVP_KAFKA_BROKERS", &env.brokers)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("cannot run rsvp-audit");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

async fn start(env: &TestEnv) -> (Service, Api) {
    let command = Service::start("command-api", env, &[("RSVP_AUDIT_CHECKPOINT_INTERVAL_MS", "200".into())]).await;
    command.wait_ready(Duration::from_secs(60)).await;
    let api = Api::new(&command.url, &env.key);
    (command, api)
}

/// Creates `n` invites and revokes every other one (the first included).
async fn write(api: &Api, n: usize, tag: &str) {
    for i in 0..n {
        let created = api.post("/v1/invites", &invite_for(&format!("{tag}-{i}@example.com"))).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        let id = created.body["id"].as_str().unwrap().to_owned();
        if i % 2 == 0 {
            let revoked = api.post(&format!("/v1/invites/{id}/revoke"), &json!({ "reason": "test" })).await;
            assert!(revoked.status.is_success(), "{}", revoked.body);
        }
    }
}

/// Waits until a checkpoint signs the last chained event of every tenant in `topic`.
async fn wait_signed(env: &TestEnv, topic: &str) {
    eventually(Duration::from_secs(30), "a checkpoint of each tenant's last event", || async {
        let mut last: HashMap<String, u64> = HashMap::new();
        for r in read(&env.brokers, topic) {
            if let (Some(t), Some(seq)) = (r.header("ce_tenantid"), r.seq()) {
                let l = last.entry(t.to_owned()).or_default();
                *l = (*l).max(seq);
            }
        }
        let mut signed: HashMap<String, u64> = HashMap::new();
        for r in read(&env.brokers, &audit::audit_topic(topic)) {
            let c: audit::Checkpoint = serde_json::from_slice(&r.value).ok()?;
            let s = signed.entry(c.tenant_id.to_string()).or_default();
            *s = (*s).max(c.tenant_seq);
        }
        (!last.is_empty() && last == signed).then_some(())
    })
    .await;
}

/// An event as the first releases wrote it, before chaining, for the test's tenant (from the
/// frozen corpus).
fn legacy_invite(env: &TestEnv) -> events::Envelope {
    let path = rsvp_tests::manifest_dir().join("../events/tests/corpus/InviteCreated.v2.json");
    let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    doc["tenant_id"] = json!(env.tenant.to_string());
    doc["event_id"] = json!(uuid::Uuid::now_v7().to_string());
    doc["stream"]["id"] = json!(uuid::Uuid::now_v7().to_string());
    doc["data"].as_object_mut().unwrap().remove("definition_id");
    doc["occurred_at"] = json!(chrono::Utc::now().to_rfc3339());
    doc["data"]["expires_at"] = json!((chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339());
    events::Envelope::from_json(doc).expect("the corpus event loads")
}

/// The same JSON object with one member more.
fn tampered(value: &[u8]) -> Vec<u8> {
    let mut data: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(value).unwrap();
    data.insert("tampered".into(), json!(true));
    serde_json::to_vec(&data).unwrap()
}

fn digest(r: &Raw) -> Hash {
    chain::event_digest(&chain::canonical_of_headers(
        r.headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())),
        &r.value,
    ))
}

/// Recomputes every chain value from the records' content, as someone who knows the algorithm but
/// not the signing key would after editing one.
fn rechain(records: &mut [Raw]) {
    let mut streams: HashMap<String, Hash> = HashMap::new();
    // Events written before chaining come first in their streams.
    for r in records.iter().filter(|r| r.seq().is_none()) {
        let subject = r.header("ce_subject").unwrap().to_owned();
        let prev = streams.get(&subject).copied().unwrap_or(Hash::ZERO);
        streams.insert(subject, chain::stream_chain(prev, digest(r)));
    }
    let mut order: Vec<usize> = (0..records.len()).filter(|&i| records[i].seq().is_some()).collect();
    order.sort_by_key(|&i| records[i].seq());
    let mut head = TenantHead::default();
    for i in order {
        let r = &mut records[i];
        let subject = r.header("ce_subject").unwrap().to_owned();
        let stream_chain = chain::stream_chain(streams.get(&subject).copied().unwrap_or(Hash::ZERO), digest(r));
        streams.insert(subject, stream_chain);
        head = head.next(stream_chain);
        r.set_header("ce_streamchain", stream_chain.to_hex());
        r.set_header("ce_tenantchain", head.chain.to_hex());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_passes_on_the_log_across_a_restart_and_names_a_removed_or_changed_record_in_a_copy() {
    let env = TestEnv::with_partitions(PARTITIONS).await;
    let legacy = legacy_invite(&env);
    env.produce_event(&legacy).await;
    let (mut command, api) = start(&env).await;

    // The public key is served, and is the one `rsvp-audit public-key` derives from the seed.
    let served = api.get("/v1/audit/public-key").await;
    assert_eq!(served.status, StatusCode::OK);
    let public_key = served.body["public_key"].as_str().unwrap().to_owned();
    let (code, derived) = rsvp_audit(&env, &["public-key", "--signing-key", rsvp_tests::AUDIT_SIGNING_KEY]).await;
    assert_eq!((code, derived.trim()), (0, public_key.as_str()));

    write(&api, 4, "before").await;
    // The event written before chaining is continued by a chained one.
    let revoked = api.post(&format!("/v1/invites/{}/revoke", legacy.key()), &json!({})).await;
    assert!(revoked.status.is_success(), "{}", revoked.body);
    // A restarted writer continues the chains where the log leaves them.
    command.kill().await;
    let (_command, api) = start(&env).await;
    write(&api, 4, "after").await;
    wait_signed(&env, &env.topic).await;

    let verify = |topic: String| {
        let (env, key) = (&env, public_key.clone());
        async move { rsvp_audit(env, &["verify", "--topic", &topic, "--public-key", &key]).await }
    };
    let (code, out) = verify(env.topic.clone()).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK: 14 events"), "{out}");
    assert!(out.contains("13 chained and checked, 1 unchained (written before chaining)"), "{out}");
    assert!(out.contains("0 chained events after their tenant's last checkpoint"), "{out}");

    let records = read(&env.brokers, &env.topic);
    let checkpoints = read(&env.brokers, &audit::audit_topic(&env.topic));
    // The create of an invite that was revoked after it.
    let victim = records
        .iter()
        .position(|r| {
            r.header("ce_inviteversion") == Some("1")
                && r.seq().is_some()
                && records.iter().any(|o| {
                    o.header("ce_subject") == r.header("ce_subject") && o.header("ce_inviteversion") == Some("2")
                })
        })
        .unwrap();
    let id = records[victim].header("ce_id").unwrap().to_owned();
    let subject = records[victim].header("ce_subject").unwrap().to_owned();

    // Removed.
    let mut removed = records.clone();
    removed.remove(victim);
    let (code, out) = verify(copy(&env, &removed, &checkpoints).await).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAILED"), "{out}");
    assert!(out.contains(&format!("removed: stream {subject}: version(s) 1 are missing")), "{out}");
    assert!(out.contains(&format!("tenant seq {} missing before this event", records[victim].seq().unwrap())), "{out}");

    // Its data edited, the chain values left as they were.
    let mut edited = records.clone();
    edited[victim].value = tampered(&edited[victim].value);
    assert_ne!(edited[victim].value, records[victim].value);
    let (code, out) = verify(copy(&env, &edited, &checkpoints).await).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("altered: stream {subject}: its stream chain does not recompute")), "{out}");
    assert!(out.contains(&format!("event {id}, version 1")), "{out}");

    // Edited and every chain recomputed: only the signed checkpoint tells.
    rechain(&mut edited);
    let (code, out) = verify(copy(&env, &edited, &checkpoints).await).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("is not the one the checkpoint"), "{out}");
    assert!(!out.contains("does not recompute"), "{out}");

    // The last event removed: a checkpoint signed it.
    let mut truncated = records.clone();
    let last = (0..truncated.len()).max_by_key(|&i| truncated[i].seq()).unwrap();
    truncated.remove(last);
    let (code, out) = verify(copy(&env, &truncated, &checkpoints).await).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("truncated tail"), "{out}");

    // Two events of one stream swapped.
    let mut swapped = records.clone();
    let second = swapped
        .iter()
        .position(|r| r.header("ce_subject") == Some(subject.as_str()) && r.header("ce_inviteversion") == Some("2"))
        .unwrap();
    swapped.swap(victim, second);
    let (code, out) = verify(copy(&env, &swapped, &checkpoints).await).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("reordered: stream {subject}")), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_verifies_offline_and_names_a_removed_or_changed_line() {
    let env = TestEnv::with_partitions(PARTITIONS).await;
    let (_command, api) = start(&env).await;
    let public_key = api.get("/v1/audit/public-key").await.body["public_key"].as_str().unwrap().to_owned();
    write(&api, 3, "early").await;
    wait_signed(&env, &env.topic).await;
    let cut = chrono::Utc::now();
    // Another tenant's events stay out of the export.
    let (_, other_key) = env.other_tenant("tenant-b").await;
    write(&api.with_key(&other_key), 2, "other").await;
    write(&api, 3, "late").await;
    wait_signed(&env, &env.topic).await;

    let dir = std::env::temp_dir().join(format!("rsvp-audit-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("export.jsonl");
    let path = file.to_str().unwrap();
    let tenant = env.tenant.to_string();
    let (code, out) = rsvp_audit(&env, &["export", "--topic", &env.topic, "--tenant", &tenant, "--out", path]).await;
    assert_eq!(code, 0, "{out}");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let events: Vec<&serde_json::Value> =
        lines.iter().filter(|l| l["type"].as_str().unwrap().starts_with("dev.rsvp.invite.")).collect();
    assert_eq!(events.len(), 10, "{text}");
    for e in &events {
        assert_eq!(e["specversion"], "1.0");
        assert_eq!(e["tenantid"], tenant.as_str());
        assert!(e["data"].is_object() && e["streamchain"].is_string(), "{e}");
    }
    let seqs: Vec<u64> = events.iter().map(|e| e["tenantseq"].as_str().unwrap().parse().unwrap()).collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<u64>>());
    assert!(lines.iter().any(|l| l["type"] == audit::export::CHECKPOINT_TYPE));

    let verify_export = |text: String| {
        let (env, key, file) = (&env, public_key.clone(), dir.join(format!("{}.jsonl", uuid::Uuid::new_v4())));
        async move {
            std::fs::write(&file, text).unwrap();
            rsvp_audit(env, &["verify-export", file.to_str().unwrap(), "--public-key", &key]).await
        }
    };
    let (code, out) = verify_export(text.clone()).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("OK: 10 events"), "{out}");

    // A line removed: the create of the 3rd invite (tenant seq 4).
    let raw: Vec<&str> = text.lines().collect();
    let fourth = raw.iter().position(|l| l.contains("\"tenantseq\":\"4\"")).unwrap();
    let without: Vec<&str> = raw.iter().enumerate().filter(|(i, _)| *i != fourth).map(|(_, l)| *l).collect();
    let (code, out) = verify_export(without.join("\n")).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("tenant seq 4 missing before this event"), "{out}");

    // A line's data edited.
    let mut edited: Vec<String> = raw.iter().map(|l| l.to_string()).collect();
    edited[fourth] = edited[fourth].replacen("\"data\":{", "\"data\":{\"tampered\":true,", 1);
    assert_ne!(edited[fourth], raw[fourth]);
    let (code, out) = verify_export(edited.join("\n")).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("altered: stream") && out.contains(&format!("line {}, event", fourth + 1)), "{out}");

    // From a time in the middle: anchored, and it still verifies.
    let from = cut.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (code, out) =
        rsvp_audit(&env, &["export", "--topic", &env.topic, "--tenant", &tenant, "--from", &from, "--out", path]).await;
    assert_eq!(code, 0, "{out}");
    let cut_text = std::fs::read_to_string(&file).unwrap();
    assert!(cut_text.lines().next().unwrap().contains(audit::export::ANCHOR_TYPE), "{cut_text}");
    assert_eq!(cut_text.lines().filter(|l| l.contains("\"type\":\"dev.rsvp.invite.")).count(), 5, "{cut_text}");
    let (code, out) = verify_export(cut_text).await;
    assert_eq!(code, 0, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
