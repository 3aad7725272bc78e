//! The events: past-tense facts about one invitation. Events carry the facts; everything
//! derived (status, counters, expiry) is computed from them by [`crate::evolve`].

use crate::ids::{DefinitionId, LinkToken};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Who sends the invitation, as identified in the client's own system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inviter {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    Email,
    Phone,
    /// A user id inside the client's system.
    Internal,
    /// An open share link: whoever holds it.
    Share,
}

impl TargetKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Internal => "internal",
            Self::Share => "share",
        }
    }
}

/// One recipient of an invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    #[serde(rename = "type")]
    pub kind: TargetKind,
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What the invite grants access to: a workspace, a team, a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InvitationType {
    SingleUse,
    MultiUse {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_accepts: Option<u32>,
    },
}

/// An invitation came into being. Holds everything the client said about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InviteCreated {
    pub inviter: Inviter,
    pub targets: Vec<Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub invitation_type: InvitationType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<Scope>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reply_to: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub template_variables: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widget_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub landing_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition_id: Option<DefinitionId>,
    pub token: LinkToken,
}

/// Every fact in an invitation's life.
#[derive(Debug, Clone, PartialEq)]
pub enum InviteEvent {
    Created(InviteCreated),
}

impl InviteEvent {
    /// The stable name of the event type, as written in `ce_type` (prefixed) and the history.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Created(_) => "InviteCreated",
        }
    }

    /// The current schema version of this event type. Older versions are upcast on read.
    pub fn schema_version(&self) -> u32 {
        match self {
            Self::Created(_) => 1,
        }
    }

    /// The event's data as JSON (the CloudEvents `data`).
    pub fn to_data(&self) -> serde_json::Value {
        let value = match self {
            Self::Created(e) => serde_json::to_value(e),
        };
        value.expect("event data always serializes")
    }

    /// Reads an event's data written with any schema version this code has ever produced.
    pub fn from_data(
        event_type: &str,
        schema_version: u32,
        data: serde_json::Value,
    ) -> Result<Self, crate::DecodeError> {
        use crate::DecodeError::*;
        match (event_type, schema_version) {
            ("InviteCreated", 1) => {
                Ok(Self::Created(serde_json::from_value(data).map_err(|e| InvalidData(e.to_string()))?))
            }
            ("InviteCreated", v) => Err(UnknownVersion(event_type.to_owned(), v)),
            _ => Err(UnknownType(event_type.to_owned())),
        }
    }
}
