//! HTTP routes of the command API, and what they share: the command metadata taken from a
//! request, and the one place where write failures become problem+json.

mod api_keys;
mod argyle;
mod audit;
mod definitions;
mod health;
mod internal;
mod invites;
mod link;
mod omneo;
mod privacy;
mod vortex;
mod webhooks;

pub use internal::DispatcherToken;

use crate::writer::{CommandMeta, IfMatch, WriteError};
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
    /// Webhook endpoints may be private or loopback addresses (`RSVP_WEBHOOK_ALLOW_PRIVATE`).
    pub webhook_allow_private: bool,
    /// How long a rotated-out webhook secret keeps signing (`RSVP_WEBHOOK_SECRET_OVERLAP_SECONDS`).
    pub webhook_secret_overlap: std::time::Duration,
    /// Opens sealed personal data for the tenant's own answers (see `service_kit::vault`).
    pub unsealer: service_kit::vault::Unsealer,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health::healthz)
        .service(audit::public_key)
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
        .service(internal::delivery_status)
        .service(link::follow)
        .service(omneo::create)
        .service(omneo::revoke)
        .service(omneo::resend)
        .service(argyle::create)
        .service(argyle::revoke)
        .service(vortex::create)
        .service(vortex::accept)
        .service(vortex::revoke_scope)
        .service(vortex::revoke)
        .service(vortex::reinvite)
        .service(webhooks::create)
        .service(webhooks::list)
        .service(webhooks::show)
        .service(webhooks::update)
        .service(webhooks::remove)
        .service(webhooks::rotate_secret)
        .service(webhooks::list_attempts)
        .service(webhooks::list_messages)
        .service(webhooks::resend)
        .service(privacy::erase)
        .service(privacy::offboard)
        .service(api_keys::list)
        .service(api_keys::create)
        .service(api_keys::revoke)
        .service(api_keys::rotate);
}

/// Who sends the command, its correlation id, its idempotency key with the request's
/// fingerprint, and its `If-Match` precondition.
pub(crate) fn command_meta(req: &HttpRequest, auth: &Authenticated, body: &[u8]) -> Result<CommandMeta, Problem> {
    let correlation_id = match header(req, "X-Request-Id")? {
        Some(v) => Uuid::parse_str(v).map_err(|_| Problem::bad_request("X-Request-Id", "must be a UUID"))?,
        None => service_kit::edge::RequestId::of(req).map_or_else(Uuid::now_v7, |id| id.0),
    };
    let idempotency = match header(req, "Idempotency-Key")? {
        None => None,
        Some(k) if k.is_empty() || k.len() > 200 => {
            return Err(Problem::bad_request("Idempotency-Key", "must be 1 to 200 characters"))
        }
        Some(k) => Some((k.to_owned(), fingerprint(req, auth, body, true))),
    };
    let legacy_request_hash = idempotency.as_ref().map(|_| fingerprint(req, auth, body, false));
    let if_match = header(req, "If-Match")?.map(parse_if_match).transpose()?;
    let actor = match &auth.inviter_id {
        Some(inviter) => Actor { kind: ActorKind::Inviter, id: inviter.clone() },
        None => Actor { kind: ActorKind::ApiKey, id: auth.key_id.clone() },
    };
    Ok(CommandMeta {
        tenant_id: auth.tenant_id,
        actor,
        correlation_id: Some(correlation_id),
        idempotency,
        legacy_request_hash,
        if_match,
    })
}

/// A request header as text: absent, or printable ASCII (and spaces); anything else is a 400
/// naming it rather than a header silently ignored.
fn header<'a>(req: &'a HttpRequest, name: &str) -> Result<Option<&'a str>, Problem> {
    let Some(value) = req.headers().get(name) else { return Ok(None) };
    match value.to_str() {
        Ok(v) if v.bytes().all(|b| (b' '..=b'~').contains(&b)) => Ok(Some(v.trim())),
        _ => Err(Problem::bad_request(name, "must be printable ASCII")),
    }
}

