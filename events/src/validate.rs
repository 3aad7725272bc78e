//! What a command's values may be, so that every consumer of the log can take every event
//! `decide` produces. An event the writer acknowledged must never be refused later: the
//! PostgreSQL read models cannot store a NUL in `text` or `jsonb`, cannot index an entry over
//! about 2.7 kB, and hold counts in `integer` (at most 2^31 - 1); a redirect's `Location` header
//! cannot carry a line break. The rules live here, once, and every command (of every dialect)
//! goes through them; a refusal names the request field at fault.
//!
//! - Identifiers, names and other one-line strings ([`line`]): no control character at all.
//! - Free text ([`text`]: a message, a reason, a provider's detail, strings inside metadata):
//!   line breaks and tabs are fine, other control characters are not.
//! - Lengths count characters (Unicode scalar values), as JSON Schema's `maxLength` does.

use crate::ids::InviteId;
use crate::rejection::Rejection;
use serde_json::Value;

/// Identifiers and names: an inviter id, a scope id, a target's name, a widget id.
pub const MAX_NAME: usize = 200;
/// Addresses and target values (an email address may have 320 characters).
pub const MAX_ADDRESS: usize = 320;
/// Free text and URLs.
pub const MAX_TEXT: usize = 2000;
/// The largest count a read model's `integer` column holds.
pub const MAX_COUNT: u32 = i32::MAX as u32;

/// A one-line string of at most `max` characters: no control character (C0, DEL, C1).
pub fn line(field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    check(field, value, max, |c| c.is_control(), "a control character")
}

/// Free text of at most `max` characters: line breaks and tabs are kept, no other control
/// character is taken.
pub fn text(field: &str, value: &str, max: usize) -> Result<(), Rejection> {
    check(
        field,
        value,
        max,
        |c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'),
        "a control character other than a line break or a tab",
    )
}

fn check(field: &str, value: &str, max: usize, bad: impl Fn(char) -> bool, what: &str) -> Result<(), Rejection> {
    // A sealed value is the writer's to make: taken from a client, it would read as another.
    if crate::personal::is_sealed(value.trim_start()) {
        return Err(Rejection::invalid(field, format!("must not start with {:?}", crate::personal::SEALED_PREFIX)));
    }
    if value.chars().any(bad) {
        return Err(Rejection::invalid(field, format!("must not contain {what}")));
    }
    if value.chars().count() > max {
        return Err(Rejection::invalid(field, format!("at most {max} characters")));
    }
    Ok(())
}

/// [`line`] for an optional value.
pub fn opt_line(field: &str, value: &Option<String>, max: usize) -> Result<(), Rejection> {
    value.as_deref().map_or(Ok(()), |v| line(field, v, max))
}

/// [`text`] for an optional value.
pub fn opt_text(field: &str, value: &Option<String>, max: usize) -> Result<(), Rejection> {
    value.as_deref().map_or(Ok(()), |v| text(field, v, max))
}

/// A count stored in a read model's `integer` column.
pub fn count(field: &str, value: Option<u32>) -> Result<(), Rejection> {
    match value {
        Some(n) if n > MAX_COUNT => Err(Rejection::invalid(field, format!("at most {MAX_COUNT}"))),
        _ => Ok(()),
    }
}

/// Whether a time is within years 1 to 9999: what RFC 3339 can write and every read model's
/// `timestamptz` holds (PostgreSQL refuses dates before 4713 BC; chrono takes far more). Commands
/// are held to it, and so is every event read back (`Envelope`).
pub fn time_in_range(t: chrono::DateTime<chrono::Utc>) -> bool {
    use chrono::Datelike as _;
    (1..=9999).contains(&t.year())
}

/// A time a command carries: see [`time_in_range`].
pub fn time(field: &str, value: Option<chrono::DateTime<chrono::Utc>>) -> Result<(), Rejection> {
    match value {
        Some(t) if !time_in_range(t) => Err(Rejection::invalid(field, "must be a time between the years 1 and 9999")),
        _ => Ok(()),
    }
}

/// Any JSON the client gives (metadata values): its keys are one-line names, its strings free
/// text, at any depth. `field` names the value; a nested failure names its path
/// (`metadata.plan.tiers[1]`). PostgreSQL `jsonb` takes every other JSON value serde_json
/// produces (finite numbers, nesting up to serde_json's own limit of 128).
pub fn json(field: &str, value: &Value) -> Result<(), Rejection> {
    match value {
        Value::String(s) => text(field, s, MAX_TEXT),
        Value::Array(items) => items.iter().enumerate().try_for_each(|(i, v)| json(&format!("{field}[{i}]"), v)),
        Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            key(field, k)?;
            json(&format!("{field}.{k}"), v)
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
    }
}

/// A key of a client's map (metadata, template variables). A bad key is reported on the map:
/// the key itself cannot name the field.
pub fn key(map: &str, key: &str) -> Result<(), Rejection> {
    // A key is served as it is, in a document whose sealed strings are opened: a sealed value
    // taken as a key would open there, for whoever wrote it.
    if crate::personal::is_sealed(key.trim_start()) {
        return Err(Rejection::invalid(map, format!("a key must not start with {:?}", crate::personal::SEALED_PREFIX)));
    }
    if key.chars().any(char::is_control) {
        return Err(Rejection::invalid(map, "a key must not contain a control character"));
    }
    if key.chars().count() > MAX_NAME {
        return Err(Rejection::invalid(map, format!("a key has at most {MAX_NAME} characters")));
    }
    Ok(())
}

/// A landing URL: an absolute `http` or `https` URL with a host, at most [`MAX_TEXT`]
/// characters, with no space or control character anywhere. The URL standard would quietly
/// drop line breaks and tabs and trim spaces; refusing them instead keeps what is stored what
/// the client meant.
pub fn landing_url(field: &str, value: &str) -> Result<(), Rejection> {
    parse_landing(value).map(drop).ok_or_else(|| {
        Rejection::invalid(
            field,
            format!("must be an absolute http(s) URL of at most {MAX_TEXT} characters, without a user or password"),
        )
    })
}

fn parse_landing(value: &str) -> Option<url::Url> {
    let scheme_ok =
        ["http://", "https://"].iter().any(|s| value.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s)));
    let chars_ok = !value.chars().any(|c| c.is_control() || c.is_whitespace());
    if !scheme_ok || !chars_ok || value.chars().count() > MAX_TEXT {
        return None;
    }
    let url = url::Url::parse(value).ok()?;
    // No credentials: they would be a secret in every invitee's link, and `https://a.com@b.com`
    // reads like a.com while it goes to b.com.
    let credentials = !url.username().is_empty() || url.password().is_some();
    (url.host_str().is_some_and(|h| !h.is_empty()) && !credentials).then_some(url)
}

/// Where the public link sends its visitor: the landing URL with `invitation_id` added to its
/// query, before any fragment. `None` when `landing` is not a landing URL (an event written
/// before the rule, a tenant setting): no redirect then, rather than a broken one.
pub fn landing_redirect(landing: &str, invite_id: InviteId) -> Option<String> {
    let mut url = parse_landing(landing)?;
    url.query_pairs_mut().append_pair("invitation_id", &invite_id.to_string());
    Some(url.into())
}
