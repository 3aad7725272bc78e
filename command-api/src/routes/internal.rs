//! Routes for rsvp's own services, never for clients (the gateway does not forward `/internal/`):
//! the dispatcher records here, through the one writer, what happened to each delivery it sends.
//! They take the operator token `RSVP_DISPATCHER_TOKEN` instead of an API key; without it set,
//! they answer 401 to everyone.

use super::problem_of;
use crate::writer::{CommandMeta, WriterHandle};
use actix_web::http::{header, StatusCode};
use actix_web::{post, web, HttpRequest, HttpResponse};
use events::{Actor, ActorKind, DeliveryId, DeliveryStatus, TenantCommand, TenantId};
use serde::Deserialize;
use serde_json::json;
use service_kit::problem::JsonBody;
use service_kit::Problem;
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// App data: the token the internal routes require (`None`: they are closed).
#[derive(Clone)]
pub struct DispatcherToken(pub Option<String>);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusReport {
    tenant_id: Uuid,
    status: DeliveryStatus,
    detail: Option<String>,
}

/// `POST /internal/v1/deliveries/{delivery_id}/status`: the dispatcher's report. 200 with
/// `changed` (false: the delivery already stood there, as after a dispatcher restart); a 409
/// when the domain refuses the step (the delivery is further on, or a send would begin after the
/// invite closed), with the domain's code.
#[post("/internal/v1/deliveries/{delivery_id}/status")]
pub async fn delivery_status(
    req: HttpRequest,
    token: web::Data<DispatcherToken>,
    writer: web::Data<WriterHandle>,
    id: web::Path<String>,
    body: JsonBody<StatusReport>,
) -> Result<HttpResponse, Problem> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(service_kit::credential::bearer_token);
    let allowed = match (&token.0, presented) {
        (Some(expected), Some(presented)) => bool::from(expected.as_bytes().ct_eq(presented.as_bytes())),
        _ => false,
    };
    if !allowed {
        return Err(Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "this route takes the dispatcher's token"));
    }
    let delivery_id = DeliveryId::parse(&id).map_err(|_| Problem::bad_request("delivery_id", "must be a UUID"))?;
    let JsonBody(report, _) = body;
    let meta = CommandMeta {
        tenant_id: TenantId::from_uuid(report.tenant_id),
        actor: Actor { kind: ActorKind::System, id: "dispatcher".to_owned() },
        correlation_id: Some(*delivery_id.as_uuid()),
        idempotency: None,
        legacy_request_hash: None,
        if_match: None,
    };
    let command = TenantCommand::ReportDelivery { delivery_id, status: report.status, detail: report.detail };
    let committed = writer.submit(command, meta).await.map_err(problem_of)?;
    Ok(HttpResponse::Ok().json(json!({ "changed": !committed.changes.is_empty() })))
}
