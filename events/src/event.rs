//! The events: past-tense facts. Events carry the facts; everything derived (status, counters,
//! expiry) is computed from them by `evolve`.
//!
//! The JSON of each event's data is the wire format (CloudEvents `data`), stable: a field is
//! only ever added as optional. Any other change bumps the type's schema version and adds an
//! upcaster in [`upcast`], so that every event ever written still loads.

use crate::ids::{DefinitionId, DeliveryId, InviteId, LinkToken};
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
    /// The blind index of `email` (see [`crate::personal`]); absent in events from before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_index: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// For an email address or phone number: its blind index, what rules match on (see
    /// [`crate::personal`]). Absent for other kinds, and in events from before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

impl Target {
    /// The form used to match targets: emails compare case-insensitively, phone numbers by digits
    /// (and a leading `+`).
    pub fn normalized(&self) -> String {
        normalize_target(self.kind, &self.value)
    }

    /// What rules match this target on: its blind index, or for a kind that has none (an
    /// internal user id) its normalized value.
    pub fn match_key(&self) -> String {
        self.index.clone().unwrap_or_else(|| self.normalized())
    }

    /// Whether a value a command names is this target.
    pub fn is(&self, value: &str, secrets: &crate::personal::Secrets) -> bool {
        match &self.index {
            Some(index) => *index == secrets.blind_index(self.kind, value),
            None => self.normalized() == normalize_target(self.kind, value),
        }
    }
}

pub fn normalize_target(kind: TargetKind, value: &str) -> String {
    match kind {
        TargetKind::Email => value.trim().to_lowercase(),
        TargetKind::Phone => {
            let v = value.trim();
            let digits: String = v.chars().filter(char::is_ascii_digit).collect();
            if v.starts_with('+') {
                format!("+{digits}")
            } else {
                digits
            }
        }
        TargetKind::Internal | TargetKind::Share => value.trim().to_owned(),
    }
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

/// An invitation came into being. Holds everything the client said about it, its personal
/// data sealed (see [`crate::personal`]).
/// Schema v3: `token` became optional (new invites' tokens are derived, never recorded); v1
/// lacked `recipient_names` (see [`upcast`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InviteCreated {
    pub inviter: Inviter,
    pub targets: Vec<Target>,
    /// Names to greet the recipients with, when the client gives them apart from the targets.
    pub recipient_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub invitation_type: InvitationType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<Scope>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reply_to: Vec<String>,
    /// The blind index of each `reply_to` address, in order (what the reply-to filter matches).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reply_to_index: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// The `metadata` keys whose values are personal data (sealed like the rest of it); the
    /// others are the client's ids and settings, kept as they are.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub personal_metadata: Vec<String>,
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
    /// The public link token of an invite created before tokens were derived (schema v2 and
    /// older). Never set now: see [`crate::personal::Secrets::link_token`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<LinkToken>,
    /// Where in the client's product the invitation was made (Vortex's `source`); added as
    /// optional, so events from before it load without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The client's own kind of invitation (Vortex's `subtype`); optional like `source`. A
    /// `Box<str>`, 8 bytes less than a `String`, so that the struct fits an allocator size class
    /// of 512 bytes instead of 640: the writer keeps one per invite (see the test below).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subtype: Option<Box<str>>,
}

/// How a delivery travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryMethod {
    Email,
    Sms,
    /// Shown inside the client's product.
    InApp,
    /// Handed to the inviter to pass on themselves.
    Link,
}

impl DeliveryMethod {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::InApp => "in_app",
            Self::Link => "link",
        }
    }
}

