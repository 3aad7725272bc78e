//! Webhook endpoints (admin, tenant-wide keys only): register, list, read, change, delete, rotate
//! the signing secret, and look at what the dispatcher did: messages, attempts, and a resend.
//!
//! Endpoints are operational configuration, not history: they live in PostgreSQL
//! (`dispatch.webhook_endpoints`), never in the event log, because they hold signing secrets. The
//! dispatcher fills `dispatch.webhook_messages` and `dispatch.webhook_attempts`. A secret is
//! answered when an endpoint is created and when it is rotated, and at no other time; it is
//! never logged. Another tenant's endpoint is a 404 like one that does not exist.

use super::AppState;
use actix_web::{delete, patch, post, route, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use service_kit::problem::JsonBody;
use service_kit::webhooks::{self, Format, MAX_EVENT_TYPES};
use service_kit::{Authenticated, Problem, Scope};
use std::collections::HashSet;
use uuid::Uuid;

/// Most characters of an endpoint's description.
const MAX_DESCRIPTION: usize = 2000;
/// Items per page of attempts or messages: by default, and at most.
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 100;
/// Why an endpoint is disabled when its tenant disabled it (the dispatcher writes its own).
const DISABLED_BY_API: &str = "disabled through the API";

/// A field that may be absent but, when present, is never `null` (the document gives it no
/// `null`): absent is `None`, `null` a 400 naming it.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// A field where `null` means something (clear it): absent is `None`, `null` is `Some(None)`.
fn nullable<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    url: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default, deserialize_with = "present")]
    format: Option<String>,
    #[serde(default, deserialize_with = "present")]
    event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    disabled: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBody {
    #[serde(default, deserialize_with = "present")]
    url: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    format: Option<String>,
    #[serde(default, deserialize_with = "present")]
    event_types: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    disabled: Option<bool>,
}

#[derive(Debug, sqlx::FromRow)]
struct EndpointRow {
    endpoint_id: Uuid,
    url: String,
    description: Option<String>,
    format: String,
    event_types: Vec<String>,
    disabled: bool,
    disabled_reason: Option<String>,
    failure_streak: i32,
    failing_since: Option<DateTime<Utc>>,
    previous_secret_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// The columns of [`EndpointRow`]: never the secrets.
const ENDPOINT_COLUMNS: &str = "endpoint_id, url, description, format, event_types, disabled, disabled_reason, \
     failure_streak, failing_since, previous_secret_expires_at, created_at, updated_at";

/// An endpoint as the API answers it: never its secrets.
fn view(row: &EndpointRow) -> Value {
    // A previous secret past its time signs nothing any more: not worth showing.
    let previous = row.previous_secret_expires_at.filter(|at| *at > Utc::now());
    json!({
        "id": row.endpoint_id,
        "url": row.url,
        "description": row.description,
        "format": row.format,
        "event_types": row.event_types,
        "disabled": row.disabled,
        "disabled_reason": row.disabled_reason,
        "failure_streak": row.failure_streak,
        "failing_since": row.failing_since,
        "previous_secret_expires_at": previous,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    })
}

/// A database failure: logged (the query, never a bound value, so never a secret), a 503 sent.
fn db_error(e: sqlx::Error) -> Problem {
    tracing::error!(error = %e, "webhook endpoints: database failure");
    Problem::unavailable("webhook endpoints cannot be reached right now; retry later")
}

fn endpoint_id(raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| Problem::bad_request("id", "must be a UUID"))
}

fn parse_format(raw: Option<&str>) -> Result<Option<Format>, Problem> {
    raw.map(|f| Format::parse(f).ok_or_else(|| Problem::invalid_field("format", "must be `standard` or `vortex`")))
        .transpose()
}

fn check_description(description: &Option<String>) -> Result<(), Problem> {
    events::validate::opt_text("description", description, MAX_DESCRIPTION)
        .map_err(|r| Problem::invalid_field("description", r.to_string()))
}

