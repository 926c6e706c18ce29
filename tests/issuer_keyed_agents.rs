//! Keyed agents at the token endpoint: `private_key_jwt` client authentication (RFC 7523,
//! RFC 7521 §4.2) over real HTTP, with real Ed25519 signatures (ed25519-dalek). Every rule of
//! the assertion has a test sending the bad assertion and checking `401 invalid_client`; the
//! success path ends in the resource server's layer.
#![cfg(feature = "issuer")]

mod issuer_support;

use agent_auth::AgentAuth;
use agent_auth::issuer::{
    ASSERTION_LEEWAY_SECS, Database, MAX_ASSERTION_LIFETIME_SECS, MAX_JTI_CHARS, TestIssuer,
};
use issuer_support::keyed::*;
use issuer_support::{Reply, decode_jwt, form, token_post, token_raw};
use serde_json::{Value, json};

const API: &str = "https://api.example.com/tickets";

/// Asserts the refusal every failed assertion gets: `401 invalid_client`, the fixed
/// description (no detail of what failed), and no Basic challenge (Basic was not used).
fn assert_invalid_client(r: &Reply) {
    assert_eq!(r.oauth_error(401), "invalid_client", "{}", r.text);
    assert_eq!(
        r.json()["error_description"],
        "client authentication failed",
        "the refusal says nothing about why"
    );
    assert_eq!(r.header("www-authenticate"), None);
}

/// An issuer with one keyed agent (scopes `tickets:read tickets:triage`, key seed 1).
async fn setup() -> (TestIssuer, String, ed25519_dalek::SigningKey) {
    let issuer = TestIssuer::start().await;
    let key = ed_key(1);
    let agent = keyed_agent(&issuer, &["tickets:read", "tickets:triage"], &key).await;
    (issuer, agent, key)
}

/// The assertion of `agent` with `edit` applied to the well-behaved claims.
fn claims_with(issuer: &TestIssuer, agent: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut c = claims(issuer, agent);
    edit(&mut c);
    c
}

#[tokio::test]
async fn a_keyed_agent_gets_a_token_that_the_layer_accepts() {
    let (issuer, agent, key) = setup().await;
    let r = token_with_assertion(
        &issuer,
        &assertion(&issuer, &agent, &key),
        &[("scope", "tickets:read"), ("resource", API)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = r.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "tickets:read");
    let token = body["access_token"].as_str().unwrap();
    let (_, c) = decode_jwt(token);
    assert_eq!(c["client_id"], agent.as_str());

    let layer = AgentAuth::new(&issuer).audience(API).build().unwrap();
    let verified = layer.verify(token).await.expect("the layer accepts it");
    assert_eq!(verified.id(), agent);
    assert!(verified.has_scope("tickets:read"));
    assert!(!verified.has_scope("tickets:triage"));

    // Counted as for secrets: the agent and its key verifier.
    let v = issuer.admin().list_verifiers(&agent).await.unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].usage_count, 1);
    assert!(v[0].last_used_at.is_some());
    assert_eq!(
        issuer.admin().get_agent(&agent).await.unwrap().token_count,
        1
    );
}

#[tokio::test]
async fn aud_may_be_the_issuer_identifier_or_an_array_holding_the_token_endpoint() {
    let (issuer, agent, key) = setup().await;
    let issuer_url = issuer.url().to_owned();
    let endpoint = issuer.token_endpoint().to_owned();
    for aud in [
        json!(issuer_url),
        json!(["https://other.example", endpoint]),
    ] {
        let c = claims_with(&issuer, &agent, |c| c["aud"] = aud.clone());
        let r = token_with_assertion(&issuer, &sign(&key, &header(), &c), &[]).await;
        assert_eq!(r.status, 200, "aud {aud}: {}", r.text);
    }
}

