//! The invite aggregate: `decide(state, command, context)` and `evolve(state, event)`.

use crate::event::{InvitationType, InviteCreated, InviteEvent, Inviter, Scope, Target};
use crate::ids::{DefinitionId, LinkToken};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// What the caller knows that the domain may not compute itself: the time and fresh randomness.
#[derive(Debug, Clone)]
pub struct Context {
    pub now: DateTime<Utc>,
    /// A fresh link token, used when the command creates an invite.
    pub new_token: LinkToken,
}

/// Create an invitation.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateInvite {
    pub inviter: Inviter,
    pub targets: Vec<Target>,
    pub message: Option<String>,
    pub invitation_type: InvitationType,
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<Scope>,
    pub reply_to: Vec<String>,
    pub metadata: BTreeMap<String, serde_json::Value>,
    pub template_variables: BTreeMap<String, String>,
    pub widget_id: Option<String>,
    pub flow_id: Option<String>,
    pub template_id: Option<String>,
    pub landing_url: Option<String>,
    pub definition_id: Option<DefinitionId>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Create(CreateInvite),
}

/// The canonical status of an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InviteStatus {
    Pending,
}

impl InviteStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
        }
    }
}

/// The current state of one invite, folded from its events.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum InviteState {
    #[default]
    Absent,
    Live(Box<LiveInvite>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LiveInvite {
    pub created: InviteCreated,
    pub status: InviteStatus,
    pub version: u64,
}

impl InviteState {
    pub fn version(&self) -> u64 {
        match self {
            Self::Absent => 0,
            Self::Live(i) => i.version,
        }
    }
}

/// Why a command was refused. Each has a stable code and a field where one is to blame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    AlreadyExists,
    Invalid { field: &'static str, reason: String },
}

impl Rejection {
    /// Stable, machine-readable code (the last segment of the problem `type`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyExists => "invite-already-exists",
            Self::Invalid { .. } => "invalid-field",
        }
    }
    /// The request field at fault, if any.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
    /// True when the command was malformed (422), false when it conflicts with the state (409).
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::Invalid { .. })
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyExists => f.write_str("the invite already exists"),
            Self::Invalid { field, reason } => write!(f, "{field}: {reason}"),
        }
    }
}

impl std::error::Error for Rejection {}

pub fn decide(state: &InviteState, command: &Command, ctx: &Context) -> Result<Vec<InviteEvent>, Rejection> {
    match command {
        Command::Create(c) => {
            if !matches!(state, InviteState::Absent) {
                return Err(Rejection::AlreadyExists);
            }
            if c.targets.is_empty() {
                return Err(Rejection::Invalid { field: "targets", reason: "at least one target is required".into() });
            }
            if let Some(at) = c.expires_at {
                if at <= ctx.now {
                    return Err(Rejection::Invalid { field: "expires_at", reason: "must be in the future".into() });
                }
            }
            Ok(vec![InviteEvent::Created(InviteCreated {
                inviter: c.inviter.clone(),
                targets: c.targets.clone(),
                message: c.message.clone(),
                invitation_type: c.invitation_type,
                expires_at: c.expires_at,
                scopes: c.scopes.clone(),
                reply_to: c.reply_to.clone(),
                metadata: c.metadata.clone(),
                template_variables: c.template_variables.clone(),
                widget_id: c.widget_id.clone(),
                flow_id: c.flow_id.clone(),
                template_id: c.template_id.clone(),
                landing_url: c.landing_url.clone(),
                definition_id: c.definition_id,
                token: ctx.new_token.clone(),
            })])
        }
    }
}

pub fn evolve(state: InviteState, event: &InviteEvent) -> InviteState {
    match (state, event) {
        (InviteState::Absent, InviteEvent::Created(e)) => {
            InviteState::Live(Box::new(LiveInvite { created: e.clone(), status: InviteStatus::Pending, version: 1 }))
        }
        (InviteState::Live(i), InviteEvent::Created(_)) => InviteState::Live(i),
    }
}
