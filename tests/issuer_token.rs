//! Token endpoint, JWKS and metadata of the bundled issuer, over real HTTP on 127.0.0.1.
#![cfg(feature = "issuer")]

mod issuer_support;

use std::collections::HashSet;
use std::time::Duration;

use agent_auth::issuer::{CreateAgent, TestAgent, TestIssuer, TokenSpec};
use issuer_support::*;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Method;
use serde_json::{Value, json};

const API: &str = "https://api.example.com/tickets";

async fn triage_agent(issuer: &TestIssuer) -> TestAgent {
    issuer
        .provision("Support Triage Agent", &["tickets:read", "tickets:triage"])
        .await
        .unwrap()
}

fn access_token(r: &Reply) -> String {
    assert_eq!(r.status, 200, "{}", r.text);
    r.json()["access_token"].as_str().unwrap().to_owned()
}

/// Fetches the JWKS over HTTP and verifies `token` with it (signature, iss, aud, exp).
async fn verify_with_served_jwks(issuer: &TestIssuer, token: &str, aud: &str) -> Value {
    let jwks: JwkSet = http()
        .get(issuer.jwks_uri())
        .send()
        .await
        .unwrap()
        .json_via_text()
        .await;
    let header = jsonwebtoken::decode_header(token).unwrap();
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid is in the JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_issuer(&[issuer.url()]);
    v.set_audience(&[aud]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .expect("signature and claims verify against the served JWKS")
        .claims
}

trait JsonViaText {
    async fn json_via_text<T: serde::de::DeserializeOwned>(self) -> T;
}

impl JsonViaText for reqwest::Response {
    async fn json_via_text<T: serde::de::DeserializeOwned>(self) -> T {
        serde_json::from_str(&self.text().await.unwrap()).unwrap()
    }
}

#[tokio::test]
async fn client_secret_post_and_basic_both_issue_tokens() {
    let issuer = TestIssuer::start().await;
    let agent = triage_agent(&issuer).await;
    for r in [
        token_post(&issuer, &agent.id, agent.secret.expose(), &[]).await,
        token_basic(&issuer, &agent.id, agent.secret.expose(), &[]).await,
    ] {
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("pragma"), Some("no-cache"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v = r.json();
        let keys: HashSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            HashSet::from(["access_token", "token_type", "expires_in", "scope"])
        );
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["expires_in"], 300);
        assert_eq!(
            v["scope"], "tickets:read tickets:triage",
            "omitted scope = all"
        );
    }
}

#[tokio::test]
async fn issued_token_has_exactly_the_contract_header_and_claims() {
    let issuer = TestIssuer::start().await;
    let agent = triage_agent(&issuer).await;
    let before = unix_now();
    let r = token_post(
        &issuer,
        &agent.id,
        agent.secret.expose(),
        &[("scope", "tickets:read"), ("resource", API)],
    )
    .await;
    let token = access_token(&r);
    let after = unix_now();
    let (header, claims) = decode_jwt(&token);

    let jwks = http()
        .get(issuer.jwks_uri())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    let kid = jwks["keys"][0]["kid"].as_str().unwrap();
    assert_eq!(header, json!({"alg": "EdDSA", "kid": kid, "typ": "at+jwt"}));

    let obj = claims.as_object().unwrap();
    let names: HashSet<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        HashSet::from([
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "jti",
            "client_id",
            "scope",
            "dat"
        ])
    );
    assert_eq!(claims["iss"], issuer.url());
    assert_eq!(claims["sub"], agent.id.as_str());
    assert_eq!(claims["aud"], API);
    assert_eq!(claims["client_id"], agent.id.as_str());
    assert_eq!(claims["scope"], "tickets:read");
    assert_eq!(claims["dat"], json!({"type": "agent"}));
    let iat = claims["iat"].as_i64().unwrap();
    assert!(iat >= before && iat <= after, "iat is now, in seconds");
    assert_eq!(claims["exp"].as_i64().unwrap(), iat + 300);
    let jti = claims["jti"].as_str().unwrap();
    assert!(jti.len() >= 16);

    // jti is unique across tokens.
    let mut jtis = HashSet::from([jti.to_owned()]);
    for _ in 0..20 {
        let t = access_token(&token_post(&issuer, &agent.id, agent.secret.expose(), &[]).await);
        assert!(jtis.insert(decode_jwt(&t).1["jti"].as_str().unwrap().to_owned()));
    }

    // The signature verifies against the JWKS served over HTTP, with an independent library.
    let verified = verify_with_served_jwks(&issuer, &token, API).await;
    assert_eq!(verified, claims);
    // A tampered token does not.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let forged = json!({"sub": agent.id, "scope": "tickets:admin"}).to_string();
    parts[1] = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, forged);
    let jwks: JwkSet = serde_json::from_value(jwks).unwrap();
    let key = DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    let mut v = Validation::new(Algorithm::EdDSA);
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v.validate_exp = false;
    assert!(jsonwebtoken::decode::<Value>(parts.join("."), &key, &v).is_err());
}

