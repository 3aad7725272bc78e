//! Routing with ownership by shard: any instance accepts any request, and one for a shard it
//! does not own is handed whole (method, path, headers, body) to the shard's owner, whose answer
//! is the answer. The owner authenticates and decides it as if it had come to it directly.
//!
//! A handler runs as usual; when the writer finds the tenant's shard elsewhere it answers
//! `ShardMoving` and notes where the request belongs ([`to_shard`]). This middleware then drops
//! that answer and forwards the request, marked with [`FORWARDED`] so that the owner never
//! forwards it again: an instance that no longer owns the shard answers 503 `shard-moving` with
//! `Retry-After`, and so does a shard with no owner (moving, or its new owner still reading).
//! Nothing is decided twice: the first instance decided nothing (its writer does not hold the
//! shard), and the owner decides once.

use crate::writer::WriterHandle;
use actix_web::body::{BoxBody, EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse};
use std::cell::RefCell;
use std::time::Duration;

/// The header that marks a request handed over by another instance.
pub const FORWARDED: &str = "x-rsvp-forwarded-by";

/// Where the request in hand belongs, as the writer found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Shard(i32),
    /// A public link whose tenant no shard here knows: any other owner may.
    AnyOwner,
}

#[derive(Debug, Default, Clone, Copy)]
struct Route {
    target: Option<Target>,
    /// A command of this request went to a writer here: the request is never sent on, even if a
    /// later step finds the shard moved (it would be decided twice).
    submitted_here: bool,
}

tokio::task_local! {
    static ROUTE: RefCell<Route>;
}

/// The request belongs to shard `p`'s owner (called by the writer, within a request).
pub(crate) fn to_shard(p: i32) {
    let _ = ROUTE.try_with(|r| r.borrow_mut().target = Some(Target::Shard(p)));
}

/// The request may belong to any other owner; `false` when it will not be handed on (it was
/// handed here by another instance).
pub(crate) fn to_every_owner() -> bool {
    ROUTE
        .try_with(|r| {
            let mut r = r.borrow_mut();
            if r.target.is_none() {
                r.target = Some(Target::AnyOwner);
            }
        })
        .is_ok()
}

/// A command of the request was handed to a writer of this instance.
pub(crate) fn submitted_here() {
    let _ = ROUTE.try_with(|r| r.borrow_mut().submitted_here = true);
}

/// How long a forwarded request may take: a write waits at most for its commit.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn route_to_owner(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody, BoxBody>>, actix_web::Error> {
    let shards = req.app_data::<web::Data<WriterHandle>>().and_then(|w| w.shards().cloned());
    let Some(shards) = shards.filter(|_| !req.headers().contains_key(FORWARDED)) else {
        // A lease (one writer for all), or a request forwarded here: decided here or refused.
        return next.call(req).await.map(ServiceResponse::map_into_left_body);
    };
    // The body is kept as it came (still compressed if it was), in case the request goes on to
    // another instance; the handler reads it as it would have.
    let limit = req.app_data::<web::Data<BodyLimit>>().map_or(1 << 20, |l| l.0);
    let body = match raw_body(&mut req, limit).await {
        Ok(body) => body,
        Err(problem) => return Ok(req.error_response(problem).map_into_right_body()),
    };
    req.set_payload(Payload::from(body.clone()));
    let (method, uri, headers) = (req.method().clone(), req.uri().clone(), req.headers().clone());
    let (response, target) = ROUTE
        .scope(RefCell::new(Route::default()), async {
            let response = next.call(req).await;
            (response, ROUTE.with(|r| *r.borrow()))
        })
        .await;
    let response = response?;
    let Route { target: Some(target), submitted_here: false } = target else {
        return Ok(response.map_into_left_body());
    };
    let owners = match target {
        Target::Shard(p) => shards.owner_of(p).await.map(|o| o.into_iter().collect::<Vec<_>>()),
        Target::AnyOwner => shards.other_owners().await,
    };
    let owners = match owners {
        Ok(owners) => owners,
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "the shards' owners cannot be read");
            Vec::new()
        }
    };
    let (request, local) = response.into_parts();
    if target == Target::AnyOwner {
        // A link no shard here knows: the first owner that knows it answers. "Not found" only
        // when every other owner said so, and every shard has an owner: else it may be on a
        // shard that is moving, or an owner that did not answer.
        let (mut unsure, mut unknown) = (owners.is_empty() || shards.unowned().await, false);
        for owner in owners {
            match send(&owner, &method, &uri, &headers, &body, shards.me()).await {
                // That owner's shards were moving: another may still know it.
                Ok(answer) if answer.status() == StatusCode::SERVICE_UNAVAILABLE => unsure = true,
                Ok(answer) if answer.status() != StatusCode::NOT_FOUND => {
                    return Ok(ServiceResponse::new(request, answer).map_into_right_body())
                }
                Ok(_) => {}
                Err(e) => {
                    unknown |= !e.is_connect();
                    tracing::warn!(owner, error = %e.without_url(), "a shard owner did not answer");
                    unsure = true;
                }
            }
        }
        if unknown {
            return Ok(ServiceResponse::new(request, unknown_outcome()).map_into_right_body());
        }
        if unsure {
            return Ok(ServiceResponse::new(request, moving()).map_into_right_body());
        }
        return Ok(ServiceResponse::new(request, local).map_into_left_body());
    }
    let answer = match owners.first() {
        Some(owner) => match send(owner, &method, &uri, &headers, &body, shards.me()).await {
            Ok(answer) => answer,
            // Never reached it: nothing was decided there.
            Err(e) if e.is_connect() => {
                tracing::warn!(owner, error = %e.without_url(), "the shard's owner cannot be reached");
                moving()
            }
            // Sent, and no answer: it may or may not have been decided.
            Err(e) => {
                tracing::warn!(owner, error = %e.without_url(), "the shard's owner did not answer");
                unknown_outcome()
            }
        },
        // No owner published (between owners), or this instance is published but not ready.
        None => return Ok(ServiceResponse::new(request, local).map_into_left_body()),
    };
    Ok(ServiceResponse::new(request, answer).map_into_right_body())
}

