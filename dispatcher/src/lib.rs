//! The dispatcher: a consumer of the log that makes deliveries real. It sends the invitation
//! emails (SMTP) and SMS (an HTTP provider) that deliveries ask for, records their progress
//! through the writer (queued → sending → sent, bounced or failed), and delivers every event of a
//! tenant to the tenant's webhook endpoints, signed. It never writes to the log itself, and a
//! slow or unreachable SMTP server or endpoint holds back neither the writes nor the projections.

pub mod channels;
pub mod config;
pub mod deliveries;
pub mod intake;
pub mod metrics;
pub mod payload;
pub mod report;
pub mod signing;
pub mod webhooks;

use anyhow::Context;
use config::Config;
use std::net::TcpListener;
use std::sync::Arc;
use tokio::sync::Notify;

/// Runs the dispatcher until one of its parts fails.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let pool = service_kit::db::connect(&config.database_url, 6).await?;
    service_kit::db::migrate(&pool).await?;
    let listener = TcpListener::bind((config.host.as_str(), config.port))
        .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
    let registry = prometheus::Registry::new();
    let metrics = metrics::Metrics::register(&registry)?;
    let watched = metrics.clone();
    let server = service_kit::health::follower_server(
        listener,
        "dispatcher",
        registry,
        &config.metrics,
        pool.clone(),
        Arc::new(move || watched.following.load(std::sync::atomic::Ordering::Acquire)),
    )?;

    // The health server answers (not ready) while a second dispatcher of the same name stands by.
    let server = actix_web::rt::spawn(server);
    // One dispatcher at a time per name: a second (a rolling deploy's overlap) stands by.
    let lock = single_instance(&config.database_url, &config.name).await?;

    let wake = Arc::new(Notify::new());
    let intake = intake::run(
        pool.clone(),
        intake::IntakeConfig {
            brokers: config.kafka_brokers.clone(),
            topic: config.kafka_topic.clone(),
            name: config.name.clone(),
            max_age: std::time::Duration::from_secs(config.send_max_age_seconds),
        },
        wake.clone(),
        metrics.clone(),
    );
    let sms = match &config.sms_url {
        Some(url) if !url.is_empty() => Some(channels::HttpSms::new(url.clone(), config.sms_token.clone())?),
        _ => None,
    };
    let unsealer = service_kit::vault::Unsealer::new(config.vault.master()?, pool.clone());
    let deliverer = deliveries::Deliverer {
        pool: pool.clone(),
        unsealer: unsealer.clone(),
        reporter: report::Reporter::new(&config.command_api_url, config.dispatcher_token.clone())?,
        smtp: channels::Smtp::new(&config.smtp_url, &config.mail_from)?,
        sms,
        public_url: config.public_url.clone(),
        max_attempts: config.send_max_attempts,
        retry: std::time::Duration::from_millis(config.send_retry_ms),
        limiter: deliveries::tenant_limiter(config.send_rate_per_tenant),
        wake: wake.clone(),
        metrics: metrics.clone(),
    };
    let sender = webhooks::WebhookSender {
        pool,
        unsealer,
        client: webhooks::client(config.webhook_timeout(), config.webhook_allow_private)?,
        schedule: config.webhook_retry_schedule.clone(),
        disable_after_failures: config.webhook_disable_after_failures,
        disable_after: std::time::Duration::from_secs(config.webhook_disable_after_seconds),
        allow_private: config.webhook_allow_private,
        concurrency: config.webhook_concurrency.max(1),
        wake,
        metrics,
    };
    // SIGTERM or SIGINT stop the health server first (actix handles the signals); then the
    // email or SMS being sent and the webhook attempts in flight end and are recorded, and
    // nothing new is begun: a graceful stop sends nothing twice. The intake's transaction in
    // progress is rolled back with its positions (the next dispatcher reads those events again).
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let deliveries = deliverer.run(stopping.clone());
    let webhooks = sender.run(stopping);
    // The lock's session stays open until the sends in flight are recorded: a standby that took
    // over meanwhile would send them again.
    tokio::pin!(deliveries, webhooks, lock);
    tokio::select! {
        r = intake => r.context("the intake stopped"),
        r = &mut deliveries => r.context("the deliverer stopped"),
        r = &mut webhooks => r.context("the webhook sender stopped"),
        r = server => {
            let _ = stop.send(true);
            let finished = futures::future::try_join(deliveries, webhooks);
            match tokio::time::timeout(std::time::Duration::from_secs(30), finished).await {
                Ok(done) => done.map(|_| ())?,
                Err(_) => tracing::warn!("the sends in flight did not end in 30 s; stopping anyway"),
            }
            tracing::info!("dispatcher stopped");
            r.context("the health server stopped")?.context("the health server failed")
        }
        r = &mut lock => r,
    }
}

/// Waits until this process holds the dispatcher's PostgreSQL advisory lock (two dispatchers
/// would each send every job), then returns a future that ends, with an error, if the session
/// holding it is lost: the process stops rather than run without it.
async fn single_instance(
    database_url: &str,
    name: &str,
) -> anyhow::Result<impl std::future::Future<Output = anyhow::Result<()>>> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(database_url).await.context("cannot connect to PostgreSQL")?;
    let mut said = false;
    loop {
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext('rsvp-dispatcher:' || $1))")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
        if held {
            break;
        }
        if !said {
            tracing::warn!(%name, "another dispatcher of this name is running; standing by");
            said = true;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    Ok(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(5)).await;
            sqlx::query("SELECT 1")
                .execute(&mut conn)
                .await
                .context("the session holding the dispatcher's lock is lost")?;
        }
    })
}
