//! The sign-in message: EIP-4361 (Sign-In with Ethereum) text, and its chain-agnostic form
//! CAIP-122 for Solana, read strictly.
//!
//! Hand-written on purpose. The one maintained Rust parser, `siwe` 0.6, reads only the
//! Ethereum form (the Solana form needs a parser anyway) and is lenient where a signed text
//! must not be: it skips the empty lines around the statement without looking at them, so
//! text that is not an EIP-4361 message parses as one. Here the whole text must match the
//! ABNF line by line, so that what the wallet showed the user is exactly what is checked:
//!
//! ```text
//! [scheme "://"] domain " wants you to sign in with your " ("Ethereum" / "Solana") " account:" LF
//! address LF
//! LF
//! [statement LF]
//! LF
//! "URI: " uri LF
//! "Version: 1" LF
//! "Chain ID: " chain-id LF
//! "Nonce: " nonce LF
//! "Issued At: " date-time
//! [LF "Expiration Time: " date-time]
//! [LF "Not Before: " date-time]
//! [LF "Request ID: " request-id]
//! [LF "Resources:" *(LF "- " uri)]
//! ```
//!
//! - at most [`MAX_MESSAGE_BYTES`]; no CR, no trailing LF, no other whitespace than single
//!   spaces where the ABNF has them; every line in this order, none twice;
//! - an Ethereum address in its EIP-55 checksum form (as EIP-4361's reference library insists);
//!   a Solana address the canonical base58 form of 32 bytes;
//! - the chain id a decimal EIP-155 id for Ethereum, the CAIP-2 reference (genesis hash
//!   prefix) for Solana;
//! - the nonce 8 to [`MAX_NONCE_CHARS`] ASCII letters and digits; times RFC 3339;
//! - the statement printable ASCII without LF, not empty; URIs absolute, without spaces.
//!
//! Deciding whether the message is acceptable (domain, URI, nonce, times, the account) is the
//! registry's; this module only reads it.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::account::{
    WalletAccount, is_checksummed, is_solana_reference, parse_chain_id, parse_solana_key,
};

/// The largest message read.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// The longest nonce read.
pub const MAX_NONCE_CHARS: usize = 64;
/// Most `Resources` entries read.
const MAX_RESOURCES: usize = 32;

/// Why a message does not parse (logged, never sent: the client gets `invalid_grant`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Longer than [`MAX_MESSAGE_BYTES`].
    #[error("message too large")]
    TooLarge,
    /// A CR, a tab, or another control character.
    #[error("message contains a control character")]
    Control,
    /// The first line is not the preamble.
    #[error("missing or malformed preamble")]
    Preamble,
    /// The domain is empty or has characters an authority cannot have.
    #[error("malformed domain")]
    Domain,
    /// The address line does not hold an address of the chain named.
    #[error("malformed address")]
    Address,
    /// An empty line is missing where the ABNF has one.
    #[error("missing empty line")]
    Layout,
    /// The statement is empty or has characters it cannot have.
    #[error("malformed statement")]
    Statement,
    /// A required line is missing or out of order.
    #[error("missing or misplaced field")]
    Field,
    /// The URI is not an absolute URI.
    #[error("malformed URI")]
    Uri,
    /// A version other than 1.
    #[error("unsupported version")]
    Version,
    /// The chain id is not of the chain named.
    #[error("malformed chain id")]
    ChainId,
    /// Not 8 to [`MAX_NONCE_CHARS`] letters and digits.
    #[error("malformed nonce")]
    Nonce,
    /// Not an RFC 3339 date-time.
    #[error("malformed time")]
    Time,
    /// Not `*pchar`.
    #[error("malformed request id")]
    RequestId,
    /// More than the bound, or a malformed entry.
    #[error("malformed resources")]
    Resources,
    /// Lines after the last field.
    #[error("unexpected trailing content")]
    Trailing,
}

/// Which chain a message is for, by its preamble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chain {
    /// "… sign in with your Ethereum account:" (EIP-4361).
    Ethereum,
    /// "… sign in with your Solana account:" (CAIP-122).
    Solana,
}

