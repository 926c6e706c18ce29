//! Every acceptance and rejection rule of the README's "What the layer checks", one by one, over real HTTP: a JWKS
//! server and the tickets API on 127.0.0.1:0, tokens signed here with Ed25519, P-256, P-384
//! and RSA keys.

mod support;

use std::time::Duration;

use agent_auth::{AgentAuth, TokenTypeHeader};
use serde_json::{Value, json};
use support::*;

struct Fixture {
    jwks: JwksServer,
    ed: TestKey,
    api: String,
}

impl Fixture {
    async fn new() -> Self {
        Self::with(|auth| auth).await
    }

    async fn with(configure: impl FnOnce(AgentAuth) -> AgentAuth) -> Self {
        let ed = TestKey::ed25519("ed-1");
        let jwks = JwksServer::start(&[&ed]).await;
        let api = serve_api(configure(jwks.auth()).build().unwrap()).await;
        Fixture { jwks, ed, api }
    }

    fn issuer(&self) -> String {
        self.jwks.issuer()
    }

    fn token(&self, changes: Value) -> String {
        self.ed.token(&self.issuer(), changes)
    }

    async fn call(&self, token: &str) -> Outcome {
        get_with_token(&format!("{}/tickets", self.api), token).await
    }

    /// Asserts `401 invalid_token` with exactly this `error_description` for `token`.
    async fn assert_refused(&self, token: &str, description: &str) {
        let outcome = self.call(token).await;
        assert_eq!(outcome.status, 401, "{description}: {outcome:?}");
        assert_eq!(
            outcome.error().as_deref(),
            Some("invalid_token"),
            "{outcome:?}"
        );
        let expected = format!("error_description=\"{description}\"");
        assert!(
            outcome
                .challenge
                .as_deref()
                .unwrap_or("")
                .contains(&expected),
            "{description}: {outcome:?}"
        );
    }

    /// Asserts `401 invalid_token` for `token`.
    async fn assert_invalid(&self, token: &str, why: &str) {
        let outcome = self.call(token).await;
        assert_eq!(outcome.status, 401, "{why}: {outcome:?}");
        assert_eq!(
            outcome.error().as_deref(),
            Some("invalid_token"),
            "{why}: {outcome:?}"
        );
    }
}

#[tokio::test]
async fn valid_tokens_of_every_key_type_are_accepted_and_the_agent_reaches_the_handler() {
    let keys = [
        TestKey::ed25519("ed"),
        TestKey::p256("p256"),
        TestKey::p384("p384"),
        TestKey::rsa("rsa"),
        TestKey::rsa_pss("pss"),
    ];
    let jwks = JwksServer::start(&keys.iter().collect::<Vec<_>>()).await;
    let api = serve_api(jwks.auth().build().unwrap()).await;
    for key in &keys {
        let token = key.token(&jwks.issuer(), json!({ "custom": { "team": "support" } }));
        let outcome = get_with_token(&format!("{api}/tickets"), &token).await;
        assert_eq!(outcome.status, 200, "{}: {outcome:?}", key.alg());
        let body = outcome.json();
        assert_eq!(body["agent_id"], AGENT_ID);
        assert_eq!(body["scopes"], json!(["tickets:read", "tickets:triage"]));
        assert_eq!(body["claims"]["custom"]["team"], "support");
        assert_eq!(body["claims"]["dat"]["type"], "agent");
    }
    assert_eq!(jwks.fetches(), 1, "one fetch serves every key");
}

#[tokio::test]
async fn a_jwk_without_alg_is_bound_by_its_key_type() {
    let ed = TestKey::ed25519("ed");
    let p256 = TestKey::p256("p256");
    let rsa = TestKey::rsa("rsa");
    let jwks = JwksServer::start(&[]).await;
    jwks.set_document(
        json!({ "keys": [ed.jwk_without_alg(), p256.jwk_without_alg(), rsa.jwk_without_alg()] }),
    );
    let api = serve_api(jwks.auth().build().unwrap()).await;
    for key in [&ed, &p256, &rsa] {
        let outcome = get_with_token(
            &format!("{api}/tickets"),
            &key.token(&jwks.issuer(), json!({})),
        )
        .await;
        assert_eq!(outcome.status, 200, "{}", key.alg());
    }
    // An RSA key without `alg` is RS256 only: a PS256 token under it is refused.
    let pss_signed = {
        let header = json!({ "alg": "PS256", "kid": "rsa", "typ": "at+jwt" });
        let claims = agent_claims(&jwks.issuer(), json!({}));
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        // The right private key, but PSS padding.
        format!("{input}.{}", b64(rsa_sign_pss(&rsa, input.as_bytes())))
    };
    let outcome = get_with_token(&format!("{api}/tickets"), &pss_signed).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(outcome.error().as_deref(), Some("invalid_token"));
    assert!(
        outcome
            .challenge
            .unwrap()
            .contains("algorithm does not match the signing key")
    );
}

