//! The tenant's own API keys (admin, tenant-wide keys only): list, create, revoke, rotate.
//!
//! Keys are operational configuration, not history: they live in PostgreSQL (`api_keys`), never
//! in the event log (see `service_kit::api_keys`). A key's secret is answered when it is created
//! (or made by a rotation) and at no other time; it is never logged. Another tenant's key is a
//! 404 like one that does not exist.
//!
//! - `GET /v1/api-keys`: every key of the tenant, revoked and expired ones too.
//! - `POST /v1/api-keys` `{"scopes", "inviter_id", "label", "expires_at"}`: 201, with the key.
//! - `POST /v1/api-keys/{id}/revoke`: refused on every instance within a second.
//! - `POST /v1/api-keys/{id}/rotate` `{"overlap_seconds", "expires_at"}`: 201, with the new key;
//!   the old one keeps working for the overlap (a day by default), then expires.

use super::AppState;
use actix_web::{post, route, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};
use service_kit::api_keys::{self, KeyInfo, RotateError, MAX_LABEL, MAX_OVERLAP};
use service_kit::auth::{issue_key_with, KeyOptions};
use service_kit::problem::JsonBody;
use service_kit::{Authenticated, Problem, Scope};
use std::time::Duration;

/// A field that may be absent but, when present, is never `null`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    #[serde(default, deserialize_with = "present")]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    inviter_id: Option<String>,
    #[serde(default)]
    label: Option<String>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// A whole number of seconds, as JSON Schema's `integer` has it: `3600` or `3600.0`, never
/// negative nor fractional.
fn whole_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    let whole = n
        .as_u64()
        .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64).map(|f| f as u64));
    whole.map(Some).ok_or_else(|| serde::de::Error::custom(format!("expected a whole number of seconds, not {n}")))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateBody {
    #[serde(default, deserialize_with = "whole_seconds")]
    overlap_seconds: Option<u64>,
    #[serde(default)]
    expires_at: Option<DateTime<Utc>>,
}

/// A database failure: logged (the error, never a bound value, so never a secret), a 503 sent.
fn db_error(e: sqlx::Error) -> Problem {
    tracing::error!(error = %e, "api keys: database failure");
    Problem::unavailable("api keys cannot be reached right now; retry later")
}

/// A key id as keys are made: 16 lowercase hex digits; anything else is a 400 naming `id`.
fn key_id(raw: &str) -> Result<&str, Problem> {
    if raw.len() == 16 && raw.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(raw)
    } else {
        Err(Problem::bad_request("id", "must be a key id: 16 lowercase hexadecimal digits"))
    }
}

fn parse_scopes(raw: Option<Vec<String>>) -> Result<Vec<Scope>, Problem> {
    let Some(raw) = raw else { return Ok(Scope::ALL.to_vec()) };
    if raw.is_empty() {
        return Err(Problem::invalid_field("scopes", "at least one scope; leave it out for all three"));
    }
    let mut scopes = Vec::new();
    for (i, s) in raw.iter().enumerate() {
        let scope = Scope::parse(s).ok_or_else(|| {
            Problem::invalid_field(format!("scopes[{i}]"), "must be `invites:write`, `invites:read` or `admin`")
        })?;
        if scopes.contains(&scope) {
            return Err(Problem::invalid_field(format!("scopes[{i}]"), "listed twice"));
        }
        scopes.push(scope);
    }
    Ok(scopes)
}

/// A new key's expiry: in the future, within the years RFC 3339 writes.
fn check_expiry(expires_at: Option<DateTime<Utc>>) -> Result<(), Problem> {
    match expires_at {
        Some(t) if !events::validate::time_in_range(t) => {
            Err(Problem::invalid_field("expires_at", "must be a time between the years 1 and 9999"))
        }
        Some(t) if t <= Utc::now() => Err(Problem::invalid_field("expires_at", "must be in the future")),
        _ => Ok(()),
    }
}

/// A key with its secret, the one time it is answered.
fn with_secret(info: &KeyInfo, token: &str) -> Value {
    let mut body = json!(info);
    body["key"] = json!(token);
    body
}

/// `GET /v1/api-keys` (admin): the tenant's keys, oldest first, never a secret.
#[route("/v1/api-keys", method = "GET", method = "HEAD")]
pub async fn list(auth: Authenticated, state: web::Data<AppState>) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let keys = api_keys::list(&state.pool, auth.tenant_id).await.map_err(db_error)?;
    Ok(HttpResponse::Ok().json(json!({ "data": keys })))
}

