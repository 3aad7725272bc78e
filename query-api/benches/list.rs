//! List latency over 1,000,000 invites of one tenant: p50/p99 of the first page and of a page
//! about 200,000 rows deep (reached by keyset, as a client walking `next` would), and their
//! ratio. The rows are generated in PostgreSQL; the query API runs in-process on a free port.
//!
//!   cargo bench -p query-api --bench list -- [N]
//!
//! The last line, `result: {...}`, is the same figures as JSON (milliseconds), for `make bench`.
//! Needs PostgreSQL (`make run`); `RSVP_BENCH_DATABASE_URL` names a role that may create databases.

use query_api::cursor::{owner, Cursor, CursorCodec, Direction};
use query_api::params::Pairs;
use query_api::{Application, Config};
use sqlx::{Connection, PgConnection};
use std::time::{Duration, Instant};
use uuid::Uuid;

const QUERY: &str = "limit=50";
const SAMPLES: usize = 300;

async fn latencies(http: &reqwest::Client, url: &str, key: &str) -> anyhow::Result<Vec<Duration>> {
    let mut all = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let started = Instant::now();
        let r = http.get(url).bearer_auth(key).send().await?;
        anyhow::ensure!(r.status().is_success(), "{url}: {}", r.status());
        r.bytes().await?;
        all.push(started.elapsed());
    }
    all.sort();
    Ok(all)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let n: i64 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1_000_000);
    let admin_url = std::env::var("RSVP_BENCH_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://rsvp:rsvp@127.0.0.1:5433/postgres".into());
    let database = format!("rsvp_bench_{}", Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url).await?;
    sqlx::query(&format!("CREATE DATABASE \"{database}\"")).execute(&mut admin).await?;
    let url = rsvp_tests::infra::with_database(&admin_url, &database);
    let pool = service_kit::db::connect(&url, 4).await?;
    service_kit::db::migrate(&pool).await?;
    let tenant = service_kit::auth::ensure_tenant(&pool, "bench").await?;
    let key = service_kit::auth::issue_key(&pool, tenant, &[service_kit::Scope::InvitesRead], None, None).await?.token;

    let started = Instant::now();
    sqlx::query(
        "INSERT INTO invites (invite_id, tenant_id, status, open, inviter_id, inviter_name, invitation_type, link_token, \
         created_at, updated_at, version, created) \
         SELECT gen_random_uuid(), $1, 'created', true, 'inviter-' || (g % 97), 'Ann', 'single_use', md5(g::text), \
         now() - g * interval '1 second', now() - g * interval '1 second', 1, \
         jsonb_build_object('targets', jsonb_build_array(jsonb_build_object('type', 'email', 'value', 'p' || g || '@example.com'))) \
         FROM generate_series(1, $2) g",
    )
    .bind(tenant.as_uuid())
    .bind(n)
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE invites").execute(&pool).await?;
    println!("generated {n} invites in {:.1?}", started.elapsed());

    let secret = "bench-secret";
    let app = Application::build(Config {
        host: "127.0.0.1".into(),
        port: 0,
        database_url: url.clone(),
        public_url: None,
        cursor_secret: secret.into(),
        read_your_writes_timeout_ms: 2000,
        edge: Default::default(),
        vault: service_kit::vault::VaultConfig { master_key: rsvp_tests::MASTER_KEY.into() },
    })
    .await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let server = actix_web::rt::spawn(app.run_until_stopped());

    // The cursor a client holds after walking ~200,000 rows.
    let deep = (n / 5).max(1);
    let (at, id): (chrono::DateTime<chrono::Utc>, Uuid) = sqlx::query_as(
        "SELECT created_at, invite_id FROM invites ORDER BY created_at DESC, invite_id DESC OFFSET $1 LIMIT 1",
    )
    .bind(deep - 1)
    .fetch_one(&pool)
    .await?;
    let fingerprint = Pairs::parse(QUERY).map_err(|p| anyhow::anyhow!("{p}"))?.fingerprint();
    let cursor = CursorCodec::new(secret)
        .encode(&Cursor { created_at: at, id, direction: Direction::Next, query: fingerprint }, &owner(tenant, None));

    let http = reqwest::Client::new();
    let (first_url, deep_url) =
        (format!("{base}/v1/invites?{QUERY}"), format!("{base}/v1/invites?{QUERY}&cursor={cursor}"));
    // One unmeasured round of each first, so neither pays alone for connections, plans and cold pages.
    latencies(&http, &first_url, &key).await?;
    latencies(&http, &deep_url, &key).await?;
    let first = latencies(&http, &first_url, &key).await?;
    let deep_page = latencies(&http, &deep_url, &key).await?;
    println!("first page ({QUERY}, {SAMPLES} requests): p50 {:.2?} p99 {:.2?}", pct(&first, 0.5), pct(&first, 0.99));
    println!("page {deep} rows deep: p50 {:.2?} p99 {:.2?}", pct(&deep_page, 0.5), pct(&deep_page, 0.99));
    println!(
        "deep / first: p50 {:.2} p99 {:.2}",
        pct(&deep_page, 0.5).as_secs_f64() / pct(&first, 0.5).as_secs_f64(),
        pct(&deep_page, 0.99).as_secs_f64() / pct(&first, 0.99).as_secs_f64()
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "result: {}",
        serde_json::json!({
            "invites": n, "deep_rows": deep, "query": QUERY, "samples": SAMPLES,
            "first_p50_ms": ms(pct(&first, 0.5)), "first_p99_ms": ms(pct(&first, 0.99)),
            "deep_p50_ms": ms(pct(&deep_page, 0.5)), "deep_p99_ms": ms(pct(&deep_page, 0.99)),
        })
    );
    server.abort();
    pool.close().await;
    sqlx::query(&format!("DROP DATABASE \"{database}\" WITH (FORCE)")).execute(&mut admin).await?;
    Ok(())
}
