//! Reading a credential out of a request, before anything is looked up: the `Authorization`
//! header's bearer token, the `x-api-key` header's key (the Vortex dialect) and the parts of an
//! API key (`rsvp_<key id>_<secret>`). Pure string handling with no dependency, so it is fuzzed
//! on its own (`fuzz/`).

/// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive as
/// HTTP says, surrounding blanks trimmed); `None` for any other scheme or an empty token.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The key of an `x-api-key: <key>` header value (Vortex's credential form): the whole value,
/// surrounding blanks trimmed; `None` when empty or when it holds a blank inside (an
/// `Authorization`-style `Bearer <key>` sent in the wrong header is not a key).
pub fn api_key_header(header: &str) -> Option<&str> {
    let key = header.trim();
    (!key.is_empty() && !key.contains(|c: char| c.is_ascii_whitespace())).then_some(key)
}

/// Splits `rsvp_<key id>_<secret>` into its parts; `None` when either is missing.
pub fn split_api_key(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("rsvp_")?;
    let (id, secret) = rest.split_once('_')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_splits_into_key_id_and_secret() {
        assert_eq!(split_api_key("rsvp_ab12_cd34"), Some(("ab12", "cd34")));
    }

    #[test]
    fn malformed_tokens_are_refused_before_any_lookup() {
        for bad in ["", "rsvp_", "rsvp__x", "rsvp_x_", "key_ab_cd", "rsvp_abcd"] {
            assert_eq!(split_api_key(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_x_api_key_header_is_the_key_itself() {
        assert_eq!(api_key_header("rsvp_a_b"), Some("rsvp_a_b"));
        assert_eq!(api_key_header(" rsvp_a_b\t"), Some("rsvp_a_b"));
        for bad in ["", "   ", "Bearer rsvp_a_b", "Basic YTpi", "rsvp_a b"] {
            assert_eq!(api_key_header(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_the_bearer_scheme_gives_a_token() {
        assert_eq!(bearer_token("Bearer rsvp_a_b"), Some("rsvp_a_b"));
        assert_eq!(bearer_token("bearer  rsvp_a_b "), Some("rsvp_a_b"));
        for bad in ["", "Bearer", "Bearer ", "Bearer   ", "Basic rsvp_a_b", "Bearerrsvp_a_b", "rsvp_a_b"] {
            assert_eq!(bearer_token(bad), None, "{bad:?}");
        }
    }
}
