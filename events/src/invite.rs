//! The invite aggregate: `decide(state, command, context)` and `evolve(state, event)`.
//!
//! Lifecycle (`*` = terminal; after it only reads, and late delivery reports from the provider;
//! a delivery's send never begins after the end):
//!
//! ```text
//!  (absent) --Create--> open --Send--> open --Resend--> open ...      (deliveries, engagement)
//!                        |--Accept--> accepted*   (multi-use: open until its max accepts)
//!                        |--another invite for the same target and scope accepted--> accepted_elsewhere*
//!                        |--Decline--> declined*
//!                        |--Revoke--> revoked*
//!                        |--Expire (or time passing expires_at)--> expired*
//! ```

use crate::event::*;
use crate::ids::{DefinitionId, DeliveryId};
use crate::rejection::Rejection;
use crate::status::InviteStatus;
use crate::validate::{self, MAX_ADDRESS, MAX_NAME, MAX_TEXT};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeMap;

/// What the caller knows that the domain may not compute itself: the time, fresh ids and
/// randomness, the server's secrets, and the rules of the invite's definition.
#[derive(Debug, Clone)]
pub struct Context {
    pub now: DateTime<Utc>,
    /// The keys of blind indexes and link tokens.
    pub secrets: crate::personal::Secrets,
    /// A fresh delivery id, used when the command sends.
    pub new_delivery_id: DeliveryId,
    /// The rules of the definition the invite draws from, if any.
    pub rules: Option<DefinitionRules>,
}

/// Create an invitation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CreateInvite {
    pub inviter: Option<Inviter>,
    pub targets: Vec<Target>,
    pub recipient_names: Vec<String>,
    pub message: Option<String>,
    pub multi_use: bool,
    pub max_accepts: Option<u32>,
    pub expires_at: Option<DateTime<Utc>>,
    pub expires_in_days: Option<u32>,
    pub scopes: Vec<Scope>,
    pub reply_to: Vec<String>,
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// The `metadata` keys whose values are personal data.
    pub personal_metadata: Vec<String>,
    pub template_variables: BTreeMap<String, String>,
    pub widget_id: Option<String>,
    pub flow_id: Option<String>,
    pub template_id: Option<String>,
    pub landing_url: Option<String>,
    pub definition_id: Option<DefinitionId>,
    /// Where in the client's product it was made, and the client's kind of invitation.
    pub source: Option<String>,
    pub subtype: Option<String>,
    /// Send at once with this method, to the first target: the invite and its first delivery
    /// are one decision, so their events are appended together or not at all.
    pub send: Option<DeliveryMethod>,
}

/// Commands on one invite. Imperative; each turns into zero or more events, or a rejection.
#[derive(Debug, Clone, PartialEq)]
pub enum InviteCommand {
    Create(Box<CreateInvite>),
    /// The first delivery. `target`: one of the invite's target values (default: the first).
    Send {
        method: DeliveryMethod,
        target: Option<String>,
    },
    /// Another delivery, while the send count is below the definition's max send count.
    Resend {
        method: DeliveryMethod,
        target: Option<String>,
    },
    ReportDelivery {
        delivery_id: DeliveryId,
        status: DeliveryStatus,
        detail: Option<String>,
    },
    Engage {
        kind: EngagementKind,
        source: Option<String>,
    },
    Accept {
        accepted_by: Option<String>,
        target: Option<String>,
    },
    /// Issued by the tenant aggregate, never by a client.
    MarkAcceptedElsewhere {
        accepted_invite_id: crate::InviteId,
    },
    Decline {
        reason: Option<String>,
    },
    Revoke {
        reason: Option<String>,
    },
    Expire {
        reason: Option<String>,
    },
}

/// How an invite's life ended, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Lifecycle {
    Open,
    Accepted,
    AcceptedElsewhere,
    Declined,
    Revoked,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    pub id: DeliveryId,
    pub method: DeliveryMethod,
    pub target: String,
    pub status: DeliveryStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Accept {
    pub accepted_by: Option<String>,
    pub target: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub sends: u32,
    pub deliveries: u32,
    pub views: u32,
    pub clicks: u32,
    pub shares: u32,
    pub unfurls: u32,
}

