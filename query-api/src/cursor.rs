//! Opaque, tamper-evident keyset cursors: the position (created_at, id) and the direction,
//! as JSON, signed with HMAC-SHA256 and base64url-encoded. A client cannot forge a position,
//! and a cursor from a different query is refused, because the filters' fingerprint is signed too.
//! A cursor is also bound to whom it was issued: the tenant and, for an inviter's key, the
//! inviter are signed with it (not written in it), so another tenant's or another scope's cursor
//! fails the signature check like a forged one.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use uuid::Uuid;

type HmacSha256 = Hmac<Sha256>;
const TAG_LEN: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Rows after the position in the listing order.
    Next,
    /// Rows before it.
    Previous,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "t")]
    pub created_at: DateTime<Utc>,
    #[serde(rename = "i")]
    pub id: Uuid,
    #[serde(rename = "d")]
    pub direction: Direction,
    /// Fingerprint of the filters and order the cursor belongs to.
    #[serde(rename = "q")]
    pub query: u64,
}

#[derive(Clone)]
pub struct CursorCodec {
    key: Vec<u8>,
}

impl CursorCodec {
    pub fn new(secret: &str) -> Self {
        Self { key: secret.as_bytes().to_vec() }
    }

    /// The MAC over who the cursor belongs to and the cursor itself.
    fn mac(&self, owner: &str, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("hmac takes any key length");
        // Length-prefixed, so no owner can be confused with another owner plus a body.
        mac.update(&(owner.len() as u64).to_be_bytes());
        mac.update(owner.as_bytes());
        mac.update(body);
        mac
    }

    /// `owner` names whom the cursor is for (see [`owner`]); only they can use it.
    pub fn encode(&self, cursor: &Cursor, owner: &str) -> String {
        self.sign(&serde_json::to_vec(cursor).expect("cursors serialize"), owner)
    }

    /// Signs any body as `owner`'s cursor text: what [`CursorCodec::encode`] does with a cursor's
    /// JSON. Public so that fuzzing can reach the body's parsing behind the signature check.
    pub fn sign(&self, body: &[u8], owner: &str) -> String {
        let tag: [u8; 32] = self.mac(owner, body).finalize().into_bytes().into();
        let mut bytes = tag[..TAG_LEN].to_vec();
        bytes.extend_from_slice(body);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Whether `text` has a cursor's syntax (URL-safe base64 of a tag and a body), as the OpenAPI
    /// document's pattern for `cursor` says: `^[A-Za-z0-9_-]{23,}$`.
    pub fn is_well_formed(text: &str) -> bool {
        text.len() > (TAG_LEN * 4).div_ceil(3)
            && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }

    /// `None` for anything this service did not issue to `owner`.
    pub fn decode(&self, text: &str, owner: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() <= TAG_LEN {
            return None;
        }
        let (tag, body) = bytes.split_at(TAG_LEN);
        self.mac(owner, body).verify_truncated_left(tag).ok()?;
        serde_json::from_slice(body).ok()
    }
}

/// Whom a cursor is for: the tenant, and the inviter of an inviter's key.
pub fn owner(tenant: events::TenantId, inviter: Option<&str>) -> String {
    match inviter {
        None => format!("tenant:{}", tenant.as_uuid()),
        Some(inviter) => format!("tenant:{}/inviter:{inviter}", tenant.as_uuid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Cursor {
        Cursor { created_at: Utc::now(), id: Uuid::now_v7(), direction: Direction::Next, query: 7 }
    }

    #[test]
    fn a_cursor_round_trips() {
        let codec = CursorCodec::new("k");
        let c = sample();
        assert_eq!(codec.decode(&codec.encode(&c, "tenant:a"), "tenant:a"), Some(c));
    }

    #[test]
    fn a_tampered_cursor_is_refused() {
        let codec = CursorCodec::new("k");
        let text = codec.encode(&sample(), "o");
        let mut bytes = URL_SAFE_NO_PAD.decode(&text).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 1;
        assert_eq!(codec.decode(&URL_SAFE_NO_PAD.encode(bytes), "o"), None);
        assert_eq!(codec.decode("not-a-cursor", "o"), None);
        assert_eq!(codec.decode("", "o"), None);
    }

    #[test]
    fn a_cursor_signed_with_another_key_is_refused() {
        let text = CursorCodec::new("a").encode(&sample(), "o");
        assert_eq!(CursorCodec::new("b").decode(&text, "o"), None);
    }

    #[test]
    fn a_cursor_issued_to_one_owner_is_refused_to_another() {
        let codec = CursorCodec::new("k");
        let text = codec.encode(&sample(), "tenant:a");
        assert!(codec.decode(&text, "tenant:a").is_some());
        assert_eq!(codec.decode(&text, "tenant:b"), None);
        assert_eq!(codec.decode(&text, "tenant:a/inviter:x"), None);
    }
}
