//! Sign in with the wallet (DESIGN §9): EIP-4361 with EIP-191 signatures for EVM keys and
//! CAIP-122 with Ed25519 for Solana keys, all generated here; the nonce endpoint; every refusal
//! with its exact status and code; one token for concurrent sign-ins with one nonce; the
//! `wallet` claim through the middleware (`Agent::wallet()`).
#![cfg(feature = "issuer")]

mod issuer_support;

use std::time::Duration;

use agent_auth::issuer::{TestIssuer, WALLET_NONCE_LIFETIME_SECS, WALLET_NONCES_PER_MINUTE};
use issuer_support::keyed::agent_without_secret;
use issuer_support::wallet::*;
use issuer_support::{admin, decode_jwt, form, token_raw};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn an_evm_wallet_registers_in_checksum_form_and_signs_in() {
    let issuer = TestIssuer::start().await;
    let wallet = Wallet::evm(7, 1);
    let agent = agent_without_secret(&issuer, &["tickets:read", "tickets:triage"]).await;
    // Registered in lower case: stored and shown in EIP-55 checksum form.
    let r = register(&issuer, &agent, &wallet.account().to_lowercase()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let v = &r.json()["data"];
    assert_eq!(v["type"], "wallet");
    assert_eq!(v["credential"], json!({"account": wallet.account()}));
    assert!(v.get("secret").is_none());

    let (text, sig) = signed(&issuer, &wallet, |_| {}).await;
    let r = sign_in(&issuer, &text, &sig, &[("scope", "tickets:read")]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let body = r.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "tickets:read");
    let (_, claims) = decode_jwt(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], agent.as_str());
    assert_eq!(claims["client_id"], agent.as_str());
    assert_eq!(claims["wallet"], wallet.account());
    assert_eq!(claims["dat"], json!({"type": "agent"}));
    assert_eq!(claims["iss"], issuer.url());

    // Counted like any token: the verifier's usage and the agent's.
    issuer.issuer().flush().await.unwrap();
    let listed = admin(
        &issuer,
        Method::GET,
        &format!("/v1/agents/{agent}/verifiers"),
        None,
    )
    .await;
    assert_eq!(listed.json()["data"][0]["usage_count"], 1);

    // The same message again: its nonce is used.
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[]).await,
        "invalid_grant"
    );
}

#[tokio::test]
async fn a_solana_wallet_signs_in_with_caip122() {
    let issuer = TestIssuer::start().await;
    let wallet = Wallet::solana(3);
    let agent = wallet_agent(&issuer, &["tickets:read"], &wallet).await;
    let (text, sig) = signed(&issuer, &wallet, |_| {}).await;
    assert!(text.contains("sign in with your Solana account:"), "{text}");
    let r = sign_in(&issuer, &text, &sig, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, claims) = decode_jwt(r.json()["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], agent.as_str());
    assert_eq!(claims["wallet"], wallet.account());
    assert_eq!(claims["scope"], "tickets:read");
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[]).await,
        "invalid_grant"
    );
}

