//! Building and running the application.

use crate::config::Config;
use crate::cursor::CursorCodec;
use crate::routes;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use service_kit::auth::Authenticator;
use service_kit::{edge, problem};
use sqlx::PgPool;
use std::net::TcpListener;

pub struct AppState {
    /// Filtered reads (lists, statistics): every statement planned with its own values, see
    /// [`service_kit::db::connect_for_reads`].
    pub pool: PgPool,
    /// Lookups of one invite by its key (detail, history): one plan serves every value, so
    /// PostgreSQL keeps a generic plan instead of planning each one anew (planning took about
    /// twice the execution of the detail's statement).
    pub lookups: PgPool,
    pub cursors: CursorCodec,
    pub public_url: String,
    pub read_your_writes_timeout: std::time::Duration,
    /// The blind-index key: filters on an address match its index.
    pub secrets: events::Secrets,
}

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.edge.check_secret(
            "RSVP_CURSOR_SECRET",
            &config.cursor_secret,
            Some(crate::config::LOCAL_CURSOR_SECRET),
        )?;
        config.edge.check_secret("RSVP_MASTER_KEY", &config.vault.master_key, None)?;
        let pool = service_kit::db::connect_for_reads(&config.database_url, 16).await?;
        let lookups = service_kit::db::connect(&config.database_url, 16).await?;
        let listener = TcpListener::bind((config.host.as_str(), config.port))
            .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
        let addr = listener.local_addr()?;
        let auth = web::Data::new(Authenticator::configured(pool.clone(), &config.edge));
        let master = config.vault.master()?;
        let secrets = master.secrets();
        let unsealer = web::Data::new(service_kit::vault::Unsealer::new(master, lookups.clone()));
        let (cors_origins, metrics_token) = (config.edge.cors_origins(), config.edge.metrics.token());
        let state = web::Data::new(AppState {
            pool,
            lookups,
            cursors: CursorCodec::new(&config.cursor_secret),
            public_url: config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{addr}"))
                .trim_end_matches('/')
                .to_owned(),
            read_your_writes_timeout: std::time::Duration::from_millis(config.read_your_writes_timeout_ms),
            secrets,
        });
        let registry = prometheus::Registry::new();
        let http_metrics = service_kit::metrics::http_metrics("query-api", registry.clone());
        let server = HttpServer::new(move || {
            // The last `wrap` is the outermost: CORS answers preflights before anything else, the
            // access log sees every final status, the guard keeps `/metrics` for the operator.
            App::new()
                .wrap(from_fn(service_kit::vault::unseal_answers))
                .wrap(http_metrics.clone())
                .wrap(from_fn(edge::guard_metrics))
                .wrap(from_fn(edge::access_log))
                .wrap(edge::cors(&cors_origins))
                .app_data(metrics_token.clone())
                .app_data(auth.clone())
                .app_data(unsealer.clone())
                .app_data(state.clone())
                .app_data(problem::query_config())
                .app_data(problem::path_config())
                .configure(routes::configure)
                .default_service(web::to(not_found))
        })
        .listen(listener)?
        .run();
        service_kit::telemetry::announce_listening("query-api", addr);
        Ok(Self { port: addr.port(), server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await.context("server failed")
    }
}

/// No route matched: 405 for a documented path asked with another method, else 404.
async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, service_kit::Problem> {
    static ROUTES: std::sync::LazyLock<problem::DocumentedRoutes> =
        std::sync::LazyLock::new(|| problem::DocumentedRoutes::from_openapi(include_str!("../api/openapi.json")));
    Err(ROUTES.fallback(&req))
}
