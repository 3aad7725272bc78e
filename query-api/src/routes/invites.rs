//! Invite reads: the list with keyset pagination, and the detail.

use crate::cursor::{owner, Cursor, CursorCodec, Direction};
use crate::params::{Filters, Pairs, FILTERS};
use crate::startup::AppState;
use actix_web::http::header;
use actix_web::{route, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use events::InviteStatus;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use service_kit::{Authenticated, Problem, Scope};
use sqlx::{FromRow, Postgres, QueryBuilder};
use uuid::Uuid;

const DEFAULT_LIMIT: u32 = 10;
const MAX_LIMIT: u32 = 200;

#[derive(Debug, FromRow)]
struct InviteRow {
    invite_id: Uuid,
    status: String,
    inviter_id: String,
    inviter_name: Option<String>,
    inviter_email: Option<String>,
    invitation_type: String,
    max_accepts: Option<i32>,
    message: Option<String>,
    definition_id: Option<Uuid>,
    landing_url: Option<String>,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
    open: bool,
    created: Value,
    #[sqlx(flatten)]
    activity: Activity,
}

/// How far an invite got: its counters and when each transition first happened.
#[derive(Debug, FromRow)]
struct Activity {
    send_count: i32,
    delivery_count: i32,
    view_count: i32,
    click_count: i32,
    share_count: i32,
    unfurl_count: i32,
    accept_count: i32,
    first_sent_at: Option<DateTime<Utc>>,
    last_sent_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    viewed_at: Option<DateTime<Utc>>,
    clicked_at: Option<DateTime<Utc>>,
    accepted_at: Option<DateTime<Utc>>,
    declined_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
    expired_at: Option<DateTime<Utc>>,
    accepted_elsewhere_at: Option<DateTime<Utc>>,
}

impl Activity {
    fn counters(&self) -> Value {
        json!({
            "sends": self.send_count,
            "deliveries": self.delivery_count,
            "views": self.view_count,
            "clicks": self.click_count,
            "shares": self.share_count,
            "unfurls": self.unfurl_count,
            "accepts": self.accept_count,
        })
    }

    fn timestamps(&self) -> Value {
        json!({
            "first_sent_at": self.first_sent_at,
            "last_sent_at": self.last_sent_at,
            "delivered_at": self.delivered_at,
            "viewed_at": self.viewed_at,
            "clicked_at": self.clicked_at,
            "accepted_at": self.accepted_at,
            "declined_at": self.declined_at,
            "revoked_at": self.revoked_at,
            "expired_at": self.expired_at,
            "accepted_elsewhere_at": self.accepted_elsewhere_at,
        })
    }
}

const COLUMNS: &str =
    "invite_id, status, open, inviter_id, inviter_name, inviter_email, invitation_type, max_accepts, \
    message, definition_id, landing_url, expires_at, created_at, updated_at, version, created, \
    send_count, delivery_count, view_count, click_count, share_count, unfurl_count, accept_count, \
    first_sent_at, last_sent_at, delivered_at, viewed_at, clicked_at, accepted_at, declined_at, revoked_at, \
    expired_at, accepted_elsewhere_at";

impl InviteRow {
    fn to_json(&self, now: DateTime<Utc>) -> Value {
        // The creation event leaves empty collections out; a reader gets them empty, not null.
        let field =
            |name: &str, empty: Value| self.created.get(name).filter(|v| !v.is_null()).cloned().unwrap_or(empty);
        // Expiry is a function of time: an open invite past its expiry reads as expired.
        let (status, expired) = match InviteStatus::parse(&self.status) {
            Some(stored) => (
                events::derived::status(stored, self.open, self.expires_at, now).as_str(),
                events::derived::is_expired(stored, self.open, self.expires_at, now),
            ),
            // The projector writes only canonical statuses; anything else is shown as stored.
            None => (self.status.as_str(), false),
        };
        // The blind indexes are the read model's to match on, never shown.
        let mut targets = field("targets", json!([]));
        if let Some(each) = targets.as_array_mut() {
            service_kit::secrets::without_indexes(each);
        }
        json!({
            "id": self.invite_id,
            "status": status,
            "expired": expired,
            "inviter": { "id": self.inviter_id, "name": self.inviter_name, "email": self.inviter_email },
            "targets": targets,
            "invitation_type": self.invitation_type,
            "max_accepts": self.max_accepts,
            "message": self.message,
            "scopes": field("scopes", json!([])),
            "reply_to": field("reply_to", json!([])),
            "metadata": field("metadata", json!({})),
            "template_variables": field("template_variables", json!({})),
            "definition_id": self.definition_id,
            "landing_url": self.landing_url,
            "expires_at": self.expires_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "version": self.version,
            "counters": self.activity.counters(),
            "timestamps": self.activity.timestamps(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    Newest,
    Oldest,
}

#[derive(Serialize)]
struct Page {
    data: Vec<Value>,
    next: Option<String>,
    previous: Option<String>,
}

/// `GET /v1/invites`: newest first by default; filters (see `params.rs`); `next`/`previous` are
/// full URLs or null. Keyset pagination: every page costs what the first costs.
#[route("/v1/invites", method = "GET", method = "HEAD")]
pub async fn list(req: HttpRequest, auth: Authenticated, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    auth.require(Scope::InvitesRead)?;
    let pairs = Pairs::parse(req.query_string())?;
    let mut known = FILTERS.to_vec();
    known.extend(["limit", "order", "cursor"]);
    pairs.only(&known)?;
    let filters = Filters::parse(&pairs, &state.secrets.for_tenant(auth.tenant_id))?;
    let limit = pairs.number("limit")?.unwrap_or(DEFAULT_LIMIT as u64);
    if !(1..=MAX_LIMIT as u64).contains(&limit) {
        return Err(Problem::bad_request("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    let order = match pairs.one("order")? {
        None | Some("newest") => Order::Newest,
        Some("oldest") => Order::Oldest,
        Some(_) => return Err(Problem::bad_request("order", "newest or oldest")),
    };
    let page: Keyset<InviteRow> = keyset_page(&state, &auth, &pairs, &filters, limit, order, COLUMNS).await?;
    let url = |cursor: String| page_url(&state.public_url, &req, &pairs, &cursor);
    let now = Utc::now();
    Ok(HttpResponse::Ok().json(Page {
        data: page.rows.iter().map(|r| r.to_json(now)).collect(),
        next: page.next.map(url),
        previous: page.previous.map(url),
    }))
}

/// A row that has a place in the keyset order: `(created_at, id)`.
pub(crate) trait Keyed {
    fn key(&self) -> (DateTime<Utc>, Uuid);
}

impl Keyed for InviteRow {
    fn key(&self) -> (DateTime<Utc>, Uuid) {
        (self.created_at, self.invite_id)
    }
}

/// One page of the caller's invites and the cursors (signed, bound to the query, the tenant and
/// the inviter) of the pages beside it: each dialect's list turns them into its own links.
pub(crate) struct Keyset<R> {
    pub rows: Vec<R>,
    pub next: Option<String>,
    pub previous: Option<String>,
}

/// The keyset pagination every list shares: the caller's invites (an inviter's key: its own)
/// matching `filters`, `limit` of them from the position of `pairs`' `cursor`, selecting
/// `columns` (over the table aliased `i`).
pub(crate) async fn keyset_page<R>(
    state: &AppState,
    auth: &Authenticated,
    pairs: &Pairs,
    filters: &Filters,
    limit: u64,
    order: Order,
    columns: &str,
) -> Result<Keyset<R>, Problem>
where
    R: for<'r> FromRow<'r, sqlx::postgres::PgRow> + Keyed + Send + Unpin,
{
    let fingerprint = pairs.fingerprint();
    // Malformed (not a cursor's syntax) is a 400; well-formed but not issued by this API for this
    // query (forged, from another query, or signed with another secret) is a 422.
    let cursor = match pairs.one("cursor")? {
        None => None,
        Some(text) if !CursorCodec::is_well_formed(text) => {
            return Err(Problem::bad_request("cursor", "is not a cursor: pass `next` or `previous` as given"))
        }
        Some(text) => {
            Some(state.cursors.decode(text, &owner_of(auth)).filter(|c| c.query == fingerprint).ok_or_else(|| {
                Problem::invalid_field("cursor", "the cursor was not issued for this query and key by this API")
            })?)
        }
    };
    let direction = cursor.as_ref().map_or(Direction::Next, |c| c.direction);
    // Walking backwards means reading the opposite order, then flipping the page.
    let descending = (order == Order::Newest) == (direction == Direction::Next);

    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {columns} FROM invites i WHERE i.tenant_id = "));
    q.push_bind(*auth.tenant_id.as_uuid());
    if let Some(inviter) = &auth.inviter_id {
        q.push(" AND i.inviter_id = ").push_bind(inviter.clone());
    }
    filters.push_sql(&mut q);
    if let Some(c) = &cursor {
        q.push(if descending {
            " AND (i.created_at, i.invite_id) < ("
        } else {
            " AND (i.created_at, i.invite_id) > ("
        });
        q.push_bind(c.created_at).push(", ").push_bind(c.id).push(")");
    }
    q.push(if descending {
        " ORDER BY i.created_at DESC, i.invite_id DESC"
    } else {
        " ORDER BY i.created_at ASC, i.invite_id ASC"
    });
    q.push(" LIMIT ").push_bind(limit as i64 + 1);
    let mut rows: Vec<R> = q.build_query_as().fetch_all(&state.pool).await.map_err(internal)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    if direction == Direction::Previous {
        rows.reverse();
    }

    let link = |row: &R, direction| {
        let (created_at, id) = row.key();
        state.cursors.encode(&Cursor { created_at, id, direction, query: fingerprint }, &owner_of(auth))
    };
    let (next, previous) = match direction {
        Direction::Next => (
            rows.last().filter(|_| more).map(|r| link(r, Direction::Next)),
            rows.first().filter(|_| cursor.is_some()).map(|r| link(r, Direction::Previous)),
        ),
        Direction::Previous => (
            rows.last().map(|r| link(r, Direction::Next)),
            rows.first().filter(|_| more).map(|r| link(r, Direction::Previous)),
        ),
    };
    Ok(Keyset { rows, next, previous })
}

/// The same request at `base` with `cursor` replaced.
pub(crate) fn page_url(base: &str, req: &HttpRequest, pairs: &Pairs, cursor: &str) -> String {
    let mut pairs = pairs.without("cursor");
    pairs.push(("cursor".into(), cursor.to_owned()));
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    format!("{}{}?{}", base, req.path(), query.join("&"))
}

/// Whom the caller's cursors are for: its tenant, and its inviter for an inviter's key.
fn owner_of(auth: &Authenticated) -> String {
    owner(auth.tenant_id, auth.inviter_id.as_deref())
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /v1/invites/{id}`: the full invite; another tenant's invite is a 404, like a missing one.
///
/// Read-your-writes: `min_version=<n>` (or `X-Min-Version: <n>`) waits, at most
/// `RSVP_READ_YOUR_WRITES_TIMEOUT_MS`, until the projection has reached version `n` (the version
/// the command API answered with); past that, 503 with `Retry-After`.
#[route("/v1/invites/{id}", method = "GET", method = "HEAD")]
pub async fn detail(
    req: HttpRequest,
    auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::InvitesRead)?;
    let id = Uuid::parse_str(&id).map_err(|_| Problem::bad_request("id", "must be a UUID"))?;
    let pairs = Pairs::parse(req.query_string())?;
    pairs.only(&["min_version"])?;
    let header = crate::params::min_version_header(&req)?;
    // Both given: the parameter wins, but a bad header is still a 400.
    let min_version = pairs.number("min_version")?.or(header);
    let deadline = std::time::Instant::now() + state.read_your_writes_timeout;
    let mut in_flight = None;
    let row = loop {
        let row = fetch_detail(&state, &auth, id).await?;
        match (row, min_version) {
            (Some(row), Some(min)) if (row.invite.version as u64) < min => {}
            (Some(row), _) => break row,
            (None, None) => return Err(Problem::not_found("invite")),
            (None, Some(_)) => {
                if in_flight.is_none() {
                    in_flight = Some(may_be_in_flight(&state, &auth, id).await?);
                }
                if in_flight == Some(false) {
                    return Err(Problem::not_found("invite"));
                }
            }
        }
        if std::time::Instant::now() >= deadline {
            return Err(
                Problem::unavailable("the read model has not reached that version yet").with_field("min_version")
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let mut body = row.invite.to_json(Utc::now());
    body["deliveries"] = serde_json::to_value(&row.deliveries.0).map_err(|e| internal_json(&e))?;
    body["accepts"] = serde_json::to_value(&row.accepts.0).map_err(|e| internal_json(&e))?;
    Ok(HttpResponse::Ok().insert_header((header::ETAG, format!("\"{}\"", row.invite.version))).json(body))
}

/// One delivery of the detail, with every status it went through.
#[derive(Debug, Serialize, Deserialize)]
struct Delivery {
    id: Uuid,
    method: String,
    target: String,
    resend: bool,
    status: String,
    sent_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    history: Value,
}

#[derive(Debug, Serialize, Deserialize)]
struct Accept {
    accepted_by: Option<String>,
    target: Option<String>,
    at: DateTime<Utc>,
}

/// The detail's row: the invite with its deliveries and accepts aggregated beside it, so the
/// whole detail is one statement (one round trip, one snapshot: the counters and the lists
/// always agree).
#[derive(Debug, FromRow)]
struct DetailRow {
    #[sqlx(flatten)]
    invite: InviteRow,
    deliveries: sqlx::types::Json<Vec<Delivery>>,
    accepts: sqlx::types::Json<Vec<Accept>>,
}

const DETAIL_LISTS: &str = ", (SELECT coalesce(jsonb_agg(jsonb_build_object('id', d.delivery_id, 'method', d.method, \
    'target', d.target, 'resend', d.resend, 'status', d.status, 'sent_at', d.sent_at, 'updated_at', d.updated_at, \
    'history', (SELECT coalesce(jsonb_agg(jsonb_build_object('status', h.status, 'at', h.at, 'detail', h.detail) \
      ORDER BY h.invite_version), '[]') FROM delivery_status_history h WHERE h.delivery_id = d.delivery_id)) \
    ORDER BY d.sent_at, d.delivery_id), '[]') \
    FROM deliveries d WHERE d.invite_id = i.invite_id AND d.tenant_id = i.tenant_id) AS deliveries, \
    (SELECT coalesce(jsonb_agg(jsonb_build_object('accepted_by', a.accepted_by, 'target', a.target, 'at', a.at) \
      ORDER BY a.invite_version), '[]') \
    FROM invite_accepts a WHERE a.invite_id = i.invite_id AND a.tenant_id = i.tenant_id) AS accepts";

async fn fetch_detail(state: &AppState, auth: &Authenticated, id: Uuid) -> Result<Option<DetailRow>, Problem> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS}{DETAIL_LISTS} FROM invites i WHERE i.tenant_id = "));
    q.push_bind(*auth.tenant_id.as_uuid()).push(" AND i.invite_id = ").push_bind(id);
    if let Some(inviter) = &auth.inviter_id {
        q.push(" AND i.inviter_id = ").push_bind(inviter.clone());
    }
    q.build_query_as().fetch_optional(&state.lookups).await.map_err(internal)
}

fn internal_json(e: &serde_json::Error) -> Problem {
    tracing::error!(error = %e, "cannot serialize a detail");
    Problem::internal()
}

/// Whether an invite the read model does not show the caller may still be on its way there, so
/// that `min_version` should wait for it. Not when the read model holds it for someone else
/// (another tenant's, another inviter's: it will never be the caller's), nor when the id is no
/// id the command API minted recently: it mints invite ids as UUIDv7 at creation, so an id of
/// another version, or minted more than [`IN_FLIGHT`] away from now, is simply unknown.
pub(crate) async fn may_be_in_flight(state: &AppState, auth: &Authenticated, id: Uuid) -> Result<bool, Problem> {
    /// Far more than any projection lag the query API waits out, and any clock skew.
    const IN_FLIGHT: chrono::TimeDelta = chrono::TimeDelta::minutes(5);
    let minted = match id.get_version() {
        Some(uuid::Version::SortRand) => id.get_timestamp().map(|t| {
            let (secs, nanos) = t.to_unix();
            DateTime::from_timestamp(secs as i64, nanos).unwrap_or_default()
        }),
        _ => None,
    };
    if !minted.is_some_and(|at| (Utc::now() - at).abs() <= IN_FLIGHT) {
        return Ok(false);
    }
    // Someone else's invite: not the caller's tenant, or (for an inviter's key) another inviter's.
    // The caller's own invite, projected since the read that missed it, is still on its way: the
    // next read finds it (answering 404 for it was a race with the projector).
    let elsewhere: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM invites WHERE invite_id = $1 \
         AND (tenant_id <> $2 OR ($3::text IS NOT NULL AND inviter_id IS DISTINCT FROM $3)))",
    )
    .bind(id)
    .bind(auth.tenant_id.as_uuid())
    .bind(auth.inviter_id.as_deref())
    .fetch_one(&state.lookups)
    .await
    .map_err(internal)?;
    Ok(!elsewhere)
}

async fn fetch(state: &AppState, auth: &Authenticated, id: Uuid) -> Result<Option<InviteRow>, Problem> {
    let mut q: QueryBuilder<Postgres> =
        QueryBuilder::new(format!("SELECT {COLUMNS} FROM invites i WHERE i.tenant_id = "));
    q.push_bind(*auth.tenant_id.as_uuid()).push(" AND i.invite_id = ").push_bind(id);
    if let Some(inviter) = &auth.inviter_id {
        q.push(" AND i.inviter_id = ").push_bind(inviter.clone());
    }
    q.build_query_as().fetch_optional(&state.lookups).await.map_err(internal)
}

/// `GET /v1/invites/{id}/events`: the invite's history in order, with its envelopes: the audit
/// trail.
#[route("/v1/invites/{id}/events", method = "GET", method = "HEAD")]
pub async fn history(
    req: HttpRequest,
    auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::InvitesRead)?;
    Pairs::parse(req.query_string())?.only(&[])?;
    let id = Uuid::parse_str(&id).map_err(|_| Problem::bad_request("id", "must be a UUID"))?;
    if fetch(&state, &auth, id).await?.is_none() {
        return Err(Problem::not_found("invite"));
    }
    type Row =
        (i64, Uuid, String, i32, DateTime<Utc>, String, String, Option<Uuid>, Option<Uuid>, Option<String>, Value);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT version, event_id, event_type, schema_version, occurred_at, actor_kind, actor_id, correlation_id, \
         causation_id, idempotency_key, data FROM events WHERE stream_id = $1 AND tenant_id = $2 ORDER BY version",
    )
    .bind(id)
    .bind(auth.tenant_id.as_uuid())
    .fetch_all(&state.lookups)
    .await
    .map_err(internal)?;
    let data: Vec<Value> = rows
        .into_iter()
        .map(
            |(
                version,
                event_id,
                event_type,
                schema_version,
                at,
                actor_kind,
                actor_id,
                correlation,
                causation,
                key,
                data,
            )| {
                json!({
                    "version": version, "event_id": event_id, "type": event_type, "schema_version": schema_version,
                    "occurred_at": at, "actor": { "kind": actor_kind, "id": actor_id }, "correlation_id": correlation,
                    "causation_id": causation, "idempotency_key": key, "data": service_kit::secrets::redact_token(data),
                })
            },
        )
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "invite_id": id, "data": data })))
}

pub(crate) fn internal(e: sqlx::Error) -> Problem {
    tracing::error!(error = ?e, "query failed");
    Problem::internal()
}
