//! The Vortex dialect's writes: create, accept (one or several, all or none), revoke one, revoke a
//! whole scope, reinvite. Each is the native command (`dialects::vortex` maps the request), so a
//! Vortex write is the same events as a native one. The key comes in `x-api-key` only; errors are
//! Vortex's JSON.
//!
//! Writes that Vortex answers with the invitation (accept, revoke, reinvite) read it, once the
//! command is durable, from the query API's Vortex read with `X-Min-Version` (read-your-writes):
//! one mapping for reads and answers alike. Should that read fail, the write still happened:
//! the answer is then 202 with the id and the status word the writer knows.

use super::{command_meta, problem_of, AppState};
use crate::writer::{Committed, WriteError, WriterHandle};
use actix_web::http::StatusCode;
use actix_web::{delete, post, web, HttpRequest, HttpResponse};
use dialects::vortex;
use events::{
    DeliveryMethod, InviteCommand, InviteId, Rejection, StreamId, TargetKind, TenantCommand, TenantId, Vendor,
};
use serde_json::{json, Value};
use service_kit::{Authenticated, Authenticator, Problem, Scope};
use std::sync::LazyLock;
use std::time::Duration;
use uuid::Uuid;

/// A Vortex error: the problem's status and headers, Vortex's body.
fn error(p: Problem) -> HttpResponse {
    let message = vortex::error_message(p.status, p.detail.as_deref(), &p.title);
    p.response_with(&vortex::error_body(p.status, &p.code, &message, p.field.as_deref()))
}

async fn authenticate(req: &HttpRequest, auth: &Authenticator) -> Result<Authenticated, Problem> {
    let caller = auth.authenticate_api_key_header(req).await?;
    caller.require(Scope::InvitesWrite)?;
    Ok(caller)
}

/// The request body, read as the native routes read theirs (413 past the limit, 415 not JSON,
/// 400 naming the field), with Vortex's field names.
fn body<T: serde::de::DeserializeOwned>(req: &HttpRequest, bytes: &[u8]) -> Result<T, Problem> {
    service_kit::problem::parse_json(req, bytes).map_err(|p| {
        // A field missing inside an object is named by its whole path (`target.value`).
        let missing: Option<String> = p
            .detail
            .as_deref()
            .and_then(|d| d.strip_prefix("missing field `"))
            .and_then(|d| d.split('`').next())
            .map(str::to_owned);
        match (p.field.clone(), missing) {
            (Some(parent), Some(name)) if parent != name && !parent.ends_with(&format!(".{name}")) => {
                p.with_field(format!("{parent}.{name}"))
            }
            _ => p,
        }
    })
}

fn payload(bytes: Result<web::Bytes, actix_web::Error>) -> Result<web::Bytes, Problem> {
    bytes.map_err(|e| {
        if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "the request body is too large")
                .with_field("body")
        } else {
            Problem::bad_request("body", e.to_string())
        }
    })
}

/// How a delivery reaches a target of this kind.
fn invitation_id(id: &str) -> Result<InviteId, Problem> {
    InviteId::parse(id).map_err(|_| Problem::bad_request("invitationId", "not an invitation id"))
}

fn method_for(kind: TargetKind) -> DeliveryMethod {
    match kind {
        TargetKind::Email => DeliveryMethod::Email,
        TargetKind::Phone => DeliveryMethod::Sms,
        TargetKind::Internal => DeliveryMethod::InApp,
        TargetKind::Share => DeliveryMethod::Link,
    }
}

/// `POST /api/v1/invitations`: creates the invitation and requests its delivery, by the
/// target's kind, in the same command (one decision, one transaction).
#[post("/api/v1/invitations")]
pub async fn create(
    req: HttpRequest,
    auth: web::Data<Authenticator>,
    state: web::Data<AppState>,
    writer: web::Data<WriterHandle>,
    bytes: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    let created = async {
        let caller = authenticate(&req, &auth).await?;
        let bytes = payload(bytes)?;
        let request: vortex::CreateRequest = body(&req, &bytes)?;
        let mut command = vortex::create_command(request, caller.inviter_id.as_deref())
            .map_err(|e| Problem::invalid_field(e.field, e.reason))?;
        command.send = command.targets.first().map(|t| method_for(t.kind));
        let meta = command_meta(&req, &caller, &bytes)?;
        let id = InviteId::from_uuid(Uuid::now_v7());
        let committed = writer
            .submit(TenantCommand::Invite { invite_id: id, command: InviteCommand::Create(Box::new(command)) }, meta)
            .await
            .map_err(problem_of)?;
        // The writer answers a create (and its replay) with the invite it made; should it not,
        // the create is durable all the same, and a 5xx would invite a second one.
        let id = committed.changes.first().and_then(|c| c.stream.invite_id());
        let Some(now) = committed.invite.as_ref().filter(|i| Some(i.id) == id) else {
            tracing::warn!("a create was answered without its invite");
            return Ok(HttpResponse::Accepted().json(json!({ "id": id, "status": "queued" })));
        };
        let id = now.id;
        // The public link carries the secret token: shown here, to the creator, only.
        let short_link = now.token.link(&state.public_url);
        let status = now.status.to_vendor(Vendor::Vortex).unwrap_or("queued");
        // The creation time as every read shows it (the event's); the id's own time (UUIDv7,
        // minted just before) should the read fail.
        let created_at = match read(&req, &state, id, now.version).await {
            Some(invitation) => serde_json::from_slice::<Value>(&invitation)
                .ok()
                .and_then(|i| i["createdAt"].as_str().map(str::to_owned)),
            None => None,
        }
        .unwrap_or_else(|| vortex::time(minted_at(id)));
        let answer = vortex::Created { id: *id.as_uuid(), short_link, status, created_at };
        Ok::<_, Problem>(HttpResponse::Created().json(answer))
    };
    created.await.unwrap_or_else(error)
}

