//! The tenant aggregate: every invite and definition of one tenant, and the rules that span
//! invites (quotas and active windows of definitions, `accepted_elsewhere`, accepting several
//! invites at once). The command API runs one writer per tenant, so deciding here against the
//! complete state of all of them is safe, and the events of one command go out in one
//! transaction.

use crate::envelope::{Actor, ActorKind};
use crate::event::*;
use crate::ids::{DefinitionId, DeliveryId, InviteId, LinkToken, StreamId};
use crate::invite::{
    decide as decide_invite, evolve_owned as evolve_invite, Context, Invite, InviteCommand, InviteState,
};
use crate::rejection::Rejection;
use crate::validate::{self, MAX_ADDRESS, MAX_NAME};
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};

/// A definition (campaign), folded from its events.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Definition {
    pub rules: DefinitionRules,
    pub version: u64,
}

impl Definition {
    pub fn is_active_at(&self, now: DateTime<Utc>) -> bool {
        window_open(self.rules.starts_at, self.rules.ends_at, now)
    }
}

/// Whether a definition's active window (from `starts_at`, before `ends_at`; either open-ended)
/// holds `now`: invites may be created under it.
pub fn window_open(starts_at: Option<DateTime<Utc>>, ends_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    starts_at.is_none_or(|s| s <= now) && ends_at.is_none_or(|e| now < e)
}

/// Commands a tenant's writer takes.
#[derive(Debug, Clone, PartialEq)]
pub enum TenantCommand {
    Invite {
        invite_id: InviteId,
        command: InviteCommand,
    },
    /// Accept several invitations of one target at once: all of them, or none.
    AcceptMany {
        target: String,
        invite_ids: Vec<InviteId>,
        accepted_by: Option<String>,
    },
    /// Revoke every open invite of one scope at once (with `inviter`: that inviter's only): one
    /// decision, so its events are appended together or not at all.
    RevokeByScope {
        scope_type: String,
        scope_id: String,
        inviter: Option<String>,
        reason: Option<String>,
    },
    /// A delivery provider's report, by delivery id.
    ReportDelivery {
        delivery_id: DeliveryId,
        status: DeliveryStatus,
        detail: Option<String>,
    },
    /// Someone followed the public link.
    EngageByToken {
        token: LinkToken,
        kind: EngagementKind,
        source: Option<String>,
    },
    /// Erase an address's personal data (`None`: every subject of the tenant, when it leaves).
    /// The keys themselves are the writer's to destroy; this decides the record of it, one
    /// `InvitePersonalDataErased` on every invite that held the address's data.
    ErasePersonalData {
        address: Option<(TargetKind, String)>,
    },
    CreateDefinition {
        definition_id: DefinitionId,
        rules: DefinitionRules,
    },
    UpdateDefinition {
        definition_id: DefinitionId,
        rules: DefinitionRules,
    },
}

impl TenantCommand {
    /// A stable name for the kind of command (metrics, logs): never an id or a value.
    pub fn command_type(&self) -> &'static str {
        match self {
            Self::Invite { command, .. } => match command {
                InviteCommand::Create(_) => "create",
                InviteCommand::Send { .. } => "send",
                InviteCommand::Resend { .. } => "resend",
                InviteCommand::ReportDelivery { .. } => "report_delivery",
                InviteCommand::Engage { .. } => "engage",
                InviteCommand::Accept { .. } => "accept",
                InviteCommand::MarkAcceptedElsewhere { .. } => "mark_accepted_elsewhere",
                InviteCommand::Decline { .. } => "decline",
                InviteCommand::Revoke { .. } => "revoke",
                InviteCommand::Expire { .. } => "expire",
            },
            Self::AcceptMany { .. } => "accept_many",
            Self::RevokeByScope { .. } => "revoke_by_scope",
            Self::ReportDelivery { .. } => "report_delivery",
            Self::EngageByToken { .. } => "engage_by_token",
            Self::ErasePersonalData { address: Some(_) } => "erase_personal_data",
            Self::ErasePersonalData { address: None } => "offboard_tenant",
            Self::CreateDefinition { .. } => "create_definition",
            Self::UpdateDefinition { .. } => "update_definition",
        }
    }
}

