//! Why a command was refused. Every rejection has a stable machine-readable code, a human message
//! (lowercase, no trailing period), the request field at fault where there is one, and a class
//! the APIs map to HTTP. A rejection never holds a technical error: those are not the domain's.

use crate::ids::InviteId;
use std::fmt;

/// How the APIs answer a rejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionClass {
    /// The command itself is malformed or breaks a rule about its content (422).
    Invalid,
    /// The command is well-formed but the current state forbids it (409).
    Conflict,
    /// What the command names does not exist (404).
    NotFound,
    /// It existed but is over: revoked, expired (410; used by the public link).
    Gone,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    Invalid {
        field: String,
        reason: String,
    },
    InviteAlreadyExists,
    InviteNotFound,
    DefinitionNotFound {
        field: &'static str,
    },
    DefinitionAlreadyExists,
    HandleTaken {
        handle: String,
    },
    DeliveryNotFound,
    TokenNotFound,
    /// The invite is closed: accepted, accepted elsewhere, declined or revoked.
    InviteClosed {
        status: &'static str,
    },
    InviteExpired,
    InviteRevoked,
    AlreadySent,
    NotSentYet,
    MaxSendsReached {
        max: u32,
    },
    MaxAcceptsReached {
        max: u32,
    },
    QuotaExhausted {
        max: u32,
    },
    OutsideActiveWindow,
    InvalidDeliveryTransition {
        from: &'static str,
        to: &'static str,
    },
    TargetNotOnInvite,
    /// The target's personal data was erased: nothing more is sent to it.
    PersonalDataErased,
    /// A batch refused as a whole, with the reason for each invite that failed.
    BatchRefused {
        failures: Vec<(InviteId, Rejection)>,
    },
}

impl Rejection {
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), reason: reason.into() }
    }

    /// Stable, machine-readable code (the last segment of the problem `type`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { .. } => "invalid-field",
            Self::InviteAlreadyExists => "invite-already-exists",
            Self::InviteNotFound => "invite-not-found",
            Self::DefinitionNotFound { .. } => "definition-not-found",
            Self::DefinitionAlreadyExists => "definition-already-exists",
            Self::HandleTaken { .. } => "handle-taken",
            Self::DeliveryNotFound => "delivery-not-found",
            Self::TokenNotFound => "link-not-found",
            Self::InviteClosed { .. } => "invite-closed",
            Self::InviteExpired => "invite-expired",
            Self::InviteRevoked => "invite-revoked",
            Self::AlreadySent => "already-sent",
            Self::NotSentYet => "not-sent-yet",
            Self::MaxSendsReached { .. } => "max-sends-reached",
            Self::MaxAcceptsReached { .. } => "max-accepts-reached",
            Self::QuotaExhausted { .. } => "quota-exhausted",
            Self::OutsideActiveWindow => "outside-active-window",
            Self::InvalidDeliveryTransition { .. } => "invalid-delivery-transition",
            Self::TargetNotOnInvite => "target-not-on-invite",
            Self::PersonalDataErased => "personal-data-erased",
            Self::BatchRefused { .. } => "batch-refused",
        }
    }

    pub fn class(&self) -> RejectionClass {
        match self {
            Self::Invalid { .. } | Self::TargetNotOnInvite => RejectionClass::Invalid,
            Self::DefinitionNotFound { field } if *field != "id" => RejectionClass::Invalid,
            Self::InviteNotFound | Self::DefinitionNotFound { .. } | Self::DeliveryNotFound | Self::TokenNotFound => {
                RejectionClass::NotFound
            }
            Self::InviteExpired | Self::InviteRevoked => RejectionClass::Gone,
            _ => RejectionClass::Conflict,
        }
    }

    /// The request field at fault, if any.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            Self::DefinitionNotFound { field } => Some(field),
            Self::HandleTaken { .. } => Some("handle"),
            Self::TargetNotOnInvite => Some("target"),
            _ => None,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Invalid { field, reason } => write!(f, "{field}: {reason}"),
            Self::InviteAlreadyExists => f.write_str("the invite already exists"),
            Self::InviteNotFound => f.write_str("no such invite"),
            Self::DefinitionNotFound { .. } => f.write_str("no such definition"),
            Self::DefinitionAlreadyExists => f.write_str("the definition already exists"),
            Self::HandleTaken { handle } => write!(f, "another definition has the handle {handle:?}"),
            Self::DeliveryNotFound => f.write_str("no such delivery"),
            Self::TokenNotFound => f.write_str("no invitation has this link"),
            Self::InviteClosed { status } => write!(f, "the invite is {status}; it takes no more commands"),
            Self::InviteExpired => f.write_str("the invite has expired"),
            Self::InviteRevoked => f.write_str("the invite was revoked"),
            Self::AlreadySent => f.write_str("the invite was sent already; resend it instead"),
            Self::NotSentYet => f.write_str("the invite was never sent; send it first"),
            Self::MaxSendsReached { max } => {
                write!(f, "the invite was sent {max} times, the most its definition allows")
            }
            Self::MaxAcceptsReached { max } => write!(f, "the invite was accepted {max} times, the most it allows"),
            Self::QuotaExhausted { max } => write!(f, "the inviter has used all {max} invites of the definition"),
            Self::OutsideActiveWindow => f.write_str("the definition is not active at this time"),
            Self::InvalidDeliveryTransition { from, to } => write!(f, "a delivery cannot go from {from} to {to}"),
            Self::TargetNotOnInvite => f.write_str("the target is not one of the invite's targets"),
            Self::PersonalDataErased => f.write_str("the target's personal data was erased"),
            Self::BatchRefused { failures } => {
                write!(f, "{} of the invites cannot be accepted; none was", failures.len())
            }
        }
    }
}

impl std::error::Error for Rejection {}
