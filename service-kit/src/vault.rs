//! Crypto-shredding: personal data in the log is sealed (AES-256-GCM) under a data key of its
//! subject (see `events::personal`); the data keys live in PostgreSQL (`vault.subject_keys`),
//! each wrapped under a key-encryption key derived from the master key (`RSVP_MASTER_KEY`).
//! Destroying a subject's key erases every value sealed under it, in the log, in every read
//! model and in every replay, without rewriting anything: they all read [`ERASED`] from then on.
//!
//! Only the writer makes and destroys keys. Readers open what they serve: [`Unsealer`] replaces
//! every sealed string of a JSON document (an API answer, a webhook, a rendered email's data).
//!
//! A sealed value: `rsvp-sealed:v1:<key id>:<nonce ‖ ciphertext ‖ tag>` (URL-safe base64), its
//! associated data binding it to its tenant and key, so a value copied elsewhere never opens.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::Context as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use events::personal::{Secrets, ERASED, SEALED_PREFIX};
use events::TenantId;
use hkdf::Hkdf;
use rand::RngCore;
use serde_json::Value;
use sha2::Sha256;
use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use std::fmt;
use uuid::Uuid;

const VERSION: &str = "v1:";

/// The root secret: every other key is derived from it (HKDF-SHA256), or wrapped under one that
/// is. From `RSVP_MASTER_KEY`, at least 32 characters of a random secret (a KMS would stand
/// behind the same interface).
#[derive(Clone)]
pub struct MasterKey {
    kek: [u8; 32],
    secrets: Secrets,
    fingerprints: [u8; 32],
    snapshots: [u8; 32],
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    pub fn new(secret: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(secret.trim().len() >= 32, "RSVP_MASTER_KEY must be a random secret of at least 32 characters");
        let hk = Hkdf::<Sha256>::new(Some(b"rsvp-master-key"), secret.trim().as_bytes());
        let derive = |info: &[u8]| {
            let mut key = [0u8; 32];
            hk.expand(info, &mut key).expect("32 bytes is a valid HKDF length");
            key
        };
        Ok(Self {
            kek: derive(b"rsvp key-encryption key v1"),
            secrets: Secrets::new(derive(b"rsvp blind index v1"), derive(b"rsvp link token v1")),
            fingerprints: derive(b"rsvp request fingerprint v1"),
            snapshots: derive(b"rsvp writer snapshot v1"),
        })
    }

    /// The key of request fingerprints (`Idempotency-Key`): recorded in the log, an unkeyed hash
    /// of a request body would let anyone holding a guess of the body (an address) confirm it.
    pub fn fingerprint_key(&self) -> &[u8; 32] {
        &self.fingerprints
    }

    /// The blind-index and link-token keys the domain computes with.
    pub fn secrets(&self) -> Secrets {
        self.secrets.clone()
    }

    /// Seals a writer snapshot (AES-256-GCM under a key of its own): only a holder of the master
    /// key can read it or make one the writer accepts, and `context` (what the snapshot says it
    /// is: topic, shard, offset...) is bound to it.
    pub fn seal_snapshot(&self, context: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let sealed = Aes256Gcm::new((&self.snapshots).into())
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: context })
            .expect("encrypting to memory cannot fail");
        [nonce.as_slice(), &sealed].concat()
    }

    /// A sealed snapshot's bytes, if it was sealed under this master key with this `context`.
    pub fn open_snapshot(&self, context: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (nonce, sealed) = sealed.split_at_checked(12)?;
        Aes256Gcm::new((&self.snapshots).into())
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: context })
            .ok()
    }

    fn aad(tenant: TenantId, subject: &str, key_id: Uuid) -> Vec<u8> {
        [b"rsvp-wrap-v1".as_slice(), tenant.as_uuid().as_bytes(), key_id.as_bytes(), subject.as_bytes()].concat()
    }

    /// A data key wrapped for storage.
    pub fn wrap(&self, tenant: TenantId, subject: &str, key: &DataKey) -> Vec<u8> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let aad = Self::aad(tenant, subject, key.id);
        let sealed = Aes256Gcm::new((&self.kek).into())
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &key.key, aad: &aad })
            .expect("encrypting 32 bytes cannot fail");
        [nonce.as_slice(), &sealed].concat()
    }

    /// A stored data key, if it was wrapped under this master key for this tenant and subject.
    pub fn unwrap(&self, tenant: TenantId, subject: &str, key_id: Uuid, wrapped: &[u8]) -> Option<DataKey> {
        let (nonce, sealed) = wrapped.split_at_checked(12)?;
        let aad = Self::aad(tenant, subject, key_id);
        let key = Aes256Gcm::new((&self.kek).into())
            .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad })
            .ok()?;
        Some(DataKey { id: key_id, key: key.try_into().ok()? })
    }
}