fn rsa_sign_pss(key: &TestKey, message: &[u8]) -> Vec<u8> {
    let KeyKind::Rsa(pair, _, _) = &key.kind else {
        unreachable!()
    };
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &aws_lc_rs::signature::RSA_PSS_SHA256,
        &aws_lc_rs::rand::SystemRandom::new(),
        message,
        &mut signature,
    )
    .unwrap();
    signature
}

#[tokio::test]
async fn alg_none_is_refused() {
    let f = Fixture::new().await;
    let claims = agent_claims(&f.issuer(), json!({}));
    for alg in ["none", "None", "NONE"] {
        let header = json!({ "alg": alg, "kid": "ed-1", "typ": "at+jwt" });
        let token = format!("{}.{}.", b64(header.to_string()), b64(claims.to_string()));
        f.assert_invalid(&token, alg).await;
        // With a dummy signature too, so it is not merely "empty signature".
        f.assert_invalid(&format!("{token}AAAA"), alg).await;
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    use aws_lc_rs::hmac;
    let f = Fixture::new().await;
    let KeyKind::Ed25519(pair) = &f.ed.kind else {
        unreachable!()
    };
    use aws_lc_rs::signature::KeyPair;
    let public = pair.public_key().as_ref().to_vec();
    let jwk_text = f.ed.jwk().to_string();
    for secret in [public, jwk_text.into_bytes()] {
        let header = json!({ "alg": "HS256", "kid": "ed-1", "typ": "at+jwt" });
        let claims = agent_claims(&f.issuer(), json!({}));
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &secret),
            input.as_bytes(),
        );
        let outcome = f.call(&format!("{input}.{}", b64(tag.as_ref()))).await;
        assert_eq!(outcome.status, 401);
        assert_eq!(outcome.error().as_deref(), Some("invalid_token"));
        assert!(outcome.challenge.unwrap().contains("unsupported algorithm"));
    }
}

#[tokio::test]
async fn alg_not_matching_the_key_is_refused() {
    let f = Fixture::new().await;
    // An ES256 token claiming the Ed25519 key's kid, signed by a P-256 key.
    let p256 = TestKey::p256("ed-1");
    f.assert_refused(
        &p256.token(&f.issuer(), json!({})),
        "algorithm does not match the signing key",
    )
    .await;
    assert_eq!(f.jwks.fetches(), 1, "a known kid never triggers a refetch");
}

#[tokio::test]
async fn a_foreign_key_under_a_trusted_kid_is_refused() {
    let f = Fixture::new().await;
    let impostor = TestKey::ed25519("ed-1");
    f.assert_refused(
        &impostor.token(&f.issuer(), json!({})),
        "signature verification failed",
    )
    .await;
}

#[tokio::test]
async fn jku_x5u_and_embedded_jwk_headers_are_ignored() {
    let f = Fixture::new().await;
    let attacker = TestKey::ed25519("attacker");
    let claims = agent_claims(&f.issuer(), json!({}));
    let jku = format!("http://{}/jwks.json", f.jwks.addr);
    // Signed by the attacker, pointing at the attacker's key: must not verify.
    for extra in [
        json!({ "jwk": attacker.jwk() }),
        json!({ "jku": jku, "kid": "attacker" }),
        json!({ "x5u": "http://127.0.0.1:9/cert.pem" }),
        json!({ "jwk": attacker.jwk(), "kid": "ed-1" }),
    ] {
        let mut header = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": "ed-1" });
        for (name, value) in extra.as_object().unwrap() {
            header[name] = value.clone();
        }
        f.assert_invalid(&attacker.token_with(header, claims.clone()), "attacker key")
            .await;
    }
    // The same headers on a token signed by the trusted key change nothing: it verifies.
    let header = json!({ "alg": "EdDSA", "typ": "at+jwt", "kid": "ed-1", "jku": jku, "jwk": attacker.jwk(), "x5u": "http://127.0.0.1:9/x" });
    assert_eq!(f.call(&f.ed.token_with(header, claims)).await.status, 200);
}

