//! The Vortex dialect (`../shared/seeds/vortex-*.txt` and Vortex's public API): its request and
//! response types and the pure mappings between them and rsvp's commands and read models.
//!
//! What a Vortex invitation shows, and where rsvp keeps it:
//!
//! | Vortex                      | rsvp                                                               |
//! |-----------------------------|--------------------------------------------------------------------|
//! | `id`                        | the invite id                                                      |
//! | `accountId`, `projectId`    | the tenant (rsvp has one project per tenant)                       |
//! | `foreignCreatorId`          | the inviter's id                                                   |
//! | `target[]`                  | the targets (`email`, `phone`, `internal`, `share`)                |
//! | `groups[]`, `scope`, `scopeType` | the scopes (`scope`/`scopeType`: the first one, else null)    |
//! | `widgetConfigurationId`     | `widget_id`                                                        |
//! | `invitationType`            | `single_use` / `multi_use`                                         |
//! | `deliveryCount`, `deliveryTypes` | deliveries that arrived; the methods of every delivery        |
//! | `views`, `clickThroughs`    | the view and click counters                                        |
//! | `accepts[]`                 | one per acceptance, its id the id of its `InviteAccepted` event    |
//! | `status`                    | the canonical status in Vortex's words ([`events::InviteStatus::to_vendor`]); a closed invite Vortex has no word for keeps the furthest stage it reached |
//! | `deactivated`               | revoked or declined                                                |
//! | `expired`, `expires`        | expiry (`expires` only when the invite has one)                    |
//! | `attributes`                | always `{}` (Vortex: "a placeholder for future use")               |
//! | `configurationAttributes`   | the template variables                                             |
//! | `createdAt`, `modifiedAt`   | the first and the last event's time, ISO 8601 with milliseconds    |
//!
//! A create's `source` and `subtype` exist nowhere else in rsvp: they are recorded in the
//! `InviteCreated` event (`source`, `subtype`).

use chrono::{DateTime, SecondsFormat, Utc};
use events::{CreateInvite, InviteStatus, Inviter, Scope, Target, TargetKind, Vendor};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The event types of Vortex's webhooks: what an endpoint registered with the `vortex` format
/// may ask for (an empty list: all of them).
pub const WEBHOOK_EVENT_TYPES: &[&str] = &[
    "invitation.created",
    "invitation.accepted",
    "invitation.declined",
    "invitation.deactivated",
    "invitation.email.sent",
    "invitation.email.delivered",
    "invitation.email.bounced",
    "invitation.email.opened",
    "invitation.email.failed",
    "invitation.sms.sent",
    "invitation.sms.delivered",
    "invitation.sms.failed",
    "invitation.link.clicked",
    "invitation.viewed",
    "invitation.shared",
];

/// An invitation as Vortex answers it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    pub id: Uuid,
    pub account_id: Uuid,
    pub attributes: BTreeMap<String, Value>,
    pub click_throughs: i64,
    pub configuration_attributes: BTreeMap<String, Value>,
    pub created_at: String,
    pub deactivated: bool,
    pub delivery_count: i64,
    pub delivery_types: Vec<String>,
    pub foreign_creator_id: String,
    pub invitation_type: String,
    pub modified_at: String,
    pub status: &'static str,
    pub target: Vec<TargetOut>,
    pub views: i64,
    pub widget_configuration_id: Option<String>,
    pub project_id: Uuid,
    pub groups: Vec<Group>,
    pub accepts: Vec<AcceptOut>,
    pub scope: Option<String>,
    pub scope_type: Option<String>,
    pub expired: bool,
    /// Only when the invitation expires at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<String>,
}