/// Where a delivery stands. The provider reports it; `queued` is where every delivery starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Queued,
    Sending,
    Sent,
    Delivered,
    Opened,
    Bounced,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Opened => "opened",
            Self::Bounced => "bounced",
            Self::Failed => "failed",
        }
    }

    /// Bounced and failed end a delivery; nothing is reported after them.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Bounced | Self::Failed)
    }

    /// A provider may skip steps but never goes back: queued → sending → sent → delivered →
    /// opened, and bounced or failed from anywhere before opened.
    pub fn may_follow(&self, current: DeliveryStatus) -> bool {
        if current.is_final() || current == Self::Opened {
            return false;
        }
        match self {
            Self::Bounced | Self::Failed => true,
            next => *next > current,
        }
    }
}

/// A delivery was requested: the send or a resend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteSent {
    pub delivery_id: DeliveryId,
    pub method: DeliveryMethod,
    /// The target value it goes to.
    pub target: String,
    /// The target's blind index, when it is an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_index: Option<String>,
    /// True for every delivery after the first.
    pub resend: bool,
}

/// The delivery provider reported progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryStatusChanged {
    pub delivery_id: DeliveryId,
    pub status: DeliveryStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EngagementKind {
    /// The invitation was looked at.
    View,
    /// The link was followed.
    Click,
    /// The recipient passed it on.
    Share,
    /// A link preview was rendered (a chat app fetched the link).
    Unfurl,
}

impl EngagementKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::View => "view",
            Self::Click => "click",
            Self::Share => "share",
            Self::Unfurl => "unfurl",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteEngaged {
    pub kind: EngagementKind,
    /// Where it happened, as the client reports it (a channel, a user agent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteAccepted {
    /// The user in the client's system who accepted, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_by: Option<String>,
    /// The target value it was accepted as, if given (normalized in events from before
    /// `target_index`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The target's blind index, when it is an address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_index: Option<String>,
}

/// Another invite for the same target and scope was accepted: this one is no longer needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteAcceptedElsewhere {
    pub accepted_invite_id: InviteId,
}

/// Why personal data was erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureReason {
    /// The data subject asked (GDPR article 17 and its equivalents).
    Request,
    /// The tenant left: every subject of it was erased.
    TenantOffboarded,
}

/// The keys of some of the invite's personal data were destroyed: what was erased and why, never
/// the data. Every field sealed under them reads as [`crate::personal::ERASED`] from now on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonalDataErased {
    /// The blind indexes of the erased addresses; empty when `all`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    /// Every subject of the invite.
    #[serde(default)]
    pub all: bool,
    pub reason: ErasureReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteClosed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Every fact in an invitation's life.
#[derive(Debug, Clone, PartialEq)]
pub enum InviteEvent {
    Created(Box<InviteCreated>),
    Sent(InviteSent),
    DeliveryStatusChanged(DeliveryStatusChanged),
    Engaged(InviteEngaged),
    Accepted(InviteAccepted),
    AcceptedElsewhere(InviteAcceptedElsewhere),
    Declined(InviteClosed),
    Revoked(InviteClosed),
    Expired(InviteClosed),
    PersonalDataErased(PersonalDataErased),
}

/// The rules of a definition (campaign), as set when created or last updated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefinitionRules {
    /// Unique per tenant; how clients name the definition (`gold-definition`).
    pub handle: String,
    /// Most invites one inviter may create under this definition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_invites_per_inviter: Option<u32>,
    /// Invites may be created from this time on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<DateTime<Utc>>,
    /// ... and until this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<DateTime<Utc>>,
    /// Most deliveries (send + resends) per invite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_send_count: Option<u32>,
    /// Expiry of its invites when the create command gives none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_expiry_days: Option<u32>,
    /// What its invitations say when delivered (see [`crate::message`]); added as optional, so
    /// definitions from before it load with the built-in templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templates: Option<crate::message::MessageTemplates>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DefinitionEvent {
    Created(DefinitionRules),
    Updated(DefinitionRules),
}

/// Any event of the log.
#[derive(Debug, Clone, PartialEq)]
pub enum DomainEvent {
    Invite(InviteEvent),
    Definition(DefinitionEvent),
}

