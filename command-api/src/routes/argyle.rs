//! The Argyle dialect's writes: `POST /v2/invites` (create and send) and
//! `POST /v2/invites/{id}/revoke`, answering Argyle's invite object (`dialects::argyle` holds the
//! mapping). HTTP Basic credentials only; every refusal is an Argyle error body.

use super::{command_meta, problem_of, AppState};
use crate::writer::{Committed, WriterHandle};
use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse};
use chrono::Utc;
use dialects::argyle;
use events::{InviteCommand, InviteId, Inviter, StreamId, TenantCommand};
use serde_json::json;
use service_kit::problem::DialectError;
use service_kit::{Authenticated, Authenticator, Problem, Scope};
use sqlx::types::Json;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long an answer waits for the read model to show the committed version.
const ANSWER_WAIT: Duration = Duration::from_secs(5);

/// A problem as Argyle's clients read it.
fn argyle_error(problem: Problem) -> DialectError {
    DialectError {
        problem,
        render: |p| argyle::error_of(p.status, p.field.as_deref(), p.detail.as_deref(), &p.title),
        challenge: argyle::CHALLENGE,
    }
}

async fn writer_of(req: &HttpRequest, auth: &Authenticator) -> Result<Authenticated, DialectError> {
    let caller = auth.authenticate_basic(req).await.map_err(argyle_error)?;
    caller.require(Scope::InvitesWrite).map_err(argyle_error)?;
    Ok(caller)
}

/// `POST /v2/invites`: creates the invite and sends it (Argyle's create is "send an invite"),
/// one command, one transaction; 201 with the invite object, its `url` the public link (shown to
/// its creator only, as the native create shows `link_url`).
#[post("/v2/invites")]
pub async fn create(
    req: HttpRequest,
    auth: web::Data<Authenticator>,
    state: web::Data<AppState>,
    writer: web::Data<WriterHandle>,
    body: web::Bytes,
) -> Result<HttpResponse, DialectError> {
    let caller = writer_of(&req, &auth).await?;
    let request: argyle::CreateRequest = service_kit::problem::parse_json(&req, &body).map_err(argyle_error)?;
    // Argyle has no inviter: an invite is the API key's own, unless the key acts as an inviter.
    let inviter = Inviter {
        id: caller.inviter_id.clone().unwrap_or_else(|| caller.key_id.clone()),
        name: None,
        email: None,
        email_index: None,
    };
    let asked = request.clone();
    let command =
        argyle::create_command(request, inviter).map_err(|e| argyle_error(Problem::bad_request(e.field, e.message)))?;
    let meta = command_meta(&req, &caller, &body).map_err(argyle_error)?;
    let id = InviteId::from_uuid(Uuid::now_v7());
    let committed = writer
        .submit(TenantCommand::Invite { invite_id: id, command: InviteCommand::Create(Box::new(command)) }, meta)
        .await
        .map_err(|e| {
            // A rule of `events` names the native field: tell the client of the field it sent.
            let mut problem = problem_of(e);
            if let Some(native) = problem.field.take() {
                let field = argyle::create_field(&native, &asked);
                problem.detail = problem.detail.map(|d| d.replace(&native, &field));
                problem.field = Some(field);
            }
            argyle_error(problem)
        })?;
    let id = committed.changes[0].stream.invite_id().expect("an invite was created");
    let link = committed.invite.as_ref().map(|i| i.token.link(&state.public_url));
    Ok(answer(&state, &caller, id, &committed, StatusCode::CREATED, link).await)
}

/// `POST /v2/invites/{id}/revoke`: 200 with the revoked invite; another tenant's (or for an
/// inviter's key, another inviter's) is a 404 like a missing one.
#[post("/v2/invites/{id}/revoke")]
pub async fn revoke(
    req: HttpRequest,
    auth: web::Data<Authenticator>,
    state: web::Data<AppState>,
    writer: web::Data<WriterHandle>,
    id: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, DialectError> {
    let caller = writer_of(&req, &auth).await?;
    let id = InviteId::parse(&id).map_err(|_| argyle_error(Problem::bad_request("id", "Must be a valid UUID.")))?;
    let meta = command_meta(&req, &caller, &body).map_err(argyle_error)?;
    let command = TenantCommand::Invite { invite_id: id, command: InviteCommand::Revoke { reason: None } };
    let committed = writer.submit(command, meta).await.map_err(|e| argyle_error(problem_of(e)))?;
    Ok(answer(&state, &caller, id, &committed, StatusCode::OK, None).await)
}

/// The answer of a committed write: the invite object from the read model once it shows the
/// committed version, so that it is exactly what `GET /v2/invites` lists. The writer does not
/// keep what the object needs beyond the command (when the invite was created and each delivery
/// sent, `updated_at`), and the read model is the one place that does. The commit is durable
/// whatever happens next, so the answer is never an error: if the projection has not got there
/// within [`ANSWER_WAIT`], it is a 202 with the id and status the writer knows.
async fn answer(
    state: &AppState,
    caller: &Authenticated,
    id: InviteId,
    committed: &Committed,
    status: StatusCode,
    url: Option<String>,
) -> HttpResponse {
    let now_of_writer = committed.invite.as_ref().filter(|i| i.id == id);
    let version = committed.version_of(StreamId::Invite(id)).or(now_of_writer.map(|i| i.version)).unwrap_or(0);
    let sql = format!("SELECT {} FROM invites i WHERE i.tenant_id = $1 AND i.invite_id = $2", argyle::ROW_SQL);
    let deadline = Instant::now() + ANSWER_WAIT;
    loop {
        let row: Result<Option<Json<argyle::Row>>, _> = sqlx::query_scalar(&sql)
            .bind(caller.tenant_id.as_uuid())
            .bind(id.as_uuid())
            .fetch_optional(&state.pool)
            .await;
        match row {
            Ok(Some(Json(row))) if row.version as u64 >= version => {
                return HttpResponse::build(status).json(argyle::invite(&row, Utc::now(), url));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e, "cannot read the invite back for an Argyle answer"),
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let word = now_of_writer.and_then(|i| i.status.to_vendor(events::Vendor::Argyle));
    let mut body = json!({
        "id": id,
        "status": word,
        "detail": "Done; the invite object is not readable yet: find it with GET /v2/invites.",
    });
    if let Some(url) = url {
        body["url"] = json!(url);
    }
    HttpResponse::Accepted().json(body)
}
