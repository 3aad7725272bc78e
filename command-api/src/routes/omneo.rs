//! The Omneo dialect's writes (`dialects::omneo`): `POST /v1/me/invites`, `/{id}/revoke` and
//! `/{id}/resend`, each the native command of the calling inviter (an inviter-scoped key),
//! answered in Omneo's shape. Errors are Omneo's JSON (`{message}`, `{message, errors}`), never
//! problem+json.

use super::{command_meta, problem_of, AppState};
use crate::writer::WriterHandle;
use actix_web::http::StatusCode;
use actix_web::{post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use dialects::omneo::{self, DefinitionFacts, Error, InviteFacts};
use events::{DeliveryMethod, InviteCommand, InviteId, Inviter, StreamId, TenantCommand, TenantId};
use service_kit::omneo::{respond, respond_problem};
use service_kit::{Authenticated, Scope};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long an answer waits for the projector to show what the command did (it takes
/// milliseconds when healthy); past it, the answer comes from the writer's state.
const READ_BACK: Duration = Duration::from_secs(5);

async fn caller(req: &HttpRequest) -> Result<(Authenticated, String), HttpResponse> {
    let (auth, inviter) = service_kit::omneo::authenticate(req).await?;
    auth.require(Scope::InvitesWrite).map_err(respond_problem)?;
    Ok((auth, inviter))
}

/// `POST /v1/me/invites`: created under the eligible definition and sent by email at once.
#[post("/v1/me/invites")]
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    writer: web::Data<WriterHandle>,
    body: web::Bytes,
) -> HttpResponse {
    let (auth, inviter) = match caller(&req).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return respond(Error::message(400, "The request body is not valid JSON."));
    };
    let tenant = auth.tenant_id;
    let who = inviter.clone();
    // The tenant's definitions as the writer holds them (the authority on quotas and windows).
    let definitions = writer
        .read(tenant, move |s| {
            let Some(t) = s.tenant(tenant) else { return Vec::new() };
            let mut all: Vec<DefinitionFacts> = t
                .definitions()
                .map(|(id, d)| DefinitionFacts {
                    id,
                    handle: d.rules.handle.clone(),
                    starts_at: d.rules.starts_at,
                    ends_at: d.rules.ends_at,
                    max_invites_per_inviter: d.rules.max_invites_per_inviter,
                    created_by_caller: d
                        .rules
                        .max_invites_per_inviter
                        .zip(t.remaining_quota(id, &who))
                        .map_or(0, |(max, left)| max - left),
                })
                .collect();
            all.sort_by_key(|d| *d.id.as_uuid());
            all
        })
        .await;
    let definitions = match definitions {
        Ok(d) => d,
        Err(e) => return respond_problem(problem_of(e)),
    };
    let definition = omneo::eligible(&definitions, Utc::now()).map(|(_, d)| d.id);
    let mut command = match omneo::create_command(&json, definition) {
        Ok(c) => c,
        Err(e) => return respond(e),
    };
    command.inviter = Some(Inviter { id: inviter.clone(), name: None, email: None, email_index: None });
    let meta = match command_meta(&req, &auth, &body) {
        Ok(m) => m,
        Err(p) => return respond_problem(p),
    };
    let id = InviteId::from_uuid(Uuid::now_v7());
    let command = TenantCommand::Invite { invite_id: id, command: InviteCommand::Create(Box::new(command)) };
    let committed = match writer.submit(command, meta).await {
        Ok(c) => c,
        Err(e) => return respond_problem(problem_of(e)),
    };
    // A replayed Idempotency-Key answers with the invite it created the first time.
    let id = committed.changes.first().and_then(|c| c.stream.invite_id()).unwrap_or(id);
    let version = committed.version_of(StreamId::Invite(id)).unwrap_or(1);
    let facts = read_back(&state, &writer, tenant, &inviter, id, version).await;
    HttpResponse::Created().json(omneo::one(&facts, Utc::now()))
}

/// `POST /v1/me/invites/{id}/revoke`: `{data: invite}` with `revoked_at`.
#[post("/v1/me/invites/{id}/revoke")]
pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    writer: web::Data<WriterHandle>,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    on_invite(req, state, writer, &id, body, InviteCommand::Revoke { reason: None }).await
}

/// `POST /v1/me/invites/{id}/resend`: 202 once the delivery is recorded; refused once the
/// invite's `send_count` reached its definition's `max_send_count`.
#[post("/v1/me/invites/{id}/resend")]
pub async fn resend(
    req: HttpRequest,
    state: web::Data<AppState>,
    writer: web::Data<WriterHandle>,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    let command = InviteCommand::Resend { method: DeliveryMethod::Email, target: None };
    on_invite(req, state, writer, &id, body, command).await
}