/// The largest body the middleware keeps (`RSVP_MAX_BODY_BYTES`).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The request's body as it came, up to `limit` bytes (413 problem+json beyond).
async fn raw_body(req: &mut ServiceRequest, limit: usize) -> Result<web::Bytes, service_kit::Problem> {
    use actix_web::HttpMessage as _;
    use futures::StreamExt as _;
    let mut payload = req.take_payload();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            service_kit::Problem::new(StatusCode::BAD_REQUEST, "bad-request", "the request body could not be read")
                .with_detail(e.to_string())
        })?;
        if body.len() + chunk.len() > limit {
            return Err(service_kit::Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                "the request body is too large",
            )
            .with_detail(format!("at most {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// 504: the owner took the request and did not answer; the command may have been decided.
fn unknown_outcome() -> HttpResponse {
    let problem = service_kit::Problem::new(
        StatusCode::GATEWAY_TIMEOUT,
        "outcome-unknown",
        "the shard's owner took the request and did not answer",
    )
    .with_detail(
        "the command may or may not have been decided: retry with the same Idempotency-Key, or read the invite first",
    );
    actix_web::ResponseError::error_response(&problem)
}

/// 503 `shard-moving`: what a shard between owners answers.
fn moving() -> HttpResponse {
    actix_web::ResponseError::error_response(&crate::routes::problem_of(crate::writer::WriteError::ShardMoving))
}

/// Hop-by-hop headers, and those the forwarding sets anew.
const NOT_FORWARDED: [&str; 7] =
    ["host", "connection", "keep-alive", "transfer-encoding", "content-length", "upgrade", FORWARDED];

async fn send(
    owner: &str,
    method: &actix_web::http::Method,
    uri: &actix_web::http::Uri,
    headers: &actix_web::http::header::HeaderMap,
    body: &web::Bytes,
    me: &str,
) -> Result<HttpResponse, reqwest::Error> {
    static CLIENT: std::sync::LazyLock<reqwest::Client> = std::sync::LazyLock::new(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FORWARD_TIMEOUT)
            .build()
            .expect("the forwarding client builds")
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut request = CLIENT.request(method, format!("{}{path}", owner.trim_end_matches('/')));
    for (name, value) in headers {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = request.header(FORWARDED, me).body(body.clone()).send().await?;
    let mut response =
        HttpResponse::build(StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY));
    for (name, value) in answer.headers() {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            response.append_header((name.as_str(), value.as_bytes()));
        }
    }
    Ok(response.body(answer.bytes().await?))
}