/// A live invite: everything `decide` needs, folded from its events.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Invite {
    pub created: Box<InviteCreated>,
    pub version: u64,
    pub lifecycle: Lifecycle,
    /// The furthest open stage reached (created … shared).
    pub stage: InviteStatus,
    pub deliveries: Vec<Delivery>,
    pub accepts: Vec<Accept>,
    pub counters: Counters,
    /// Whose personal data was erased (blind indexes), or everyone's.
    pub erased: Erased,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Erased {
    pub all: bool,
    pub subjects: std::collections::BTreeSet<String>,
}

impl Invite {
    /// Whether a target's personal data was erased: nothing can be sent to it any more.
    pub fn is_erased(&self, target: &Target) -> bool {
        self.erased.all || target.index.as_ref().is_some_and(|i| self.erased.subjects.contains(i))
    }

    /// The status its events alone give (the furthest stage, or how it closed; a multi-use
    /// invite accepted and still open: accepted), and whether it is still open: what the read
    /// model stores, and what [`crate::derived`] reads the status at a time from.
    pub fn stored_status(&self) -> (InviteStatus, bool) {
        match self.lifecycle {
            Lifecycle::Accepted => (InviteStatus::Accepted, false),
            Lifecycle::AcceptedElsewhere => (InviteStatus::AcceptedElsewhere, false),
            Lifecycle::Declined => (InviteStatus::Declined, false),
            Lifecycle::Revoked => (InviteStatus::Revoked, false),
            Lifecycle::Expired => (InviteStatus::Expired, false),
            Lifecycle::Open if !self.accepts.is_empty() => (InviteStatus::Accepted, true),
            Lifecycle::Open => (self.stage, true),
        }
    }

    /// The canonical status at `now`: expiry is a function of time ([`crate::derived::status`]).
    pub fn status_at(&self, now: DateTime<Utc>) -> InviteStatus {
        let (stored, open) = self.stored_status();
        crate::derived::status(stored, open, self.created.expires_at, now)
    }

    /// Expired by an event, or open with its expiry time come ([`crate::derived::is_expired`]):
    /// an invite that closed otherwise (accepted, revoked...) never reads as expired.
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        let (stored, open) = self.stored_status();
        crate::derived::is_expired(stored, open, self.created.expires_at, now)
    }

    /// Open and not expired: it can still be accepted.
    pub fn is_open_at(&self, now: DateTime<Utc>) -> bool {
        self.lifecycle == Lifecycle::Open && !self.is_expired_at(now)
    }

    pub fn max_accepts(&self) -> Option<u32> {
        match self.created.invitation_type {
            InvitationType::SingleUse => Some(1),
            InvitationType::MultiUse { max_accepts } => max_accepts,
        }
    }
}

/// The current state of one invite, folded from its events.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub enum InviteState {
    #[default]
    Absent,
    Live(Box<Invite>),
}

impl InviteState {
    pub fn version(&self) -> u64 {
        match self {
            Self::Absent => 0,
            Self::Live(i) => i.version,
        }
    }

    pub fn live(&self) -> Option<&Invite> {
        match self {
            Self::Absent => None,
            Self::Live(i) => Some(i),
        }
    }
}

