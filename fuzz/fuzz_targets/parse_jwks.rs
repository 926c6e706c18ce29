//! JWKS documents: `parse_jwks` as the cache does it, then a verifier built on the document
//! verifying the fixed valid tokens.
//!
//! Oracle: nothing panics; a document that parses gives a verifier; a valid token is accepted
//! only if the document really holds the trusted key (a forged document can never make a token
//! verify under another key: the signature is always checked).
#![no_main]

#[path = "common.rs"]
mod common;

use agent_auth::AgentAuth;
use agent_auth::internals::{OfflineVerifier, parse_jwks};
use aws_lc_rs::signature::KeyPair;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_jwks(data);
    let verifier = OfflineVerifier::new(
        AgentAuth::new(common::ISSUER).audience(common::AUDIENCE),
        data,
    );
    assert_eq!(
        parsed.is_ok(),
        verifier.is_ok(),
        "parse_jwks and the cache disagree"
    );
    let (Ok(count), Ok(verifier)) = (parsed, verifier) else {
        return;
    };
    assert!(count <= data.len(), "more keys than bytes");
    let trusted_x = common::b64(common::key().public_key().as_ref());
    for token in common::valid_tokens() {
        if verifier.verify(token).is_ok() {
            // Key members are borrowed strings, so the key appears literally (no escapes).
            assert!(
                String::from_utf8_lossy(data).contains(&trusted_x),
                "a token verified against a JWKS without the trusted key"
            );
        }
    }
});
