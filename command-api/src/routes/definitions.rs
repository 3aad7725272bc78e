//! Definitions (campaigns): create, update, list. They are event-sourced like invites.

use super::{command_meta, problem_of};
use crate::writer::WriterHandle;
use actix_web::http::header;
use actix_web::{post, put, route, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use events::{DefinitionId, DefinitionRules, MessageTemplates, TenantCommand};
use serde::Deserialize;
use serde_json::{json, Value};
use service_kit::problem::JsonBody;
use service_kit::{Authenticated, Problem, Scope};
use uuid::Uuid;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionBody {
    handle: String,
    #[serde(default, deserialize_with = "service_kit::whole::option_u32")]
    max_invites_per_inviter: Option<u32>,
    starts_at: Option<DateTime<Utc>>,
    ends_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "service_kit::whole::option_u32")]
    max_send_count: Option<u32>,
    #[serde(default, deserialize_with = "service_kit::whole::option_u32")]
    default_expiry_days: Option<u32>,
    /// What its invitations say when delivered; checked here, never at send time.
    templates: Option<MessageTemplates>,
}

impl From<DefinitionBody> for DefinitionRules {
    fn from(b: DefinitionBody) -> Self {
        DefinitionRules {
            handle: b.handle,
            max_invites_per_inviter: b.max_invites_per_inviter,
            starts_at: b.starts_at,
            ends_at: b.ends_at,
            max_send_count: b.max_send_count,
            default_expiry_days: b.default_expiry_days,
            templates: b.templates,
        }
    }
}

fn view(id: DefinitionId, rules: &DefinitionRules, version: u64, remaining: Option<Option<u32>>) -> Value {
    let mut v = json!({
        "id": id,
        "handle": rules.handle,
        "max_invites_per_inviter": rules.max_invites_per_inviter,
        "starts_at": rules.starts_at,
        "ends_at": rules.ends_at,
        "max_send_count": rules.max_send_count,
        "default_expiry_days": rules.default_expiry_days,
        "templates": rules.templates,
        "in_range": events::tenant::window_open(rules.starts_at, rules.ends_at, Utc::now()),
        "version": version,
    });
    if let Some(remaining) = remaining {
        v["remaining"] = json!(remaining);
    }
    v
}

/// `POST /v1/definitions` (admin).
#[post("/v1/definitions")]
pub async fn create(
    req: HttpRequest,
    auth: Authenticated,
    writer: web::Data<WriterHandle>,
    body: JsonBody<DefinitionBody>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let JsonBody(b, raw) = body;
    let id = DefinitionId::from_uuid(Uuid::now_v7());
    let rules: DefinitionRules = b.into();
    let meta = command_meta(&req, &auth, &raw)?;
    let committed = writer
        .submit(TenantCommand::CreateDefinition { definition_id: id, rules: rules.clone() }, meta)
        .await
        .map_err(problem_of)?;
    Ok(HttpResponse::Created()
        .insert_header((header::ETAG, format!("\"{}\"", committed.changes[0].version)))
        .json(view(id, &rules, committed.changes[0].version, None)))
}

/// `PUT /v1/definitions/{id}` (admin): replaces the rules.
#[put("/v1/definitions/{id}")]
pub async fn update(
    req: HttpRequest,
    auth: Authenticated,
    writer: web::Data<WriterHandle>,
    id: web::Path<String>,
    body: JsonBody<DefinitionBody>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let id = DefinitionId::parse(&id).map_err(|_| Problem::bad_request("id", "must be a UUID"))?;
    let JsonBody(b, raw) = body;
    let rules: DefinitionRules = b.into();
    let meta = command_meta(&req, &auth, &raw)?;
    let committed = writer
        .submit(TenantCommand::UpdateDefinition { definition_id: id, rules: rules.clone() }, meta)
        .await
        .map_err(problem_of)?;
    // A change answers from what was committed: a second trip to the writer could fail (the
    // lease moved) after the change is in the log. Only an update that changed nothing reads.
    let current = match committed.changes.first() {
        Some(change) => (rules, change.version),
        None => {
            let tenant = auth.tenant_id;
            writer
                .read(tenant, move |s| {
                    s.tenant(tenant).and_then(|t| t.definition(id)).map(|d| (d.rules.clone(), d.version))
                })
                .await
                .map_err(problem_of)?
                .ok_or_else(|| Problem::not_found("definition"))?
        }
    };
    Ok(HttpResponse::Ok()
        .insert_header((header::ETAG, format!("\"{}\"", current.1)))
        .json(view(id, &current.0, current.1, None)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// With it, each definition says how many invites this inviter may still create.
    inviter: Option<String>,
}

/// `GET /v1/definitions`: the tenant's definitions; `?inviter=` adds `remaining`.
#[route("/v1/definitions", method = "GET", method = "HEAD")]
pub async fn list(
    auth: Authenticated,
    writer: web::Data<WriterHandle>,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::InvitesRead)?;
    let tenant = auth.tenant_id;
    let inviter = auth.inviter_to_read(params.into_inner().inviter)?;
    let mut items: Vec<Value> = writer
        .read(tenant, move |s| {
            let Some(t) = s.tenant(tenant) else { return Vec::new() };
            t.definitions()
                .map(|(id, d)| {
                    let remaining = inviter.as_deref().map(|i| t.remaining_quota(id, i));
                    view(id, &d.rules, d.version, remaining)
                })
                .collect()
        })
        .await
        .map_err(problem_of)?;
    items.sort_by(|a, b| a["handle"].as_str().cmp(&b["handle"].as_str()));
    Ok(HttpResponse::Ok().json(json!({ "data": items })))
}