#[tokio::test]
async fn audience_is_the_resource_else_the_agent_id() {
    let issuer = TestIssuer::start().await;
    let agent = triage_agent(&issuer).await;
    let t = access_token(&token_post(&issuer, &agent.id, agent.secret.expose(), &[]).await);
    assert_eq!(decode_jwt(&t).1["aud"], agent.id.as_str());
    verify_with_served_jwks(&issuer, &t, &agent.id).await;
    for resource in [API, "urn:example:tickets", "https://api.example.com"] {
        let t = access_token(
            &token_basic(
                &issuer,
                &agent.id,
                agent.secret.expose(),
                &[("resource", resource)],
            )
            .await,
        );
        assert_eq!(decode_jwt(&t).1["aud"], resource, "kept exactly as sent");
    }
}

#[tokio::test]
async fn bad_resource_is_invalid_target() {
    let issuer = TestIssuer::start().await;
    let agent = triage_agent(&issuer).await;
    for resource in [
        "/tickets",
        "tickets",
        "//api.example.com/tickets",
        "https://api.example.com/tickets#frag",
        "https://api.example.com/#",
        "https://api.example.com/ tickets",
    ] {
        for r in [
            token_post(
                &issuer,
                &agent.id,
                agent.secret.expose(),
                &[("resource", resource)],
            )
            .await,
            token_basic(
                &issuer,
                &agent.id,
                agent.secret.expose(),
                &[("resource", resource)],
            )
            .await,
        ] {
            assert_eq!(r.oauth_error(400), "invalid_target", "{resource}");
        }
    }
    let long = format!("https://api.example.com/{}", "a".repeat(3000));
    let r = token_post(
        &issuer,
        &agent.id,
        agent.secret.expose(),
        &[("resource", &long)],
    )
    .await;
    assert_eq!(r.oauth_error(400), "invalid_target");
}

#[tokio::test]
async fn scope_must_be_a_subset_of_the_agents_scopes() {
    let issuer = TestIssuer::start().await;
    let agent = triage_agent(&issuer).await;
    let secret = agent.secret.expose();
    let r = token_post(&issuer, &agent.id, secret, &[("scope", "tickets:triage")]).await;
    assert_eq!(r.json()["scope"], "tickets:triage");
    assert_eq!(decode_jwt(&access_token(&r)).1["scope"], "tickets:triage");
    // Empty scope = omitted (RFC 6749 §3.1) = all.
    let r = token_post(&issuer, &agent.id, secret, &[("scope", "")]).await;
    assert_eq!(r.json()["scope"], "tickets:read tickets:triage");
    for scope in [
        "tickets:read tickets:admin",
        "tickets:admin",
        "tickets",
        "TICKETS:READ",
        "tickets:read\"",
        "   ",
    ] {
        let r = token_post(&issuer, &agent.id, secret, &[("scope", scope)]).await;
        assert_eq!(r.oauth_error(400), "invalid_scope", "{scope:?}");
        let r = token_basic(&issuer, &agent.id, secret, &[("scope", scope)]).await;
        assert_eq!(r.oauth_error(400), "invalid_scope", "{scope:?}");
    }
    // An agent without scopes gets tokens with an empty scope, and nothing more.
    let bare = issuer.provision("bare", &[]).await.unwrap();
    let r = token_post(&issuer, &bare.id, bare.secret.expose(), &[]).await;
    assert_eq!(r.json()["scope"], "");
    let r = token_post(&issuer, &bare.id, bare.secret.expose(), &[("scope", "x")]).await;
    assert_eq!(r.oauth_error(400), "invalid_scope");
    // Refused requests issue nothing.
    let a = issuer.admin().get_agent(&agent.id).await.unwrap();
    assert_eq!(a.token_count, 2);
}