/// `{invitations}`: a list read (by target, by scope), each in the seed's field order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invitations {
    pub invitations: Vec<Invitation>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetOut {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Group {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcceptOut {
    pub id: Uuid,
    pub status: &'static str,
}

/// What the read models hold about one invite, as the Vortex reads need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// The canonical status as of the last event (the read model's `status`).
    pub status: InviteStatus,
    pub open: bool,
    pub inviter_id: String,
    pub multi_use: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The `InviteCreated` data (targets, scopes, widget, template variables).
    pub created: Value,
    pub send_count: i64,
    pub delivery_count: i64,
    pub view_count: i64,
    pub click_count: i64,
    pub share_count: i64,
    pub unfurl_count: i64,
    /// The method of each delivery, in order.
    pub delivery_methods: Vec<String>,
    /// The current status of each delivery.
    pub delivery_statuses: Vec<String>,
    /// The event id of each acceptance, in order.
    pub accept_ids: Vec<Uuid>,
}

/// ISO 8601 in UTC with milliseconds, as Vortex writes times (`2023-10-01T12:00:00.000Z`).
pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The furthest open stage a closed invite reached: what its Vortex `status` keeps showing once
/// it is deactivated or expired (Vortex flags those apart). The read model keeps the facts (its
/// counters, its deliveries' statuses), not the stage, so each fact is read as the event that
/// recorded it and the stage comes from the one definition, `events::derived`.
fn stage_reached(s: &Source) -> InviteStatus {
    use events::event::{DeliveryStatusChanged, InviteEngaged, InviteSent};
    use events::{derived, EngagementKind, InviteEvent};
    let delivery_id = events::DeliveryId::from_uuid(Uuid::nil());
    let reported =
        |status| InviteEvent::DeliveryStatusChanged(DeliveryStatusChanged { delivery_id, status, detail: None });
    let engaged = |kind| InviteEvent::Engaged(InviteEngaged { kind, source: None });
    let mut facts = Vec::new();
    if s.send_count > 0 {
        let method = events::DeliveryMethod::Email;
        facts.push(InviteEvent::Sent(InviteSent {
            delivery_id,
            method,
            target: String::new(),
            target_index: None,
            resend: false,
        }));
    }
    for status in &s.delivery_statuses {
        if let Ok(status) = serde_json::from_value(Value::String(status.clone())) {
            facts.push(reported(status));
        }
    }
    if s.delivery_count > 0 {
        facts.push(reported(events::DeliveryStatus::Delivered));
    }
    for (count, kind) in [
        (s.view_count, EngagementKind::View),
        (s.click_count, EngagementKind::Click),
        (s.share_count, EngagementKind::Share),
        (s.unfurl_count, EngagementKind::Unfurl),
    ] {
        if count > 0 {
            facts.push(engaged(kind));
        }
    }
    facts.iter().filter_map(derived::stage_of).fold(InviteStatus::Created, derived::advance)
}

/// The Vortex status word of an invite: the canonical status in Vortex's words, or, for a
/// status Vortex shows through a flag (declined, revoked, expired), the stage it had reached.
pub fn status_word(s: &Source) -> &'static str {
    s.status
        .to_vendor(Vendor::Vortex)
        .unwrap_or_else(|| stage_reached(s).to_vendor(Vendor::Vortex).expect("every open stage has a Vortex word"))
}

fn target_kind(kind: TargetKind) -> &'static str {
    kind.as_str()
}

#[derive(Deserialize, Default)]
struct CreatedView {
    #[serde(default)]
    targets: Vec<Target>,
    #[serde(default)]
    scopes: Vec<Scope>,
    #[serde(default)]
    widget_id: Option<String>,
    #[serde(default)]
    template_variables: BTreeMap<String, String>,
}

/// The invitation a Vortex client reads, from what the read models hold, at `now` (expiry is a
/// function of time).
pub fn invitation(s: &Source, now: DateTime<Utc>) -> Invitation {
    let created: CreatedView = serde_json::from_value(s.created.clone()).unwrap_or_default();
    // The one definition of expiry (`events::derived`): an open invite past its time reads as
    // expired, and Vortex shows that through `expired`, keeping the stage in `status`.
    let expired = events::derived::is_expired(s.status, s.open, s.expires_at, now);
    let mut delivery_types: Vec<String> = Vec::new();
    for method in &s.delivery_methods {
        if !delivery_types.contains(method) {
            delivery_types.push(method.clone());
        }
    }
    let first_scope = created.scopes.first();
    Invitation {
        id: s.id,
        account_id: s.tenant_id,
        attributes: BTreeMap::new(),
        click_throughs: s.click_count,
        configuration_attributes: created.template_variables.into_iter().map(|(k, v)| (k, Value::String(v))).collect(),
        created_at: time(s.created_at),
        deactivated: matches!(s.status, InviteStatus::Revoked | InviteStatus::Declined),
        delivery_count: s.delivery_count,
        delivery_types,
        foreign_creator_id: s.inviter_id.clone(),
        invitation_type: if s.multi_use { "multi_use" } else { "single_use" }.to_owned(),
        modified_at: time(s.updated_at),
        status: status_word(s),
        target: created
            .targets
            .iter()
            .map(|t| TargetOut { kind: target_kind(t.kind), value: t.value.clone() })
            .collect(),
        views: s.view_count,
        widget_configuration_id: created.widget_id.clone(),
        project_id: s.tenant_id,
        scope: first_scope.map(|g| g.id.clone()),
        scope_type: first_scope.map(|g| g.kind.clone()),
        groups: created
            .scopes
            .iter()
            .map(|g| Group { kind: g.kind.clone(), id: g.id.clone(), name: g.name.clone() })
            .collect(),
        accepts: s.accept_ids.iter().map(|id| AcceptOut { id: *id, status: "accepted" }).collect(),
        expired,
        expires: s.expires_at.map(time),
    }
}

