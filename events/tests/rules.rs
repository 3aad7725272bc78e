//! Every rule of an invitation's life, as given / when / then sentences over `decide`.

mod common;
use common::*;
use events::*;
use uuid::Uuid;

fn send() -> InviteCommand {
    InviteCommand::Send { method: DeliveryMethod::Email, target: None }
}
fn resend() -> InviteCommand {
    InviteCommand::Resend { method: DeliveryMethod::Email, target: None }
}
fn accept() -> InviteCommand {
    InviteCommand::Accept { accepted_by: Some("user-9".into()), target: None }
}
fn create_cmd(id: InviteId, c: CreateInvite) -> TenantCommand {
    on(id, InviteCommand::Create(Box::new(c)))
}
fn new_id() -> InviteId {
    InviteId::from_uuid(Uuid::now_v7())
}
fn definition(world: &mut World, rules: DefinitionRules) -> DefinitionId {
    let id = DefinitionId::from_uuid(Uuid::now_v7());
    world.given(TenantCommand::CreateDefinition { definition_id: id, rules });
    id
}
fn rules(handle: &str) -> DefinitionRules {
    DefinitionRules {
        handle: handle.into(),
        max_invites_per_inviter: None,
        starts_at: None,
        ends_at: None,
        max_send_count: None,
        default_expiry_days: None,
        templates: None,
    }
}

// --- create ---

#[test]
fn creating_an_invite_records_every_fact_and_the_link_token_from_the_context() {
    let world = World::new();
    let mut c = create_for("bob@example.com");
    c.message = Some("join us".into());
    c.scopes = vec![scope("ws-1")];
    c.reply_to = vec!["Help@Example.com".into()];
    c.recipient_names = vec!["Bob".into()];
    c.metadata = [("plan".to_owned(), serde_json::json!({ "tier": "gold" }))].into();
    c.template_variables = [("first_name".to_owned(), "Bob".to_owned())].into();
    c.widget_id = Some("w-1".into());
    c.flow_id = Some("f-1".into());
    c.template_id = Some("t-1".into());
    c.landing_url = Some("https://app.example.com/join".into());
    c.multi_use = true;
    c.max_accepts = Some(5);
    c.expires_in_days = Some(3);
    let mut world = world;
    let definition = definition(&mut world, rules("spring"));
    c.definition_id = Some(definition);
    let ctx = ctx();
    let changes = world.tenant.decide(&create_cmd(new_id(), c.clone()), &ctx).unwrap();
    assert_eq!(event_types(&changes), ["InviteCreated"]);
    assert_eq!(changes[0].version, 1);
    let DomainEvent::Invite(InviteEvent::Created(created)) = &changes[0].event else { panic!() };
    assert_eq!(created.token, None, "a link token is derived, never recorded");
    assert_eq!(created.inviter, c.inviter.unwrap());
    let indexed: Vec<Target> = c
        .targets
        .iter()
        .map(|t| Target { index: Some(secrets().blind_index(t.kind, &t.value)), ..t.clone() })
        .collect();
    assert_eq!(created.targets, indexed, "each address with its blind index");
    assert_eq!(created.recipient_names, ["Bob"]);
    assert_eq!(created.message.as_deref(), Some("join us"));
    assert_eq!(created.scopes, c.scopes);
    assert_eq!(created.reply_to, ["help@example.com"]);
    assert_eq!(created.metadata, c.metadata);
    assert_eq!(created.template_variables, c.template_variables);
    let ids = (&created.widget_id, &created.flow_id, &created.template_id);
    assert_eq!(ids, (&c.widget_id, &c.flow_id, &c.template_id));
    assert_eq!(created.landing_url, c.landing_url);
    assert_eq!(created.invitation_type, InvitationType::MultiUse { max_accepts: Some(5) });
    assert_eq!(created.expires_at, Some(later(3)), "days count from the context's now");
    assert_eq!(created.definition_id, Some(definition));
}

#[test]
fn an_invite_cannot_be_created_twice() {
    let mut world = World::new();
    let id = new_id();
    world.given(create_cmd(id, create_for("a@example.com")));
    assert_eq!(world.when(create_cmd(id, create_for("a@example.com"))), Err(Rejection::InviteAlreadyExists));
}

#[test]
fn an_invite_needs_an_inviter_and_at_least_one_valid_target() {
    let world = World::new();
    let mut no_inviter = create_for("a@example.com");
    no_inviter.inviter = None;
    assert_eq!(world.when(create_cmd(new_id(), no_inviter)).unwrap_err().field(), Some("inviter"));
    let mut no_targets = create_for("a@example.com");
    no_targets.targets.clear();
    assert_eq!(world.when(create_cmd(new_id(), no_targets)).unwrap_err().field(), Some("targets"));
    let mut bad_email = create_for("a@example.com");
    bad_email.targets.push(email("not an email"));
    let rejection = world.when(create_cmd(new_id(), bad_email)).unwrap_err();
    assert_eq!(rejection.field(), Some("targets[1].value"));
    assert_eq!(rejection.class(), RejectionClass::Invalid);
    let mut bad_phone = create_for("a@example.com");
    bad_phone.targets = vec![Target { kind: TargetKind::Phone, value: "12ab".into(), name: None, index: None }];
    assert_eq!(world.when(create_cmd(new_id(), bad_phone)).unwrap_err().field(), Some("targets[0].value"));
}

#[test]
fn phone_and_internal_and_share_targets_are_accepted() {
    let world = World::new();
    let mut c = create_for("a@example.com");
    c.targets = vec![
        Target { kind: TargetKind::Phone, value: "+1 (212) 555-5555".into(), name: None, index: None },
        Target { kind: TargetKind::Internal, value: "user-7".into(), name: Some("Sam".into()), index: None },
        Target { kind: TargetKind::Share, value: "link".into(), name: None, index: None },
    ];
    assert!(world.when(create_cmd(new_id(), c)).is_ok());
}

#[test]
fn a_single_use_invite_takes_no_max_accepts_and_a_multi_use_one_takes_at_least_one() {
    let world = World::new();
    let mut single = create_for("a@example.com");
    single.max_accepts = Some(3);
    assert_eq!(world.when(create_cmd(new_id(), single)).unwrap_err().field(), Some("max_accepts"));
    let mut zero = create_for("a@example.com");
    zero.multi_use = true;
    zero.max_accepts = Some(0);
    assert_eq!(world.when(create_cmd(new_id(), zero)).unwrap_err().field(), Some("max_accepts"));
}

