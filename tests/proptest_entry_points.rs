//! A short, seeded property run over the same entry points as `fuzz/` (the fuzzers run for
//! minutes; this runs in CI on every change, deterministically):
//!
//! * arbitrary strings and bytes as tokens never panic and are never accepted;
//! * mutations of a valid token (one byte changed, truncated, bytes appended) are never accepted
//!   unless the result is the token itself;
//! * arbitrary JWKS bytes and JWK-shaped JSON never panic, and never make a foreign signature
//!   verify;
//! * arbitrary form bodies to the issuer's token endpoint never get a 5xx.
//!
//! The seed is fixed ([`SEED`]); `AGENT_AUTH_PROPTEST_SEED=<u64>` explores another one and
//! `PROPTEST_CASES=<n>` runs more cases. A failure prints the seed to reproduce it.
#![cfg(all(feature = "internals", feature = "issuer"))]

use std::sync::OnceLock;

use agent_auth::AgentAuth;
use agent_auth::internals::{OfflineVerifier, parse_jwks, verify_with_jwk};
use agent_auth::issuer::{AdminKey, Issuer};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair,
};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use http_body_util::BodyExt as _;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const SEED: u64 = 0x6167_656e_742d_6175; // "agent-au"
const ISSUER: &str = "https://issuer.example.com";
const AUDIENCE: &str = "https://api.example.com/tickets";
const AGENT_ID: &str = "agt_0123456789abcdef0123456789abcdef";

