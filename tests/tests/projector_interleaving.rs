//! The read models enforce only what holds in every interleaving of partitions: a replay that reads
//! the partitions in another order gives the live projection's rows, row for row; a definition
//! handle renamed and taken over by a definition on another partition projects in any order. The
//! audit tools name every event they passed over, and `projector redrive` repairs what the live
//! projector parked once a fix lets the read models take it.

use reqwest::{Method, StatusCode};
use rsvp_tests::{eventually, partition_of, run_command, Api, Service, Services, TestEnv};
use serde_json::{json, Value};
use std::time::Duration;

/// Every event of the log is in the live read models' history (the projector got to the end).
async fn wait_projected(env: &TestEnv) {
    let expected = env.read_log().len() as i64;
    eventually(Duration::from_secs(60), &format!("{expected} events to be projected"), || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM read_model.events").fetch_one(&env.pool).await.ok()?;
        (n == expected).then_some(())
    })
    .await;
}

async fn put(api: &Api, path: &str, body: &Value) -> rsvp_tests::Reply {
    api.call(Method::PUT, path, Some(body), &[]).await
}

/// Makes the test's log one written before shards: it starts with a definition of the test tenant
/// on a partition other than the tenant's shard, as the writer placed events then (by stream). The
/// writer then keeps placing every event by its stream, so that the streams of one tenant spread
/// over partitions: the interleavings a log written before shards (or by a tenant split over
/// shards later) holds, which the read models must take in any order.
async fn written_before_shards(env: &TestEnv, partitions: i32) {
    let shard = events::shard_of(env.tenant, partitions as usize);
    let (id, _) = definition_id_away_from(Some(shard), partitions);
    env.produce_event(&definition_event(env.tenant, id, 1, "legacy", None)).await;
}

/// Creates P with handle `h`, renames it `h-old`, and creates Q with handle `h` on another
/// partition than P's (a Q that lands on P's partition is renamed away and another made). Returns
/// (P, Q).
async fn hand_a_handle_to_another_partition(api: &Api, h: &str, partitions: i32) -> (String, String) {
    let created = api.post("/v1/definitions", &json!({ "handle": h })).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let p = created.body["id"].as_str().unwrap().to_owned();
    let renamed = put(api, &format!("/v1/definitions/{p}"), &json!({ "handle": format!("{h}-old") })).await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.body);
    for attempt in 0..20 {
        let created = api.post("/v1/definitions", &json!({ "handle": h })).await;
        assert_eq!(created.status, StatusCode::CREATED, "the writer lets Q take the freed handle: {}", created.body);
        let q = created.body["id"].as_str().unwrap().to_owned();
        if partition_of(&q, partitions) != partition_of(&p, partitions) {
            return (p, q);
        }
        let away =
            put(api, &format!("/v1/definitions/{q}"), &json!({ "handle": format!("{h}-spare-{attempt}") })).await;
        assert_eq!(away.status, StatusCode::OK, "{}", away.body);
    }
    panic!("no definition landed on another partition than {p}");
}