/// `POST /v1/api-keys` (admin): issues a key of the caller's tenant; 201 with the key, shown
/// this once.
#[post("/v1/api-keys")]
pub async fn create(
    auth: Authenticated,
    state: web::Data<AppState>,
    body: JsonBody<CreateBody>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let JsonBody(b, _) = body;
    let scopes = parse_scopes(b.scopes)?;
    if let Some(inviter) = &b.inviter_id {
        events::validate::line("inviter_id", inviter, events::validate::MAX_NAME)
            .map_err(|r| Problem::invalid_field("inviter_id", r.to_string()))?;
        if inviter.trim().is_empty() {
            return Err(Problem::invalid_field("inviter_id", "must not be empty"));
        }
    }
    events::validate::opt_line("label", &b.label, MAX_LABEL)
        .map_err(|r| Problem::invalid_field("label", r.to_string()))?;
    check_expiry(b.expires_at)?;
    // A key made by a key that expires expires no later: an expiring admin key cannot make
    // itself a lasting successor.
    let caller = api_keys::get(&state.pool, Some(auth.tenant_id), &auth.key_id).await.map_err(db_error)?;
    let expires_at = match (b.expires_at, caller.and_then(|c| c.expires_at)) {
        (Some(asked), Some(own)) => Some(asked.min(own)),
        (asked, own) => asked.or(own),
    };
    let options =
        KeyOptions { inviter_id: b.inviter_id.as_deref(), label: b.label.as_deref(), expires_at, rotated_from: None };
    let issued = issue_key_with(&state.pool, auth.tenant_id, &scopes, &options).await.map_err(db_error)?;
    let info = api_keys::get(&state.pool, Some(auth.tenant_id), &issued.key_id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| Problem::unavailable("the new key cannot be read back; retry later"))?;
    tracing::info!(key_id = %issued.key_id, by = %auth.key_id, "api key issued");
    Ok(HttpResponse::Created().json(with_secret(&info, &issued.token)))
}

/// `POST /v1/api-keys/{id}/revoke` (admin): 200 with the key, refused from now on. Revoking a
/// revoked key answers it as it is.
#[post("/v1/api-keys/{id}/revoke")]
pub async fn revoke(
    auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let id = key_id(&id)?;
    let info = api_keys::revoke(&state.pool, Some(auth.tenant_id), id)
        .await
        .map_err(db_error)?
        .ok_or_else(|| Problem::not_found("api key"))?;
    tracing::info!(key_id = %id, by = %auth.key_id, "api key revoked");
    Ok(HttpResponse::Ok().json(info))
}

/// `POST /v1/api-keys/{id}/rotate` (admin): 201 with the new key (shown this once) and the old
/// one (`previous`), which expires at the end of the overlap.
#[post("/v1/api-keys/{id}/rotate")]
pub async fn rotate(
    auth: Authenticated,
    state: web::Data<AppState>,
    id: web::Path<String>,
    body: JsonBody<RotateBody>,
) -> Result<HttpResponse, Problem> {
    auth.require(Scope::Admin)?;
    let id = key_id(&id)?;
    let JsonBody(b, _) = body;
    let overlap = match b.overlap_seconds {
        None => api_keys::DEFAULT_OVERLAP,
        Some(s) if s > MAX_OVERLAP.as_secs() => {
            return Err(Problem::invalid_field("overlap_seconds", format!("at most {}", MAX_OVERLAP.as_secs())))
        }
        Some(s) => Duration::from_secs(s),
    };
    check_expiry(b.expires_at)?;
    let rotated = match api_keys::rotate(&state.pool, Some(auth.tenant_id), id, overlap, b.expires_at).await {
        Ok(rotated) => rotated,
        Err(RotateError::NotFound) => return Err(Problem::not_found("api key")),
        Err(e @ RotateError::NotLive(_)) => {
            return Err(Problem::new(
                actix_web::http::StatusCode::CONFLICT,
                "api-key-not-live",
                "the key cannot be rotated",
            )
            .with_field("id")
            .with_detail(e.to_string()))
        }
        Err(e @ RotateError::AlreadyRotated(_)) => {
            return Err(Problem::new(
                actix_web::http::StatusCode::CONFLICT,
                "api-key-rotated-already",
                "the key was rotated already",
            )
            .with_field("id")
            .with_detail(e.to_string()))
        }
        Err(RotateError::Database(e)) => return Err(db_error(e)),
    };
    tracing::info!(key_id = %rotated.key.id, rotated_from = %id, by = %auth.key_id, "api key rotated");
    let mut body = with_secret(&rotated.key, &rotated.issued.token);
    body["previous"] = json!(rotated.previous);
    Ok(HttpResponse::Created().json(body))
}
