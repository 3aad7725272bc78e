//! The envelope around every event, and its mapping to CloudEvents 1.0 (binary content mode:
//! attributes as `ce_*` Kafka headers, the event data as the JSON record value).
//!
//! | envelope field    | CloudEvents attribute | notes                                          |
//! |-------------------|-----------------------|------------------------------------------------|
//! | `event_id`        | `id`                  | UUIDv7, so ids sort by creation time           |
//! | event type        | `type`                | `dev.rsvp.invite.<EventType>.v<schema_version>`|
//! | tenant            | `source`              | `/tenants/<tenant_id>`                         |
//! | `stream`          | `subject`             | `invites/<uuid>` or `definitions/<uuid>`; the uuid is the Kafka key |
//! | `occurred_at`     | `time`                | RFC 3339                                       |
//! | —                 | `datacontenttype`     | `application/json`                             |
//! | `tenant_id`       | `tenantid` (ext.)     |                                                |
//! | `version`         | `inviteversion` (ext.)| per-invite, consecutive from 1                 |
//! | `actor`           | `actorkind`, `actorid`|                                                |
//! | `correlation_id`  | `correlationid`       | the request id that caused the command         |
//! | `causation_id`    | `causationid`         | the event or command that caused this one      |
//! | `idempotency_key` | `idempotencykey`      | the command's `Idempotency-Key`, when it had one |
//! | `request_hash`    | `requesthash`         | fingerprint of the request that carried the key |
//!
//! Envelopes of the first release named the invite alone in `subject` (a bare uuid); they are read
//! as invite streams.

use crate::event::{DomainEvent, InviteEvent};
use crate::ids::{InviteId, StreamId, TenantId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

const TYPE_PREFIX: &str = "dev.rsvp.invite.";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A tenant's API key.
    ApiKey,
    /// An inviter acting through an inviter-scoped token.
    Inviter,
    /// A person following the public link.
    Public,
    /// rsvp itself (expiry, cross-invite rules).
    System,
}

impl ActorKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Inviter => "inviter",
            Self::Public => "public",
            Self::System => "system",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "api_key" => Self::ApiKey,
            "inviter" => Self::Inviter,
            "public" => Self::Public,
            "system" => Self::System,
            _ => return None,
        })
    }
}

/// Who caused an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: String,
}

/// Everything about an event except its data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventMeta {
    pub event_id: Uuid,
    /// The aggregate the event belongs to.
    pub stream: StreamId,
    pub tenant_id: TenantId,
    /// Position in the stream's own history, consecutive from 1.
    pub version: u64,
    pub occurred_at: DateTime<Utc>,
    pub actor: Actor,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub idempotency_key: Option<String>,
    /// Fingerprint of the request body that carried `idempotency_key`, so that a replay with
    /// another body can be told apart even after a restart.
    #[serde(default)]
    pub request_hash: Option<String>,
}

impl EventMeta {
    pub fn invite_id(&self) -> Option<InviteId> {
        self.stream.invite_id()
    }
}

/// One event with its metadata: what is written to the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub meta: EventMeta,
    pub event: DomainEvent,
}

