//! Tamper evidence: the hash chains every event carries.
//!
//! An event's **canonical bytes** are its CloudEvents attributes as written (every `ce_*` header,
//! and `content-type` as `datacontenttype`, except the chain's own attributes), sorted by name,
//! each name and value length-prefixed, followed by the record value exactly as written to Kafka.
//! An attribute that is absent is simply not listed, and since names are part of the encoding an
//! absent attribute never reads like an empty one. Taking *every* attribute rather than a fixed
//! list means an attribute added later is covered without a new chain version.
//!
//! - `digest = SHA-256("rsvp-event-v1" || canonical)`: one event alone, so that a reader can hash
//!   events in parallel and the chain steps stay 64 bytes;
//! - `stream_chain = SHA-256("rsvp-chain-v1" || previous stream_chain || digest)`, 32 zero bytes
//!   before version 1: over a stream's whole history, the events written before chaining began
//!   included (their values are computed, not carried);
//! - `tenant_chain = SHA-256("rsvp-tenant-v1" || previous tenant_chain || tenant_seq (u64 BE) ||
//!   stream_chain)`, 32 zero bytes before `tenant_seq` 1: over every chained event of a tenant in
//!   the order the single writer decided them. A checkpoint signs a tenant's `(tenant_seq,
//!   tenant_chain)`, which then vouches for every event before it in every stream of the tenant.
//!
//! The three values travel as the extension attributes `streamchain` and `tenantchain` (lowercase
//! hex) and `tenantseq` (decimal), outside the canonical bytes.

use sha2::{Digest, Sha256};
use std::fmt;

/// The extension attributes that carry the chain, without the binary mode's `ce_` prefix.
pub const STREAM_CHAIN: &str = "streamchain";
pub const TENANT_SEQ: &str = "tenantseq";
pub const TENANT_CHAIN: &str = "tenantchain";

/// A SHA-256 value of the chain.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// What comes before the first event of a stream or of a tenant.
    pub const ZERO: Hash = Hash([0; 32]);

    pub fn to_hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        self.0.iter().flat_map(|b| [DIGITS[(b >> 4) as usize] as char, DIGITS[(b & 15) as usize] as char]).collect()
    }

    /// Lowercase or uppercase hex of exactly 32 bytes.
    pub fn parse_hex(s: &str) -> Option<Self> {
        let s = s.as_bytes();
        if s.len() != 64 {
            return None;
        }
        let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = [0u8; 32];
        for (i, pair) in s.chunks(2).enumerate() {
            out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

/// The CloudEvents attribute a Kafka header carries in binary mode, if it carries one.
pub fn attribute_of_header(key: &str) -> Option<&str> {
    match key {
        "content-type" => Some("datacontenttype"),
        _ => key.strip_prefix("ce_"),
    }
}

/// Whether an attribute is one of the chain's own (outside the canonical bytes).
pub fn is_chain_attribute(name: &str) -> bool {
    matches!(name, STREAM_CHAIN | TENANT_SEQ | TENANT_CHAIN)
}

/// The canonical bytes of an event given its attributes (name without `ce_`, value) in any order
/// and its record value. Chain attributes among them are left out.
pub fn canonical<'a>(attributes: impl IntoIterator<Item = (&'a str, &'a [u8])>, value: &[u8]) -> Vec<u8> {
    let mut attributes: Vec<(&str, &[u8])> =
        attributes.into_iter().filter(|(name, _)| !is_chain_attribute(name)).collect();
    attributes.sort_unstable();
    let size = attributes.iter().map(|(n, v)| 8 + n.len() + v.len()).sum::<usize>() + 12 + value.len();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(attributes.len() as u32).to_be_bytes());
    for (name, v) in attributes {
        out.extend_from_slice(&(name.len() as u32).to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v);
    }
    out.extend_from_slice(&(value.len() as u64).to_be_bytes());
    out.extend_from_slice(value);
    out
}

/// The canonical bytes of a Kafka record in binary mode: its headers (key, value) and its value.
/// Headers that carry no CloudEvents attribute are not part of the event and are left out.
pub fn canonical_of_headers<'a>(headers: impl IntoIterator<Item = (&'a str, &'a [u8])>, value: &[u8]) -> Vec<u8> {
    canonical(headers.into_iter().filter_map(|(k, v)| Some((attribute_of_header(k)?, v))), value)
}

/// One event's digest: `SHA-256("rsvp-event-v1" || canonical)`.
pub fn event_digest(canonical: &[u8]) -> Hash {
    Hash(Sha256::new().chain_update(b"rsvp-event-v1").chain_update(canonical).finalize().into())
}

/// The stream chain after an event whose digest is `digest`.
pub fn stream_chain(previous: Hash, digest: Hash) -> Hash {
    Hash(Sha256::new().chain_update(b"rsvp-chain-v1").chain_update(previous.0).chain_update(digest.0).finalize().into())
}

/// The tenant chain after the tenant's event number `seq`, whose stream chain is `stream_chain`.
pub fn tenant_chain(previous: Hash, seq: u64, stream_chain: Hash) -> Hash {
    Hash(
        Sha256::new()
            .chain_update(b"rsvp-tenant-v1")
            .chain_update(previous.0)
            .chain_update(seq.to_be_bytes())
            .chain_update(stream_chain.0)
            .finalize()
            .into(),
    )
}

/// The chain values one event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub stream_chain: Hash,
    pub tenant_seq: u64,
    pub tenant_chain: Hash,
}

