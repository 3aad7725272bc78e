use crate::startup::AppState;
use actix_web::{route, web, HttpResponse};
use serde_json::json;

#[route("/healthz", method = "GET", method = "HEAD")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// Ready: PostgreSQL answers.
#[route("/readyz", method = "GET", method = "HEAD")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    match sqlx::query("SELECT 1").execute(&state.pool).await {
        Ok(_) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Err(_) => HttpResponse::ServiceUnavailable().json(json!({ "status": "database unreachable" })),
    }
}

/// The OpenAPI 3.1 document of this API (`query-api/api/openapi.json`, compiled in).
#[route("/openapi.json", method = "GET", method = "HEAD")]
pub async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(include_str!("../../api/openapi.json"))
}
