//! Wallet verifiers (DESIGN §9): registration and its refusals, the reverse lookup, the
//! mapping's removal with its verifier or agent, and sign in with the wallet — EIP-4361 with
//! EIP-191 signatures for EVM keys and CAIP-122 with Ed25519 for Solana keys, all generated
//! here — with every refusal's exact status and code.
#![cfg(feature = "issuer")]

mod issuer_support;

use std::time::Duration;

use agent_auth::issuer::{MAX_VERIFIERS_PER_AGENT, TestIssuer, WALLET_NONCE_LIFETIME_SECS};
use issuer_support::keyed::agent_without_secret;
use issuer_support::wallet::{Message, Wallet, nonce, sign_in};
use issuer_support::{admin, decode_jwt, form, token_raw};
use reqwest::Method;
use serde_json::{Value, json};

async fn register(issuer: &TestIssuer, agent: &str, account: &str) -> issuer_support::Reply {
    admin(
        issuer,
        Method::POST,
        &format!("/v1/agents/{agent}/verifiers"),
        Some(json!({"type": "wallet", "name": "treasury", "account": account})),
    )
    .await
}

async fn lookup(issuer: &TestIssuer, account: &str) -> issuer_support::Reply {
    admin(issuer, Method::GET, &format!("/v1/wallets/{account}"), None).await
}