#[tokio::test]
async fn unknown_crit_is_refused() {
    let f = Fixture::new().await;
    let claims = agent_claims(&f.issuer(), json!({}));
    for crit in [json!(["exp"]), json!(["b64"]), json!([]), json!("x")] {
        let header = json!({ "alg": "EdDSA", "kid": "ed-1", "typ": "at+jwt", "crit": crit, "exp": 1, "b64": true });
        let outcome = f.call(&f.ed.token_with(header, claims.clone())).await;
        assert_eq!(outcome.status, 401, "{crit}");
        assert!(
            outcome
                .challenge
                .unwrap()
                .contains("unsupported critical header")
        );
    }
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    let f = Fixture::new().await;
    for iss in [
        json!("http://evil.example"),
        json!(format!("{}/", f.issuer())),
        json!(f.issuer().to_uppercase()),
    ] {
        let outcome = f.call(&f.token(json!({ "iss": iss }))).await;
        assert_eq!(outcome.status, 401, "{iss}");
        assert!(outcome.challenge.unwrap().contains("wrong issuer"), "{iss}");
    }
}

#[tokio::test]
async fn wrong_audience_is_refused_and_an_array_containing_ours_is_accepted() {
    let f = Fixture::new().await;
    for aud in [
        json!("https://api.example.com/other"),
        json!(["a", "b"]),
        json!([]),
        json!(AGENT_ID),
    ] {
        let outcome = f.call(&f.token(json!({ "aud": aud }))).await;
        assert_eq!(outcome.status, 401, "{aud}");
        assert!(
            outcome.challenge.unwrap().contains("wrong audience"),
            "{aud}"
        );
    }
    let outcome = f
        .call(&f.token(json!({ "aud": ["https://other", AUDIENCE] })))
        .await;
    assert_eq!(outcome.status, 200);
    for aud in [json!(42), json!({ "aud": AUDIENCE }), json!([AUDIENCE, 1])] {
        let outcome = f.call(&f.token(json!({ "aud": aud }))).await;
        assert_eq!(outcome.status, 401, "{aud}");
        assert!(outcome.challenge.unwrap().contains("invalid type"), "{aud}");
    }
}

#[tokio::test]
async fn several_configured_audiences_each_accept() {
    let f = Fixture::with(|auth| auth.audience("https://second.example")).await;
    assert_eq!(
        f.call(&f.token(json!({ "aud": "https://second.example" })))
            .await
            .status,
        200
    );
    assert_eq!(f.call(&f.token(json!({}))).await.status, 200);
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let f = Fixture::new().await;
    f.assert_refused(&f.token(json!({ "exp": now() - 60 })), "token expired")
        .await;
    f.assert_refused(
        &f.token(json!({ "nbf": now() + 60 })),
        "token not yet valid",
    )
    .await;
    assert_eq!(
        f.call(&f.token(json!({ "nbf": now() - 1 }))).await.status,
        200
    );
}

#[tokio::test]
async fn leeway_edges() {
    // A 60 s leeway, probed 10 s inside and outside, so test latency cannot flip a verdict.
    let f = Fixture::with(|auth| auth.leeway(Duration::from_secs(60))).await;
    assert_eq!(
        f.call(&f.token(json!({ "exp": now() - 50 }))).await.status,
        200
    );
    assert_eq!(
        f.call(&f.token(json!({ "exp": now() - 70 }))).await.status,
        401
    );
    assert_eq!(
        f.call(&f.token(json!({ "nbf": now() + 50 }))).await.status,
        200
    );
    assert_eq!(
        f.call(&f.token(json!({ "nbf": now() + 70 }))).await.status,
        401
    );
    // The default leeway is 5 s.
    let d = Fixture::new().await;
    assert_eq!(
        d.call(&d.token(json!({ "exp": now() - 1 }))).await.status,
        200
    );
    assert_eq!(
        d.call(&d.token(json!({ "exp": now() - 15 }))).await.status,
        401
    );
}

#[tokio::test]
async fn required_claims_missing_are_refused() {
    let f = Fixture::new().await;
    for claim in ["iss", "sub", "aud", "exp"] {
        let outcome = f.call(&f.token(json!({ claim: null }))).await;
        assert_eq!(outcome.status, 401, "{claim}");
        assert!(
            outcome
                .challenge
                .unwrap()
                .contains("required claim missing"),
            "{claim}"
        );
    }
}

