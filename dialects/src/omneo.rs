//! The Omneo dialect (`../shared/seeds/omneo-invites-api.txt`): an inviter's own invites under
//! `/v1/me/invites`, with the caller's quota in `meta`.
//!
//! - `GET /v1/me/invites` (query API): `{data: [invite], meta: [{remaining, override_count,
//!   eligible_definition, profile_statuses}]}` (`meta` is a one-element list, as the seed shows it).
//! - `POST /v1/me/invites` `{recipient_first_name, recipient_email, public_message}` (command API):
//!   creates the invite under the eligible definition and sends it by email at once, as Omneo
//!   does (`send_count` 1), answering `{data: invite}` (201).
//! - `POST /v1/me/invites/{id}/revoke`: `{data: invite}`; `/resend`: 202 `{data: {message}}`.
//!
//! The credential is `Authorization: Bearer <token>`, an inviter-scoped rsvp key ("me"). Times
//! are UTC as `YYYY-MM-DD HH:MM:SS`; statuses are Omneo's words ([`InviteStatus::to_vendor`]).
//! Errors are JSON as a Laravel API gives them (`{message}`, and `{message, errors: {field:
//! [..]}}` for a 422), never problem+json: Omneo's clients read `message` and `errors`.
//!
//! Definitions in Omneo's terms: `eligible_definition` is the first of the tenant's definitions
//! (in creation order) whose window is open now, else the latest created; its `id` is its position
//! in creation order (1, 2, ...: Omneo's ids are numbers, rsvp's are UUIDs), `max_invites` its
//! per-inviter quota, `remaining` what the caller may still create under it. `override_count` is
//! always null (rsvp has no per-inviter override). `profile_statuses` are the handles of the
//! definitions whose window is open now: the programmes the caller can invite into.
//!
//! Pure: the services' handlers read and write, and call these.

use chrono::{DateTime, Utc};
use events::{CreateInvite, DefinitionId, DeliveryMethod, InviteStatus, Target, TargetKind, Vendor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Omneo's time format (UTC).
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// The answer to a resend.
pub const RESEND_MESSAGE: &str = "Invite scheduled for re-send.";

pub fn time(at: DateTime<Utc>) -> String {
    at.format(TIME_FORMAT).to_string()
}

/// What rsvp knows of an invite that Omneo shows: from the read model (lists) or from the
/// writer after a command.
#[derive(Debug, Clone, PartialEq)]
pub struct InviteFacts {
    pub id: Uuid,
    pub inviter_id: String,
    /// The first email target, if the invite has one (an invite made through another dialect
    /// may have only a phone number).
    pub recipient_email: Option<String>,
    /// The status its events give and whether it is still open (`events::derived`).
    pub stored_status: InviteStatus,
    pub open: bool,
    pub send_count: u32,
    pub invited_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub declined_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub definition_handle: Option<String>,
}

/// An invite as Omneo shows it: every field of the seed, in its order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invite {
    pub id: String,
    pub source_omneo_id: String,
    pub recipient_email: Option<String>,
    pub status: String,
    pub send_count: u32,
    pub invited_at: String,
    pub expires_at: Option<String>,
    pub accepted_at: Option<String>,
    pub rejected_at: Option<String>,
    pub revoked_at: Option<String>,
    pub definition: Option<String>,
}

/// Omneo's word for the status at `now` (expiry is a function of time).
pub fn status_word(f: &InviteFacts, now: DateTime<Utc>) -> &'static str {
    let status = events::derived::status(f.stored_status, f.open, f.expires_at, now);
    status.to_vendor(Vendor::Omneo).expect("Omneo has a word for every status")
}

pub fn invite(f: &InviteFacts, now: DateTime<Utc>) -> Invite {
    Invite {
        id: f.id.to_string(),
        source_omneo_id: f.inviter_id.clone(),
        recipient_email: f.recipient_email.clone(),
        status: status_word(f, now).to_owned(),
        send_count: f.send_count,
        invited_at: time(f.invited_at),
        expires_at: f.expires_at.map(time),
        accepted_at: f.accepted_at.map(time),
        rejected_at: f.declined_at.map(time),
        revoked_at: f.revoked_at.map(time),
        definition: f.definition_handle.clone(),
    }
}

/// A definition (campaign) of the tenant, with how many invites the caller created under it.
#[derive(Debug, Clone, PartialEq)]
pub struct DefinitionFacts {
    pub id: DefinitionId,
    pub handle: String,
    pub starts_at: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub max_invites_per_inviter: Option<u32>,
    pub created_by_caller: u32,
}

impl DefinitionFacts {
    /// Its window is open at `now` (as the domain judges a create: from `starts_at`, before `ends_at`).
    pub fn in_range(&self, now: DateTime<Utc>) -> bool {
        events::tenant::window_open(self.starts_at, self.ends_at, now)
    }