impl Link {
    /// The three extension attributes, as `ce_*` headers of the binary mode.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            ("ce_streamchain", self.stream_chain.to_hex()),
            ("ce_tenantseq", self.tenant_seq.to_string()),
            ("ce_tenantchain", self.tenant_chain.to_hex()),
        ]
    }

    /// Reads the chain attributes (looked up by attribute name, without `ce_`): `Ok(None)` when the
    /// event carries none (written before chaining), `Err` naming the attribute that is malformed
    /// or missing when only some are there.
    pub fn from_attributes<'a>(attribute: impl Fn(&str) -> Option<&'a str>) -> Result<Option<Self>, &'static str> {
        let (s, n, t) = (attribute(STREAM_CHAIN), attribute(TENANT_SEQ), attribute(TENANT_CHAIN));
        if s.is_none() && n.is_none() && t.is_none() {
            return Ok(None);
        }
        let stream_chain = s.and_then(Hash::parse_hex).ok_or(STREAM_CHAIN)?;
        let tenant_seq = n.and_then(|n| n.parse::<u64>().ok()).filter(|&n| n > 0).ok_or(TENANT_SEQ)?;
        let tenant_chain = t.and_then(Hash::parse_hex).ok_or(TENANT_CHAIN)?;
        Ok(Some(Self { stream_chain, tenant_seq, tenant_chain }))
    }
}

/// Where a tenant's chain stands: its last chained event's number and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TenantHead {
    pub seq: u64,
    pub chain: Hash,
}

impl TenantHead {
    /// The head after one more event with `stream_chain`.
    pub fn next(&self, stream_chain: Hash) -> Self {
        let seq = self.seq + 1;
        Self { seq, chain: tenant_chain(self.chain, seq, stream_chain) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs() -> Vec<(&'static str, &'static [u8])> {
        vec![
            ("ce_specversion", b"1.0"),
            ("ce_id", b"0193a000-0000-7000-8000-000000000001"),
            ("ce_type", b"dev.rsvp.invite.InviteRevoked.v1"),
            ("ce_subject", b"invites/0193a000-0000-7000-8000-0000000000aa"),
            ("ce_time", b"2026-11-23T09:30:00Z"),
            ("content-type", b"application/json"),
            ("ce_inviteversion", b"2"),
        ]
    }

    #[test]
    fn canonical_bytes_do_not_depend_on_header_order_nor_on_the_chain_headers() {
        let value = br#"{"reason":null}"#;
        let a = canonical_of_headers(attrs(), value);
        let mut shuffled = attrs();
        shuffled.reverse();
        shuffled.push(("ce_streamchain", b"00"));
        shuffled.push(("ce_tenantseq", b"7"));
        shuffled.push(("traceparent", b"not an attribute"));
        assert_eq!(a, canonical_of_headers(shuffled, value));
    }

    #[test]
    fn every_attribute_and_every_value_byte_counts() {
        let value = br#"{"reason":null}"#;
        let base = event_digest(&canonical_of_headers(attrs(), value));
        // Another value byte.
        assert_ne!(base, event_digest(&canonical_of_headers(attrs(), br#"{"reason":"x"}"#)));
        for i in 0..attrs().len() {
            // An attribute changed, or left out.
            let mut changed = attrs();
            changed[i].1 = b"x";
            assert_ne!(base, event_digest(&canonical_of_headers(changed, value)), "attribute {i} changed");
            let mut missing = attrs();
            missing.remove(i);
            assert_ne!(base, event_digest(&canonical_of_headers(missing, value)), "attribute {i} left out");
        }
        // An absent attribute is not an empty one.
        let mut empty = attrs();
        empty.push(("ce_idempotencykey", b""));
        assert_ne!(base, event_digest(&canonical_of_headers(empty, value)));
        // Length prefixes: moving a byte from a name's value to the next name is seen.
        let a = canonical(vec![("a", &b"bc"[..]), ("d", &b""[..])], b"");
        let b = canonical(vec![("a", &b"b"[..]), ("d", &b"c"[..])], b"");
        assert_ne!(a, b);
    }

    #[test]
    fn the_chains_are_fixed_functions_of_their_inputs() {
        // Pinned (and computed apart, in Python, from the description in the module doc): a change
        // of the encoding or of a tag must be a new chain version, never silent.
        let digest = event_digest(&canonical_of_headers(attrs(), br#"{"reason":null}"#));
        let first = stream_chain(Hash::ZERO, digest);
        let second = stream_chain(first, digest);
        assert_ne!(first, second);
        let head = TenantHead::default().next(first).next(second);
        assert_eq!(head.seq, 2);
        assert_eq!(head.chain, tenant_chain(tenant_chain(Hash::ZERO, 1, first), 2, second));
        assert_eq!(digest.to_hex(), PINNED_DIGEST, "the canonical encoding changed");
    }

    const PINNED_DIGEST: &str = "98c1b6a595c0ad7924a1683b5cbb0292f5062d56576a617d96bc638f31d860ee";

    #[test]
    fn links_round_trip_through_their_headers_and_old_events_have_none() {
        let link = Link { stream_chain: Hash([1; 32]), tenant_seq: 42, tenant_chain: Hash([0xab; 32]) };
        let headers = link.headers();
        let read = Link::from_attributes(|name| {
            headers.iter().find(|(k, _)| k.strip_prefix("ce_") == Some(name)).map(|(_, v)| v.as_str())
        });
        assert_eq!(read, Ok(Some(link)));
        assert_eq!(Link::from_attributes(|_| None), Ok(None));
        assert_eq!(Link::from_attributes(|n| (n == TENANT_SEQ).then_some("0")), Err(STREAM_CHAIN));
        assert_eq!(Hash::parse_hex(&Hash([0xfe; 32]).to_hex()), Some(Hash([0xfe; 32])));
        assert_eq!(Hash::parse_hex("zz"), None);
    }
}
