//! Property tests: random command sequences never produce a history that breaks a rule; folding
//! any history with `evolve` gives the state `decide` saw; every event round-trips through JSON
//! and through its CloudEvents form unchanged.

mod common;
use chrono::{DateTime, Duration, Utc};
use common::*;
use events::*;
use proptest::prelude::*;
use std::collections::HashMap;
use uuid::Uuid;

const INVITES: usize = 5;
const TARGETS: [&str; 2] = ["bob@example.com", "eve@example.com"];
const MAX_SENDS: u32 = 3;
const QUOTA: u32 = 3;

#[derive(Debug, Clone)]
enum Step {
    Create { invite: usize, target: usize, scope: usize, multi: Option<u32>, days: Option<u32>, definition: bool },
    Send(usize),
    Resend(usize),
    Report { invite: usize, delivery: usize, status: DeliveryStatus },
    Engage(usize, EngagementKind),
    Accept { invite: usize, target: Option<usize> },
    AcceptMany { target: usize, invites: Vec<usize> },
    Decline(usize),
    Revoke(usize),
    Expire(usize),
    Wait(i64),
}

fn step() -> impl Strategy<Value = Step> {
    let i = 0..INVITES;
    prop_oneof![
        3 => (i.clone(), 0..2usize, 0..2usize, proptest::option::of(1..3u32), proptest::option::of(1..5u32), any::<bool>())
            .prop_map(|(invite, target, scope, multi, days, definition)| Step::Create { invite, target, scope, multi, days, definition }),
        2 => i.clone().prop_map(Step::Send),
        2 => i.clone().prop_map(Step::Resend),
        2 => (i.clone(), 0..4usize, prop_oneof![
            Just(DeliveryStatus::Sending), Just(DeliveryStatus::Sent), Just(DeliveryStatus::Delivered),
            Just(DeliveryStatus::Opened), Just(DeliveryStatus::Bounced), Just(DeliveryStatus::Failed)])
            .prop_map(|(invite, delivery, status)| Step::Report { invite, delivery, status }),
        1 => (i.clone(), prop_oneof![Just(EngagementKind::View), Just(EngagementKind::Click), Just(EngagementKind::Share), Just(EngagementKind::Unfurl)])
            .prop_map(|(invite, kind)| Step::Engage(invite, kind)),
        2 => (i.clone(), proptest::option::of(0..2usize)).prop_map(|(invite, target)| Step::Accept { invite, target }),
        1 => (0..2usize, proptest::collection::vec(i.clone(), 1..4)).prop_map(|(target, invites)| Step::AcceptMany { target, invites }),
        1 => i.clone().prop_map(Step::Decline),
        1 => i.clone().prop_map(Step::Revoke),
        1 => i.clone().prop_map(Step::Expire),
        1 => (1..3i64).prop_map(Step::Wait),
    ]
}

