//! Reading a credential out of a request, before anything is looked up: the `Authorization`
//! header's bearer token, its HTTP Basic user and password (the Argyle dialect's form), the
//! `x-api-key` header's key (the Vortex dialect) and the parts of an API key
//! (`rsvp_<key id>_<secret>`). Pure string handling (base64 aside), so it is fuzzed on its own
//! (`fuzz/`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

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

/// The user id and password of an `Authorization: Basic <base64(user:password)>` header value
/// (RFC 7617: scheme case-insensitive, the password is everything after the first colon); `None`
/// for any other scheme, bad base64, text that is not UTF-8, or no colon.
pub fn basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// The API key a Basic credential stands for: username = key id, password = secret, as the
/// Argyle dialect presents them. `None` when either is empty or the key id holds the separator
/// (`_`), so that [`split_api_key`] gives back exactly the two parts given.
pub fn basic_api_key(header: &str) -> Option<String> {
    let (id, secret) = basic(header)?;
    (!id.is_empty() && !secret.is_empty() && !id.contains('_')).then(|| format!("rsvp_{id}_{secret}"))
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

    fn basic_of(credentials: &str) -> String {
        format!("Basic {}", STANDARD.encode(credentials))
    }

    #[test]
    fn a_basic_credential_gives_user_and_password_and_the_key_they_stand_for() {
        assert_eq!(basic(&basic_of("ab12:cd:34")), Some(("ab12".into(), "cd:34".into())));
        assert_eq!(basic(&format!("basic  {} ", STANDARD.encode("a:b"))), Some(("a".into(), "b".into())));
        assert_eq!(basic_api_key(&basic_of("ab12:cd34")).as_deref(), Some("rsvp_ab12_cd34"));
    }

    #[test]
    fn anything_but_a_well_formed_basic_credential_gives_nothing() {
        let not_utf8 = format!("Basic {}", STANDARD.encode([0xff, b':', b'x']));
        for bad in
            ["", "Basic", "Basic ", "Basic !!!", "Bearer YTpi", "BasicYTpi", "YTpi", &basic_of("nocolon"), &not_utf8]
        {
            assert_eq!(basic(bad), None, "{bad:?}");
        }
        for bad in [basic_of(":secret"), basic_of("id:"), basic_of("a_b:secret"), "Bearer rsvp_a_b".into()] {
            assert_eq!(basic_api_key(&bad), None, "{bad:?}");
        }
    }
}
