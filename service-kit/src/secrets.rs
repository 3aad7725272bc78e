//! What a reader outside the writer may see of an event's data. The public link token is a bearer
//! capability (whoever holds it opens and accepts the invite), so no read and no webhook carries
//! it: they get its SHA-256 instead, which tells whether a token someone holds is this invite's
//! without handing it to every reader.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The event data with its `token` replaced by `token_sha256` (hex), and without the blind
/// indexes of its addresses (`index`, `email_index`, `reply_to_index`, `target_index`): they are
/// the writer's and the read models' to match on, and shown they would tie an erased invite to a
/// later one of the same address.
pub fn redact_token(mut data: Value) -> Value {
    if let Some(fields) = data.as_object_mut() {
        if let Some(Value::String(token)) = fields.remove("token") {
            let digest: String = Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
            fields.insert("token_sha256".into(), Value::String(digest));
        }
        fields.remove("reply_to_index");
        fields.remove("target_index");
        if let Some(inviter) = fields.get_mut("inviter").and_then(Value::as_object_mut) {
            inviter.remove("email_index");
        }
        if let Some(targets) = fields.get_mut("targets").and_then(Value::as_array_mut) {
            without_indexes(targets);
        }
    }
    data
}

/// The targets without their blind indexes.
pub fn without_indexes(targets: &mut [Value]) {
    for target in targets {
        if let Some(target) = target.as_object_mut() {
            target.remove("index");
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn blind_indexes_are_left_out() {
        let data = super::redact_token(serde_json::json!({
            "inviter": { "id": "a", "email_index": "x" }, "targets": [{ "value": "v", "index": "y" }],
            "reply_to_index": ["z"], "target_index": "w",
        }));
        assert_eq!(data, serde_json::json!({ "inviter": { "id": "a" }, "targets": [{ "value": "v" }] }));
    }

    #[test]
    fn the_token_is_replaced_by_its_sha256() {
        let data = super::redact_token(serde_json::json!({ "token": "abc", "message": "hi" }));
        assert_eq!(
            data,
            serde_json::json!({
                "token_sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                "message": "hi",
            })
        );
    }
}
