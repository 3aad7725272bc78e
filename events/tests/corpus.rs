//! The fixed corpus: serialized events checked into the repository must load forever.
//!
//! `tests/corpus/` holds one JSON document per event type and schema version (as
//! `Envelope::to_json` wrote it) and Kafka records (headers and value) as written by earlier
//! releases. Files are never edited. A new event type or version adds files:
//! `RSVP_WRITE_CORPUS=1 cargo test -p events --test corpus` writes the missing ones, and leaves
//! every existing file as it is.

use chrono::{TimeZone, Utc};
use events::event::*;
use events::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// This crate's folder, read when the test runs (cargo sets it): a test binary reused from a
/// build in another checkout (a shared `CARGO_TARGET_DIR`) must read this checkout's corpus.
fn manifest_dir() -> String {
    std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned())
}

fn dir() -> PathBuf {
    Path::new(&manifest_dir()).join("tests/corpus")
}

fn read(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir().join(name)).unwrap_or_else(|e| panic!("corpus file {name}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// One sample of every event type at its current version (the generator's input).
fn samples() -> Vec<Envelope> {
    let at = Utc.with_ymd_and_hms(2026, 11, 23, 9, 30, 0).unwrap();
    let invite = StreamId::Invite(InviteId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001)));
    let definition = DefinitionId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_00d1));
    let delivery = DeliveryId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_00e1));
    let rules = DefinitionRules {
        handle: "gold-definition".into(),
        max_invites_per_inviter: Some(10),
        starts_at: Some(at),
        ends_at: Some(at + chrono::Duration::days(30)),
        max_send_count: Some(3),
        default_expiry_days: Some(30),
        templates: None,
    };
    let created = InviteCreated {
        inviter: Inviter {
            id: "creator-12345".into(),
            name: Some("Ann".into()),
            email: Some("ann@example.com".into()),
            email_index: None,
        },
        targets: vec![Target {
            kind: TargetKind::Email,
            value: "alex@example.org".into(),
            name: Some("Alex".into()),
            index: Some("l2f9pmx4bqVQy3bP9vN0Jc8Vq4rFzv7w2cJgq7h3N1M".into()),
        }],
        recipient_names: vec!["Alex".into()],
        message: Some("Hey Alex, thought you'd like this!".into()),
        invitation_type: InvitationType::MultiUse { max_accepts: Some(5) },
        expires_at: Some(at + chrono::Duration::days(30)),
        scopes: vec![Scope {
            kind: "workspace".into(),
            id: "workspace-12345".into(),
            name: Some("Development Team".into()),
        }],
        reply_to: vec!["help@example.org".into()],
        reply_to_index: vec!["hY0oN8k1sNDyWQ0mIXv7hb9eSbyHclY4bU06DXhTiQI".into()],
        metadata: BTreeMap::from([("plan".to_owned(), serde_json::json!({ "tier": "gold" }))]),
        personal_metadata: vec![],
        template_variables: BTreeMap::from([("first_name".to_owned(), "Alex".to_owned())]),
        widget_id: Some("widget-12345".into()),
        flow_id: Some("8DRRA4XC".into()),
        template_id: None,
        landing_url: Some("https://app.example.org/join".into()),
        definition_id: Some(definition),
        token: None,
        source: None,
        subtype: None,
    };
    let closed = InviteClosed { reason: Some("sent by mistake".into()) };
    let invite_events = vec![
        InviteEvent::Created(Box::new(created)),
        InviteEvent::Sent(InviteSent {
            delivery_id: delivery,
            method: DeliveryMethod::Email,
            target: "alex@example.org".into(),
            target_index: Some("l2f9pmx4bqVQy3bP9vN0Jc8Vq4rFzv7w2cJgq7h3N1M".into()),
            resend: false,
        }),
        InviteEvent::DeliveryStatusChanged(DeliveryStatusChanged {
            delivery_id: delivery,
            status: DeliveryStatus::Delivered,
            detail: Some("250 ok".into()),
        }),
        InviteEvent::Engaged(InviteEngaged { kind: EngagementKind::Click, source: Some("email".into()) }),
        InviteEvent::Accepted(InviteAccepted {
            accepted_by: Some("user-9".into()),
            target: Some("alex@example.org".into()),
            target_index: Some("l2f9pmx4bqVQy3bP9vN0Jc8Vq4rFzv7w2cJgq7h3N1M".into()),
        }),
        InviteEvent::AcceptedElsewhere(InviteAcceptedElsewhere {
            accepted_invite_id: InviteId::from_uuid(Uuid::from_u128(2)),
        }),
        InviteEvent::Declined(closed.clone()),
        InviteEvent::Revoked(closed.clone()),
        InviteEvent::Expired(closed),
        InviteEvent::PersonalDataErased(PersonalDataErased {
            subjects: vec!["l2f9pmx4bqVQy3bP9vN0Jc8Vq4rFzv7w2cJgq7h3N1M".into()],
            all: false,
            reason: ErasureReason::Request,
        }),
    ];
    let mut all: Vec<(StreamId, DomainEvent)> =
        invite_events.into_iter().map(|e| (invite, DomainEvent::Invite(e))).collect();
    all.push((StreamId::Definition(definition), DomainEvent::Definition(DefinitionEvent::Created(rules.clone()))));
    all.push((StreamId::Definition(definition), DomainEvent::Definition(DefinitionEvent::Updated(rules))));
    all.into_iter()
        .enumerate()
        .map(|(i, (stream, event))| {
            Envelope::new(
                EventMeta {
                    event_id: Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_1000 + i as u128),
                    stream,
                    tenant_id: TenantId::from_uuid(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0aaa)),
                    version: i as u64 + 1,
                    occurred_at: at,
                    actor: Actor { kind: ActorKind::ApiKey, id: "cddf60a5bfd742b5".into() },
                    correlation_id: Some(Uuid::from_u128(0xc0)),
                    causation_id: Some(Uuid::from_u128(0xca)),
                    idempotency_key: Some("create-alex-1".into()),
                    request_hash: Some("9f86d081884c7d65".into()),
                },
                event,
            )
        })
        .collect()
}

