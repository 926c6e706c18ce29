//! Structured: arbitrary JOSE header and claims bytes, signed with the trusted key, so that the
//! signature always verifies and the fuzzer explores header policy and claim checks.
//!
//! Input: header bytes, a 0x00 separator, claims bytes (no separator: all header, empty claims).
//! Oracle: nothing panics, and anything accepted satisfies the resource-server contract when the
//! header and claims are read independently with `serde_json::Value`.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let (header, claims) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let token = common::sign(header, claims);
    let Ok(agent) = common::verifier().verify(&token) else {
        return;
    };
    // A token whose header or claims a full JSON parse refuses (invalid UTF-8, nesting past
    // serde_json's limit) must have been refused: this target found such acceptances once.
    let header: Value = serde_json::from_slice(header).expect("accepted header is JSON");
    let claims: Value = serde_json::from_slice(claims).expect("accepted claims are JSON");
    assert!(header.is_object() && claims.is_object());
    assert_eq!(header["alg"], "EdDSA", "alg bound to the key: {header}");
    assert!(header.get("crit").is_none(), "crit accepted: {header}");
    if let Some(kid) = header.get("kid") {
        assert_eq!(kid, common::KID, "{header}");
    }
    if let Some(typ) = header.get("typ") {
        let typ = typ.as_str().expect("typ is a string").to_ascii_lowercase();
        let media = typ.strip_prefix("application/").unwrap_or(&typ);
        assert!(media == "at+jwt" || media == "jwt", "typ {typ:?} accepted");
    }
    assert_eq!(claims["iss"], common::ISSUER, "{claims}");
    let audience_ok = match &claims["aud"] {
        Value::String(aud) => aud == common::AUDIENCE,
        Value::Array(auds) => auds.iter().any(|aud| aud == common::AUDIENCE),
        _ => false,
    };
    assert!(audience_ok, "aud: {claims}");
    let exp = claims["exp"].as_f64().expect("exp is a number");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(exp + 5.0 > now - 1.0, "expired token accepted: {claims}");
    if let Some(nbf) = claims.get("nbf").filter(|nbf| !nbf.is_null()) {
        let nbf = nbf.as_f64().expect("nbf is a number");
        assert!(nbf <= now + 6.0, "not-yet-valid token accepted: {claims}");
    }
    let sub = claims["sub"].as_str().expect("sub is a string");
    assert!(sub.starts_with("agt_"), "{claims}");
    assert_eq!(claims["dat"]["type"], "agent", "{claims}");
    assert_eq!(agent.id(), sub);
    let scope = claims.get("scope").and_then(Value::as_str).unwrap_or("");
    assert_eq!(
        agent.scopes().collect::<Vec<_>>(),
        scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    );
});