/// A resource server on 127.0.0.1:0 behind the layer, answering `agent.wallet()`.
async fn wallet_echo(issuer: &TestIssuer) -> String {
    use agent_auth::{Agent, AgentAuth};
    let auth = AgentAuth::new(issuer).audience(API).build().unwrap();
    let app = axum::Router::new()
        .route(
            "/whoami",
            axum::routing::get(|agent: Agent| async move {
                axum::Json(json!({"agent_id": agent.id(), "wallet": agent.wallet()}))
            }),
        )
        .layer(auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

const API: &str = "https://api.example.com/tickets";

#[tokio::test]
async fn the_middleware_hands_the_wallet_to_handlers() {
    let issuer = TestIssuer::start().await;
    let wallet = Wallet::evm(22, 8453);
    let agent = wallet_agent(&issuer, &["tickets:read"], &wallet).await;
    let api = wallet_echo(&issuer).await;
    let (text, sig) = signed(&issuer, &wallet, |_| {}).await;
    let token = issuer
        .admin()
        .wallet_token(&text, &sig, Some(&["tickets:read"]), Some(API))
        .await
        .unwrap();
    let call = |token: String| {
        let api = api.clone();
        async move {
            let r = issuer_support::http()
                .get(format!("{api}/whoami"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            serde_json::from_str::<Value>(&r.text().await.unwrap()).unwrap()
        }
    };
    let seen = call(token.access_token.expose().to_owned()).await;
    assert_eq!(seen, json!({"agent_id": agent, "wallet": wallet.account()}));
    // A client_credentials token of the same agent carries no wallet.
    let secret = issuer
        .admin()
        .add_secret(&agent, None)
        .await
        .unwrap()
        .secret;
    let token = issuer
        .admin()
        .token(&agent, secret.expose(), None, Some(API))
        .await
        .unwrap();
    let seen = call(token.access_token.expose().to_owned()).await;
    assert_eq!(seen, json!({"agent_id": agent, "wallet": null}));
}

#[tokio::test]
async fn the_nonce_names_this_issuer_and_lives_five_minutes() {
    let issuer = TestIssuer::start().await;
    let r = issuer_support::http()
        .post(format!("{}/wallet/nonce", issuer.url()))
        // Request headers never choose the domain.
        .header("host", "evil.example")
        .header("x-forwarded-host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let n: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    let url = url::Url::parse(issuer.url()).unwrap();
    let domain = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    assert_eq!(n["domain"], domain.as_str());
    assert_eq!(n["uri"], issuer.url());
    let nonce = n["nonce"].as_str().unwrap();
    assert!(
        nonce.len() >= 8 && nonce.bytes().all(|b| b.is_ascii_alphanumeric()),
        "{nonce}"
    );
    let at = |k: &str| {
        time::OffsetDateTime::parse(
            n[k].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert_eq!(
        (at("expiration_time") - at("issued_at")).whole_seconds(),
        WALLET_NONCE_LIFETIME_SECS
    );
    let other = nonce_text(&issuer).await;
    assert_ne!(other, nonce);
}

async fn nonce_text(issuer: &TestIssuer) -> String {
    nonce(issuer).await.nonce
}

#[tokio::test]
async fn every_refusal_is_invalid_grant() {
    let issuer = TestIssuer::start().await;
    let wallet = Wallet::evm(9, 1);
    let agent = wallet_agent(&issuer, &["tickets:read"], &wallet).await;

    // A nonce this issuer never issued.
    let (text, sig) = signed(&issuer, &wallet, |m| m.nonce = "abcdefgh12345678".into()).await;
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[]).await,
        "invalid_grant",
        "unknown nonce"
    );

    // An expired message (its nonce is fresh).
    let (text, sig) = signed(&issuer, &wallet, |m| {
        m.expiration_time = Some("2020-01-01T00:00:00Z".into())
    })
    .await;
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[]).await,
        "invalid_grant",
        "expired"
    );

    // Not valid yet, or issued in the future.
    let (text, sig) = signed(&issuer, &wallet, |m| {
        m.not_before = Some("2100-01-01T00:00:00Z".into())
    })
    .await;
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[]).await,
        "invalid_grant",
        "not before"
    );
    let (text, sig) = signed(&issuer, &wallet, |m| {
        m.issued_at = "2100-01-01T00:00:00Z".into()
    })
    .await;
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[]).await,
        "invalid_grant",
        "issued at"
    );

    // Another domain, another URI.
    let (text, sig) = signed(&issuer, &wallet, |m| m.domain = "evil.example".into()).await;
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[]).await,
        "invalid_grant",
        "domain"
    );
    let (text, sig) = signed(&issuer, &wallet, |m| m.uri = format!("{}/", m.uri)).await;
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[]).await,
        "invalid_grant",
        "uri"
    );

    // Another chain id: the account eip155:10:… is not registered.
    let (text, sig) = signed(&issuer, &wallet, |m| m.chain_id = "10".into()).await;
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[]).await,
        "invalid_grant",
        "chain id"
    );

    // Signed by another key than the message's address.
    let other = Wallet::evm(10, 1);
    let mut m = Message::new(&wallet, &nonce(&issuer).await);
    let text = m.text();
    let sig = other.sign(&text);
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[]).await,
        "invalid_grant",
        "signer"
    );

    // Tampered after signing (the statement), and the nonce is still good afterwards: a bad
    // signature does not use it up.
    let sig = wallet.sign(&text);
    m.statement = Some("Sign in to agent-auth!".into());
    assert_eq!(
        refused_with(&issuer, &m.text(), &sig, &[]).await,
        "invalid_grant",
        "tampered"
    );
    assert_eq!(sign_in(&issuer, &text, &sig, &[]).await.status, 200);

    // An address no agent holds.
    let stranger = Wallet::evm(11, 1);
    let (text, sig) = signed(&issuer, &stranger, |_| {}).await;
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[]).await,
        "invalid_grant",
        "unregistered"
    );

    // A scope beyond the agent's: invalid_scope, as for secrets.
    let (text, sig) = signed(&issuer, &wallet, |_| {}).await;
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[("scope", "tickets:triage")]).await,
        "invalid_scope"
    );

    // Malformed signatures and messages.
    let (text, _) = signed(&issuer, &wallet, |_| {}).await;
    // An empty signature is a missing one.
    assert_eq!(
        refused_with(&issuer, &text, "", &[]).await,
        "invalid_request"
    );
    for bad in ["0x", "0x00", &"0x".repeat(70), "not hex at all"] {
        assert_eq!(
            refused_with(&issuer, &text, bad, &[]).await,
            "invalid_grant",
            "{bad:?}"
        );
    }
    let sig = wallet.sign(&format!("{text}\n"));
    assert_eq!(
        refused_with(&issuer, &format!("{text}\n"), &sig, &[]).await,
        "invalid_grant"
    );
    let (text, sig) = signed(&issuer, &wallet, |m| m.address = m.address.to_lowercase()).await;
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[]).await,
        "invalid_grant",
        "not checksummed"
    );

    // A suspended agent.
    let r = admin(
        &issuer,
        Method::PATCH,
        &format!("/v1/agents/{agent}"),
        Some(json!({"status": "suspended", "status_reason": "audit"})),
    )
    .await;
    assert_eq!(r.status, 200);
    let (text, sig) = signed(&issuer, &wallet, |_| {}).await;
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[]).await,
        "invalid_grant",
        "suspended"
    );
}

