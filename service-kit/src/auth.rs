//! Tenant API keys. A key reads `rsvp_<key id>_<secret>`: the key id finds the row, the secret is
//! checked against its SHA-256, compared in constant time. Secrets are 256 random bits, so a
//! fast hash is enough: there is nothing to brute-force that a slow hash would protect.
//! Only the hash is stored; the key is shown once, when it is created.
//!
//! A key is live until it is revoked (`revoked_at`) or reaches its expiry (`expires_at`); either
//! way it is refused with the same 401 as a key that never existed.
//!
//! Verified keys are cached for a short, configurable time (`RSVP_AUTH_CACHE_SECONDS`), under
//! the SHA-256 of the whole presented key: the clear key is never kept, a forged secret for a
//! cached key id misses the cache. The cache saves a query per request; it must not keep a
//! revoked key working, so it is kept in step with the database:
//!
//! - **Revocation within a second, on every instance.** A trigger numbers every change of a key
//!   that matters to the cache (revoked, expiry moved, deleted) in `api_key_changes`. Each
//!   instance polls that feed every [`POLL_EVERY`] (one indexed range query on a tiny table) and
//!   evicts the changed keys; a request that finds its key gone reads the row again. An entry is
//!   trusted only while the last completed poll began less than [`STALE_AFTER`] ago: when the
//!   database cannot be polled, every request reads its key from the database (and fails, if
//!   the database is down, as it would without a cache), so no outage stretches a revoked key's
//!   life. PostgreSQL `LISTEN`/`NOTIFY` would tell sooner, but needs a connection of its own per
//!   instance and loses what is sent while that connection is down, so a poll would be needed
//!   beside it anyway; the poll alone keeps the bound with less to go wrong.
//! - **Expiry.** An entry never outlives its key's expiry: it remembers the expiry as the
//!   database's remaining time, measured on this instance's monotonic clock (no clock skew).
//! - **Last use.** `last_used_at` is written by the same background task, at most once a minute
//!   per key and instance, in one statement for every key used: never a write per request.
//!
//! Every authenticated request also passes its key's rate limit (see [`crate::edge::RateLimits`]).

use crate::edge::{EdgeConfig, RateLimits};
use crate::problem::Problem;
use actix_web::{web, FromRequest, HttpRequest};
use anyhow::Context;
use chrono::{DateTime, Utc};
use events::TenantId;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// How often each instance reads the feed of key changes.
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// A cached key is trusted only while the last completed poll of the change feed began less than
/// this long ago: the most a revoked key can keep working on an instance (plus one request).
pub const STALE_AFTER: Duration = Duration::from_millis(750);
/// `last_used_at` is written at most this often per key and instance.
pub const USAGE_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    InvitesWrite,
    InvitesRead,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::InvitesWrite, Scope::InvitesRead, Scope::Admin];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::InvitesWrite => "invites:write",
            Self::InvitesRead => "invites:read",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }
}

/// Who is calling, once the credential checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub tenant_id: TenantId,
    pub key_id: String,
    pub scopes: Vec<Scope>,
    /// Set for inviter-scoped tokens: the caller acts as this inviter of the tenant only.
    pub inviter_id: Option<String>,
}

impl Authenticated {
    pub fn require(&self, scope: Scope) -> Result<(), Problem> {
        // An inviter's key acts as one inviter: it never administers the whole tenant (its
        // definitions), whatever scopes it carries.
        if scope == Scope::Admin && self.inviter_id.is_some() {
            return Err(Problem::forbidden(scope.as_str())
                .with_detail("an inviter's key acts as its inviter only; this call needs a key of the whole tenant"));
        }
        // `admin` implies the others: one key can run a tenant.
        if self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin) {
            Ok(())
        } else {
            Err(Problem::forbidden(scope.as_str()))
        }
    }
}

impl Authenticated {
    /// The inviter a read is about: a tenant-wide key reads any (`requested`), an inviter's key
    /// its own only; asking an inviter's key about another inviter is a 404 like any foreign
    /// thing, naming nothing.
    pub fn inviter_to_read(&self, requested: Option<String>) -> Result<Option<String>, Problem> {
        match (&self.inviter_id, requested) {
            (None, requested) => Ok(requested),
            (Some(own), Some(other)) if *own != other => Err(Problem::not_found("inviter")),
            (Some(own), _) => Ok(Some(own.clone())),
        }
    }
}

/// A freshly created key: the only moment the plain secret exists.
pub struct IssuedKey {
    pub key_id: String,
    pub token: String,
}

fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A live key's row: tenant, secret hash, scopes, inviter, seconds until its expiry.
type KeyRow = (Uuid, Vec<u8>, Vec<String>, Option<String>, Option<f64>);

/// Most cached keys (or keys whose use was recorded) before old entries are swept out.
const CACHE_SWEEP_AT: usize = 10_000;