/// An endpoint's event types for its format: each known to the format, no duplicates, at most
/// [`MAX_EVENT_TYPES`]; an empty list asks for all.
fn check_event_types(format: Format, types: &[String]) -> Result<(), Problem> {
    if types.len() > MAX_EVENT_TYPES {
        return Err(Problem::invalid_field("event_types", format!("at most {MAX_EVENT_TYPES} event types")));
    }
    let mut seen = HashSet::new();
    for (i, t) in types.iter().enumerate() {
        if !format.knows(t) {
            return Err(Problem::invalid_field(
                format!("event_types[{i}]"),
                format!(
                    "not an event type of the `{}` format; it knows {}",
                    format.as_str(),
                    format.event_types().join(", ")
                ),
            ));
        }
        if !seen.insert(t.as_str()) {
            return Err(Problem::invalid_field(format!("event_types[{i}]"), "listed twice"));
        }
    }
    Ok(())
}

fn check_url(state: &AppState, raw: &str) -> Result<String, Problem> {
    webhooks::check_url(raw, state.webhook_allow_private)
        .map(|u| u.to_string())
        .map_err(|why| Problem::invalid_field("url", why))
}

/// The tenant's endpoint, or a 404 naming nothing (another tenant's is no different).
async fn endpoint(state: &AppState, auth: &Authenticated, id: Uuid) -> Result<EndpointRow, Problem> {
    sqlx::query_as::<_, EndpointRow>(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM dispatch.webhook_endpoints WHERE endpoint_id = $1 AND tenant_id = $2"
    ))
    .bind(id)
    .bind(auth.tenant_id.as_uuid())
    .fetch_optional(&state.pool)
    .await
    .map_err(db_error)?
    .ok_or_else(|| Problem::not_found("webhook endpoint"))
}