#[tokio::test]
async fn the_form_must_be_complete_and_alone() {
    let issuer = TestIssuer::start().await;
    let wallet = Wallet::evm(12, 1);
    let agent = wallet_agent(&issuer, &[], &wallet).await;
    let (text, sig) = signed(&issuer, &wallet, |_| {}).await;
    let grant = issuer_support::wallet::WALLET_GRANT;
    let r = token_raw(
        &issuer,
        &form(&[("grant_type", grant), ("message", &text)]),
        None,
    )
    .await;
    assert_eq!(r.oauth_error(400), "invalid_request");
    // Client authentication beside the signed message.
    let body = form(&[
        ("grant_type", grant),
        ("message", &text),
        ("signature", &sig),
        ("client_id", &agent),
        ("client_secret", "x"),
    ]);
    assert_eq!(
        token_raw(&issuer, &body, None).await.oauth_error(400),
        "invalid_request"
    );
    // The message and signature still work afterwards (nothing above used the nonce).
    assert_eq!(sign_in(&issuer, &text, &sig, &[]).await.status, 200);
}

#[tokio::test]
async fn an_expired_nonce_is_refused() {
    let issuer = TestIssuer::start().await;
    let wallet = Wallet::solana(13);
    wallet_agent(&issuer, &[], &wallet).await;
    // No Expiration Time in the message: the nonce's own lifetime bounds it.
    let (text, sig) = signed(&issuer, &wallet, |m| m.expiration_time = None).await;
    issuer.advance_clock(Duration::from_secs(WALLET_NONCE_LIFETIME_SECS as u64 + 1));
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[]).await,
        "invalid_grant"
    );
}

#[tokio::test]
async fn concurrent_sign_ins_with_one_nonce_get_one_token() {
    let issuer = TestIssuer::start().await;
    let wallet = Wallet::evm(14, 8453);
    wallet_agent(&issuer, &[], &wallet).await;
    let (text, sig) = signed(&issuer, &wallet, |_| {}).await;
    let attempts = (0..16).map(|_| sign_in(&issuer, &text, &sig, &[]));
    let replies = futures_util::future::join_all(attempts).await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 1);
    for r in replies.iter().filter(|r| r.status != 200) {
        assert_eq!(r.oauth_error(400), "invalid_grant");
    }
}

#[tokio::test]
async fn nonces_are_budgeted_per_client_address() {
    let issuer = TestIssuer::start().await;
    // Earlier tests' nonces do not count: a fresh issuer. Spend the budget of 127.0.0.1.
    for _ in 0..WALLET_NONCES_PER_MINUTE {
        nonce(&issuer).await;
    }
    let r = issuer_support::with_auth(&issuer, Method::POST, "/wallet/nonce", None).await;
    assert_eq!(r.api_error(429), "rate_limited");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // A minute later the address has a nonce again.
    issuer.advance_clock(Duration::from_secs(60));
    nonce(&issuer).await;
}
