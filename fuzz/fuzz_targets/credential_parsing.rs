//! The `Authorization` header and the API key inside it, as service-kit reads them before any
//! lookup: never a panic, and whatever is accepted is a part of the input, as documented.
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
});
