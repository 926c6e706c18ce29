//! JSON read strictly, for token headers and claims sets: parsed or checked in full, with
//! serde_json's limits (UTF-8, nesting depth 128, no trailing characters), refusing duplicate
//! member names at every level. RFC 7515 §5.2 and RFC 7519 §4 allow refusing duplicates, and
//! keeping the last one would let two readers of the same token disagree.
//!
//! [`check_object`] and [`parse_object`] walk a document the same way and accept exactly the
//! same documents: the verifier checks a claims set without building it, and
//! [`Agent::claims`](crate::Agent::claims) builds it later, when a handler asks.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;

use serde::de::{self, DeserializeSeed as _, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON document parsed in full. Duplicates are data errors, everything else syntax errors.
pub(crate) fn parse_object(json: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_slice(json);
    let value = StrictValue.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(value)
}

/// Checks a JSON document as [`parse_object`] would, without building it: the same limits,
/// the same errors, no allocation beyond member names that hold escapes. For the claims set,
/// which is read again by the typed pass and parsed in full only if the handler asks.
pub(crate) fn check_object(json: &str) -> Result<(), serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    StrictCheck.deserialize(&mut deserializer)?;
    deserializer.end()
}

/// `json` checked as [`check_object`] does, then read into `T`, borrowing where it can: the
/// members a caller acts on, from a document known to be whole and free of duplicates.
pub(crate) fn read_checked<'a, T: serde::Deserialize<'a>>(
    json: &'a str,
) -> Result<T, serde_json::Error> {
    check_object(json)?;
    serde_json::from_str(json)
}

/// [`StrictValue`] without the value: walks every member, refusing duplicates.
#[derive(Clone, Copy)]
struct StrictCheck;

impl<'de> de::DeserializeSeed<'de> for StrictCheck {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictCheck {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON without duplicate member names")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(self)?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // A set, not a list: `max_token_bytes` has no ceiling, and a list would be quadratic.
        let mut names: BTreeSet<Cow<'de, str>> = BTreeSet::new();
        while let Some(name) = map.next_key_seed(MemberName)? {
            if !names.insert(name) {
                return Err(de::Error::custom("duplicate member name"));
            }
            map.next_value_seed(self)?;
        }
        Ok(())
    }
}

/// A member name, borrowed from the document unless it holds escapes.
struct MemberName;

impl<'de> de::DeserializeSeed<'de> for MemberName {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for MemberName {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// Builds a [`serde_json::Value`] like its own `Deserialize`, but refuses duplicate members.
#[derive(Clone, Copy)]
struct StrictValue;

impl<'de> de::DeserializeSeed<'de> for StrictValue {
    type Value = serde_json::Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON without duplicate member names")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(value) = seq.next_element_seed(self)? {
            values.push(value);
        }
        Ok(serde_json::Value::Array(values))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = serde_json::Map::new();
        while let Some(name) = map.next_key::<String>()? {
            let value = map.next_value_seed(self)?;
            match members.entry(name) {
                serde_json::map::Entry::Vacant(entry) => {
                    entry.insert(value);
                }
                serde_json::map::Entry::Occupied(_) => {
                    return Err(de::Error::custom("duplicate member name"));
                }
            }
        }
        Ok(serde_json::Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_parsed_in_full_and_duplicates_refused_at_every_level() {
        let parsed = parse_object(br#"{"a":{"b":[1,{"c":null}]},"d":"\u00e9"}"#).unwrap();
        assert_eq!(parsed["a"]["b"][1]["c"], serde_json::Value::Null);
        assert_eq!(parsed["d"], "\u{e9}");
        let duplicate = |json: &str| parse_object(json.as_bytes()).unwrap_err().is_data();
        assert!(duplicate(r#"{"a":1,"a":1}"#));
        assert!(duplicate(r#"{"x":{"a":1,"a":2}}"#));
        assert!(duplicate(r#"{"x":[{"a":1,"a":2}]}"#));
        let syntax = |json: &[u8]| parse_object(json).unwrap_err().is_syntax();
        assert!(syntax(br#"{"a":1} x"#), "trailing characters");
        assert!(syntax(b"{\"a\":\"\xff\"}"), "invalid UTF-8");
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        assert!(syntax(deep.as_bytes()), "nesting past the limit");

        // The check without the value gives the same verdict and kind of error.
        let samples = [
            r#"{"a":{"b":[1,{"c":null}]},"d":"\u00e9","e":1e300,"f":-0.5,"g":true}"#,
            r#"{"a":1,"a":1}"#,
            r#"{"x":[{"a":1,"a":2}]}"#,
            r#"{"\u0061":1,"a":2}"#,
            r#"{"a":1} x"#,
            r#"{"x":{"$serde_json::private::RawValue":1}}"#,
            r#"{"x":{"$serde_json::private::RawValue":"{\"a\":1,\"a\":2}"}}"#,
            r#"{"a":1e400}"#,
            r#"{"a":"\ud800"}"#,
            &deep,
        ];
        for sample in samples {
            let (checked, parsed) = (check_object(sample), parse_object(sample.as_bytes()));
            assert_eq!(checked.is_ok(), parsed.is_ok(), "{sample}");
            if let (Err(checked), Err(parsed)) = (checked, parsed) {
                assert_eq!(checked.classify(), parsed.classify(), "{sample}");
            }
        }
    }
}
