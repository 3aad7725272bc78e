use crate::writer::{Phase, WriterHandle};
use actix_web::{route, web, HttpResponse};
use serde_json::json;

/// Liveness: the process answers.
#[route("/healthz", method = "GET", method = "HEAD")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness: this instance is the writer and has read the log to its end; with ownership by
/// shard, it was given its first shards (possibly none: it hands every request on) and has read
/// each; a shard it takes over later is not ready until read, which the answer says (`serving`)
/// without making the instance unready; `warm` lists the shards it keeps warm standbys of.
#[route("/readyz", method = "GET", method = "HEAD")]
pub async fn readyz(writer: web::Data<WriterHandle>) -> HttpResponse {
    let status = format!("{:?}", writer.phase()).to_lowercase();
    let body = match writer.owned_shards() {
        Some((owned, serving, warm)) => json!({ "status": status, "shards": owned, "serving": serving, "warm": warm }),
        None => json!({ "status": status }),
    };
    match writer.phase() {
        Phase::Ready => HttpResponse::Ok().json(body),
        _ => HttpResponse::ServiceUnavailable().json(body),
    }
}

/// The OpenAPI 3.1 document of this API (`command-api/api/openapi.json`, compiled in).
#[route("/openapi.json", method = "GET", method = "HEAD")]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(include_str!("../../api/openapi.json"))
}
