//! Tenant API keys. A key reads `rsvp_<key id>_<secret>`: the key id finds the row, the secret is
//! checked against its SHA-256, compared in constant time. Secrets are 256 random bits, so a
//! fast hash is enough: there is nothing to brute-force that a slow hash would protect.
//! Only the hash is stored; the key is shown once, when it is created.
//!
//! Verified keys are cached for a short, configurable time (`RSVP_AUTH_CACHE_SECONDS`), under
//! the SHA-256 of the whole presented key: the clear key is never kept, a forged secret for a
//! cached key id misses the cache, and a revoked key stops working within that time. Every
//! authenticated request also passes its key's rate limit (see [`crate::edge::RateLimits`]).

use crate::edge::{EdgeConfig, RateLimits};
use crate::problem::Problem;
use actix_web::{web, FromRequest, HttpRequest};
use anyhow::Context;
use events::TenantId;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;
use uuid::Uuid;

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

/// Most cached keys before expired entries are swept out.
const CACHE_SWEEP_AT: usize = 10_000;

/// Checks credentials against PostgreSQL, remembering good ones for a short while so that a
/// busy client costs one query per `ttl`, not one per request.
pub struct Authenticator {
    pool: PgPool,
    ttl: Duration,
    cache: Mutex<HashMap<Vec<u8>, (Instant, Authenticated)>>,
    limits: RateLimits,
}

impl Authenticator {
    /// Keys cached for 10 s, no rate limit.
    pub fn new(pool: PgPool) -> Self {
        Self { pool, ttl: Duration::from_secs(10), cache: Mutex::default(), limits: RateLimits::unlimited() }
    }

    /// With the cache time and the rate limits of the service's settings.
    pub fn configured(pool: PgPool, edge: &EdgeConfig) -> Self {
        Self { ttl: edge.auth_cache_ttl(), limits: edge.rate_limits(), ..Self::new(pool) }
    }

    /// Verifies a bearer token; `None` for anything that is not a live key.
    pub async fn verify(&self, token: &str) -> anyhow::Result<Option<Authenticated>> {
        let Some((key_id, secret)) = crate::credential::split_api_key(token) else {
            return Ok(None);
        };
        let presented = hash_secret(secret);
        let cache_key = hash_secret(token);
        if !self.ttl.is_zero() {
            if let Some((at, auth)) = self.cache.lock().unwrap().get(&cache_key) {
                if at.elapsed() < self.ttl {
                    return Ok(Some(auth.clone()));
                }
            }
        }
        let row: Option<(Uuid, Vec<u8>, Vec<String>, Option<String>)> = sqlx::query_as(
            "SELECT tenant_id, secret_hash, scopes, inviter_id FROM api_keys \
             WHERE key_id = $1 AND revoked_at IS NULL",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
        .await
        .context("cannot look up api key")?;
        let Some((tenant, stored, scopes, inviter_id)) = row else {
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
        if !self.ttl.is_zero() {
            let mut cache = self.cache.lock().unwrap();
            if cache.len() >= CACHE_SWEEP_AT {
                cache.retain(|_, (at, _)| at.elapsed() < self.ttl);
            }
            cache.insert(cache_key, (Instant::now(), auth.clone()));
        }
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
    let key_id = random_hex(8);
    let secret = random_hex(32);
    let scopes: Vec<&str> = scopes.iter().map(Scope::as_str).collect();
    sqlx::query(
        "INSERT INTO api_keys (key_id, tenant_id, secret_hash, scopes, inviter_id, label) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&key_id)
    .bind(tenant.as_uuid())
    .bind(hash_secret(&secret))
    .bind(&scopes)
    .bind(inviter_id)
    .bind(label)
    .execute(pool)
    .await
    .context("cannot store api key")?;
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