fn minted_at(id: InviteId) -> chrono::DateTime<chrono::Utc> {
    id.as_uuid()
        .get_timestamp()
        .and_then(|t| {
            let (secs, nanos) = t.to_unix();
            chrono::DateTime::from_timestamp(secs as i64, nanos)
        })
        .unwrap_or_default()
}

/// The invitation as the query API's Vortex read shows it once it has reached `version`, with
/// the caller's own key; `None` when that read fails.
/// The body is passed on as the query API wrote it (its fields in the seed's order).
async fn read(req: &HttpRequest, state: &AppState, id: InviteId, version: u64) -> Option<web::Bytes> {
    static HTTP: LazyLock<reqwest::Client> = LazyLock::new(|| {
        reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("a plain HTTP client builds")
    });
    let key = req.headers().get("x-api-key")?.to_str().ok()?;
    let response = HTTP
        .get(format!("{}/api/v1/invitations/{id}", state.query_api_url))
        .header("x-api-key", key)
        .header("x-min-version", version.to_string())
        .send()
        .await
        .map_err(|e| tracing::warn!(error = %e, "cannot read the invitation back from the query API"))
        .ok()?;
    if !response.status().is_success() {
        tracing::warn!(status = %response.status(), "cannot read the invitation back from the query API");
        return None;
    }
    response.bytes().await.ok()
}

/// The answer to a write on one invitation: the invitation it left, else 202 with what the
/// writer knows.
async fn answer(
    req: &HttpRequest,
    state: &AppState,
    writer: &WriterHandle,
    tenant: TenantId,
    id: InviteId,
    committed: &Committed,
) -> HttpResponse {
    let version = committed.version_of(StreamId::Invite(id)).or(committed.invite.as_ref().map(|i| i.version));
    if let Some(invitation) = read(req, state, id, version.unwrap_or(1)).await {
        return HttpResponse::Ok().content_type("application/json").body(invitation);
    }
    // The writer's word for it: the status in Vortex's words, else (deactivated, expired) the
    // stage it had reached, as the reads show it.
    let now = chrono::Utc::now();
    let status = writer
        .read(tenant, move |s| {
            let invite = s.tenant(tenant)?.invite(id)?;
            invite.status_at(now).to_vendor(Vendor::Vortex).or(invite.stage.to_vendor(Vendor::Vortex))
        })
        .await
        .ok()
        .flatten();
    HttpResponse::Accepted().json(json!({ "id": id, "status": status }))
}

/// Runs one command on one invitation of the caller and answers with the invitation.
async fn on_invitation(
    req: &HttpRequest,
    caller: &Authenticated,
    state: &AppState,
    writer: &WriterHandle,
    id: InviteId,
    command: InviteCommand,
) -> Result<HttpResponse, Problem> {
    let meta = command_meta(req, caller, &[])?;
    let committed = writer.submit(TenantCommand::Invite { invite_id: id, command }, meta).await.map_err(problem_of)?;
    Ok(answer(req, state, writer, caller.tenant_id, id, &committed).await)
}

/// `DELETE /api/v1/invitations/{id}`: revokes it (it reads `deactivated: true` from then on).
#[delete("/api/v1/invitations/{id}")]
pub async fn revoke(
    req: HttpRequest,
    auth: web::Data<Authenticator>,
    state: web::Data<AppState>,
    writer: web::Data<WriterHandle>,
    id: web::Path<String>,
) -> HttpResponse {
    let revoked = async {
        let caller = authenticate(&req, &auth).await?;
        let id = invitation_id(&id)?;
        on_invitation(&req, &caller, &state, &writer, id, InviteCommand::Revoke { reason: None }).await
    };
    revoked.await.unwrap_or_else(error)
}

