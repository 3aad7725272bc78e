//! Building and running the application.

use crate::config::Config;
use crate::metrics::WriterMetrics;
use crate::routes::{self, AppState};
use crate::writer::{self, WriterConfig};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use service_kit::auth::Authenticator;
use service_kit::{edge, problem};
use std::net::TcpListener;

pub struct Application {
    port: u16,
    server: Server,
    writer: writer::WriterHandle,
}

impl Application {
    /// Connects to PostgreSQL, becomes the writer (fencing any earlier one, reading the log to its
    /// end) and binds the port. The server runs once [`Application::run_until_stopped`] is awaited.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.edge.check_secret("RSVP_MASTER_KEY", &config.vault.master_key, None)?;
        let master = config.vault.master()?;
        let audit = crate::chains::AuditConfig {
            key: signing_key(&config)?,
            interval: std::time::Duration::from_millis(config.audit_checkpoint_interval_ms),
        };
        let public_key = web::Data::new(audit.key.public_key());
        let pool = service_kit::db::connect(&config.database_url, 8).await?;
        // The writer reads the key store when it starts: its schema must be there.
        service_kit::db::migrate(&pool).await?;
        let registry = prometheus::Registry::new();
        let writer_metrics = WriterMetrics::register(&registry)?;
        // Bound before the writer starts: with shards, the other instances are told this address.
        let listener = TcpListener::bind((config.host.as_str(), config.port))
            .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
        let addr = listener.local_addr()?;
        let ownership = match config.writer_ownership.as_str() {
            "shards" => writer::Ownership::Shards {
                advertised_url: advertised_url(&config, addr)?,
                warm_standbys: config.writer_warm_standbys,
            },
            _ => writer::Ownership::Lease,
        };
        let writer = writer::start(
            WriterConfig {
                brokers: config.kafka_brokers.clone(),
                topic: config.kafka_topic.clone(),
                transactional_id: config.writer_id.clone(),
                lease_timeout: std::time::Duration::from_millis(config.writer_lease_timeout_ms),
                master: master.clone(),
                pool: pool.clone(),
                runtime: tokio::runtime::Handle::current(),
                audit,
                snapshots: crate::writer::SnapshotConfig {
                    every_events: config.writer_snapshot_events,
                    interval: std::time::Duration::from_secs(config.writer_snapshot_interval_seconds),
                },
                ownership,
                shard: None,
            },
            writer_metrics,
        )
        .await?;
        let auth = web::Data::new(Authenticator::configured(pool.clone(), &config.edge));
        let (cors_origins, metrics_token) = (config.edge.cors_origins(), config.edge.metrics.token());
        let unsealer = web::Data::new(service_kit::vault::Unsealer::new(master.clone(), pool.clone()));
        let handle = writer.clone();
        let writer = web::Data::new(writer);
        let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
        let state = web::Data::new(AppState {
            query_api_url: config.query_api_url.trim_end_matches('/').to_owned(),
            public_url: public_url.trim_end_matches('/').to_owned(),
            pool: pool.clone(),
            webhook_allow_private: config.webhook_allow_private,
            webhook_secret_overlap: std::time::Duration::from_secs(config.webhook_secret_overlap_seconds),
            unsealer: service_kit::vault::Unsealer::new(master.clone(), pool.clone()),
        });
        let dispatcher_token =
            web::Data::new(routes::DispatcherToken(config.dispatcher_token.clone().filter(|t| !t.is_empty())));
        let max_body = config.max_body_bytes;
        let http_metrics = service_kit::metrics::http_metrics("command-api", registry.clone());
        let server = HttpServer::new(move || {
            // The last `wrap` is the outermost: CORS answers preflights before anything else, the
            // access log sees every final status, the guard keeps `/metrics` for the operator.
            App::new()
                .wrap(from_fn(crate::forward::route_to_owner))
                .wrap(from_fn(service_kit::vault::unseal_answers))
                .wrap(http_metrics.clone())
                .wrap(from_fn(edge::guard_metrics))
                .wrap(from_fn(edge::access_log))
                .wrap(edge::cors(&cors_origins))
                .app_data(metrics_token.clone())
                .app_data(auth.clone())
                .app_data(unsealer.clone())
                .app_data(writer.clone())
                .app_data(state.clone())
                .app_data(dispatcher_token.clone())
                .app_data(public_key.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(web::Data::new(crate::forward::BodyLimit(max_body)))
                .app_data(problem::query_config())
                .app_data(problem::path_config())
                .configure(routes::configure)
                .default_service(web::to(not_found))
        })
        .listen(listener)?
        // The stop signals are ours: the writer hands over before the server stops (below).
        .disable_signals()
        .run();
        service_kit::telemetry::announce_listening("command-api", addr);
        Ok(Self { port: addr.port(), server, writer: handle })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until a stop signal (SIGTERM, SIGINT), then hands the writer's lease (or its
    /// shards) over first, so that the next writer takes over at once, and stops the server once
    /// every request in flight has been answered: each of them was decided and committed before
    /// the hand-over (the writer commits what it decided before it lets go), or is refused with a
    /// 503 (or, with shards, handed to the new owner).
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let handle = self.server.handle();
        let mut server = tokio::spawn(self.server);
        let (mut term, mut int) = (signal(SignalKind::terminate())?, signal(SignalKind::interrupt())?);
        let ended = tokio::select! {
            served = &mut server => Some(served),
            _ = term.recv() => None,
            _ = int.recv() => None,
        };
        if ended.is_none() {
            tracing::info!("stop signal: handing the writer over, then stopping");
        }
        let writer = self.writer;
        tokio::task::spawn_blocking(move || writer.release_lease()).await.context("cannot release the writer lease")?;
        tracing::info!("writer lease handed over");
        let served = match ended {
            Some(served) => served,
            None => {
                handle.stop(true).await;
                server.await
            }
        };
        served.context("server task failed")?.context("server failed")
    }
}

