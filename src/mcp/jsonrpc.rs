//! The members of a JSON-RPC body that decide its scopes, read for
//! [`McpToolScopes`](super::McpToolScopes): `method`, `params.name`, and whether a message is a
//! response (`result` or `error`). Everything else is skipped.
//!
//! One typed pass over the bytes with serde_json (its syntax and limits: UTF-8, nesting depth
//! 128 along the members it reads, skipped values walked without a limit but without recursion,
//! nothing after the document): the deciding strings are borrowed from the body, every
//! other value is skipped without being built. A deciding member that appears twice (`method`,
//! `params`, `result`, `error` in a message, `name` in `params`) makes the body unclassifiable:
//! this reader and the server could pick different ones. Duplicates elsewhere (in `arguments`,
//! say) cannot change which tool runs and are left to the server. On every body without
//! duplicates this decides as building a strict `serde_json::Value` did, without allocating the
//! tree (a unit test compares the two readings). A plain body (the usual one) is read first by
//! the byte scanner in `plain.rs`, which answers only where it agrees with this reader.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// A body: one message or a non-empty batch.
#[derive(Debug, PartialEq)]
pub(super) enum Body<'a> {
    One(Message<'a>),
    Batch(Vec<Message<'a>>),
}

/// One message's deciding members.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Message<'a> {
    pub(super) method: Member<'a>,
    /// `params.name`: [`Member::Other`] when `params` is not an object.
    pub(super) tool_name: Member<'a>,
    /// A response or error the client sends back to the server.
    pub(super) is_response: bool,
}

/// A member that must be a string to count.
#[derive(Debug, Default, PartialEq)]
pub(super) enum Member<'a> {
    #[default]
    Absent,
    Str(Cow<'a, str>),
    /// Present, but not a string.
    Other,
}

/// The body's messages, or `None` when it is not one JSON document the strict reader accepts,
/// or not an object or a non-empty array of objects.
pub(super) fn read(text: &str) -> Option<Body<'_>> {
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
        let (mut method, mut params, mut result, mut error) = (false, false, false, false);
        while let Some(name) = map.next_key_seed(Name)? {
            match &*name {
                "method" => {
                    once(&mut method)?;
                    message.method = map.next_value_seed(MemberSeed)?;
                }
                "params" => {
                    once(&mut params)?;
                    message.tool_name = map.next_value_seed(ParamsSeed)?;
                }
                "result" | "error" => {
                    once(if &*name == "result" {
                        &mut result
                    } else {
                        &mut error
                    })?;
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

/// Marks a deciding member seen; a second one is an error.
fn once<E: de::Error>(seen: &mut bool) -> Result<(), E> {
    if std::mem::replace(seen, true) {
        return Err(E::custom("duplicate deciding member"));
    }
    Ok(())
}

/// `params`: the `name` member of an object, [`Member::Other`] for anything but an object.
struct ParamsSeed;

impl<'de> DeserializeSeed<'de> for ParamsSeed {
    type Value = Member<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Member<'de>, D::Error> {
        deserializer.deserialize_any(ValueVisitor { params: true })
    }
}

/// A member's value: its string, borrowed from the body unless it holds escapes.
struct MemberSeed;

impl<'de> DeserializeSeed<'de> for MemberSeed {
    type Value = Member<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Member<'de>, D::Error> {
        deserializer.deserialize_any(ValueVisitor { params: false })
    }
}

/// Reads a value as a [`Member`]: a string (`params: false`), or the `name` of an object
/// (`params: true`). Every other value is skipped and is [`Member::Other`].
struct ValueVisitor {
    params: bool,
}

impl ValueVisitor {
    fn string<'de>(&self, s: Cow<'de, str>) -> Member<'de> {
        if self.params {
            Member::Other
        } else {
            Member::Str(s)
        }
    }
}

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Member<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Member<'de>, E> {
        Ok(self.string(Cow::Borrowed(s)))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Member<'de>, E> {
        Ok(self.string(Cow::Owned(s.to_owned())))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Member<'de>, E> {
        Ok(self.string(Cow::Owned(s)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Member<'de>, A::Error> {
        if !self.params {
            return IgnoredAny.visit_map(map).map(|_| Member::Other);
        }
        let mut name = Member::Absent;
        let mut seen = false;
        while let Some(key) = map.next_key_seed(Name)? {
            if &*key == "name" {
                once(&mut seen)?;
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
