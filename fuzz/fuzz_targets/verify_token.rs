//! Whole tokens through the layer's verification path (`OfflineVerifier`, no network).
//!
//! Oracle: nothing panics, and the only tokens ever accepted are the fixed valid ones.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // A header value is bytes; the layer hands the verifier only visible ASCII, but the verifier
    // itself takes any `&str`, so give it any UTF-8.
    let token = String::from_utf8_lossy(data);
    if let Ok(agent) = common::verifier().verify(&token) {
        assert!(
            common::valid_tokens().iter().any(|valid| *valid == *token),
            "a token that is not one of the signed valid tokens was accepted: {token:?}"
        );
        assert_eq!(agent.id(), common::AGENT_ID);
    }
});