#[test]
fn expiry_is_given_as_a_future_time_or_in_days_counted_from_now_but_not_both() {
    let mut world = World::new();
    let mut past = create_for("a@example.com");
    past.expires_at = Some(later(-1));
    assert_eq!(world.when(create_cmd(new_id(), past)).unwrap_err().field(), Some("expires_at"));
    let mut both = create_for("a@example.com");
    both.expires_at = Some(later(1));
    both.expires_in_days = Some(1);
    assert_eq!(world.when(create_cmd(new_id(), both)).unwrap_err().field(), Some("expires_in_days"));
    let mut days = create_for("a@example.com");
    days.expires_in_days = Some(30);
    let id = world.create(days);
    assert_eq!(world.invite(id).created.expires_at, Some(later(30)));
}

#[test]
fn reply_to_addresses_and_the_landing_url_are_checked() {
    let world = World::new();
    let mut bad_reply = create_for("a@example.com");
    bad_reply.reply_to = vec!["nope".into()];
    assert_eq!(world.when(create_cmd(new_id(), bad_reply)).unwrap_err().field(), Some("reply_to[0]"));
    let mut bad_url = create_for("a@example.com");
    bad_url.landing_url = Some("javascript:alert(1)".into());
    assert_eq!(world.when(create_cmd(new_id(), bad_url)).unwrap_err().field(), Some("landing_url"));
}

// --- definitions ---

#[test]
fn creating_past_an_inviters_quota_is_refused_and_the_remaining_quota_is_derivable() {
    let mut world = World::new();
    let def = definition(&mut world, DefinitionRules { max_invites_per_inviter: Some(2), ..rules("gold") });
    let mut c = create_for("a@example.com");
    c.definition_id = Some(def);
    assert_eq!(world.tenant.remaining_quota(def, "ann"), Some(2));
    world.create(c.clone());
    assert_eq!(world.tenant.remaining_quota(def, "ann"), Some(1));
    world.create(c.clone());
    assert_eq!(world.tenant.remaining_quota(def, "ann"), Some(0));
    assert_eq!(world.when(create_cmd(new_id(), c.clone())), Err(Rejection::QuotaExhausted { max: 2 }));
    // Another inviter has a quota of their own.
    c.inviter = Some(Inviter { id: "bea".into(), name: None, email: None, email_index: None });
    assert!(world.when(create_cmd(new_id(), c)).is_ok());
}

#[test]
fn creating_outside_the_definitions_active_window_is_refused() {
    let mut world = World::new();
    let def =
        definition(&mut world, DefinitionRules { starts_at: Some(later(1)), ends_at: Some(later(2)), ..rules("w") });
    let mut c = create_for("a@example.com");
    c.definition_id = Some(def);
    assert_eq!(world.when(create_cmd(new_id(), c.clone())), Err(Rejection::OutsideActiveWindow));
    assert!(world.when_at(create_cmd(new_id(), c.clone()), later(1)).is_ok());
    assert_eq!(world.when_at(create_cmd(new_id(), c), later(2)), Err(Rejection::OutsideActiveWindow));
}

#[test]
fn an_invite_naming_an_unknown_definition_is_invalid_input() {
    let world = World::new();
    let mut c = create_for("a@example.com");
    c.definition_id = Some(DefinitionId::from_uuid(Uuid::now_v7()));
    let rejection = world.when(create_cmd(new_id(), c)).unwrap_err();
    assert_eq!(rejection.field(), Some("definition_id"));
    assert_eq!(rejection.class(), RejectionClass::Invalid);
}

#[test]
fn the_definitions_default_expiry_applies_when_the_invite_gives_none() {
    let mut world = World::new();
    let def = definition(&mut world, DefinitionRules { default_expiry_days: Some(14), ..rules("d") });
    let mut c = create_for("a@example.com");
    c.definition_id = Some(def);
    let id = world.create(c);
    assert_eq!(world.invite(id).created.expires_at, Some(later(14)));
}

#[test]
fn definition_handles_are_unique_per_tenant_and_updates_keep_them_unique() {
    let mut world = World::new();
    definition(&mut world, rules("gold"));
    let silver = definition(&mut world, rules("silver"));
    let taken = world.when(TenantCommand::CreateDefinition {
        definition_id: DefinitionId::from_uuid(Uuid::now_v7()),
        rules: rules("gold"),
    });
    assert_eq!(taken, Err(Rejection::HandleTaken { handle: "gold".into() }));
    let renamed = world.when(TenantCommand::UpdateDefinition { definition_id: silver, rules: rules("gold") });
    assert_eq!(renamed, Err(Rejection::HandleTaken { handle: "gold".into() }));
    let changes = world.given(TenantCommand::UpdateDefinition { definition_id: silver, rules: rules("platinum") });
    assert_eq!(event_types(&changes), ["DefinitionUpdated"]);
    assert_eq!(changes[0].version, 2);
    assert!(world.tenant.definition_by_handle("platinum").is_some());
    assert!(world.tenant.definition_by_handle("silver").is_none());
}

#[test]
fn times_outside_the_years_1_to_9999_are_refused_as_no_read_model_could_hold_them() {
    let mut world = World::new();
    let ancient = "-5000-01-01T00:00:00Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let far = "+20000-01-01T00:00:00Z".parse::<chrono::DateTime<chrono::Utc>>().unwrap();
    let new_definition =
        |rules| TenantCommand::CreateDefinition { definition_id: DefinitionId::from_uuid(Uuid::now_v7()), rules };
    let starts = world.when(new_definition(DefinitionRules { starts_at: Some(ancient), ..rules("old") }));
    assert_eq!(starts.unwrap_err().field(), Some("starts_at"));
    let ends = world.when(new_definition(DefinitionRules { ends_at: Some(far), ..rules("far") }));
    assert_eq!(ends.unwrap_err().field(), Some("ends_at"));
    let kept = definition(&mut world, rules("kept"));
    let update = world.when(TenantCommand::UpdateDefinition {
        definition_id: kept,
        rules: DefinitionRules { starts_at: Some(ancient), ..rules("kept") },
    });
    assert_eq!(update.unwrap_err().field(), Some("starts_at"));
    let mut c = create_for("a@example.com");
    c.expires_at = Some(far);
    assert_eq!(world.when(create_cmd(new_id(), c)).unwrap_err().field(), Some("expires_at"));
}

// --- deliveries ---

#[test]
fn sending_records_a_delivery_and_raises_the_send_count() {
    let mut world = World::new();
    let id = world.create(create_for("bob@example.com"));
    let changes = world.given(on(id, send()));
    let DomainEvent::Invite(InviteEvent::Sent(sent)) = &changes[0].event else { panic!() };
    assert_eq!(sent.target, "bob@example.com");
    assert!(!sent.resend);
    assert_eq!(world.invite(id).counters.sends, 1);
    assert_eq!(world.invite(id).status_at(t0()), InviteStatus::Queued);
}