/// One event the tenant decided, with the stream it belongs to and its version there.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub stream: StreamId,
    pub version: u64,
    pub event: DomainEvent,
}

/// Who may be matched for `accepted_elsewhere`: a person's target within one scope.
type MatchKey = (String, Option<(String, String)>);

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Tenant {
    invites: HashMap<InviteId, InviteState>,
    definitions: HashMap<DefinitionId, Definition>,
    handles: HashMap<String, DefinitionId>,
    /// Invites not closed yet, by target and scope (time-based expiry is checked when used).
    /// A list, not a set: a key has an invite or two, and an empty `BTreeSet` node (~190 bytes)
    /// per person was a tenth of the writer's memory.
    open_by_match: HashMap<MatchKey, Vec<InviteId>>,
    /// How many invites each inviter created, per definition (`None`: without one).
    created_per_inviter: HashMap<(Option<DefinitionId>, String), u32>,
    deliveries: HashMap<DeliveryId, InviteId>,
    /// The recorded link tokens of invites from before tokens were derived.
    tokens: HashMap<LinkToken, InviteId>,
}

impl Tenant {
    pub fn invite(&self, id: InviteId) -> Option<&Invite> {
        self.invites.get(&id).and_then(InviteState::live)
    }

    pub fn invite_state(&self, id: InviteId) -> &InviteState {
        static ABSENT: InviteState = InviteState::Absent;
        self.invites.get(&id).unwrap_or(&ABSENT)
    }

    /// The invite a public link token names: a derived token of this tenant's, or the recorded
    /// token of an invite from before tokens were derived.
    pub fn invite_by_token(
        &self,
        token: &LinkToken,
        secrets: &crate::personal::Secrets,
    ) -> Option<(InviteId, &Invite)> {
        let id = match self.tokens.get(token) {
            Some(id) => *id,
            None => secrets.invite_of_token(token.as_str()).filter(|id| self.tokens_derived(*id))?,
        };
        Some((id, self.invite(id)?))
    }

    pub fn invite_of_delivery(&self, delivery: DeliveryId) -> Option<InviteId> {
        self.deliveries.get(&delivery).copied()
    }

    pub fn definition(&self, id: DefinitionId) -> Option<&Definition> {
        self.definitions.get(&id)
    }

    pub fn definition_by_handle(&self, handle: &str) -> Option<(DefinitionId, &Definition)> {
        let id = *self.handles.get(handle)?;
        Some((id, self.definitions.get(&id)?))
    }