/// An RFC 3339 time as written, and its instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp<'m> {
    pub(crate) text: &'m str,
    pub(crate) at: OffsetDateTime,
}

/// A message that parsed in full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SignInMessage<'m> {
    pub(crate) scheme: Option<&'m str>,
    pub(crate) domain: &'m str,
    /// The account the message names: chain id (or reference) and address together.
    pub(crate) account: WalletAccount,
    pub(crate) statement: Option<&'m str>,
    pub(crate) uri: &'m str,
    pub(crate) nonce: &'m str,
    pub(crate) issued_at: Stamp<'m>,
    pub(crate) expiration_time: Option<Stamp<'m>>,
    pub(crate) not_before: Option<Stamp<'m>>,
    pub(crate) request_id: Option<&'m str>,
    pub(crate) resources: Vec<&'m str>,
}

impl SignInMessage<'_> {
    /// The chain of the preamble.
    #[cfg(any(test, feature = "internals"))]
    pub(crate) fn chain(&self) -> Chain {
        match self.account {
            WalletAccount::Eip155 { .. } => Chain::Ethereum,
            WalletAccount::Solana { .. } => Chain::Solana,
        }
    }

    /// The message text of these fields. The parser is strict exactly when every text it
    /// accepts is the rendering of what it read (the fuzz target's oracle).
    #[cfg(any(test, feature = "internals"))]
    pub(crate) fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        if let Some(scheme) = self.scheme {
            let _ = write!(out, "{scheme}://");
        }
        let chain = match self.chain() {
            Chain::Ethereum => "Ethereum",
            Chain::Solana => "Solana",
        };
        let (chain_id, address) = match &self.account {
            WalletAccount::Eip155 { chain_id, address } => {
                (chain_id.to_string(), super::account::eip55(address))
            }
            WalletAccount::Solana { reference, key } => {
                (reference.clone(), bs58::encode(key).into_string())
            }
        };
        let _ = write!(
            out,
            "{}{PREAMBLE_MID}{chain}{PREAMBLE_END}\n{address}\n\n",
            self.domain
        );
        if let Some(statement) = self.statement {
            let _ = writeln!(out, "{statement}");
        }
        let _ = write!(
            out,
            "\nURI: {}\nVersion: 1\nChain ID: {chain_id}\nNonce: {}\nIssued At: {}",
            self.uri, self.nonce, self.issued_at.text
        );
        if let Some(t) = self.expiration_time {
            let _ = write!(out, "\nExpiration Time: {}", t.text);
        }
        if let Some(t) = self.not_before {
            let _ = write!(out, "\nNot Before: {}", t.text);
        }
        if let Some(r) = self.request_id {
            let _ = write!(out, "\nRequest ID: {r}");
        }
        if !self.resources.is_empty() {
            out.push_str("\nResources:");
            for r in &self.resources {
                let _ = write!(out, "\n- {r}");
            }
        }
        out
    }
}

const PREAMBLE_MID: &str = " wants you to sign in with your ";
const PREAMBLE_END: &str = " account:";

/// The lines of a message, read one by one.
struct Lines<'m> {
    rest: Option<&'m str>,
}

impl<'m> Lines<'m> {
    fn next(&mut self) -> Option<&'m str> {
        let rest = self.rest?;
        match rest.split_once('\n') {
            Some((line, tail)) => {
                self.rest = Some(tail);
                Some(line)
            }
            None => {
                self.rest = None;
                Some(rest)
            }
        }
    }

    fn peek(&self) -> Option<&'m str> {
        let rest = self.rest?;
        Some(rest.split_once('\n').map_or(rest, |(line, _)| line))
    }

    /// The value of the next line, which must start with `tag`.
    fn tagged(&mut self, tag: &str) -> Result<&'m str, MessageError> {
        self.next()
            .and_then(|line| line.strip_prefix(tag))
            .ok_or(MessageError::Field)
    }

    /// The value of the next line if it starts with `tag` (the line is then consumed).
    fn optional(&mut self, tag: &str) -> Option<&'m str> {
        let value = self.peek()?.strip_prefix(tag)?;
        self.next();
        Some(value)
    }

    fn empty(&mut self) -> Result<(), MessageError> {
        match self.next() {
            Some("") => Ok(()),
            _ => Err(MessageError::Layout),
        }
    }
}

