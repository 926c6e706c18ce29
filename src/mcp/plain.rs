//! The plain body's fast reading: one pass over the bytes that reads the deciding members of
//! a JSON-RPC body when the body is *plain*, and otherwise answers "unsure" so that the serde
//! reader ([`super::jsonrpc`]) decides.
//!
//! Written by hand because the serde reader costs about 20 instructions a byte (visitors,
//! `Cow`s, error plumbing), which was most of what the per-tool check added to a `tools/call`.
//! It is sound by construction rather than by completeness: it answers only for a body that is
//! strict JSON (RFC 8259 grammar, the same that serde_json accepts) in which no member name of a
//! message or of its `params`, and no `method` or `params.name` value, holds an escape, none of
//! `method`, `params` and `params.name` is a number (serde reads those, and refuses one out of
//! range), and no deciding member is repeated; values nest at most [`MAX_DEPTH`] deep, and
//! strings elsewhere hold no `\u` escape. Everything else, valid or not, is "unsure" (`None`), and the
//! serde reader reads it as before. A unit test checks that whenever this answers, the serde
//! reader answers the same, over the fuzz seeds, their prefixes and one-byte deletions.

use std::borrow::Cow;

use super::jsonrpc::{Body, Member, Message};

/// Deeper values are left to the serde reader (its limit is 128).
pub(super) const MAX_DEPTH: usize = 64;

