//! Webhook signatures, as the receivers check them.
//!
//! - Standard Webhooks (<https://www.standardwebhooks.com>): `webhook-signature: v1,<base64 of
//!   HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>`, the key being the secret's
//!   base64 after its `whsec_` prefix. Several signatures are separated by spaces: during a
//!   rotation the old secret signs beside the new one, so a receiver holding either verifies.
//! - Vortex: `X-Vortex-Signature: <lowercase hex of HMAC-SHA256(secret, body)>`, the key being the
//!   secret as given (its bytes).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The key bytes of a Standard Webhooks secret (`whsec_<base64>`); a secret without the prefix is
/// taken as base64 too, as the reference libraries do.
pub fn standard_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
    STANDARD.decode(encoded).map_err(|e| format!("the secret is not base64: {e}"))
}

/// One `v1,<signature>` entry.
pub fn standard_signature(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header value: one entry per secret still valid.
pub fn standard_header(secrets: &[&str], id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let mut entries = Vec::with_capacity(secrets.len());
    for secret in secrets {
        entries.push(standard_signature(&standard_key(secret)?, id, timestamp, body));
    }
    Ok(entries.join(" "))
}

/// The `X-Vortex-Signature` header value.
pub fn vortex_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification and its reference libraries
    /// (standard-webhooks/libraries, `test_sign_function`).
    #[test]
    fn the_specification_s_example_signs_to_its_published_signature() {
        let key = standard_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = standard_signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_rotation_signs_with_both_secrets() {
        let header = standard_header(&["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_AAAA"], "m", 1, b"{}").unwrap();
        assert_eq!(header.split(' ').count(), 2);
        assert!(header.split(' ').all(|s| s.starts_with("v1,")));
    }

    /// RFC 4231 test case 2 (HMAC-SHA256 of "what do ya want for nothing?" with key "Jefe").
    #[test]
    fn the_vortex_signature_is_the_hex_hmac_of_the_body() {
        assert_eq!(
            vortex_signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