#[tokio::test]
async fn malformed_token_requests_are_invalid_request() {
    let issuer = TestIssuer::start().await;
    let agent = triage_agent(&issuer).await;
    let (id, secret) = (agent.id.as_str(), agent.secret.expose());
    let basic_auth = basic(id, secret);

    // Both client authentication methods at once.
    let r = token_raw(
        &issuer,
        &form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
        ]),
        Some(&basic_auth),
    )
    .await;
    assert_eq!(r.oauth_error(400), "invalid_request");
    let r = token_raw(
        &issuer,
        &form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", secret),
        ]),
        Some(&basic_auth),
    )
    .await;
    assert_eq!(r.oauth_error(400), "invalid_request");
    // A body client_id naming another client than Basic.
    let r = token_raw(
        &issuer,
        &form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "agt_other"),
        ]),
        Some(&basic_auth),
    )
    .await;
    assert_eq!(r.oauth_error(400), "invalid_request");
    // The same client_id in the body as in Basic is fine.
    let r = token_raw(
        &issuer,
        &form(&[("grant_type", "client_credentials"), ("client_id", id)]),
        Some(&basic_auth),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);

    // grant_type missing / unsupported.
    let r = token_raw(
        &issuer,
        &form(&[("client_id", id), ("client_secret", secret)]),
        None,
    )
    .await;
    assert_eq!(r.oauth_error(400), "invalid_request");
    for grant in [
        "password",
        "authorization_code",
        "refresh_token",
        "CLIENT_CREDENTIALS",
    ] {
        let r = token_raw(
            &issuer,
            &form(&[
                ("grant_type", grant),
                ("client_id", id),
                ("client_secret", secret),
            ]),
            None,
        )
        .await;
        assert_eq!(r.oauth_error(400), "unsupported_grant_type", "{grant}");
    }
    // Repeated parameters.
    for dup in [
        "grant_type",
        "client_id",
        "client_secret",
        "scope",
        "resource",
    ] {
        let mut pairs = vec![
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("scope", "tickets:read"),
            ("resource", API),
        ];
        let again = pairs.iter().find(|(k, _)| *k == dup).copied().unwrap();
        pairs.push(again);
        let r = token_raw(&issuer, &form(&pairs), None).await;
        assert_eq!(r.oauth_error(400), "invalid_request", "repeated {dup}");
    }
    // Unknown parameters are ignored (RFC 6749 §3.2).
    let r = token_post(&issuer, id, secret, &[("audience", "x"), ("foo", "bar")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Not form-encoded.
    let r = read(
        http()
            .post(issuer.token_endpoint())
            .header("content-type", "application/json")
            .body(json!({"grant_type": "client_credentials", "client_id": id, "client_secret": secret}).to_string())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.oauth_error(400), "invalid_request");
    let r = read(
        http()
            .post(issuer.token_endpoint())
            .body(form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ]))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.oauth_error(400), "invalid_request");
    // client_secret without client_id.
    let r = token_raw(
        &issuer,
        &form(&[
            ("grant_type", "client_credentials"),
            ("client_secret", secret),
        ]),
        None,
    )
    .await;
    assert_eq!(r.oauth_error(400), "invalid_request");
    // Two Authorization headers.
    let r = read(
        http()
            .post(issuer.token_endpoint())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("authorization", basic_auth.clone())
            .header("authorization", basic_auth.clone())
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.oauth_error(400), "invalid_request");
    // Oversized body: JSON 413, never a plain-text rejection.
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(70 * 1024)
    );
    let r = token_raw(&issuer, &big, None).await;
    assert_eq!(r.oauth_error(413), "invalid_request");
    // None of this issued a token but the two deliberate successes.
    assert_eq!(issuer.admin().get_agent(id).await.unwrap().token_count, 2);
}