fn file_name(e: &Envelope) -> String {
    format!("{}.v{}.json", e.event_type(), e.event.schema_version())
}

/// Optional fields added to a type after its version was frozen, each with a document of its own
/// (`<type>.v<n>.<what>.json`), so that what they say loads forever too.
fn added_fields() -> Vec<(String, Envelope)> {
    let mut created = samples().remove(0);
    let Envelope { event: DomainEvent::Invite(InviteEvent::Created(data)), .. } = &mut created else {
        panic!("the first sample is an InviteCreated")
    };
    // The Vortex dialect's `source` and `subtype`, which exist nowhere else in rsvp.
    data.source = Some("email-share".into());
    data.subtype = Some("referral".into());
    vec![(format!("InviteCreated.v{}.source-subtype.json", created.event.schema_version()), created)]
}

#[test]
fn the_corpus_holds_every_event_type_at_its_current_version() {
    if std::env::var("RSVP_WRITE_CORPUS").is_ok() {
        let named = samples().into_iter().map(|e| (file_name(&e), e));
        for (name, e) in named.chain(added_fields()) {
            let path = dir().join(name);
            if !path.exists() {
                std::fs::write(&path, serde_json::to_string_pretty(&e.to_json()).unwrap() + "\n").unwrap();
            }
        }
    }
    for (name, _) in added_fields() {
        assert!(dir().join(&name).exists(), "the corpus lacks {name}: generate it (see the module docs)");
    }
    for (event_type, version) in event::EVENT_TYPES {
        let name = format!("{event_type}.v{version}.json");
        assert!(dir().join(&name).exists(), "the corpus lacks {name}: generate it (see the module docs)");
    }
}

