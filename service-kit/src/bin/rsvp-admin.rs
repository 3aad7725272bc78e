//! Administration: tenants, API keys, migrations, erasure of personal data.
//!
//!   rsvp-admin create-tenant demo
//!   rsvp-admin create-key --tenant demo --scope invites:write --scope invites:read
//!   rsvp-admin create-key --tenant demo --inviter user-42        # an inviter-scoped token
//!   rsvp-admin create-key --tenant demo --expires-in 90d         # refused after 90 days
//!   rsvp-admin check-key rsvp_…                                  # exit 0 if the key is live
//!   rsvp-admin list-keys --tenant demo                           # never a secret
//!   rsvp-admin revoke-key 3f9c0a7b1d2e4f56                       # refused within a second
//!   rsvp-admin rotate-key 3f9c0a7b1d2e4f56 --overlap 24h         # new key; the old one expires in 24 h
//!   rsvp-admin erase --tenant demo bob@example.com               # crypto-shred one address
//!   rsvp-admin offboard --tenant demo                            # every subject, and its keys
//!   rsvp-admin reshard --from rsvp.invite-events --to rsvp.invite-events.v2   # writer shards
//!
//! Erasures go through the command API (the writer destroys the keys and records the erasure),
//! with an admin key made for the call and revoked right after it.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use service_kit::api_keys::{self, KeyInfo, RotateError};
use service_kit::auth::{ensure_tenant, issue_key_with, Authenticator, KeyOptions, Scope};
use service_kit::db;
use std::time::Duration;

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
        /// Refuse the key after this long (`90d`, `12h`, `1h 30m`); never, by default.
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<Duration>,
    },
    /// Exit 0 if the key is live, 1 otherwise.
    CheckKey { key: String },
    /// List a tenant's keys (revoked and expired ones too): never a secret.
    ListKeys {
        #[arg(long)]
        tenant: String,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key (its id, or the whole key): every instance refuses it within a second.
    RevokeKey { key_id: String },
    /// Issue a new key like this one (tenant, scopes, inviter, label), print it (shown once),
    /// and make the old one expire after the overlap, so clients can move to the new one.
    RotateKey {
        key_id: String,
        /// How long the old key keeps working (`24h`, `30m`, `0s`); at most 90 days.
        #[arg(long, value_parser = parse_duration, default_value = "24h")]
        overlap: Duration,
        /// Refuse the new key after this long; never, by default.
        #[arg(long, value_parser = parse_duration)]
        expires_in: Option<Duration>,
    },
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
    /// Copy an events topic written before writer shards into a new topic partitioned by tenant
    /// (every tenant's events on its shard, each stream in its order), with its checkpoints, and
    /// check the copy (events per stream, their order, their shards). Then point the services at
    /// the new topic and run `projector rebuild` and `projector verify` (see README).
    Reshard {
        /// The topic to copy (left as it is).
        #[arg(long)]
        from: String,
        /// A new topic (refused if it holds records).
        #[arg(long)]
        to: String,
        /// Partitions of the new topic: fixed for its life, as a tenant's shard depends on it.
        /// Default: as many as `--from` has.
        #[arg(long)]
        partitions: Option<usize>,
        #[arg(long, env = "RSVP_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
        brokers: String,
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
    // Never created here: a mistyped name must not make an empty tenant and "erase" nothing in it.
    let tenant_id =
        api_keys::find_tenant(pool, tenant).await?.with_context(|| format!("no tenant named {tenant:?}"))?;
    // Expiring by itself in 5 minutes: a crash or an interrupt before the revocation below must
    // not leave an admin key alive.
    let options = KeyOptions {
        label: Some("rsvp-admin (one call)"),
        expires_at: Some(expiry(Duration::from_secs(300))?),
        ..Default::default()
    };
    let key = issue_key_with(pool, tenant_id, &[Scope::Admin], &options).await?;
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

/// A duration as people write it: `90d`, `24h`, `1h 30m`, `0s` (humantime's syntax).
fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| format!("{e} (write it like `24h`, `90d`, `1h 30m`)"))
}

/// The time a key made now expires, `after` from now.
fn expiry(after: Duration) -> anyhow::Result<chrono::DateTime<chrono::Utc>> {
    chrono::Duration::from_std(after)
        .ok()
        .and_then(|d| chrono::Utc::now().checked_add_signed(d))
        .filter(|t| events::validate::time_in_range(*t))
        .context("--expires-in: too far in the future")
}