/// Runs the steps; returns the history (each change with the time it was decided at).
fn run(steps: &[Step]) -> (Tenant, Vec<(Change, DateTime<Utc>)>, Vec<InviteId>, DefinitionId) {
    let ids: Vec<InviteId> = (0..INVITES).map(|_| InviteId::from_uuid(Uuid::now_v7())).collect();
    let definition = DefinitionId::from_uuid(Uuid::now_v7());
    let mut tenant = Tenant::default();
    let mut history = Vec::new();
    let mut now = t0();
    let mut deliveries: HashMap<usize, Vec<DeliveryId>> = HashMap::new();
    let apply = |tenant: &mut Tenant,
                 command: TenantCommand,
                 now: DateTime<Utc>,
                 history: &mut Vec<(Change, DateTime<Utc>)>| {
        let before = history.len();
        if let Ok(changes) = tenant.decide(&command, &ctx_at(now)) {
            for change in changes {
                // The state decide saw is what folding the history so far gives.
                tenant.apply(change.stream, &change.event);
                history.push((change, now));
            }
        }
        history.len() > before
    };
    let rules = DefinitionRules {
        handle: "gold".into(),
        max_invites_per_inviter: Some(QUOTA),
        starts_at: None,
        ends_at: None,
        max_send_count: Some(MAX_SENDS),
        default_expiry_days: None,
        templates: None,
    };
    apply(&mut tenant, TenantCommand::CreateDefinition { definition_id: definition, rules }, now, &mut history);
    for step in steps {
        let command = match step.clone() {
            Step::Wait(days) => {
                now += Duration::days(days);
                continue;
            }
            Step::Create { invite, target, scope: s, multi, days, definition: with } => {
                let mut c = create_for(TARGETS[target]);
                c.scopes = vec![scope(&format!("ws-{s}"))];
                c.multi_use = multi.is_some();
                c.max_accepts = multi;
                c.expires_in_days = days;
                c.definition_id = with.then_some(definition);
                // Text no decision reads (a writer trims it, see the property below).
                c.message = Some("join us".into());
                c.recipient_names = vec!["Bob".into()];
                c.reply_to = vec!["ann@example.com".into()];
                c.template_variables = [("team".to_owned(), "Blue".to_owned())].into();
                if let Some(inviter) = &mut c.inviter {
                    inviter.email = Some("ann@example.com".into());
                }
                on(ids[invite], InviteCommand::Create(Box::new(c)))
            }
            Step::Send(i) => on(ids[i], InviteCommand::Send { method: DeliveryMethod::Email, target: None }),
            Step::Resend(i) => on(ids[i], InviteCommand::Resend { method: DeliveryMethod::Sms, target: None }),
            Step::Report { invite, delivery, status } => {
                let known = deliveries.get(&invite).cloned().unwrap_or_default();
                let delivery_id = known.get(delivery).copied().unwrap_or(DeliveryId::from_uuid(Uuid::nil()));
                TenantCommand::ReportDelivery { delivery_id, status, detail: None }
            }
            Step::Engage(i, kind) => on(ids[i], InviteCommand::Engage { kind, source: None }),
            Step::Accept { invite, target } => on(
                ids[invite],
                InviteCommand::Accept { accepted_by: None, target: target.map(|t| TARGETS[t].to_owned()) },
            ),
            Step::AcceptMany { target, invites } => TenantCommand::AcceptMany {
                target: TARGETS[target].to_owned(),
                invite_ids: invites.into_iter().map(|i| ids[i]).collect(),
                accepted_by: None,
            },
            Step::Decline(i) => on(ids[i], InviteCommand::Decline { reason: None }),
            Step::Revoke(i) => on(ids[i], InviteCommand::Revoke { reason: None }),
            Step::Expire(i) => on(ids[i], InviteCommand::Expire { reason: None }),
        };
        let before = history.len();
        apply(&mut tenant, command, now, &mut history);
        for (change, _) in &history[before..] {
            if let (StreamId::Invite(id), DomainEvent::Invite(InviteEvent::Sent(s))) = (&change.stream, &change.event) {
                let i = ids.iter().position(|x| x == id).unwrap();
                deliveries.entry(i).or_default().push(s.delivery_id);
            }
        }
    }
    (tenant, history, ids, definition)
}

/// Commands whose decisions read what a tenant keeps of its invites: accepting several at once
/// for each target, and on each invite send, resend, accept by each target and revoke.
fn probes(ids: &[InviteId]) -> Vec<TenantCommand> {
    let mut probes: Vec<TenantCommand> = TARGETS
        .iter()
        .map(|t| TenantCommand::AcceptMany { target: (*t).into(), invite_ids: ids.to_vec(), accepted_by: None })
        .collect();
    for &id in ids {
        probes.push(on(id, InviteCommand::Send { method: DeliveryMethod::Email, target: None }));
        probes.push(on(id, InviteCommand::Resend { method: DeliveryMethod::Sms, target: Some(TARGETS[0].into()) }));
        for t in TARGETS {
            probes.push(on(id, InviteCommand::Accept { accepted_by: None, target: Some(t.into()) }));
        }
        probes.push(on(id, InviteCommand::Revoke { reason: None }));
    }
    probes
}

