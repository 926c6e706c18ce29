//! JWKS documents: `parse_jwks` as the cache does it, then a verifier built on the document
//! verifying the fixed valid tokens.
//!
//! Oracle: nothing panics; every JWK goes through `verify_with_jwk` against the valid tokens and
//! verifies only if it holds the trusted key; a document with usable keys gives a verifier that
//! accepts a valid token only if the document really holds the trusted key.
#![no_main]

#[path = "common.rs"]
mod common;

use agent_auth::AgentAuth;
use agent_auth::internals::{OfflineVerifier, parse_jwks, verify_with_jwk};
use aws_lc_rs::signature::KeyPair;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_jwks(data);
    let trusted_x = common::b64(common::key().public_key().as_ref());
    // Every JWK of the document through the same binding, against the valid tokens' signatures:
    // only a JWK that really holds the trusted key may verify one.
    if let Ok(Value::Object(document)) = serde_json::from_slice::<Value>(data)
        && let Some(Value::Array(keys)) = document.get("keys")
    {
        for jwk in keys {
            let jwk = jwk.to_string();
            for token in common::valid_tokens() {
                let (signing_input, signature) = token.rsplit_once('.').unwrap();
                let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
                if verify_with_jwk(&jwk, signing_input.as_bytes(), &signature) == Ok(true) {
                    assert!(
                        jwk.contains(&trusted_x),
                        "{jwk} verified a token it did not sign"
                    );
                }
            }
        }
    }
    // The whole cache path, on documents with usable keys only (building a verifier builds an
    // HTTP client, which is slow): it agrees with parse_jwks, and a valid token verifies only
    // if the document really holds the trusted key.
    let Ok(count) = parsed else { return };
    assert!(count <= data.len(), "more keys than bytes");
    if count == 0 {
        return;
    }
    let verifier = OfflineVerifier::new(
        AgentAuth::new(common::ISSUER).audience(common::AUDIENCE),
        data,
    )
    .expect("a document parse_jwks accepts builds a verifier");
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
