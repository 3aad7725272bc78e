//! The small HTTP server of the services that follow the log (the projector, the dispatcher):
//! `/healthz` (the process answers), `/readyz` (it follows the log and PostgreSQL answers) and
//! `/metrics` for the operator's token.

use crate::edge::MetricsConfig;
use actix_web::{get, web, App, HttpResponse, HttpServer};
use sqlx::PgPool;
use std::net::TcpListener;
use std::sync::Arc;

/// Whether the service follows its partitions yet.
pub type Following = Arc<dyn Fn() -> bool + Send + Sync>;

struct Ready {
    pool: PgPool,
    following: Following,
}

/// Serves on `listener` (announced on stdout as `{service} listening on ...`) until stopped.
pub fn follower_server(
    listener: TcpListener,
    service: &'static str,
    registry: prometheus::Registry,
    metrics: &MetricsConfig,
    pool: PgPool,
    following: Following,
) -> std::io::Result<actix_web::dev::Server> {
    let addr = listener.local_addr()?;
    let http_metrics = crate::metrics::http_metrics(service, registry);
    let ready = web::Data::new(Ready { pool, following });
    let token = metrics.token();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(http_metrics.clone())
            .wrap(actix_web::middleware::from_fn(crate::edge::guard_metrics))
            .app_data(token.clone())
            .app_data(ready.clone())
            .service(healthz)
            .service(readyz)
    })
    .listen(listener)?
    .workers(1)
    .run();
    crate::telemetry::announce_listening(service, addr);
    Ok(server)
}

#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready: following the log, and PostgreSQL answers.
#[get("/readyz")]
async fn readyz(state: web::Data<Ready>) -> HttpResponse {
    let following = (state.following)();
    let database = sqlx::query("SELECT 1").execute(&state.pool).await.is_ok();
    let body = serde_json::json!({ "following": following, "database": database });
    if following && database {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}
