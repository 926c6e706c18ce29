//! Registering an agent's public key (`jwk` verifiers) through the management API: what is
//! stored and shown, every refusal with its exact status and code, and the other key types
//! (ES256, RS256, PS256) end to end. Also the RFC 8414 document standard clients read and the
//! `/authorize` endpoint it names.
#![cfg(feature = "issuer")]

mod issuer_support;

use agent_auth::issuer::{MAX_VERIFIERS_PER_AGENT, TestIssuer};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use issuer_support::keyed::*;
use issuer_support::{admin, http, read};
use reqwest::Method;
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A valid Ed25519 public JWK with `edit` applied.
fn jwk_with(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Value {
    let mut jwk = public_jwk(&ed_key(1));
    edit(jwk.as_object_mut().unwrap());
    jwk
}

/// Registers `jwk` for a fresh agent and returns the error code, asserting `status`.
async fn refused(issuer: &TestIssuer, jwk: Value, status: u16) -> String {
    let agent = agent_without_secret(issuer, &[]).await;
    register_jwk(issuer, &agent, jwk).await.api_error(status)
}

#[tokio::test]
async fn a_registered_key_shows_its_credential_and_no_secret() {
    let issuer = TestIssuer::start().await;
    let agent = agent_without_secret(&issuer, &[]).await;
    // A kid, use and key_ops are accepted (and not needed later).
    let jwk = jwk_with(|j| {
        j.insert("kid".into(), json!("k1"));
        j.insert("use".into(), json!("sig"));
        j.insert("key_ops".into(), json!(["verify"]));
        j.insert("alg".into(), json!("EdDSA"));
    });
    let r = register_jwk(&issuer, &agent, jwk).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = &r.json()["data"];
    assert_eq!(v["type"], "jwk");
    assert_eq!(v["agent_id"], agent.as_str());
    assert_eq!(v["status"], "active");
    assert!(v.get("secret").is_none(), "{v}");
    let thumbprint = v["credential"]["thumbprint"].as_str().unwrap().to_owned();
    assert_eq!(
        v["credential"],
        json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "thumbprint": thumbprint})
    );
    assert_eq!(URL_SAFE_NO_PAD.decode(&thumbprint).unwrap().len(), 32);

    let listed = admin(
        &issuer,
        Method::GET,
        &format!("/v1/agents/{agent}/verifiers"),
        None,
    )
    .await;
    assert_eq!(listed.json()["data"][0]["credential"], v["credential"]);
    assert_eq!(listed.json()["data"][0]["usage_count"], 0);
    let events = admin(
        &issuer,
        Method::GET,
        "/v1/events?type=agent.verifier.added",
        None,
    )
    .await;
    assert_eq!(events.json()["data"][0]["data"]["id"], v["id"]);
}

#[tokio::test]
async fn private_members_are_refused() {
    let issuer = TestIssuer::start().await;
    for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        let jwk = jwk_with(|j| {
            j.insert(member.into(), json!(b64(&[7; 32])));
        });
        assert_eq!(refused(&issuer, jwk, 422).await, "invalid_jwk", "{member}");
    }
}

#[tokio::test]
async fn a_symmetric_key_is_refused() {
    let issuer = TestIssuer::start().await;
    let jwk = json!({"kty": "oct", "alg": "HS256"});
    assert_eq!(refused(&issuer, jwk, 422).await, "invalid_jwk");
}

#[tokio::test]
async fn an_unsupported_kty_or_curve_is_refused() {
    let issuer = TestIssuer::start().await;
    let x = public_jwk(&ed_key(1))["x"].clone();
    for jwk in [
        json!({"kty": "OKP", "crv": "Ed448", "x": x}),
        json!({"kty": "OKP", "crv": "X25519", "x": x}),
        json!({"kty": "OKP", "x": x}),
        json!({"kty": "EC", "crv": "P-384", "x": b64(&[1; 48]), "y": b64(&[1; 48])}),
        json!({"kty": "EC", "crv": "secp256k1", "x": b64(&[1; 32]), "y": b64(&[1; 32])}),
        json!({"kty": "okp", "crv": "Ed25519", "x": x}),
        json!({"kty": "WAT"}),
        json!({"crv": "Ed25519", "x": x}),
    ] {
        assert_eq!(
            refused(&issuer, jwk.clone(), 422).await,
            "invalid_jwk",
            "{jwk}"
        );
    }
}

