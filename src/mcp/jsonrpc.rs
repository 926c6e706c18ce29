//! The members of a JSON-RPC body that decide its scopes, read for
//! [`McpToolScopes`](super::McpToolScopes): `method`, `params.name`, and whether a message is a
//! response (`result` or `error`). Everything else is skipped.
//!
//! Two passes over the bytes: [`strict_json::check_object`](crate::strict_json::check_object)
//! accepts the document (serde_json's syntax and limits, no duplicate member name at any level,
//! so no member below can be read one way here and another way by the server), then one typed
//! pass borrows the deciding strings from the body. This accepts exactly the documents that
//! building a strict `serde_json::Value` accepted, and reads the same members from them, without
//! allocating the tree (a unit test compares the two readings).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A body: one message or a non-empty batch.
pub(super) enum Body<'a> {
    One(Message<'a>),
    Batch(Vec<Message<'a>>),
}

/// One message's deciding members.
#[derive(Default)]
pub(super) struct Message<'a> {
    pub(super) method: Member<'a>,
    /// `params.name`: [`Member::Other`] when `params` is not an object.
    pub(super) tool_name: Member<'a>,
    /// A response or error the client sends back to the server.
    pub(super) is_response: bool,
}

/// A member that must be a string to count.
#[derive(Default)]
pub(super) enum Member<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    /// Present, but not a string.
    Other,
}

/// The body's messages, or `None` when it is not one JSON document the strict reader accepts,
/// or not an object or a non-empty array of objects.
pub(super) fn read(body: &[u8]) -> Option<Body<'_>> {
    // JSON outside strings is ASCII and serde_json checks UTF-8 inside them: checking the
    // whole body first refuses exactly what reading it would.
    let text = std::str::from_utf8(body).ok()?;
    crate::strict_json::check_object(text).ok()?;
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let body = deserializer.deserialize_any(BodyVisitor).ok()?;
    deserializer.end().ok()?;
    Some(body)
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Body<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message or a non-empty batch")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Body<'de>, A::Error> {
        MessageVisitor.visit_map(map).map(Body::One)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body<'de>, A::Error> {
        let mut batch = Vec::new();
        while let Some(message) = seq.next_element_seed(MessageSeed)? {
            batch.push(message);
        }
        if batch.is_empty() {
            return Err(de::Error::custom("empty batch"));
        }
        Ok(Body::Batch(batch))
    }
}

/// A message, which must be an object (anything else is an error: the body is unclassifiable).
struct MessageSeed;

impl<'de> DeserializeSeed<'de> for MessageSeed {
    type Value = Message<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Message<'de>, D::Error> {
        deserializer.deserialize_any(MessageVisitor)
    }
}

struct MessageVisitor;

impl<'de> Visitor<'de> for MessageVisitor {
    type Value = Message<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC message object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Message<'de>, A::Error> {
        let mut message = Message::default();
        while let Some(name) = map.next_key_seed(Name)? {
            match &*name {
                "method" => message.method = map.next_value_seed(MemberSeed)?,
                "params" => message.tool_name = map.next_value_seed(ParamsSeed)?,
                "result" | "error" => {
                    message.is_response = true;
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(message)
    }
}

/// `params`: the `name` member of an object, [`Member::Other`] for anything but an object.
struct ParamsSeed;

impl<'de> DeserializeSeed<'de> for ParamsSeed {
    type Value = Member<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Member<'de>, D::Error> {
        deserializer.deserialize_any(ParamsVisitor)
    }
}

struct ParamsVisitor;

impl<'de> Visitor<'de> for ParamsVisitor {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member<'de>, A::Error> {
        let mut name = Member::Absent;
        while let Some(key) = map.next_key_seed(Name)? {
            if &*key == "name" {
                name = map.next_value_seed(MemberSeed)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(name)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Member<'de>, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Member::Other)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
}

/// A member's value: its string, borrowed from the body unless it holds escapes.
struct MemberSeed;

impl<'de> DeserializeSeed<'de> for MemberSeed {
    type Value = Member<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Member<'de>, D::Error> {
        deserializer.deserialize_any(MemberVisitor)
    }
}

struct MemberVisitor;

impl<'de> Visitor<'de> for MemberVisitor {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Member<'de>, E> {
        Ok(Member::Str(Cow::Owned(s)))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Member<'de>, A::Error> {
        IgnoredAny.visit_map(map).map(|_| Member::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Member<'de>, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Member::Other)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Member<'de>, E> {
        Ok(Member::Other)
    }
}

/// A member name, borrowed unless it holds escapes.
struct Name;

impl<'de> DeserializeSeed<'de> for Name {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(NameVisitor)
    }
}

struct NameVisitor;

impl<'de> Visitor<'de> for NameVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(s))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(s.to_owned()))
    }
}