/// The partitions the log's records sit on, for each stream.
fn partitions_of_streams(env: &TestEnv) -> std::collections::HashMap<String, i32> {
    let mut found = std::collections::HashMap::new();
    service_kit::kafka::read_to_end(
        &env.brokers,
        &env.topic,
        &Default::default(),
        Duration::from_secs(60),
        |p, _, m| {
            let envelope = service_kit::kafka::envelope_of(m)?;
            found.insert(envelope.meta.stream.as_uuid().to_string(), p);
            Ok(())
        },
    )
    .unwrap();
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn a_handle_renamed_and_taken_by_a_definition_on_another_partition_replays_in_any_partition_order() {
    let env = TestEnv::new().await;
    written_before_shards(&env, 3).await;
    let services = Services::start(&env).await;
    let api = Api::new(&services.command.url, &env.key);
    let (p, q) = hand_a_handle_to_another_partition(&api, "h", 3).await;
    wait_projected(&env).await;
    let partitions = partitions_of_streams(&env);
    let (pp, qp) = (partitions[&p], partitions[&q]);
    assert_ne!(pp, qp, "P and Q sit on different partitions");

    // Q's partition read to its end before P's: Q holds `h` before P's first event is read.
    for order in [format!("{qp},{pp}"), format!("{pp},{qp}"), "descending".into(), "as-read".into()] {
        let (code, out) = run_command("projector", &env, &["verify", "--partition-order", &order]).await;
        assert_eq!(code, 0, "verify reading partitions {order}: {out}");
        assert!(out.contains("no drift") && out.contains("none passed over"), "{order}: {out}");
    }
    // A rebuild in that order swaps in the same rows, passing over nothing.
    let (code, out) = run_command("projector", &env, &["rebuild", "--partition-order", &format!("{qp},{pp}")]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(0 passed over)"), "{out}");
    let (code, out) = run_command("projector", &env, &["verify"]).await;
    assert_eq!(code, 0, "{out}");
    let handles: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT definition_id::text, handle, version FROM read_model.definitions WHERE tenant_id = $1 \
         AND definition_id IN ($2::uuid, $3::uuid) ORDER BY handle",
    )
    .bind(env.tenant.as_uuid())
    .bind(&p)
    .bind(&q)
    .fetch_all(&env.pool)
    .await
    .unwrap();
    assert_eq!(handles, vec![(q.clone(), "h".into(), 1), (p.clone(), "h-old".into(), 2)]);
    assert!(env.read_raw(&format!("{}.dlq", env.topic)).is_empty(), "the live projector parked nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn replaying_the_log_one_partition_at_a_time_in_any_order_gives_the_live_read_models_row_for_row() {
    let env = TestEnv::with_partitions(4).await;
    written_before_shards(&env, 4).await;
    let services = Services::start(&env).await;
    let api = Api::new(&services.command.url, &env.key);
    // Definitions that trade handles, and invites under them that go through their lifecycle.
    let (gold_old, gold) = hand_a_handle_to_another_partition(&api, "gold", 4).await;
    let (_, silver) = hand_a_handle_to_another_partition(&api, "silver", 4).await;
    let mut invites = Vec::new();
    for i in 0..12 {
        let definition = [&gold_old, &gold, &silver][i % 3];
        let created = api
            .post(
                "/v1/invites",
                &json!({ "inviter": { "id": format!("inviter-{}", i % 4) }, "definition_id": definition,
                         "targets": [{ "type": "email", "value": format!("person{i}@example.com") }] }),
            )
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
        invites.push(created.body["id"].as_str().unwrap().to_owned());
    }
    for (i, id) in invites.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(api.post(&format!("/v1/invites/{id}/send"), &json!({})).await.status, StatusCode::ACCEPTED);
        }
        let kind = ["view", "click", "share", "unfurl"][i % 4];
        let engaged =
            api.post(&format!("/v1/invites/{id}/engagements"), &json!({ "kind": kind, "source": "test" })).await;
        assert_eq!(engaged.status, StatusCode::OK, "{}", engaged.body);
    }
    for delivery in env.read_log().iter().filter_map(|e| match e.invite_event() {
        Some((_, events::InviteEvent::Sent(s))) => Some(s.delivery_id),
        _ => None,
    }) {
        let r = api.post(&format!("/v1/deliveries/{delivery}/events"), &json!({ "status": "delivered" })).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    for (i, id) in invites.iter().enumerate() {
        let (path, body) = match i % 4 {
            0 => ("accept", json!({ "accepted_by": "someone" })),
            1 => ("revoke", json!({})),
            2 => ("decline", json!({})),
            _ => continue,
        };
        let r = api.post(&format!("/v1/invites/{id}/{path}"), &body).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }
    wait_projected(&env).await;
    let used: std::collections::BTreeSet<i32> = partitions_of_streams(&env).into_values().collect();
    assert!(used.len() >= 3, "the log spans several partitions: {used:?}");

    for order in ["ascending", "descending", "2,0,3,1", "as-read"] {
        let (code, out) = run_command("projector", &env, &["verify", "--partition-order", order]).await;
        assert_eq!(code, 0, "verify reading partitions {order}: {out}");
        assert!(out.contains("no drift") && out.contains("none passed over"), "{order}: {out}");
    }
}

const GARBAGE_HEADERS: [(&str, &str); 3] =
    [("ce_specversion", "1.0"), ("ce_type", "dev.rsvp.invite.InviteCreated.v1"), ("ce_id", "not-a-uuid")];

#[tokio::test(flavor = "multi_thread")]
async fn verify_and_rebuild_name_the_events_they_passed_over_and_verify_never_calls_them_clean() {
    let env = TestEnv::new().await;
    let services = Services::start(&env).await;
    let api = Api::new(&services.command.url, &env.key);
    env.produce_raw("poison", b"{not json", &GARBAGE_HEADERS).await;
    for i in 0..3 {
        let body =
            json!({ "inviter": { "id": "u" }, "targets": [{ "type": "email", "value": format!("p{i}@example.com") }] });
        assert_eq!(api.post("/v1/invites", &body).await.status, StatusCode::CREATED);
    }
    let dlq = format!("{}.dlq", env.topic);
    let parked = eventually(Duration::from_secs(30), "the poison event to be parked", || async {
        let records = env.read_raw(&dlq);
        (records.len() == 1).then_some(records)
    })
    .await;
    let (partition, offset) = (
        parked[0].header("rsvp_dlq_partition").unwrap().to_owned(),
        parked[0].header("rsvp_dlq_offset").unwrap().to_owned(),
    );
    let place = format!("partition {partition} offset {offset}");
    eventually(Duration::from_secs(30), "the invites to be projected", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM read_model.invites").fetch_one(&env.pool).await.ok()?;
        (n == 3).then_some(())
    })
    .await;

    // Both sides lack the poison event: no drift, and still not clean.
    let (code, out) = run_command("projector", &env, &["verify"]).await;
    assert_eq!(code, 2, "{out}");
    assert!(!out.contains("no drift"), "{out}");
    assert!(out.contains("PASSED OVER") && out.contains(&place) && out.contains("undecodable"), "{out}");
    assert!(out.contains("PARKED") && out.contains("INCOMPLETE"), "{out}");

    let (code, out) = run_command("projector", &env, &["rebuild"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(1 passed over)") && out.contains(&place), "{out}");
    let (code, out) = run_command("projector", &env, &["verify"]).await;
    assert_eq!(code, 2, "after a rebuild that passed over the same event: {out}");
    assert!(!out.contains("no drift") && out.contains(&place), "{out}");
}

/// A definition event as the writer would have made it.
fn definition_event(
    tenant: events::TenantId,
    id: events::DefinitionId,
    version: u64,
    handle: &str,
    max_send_count: Option<u32>,
) -> events::Envelope {
    let rules = events::DefinitionRules {
        handle: handle.into(),
        max_invites_per_inviter: None,
        starts_at: None,
        ends_at: None,
        max_send_count,
        default_expiry_days: None,
        templates: None,
    };
    let event = match version {
        1 => events::DefinitionEvent::Created(rules),
        _ => events::DefinitionEvent::Updated(rules),
    };
    events::Envelope::new(
        events::EventMeta {
            event_id: uuid::Uuid::now_v7(),
            stream: events::StreamId::Definition(id),
            tenant_id: tenant,
            version,
            occurred_at: chrono::Utc::now(),
            actor: events::Actor { kind: events::ActorKind::ApiKey, id: "test".into() },
            correlation_id: Some(uuid::Uuid::now_v7()),
            causation_id: None,
            idempotency_key: None,
            request_hash: None,
        },
        events::DomainEvent::Definition(event),
    )
}

/// A definition id whose stream sits on a partition other than `not`.
fn definition_id_away_from(not: Option<i32>, partitions: i32) -> (events::DefinitionId, i32) {
    loop {
        let id = events::DefinitionId::from_uuid(uuid::Uuid::now_v7());
        let p = partition_of(&id.as_uuid().to_string(), partitions);
        if Some(p) != not {
            return (id, p);
        }
    }
}

async fn definition_row(env: &TestEnv, id: events::DefinitionId) -> Option<(String, i64, Option<i32>)> {
    sqlx::query_as("SELECT handle, version, max_send_count FROM read_model.definitions WHERE definition_id = $1")
        .bind(id.as_uuid())
        .fetch_optional(&env.pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn redrive_applies_what_was_parked_once_the_fix_is_in_and_the_frozen_stream_verifies_clean() {
    let env = TestEnv::new().await;
    let projector = Service::start("projector", &env, &[]).await;
    projector.wait_ready(Duration::from_secs(60)).await;
    // The database as it was before the fix: handles unique in the read model.
    sqlx::raw_sql(
        "ALTER TABLE read_model.definitions ADD CONSTRAINT definitions_tenant_id_handle_key UNIQUE (tenant_id, handle); \
         DELETE FROM public._sqlx_migrations WHERE version = 20261125122000",
    )
    .execute(&env.pool)
    .await
    .unwrap();

    // The live projector reads Q's partition first: Q holds `h` when P's first event comes.
    let (q, qp) = definition_id_away_from(None, 3);
    let (p, _) = definition_id_away_from(Some(qp), 3);
    env.produce_event(&definition_event(env.tenant, q, 1, "h", None)).await;
    eventually(Duration::from_secs(30), "Q to be projected", || async { definition_row(&env, q).await }).await;
    env.produce_event(&definition_event(env.tenant, p, 1, "h", None)).await;
    env.produce_event(&definition_event(env.tenant, p, 2, "h-old", None)).await;
    env.produce_event(&definition_event(env.tenant, p, 3, "h-old", Some(3))).await;
    let dlq = format!("{}.dlq", env.topic);
    let parked = eventually(Duration::from_secs(30), "P's three events to be parked", || async {
        let records = env.read_raw(&dlq);
        (records.len() == 3).then_some(records)
    })
    .await;
    let reasons: Vec<&str> = parked.iter().map(|r| r.header("rsvp_dlq_reason").unwrap()).collect();
    assert!(reasons[0].contains("definitions_tenant_id_handle_key"), "{reasons:?}");
    assert!(reasons[1..].iter().all(|r| r.contains("not at version")), "the stream froze: {reasons:?}");
    assert_eq!(definition_row(&env, p).await, None);

    // Every projector command applies pending migrations first: the fix is in from here on.
    let (code, out) = run_command("projector", &env, &["verify"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("DRIFT") && out.contains("PARKED: 3 events"), "{out}");

    let (code, out) = run_command("projector", &env, &["redrive"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("3 applied, 0 already in the read models, 0 still refused"), "{out}");
    assert_eq!(definition_row(&env, p).await, Some(("h-old".into(), 3, Some(3))), "the frozen stream's latest version");
    assert_eq!(definition_row(&env, q).await, Some(("h".into(), 1, None)));

    // Twice changes nothing: the position says it is done, and without it the events are known.
    let (code, out) = run_command("projector", &env, &["redrive"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("re-drove 0 parked events"), "{out}");
    sqlx::query("DELETE FROM read_model.projector_redrive").execute(&env.pool).await.unwrap();
    let (code, out) = run_command("projector", &env, &["redrive"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("0 applied, 3 already in the read models"), "{out}");
    assert_eq!(definition_row(&env, p).await, Some(("h-old".into(), 3, Some(3))));

    let (code, out) = run_command("projector", &env, &["verify"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no drift: 4 events replayed") && out.contains("none passed over"), "{out}");

    // The stream is thawed: the live projector takes its next event.
    env.produce_event(&definition_event(env.tenant, p, 4, "h-older", Some(3))).await;
    eventually(Duration::from_secs(30), "P's next version to be projected", || async {
        (definition_row(&env, p).await? == ("h-older".into(), 4, Some(3))).then_some(())
    })
    .await;
    assert_eq!(env.read_raw(&dlq).len(), 3, "nothing more was parked");
}
