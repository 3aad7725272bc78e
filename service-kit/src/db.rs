//! PostgreSQL: the pool and the schema. Every table of rsvp is created by the versioned
//! migrations in `service-kit/migrations`, applied by whichever service starts first (sqlx
//! serializes concurrent runs with an advisory lock).

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use std::str::FromStr;
use std::time::Duration;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// The schema holding the read models; `projector rebuild` swaps a fresh copy in under this name.
pub const READ_MODEL_SCHEMA: &str = "read_model";

/// A pool whose connections find the read models (and then `public`) without naming a schema.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    connect_with_schema(url, max_connections, READ_MODEL_SCHEMA).await
}

/// Like [`connect`], for a service that serves reads with filters on skewed data (a status a
/// thousand times rarer than another). PostgreSQL plans every statement with its actual values:
/// after five runs it would otherwise switch to a generic plan that ignores them (measured: a page
/// filtered on two rare statuses of 200,000 invites went from 0.2 ms to 9-12 ms).
pub async fn connect_for_reads(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    pool(url, max_connections, READ_MODEL_SCHEMA, &[("plan_cache_mode", "force_custom_plan")]).await
}

/// Like [`connect`], with the read models looked up in `schema` (a rebuild's scratch schema).
pub async fn connect_with_schema(url: &str, max_connections: u32, schema: &str) -> anyhow::Result<PgPool> {
    pool(url, max_connections, schema, &[]).await
}

async fn pool(url: &str, max_connections: u32, schema: &str, settings: &[(&str, &str)]) -> anyhow::Result<PgPool> {
    let search_path = format!("{schema},public");
    let options = PgConnectOptions::from_str(url)
        .context("DATABASE_URL is not a valid postgres url")?
        .options([("search_path", search_path.as_str())].into_iter().chain(settings.iter().copied()));
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .context("cannot connect to PostgreSQL")
}

pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await.context("cannot connect to PostgreSQL")?;
    // sqlx keeps its bookkeeping table unqualified: it must land in `public`, never in the read
    // model schema that this pool searches first.
    sqlx::query("SET search_path TO public").execute(&mut *conn).await?;
    let result = MIGRATOR.run(&mut *conn).await.context("cannot apply migrations");
    // The connection goes back to the pool: give it its usual search path again.
    let _ = sqlx::query("RESET search_path").execute(&mut *conn).await;
    result
}
