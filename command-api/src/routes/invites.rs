//! Invite commands.

use crate::startup::AppState;
use crate::writer::{CommandMeta, Committed, WriteError, WriterHandle};
use actix_web::http::{header, StatusCode};
use actix_web::{post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use events::{
    Actor, ActorKind, Command, CreateInvite, DefinitionId, InvitationType, InviteId, Inviter, Rejection, Scope, Target,
};
use serde::Deserialize;
use serde_json::json;
use service_kit::problem::JsonBody;
use service_kit::{Authenticated, Problem};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInviteRequest {
    /// Optional for inviter-scoped tokens, which name the inviter themselves.
    inviter: Option<Inviter>,
    targets: Vec<Target>,
    message: Option<String>,
    #[serde(default = "single_use")]
    invitation_type: InvitationKind,
    max_accepts: Option<u32>,
    expires_at: Option<DateTime<Utc>>,
    expires_in_days: Option<u32>,
    #[serde(default)]
    scopes: Vec<Scope>,
    #[serde(default)]
    reply_to: Vec<String>,
    #[serde(default)]
    metadata: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    template_variables: BTreeMap<String, String>,
    widget_id: Option<String>,
    flow_id: Option<String>,
    template_id: Option<String>,
    landing_url: Option<String>,
    definition_id: Option<Uuid>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum InvitationKind {
    SingleUse,
    MultiUse,
}

fn single_use() -> InvitationKind {
    InvitationKind::SingleUse
}

impl CreateInviteRequest {
    fn into_command(self, auth: &Authenticated, now: DateTime<Utc>) -> Result<CreateInvite, Problem> {
        let inviter = match (&auth.inviter_id, self.inviter) {
            (Some(id), Some(given)) if &given.id != id => {
                return Err(Problem::invalid_field("inviter.id", "an inviter token can only invite as its own inviter"))
            }
            (Some(id), given) => Inviter {
                id: id.clone(),
                name: given.as_ref().and_then(|g| g.name.clone()),
                email: given.and_then(|g| g.email),
            },
            (None, Some(given)) => given,
            (None, None) => return Err(Problem::invalid_field("inviter", "the inviter is required")),
        };
        let invitation_type = match (self.invitation_type, self.max_accepts) {
            (InvitationKind::SingleUse, Some(_)) => {
                return Err(Problem::invalid_field("max_accepts", "only a multi_use invitation takes max_accepts"))
            }
            (InvitationKind::SingleUse, None) => InvitationType::SingleUse,
            (InvitationKind::MultiUse, max_accepts) => InvitationType::MultiUse { max_accepts },
        };
        let expires_at = match (self.expires_at, self.expires_in_days) {
            (Some(_), Some(_)) => {
                return Err(Problem::invalid_field("expires_in_days", "give expires_at or expires_in_days, not both"))
            }
            (at, None) => at,
            (None, Some(days)) => Some(now + Duration::days(i64::from(days))),
        };
        Ok(CreateInvite {
            inviter,
            targets: self.targets,
            message: self.message,
            invitation_type,
            expires_at,
            scopes: self.scopes,
            reply_to: self.reply_to,
            metadata: self.metadata,
            template_variables: self.template_variables,
            widget_id: self.widget_id,
            flow_id: self.flow_id,
            template_id: self.template_id,
            landing_url: self.landing_url,
            definition_id: self.definition_id.map(DefinitionId::from_uuid),
        })
    }
}

/// `POST /v1/invites`: create an invitation. 201 once `InviteCreated` is durable in Kafka.
#[post("/v1/invites")]
pub async fn create(
    req: HttpRequest,
    auth: Authenticated,
    state: web::Data<AppState>,
    writer: web::Data<WriterHandle>,
    body: JsonBody<CreateInviteRequest>,
) -> Result<HttpResponse, Problem> {
    auth.require(service_kit::Scope::InvitesWrite)?;
    let command = body.0.into_command(&auth, Utc::now())?;
    let meta = command_meta(&req, &auth, InviteId::from_uuid(Uuid::now_v7()))?;
    let committed = writer.submit(Command::Create(command), meta).await.map_err(problem_of)?;
    Ok(created(&state, &committed))
}

fn created(state: &AppState, committed: &Committed) -> HttpResponse {
    let id = committed.invite_id;
    HttpResponse::build(StatusCode::CREATED)
        .insert_header((header::ETAG, format!("\"{}\"", committed.version)))
        .insert_header((header::LOCATION, format!("{}/v1/invites/{id}", state.query_api_url)))
        .json(json!({ "id": id, "version": committed.version }))
}

fn command_meta(req: &HttpRequest, auth: &Authenticated, invite_id: InviteId) -> Result<CommandMeta, Problem> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let correlation_id = match header("x-request-id") {
        Some(v) => Some(Uuid::parse_str(v).map_err(|_| Problem::bad_request("X-Request-Id", "must be a UUID"))?),
        None => Some(Uuid::now_v7()),
    };
    let idempotency_key = header("idempotency-key").map(str::to_owned);
    let actor = match &auth.inviter_id {
        Some(inviter) => Actor { kind: ActorKind::Inviter, id: inviter.clone() },
        None => Actor { kind: ActorKind::ApiKey, id: auth.key_id.clone() },
    };
    Ok(CommandMeta { tenant_id: auth.tenant_id, invite_id, actor, correlation_id, idempotency_key })
}

/// The one place where write failures become HTTP.
fn problem_of(error: WriteError) -> Problem {
    match error {
        WriteError::Rejected(r) => rejection_problem(&r),
        WriteError::NotFound => Problem::not_found("invite"),
        WriteError::Unavailable(reason) => {
            tracing::warn!(%reason, "write refused");
            Problem::unavailable("the event log cannot take writes right now; retry later")
        }
    }
}

fn rejection_problem(r: &Rejection) -> Problem {
    let status = if r.is_invalid_input() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::CONFLICT };
    let mut problem = Problem::new(status, r.code(), "the command was refused").with_detail(r.to_string());
    if let Some(field) = r.field() {
        problem = problem.with_field(field);
    }
    problem
}