#[tokio::test]
async fn non_agent_tokens_are_refused_each_marker_alone() {
    let f = Fixture::new().await;
    let cases = [
        ("dat missing", json!({ "dat": null })),
        ("dat.type user", json!({ "dat": { "type": "user" } })),
        ("dat.type missing", json!({ "dat": {} })),
        ("dat.type Agent", json!({ "dat": { "type": "Agent" } })),
        (
            "sub of a user",
            json!({ "sub": "usr_7c1de2f3a4b5c6d7e8f9a0b1c2d3e4f5" }),
        ),
        (
            "sub AGT_",
            json!({ "sub": "AGT_7c1de2f3a4b5c6d7e8f9a0b1c2d3e4f5" }),
        ),
        (
            "sub agt without underscore",
            json!({ "sub": "agt7c1de2f3" }),
        ),
    ];
    for (why, changes) in cases {
        let outcome = f.call(&f.token(changes)).await;
        assert_eq!(outcome.status, 401, "{why}");
        assert!(
            outcome.challenge.unwrap().contains("not an agent token"),
            "{why}"
        );
    }
}

#[tokio::test]
async fn typ_policy_is_enforced() {
    let f = Fixture::new().await;
    let claims = agent_claims(&f.issuer(), json!({}));
    for (typ, status) in [
        (json!("at+jwt"), 200),
        (json!("application/at+JWT"), 200),
        (json!("JWT"), 200),
        (json!("jwt"), 200),
        (json!("JOSE"), 401),
        (json!("id_token+jwt"), 401),
        (json!("dpop+jwt"), 401),
    ] {
        let header = json!({ "alg": "EdDSA", "kid": "ed-1", "typ": typ });
        let outcome = f.call(&f.ed.token_with(header, claims.clone())).await;
        assert_eq!(outcome.status, status, "{typ}");
        if status == 401 {
            assert!(
                outcome
                    .challenge
                    .unwrap()
                    .contains("unsupported token type")
            );
        }
    }
    let header = json!({ "alg": "EdDSA", "kid": "ed-1" });
    assert_eq!(
        f.call(&f.ed.token_with(header.clone(), claims.clone()))
            .await
            .status,
        200
    );

    let strict = Fixture::with(|auth| auth.typ_header(TokenTypeHeader::AtJwtOnly)).await;
    let claims = agent_claims(&strict.issuer(), json!({}));
    assert_eq!(
        strict
            .call(&strict.ed.token_with(header, claims.clone()))
            .await
            .status,
        401
    );
    let jwt = json!({ "alg": "EdDSA", "kid": "ed-1", "typ": "JWT" });
    assert_eq!(
        strict
            .call(&strict.ed.token_with(jwt, claims.clone()))
            .await
            .status,
        401
    );
    let at = json!({ "alg": "EdDSA", "kid": "ed-1", "typ": "at+jwt" });
    assert_eq!(
        strict.call(&strict.ed.token_with(at, claims)).await.status,
        200
    );
}

#[tokio::test]
async fn oversize_tokens_are_refused_before_parsing() {
    let f = Fixture::with(|auth| auth.max_token_bytes(2048)).await;
    let padding = "x".repeat(2048);
    let token = f.token(json!({ "padding": padding }));
    assert!(token.len() > 2048);
    f.assert_refused(&token, "token too large").await;
    // Garbage of the same size is refused for its size, not parsed.
    let outcome = f.call(&"a".repeat(4096)).await;
    assert!(outcome.challenge.unwrap().contains("token too large"));
}

#[tokio::test]
async fn garbage_tokens_are_refused() {
    let f = Fixture::new().await;
    let valid = f.token(json!({}));
    let parts: Vec<&str> = valid.split('.').collect();
    let cases = [
        "garbage".to_owned(),
        "a.b".to_owned(),
        "a.b.c".to_owned(),
        "a.b.c.d".to_owned(),
        format!("{}.{}.{}.{}", parts[0], parts[1], parts[2], parts[2]),
        format!("{}..{}", parts[0], parts[2]),
        format!(".{}.{}", parts[1], parts[2]),
        format!("{}.{}.", parts[0], parts[1]),
        // Padding is legal b64token syntax but not base64url in a JWS (RFC 7515 §2).
        format!("{}.{}.{}==", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", b64("[1,2]"), parts[1], parts[2]),
        format!("{}.{}.{}", b64("not json"), parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], b64("not json"), parts[2]),
        format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            &parts[2][..parts[2].len() - 4]
        ),
    ];
    for token in cases {
        f.assert_invalid(&token, &token).await;
    }
}