#[tokio::test]
async fn basic_credentials_are_form_urlencoded_and_decoded() {
    let issuer = TestIssuer::start().await;
    let agent = triage_agent(&issuer).await;
    // Percent-encode every character (legal form-urlencoding of the same values).
    let pct = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
    let r = token_raw(
        &issuer,
        "grant_type=client_credentials",
        Some(&basic(&pct(&agent.id), &pct(agent.secret.expose()))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Undecodable percent-escapes fail authentication.
    let r = token_raw(
        &issuer,
        "grant_type=client_credentials",
        Some(&basic(&agent.id, &format!("{}%zz", agent.secret.expose()))),
    )
    .await;
    assert_eq!(r.oauth_error(401), "invalid_client");
}

/// The response to a wrong secret, by method, to compare other refusals against.
async fn refusal(
    issuer: &TestIssuer,
    id: &str,
    secret: &str,
    basic: bool,
) -> (u16, Value, Option<String>) {
    let r = if basic {
        token_basic(issuer, id, secret, &[]).await
    } else {
        token_post(issuer, id, secret, &[]).await
    };
    assert_eq!(r.oauth_error(401), "invalid_client");
    (
        r.status.as_u16(),
        r.json(),
        r.header("www-authenticate").map(str::to_owned),
    )
}

#[tokio::test]
async fn wrong_or_unknown_credentials_are_invalid_client() {
    let issuer = TestIssuer::start().await;
    let agent = triage_agent(&issuer).await;
    let basic_wrong = refusal(&issuer, &agent.id, "wrong-secret", true).await;
    assert_eq!(basic_wrong.2.as_deref(), Some("Basic realm=\"agent-auth\""));
    let post_wrong = refusal(&issuer, &agent.id, "wrong-secret", false).await;
    assert_eq!(post_wrong.2, None);
    // A near miss (one character off) is just as wrong.
    let mut near = agent.secret.expose().to_owned();
    near.pop();
    near.push('!');
    assert_eq!(refusal(&issuer, &agent.id, &near, true).await, basic_wrong);
    // Another agent's secret.
    let other = triage_agent(&issuer).await;
    assert_eq!(
        refusal(&issuer, &agent.id, other.secret.expose(), false).await,
        post_wrong
    );
    // Unknown or malformed client ids.
    for id in ["agt_00000000000000000000000000000000", "nobody", "agt_"] {
        assert_eq!(
            refusal(&issuer, id, agent.secret.expose(), true).await,
            basic_wrong
        );
        assert_eq!(
            refusal(&issuer, id, agent.secret.expose(), false).await,
            post_wrong
        );
    }
    // No credentials at all; client_id without secret; another auth scheme.
    let r = token_raw(&issuer, "grant_type=client_credentials", None).await;
    assert_eq!(r.oauth_error(401), "invalid_client");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"agent-auth\"")
    );
    let r = token_raw(
        &issuer,
        &form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &agent.id),
        ]),
        None,
    )
    .await;
    assert_eq!(r.oauth_error(401), "invalid_client");
    let r = token_raw(&issuer, "grant_type=client_credentials", Some("Bearer abc")).await;
    assert_eq!(r.oauth_error(401), "invalid_client");
    assert!(r.header("www-authenticate").is_some());
    let r = token_raw(&issuer, "grant_type=client_credentials", Some("Basic %%%")).await;
    assert_eq!(r.oauth_error(401), "invalid_client");
    // The error never echoes the secret.
    let r = token_post(&issuer, &agent.id, "s3cr3t-value-xyz", &[]).await;
    assert!(!r.text.contains("s3cr3t-value-xyz"));
    assert_eq!(
        issuer
            .admin()
            .get_agent(&agent.id)
            .await
            .unwrap()
            .token_count,
        0
    );
}

