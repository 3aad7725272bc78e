//! `GET /i/{token}`: the public invite link. No credentials: the unguessable token is the
//! credential. It records a click and redirects to the landing URL with the invitation id.

use super::AppState;
use crate::writer::{CommandMeta, WriteError, WriterHandle};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{get, web, HttpRequest, HttpResponse};
use events::{Actor, ActorKind, EngagementKind, LinkToken, Rejection, TenantCommand};
use uuid::Uuid;

fn page(status: StatusCode, title: &str, text: &str) -> HttpResponse {
    HttpResponse::build(status).content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body style=\"font-family:sans-serif;max-width:32rem;margin:4rem auto\"><h1>{title}</h1><p>{text}</p></body></html>"
    ))
}

#[get("/i/{token}")]
pub async fn follow(
    req: HttpRequest,
    state: web::Data<AppState>,
    writer: web::Data<WriterHandle>,
    token: web::Path<String>,
) -> HttpResponse {
    let token = LinkToken::new(token.into_inner());
    let (lookup, secrets) = (token.clone(), state.unsealer.master().secrets());
    let found = match writer.find(move |s| s.tenant_of_token(&lookup, &secrets)).await {
        Ok(found) => found,
        Err(_) => {
            return page(StatusCode::SERVICE_UNAVAILABLE, "Try again shortly", "This link cannot be opened right now.")
        }
    };
    let Some(tenant) = found else {
        return page(StatusCode::NOT_FOUND, "Invitation not found", "This invitation link is not valid.");
    };
    // The user agent as the click's source, cut to what the domain takes for a source.
    let source = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().filter(|c| !c.is_control()).take(events::validate::MAX_NAME).collect());
    let meta = CommandMeta {
        tenant_id: tenant,
        actor: Actor { kind: ActorKind::Public, id: "link".into() },
        correlation_id: Some(Uuid::now_v7()),
        idempotency: None,
        legacy_request_hash: None,
        if_match: None,
    };
    let command = TenantCommand::EngageByToken { token: token.clone(), kind: EngagementKind::Click, source };
    match writer.submit(command, meta).await {
        Ok(committed) => {
            let id = events::InviteId::from_uuid(committed.changes[0].stream.as_uuid().to_owned());
            let secrets = state.unsealer.master().secrets();
            let landing = writer
                .read(tenant, move |s| {
                    s.tenant(tenant)
                        .and_then(|t| t.invite_by_token(&token, &secrets))
                        .and_then(|(_, i)| i.created.landing_url.clone())
                })
                .await
                .ok()
                .flatten();
            // The invite's own landing URL, else the tenant's; one that is not a valid landing
            // URL (written before the rule) is passed over rather than answered with a 500.
            let mut redirect = landing.and_then(|url| events::landing_redirect(&url, id));
            if redirect.is_none() {
                redirect =
                    sqlx::query_scalar::<_, Option<String>>("SELECT landing_url FROM tenants WHERE tenant_id = $1")
                        .bind(tenant.as_uuid())
                        .fetch_optional(&state.pool)
                        .await
                        .ok()
                        .flatten()
                        .flatten()
                        .and_then(|url| events::landing_redirect(&url, id));
            }
            match redirect.and_then(|url| HeaderValue::from_str(&url).ok()) {
                Some(location) => HttpResponse::Found().insert_header((header::LOCATION, location)).finish(),
                None => page(StatusCode::OK, "You are invited", &format!("Your invitation id is {id}.")),
            }
        }
        Err(WriteError::Rejected(
            Rejection::InviteRevoked | Rejection::InviteExpired | Rejection::InviteClosed { .. },
        )) => page(
            StatusCode::GONE,
            "This invitation is no longer valid",
            "It was withdrawn, has expired or was used already.",
        ),
        Err(WriteError::Rejected(_)) => {
            page(StatusCode::NOT_FOUND, "Invitation not found", "This invitation link is not valid.")
        }
        Err(_) => page(StatusCode::SERVICE_UNAVAILABLE, "Try again shortly", "This link cannot be opened right now."),
    }
}