#[test]
fn creating_with_send_is_one_decision_giving_the_invite_and_its_first_delivery() {
    let mut world = World::new();
    let id = new_id();
    let c = CreateInvite { send: Some(DeliveryMethod::Email), ..create_for("bob@example.com") };
    let changes = world.given(create_cmd(id, c));
    assert_eq!(changes.iter().map(|c| c.version).collect::<Vec<_>>(), [1, 2]);
    assert!(changes.iter().all(|c| c.stream == StreamId::Invite(id)));
    let DomainEvent::Invite(InviteEvent::Sent(sent)) = &changes[1].event else { panic!("{changes:?}") };
    assert_eq!((sent.method, sent.target.as_str(), sent.resend), (DeliveryMethod::Email, "bob@example.com", false));
    assert_eq!(world.invite(id).counters.sends, 1);
    assert_eq!(world.invite(id).status_at(t0()), InviteStatus::Queued);
    assert_eq!(world.when(on(id, send())), Err(Rejection::AlreadySent));
    // A create that is refused sends nothing either.
    let bad = CreateInvite { send: Some(DeliveryMethod::Email), ..create_for("not-an-address") };
    assert!(world.when(create_cmd(new_id(), bad)).is_err());
}

#[test]
fn an_invite_is_sent_once_then_resent_and_never_resent_before_it_was_sent() {
    let mut world = World::new();
    let id = world.create(create_for("bob@example.com"));
    assert_eq!(world.when(on(id, resend())), Err(Rejection::NotSentYet));
    world.given(on(id, send()));
    assert_eq!(world.when(on(id, send())), Err(Rejection::AlreadySent));
    let changes = world.given(on(id, resend()));
    let DomainEvent::Invite(InviteEvent::Sent(sent)) = &changes[0].event else { panic!() };
    assert!(sent.resend);
    assert_eq!(world.invite(id).counters.sends, 2);
}

#[test]
fn resending_stops_at_the_definitions_max_send_count() {
    let mut world = World::new();
    let def = definition(&mut world, DefinitionRules { max_send_count: Some(2), ..rules("m") });
    let mut c = create_for("bob@example.com");
    c.definition_id = Some(def);
    let id = world.create(c);
    world.given(on(id, send()));
    world.given(on(id, resend()));
    assert_eq!(world.when(on(id, resend())), Err(Rejection::MaxSendsReached { max: 2 }));
}

#[test]
fn an_open_reported_before_or_without_the_delivery_counts_the_delivery_once() {
    let mut world = World::new();
    let id = world.create(create_for("bob@example.com"));
    let mut deliveries = Vec::new();
    for command in [send(), resend()] {
        let changes = world.given(on(id, command));
        let DomainEvent::Invite(InviteEvent::Sent(sent)) = &changes[0].event else { panic!() };
        deliveries.push(sent.delivery_id);
    }
    let report = |delivery_id, status| TenantCommand::ReportDelivery { delivery_id, status, detail: None };
    world.given(report(deliveries[0], DeliveryStatus::Opened));
    assert_eq!(world.invite(id).counters.deliveries, 1, "the open says it arrived");
    assert_eq!(world.invite(id).status_at(t0()), InviteStatus::Opened);
    world.given(report(deliveries[1], DeliveryStatus::Delivered));
    world.given(report(deliveries[1], DeliveryStatus::Opened));
    assert_eq!(world.invite(id).counters.deliveries, 2, "delivered then opened is one delivery");
}

#[test]
fn a_delivery_goes_forward_from_queued_to_opened_or_ends_bounced_and_never_goes_back() {
    let mut world = World::new();
    let id = world.create(create_for("bob@example.com"));
    let changes = world.given(on(id, send()));
    let DomainEvent::Invite(InviteEvent::Sent(sent)) = &changes[0].event else { panic!() };
    let report = |status| TenantCommand::ReportDelivery { delivery_id: sent.delivery_id, status, detail: None };
    world.given(report(DeliveryStatus::Sending));
    world.given(report(DeliveryStatus::Delivered));
    assert_eq!(world.invite(id).status_at(t0()), InviteStatus::Delivered);
    assert_eq!(world.invite(id).counters.deliveries, 1);
    assert_eq!(
        world.when(report(DeliveryStatus::Sending)),
        Err(Rejection::InvalidDeliveryTransition { from: "delivered", to: "sending" })
    );
    assert_eq!(world.when(report(DeliveryStatus::Delivered)), Ok(vec![]), "a repeated report changes nothing");
    world.given(report(DeliveryStatus::Bounced));
    assert_eq!(world.when(report(DeliveryStatus::Opened)).unwrap_err().code(), "invalid-delivery-transition");
}

#[test]
fn a_report_for_an_unknown_delivery_is_not_found() {
    let world = World::new();
    let unknown = TenantCommand::ReportDelivery {
        delivery_id: DeliveryId::from_uuid(Uuid::now_v7()),
        status: DeliveryStatus::Delivered,
        detail: None,
    };
    assert_eq!(world.when(unknown), Err(Rejection::DeliveryNotFound));
}

// --- engagement ---

#[test]
fn views_clicks_shares_and_unfurls_are_counted_and_move_the_status_forward() {
    let mut world = World::new();
    let id = world.create(create_for("bob@example.com"));
    let token = secrets().link_token(id);
    for kind in [EngagementKind::View, EngagementKind::View, EngagementKind::Click, EngagementKind::Unfurl] {
        world.given(TenantCommand::EngageByToken { token: token.clone(), kind, source: None });
    }
    assert_eq!(world.invite(id).status_at(t0()), InviteStatus::Unfurled);
    world.given(on(id, InviteCommand::Engage { kind: EngagementKind::Share, source: Some("slack".into()) }));
    let c = world.invite(id).counters;
    assert_eq!((c.views, c.clicks, c.unfurls, c.shares), (2, 1, 1, 1));
    assert_eq!(world.invite(id).status_at(t0()), InviteStatus::Shared);
}

#[test]
fn an_unknown_link_token_is_not_found() {
    let world = World::new();
    let command =
        TenantCommand::EngageByToken { token: LinkToken::new("nope"), kind: EngagementKind::Click, source: None };
    assert_eq!(world.when(command), Err(Rejection::TokenNotFound));
}

// --- accept ---

#[test]
fn a_single_use_invite_is_accepted_once() {
    let mut world = World::new();
    let id = world.create(create_for("bob@example.com"));
    world.given(on(id, accept()));
    assert_eq!(world.invite(id).status_at(t0()), InviteStatus::Accepted);
    assert_eq!(world.invite(id).accepts[0].accepted_by.as_deref(), Some("user-9"));
    assert_eq!(world.when(on(id, accept())), Err(Rejection::InviteClosed { status: "accepted" }));
}