#[tokio::test]
async fn suspended_deleted_and_expired_agents_get_exactly_the_wrong_secret_answer() {
    let issuer = TestIssuer::start().await;
    let basic_wrong = refusal(&issuer, "agt_00000000000000000000000000000000", "x", true).await;
    let post_wrong = refusal(&issuer, "agt_00000000000000000000000000000000", "x", false).await;

    // Suspended: refused at once; reactivated: works again.
    let s = triage_agent(&issuer).await;
    assert_eq!(
        token_post(&issuer, &s.id, s.secret.expose(), &[])
            .await
            .status,
        200
    );
    issuer
        .admin()
        .suspend(&s.id, "investigating")
        .await
        .unwrap();
    assert_eq!(
        refusal(&issuer, &s.id, s.secret.expose(), true).await,
        basic_wrong
    );
    assert_eq!(
        refusal(&issuer, &s.id, s.secret.expose(), false).await,
        post_wrong
    );
    issuer.admin().reactivate(&s.id).await.unwrap();
    assert_eq!(
        token_basic(&issuer, &s.id, s.secret.expose(), &[])
            .await
            .status,
        200
    );

    // Deleted.
    let d = triage_agent(&issuer).await;
    issuer.admin().delete_agent(&d.id).await.unwrap();
    assert_eq!(
        refusal(&issuer, &d.id, d.secret.expose(), true).await,
        basic_wrong
    );
    assert_eq!(
        refusal(&issuer, &d.id, d.secret.expose(), false).await,
        post_wrong
    );

    // Expired: controllable clock, no sleeping.
    let created = issuer
        .admin()
        .create_agent(
            &CreateAgent::new("short-lived")
                .scopes(["x"])
                .expires_in(3600),
        )
        .await
        .unwrap()
        .data;
    assert_eq!(created.expires_at, Some(created.created_at + 3_600_000));
    let secret = issuer
        .admin()
        .add_secret(&created.id, None)
        .await
        .unwrap()
        .secret;
    issuer.advance_clock(Duration::from_secs(3599));
    assert_eq!(
        token_post(&issuer, &created.id, secret.expose(), &[])
            .await
            .status,
        200
    );
    issuer.advance_clock(Duration::from_secs(1));
    assert_eq!(
        refusal(&issuer, &created.id, secret.expose(), true).await,
        basic_wrong
    );
    assert_eq!(
        refusal(&issuer, &created.id, secret.expose(), false).await,
        post_wrong
    );
    // Extending the expiry revives it.
    issuer
        .admin()
        .update_agent(
            &created.id,
            &agent_auth::issuer::UpdateAgent {
                expires_in: Some(Some(60)),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        token_post(&issuer, &created.id, secret.expose(), &[])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn rotation_overlaps_two_secrets_then_retires_the_old_one() {
    let issuer = TestIssuer::start().await;
    let agent = triage_agent(&issuer).await;
    let old = agent.secret.clone();
    assert_eq!(
        token_post(&issuer, &agent.id, old.expose(), &[])
            .await
            .status,
        200
    );
    let new = issuer
        .admin()
        .add_secret(&agent.id, Some("rotation-2026-06"))
        .await
        .unwrap();
    // Overlap: both work, with either method.
    for s in [&old, &new.secret] {
        assert_eq!(
            token_post(&issuer, &agent.id, s.expose(), &[]).await.status,
            200
        );
        assert_eq!(
            token_basic(&issuer, &agent.id, s.expose(), &[])
                .await
                .status,
            200
        );
    }
    // Usage tells which secret is still used before removing the old one.
    let vs = issuer.admin().list_verifiers(&agent.id).await.unwrap();
    let old_v = vs.iter().find(|v| v.id == agent.verifier_id).unwrap();
    assert_eq!(old_v.usage_count, 3);
    issuer
        .admin()
        .delete_verifier(&agent.id, &agent.verifier_id)
        .await
        .unwrap();
    let r = token_post(&issuer, &agent.id, old.expose(), &[]).await;
    assert_eq!(r.oauth_error(401), "invalid_client");
    let r = token_basic(&issuer, &agent.id, old.expose(), &[]).await;
    assert_eq!(r.oauth_error(401), "invalid_client");
    assert_eq!(
        token_post(&issuer, &agent.id, new.secret.expose(), &[])
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn removing_the_last_verifier_turns_client_credentials_off() {
    let issuer = TestIssuer::start().await;
    let agent = triage_agent(&issuer).await;
    issuer
        .admin()
        .delete_verifier(&agent.id, &agent.verifier_id)
        .await
        .unwrap();
    assert!(
        issuer
            .admin()
            .list_verifiers(&agent.id)
            .await
            .unwrap()
            .is_empty()
    );
    let r = token_post(&issuer, &agent.id, agent.secret.expose(), &[]).await;
    assert_eq!(r.oauth_error(401), "invalid_client");
    // The agent itself still exists, and a new secret turns it back on.
    assert_eq!(
        issuer.admin().get_agent(&agent.id).await.unwrap().status,
        agent_auth::issuer::AgentStatus::Active
    );
    let fresh = issuer.admin().add_secret(&agent.id, None).await.unwrap();
    assert_eq!(
        token_post(&issuer, &agent.id, fresh.secret.expose(), &[])
            .await
            .status,
        200
    );
    // An agent that never had a secret cannot authenticate with anything.
    let bare = issuer
        .admin()
        .create_agent(&CreateAgent::new("bare"))
        .await
        .unwrap()
        .data;
    for s in ["", " ", agent.secret.expose()] {
        let r = token_post(&issuer, &bare.id, s, &[]).await;
        assert_eq!(r.oauth_error(401), "invalid_client");
    }
}

#[tokio::test]
async fn usage_counters_are_exact_after_n_token_calls() {
    let issuer = TestIssuer::start().await;
    let agent = triage_agent(&issuer).await;
    let second = issuer
        .admin()
        .add_secret(&agent.id, Some("second"))
        .await
        .unwrap();
    let fresh = issuer.admin().get_agent(&agent.id).await.unwrap();
    assert_eq!((fresh.token_count, fresh.last_activity_at), (0, None));
    for _ in 0..7 {
        assert_eq!(
            token_post(&issuer, &agent.id, agent.secret.expose(), &[])
                .await
                .status,
            200
        );
    }
    issuer.advance_clock(Duration::from_secs(10));
    let t0 = issuer.now_ms();
    for _ in 0..3 {
        assert_eq!(
            token_basic(&issuer, &agent.id, second.secret.expose(), &[])
                .await
                .status,
            200
        );
    }
    // Failures do not count.
    token_post(&issuer, &agent.id, "wrong", &[]).await;
    token_post(
        &issuer,
        &agent.id,
        agent.secret.expose(),
        &[("scope", "nope")],
    )
    .await;

    let a = issuer.admin().get_agent(&agent.id).await.unwrap();
    assert_eq!(a.token_count, 10);
    let last = a.last_activity_at.unwrap();
    assert!(last >= t0 && last <= issuer.now_ms());
    let vs = issuer.admin().list_verifiers(&agent.id).await.unwrap();
    let first_v = vs.iter().find(|v| v.id == agent.verifier_id).unwrap();
    let second_v = vs.iter().find(|v| v.id == second.verifier.id).unwrap();
    assert_eq!(first_v.usage_count, 7);
    assert_eq!(second_v.usage_count, 3);
    assert!(first_v.last_used_at.unwrap() < t0);
    assert_eq!(second_v.last_used_at, Some(last));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_token_calls_lose_no_increment() {
    let issuer = TestIssuer::start().await;
    let agent = triage_agent(&issuer).await;
    let second = issuer.admin().add_secret(&agent.id, None).await.unwrap();
    const TASKS: usize = 16;
    const PER_TASK: usize = 15;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let (url, id) = (issuer.token_endpoint().to_owned(), agent.id.clone());
        let secret = if t % 2 == 0 {
            agent.secret.clone()
        } else {
            second.secret.clone()
        };
        handles.push(tokio::spawn(async move {
            let client = http();
            for _ in 0..PER_TASK {
                let r = client
                    .post(&url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form(&[
                        ("grant_type", "client_credentials"),
                        ("client_id", &id),
                        ("client_secret", secret.expose()),
                    ]))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let a = issuer.admin().get_agent(&agent.id).await.unwrap();
    assert_eq!(a.token_count, (TASKS * PER_TASK) as u64);
    let vs = issuer.admin().list_verifiers(&agent.id).await.unwrap();
    let half = (TASKS / 2 * PER_TASK) as u64;
    assert!(vs.iter().all(|v| v.usage_count == half), "{vs:?}");
}

#[tokio::test]
async fn jwks_is_served_on_both_paths_with_caching_headers() {
    let issuer = TestIssuer::start().await;
    let a = read(
        http()
            .get(format!("{}/jwks.json", issuer.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let b = read(
        http()
            .get(format!("{}/.well-known/jwks.json", issuer.url()))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.text, b.text);
    assert_eq!(a.header("cache-control"), Some("public, max-age=300"));
    assert_eq!(a.header("content-type"), Some("application/json"));
    let etag = a.header("etag").unwrap().to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'));
    assert_eq!(b.header("etag"), Some(etag.as_str()));
    let v = a.json();
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let k = keys[0].as_object().unwrap();
    let names: HashSet<&str> = k.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        HashSet::from(["kty", "crv", "x", "kid", "alg", "use"])
    );
    assert_eq!(k["kty"], "OKP");
    assert_eq!(k["crv"], "Ed25519");
    assert_eq!(k["alg"], "EdDSA");
    assert_eq!(k["use"], "sig");
    assert_eq!(k["kid"], issuer.issuer().signing_kid().as_str());
    assert!(!k.contains_key("d"), "never the private key");

    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".to_owned(),
    ] {
        let r = read(
            http()
                .get(issuer.jwks_uri())
                .header("if-none-match", &inm)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 304, "{inm}");
        assert!(r.text.is_empty());
        assert_eq!(r.header("etag"), Some(etag.as_str()));
        assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
    }
    let r = read(
        http()
            .get(issuer.jwks_uri())
            .header("if-none-match", "\"stale\"")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text, a.text);
}

#[tokio::test]
async fn authorization_server_metadata_follows_rfc_8414() {
    let issuer = TestIssuer::start().await;
    let r = read(
        http()
            .get(format!(
                "{}/.well-known/oauth-authorization-server",
                issuer.url()
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let m = r.json();
    assert_eq!(m["issuer"], issuer.url());
    assert_eq!(m["token_endpoint"], format!("{}/token", issuer.url()));
    assert_eq!(m["jwks_uri"], format!("{}/jwks.json", issuer.url()));
    assert_eq!(m["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(
        m["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    assert_eq!(m["response_types_supported"], json!([]));
    // The advertised endpoints are the ones that work.
    let jwks = http()
        .get(m["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
}

#[tokio::test]
async fn minted_test_tokens_carry_the_requested_defects_and_a_real_signature() {
    let issuer = TestIssuer::start().await;
    let id = "agt_0123456789abcdef0123456789abcdef";
    let now = unix_now();
    let good = issuer.mint(
        TokenSpec::for_agent(id)
            .audience(API)
            .scopes(["tickets:read"]),
    );
    let claims = verify_with_served_jwks(&issuer, &good, API).await;
    assert_eq!(claims["sub"], id);
    assert_eq!(claims["scope"], "tickets:read");
    assert_eq!(claims["dat"], json!({"type": "agent"}));
    assert_eq!(
        claims["exp"].as_i64().unwrap(),
        claims["iat"].as_i64().unwrap() + 300
    );
    assert_eq!(decode_jwt(&good).0["typ"], "at+jwt");

    let (_, c) = decode_jwt(&issuer.mint(TokenSpec::for_agent(id).expired()));
    assert!(c["exp"].as_i64().unwrap() <= now - 290);
    let (_, c) = decode_jwt(&issuer.mint(TokenSpec::for_agent(id).audience("https://other")));
    assert_eq!(c["aud"], "https://other");
    let (_, c) = decode_jwt(&issuer.mint(TokenSpec::for_agent(id).non_agent()));
    assert!(c.get("dat").is_none());
    let (_, c) = decode_jwt(&issuer.mint(TokenSpec::for_agent(id).subject("usr_42")));
    assert_eq!(c["sub"], "usr_42");
    assert_eq!(c["dat"], json!({"type": "agent"}));
    let (h, c) = decode_jwt(
        &issuer.mint(
            TokenSpec::for_agent(id)
                .claim("custom", json!({"a": 1}))
                .without_claim("jti")
                .header("kid", "unknown-kid")
                .not_before_in(600),
        ),
    );
    assert_eq!(c["custom"], json!({"a": 1}));
    assert!(c.get("jti").is_none());
    assert!(c["nbf"].as_i64().unwrap() >= now + 590);
    assert_eq!(h["kid"], "unknown-kid");
    // Minting writes nothing and counts nothing.
    let r = admin(&issuer, Method::GET, "/v1/events", None).await;
    assert_eq!(r.json()["data"], json!([]));
}
