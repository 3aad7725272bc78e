//! The Argyle dialect (`../shared/seeds/argyle-list-invites.txt`): `GET /v2/invites`,
//! `POST /v2/invites` and `POST /v2/invites/{id}/revoke`, as Argyle's clients call them.
//!
//! Pure: the request and response types, the mapping of a create onto the native
//! [`CreateInvite`], the mapping of a read-model row onto Argyle's invite object, and Argyle's
//! error bodies. The services' handlers do the I/O.
//!
//! What an Argyle invite is made of, in rsvp's terms (no event or table of its own):
//! - `email` / `phone_number`: the invite's first email / phone target;
//! - `full_name`: the first recipient name (else a target's name); `first_name` / `last_name`:
//!   the template variables of those names (what an invite template greets with), else the full
//!   name split at its last space; empty strings when the invite names nobody;
//! - `group_id`: the scope of type `group`; `flow_id`, `invite_template_id`, `reply_to`: the
//!   native fields of those names; `flow_items`: metadata `flow_items`;
//! - `status`: the canonical status in Argyle's words ([`InviteStatus::to_vendor`]);
//! - `user`: who accepted it (`accepted_by`), null before; `user_token`: always null (rsvp issues
//!   no user tokens);
//! - `url`: the public link, shown to its creator only (the create's answer), null elsewhere: the
//!   link's token is a bearer capability that no read shows;
//! - `invited_at`: the last send, else the creation; `deliveries[]`: the deliveries.

use chrono::{DateTime, Utc};
use events::{CreateInvite, DeliveryMethod, InviteStatus, Inviter, Scope, Target, TargetKind, Vendor};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

/// `limit`'s default and maximum, as Argyle documents them.
pub const DEFAULT_LIMIT: u64 = 10;
pub const MAX_LIMIT: u64 = 200;

/// The scope type an Argyle `group_id` is kept as.
pub const GROUP_SCOPE: &str = "group";

/// The read-model columns an Argyle invite is made of, as one `jsonb` value that [`Row`]
/// deserializes: an SQL expression over the read model's `invites` table aliased `i`. Shared by
/// the list (query-api) and the writes' answers (command-api), so both show the same object.
pub const ROW_SQL: &str = "jsonb_build_object('id', i.invite_id, 'status', i.status, 'open', i.open, \
    'expires_at', i.expires_at, 'created', i.created - 'token', 'created_at', i.created_at, \
    'updated_at', i.updated_at, 'last_sent_at', i.last_sent_at, 'revoked_at', i.revoked_at, \
    'version', i.version, \
    'accepted_by', (SELECT a.accepted_by FROM invite_accepts a WHERE a.invite_id = i.invite_id \
      AND a.tenant_id = i.tenant_id AND a.accepted_by IS NOT NULL ORDER BY a.invite_version LIMIT 1), \
    'deliveries', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', d.delivery_id, 'method', d.method, \
      'status', d.status, 'sent_at', d.sent_at, 'updated_at', d.updated_at) ORDER BY d.sent_at, d.delivery_id), '[]') \
      FROM deliveries d WHERE d.invite_id = i.invite_id AND d.tenant_id = i.tenant_id))";

/// An invite as the read model holds it ([`ROW_SQL`]).
#[derive(Debug, Clone, Deserialize)]
pub struct Row {
    pub id: Uuid,
    /// The stored canonical status (expiry, a function of time, is applied by [`invite`]).
    pub status: String,
    pub open: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub created: Created,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_sent_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub version: i64,
    pub accepted_by: Option<String>,
    pub deliveries: Vec<RowDelivery>,
}

/// The parts of the creation event an Argyle invite shows (the rest is ignored, the link token
/// above all: [`ROW_SQL`] leaves it out).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Created {
    #[serde(default)]
    pub targets: Vec<Target>,
    #[serde(default)]
    pub recipient_names: Vec<String>,
    #[serde(default)]
    pub reply_to: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<Scope>,
    #[serde(default)]
    pub metadata: BTreeMap<String, Value>,
    #[serde(default)]
    pub template_variables: BTreeMap<String, String>,
    pub flow_id: Option<String>,
    pub template_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RowDelivery {
    pub id: Uuid,
    pub method: String,
    pub status: String,
    pub sent_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Argyle's invite object, fields in the seed's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invite {
    pub id: Uuid,
    pub user: Option<String>,
    pub user_token: Option<String>,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub full_name: String,
    pub first_name: String,
    pub last_name: String,
    pub revoked_at: Option<String>,
    pub status: String,
    pub group_id: Option<String>,
    pub url: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub invited_at: String,
    pub flow_id: Option<String>,
    pub flow_items: Vec<String>,
    pub reply_to: Vec<String>,
    pub deliveries: Vec<Delivery>,
    pub invite_template_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: Uuid,
    pub method: String,
    pub status: String,
    pub sent_at: String,
    pub updated_at: String,
}

/// A list page: `next` / `previous` are full URLs or null.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Page {
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<Invite>,
}