#[test]
fn a_multi_use_invite_records_each_accept_until_its_maximum() {
    let mut world = World::new();
    let mut c = create_for("team@example.com");
    c.targets = vec![Target { kind: TargetKind::Share, value: "link".into(), name: None, index: None }];
    c.multi_use = true;
    c.max_accepts = Some(2);
    let id = world.create(c);
    world.given(on(id, accept()));
    assert_eq!(world.invite(id).lifecycle, Lifecycle::Open);
    world.given(on(id, accept()));
    assert_eq!(world.invite(id).lifecycle, Lifecycle::Accepted);
    assert_eq!(world.invite(id).accepts.len(), 2);
    assert_eq!(world.when(on(id, accept())).unwrap_err().code(), "invite-closed");
}

#[test]
fn accepting_one_invite_makes_the_other_open_invites_for_the_same_target_and_scope_accepted_elsewhere() {
    let mut world = World::new();
    let mut in_ws1 = create_for("Bob@Example.com");
    in_ws1.scopes = vec![scope("ws-1")];
    let first = world.create(in_ws1.clone());
    let mut again = in_ws1.clone();
    again.targets = vec![email("bob@example.com")];
    let second = world.create(again);
    let mut other_scope = in_ws1.clone();
    other_scope.scopes = vec![scope("ws-2")];
    let elsewhere_scope = world.create(other_scope);
    let other_person = world.create(CreateInvite { targets: vec![email("eve@example.com")], ..in_ws1.clone() });
    let revoked = world.create(in_ws1);
    world.given(on(revoked, InviteCommand::Revoke { reason: None }));

    let changes = world.given(on(first, accept()));
    assert_eq!(event_types(&changes), ["InviteAccepted", "InviteAcceptedElsewhere"]);
    assert_eq!(changes[1].stream, StreamId::Invite(second));
    assert_eq!(world.invite(second).status_at(t0()), InviteStatus::AcceptedElsewhere);
    assert_eq!(world.invite(elsewhere_scope).status_at(t0()), InviteStatus::Created);
    assert_eq!(world.invite(other_person).status_at(t0()), InviteStatus::Created);
    assert_eq!(world.invite(revoked).status_at(t0()), InviteStatus::Revoked);
}

#[test]
fn accepting_several_invites_for_one_target_is_one_command_all_or_nothing() {
    let mut world = World::new();
    let mut c = create_for("bob@example.com");
    c.scopes = vec![scope("ws-1")];
    let a = world.create(c.clone());
    c.scopes = vec![scope("ws-2")];
    let b = world.create(c.clone());
    let leftover = world.create(c.clone());
    let command = |ids: Vec<InviteId>| TenantCommand::AcceptMany {
        target: "BOB@example.com".into(),
        invite_ids: ids,
        accepted_by: Some("user-1".into()),
    };
    let changes = world.given(command(vec![a, b]));
    assert_eq!(event_types(&changes), ["InviteAccepted", "InviteAccepted", "InviteAcceptedElsewhere"]);
    assert_eq!(changes[2].stream, StreamId::Invite(leftover));

    let fresh = world.create(CreateInvite { targets: vec![email("bob@example.com")], ..create_for("x@example.com") });
    let missing = InviteId::from_uuid(Uuid::now_v7());
    let Err(Rejection::BatchRefused { failures }) = world.when(command(vec![fresh, a, missing])) else { panic!() };
    assert_eq!(failures.len(), 2);
    assert!(failures.contains(&(missing, Rejection::InviteNotFound)));
    assert!(failures.iter().any(|(id, r)| *id == a && r.code() == "invite-closed"));
}

#[test]
fn accepting_as_a_target_the_invite_does_not_have_is_refused() {
    let mut world = World::new();
    let id = world.create(create_for("bob@example.com"));
    let command = on(id, InviteCommand::Accept { accepted_by: None, target: Some("eve@example.com".into()) });
    assert_eq!(world.when(command), Err(Rejection::TargetNotOnInvite));
    let batch = TenantCommand::AcceptMany { target: "eve@example.com".into(), invite_ids: vec![id], accepted_by: None };
    assert!(matches!(world.when(batch), Err(Rejection::BatchRefused { .. })));
}

// --- terminal states and expiry ---

#[test]
fn decline_revoke_and_expire_are_terminal_and_nothing_but_reads_follow() {
    for (command, status) in [
        (InviteCommand::Decline { reason: None }, InviteStatus::Declined),
        (InviteCommand::Revoke { reason: Some("typo".into()) }, InviteStatus::Revoked),
        (InviteCommand::Expire { reason: None }, InviteStatus::Expired),
    ] {
        let mut world = World::new();
        let id = world.create(create_for("bob@example.com"));
        world.given(on(id, command.clone()));
        assert_eq!(world.invite(id).status_at(t0()), status);
        for next in [send(), accept(), InviteCommand::Revoke { reason: None }, InviteCommand::Decline { reason: None }]
        {
            assert!(world.when(on(id, next.clone())).is_err(), "{next:?} after {status:?}");
        }
    }
}

#[test]
fn a_revoked_invite_is_gone_for_its_link() {
    let mut world = World::new();
    let id = world.create(create_for("bob@example.com"));
    let token = secrets().link_token(id);
    world.given(on(id, InviteCommand::Revoke { reason: None }));
    let click = TenantCommand::EngageByToken { token, kind: EngagementKind::Click, source: None };
    let rejection = world.when(click).unwrap_err();
    assert_eq!(rejection, Rejection::InviteRevoked);
    assert_eq!(rejection.class(), RejectionClass::Gone);
}

#[test]
fn an_invite_reports_expired_once_its_time_passed_and_then_takes_no_commands() {
    let mut world = World::new();
    let mut c = create_for("bob@example.com");
    c.expires_in_days = Some(7);
    let id = world.create(c);
    assert_eq!(world.invite(id).status_at(later(6)), InviteStatus::Created);
    assert_eq!(world.invite(id).status_at(later(7)), InviteStatus::Expired);
    assert_eq!(world.when_at(on(id, accept()), later(8)), Err(Rejection::InviteExpired));
    assert!(world.when_at(on(id, accept()), later(6)).is_ok());
}

#[test]
fn an_invite_accepted_before_its_expiry_time_never_reads_as_expired_after_it() {
    let mut world = World::new();
    let mut c = create_for("bob@example.com");
    c.expires_in_days = Some(7);
    let id = world.create(c);
    world.given_at(on(id, accept()), later(1));
    // The live read model says so (open invites only expire); the as-of view and every dialect
    // read it from here, and must say the same.
    assert_eq!(world.invite(id).status_at(later(8)), InviteStatus::Accepted);
    assert!(!world.invite(id).is_expired_at(later(8)));
}

#[test]
fn an_invite_past_its_expiry_time_can_have_its_expiry_recorded_once() {
    let mut world = World::new();
    let mut c = create_for("bob@example.com");
    c.expires_in_days = Some(7);
    let id = world.create(c);
    let expire = || on(id, InviteCommand::Expire { reason: Some("expiry time passed".into()) });
    let changes = world.when_at(expire(), later(8)).unwrap();
    assert_eq!(event_types(&changes), ["InviteExpired"]);
    world.given_at(expire(), later(8));
    assert_eq!(world.invite(id).status_at(t0()), InviteStatus::Expired);
    assert_eq!(world.when_at(expire(), later(9)), Err(Rejection::InviteExpired));
}