/// The URL the other instances reach this one at, with ownership by shard: given, or the
/// address it listens on when that names this host alone (a wildcard address would publish the
/// same URL for every instance, and none would ever reach another).
fn advertised_url(config: &Config, addr: std::net::SocketAddr) -> anyhow::Result<String> {
    if let Some(url) = config.writer_advertised_url.as_deref().filter(|u| !u.trim().is_empty()) {
        let parsed = url::Url::parse(url).with_context(|| format!("RSVP_WRITER_ADVERTISED_URL {url:?}"))?;
        anyhow::ensure!(
            matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some(),
            "RSVP_WRITER_ADVERTISED_URL must be an http(s) URL with a host, not {url:?}"
        );
        return Ok(url.trim_end_matches('/').to_owned());
    }
    anyhow::ensure!(
        !addr.ip().is_unspecified(),
        "RSVP_WRITER_OWNERSHIP=shards with COMMAND_API_HOST={}: set RSVP_WRITER_ADVERTISED_URL to the URL the other \
         instances reach this one at (e.g. http://$(POD_IP):8081)",
        addr.ip()
    );
    Ok(format!("http://{addr}"))
}

/// The checkpoints' signing key: required, since a log without signed checkpoints cannot show that
/// it was not changed.
fn signing_key(config: &Config) -> anyhow::Result<audit::SigningKey> {
    let seed = config.audit_signing_key.as_deref().filter(|k| !k.trim().is_empty()).ok_or_else(|| {
        anyhow::anyhow!(
            "RSVP_AUDIT_SIGNING_KEY is not set: the writer signs checkpoints of the log's hash chains with it; \
             give it base64 of a 32-byte ed25519 seed (e.g. `head -c 32 /dev/urandom | base64`), kept secret and \
             stable across restarts"
        )
    })?;
    audit::SigningKey::from_base64_seed(seed).context("RSVP_AUDIT_SIGNING_KEY")
}

/// No route matched: 405 for a documented path asked with another method, else 404.
async fn not_found(req: actix_web::HttpRequest) -> Result<actix_web::HttpResponse, service_kit::Problem> {
    static ROUTES: std::sync::LazyLock<problem::DocumentedRoutes> =
        std::sync::LazyLock::new(|| problem::DocumentedRoutes::from_openapi(include_str!("../api/openapi.json")));
    Err(ROUTES.fallback(&req))
}
