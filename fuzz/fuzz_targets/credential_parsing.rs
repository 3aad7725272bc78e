//! The `Authorization` header (Bearer and Basic), the `x-api-key` header and the API key inside
//! them, as service-kit reads them before any lookup: never a panic, and whatever is accepted is
//! a part of the input, as documented.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../service-kit/src/credential.rs"]
mod credential;

fuzz_target!(|header: &str| {
    if let Some(token) = credential::bearer_token(header) {
        assert!(!token.is_empty() && header.contains(token), "{header:?} gave {token:?}");
        assert_eq!(token, token.trim());
        if let Some((id, secret)) = credential::split_api_key(token) {
            assert!(!id.is_empty() && !secret.is_empty() && !id.contains('_'));
            assert_eq!(format!("rsvp_{id}_{secret}"), token);
        }
    }
    let _ = credential::split_api_key(header);
    // x-api-key (the Vortex dialect): a part of the header, trimmed, with no blank inside.
    if let Some(key) = credential::api_key_header(header) {
        assert!(!key.is_empty() && header.contains(key) && !key.contains(|c: char| c.is_ascii_whitespace()));
    }
    // Basic (the Argyle dialect): the key it stands for splits back into exactly the two parts.
    if let Some(key) = credential::basic_api_key(header) {
        let (user, password) = credential::basic(header).expect("a key comes from a Basic credential");
        assert_eq!(credential::split_api_key(&key), Some((user.as_str(), password.as_str())));
    }
});
