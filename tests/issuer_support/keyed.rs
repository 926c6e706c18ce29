//! Keyed agents in tests: Ed25519 keys (ed25519-dalek, real signatures), their public JWKs,
//! client assertions (RFC 7523) and `private_key_jwt` token requests.

use std::sync::atomic::{AtomicU64, Ordering};

use agent_auth::issuer::{CreateAgent, TestIssuer};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use ed25519_dalek::SigningKey;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Reply, admin, form, token_raw};

/// `client_assertion_type` of RFC 7523 §2.2.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A key from a one-byte seed (distinct seeds, distinct keys).
pub fn ed_key(seed: u8) -> SigningKey {
    let mut bytes = [seed; 32];
    bytes[0] = 0xa5;
    SigningKey::from_bytes(&bytes)
}

/// The public JWK of `key`.
pub fn public_jwk(key: &SigningKey) -> Value {
    json!({
        "kty": "OKP",
        "crv": "Ed25519",
        "x": URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes()),
    })
}

/// A compact JWS of `header` and `claims`, signed with `key`.
pub fn sign(key: &SigningKey, header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key.sign(input.as_bytes()).to_bytes();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
}

/// A fresh `jti`.
pub fn jti() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("jti-{nanos}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The claims a well-behaved client sends: `iss` = `sub` = the agent, `aud` the token
/// endpoint, one minute of life on the issuer's clock, a fresh `jti`.
pub fn claims(issuer: &TestIssuer, agent_id: &str) -> Value {
    let now = issuer.now_ms() / 1000;
    json!({
        "iss": agent_id,
        "sub": agent_id,
        "aud": issuer.token_endpoint(),
        "iat": now,
        "exp": now + 60,
        "jti": jti(),
    })
}

/// `{"alg":"EdDSA","typ":"JWT"}`.
pub fn header() -> Value {
    json!({"alg": "EdDSA", "typ": "JWT"})
}

/// A valid assertion of `agent_id` signed with `key`.
pub fn assertion(issuer: &TestIssuer, agent_id: &str, key: &SigningKey) -> String {
    sign(key, &header(), &claims(issuer, agent_id))
}

/// `POST /token` with `client_assertion` and its type, plus `extra` pairs.
pub async fn token_with_assertion(
    issuer: &TestIssuer,
    assertion: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", assertion),
    ];
    pairs.extend_from_slice(extra);
    token_raw(issuer, &form(&pairs), None).await
}

/// Registers `jwk` for `agent_id` through the management API (raw reply).
pub async fn register_jwk(issuer: &TestIssuer, agent_id: &str, jwk: Value) -> Reply {
    admin(
        issuer,
        Method::POST,
        &format!("/v1/agents/{agent_id}/verifiers"),
        Some(json!({"type": "jwk", "name": "key", "jwk": jwk})),
    )
    .await
}

/// A new agent with `scopes` and no secret.
pub async fn agent_without_secret(issuer: &TestIssuer, scopes: &[&str]) -> String {
    issuer
        .admin()
        .create_agent(&CreateAgent::new("keyed").scopes(scopes.iter().copied()))
        .await
        .unwrap()
        .data
        .id
}

/// A new agent with `scopes` whose only verifier is the public key of `key`.
pub async fn keyed_agent(issuer: &TestIssuer, scopes: &[&str], key: &SigningKey) -> String {
    let agent_id = agent_without_secret(issuer, scopes).await;
    let r = register_jwk(issuer, &agent_id, public_jwk(key)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    agent_id
}