/// Decides a command against the invite's complete state.
pub fn decide(state: &InviteState, command: &InviteCommand, ctx: &Context) -> Result<Vec<InviteEvent>, Rejection> {
    check_values(command)?;
    let invite = match (state, command) {
        (InviteState::Absent, InviteCommand::Create(c)) => return create_and_send(c, ctx),
        (InviteState::Live(_), InviteCommand::Create(_)) => return Err(Rejection::InviteAlreadyExists),
        (InviteState::Absent, _) => return Err(Rejection::InviteNotFound),
        (InviteState::Live(invite), _) => invite,
    };
    use InviteCommand::*;
    // Late provider reports are facts about the outside world: taken even after the end.
    if let ReportDelivery { delivery_id, status, detail } = command {
        let delivery = invite.deliveries.iter().find(|d| d.id == *delivery_id).ok_or(Rejection::DeliveryNotFound)?;
        if delivery.status == *status {
            return Ok(vec![]);
        }
        if !status.may_follow(delivery.status) {
            return Err(Rejection::InvalidDeliveryTransition { from: delivery.status.as_str(), to: status.as_str() });
        }
        // A send begins only while the invite is open: a delivery asked for before a revoke, a
        // decline or the expiry is never sent after it. Its outcome is taken whenever it comes.
        if *status == DeliveryStatus::Sending {
            ensure_open(invite, ctx.now)?;
        }
        return Ok(vec![InviteEvent::DeliveryStatusChanged(DeliveryStatusChanged {
            delivery_id: *delivery_id,
            status: *status,
            detail: detail.clone(),
        })]);
    }
    // Expiring records what time already decided: an open invite past its `expires_at` may
    // (and should) get its `InviteExpired` event; any other command is refused by then.
    let recording_expiry = matches!(command, Expire { .. }) && invite.lifecycle == Lifecycle::Open;
    if !recording_expiry {
        ensure_open(invite, ctx.now)?;
    }
    let event = match command {
        Create(_) | ReportDelivery { .. } => unreachable!("handled above"),
        Send { method, target } | Resend { method, target } => {
            let resend = matches!(command, Resend { .. });
            match (resend, invite.counters.sends) {
                (false, n) if n > 0 => return Err(Rejection::AlreadySent),
                (true, 0) => return Err(Rejection::NotSentYet),
                _ => {}
            }
            if let Some(max) = ctx.rules.as_ref().and_then(|r| r.max_send_count) {
                if invite.counters.sends >= max {
                    return Err(Rejection::MaxSendsReached { max });
                }
            }
            let target = match target {
                None => &invite.created.targets[0],
                Some(t) => {
                    invite.created.targets.iter().find(|x| x.is(t, &ctx.secrets)).ok_or(Rejection::TargetNotOnInvite)?
                }
            };
            if invite.is_erased(target) {
                return Err(Rejection::PersonalDataErased);
            }
            InviteEvent::Sent(InviteSent {
                delivery_id: ctx.new_delivery_id,
                method: *method,
                target: target.value.clone(),
                target_index: target.index.clone(),
                resend,
            })
        }
        Engage { kind, source } => InviteEvent::Engaged(InviteEngaged { kind: *kind, source: source.clone() }),
        Accept { accepted_by, target } => {
            if let Some(max) = invite.max_accepts() {
                if invite.accepts.len() as u32 >= max {
                    return Err(Rejection::MaxAcceptsReached { max });
                }
            }
            let target = match target {
                None => None,
                Some(t) => Some(
                    invite
                        .created
                        .targets
                        .iter()
                        .find(|x| x.is(t, &ctx.secrets))
                        .ok_or(Rejection::TargetNotOnInvite)?,
                ),
            };
            InviteEvent::Accepted(InviteAccepted {
                accepted_by: accepted_by.clone(),
                // An address as the invite holds it (sealed); another kind normalized, as before.
                target: target.map(|t| if t.index.is_some() { t.value.clone() } else { t.normalized() }),
                target_index: target.and_then(|t| t.index.clone()),
            })
        }
        MarkAcceptedElsewhere { accepted_invite_id } => {
            InviteEvent::AcceptedElsewhere(InviteAcceptedElsewhere { accepted_invite_id: *accepted_invite_id })
        }
        Decline { reason } => InviteEvent::Declined(InviteClosed { reason: reason.clone() }),
        Revoke { reason } => InviteEvent::Revoked(InviteClosed { reason: reason.clone() }),
        Expire { reason } => InviteEvent::Expired(InviteClosed { reason: reason.clone() }),
    };
    Ok(vec![event])
}

/// The strings a command carries beyond its creation, as every read model can hold them
/// (see [`validate`]); refused before the state is looked at, as malformed input.
fn check_values(command: &InviteCommand) -> Result<(), Rejection> {
    use InviteCommand::*;
    match command {
        Create(_) | MarkAcceptedElsewhere { .. } => Ok(()),
        Send { target, .. } | Resend { target, .. } => validate::opt_line("target", target, MAX_ADDRESS),
        ReportDelivery { detail, .. } => validate::opt_text("detail", detail, MAX_TEXT),
        Engage { source, .. } => validate::opt_line("source", source, MAX_NAME),
        Accept { accepted_by, target } => {
            validate::opt_line("accepted_by", accepted_by, MAX_NAME)?;
            validate::opt_line("target", target, MAX_ADDRESS)
        }
        Decline { reason } | Revoke { reason } | Expire { reason } => validate::opt_text("reason", reason, MAX_TEXT),
    }
}

fn ensure_open(invite: &Invite, now: DateTime<Utc>) -> Result<(), Rejection> {
    match invite.lifecycle {
        Lifecycle::Open if invite.is_expired_at(now) => Err(Rejection::InviteExpired),
        Lifecycle::Open => Ok(()),
        Lifecycle::Revoked => Err(Rejection::InviteRevoked),
        Lifecycle::Expired => Err(Rejection::InviteExpired),
        _ => Err(Rejection::InviteClosed { status: invite.status_at(now).as_str() }),
    }
}

