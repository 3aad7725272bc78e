//! Erasure of personal data (GDPR article 17 and its equivalents), by crypto-shredding: the writer
//! destroys the data subject's key, so every value sealed under it, in the log and everywhere it
//! was copied, reads as erased from then on; the invites, their histories and every count stay.
//! Both routes need the `admin` scope (an inviter's key never has it).
//!
//! - `POST /v1/personal-data/erasures` `{"address": "...", "type": "email" | "phone"}`: one address.
//! - `POST /v1/tenant/offboarding`: every subject of the tenant, when it leaves.

use super::{command_meta, problem_of};
use crate::writer::WriterHandle;
use actix_web::{post, web, HttpRequest, HttpResponse};
use events::{TargetKind, TenantCommand};
use serde::Deserialize;
use serde_json::json;
use service_kit::problem::JsonBody;
use service_kit::{Authenticated, Problem, Scope};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AddressKind {
    Email,
    Phone,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureRequest {
    address: String,
    /// Inferred when absent: an `@` makes it an email address, else a phone number.
    #[serde(rename = "type")]
    kind: Option<AddressKind>,
}

#[post("/v1/personal-data/erasures")]
pub async fn erase(
    req: HttpRequest,
    auth: Authenticated,
    writer: web::Data<WriterHandle>,
    body: JsonBody<ErasureRequest>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let JsonBody(b, raw) = body;
    let kind = match b.kind {
        Some(AddressKind::Email) => TargetKind::Email,
        Some(AddressKind::Phone) => TargetKind::Phone,
        None if b.address.contains('@') => TargetKind::Email,
        None => TargetKind::Phone,
    };
    let meta = command_meta(&req, &auth, &raw)?;
    let command = TenantCommand::ErasePersonalData { address: Some((kind, b.address)) };
    let committed = writer.submit(command, meta).await.map_err(problem_of)?;
    Ok(HttpResponse::Ok().json(json!({
        "type": match kind { TargetKind::Email => "email", _ => "phone" },
        "erased_from_invites": committed.changes.len(),
        "invites": committed.changes.iter().map(|c| c.stream.as_uuid()).collect::<Vec<_>>(),
    })))
}

#[post("/v1/tenant/offboarding")]
pub async fn offboard(
    req: HttpRequest,
    auth: Authenticated,
    writer: web::Data<WriterHandle>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let meta = command_meta(&req, &auth, b"")?;
    let committed =
        writer.submit(TenantCommand::ErasePersonalData { address: None }, meta).await.map_err(problem_of)?;
    Ok(HttpResponse::Ok().json(json!({ "erased_from_invites": committed.changes.len() })))
}
