//! Administration: tenants, API keys, migrations, erasure of personal data.
//!
//!   rsvp-admin create-tenant demo
//!   rsvp-admin create-key --tenant demo --scope invites:write --scope invites:read
//!   rsvp-admin create-key --tenant demo --inviter user-42        # an inviter-scoped token
//!   rsvp-admin check-key rsvp_…                                  # exit 0 if the key is live
//!   rsvp-admin erase --tenant demo bob@example.com               # crypto-shred one address
//!   rsvp-admin offboard --tenant demo                            # every subject, and its keys
//!
//! Erasures go through the command API (the writer destroys the keys and records the erasure),
//! with an admin key made for the call and revoked right after it.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use service_kit::auth::{ensure_tenant, issue_key, Authenticator, Scope};
use service_kit::db;

#[derive(Parser)]
#[command(name = "rsvp-admin", about = "Administer rsvp: tenants, API keys, migrations")]
struct Cli {
    /// PostgreSQL connection string.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: String,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Apply the database migrations.
    Migrate,
    /// Create a tenant (or find it, by name) and print its id.
    CreateTenant { name: String },
    /// Issue an API key for a tenant (created if missing) and print it. Shown once only.
    CreateKey {
        #[arg(long)]
        tenant: String,
        /// Repeatable: invites:write, invites:read, admin. Default: all three.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Make it an inviter-scoped token acting as this inviter id.
        #[arg(long)]
        inviter: Option<String>,
        #[arg(long)]
        label: Option<String>,
    },
    /// Exit 0 if the key is live, 1 otherwise.
    CheckKey { key: String },
    /// Erase an email address's or phone number's personal data from every invite of the tenant
    /// (its key is destroyed: it reads `[erased]` everywhere from now on); prints the invites.
    Erase {
        #[arg(long)]
        tenant: String,
        address: String,
        /// `email` or `phone`; inferred when absent (an `@`: email).
        #[arg(long = "type")]
        kind: Option<String>,
        /// The command API.
        #[arg(long, env = "RSVP_COMMAND_API_URL", default_value = "http://127.0.0.1:8081")]
        api_url: String,
    },
    /// The tenant leaves: erase every subject's personal data, then revoke every key of it.
    Offboard {
        #[arg(long)]
        tenant: String,
        #[arg(long, env = "RSVP_COMMAND_API_URL", default_value = "http://127.0.0.1:8081")]
        api_url: String,
    },
}

/// One call to the command API as the tenant's admin, with a key made for it and revoked after.
async fn as_admin(
    pool: &sqlx::PgPool,
    tenant: &str,
    api_url: &str,
    path: &str,
    body: serde_json::Value,
) -> anyhow::Result<String> {
    let tenant_id = ensure_tenant(pool, tenant).await?;
    let key = issue_key(pool, tenant_id, &[Scope::Admin], None, Some("rsvp-admin (one call)")).await?;
    let answer = reqwest::Client::new()
        .post(format!("{}{path}", api_url.trim_end_matches('/')))
        .bearer_auth(&key.token)
        .json(&body)
        .send()
        .await;
    sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE key_id = $1").bind(&key.key_id).execute(pool).await?;
    let answer = answer.with_context(|| format!("cannot reach the command API at {api_url}"))?;
    let (status, text) = (answer.status(), answer.text().await?);
    if !status.is_success() {
        bail!("the command API answered {status}: {text}");
    }
    Ok(text)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let pool = db::connect(&cli.database_url, 2).await?;
    db::migrate(&pool).await?;
    match cli.command {
        Cmd::Migrate => eprintln!("migrations applied"),
        Cmd::CreateTenant { name } => println!("{}", ensure_tenant(&pool, &name).await?),
        Cmd::CreateKey { tenant, scopes, inviter, label } => {
            let scopes = if scopes.is_empty() {
                Scope::ALL.to_vec()
            } else {
                scopes
                    .iter()
                    .map(|s| Scope::parse(s).with_context(|| format!("unknown scope {s:?}")))
                    .collect::<anyhow::Result<_>>()?
            };
            let tenant_id = ensure_tenant(&pool, &tenant).await?;
            let key = issue_key(&pool, tenant_id, &scopes, inviter.as_deref(), label.as_deref()).await?;
            println!("{}", key.token);
        }
        Cmd::CheckKey { key } => {
            if Authenticator::new(pool).verify(&key).await?.is_none() {
                bail!("the key is not live");
            }
        }
        Cmd::Erase { tenant, address, kind, api_url } => {
            let body = serde_json::json!({ "address": address, "type": kind });
            println!("{}", as_admin(&pool, &tenant, &api_url, "/v1/personal-data/erasures", body).await?);
        }
        Cmd::Offboard { tenant, api_url } => {
            println!("{}", as_admin(&pool, &tenant, &api_url, "/v1/tenant/offboarding", serde_json::json!({})).await?);
            let tenant_id = ensure_tenant(&pool, &tenant).await?;
            let revoked =
                sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE tenant_id = $1 AND revoked_at IS NULL")
                    .bind(tenant_id.as_uuid())
                    .execute(&pool)
                    .await?
                    .rows_affected();
            eprintln!("{revoked} keys revoked");
        }
    }
    Ok(())
}