#[test]
fn expired_invites_are_not_marked_accepted_elsewhere() {
    let mut world = World::new();
    let mut short = create_for("bob@example.com");
    short.expires_in_days = Some(1);
    let stale = world.create(short);
    let fresh = world.create(create_for("bob@example.com"));
    let changes = world.when_at(on(fresh, accept()), later(2)).unwrap();
    assert_eq!(event_types(&changes), ["InviteAccepted"]);
    assert_eq!(world.invite(stale).status_at(later(2)), InviteStatus::Expired);
}

#[test]
fn late_delivery_reports_are_taken_after_an_invite_closed() {
    let mut world = World::new();
    let id = world.create(create_for("bob@example.com"));
    let changes = world.given(on(id, send()));
    let DomainEvent::Invite(InviteEvent::Sent(sent)) = &changes[0].event else { panic!() };
    world.given(on(id, InviteCommand::Revoke { reason: None }));
    let report = TenantCommand::ReportDelivery {
        delivery_id: sent.delivery_id,
        status: DeliveryStatus::Delivered,
        detail: None,
    };
    assert_eq!(event_types(&world.when(report).unwrap()), ["DeliveryStatusChanged"]);
}

#[test]
fn a_send_never_begins_after_the_invite_closed_but_its_outcome_is_still_taken() {
    let mut world = World::new();
    let id = world.create(create_for("bob@example.com"));
    let changes = world.given(on(id, send()));
    let DomainEvent::Invite(InviteEvent::Sent(sent)) = &changes[0].event else { panic!() };
    world.given(on(id, InviteCommand::Revoke { reason: None }));
    let report = |status| TenantCommand::ReportDelivery { delivery_id: sent.delivery_id, status, detail: None };
    assert_eq!(world.when(report(DeliveryStatus::Sending)), Err(Rejection::InviteRevoked));
    assert_eq!(event_types(&world.when(report(DeliveryStatus::Failed)).unwrap()), ["DeliveryStatusChanged"]);
}

#[test]
fn a_send_that_began_before_the_invite_closed_goes_on() {
    let mut world = World::new();
    let id = world.create(create_for("bob@example.com"));
    let changes = world.given(on(id, send()));
    let DomainEvent::Invite(InviteEvent::Sent(sent)) = &changes[0].event else { panic!() };
    let report = |status| TenantCommand::ReportDelivery { delivery_id: sent.delivery_id, status, detail: None };
    world.given(report(DeliveryStatus::Sending));
    world.given(on(id, InviteCommand::Revoke { reason: None }));
    assert_eq!(world.when(report(DeliveryStatus::Sending)), Ok(vec![]), "a dispatcher resuming after a crash");
    assert_eq!(event_types(&world.when(report(DeliveryStatus::Sent)).unwrap()), ["DeliveryStatusChanged"]);
}

#[test]
fn commands_on_an_unknown_invite_are_not_found() {
    let world = World::new();
    let rejection = world.when(on(new_id(), accept())).unwrap_err();
    assert_eq!(rejection, Rejection::InviteNotFound);
    assert_eq!(rejection.class(), RejectionClass::NotFound);
}

#[test]
fn every_rejection_has_a_stable_kebab_case_code_and_a_lowercase_message() {
    use RejectionClass::*;
    // The codes are an API: clients match on them, so this table only ever grows.
    let all = [
        (Rejection::invalid("targets", "at least one target is required"), "invalid-field", Invalid),
        (Rejection::InviteAlreadyExists, "invite-already-exists", Conflict),
        (Rejection::InviteNotFound, "invite-not-found", NotFound),
        (Rejection::DefinitionNotFound { field: "id" }, "definition-not-found", NotFound),
        (Rejection::DefinitionNotFound { field: "definition_id" }, "definition-not-found", Invalid),
        (Rejection::DefinitionAlreadyExists, "definition-already-exists", Conflict),
        (Rejection::HandleTaken { handle: "spring".into() }, "handle-taken", Conflict),
        (Rejection::DeliveryNotFound, "delivery-not-found", NotFound),
        (Rejection::TokenNotFound, "link-not-found", NotFound),
        (Rejection::InviteClosed { status: "accepted" }, "invite-closed", Conflict),
        (Rejection::InviteExpired, "invite-expired", Gone),
        (Rejection::InviteRevoked, "invite-revoked", Gone),
        (Rejection::AlreadySent, "already-sent", Conflict),
        (Rejection::NotSentYet, "not-sent-yet", Conflict),
        (Rejection::MaxSendsReached { max: 3 }, "max-sends-reached", Conflict),
        (Rejection::MaxAcceptsReached { max: 2 }, "max-accepts-reached", Conflict),
        (Rejection::QuotaExhausted { max: 3 }, "quota-exhausted", Conflict),
        (Rejection::OutsideActiveWindow, "outside-active-window", Conflict),
        (
            Rejection::InvalidDeliveryTransition { from: "bounced", to: "opened" },
            "invalid-delivery-transition",
            Conflict,
        ),
        (Rejection::TargetNotOnInvite, "target-not-on-invite", Invalid),
        (Rejection::BatchRefused { failures: vec![] }, "batch-refused", Conflict),
    ];
    for (r, code, class) in all {
        assert_eq!((r.code(), r.class()), (code, class), "{r:?}");
        let message = r.to_string();
        assert!(!message.is_empty() && !message.ends_with('.'), "{message}");
        assert!(!message.starts_with(char::is_uppercase), "{message}");
    }
}

// --- what every read model can hold ---

/// A string PostgreSQL `text` and `jsonb` cannot store.
const NUL: &str = "a\u{0}b";

fn field_of(world: &World, command: TenantCommand) -> Option<String> {
    world.when(command).err().and_then(|r| {
        assert_eq!(r.class(), RejectionClass::Invalid, "{r:?}");
        r.field().map(str::to_owned)
    })
}