/// Argyle's times: ISO 8601 in UTC with milliseconds and `Z` (`2023-03-09T23:57:05.756Z`).
pub fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The canonical status of a row at `now`, by the one definition (`events::derived`).
fn status_at(row: &Row, now: DateTime<Utc>) -> InviteStatus {
    let stored = InviteStatus::parse(&row.status).unwrap_or(InviteStatus::Created);
    events::derived::status(stored, row.open, row.expires_at, now)
}

/// A read-model row as Argyle's invite object; `url` is the public link when the caller may see
/// it (the creator, in the create's answer).
pub fn invite(row: &Row, now: DateTime<Utc>, url: Option<String>) -> Invite {
    let c = &row.created;
    let target = |kind| c.targets.iter().find(|t| t.kind == kind).map(|t| t.value.clone());
    // Argyle's names are always strings: empty when the invite names nobody (a native invite may
    // not; Argyle's create always does).
    let full_name = c.recipient_names.first().or_else(|| c.targets.iter().find_map(|t| t.name.as_ref()));
    let full_name = full_name.map(|n| n.trim().to_owned()).unwrap_or_default();
    let (split_first, split_last) = match full_name.rsplit_once(' ') {
        Some((first, last)) => (first.trim().to_owned(), last.to_owned()),
        None => (full_name.clone(), String::new()),
    };
    let status = status_at(row, now).to_vendor(Vendor::Argyle).expect("Argyle has a word for every status");
    Invite {
        id: row.id,
        user: row.accepted_by.clone(),
        user_token: None,
        email: target(TargetKind::Email),
        phone_number: target(TargetKind::Phone),
        first_name: c.template_variables.get("first_name").cloned().unwrap_or(split_first),
        last_name: c.template_variables.get("last_name").cloned().unwrap_or(split_last),
        full_name,
        revoked_at: row.revoked_at.map(time),
        status: status.to_owned(),
        group_id: c.scopes.iter().find(|s| s.kind == GROUP_SCOPE).map(|s| s.id.clone()),
        url,
        created_at: time(row.created_at),
        updated_at: time(row.updated_at),
        invited_at: time(row.last_sent_at.unwrap_or(row.created_at)),
        flow_id: c.flow_id.clone(),
        flow_items: match c.metadata.get("flow_items") {
            Some(Value::Array(items)) => items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect(),
            _ => Vec::new(),
        },
        reply_to: c.reply_to.clone(),
        deliveries: row
            .deliveries
            .iter()
            .map(|d| Delivery {
                id: d.id,
                method: d.method.clone(),
                status: d.status.clone(),
                sent_at: time(d.sent_at),
                updated_at: time(d.updated_at),
            })
            .collect(),
        invite_template_id: c.template_id.clone(),
    }
}

/// `POST /v2/invites` ("send an invite"), with the fields Argyle documents that rsvp keeps.
/// Anything else (`dds_config`, the branding of `override_invite_template`) is refused by name
/// rather than dropped in silence.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub phone_number: Option<String>,
    pub external_id: Option<String>,
    pub flow_id: Option<String>,
    #[serde(default)]
    pub flow_items: Vec<String>,
    pub invite_template_id: Option<String>,
    pub group_id: Option<String>,
    #[serde(default)]
    pub reply_to: Vec<String>,
    pub override_invite_template: Option<OverrideTemplate>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideTemplate {
    pub email: Option<OverrideEmail>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideEmail {
    #[serde(default)]
    pub reply_to: Vec<String>,
}

/// A refusal of Argyle input: the field and why (rendered by [`error_body`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: &str, message: &str) -> Self {
        Self { field: field.to_owned(), message: message.to_owned() }
    }
}