/// An agent with `scopes` holding `wallet`; returns its id.
async fn wallet_agent(issuer: &TestIssuer, scopes: &[&str], wallet: &Wallet) -> String {
    let agent = agent_without_secret(issuer, scopes).await;
    let r = register(issuer, &agent, &wallet.account()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    agent
}

/// A signed message for `wallet` with a fresh nonce, edited by `edit`.
async fn signed(
    issuer: &TestIssuer,
    wallet: &Wallet,
    edit: impl FnOnce(&mut Message),
) -> (String, String) {
    let mut m = Message::new(wallet, &nonce(issuer).await);
    edit(&mut m);
    let text = m.text();
    let sig = wallet.sign(&text);
    (text, sig)
}

async fn refused_with(
    issuer: &TestIssuer,
    text: &str,
    sig: &str,
    extra: &[(&str, &str)],
) -> String {
    sign_in(issuer, text, sig, extra).await.oauth_error(400)
}

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
async fn malformed_accounts_are_refused() {
    let issuer = TestIssuer::start().await;
    let agent = agent_without_secret(&issuer, &[]).await;
    let evm = Wallet::evm(15, 1).address();
    let sol = Wallet::solana(15).address();
    let wrong_checksum = {
        // Flip the case of the first letter of a checksummed address.
        let i = evm
            .find(|c: char| c.is_ascii_alphabetic() && c != 'x')
            .unwrap();
        let mut s = evm.clone();
        let c = s.as_bytes()[i] as char;
        let flipped = if c.is_ascii_uppercase() {
            c.to_ascii_lowercase()
        } else {
            c.to_ascii_uppercase()
        };
        s.replace_range(i..=i, &flipped.to_string());
        s
    };
    for bad in [
        "".to_owned(),
        "eip155:1".to_owned(),
        format!("eip155:1:{evm}:x"),
        format!("eip155:01:{evm}"),
        format!("eip155:one:{evm}"),
        format!("eip155:1:{}", &evm[2..]),
        format!("eip155:1:{}", &evm[..41]),
        format!("eip155:1:{wrong_checksum}"),
        format!("bip122:000000000019d6689c085ae165831e93:{evm}"),
        format!("solana:{}:{sol}", "0".repeat(32)),
        format!(
            "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp:{}",
            &sol[..sol.len() - 2]
        ),
        format!("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp:1{sol}"),
        format!("eip155:1:{}", "0x".to_owned() + &"a".repeat(200)),
    ] {
        let r = register(&issuer, &agent, &bad).await;
        assert_eq!(r.api_error(422), "invalid_account", "{bad:?}");
    }
    // The type needs an account, and only the wallet type takes one.
    let r = admin(
        &issuer,
        Method::POST,
        &format!("/v1/agents/{agent}/verifiers"),
        Some(json!({"type": "wallet"})),
    )
    .await;
    assert_eq!(r.api_error(422), "validation_error");
    let r = admin(
        &issuer,
        Method::POST,
        &format!("/v1/agents/{agent}/verifiers"),
        Some(json!({"type": "secret", "account": format!("eip155:1:{evm}")})),
    )
    .await;
    assert_eq!(r.api_error(422), "validation_error");
    let listed = admin(
        &issuer,
        Method::GET,
        &format!("/v1/agents/{agent}/verifiers"),
        None,
    )
    .await;
    assert_eq!(listed.json()["data"], json!([]));
}

#[tokio::test]
async fn one_account_belongs_to_one_agent() {
    let issuer = TestIssuer::start().await;
    let wallet = Wallet::evm(16, 1);
    let first = wallet_agent(&issuer, &[], &wallet).await;
    let second = agent_without_secret(&issuer, &[]).await;
    // In another letter case, to either agent: the same account.
    for (agent, account) in [
        (&second, wallet.account().to_lowercase()),
        (&first, wallet.account()),
        (
            &second,
            wallet.account().replace(
                &wallet.address()[2..],
                &wallet.address()[2..].to_uppercase(),
            ),
        ),
    ] {
        assert_eq!(
            register(&issuer, agent, &account).await.api_error(409),
            "conflict",
            "{account}"
        );
    }
    // The same address on another chain is another account.
    let r = register(
        &issuer,
        &second,
        &wallet.account().replace("eip155:1:", "eip155:10:"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Solana too.
    let sol = Wallet::solana(16);
    wallet_agent(&issuer, &[], &sol).await;
    assert_eq!(
        register(&issuer, &second, &sol.account())
            .await
            .api_error(409),
        "conflict"
    );
}

#[tokio::test]
async fn wallets_count_toward_the_verifier_limit() {
    let issuer = TestIssuer::start().await;
    let agent = agent_without_secret(&issuer, &[]).await;
    for i in 0..MAX_VERIFIERS_PER_AGENT {
        let account = Wallet::evm(u8::try_from(i + 20).unwrap(), 1).account();
        assert_eq!(register(&issuer, &agent, &account).await.status, 201);
    }
    let r = admin(
        &issuer,
        Method::POST,
        &format!("/v1/agents/{agent}/verifiers"),
        Some(json!({"type": "secret"})),
    )
    .await;
    assert_eq!(r.api_error(409), "limit_exceeded");
    let r = register(&issuer, &agent, &Wallet::evm(99, 1).account()).await;
    assert_eq!(r.api_error(409), "limit_exceeded");
}

#[tokio::test]
async fn the_reverse_lookup_matches_evm_addresses_in_any_case() {
    let issuer = TestIssuer::start().await;
    let wallet = Wallet::evm(17, 1);
    let agent = wallet_agent(&issuer, &["tickets:read"], &wallet).await;
    let verifier = admin(
        &issuer,
        Method::GET,
        &format!("/v1/agents/{agent}/verifiers"),
        None,
    )
    .await
    .json()["data"][0]["id"]
        .clone();
    let hex = &wallet.address()[2..];
    for account in [
        wallet.account(),
        wallet.account().to_lowercase(),
        format!("eip155:1:0x{}", hex.to_uppercase()),
        // A wrong checksum still names the same address in a lookup.
        format!(
            "eip155:1:0x{}",
            hex.chars()
                .map(|c| if c.is_ascii_uppercase() {
                    c.to_ascii_lowercase()
                } else {
                    c.to_ascii_uppercase()
                })
                .collect::<String>()
        ),
    ] {
        let r = lookup(&issuer, &account).await;
        assert_eq!(r.status, 200, "{account}: {}", r.text);
        let d = &r.json()["data"];
        assert_eq!(d["account"], wallet.account());
        assert_eq!(d["agent_id"], agent.as_str());
        assert_eq!(d["verifier_id"], verifier);
        assert_eq!(d["agent"]["id"], agent.as_str());
        assert_eq!(d["agent"]["scopes"], json!(["tickets:read"]));
    }
    // Through the admin client too.
    let record = issuer
        .admin()
        .wallet(&wallet.account().to_lowercase())
        .await
        .unwrap();
    assert_eq!(record.agent_id, agent);
    // Unknown: 404; malformed: 422; the admin key is required.
    assert_eq!(
        lookup(&issuer, &Wallet::evm(18, 1).account())
            .await
            .api_error(404),
        "not_found"
    );
    assert_eq!(
        lookup(&issuer, &wallet.account().replace("eip155:1:", "eip155:5:"))
            .await
            .api_error(404),
        "not_found"
    );
    assert_eq!(
        lookup(&issuer, "eip155:1:0x12").await.api_error(422),
        "invalid_account"
    );
    let r = issuer_support::with_auth(
        &issuer,
        Method::GET,
        &format!("/v1/wallets/{}", wallet.account()),
        None,
    )
    .await;
    assert_eq!(r.api_error(401), "unauthorized");
    // Solana addresses are case-sensitive: a changed letter is another (or no) account.
    let sol = Wallet::solana(17);
    let sol_agent = wallet_agent(&issuer, &[], &sol).await;
    assert_eq!(
        lookup(&issuer, &sol.account()).await.json()["data"]["agent_id"],
        sol_agent.as_str()
    );
}

#[tokio::test]
async fn the_mapping_goes_with_its_verifier_and_its_agent() {
    let issuer = TestIssuer::start().await;
    let wallet = Wallet::evm(19, 1);
    let agent = wallet_agent(&issuer, &[], &wallet).await;
    let vid = admin(
        &issuer,
        Method::GET,
        &format!("/v1/agents/{agent}/verifiers"),
        None,
    )
    .await
    .json()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = admin(
        &issuer,
        Method::DELETE,
        &format!("/v1/agents/{agent}/verifiers/{vid}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        lookup(&issuer, &wallet.account()).await.api_error(404),
        "not_found"
    );
    // Gone for sign-in too, and free for another agent.
    let (text, sig) = signed(&issuer, &wallet, |_| {}).await;
    assert_eq!(
        refused_with(&issuer, &text, &sig, &[]).await,
        "invalid_grant"
    );
    let next = wallet_agent(&issuer, &[], &wallet).await;
    assert_eq!(
        lookup(&issuer, &wallet.account()).await.json()["data"]["agent_id"],
        next.as_str()
    );

    let r = admin(&issuer, Method::DELETE, &format!("/v1/agents/{next}"), None).await;
    assert_eq!(r.status, 204);
    assert_eq!(
        lookup(&issuer, &wallet.account()).await.api_error(404),
        "not_found"
    );
    let again = wallet_agent(&issuer, &[], &wallet).await;
    assert_ne!(again, next);
}

#[tokio::test]
async fn a_wallet_is_not_a_client_secret() {
    let issuer = TestIssuer::start().await;
    let wallet = Wallet::evm(21, 1);
    let agent = wallet_agent(&issuer, &[], &wallet).await;
    // Whatever is presented as a secret of an agent holding only a wallet: invalid_client.
    for secret in [wallet.account(), String::new(), "0".repeat(42)] {
        let body = form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &agent),
            ("client_secret", &secret),
        ]);
        let r = token_raw(&issuer, &body, None).await;
        assert_eq!(r.oauth_error(401), "invalid_client", "{secret:?}");
    }
}