/// Folds one event into the state. Total: an event that does not fit (which `decide` never
/// produces) leaves the state as it was, apart from the version.
pub fn evolve(state: InviteState, event: &InviteEvent) -> InviteState {
    evolve_owned(state, event.clone())
}

/// [`evolve`] taking the event by value: replaying a long log moves each creation's facts into
/// the state instead of copying them.
/// Drops from an invite's creation the text no decision reads (names, message, reply-to
/// addresses, template variables, metadata), keeping what decisions do read: the targets with
/// their sealed values and blind indexes, the inviter's id and index, the rules, scopes and links.
/// The writer holds every invite in memory and calls it on what it folds; that text, sealed, was a
/// third of its memory. (A replay that shows invites, such as `projector as-of`, keeps it all.)
pub fn trim_for_decisions(created: &mut InviteCreated) {
    created.recipient_names = Vec::new();
    created.message = None;
    created.reply_to = Vec::new();
    created.template_variables = BTreeMap::new();
    created.metadata = BTreeMap::new();
    created.inviter.name = None;
    created.inviter.email = None;
    for target in &mut created.targets {
        target.name = None;
    }
}

pub fn evolve_owned(state: InviteState, event: InviteEvent) -> InviteState {
    let mut invite = match (state, &event) {
        (InviteState::Absent, InviteEvent::Created(_)) => {
            let InviteEvent::Created(created) = event else { unreachable!("matched above") };
            return InviteState::Live(Box::new(Invite {
                created,
                version: 1,
                lifecycle: Lifecycle::Open,
                stage: InviteStatus::Created,
                deliveries: Vec::new(),
                accepts: Vec::new(),
                counters: Counters::default(),
                erased: Erased::default(),
            }));
        }
        (InviteState::Absent, _) => return InviteState::Absent,
        (InviteState::Live(invite), _) => invite,
    };
    invite.version += 1;
    if let Some(stage) = crate::derived::stage_of(&event) {
        invite.stage = crate::derived::advance(invite.stage, stage);
    }
    match &event {
        InviteEvent::Created(_) => {}
        InviteEvent::Sent(e) => {
            invite.counters.sends += 1;
            invite.deliveries.push(Delivery {
                id: e.delivery_id,
                method: e.method,
                target: e.target.clone(),
                status: DeliveryStatus::Queued,
            });
        }
        InviteEvent::DeliveryStatusChanged(e) => {
            // Opened means it arrived: providers often report the open first, or only the open.
            let arrived = |s: DeliveryStatus| matches!(s, DeliveryStatus::Delivered | DeliveryStatus::Opened);
            if let Some(d) = invite.deliveries.iter_mut().find(|d| d.id == e.delivery_id) {
                if arrived(e.status) && !arrived(d.status) {
                    invite.counters.deliveries += 1;
                }
                d.status = e.status;
            }
        }
        InviteEvent::Engaged(e) => {
            let counter = match e.kind {
                EngagementKind::View => &mut invite.counters.views,
                EngagementKind::Click => &mut invite.counters.clicks,
                EngagementKind::Share => &mut invite.counters.shares,
                EngagementKind::Unfurl => &mut invite.counters.unfurls,
            };
            *counter += 1;
        }
        InviteEvent::Accepted(e) => {
            invite.accepts.push(Accept { accepted_by: e.accepted_by.clone(), target: e.target.clone() });
            if invite.max_accepts().is_some_and(|max| invite.accepts.len() as u32 >= max) {
                invite.lifecycle = Lifecycle::Accepted;
            }
        }
        InviteEvent::AcceptedElsewhere(_) => invite.lifecycle = Lifecycle::AcceptedElsewhere,
        InviteEvent::Declined(_) => invite.lifecycle = Lifecycle::Declined,
        InviteEvent::Revoked(_) => invite.lifecycle = Lifecycle::Revoked,
        InviteEvent::Expired(_) => invite.lifecycle = Lifecycle::Expired,
        InviteEvent::PersonalDataErased(e) => {
            invite.erased.all |= e.all;
            invite.erased.subjects.extend(e.subjects.iter().cloned());
        }
    }
    InviteState::Live(invite)
}