#[tokio::test]
async fn payload_tampering_is_refused() {
    let f = Fixture::new().await;
    let valid = f.token(json!({ "scope": "tickets:read" }));
    let parts: Vec<&str> = valid.split('.').collect();
    let forged_claims = agent_claims(
        &f.issuer(),
        json!({ "scope": "tickets:read tickets:admin" }),
    );
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(forged_claims.to_string()),
        parts[2]
    );
    let outcome = f.call(&forged).await;
    assert!(
        outcome
            .challenge
            .unwrap()
            .contains("signature verification failed")
    );
}

#[tokio::test]
async fn a_non_canonical_ed25519_signature_is_refused() {
    // Ed25519 order L = 2^252 + 27742317777372353535851937790883648493 (little-endian below).
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let f = Fixture::new().await;
    let valid = f.token(json!({}));
    assert_eq!(f.call(&valid).await.status, 200);
    let (input, signature) = valid.rsplit_once('.').unwrap();
    let mut signature =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
            .unwrap();
    // S' = S + L: the same point equation holds, but S' is not reduced (RFC 8032 §5.1.7).
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = signature[32 + i] as u16 + L[i] as u16 + carry;
        signature[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 32 bytes since S < L < 2^253");
    f.assert_refused(
        &format!("{input}.{}", b64(&signature)),
        "signature verification failed",
    )
    .await;
}

#[tokio::test]
async fn a_small_order_ed25519_key_is_never_used() {
    // With the identity point as public key and signature (R = identity, S = 0), a lax
    // verifier accepts any message. The key is skipped when the JWKS is loaded.
    let f = Fixture::new().await;
    let mut identity = [0u8; 32];
    identity[0] = 1;
    f.jwks.set_document(json!({ "keys": [
        { "kty": "OKP", "crv": "Ed25519", "kid": "weak", "x": b64(identity) },
        f.ed.jwk(),
    ] }));
    let header = json!({ "alg": "EdDSA", "kid": "weak", "typ": "at+jwt" });
    let claims = agent_claims(&f.issuer(), json!({}));
    let mut signature = [0u8; 64];
    signature[0] = 1;
    let token = format!(
        "{}.{}.{}",
        b64(header.to_string()),
        b64(claims.to_string()),
        b64(signature)
    );
    f.assert_refused(&token, "unknown signing key").await;
}

#[tokio::test]
async fn scopes_are_enforced_per_route() {
    let f = Fixture::new().await;
    let read_only = f.token(json!({ "scope": "tickets:read" }));
    assert_eq!(f.call(&read_only).await.status, 200);
    let triage = format!("{}/tickets/T-1/triage", f.api);
    let outcome = send(client().post(&triage).bearer_auth(&read_only)).await;
    assert_eq!(outcome.status, 403);
    assert_eq!(outcome.error().as_deref(), Some("insufficient_scope"));
    assert!(
        outcome
            .challenge
            .as_deref()
            .unwrap()
            .contains(r#"scope="tickets:triage""#)
    );
    let both = f.token(json!({}));
    let outcome = send(client().post(&triage).bearer_auth(&both)).await;
    assert_eq!(outcome.status, 200);
    assert_eq!(outcome.json()["agent_id"], AGENT_ID);
    // No scope claim at all means no scopes.
    let none = f.token(json!({ "scope": null }));
    let outcome = f.call(&none).await;
    assert_eq!(outcome.status, 403);
    assert_eq!(outcome.error().as_deref(), Some("insufficient_scope"));
    // `any`: one of the listed scopes is enough; none of them is not.
    let either = format!("{}/either", f.api);
    assert_eq!(get_with_token(&either, &read_only).await.status, 200);
    let other = f.token(json!({ "scope": "tickets:triage" }));
    let outcome = get_with_token(&either, &other).await;
    assert_eq!(outcome.status, 403);
    assert!(
        outcome
            .challenge
            .unwrap()
            .contains(r#"scope="tickets:admin tickets:read""#)
    );
    // Scope of the wrong JSON type is an invalid token, not "no scopes".
    let outcome = f.call(&f.token(json!({ "scope": ["tickets:read"] }))).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(outcome.error().as_deref(), Some("invalid_token"));
}

#[tokio::test]
async fn request_shape_errors() {
    let f = Fixture::new().await;
    let url = format!("{}/tickets", f.api);
    let token = f.token(json!({}));

    let outcome = send(client().get(&url)).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(
        outcome.challenge.as_deref(),
        Some(format!(r#"Bearer realm="{AUDIENCE}""#).as_str())
    );
    assert_eq!(outcome.error(), None);

    let outcome = send(client().get(&url).basic_auth("agt_x", Some("secret"))).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(outcome.error(), None);

    let outcome = send(client().get(format!("{url}?access_token={token}"))).await;
    assert_eq!(outcome.status, 401, "a query-string token is never read");
    assert_eq!(outcome.error(), None);

    for value in ["Bearer", "Bearer ", "bearer    "] {
        let outcome = send(client().get(&url).header("authorization", value)).await;
        assert_eq!(outcome.status, 400, "{value:?}");
        assert_eq!(outcome.error().as_deref(), Some("invalid_request"));
    }
    let (head, tail) = token.split_at(10);
    let outcome = send(
        client()
            .get(&url)
            .header("authorization", format!("Bearer {head}={tail}")),
    )
    .await;
    assert_eq!(outcome.status, 400, "'=' inside a b64token");
    let outcome = send(
        client()
            .get(&url)
            .header("authorization", format!("Bearer {token} extra")),
    )
    .await;
    assert_eq!(outcome.status, 400);
    assert_eq!(outcome.error().as_deref(), Some("invalid_request"));

    let outcome = send(
        client()
            .get(&url)
            .header("authorization", format!("Bearer {token}"))
            .header("authorization", format!("Bearer {token}")),
    )
    .await;
    assert_eq!(outcome.status, 400);
    assert_eq!(outcome.error().as_deref(), Some("invalid_request"));

    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let outcome = send(
            client()
                .get(&url)
                .header("authorization", format!("{scheme} {token}")),
        )
        .await;
        assert_eq!(outcome.status, 200, "{scheme}");
    }
}

#[tokio::test]
async fn challenges_carry_resource_metadata_when_configured() {
    let metadata = "https://api.example.com/.well-known/oauth-protected-resource/tickets";
    let f = Fixture::with(|auth| auth.resource_metadata(metadata).realm("tickets")).await;
    let url = format!("{}/tickets", f.api);
    let expected = format!(r#"resource_metadata="{metadata}""#);
    let missing = send(client().get(&url)).await;
    assert_eq!(
        missing.challenge.as_deref(),
        Some(format!(r#"Bearer realm="tickets", {expected}"#).as_str())
    );
    let invalid = f.call("garbage").await;
    assert!(invalid.challenge.unwrap().contains(&expected));
    let bad_request = send(client().get(&url).header("authorization", "Bearer")).await;
    assert!(bad_request.challenge.unwrap().contains(&expected));
    let forbidden = f.call(&f.token(json!({ "scope": "" }))).await;
    assert_eq!(forbidden.status, 403);
    assert!(forbidden.challenge.unwrap().contains(&expected));
}

#[tokio::test]
async fn duplicate_claims_and_header_members_are_refused() {
    let f = Fixture::new().await;
    let claims = agent_claims(&f.issuer(), json!({})).to_string();
    let duplicated = claims.replacen('{', &format!(r#"{{"sub":"agt_{}","#, "0".repeat(32)), 1);
    let token = f.ed.token_raw(&f.ed.header().to_string(), &duplicated);
    f.assert_invalid(&token, "duplicate sub").await;
    let header = r#"{"alg":"EdDSA","alg":"none","kid":"ed-1"}"#;
    f.assert_invalid(&f.ed.token_raw(header, &claims), "duplicate alg")
        .await;
}

#[tokio::test]
async fn verify_outside_http_gives_the_same_verdicts() {
    let ed = TestKey::ed25519("ed-1");
    let jwks = JwksServer::start(&[&ed]).await;
    let auth = jwks.auth().build().unwrap();
    let agent = auth
        .verify(&ed.token(&jwks.issuer(), json!({})))
        .await
        .unwrap();
    assert_eq!(agent.id(), AGENT_ID);
    assert!(agent.has_scope("tickets:triage"));
    assert_eq!(agent.audience(), AUDIENCE);
    assert_eq!(agent.client_id(), Some(AGENT_ID));
    let error = auth
        .verify(&ed.token(&jwks.issuer(), json!({ "exp": now() - 100 })))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        agent_auth::AuthError::InvalidToken(agent_auth::InvalidToken::Expired)
    );
}