#[tokio::test]
async fn no_kid_is_needed_the_agents_keys_are_tried() {
    let (issuer, agent, _) = setup().await;
    let second = ed_key(2);
    assert_eq!(
        register_jwk(&issuer, &agent, public_jwk(&second))
            .await
            .status,
        201
    );
    // Signed by the second key, with a kid that names nothing registered.
    let h = json!({"alg": "EdDSA", "typ": "JWT", "kid": "whatever"});
    let r = token_with_assertion(&issuer, &sign(&second, &h, &claims(&issuer, &agent)), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let used: Vec<u64> = issuer
        .admin()
        .list_verifiers(&agent)
        .await
        .unwrap()
        .iter()
        .map(|v| v.usage_count)
        .collect();
    assert_eq!(used, [0, 1], "the key that signed is the one counted");
}

#[tokio::test]
async fn the_rfc_9864_name_ed25519_and_the_typ_values_are_accepted() {
    let (issuer, agent, key) = setup().await;
    for h in [
        json!({"alg": "Ed25519"}),
        json!({"alg": "EdDSA", "typ": "client-authentication+jwt"}),
        json!({"alg": "EdDSA"}),
    ] {
        let r = token_with_assertion(&issuer, &sign(&key, &h, &claims(&issuer, &agent)), &[]).await;
        assert_eq!(r.status, 200, "header {h}: {}", r.text);
    }
}

#[tokio::test]
async fn client_id_in_the_body_must_equal_sub() {
    let (issuer, agent, key) = setup().await;
    let ok = assertion(&issuer, &agent, &key);
    let r = token_with_assertion(&issuer, &ok, &[("client_id", &agent)]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let other = agent_without_secret(&issuer, &[]).await;
    let r = token_with_assertion(
        &issuer,
        &assertion(&issuer, &agent, &key),
        &[("client_id", &other)],
    )
    .await;
    assert_invalid_client(&r);
}

#[tokio::test]
async fn a_bad_signature_is_invalid_client() {
    let (issuer, agent, key) = setup().await;
    // Signed by a key the agent does not hold.
    let r = token_with_assertion(&issuer, &assertion(&issuer, &agent, &ed_key(9)), &[]).await;
    assert_invalid_client(&r);
    // A valid signature over other claims, moved onto these.
    let good = assertion(&issuer, &agent, &key);
    let (_, _, signature) = split3(&good);
    let forged = sign(&key, &header(), &claims(&issuer, &agent));
    let (h, c, _) = split3(&forged);
    let r = token_with_assertion(&issuer, &format!("{h}.{c}.{signature}"), &[]).await;
    assert_invalid_client(&r);
    // No signature at all, and alg none.
    let r = token_with_assertion(&issuer, &format!("{h}.{c}."), &[]).await;
    assert_invalid_client(&r);
    let none = sign(&key, &json!({"alg": "none"}), &claims(&issuer, &agent));
    assert_invalid_client(&token_with_assertion(&issuer, &none, &[]).await);
}

fn split3(jws: &str) -> (&str, &str, &str) {
    let mut parts = jws.split('.');
    (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    )
}

#[tokio::test]
async fn an_algorithm_other_than_the_keys_is_invalid_client() {
    let (issuer, agent, key) = setup().await;
    for alg in ["HS256", "ES256", "RS256", "eddsa"] {
        let a = sign(&key, &json!({"alg": alg}), &claims(&issuer, &agent));
        assert_invalid_client(&token_with_assertion(&issuer, &a, &[]).await);
    }
}

#[tokio::test]
async fn crit_and_foreign_typ_headers_are_invalid_client() {
    let (issuer, agent, key) = setup().await;
    for h in [
        json!({"alg": "EdDSA", "crit": ["exp"]}),
        json!({"alg": "EdDSA", "typ": "at+jwt"}),
        json!({"alg": "EdDSA", "typ": "dpop+jwt"}),
    ] {
        let a = sign(&key, &h, &claims(&issuer, &agent));
        assert_invalid_client(&token_with_assertion(&issuer, &a, &[]).await);
    }
}

#[tokio::test]
async fn wrong_iss_or_sub_is_invalid_client() {
    let (issuer, agent, key) = setup().await;
    let other = agent_without_secret(&issuer, &[]).await;
    let edits: [(&str, Value); 5] = [
        ("iss", json!(other)),
        ("sub", json!(other)),
        ("iss", Value::Null),
        ("sub", json!(["x"])),
        ("iss", json!("someone")),
    ];
    for (claim, value) in edits {
        let c = claims_with(&issuer, &agent, |c| {
            if value.is_null() {
                c.as_object_mut().unwrap().remove(claim);
            } else {
                c[claim] = value.clone();
            }
        });
        let r = token_with_assertion(&issuer, &sign(&key, &header(), &c), &[]).await;
        assert_invalid_client(&r);
    }
}

#[tokio::test]
async fn wrong_or_missing_aud_is_invalid_client() {
    let (issuer, agent, key) = setup().await;
    let endpoint = issuer.token_endpoint().to_owned();
    for aud in [
        json!("https://other.example/token"),
        json!(format!("{endpoint}/")),
        json!([]),
        json!(API),
        Value::Null,
    ] {
        let c = claims_with(&issuer, &agent, |c| {
            if aud.is_null() {
                c.as_object_mut().unwrap().remove("aud");
            } else {
                c["aud"] = aud.clone();
            }
        });
        let r = token_with_assertion(&issuer, &sign(&key, &header(), &c), &[]).await;
        assert_invalid_client(&r);
    }
}

#[tokio::test]
async fn an_expired_or_expiryless_assertion_is_invalid_client() {
    let (issuer, agent, key) = setup().await;
    let now = issuer.now_ms() / 1000;
    let expired = claims_with(&issuer, &agent, |c| {
        c["iat"] = json!(now - 600);
        c["exp"] = json!(now - ASSERTION_LEEWAY_SECS - 1);
    });
    assert_invalid_client(
        &token_with_assertion(&issuer, &sign(&key, &header(), &expired), &[]).await,
    );
    let no_exp = claims_with(&issuer, &agent, |c| {
        c.as_object_mut().unwrap().remove("exp");
    });
    assert_invalid_client(
        &token_with_assertion(&issuer, &sign(&key, &header(), &no_exp), &[]).await,
    );
    let text_exp = claims_with(&issuer, &agent, |c| {
        c["exp"] = json!((now + 60).to_string())
    });
    assert_invalid_client(
        &token_with_assertion(&issuer, &sign(&key, &header(), &text_exp), &[]).await,
    );

    // An assertion good now is refused once the issuer's clock passes its exp.
    let a = assertion(&issuer, &agent, &key);
    issuer.advance_clock(std::time::Duration::from_secs(
        60 + ASSERTION_LEEWAY_SECS as u64 + 1,
    ));
    assert_invalid_client(&token_with_assertion(&issuer, &a, &[]).await);
}

#[tokio::test]
async fn a_lifetime_beyond_an_hour_is_invalid_client() {
    let (issuer, agent, key) = setup().await;
    let now = issuer.now_ms() / 1000;
    let too_long = claims_with(&issuer, &agent, |c| {
        c["exp"] = json!(now + MAX_ASSERTION_LIFETIME_SECS + ASSERTION_LEEWAY_SECS + 60);
    });
    assert_invalid_client(
        &token_with_assertion(&issuer, &sign(&key, &header(), &too_long), &[]).await,
    );
    // One hour, as authlib sends by default, is accepted.
    let hour = claims_with(&issuer, &agent, |c| {
        c["exp"] = json!(now + MAX_ASSERTION_LIFETIME_SECS)
    });
    let r = token_with_assertion(&issuer, &sign(&key, &header(), &hour), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn nbf_or_iat_in_the_future_is_invalid_client() {
    let (issuer, agent, key) = setup().await;
    let now = issuer.now_ms() / 1000;
    for claim in ["nbf", "iat"] {
        let c = claims_with(&issuer, &agent, |c| {
            c[claim] = json!(now + ASSERTION_LEEWAY_SECS + 30);
            c["exp"] = json!(now + 600);
        });
        let r = token_with_assertion(&issuer, &sign(&key, &header(), &c), &[]).await;
        assert_invalid_client(&r);
    }
    // Within the leeway: accepted.
    let c = claims_with(&issuer, &agent, |c| c["iat"] = json!(now + 5));
    let r = token_with_assertion(&issuer, &sign(&key, &header(), &c), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_missing_empty_or_oversized_jti_is_invalid_client() {
    let (issuer, agent, key) = setup().await;
    let too_long = "j".repeat(MAX_JTI_CHARS + 1);
    for jti in [Value::Null, json!(""), json!(too_long), json!(42)] {
        let c = claims_with(&issuer, &agent, |c| {
            if jti.is_null() {
                c.as_object_mut().unwrap().remove("jti");
            } else {
                c["jti"] = jti.clone();
            }
        });
        let r = token_with_assertion(&issuer, &sign(&key, &header(), &c), &[]).await;
        assert_invalid_client(&r);
    }
}

#[tokio::test]
async fn a_replayed_jti_is_invalid_client_for_that_agent_only() {
    let (issuer, agent, key) = setup().await;
    let a = assertion(&issuer, &agent, &key);
    assert_eq!(token_with_assertion(&issuer, &a, &[]).await.status, 200);
    assert_invalid_client(&token_with_assertion(&issuer, &a, &[]).await);
    // The same jti in a new assertion of the same agent: still used.
    let (_, c) = decode_jwt(&a);
    let again = claims_with(&issuer, &agent, |n| n["jti"] = c["jti"].clone());
    assert_invalid_client(
        &token_with_assertion(&issuer, &sign(&key, &header(), &again), &[]).await,
    );
    // Another agent may use the same jti value.
    let other_key = ed_key(3);
    let other = keyed_agent(&issuer, &[], &other_key).await;
    let theirs = claims_with(&issuer, &other, |n| n["jti"] = c["jti"].clone());
    let r = token_with_assertion(&issuer, &sign(&other_key, &header(), &theirs), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_used_jti_stays_used_across_a_restart_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("issuer.db");
    let issuer =
        TestIssuer::start_on("127.0.0.1:0".parse().unwrap(), Database::Sqlite(db.clone())).await;
    let addr = issuer.addr();
    let key = ed_key(4);
    let agent = keyed_agent(&issuer, &[], &key).await;
    let a = assertion(&issuer, &agent, &key);
    assert_eq!(token_with_assertion(&issuer, &a, &[]).await.status, 200);
    issuer.shutdown().await;

    let issuer = TestIssuer::start_on(addr, Database::Sqlite(db)).await;
    assert_invalid_client(&token_with_assertion(&issuer, &a, &[]).await);
    // The agent and its key survived too: a fresh assertion works.
    let r = token_with_assertion(&issuer, &assertion(&issuer, &agent, &key), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn a_wrong_or_missing_assertion_type_is_invalid_client() {
    let (issuer, agent, key) = setup().await;
    let a = assertion(&issuer, &agent, &key);
    let padded = format!("{JWT_BEARER} ");
    let cases: [Vec<(&str, &str)>; 4] = [
        vec![
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", &a),
        ],
        vec![("client_assertion", &a)],
        vec![("client_assertion_type", JWT_BEARER)],
        vec![("client_assertion_type", &padded), ("client_assertion", &a)],
    ];
    for extra in cases {
        let mut pairs = vec![("grant_type", "client_credentials")];
        pairs.extend(extra);
        assert_invalid_client(&token_raw(&issuer, &form(&pairs), None).await);
    }
    // The assertion itself was not spent by those refusals.
    assert_eq!(token_with_assertion(&issuer, &a, &[]).await.status, 200);
}

#[tokio::test]
async fn an_assertion_with_a_secret_too_is_invalid_client() {
    let issuer = TestIssuer::start().await;
    let key = ed_key(5);
    let agent = keyed_agent(&issuer, &[], &key).await;
    let secret = issuer
        .admin()
        .add_secret(&agent, None)
        .await
        .unwrap()
        .secret;
    let r = token_with_assertion(
        &issuer,
        &assertion(&issuer, &agent, &key),
        &[("client_id", &agent), ("client_secret", secret.expose())],
    )
    .await;
    assert_invalid_client(&r);
    // With HTTP Basic: refused, and the Basic challenge is given.
    let pairs = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", JWT_BEARER),
        ("client_assertion", &assertion(&issuer, &agent, &key)),
    ];
    let basic = issuer_support::basic(&agent, secret.expose());
    let r = token_raw(&issuer, &form(&pairs), Some(&basic)).await;
    assert_eq!(r.oauth_error(401), "invalid_client");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with("Basic"))
    );
}

#[tokio::test]
async fn an_unknown_client_is_invalid_client() {
    let issuer = TestIssuer::start().await;
    let key = ed_key(6);
    let unknown = "agt_0123456789abcdef0123456789abcdef";
    let r = token_with_assertion(&issuer, &assertion(&issuer, unknown, &key), &[]).await;
    assert_invalid_client(&r);
    // A deleted agent is unknown too.
    let agent = keyed_agent(&issuer, &[], &key).await;
    issuer.admin().delete_agent(&agent).await.unwrap();
    assert_invalid_client(
        &token_with_assertion(&issuer, &assertion(&issuer, &agent, &key), &[]).await,
    );
}

#[tokio::test]
async fn a_suspended_or_expired_agent_is_invalid_client() {
    let (issuer, agent, key) = setup().await;
    issuer
        .admin()
        .suspend(&agent, "investigation")
        .await
        .unwrap();
    assert_invalid_client(
        &token_with_assertion(&issuer, &assertion(&issuer, &agent, &key), &[]).await,
    );
    issuer.admin().reactivate(&agent).await.unwrap();
    let r = token_with_assertion(&issuer, &assertion(&issuer, &agent, &key), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);

    let expiring = issuer
        .admin()
        .create_agent(&agent_auth::issuer::CreateAgent::new("short-lived").expires_in(60))
        .await
        .unwrap()
        .data
        .id;
    let short_key = ed_key(7);
    assert_eq!(
        register_jwk(&issuer, &expiring, public_jwk(&short_key))
            .await
            .status,
        201
    );
    issuer.advance_clock(std::time::Duration::from_secs(61));
    let r = token_with_assertion(&issuer, &assertion(&issuer, &expiring, &short_key), &[]).await;
    assert_invalid_client(&r);
}

#[tokio::test]
async fn a_removed_key_is_invalid_client_at_once() {
    let (issuer, agent, key) = setup().await;
    let vid = issuer.admin().list_verifiers(&agent).await.unwrap()[0]
        .id
        .clone();
    issuer.admin().delete_verifier(&agent, &vid).await.unwrap();
    assert_invalid_client(
        &token_with_assertion(&issuer, &assertion(&issuer, &agent, &key), &[]).await,
    );
}

#[tokio::test]
async fn an_agent_with_only_a_key_has_no_secret_to_guess() {
    let (issuer, agent, _) = setup().await;
    for guess in ["", "x", "0".repeat(42).as_str()] {
        let r = token_post(&issuer, &agent, guess, &[]).await;
        assert_eq!(r.oauth_error(401), "invalid_client", "{guess:?}");
    }
}

#[tokio::test]
async fn an_oversized_or_malformed_assertion_is_invalid_client() {
    let (issuer, agent, key) = setup().await;
    let big = claims_with(&issuer, &agent, |c| c["pad"] = json!("x".repeat(9 * 1024)));
    assert_invalid_client(&token_with_assertion(&issuer, &sign(&key, &header(), &big), &[]).await);
    for junk in ["a.b", "a.b.c.d", "not a jwt", "..."] {
        assert_invalid_client(&token_with_assertion(&issuer, junk, &[]).await);
    }
    // Claims naming a member twice.
    let h = b64(br#"{"alg":"EdDSA"}"#);
    let c = claims(&issuer, &agent);
    let dup = format!(
        r#"{{"iss":"{agent}","sub":"{agent}","sub":"{agent}","aud":{},"exp":{},"jti":"d"}}"#,
        c["aud"], c["exp"]
    );
    let input = format!("{h}.{}", b64(dup.as_bytes()));
    use ed25519_dalek::Signer as _;
    let sig = b64(&key.sign(input.as_bytes()).to_bytes());
    assert_invalid_client(&token_with_assertion(&issuer, &format!("{input}.{sig}"), &[]).await);
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