/// A runner with a fixed seed and `cases` cases (unless `PROPTEST_CASES` says otherwise).
fn runner(cases: u32) -> (TestRunner, u64) {
    let seed = std::env::var("AGENT_AUTH_PROPTEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(cases);
    let config = Config {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        max_shrink_iters: 256,
        ..Config::default()
    };
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    (TestRunner::new_with_rng(config, rng), seed)
}

/// Runs `test` over `strategy`, failing with the seed in the message.
fn check<S: Strategy>(
    name: &str,
    cases: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let (mut runner, seed) = runner(cases);
    if let Err(error) = runner.run(&strategy, test) {
        panic!("{name} (AGENT_AUTH_PROPTEST_SEED={seed}): {error}");
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// ---------------------------------------------------------------------------------------------
// Keys, JWKS and valid tokens.
// ---------------------------------------------------------------------------------------------

struct Keys {
    ed: Ed25519KeyPair,
    ec: EcdsaKeyPair,
    jwks: String,
    verifier: OfflineVerifier,
    /// Valid tokens: Ed25519 (with and without kid) and ES256.
    valid: Vec<String>,
}

fn sign_ed(ed: &Ed25519KeyPair, header: &Value, claims: &Value) -> String {
    let signing_input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    format!(
        "{signing_input}.{}",
        b64(ed.sign(signing_input.as_bytes()).as_ref())
    )
}

fn claims() -> Value {
    json!({
        "iss": ISSUER, "sub": AGENT_ID, "aud": AUDIENCE, "exp": 4_102_444_800i64,
        "iat": 1_700_000_000, "jti": "j", "client_id": AGENT_ID,
        "scope": "tickets:read", "dat": { "type": "agent" },
    })
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let ed = Ed25519KeyPair::from_seed_unchecked(&[42u8; 32]).unwrap();
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .unwrap();
        let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref())
            .unwrap();
        let point = ec.public_key().as_ref();
        let jwks = json!({ "keys": [
            { "kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": b64(ed.public_key().as_ref()) },
            { "kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(&point[1..33]), "y": b64(&point[33..]) },
        ] })
        .to_string();
        let verifier =
            OfflineVerifier::new(AgentAuth::new(ISSUER).audience(AUDIENCE), jwks.as_bytes())
                .unwrap();
        let es256 = {
            let header = json!({ "alg": "ES256", "kid": "ec", "typ": "at+jwt" });
            let signing_input =
                format!("{}.{}", b64(header.to_string()), b64(claims().to_string()));
            let signature = ec
                .sign(&SystemRandom::new(), signing_input.as_bytes())
                .unwrap();
            format!("{signing_input}.{}", b64(signature.as_ref()))
        };
        let valid = vec![
            sign_ed(&ed, &json!({ "alg": "EdDSA", "kid": "ed", "typ": "at+jwt" }), &claims()),
            sign_ed(&ed, &json!({ "alg": "EdDSA" }), &claims()),
            es256,
        ];
        for token in &valid {
            assert!(verifier.verify(token).is_ok(), "fixture token must verify");
        }
        Keys {
            ed,
            ec,
            jwks,
            verifier,
            valid,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Tokens.
// ---------------------------------------------------------------------------------------------

#[test]
fn arbitrary_strings_are_never_accepted() {
    let keys = keys();
    let token_like = "[A-Za-z0-9_=-]{0,120}\\.[A-Za-z0-9_=-]{0,300}\\.[A-Za-z0-9_=-]{0,120}";
    let strategy = prop_oneof![
        any::<String>(),
        token_like,
        proptest::collection::vec(any::<u8>(), 0..600)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        // Three parts, each the base64url of arbitrary bytes or of a JSON-ish text.
        (
            proptest::collection::vec(any::<u8>(), 0..80),
            "\\{[ -~]{0,200}\\}",
            proptest::collection::vec(any::<u8>(), 0..80),
        )
            .prop_map(|(h, c, s)| format!("{}.{}.{}", b64(h), b64(c), b64(s))),
    ];
    check("arbitrary tokens", 400, strategy, |token| {
        prop_assert!(keys.verifier.verify(&token).is_err(), "accepted: {token:?}");
        Ok(())
    });
}

#[derive(Debug, Clone)]
enum Mutation {
    /// Replace the byte at (index mod len) by this one.
    Replace(usize, u8),
    /// Keep the first (n mod len) bytes.
    Truncate(usize),
    /// Append these bytes.
    Append(Vec<u8>),
    /// Insert this byte at (index mod len).
    Insert(usize, u8),
    /// Swap two bytes.
    Swap(usize, usize),
}

fn mutate(token: &str, mutation: &Mutation) -> Vec<u8> {
    let mut bytes = token.as_bytes().to_vec();
    let len = bytes.len();
    match mutation {
        Mutation::Replace(i, b) => bytes[i % len] = *b,
        Mutation::Truncate(n) => bytes.truncate(n % len),
        Mutation::Append(extra) => bytes.extend_from_slice(extra),
        Mutation::Insert(i, b) => bytes.insert(i % len, *b),
        Mutation::Swap(i, j) => bytes.swap(i % len, j % len),
    }
    bytes
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Bytes drawn mostly from the base64url alphabet and the separators, so mutations stay
    // syntactically plausible and reach the signature check.
    let byte = prop_oneof![
        4 => proptest::sample::select(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=".to_vec()
        ),
        1 => any::<u8>(),
    ];
    prop_oneof![
        4 => (any::<usize>(), byte.clone()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        2 => any::<usize>().prop_map(Mutation::Truncate),
        2 => proptest::collection::vec(byte.clone(), 1..8).prop_map(Mutation::Append),
        1 => (any::<usize>(), byte).prop_map(|(i, b)| Mutation::Insert(i, b)),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::Swap(i, j)),
    ]
}

#[test]
fn mutated_valid_tokens_are_never_accepted_unless_unchanged() {
    let keys = keys();
    let strategy = (
        0..keys.valid.len(),
        proptest::collection::vec(mutation(), 1..3),
    );
    check("token mutations", 500, strategy, |(which, mutations)| {
        let original = &keys.valid[which];
        let mut bytes = original.as_bytes().to_vec();
        for m in &mutations {
            bytes = mutate(&String::from_utf8_lossy(&bytes), m);
        }
        let mutated = String::from_utf8_lossy(&bytes);
        let accepted = keys.verifier.verify(&mutated).is_ok();
        prop_assert!(
            !accepted || mutated == *original,
            "mutation {mutations:?} of token {which} accepted: {mutated:?}"
        );
        Ok(())
    });
}

#[test]
fn signed_arbitrary_headers_and_claims_are_accepted_only_within_the_contract() {
    // The structured counterpart of fuzz/header_claims: valid signature, arbitrary members.
    let keys = keys();
    let value = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
        Just(json!(ISSUER)),
        Just(json!(AUDIENCE)),
        Just(json!(AGENT_ID)),
        Just(json!({ "type": "agent" })),
        Just(json!([AUDIENCE])),
    ];
    let header_member = proptest::sample::select(vec!["alg", "kid", "typ", "crit", "jku", "x"]);
    let claim_member = proptest::sample::select(vec![
        "iss", "sub", "aud", "exp", "nbf", "iat", "scope", "dat", "jti", "x",
    ]);
    let strategy = (
        proptest::collection::vec((header_member, value.clone()), 0..3),
        proptest::collection::vec((claim_member, value), 0..4),
    );
    check("signed headers and claims", 400, strategy, |(h, c)| {
        let mut header = json!({ "alg": "EdDSA", "kid": "ed" });
        for (name, value) in h {
            header[name] = value;
        }
        let mut claims = claims();
        for (name, value) in c {
            claims[name] = value;
        }
        let token = sign_ed(&keys.ed, &header, &claims);
        if keys.verifier.verify(&token).is_ok() {
            prop_assert_eq!(&header["alg"], "EdDSA");
            prop_assert!(header.get("crit").is_none(), "crit accepted: {header}");
            prop_assert_eq!(&claims["iss"], ISSUER);
            prop_assert!(claims["aud"] == AUDIENCE || claims["aud"] == json!([AUDIENCE]));
            prop_assert_eq!(&claims["dat"], &json!({ "type": "agent" }));
            prop_assert!(
                claims["sub"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("agt_"))
            );
            prop_assert!(claims["exp"].as_f64().is_some_and(|exp| exp > 1.7e9));
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// JWKS and JWKs.
// ---------------------------------------------------------------------------------------------

#[test]
fn arbitrary_jwks_bytes_never_panic_and_never_verify_foreign_signatures() {
    let keys = keys();
    let member = prop_oneof![
        "[ -~]{0,10}".prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        Just(Value::Null),
        Just(json!(["verify"])),
        Just(json!(["sign"])),
        proptest::collection::vec(any::<u8>(), 0..70).prop_map(|b| Value::from(b64(b))),
    ];
    let kty = proptest::sample::select(vec!["OKP", "EC", "RSA", "oct", "okp", ""]);
    let crv = proptest::sample::select(vec!["Ed25519", "P-256", "P-384", "P-521", "X25519", ""]);
    let alg = proptest::sample::select(vec![
        "EdDSA", "ES256", "ES384", "RS256", "PS512", "HS256", "none", "",
    ]);
    let jwk = (
        kty,
        crv,
        alg,
        proptest::collection::vec(
            (
                proptest::sample::select(vec![
                    "x", "y", "n", "e", "kid", "use", "key_ops", "d", "k",
                ]),
                member,
            ),
            0..5,
        ),
    )
        .prop_map(|(kty, crv, alg, members)| {
            let mut jwk = json!({ "kty": kty, "crv": crv, "alg": alg, "kid": "ed" });
            for (name, value) in members {
                jwk[name] = value;
            }
            jwk
        });
    let document = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "[ -~]{0,300}".prop_map(String::into_bytes),
        proptest::collection::vec(jwk.clone(), 0..4)
            .prop_map(|keys| json!({ "keys": keys }).to_string().into_bytes()),
    ];
    let sample = std::sync::atomic::AtomicU32::new(0);
    check("JWKS documents", 400, document, |bytes| {
        let parsed = parse_jwks(&bytes);
        // Every key of a parseable document, through the same binding, against the real
        // tokens: none of these documents holds the real Ed25519 or P-256 key.
        if let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&bytes)
            && let Some(Value::Array(jwks)) = doc.get("keys")
        {
            for jwk in jwks {
                for token in &keys.valid {
                    let (signing_input, signature) = token.rsplit_once('.').unwrap();
                    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
                    let outcome =
                        verify_with_jwk(&jwk.to_string(), signing_input.as_bytes(), &signature);
                    prop_assert!(outcome != Ok(true), "foreign key {jwk} verified");
                }
            }
        }
        // The whole cache path on a sample (building a verifier builds an HTTP client, which
        // is slow): it agrees with parse_jwks and verifies none of the real tokens.
        if sample.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 8 == 0 {
            let verifier = OfflineVerifier::new(AgentAuth::new(ISSUER).audience(AUDIENCE), &bytes);
            prop_assert_eq!(parsed.is_ok(), verifier.is_ok());
            if let Ok(verifier) = verifier {
                for token in &keys.valid {
                    prop_assert!(verifier.verify(token).is_err(), "foreign key verified");
                }
            }
        }
        Ok(())
    });
    check(
        "single JWKs",
        300,
        (jwk, any::<Vec<u8>>()),
        |(jwk, signature)| {
            // Any JWK at all, any signature: an answer, never a panic, never `true` for garbage.
            let outcome = verify_with_jwk(&jwk.to_string(), b"message", &signature);
            prop_assert!(outcome != Ok(true), "{jwk} verified a random signature");
            Ok(())
        },
    );
    // The real keys, sanity: their own signatures verify through the same entry point.
    let ed_jwk = json!({ "kty": "OKP", "crv": "Ed25519", "x": b64(keys.ed.public_key().as_ref()) });
    let signature = keys.ed.sign(b"message");
    assert_eq!(
        verify_with_jwk(&ed_jwk.to_string(), b"message", signature.as_ref()),
        Ok(true)
    );
    assert!(
        keys.jwks
            .contains(&b64(&keys.ec.public_key().as_ref()[1..33]))
    );
}

// ---------------------------------------------------------------------------------------------
// The token endpoint.
// ---------------------------------------------------------------------------------------------

#[test]
fn arbitrary_form_bodies_never_get_a_5xx_from_the_token_endpoint() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (router, id, secret) = runtime.block_on(async {
        let issuer = Issuer::builder()
            .issuer_url("http://127.0.0.1:9")
            .admin_key(AdminKey::new("admin", "admin-secret-0123456789abcdef01234"))
            .build()
            .await
            .unwrap();
        let router = issuer.router();
        let admin = |path: &str, body: Value| {
            Request::post(path)
                .header(
                    header::AUTHORIZATION,
                    format!(
                        "Basic {}",
                        STANDARD.encode("admin:admin-secret-0123456789abcdef01234")
                    ),
                )
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap()
        };
        let response = router
            .clone()
            .oneshot(admin(
                "/v1/agents",
                json!({ "name": "p", "scopes": ["tickets:read"] }),
            ))
            .await
            .unwrap();
        let agent: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        let id = agent["data"]["id"].as_str().unwrap().to_owned();
        let response = router
            .clone()
            .oneshot(admin(
                &format!("/v1/agents/{id}/verifiers"),
                json!({ "type": "secret" }),
            ))
            .await
            .unwrap();
        let created: Value =
            serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        let secret = created["data"]["secret"].as_str().unwrap().to_owned();
        (router, id, secret)
    });

    let key = proptest::sample::select(vec![
        "grant_type",
        "client_id",
        "client_secret",
        "scope",
        "resource",
        "x",
        "",
    ]);
    let value = prop_oneof![
        Just("client_credentials".to_owned()),
        Just(id.clone()),
        Just(secret.clone()),
        Just("tickets:read".to_owned()),
        Just("https://api.example.com/tickets".to_owned()),
        any::<String>(),
        "[ -~]{0,20}",
    ];
    let structured =
        proptest::collection::vec((key.clone(), value.clone()), 0..7).prop_map(|pairs| {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs {
                form.append_pair(k, &v);
            }
            form.finish().into_bytes()
        });
    // A valid request with a few arbitrary pairs added: reaches the success path often.
    let base = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("client_id", &id)
        .append_pair("client_secret", &secret)
        .finish();
    let perturbed =
        proptest::collection::vec((key.clone(), value.clone()), 0..3).prop_map(move |pairs| {
            let mut form = url::form_urlencoded::Serializer::new(base.clone());
            for (k, v) in pairs {
                form.append_pair(k, &v);
            }
            form.finish().into_bytes()
        });
    let body = prop_oneof![
        2 => perturbed,
        3 => structured,
        1 => proptest::collection::vec(any::<u8>(), 0..200),
        1 => "[ -~]{0,200}".prop_map(String::into_bytes),
    ];
    let basic = prop_oneof![
        3 => Just(None),
        1 => Just(Some(format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))))),
        1 => "[ -~]{0,40}".prop_map(Some),
    ];
    let content_type = prop_oneof![
        4 => Just("application/x-www-form-urlencoded".to_owned()),
        1 => "[ -~]{0,30}",
    ];
    let issued = std::sync::atomic::AtomicU32::new(0);
    check(
        "token endpoint forms",
        300,
        (body, basic, content_type),
        |(body, authorization, content_type)| {
            let mut request = Request::post("/token");
            if let Ok(value) = header::HeaderValue::from_str(&content_type) {
                request = request.header(header::CONTENT_TYPE, value);
            }
            if let Some(value) = authorization.and_then(|a| header::HeaderValue::from_str(&a).ok())
            {
                request = request.header(header::AUTHORIZATION, value);
            }
            let request = request.body(Body::from(body)).unwrap();
            let (status, reply) = runtime.block_on(async {
                let response = router.clone().oneshot(request).await.unwrap();
                let status = response.status();
                let bytes = response.into_body().collect().await.unwrap().to_bytes();
                (status, serde_json::from_slice::<Value>(&bytes))
            });
            prop_assert!(!status.is_server_error(), "{status}");
            let reply = reply.map_err(|e| TestCaseError::fail(format!("not JSON: {e}")))?;
            if status == StatusCode::OK {
                issued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                prop_assert_eq!(&reply["token_type"], "Bearer");
                prop_assert!(reply["access_token"].is_string());
            } else {
                prop_assert!(status.is_client_error());
                prop_assert!(reply["error"].is_string(), "{}", reply);
            }
            Ok(())
        },
    );
    // The properties are not vacuous: the success path was reached too.
    assert!(issued.into_inner() > 0, "no case reached a 200");
}
