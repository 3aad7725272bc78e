//! The Vortex dialect's reads: one invitation, the invitations of a target, the invitations of a
//! scope. The key comes in `x-api-key` only (`Authorization` is not looked at on these paths),
//! errors are Vortex's JSON (`dialects::vortex::ErrorBody`), and the invitations are mapped from
//! the read models by `dialects::vortex`, so every dialect shows the same invite.
//!
//! `GET /api/v1/invitations/{id}` also takes `X-Min-Version` (as the native detail does): the
//! command API uses it to answer its Vortex writes with the invitation they left.

use crate::params::Pairs;
use crate::startup::AppState;
use actix_web::{route, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use dialects::vortex::{self, Source};
use events::InviteStatus;
use serde_json::Value;
use service_kit::{Authenticated, Authenticator, Problem, Scope};
use sqlx::{FromRow, Postgres, QueryBuilder};
use uuid::Uuid;

/// Most invitations one list answers (Vortex's lists are not paginated).
const MAX_LIST: i64 = 1000;

/// A Vortex error: the problem's status and headers, Vortex's body.
pub(crate) fn error(p: Problem) -> HttpResponse {
    let message = vortex::error_message(p.status, p.detail.as_deref(), &p.title);
    p.response_with(&vortex::error_body(p.status, &p.code, &message, p.field.as_deref()))
}

async fn authenticate(req: &HttpRequest, auth: &Authenticator) -> Result<Authenticated, Problem> {
    let caller = auth.authenticate_api_key_header(req).await?;
    caller.require(Scope::InvitesRead)?;
    Ok(caller)
}

#[derive(Debug, FromRow)]
struct Row {
    invite_id: Uuid,
    tenant_id: Uuid,
    status: String,
    open: bool,
    inviter_id: String,
    invitation_type: String,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
    created: Value,
    send_count: i32,
    delivery_count: i32,
    view_count: i32,
    click_count: i32,
    share_count: i32,
    unfurl_count: i32,
    delivery_methods: Vec<String>,
    delivery_statuses: Vec<String>,
    accept_ids: Vec<Uuid>,
}

impl Row {
    fn source(self) -> Source {
        Source {
            id: self.invite_id,
            tenant_id: self.tenant_id,
            status: InviteStatus::parse(&self.status).unwrap_or(InviteStatus::Created),
            open: self.open,
            inviter_id: self.inviter_id,
            multi_use: self.invitation_type == "multi_use",
            expires_at: self.expires_at,
            created_at: self.created_at,
            updated_at: self.updated_at,
            created: self.created,
            send_count: self.send_count.into(),
            delivery_count: self.delivery_count.into(),
            view_count: self.view_count.into(),
            click_count: self.click_count.into(),
            share_count: self.share_count.into(),
            unfurl_count: self.unfurl_count.into(),
            delivery_methods: self.delivery_methods,
            delivery_statuses: self.delivery_statuses,
            accept_ids: self.accept_ids,
        }
    }
}

/// One statement per read: the invite, its deliveries' methods and statuses and its accepts'
/// event ids side by side, from one snapshot.
const SELECT: &str = "SELECT i.invite_id, i.tenant_id, i.status, i.open, i.inviter_id, i.invitation_type, \
    i.expires_at, i.created_at, i.updated_at, i.version, i.created, i.send_count, i.delivery_count, i.view_count, \
    i.click_count, i.share_count, i.unfurl_count, \
    ARRAY(SELECT d.method FROM deliveries d WHERE d.invite_id = i.invite_id AND d.tenant_id = i.tenant_id \
      ORDER BY d.sent_at, d.delivery_id) AS delivery_methods, \
    ARRAY(SELECT d.status FROM deliveries d WHERE d.invite_id = i.invite_id AND d.tenant_id = i.tenant_id \
      ORDER BY d.sent_at, d.delivery_id) AS delivery_statuses, \
    ARRAY(SELECT e.event_id FROM invite_accepts a JOIN events e ON e.stream_id = a.invite_id \
      AND e.version = a.invite_version AND e.tenant_id = a.tenant_id \
      WHERE a.invite_id = i.invite_id AND a.tenant_id = i.tenant_id ORDER BY a.invite_version) AS accept_ids \
    FROM invites i WHERE i.tenant_id = ";

enum Filter {
    Id(Uuid),
    Target { kind: &'static str, normalized: String },
    Scope { kind: String, id: String },
}

async fn fetch(state: &AppState, caller: &Authenticated, filter: &Filter) -> Result<Vec<Row>, Problem> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(SELECT);
    q.push_bind(*caller.tenant_id.as_uuid());
    // An inviter's key reads its own invites only.
    if let Some(inviter) = &caller.inviter_id {
        q.push(" AND i.inviter_id = ").push_bind(inviter.clone());
    }
    match filter {
        Filter::Id(id) => {
            q.push(" AND i.invite_id = ").push_bind(*id);
        }
        Filter::Target { kind, normalized } => {
            q.push(" AND EXISTS (SELECT 1 FROM invite_targets t WHERE t.invite_id = i.invite_id AND t.tenant_id = i.tenant_id AND t.kind = ")
                .push_bind(*kind)
                .push(" AND t.normalized = ")
                .push_bind(normalized.clone())
                .push(")");
        }
        Filter::Scope { kind, id } => {
            q.push(" AND EXISTS (SELECT 1 FROM invite_scopes s WHERE s.invite_id = i.invite_id AND s.tenant_id = i.tenant_id AND s.scope_type = ")
                .push_bind(kind.clone())
                .push(" AND s.scope_id = ")
                .push_bind(id.clone())
                .push(")");
        }
    }
    q.push(" ORDER BY i.created_at DESC, i.invite_id DESC LIMIT ").push_bind(MAX_LIST);
    q.build_query_as().fetch_all(&state.pool).await.map_err(|e| {
        tracing::error!(error = ?e, "query failed");
        Problem::unavailable("the read models cannot be read right now")
    })
}

fn list(rows: Vec<Row>) -> HttpResponse {
    let now = Utc::now();
    let invitations: Vec<_> = rows.into_iter().map(|r| vortex::invitation(&r.source(), now)).collect();
    HttpResponse::Ok().json(vortex::Invitations { invitations })
}

/// `GET /api/v1/invitations/{id}`: another tenant's invitation is a 404, like a missing one.
#[route("/api/v1/invitations/{id}", method = "GET", method = "HEAD")]
pub async fn one(
    req: HttpRequest,
    auth: web::Data<Authenticator>,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> HttpResponse {
    one_inner(&req, &auth, &state, &id).await.unwrap_or_else(error)
}

async fn one_inner(
    req: &HttpRequest,
    auth: &Authenticator,
    state: &AppState,
    id: &str,
) -> Result<HttpResponse, Problem> {
    let caller = authenticate(req, auth).await?;
    Pairs::parse(req.query_string())?.only(&[])?;
    let id = Uuid::parse_str(id).map_err(|_| Problem::bad_request("invitationId", "not an invitation id"))?;
    let min_version = crate::params::min_version_header(req)?;
    // Read-your-writes, bounded as the native detail's is: the command API answers its writes
    // with the invitation as they left it.
    let deadline = std::time::Instant::now() + state.read_your_writes_timeout;
    let mut in_flight = None;
    loop {
        let row = fetch(state, &caller, &Filter::Id(id)).await?.pop();
        match (row, min_version) {
            (Some(row), Some(min)) if (row.version as u64) < min => {}
            (Some(row), _) => return Ok(HttpResponse::Ok().json(vortex::invitation(&row.source(), Utc::now()))),
            (None, None) => return Err(Problem::not_found("invitation")),
            (None, Some(_)) => {
                // The native detail's rule: wait only for an invite that may still be on its way.
                if in_flight.is_none() {
                    in_flight = Some(super::invites::may_be_in_flight(state, &caller, id).await?);
                }
                if in_flight == Some(false) {
                    return Err(Problem::not_found("invitation"));
                }
            }
        }
        if std::time::Instant::now() >= deadline {
            return Err(match min_version {
                Some(_) => Problem::unavailable("the read model has not reached that version yet"),
                None => Problem::not_found("invitation"),
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `GET /api/v1/invitations?targetType=email|phoneNumber|username&targetValue=...`.
#[route("/api/v1/invitations", method = "GET", method = "HEAD")]
pub async fn by_target(req: HttpRequest, auth: web::Data<Authenticator>, state: web::Data<AppState>) -> HttpResponse {
    by_target_inner(&req, &auth, &state).await.unwrap_or_else(error)
}

async fn by_target_inner(req: &HttpRequest, auth: &Authenticator, state: &AppState) -> Result<HttpResponse, Problem> {
    let caller = authenticate(req, auth).await?;
    let pairs = Pairs::parse(req.query_string())?;
    pairs.only(&["targetType", "targetValue"])?;
    let kind = pairs.one("targetType")?.ok_or_else(|| Problem::bad_request("targetType", "is required"))?;
    let kind = vortex::target_type(kind)
        .ok_or_else(|| Problem::bad_request("targetType", "email, phoneNumber or username"))?;
    let value = pairs.one("targetValue")?.ok_or_else(|| Problem::bad_request("targetValue", "is required"))?;
    let filter = Filter::Target {
        kind: kind.as_str(),
        normalized: state.secrets.for_tenant(caller.tenant_id).match_key(kind, value),
    };
    Ok(list(fetch(state, &caller, &filter).await?))
}

/// `GET /api/v1/invitations/by-scope/{scopeType}/{scope}`.
#[route("/api/v1/invitations/by-scope/{scope_type}/{scope}", method = "GET", method = "HEAD")]
pub async fn by_scope(
    req: HttpRequest,
    auth: web::Data<Authenticator>,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let (kind, id) = path.into_inner();
    let read = async {
        let caller = authenticate(&req, &auth).await?;
        Pairs::parse(req.query_string())?.only(&[])?;
        for (field, value) in [("scopeType", &kind), ("scope", &id)] {
            if value.contains(char::is_control) {
                return Err(Problem::bad_request(field, "must not hold control characters"));
            }
        }
        Ok(list(fetch(&state, &caller, &Filter::Scope { kind: kind.clone(), id: id.clone() }).await?))
    };
    read.await.unwrap_or_else(error)
}