#[tokio::test]
async fn bad_base64_or_length_is_refused() {
    let issuer = TestIssuer::start().await;
    let x = public_jwk(&ed_key(1))["x"].as_str().unwrap().to_owned();
    for bad in [
        format!("{x}="),
        x.replace(|c: char| c.is_ascii_alphabetic(), "+"),
        b64(&[9; 31]),
        b64(&[9; 33]),
        String::new(),
    ] {
        let jwk = jwk_with(|j| {
            j.insert("x".into(), json!(bad));
        });
        assert_eq!(
            refused(&issuer, jwk, 422).await,
            "invalid_jwk",
            "x = {bad:?}"
        );
    }
    let jwk = jwk_with(|j| {
        j.insert("x".into(), json!(12));
    });
    assert_eq!(refused(&issuer, jwk, 422).await, "invalid_jwk");
}

#[tokio::test]
async fn small_order_and_non_canonical_keys_are_refused() {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    let issuer = TestIssuer::start().await;
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut y_is_p = [0xffu8; 32];
    y_is_p[0] = 0xed;
    y_is_p[31] = 0x7f;
    // A valid key plus a small-order point: a mixed-order key no honest key generator makes.
    let mixed = (ED25519_BASEPOINT_POINT * curve25519_dalek::Scalar::from(7u64) + EIGHT_TORSION[1])
        .compress()
        .to_bytes();
    for bytes in [
        identity,
        y_is_p,
        EIGHT_TORSION[2].compress().to_bytes(),
        mixed,
    ] {
        let jwk = jwk_with(|j| {
            j.insert("x".into(), json!(b64(&bytes)));
        });
        assert_eq!(refused(&issuer, jwk, 422).await, "invalid_jwk", "{bytes:?}");
    }
}

#[tokio::test]
async fn an_alg_that_does_not_fit_the_key_is_refused() {
    let issuer = TestIssuer::start().await;
    for alg in ["RS256", "HS256", "none", "ES256", "eddsa", "EdDSA "] {
        let jwk = jwk_with(|j| {
            j.insert("alg".into(), json!(alg));
        });
        assert_eq!(refused(&issuer, jwk, 422).await, "invalid_jwk", "{alg}");
    }
}

#[tokio::test]
async fn a_key_not_for_signatures_is_refused() {
    let issuer = TestIssuer::start().await;
    let cases: [(&str, Value); 3] = [
        ("use", json!("enc")),
        ("key_ops", json!(["sign"])),
        ("key_ops", json!("verify")),
    ];
    for (member, value) in cases {
        let jwk = jwk_with(|j| {
            j.insert(member.into(), value.clone());
        });
        assert_eq!(refused(&issuer, jwk, 422).await, "invalid_jwk", "{member}");
    }
}

#[tokio::test]
async fn an_rsa_modulus_outside_2048_to_4096_bits_is_refused() {
    let issuer = TestIssuer::start().await;
    for bytes in [128usize, 4096 / 8 + 1] {
        let jwk = json!({"kty": "RSA", "n": b64(&vec![0xc5; bytes]), "e": "AQAB"});
        assert_eq!(
            refused(&issuer, jwk, 422).await,
            "invalid_jwk",
            "{bytes} bytes"
        );
    }
    let jwk = json!({"kty": "RSA", "n": b64(&[0xc5; 256]), "e": "AQAB", "alg": "RS512"});
    assert_eq!(refused(&issuer, jwk, 422).await, "invalid_jwk");
}

