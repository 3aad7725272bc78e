//! HTTP routes of the command API, and what they share: the command metadata taken from a
//! request, and the one place where write failures become problem+json.

mod definitions;
mod health;
mod invites;
mod link;

use crate::writer::{CommandMeta, WriteError};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use events::{Actor, ActorKind, RejectionClass};
use service_kit::{Authenticated, Problem};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

pub struct AppState {
    pub query_api_url: String,
    /// Base URL of this API as clients reach it: the public invite links point here.
    pub public_url: String,
    pub pool: PgPool,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::openapi)
        .service(invites::create_batch)
        .service(invites::accept_many)
        .service(invites::create)
        .service(invites::send)
        .service(invites::resend)
        .service(invites::revoke)
        .service(invites::accept)
        .service(invites::decline)
        .service(invites::expire)
        .service(invites::engage)
        .service(invites::delivery_event)
        .service(definitions::create)
        .service(definitions::update)
        .service(definitions::list)
        .service(link::follow);
}

/// Who sends the command, its correlation id, and its idempotency key with the request's
/// fingerprint (method, path and body).
pub(crate) fn command_meta(req: &HttpRequest, auth: &Authenticated, body: &[u8]) -> Result<CommandMeta, Problem> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let correlation_id = match header("x-request-id") {
        Some(v) => Uuid::parse_str(v).map_err(|_| Problem::bad_request("X-Request-Id", "must be a UUID"))?,
        None => Uuid::now_v7(),
    };
    let idempotency = match header("idempotency-key") {
        None => None,
        Some(k) if k.is_empty() || k.len() > 200 => {
            return Err(Problem::bad_request("Idempotency-Key", "must be 1 to 200 characters"))
        }
        Some(k) => {
            let mut hash = Sha256::new();
            hash.update(req.method().as_str());
            hash.update(req.path());
            hash.update(body);
            let hex: String = hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
            Some((k.to_owned(), hex))
        }
    };
    let if_match =
        match header("if-match") {
            None => None,
            Some(v) => {
                Some(v.trim().trim_start_matches("W/").trim_matches('"').parse::<u64>().map_err(|_| {
                    Problem::bad_request("If-Match", "must be the invite's version, as its ETag gave it")
                })?)
            }
        };
    let actor = match &auth.inviter_id {
        Some(inviter) => Actor { kind: ActorKind::Inviter, id: inviter.clone() },
        None => Actor { kind: ActorKind::ApiKey, id: auth.key_id.clone() },
    };
    Ok(CommandMeta { tenant_id: auth.tenant_id, actor, correlation_id: Some(correlation_id), idempotency, if_match })
}

/// Write failures as HTTP: domain refusals 409/422/404/410 with their stable code, never 500.
pub(crate) fn problem_of(error: WriteError) -> Problem {
    match error {
        WriteError::Rejected(r) => {
            let status = match r.class() {
                RejectionClass::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
                RejectionClass::Conflict => StatusCode::CONFLICT,
                RejectionClass::NotFound => StatusCode::NOT_FOUND,
                RejectionClass::Gone => StatusCode::CONFLICT,
            };
            let mut problem = Problem::new(status, r.code(), "the command was refused").with_detail(r.to_string());
            if let Some(field) = r.field() {
                problem = problem.with_field(field);
            }
            if let events::Rejection::BatchRefused { failures } = &r {
                problem.detail = Some(
                    failures
                        .iter()
                        .map(|(id, why)| format!("{id}: {} ({why})", why.code()))
                        .collect::<Vec<_>>()
                        .join("; "),
                );
            }
            problem
        }
        WriteError::PreconditionFailed { current } => {
            Problem::new(StatusCode::PRECONDITION_FAILED, "version-mismatch", "the invite has moved on")
                .with_field("If-Match")
                .with_detail(format!("the invite is at version {current}"))
        }
        WriteError::IdempotencyMismatch => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency-key-reused",
            "the idempotency key was used for another request",
        )
        .with_field("Idempotency-Key"),
        WriteError::Unavailable(reason) => {
            tracing::warn!(%reason, "write refused");
            Problem::unavailable("the event log cannot take writes right now; retry later")
        }
    }
}
