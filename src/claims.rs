//! The wire shapes of a compact JWS: the JOSE header members and the claims we act on, read
//! strictly (base64url without padding or stray bits, JSON objects only, NumericDates as
//! numbers). What they mean is decided in [`verify`](crate::verify).

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::error::InvalidToken;

/// Strict base64url (no padding, no stray bits) of a JSON object.
pub(crate) fn decode_object(part: &str) -> Result<Vec<u8>, InvalidToken> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| InvalidToken::Malformed)?;
    // serde would also read a struct from a JSON array; a JOSE header or claims set is an object.
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(bytes),
        _ => Err(InvalidToken::Malformed),
    }
}

/// The JOSE header members we act on. Unknown members are ignored, including `jku`, `x5u`,
/// `jwk` and `x5c`: keys only ever come from the configured JWKS.
#[derive(Deserialize)]
pub(crate) struct Header<'a> {
    #[serde(borrow)]
    pub(crate) alg: Cow<'a, str>,
    #[serde(default, borrow)]
    pub(crate) kid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) typ: Option<Cow<'a, str>>,
    /// Present at all (even `null`) means refused: we implement no extension.
    #[serde(default, deserialize_with = "present")]
    pub(crate) crit: bool,
}

/// `true` whenever the member exists, whatever its value (including `null`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(deserializer).map(|_| true)
}

/// The claims we check, read from the parsed claims set (which refused duplicates); all of
/// them, unknown ones included, go to [`Agent::claims`].
#[derive(Deserialize)]
pub(crate) struct Claims<'a> {
    #[serde(default, borrow)]
    pub(crate) iss: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) sub: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) aud: Option<Audience<'a>>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) exp: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) nbf: Option<i64>,
    #[serde(default, deserialize_with = "numeric_date")]
    pub(crate) iat: Option<i64>,
    #[serde(default, borrow)]
    pub(crate) jti: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) client_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) scope: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) dat: Option<Dat<'a>>,
}

/// `dat`: an object (a derived struct would also take an array, read by position).
pub(crate) struct Dat<'a> {
    pub(crate) kind: Option<Cow<'a, str>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Dat<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Members<'a> {
            #[serde(default, borrow, rename = "type")]
            kind: Option<Cow<'a, str>>,
        }
        struct ObjectOnly;
        impl<'de> Visitor<'de> for ObjectOnly {
            type Value = Dat<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let members = Members::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Dat { kind: members.kind })
            }
        }
        deserializer.deserialize_map(ObjectOnly)
    }
}

/// `aud`: one string or an array of strings (RFC 7519 §4.1.3).
pub(crate) struct Audience<'a>(pub(crate) Vec<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Audience<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AudienceVisitor;
        impl<'de> Visitor<'de> for AudienceVisitor {
            type Value = Audience<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Audience(vec![Cow::Borrowed(v)]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Audience(vec![Cow::Owned(v.to_owned())]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<Cow<'de, str>>()? {
                    values.push(value);
                }
                Ok(Audience(values))
            }
        }
        deserializer.deserialize_any(AudienceVisitor)
    }
}

/// NumericDate (RFC 7519 §2): a JSON number of seconds, possibly fractional; kept as whole
/// seconds (floored, saturating). Strings, booleans and the like are type errors.
fn numeric_date<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    struct NumericDate;
    impl Visitor<'_> for NumericDate {
        type Value = Option<i64>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a NumericDate")
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(i64::try_from(v).unwrap_or(i64::MAX)))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            // `as` saturates at the i64 bounds; JSON has no NaN or infinities.
            Ok(Some(v.floor() as i64))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    deserializer.deserialize_any(NumericDate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_must_be_canonical_base64url_json_objects() {
        assert!(decode_object("eyJhIjoxfQ").is_ok()); // {"a":1}
        assert!(decode_object("eyJhIjoxfQ==").is_err()); // padding
        assert!(decode_object("eyJhIjoxfR").is_err()); // non-zero trailing bits
        assert!(decode_object("eyJh Ijoxf").is_err()); // whitespace
        assert!(decode_object("WzFd").is_err()); // [1]
    }

    #[test]
    fn dat_must_be_an_object() {
        fn kind(json: &str) -> Result<Option<String>, serde_json::Error> {
            serde_json::from_str::<Claims<'_>>(json)
                .map(|c| c.dat.and_then(|d| d.kind).map(Cow::into_owned))
        }
        assert_eq!(
            kind(r#"{"dat":{"type":"agent"}}"#).unwrap().as_deref(),
            Some("agent")
        );
        assert!(kind(r#"{"dat":["agent"]}"#).unwrap_err().is_data());
        assert!(kind(r#"{"dat":"agent"}"#).unwrap_err().is_data());
        assert!(kind(r#"{"dat":{"type":"agent","type":"user"}}"#).is_err());
    }

    #[test]
    fn numeric_dates_accept_integers_and_floats_only() {
        #[derive(Deserialize)]
        struct T {
            #[serde(default, deserialize_with = "numeric_date")]
            exp: Option<i64>,
        }
        let parse = |json: &str| serde_json::from_str::<T>(json).map(|t| t.exp);
        assert_eq!(parse(r#"{"exp":1700000000}"#).unwrap(), Some(1_700_000_000));
        assert_eq!(
            parse(r#"{"exp":1700000000.9}"#).unwrap(),
            Some(1_700_000_000)
        );
        assert_eq!(parse(r#"{"exp":1e300}"#).unwrap(), Some(i64::MAX));
        assert_eq!(
            parse(r#"{"exp":18446744073709551615}"#).unwrap(),
            Some(i64::MAX)
        );
        assert_eq!(parse(r#"{}"#).unwrap(), None);
        assert!(parse(r#"{"exp":"1700000000"}"#).is_err());
        assert!(parse(r#"{"exp":true}"#).is_err());
    }
}