/// The body's messages, or `None` when the body is not plain (the serde reader decides).
pub(super) fn read(text: &str) -> Option<Body<'_>> {
    let mut scan = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    scan.whitespace();
    let body = match scan.peek()? {
        b'{' => Body::One(scan.message()?),
        b'[' => {
            scan.pos += 1;
            scan.whitespace();
            let mut batch = Vec::new();
            loop {
                batch.push(scan.message()?);
                if scan.close(b']')? {
                    break;
                }
            }
            Body::Batch(batch)
        }
        _ => return None,
    };
    scan.whitespace();
    (scan.pos == scan.bytes.len()).then_some(body)
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    fn whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    /// After a member or an element: `,` (then whitespace) is `false`, `closing` is `true`.
    fn close(&mut self, closing: u8) -> Option<bool> {
        self.whitespace();
        let byte = self.peek()?;
        self.pos += 1;
        if byte == closing {
            return Some(true);
        }
        (byte == b',').then(|| self.whitespace()).map(|()| false)
    }

    /// A member name (without escapes), then its `:`.
    fn member_name(&mut self) -> Option<&'a str> {
        let name = self.plain_string()?;
        self.whitespace();
        self.eat(b':')?;
        self.whitespace();
        Some(name)
    }

    /// One message object's deciding members.
    fn message(&mut self) -> Option<Message<'a>> {
        self.eat(b'{')?;
        self.whitespace();
        let mut message = Message::default();
        if self.eat(b'}').is_some() {
            return Some(message);
        }
        let (mut method, mut params, mut result, mut error) = (false, false, false, false);
        loop {
            match self.member_name()? {
                "method" => {
                    once(&mut method)?;
                    message.method = self.member()?;
                }
                "params" => {
                    once(&mut params)?;
                    message.tool_name = self.params()?;
                }
                "result" => {
                    once(&mut result)?;
                    message.is_response = true;
                    self.skip_value(1)?;
                }
                "error" => {
                    once(&mut error)?;
                    message.is_response = true;
                    self.skip_value(1)?;
                }
                _ => self.skip_value(1)?,
            }
            if self.close(b'}')? {
                return Some(message);
            }
        }
    }

    /// `params`: the `name` member of an object, [`Member::Other`] for anything else.
    fn params(&mut self) -> Option<Member<'a>> {
        if self.peek()? != b'{' {
            return self.other();
        }
        self.pos += 1;
        self.whitespace();
        let mut name = Member::Absent;
        if self.eat(b'}').is_some() {
            return Some(name);
        }
        let mut seen = false;
        loop {
            if self.member_name()? == "name" {
                once(&mut seen)?;
                name = self.member()?;
            } else {
                self.skip_value(2)?;
            }
            if self.close(b'}')? {
                return Some(name);
            }
        }
    }

    /// A deciding value: its string (without escapes), or [`Member::Other`].
    fn member(&mut self) -> Option<Member<'a>> {
        if self.peek()? == b'"' {
            return self.plain_string().map(|s| Member::Str(Cow::Borrowed(s)));
        }
        self.other()
    }

    /// A deciding value that is not what decides: [`Member::Other`]. A number here is left to
    /// serde, which reads it (and refuses one out of `f64`'s range), where elsewhere it only
    /// skips numbers.
    fn other(&mut self) -> Option<Member<'a>> {
        if let b'-' | b'0'..=b'9' = self.peek()? {
            return None;
        }
        self.skip_value(1)?;
        Some(Member::Other)
    }

    /// A string without any escape, borrowed.
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.pos;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' | 0x00..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
        // Both ends are at an ASCII quote, so on character boundaries.
        let string = self.text.get(start..self.pos)?;
        self.pos += 1;
        Some(string)
    }

    /// Any string whose escapes are the one-character ones (a `\u` is left to serde).
    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            match self.peek()? {
                b'"' => break,
                b'\\' => match *self.bytes.get(self.pos + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 2,
                    _ => return None,
                },
                0x00..=0x1f => return None,
                _ => self.pos += 1,
            }
        }
        self.pos += 1;
        Some(())
    }

    /// Any value at `depth` (a message's members are at 1).
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' | b'[' if depth >= MAX_DEPTH => None,
            b'{' => {
                self.pos += 1;
                self.whitespace();
                if self.eat(b'}').is_some() {
                    return Some(());
                }
                loop {
                    self.skip_string()?;
                    self.whitespace();
                    self.eat(b':')?;
                    self.whitespace();
                    self.skip_value(depth + 1)?;
                    if self.close(b'}')? {
                        return Some(());
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                self.whitespace();
                if self.eat(b']').is_some() {
                    return Some(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    if self.close(b']')? {
                        return Some(());
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        let _ = self.eat(b'-');
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.eat(b'.').is_some() {
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }
}

/// Marks a deciding member seen; a second one leaves the body to the serde reader.
fn once(seen: &mut bool) -> Option<()> {
    (!std::mem::replace(seen, true)).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::jsonrpc::read as read_with_serde;

    /// Bodies the scanner must answer for: the usual requests, responses and batches.
    const PLAIN: [&str; 8] = [
        r#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"triage_ticket","arguments":{"id":"7","priority":"high"},"_meta":{"progressToken":"a1b2c3"}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2026-07-28","capabilities":{},"clientInfo":{"name":"c","version":"1.0"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"a \"quoted\"\nline"}]}}"#,
        r#" [ {"jsonrpc":"2.0","id":1,"method":"tools/list"} , {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_tickets","arguments":{"n":-1.5e+3,"ok":true,"none":null,"list":[0,[],{}]}}} ] "#,
        r#"{"id":-0,"method":"tools/call","params":{"arguments":{"a":1,"a":2},"name":"ping"}}"#,
        r#"{"method":"tools/call","params":[]}"#,
        "{\"method\":\"tools/call\",\"params\":{\"name\":\"caf\u{e9}\"}}",
    ];

    /// Bodies it must leave to serde (valid or not): escapes where they decide, `\u` anywhere,
    /// repeated deciding members, deep nesting, and invalid JSON.
    const UNSURE: [&str; 14] = [
        r#"{"method":"tools\/call","params":{"name":"triage_ticket"}}"#,
        r#"{"m\u0065thod":"tools/call","params":{"name":"triage_ticket"}}"#,
        r#"{"method":"tools/call","params":{"n\u0061me":"triage_ticket"}}"#,
        r#"{"method":"tools/call","params":{"name":"list_tickets","arguments":{"x":"\u00e9"}}}"#,
        r#"{"method":"tools/list","method":"tools/call"}"#,
        r#"{"method":"tools/call","params":{"name":"ping","name":"triage_ticket"}}"#,
        r#"{"method":"tools/list",}"#,
        r#"{"id":01,"method":"tools/list"}"#,
        r#"[]"#,
        r#"{"method":"tools/list"} x"#,
        // serde reads these numbers, and refuses them (out of range): every scope is needed.
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":1e400}"#,
        r#"{"method":"tools/call","params":{"name":-1e999}}"#,
        r#"{"method":1e400,"result":{}}"#,
        r#"{"method":"tools/list","params":7}"#,
    ];

    fn deep(levels: usize) -> String {
        format!(
            r#"{{"method":"tools/list","params":{{"a":{}1{}}}}}"#,
            "[".repeat(levels),
            "]".repeat(levels)
        )
    }

    #[test]
    fn the_usual_bodies_are_read_by_the_scanner_as_serde_reads_them() {
        for body in PLAIN {
            let plain = read(body);
            assert!(plain.is_some(), "{body}");
            assert_eq!(plain, read_with_serde(body), "{body}");
        }
        assert!(read(&deep(MAX_DEPTH - 3)).is_some());
    }

    #[test]
    fn the_unusual_bodies_are_left_to_serde() {
        for body in UNSURE {
            assert_eq!(read(body), None, "{body}");
        }
        for out_of_range in &UNSURE[10..13] {
            assert_eq!(read_with_serde(out_of_range), None, "{out_of_range}");
        }
        assert_eq!(read(&deep(MAX_DEPTH)), None);
        assert!(
            read_with_serde(&deep(MAX_DEPTH)).is_some(),
            "serde reads it"
        );
    }

    /// Whenever the scanner answers, serde answers the same: over the fuzz seeds and the
    /// bodies above, each with every prefix, every one-byte deletion and every substitution of
    /// a byte by one of JSON's structural or escape bytes.
    #[test]
    fn whenever_the_scanner_answers_serde_answers_the_same() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/mcp_classify");
        let mut bodies: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
            .collect();
        bodies.extend(PLAIN.iter().chain(&UNSURE).map(|b| b.as_bytes().to_vec()));
        let bytes = b"\"\\,:{}[] 0-.eEtnu/\x01";
        let (mut answered, mut compared) = (0, 0);
        for body in &bodies {
            let mut variants: Vec<Vec<u8>> = vec![body.clone()];
            for n in 0..body.len() {
                variants.push(body[..n].to_vec());
                let mut deleted = body.clone();
                deleted.remove(n);
                variants.push(deleted);
                for &byte in bytes {
                    let mut substituted = body.clone();
                    substituted[n] = byte;
                    variants.push(substituted);
                }
            }
            for variant in &variants {
                let Ok(text) = std::str::from_utf8(variant) else {
                    continue;
                };
                compared += 1;
                if let Some(plain) = read(text) {
                    answered += 1;
                    assert_eq!(Some(plain), read_with_serde(text), "{text}");
                }
            }
        }
        assert!(compared > 20_000, "{compared}");
        assert!(
            answered > compared / 20,
            "the scanner answered {answered} of {compared}"
        );
    }
}