/// Argyle's create as the native command: the invite is sent at once (Argyle's create is "send
/// an invite"), by email when there is an address, else by SMS. `inviter` is whom the caller's
/// key acts as: its inviter, or for a tenant-wide key the key itself.
pub fn create_command(request: CreateRequest, inviter: Inviter) -> Result<CreateInvite, FieldError> {
    let given = |v: &Option<String>| v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let (first, last, full) = (given(&request.first_name), given(&request.last_name), given(&request.full_name));
    if full.is_none() {
        if first.is_none() {
            return Err(FieldError::new("first_name", "This field is required (or give full_name)."));
        }
        if last.is_none() {
            return Err(FieldError::new("last_name", "This field is required (or give full_name)."));
        }
    }
    let name = full.clone().or_else(|| Some(format!("{} {}", first.clone()?, last.clone()?)));
    let mut targets = Vec::new();
    if let Some(email) = given(&request.email) {
        targets.push(Target { kind: TargetKind::Email, value: email, name: name.clone(), index: None });
    }
    if let Some(phone) = given(&request.phone_number) {
        targets.push(Target { kind: TargetKind::Phone, value: phone, name: name.clone(), index: None });
    }
    let send = match targets.first().map(|t| t.kind) {
        Some(TargetKind::Email) => DeliveryMethod::Email,
        Some(_) => DeliveryMethod::Sms,
        None => return Err(FieldError::new("email", "Either email or phone_number is required.")),
    };
    let mut template_variables = BTreeMap::new();
    template_variables.extend(first.map(|f| ("first_name".to_owned(), f)));
    template_variables.extend(last.map(|l| ("last_name".to_owned(), l)));
    let mut metadata = BTreeMap::new();
    if !request.flow_items.is_empty() {
        metadata.insert("flow_items".to_owned(), json!(request.flow_items));
    }
    if let Some(external) = request.external_id {
        metadata.insert("external_id".to_owned(), json!(external));
    }
    let mut reply_to = request.reply_to;
    reply_to.extend(request.override_invite_template.and_then(|o| o.email).map(|e| e.reply_to).unwrap_or_default());
    Ok(CreateInvite {
        inviter: Some(inviter),
        targets,
        recipient_names: name.into_iter().collect(),
        message: None,
        multi_use: false,
        max_accepts: None,
        expires_at: None,
        expires_in_days: None,
        scopes: request.group_id.into_iter().map(|id| Scope { kind: GROUP_SCOPE.to_owned(), id, name: None }).collect(),
        reply_to,
        metadata,
        personal_metadata: vec![],
        template_variables,
        widget_id: None,
        flow_id: request.flow_id,
        template_id: request.invite_template_id,
        landing_url: None,
        definition_id: None,
        send: Some(send),
        source: None,
        subtype: None,
    })
}

/// The Argyle field a refusal of the native create (by a rule in `events`, naming the native
/// field) is about, so that the client is told of the field it sent: `targets[0].value` is
/// `email` (or `phone_number` when there was no email), `scopes[0].id` is `group_id`,
/// `metadata.flow_items[1]` is `flow_items[1]`; a name (`recipient_names[0]`, a target's name)
/// is `full_name` when one was given, else whichever of `first_name` / `last_name` is at fault.
pub fn create_field(native: &str, request: &CreateRequest) -> String {
    let name = || {
        let bad = |v: &Option<String>| {
            v.as_deref().is_some_and(|v| v.chars().any(char::is_control) || v.chars().count() > 200)
        };
        if request.full_name.is_some() {
            "full_name"
        } else if bad(&request.first_name) {
            "first_name"
        } else {
            "last_name"
        }
    };
    let email_first = request.email.as_deref().is_some_and(|e| !e.trim().is_empty());
    let target = |i: &str| match (i, email_first) {
        ("0", true) => "email",
        _ => "phone_number",
    };
    if let Some(rest) = native.strip_prefix("targets[") {
        let (index, after) = rest.split_once(']').unwrap_or((rest, ""));
        return if after == ".name" { name() } else { target(index) }.to_owned();
    }
    if native.starts_with("recipient_names") {
        return name().to_owned();
    }
    if let Some(rest) = native.strip_prefix("metadata.") {
        return rest.to_owned();
    }
    if let Some(rest) = native.strip_prefix("template_variables.") {
        return rest.to_owned();
    }
    if native.starts_with("scopes[") {
        return "group_id".to_owned();
    }
    match native {
        "template_id" => "invite_template_id".to_owned(),
        other => other.to_owned(),
    }
}