/// `POST /v1/webhooks` (admin): registers an endpoint; 201 with its secret, shown this once.
#[post("/v1/webhooks")]
pub async fn create(
    auth: Authenticated,
    state: web::Data<AppState>,
    body: JsonBody<CreateBody>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let JsonBody(b, _) = body;
    let url = check_url(&state, &b.url)?;
    check_description(&b.description)?;
    let format = parse_format(b.format.as_deref())?.unwrap_or(Format::Standard);
    let event_types = b.event_types.unwrap_or_default();
    check_event_types(format, &event_types)?;
    let disabled = b.disabled.unwrap_or(false);
    let secret = webhooks::new_secret();
    let row = sqlx::query_as::<_, EndpointRow>(&format!(
        "INSERT INTO dispatch.webhook_endpoints (endpoint_id, tenant_id, url, description, format, event_types, \
         secret, disabled, disabled_reason, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now(), now()) RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(auth.tenant_id.as_uuid())
    .bind(&url)
    .bind(&b.description)
    .bind(format.as_str())
    .bind(&event_types)
    .bind(&secret)
    .bind(disabled)
    .bind(disabled.then_some(DISABLED_BY_API))
    .fetch_one(&state.pool)
    .await
    .map_err(db_error)?;
    let mut body = view(&row);
    body["secret"] = json!(secret);
    Ok(HttpResponse::Created().json(body))
}

/// `GET /v1/webhooks` (admin): the tenant's endpoints, oldest first.
#[route("/v1/webhooks", method = "GET", method = "HEAD")]
pub async fn list(auth: Authenticated, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let rows = sqlx::query_as::<_, EndpointRow>(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM dispatch.webhook_endpoints WHERE tenant_id = $1 \
         ORDER BY created_at, endpoint_id"
    ))
    .bind(auth.tenant_id.as_uuid())
    .fetch_all(&state.pool)
    .await
    .map_err(db_error)?;
    Ok(HttpResponse::Ok().json(json!({ "data": rows.iter().map(view).collect::<Vec<_>>() })))
}

/// `GET /v1/webhooks/{id}` (admin).
#[route("/v1/webhooks/{id}", method = "GET", method = "HEAD")]
pub async fn show(
    auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let row = endpoint(&state, &auth, endpoint_id(&id)?).await?;
    Ok(HttpResponse::Ok().json(view(&row)))
}

/// `PATCH /v1/webhooks/{id}` (admin): changes the fields given. Enabling a disabled endpoint
/// clears why it was disabled and its run of failures.
#[patch("/v1/webhooks/{id}")]
pub async fn update(
    auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: JsonBody<UpdateBody>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let id = endpoint_id(&id)?;
    let JsonBody(b, raw) = body;
    if raw.is_empty() {
        return Err(Problem::bad_request("body", "a JSON object of the fields to change is required"));
    }
    let url = b.url.as_deref().map(|u| check_url(&state, u)).transpose()?;
    if let Some(description) = &b.description {
        check_description(description)?;
    }
    let format = parse_format(b.format.as_deref())?;
    let current = endpoint(&state, &auth, id).await?;
    // The event types must fit the format the endpoint will have, whichever of the two changes.
    let final_format = format.unwrap_or(Format::parse(&current.format).unwrap_or(Format::Standard));
    match &b.event_types {
        Some(types) => check_event_types(final_format, types)?,
        None if format.is_some() => check_event_types(final_format, &current.event_types)?,
        None => {}
    }
    let row = sqlx::query_as::<_, EndpointRow>(&format!(
        "UPDATE dispatch.webhook_endpoints SET \
           url = COALESCE($3, url), \
           description = CASE WHEN $4 THEN $5 ELSE description END, \
           format = COALESCE($6, format), \
           event_types = COALESCE($7, event_types), \
           disabled_reason = CASE WHEN $8 IS NULL THEN disabled_reason \
                                  WHEN NOT $8 THEN NULL \
                                  WHEN disabled THEN disabled_reason ELSE $9 END, \
           failure_streak = CASE WHEN disabled AND $8 = false THEN 0 ELSE failure_streak END, \
           failing_since = CASE WHEN disabled AND $8 = false THEN NULL ELSE failing_since END, \
           disabled = COALESCE($8, disabled), \
           updated_at = now() \
         WHERE endpoint_id = $1 AND tenant_id = $2 RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(id)
    .bind(auth.tenant_id.as_uuid())
    .bind(url)
    .bind(b.description.is_some())
    .bind(b.description.flatten())
    .bind(format.map(Format::as_str))
    .bind(b.event_types)
    .bind(b.disabled)
    .bind(DISABLED_BY_API)
    .fetch_optional(&state.pool)
    .await
    .map_err(db_error)?
    .ok_or_else(|| Problem::not_found("webhook endpoint"))?;
    Ok(HttpResponse::Ok().json(view(&row)))
}

/// `DELETE /v1/webhooks/{id}` (admin): 204; its messages and attempts go with it.
#[delete("/v1/webhooks/{id}")]
pub async fn remove(
    auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let id = endpoint_id(&id)?;
    let deleted = sqlx::query("DELETE FROM dispatch.webhook_endpoints WHERE endpoint_id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(auth.tenant_id.as_uuid())
        .execute(&state.pool)
        .await
        .map_err(db_error)?;
    if deleted.rows_affected() == 0 {
        return Err(Problem::not_found("webhook endpoint"));
    }
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /v1/webhooks/{id}/rotate-secret` (admin): a new secret, answered this once; the old one
/// keeps signing beside it until `previous_secret_expires_at`.
#[post("/v1/webhooks/{id}/rotate-secret")]
pub async fn rotate_secret(
    auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let id = endpoint_id(&id)?;
    let secret = webhooks::new_secret();
    let overlap = state.webhook_secret_overlap.as_secs() as f64;
    let expires: Option<DateTime<Utc>> = sqlx::query_scalar(
        "UPDATE dispatch.webhook_endpoints SET previous_secret = secret, \
           previous_secret_expires_at = now() + make_interval(secs => $4), secret = $3, updated_at = now() \
         WHERE endpoint_id = $1 AND tenant_id = $2 RETURNING previous_secret_expires_at",
    )
    .bind(id)
    .bind(auth.tenant_id.as_uuid())
    .bind(&secret)
    .bind(overlap)
    .fetch_optional(&state.pool)
    .await
    .map_err(db_error)?
    .flatten();
    let expires = expires.ok_or_else(|| Problem::not_found("webhook endpoint"))?;
    Ok(HttpResponse::Ok().json(json!({ "secret": secret, "previous_secret_expires_at": expires })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttemptParams {
    limit: Option<u32>,
    before: Option<i64>,
}

fn limit(raw: Option<u32>) -> Result<u32, Problem> {
    let limit = raw.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::bad_request("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    Ok(limit)
}

#[derive(Debug, sqlx::FromRow)]
struct AttemptRow {
    attempt_id: i64,
    event_id: Uuid,
    event_type: Option<String>,
    attempted_at: DateTime<Utc>,
    response_status: Option<i32>,
    latency_ms: i32,
    error: Option<String>,
    succeeded: bool,
    trigger: String,
}

/// `GET /v1/webhooks/{id}/attempts?limit=&before=` (admin): the endpoint's delivery attempts,
/// newest first; `next` gives the page after this one.
#[route("/v1/webhooks/{id}/attempts", method = "GET", method = "HEAD")]
pub async fn list_attempts(
    auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
    params: web::Query<AttemptParams>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let id = endpoint_id(&id)?;
    let AttemptParams { limit: raw_limit, before } = params.into_inner();
    let limit = limit(raw_limit)?;
    if before.is_some_and(|b| b < 1) {
        return Err(Problem::bad_request("before", "must be an attempt id (1 or more)"));
    }
    endpoint(&state, &auth, id).await?;
    let mut rows = sqlx::query_as::<_, AttemptRow>(
        "SELECT a.attempt_id, a.event_id, m.event_type, a.attempted_at, a.response_status, a.latency_ms, \
                a.error, a.succeeded, a.trigger \
         FROM dispatch.webhook_attempts a \
         LEFT JOIN dispatch.webhook_messages m ON m.endpoint_id = a.endpoint_id AND m.event_id = a.event_id \
         WHERE a.endpoint_id = $1 AND ($2::bigint IS NULL OR a.attempt_id < $2) \
         ORDER BY a.attempt_id DESC LIMIT $3",
    )
    .bind(id)
    .bind(before)
    .bind(i64::from(limit) + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(db_error)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = match rows.last() {
        Some(last) if more => {
            json!(format!("{}/v1/webhooks/{id}/attempts?limit={limit}&before={}", state.public_url, last.attempt_id))
        }
        _ => Value::Null,
    };
    let data: Vec<Value> = rows
        .iter()
        .map(|a| {
            json!({
                "attempt_id": a.attempt_id,
                "message_id": a.event_id,
                "event_type": a.event_type,
                "attempted_at": a.attempted_at,
                "response_status": a.response_status,
                "latency_ms": a.latency_ms,
                "error": a.error,
                "succeeded": a.succeeded,
                "trigger": a.trigger,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "data": data, "next": next })))
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MessageState {
    Pending,
    Delivered,
    Failed,
}

impl MessageState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageParams {
    state: Option<MessageState>,
    limit: Option<u32>,
    before: Option<Uuid>,
}

#[derive(Debug, sqlx::FromRow)]
struct MessageRow {
    event_id: Uuid,
    event_type: String,
    stream_id: Uuid,
    stream_version: i64,
    state: String,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
}

const MESSAGE_COLUMNS: &str =
    "m.event_id, m.event_type, m.stream_id, m.stream_version, m.state, m.attempts, m.next_attempt_at, m.created_at";

fn message_view(m: &MessageRow) -> Value {
    json!({
        "message_id": m.event_id,
        "event_type": m.event_type,
        "stream_id": m.stream_id,
        "stream_version": m.stream_version,
        "state": m.state,
        "attempts": m.attempts,
        "next_attempt_at": m.next_attempt_at,
        "created_at": m.created_at,
    })
}

/// `GET /v1/webhooks/{id}/messages?state=&limit=&before=` (admin): the endpoint's messages (one
/// per event it was sent), newest first; `before` is the last `message_id` of the page before.
#[route("/v1/webhooks/{id}/messages", method = "GET", method = "HEAD")]
pub async fn list_messages(
    auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
    params: web::Query<MessageParams>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let id = endpoint_id(&id)?;
    let MessageParams { state: wanted, limit: raw_limit, before } = params.into_inner();
    let limit = limit(raw_limit)?;
    endpoint(&state, &auth, id).await?;
    if let Some(before) = before {
        let known: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM dispatch.webhook_messages WHERE endpoint_id = $1 AND event_id = $2)",
        )
        .bind(id)
        .bind(before)
        .fetch_one(&state.pool)
        .await
        .map_err(db_error)?;
        if !known {
            return Err(Problem::invalid_field("before", "names no message of this endpoint"));
        }
    }
    let mut rows = sqlx::query_as::<_, MessageRow>(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM dispatch.webhook_messages m \
         WHERE m.endpoint_id = $1 AND ($2::text IS NULL OR m.state = $2) \
           AND ($3::uuid IS NULL OR (m.created_at, m.event_id) < \
                (SELECT b.created_at, b.event_id FROM dispatch.webhook_messages b \
                 WHERE b.endpoint_id = $1 AND b.event_id = $3)) \
         ORDER BY m.created_at DESC, m.event_id DESC LIMIT $4"
    ))
    .bind(id)
    .bind(wanted.map(MessageState::as_str))
    .bind(before)
    .bind(i64::from(limit) + 1)
    .fetch_all(&state.pool)
    .await
    .map_err(db_error)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = match rows.last() {
        Some(last) if more => {
            let filter = wanted.map(|s| format!("state={}&", s.as_str())).unwrap_or_default();
            json!(format!(
                "{}/v1/webhooks/{id}/messages?{filter}limit={limit}&before={}",
                state.public_url, last.event_id
            ))
        }
        _ => Value::Null,
    };
    Ok(HttpResponse::Ok().json(json!({ "data": rows.iter().map(message_view).collect::<Vec<_>>(), "next": next })))
}

/// `POST /v1/webhooks/{id}/messages/{message_id}/resend` (admin): 202; the message is due again
/// now, and its next attempt is recorded as `manual`.
#[post("/v1/webhooks/{id}/messages/{message_id}/resend")]
pub async fn resend(
    auth: Authenticated,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let (id, message) = path.into_inner();
    let id = endpoint_id(&id)?;
    let message = Uuid::parse_str(&message).map_err(|_| Problem::bad_request("message_id", "must be a UUID"))?;
    endpoint(&state, &auth, id).await?;
    let row = sqlx::query_as::<_, MessageRow>(&format!(
        "UPDATE dispatch.webhook_messages m SET state = 'pending', next_attempt_at = now(), resend_requested = true \
         WHERE m.endpoint_id = $1 AND m.event_id = $2 AND m.tenant_id = $3 RETURNING {MESSAGE_COLUMNS}"
    ))
    .bind(id)
    .bind(message)
    .bind(auth.tenant_id.as_uuid())
    .fetch_optional(&state.pool)
    .await
    .map_err(db_error)?
    .ok_or_else(|| Problem::not_found("message"))?;
    Ok(HttpResponse::Accepted().json(message_view(&row)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The document's event type enum is the two formats' vocabularies, so a schema-valid list
    /// is refused only for naming the other format's types (422), never for an unknown one.
    #[test]
    fn the_documented_event_types_are_both_vocabularies() {
        let document: Value = serde_json::from_str(include_str!("../../api/openapi.json")).unwrap();
        let documented: Vec<&str> = document["components"]["schemas"]["WebhookEventType"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let known: Vec<&str> = Format::ALL.into_iter().flat_map(Format::event_types).collect();
        assert_eq!(documented, known);
        let formats = &document["components"]["schemas"]["WebhookFormat"]["enum"];
        assert_eq!(*formats, json!(Format::ALL.map(Format::as_str)));
    }

    #[test]
    fn event_types_fit_the_format_once_each_and_at_most_100() {
        let types = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_event_types(Format::Standard, &[]).is_ok());
        assert!(check_event_types(Format::Standard, &types(&["InviteCreated", "InviteAccepted"])).is_ok());
        assert!(check_event_types(Format::Vortex, &types(&["invitation.created"])).is_ok());
        let wrong = check_event_types(Format::Standard, &types(&["InviteCreated", "invitation.created"])).unwrap_err();
        assert_eq!((wrong.status, wrong.field.as_deref()), (422, Some("event_types[1]")));
        let twice = check_event_types(Format::Vortex, &types(&["invitation.viewed", "invitation.viewed"])).unwrap_err();
        assert_eq!(twice.field.as_deref(), Some("event_types[1]"));
        let many = vec!["InviteCreated".to_owned(); 101];
        assert_eq!(check_event_types(Format::Standard, &many).unwrap_err().field.as_deref(), Some("event_types"));
    }
}