    /// The ids of every invite the tenant has.
    pub fn invite_ids(&self) -> impl Iterator<Item = InviteId> + '_ {
        self.invites.iter().filter(|(_, s)| s.live().is_some()).map(|(id, _)| *id)
    }

    /// Every stream of the tenant with events: its invites' and its definitions'.
    pub fn streams(&self) -> impl Iterator<Item = StreamId> + '_ {
        self.invite_ids().map(StreamId::Invite).chain(self.definitions.keys().map(|id| StreamId::Definition(*id)))
    }

    /// The recorded link tokens of invites from before tokens were derived.
    pub fn recorded_tokens(&self) -> impl Iterator<Item = &LinkToken> {
        self.tokens.keys()
    }

    pub fn definitions(&self) -> impl Iterator<Item = (DefinitionId, &Definition)> {
        self.definitions.iter().map(|(id, d)| (*id, d))
    }

    pub fn invite_count(&self) -> usize {
        self.invites.len()
    }

    /// How many more invites `inviter` may create under `definition` (`None`: no limit).
    pub fn remaining_quota(&self, definition: DefinitionId, inviter: &str) -> Option<u32> {
        let max = self.definitions.get(&definition)?.rules.max_invites_per_inviter?;
        let used = self.created_per_inviter.get(&(Some(definition), inviter.to_owned())).copied().unwrap_or(0);
        Some(max.saturating_sub(used))
    }

    /// Whether `actor` may run `command`, the one check of an inviter's reach on every write: an
    /// inviter acts on its own invites only, and another inviter's invite (or delivery) is
    /// refused exactly as one that does not exist, so a scoped key learns nothing of the rest of
    /// the tenant. Tenant-wide keys are not limited here, nor the public link (its token is its
    /// own capability). Definitions are the tenant's: the APIs keep inviters' keys away from them.
    pub fn authorize(&self, command: &TenantCommand, actor: &Actor) -> Result<(), Rejection> {
        if actor.kind != ActorKind::Inviter {
            return Ok(());
        }
        let inviter = actor.id.as_str();
        let owned = |id: InviteId| self.invite(id).is_some_and(|i| i.created.inviter.id == inviter);
        match command {
            TenantCommand::Invite { command: InviteCommand::Create(c), .. } => {
                match c.inviter.as_ref().is_some_and(|i| i.id != inviter) {
                    true => Err(Rejection::invalid("inviter.id", "an inviter's key invites as its own inviter only")),
                    false => Ok(()),
                }
            }
            TenantCommand::Invite { invite_id, .. } if !owned(*invite_id) => Err(Rejection::InviteNotFound),
            TenantCommand::ReportDelivery { delivery_id, .. }
                if !self.invite_of_delivery(*delivery_id).is_some_and(owned) =>
            {
                Err(Rejection::DeliveryNotFound)
            }
            TenantCommand::RevokeByScope { inviter: own, .. } if own.as_deref() != Some(inviter) => {
                Err(Rejection::invalid("inviter", "an inviter's key revokes its own invites only"))
            }
            TenantCommand::AcceptMany { invite_ids, .. } => {
                // The size first: over it, no id is looked at (nor named back in the refusal).
                accept_many_size(invite_ids)?;
                let unique: BTreeSet<InviteId> = invite_ids.iter().copied().collect();
                let failures: Vec<(InviteId, Rejection)> =
                    unique.into_iter().filter(|id| !owned(*id)).map(|id| (id, Rejection::InviteNotFound)).collect();
                match failures.is_empty() {
                    true => Ok(()),
                    false => Err(Rejection::BatchRefused { failures }),
                }
            }
            _ => Ok(()),
        }
    }

    /// Decides a command against the tenant's complete state. The changes carry consecutive
    /// versions per stream, continuing from the current ones.
    pub fn decide(&self, command: &TenantCommand, ctx: &Context) -> Result<Vec<Change>, Rejection> {
        match command {
            TenantCommand::Invite { invite_id, command } => self.decide_for_invite(*invite_id, command, ctx),
            TenantCommand::ReportDelivery { delivery_id, status, detail } => {
                let invite_id = self.invite_of_delivery(*delivery_id).ok_or(Rejection::DeliveryNotFound)?;
                let command = InviteCommand::ReportDelivery {
                    delivery_id: *delivery_id,
                    status: *status,
                    detail: detail.clone(),
                };
                self.decide_for_invite(invite_id, &command, ctx)
            }
            TenantCommand::EngageByToken { token, kind, source } => {
                let (invite_id, _) = self.invite_by_token(token, &ctx.secrets).ok_or(Rejection::TokenNotFound)?;
                let command = InviteCommand::Engage { kind: *kind, source: source.clone() };
                self.decide_for_invite(invite_id, &command, ctx)
            }
            TenantCommand::ErasePersonalData { address } => {
                if let Some((kind, value)) = address {
                    crate::invite::check_address("address", *kind, value)?;
                }
                Ok(self.erase(address.as_ref(), &ctx.secrets))
            }
            TenantCommand::AcceptMany { target, invite_ids, accepted_by } => {
                self.accept_many(target, invite_ids, accepted_by, ctx)
            }
            TenantCommand::RevokeByScope { scope_type, scope_id, inviter, reason } => {
                self.revoke_by_scope(scope_type, scope_id, inviter.as_deref(), reason, ctx)
            }
            TenantCommand::CreateDefinition { definition_id, rules } => {
                if self.definitions.contains_key(definition_id) {
                    return Err(Rejection::DefinitionAlreadyExists);
                }
                self.check_rules(*definition_id, rules)?;
                Ok(vec![Change {
                    stream: StreamId::Definition(*definition_id),
                    version: 1,
                    event: DomainEvent::Definition(DefinitionEvent::Created(rules.clone())),
                }])
            }
            TenantCommand::UpdateDefinition { definition_id, rules } => {
                let current =
                    self.definitions.get(definition_id).ok_or(Rejection::DefinitionNotFound { field: "id" })?;
                self.check_rules(*definition_id, rules)?;
                if current.rules == *rules {
                    return Ok(vec![]);
                }
                Ok(vec![Change {
                    stream: StreamId::Definition(*definition_id),
                    version: current.version + 1,
                    event: DomainEvent::Definition(DefinitionEvent::Updated(rules.clone())),
                }])
            }
        }
    }

    fn check_rules(&self, id: DefinitionId, rules: &DefinitionRules) -> Result<(), Rejection> {
        let handle_ok = !rules.handle.is_empty()
            && rules.handle.len() <= 100
            && rules.handle.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !handle_ok {
            return Err(Rejection::invalid("handle", "1 to 100 letters, digits, '-', '_' or '.'"));
        }
        if self.handles.get(&rules.handle).is_some_and(|owner| *owner != id) {
            return Err(Rejection::HandleTaken { handle: rules.handle.clone() });
        }
        validate::time("starts_at", rules.starts_at)?;
        validate::time("ends_at", rules.ends_at)?;
        if let (Some(s), Some(e)) = (rules.starts_at, rules.ends_at) {
            if e <= s {
                return Err(Rejection::invalid("ends_at", "must be after starts_at"));
            }
        }
        validate::count("max_invites_per_inviter", rules.max_invites_per_inviter)?;
        validate::count("max_send_count", rules.max_send_count)?;
        if rules.max_send_count == Some(0) {
            return Err(Rejection::invalid("max_send_count", "must be at least 1"));
        }
        if rules.default_expiry_days.is_some_and(|d| !(1..=3650).contains(&d)) {
            return Err(Rejection::invalid("default_expiry_days", "must be between 1 and 3650"));
        }
        if let Some(templates) = &rules.templates {
            crate::message::check(templates)?;
        }
        Ok(())
    }

    fn rules_of(&self, invite: InviteId, create: Option<&crate::invite::CreateInvite>) -> Option<DefinitionRules> {
        let definition = match create {
            Some(c) => c.definition_id,
            None => self.invite(invite)?.created.definition_id,
        }?;
        self.definitions.get(&definition).map(|d| d.rules.clone())
    }

    fn decide_for_invite(
        &self,
        id: InviteId,
        command: &InviteCommand,
        ctx: &Context,
    ) -> Result<Vec<Change>, Rejection> {
        let state = self.invite_state(id);
        let create = match command {
            InviteCommand::Create(c) => Some(c.as_ref()),
            _ => None,
        };
        if let (Some(c), InviteState::Absent) = (create, state) {
            self.check_quota(c, ctx.now)?;
        }
        let ctx = Context { rules: self.rules_of(id, create), ..ctx.clone() };
        let events = decide_invite(state, command, &ctx)?;
        let mut changes = numbered(StreamId::Invite(id), state.version(), events);
        if let InviteCommand::Accept { target, .. } = command {
            let invite = self.invite(id).expect("an accepted invite exists");
            let targets = match target {
                Some(t) => vec![self.normalize_for(invite, t, &ctx.secrets)],
                None => invite
                    .created
                    .targets
                    .iter()
                    .filter(|t| t.kind != TargetKind::Share)
                    .map(Target::match_key)
                    .collect(),
            };
            changes.extend(self.accepted_elsewhere(invite, id, &targets, &BTreeSet::from([id]), ctx.now));
        }
        Ok(changes)
    }

    fn check_quota(&self, c: &crate::invite::CreateInvite, now: DateTime<Utc>) -> Result<(), Rejection> {
        let Some(definition_id) = c.definition_id else { return Ok(()) };
        let definition =
            self.definitions.get(&definition_id).ok_or(Rejection::DefinitionNotFound { field: "definition_id" })?;
        if !definition.is_active_at(now) {
            return Err(Rejection::OutsideActiveWindow);
        }
        if let (Some(max), Some(inviter)) = (definition.rules.max_invites_per_inviter, &c.inviter) {
            if self.remaining_quota(definition_id, &inviter.id) == Some(0) {
                return Err(Rejection::QuotaExhausted { max });
            }
        }
        Ok(())
    }

    /// The match key of the invite's target that a command names.
    fn normalize_for(&self, invite: &Invite, target: &str, secrets: &crate::personal::Secrets) -> String {
        invite
            .created
            .targets
            .iter()
            .find(|t| t.is(target, secrets))
            .map_or_else(|| target.trim().to_lowercase(), Target::match_key)
    }

    /// Whether the invite's link token is derived (it was created without a recorded one).
    fn tokens_derived(&self, id: InviteId) -> bool {
        self.invite(id).is_some_and(|i| i.created.token.is_none())
    }

    /// An `InvitePersonalDataErased` on every invite holding the address's data (every invite,
    /// for `None`) that does not record that erasure yet.
    fn erase(&self, address: Option<&(TargetKind, String)>, secrets: &crate::personal::Secrets) -> Vec<Change> {
        let index = address.map(|(kind, value)| secrets.blind_index(*kind, value));
        let mut ids: Vec<InviteId> = self
            .invites
            .iter()
            .filter_map(|(id, state)| Some((*id, state.live()?)))
            .filter(|(_, invite)| match &index {
                None => !invite.erased.all,
                Some(index) => {
                    let c = &invite.created;
                    let holds = c.targets.iter().any(|t| t.index.as_ref() == Some(index))
                        || c.inviter.email_index.as_ref() == Some(index)
                        || c.reply_to_index.contains(index);
                    holds && !invite.erased.all && !invite.erased.subjects.contains(index)
                }
            })
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        let (subjects, all, reason) = match index {
            Some(index) => (vec![index], false, ErasureReason::Request),
            None => (vec![], true, ErasureReason::TenantOffboarded),
        };
        ids.into_iter()
            .map(|id| Change {
                stream: StreamId::Invite(id),
                version: self.invite_state(id).version() + 1,
                event: DomainEvent::Invite(InviteEvent::PersonalDataErased(PersonalDataErased {
                    subjects: subjects.clone(),
                    all,
                    reason,
                })),
            })
            .collect()
    }

    /// `InviteAcceptedElsewhere` for every other open invite of the same targets and scopes.
    fn accepted_elsewhere(
        &self,
        accepted: &Invite,
        accepted_id: InviteId,
        targets: &[String],
        exclude: &BTreeSet<InviteId>,
        now: DateTime<Utc>,
    ) -> Vec<Change> {
        let mut others = BTreeSet::new();
        for key in match_keys(targets, &accepted.created.scopes) {
            if let Some(ids) = self.open_by_match.get(&key) {
                others.extend(ids.iter().filter(|id| !exclude.contains(id)));
            }
        }
        others
            .into_iter()
            .filter_map(|other| {
                let invite = self.invite(other)?;
                invite.is_open_at(now).then(|| Change {
                    stream: StreamId::Invite(other),
                    version: invite.version + 1,
                    event: DomainEvent::Invite(InviteEvent::AcceptedElsewhere(InviteAcceptedElsewhere {
                        accepted_invite_id: accepted_id,
                    })),
                })
            })
            .collect()
    }

    fn accept_many(
        &self,
        target: &str,
        ids: &[InviteId],
        accepted_by: &Option<String>,
        ctx: &Context,
    ) -> Result<Vec<Change>, Rejection> {
        accept_many_size(ids)?;
        let unique: BTreeSet<InviteId> = ids.iter().copied().collect();
        if unique.len() < ids.len() {
            return Err(Rejection::invalid("invitation_ids", "names an invitation more than once"));
        }
        // Checked once for the whole command, so the refusal names the field, not each invite.
        validate::line("target", target, MAX_ADDRESS)?;
        validate::opt_line("accepted_by", accepted_by, MAX_NAME)?;
        let mut changes = Vec::new();
        let mut failures = Vec::new();
        let mut targets = BTreeSet::new();
        for &id in &unique {
            let command = InviteCommand::Accept { accepted_by: accepted_by.clone(), target: Some(target.to_owned()) };
            let state = self.invite_state(id);
            match decide_invite(state, &command, &Context { rules: self.rules_of(id, None), ..ctx.clone() }) {
                Ok(events) => {
                    let invite = self.invite(id).expect("accepted invites exist");
                    targets.insert(self.normalize_for(invite, target, &ctx.secrets));
                    changes.extend(numbered(StreamId::Invite(id), state.version(), events));
                }
                Err(e) => failures.push((id, e)),
            }
        }
        if !failures.is_empty() {
            return Err(Rejection::BatchRefused { failures });
        }
        let targets: Vec<String> = targets.into_iter().collect();
        let mut elsewhere: Vec<Change> = Vec::new();
        for &id in &unique {
            for change in self.accepted_elsewhere(self.invite(id).expect("exists"), id, &targets, &unique, ctx.now) {
                if !elsewhere.iter().any(|c| c.stream == change.stream) {
                    elsewhere.push(change);
                }
            }
        }
        changes.extend(elsewhere);
        Ok(changes)
    }

    /// Revokes every invite of the scope that is still open (closed and expired ones are left as
    /// they are); if any of them cannot be revoked, none is.
    fn revoke_by_scope(
        &self,
        scope_type: &str,
        scope_id: &str,
        inviter: Option<&str>,
        reason: &Option<String>,
        ctx: &Context,
    ) -> Result<Vec<Change>, Rejection> {
        for (field, value) in [("scope_type", scope_type), ("scope_id", scope_id)] {
            if value.trim().is_empty() {
                return Err(Rejection::invalid(field, format!("must be 1 to {MAX_NAME} characters")));
            }
            validate::line(field, value, MAX_NAME)?;
        }
        validate::opt_text("reason", reason, validate::MAX_TEXT)?;
        let in_scope: BTreeSet<InviteId> = self
            .invites
            .iter()
            .filter_map(|(id, state)| Some((*id, state.live()?)))
            .filter(|(_, i)| i.is_open_at(ctx.now) && inviter.is_none_or(|own| i.created.inviter.id == own))
            .filter(|(_, i)| i.created.scopes.iter().any(|s| s.kind == scope_type && s.id == scope_id))
            .map(|(id, _)| id)
            .collect();
        let mut changes = Vec::new();
        let mut failures = Vec::new();
        for id in in_scope {
            let command = InviteCommand::Revoke { reason: reason.clone() };
            let state = self.invite_state(id);
            match decide_invite(state, &command, &Context { rules: self.rules_of(id, None), ..ctx.clone() }) {
                Ok(events) => changes.extend(numbered(StreamId::Invite(id), state.version(), events)),
                Err(e) => failures.push((id, e)),
            }
        }
        if !failures.is_empty() {
            return Err(Rejection::BatchRefused { failures });
        }
        Ok(changes)
    }

    /// Folds an event of this tenant into the state (while deciding, and when reading the log).
    pub fn apply(&mut self, stream: StreamId, event: &DomainEvent) {
        self.apply_owned(stream, event.clone())
    }

    /// [`Tenant::apply`] taking the event by value (replays move instead of copying).
    pub fn apply_owned(&mut self, stream: StreamId, event: DomainEvent) {
        match (stream, &event) {
            (StreamId::Invite(id), DomainEvent::Invite(_)) => {
                let DomainEvent::Invite(event) = event else { unreachable!("matched above") };
                self.apply_invite(id, event)
            }
            (StreamId::Definition(id), DomainEvent::Definition(event)) => {
                let rules = match event {
                    DefinitionEvent::Created(r) | DefinitionEvent::Updated(r) => r.clone(),
                };
                let version = self.definitions.get(&id).map_or(0, |d| d.version) + 1;
                if let Some(old) = self.definitions.get(&id) {
                    self.handles.remove(&old.rules.handle);
                }
                self.handles.insert(rules.handle.clone(), id);
                self.definitions.insert(id, Definition { rules, version });
            }
            _ => {}
        }
    }

    fn apply_invite(&mut self, id: InviteId, event: InviteEvent) {
        let state = self.invites.remove(&id).unwrap_or_default();
        let was_open = state.live().is_some_and(|i| i.lifecycle == crate::invite::Lifecycle::Open);
        let (created, sent) = match &event {
            InviteEvent::Created(_) => (true, None),
            InviteEvent::Sent(s) => (false, Some(s.delivery_id)),
            _ => (false, None),
        };
        let state = evolve_invite(state, event);
        if let Some(invite) = state.live() {
            let keys = || {
                let targets: Vec<String> = invite
                    .created
                    .targets
                    .iter()
                    .filter(|t| t.kind != TargetKind::Share)
                    .map(Target::match_key)
                    .collect();
                match_keys(&targets, &invite.created.scopes)
            };
            if created {
                let c = &invite.created;
                for key in keys() {
                    let ids = self.open_by_match.entry(key).or_default();
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                *self.created_per_inviter.entry((c.definition_id, c.inviter.id.clone())).or_default() += 1;
                if let Some(token) = &c.token {
                    self.tokens.insert(token.clone(), id);
                }
            }
            if let Some(delivery) = sent {
                self.deliveries.insert(delivery, id);
            }
            if was_open && invite.lifecycle != crate::invite::Lifecycle::Open {
                for key in keys() {
                    if let Some(ids) = self.open_by_match.get_mut(&key) {
                        ids.retain(|other| *other != id);
                        if ids.is_empty() {
                            self.open_by_match.remove(&key);
                        }
                    }
                }
            }
        }
        self.invites.insert(id, state);
    }
}

fn match_keys(targets: &[String], scopes: &[Scope]) -> Vec<MatchKey> {
    let scopes: Vec<Option<(String, String)>> = if scopes.is_empty() {
        vec![None]
    } else {
        scopes.iter().map(|s| Some((s.kind.clone(), s.id.clone()))).collect()
    };
    targets.iter().flat_map(|t| scopes.iter().map(move |s| (t.clone(), s.clone()))).collect()
}

fn numbered(stream: StreamId, from: u64, events: Vec<InviteEvent>) -> Vec<Change> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| Change { stream, version: from + 1 + i as u64, event: DomainEvent::Invite(e) })
        .collect()
}

/// How many invitations one multi-accept may name: at least one, at most 100.
fn accept_many_size(ids: &[InviteId]) -> Result<(), Rejection> {
    if ids.is_empty() {
        return Err(Rejection::invalid("invitation_ids", "at least one invitation id is required"));
    }
    if ids.len() > 100 {
        return Err(Rejection::invalid("invitation_ids", "at most 100 invitations at once"));
    }
    Ok(())
}
