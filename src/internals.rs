//! Entry points for fuzzing and conformance tests (feature `internals`).
//!
//! Not a stable API: these exist so that `fuzz/` and the Wycheproof tests can drive the real
//! parsing and verification code without HTTP. They carry no semver promise.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::value::RawValue;

use crate::agent::Agent;
use crate::config::AgentAuth;
use crate::error::{AuthError, InvalidToken};
use crate::jwks::{KeySet, VerifyingKey};
use crate::layer::AgentAuthLayer;
use crate::verify::{Now, Presented};

/// Parses a JWKS document as the cache does; returns the number of usable keys.
pub fn parse_jwks(body: &[u8]) -> Result<usize, String> {
    KeySet::parse(body)
        .map(|keys| keys.len())
        .map_err(|error| error.to_string())
}

/// Binds one JWK to its algorithm (refusing what the cache would skip) and verifies the raw
/// `signature` over `message` with it.
pub fn verify_with_jwk(jwk: &str, message: &[u8], signature: &[u8]) -> Result<bool, String> {
    let raw: Box<RawValue> = serde_json::from_str(jwk).map_err(|error| error.to_string())?;
    let key = VerifyingKey::from_jwk(&raw).map_err(|error| error.to_string())?;
    Ok(key
        .verify(message, &URL_SAFE_NO_PAD.encode(signature))
        .is_ok())
}

/// The layer's verification path with a fixed key set and no network at all.
#[derive(Debug)]
pub struct OfflineVerifier(AgentAuthLayer);

impl OfflineVerifier {
    /// Verifies like `auth` would (signature batching off), with the keys of the JWKS
    /// document `jwks` for every issuer.
    pub fn new(auth: AgentAuth, jwks: &[u8]) -> Result<Self, String> {
        let layer = auth
            .signature_batching(false)
            .build()
            .map_err(|error| error.to_string())?;
        for trusted in &layer.verifier().issuers {
            let keys = KeySet::parse(jwks).map_err(|error| error.to_string())?;
            trusted.keys.serve_local(keys);
        }
        Ok(OfflineVerifier(layer))
    }

    /// Verifies `token` synchronously.
    pub fn verify(&self, token: &str) -> Result<Agent, AuthError> {
        match self.0.verifier().verify_now(Presented::Text(token)) {
            Now::Decided(outcome) => outcome,
            // Local keys decide without I/O; waiting is only for batches, which are off.
            Now::MustWait(_) => Err(InvalidToken::UnknownKey.into()),
        }
    }
}

/// The wallet sign-in message parser (EIP-4361 / CAIP-122, feature `issuer`): `None` when
/// `text` does not parse; otherwise whether rendering what was read gives back `text` exactly
/// (the parser is strict iff this is always `true`), with the canonical CAIP-10 account read.
#[cfg(feature = "issuer")]
pub fn wallet_message(text: &str) -> Option<(bool, String)> {
    let m = crate::issuer::wallet::message::parse(text).ok()?;
    Some((m.render() == text, m.account.to_string()))
}

/// Whether the MCP body scanner (the fast reading of a plain body) and the serde reader agree
/// on `body`: `None` when the scanner leaves it to serde, else `Some(agreed)`.
#[cfg(feature = "mcp")]
pub fn mcp_readings_agree(body: &[u8]) -> Option<bool> {
    crate::mcp::readings_agree(body)
}
