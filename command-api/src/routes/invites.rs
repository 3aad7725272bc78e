//! Invite commands: create (one or a batch), send/resend, revoke, accept (one or several for a
//! target), decline, expire, and delivery provider callbacks.

use super::{command_meta, problem_of, AppState};
use crate::writer::{Committed, WriterHandle};
use actix_web::http::{header, StatusCode};
use actix_web::{post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use events::{
    CreateInvite, DefinitionId, DeliveryId, DeliveryMethod, DeliveryStatus, InviteCommand, InviteId, Inviter, Scope,
    StreamId, Target, TenantCommand,
};
use serde::Deserialize;
use serde_json::{json, Value};
use service_kit::problem::JsonBody;
use service_kit::{Authenticated, Problem};
use std::collections::BTreeMap;
use uuid::Uuid;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInviteRequest {
    /// Optional for inviter-scoped tokens, which name the inviter themselves.
    inviter: Option<Inviter>,
    targets: Vec<Target>,
    #[serde(default)]
    recipient_names: Vec<String>,
    message: Option<String>,
    #[serde(default)]
    invitation_type: InvitationKind,
    #[serde(default, deserialize_with = "service_kit::whole::option_u32")]
    max_accepts: Option<u32>,
    expires_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "service_kit::whole::option_u32")]
    expires_in_days: Option<u32>,
    #[serde(default)]
    scopes: Vec<Scope>,
    #[serde(default)]
    reply_to: Vec<String>,
    #[serde(default)]
    metadata: BTreeMap<String, Value>,
    /// The metadata keys whose values are personal data (sealed, erasable).
    #[serde(default)]
    personal_metadata: Vec<String>,
    #[serde(default)]
    template_variables: BTreeMap<String, String>,
    widget_id: Option<String>,
    flow_id: Option<String>,
    template_id: Option<String>,
    landing_url: Option<String>,
    definition_id: Option<Uuid>,
    /// Send right away with this method (the first delivery).
    send: Option<DeliveryMethod>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
enum InvitationKind {
    #[default]
    SingleUse,
    MultiUse,
}

impl CreateInviteRequest {
    fn into_command(self, auth: &Authenticated) -> Result<CreateInvite, Problem> {
        let inviter = match (&auth.inviter_id, self.inviter) {
            (Some(id), Some(given)) if &given.id != id => {
                return Err(Problem::invalid_field("inviter.id", "an inviter token invites as its own inviter only"))
            }
            (Some(id), given) => Some(Inviter {
                id: id.clone(),
                name: given.as_ref().and_then(|g| g.name.clone()),
                email: given.and_then(|g| g.email),
                email_index: None,
            }),
            (None, given) => given,
        };
        Ok(CreateInvite {
            inviter,
            targets: self.targets,
            recipient_names: self.recipient_names,
            message: self.message,
            multi_use: matches!(self.invitation_type, InvitationKind::MultiUse),
            max_accepts: self.max_accepts,
            expires_at: self.expires_at,
            expires_in_days: self.expires_in_days,
            scopes: self.scopes,
            reply_to: self.reply_to,
            metadata: self.metadata,
            template_variables: self.template_variables,
            personal_metadata: self.personal_metadata,
            widget_id: self.widget_id,
            flow_id: self.flow_id,
            template_id: self.template_id,
            landing_url: self.landing_url,
            definition_id: self.definition_id.map(DefinitionId::from_uuid),
            source: None,
            subtype: None,
            send: self.send,
        })
    }
}

/// `POST /v1/invites`: 201 once `InviteCreated` (and `InviteSent`, with `send`: one command, one
/// transaction, replayed whole by its `Idempotency-Key`) is durable.
#[post("/v1/invites")]
pub async fn create(
    req: HttpRequest,
    auth: Authenticated,
    state: web::Data<AppState>,
    writer: web::Data<WriterHandle>,
    body: JsonBody<CreateInviteRequest>,
) -> Result<HttpResponse, Problem> {
    auth.require(service_kit::Scope::InvitesWrite)?;
    let JsonBody(request, raw) = body;
    let command = request.into_command(&auth)?;
    let id = InviteId::from_uuid(Uuid::now_v7());
    let meta = command_meta(&req, &auth, &raw)?;
    let committed = writer
        .submit(TenantCommand::Invite { invite_id: id, command: InviteCommand::Create(Box::new(command)) }, meta)
        .await
        .map_err(problem_of)?;
    let id = committed.changes[0].stream.invite_id().expect("an invite was created");
    // The public link: whoever holds it can open the invitation. It comes with the commit: a
    // second trip to the writer could fail (the lease moved) after the invite was created.
    let link = committed.invite.as_ref().map(|i| i.token.link(&state.public_url));
    Ok(invite_response(&state, StatusCode::CREATED, id, &committed, link))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// Objects: one that is not a create gets its own problem, the others go on.
    invites: Vec<serde_json::Map<String, Value>>,
}

