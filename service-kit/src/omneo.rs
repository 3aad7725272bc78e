//! The Omneo dialect's I/O, shared by the query API (the list) and the command API (the answers
//! of its writes): its credential, its error responses, and its reads of the read model. The
//! mappings themselves are `dialects::omneo` (pure).

use crate::auth::{Authenticated, Authenticator};
use crate::Problem;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use dialects::omneo::{DefinitionFacts, Error, InviteFacts};
use events::{DefinitionId, InviteStatus, TenantId};
use sqlx::PgPool;
use uuid::Uuid;

/// Most invites the list shows: the caller's latest, oldest first (Omneo's list has no pages).
pub const LIST_LIMIT: i64 = 1000;

/// The Omneo error as a response: JSON, the status it names.
pub fn respond(error: Error) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(error.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .json(error.body)
}

/// A native problem in Omneo's shape (`Retry-After` kept for a 429).
pub fn error_of(problem: &Problem) -> Error {
    Error::from_native(problem.status, problem.field.as_deref(), problem.detail.as_deref().unwrap_or(&problem.title))
}

pub fn respond_problem(problem: Problem) -> HttpResponse {
    let retry_after = problem.retry_after;
    let mut response = respond(error_of(&problem));
    if let Some(seconds) = retry_after {
        if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(actix_web::http::header::RETRY_AFTER, value);
        }
    }
    response
}

/// Omneo's credential: `Authorization: Bearer <token>` and nothing else (another dialect's
/// form, HTTP Basic or an `x-api-key` header, is Omneo's 401), of an inviter-scoped key: "me"
/// is that inviter. Returns the key and its inviter.
pub async fn authenticate(req: &HttpRequest) -> Result<(Authenticated, String), HttpResponse> {
    let bearer = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::credential::bearer_token);
    if bearer.is_none() {
        return Err(respond(Error::unauthenticated()));
    }
    let authenticator =
        req.app_data::<web::Data<Authenticator>>().expect("an Authenticator is registered as app data").clone();
    let auth = authenticator.authenticate(req).await.map_err(respond_problem)?;
    let Some(inviter) = auth.inviter_id.clone() else {
        return Err(respond(Error::message(403, "This token does not belong to an inviter.")));
    };
    Ok((auth, inviter))
}

type InviteRow = (
    Uuid,
    String,
    Option<String>,
    String,
    bool,
    i32,
    chrono::DateTime<chrono::Utc>,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<String>,
    i64,
);

/// The inviter's invites (the latest [`LIST_LIMIT`], oldest first), or only the one `id`, with
/// each one's version.
pub async fn invites(
    pool: &PgPool,
    tenant: TenantId,
    inviter: &str,
    id: Option<Uuid>,
) -> sqlx::Result<Vec<(InviteFacts, u64)>> {
    let rows: Vec<InviteRow> = sqlx::query_as(
        "SELECT * FROM (SELECT i.invite_id, i.inviter_id, \
           (SELECT t.value FROM invite_targets t WHERE t.invite_id = i.invite_id AND t.kind = 'email' \
            ORDER BY t.position LIMIT 1), \
           i.status, i.open, i.send_count, i.created_at, i.expires_at, i.accepted_at, i.declined_at, i.revoked_at, \
           d.handle, i.version \
         FROM invites i LEFT JOIN definitions d ON d.definition_id = i.definition_id \
         WHERE i.tenant_id = $1 AND i.inviter_id = $2 AND ($3::uuid IS NULL OR i.invite_id = $3) \
         ORDER BY i.created_at DESC, i.invite_id DESC LIMIT $4) latest ORDER BY 7, 1",
    )
    .bind(tenant.as_uuid())
    .bind(inviter)
    .bind(id)
    .bind(LIST_LIMIT)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            // The projector writes canonical statuses only; a row with another is left out.
            let stored_status = InviteStatus::parse(&r.3)?;
            let facts = InviteFacts {
                id: r.0,
                inviter_id: r.1,
                recipient_email: r.2,
                stored_status,
                open: r.4,
                send_count: r.5.max(0) as u32,
                invited_at: r.6,
                expires_at: r.7,
                accepted_at: r.8,
                declined_at: r.9,
                revoked_at: r.10,
                definition_handle: r.11,
            };
            Some((facts, r.12.max(0) as u64))
        })
        .collect())
}

/// The tenant's definitions in creation order (their ids are time-ordered UUIDs), each with how
/// many invites `inviter` created under it.
pub async fn definitions(pool: &PgPool, tenant: TenantId, inviter: &str) -> sqlx::Result<Vec<DefinitionFacts>> {
    type Row =
        (Uuid, String, Option<chrono::DateTime<chrono::Utc>>, Option<chrono::DateTime<chrono::Utc>>, Option<i32>, i32);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT d.definition_id, d.handle, d.starts_at, d.ends_at, d.max_invites_per_inviter, \
           coalesce(c.invites_created, 0) \
         FROM definitions d LEFT JOIN inviter_counters c \
           ON c.tenant_id = d.tenant_id AND c.definition_id = d.definition_id AND c.inviter_id = $2 \
         WHERE d.tenant_id = $1 ORDER BY d.definition_id",
    )
    .bind(tenant.as_uuid())
    .bind(inviter)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| DefinitionFacts {
            id: DefinitionId::from_uuid(r.0),
            handle: r.1,
            starts_at: r.2,
            ends_at: r.3,
            max_invites_per_inviter: r.4.map(|n| n.max(0) as u32),
            created_by_caller: r.5.max(0) as u32,
        })
        .collect())
}
