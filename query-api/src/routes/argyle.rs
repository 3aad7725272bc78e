//! The Argyle dialect's read: `GET /v2/invites` (`dialects::argyle` holds the mapping). Its
//! pages come from the same keyset pagination as `GET /v1/invites` (the cursor signed and bound
//! to the query, the tenant and the inviter); its links point where the client called, through
//! the gateway; its credential is HTTP Basic only, and every refusal is an Argyle error body.

use super::invites::{keyset_page, page_url, Keyed, Keyset, Order};
use crate::params::{Filters, Pairs};
use crate::startup::AppState;
use actix_web::{route, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use dialects::argyle;
use events::TargetKind;
use service_kit::problem::DialectError;
use service_kit::{Authenticator, Problem, Scope};
use sqlx::types::Json;
use sqlx::FromRow;
use uuid::Uuid;

/// A problem as Argyle's clients read it.
fn argyle_error(problem: Problem) -> DialectError {
    DialectError {
        problem,
        render: |p| argyle::error_of(p.status, p.field.as_deref(), p.detail.as_deref(), &p.title),
        challenge: argyle::CHALLENGE,
    }
}

fn field_error(e: argyle::FieldError) -> DialectError {
    argyle_error(Problem::bad_request(e.field, e.message))
}

#[derive(FromRow)]
struct Row {
    invite_id: Uuid,
    created_at: DateTime<Utc>,
    argyle: Json<argyle::Row>,
}

impl Keyed for Row {
    fn key(&self) -> (DateTime<Utc>, Uuid) {
        (self.created_at, self.invite_id)
    }
}

/// `GET /v2/invites`: the caller's invites, newest first; `status` (Argyle's words, a comma list
/// or repeated), `reply_to`, `limit` (10 by default, 1 to 200), `cursor` (from `next`/`previous`).
#[route("/v2/invites", method = "GET", method = "HEAD")]
pub async fn list(
    req: HttpRequest,
    auth: web::Data<Authenticator>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, DialectError> {
    let auth = auth.authenticate_basic(&req).await.map_err(argyle_error)?;
    auth.require(Scope::InvitesRead).map_err(argyle_error)?;
    let pairs = Pairs::parse(req.query_string()).map_err(argyle_error)?;
    pairs.only(&["status", "reply_to", "limit", "cursor"]).map_err(argyle_error)?;
    let words = pairs.all("status").map_err(argyle_error)?;
    let filters = Filters {
        statuses: argyle::statuses(&words).map_err(field_error)?,
        reply_to: pairs
            .one("reply_to")
            .map_err(argyle_error)?
            .map(|r| state.secrets.for_tenant(auth.tenant_id).blind_index(TargetKind::Email, r)),
        ..Filters::default()
    };
    let limit = argyle::limit(pairs.one("limit").map_err(argyle_error)?).map_err(field_error)?;
    let columns = format!("i.invite_id, i.created_at, {} AS argyle", argyle::ROW_SQL);
    let page: Keyset<Row> =
        keyset_page(&state, &auth, &pairs, &filters, limit, Order::Newest, &columns).await.map_err(argyle_error)?;
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let base =
        argyle::base_url(header("x-forwarded-proto"), header("x-forwarded-host"), header("host"), &state.public_url);
    let url = |cursor: String| page_url(&base, &req, &pairs, &cursor);
    let now = Utc::now();
    Ok(HttpResponse::Ok().json(argyle::Page {
        next: page.next.map(url),
        previous: page.previous.map(url),
        results: page.rows.iter().map(|r| argyle::invite(&r.argyle, now, None)).collect(),
    }))
}

/// `GET /v2/invites/{id}`: one invite, the object the list shows; another tenant's (or for an
/// inviter's key, another inviter's) is a 404 like a missing one.
#[route("/v2/invites/{id}", method = "GET", method = "HEAD")]
pub async fn one(
    req: HttpRequest,
    auth: web::Data<Authenticator>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, DialectError> {
    let auth = auth.authenticate_basic(&req).await.map_err(argyle_error)?;
    auth.require(Scope::InvitesRead).map_err(argyle_error)?;
    Pairs::parse(req.query_string()).and_then(|p| p.only(&[])).map_err(argyle_error)?;
    let id = Uuid::parse_str(&id).map_err(|_| argyle_error(Problem::bad_request("id", "Must be a valid UUID.")))?;
    let sql = format!(
        "SELECT {} FROM invites i WHERE i.tenant_id = $1 AND i.invite_id = $2 \
         AND ($3::text IS NULL OR i.inviter_id = $3)",
        argyle::ROW_SQL
    );
    let row: Option<Json<argyle::Row>> = sqlx::query_scalar(&sql)
        .bind(auth.tenant_id.as_uuid())
        .bind(id)
        .bind(auth.inviter_id.as_deref())
        .fetch_optional(&state.lookups)
        .await
        .map_err(|e| argyle_error(super::invites::internal(e)))?;
    let Json(row) = row.ok_or_else(|| argyle_error(Problem::not_found("invite")))?;
    Ok(HttpResponse::Ok().json(argyle::invite(&row, Utc::now(), None)))
}