    pub fn remaining(&self) -> Option<u32> {
        self.max_invites_per_inviter.map(|max| max.saturating_sub(self.created_by_caller))
    }
}

/// The definition a create goes under and `meta` describes, with its Omneo id (its 1-based
/// position in `definitions`, which are in creation order): the first in range, else the last.
pub fn eligible(definitions: &[DefinitionFacts], now: DateTime<Utc>) -> Option<(u32, &DefinitionFacts)> {
    let numbered = || definitions.iter().enumerate().map(|(i, d)| (i as u32 + 1, d));
    numbered().find(|(_, d)| d.in_range(now)).or_else(|| numbered().last())
}

// The answers are structs, not `Value`s, so that they name their fields in the seed's order.

/// `{data: ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Data<T> {
    pub data: T,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EligibleDefinition {
    pub id: u32,
    pub handle: String,
    pub in_range: bool,
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    pub max_invites: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Meta {
    pub remaining: Option<u32>,
    pub override_count: Option<u32>,
    pub eligible_definition: Option<EligibleDefinition>,
    pub profile_statuses: Vec<String>,
}

/// The list's whole body: `meta` is a one-element list, as the seed shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct List {
    pub data: Vec<Invite>,
    pub meta: Vec<Meta>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub message: &'static str,
}

/// `meta` of the list.
pub fn meta(definitions: &[DefinitionFacts], now: DateTime<Utc>) -> Vec<Meta> {
    let eligible = eligible(definitions, now);
    vec![Meta {
        remaining: eligible.and_then(|(_, d)| d.remaining()),
        override_count: None,
        eligible_definition: eligible.map(|(n, d)| EligibleDefinition {
            id: n,
            handle: d.handle.clone(),
            in_range: d.in_range(now),
            starts_at: d.starts_at.map(time),
            ends_at: d.ends_at.map(time),
            max_invites: d.max_invites_per_inviter,
        }),
        profile_statuses: definitions.iter().filter(|d| d.in_range(now)).map(|d| d.handle.clone()).collect(),
    }]
}

pub fn list(invites: &[InviteFacts], definitions: &[DefinitionFacts], now: DateTime<Utc>) -> List {
    List { data: invites.iter().map(|f| invite(f, now)).collect(), meta: meta(definitions, now) }
}

/// `{data: invite}`: the answer to a create or a revoke.
pub fn one(f: &InviteFacts, now: DateTime<Utc>) -> Data<Invite> {
    Data { data: invite(f, now) }
}

/// The answer to a resend (202).
pub fn resent() -> Data<Message> {
    Data { data: Message { message: RESEND_MESSAGE } }
}

/// An error as Omneo's clients read it: a status and a JSON body with `message` (and `errors`
/// by field for a 422).
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub status: u16,
    pub body: Value,
}

impl Error {
    pub fn message(status: u16, message: impl Into<String>) -> Self {
        Self { status, body: json!({ "message": message.into() }) }
    }

    /// 422 naming the field, as Laravel's validation answers.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self { status: 422, body: json!({ "message": message, "errors": { field: [message] } }) }
    }

    pub fn unauthenticated() -> Self {
        Self::message(401, "Unauthenticated.")
    }

    pub fn not_found() -> Self {
        Self::message(404, "Invite not found.")
    }

    /// From a native refusal (status, the field at fault, what is wrong): 422 and 400 name the
    /// field, the rest keep their status with the message.
    pub fn from_native(status: u16, field: Option<&str>, detail: &str) -> Self {
        match (status, field) {
            (404, _) => Self::not_found(),
            (401, _) => Self::unauthenticated(),
            (400 | 422, Some(field)) => {
                let field = field_name(field);
                Self::invalid(&field, format!("The {} field is invalid: {detail}", field.replace('_', " ")))
            }
            (_, _) => Self::message(status, detail),
        }
    }
}

/// The Omneo name of a native field (`targets[0].value` is the recipient's email...).
fn field_name(native: &str) -> String {
    match native {
        f if f.starts_with("targets") && f.ends_with(".name") => "recipient_first_name".into(),
        f if f.starts_with("targets") || f.starts_with("target") => "recipient_email".into(),
        "message" => "public_message".into(),
        "definition_id" => "definition".into(),
        other => other.into(),
    }
}

/// `POST /v1/me/invites`'s body. Extra fields are ignored, as Omneo does.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct CreateRequest {
    pub recipient_first_name: Option<String>,
    pub recipient_email: Option<String>,
    pub public_message: Option<String>,
}