async fn on_invite(
    req: HttpRequest,
    state: web::Data<AppState>,
    writer: web::Data<WriterHandle>,
    id: &str,
    body: web::Bytes,
    command: InviteCommand,
) -> HttpResponse {
    let (auth, inviter) = match caller(&req).await {
        Ok(found) => found,
        Err(response) => return response,
    };
    // Not an id: no such invite, as Omneo answers.
    let Ok(id) = InviteId::parse(id) else { return respond(Error::not_found()) };
    let meta = match command_meta(&req, &auth, &body) {
        Ok(m) => m,
        Err(p) => return respond_problem(p),
    };
    let is_resend = matches!(command, InviteCommand::Resend { .. });
    // An inviter's key reaches its own invites only (the writer checks it with the command).
    let committed = match writer.submit(TenantCommand::Invite { invite_id: id, command }, meta).await {
        Ok(c) => c,
        Err(e) => return respond_problem(problem_of(e)),
    };
    if is_resend {
        return HttpResponse::build(StatusCode::ACCEPTED).json(omneo::resent());
    }
    let version = committed.version_of(StreamId::Invite(id)).or(committed.invite.as_ref().map(|i| i.version));
    let facts = read_back(&state, &writer, auth.tenant_id, &inviter, id, version.unwrap_or(1)).await;
    HttpResponse::Ok().json(omneo::one(&facts, Utc::now()))
}

/// The invite as the read model shows it once it reached `version` (the times of its events
/// live there). When the projector is slower than [`READ_BACK`], the writer's state fills in
/// what changed, with the time of the answer for the event just recorded.
async fn read_back(
    state: &AppState,
    writer: &WriterHandle,
    tenant: TenantId,
    inviter: &str,
    id: InviteId,
    version: u64,
) -> InviteFacts {
    let deadline = Instant::now() + READ_BACK;
    let mut last = None;
    loop {
        match service_kit::omneo::invites(&state.pool, tenant, inviter, Some(*id.as_uuid())).await {
            Ok(mut rows) => match rows.pop() {
                Some((facts, v)) if v >= version => return facts,
                Some((facts, _)) => last = Some(facts),
                None => {}
            },
            Err(e) => tracing::warn!(error = ?e, "cannot read the invite back"),
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let now = Utc::now();
    let current = writer
        .read(tenant, move |s| {
            let t = s.tenant(tenant)?;
            let i = t.invite(id)?;
            let (stored, open) = i.stored_status();
            let handle = i.created.definition_id.and_then(|d| t.definition(d)).map(|d| d.rules.handle.clone());
            let email = i.created.targets.iter().find(|t| t.kind == events::TargetKind::Email).map(|t| t.value.clone());
            Some((stored, open, i.counters.sends, i.created.expires_at, handle, email, i.created.inviter.id.clone()))
        })
        .await
        .ok()
        .flatten();
    let Some((stored, open, sends, expires_at, handle, email, inviter_id)) = current else {
        // Neither shows it (the writer lost its lease meanwhile): what the command named.
        return last.unwrap_or_else(|| placeholder(id, inviter, now));
    };
    let mut facts = last.unwrap_or_else(|| placeholder(id, &inviter_id, now));
    let stamp = |at: Option<DateTime<Utc>>, now_in: bool| if now_in { at.or(Some(now)) } else { at };
    facts.accepted_at = stamp(facts.accepted_at, stored == events::InviteStatus::Accepted);
    facts.declined_at = stamp(facts.declined_at, stored == events::InviteStatus::Declined);
    facts.revoked_at = stamp(facts.revoked_at, stored == events::InviteStatus::Revoked);
    InviteFacts {
        stored_status: stored,
        open,
        send_count: sends,
        expires_at,
        definition_handle: handle,
        recipient_email: email,
        ..facts
    }
}

fn placeholder(id: InviteId, inviter: &str, now: DateTime<Utc>) -> InviteFacts {
    InviteFacts {
        id: *id.as_uuid(),
        inviter_id: inviter.to_owned(),
        recipient_email: None,
        stored_status: events::InviteStatus::Created,
        open: true,
        send_count: 0,
        invited_at: now,
        expires_at: None,
        accepted_at: None,
        declined_at: None,
        revoked_at: None,
        definition_handle: None,
    }
}