#[tokio::test]
async fn a_jwk_that_is_not_one_object_is_refused() {
    let issuer = TestIssuer::start().await;
    let agent = agent_without_secret(&issuer, &[]).await;
    let x = public_jwk(&ed_key(1))["x"].as_str().unwrap().to_owned();
    let key = issuer.admin_key();
    let post = |body: String| {
        let url = format!("{}/v1/agents/{agent}/verifiers", issuer.url());
        let auth = issuer_support::basic(key.id(), key.secret().expose());
        async move {
            read(
                http()
                    .post(url)
                    .header("authorization", auth)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap(),
            )
            .await
        }
    };
    // A member named twice: refused rather than read by its last value.
    let dup = format!(
        r#"{{"type":"jwk","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{x}","x":"{}"}}}}"#,
        b64(&[1; 32])
    );
    assert_eq!(post(dup).await.api_error(422), "invalid_jwk");
    for jwk in ["[]", "\"key\"", "42"] {
        let r = post(format!(r#"{{"type":"jwk","jwk":{jwk}}}"#)).await;
        assert_eq!(r.api_error(422), "invalid_jwk", "{jwk}");
    }
    // The body's own shape.
    let r = post(r#"{"type":"jwk"}"#.to_owned()).await;
    assert_eq!(r.api_error(422), "validation_error");
    let r = post(format!(
        r#"{{"type":"secret","jwk":{}}}"#,
        public_jwk(&ed_key(1))
    ))
    .await;
    assert_eq!(r.api_error(422), "validation_error");
    let r = post(r#"{"type":"x509"}"#.to_owned()).await;
    assert_eq!(r.api_error(422), "validation_error");
}

#[tokio::test]
async fn a_key_is_registered_once_across_agents() {
    let issuer = TestIssuer::start().await;
    let key = ed_key(1);
    let agent = keyed_agent(&issuer, &[], &key).await;
    let again = register_jwk(&issuer, &agent, public_jwk(&key)).await;
    assert_eq!(again.api_error(409), "conflict");
    // The same key with other non-thumbprint members is the same key.
    let decorated = jwk_with(|j| {
        j.insert("kid".into(), json!("other"));
    });
    assert_eq!(
        register_jwk(&issuer, &agent, decorated)
            .await
            .api_error(409),
        "conflict"
    );
    let other = agent_without_secret(&issuer, &[]).await;
    let r = register_jwk(&issuer, &other, public_jwk(&key)).await;
    assert_eq!(r.api_error(409), "conflict");
    // Removed, it may be registered again.
    let vid = issuer.admin().list_verifiers(&agent).await.unwrap()[0]
        .id
        .clone();
    issuer.admin().delete_verifier(&agent, &vid).await.unwrap();
    assert_eq!(
        register_jwk(&issuer, &other, public_jwk(&key)).await.status,
        201
    );
}

#[tokio::test]
async fn keys_count_toward_the_verifier_limit() {
    let issuer = TestIssuer::start().await;
    let agent = agent_without_secret(&issuer, &[]).await;
    issuer.admin().add_secret(&agent, None).await.unwrap();
    for seed in 1..MAX_VERIFIERS_PER_AGENT {
        let r = register_jwk(&issuer, &agent, public_jwk(&ed_key(seed as u8))).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = register_jwk(&issuer, &agent, public_jwk(&ed_key(200))).await;
    assert_eq!(r.api_error(409), "limit_exceeded");
}

#[tokio::test]
async fn registering_for_an_unknown_agent_is_not_found() {
    let issuer = TestIssuer::start().await;
    let r = register_jwk(
        &issuer,
        "agt_0123456789abcdef0123456789abcdef",
        public_jwk(&ed_key(1)),
    )
    .await;
    assert_eq!(r.api_error(404), "not_found");
}

#[tokio::test]
async fn an_es256_key_authenticates() {
    use p256::ecdsa::signature::Signer as _;
    let issuer = TestIssuer::start().await;
    let agent = agent_without_secret(&issuer, &[]).await;
    let key = p256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    let point = key.verifying_key().to_encoded_point(false);
    let jwk = json!({
        "kty": "EC", "crv": "P-256",
        "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap()),
    });
    let r = register_jwk(&issuer, &agent, jwk).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json()["data"]["credential"]["alg"], "ES256");
    assert_eq!(r.json()["data"]["credential"]["crv"], "P-256");

    let input = format!(
        "{}.{}",
        b64(json!({"alg": "ES256"}).to_string().as_bytes()),
        b64(claims(&issuer, &agent).to_string().as_bytes())
    );
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    let assertion = format!("{input}.{}", b64(&signature.to_bytes()));
    let r = token_with_assertion(&issuer, &assertion, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// A fresh 2048-bit RSA key (aws-lc-rs) and its public JWK members `n`, `e`.
fn rsa_key() -> (aws_lc_rs::rsa::KeyPair, String, String) {
    use aws_lc_rs::signature::KeyPair as _;
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let public = pair.public_key();
    let n = b64(public.modulus().big_endian_without_leading_zero());
    let e = b64(public.exponent().big_endian_without_leading_zero());
    (pair, n, e)
}

/// An assertion of `agent` signed by `pair` with `alg` (RS256 or PS256).
fn rsa_assertion(
    issuer: &TestIssuer,
    pair: &aws_lc_rs::rsa::KeyPair,
    alg: &str,
    agent: &str,
) -> String {
    use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding};
    let input = format!(
        "{}.{}",
        b64(json!({"alg": alg}).to_string().as_bytes()),
        b64(claims(issuer, agent).to_string().as_bytes())
    );
    let padding: &'static dyn RsaEncoding = if alg == "PS256" {
        &RSA_PSS_SHA256
    } else {
        &RSA_PKCS1_SHA256
    };
    let mut sig = vec![0; pair.public_modulus_len()];
    pair.sign(
        padding,
        &aws_lc_rs::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", b64(&sig))
}

#[tokio::test]
async fn an_rsa_key_without_alg_authenticates_with_rs256_only() {
    let issuer = TestIssuer::start().await;
    let (pair, n, e) = rsa_key();
    let agent = agent_without_secret(&issuer, &[]).await;
    let r = register_jwk(&issuer, &agent, json!({"kty": "RSA", "n": n, "e": e})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let credential = &r.json()["data"]["credential"];
    assert_eq!(
        *credential,
        json!({"kty": "RSA", "alg": "RS256", "thumbprint": credential["thumbprint"]})
    );
    let ok = rsa_assertion(&issuer, &pair, "RS256", &agent);
    assert_eq!(token_with_assertion(&issuer, &ok, &[]).await.status, 200);
    let pss = rsa_assertion(&issuer, &pair, "PS256", &agent);
    let r = token_with_assertion(&issuer, &pss, &[]).await;
    assert_eq!(r.oauth_error(401), "invalid_client");
}

#[tokio::test]
async fn a_ps256_key_authenticates_with_ps256_only() {
    let issuer = TestIssuer::start().await;
    let (pair, n, e) = rsa_key();
    let agent = agent_without_secret(&issuer, &[]).await;
    let jwk = json!({"kty": "RSA", "alg": "PS256", "n": n, "e": e});
    assert_eq!(register_jwk(&issuer, &agent, jwk).await.status, 201);
    let ok = rsa_assertion(&issuer, &pair, "PS256", &agent);
    assert_eq!(token_with_assertion(&issuer, &ok, &[]).await.status, 200);
    let pkcs1 = rsa_assertion(&issuer, &pair, "RS256", &agent);
    let r = token_with_assertion(&issuer, &pkcs1, &[]).await;
    assert_eq!(r.oauth_error(401), "invalid_client");
}

#[tokio::test]
async fn self_service_rotation_replaces_secrets_and_keeps_keys() {
    let issuer = TestIssuer::start().await;
    let key = ed_key(1);
    let agent = keyed_agent(&issuer, &[], &key).await;
    let token = token_with_assertion(
        &issuer,
        &assertion(&issuer, &agent, &key),
        &[("resource", issuer.url())],
    )
    .await;
    assert_eq!(token.status, 200, "{}", token.text);
    let bearer = token.json()["access_token"].as_str().unwrap().to_owned();
    let r = read(
        http()
            .post(format!("{}/v1/agents/me/rotate", issuer.url()))
            .bearer_auth(&bearer)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let kinds: Vec<String> = issuer
        .admin()
        .list_verifiers(&agent)
        .await
        .unwrap()
        .iter()
        .map(|v| format!("{:?}", v.kind))
        .collect();
    assert_eq!(kinds, ["Jwk", "Secret"]);
    let r = token_with_assertion(&issuer, &assertion(&issuer, &agent, &key), &[]).await;
    assert_eq!(r.status, 200, "the key still authenticates: {}", r.text);
}