/// A key id, given as itself or as the whole key (`rsvp_<id>_<secret>`; the secret is not used).
fn key_id_of(raw: &str) -> &str {
    service_kit::credential::split_api_key(raw).map_or(raw, |(id, _)| id)
}

/// Keys as a table, one a line; `-` for what a key has not.
fn print_table(keys: &[KeyInfo]) {
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or("-".to_owned(), |t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    };
    println!("ID\tSTATUS\tSCOPES\tINVITER\tLABEL\tCREATED\tLAST USED\tEXPIRES\tREVOKED\tROTATED FROM");
    for k in keys {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            k.id,
            k.status,
            k.scopes.join(","),
            k.inviter_id.as_deref().unwrap_or("-"),
            k.label.as_deref().unwrap_or("-"),
            time(Some(k.created_at)),
            time(k.last_used_at),
            time(k.expires_at),
            time(k.revoked_at),
            k.rotated_from.as_deref().unwrap_or("-"),
        );
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let pool = db::connect(&cli.database_url, 2).await?;
    db::migrate(&pool).await?;
    match cli.command {
        Cmd::Migrate => eprintln!("migrations applied"),
        Cmd::CreateTenant { name } => println!("{}", ensure_tenant(&pool, &name).await?),
        Cmd::CreateKey { tenant, scopes, inviter, label, expires_in } => {
            let scopes = if scopes.is_empty() {
                Scope::ALL.to_vec()
            } else {
                scopes
                    .iter()
                    .map(|s| Scope::parse(s).with_context(|| format!("unknown scope {s:?}")))
                    .collect::<anyhow::Result<_>>()?
            };
            let tenant_id = ensure_tenant(&pool, &tenant).await?;
            let options = KeyOptions {
                inviter_id: inviter.as_deref(),
                label: label.as_deref(),
                expires_at: expires_in.map(expiry).transpose()?,
                rotated_from: None,
            };
            let key = issue_key_with(&pool, tenant_id, &scopes, &options).await.context("cannot store api key")?;
            println!("{}", key.token);
        }
        Cmd::ListKeys { tenant, json } => {
            let tenant_id =
                api_keys::find_tenant(&pool, &tenant).await?.with_context(|| format!("no tenant named {tenant:?}"))?;
            let keys = api_keys::list(&pool, tenant_id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                print_table(&keys);
            }
        }
        Cmd::RevokeKey { key_id } => {
            let key_id = key_id_of(&key_id);
            let key = api_keys::revoke(&pool, None, key_id).await?.with_context(|| format!("no key {key_id:?}"))?;
            print_table(std::slice::from_ref(&key));
        }
        Cmd::RotateKey { key_id, overlap, expires_in } => {
            let key_id = key_id_of(&key_id);
            if overlap > api_keys::MAX_OVERLAP {
                bail!("--overlap: at most {}", humantime::format_duration(api_keys::MAX_OVERLAP));
            }
            let expires_at = expires_in.map(expiry).transpose()?;
            let rotated = match api_keys::rotate(&pool, None, key_id, overlap, expires_at).await {
                Ok(rotated) => rotated,
                Err(RotateError::NotFound) => bail!("no key {key_id:?}"),
                Err(e @ (RotateError::NotLive(_) | RotateError::AlreadyRotated(_))) => bail!("{e}"),
                Err(RotateError::Database(e)) => return Err(e).context("cannot rotate the key"),
            };
            println!("{}", rotated.issued.token);
            eprintln!(
                "new key {} issued; the old key {} expires at {}",
                rotated.key.id,
                rotated.previous.id,
                rotated.previous.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            );
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
        Cmd::Reshard { from, to, partitions, brokers } => {
            let r = service_kit::reshard::reshard(&brokers, &from, &to, partitions).await?;
            println!(
                "copied {} events ({} streams, {} tenants) from {from} to {to} ({} partitions, by tenant), and {} checkpoints",
                r.events, r.streams, r.tenants, r.partitions, r.checkpoints
            );
            if r.unplaced > 0 {
                eprintln!("{} records without a readable tenant went to their key's partition", r.unplaced);
            }
            println!("checked: the same events per stream in the same order, every one in its tenant's shard");
        }
        Cmd::Offboard { tenant, api_url } => {
            println!("{}", as_admin(&pool, &tenant, &api_url, "/v1/tenant/offboarding", serde_json::json!({})).await?);
            let tenant_id =
                api_keys::find_tenant(&pool, &tenant).await?.with_context(|| format!("no tenant named {tenant:?}"))?;
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