#[test]
fn a_nul_in_any_string_a_create_carries_is_refused_naming_the_field() {
    let mut world = World::new();
    let definition = definition(&mut world, rules("spring"));
    type Edit = Box<dyn Fn(&mut CreateInvite)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("inviter.id", Box::new(|c| c.inviter.as_mut().unwrap().id = NUL.into())),
        ("inviter.name", Box::new(|c| c.inviter.as_mut().unwrap().name = Some(NUL.into()))),
        ("inviter.email", Box::new(|c| c.inviter.as_mut().unwrap().email = Some("a\u{0}@example.com".into()))),
        ("targets[0].value", Box::new(|c| c.targets[0].value = "bob\u{0}@example.com".into())),
        (
            "targets[1].value",
            Box::new(|c| {
                c.targets.push(Target { kind: TargetKind::Internal, value: NUL.into(), name: None, index: None })
            }),
        ),
        ("targets[0].name", Box::new(|c| c.targets[0].name = Some(NUL.into()))),
        ("recipient_names[0]", Box::new(|c| c.recipient_names = vec![NUL.into()])),
        ("message", Box::new(|c| c.message = Some(NUL.into()))),
        ("scopes[0].type", Box::new(|c| c.scopes = vec![Scope { kind: NUL.into(), id: "ws".into(), name: None }])),
        ("scopes[0].id", Box::new(|c| c.scopes = vec![scope(NUL)])),
        (
            "scopes[0].name",
            Box::new(|c| c.scopes = vec![Scope { kind: "ws".into(), id: "1".into(), name: Some(NUL.into()) }]),
        ),
        ("reply_to[0]", Box::new(|c| c.reply_to = vec!["help\u{0}@example.com".into()])),
        ("metadata.plan", Box::new(|c| c.metadata = [("plan".into(), serde_json::json!(NUL))].into())),
        (
            "metadata.plan.tiers[1]",
            Box::new(|c| c.metadata = [("plan".into(), serde_json::json!({ "tiers": ["gold", NUL] }))].into()),
        ),
        ("metadata.plan", Box::new(|c| c.metadata = [("plan".into(), serde_json::json!({ NUL: 1 }))].into())),
        ("metadata", Box::new(|c| c.metadata = [(NUL.into(), serde_json::json!(1))].into())),
        ("template_variables.name", Box::new(|c| c.template_variables = [("name".into(), NUL.into())].into())),
        ("template_variables", Box::new(|c| c.template_variables = [(NUL.into(), "Bob".into())].into())),
        ("widget_id", Box::new(|c| c.widget_id = Some(NUL.into()))),
        ("flow_id", Box::new(|c| c.flow_id = Some(NUL.into()))),
        ("template_id", Box::new(|c| c.template_id = Some(NUL.into()))),
        ("landing_url", Box::new(|c| c.landing_url = Some("https://app.example.com/\u{0}".into()))),
    ];
    for (field, edit) in cases {
        let mut c = create_for("bob@example.com");
        c.definition_id = Some(definition);
        edit(&mut c);
        assert_eq!(field_of(&world, create_cmd(new_id(), c)).as_deref(), Some(field), "{field}");
    }
}

#[test]
fn a_nul_in_the_strings_of_every_other_command_is_refused_naming_the_field() {
    let mut world = World::new();
    let id = world.create(create_for("bob@example.com"));
    let sent = world.given(on(id, InviteCommand::Send { method: DeliveryMethod::Email, target: None }));
    let DomainEvent::Invite(InviteEvent::Sent(sent)) = &sent[0].event else { panic!() };
    let token = secrets().link_token(id);
    let delivery_id = sent.delivery_id;
    let text = || Some(NUL.to_owned());
    let cases = [
        ("source", on(id, InviteCommand::Engage { kind: EngagementKind::View, source: text() })),
        ("source", TenantCommand::EngageByToken { token, kind: EngagementKind::Click, source: text() }),
        ("reason", on(id, InviteCommand::Revoke { reason: text() })),
        ("reason", on(id, InviteCommand::Decline { reason: text() })),
        ("reason", on(id, InviteCommand::Expire { reason: text() })),
        ("accepted_by", on(id, InviteCommand::Accept { accepted_by: text(), target: None })),
        ("target", on(id, InviteCommand::Accept { accepted_by: None, target: Some("bob\u{0}@example.com".into()) })),
        ("target", on(id, InviteCommand::Resend { method: DeliveryMethod::Email, target: text() })),
        (
            "accepted_by",
            TenantCommand::AcceptMany { target: "bob@example.com".into(), invite_ids: vec![id], accepted_by: text() },
        ),
        ("target", TenantCommand::AcceptMany { target: NUL.into(), invite_ids: vec![id], accepted_by: None }),
        ("detail", TenantCommand::ReportDelivery { delivery_id, status: DeliveryStatus::Sent, detail: text() }),
        (
            "handle",
            TenantCommand::CreateDefinition {
                definition_id: DefinitionId::from_uuid(Uuid::now_v7()),
                rules: rules(NUL),
            },
        ),
    ];
    for (field, command) in cases {
        let what = format!("{command:?}");
        assert_eq!(field_of(&world, command).as_deref(), Some(field), "{what}");
    }
}

#[test]
fn free_text_keeps_line_breaks_and_tabs_but_identifiers_and_names_take_no_control_character() {
    let mut world = World::new();
    let id = world.create(create_for("bob@example.com"));
    let mut c = create_for("bob@example.com");
    c.message = Some("Hi Bob,\r\n\tjoin us!".into());
    c.metadata = [("note".into(), serde_json::json!("two\nlines"))].into();
    c.template_variables = [("signature".into(), "Ann\nAcme".into())].into();
    assert!(world.when(create_cmd(new_id(), c)).is_ok());
    assert!(world.when(on(id, InviteCommand::Revoke { reason: Some("sent by\nmistake".into()) })).is_ok());

    let mut bell = create_for("bob@example.com");
    bell.message = Some("ding\u{7}".into());
    assert_eq!(field_of(&world, create_cmd(new_id(), bell)).as_deref(), Some("message"));
    for control in ["\n", "\t", "\r", "\u{1b}", "\u{7f}", "\u{85}"] {
        let mut c = create_for("bob@example.com");
        c.inviter.as_mut().unwrap().id = format!("ann{control}");
        assert_eq!(field_of(&world, create_cmd(new_id(), c)).as_deref(), Some("inviter.id"), "{control:?}");
        let engage =
            on(id, InviteCommand::Engage { kind: EngagementKind::View, source: Some(format!("app{control}")) });
        assert_eq!(field_of(&world, engage).as_deref(), Some("source"), "{control:?}");
    }
}

#[test]
fn strings_longer_than_a_read_model_index_can_hold_are_refused() {
    let world = World::new();
    let long = "x".repeat(3000);
    type Edit = Box<dyn Fn(&mut CreateInvite)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("scopes[0].type", Box::new(|c| c.scopes = vec![Scope { kind: "x".repeat(3000), id: "1".into(), name: None }])),
        ("scopes[0].id", Box::new(|c| c.scopes = vec![scope(&"x".repeat(3000))])),
        ("targets[0].name", Box::new(|c| c.targets[0].name = Some("x".repeat(201)))),
        ("inviter.name", Box::new(|c| c.inviter.as_mut().unwrap().name = Some("x".repeat(201)))),
        ("widget_id", Box::new(|c| c.widget_id = Some("x".repeat(201)))),
        ("metadata", Box::new(|c| c.metadata = [("x".repeat(201), serde_json::json!(1))].into())),
    ];
    for (field, edit) in cases {
        let mut c = create_for("bob@example.com");
        edit(&mut c);
        assert_eq!(field_of(&world, create_cmd(new_id(), c)).as_deref(), Some(field), "{field}");
    }
    // Lengths count characters, not bytes: 200 four-byte characters are a valid inviter id.
    let mut wide = create_for("bob@example.com");
    wide.inviter.as_mut().unwrap().id = "🦀".repeat(200);
    assert!(world.when(create_cmd(new_id(), wide)).is_ok());
    let mut c = create_for("bob@example.com");
    c.message = Some(long);
    assert_eq!(field_of(&world, create_cmd(new_id(), c)).as_deref(), Some("message"));
}