/// The canonical statuses a `status` filter stands for: Argyle's words, each a comma list or
/// repeated (`status=sent,initiated`, `status=sent&status=initiated`). An unknown word is refused.
pub fn statuses(words: &[&str]) -> Result<Vec<InviteStatus>, FieldError> {
    let mut all = Vec::new();
    for word in words {
        let these = InviteStatus::from_vendor(Vendor::Argyle, word.trim());
        if these.is_empty() {
            return Err(FieldError {
                field: "status".into(),
                message: format!(
                    "\"{word}\" is not a valid choice (initiated, sent, opened, completed, declined, revoked, expired)."
                ),
            });
        }
        all.extend(these);
    }
    all.sort();
    all.dedup();
    Ok(all)
}

/// `limit` as Argyle takes it: a whole number from 1 to 200, 10 when absent.
pub fn limit(given: Option<&str>) -> Result<u64, FieldError> {
    let Some(text) = given else { return Ok(DEFAULT_LIMIT) };
    match text.trim().parse::<u64>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Ok(0) => Err(FieldError::new("limit", "Ensure this value is greater than or equal to 1.")),
        Ok(_) => Err(FieldError::new("limit", "Ensure this value is less than or equal to 200.")),
        Err(_) => Err(FieldError::new("limit", "A valid integer is required.")),
    }
}

/// Argyle's error bodies (its API answers errors the Django REST framework way): a bad field is
/// `{"<field>": ["<message>"]}`, anything else `{"detail": "<message>"}`.
pub fn error_body(field: Option<&str>, message: &str) -> Value {
    match field {
        Some(field) => json!({ field: [message] }),
        None => json!({ "detail": message }),
    }
}

/// The `detail` Argyle answers a 401 with.
pub const UNAUTHORIZED: &str = "Invalid username/password.";

/// The challenge of Argyle's 401: HTTP Basic.
pub const CHALLENGE: &str = "Basic realm=\"api\"";

/// Any refusal (status, the field at fault, why) as Argyle's error body: a 401 says what Argyle
/// says, a bad field is named, anything else carries its detail (else its title).
pub fn error_of(status: u16, field: Option<&str>, detail: Option<&str>, title: &str) -> Value {
    if status == 401 {
        return error_body(None, UNAUTHORIZED);
    }
    error_body(field, detail.unwrap_or(title))
}