/// Where the master key comes from: every service that reads or writes personal data takes it.
#[derive(clap::Args, Clone)]
pub struct VaultConfig {
    /// The root secret of personal-data encryption, blind indexes and link tokens (at least 32
    /// characters). Losing it loses every sealed value; changing it invalidates every link.
    #[arg(long = "master-key", env = "RSVP_MASTER_KEY", hide_env_values = true)]
    pub master_key: String,
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VaultConfig(..)")
    }
}

impl VaultConfig {
    pub fn master(&self) -> anyhow::Result<MasterKey> {
        MasterKey::new(&self.master_key)
    }
}

/// One subject's data key.
#[derive(Clone)]
pub struct DataKey {
    pub id: Uuid,
    key: [u8; 32],
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey({})", self.id)
    }
}

impl DataKey {
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self { id: Uuid::new_v4(), key }
    }

    fn aad(&self, tenant: TenantId) -> Vec<u8> {
        [SEALED_PREFIX.as_bytes(), VERSION.as_bytes(), tenant.as_uuid().as_bytes(), self.id.as_bytes()].concat()
    }

    fn seal_bytes(&self, tenant: TenantId, kind: u8, plain: &[u8]) -> String {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let msg = [&[kind], plain].concat();
        let sealed = Aes256Gcm::new((&self.key).into())
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: &msg, aad: &self.aad(tenant) })
            .expect("AES-GCM encrypts any message under 64 GiB");
        let body = URL_SAFE_NO_PAD.encode([nonce.as_slice(), &sealed].concat());
        format!("{SEALED_PREFIX}{VERSION}{}:{body}", URL_SAFE_NO_PAD.encode(self.id.as_bytes()))
    }

    /// A string, sealed.
    pub fn seal_text(&self, tenant: TenantId, plain: &str) -> String {
        self.seal_bytes(tenant, b's', plain.as_bytes())
    }

    /// Any JSON value, sealed into a string (it opens back into the value).
    pub fn seal_json(&self, tenant: TenantId, value: &Value) -> String {
        self.seal_bytes(tenant, b'j', value.to_string().as_bytes())
    }

    /// What a sealed value of this key holds; `None` if it does not open (tampered, another key
    /// or tenant).
    pub fn open(&self, tenant: TenantId, sealed: &str) -> Option<Value> {
        let (_, body) = parse(sealed)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).ok()?;
        let (nonce, ciphertext) = bytes.split_at_checked(12)?;
        let plain = Aes256Gcm::new((&self.key).into())
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: &self.aad(tenant) })
            .ok()?;
        let (kind, rest) = plain.split_first()?;
        match kind {
            b's' => Some(Value::String(String::from_utf8(rest.to_vec()).ok()?)),
            b'j' => serde_json::from_slice(rest).ok(),
            _ => None,
        }
    }
}

/// The key id and body of a sealed value.
fn parse(sealed: &str) -> Option<(Uuid, &str)> {
    let rest = sealed.strip_prefix(SEALED_PREFIX)?.strip_prefix(VERSION)?;
    let (id, body) = rest.split_once(':')?;
    let id = URL_SAFE_NO_PAD.decode(id).ok()?;
    Some((Uuid::from_slice(&id).ok()?, body))
}

/// The key id a sealed value names.
pub fn key_id_of(sealed: &str) -> Option<Uuid> {
    parse(sealed).map(|(id, _)| id)
}

/// A data key made or destroyed by the writer, applied to the key store in order, in the
/// transaction before the events that rest on it are appended.
#[derive(Debug, Clone)]
pub enum KeyChange {
    Made {
        tenant: TenantId,
        subject: String,
        key_id: Uuid,
        wrapped: Vec<u8>,
    },
    /// One subject's key, by id.
    Destroyed {
        key_id: Uuid,
    },
    /// Every key of a tenant (offboarding).
    DestroyedAll {
        tenant: TenantId,
    },
}

/// The key store: `vault.subject_keys`.
pub mod store {
    use super::*;

    /// Every key of every tenant, as the writer loads them when it starts.
    pub async fn load_all(pool: &PgPool) -> anyhow::Result<Vec<(TenantId, String, Uuid, Vec<u8>)>> {
        let rows: Vec<(Uuid, String, Uuid, Vec<u8>)> =
            sqlx::query_as("SELECT tenant_id, subject, key_id, wrapped FROM vault.subject_keys")
                .fetch_all(pool)
                .await
                .context("cannot read the key store")?;
        Ok(rows.into_iter().map(|(t, s, k, w)| (TenantId::from_uuid(t), s, k, w)).collect())
    }