#[test]
fn counts_beyond_what_a_read_model_integer_holds_are_refused() {
    let mut world = World::new();
    let mut c = create_for("bob@example.com");
    c.multi_use = true;
    c.max_accepts = Some(i32::MAX as u32 + 1);
    assert_eq!(field_of(&world, create_cmd(new_id(), c.clone())).as_deref(), Some("max_accepts"));
    c.max_accepts = Some(i32::MAX as u32);
    assert!(world.when(create_cmd(new_id(), c)).is_ok());
    let id = || DefinitionId::from_uuid(Uuid::now_v7());
    let too_many = DefinitionRules { max_invites_per_inviter: Some(u32::MAX), ..rules("gold") };
    let create = TenantCommand::CreateDefinition { definition_id: id(), rules: too_many };
    assert_eq!(field_of(&world, create).as_deref(), Some("max_invites_per_inviter"));
    let existing = definition(&mut world, rules("silver"));
    let too_many = DefinitionRules { max_send_count: Some(i32::MAX as u32 + 1), ..rules("silver") };
    let update = TenantCommand::UpdateDefinition { definition_id: existing, rules: too_many };
    assert_eq!(field_of(&world, update).as_deref(), Some("max_send_count"));
}

#[test]
fn a_landing_url_is_an_absolute_http_or_https_url_with_no_control_character_or_space() {
    let world = World::new();
    let with_url = |url: &str| {
        let mut c = create_for("bob@example.com");
        c.landing_url = Some(url.into());
        create_cmd(new_id(), c)
    };
    for good in [
        "https://app.example.com/join",
        "http://localhost:3000/join?from=mail&x=1",
        "https://app.example.com/welcome#/signup?step=2",
        "https://bücher.example/ä",
    ] {
        assert!(world.when(with_url(good)).is_ok(), "{good}");
    }
    for bad in [
        "https://app.example.com/join\r\nSet-Cookie: a=b",
        "https://app.example.com/\njoin",
        "https://app.example.com/\tjoin",
        " https://app.example.com/join",
        "https://app.example.com/a b",
        "https://",
        "https:app",
        "/join",
        "app.example.com/join",
        "javascript:alert(1)",
        "ftp://example.com/file",
        "https://exa mple.com/",
    ] {
        assert_eq!(field_of(&world, with_url(bad)).as_deref(), Some("landing_url"), "{bad:?}");
    }
    let mut too_long = String::from("https://app.example.com/");
    too_long.push_str(&"a".repeat(2000));
    assert_eq!(field_of(&world, with_url(&too_long)).as_deref(), Some("landing_url"));
}

#[test]
fn the_landing_redirect_carries_the_invitation_id_in_the_query_and_keeps_the_fragment_last() {
    let id = InviteId::from_uuid(Uuid::nil());
    let cases = [
        (
            "https://app.example.com/join",
            "https://app.example.com/join?invitation_id=00000000-0000-0000-0000-000000000000",
        ),
        (
            "https://app.example.com/join?from=mail",
            "https://app.example.com/join?from=mail&invitation_id=00000000-0000-0000-0000-000000000000",
        ),
        (
            "https://app.example.com/#/welcome?step=2",
            "https://app.example.com/?invitation_id=00000000-0000-0000-0000-000000000000#/welcome?step=2",
        ),
        (
            "https://app.example.com/join?a=1#top",
            "https://app.example.com/join?a=1&invitation_id=00000000-0000-0000-0000-000000000000#top",
        ),
    ];
    for (landing, expected) in cases {
        assert_eq!(landing_redirect(landing, id).as_deref(), Some(expected), "{landing}");
    }
    // What is not a landing URL (an old event, a tenant setting) gives no redirect, never a bad header.
    assert_eq!(landing_redirect("https://app.example.com/\r\nSet-Cookie: a=b", id), None);
    assert_eq!(landing_redirect("javascript:alert(1)", id), None);
}

#[test]
fn accepting_several_invitations_refuses_an_invitation_named_twice() {
    let mut world = World::new();
    let a = world.create(create_for("bob@example.com"));
    let b = world.create(create_for("bob@example.com"));
    let twice =
        TenantCommand::AcceptMany { target: "bob@example.com".into(), invite_ids: vec![a, b, a], accepted_by: None };
    assert_eq!(field_of(&world, twice).as_deref(), Some("invitation_ids"));
}

fn revoke_scope(id: &str, inviter: Option<&str>) -> TenantCommand {
    TenantCommand::RevokeByScope {
        scope_type: "workspace".into(),
        scope_id: id.into(),
        inviter: inviter.map(str::to_owned),
        reason: None,
    }
}

#[test]
fn revoking_a_scope_is_one_decision_revoking_every_open_invite_of_it_and_nothing_else() {
    let mut world = World::new();
    let mut in_ws1 = create_for("bob@example.com");
    in_ws1.scopes = vec![scope("ws-1")];
    let a = world.create(in_ws1.clone());
    let b = world.create(CreateInvite { targets: vec![email("eve@example.com")], ..in_ws1.clone() });
    let accepted = world.create(CreateInvite { targets: vec![email("joe@example.com")], ..in_ws1.clone() });
    world.given(on(accepted, accept()));
    let other = world.create(CreateInvite { scopes: vec![scope("ws-2")], ..in_ws1.clone() });

    let changes = world.given(revoke_scope("ws-1", None));
    assert_eq!(event_types(&changes), ["InviteRevoked", "InviteRevoked"]);
    let mut revoked: Vec<StreamId> = changes.iter().map(|c| c.stream).collect();
    revoked.sort();
    let mut expected = vec![StreamId::Invite(a), StreamId::Invite(b)];
    expected.sort();
    assert_eq!(revoked, expected);
    assert_eq!(world.invite(accepted).status_at(t0()), InviteStatus::Accepted);
    assert_eq!(world.invite(other).status_at(t0()), InviteStatus::Created);
    // Nothing open is left in the scope: the same command again changes nothing.
    assert_eq!(world.when(revoke_scope("ws-1", None)), Ok(vec![]));
}

