//! Invite reads: the list with keyset pagination, and the detail.

use crate::cursor::{Cursor, CursorCodec, Direction};
use crate::startup::AppState;
use actix_web::http::header;
use actix_web::{get, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use service_kit::{Authenticated, Problem, Scope};
use sqlx::{FromRow, Postgres, QueryBuilder};
use std::hash::{DefaultHasher, Hash, Hasher};
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
}

const COLUMNS: &str =
    "invite_id, status, open, inviter_id, inviter_name, inviter_email, invitation_type, max_accepts, \
    message, definition_id, landing_url, expires_at, created_at, updated_at, version, created";

impl InviteRow {
    fn to_json(&self, now: DateTime<Utc>) -> Value {
        let field = |name: &str| self.created.get(name).cloned().unwrap_or(Value::Null);
        let expired = self.status == "expired" || self.expires_at.is_some_and(|at| at <= now && self.open);
        json!({
            "id": self.invite_id,
            // Expiry is a function of time: an open invite past its expiry reads as expired.
            "status": if expired && self.open { "expired" } else { self.status.as_str() },
            "expired": expired,
            "inviter": { "id": self.inviter_id, "name": self.inviter_name, "email": self.inviter_email },
            "targets": field("targets"),
            "invitation_type": self.invitation_type,
            "max_accepts": self.max_accepts,
            "message": self.message,
            "scopes": field("scopes"),
            "reply_to": field("reply_to"),
            "metadata": field("metadata"),
            "template_variables": field("template_variables"),
            "definition_id": self.definition_id,
            "landing_url": self.landing_url,
            "expires_at": self.expires_at,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "version": self.version,
        })
    }
}

#[derive(Debug, Deserialize, Hash)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    limit: Option<u32>,
    /// `newest` (default) or `oldest`.
    order: Option<Order>,
    cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, Hash, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Order {
    Newest,
    Oldest,
}

#[derive(Serialize)]
struct Page {
    data: Vec<Value>,
    next: Option<String>,
    previous: Option<String>,
}

impl ListParams {
    /// Fingerprint of everything but the cursor: a cursor is valid only for the query it came from.
    fn fingerprint(&self) -> u64 {
        let mut h = DefaultHasher::new();
        self.order.unwrap_or(Order::Newest).hash(&mut h);
        h.finish()
    }
}

/// `GET /v1/invites`: newest first by default; `next`/`previous` are full URLs or null.
#[get("/v1/invites")]
pub async fn list(
    req: HttpRequest,
    auth: Authenticated,
    state: web::Data<AppState>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::InvitesRead)?;
    let params = params.into_inner();
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::bad_request("limit", format!("must be between 1 and {MAX_LIMIT}")));
    }
    let order = params.order.unwrap_or(Order::Newest);
    let fingerprint = params.fingerprint();
    let cursor =
        match &params.cursor {
            None => None,
            Some(text) => {
                Some(state.cursors.decode(text).filter(|c| c.query == fingerprint).ok_or_else(|| {
                    Problem::bad_request("cursor", "the cursor is invalid or belongs to another query")
                })?)
            }
        };
    let direction = cursor.as_ref().map_or(Direction::Next, |c| c.direction);
    // Walking backwards means reading the opposite order, then flipping the page.
    let descending = (order == Order::Newest) == (direction == Direction::Next);

    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(format!("SELECT {COLUMNS} FROM invites WHERE tenant_id = "));
    q.push_bind(*auth.tenant_id.as_uuid());
    if let Some(c) = &cursor {
        q.push(if descending { " AND (created_at, invite_id) < (" } else { " AND (created_at, invite_id) > (" });
        q.push_bind(c.created_at).push(", ").push_bind(c.id).push(")");
    }
    q.push(if descending {
        " ORDER BY created_at DESC, invite_id DESC"
    } else {
        " ORDER BY created_at ASC, invite_id ASC"
    });
    q.push(" LIMIT ").push_bind(i64::from(limit) + 1);
    let mut rows: Vec<InviteRow> = q.build_query_as().fetch_all(&state.pool).await.map_err(internal)?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    if direction == Direction::Previous {
        rows.reverse();
    }

    let link = |row: &InviteRow, direction| {
        let c = Cursor { created_at: row.created_at, id: row.invite_id, direction, query: fingerprint };
        page_url(&state, &req, &state.cursors, &c)
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
    let now = Utc::now();
    Ok(HttpResponse::Ok().json(Page { data: rows.iter().map(|r| r.to_json(now)).collect(), next, previous }))
}

/// The same request with `cursor` replaced.
fn page_url(state: &AppState, req: &HttpRequest, codec: &CursorCodec, cursor: &Cursor) -> String {
    let mut pairs: Vec<(String, String)> =
        url_pairs(req.query_string()).into_iter().filter(|(k, _)| k != "cursor").collect();
    pairs.push(("cursor".into(), codec.encode(cursor)));
    let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect();
    format!("{}{}?{}", state.public_url, req.path(), query.join("&"))
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    web::Query::<Vec<(String, String)>>::from_query(query).map(|q| q.into_inner()).unwrap_or_default()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET /v1/invites/{id}`: another tenant's invite is a 404, like a missing one.
#[get("/v1/invites/{id}")]
pub async fn detail(
    auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::InvitesRead)?;
    let id = Uuid::parse_str(&id).map_err(|_| Problem::bad_request("id", "must be a UUID"))?;
    let row: Option<InviteRow> =
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM invites WHERE tenant_id = $1 AND invite_id = $2"))
            .bind(auth.tenant_id.as_uuid())
            .bind(id)
            .fetch_optional(&state.pool)
            .await
            .map_err(internal)?;
    let row = row.ok_or_else(|| Problem::not_found("invite"))?;
    Ok(HttpResponse::Ok().insert_header((header::ETAG, format!("\"{}\"", row.version))).json(row.to_json(Utc::now())))
}

fn internal(e: sqlx::Error) -> Problem {
    tracing::error!(error = ?e, "query failed");
    Problem::internal()
}