fn envelope(tenant: TenantId, change: &Change, at: DateTime<Utc>) -> Envelope {
    Envelope::new(
        EventMeta {
            event_id: Uuid::now_v7(),
            stream: change.stream,
            tenant_id: tenant,
            version: change.version,
            // Nanoseconds, as the writer's clock gives them: the CloudEvents time must keep them.
            occurred_at: at + chrono::Duration::nanoseconds(123_456_789),
            actor: Actor { kind: ActorKind::ApiKey, id: "key-1".into() },
            correlation_id: Some(Uuid::now_v7()),
            causation_id: None,
            idempotency_key: Some("k-1".into()),
            request_hash: Some("abc".into()),
        },
        change.event.clone(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn random_command_sequences_never_break_a_rule(steps in proptest::collection::vec(step(), 1..60)) {
        let (_, history, _, definition) = run(&steps);
        let mut versions: HashMap<StreamId, u64> = HashMap::new();
        let mut invites: HashMap<StreamId, InviteState> = HashMap::new();
        let mut created_under_definition: HashMap<String, u32> = HashMap::new();
        for (change, at) in &history {
            // Versions per stream are consecutive from 1.
            let v = versions.entry(change.stream).or_default();
            prop_assert_eq!(change.version, *v + 1);
            *v += 1;
            let DomainEvent::Invite(event) = &change.event else { continue };
            let before = invites.remove(&change.stream).unwrap_or_default();
            match (before.live(), event) {
                (None, InviteEvent::Created(c)) => {
                    if c.definition_id == Some(definition) {
                        let n = created_under_definition.entry(c.inviter.id.clone()).or_default();
                        *n += 1;
                        prop_assert!(*n <= QUOTA, "quota exceeded");
                    }
                }
                (None, other) => prop_assert!(false, "{:?} before the invite existed", other),
                (Some(_), InviteEvent::Created(_)) => prop_assert!(false, "created twice"),
                (Some(i), InviteEvent::DeliveryStatusChanged(_)) => prop_assert!(!i.deliveries.is_empty()),
                (Some(i), other) => {
                    // Nothing but late delivery reports after the end; after the expiry time,
                    // nothing but the event that records it.
                    prop_assert_eq!(i.lifecycle, Lifecycle::Open, "{:?} after the end", other);
                    if !matches!(other, InviteEvent::Expired(_)) {
                        prop_assert!(!i.is_expired_at(*at), "{:?} after expiry", other);
                    }
                    if let InviteEvent::Sent(_) = other {
                        if i.created.definition_id == Some(definition) {
                            prop_assert!(i.counters.sends < MAX_SENDS, "too many sends");
                        }
                    }
                    if let InviteEvent::Accepted(_) = other {
                        if let Some(max) = i.max_accepts() {
                            prop_assert!((i.accepts.len() as u32) < max, "too many accepts");
                        }
                    }
                }
            }
            invites.insert(change.stream, evolve(before, event));
        }
    }

    #[test]
    fn folding_a_history_reproduces_the_state_decide_saw(steps in proptest::collection::vec(step(), 1..60)) {
        let (tenant, history, ids, _) = run(&steps);
        for &id in &ids {
            let folded = history
                .iter()
                .filter(|(c, _)| c.stream == StreamId::Invite(id))
                .fold(InviteState::Absent, |state, (c, _)| match &c.event {
                    DomainEvent::Invite(e) => evolve(state, e),
                    DomainEvent::Definition(_) => state,
                });
            prop_assert_eq!(&folded, tenant.invite_state(id));
        }
        // And a tenant rebuilt from the history alone decides the same way.
        let mut rebuilt = Tenant::default();
        for (c, _) in &history {
            rebuilt.apply(c.stream, &c.event);
        }
        prop_assert_eq!(rebuilt.invite_count(), tenant.invite_count());
        for &id in &ids {
            prop_assert_eq!(rebuilt.invite_state(id), tenant.invite_state(id));
            let probe = TenantCommand::Invite {
                invite_id: id,
                command: InviteCommand::Accept { accepted_by: Some("probe".into()), target: None },
            };
            let at = ctx_at(t0() + chrono::Duration::days(3));
            prop_assert_eq!(rebuilt.decide(&probe, &at), tenant.decide(&probe, &at));
        }
    }

    #[test]
    fn a_state_trimmed_of_the_text_decisions_never_read_decides_as_the_whole_one(steps in proptest::collection::vec(step(), 1..60)) {
        // What the writer holds (`invite::trim_for_decisions` on every creation it folds).
        let (_, history, ids, _) = run(&steps);
        let (mut whole, mut trimmed) = (Tenant::default(), Tenant::default());
        for (change, at) in &history {
            whole.apply(change.stream, &change.event);
            let mut event = change.event.clone();
            if let DomainEvent::Invite(InviteEvent::Created(created)) = &mut event {
                invite::trim_for_decisions(created);
                prop_assert!(created.message.is_none() && created.inviter.name.is_none());
            }
            trimmed.apply(change.stream, &event);
            let ctx = ctx_at(*at + chrono::Duration::hours(1));
            for probe in &probes(&ids) {
                prop_assert_eq!(trimmed.decide(probe, &ctx), whole.decide(probe, &ctx), "{:?}", probe);
            }
        }
    }

    #[test]
    fn a_tenant_read_back_from_a_snapshot_is_the_one_written_and_decides_alike(steps in proptest::collection::vec(step(), 1..60)) {
        // The command API's snapshots (`command_api::snapshot`): MessagePack with field names.
        let (tenant, history, ids, definition) = run(&steps);
        let bytes = rmp_serde::to_vec_named(&tenant).unwrap();
        let back: Tenant = rmp_serde::from_slice(&bytes).unwrap();
        for &id in &ids {
            prop_assert_eq!(back.invite(id), tenant.invite(id));
        }
        prop_assert_eq!(back.definition(definition), tenant.definition(definition));
        let at = history.last().map_or_else(t0, |(_, at)| *at);
        let ctx = ctx_at(at + chrono::Duration::hours(1));
        let mut probes = probes(&ids);
        // Creates under the definition too: its quotas are part of the state.
        for i in 0..ids.len() {
            let mut create = create_for(TARGETS[i % 2]);
            create.definition_id = Some(definition);
            probes.push(on(InviteId::from_uuid(Uuid::from_u128(i as u128 + 1)), InviteCommand::Create(Box::new(create))));
        }
        for probe in &probes {
            prop_assert_eq!(back.decide(probe, &ctx), tenant.decide(probe, &ctx), "{:?}", probe);
        }
    }

    #[test]
    fn every_event_round_trips_through_json_and_cloudevents_unchanged(steps in proptest::collection::vec(step(), 1..40)) {
        let (_, history, _, _) = run(&steps);
        let tenant = TenantId::from_uuid(Uuid::now_v7());
        for (change, at) in &history {
            let original = envelope(tenant, change, *at);
            let json = serde_json::to_string(&original.to_json()).unwrap();
            let back = Envelope::from_json(serde_json::from_str(&json).unwrap()).unwrap();
            prop_assert_eq!(&back, &original);
            let headers = original.cloudevents_headers();
            let lookup = |name: &str| headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str());
            let from_kafka = Envelope::from_cloudevent(lookup, &original.data_json()).unwrap();
            prop_assert_eq!(&from_kafka, &original);
        }
    }
}