/// (event type, current schema version) of every event this code writes.
pub const EVENT_TYPES: &[(&str, u32)] = &[
    ("InviteCreated", 3),
    ("InviteSent", 1),
    ("DeliveryStatusChanged", 1),
    ("InviteEngaged", 1),
    ("InviteAccepted", 1),
    ("InviteAcceptedElsewhere", 1),
    ("InviteDeclined", 1),
    ("InviteRevoked", 1),
    ("InviteExpired", 1),
    ("InvitePersonalDataErased", 1),
    ("DefinitionCreated", 1),
    ("DefinitionUpdated", 1),
];

impl DomainEvent {
    /// The stable name of the event type, as written in `ce_type` (prefixed) and the history.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Invite(e) => match e {
                InviteEvent::Created(_) => "InviteCreated",
                InviteEvent::Sent(_) => "InviteSent",
                InviteEvent::DeliveryStatusChanged(_) => "DeliveryStatusChanged",
                InviteEvent::Engaged(_) => "InviteEngaged",
                InviteEvent::Accepted(_) => "InviteAccepted",
                InviteEvent::AcceptedElsewhere(_) => "InviteAcceptedElsewhere",
                InviteEvent::Declined(_) => "InviteDeclined",
                InviteEvent::Revoked(_) => "InviteRevoked",
                InviteEvent::Expired(_) => "InviteExpired",
                InviteEvent::PersonalDataErased(_) => "InvitePersonalDataErased",
            },
            Self::Definition(DefinitionEvent::Created(_)) => "DefinitionCreated",
            Self::Definition(DefinitionEvent::Updated(_)) => "DefinitionUpdated",
        }
    }

    /// The current schema version of this event type. Older versions are upcast on read.
    pub fn schema_version(&self) -> u32 {
        let t = self.event_type();
        EVENT_TYPES.iter().find(|(name, _)| *name == t).map_or(1, |(_, v)| *v)
    }

    /// The event's data as JSON (the CloudEvents `data`).
    pub fn to_data(&self) -> serde_json::Value {
        use serde_json::to_value;
        let value = match self {
            Self::Invite(e) => match e {
                InviteEvent::Created(e) => to_value(e),
                InviteEvent::Sent(e) => to_value(e),
                InviteEvent::DeliveryStatusChanged(e) => to_value(e),
                InviteEvent::Engaged(e) => to_value(e),
                InviteEvent::Accepted(e) => to_value(e),
                InviteEvent::AcceptedElsewhere(e) => to_value(e),
                InviteEvent::Declined(e) | InviteEvent::Revoked(e) | InviteEvent::Expired(e) => to_value(e),
                InviteEvent::PersonalDataErased(e) => to_value(e),
            },
            Self::Definition(DefinitionEvent::Created(r) | DefinitionEvent::Updated(r)) => to_value(r),
        };
        value.expect("event data always serializes")
    }

    /// Like [`DomainEvent::from_data`] from raw JSON. Data already at the current version is
    /// read straight into its type (the hot path of a replay); older data goes through the
    /// upcasters.
    pub fn from_json_bytes(event_type: &str, schema_version: u32, data: &[u8]) -> Result<Self, crate::DecodeError> {
        use crate::DecodeError::InvalidData;
        let current = EVENT_TYPES.iter().find(|(name, _)| *name == event_type).map(|(_, v)| *v);
        if current != Some(schema_version) {
            let value = serde_json::from_slice(data).map_err(|e| InvalidData(e.to_string()))?;
            return Self::from_data(event_type, schema_version, value);
        }
        Self::decode_with(event_type, data)
    }

    /// Reads an event's data written with any schema version this code has ever produced.
    pub fn from_data(
        event_type: &str,
        schema_version: u32,
        data: serde_json::Value,
    ) -> Result<Self, crate::DecodeError> {
        use crate::DecodeError::{UnknownType, UnknownVersion};
        let current = EVENT_TYPES
            .iter()
            .find(|(name, _)| *name == event_type)
            .map(|(_, v)| *v)
            .ok_or_else(|| UnknownType(event_type.to_owned()))?;
        if schema_version == 0 || schema_version > current {
            return Err(UnknownVersion(event_type.to_owned(), schema_version));
        }
        Self::decode_with(event_type, upcast(event_type, schema_version, data))
    }

    /// The one table from type names to event variants, whatever form the data comes in.
    fn decode_with(event_type: &str, data: impl Data) -> Result<Self, crate::DecodeError> {
        Ok(match event_type {
            "InviteCreated" => Self::Invite(InviteEvent::Created(Box::new(data.parse()?))),
            "InviteSent" => Self::Invite(InviteEvent::Sent(data.parse()?)),
            "DeliveryStatusChanged" => Self::Invite(InviteEvent::DeliveryStatusChanged(data.parse()?)),
            "InviteEngaged" => Self::Invite(InviteEvent::Engaged(data.parse()?)),
            "InviteAccepted" => Self::Invite(InviteEvent::Accepted(data.parse()?)),
            "InviteAcceptedElsewhere" => Self::Invite(InviteEvent::AcceptedElsewhere(data.parse()?)),
            "InviteDeclined" => Self::Invite(InviteEvent::Declined(data.parse()?)),
            "InviteRevoked" => Self::Invite(InviteEvent::Revoked(data.parse()?)),
            "InviteExpired" => Self::Invite(InviteEvent::Expired(data.parse()?)),
            "InvitePersonalDataErased" => Self::Invite(InviteEvent::PersonalDataErased(data.parse()?)),
            "DefinitionCreated" => Self::Definition(DefinitionEvent::Created(data.parse()?)),
            "DefinitionUpdated" => Self::Definition(DefinitionEvent::Updated(data.parse()?)),
            other => return Err(crate::DecodeError::UnknownType(other.to_owned())),
        })
    }
}