/// RFC 3986 `unreserved / pct-encoded / sub-delims / ":" / "@"`, one byte (`%` allowed as is:
/// its two hex digits are checked by [`is_pchars`]).
fn is_pchar_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:@".contains(&b)
}

fn is_pchars(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !is_pchar_byte(b[i]) {
            return false;
        }
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 2;
        }
        i += 1;
    }
    true
}

/// An RFC 3986 authority without user info: a registered name, an IPv4 or a bracketed IPv6
/// address, and an optional port.
fn is_domain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:[]".contains(&b))
}

/// An RFC 3986 scheme.
fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_alphabetic())
        && b.all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
}

/// An absolute URI (parsed by `url`, and free of spaces, so that the text is the URI).
fn is_uri(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_graphic()) && url::Url::parse(s).is_ok()
}

/// The shape of an RFC 3339 `date-time` in its one spelling: `YYYY-MM-DDTHH:MM:SS`, an
/// optional fraction of 1 to 9 digits, then `Z` or `±HH:MM` (upper-case `T` and `Z`; `time`
/// alone would also take a space or a lower-case `t`).
fn is_date_time_shape(text: &str) -> bool {
    let b = text.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(digits(0..4)
        && at(4, b'-')
        && digits(5..7)
        && at(7, b'-')
        && digits(8..10)
        && at(10, b'T'))
        || !(digits(11..13) && at(13, b':') && digits(14..16) && at(16, b':') && digits(17..19))
    {
        return false;
    }
    let mut i = 19;
    if at(i, b'.') {
        let n = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&n) {
            return false;
        }
        i += 1 + n;
    }
    match b.get(i) {
        Some(b'Z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            i + 6 == b.len() && digits(i + 1..i + 3) && at(i + 3, b':') && digits(i + 4..i + 6)
        }
        _ => false,
    }
}

fn time(text: &str) -> Result<Stamp<'_>, MessageError> {
    if !is_date_time_shape(text) {
        return Err(MessageError::Time);
    }
    // The values (month, day, leap seconds, offsets) are `time`'s to check.
    let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| MessageError::Time)?;
    Ok(Stamp { text, at })
}

/// The preamble: `(scheme, domain, chain)`.
fn preamble(line: &str) -> Result<(Option<&str>, &str, Chain), MessageError> {
    let rest = line
        .strip_suffix(PREAMBLE_END)
        .ok_or(MessageError::Preamble)?;
    let (authority, chain) = rest
        .split_once(PREAMBLE_MID)
        .ok_or(MessageError::Preamble)?;
    let chain = match chain {
        "Ethereum" => Chain::Ethereum,
        "Solana" => Chain::Solana,
        _ => return Err(MessageError::Preamble),
    };
    let (scheme, domain) = match authority.split_once("://") {
        Some((scheme, domain)) if is_scheme(scheme) => (Some(scheme), domain),
        Some(_) => return Err(MessageError::Domain),
        None => (None, authority),
    };
    if !is_domain(domain) {
        return Err(MessageError::Domain);
    }
    Ok((scheme, domain, chain))
}