#[test]
fn every_document_of_the_corpus_still_loads_and_says_what_it_said() {
    let mut loaded = 0;
    for entry in std::fs::read_dir(dir()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.starts_with("kafka-") {
            continue;
        }
        let doc = read(&name);
        let envelope = Envelope::from_json(doc.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(envelope.event_type(), doc["type"], "{name}");
        assert_eq!(envelope.meta.version, doc["version"].as_u64().unwrap(), "{name}");
        assert_eq!(envelope.meta.event_id.to_string(), doc["event_id"], "{name}");
        // Current-version documents come back byte for byte.
        if doc["schema_version"].as_u64() == Some(u64::from(envelope.event.schema_version())) {
            assert_eq!(envelope.to_json(), doc, "{name}");
        }
        loaded += 1;
    }
    assert!(loaded >= event::EVENT_TYPES.len());
}

#[test]
fn a_kafka_record_of_the_first_release_is_upcast_to_the_current_invite_created() {
    let record = read("kafka-InviteCreated.v1.json");
    let headers = record["headers"].as_object().unwrap();
    let lookup = |name: &str| headers.get(name).and_then(|v| v.as_str());
    let envelope = Envelope::from_cloudevent(lookup, record["value"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(envelope.meta.stream.subject(), "invites/01a2066f-6cbb-74db-aaa2-41811281b828");
    assert_eq!(envelope.key(), record["key"]);
    assert_eq!(envelope.meta.version, 1);
    assert_eq!(envelope.meta.actor.kind, ActorKind::ApiKey);
    let Some((_, InviteEvent::Created(created))) = envelope.invite_event() else { panic!("not an InviteCreated") };
    assert_eq!(created.inviter.id, "user-1");
    assert_eq!(created.targets[0].value, "bob@example.com");
    assert_eq!(created.recipient_names, Vec::<String>::new(), "the v1 → v2 upcaster filled the new field");
    assert_eq!(
        created.token.as_ref().map(LinkToken::as_str),
        Some("WdxS8RS1in1g02wM15D7aDqT5p_v3hn9"),
        "its legacy token"
    );
    // Written again, it is a current (v3) event.
    assert_eq!(envelope.cloudevents_type(), "dev.rsvp.invite.InviteCreated.v3");
}

/// Found by the `event_decoding` fuzz target: a document's time is read leniently (`-026-11-23`
/// is the year -26), but a record's `time` header must be RFC 3339, which writes years 0000-9999
/// only, so such an event decoded from a document could never be written as a record again.
#[test]
fn a_document_whose_time_rfc_3339_cannot_write_is_refused_not_decoded() {
    let mut doc = read("InviteAccepted.v1.json");
    for time in ["-026-11-23T09:30:00Z", "0000-11-23T09:30:00Z", "+10000-01-01T00:00:00Z"] {
        doc["occurred_at"] = serde_json::json!(time);
        match Envelope::from_json(doc.clone()) {
            Err(DecodeError::InvalidAttribute("time", _)) => {}
            other => panic!("{time}: {other:?}"),
        }
    }
}

#[test]
fn unknown_types_and_versions_from_the_future_are_refused_not_guessed() {
    let data = serde_json::json!({});
    assert!(matches!(DomainEvent::from_data("InviteTeleported", 1, data.clone()), Err(DecodeError::UnknownType(_))));
    assert!(matches!(DomainEvent::from_data("InviteCreated", 4, data), Err(DecodeError::UnknownVersion(_, 4))));
}

#[test]
fn a_v1_invite_created_document_gets_its_recipient_names_from_the_targets() {
    let envelope = Envelope::from_json(read("InviteCreated.v1.json")).unwrap();
    let Some((_, InviteEvent::Created(created))) = envelope.invite_event() else { panic!("not an InviteCreated") };
    assert_eq!(created.recipient_names, ["Alex"]);
    assert_eq!(envelope.event.schema_version(), 3);
}

#[test]
fn an_invite_created_with_the_vortex_source_and_subtype_keeps_them() {
    let envelope = Envelope::from_json(read("InviteCreated.v2.source-subtype.json")).unwrap();
    let Some((_, InviteEvent::Created(created))) = envelope.invite_event() else { panic!("not an InviteCreated") };
    assert_eq!((created.source.as_deref(), created.subtype.as_deref()), (Some("email-share"), Some("referral")));
    // Documents from before the fields existed load without them.
    let older = Envelope::from_json(read("InviteCreated.v2.json")).unwrap();
    let Some((_, InviteEvent::Created(older))) = older.invite_event() else { panic!("not an InviteCreated") };
    assert_eq!((older.source.as_deref(), older.subtype.as_deref()), (None, None));
}
