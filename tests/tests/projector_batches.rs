//! Batching never changes what the read models say: a log projected in large batches (several
//! events of one invite in a batch, applied set-based in rounds) gives the rows that one event
//! per batch gives, and an event the read models refuse is parked alone while the rest of its
//! batch applies.

use chrono::Utc;
use events::event::{DeliveryMethod, InviteSent};
use events::{Actor, ActorKind, DeliveryId, DomainEvent, Envelope, EventMeta, InviteEvent, StreamId};
use rsvp_tests::load::{created_envelope, Lifecycles};
use rsvp_tests::{eventually, Service, TestEnv};
use std::time::Duration;
use uuid::Uuid;

/// The read-model tables a batch changes (the history is written the same way in both cases and
/// carries each topic's own offsets), each row as text, in a fixed order.
async fn read_models(env: &TestEnv) -> Vec<(String, Vec<String>)> {
    let mut all = Vec::new();
    for table in
        ["invites", "deliveries", "delivery_status_history", "invite_accepts", "inviter_counters", "invite_targets"]
    {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM {table} t ORDER BY 1"))
            .fetch_all(&env.pool)
            .await
            .unwrap();
        all.push((table.to_owned(), rows));
    }
    all
}

async fn version_of(env: &TestEnv, id: &StreamId) -> i64 {
    sqlx::query_scalar("SELECT version FROM invites WHERE invite_id = $1")
        .bind(id.as_uuid())
        .fetch_one(&env.pool)
        .await
        .unwrap()
}

async fn wait_projected(env: &TestEnv, n: i64) {
    eventually(Duration::from_secs(120), &format!("{n} events projected"), || async {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events").fetch_one(&env.pool).await.ok()?;
        (count == n).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_projected_in_large_batches_gives_the_rows_that_one_event_at_a_time_gives() {
    // Few invites under way at once: a batch holds several events of each, in several rounds.
    let mut mix = Lifecycles::new(2, 40, 3);
    let now = Utc::now();
    let log: Vec<Envelope> = (0..1500).map(|i| mix.next_event(now + chrono::Duration::milliseconds(i))).collect();
    let (one_by_one, batched) = (TestEnv::new().await, TestEnv::new().await);
    one_by_one.produce_events(&log).await;
    batched.produce_events(&log).await;

    let _single = Service::start("projector", &one_by_one, &[("RSVP_PROJECTOR_BATCH", "1".into())]).await;
    let _large = Service::start("projector", &batched, &[("RSVP_PROJECTOR_BATCH", "1000".into())]).await;
    wait_projected(&one_by_one, log.len() as i64).await;
    wait_projected(&batched, log.len() as i64).await;

    let (expected, actual) = (read_models(&one_by_one).await, read_models(&batched).await);
    for ((table, expected), (_, actual)) in expected.iter().zip(&actual) {
        assert!(!expected.is_empty(), "the mix writes {table}");
        assert_eq!(actual, expected, "{table} differs between large batches and one event at a time");
    }
    let statuses: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT status FROM invites ORDER BY 1").fetch_all(&batched.pool).await.unwrap();
    for status in ["accepted", "opened", "revoked"] {
        assert!(statuses.iter().any(|s| s == status), "some invite is {status}: {statuses:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_that_skips_a_version_is_parked_alone_and_the_rest_of_its_batch_applies() {
    let env = TestEnv::new().await;
    let now = Utc::now();
    let (a, b) = (created_envelope(env.tenant, now, 1), created_envelope(env.tenant, now, 2));
    let sent = |of: &Envelope, version: u64| Envelope {
        meta: EventMeta {
            event_id: Uuid::now_v7(),
            version,
            occurred_at: now,
            actor: Actor { kind: ActorKind::ApiKey, id: "test".into() },
            ..of.meta.clone()
        },
        event: DomainEvent::Invite(InviteEvent::Sent(InviteSent {
            delivery_id: DeliveryId::from_uuid(Uuid::now_v7()),
            method: DeliveryMethod::Email,
            target: "someone@example.com".into(),
            target_index: None,
            resend: false,
        })),
    };
    // b's version 2 never comes: its version 3 is a gap the read models refuse.
    let log = [a.clone(), b.clone(), sent(&a, 2), sent(&b, 3), sent(&a, 3)];
    env.produce_events(&log).await;
    let projector = Service::start("projector", &env, &[]).await;
    projector.wait_ready(Duration::from_secs(60)).await;

    let dlq = format!("{}.dlq", env.topic);
    let parked = eventually(Duration::from_secs(60), "the gap parked", || async {
        let records = env.read_raw(&dlq);
        (!records.is_empty()).then_some(records)
    })
    .await;
    assert_eq!(parked.len(), 1, "only the gap is parked");
    assert_eq!(parked[0].key.as_deref(), Some(b.key().as_str()));
    assert!(parked[0].header("rsvp_dlq_reason").unwrap().contains("is not at version 2"), "{:?}", parked[0].headers);
    eventually(Duration::from_secs(60), "a's sends applied", || async {
        (version_of(&env, &a.meta.stream).await == 3).then_some(())
    })
    .await;
    assert_eq!(version_of(&env, &b.meta.stream).await, 1);
    let deliveries: i64 = sqlx::query_scalar("SELECT count(*) FROM deliveries").fetch_one(&env.pool).await.unwrap();
    assert_eq!(deliveries, 2, "a's two deliveries, none of b's");
}