#[test]
fn revoking_a_scope_for_an_inviter_leaves_the_other_inviters_invites_and_refuses_another_inviter() {
    let mut world = World::new();
    let mut ann = create_for("bob@example.com");
    ann.scopes = vec![scope("ws-1")];
    let anns = world.create(ann.clone());
    let mut eve = ann.clone();
    eve.inviter = Some(Inviter { id: "eve".into(), name: None, email: None, email_index: None });
    let eves = world.create(eve);
    let changes = world.given(revoke_scope("ws-1", Some("ann")));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].stream, StreamId::Invite(anns));
    assert_eq!(world.invite(eves).status_at(t0()), InviteStatus::Created);

    let actor = Actor { kind: ActorKind::Inviter, id: "ann".into() };
    assert!(world.tenant.authorize(&revoke_scope("ws-1", Some("ann")), &actor).is_ok());
    for command in [revoke_scope("ws-1", None), revoke_scope("ws-1", Some("eve"))] {
        assert_eq!(world.tenant.authorize(&command, &actor).unwrap_err().field(), Some("inviter"));
    }
}

#[test]
fn a_scope_to_revoke_must_be_named() {
    let world = World::new();
    let bad = TenantCommand::RevokeByScope {
        scope_type: "workspace".into(),
        scope_id: "ws\u{0}1".into(),
        inviter: None,
        reason: None,
    };
    assert_eq!(world.when(bad).unwrap_err().field(), Some("scope_id"));
    assert_eq!(world.when(revoke_scope(" ", None)).unwrap_err().field(), Some("scope_id"));
}

// --- personal data ---

fn erase(address: &str) -> TenantCommand {
    TenantCommand::ErasePersonalData { address: Some((TargetKind::Email, address.into())) }
}

#[test]
fn an_erasure_is_recorded_on_every_invite_holding_the_address_once_and_nothing_more_is_sent_to_it() {
    let mut world = World::new();
    let bob = world.create(create_for("bob@example.com"));
    let mut with_inviter = create_for("carl@example.com");
    with_inviter.inviter.as_mut().unwrap().email = Some("Bob@Example.com".into());
    let bobs_own = world.create(with_inviter);
    let other = world.create(create_for("dora@example.com"));
    let changes = world.given(erase(" BOB@example.com"));
    let erased: Vec<StreamId> = changes.iter().map(|c| c.stream).collect();
    let mut expected = vec![StreamId::Invite(bob), StreamId::Invite(bobs_own)];
    expected.sort();
    assert_eq!(erased, expected, "the invite to bob and the invite bob sent; not dora's");
    let DomainEvent::Invite(InviteEvent::PersonalDataErased(e)) = &changes[0].event else { panic!() };
    assert_eq!(e.subjects, [secrets().blind_index(TargetKind::Email, "bob@example.com")]);
    assert_eq!((e.all, e.reason), (false, ErasureReason::Request));
    assert_eq!(changes[0].version, 2);
    assert!(world.when(erase("bob@example.com")).unwrap().is_empty(), "erased once");
    let send = InviteCommand::Send { method: DeliveryMethod::Email, target: None };
    assert_eq!(world.when(on(bob, send.clone())), Err(Rejection::PersonalDataErased));
    assert!(world.when(on(bobs_own, send.clone())).is_ok(), "carl's address was not erased");
    assert!(world.when(on(other, send)).is_ok());
    // The invite stays, and can still be accepted or revoked.
    assert!(world.when(on(bob, InviteCommand::Revoke { reason: None })).is_ok());
}

#[test]
fn offboarding_erases_every_invite_of_the_tenant() {
    let mut world = World::new();
    let ids = [world.create(create_for("a@example.com")), world.create(create_for("b@example.com"))];
    let changes = world.given(TenantCommand::ErasePersonalData { address: None });
    assert_eq!(changes.len(), 2);
    assert!(changes.iter().all(|c| matches!(&c.event,
        DomainEvent::Invite(InviteEvent::PersonalDataErased(e)) if e.all && e.reason == ErasureReason::TenantOffboarded)));
    for id in ids {
        assert!(world.invite(id).erased.all);
    }
    assert!(world.when(TenantCommand::ErasePersonalData { address: None }).unwrap().is_empty());
}

#[test]
fn an_erasure_names_a_bad_address_as_the_field() {
    let world = World::new();
    assert_eq!(world.when(erase("not an address")).unwrap_err().field(), Some("address"));
}

#[test]
fn targets_match_by_blind_index_whatever_the_spelling_and_events_never_carry_the_match_key_in_clear() {
    let mut world = World::new();
    let id = world.create(create_for("Bob@Example.com"));
    let changes =
        world.given(on(id, InviteCommand::Accept { accepted_by: None, target: Some(" bob@EXAMPLE.com".into()) }));
    let DomainEvent::Invite(InviteEvent::Accepted(a)) = &changes[0].event else { panic!() };
    assert_eq!(a.target_index, Some(secrets().blind_index(TargetKind::Email, "bob@example.com")));
    assert_eq!(
        a.target.as_deref(),
        Some("Bob@Example.com"),
        "the target as the invite holds it (sealed, by the writer)"
    );
}

#[test]
fn a_sealed_value_is_refused_from_a_client() {
    let world = World::new();
    let mut c = create_for("bob@example.com");
    c.message = Some(format!("{}v1:abc:def", personal::SEALED_PREFIX));
    assert_eq!(world.when(create_cmd(new_id(), c)).unwrap_err().field(), Some("message"));
}

#[test]
fn a_sealed_value_is_refused_from_a_client_as_a_key_or_an_email_address_too() {
    // An email address passes its own check, a key had none: both were taken, and a sealed
    // string as a metadata key was opened in the answer for whoever planted it (found by review).
    let world = World::new();
    let sealed = format!("{}v1:abc:def", personal::SEALED_PREFIX);
    let refused = |c: CreateInvite| world.when(create_cmd(new_id(), c)).unwrap_err().field().map(str::to_owned);
    let mut c = create_for("bob@example.com");
    c.metadata.insert(sealed.clone(), serde_json::json!(1));
    assert_eq!(refused(c).as_deref(), Some("metadata"));
    let mut c = create_for("bob@example.com");
    c.template_variables.insert(sealed.clone(), "v".into());
    assert_eq!(refused(c).as_deref(), Some("template_variables"));
    let mut c = create_for("bob@example.com");
    c.inviter.as_mut().unwrap().email = Some(format!("{}x@example.com", personal::SEALED_PREFIX));
    assert_eq!(refused(c).as_deref(), Some("inviter.email"));
    let mut c = create_for("bob@example.com");
    c.reply_to = vec![format!(" {}x@example.com", personal::SEALED_PREFIX)];
    assert_eq!(refused(c).as_deref(), Some("reply_to[0]"));
}