/// Event data as JSON text or as a parsed value.
trait Data {
    fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::DecodeError>;
}

impl Data for &[u8] {
    fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::DecodeError> {
        serde_json::from_slice(self).map_err(|e| crate::DecodeError::InvalidData(e.to_string()))
    }
}

impl Data for serde_json::Value {
    fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::DecodeError> {
        T::deserialize(self).map_err(|e| crate::DecodeError::InvalidData(e.to_string()))
    }
}

/// Brings event data of an old schema version to the current one, one version at a time.
/// Old events are never rewritten in the log; they are upcast every time they are read.
pub fn upcast(event_type: &str, mut version: u32, mut data: serde_json::Value) -> serde_json::Value {
    while let Some(next) = upcast_once(event_type, version, &mut data) {
        version = next;
    }
    data
}

fn upcast_once(event_type: &str, version: u32, data: &mut serde_json::Value) -> Option<u32> {
    match (event_type, version) {
        // v1 (the first release) had no `recipient_names`; the names lived only on the targets.
        ("InviteCreated", 1) => {
            if let Some(object) = data.as_object_mut() {
                let names: Vec<serde_json::Value> = object
                    .get("targets")
                    .and_then(|t| t.as_array())
                    .map(|targets| targets.iter().filter_map(|t| t.get("name").cloned()).collect())
                    .unwrap_or_default();
                object.insert("recipient_names".into(), serde_json::Value::Array(names));
            }
            Some(2)
        }
        // v3 made `token` optional: a v2 event keeps its token, as the invite's legacy token.
        ("InviteCreated", 2) => Some(3),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    /// The writer keeps an `InviteCreated` per invite, boxed: past 512 bytes, mimalloc's next size
    /// class is 640, and a million invites cost 128 MB more (measured in the restart benchmark).
    #[test]
    fn an_invite_creation_fits_in_512_bytes() {
        assert!(std::mem::size_of::<super::InviteCreated>() <= 512, "{}", std::mem::size_of::<super::InviteCreated>());
    }
}