/// `GET /api/v1/invitations?targetType=...`: Vortex's target types, and the rsvp target kind each
/// stands for (`username`: a user id inside the client's system).
pub fn target_type(word: &str) -> Option<TargetKind> {
    match word {
        "email" => Some(TargetKind::Email),
        "phoneNumber" | "phone" => Some(TargetKind::Phone),
        "username" | "internal" => Some(TargetKind::Internal),
        _ => None,
    }
}

/// `POST /api/v1/invitations`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateRequest {
    pub widget_configuration_id: String,
    pub target: CreateTarget,
    pub inviter: CreateInviter,
    #[serde(default)]
    pub groups: Vec<CreateGroup>,
    pub source: Option<String>,
    #[serde(default)]
    pub template_variables: BTreeMap<String, String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
    pub subtype: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTarget {
    #[serde(rename = "type")]
    pub kind: CreateTargetKind,
    pub value: String,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreateTargetKind {
    Email,
    Phone,
    Internal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInviter {
    pub user_id: String,
    pub user_email: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateGroup {
    #[serde(rename = "type")]
    pub kind: String,
    pub group_id: String,
    pub name: Option<String>,
}

/// A field of the request at fault, named as the Vortex client sent it, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

/// The native create a Vortex create stands for. Field names in refusals are the domain's
/// (`targets[0].value`); [`field_name`] gives the Vortex name back.
pub fn create_command(r: CreateRequest, key_inviter: Option<&str>) -> Result<CreateInvite, FieldError> {
    if let Some(own) = key_inviter {
        if own != r.inviter.user_id {
            return Err(FieldError {
                field: "inviter.userId".into(),
                reason: "an inviter's key invites as its own inviter only".into(),
            });
        }
    }
    let kind = match r.target.kind {
        CreateTargetKind::Email => TargetKind::Email,
        CreateTargetKind::Phone => TargetKind::Phone,
        CreateTargetKind::Internal => TargetKind::Internal,
    };
    Ok(CreateInvite {
        inviter: Some(Inviter {
            id: r.inviter.user_id,
            name: r.inviter.name,
            email: r.inviter.user_email,
            email_index: None,
        }),
        recipient_names: r.target.name.iter().cloned().collect(),
        targets: vec![Target { kind, value: r.target.value, name: r.target.name, index: None }],
        scopes: r.groups.into_iter().map(|g| Scope { kind: g.kind, id: g.group_id, name: g.name }).collect(),
        metadata: r.metadata,
        personal_metadata: vec![],
        template_variables: r.template_variables,
        widget_id: Some(r.widget_configuration_id),
        source: r.source,
        subtype: r.subtype,
        ..CreateInvite::default()
    })
}

/// The Vortex name of a field the domain named (`targets[0].value` → `target.value`).
pub fn field_name(native: &str) -> String {
    let renames = [
        ("targets[0].", "target."),
        ("recipient_names[0]", "target.name"),
        ("inviter.id", "inviter.userId"),
        ("inviter.email", "inviter.userEmail"),
        ("widget_id", "widgetConfigurationId"),
        ("template_variables", "templateVariables"),
        ("invitation_ids", "invitationIds"),
    ];
    for (from, to) in renames {
        if let Some(rest) = native.strip_prefix(from) {
            return format!("{to}{rest}");
        }
    }
    if let Some(rest) = native.strip_prefix("scopes[") {
        let rest = rest.replacen("].id", "].groupId", 1);
        return format!("groups[{rest}");
    }
    native.to_owned()
}

/// `{id, shortLink, status, createdAt}`: the answer to a create. `short_link` carries the link's
/// secret token: it appears here only, as the native create answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    pub id: Uuid,
    pub short_link: String,
    pub status: &'static str,
    pub created_at: String,
}

/// `POST /api/v1/invitations/accept`: the seed's `{invitationIds, target{type, value}}`, or
/// `{invitationIds, user{email | phone, name, isExisting}}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptRequest {
    pub invitation_ids: Vec<String>,
    pub target: Option<AcceptTarget>,
    pub user: Option<AcceptUser>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptTarget {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AcceptUser {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub name: Option<String>,
    pub is_existing: Option<bool>,
}

/// What a Vortex accept means natively: the invites, the target value they are accepted as,
/// and who accepted (the user's name, when given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accept {
    pub invite_ids: Vec<Uuid>,
    pub target: String,
    pub accepted_by: Option<String>,
}

pub fn accept_command(r: AcceptRequest) -> Result<Accept, FieldError> {
    let bad = |field: &str, reason: &str| FieldError { field: field.into(), reason: reason.into() };
    let mut invite_ids = Vec::with_capacity(r.invitation_ids.len());
    for (i, id) in r.invitation_ids.iter().enumerate() {
        invite_ids.push(Uuid::parse_str(id).map_err(|_| bad(&format!("invitationIds[{i}]"), "not an invitation id"))?);
    }
    let (target, accepted_by) = match (r.target, r.user) {
        (Some(_), Some(_)) => return Err(bad("user", "give target or user, not both")),
        (None, None) => return Err(bad("target", "target or user is required")),
        (Some(t), None) => {
            if !["email", "phone", "phoneNumber", "username", "internal"].contains(&t.kind.as_str()) {
                return Err(bad("target.type", "email, phone, phoneNumber, username or internal"));
            }
            (t.value, None)
        }
        (None, Some(u)) => match (u.email, u.phone) {
            (Some(_), Some(_)) => return Err(bad("user", "give email or phone, not both")),
            (None, None) => return Err(bad("user.email", "email or phone is required")),
            (Some(v), None) | (None, Some(v)) => (v, u.name),
        },
    };
    Ok(Accept { invite_ids, target, accepted_by })
}

/// Vortex's error body: JSON with the HTTP status, its reason, a message and, for bad input, the
/// field at fault (`{"statusCode":400,"error":"Bad Request","message":"...","field":"target.value"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    pub status_code: u16,
    pub error: &'static str,
    pub message: String,
    /// rsvp's stable code for the refusal (`invite-not-found`).
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The message of an error: a missing or bad key names the header Vortex clients send it in;
/// any other error says what the problem says.
pub fn error_message(status: u16, detail: Option<&str>, title: &str) -> String {
    match status {
        401 => "a valid API key is required in the x-api-key header".to_owned(),
        _ => detail.unwrap_or(title).to_owned(),
    }
}

pub fn error_body(status: u16, code: &str, message: &str, field: Option<&str>) -> ErrorBody {
    let error = match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Error",
    };
    ErrorBody {
        status_code: status,
        error,
        message: message.to_owned(),
        code: code.to_owned(),
        field: field.map(field_name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2023, 10, 1, h, 0, 0).unwrap()
    }

    fn source() -> Source {
        Source {
            id: Uuid::from_u128(1),
            tenant_id: Uuid::from_u128(2),
            status: InviteStatus::Queued,
            open: true,
            inviter_id: "creator-12345".into(),
            multi_use: false,
            expires_at: Some(at(12) + chrono::Duration::days(31)),
            created_at: at(12),
            updated_at: at(13),
            created: json!({
                "targets": [{ "type": "email", "value": "foo@bar.com", "name": "Foo" }],
                "scopes": [{ "type": "workspace", "id": "workspace-12345", "name": "Development Team" }],
                "widget_id": "widget-12345",
                "template_variables": { "first_name": "Foo" },
            }),
            send_count: 1,
            delivery_count: 0,
            view_count: 10,
            click_count: 5,
            share_count: 0,
            unfurl_count: 0,
            delivery_methods: vec!["email".into(), "sms".into(), "email".into()],
            delivery_statuses: vec!["queued".into()],
            accept_ids: vec![],
        }
    }

    #[test]
    fn an_invitation_has_every_field_of_the_seed_with_its_type() {
        let body = serde_json::to_value(invitation(&source(), at(14))).unwrap();
        let expected = json!({
            "id": Uuid::from_u128(1),
            "accountId": Uuid::from_u128(2),
            "attributes": {},
            "clickThroughs": 5,
            "configurationAttributes": { "first_name": "Foo" },
            "createdAt": "2023-10-01T12:00:00.000Z",
            "deactivated": false,
            "deliveryCount": 0,
            "deliveryTypes": ["email", "sms"],
            "foreignCreatorId": "creator-12345",
            "invitationType": "single_use",
            "modifiedAt": "2023-10-01T13:00:00.000Z",
            "status": "queued",
            "target": [{ "type": "email", "value": "foo@bar.com" }],
            "views": 10,
            "widgetConfigurationId": "widget-12345",
            "projectId": Uuid::from_u128(2),
            "groups": [{ "type": "workspace", "id": "workspace-12345", "name": "Development Team" }],
            "accepts": [],
            "scope": "workspace-12345",
            "scopeType": "workspace",
            "expired": false,
            "expires": "2023-11-01T12:00:00.000Z",
        });
        assert_eq!(body, expected);
    }

    #[test]
    fn expires_is_left_out_when_the_invitation_never_expires() {
        let body = serde_json::to_value(invitation(&Source { expires_at: None, ..source() }, at(14))).unwrap();
        assert!(body.get("expires").is_none());
        assert_eq!(body["expired"], false);
    }

    #[test]
    fn an_open_invitation_past_its_expiry_reads_as_expired_keeping_its_stage() {
        let s = Source { expires_at: Some(at(13)), status: InviteStatus::Delivered, ..source() };
        let i = invitation(&s, at(14));
        assert!(i.expired);
        assert_eq!(i.status, "delivered");
        assert!(!i.deactivated);
    }

    #[test]
    fn a_revoked_invitation_is_deactivated_and_keeps_the_stage_it_reached() {
        let s = Source { status: InviteStatus::Revoked, open: false, share_count: 1, ..source() };
        let i = invitation(&s, at(14));
        assert!(i.deactivated);
        assert_eq!(i.status, "shared");
        let s = Source { status: InviteStatus::Declined, open: false, ..source() };
        assert!(invitation(&s, at(14)).deactivated);
        assert_eq!(invitation(&s, at(14)).status, "delivered", "views mean it arrived");
    }

    #[test]
    fn every_stage_speaks_a_vortex_status_word() {
        let words = ["queued", "sending", "sent", "delivered", "accepted", "shared", "unfurled", "accepted_elsewhere"];
        for status in InviteStatus::ALL {
            let word = status_word(&Source { status, ..source() });
            assert!(words.contains(&word), "{status:?}: {word}");
        }
        assert_eq!(status_word(&Source { status: InviteStatus::Sent, ..source() }), "sent");
    }

    #[test]
    fn a_closed_invitation_keeps_the_furthest_stage_its_facts_reached() {
        let quiet = Source { status: InviteStatus::Revoked, open: false, view_count: 0, click_count: 0, ..source() };
        let cases = [
            (Source { send_count: 0, delivery_statuses: vec![], ..quiet.clone() }, "queued"),
            (Source { delivery_statuses: vec!["sending".into()], ..quiet.clone() }, "sending"),
            (Source { delivery_statuses: vec!["sent".into(), "queued".into()], ..quiet.clone() }, "sent"),
            (Source { delivery_statuses: vec!["bounced".into()], delivery_count: 1, ..quiet.clone() }, "delivered"),
            (Source { unfurl_count: 1, ..quiet.clone() }, "unfurled"),
            (Source { unfurl_count: 1, share_count: 2, ..quiet }, "shared"),
        ];
        for (s, word) in cases {
            assert_eq!(status_word(&s), word, "{s:?}");
        }
    }

    #[test]
    fn accepts_carry_the_ids_of_their_events() {
        let s = Source { accept_ids: vec![Uuid::from_u128(9)], status: InviteStatus::Accepted, ..source() };
        let body = serde_json::to_value(invitation(&s, at(14))).unwrap();
        assert_eq!(body["accepts"], json!([{ "id": Uuid::from_u128(9), "status": "accepted" }]));
        assert_eq!(body["status"], "accepted");
    }

    #[test]
    fn a_create_maps_onto_the_native_create_with_its_vortex_only_fields() {
        let r: CreateRequest = serde_json::from_value(json!({
            "widgetConfigurationId": "widget-1",
            "target": { "type": "phone", "value": "+15551234567", "name": "Bo" },
            "inviter": { "userId": "u-1", "userEmail": "ann@example.com", "name": "Ann" },
            "groups": [{ "type": "team", "groupId": "t-1", "name": "Team" }],
            "source": "email-share",
            "templateVariables": { "x": "y" },
            "metadata": { "plan": "gold" },
            "subtype": "referral",
        }))
        .unwrap();
        let c = create_command(r, None).unwrap();
        assert_eq!(c.inviter.as_ref().unwrap().id, "u-1");
        assert_eq!(c.inviter.as_ref().unwrap().email.as_deref(), Some("ann@example.com"));
        assert_eq!(c.targets[0].kind, TargetKind::Phone);
        assert_eq!(c.targets[0].name.as_deref(), Some("Bo"));
        assert_eq!(c.scopes, [Scope { kind: "team".into(), id: "t-1".into(), name: Some("Team".into()) }]);
        assert_eq!(c.widget_id.as_deref(), Some("widget-1"));
        assert_eq!((c.source.as_deref(), c.subtype.as_deref()), (Some("email-share"), Some("referral")));
        assert_eq!(c.metadata["plan"], "gold");
        assert!(!c.multi_use);
    }

    #[test]
    fn a_create_by_an_inviters_key_for_another_inviter_names_the_field() {
        let r: CreateRequest = serde_json::from_value(json!({
            "widgetConfigurationId": "w", "target": { "type": "email", "value": "a@b.co" },
            "inviter": { "userId": "u-2" },
        }))
        .unwrap();
        assert_eq!(create_command(r, Some("u-1")).unwrap_err().field, "inviter.userId");
    }

    #[test]
    fn domain_field_names_come_back_in_vortex_words() {
        assert_eq!(field_name("targets[0].value"), "target.value");
        assert_eq!(field_name("inviter.id"), "inviter.userId");
        assert_eq!(field_name("scopes[1].id"), "groups[1].groupId");
        assert_eq!(field_name("metadata.plan"), "metadata.plan");
        assert_eq!(field_name("invitation_ids"), "invitationIds");
    }

    #[test]
    fn both_accept_forms_name_a_target() {
        let seed: AcceptRequest = serde_json::from_value(json!({
            "invitationIds": [Uuid::from_u128(1)], "target": { "type": "email", "value": "foo@bar.com" },
        }))
        .unwrap();
        let a = accept_command(seed).unwrap();
        assert_eq!((a.invite_ids, a.target, a.accepted_by), (vec![Uuid::from_u128(1)], "foo@bar.com".into(), None));
        let user: AcceptRequest = serde_json::from_value(json!({
            "invitationIds": [Uuid::from_u128(1)], "user": { "phone": "+15551234567", "name": "Bo", "isExisting": false },
        }))
        .unwrap();
        let a = accept_command(user).unwrap();
        assert_eq!((a.target.as_str(), a.accepted_by.as_deref()), ("+15551234567", Some("Bo")));
    }

    #[test]
    fn a_bad_accept_names_its_field() {
        let cases = [
            (
                json!({ "invitationIds": ["nope"], "target": { "type": "email", "value": "a@b.co" } }),
                "invitationIds[0]",
            ),
            (json!({ "invitationIds": [] }), "target"),
            (json!({ "invitationIds": [], "user": { "name": "x" } }), "user.email"),
            (json!({ "invitationIds": [], "target": { "type": "fax", "value": "1" } }), "target.type"),
        ];
        for (body, field) in cases {
            let r: AcceptRequest = serde_json::from_value(body).unwrap();
            assert_eq!(accept_command(r).unwrap_err().field, field);
        }
    }

    #[test]
    fn errors_are_json_with_the_status_its_reason_and_the_vortex_field() {
        let body =
            serde_json::to_value(error_body(422, "invalid-field", "not an email", Some("targets[0].value"))).unwrap();
        assert_eq!(
            body,
            json!({ "statusCode": 422, "error": "Unprocessable Entity", "message": "not an email",
                    "code": "invalid-field", "field": "target.value" })
        );
    }

    #[test]
    fn vortex_target_types_map_onto_target_kinds() {
        assert_eq!(target_type("phoneNumber"), Some(TargetKind::Phone));
        assert_eq!(target_type("username"), Some(TargetKind::Internal));
        assert_eq!(target_type("email"), Some(TargetKind::Email));
        assert_eq!(target_type("fax"), None);
    }
}
