use crate::writer::{Phase, WriterHandle};
use actix_web::{route, web, HttpResponse};
use serde_json::json;

/// Liveness: the process answers.
#[route("/healthz", method = "GET", method = "HEAD")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Readiness: this instance is the writer and has read the log to its end.
#[route("/readyz", method = "GET", method = "HEAD")]
pub async fn readyz(writer: web::Data<WriterHandle>) -> HttpResponse {
    match writer.phase() {
        Phase::Ready => HttpResponse::Ok().json(json!({ "status": "ready" })),
        phase => HttpResponse::ServiceUnavailable().json(json!({ "status": format!("{phase:?}").to_lowercase() })),
    }
}

/// The OpenAPI 3.1 document of this API (`command-api/api/openapi.json`, compiled in).
#[route("/openapi.json", method = "GET", method = "HEAD")]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(include_str!("../../api/openapi.json"))
}
