//! Wallet verifiers (DESIGN §9): registration and its refusals (malformed accounts, one
//! account per agent, the verifier limit), the reverse lookup in any letter case, the mapping's
//! removal with its verifier or agent, and a wallet never acting as a client secret.
#![cfg(feature = "issuer")]

mod issuer_support;

use agent_auth::issuer::{MAX_VERIFIERS_PER_AGENT, TestIssuer};
use issuer_support::keyed::agent_without_secret;
use issuer_support::wallet::*;
use issuer_support::{admin, form, token_raw};
use reqwest::Method;
use serde_json::json;

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
