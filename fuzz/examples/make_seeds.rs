//! Writes the seed corpus of every fuzz target into `fuzz/seeds/<target>/`:
//! `cargo run --example make_seeds` from `fuzz/` (stable is enough).

#[path = "../fuzz_targets/common.rs"]
mod common;

use std::fs;
use std::path::Path;

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    for (i, token) in common::valid_tokens().iter().enumerate() {
        write("verify_token", &format!("valid-{i}"), token.as_bytes());
    }
    let first = &common::valid_tokens()[0];
    write(
        "verify_token",
        "truncated",
        &first.as_bytes()[..first.len() - 3],
    );
    write(
        "verify_token",
        "alg-none",
        format!(
            "{}.{}.",
            common::b64(r#"{"alg":"none"}"#),
            common::b64(common::claims(""))
        )
        .as_bytes(),
    );

    for (i, (header, claims)) in common::valid_parts().iter().enumerate() {
        let mut input = header.as_bytes().to_vec();
        input.push(0);
        input.extend_from_slice(claims.as_bytes());
        write("header_claims", &format!("valid-{i}"), &input);
    }
    let mut crit = br#"{"alg":"EdDSA","kid":"fuzz-key","crit":["exp"]}"#.to_vec();
    crit.push(0);
    crit.extend_from_slice(common::claims("").as_bytes());
    write("header_claims", "crit", &crit);

    write("parse_jwks", "trusted", common::jwks().as_bytes());
    write(
        "parse_jwks",
        "mixed",
        br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"},{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","use":"sig","key_ops":["verify"]}]}"#,
    );
    write("parse_jwks", "empty", br#"{"keys":[]}"#);

    let post = b"\0grant_type=client_credentials&client_id=@ID@&client_secret=@SECRET@";
    write("token_endpoint", "post", post);
    write(
        "token_endpoint",
        "post-scope-resource",
        b"\0grant_type=client_credentials&client_id=@ID@&client_secret=@SECRET@&scope=tickets:read&resource=https%3A%2F%2Fapi.fuzz.example%2Ftickets",
    );
    write(
        "token_endpoint",
        "basic",
        b"\x01grant_type=client_credentials&scope=tickets%3Atriage+tickets%3Aread",
    );
    write(
        "token_endpoint",
        "bad-scope",
        b"\0grant_type=client_credentials&client_id=@ID@&client_secret=@SECRET@&scope=a%22b",
    );
    write(
        "token_endpoint",
        "wrong-secret",
        b"\0grant_type=client_credentials&client_id=@ID@&client_secret=nope",
    );
    for (name, body) in [
        ("call", r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_tickets","arguments":{}}}"#),
        ("triage", r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"triage_ticket","arguments":{"id":"7"}}}"#),
        ("batch", r#"[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"ping"}}]"#),
        ("duplicate", r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"triage_ticket"}}"#),
        ("initialize", r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2026-07-28"}}"#),
        ("response", r#"{"jsonrpc":"2.0","id":5,"result":{}}"#),
    ] {
        write("mcp_classify", name, body.as_bytes());
    }
    let evm = "127.0.0.1:8080 wants you to sign in with your Ethereum account:\n0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed\n\n";
    let tail = "URI: http://127.0.0.1:8080\nVersion: 1\nChain ID: 1\nNonce: 0123456789abcdef0123456789abcdef\nIssued At: 2026-01-01T00:00:00Z";
    write("wallet_message", "evm-bare", format!("{evm}\n{tail}").as_bytes());
    write(
        "wallet_message",
        "evm-full",
        format!(
            "http://{evm}Sign in to agent-auth.\n\n{tail}\nExpiration Time: 2026-01-01T00:05:00.123Z\nNot Before: 2025-12-31T23:59:59+01:00\nRequest ID: req%201\nResources:\n- https://api.example.com/tickets\n- urn:example:x"
        )
        .as_bytes(),
    );
    write(
        "wallet_message",
        "solana",
        b"example.com wants you to sign in with your Solana account:\nGdNh3ZMPEEZ5fGXrSiMPTXwLMfsP5jUWGaGtE4wg3JXw\n\nHello.\n\nURI: https://example.com/\nVersion: 1\nChain ID: 5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp\nNonce: abcdefgh\nIssued At: 2026-01-01T00:00:00Z\nExpiration Time: 2026-01-01T00:05:00Z",
    );
}