/// `POST /api/v1/invitations/{id}/reinvite`: delivers it again (the first delivery if it was
/// never sent), by its first target's kind, within the definition's `max_send_count`.
#[post("/api/v1/invitations/{id}/reinvite")]
pub async fn reinvite(
    req: HttpRequest,
    auth: web::Data<Authenticator>,
    state: web::Data<AppState>,
    writer: web::Data<WriterHandle>,
    id: web::Path<String>,
) -> HttpResponse {
    let reinvited = async {
        let caller = authenticate(&req, &auth).await?;
        let invite = invitation_id(&id)?;
        // Send or resend, and how: the invite's own state says. The command that follows is
        // decided (and authorized) on its own, so a change in between is refused, not lost.
        let tenant: TenantId = caller.tenant_id;
        let found = writer
            .read(tenant, move |s| {
                let i = s.tenant(tenant)?.invite(invite)?;
                Some((i.counters.sends, i.created.targets.first().map(|t| t.kind)))
            })
            .await
            .map_err(problem_of)?;
        let (sends, kind) = found.unwrap_or((1, None));
        let method = method_for(kind.unwrap_or(TargetKind::Email));
        let command = match sends {
            0 => InviteCommand::Send { method, target: None },
            _ => InviteCommand::Resend { method, target: None },
        };
        on_invitation(&req, &caller, &state, &writer, invite, command).await
    };
    reinvited.await.unwrap_or_else(error)
}

/// `POST /api/v1/invitations/accept`: every named invitation accepted as one target, all or
/// none (the native multi-accept); answers with the first one.
#[post("/api/v1/invitations/accept")]
pub async fn accept(
    req: HttpRequest,
    auth: web::Data<Authenticator>,
    state: web::Data<AppState>,
    writer: web::Data<WriterHandle>,
    bytes: Result<web::Bytes, actix_web::Error>,
) -> HttpResponse {
    let accepted = async {
        let caller = authenticate(&req, &auth).await?;
        let bytes = payload(bytes)?;
        let request: vortex::AcceptRequest = body(&req, &bytes)?;
        let accept = vortex::accept_command(request).map_err(|e| Problem::bad_request(e.field, e.reason))?;
        let ids: Vec<InviteId> = accept.invite_ids.iter().map(|id| InviteId::from_uuid(*id)).collect();
        let meta = command_meta(&req, &caller, &bytes)?;
        let command = TenantCommand::AcceptMany {
            target: accept.target,
            invite_ids: ids.clone(),
            accepted_by: accept.accepted_by,
        };
        let committed = writer.submit(command, meta).await.map_err(|e| match e {
            // One refused invitation refuses all: say which, and why, in Vortex's words.
            WriteError::Rejected(Rejection::BatchRefused { failures }) if failures.len() == ids.len() => {
                let all_missing = failures.iter().all(|(_, r)| *r == Rejection::InviteNotFound);
                let p = problem_of(WriteError::Rejected(Rejection::BatchRefused { failures }));
                if all_missing {
                    Problem::not_found("invitation").with_detail(p.detail.unwrap_or_default())
                } else {
                    p
                }
            }
            e => problem_of(e),
        })?;
        Ok::<_, Problem>(answer(&req, &state, &writer, caller.tenant_id, ids[0], &committed).await)
    };
    accepted.await.unwrap_or_else(error)
}

/// `DELETE /api/v1/invitations/by-scope/{scopeType}/{scope}`: revokes every open invitation of
/// the scope (an inviter's key: its own) in one command, one transaction; answers with their ids.
#[delete("/api/v1/invitations/by-scope/{scope_type}/{scope}")]
pub async fn revoke_scope(
    req: HttpRequest,
    auth: web::Data<Authenticator>,
    writer: web::Data<WriterHandle>,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let revoked = async {
        let caller = authenticate(&req, &auth).await?;
        let (scope_type, scope_id) = path.into_inner();
        let meta = command_meta(&req, &caller, &[])?;
        let command =
            TenantCommand::RevokeByScope { scope_type, scope_id, inviter: caller.inviter_id.clone(), reason: None };
        let committed = writer.submit(command, meta).await.map_err(|e| {
            let p = problem_of(e);
            // The path's names for the command's fields.
            match p.field.as_deref() {
                Some("scope_id") => p.with_field("scope"),
                Some("scope_type") => p.with_field("scopeType"),
                _ => p,
            }
        })?;
        let ids: Vec<Uuid> =
            committed.changes.iter().filter_map(|c| c.stream.invite_id()).map(|id| *id.as_uuid()).collect();
        Ok::<_, Problem>(HttpResponse::Ok().json(json!({ "revoked": ids })))
    };
    revoked.await.unwrap_or_else(error)
}