    /// Applies the writer's key changes, in order, in one transaction.
    pub async fn apply(pool: &PgPool, changes: &[KeyChange]) -> anyhow::Result<()> {
        let mut tx = pool.begin().await?;
        let mut i = 0;
        while i < changes.len() {
            // Consecutive makes go in as one statement: a busy writer's transaction makes hundreds.
            let made: Vec<&KeyChange> =
                changes[i..].iter().take_while(|c| matches!(c, KeyChange::Made { .. })).collect();
            if !made.is_empty() {
                let (mut tenants, mut subjects, mut ids, mut wrapped) = (vec![], vec![], vec![], vec![]);
                for c in &made {
                    if let KeyChange::Made { tenant, subject, key_id, wrapped: w } = c {
                        tenants.push(*tenant.as_uuid());
                        subjects.push(subject.clone());
                        ids.push(*key_id);
                        wrapped.push(w.clone());
                    }
                }
                sqlx::query(
                    "INSERT INTO vault.subject_keys (tenant_id, subject, key_id, wrapped) \
                     SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::bytea[])",
                )
                .bind(&tenants)
                .bind(&subjects)
                .bind(&ids)
                .bind(&wrapped)
                .execute(&mut *tx)
                .await
                .context("cannot store data keys")?;
                i += made.len();
                continue;
            }
            match &changes[i] {
                KeyChange::Destroyed { key_id } => {
                    sqlx::query("DELETE FROM vault.subject_keys WHERE key_id = $1").bind(key_id).execute(&mut *tx).await
                }
                KeyChange::DestroyedAll { tenant } => {
                    sqlx::query("DELETE FROM vault.subject_keys WHERE tenant_id = $1")
                        .bind(tenant.as_uuid())
                        .execute(&mut *tx)
                        .await
                }
                KeyChange::Made { .. } => unreachable!("taken above"),
            }
            .context("cannot destroy data keys")?;
            i += 1;
        }
        tx.commit().await.context("cannot commit the key store")?;
        Ok(())
    }
}

/// Opens the sealed values of documents served to a tenant.
#[derive(Clone)]
pub struct Unsealer {
    master: MasterKey,
    pool: PgPool,
}

impl Unsealer {
    pub fn new(master: MasterKey, pool: PgPool) -> Self {
        Self { master, pool }
    }

    pub fn master(&self) -> &MasterKey {
        &self.master
    }

    /// Replaces every sealed string in `doc` with what it holds, or with [`ERASED`] when its key
    /// is gone (or belongs to another tenant). One query for all the keys the document names.
    pub async fn unseal(&self, tenant: TenantId, doc: &mut Value) -> anyhow::Result<()> {
        let mut ids = HashSet::new();
        visit(doc, &mut |s| {
            if let Some(id) = key_id_of(s) {
                ids.insert(id);
            }
            None
        });
        let keys = if ids.is_empty() { HashMap::new() } else { self.keys(tenant, ids).await? };
        visit(doc, &mut |s| {
            if !s.starts_with(SEALED_PREFIX) {
                return None;
            }
            let opened = key_id_of(s).and_then(|id| keys.get(&id)).and_then(|k| k.open(tenant, s));
            Some(opened.unwrap_or_else(|| Value::String(ERASED.to_owned())))
        });
        Ok(())
    }

    /// [`Unsealer::unseal`] on a JSON document's text, leaving everything but the sealed strings
    /// byte for byte as it was (field order, spacing): each `"rsvp-sealed:..."` string becomes the
    /// JSON of what it holds. A sealed value inside another string (JSON text quoted in JSON) is
    /// left sealed: it is opaque there, never wrong.
    pub async fn unseal_text(&self, tenant: TenantId, text: &[u8]) -> anyhow::Result<Vec<u8>> {
        let found = sealed_strings(text);
        if found.is_empty() {
            return Ok(text.to_vec());
        }
        let ids: HashSet<Uuid> =
            found.iter().filter_map(|(s, e)| key_id_of(std::str::from_utf8(&text[*s..*e]).ok()?)).collect();
        let keys = if ids.is_empty() { HashMap::new() } else { self.keys(tenant, ids).await? };
        let mut out = Vec::with_capacity(text.len());
        let mut at = 0;
        for (start, end) in found {
            let sealed = std::str::from_utf8(&text[start..end]).unwrap_or_default();
            let opened = key_id_of(sealed).and_then(|id| keys.get(&id)).and_then(|k| k.open(tenant, sealed));
            let value = opened.unwrap_or_else(|| Value::String(ERASED.to_owned()));
            // The quotes around the sealed string go with it.
            out.extend_from_slice(&text[at..start - 1]);
            out.extend_from_slice(value.to_string().as_bytes());
            at = end + 1;
        }
        out.extend_from_slice(&text[at..]);
        Ok(out)
    }