/// Checks credentials against PostgreSQL, remembering good ones for a short while so that a
/// busy client costs one query per `ttl`, not one per request (see the module's documentation
/// for how the cache hears of revocations).
pub struct Authenticator {
    shared: Arc<Shared>,
    limits: RateLimits,
}

struct Shared {
    pool: PgPool,
    ttl: Duration,
    cache: Mutex<Cache>,
    /// Whether uses are recorded (`last_used_at`): only with the background task that writes them.
    record_usage: bool,
    usage: Mutex<Usage>,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<Vec<u8>, Entry>,
    /// Bumped whenever entries are evicted because keys changed: a request that read its key
    /// from the database before an eviction must not put what it read into the cache after it.
    generation: u64,
    /// When the last completed poll of the change feed began; `None` before the first.
    synced_at: Option<Instant>,
}

impl Cache {
    fn trusted(&self, now: Instant) -> bool {
        self.synced_at.is_some_and(|at| now.saturating_duration_since(at) < STALE_AFTER)
    }
}

struct Entry {
    at: Instant,
    /// The key's expiry, on this instance's clock.
    until: Option<Instant>,
    auth: Authenticated,
}

#[derive(Default)]
struct Usage {
    /// When each key's use was last queued for writing.
    marked: HashMap<String, Instant>,
    /// Keys used since the last write.
    pending: HashSet<String>,
}

impl Authenticator {
    /// No cache, no rate limit, uses not recorded: for one-off checks (`rsvp-admin check-key`).
    pub fn new(pool: PgPool) -> Self {
        Self::build(pool, Duration::ZERO, RateLimits::unlimited(), false)
    }

    /// With the cache time and the rate limits of the service's settings, and the background
    /// task that keeps the cache in step with revocations and records uses. Must be called
    /// within a Tokio runtime; the task ends when the authenticator is dropped.
    pub fn configured(pool: PgPool, edge: &EdgeConfig) -> Self {
        let this = Self::build(pool, edge.auth_cache_ttl(), edge.rate_limits(), true);
        tokio::spawn(watch(Arc::downgrade(&this.shared)));
        this
    }

    fn build(pool: PgPool, ttl: Duration, limits: RateLimits, record_usage: bool) -> Self {
        let shared = Shared { pool, ttl, cache: Mutex::default(), record_usage, usage: Mutex::default() };
        Self { shared: Arc::new(shared), limits }
    }

    /// Verifies a bearer token; `None` for anything that is not a live key.
    pub async fn verify(&self, token: &str) -> anyhow::Result<Option<Authenticated>> {
        let shared = &self.shared;
        let Some((key_id, secret)) = crate::credential::split_api_key(token) else {
            return Ok(None);
        };
        let presented = hash_secret(secret);
        let cache_key = hash_secret(token);
        let started = Instant::now();
        let mut generation = None;
        if !shared.ttl.is_zero() {
            let cache = shared.cache.lock().unwrap();
            if cache.trusted(started) {
                generation = Some(cache.generation);
                if let Some(entry) = cache.entries.get(&cache_key) {
                    if started.duration_since(entry.at) < shared.ttl && entry.until.is_none_or(|u| started < u) {
                        let auth = entry.auth.clone();
                        drop(cache);
                        shared.mark_used(&auth.key_id);
                        return Ok(Some(auth));
                    }
                }
            }
        }
        let row: Option<KeyRow> = sqlx::query_as(
            "SELECT tenant_id, secret_hash, scopes, inviter_id, \
                    EXTRACT(EPOCH FROM expires_at - now())::float8 FROM api_keys \
             WHERE key_id = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
        )
        .bind(key_id)
        .fetch_optional(&shared.pool)
        .await
        .context("cannot look up api key")?;
        let Some((tenant, stored, scopes, inviter_id, remaining)) = row else {
            return Ok(None);
        };
        if !bool::from(stored.ct_eq(&presented)) {
            return Ok(None);
        }
        let auth = Authenticated {
            tenant_id: TenantId::from_uuid(tenant),
            key_id: key_id.to_owned(),
            scopes: scopes.iter().filter_map(|s| Scope::parse(s)).collect(),
            inviter_id,
        };
        // Counted from before the query: the entry ends no later than the key.
        let until =
            remaining.map(|secs| started + Duration::try_from_secs_f64(secs.max(0.0)).unwrap_or(Duration::MAX / 4));
        if let Some(generation) = generation {
            let mut cache = shared.cache.lock().unwrap();
            let now = Instant::now();
            // Nothing was evicted since this request looked: what it read is not older than the
            // cache's knowledge of changes.
            if cache.generation == generation && cache.trusted(now) {
                if cache.entries.len() >= CACHE_SWEEP_AT {
                    let ttl = shared.ttl;
                    cache.entries.retain(|_, e| now.duration_since(e.at) < ttl && e.until.is_none_or(|u| now < u));
                }
                cache.entries.insert(cache_key, Entry { at: started, until, auth: auth.clone() });
            }
        }
        shared.mark_used(&auth.key_id);
        Ok(Some(auth))
    }