/// The native create for an Omneo create: one email target, sent by email at once, under
/// `definition` (the eligible one, if the tenant has any). The handler adds the inviter (the
/// token's). Every field is checked here for its type, so a wrong one is a 422 naming it.
pub fn create_command(body: &Value, definition: Option<DefinitionId>) -> Result<CreateInvite, Error> {
    let Value::Object(fields) = body else {
        return Err(Error::message(400, "The request body must be a JSON object."));
    };
    let text = |name: &str| -> Result<Option<String>, Error> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Error::invalid(name, format!("The {} must be a string.", name.replace('_', " ")))),
        }
    };
    let first_name = text("recipient_first_name")?.filter(|s| !s.trim().is_empty());
    let message = text("public_message")?.filter(|s| !s.is_empty());
    let email = match text("recipient_email")? {
        Some(e) if !e.trim().is_empty() => e,
        _ => return Err(Error::invalid("recipient_email", "The recipient email field is required.")),
    };
    Ok(CreateInvite {
        targets: vec![Target { kind: TargetKind::Email, value: email, name: first_name, index: None }],
        message,
        definition_id: definition,
        send: Some(DeliveryMethod::Email),
        metadata: BTreeMap::new(),
        personal_metadata: vec![],
        ..CreateInvite::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2018, 12, 19, h, m, s).unwrap()
    }

    fn facts() -> InviteFacts {
        InviteFacts {
            id: Uuid::parse_str("8c88fd05-ffe0-4b71-af8e-75dcbe21d37d").unwrap(),
            inviter_id: "XXX".into(),
            recipient_email: Some("alex@example.org".into()),
            stored_status: InviteStatus::Queued,
            open: true,
            send_count: 2,
            invited_at: at(17, 11, 24),
            expires_at: Some(Utc.with_ymd_and_hms(2019, 1, 18, 23, 59, 59).unwrap()),
            accepted_at: None,
            declined_at: None,
            revoked_at: None,
            definition_handle: Some("gold-definition".into()),
        }
    }

    fn definition(handle: &str, starts: i64, ends: i64, max: Option<u32>, used: u32) -> DefinitionFacts {
        let base = at(12, 0, 0);
        DefinitionFacts {
            id: DefinitionId::from_uuid(Uuid::now_v7()),
            handle: handle.into(),
            starts_at: Some(base + chrono::Duration::hours(starts)),
            ends_at: Some(base + chrono::Duration::hours(ends)),
            max_invites_per_inviter: max,
            created_by_caller: used,
        }
    }

    #[test]
    fn an_open_invite_is_the_seeds_first_invite_field_for_field() {
        let expected = json!({
            "id": "8c88fd05-ffe0-4b71-af8e-75dcbe21d37d",
            "source_omneo_id": "XXX",
            "recipient_email": "alex@example.org",
            "status": "PENDING",
            "send_count": 2,
            "invited_at": "2018-12-19 17:11:24",
            "expires_at": "2019-01-18 23:59:59",
            "accepted_at": null,
            "rejected_at": null,
            "revoked_at": null,
            "definition": "gold-definition"
        });
        assert_eq!(serde_json::to_value(invite(&facts(), at(18, 0, 0))).unwrap(), expected);
    }

    #[test]
    fn the_answers_name_their_fields_in_the_seeds_order() {
        let now = at(12, 30, 0);
        let order = |text: &str, keys: &[&str]| {
            let at: Vec<usize> = keys.iter().map(|k| text.find(&format!("\"{k}\":")).expect(k)).collect();
            assert!(at.windows(2).all(|w| w[0] < w[1]), "{keys:?} in {text}");
        };
        let invite_keys = [
            "id",
            "source_omneo_id",
            "recipient_email",
            "status",
            "send_count",
            "invited_at",
            "expires_at",
            "accepted_at",
            "rejected_at",
            "revoked_at",
            "definition",
        ];
        order(&serde_json::to_string(&one(&facts(), now)).unwrap(), &invite_keys);
        let definitions = [definition("gold-definition", -4, 20, Some(10), 1)];
        let listed = serde_json::to_string(&list(&[facts()], &definitions, now)).unwrap();
        order(&listed, &["data", "meta"]);
        order(&listed, &invite_keys);
        order(&listed, &["remaining", "override_count", "eligible_definition", "profile_statuses"]);
        order(&listed, &["handle", "in_range", "starts_at", "ends_at", "max_invites"]);
    }

    #[test]
    fn each_status_has_its_omneo_word_and_its_time() {
        let now = at(18, 0, 0);
        let revoked =
            InviteFacts { stored_status: InviteStatus::Revoked, open: false, revoked_at: Some(now), ..facts() };
        let i = invite(&revoked, now);
        assert_eq!((i.status.as_str(), i.revoked_at.as_deref()), ("REVOKED", Some("2018-12-19 18:00:00")));
        let declined =
            InviteFacts { stored_status: InviteStatus::Declined, open: false, declined_at: Some(now), ..facts() };
        let i = invite(&declined, now);
        assert_eq!((i.status.as_str(), i.rejected_at.as_deref()), ("REJECTED", Some("2018-12-19 18:00:00")));
        let accepted =
            InviteFacts { stored_status: InviteStatus::Accepted, open: false, accepted_at: Some(now), ..facts() };
        assert_eq!(invite(&accepted, now).status, "ACCEPTED");
        // Expiry is read at the time asked, from the one definition in `events::derived`.
        let later = Utc.with_ymd_and_hms(2019, 1, 19, 0, 0, 0).unwrap();
        assert_eq!(invite(&facts(), later).status, "EXPIRED");
        assert_eq!(invite(&accepted, later).status, "ACCEPTED");
    }

    #[test]
    fn meta_describes_the_first_definition_in_range_with_the_callers_remaining_quota() {
        let now = at(12, 30, 0);
        let definitions = [
            definition("past", -48, -24, Some(3), 3),
            definition("gold-definition", -4, 20, Some(10), 1),
            definition("silver", -1, 2, None, 0),
        ];
        let expected = json!([{
            "remaining": 9,
            "override_count": null,
            "eligible_definition": {
                "id": 2,
                "handle": "gold-definition",
                "in_range": true,
                "starts_at": "2018-12-19 08:00:00",
                "ends_at": "2018-12-20 08:00:00",
                "max_invites": 10
            },
            "profile_statuses": ["gold-definition", "silver"]
        }]);
        assert_eq!(serde_json::to_value(meta(&definitions, now)).unwrap(), expected);
        assert_eq!(eligible(&definitions, now).map(|(n, d)| (n, d.handle.as_str())), Some((2, "gold-definition")));
    }

    #[test]
    fn with_no_definition_in_range_the_last_one_is_shown_out_of_range_and_with_none_meta_is_empty() {
        let now = at(12, 0, 0);
        let definitions = [definition("old", -48, -24, Some(2), 0), definition("next", 24, 48, Some(5), 0)];
        let m = serde_json::to_value(meta(&definitions, now)).unwrap();
        assert_eq!(m[0]["eligible_definition"]["handle"], "next");
        assert_eq!(m[0]["eligible_definition"]["in_range"], false);
        assert_eq!(m[0]["remaining"], 5);
        assert_eq!(m[0]["profile_statuses"], json!([]));
        let none = serde_json::to_value(meta(&[], now)).unwrap();
        assert_eq!(
            none,
            json!([{ "remaining": null, "override_count": null, "eligible_definition": null, "profile_statuses": [] }])
        );
    }

    #[test]
    fn a_create_is_one_email_target_sent_at_once_under_the_definition() {
        let definition = DefinitionId::from_uuid(Uuid::now_v7());
        let body = json!({
            "recipient_first_name": "Alex",
            "recipient_email": "alex@example.org",
            "public_message": "Hey Alex, thought you'd like this!",
            "something_else": 1
        });
        let c = create_command(&body, Some(definition)).unwrap();
        assert_eq!(
            c.targets,
            [Target {
                kind: TargetKind::Email,
                value: "alex@example.org".into(),
                name: Some("Alex".into()),
                index: None
            }]
        );
        assert_eq!(c.message.as_deref(), Some("Hey Alex, thought you'd like this!"));
        assert_eq!((c.definition_id, c.send), (Some(definition), Some(DeliveryMethod::Email)));
        assert_eq!(c.inviter, None, "the handler adds the token's inviter");
    }

    #[test]
    fn a_bad_create_is_a_422_naming_the_field_in_laravels_shape() {
        for (body, field) in [
            (json!({}), "recipient_email"),
            (json!({ "recipient_email": "" }), "recipient_email"),
            (json!({ "recipient_email": 5 }), "recipient_email"),
            (json!({ "recipient_email": "a@example.org", "recipient_first_name": ["A"] }), "recipient_first_name"),
            (json!({ "recipient_email": "a@example.org", "public_message": {} }), "public_message"),
        ] {
            let e = create_command(&body, None).unwrap_err();
            assert_eq!(e.status, 422, "{body}");
            assert!(e.body["message"].is_string(), "{body}");
            assert!(e.body["errors"][field][0].is_string(), "{body}: {}", e.body);
        }
        assert_eq!(create_command(&json!([1]), None).unwrap_err().status, 400);
    }

    #[test]
    fn native_refusals_become_omneo_errors_with_omneos_field_names() {
        let e = Error::from_native(422, Some("targets[0].value"), "not an email address");
        assert_eq!(e.status, 422);
        assert!(e.body["errors"]["recipient_email"][0].as_str().unwrap().contains("not an email address"));
        assert_eq!(Error::from_native(404, None, "no such invite"), Error::not_found());
        assert_eq!(
            Error::from_native(409, None, "the invite is revoked").body,
            json!({ "message": "the invite is revoked" })
        );
        assert_eq!(Error::unauthenticated().body, json!({ "message": "Unauthenticated." }));
    }
}