/// The base URL `next`/`previous` links start with: the scheme and host the client used, as a
/// gateway forwards them (`X-Forwarded-Proto`, `X-Forwarded-Host`, else `Host`), else `fallback`.
/// Only a host of letters, digits, `.`, `-`, `:` and brackets is taken: a link never carries
/// whatever else a header held.
pub fn base_url(
    forwarded_proto: Option<&str>,
    forwarded_host: Option<&str>,
    host: Option<&str>,
    fallback: &str,
) -> String {
    fn first(v: Option<&str>) -> Option<&str> {
        v.and_then(|v| v.split(',').next()).map(str::trim).filter(|v| !v.is_empty())
    }
    let proto = match first(forwarded_proto) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        Some(_) => "http",
        None => fallback.split_once("://").map_or("http", |(p, _)| if p == "https" { "https" } else { "http" }),
    };
    let valid = |h: &&str| h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    match first(forwarded_host).filter(valid).or_else(|| first(host).filter(valid)) {
        Some(host) => format!("{proto}://{host}"),
        None => fallback.trim_end_matches('/').to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn row() -> Row {
        Row {
            id: Uuid::nil(),
            status: "opened".into(),
            open: true,
            expires_at: None,
            created: serde_json::from_value(json!({
                "targets": [{"type": "email", "value": "sarah@example.com"}, {"type": "phone", "value": "212-555-5555"}],
                "recipient_names": ["Sarah Longfield"],
                "reply_to": ["person1@example.com"],
                "scopes": [{"type": "group", "id": "d8a07e5b"}],
                "metadata": {"flow_items": ["item_000000001"]},
                "flow_id": "8DRRA4XC",
                "inviter": {"id": "x"},
                "token": "never shown",
            }))
            .unwrap(),
            created_at: at("2023-03-09T23:57:05.756123Z"),
            updated_at: at("2023-03-09T23:58:00Z"),
            last_sent_at: Some(at("2023-03-09T23:57:24Z")),
            revoked_at: None,
            version: 3,
            accepted_by: None,
            deliveries: vec![RowDelivery {
                id: Uuid::nil(),
                method: "email".into(),
                status: "opened".into(),
                sent_at: at("2023-03-09T23:57:24Z"),
                updated_at: at("2023-03-09T23:58:00Z"),
            }],
        }
    }

    #[test]
    fn a_row_becomes_the_seed_s_invite_object_field_by_field() {
        let body = serde_json::to_value(invite(&row(), at("2024-01-01T00:00:00Z"), None)).unwrap();
        assert_eq!(
            body,
            json!({
                "id": "00000000-0000-0000-0000-000000000000",
                "user": null, "user_token": null,
                "email": "sarah@example.com", "phone_number": "212-555-5555",
                "full_name": "Sarah Longfield", "first_name": "Sarah", "last_name": "Longfield",
                "revoked_at": null, "status": "opened", "group_id": "d8a07e5b", "url": null,
                "created_at": "2023-03-09T23:57:05.756Z", "updated_at": "2023-03-09T23:58:00.000Z",
                "invited_at": "2023-03-09T23:57:24.000Z", "flow_id": "8DRRA4XC",
                "flow_items": ["item_000000001"], "reply_to": ["person1@example.com"],
                "deliveries": [{"id": "00000000-0000-0000-0000-000000000000", "method": "email", "status": "opened",
                    "sent_at": "2023-03-09T23:57:24.000Z", "updated_at": "2023-03-09T23:58:00.000Z"}],
                "invite_template_id": null,
            })
        );
    }

    #[test]
    fn an_open_invite_past_its_expiry_reads_expired_and_a_closed_one_keeps_its_word() {
        let mut r = row();
        r.expires_at = Some(at("2023-06-01T00:00:00Z"));
        assert_eq!(invite(&r, at("2023-05-01T00:00:00Z"), None).status, "opened");
        assert_eq!(invite(&r, at("2023-07-01T00:00:00Z"), None).status, "expired");
        r.open = false;
        r.status = "revoked".into();
        assert_eq!(invite(&r, at("2023-07-01T00:00:00Z"), None).status, "revoked");
    }

    #[test]
    fn names_come_from_the_template_variables_else_from_the_full_name() {
        let mut r = row();
        r.created.template_variables.insert("first_name".into(), "Mary Ann".into());
        r.created.template_variables.insert("last_name".into(), "Smith".into());
        let i = invite(&r, Utc::now(), None);
        assert_eq!((i.first_name.as_str(), i.last_name.as_str()), ("Mary Ann", "Smith"));
        r.created = Created { recipient_names: vec!["Cher".into()], ..Created::default() };
        let i = invite(&r, Utc::now(), None);
        assert_eq!((i.full_name.as_str(), i.first_name.as_str(), i.last_name.as_str()), ("Cher", "Cher", ""));
        assert_eq!((i.email, i.phone_number, i.group_id), (None, None, None));
        r.created = Created::default();
        let i = invite(&r, Utc::now(), None);
        assert_eq!((i.full_name, i.first_name, i.last_name), (String::new(), String::new(), String::new()));
    }

    #[test]
    fn a_create_becomes_a_native_create_that_sends_at_once() {
        let request: CreateRequest = serde_json::from_value(json!({
            "first_name": "Sarah", "last_name": "Longfield", "email": "sarah@example.com",
            "phone_number": "212-555-5555", "flow_id": "F1", "flow_items": ["item_1"], "group_id": "g1",
            "invite_template_id": "t1", "override_invite_template": {"email": {"reply_to": ["a@example.com"]}},
        }))
        .unwrap();
        let c =
            create_command(request, Inviter { id: "k1".into(), name: None, email: None, email_index: None }).unwrap();
        assert_eq!(c.send, Some(DeliveryMethod::Email));
        assert_eq!(c.targets.iter().map(|t| t.kind).collect::<Vec<_>>(), [TargetKind::Email, TargetKind::Phone]);
        assert_eq!(c.recipient_names, ["Sarah Longfield"]);
        assert_eq!(c.template_variables["first_name"], "Sarah");
        assert_eq!(c.reply_to, ["a@example.com"]);
        assert_eq!(c.scopes[0].kind, GROUP_SCOPE);
        assert_eq!(c.metadata["flow_items"], json!(["item_1"]));
        assert_eq!((c.flow_id.as_deref(), c.template_id.as_deref()), (Some("F1"), Some("t1")));
        let sms: CreateRequest =
            serde_json::from_value(json!({"full_name": "Bob Jones", "phone_number": "212-867-5309"})).unwrap();
        assert_eq!(
            create_command(sms, Inviter { id: "k".into(), name: None, email: None, email_index: None }).unwrap().send,
            Some(DeliveryMethod::Sms)
        );
    }

    #[test]
    fn a_create_without_a_name_or_an_address_names_the_field() {
        let inviter = || Inviter { id: "k".into(), name: None, email: None, email_index: None };
        let field = |v: Value| create_command(serde_json::from_value(v).unwrap(), inviter()).unwrap_err().field;
        assert_eq!(field(json!({"email": "a@example.com"})), "first_name");
        assert_eq!(field(json!({"first_name": "A", "email": "a@example.com"})), "last_name");
        assert_eq!(field(json!({"first_name": "A", "last_name": "B"})), "email");
        assert!(serde_json::from_value::<CreateRequest>(json!({"dds_config": {}})).is_err());
    }

    #[test]
    fn a_refusal_of_the_native_create_names_the_field_the_argyle_client_sent() {
        let request = |v: Value| serde_json::from_value::<CreateRequest>(v).unwrap();
        let both = request(json!({"first_name": "A\u{0}", "last_name": "B", "email": "e", "phone_number": "p"}));
        assert_eq!(create_field("targets[0].value", &both), "email");
        assert_eq!(create_field("targets[1].value", &both), "phone_number");
        assert_eq!(create_field("targets[0].name", &both), "first_name");
        assert_eq!(create_field("recipient_names[0]", &both), "first_name");
        assert_eq!(create_field("template_variables.last_name", &both), "last_name");
        assert_eq!(create_field("scopes[0].id", &both), "group_id");
        assert_eq!(create_field("metadata.flow_items[1]", &both), "flow_items[1]");
        assert_eq!(create_field("template_id", &both), "invite_template_id");
        assert_eq!(create_field("reply_to[0]", &both), "reply_to[0]");
        let phone = request(json!({"full_name": "A", "phone_number": "p"}));
        assert_eq!(create_field("targets[0].value", &phone), "phone_number");
        assert_eq!(create_field("recipient_names[0]", &phone), "full_name");
    }

    #[test]
    fn status_words_map_onto_every_canonical_status_they_stand_for() {
        assert_eq!(statuses(&["initiated"]).unwrap(), [InviteStatus::Created, InviteStatus::Queued]);
        let sent_or_completed = statuses(&["sent", "completed"]).unwrap();
        assert!(sent_or_completed.contains(&InviteStatus::Delivered));
        assert!(sent_or_completed.contains(&InviteStatus::AcceptedElsewhere));
        assert_eq!(statuses(&["bogus"]).unwrap_err().field, "status");
    }

    #[test]
    fn limit_is_ten_by_default_and_one_to_two_hundred() {
        assert_eq!(limit(None), Ok(10));
        assert_eq!(limit(Some("200")), Ok(200));
        for bad in ["0", "201", "ten", "-1", ""] {
            assert_eq!(limit(Some(bad)).unwrap_err().field, "limit", "{bad}");
        }
    }

    #[test]
    fn errors_are_bodies_argyle_clients_read() {
        assert_eq!(error_body(Some("limit"), "too big"), json!({"limit": ["too big"]}));
        assert_eq!(error_body(None, UNAUTHORIZED), json!({"detail": "Invalid username/password."}));
        assert_eq!(error_of(401, None, Some("a valid API key"), "t"), json!({"detail": UNAUTHORIZED}));
        assert_eq!(error_of(404, None, None, "not found"), json!({"detail": "not found"}));
        assert_eq!(error_of(400, Some("cursor"), Some("bad"), "t"), json!({"cursor": ["bad"]}));
    }

    #[test]
    fn links_point_where_the_client_called_through_the_gateway() {
        let fallback = "http://127.0.0.1:8082";
        assert_eq!(base_url(Some("https"), Some("api.example.com"), Some("q:1"), fallback), "https://api.example.com");
        assert_eq!(base_url(None, None, Some("localhost:8080"), fallback), "http://localhost:8080");
        assert_eq!(base_url(None, Some("evil.com/x?"), Some("bad host"), fallback), fallback);
        assert_eq!(time(at("2023-03-09T23:57:05Z")), "2023-03-09T23:57:05.000Z");
    }
}