/// A create, and with `send` the first delivery, decided as one: the send is checked against the
/// invite the create makes, by the very rules of a later `Send`.
fn create_and_send(c: &CreateInvite, ctx: &Context) -> Result<Vec<InviteEvent>, Rejection> {
    let created = create(c, ctx)?;
    let Some(method) = c.send else { return Ok(vec![created]) };
    let invite = evolve(InviteState::Absent, &created);
    let mut events = vec![created];
    events.extend(decide(&invite, &InviteCommand::Send { method, target: None }, ctx)?);
    Ok(events)
}

const MAX_TARGETS: usize = 100;
/// Most scopes, reply-to addresses, metadata entries and template variables of one invite. The
/// writer keeps an entry per (target, scope) pair of every open invite in memory, and reads them
/// all back from the log at every start: unbounded lists would let one create grow that by millions.
const MAX_ITEMS: usize = 100;

fn create(c: &CreateInvite, ctx: &Context) -> Result<InviteEvent, Rejection> {
    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Rejection {
        Rejection::invalid(field, reason)
    }
    let inviter = c.inviter.clone().ok_or_else(|| invalid("inviter", "the inviter is required"))?;
    if inviter.id.trim().is_empty() {
        return Err(invalid("inviter.id", format!("must be 1 to {MAX_NAME} characters")));
    }
    validate::line("inviter.id", &inviter.id, MAX_NAME)?;
    validate::opt_line("inviter.name", &inviter.name, MAX_NAME)?;
    if let Some(email) = &inviter.email {
        check_email("inviter.email", email)?;
    }
    if c.targets.is_empty() {
        return Err(invalid("targets", "at least one target is required"));
    }
    if c.targets.len() > MAX_TARGETS {
        return Err(invalid("targets", format!("at most {MAX_TARGETS} targets")));
    }
    for (i, t) in c.targets.iter().enumerate() {
        check_target(i, t)?;
    }
    for (i, name) in c.recipient_names.iter().enumerate() {
        validate::line(&format!("recipient_names[{i}]"), name, MAX_NAME)?;
    }
    validate::opt_text("message", &c.message, MAX_TEXT)?;
    validate::count("max_accepts", c.max_accepts)?;
    let invitation_type = match (c.multi_use, c.max_accepts) {
        (false, Some(_)) => return Err(invalid("max_accepts", "only a multi_use invitation takes max_accepts")),
        (false, None) => InvitationType::SingleUse,
        (true, Some(0)) => return Err(invalid("max_accepts", "must be at least 1")),
        (true, max_accepts) => InvitationType::MultiUse { max_accepts },
    };
    let default_days = ctx.rules.as_ref().and_then(|r| r.default_expiry_days);
    crate::validate::time("expires_at", c.expires_at)?;
    let expires_at = match (c.expires_at, c.expires_in_days) {
        (Some(_), Some(_)) => return Err(invalid("expires_in_days", "give expires_at or expires_in_days, not both")),
        (Some(at), None) if at <= ctx.now => return Err(invalid("expires_at", "must be in the future")),
        (Some(at), None) => Some(at),
        (None, Some(days)) if !(1..=3650).contains(&days) => {
            return Err(invalid("expires_in_days", "must be between 1 and 3650"))
        }
        (None, Some(days)) => Some(ctx.now + Duration::days(i64::from(days))),
        (None, None) => default_days.map(|days| ctx.now + Duration::days(i64::from(days))),
    };
    for (field, n) in [
        ("scopes", c.scopes.len()),
        ("reply_to", c.reply_to.len()),
        ("metadata", c.metadata.len()),
        ("personal_metadata", c.personal_metadata.len()),
        ("template_variables", c.template_variables.len()),
    ] {
        if n > MAX_ITEMS {
            return Err(invalid(field, format!("at most {MAX_ITEMS} items")));
        }
    }
    for (i, s) in c.scopes.iter().enumerate() {
        if s.kind.trim().is_empty() || s.id.trim().is_empty() {
            return Err(invalid(format!("scopes[{i}]"), "a scope needs a type and an id"));
        }
        validate::line(&format!("scopes[{i}].type"), &s.kind, MAX_NAME)?;
        validate::line(&format!("scopes[{i}].id"), &s.id, MAX_NAME)?;
        validate::opt_line(&format!("scopes[{i}].name"), &s.name, MAX_NAME)?;
    }
    for (i, address) in c.reply_to.iter().enumerate() {
        check_email(&format!("reply_to[{i}]"), address)?;
    }
    for (key, value) in &c.metadata {
        validate::key("metadata", key)?;
        validate::json(&format!("metadata.{key}"), value)?;
    }
    for (i, key) in c.personal_metadata.iter().enumerate() {
        if !c.metadata.contains_key(key) {
            return Err(invalid(format!("personal_metadata[{i}]"), "names no key of metadata"));
        }
    }
    for (key, value) in &c.template_variables {
        validate::key("template_variables", key)?;
        validate::text(&format!("template_variables.{key}"), value, MAX_TEXT)?;
    }
    validate::opt_line("widget_id", &c.widget_id, MAX_NAME)?;
    validate::opt_line("flow_id", &c.flow_id, MAX_NAME)?;
    validate::opt_line("template_id", &c.template_id, MAX_NAME)?;
    validate::opt_line("source", &c.source, MAX_NAME)?;
    validate::opt_line("subtype", &c.subtype, MAX_NAME)?;
    if let Some(url) = &c.landing_url {
        validate::landing_url("landing_url", url)?;
    }
    let inviter = Inviter {
        email_index: inviter.email.as_deref().map(|e| ctx.secrets.blind_index(TargetKind::Email, e)),
        ..inviter
    };
    Ok(InviteEvent::Created(Box::new(InviteCreated {
        inviter,
        targets: c
            .targets
            .iter()
            .map(|t| Target {
                index: matches!(t.kind, TargetKind::Email | TargetKind::Phone)
                    .then(|| ctx.secrets.blind_index(t.kind, &t.value)),
                ..t.clone()
            })
            .collect(),
        recipient_names: c.recipient_names.clone(),
        message: c.message.clone(),
        invitation_type,
        expires_at,
        scopes: c.scopes.clone(),
        reply_to: c.reply_to.iter().map(|a| a.trim().to_lowercase()).collect(),
        reply_to_index: c.reply_to.iter().map(|a| ctx.secrets.blind_index(TargetKind::Email, a)).collect(),
        metadata: c.metadata.clone(),
        personal_metadata: {
            let mut keys = c.personal_metadata.clone();
            keys.sort();
            keys.dedup();
            keys
        },
        template_variables: c.template_variables.clone(),
        widget_id: c.widget_id.clone(),
        flow_id: c.flow_id.clone(),
        template_id: c.template_id.clone(),
        landing_url: c.landing_url.clone(),
        definition_id: c.definition_id,
        token: None,
        source: c.source.clone(),
        subtype: c.subtype.clone().map(String::into_boxed_str),
    })))
}

