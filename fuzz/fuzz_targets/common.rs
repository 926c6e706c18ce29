//! Fixed keys, JWKS and tokens shared by the fuzz targets and the seed generator.
//!
//! Everything here is deterministic (Ed25519 signatures are), so the committed seed tokens are
//! exactly the tokens the targets consider valid.
#![allow(dead_code)]

use std::sync::OnceLock;

use agent_auth::AgentAuth;
use agent_auth::internals::OfflineVerifier;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub const ISSUER: &str = "https://issuer.fuzz.example";
pub const AUDIENCE: &str = "https://api.fuzz.example/tickets";
pub const KID: &str = "fuzz-key";
pub const AGENT_ID: &str = "agt_0123456789abcdef0123456789abcdef";
/// 2100-01-01: the seed tokens stay valid for as long as anyone fuzzes them.
pub const FAR_FUTURE: i64 = 4_102_444_800;
/// RFC 7515 appendix A.3 P-256 public key: a second, differently typed key in the set.
const EC_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
const EC_Y: &str = "x_FEzRjmje-Kh_NoZjZ9OdKCbcQdxT54sHKJa7ELaBs";

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The fixed Ed25519 signing key (seed 0x07 × 32).
pub fn key() -> &'static Ed25519KeyPair {
    static KEY: OnceLock<Ed25519KeyPair> = OnceLock::new();
    KEY.get_or_init(|| Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).expect("seed"))
}

/// The JWKS the verifier trusts: the Ed25519 key under [`KID`] and a P-256 key `ec-key`.
pub fn jwks() -> String {
    format!(
        r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","kid":"{KID}","alg":"EdDSA","use":"sig","x":"{}"}},{{"kty":"EC","crv":"P-256","kid":"ec-key","x":"{EC_X}","y":"{EC_Y}"}}]}}"#,
        b64(key().public_key().as_ref())
    )
}

/// The verification path of the layer for [`ISSUER`] / [`AUDIENCE`] with [`jwks`], offline.
pub fn verifier() -> &'static OfflineVerifier {
    static VERIFIER: OnceLock<OfflineVerifier> = OnceLock::new();
    VERIFIER.get_or_init(|| {
        OfflineVerifier::new(AgentAuth::new(ISSUER).audience(AUDIENCE), jwks().as_bytes())
            .expect("fixed JWKS parses")
    })
}

/// Signs exact header and claims bytes with the fixed key.
pub fn sign(header: &[u8], claims: &[u8]) -> String {
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let signature = key().sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64(signature.as_ref()))
}

pub const HEADER: &str = r#"{"alg":"EdDSA","kid":"fuzz-key","typ":"at+jwt"}"#;

/// Valid agent claims; `extra` is spliced in before the closing brace (e.g. `,"nbf":1`).
pub fn claims(extra: &str) -> String {
    format!(
        r#"{{"iss":"{ISSUER}","sub":"{AGENT_ID}","aud":"{AUDIENCE}","exp":{FAR_FUTURE},"iat":1700000000,"jti":"j1","client_id":"{AGENT_ID}","scope":"tickets:read tickets:triage","dat":{{"type":"agent"}}{extra}}}"#
    )
}

/// (header, claims) pairs that verify: the seeds of the structured target, and, signed, the
/// only tokens the whole-token target may ever see accepted.
pub fn valid_parts() -> Vec<(String, String)> {
    vec![
        (HEADER.to_owned(), claims("")),
        (
            r#"{"alg":"EdDSA","kid":"fuzz-key"}"#.to_owned(),
            claims(r#","nbf":1700000000"#),
        ),
        (
            r#"{"alg":"EdDSA","typ":"JWT"}"#.to_owned(),
            claims(r#","aud2":[1,2,{"a":null}]"#).replace(
                &format!(r#""aud":"{AUDIENCE}""#),
                &format!(r#""aud":["https://other.example","{AUDIENCE}"]"#),
            ),
        ),
    ]
}

/// The signed valid tokens.
pub fn valid_tokens() -> &'static [String] {
    static TOKENS: OnceLock<Vec<String>> = OnceLock::new();
    TOKENS.get_or_init(|| {
        valid_parts()
            .iter()
            .map(|(h, c)| sign(h.as_bytes(), c.as_bytes()))
            .collect()
    })
}