/// The fingerprint an idempotency key is bound to: method, path and the body as canonical JSON
/// (object keys sorted, no insignificant whitespace), so the same JSON with its keys in another
/// order or spaced differently is the same request. An empty body reads as `{}`, as the handlers
/// read it. A body that is not JSON never gets here (the handlers refuse it first).
///
/// An inviter's key binds it to that inviter too: keys are per tenant, and another inviter of the
/// tenant reusing one must never be answered with (or told of) the first inviter's invite. A
/// tenant-wide key's fingerprint is unchanged, so its records from before keep matching.
///
/// It is recorded in the log (`requesthash`), so it is an HMAC under a key derived from the
/// master key (`keyed`, prefixed `k1:`): a plain hash of a body would let whoever reads the log
/// confirm a guess of it (the address an erasure named). `keyed: false` gives the plain hash
/// fingerprints had before, which a retry of a request from then still matches.
fn fingerprint(req: &HttpRequest, auth: &Authenticated, body: &[u8], keyed: bool) -> String {
    let value: serde_json::Value = if body.is_empty() {
        serde_json::Value::Object(Default::default())
    } else {
        serde_json::from_slice(body).unwrap_or_default()
    };
    let mut canonical = String::new();
    write_canonical(&value, &mut canonical);
    let mut parts: Vec<&[u8]> = vec![req.method().as_str().as_bytes(), req.path().as_bytes(), canonical.as_bytes()];
    if let Some(inviter) = &auth.inviter_id {
        parts.extend([b"\0inviter:".as_slice(), inviter.as_bytes()]);
    }
    let hex = |bytes: &[u8]| bytes[..16].iter().map(|b| format!("{b:02x}")).collect::<String>();
    let key = req.app_data::<web::Data<AppState>>().map(|s| *s.unsealer.master().fingerprint_key());
    match key.filter(|_| keyed) {
        Some(key) => {
            use hmac::Mac as _;
            let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
            parts.iter().for_each(|p| mac.update(p));
            format!("k1:{}", hex(&mac.finalize().into_bytes()))
        }
        None => {
            let mut hash = Sha256::new();
            parts.iter().for_each(|p| hash.update(p));
            hex(&hash.finalize())
        }
    }
}

/// JSON with every object's keys in sorted order, whatever order `serde_json::Map` keeps (its
/// `preserve_order` feature, if anything in the build turns it on, keeps insertion order).
fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, value)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(value, out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// `If-Match` as RFC 9110 section 13.1.1 has it: `*`, or a comma list of entity tags
/// (`"3"`, `W/"3"`). Anything else is a 400.
fn parse_if_match(value: &str) -> Result<IfMatch, Problem> {
    let bad = || {
        Problem::bad_request(
            "If-Match",
            "must be `*` or a list of entity tags such as `\"3\"` (the ETag a response gave)",
        )
    };
    if value == "*" {
        return Ok(IfMatch::Any);
    }
    let mut versions = Vec::new();
    let mut rest = value;
    let mut tags = 0;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let weak = rest.starts_with("W/");
        rest = rest.strip_prefix("W/").unwrap_or(rest).strip_prefix('"').ok_or_else(bad)?;
        let end = rest.find('"').ok_or_else(bad)?;
        let (tag, after) = rest.split_at(end);
        // etagc: any visible ASCII but the double quote.
        if !tag.bytes().all(|b| b == b'!' || (b'#'..=b'~').contains(&b)) {
            return Err(bad());
        }
        rest = after[1..].trim_start_matches([' ', '\t']);
        if !(rest.is_empty() || rest.starts_with(',')) {
            return Err(bad());
        }
        tags += 1;
        // Strong comparison: a weak tag never matches.
        if let (false, Ok(version)) = (weak, tag.parse::<u64>()) {
            if tag == version.to_string() {
                versions.push(version);
            }
        }
    }
    if tags == 0 {
        return Err(bad());
    }
    Ok(IfMatch::Versions(versions))
}

/// Write failures as HTTP: domain refusals 409/422/404/410 with their stable code; 500 only when
/// the writer itself failed on the command.
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
        WriteError::PreconditionFailed { target, current } => {
            let detail = match current {
                Some(version) => format!("the {target} is at version {version} (ETag \"{version}\")"),
                None => "the target is a collection: it has no entity tag, only `If-Match: *` holds".to_owned(),
            };
            Problem::new(StatusCode::PRECONDITION_FAILED, "version-mismatch", "the precondition failed")
                .with_field("If-Match")
                .with_detail(detail)
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
        WriteError::ShardMoving => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shard-moving",
            "the tenant's shard is moving between instances",
        )
        .with_detail("no instance decides this tenant's commands at this moment; retry shortly")
        .with_retry_after(1),
        WriteError::Failed => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "writer-failed",
            "the command could not be decided; nothing of it was written",
        ),
    }
}