/// `POST /v1/invites/batch`: up to 1000 creates, each with its own result; one bad item does not
/// stop the others. The items go to the writer together and land in the same few transactions.
#[post("/v1/invites/batch")]
pub async fn create_batch(
    req: HttpRequest,
    auth: Authenticated,
    writer: web::Data<WriterHandle>,
    body: JsonBody<BatchRequest>,
) -> Result<HttpResponse, Problem> {
    auth.require(service_kit::Scope::InvitesWrite)?;
    let items = body.0.invites;
    if items.is_empty() || items.len() > 1000 {
        return Err(Problem::invalid_field("invites", "give 1 to 1000 invites"));
    }
    let base = command_meta(&req, &auth, &body.1)?;
    let submissions = items.into_iter().enumerate().map(|(i, item)| {
        let (writer, auth, mut meta) = (writer.clone(), auth.clone(), base.clone());
        async move {
            let prefix = |p: Problem| {
                let field = p.field.clone().map_or(format!("invites[{i}]"), |f| format!("invites[{i}].{f}"));
                p.with_field(field)
            };
            let request: CreateInviteRequest = serde_json::from_value(Value::Object(item))
                .map_err(|e| prefix(Problem::bad_request("body", e.to_string())))?;
            let command = request.into_command(&auth).map_err(prefix)?;
            // Each item gets its own key derived from the batch's, so a replayed batch replays all.
            meta.idempotency = meta.idempotency.map(|(k, h)| (format!("{k}#{i}"), h));
            let id = InviteId::from_uuid(Uuid::now_v7());
            let command = TenantCommand::Invite { invite_id: id, command: InviteCommand::Create(Box::new(command)) };
            writer.submit(command, meta).await.map_err(|e| prefix(problem_of(e)))
        }
    });
    let results = futures::future::join_all(submissions).await;
    let body: Vec<Value> = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| match r {
            Ok(c) => json!({
                "index": i,
                "status": 201,
                "id": c.changes[0].stream.as_uuid(),
                "version": c.changes[0].version,
            }),
            Err(p) => json!({ "index": i, "status": p.status, "problem": p }),
        })
        .collect();
    let created = body.iter().filter(|r| r["status"] == 201).count();
    Ok(HttpResponse::Ok().json(json!({ "created": created, "failed": body.len() - created, "results": body })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    #[serde(default = "email")]
    method: DeliveryMethod,
    target: Option<String>,
}

fn email() -> DeliveryMethod {
    DeliveryMethod::Email
}

/// An engagement seen by the client (a view in its app, a share, a link preview): what the public
/// link records for clicks, reported directly.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngagementRequest {
    kind: events::EngagementKind,
    source: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonRequest {
    reason: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    accepted_by: Option<String>,
    target: Option<String>,
}

/// Runs one command on one invite of the caller's tenant (inviter keys: their own invites).
async fn on_invite(
    req: &HttpRequest,
    auth: &Authenticated,
    state: &AppState,
    writer: &WriterHandle,
    id: &str,
    raw: &[u8],
    command: InviteCommand,
    status: StatusCode,
) -> Result<HttpResponse, Problem> {
    auth.require(service_kit::Scope::InvitesWrite)?;
    let id = InviteId::parse(id).map_err(|_| Problem::bad_request("id", "must be a UUID"))?;
    // An inviter's key reaches its own invites only: the writer checks it with the command
    // (`Tenant::authorize`), for this route as for every other write.
    let meta = command_meta(req, auth, raw)?;
    let committed = writer.submit(TenantCommand::Invite { invite_id: id, command }, meta).await.map_err(problem_of)?;
    Ok(invite_response(state, status, id, &committed, None))
}

/// A route that runs one command on one invite: the body becomes the command.
macro_rules! invite_route {
    ($name:ident, $path:literal, $body:ty, $status:expr, |$b:ident| $command:expr) => {
        #[post($path)]
        pub async fn $name(
            req: HttpRequest,
            auth: Authenticated,
            state: web::Data<AppState>,
            writer: web::Data<WriterHandle>,
            id: web::Path<String>,
            body: JsonBody<$body>,
        ) -> Result<HttpResponse, Problem> {
            let JsonBody($b, raw) = body;
            on_invite(&req, &auth, &state, &writer, &id, &raw, $command, $status).await
        }
    };
}

invite_route!(send, "/v1/invites/{id}/send", SendRequest, StatusCode::ACCEPTED, |b| InviteCommand::Send {
    method: b.method,
    target: b.target
});
invite_route!(resend, "/v1/invites/{id}/resend", SendRequest, StatusCode::ACCEPTED, |b| InviteCommand::Resend {
    method: b.method,
    target: b.target
});
invite_route!(accept, "/v1/invites/{id}/accept", AcceptRequest, StatusCode::OK, |b| InviteCommand::Accept {
    accepted_by: b.accepted_by,
    target: b.target
});
invite_route!(revoke, "/v1/invites/{id}/revoke", ReasonRequest, StatusCode::OK, |b| InviteCommand::Revoke {
    reason: b.reason
});
invite_route!(decline, "/v1/invites/{id}/decline", ReasonRequest, StatusCode::OK, |b| InviteCommand::Decline {
    reason: b.reason
});
invite_route!(engage, "/v1/invites/{id}/engagements", EngagementRequest, StatusCode::OK, |b| InviteCommand::Engage {
    kind: b.kind,
    source: b.source
});
invite_route!(expire, "/v1/invites/{id}/expire", ReasonRequest, StatusCode::OK, |b| InviteCommand::Expire {
    reason: b.reason
});

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptManyRequest {
    /// `{type, value}` as in the Vortex API, or a bare value.
    target: TargetRef,
    invitation_ids: Vec<String>,
    accepted_by: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TargetRef {
    Value(String),
    Typed { value: String },
}

/// `POST /v1/invites/accept`: several invitations of one target, all or none.
#[post("/v1/invites/accept")]
pub async fn accept_many(
    req: HttpRequest,
    auth: Authenticated,
    writer: web::Data<WriterHandle>,
    body: JsonBody<AcceptManyRequest>,
) -> Result<HttpResponse, Problem> {
    auth.require(service_kit::Scope::InvitesWrite)?;
    let JsonBody(b, raw) = body;
    let ids = b
        .invitation_ids
        .iter()
        .enumerate()
        .map(|(i, s)| {
            InviteId::parse(s).map_err(|_| Problem::bad_request(format!("invitation_ids[{i}]"), "must be a UUID"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let target = match b.target {
        TargetRef::Value(v) | TargetRef::Typed { value: v } => v,
    };
    let meta = command_meta(&req, &auth, &raw)?;
    let command = TenantCommand::AcceptMany { target, invite_ids: ids.clone(), accepted_by: b.accepted_by };
    let committed = writer.submit(command, meta).await.map_err(problem_of)?;
    let accepted: Vec<Value> =
        ids.iter().map(|id| json!({ "id": id, "version": committed.version_of(StreamId::Invite(*id)) })).collect();
    let elsewhere: Vec<Value> = committed
        .changes
        .iter()
        .filter(|c| c.event_type == "InviteAcceptedElsewhere")
        .map(|c| json!({ "id": c.stream.as_uuid(), "version": c.version }))
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "accepted": accepted, "accepted_elsewhere": elsewhere })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryReport {
    status: DeliveryStatus,
    detail: Option<String>,
}

/// `POST /v1/deliveries/{delivery_id}/events`: a delivery provider's callback.
#[post("/v1/deliveries/{delivery_id}/events")]
pub async fn delivery_event(
    req: HttpRequest,
    auth: Authenticated,
    state: web::Data<AppState>,
    writer: web::Data<WriterHandle>,
    id: web::Path<String>,
    body: JsonBody<DeliveryReport>,
) -> Result<HttpResponse, Problem> {
    auth.require(service_kit::Scope::InvitesWrite)?;
    let JsonBody(b, raw) = body;
    let delivery_id = DeliveryId::parse(&id).map_err(|_| Problem::bad_request("delivery_id", "must be a UUID"))?;
    let meta = command_meta(&req, &auth, &raw)?;
    let command = TenantCommand::ReportDelivery { delivery_id, status: b.status, detail: b.detail };
    let committed = writer.submit(command, meta).await.map_err(problem_of)?;
    let invite = committed.invite.as_ref().map(|i| i.id).ok_or_else(|| Problem::not_found("delivery"))?;
    Ok(invite_response(&state, StatusCode::OK, invite, &committed, None))
}

/// `{id, version, status}`, `ETag` (the version) and `Location` (the invite on the query API),
/// all from what the writer answered: no second trip to it.
fn invite_response(
    state: &AppState,
    status: StatusCode,
    id: InviteId,
    committed: &Committed,
    link: Option<String>,
) -> HttpResponse {
    // The invite as the command left it (a command that changed nothing still answers with its
    // version).
    let now = committed.invite.as_ref().filter(|i| i.id == id);
    let version = committed.version_of(StreamId::Invite(id)).or(now.map(|i| i.version));
    let current = now.map(|i| i.status.as_str());
    let mut response = HttpResponse::build(status);
    if let Some(v) = version {
        response.insert_header((header::ETAG, format!("\"{v}\"")));
    }
    let mut body = json!({
        "id": id,
        "version": version,
        "status": current,
        "events": committed.changes.iter().map(|c| c.event_type).collect::<Vec<_>>(),
    });
    if let Some(link) = link {
        body["link_url"] = json!(link);
    }
    response
        .insert_header((header::LOCATION, format!("{}/v1/invites/{id}", state.query_api_url)))
        .insert_header(("Idempotent-Replayed", committed.replayed.to_string()))
        .json(body)
}