    async fn keys(&self, tenant: TenantId, ids: HashSet<Uuid>) -> anyhow::Result<HashMap<Uuid, DataKey>> {
        let ids: Vec<Uuid> = ids.into_iter().collect();
        let rows: Vec<(Uuid, String, Vec<u8>)> = sqlx::query_as(
            "SELECT key_id, subject, wrapped FROM vault.subject_keys WHERE tenant_id = $1 AND key_id = ANY($2)",
        )
        .bind(tenant.as_uuid())
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .context("cannot read the key store")?;
        open_keys(&self.master, tenant, rows)
    }
}

/// The stored keys of a tenant, unwrapped. A stored key that does not unwrap is an error, never
/// an erasure: it means another master key (a misconfigured service), and reading its values as
/// erased would have the dispatcher fail every queued delivery for good and send webhooks with
/// `[erased]` in them, while the APIs answered 200 with every value erased (found by review).
fn open_keys(
    master: &MasterKey,
    tenant: TenantId,
    rows: Vec<(Uuid, String, Vec<u8>)>,
) -> anyhow::Result<HashMap<Uuid, DataKey>> {
    rows.into_iter()
        .map(|(id, subject, wrapped)| {
            let key = master.unwrap(tenant, &subject, id, &wrapped).ok_or_else(|| {
                anyhow::anyhow!("data key {id} does not open with RSVP_MASTER_KEY: is it the right one?")
            })?;
            Ok((id, key))
        })
        .collect()
}

/// The tenant an answer is for, set by whoever authenticated the request (the `Authenticated`
/// extractor does; a dialect handler authenticating otherwise sets it itself).
#[derive(Debug, Clone, Copy)]
pub struct AnswerTenant(pub TenantId);

/// Middleware: opens the sealed values of every JSON answer to an authenticated tenant, so no
/// handler can forget to and none serves a sealed value (or another tenant's). Registered inside
/// compression. An answer it cannot open (the key store is down) becomes a 503: never the sealed
/// or a wrong value.
pub async fn unseal_answers(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    use actix_web::HttpMessage as _;
    let unsealer = req.app_data::<actix_web::web::Data<Unsealer>>().cloned();
    let res = next.call(req).await?;
    let tenant = res.request().extensions().get::<AnswerTenant>().map(|t| t.0);
    let (Some(unsealer), Some(tenant)) = (unsealer, tenant) else { return Ok(res.map_into_boxed_body()) };
    let json = res
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.contains("json"));
    if !json {
        return Ok(res.map_into_boxed_body());
    }
    let (req, res) = res.into_parts();
    let (head, body) = res.into_parts();
    let bytes =
        actix_web::body::to_bytes(body).await.map_err(|e| actix_web::error::ErrorInternalServerError(e.into()))?;
    if !holds_sealed(&bytes) {
        return Ok(actix_web::dev::ServiceResponse::new(req, head.set_body(bytes).map_into_boxed_body()));
    }
    match unsealer.unseal_text(tenant, &bytes).await {
        Ok(body) => Ok(actix_web::dev::ServiceResponse::new(req, head.set_body(body).map_into_boxed_body())),
        Err(e) => {
            tracing::error!(error = ?e, "cannot open the sealed values of an answer");
            let problem = crate::Problem::unavailable("personal data cannot be read right now");
            Ok(actix_web::dev::ServiceResponse::new(req, actix_web::ResponseError::error_response(&problem)))
        }
    }
}