/// Parses `text` (see the module docs).
pub(crate) fn parse(text: &str) -> Result<SignInMessage<'_>, MessageError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge);
    }
    if text
        .bytes()
        .any(|b| b != b'\n' && (b.is_ascii_control() || b == 0x7f))
    {
        return Err(MessageError::Control);
    }
    let mut lines = Lines { rest: Some(text) };
    let (scheme, domain, chain) = preamble(lines.next().ok_or(MessageError::Preamble)?)?;
    let address = lines.next().ok_or(MessageError::Address)?;
    lines.empty()?;
    let statement = match lines.next() {
        Some("") => None,
        Some(statement) => {
            // EIP-4361: `*( reserved / unreserved / " " )`, i.e. printable ASCII; no LF.
            if !statement.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
                return Err(MessageError::Statement);
            }
            lines.empty()?;
            Some(statement)
        }
        None => return Err(MessageError::Layout),
    };
    let uri = lines.tagged("URI: ")?;
    if !is_uri(uri) {
        return Err(MessageError::Uri);
    }
    if lines.tagged("Version: ")? != "1" {
        return Err(MessageError::Version);
    }
    let chain_id = lines.tagged("Chain ID: ")?;
    let account = match chain {
        Chain::Ethereum => WalletAccount::Eip155 {
            chain_id: parse_chain_id(chain_id).ok_or(MessageError::ChainId)?,
            address: is_checksummed(address).ok_or(MessageError::Address)?,
        },
        Chain::Solana => {
            if !is_solana_reference(chain_id) {
                return Err(MessageError::ChainId);
            }
            WalletAccount::Solana {
                reference: chain_id.to_owned(),
                key: parse_solana_key(address).ok_or(MessageError::Address)?,
            }
        }
    };
    let nonce = lines.tagged("Nonce: ")?;
    if !(8..=MAX_NONCE_CHARS).contains(&nonce.len())
        || !nonce.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(MessageError::Nonce);
    }
    let issued_at = time(lines.tagged("Issued At: ")?)?;
    let expiration_time = lines.optional("Expiration Time: ").map(time).transpose()?;
    let not_before = lines.optional("Not Before: ").map(time).transpose()?;
    let request_id = lines.optional("Request ID: ");
    if request_id.is_some_and(|r| !is_pchars(r)) {
        return Err(MessageError::RequestId);
    }
    let mut resources = Vec::new();
    if lines.peek() == Some("Resources:") {
        lines.next();
        while let Some(line) = lines.next() {
            let uri = line.strip_prefix("- ").ok_or(MessageError::Resources)?;
            if !is_uri(uri) || resources.len() == MAX_RESOURCES {
                return Err(MessageError::Resources);
            }
            resources.push(uri);
        }
        if resources.is_empty() {
            return Err(MessageError::Resources);
        }
    }
    if lines.next().is_some() {
        return Err(MessageError::Trailing);
    }
    Ok(SignInMessage {
        scheme,
        domain,
        account,
        statement,
        uri,
        nonce,
        issued_at,
        expiration_time,
        not_before,
        request_id,
        resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ADDRESS: &str = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed";

    fn message(statement: Option<&str>, tail: &str) -> String {
        let statement = statement.map_or(String::new(), |s| format!("{s}\n"));
        format!(
            "127.0.0.1:8080 wants you to sign in with your Ethereum account:\n{ADDRESS}\n\n{statement}\nURI: http://127.0.0.1:8080\nVersion: 1\nChain ID: 1\nNonce: abcdef0123456789\nIssued At: 2026-01-01T00:00:00Z{tail}"
        )
    }

    #[test]
    fn parses_the_full_form() {
        let text = message(
            Some("Sign in to agent-auth."),
            "\nExpiration Time: 2026-01-01T00:05:00.000Z\nNot Before: 2026-01-01T00:00:00+00:00\nRequest ID: r-1\nResources:\n- https://example.com/a\n- urn:x:y",
        );
        let m = parse(&text).unwrap();
        assert_eq!(m.domain, "127.0.0.1:8080");
        assert_eq!(m.statement, Some("Sign in to agent-auth."));
        assert_eq!(m.uri, "http://127.0.0.1:8080");
        assert_eq!(m.nonce, "abcdef0123456789");
        assert_eq!(m.resources, ["https://example.com/a", "urn:x:y"]);
        assert_eq!(m.request_id, Some("r-1"));
        assert!(m.expiration_time.is_some() && m.not_before.is_some());
        assert_eq!(m.chain(), Chain::Ethereum);
        assert_eq!(m.render(), text);
        let bare = message(None, "");
        let m = parse(&bare).unwrap();
        assert_eq!(m.statement, None);
        assert_eq!(m.render(), bare);
    }

    #[test]
    fn refuses_deviations() {
        let good = message(None, "");
        let cases: Vec<(String, MessageError)> = vec![
            (format!("{good}\n"), MessageError::Trailing),
            (good.replace('\n', "\r\n"), MessageError::Control),
            (good.replace("\n\n\nURI", "\n\nURI"), MessageError::Layout),
            (
                good.replace("\n\n\nURI", "\nx\n\nURI"),
                MessageError::Layout,
            ),
            (
                good.replace("Version: 1", "Version: 2"),
                MessageError::Version,
            ),
            (
                good.replace("Version: 1", "Version:  1"),
                MessageError::Version,
            ),
            (
                good.replace("Chain ID: 1", "Chain ID: 01"),
                MessageError::ChainId,
            ),
            (
                good.replace(ADDRESS, &ADDRESS.to_lowercase()),
                MessageError::Address,
            ),
            (good.replace("abcdef0123456789", "abc"), MessageError::Nonce),
            (
                good.replace("abcdef0123456789", "abcdef01234567-9"),
                MessageError::Nonce,
            ),
            (
                good.replace("2026-01-01T00:00:00Z", "2026-01-01 00:00:00Z"),
                MessageError::Time,
            ),
            (
                good.replace("2026-01-01T00:00:00Z", "2026-01-01t00:00:00Z"),
                MessageError::Time,
            ),
            (
                good.replace("2026-01-01T00:00:00Z", "2026-01-01T00:00:00z"),
                MessageError::Time,
            ),
            (
                good.replace("2026-01-01T00:00:00Z", "2026-01-01T00:00:00.Z"),
                MessageError::Time,
            ),
            (
                good.replace("2026-01-01T00:00:00Z", "2026-02-30T00:00:00Z"),
                MessageError::Time,
            ),
            (
                good.replace("2026-01-01T00:00:00Z", "2026-01-01T00:00:00+0100"),
                MessageError::Time,
            ),
            (good.replace("Ethereum", "Bitcoin"), MessageError::Preamble),
            (
                good.replace("127.0.0.1:8080 wants", "a b wants"),
                MessageError::Domain,
            ),
            (
                good.replace("URI: http://127.0.0.1:8080", "URI: /relative"),
                MessageError::Uri,
            ),
            (format!("{good}\nResources:"), MessageError::Resources),
            (
                format!(
                    "{good}\nNot Before: 2026-01-01T00:00:00Z\nExpiration Time: 2026-01-01T00:00:00Z"
                ),
                MessageError::Trailing,
            ),
            ("x".repeat(MAX_MESSAGE_BYTES + 1), MessageError::TooLarge),
        ];
        for (text, want) in cases {
            assert_eq!(parse(&text).err(), Some(want), "{text:?}");
        }
    }

    /// The fuzz target's seeds are valid messages (so that fuzzing starts from the accept path)
    /// and their own renderings.
    #[test]
    fn the_fuzz_seeds_parse() {
        for text in [
            include_str!("../../../fuzz/seeds/wallet_message/evm-bare"),
            include_str!("../../../fuzz/seeds/wallet_message/evm-full"),
            include_str!("../../../fuzz/seeds/wallet_message/solana"),
        ] {
            let m = parse(text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
            assert_eq!(m.render(), text);
        }
    }

    #[test]
    fn solana_form() {
        let key = bs58::encode([9u8; 32]).into_string();
        let text = format!(
            "example.com wants you to sign in with your Solana account:\n{key}\n\n\nURI: https://example.com\nVersion: 1\nChain ID: 5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp\nNonce: 12345678\nIssued At: 2026-01-01T00:00:00Z"
        );
        let m = parse(&text).unwrap();
        assert_eq!(m.chain(), Chain::Solana);
        assert_eq!(
            m.account.to_string(),
            format!("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp:{key}")
        );
        assert_eq!(
            parse(&text.replace("Chain ID: 5eykt", "Chain ID: 0eykt")).err(),
            Some(MessageError::ChainId)
        );
    }
}
