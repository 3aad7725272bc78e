//! Administration: tenants, API keys, migrations.
//!
//!   rsvp-admin create-tenant demo
//!   rsvp-admin create-key --tenant demo --scope invites:write --scope invites:read
//!   rsvp-admin create-key --tenant demo --inviter user-42        # an inviter-scoped token
//!   rsvp-admin check-key rsvp_…                                  # exit 0 if the key is live

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
    }
    Ok(())
}
