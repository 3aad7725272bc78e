//! Signed checkpoints: where a tenant's chain stood, signed with the writer's ed25519 key.
//!
//! The writer appends one to `<topic>.audit` (key = tenant id) for every tenant whose chain moved,
//! at most every few seconds, in the same Kafka transaction as the last events it covers. The
//! signature is over [`Checkpoint::message`]: a fixed binary encoding of every field but the
//! signature, so that it never depends on how the JSON happens to be written.

use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, Verifier as _};
use events::chain::{Hash, TenantHead};
use events::TenantId;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// The writer's signing key, from a base64 32-byte seed (`RSVP_AUDIT_SIGNING_KEY`).
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    key_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the seed.
        write!(f, "SigningKey({})", self.key_id)
    }
}

impl SigningKey {
    pub fn from_base64_seed(seed: &str) -> anyhow::Result<Self> {
        let bytes = B64.decode(seed.trim()).context("the audit signing key is not base64")?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| anyhow::anyhow!("the audit signing key is {} bytes, not 32", b.len()))?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        let key_id = key_id(&key.verifying_key());
        Ok(Self { key, key_id })
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey { key: self.key.verifying_key(), key_id: self.key_id.clone() }
    }

    /// A checkpoint of `head`, made at `at`.
    pub fn sign(&self, tenant_id: TenantId, head: TenantHead, at: chrono::DateTime<chrono::Utc>) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            tenant_id,
            tenant_seq: head.seq,
            tenant_chain: head.chain.to_hex(),
            at: at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            key_id: self.key_id.clone(),
            signature: String::new(),
        };
        checkpoint.signature = B64.encode(self.key.sign(&checkpoint.message()).to_bytes());
        checkpoint
    }
}

/// The key checkpoints are verified with: base64 of the 32-byte ed25519 public key.
#[derive(Clone, Debug)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
    key_id: String,
}

impl PublicKey {
    /// The base64 form, or a file holding it.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let text = match std::fs::read_to_string(text) {
            Ok(content) if B64.decode(text).is_err() => content.trim().to_owned(),
            _ => text.to_owned(),
        };
        let bytes = B64.decode(&text).context("the public key is not base64 (nor a file holding it)")?;
        let bytes: [u8; 32] =
            bytes.try_into().map_err(|b: Vec<u8>| anyhow::anyhow!("the public key is {} bytes, not 32", b.len()))?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes).context("not an ed25519 public key")?;
        Ok(Self { key_id: key_id(&key), key })
    }

    pub fn to_base64(&self) -> String {
        B64.encode(self.key.as_bytes())
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Whether `checkpoint` was signed by this key, as it is.
    pub fn verify(&self, checkpoint: &Checkpoint) -> Result<(), &'static str> {
        if checkpoint.key_id != self.key_id {
            return Err("signed by another key");
        }
        let signature = B64.decode(&checkpoint.signature).map_err(|_| "its signature is not base64")?;
        let signature = ed25519_dalek::Signature::from_slice(&signature).map_err(|_| "its signature is malformed")?;
        self.key.verify(&checkpoint.message(), &signature).map_err(|_| "its signature does not verify")
    }
}

/// The first 8 bytes of SHA-256 of the public key, in hex: names the key a checkpoint was signed
/// with, so that a rotated key is told apart from a forged signature.
fn key_id(key: &ed25519_dalek::VerifyingKey) -> String {
    sha2::Sha256::digest(key.as_bytes())[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// One signed checkpoint, as the audit topic holds it (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub tenant_id: TenantId,
    pub tenant_seq: u64,
    /// Lowercase hex.
    pub tenant_chain: String,
    /// RFC 3339, when the writer signed it.
    pub at: String,
    pub key_id: String,
    /// Base64 of the ed25519 signature of [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// What is signed: `"rsvp-checkpoint-v1"`, the tenant id's 16 bytes, the seq (u64 BE), the
    /// chain as text, `at` and `key_id`, each text length-prefixed (u32 BE).
    pub fn message(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(200);
        m.extend_from_slice(b"rsvp-checkpoint-v1");
        m.extend_from_slice(self.tenant_id.as_uuid().as_bytes());
        m.extend_from_slice(&self.tenant_seq.to_be_bytes());
        for text in [&self.tenant_chain, &self.at, &self.key_id] {
            m.extend_from_slice(&(text.len() as u32).to_be_bytes());
            m.extend_from_slice(text.as_bytes());
        }
        m
    }

    pub fn chain(&self) -> Option<Hash> {
        Hash::parse_hex(&self.tenant_chain)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a checkpoint always serializes")
    }
}

/// The topic that holds the checkpoints of `topic`'s events.
pub fn audit_topic(topic: &str) -> String {
    format!("{topic}.audit")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_verifies_with_its_key_and_with_nothing_changed() {
        let key = SigningKey::from_base64_seed(&B64.encode([7u8; 32])).unwrap();
        let public = PublicKey::parse(&key.public_key().to_base64()).unwrap();
        let tenant = TenantId::from_uuid(uuid::Uuid::from_u128(5));
        let at = chrono::DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").unwrap().to_utc();
        let checkpoint = key.sign(tenant, TenantHead { seq: 3, chain: Hash([9; 32]) }, at);
        assert_eq!(public.verify(&checkpoint), Ok(()));
        let round: Checkpoint = serde_json::from_slice(&checkpoint.to_json()).unwrap();
        assert_eq!(public.verify(&round), Ok(()));
        let mut moved = checkpoint.clone();
        moved.tenant_seq = 4;
        assert!(public.verify(&moved).is_err());
        let mut rechained = checkpoint.clone();
        rechained.tenant_chain = Hash([8; 32]).to_hex();
        assert!(public.verify(&rechained).is_err());
        let other = SigningKey::from_base64_seed(&B64.encode([8u8; 32])).unwrap();
        assert_eq!(other.public_key().verify(&checkpoint), Err("signed by another key"));
        assert!(SigningKey::from_base64_seed("c2hvcnQ=").is_err());
        assert!(!format!("{key:?}").contains(&B64.encode([7u8; 32])));
    }
}