    /// Reads the credential of a request: `Authorization: Bearer <key>`.
    pub async fn authenticate(&self, req: &HttpRequest) -> Result<Authenticated, Problem> {
        let token = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::credential::bearer_token)
            .ok_or_else(Problem::unauthorized)?;
        self.admit(token).await.inspect(|a| remember(req, a))
    }

    /// Reads the credential as the Vortex dialect presents it, `x-api-key: <key>`, and only so:
    /// an `Authorization` header is not looked at.
    pub async fn authenticate_api_key_header(&self, req: &HttpRequest) -> Result<Authenticated, Problem> {
        let token = req
            .headers()
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .and_then(crate::credential::api_key_header)
            .ok_or_else(|| Problem::unauthorized().with_detail("send the key as `x-api-key: <key>`"))?;
        self.admit(token).await.inspect(|a| remember(req, a))
    }

    /// Reads an HTTP Basic credential, as the Argyle dialect presents the key: username = key
    /// id, password = secret (`Authorization: Basic base64(<key id>:<secret>)`). Any other form
    /// (a bearer token included) is a 401: each dialect takes its own credential form only.
    pub async fn authenticate_basic(&self, req: &HttpRequest) -> Result<Authenticated, Problem> {
        let token = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::credential::basic_api_key)
            .ok_or_else(Problem::unauthorized)?;
        self.admit(&token).await.inspect(|a| remember(req, a))
    }

    /// Verifies a presented key and passes it through its rate limit.
    async fn admit(&self, token: &str) -> Result<Authenticated, Problem> {
        match self.verify(token).await {
            Ok(Some(auth)) => {
                self.limits.check(&auth.key_id)?;
                Ok(auth)
            }
            Ok(None) => Err(Problem::unauthorized()),
            Err(e) => {
                tracing::error!(error = ?e, "authentication failed");
                Err(Problem::unavailable("credentials cannot be checked right now"))
            }
        }
    }
}

impl Shared {
    /// Queues a key's use for the next write of `last_used_at`, unless queued within a minute.
    fn mark_used(&self, key_id: &str) {
        if !self.record_usage {
            return;
        }
        let now = Instant::now();
        let mut usage = self.usage.lock().unwrap();
        if usage.marked.get(key_id).is_some_and(|at| now.duration_since(*at) < USAGE_EVERY) {
            return;
        }
        if usage.marked.len() >= CACHE_SWEEP_AT {
            usage.marked.retain(|_, at| now.duration_since(*at) < USAGE_EVERY);
        }
        usage.marked.insert(key_id.to_owned(), now);
        usage.pending.insert(key_id.to_owned());
    }

    /// Reads the change feed past `watermark` and evicts the changed keys; the first read (no
    /// watermark) and the first after the cache stopped being trusted start over from an empty
    /// cache.
    async fn sync(&self, watermark: &mut Option<i64>, began: Instant) -> sqlx::Result<()> {
        let changes: Vec<(i64, String)> = match *watermark {
            None => {
                let seq: i64 =
                    sqlx::query_scalar("SELECT seq FROM api_key_change_counter").fetch_one(&self.pool).await?;
                vec![(seq, String::new())]
            }
            Some(after) => {
                sqlx::query_as("SELECT seq, key_id FROM api_key_changes WHERE seq > $1 ORDER BY seq")
                    .bind(after)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut cache = self.cache.lock().unwrap();
        if watermark.is_none() || !cache.trusted(began) {
            cache.entries.clear();
            cache.generation += 1;
        } else if !changes.is_empty() {
            let changed: HashSet<&str> = changes.iter().map(|(_, k)| k.as_str()).collect();
            cache.entries.retain(|_, e| !changed.contains(e.auth.key_id.as_str()));
            cache.generation += 1;
        }
        cache.synced_at = Some(began);
        if let Some((seq, _)) = changes.last() {
            *watermark = Some(*seq);
        }
        Ok(())
    }

    /// Writes `last_used_at` of the keys used since the last write, in one statement.
    async fn record_uses(&self) -> sqlx::Result<()> {
        let used: Vec<String> = std::mem::take(&mut self.usage.lock().unwrap().pending).into_iter().collect();
        if used.is_empty() {
            return Ok(());
        }
        let written = sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE key_id = ANY($1)")
            .bind(&used)
            .execute(&self.pool)
            .await;
        if written.is_err() {
            // Tried again on the next round.
            self.usage.lock().unwrap().pending.extend(used);
        }
        written.map(drop)
    }
}

/// The background task of a configured [`Authenticator`]: every [`POLL_EVERY`], evicts changed
/// keys from the cache and records uses. Failures are logged when they start and when they end,
/// not on every round.
async fn watch(shared: Weak<Shared>) {
    let mut ticks = tokio::time::interval(POLL_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut watermark = None;
    let mut failing = false;
    loop {
        ticks.tick().await;
        let Some(shared) = shared.upgrade() else { return };
        let began = Instant::now();
        let synced = match shared.sync(&mut watermark, began).await {
            Ok(()) => shared.record_uses().await,
            Err(e) => Err(e),
        };
        match synced {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("api key changes are read again: the key cache is in use");
            }
            Err(e) if !failing => {
                failing = true;
                tracing::warn!(error = %e, "cannot read api key changes: every key is looked up until they can be read");
            }
            _ => {}
        }
    }
}

/// For what runs after the handler: the answer's sealed values open for this tenant (see
/// [`crate::vault::unseal_answers`]).
fn remember(req: &HttpRequest, auth: &Authenticated) {
    actix_web::HttpMessage::extensions_mut(req).insert(crate::vault::AnswerTenant(auth.tenant_id));
}

impl FromRequest for Authenticated {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let auth =
                req.app_data::<web::Data<Authenticator>>().expect("an Authenticator is registered as app data").clone();
            Ok(auth.authenticate(&req).await?)
        })
    }
}