/// Why a record could not be read as an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    MissingAttribute(&'static str),
    InvalidAttribute(&'static str, String),
    UnknownType(String),
    UnknownVersion(String, u32),
    InvalidData(String),
    /// The event's type does not belong to the stream named in `subject`.
    WrongStream(String),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MissingAttribute(a) => write!(f, "missing cloudevents attribute `{a}`"),
            Self::InvalidAttribute(a, v) => write!(f, "invalid cloudevents attribute `{a}`: {v:?}"),
            Self::UnknownType(t) => write!(f, "unknown event type {t:?}"),
            Self::UnknownVersion(t, v) => write!(f, "unknown schema version {v} of event type {t:?}"),
            Self::InvalidData(e) => write!(f, "invalid event data: {e}"),
            Self::WrongStream(t) => write!(f, "event type {t:?} does not belong to its subject's stream"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// The JSON document form of an envelope (the audit trail and the fixed test corpus).
#[derive(Serialize, Deserialize)]
struct Document {
    #[serde(flatten)]
    meta: EventMeta,
    #[serde(rename = "type")]
    event_type: String,
    schema_version: u32,
    data: serde_json::Value,
}

impl Envelope {
    /// Wraps an event with everything the writer knows about it.
    pub fn new(meta: EventMeta, event: DomainEvent) -> Self {
        Self { meta, event }
    }

    pub fn event_type(&self) -> &'static str {
        self.event.event_type()
    }

    pub fn invite_event(&self) -> Option<(InviteId, &InviteEvent)> {
        match (&self.meta.stream, &self.event) {
            (StreamId::Invite(id), DomainEvent::Invite(e)) => Some((*id, e)),
            _ => None,
        }
    }

    /// The Kafka record key: the stream's uuid, so a stream's events share one partition.
    pub fn key(&self) -> String {
        self.meta.stream.as_uuid().to_string()
    }

    /// The CloudEvents `type`: `dev.rsvp.invite.InviteCreated.v2`.
    pub fn cloudevents_type(&self) -> String {
        format!("{TYPE_PREFIX}{}.v{}", self.event.event_type(), self.event.schema_version())
    }

    /// The record value: the event data as JSON.
    pub fn data_json(&self) -> Vec<u8> {
        serde_json::to_vec(&self.event.to_data()).expect("json values always serialize")
    }

    /// The `ce_*` headers of the binary content mode.
    pub fn cloudevents_headers(&self) -> Vec<(&'static str, String)> {
        let m = &self.meta;
        let mut h = vec![
            ("ce_specversion", "1.0".to_owned()),
            ("ce_id", m.event_id.to_string()),
            ("ce_type", self.cloudevents_type()),
            ("ce_source", format!("/tenants/{}", m.tenant_id)),
            ("ce_subject", m.stream.subject()),
            ("ce_time", m.occurred_at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
            ("content-type", "application/json".to_owned()),
            ("ce_tenantid", m.tenant_id.to_string()),
            ("ce_inviteversion", m.version.to_string()),
            ("ce_actorkind", m.actor.kind.as_str().to_owned()),
            ("ce_actorid", m.actor.id.clone()),
        ];
        if let Some(c) = m.correlation_id {
            h.push(("ce_correlationid", c.to_string()));
        }
        if let Some(c) = m.causation_id {
            h.push(("ce_causationid", c.to_string()));
        }
        if let Some(k) = &m.idempotency_key {
            h.push(("ce_idempotencykey", k.clone()));
        }
        if let Some(k) = &m.request_hash {
            h.push(("ce_requesthash", k.clone()));
        }
        h
    }

    /// Reads an envelope back from `ce_*` headers (looked up by `header`) and the JSON value.
    pub fn from_cloudevent<'a>(header: impl Fn(&str) -> Option<&'a str>, data: &[u8]) -> Result<Self, DecodeError> {
        use DecodeError::*;
        let req = |name: &'static str| header(name).ok_or(MissingAttribute(name));
        let uuid = |name: &'static str, v: &str| Uuid::parse_str(v).map_err(|_| InvalidAttribute(name, v.to_owned()));
        let opt_uuid = |name: &'static str| header(name).map(|v| uuid(name, v)).transpose();

        let ce_type = req("ce_type")?;
        let (event_type, schema_version) = ce_type
            .strip_prefix(TYPE_PREFIX)
            .and_then(|rest| rest.rsplit_once(".v"))
            .and_then(|(t, v)| Some((t, v.parse::<u32>().ok()?)))
            .ok_or_else(|| InvalidAttribute("ce_type", ce_type.to_owned()))?;
        let event = DomainEvent::from_json_bytes(event_type, schema_version, data)?;

        let subject = req("ce_subject")?;
        let stream = match StreamId::parse_subject(subject) {
            Some(stream) => stream,
            // The first release wrote the bare invite id.
            None => StreamId::Invite(InviteId::from_uuid(uuid("ce_subject", subject)?)),
        };
        let time = req("ce_time")?;
        let version = req("ce_inviteversion")?;
        let actor_kind = req("ce_actorkind")?;
        let meta = EventMeta {
            event_id: uuid("ce_id", req("ce_id")?)?,
            stream,
            tenant_id: TenantId::from_uuid(uuid("ce_tenantid", req("ce_tenantid")?)?),
            version: version.parse().map_err(|_| InvalidAttribute("ce_inviteversion", version.to_owned()))?,
            occurred_at: DateTime::parse_from_rfc3339(time)
                .map_err(|_| InvalidAttribute("ce_time", time.to_owned()))?
                .with_timezone(&Utc),
            actor: Actor {
                kind: ActorKind::parse(actor_kind)
                    .ok_or_else(|| InvalidAttribute("ce_actorkind", actor_kind.to_owned()))?,
                id: req("ce_actorid")?.to_owned(),
            },
            correlation_id: opt_uuid("ce_correlationid")?,
            causation_id: opt_uuid("ce_causationid")?,
            idempotency_key: header("ce_idempotencykey").map(str::to_owned),
            request_hash: header("ce_requesthash").map(str::to_owned),
        };
        Self::checked(meta, event)
    }

    fn checked(meta: EventMeta, event: DomainEvent) -> Result<Self, DecodeError> {
        // A document's time is read leniently; one a record's `time` could not carry is refused.
        if !crate::validate::time_in_range(meta.occurred_at) {
            return Err(DecodeError::InvalidAttribute("time", meta.occurred_at.to_string()));
        }
        match (&meta.stream, &event) {
            (StreamId::Invite(_), DomainEvent::Invite(_)) | (StreamId::Definition(_), DomainEvent::Definition(_)) => {
                Ok(Self { meta, event })
            }
            _ => Err(DecodeError::WrongStream(event.event_type().to_owned())),
        }
    }

    /// The self-contained JSON document: envelope fields, `type`, `schema_version` and `data`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(Document {
            meta: self.meta.clone(),
            event_type: self.event.event_type().to_owned(),
            schema_version: self.event.schema_version(),
            data: self.event.to_data(),
        })
        .expect("envelope always serializes")
    }

    /// Reads a JSON document written by any version of [`Envelope::to_json`], upcasting old data.
    pub fn from_json(value: serde_json::Value) -> Result<Self, DecodeError> {
        let doc: Document = serde_json::from_value(value).map_err(|e| DecodeError::InvalidData(e.to_string()))?;
        let event = DomainEvent::from_data(&doc.event_type, doc.schema_version, doc.data)?;
        Self::checked(doc.meta, event)
    }
}
