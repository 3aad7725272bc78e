//! Whole numbers as JSON Schema counts them: `type: integer` is any number without a fractional
//! part, so `7`, `7.0` and `7e0` are the same integer. serde reads `7.0` into a `u32` as an
//! error; these read it as 7, and still refuse `7.5`, negatives and values out of range.

use serde::de::{Error, Unexpected, Visitor};
use serde::{Deserialize, Deserializer};
use std::fmt;

/// For `#[serde(default, deserialize_with = "service_kit::whole::option_u32")]`.
pub fn option_u32<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u32>, D::Error> {
    Option::<WholeU32>::deserialize(deserializer).map(|o| o.map(|w| w.0))
}

/// A number read as a whole `u32`.
pub struct WholeU32(pub u32);

impl<'de> Deserialize<'de> for WholeU32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(WholeVisitor).map(WholeU32)
    }
}

struct WholeVisitor;

impl Visitor<'_> for WholeVisitor {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a whole number from 0 to {}", u32::MAX)
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<u32, E> {
        u32::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<u32, E> {
        if v.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&v) {
            Ok(v as u32)
        } else {
            Err(E::invalid_value(Unexpected::Float(v), &self))
        }
    }
}

/// A query-string or header integer, read the same way: `10`, `10.0` and `1e1` are 10. At most
/// 2^53 - 1 (JSON's safe integers, the OpenAPI documents' `maximum`): past it a float no longer
/// holds every whole number exactly.
pub fn parse_u64(text: &str) -> Option<u64> {
    const MAX_SAFE: u64 = (1 << 53) - 1;
    let value = match text.parse::<u64>() {
        Ok(v) => v,
        Err(_) => match text.parse::<f64>() {
            Ok(v) if v.is_finite() && v.fract() == 0.0 && (0.0..=MAX_SAFE as f64).contains(&v) => v as u64,
            _ => return None,
        },
    };
    (value <= MAX_SAFE).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "option_u32")]
        n: Option<u32>,
    }

    fn read(json: &str) -> Result<Option<u32>, String> {
        serde_json::from_str::<Body>(json).map(|b| b.n).map_err(|e| e.to_string())
    }

    #[test]
    fn integral_numbers_in_any_notation_are_whole_numbers_and_others_are_refused() {
        assert_eq!(read(r#"{"n": 715}"#), Ok(Some(715)));
        assert_eq!(read(r#"{"n": 715.0}"#), Ok(Some(715)));
        assert_eq!(read(r#"{"n": 7.15e2}"#), Ok(Some(715)));
        assert_eq!(read(r#"{}"#), Ok(None));
        assert_eq!(read(r#"{"n": null}"#), Ok(None));
        for bad in [r#"{"n": 7.5}"#, r#"{"n": -1}"#, r#"{"n": -1.0}"#, r#"{"n": 4294967296}"#, r#"{"n": "7"}"#] {
            assert!(read(bad).is_err(), "{bad} was accepted");
        }
        assert_eq!(parse_u64("10"), Some(10));
        assert_eq!(parse_u64("10.0"), Some(10));
        assert_eq!(parse_u64("1e1"), Some(10));
        assert_eq!(parse_u64("9007199254740991"), Some(9_007_199_254_740_991));
        for bad in ["", "-1", "1.5", "NaN", "inf", "1e300", "x", "9007199254740992", "18446744073709551615"] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
    }
}