fn check_email(field: &str, value: &str) -> Result<(), Rejection> {
    let v = value.trim();
    // As every other string of a command (see `validate`): the writer leaves a sealed-looking
    // value as it is, so one taken from a client would reach the log in clear.
    if crate::personal::is_sealed(v) {
        return Err(Rejection::invalid(field, format!("must not start with {:?}", crate::personal::SEALED_PREFIX)));
    }
    let ok = v.chars().count() <= MAX_ADDRESS
        && !v.contains(|c: char| c.is_whitespace() || c.is_control())
        && v.split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.') && !domain.contains('@'));
    if ok {
        Ok(())
    } else {
        Err(Rejection::invalid(field, "not an email address"))
    }
}

fn check_target(i: usize, t: &Target) -> Result<(), Rejection> {
    validate::opt_line(&format!("targets[{i}].name"), &t.name, MAX_NAME)?;
    check_address(&format!("targets[{i}].value"), t.kind, &t.value)
}

/// A target value of its kind: an email address, a phone number, or any one-line id.
pub(crate) fn check_address(field: &str, kind: TargetKind, value: &str) -> Result<(), Rejection> {
    if value.trim().is_empty() {
        return Err(Rejection::invalid(field, format!("must be 1 to {MAX_ADDRESS} characters")));
    }
    validate::line(field, value, MAX_ADDRESS)?;
    match kind {
        TargetKind::Email => check_email(field, value),
        TargetKind::Phone => {
            let allowed = value
                .trim()
                .chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_digit() || " -().".contains(c) || (c == '+' && i == 0));
            let digits = value.chars().filter(char::is_ascii_digit).count();
            if allowed && (7..=15).contains(&digits) {
                Ok(())
            } else {
                Err(Rejection::invalid(field, "not a phone number (7 to 15 digits, optional leading +)"))
            }
        }
        TargetKind::Internal | TargetKind::Share => Ok(()),
    }
}