/// Creates a tenant (or finds it by name) and returns its id.
pub async fn ensure_tenant(pool: &PgPool, name: &str) -> anyhow::Result<TenantId> {
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO tenants (tenant_id, name) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING tenant_id",
    )
    .bind(Uuid::now_v7())
    .bind(name)
    .fetch_one(pool)
    .await
    .context("cannot create tenant")?;
    Ok(TenantId::from_uuid(id))
}

/// Issues a new key for a tenant. `inviter_id` makes it an inviter-scoped token.
pub async fn issue_key(
    pool: &PgPool,
    tenant: TenantId,
    scopes: &[Scope],
    inviter_id: Option<&str>,
    label: Option<&str>,
) -> anyhow::Result<IssuedKey> {
    let options = KeyOptions { inviter_id, label, ..KeyOptions::default() };
    issue_key_with(pool, tenant, scopes, &options).await.context("cannot store api key")
}

/// What a new key carries beside its tenant and scopes.
#[derive(Debug, Default, Clone)]
pub struct KeyOptions<'a> {
    /// Makes it an inviter-scoped token acting as this inviter.
    pub inviter_id: Option<&'a str>,
    pub label: Option<&'a str>,
    /// Refused from then on, as if revoked.
    pub expires_at: Option<DateTime<Utc>>,
    /// The key this one replaces (a rotation).
    pub rotated_from: Option<&'a str>,
}

/// Issues a new key, in a transaction of the caller's or on its own.
pub async fn issue_key_with<'e>(
    db: impl sqlx::PgExecutor<'e>,
    tenant: TenantId,
    scopes: &[Scope],
    options: &KeyOptions<'_>,
) -> sqlx::Result<IssuedKey> {
    let key_id = random_hex(8);
    let secret = random_hex(32);
    let scopes: Vec<&str> = scopes.iter().map(Scope::as_str).collect();
    sqlx::query(
        "INSERT INTO api_keys (key_id, tenant_id, secret_hash, scopes, inviter_id, label, expires_at, rotated_from) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&key_id)
    .bind(tenant.as_uuid())
    .bind(hash_secret(&secret))
    .bind(&scopes)
    .bind(options.inviter_id)
    .bind(options.label)
    .bind(options.expires_at)
    .bind(options.rotated_from)
    .execute(db)
    .await?;
    Ok(IssuedKey { token: format!("rsvp_{key_id}_{secret}"), key_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_implies_every_other_scope_but_read_does_not_imply_write() {
        let mut auth = Authenticated {
            tenant_id: TenantId::from_uuid(Uuid::nil()),
            key_id: "k".into(),
            scopes: vec![Scope::Admin],
            inviter_id: None,
        };
        assert!(auth.require(Scope::InvitesWrite).is_ok());
        auth.scopes = vec![Scope::InvitesRead];
        assert!(auth.require(Scope::InvitesRead).is_ok());
        assert_eq!(auth.require(Scope::InvitesWrite).unwrap_err().status, 403);
    }

    #[test]
    fn an_inviter_key_never_has_admin_even_when_it_carries_the_scope() {
        let auth = Authenticated {
            tenant_id: TenantId::from_uuid(Uuid::nil()),
            key_id: "k".into(),
            scopes: vec![Scope::Admin],
            inviter_id: Some("user-42".into()),
        };
        assert!(auth.require(Scope::InvitesWrite).is_ok());
        assert_eq!(auth.require(Scope::Admin).unwrap_err().status, 403);
    }
}