/// Walks every string of a document; where `f` answers a value, the string is replaced by it.
fn visit(doc: &mut Value, f: &mut dyn FnMut(&str) -> Option<Value>) {
    match doc {
        Value::String(s) => {
            if let Some(v) = f(s) {
                *doc = v;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| visit(v, f)),
        Value::Object(map) => map.values_mut().for_each(|v| visit(v, f)),
        _ => {}
    }
}

/// Whether a document holds any sealed value (cheap: a substring search of its text).
pub fn holds_sealed(text: &[u8]) -> bool {
    memchr::memmem::find(text, SEALED_PREFIX.as_bytes()).is_some()
}

/// Where the JSON strings that are a sealed value lie in a document's text (without their
/// quotes): opened by a `"` that is not escaped, closed by a `"` right after the value's last
/// character (a sealed value has no character JSON escapes).
fn sealed_strings(text: &[u8]) -> Vec<(usize, usize)> {
    let prefix = SEALED_PREFIX.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    let finder = memchr::memmem::Finder::new(prefix);
    while let Some(offset) = finder.find(&text[i..]) {
        let start = i + offset;
        let end = start
            + text[start..].iter().take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b':')).count();
        let quoted = start >= 1 && text[start - 1] == b'"' && (start < 2 || text[start - 2] != b'\\');
        // An object's key is never opened: only the writer seals, and it seals values.
        let key = text.get(end + 1..).is_some_and(|rest| rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b':'));
        if quoted && text.get(end) == Some(&b'"') && !key {
            found.push((start, end));
        }
        i = end.max(start + 1);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn master() -> MasterKey {
        MasterKey::new("a test master key of at least thirty-two characters").unwrap()
    }

    #[test]
    fn a_sealed_value_opens_under_its_key_and_tenant_only_and_never_shows_the_clear_value() {
        let tenant = TenantId::from_uuid(Uuid::now_v7());
        let key = DataKey::generate();
        let sealed = key.seal_text(tenant, "bob@example.com");
        assert!(sealed.starts_with("rsvp-sealed:v1:"));
        assert!(!sealed.contains("bob"));
        assert_ne!(sealed, key.seal_text(tenant, "bob@example.com"), "a fresh nonce every time");
        assert_eq!(key.open(tenant, &sealed), Some(json!("bob@example.com")));
        assert_eq!(key.open(TenantId::from_uuid(Uuid::now_v7()), &sealed), None, "another tenant");
        assert_eq!(DataKey::generate().open(tenant, &sealed), None, "another key");
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(key.open(tenant, std::str::from_utf8(&tampered).unwrap()), None);
        let json = key.seal_json(tenant, &json!({"tier": "gold", "n": [1, 2]}));
        let found = sealed_strings(
            format!(r#"{{"a":"{sealed}","b":"x{sealed}","c":"{json}","d":"\"{sealed}\"","{sealed}" : 1}}"#).as_bytes(),
        );
        assert_eq!(found.len(), 2, "the quoted values only, not a key: {found:?}");
        assert_eq!(key.open(tenant, &json), Some(json!({"tier": "gold", "n": [1, 2]})));
        assert_eq!(key_id_of(&sealed), Some(key.id));
    }

    #[test]
    fn a_wrapped_key_unwraps_for_its_tenant_and_subject_only() {
        let (m, tenant, key) = (master(), TenantId::from_uuid(Uuid::now_v7()), DataKey::generate());
        let wrapped = m.wrap(tenant, "a:xyz", &key);
        let back = m.unwrap(tenant, "a:xyz", key.id, &wrapped).unwrap();
        let sealed = key.seal_text(tenant, "hi");
        assert_eq!(back.open(tenant, &sealed), Some(json!("hi")));
        assert!(m.unwrap(tenant, "a:other", key.id, &wrapped).is_none());
        assert!(m.unwrap(TenantId::from_uuid(Uuid::now_v7()), "a:xyz", key.id, &wrapped).is_none());
        let other = MasterKey::new("another master key, also thirty-two characters long").unwrap();
        assert!(other.unwrap(tenant, "a:xyz", key.id, &wrapped).is_none());
    }

    #[test]
    fn a_stored_key_that_does_not_unwrap_is_an_error_not_an_erasure() {
        let (m, tenant, key) = (master(), TenantId::from_uuid(Uuid::now_v7()), DataKey::generate());
        let rows = vec![(key.id, "a:xyz".to_owned(), m.wrap(tenant, "a:xyz", &key))];
        assert!(open_keys(&m, tenant, rows.clone()).unwrap().contains_key(&key.id));
        let other = MasterKey::new("another master key, also thirty-two characters long").unwrap();
        let e = open_keys(&other, tenant, rows).unwrap_err();
        assert!(e.to_string().contains("RSVP_MASTER_KEY"), "{e}");
    }

    #[test]
    fn a_short_master_key_is_refused_and_derived_keys_differ_per_master_key() {
        assert!(MasterKey::new("short").is_err());
        let other = MasterKey::new("another master key, also thirty-two characters long").unwrap();
        assert_ne!(master().secrets(), other.secrets());
    }
}
