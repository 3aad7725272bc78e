//! The lifecycle of tenant API keys, shared by `rsvp-admin` and the command API's admin routes:
//! list, revoke, rotate with an overlap window. Issuing is [`crate::auth::issue_key_with`];
//! checking a presented key is [`crate::auth::Authenticator`].
//!
//! Keys are operational configuration, not history: they live in PostgreSQL (`api_keys`), never
//! in the event log. Nothing here reads or returns a secret or its hash, except the new key a
//! rotation issues (returned once, to be shown once).
//!
//! Every function takes an optional tenant: the API passes the caller's, so another tenant's key
//! is "not found" like one that does not exist; the operator's `rsvp-admin` passes none.

use crate::auth::{issue_key_with, IssuedKey, KeyOptions, Scope};
use chrono::{DateTime, Utc};
use events::TenantId;
use serde::Serialize;
use sqlx::PgPool;
use std::time::Duration;

/// The longest overlap a rotation gives the old key.
pub const MAX_OVERLAP: Duration = Duration::from_secs(90 * 24 * 3600);
/// The overlap of a rotation that names none: a day.
pub const DEFAULT_OVERLAP: Duration = Duration::from_secs(24 * 3600);
/// Most characters of a key's label.
pub const MAX_LABEL: usize = 200;

/// A key as an operator sees it: never its secret nor the secret's hash.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct KeyInfo {
    pub id: String,
    pub scopes: Vec<String>,
    pub inviter_id: Option<String>,
    pub label: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Within a minute or so: uses are written at most once a minute per key and instance.
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The key this one replaced, when a rotation issued it.
    pub rotated_from: Option<String>,
    /// `active`, `expired` or `revoked`.
    pub status: String,
}

impl KeyInfo {
    pub fn is_live(&self) -> bool {
        self.status == "active"
    }
}

/// The columns of [`KeyInfo`], from `api_keys`; never `secret_hash`.
const COLUMNS: &str = "key_id AS id, scopes, inviter_id, label, created_at, last_used_at, expires_at, revoked_at, \
     rotated_from, CASE WHEN revoked_at IS NOT NULL THEN 'revoked' \
                        WHEN expires_at IS NOT NULL AND expires_at <= now() THEN 'expired' \
                        ELSE 'active' END AS status";

/// A tenant by name, without creating it.
pub async fn find_tenant(pool: &PgPool, name: &str) -> sqlx::Result<Option<TenantId>> {
    let id: Option<uuid::Uuid> =
        sqlx::query_scalar("SELECT tenant_id FROM tenants WHERE name = $1").bind(name).fetch_optional(pool).await?;
    Ok(id.map(TenantId::from_uuid))
}

/// Every key of a tenant, revoked and expired ones included, oldest first.
pub async fn list(pool: &PgPool, tenant: TenantId) -> sqlx::Result<Vec<KeyInfo>> {
    sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, key_id"))
        .bind(tenant.as_uuid())
        .fetch_all(pool)
        .await
}

/// One key (of `tenant`, when given).
pub async fn get(pool: &PgPool, tenant: Option<TenantId>, key_id: &str) -> sqlx::Result<Option<KeyInfo>> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE key_id = $1 AND ($2::uuid IS NULL OR tenant_id = $2)"
    ))
    .bind(key_id)
    .bind(tenant.map(|t| *t.as_uuid()))
    .fetch_optional(pool)
    .await
}

/// Revokes a key (of `tenant`, when given): refused from now on, within a second on every
/// instance (see [`crate::auth`]). Revoking a revoked key changes nothing: it keeps its first
/// `revoked_at`. `None` when there is no such key.
pub async fn revoke(pool: &PgPool, tenant: Option<TenantId>, key_id: &str) -> sqlx::Result<Option<KeyInfo>> {
    sqlx::query_as(&format!(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) \
         WHERE key_id = $1 AND ($2::uuid IS NULL OR tenant_id = $2) RETURNING {COLUMNS}"
    ))
    .bind(key_id)
    .bind(tenant.map(|t| *t.as_uuid()))
    .fetch_optional(pool)
    .await
}

/// What a rotation made.
pub struct Rotated {
    /// The new key, its secret to be shown once.
    pub issued: IssuedKey,
    pub key: KeyInfo,
    /// The old key, with its expiry at the end of the overlap (or earlier, if it had one).
    pub previous: KeyInfo,
}

#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("no such key")]
    NotFound,
    #[error("the key is {}: only a live key is rotated", .0.status)]
    NotLive(KeyInfo),
    /// A key is rotated once: its holder (who may be the one a rotation shuts out) cannot mint
    /// more successors during the overlap.
    #[error("the key was rotated already (to {0}): rotate that one")]
    AlreadyRotated(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Rotates a key (of `tenant`, when given): issues a new key with the same tenant, scopes,
/// inviter and label (and `expires_at`, when given, never later than the old key's own expiry,
/// which it inherits otherwise), and makes the old one expire after
/// `overlap`, so that both work while clients move to the new one. An old key that already
/// expires sooner keeps its expiry. Only a live key is rotated.
pub async fn rotate(
    pool: &PgPool,
    tenant: Option<TenantId>,
    key_id: &str,
    overlap: Duration,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Rotated, RotateError> {
    let overlap = overlap.min(MAX_OVERLAP);
    let mut tx = pool.begin().await?;
    let old: Option<KeyInfo> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE key_id = $1 AND ($2::uuid IS NULL OR tenant_id = $2) FOR UPDATE"
    ))
    .bind(key_id)
    .bind(tenant.map(|t| *t.as_uuid()))
    .fetch_optional(&mut *tx)
    .await?;
    let old = old.ok_or(RotateError::NotFound)?;
    if !old.is_live() {
        return Err(RotateError::NotLive(old));
    }
    let successor: Option<String> = sqlx::query_scalar("SELECT key_id FROM api_keys WHERE rotated_from = $1 LIMIT 1")
        .bind(key_id)
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(successor) = successor {
        return Err(RotateError::AlreadyRotated(successor));
    }
    // The new key lives no longer than the old one was to: a rotation never turns an expiring
    // key into a lasting one.
    let expires_at = match (expires_at, old.expires_at) {
        (Some(asked), Some(old)) => Some(asked.min(old)),
        (asked, old) => asked.or(old),
    };
    let tenant_id: uuid::Uuid =
        sqlx::query_scalar("SELECT tenant_id FROM api_keys WHERE key_id = $1").bind(key_id).fetch_one(&mut *tx).await?;
    let scopes: Vec<Scope> = old.scopes.iter().filter_map(|s| Scope::parse(s)).collect();
    let options = KeyOptions {
        inviter_id: old.inviter_id.as_deref(),
        label: old.label.as_deref(),
        expires_at,
        rotated_from: Some(key_id),
    };
    let issued = issue_key_with(&mut *tx, TenantId::from_uuid(tenant_id), &scopes, &options).await?;
    let previous: KeyInfo = sqlx::query_as(&format!(
        "UPDATE api_keys SET expires_at = LEAST(COALESCE(expires_at, 'infinity'), now() + make_interval(secs => $2)) \
         WHERE key_id = $1 RETURNING {COLUMNS}"
    ))
    .bind(key_id)
    .bind(overlap.as_secs_f64())
    .fetch_one(&mut *tx)
    .await?;
    let key: KeyInfo = sqlx::query_as(&format!("SELECT {COLUMNS} FROM api_keys WHERE key_id = $1"))
        .bind(&issued.key_id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Rotated { issued, key, previous })
}
