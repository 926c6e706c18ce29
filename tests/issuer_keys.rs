//! Signing-key rotation of the bundled issuer (`POST /v1/keys/rotate`), over real HTTP on
//! 127.0.0.1, with the injectable clock instead of sleeps.
#![cfg(feature = "issuer")]

mod issuer_support;

use std::time::Duration;

use agent_auth::AgentAuth;
use agent_auth::issuer::{RETIRED_KEY_PUBLISHED_MS, TestIssuer};
use issuer_support::*;
use reqwest::Method;

const API: &str = "https://api.example.com";

async fn jwks_kids(issuer: &TestIssuer) -> Vec<String> {
    let r = read(http().get(issuer.jwks_uri()).send().await.unwrap()).await;
    assert_eq!(r.status, 200);
    r.json()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn rotation_signs_with_the_new_key_and_keeps_the_old_one_published_until_its_tokens_expired()
{
    let issuer = TestIssuer::start().await;
    let agent = issuer.provision("bot", &["tickets:read"]).await.unwrap();
    // The first fetch is on demand (no keys yet); without a cooldown the new kid refetches at
    // once (a long-running resource server refetches at once anyway: its cooldown has passed).
    let auth = AgentAuth::new(&issuer)
        .audience(API)
        .jwks_refetch_cooldown(Duration::ZERO);
    let old_kid = issuer.issuer().signing_kid();
    let before = issuer.token(&agent, None, Some(API)).await.unwrap();
    assert_eq!(
        auth.verify(before.access_token.expose())
            .await
            .unwrap()
            .id(),
        agent.id
    );

    let rotated = issuer.admin().rotate_signing_key().await.unwrap();
    assert_ne!(rotated.kid, old_kid);
    assert_eq!(rotated.published, [rotated.kid.clone(), old_kid.clone()]);
    assert_eq!(issuer.issuer().signing_kid(), rotated.kid);
    assert_eq!(jwks_kids(&issuer).await, rotated.published);

    let after = issuer.token(&agent, None, Some(API)).await.unwrap();
    let (header, _) = decode_jwt(after.access_token.expose());
    assert_eq!(header["kid"], rotated.kid.as_str());
    // Both verify with the middleware (the new kid makes it refetch the JWKS).
    assert_eq!(
        auth.verify(after.access_token.expose()).await.unwrap().id(),
        agent.id
    );
    assert_eq!(
        auth.verify(before.access_token.expose())
            .await
            .unwrap()
            .id(),
        agent.id
    );

    // Just before the old key's tokens have all expired (+ margin): still published.
    issuer.advance_clock(Duration::from_millis(
        u64::try_from(RETIRED_KEY_PUBLISHED_MS).unwrap() - 2_000,
    ));
    assert_eq!(jwks_kids(&issuer).await.len(), 2);
    issuer.advance_clock(Duration::from_secs(3));
    assert_eq!(jwks_kids(&issuer).await, vec![rotated.kid.clone()]);
}

#[tokio::test]
async fn several_rotations_publish_each_key_for_its_own_window() {
    let issuer = TestIssuer::start().await;
    let k0 = issuer.issuer().signing_kid();
    let k1 = issuer.admin().rotate_signing_key().await.unwrap().kid;
    issuer.advance_clock(Duration::from_secs(200));
    let r = issuer.admin().rotate_signing_key().await.unwrap();
    assert_eq!(r.published, [r.kid.clone(), k1.clone(), k0.clone()]);
    // k0 leaves 360 s after k1 appeared; k1 360 s after k2.
    issuer.advance_clock(Duration::from_secs(170));
    assert_eq!(jwks_kids(&issuer).await, [r.kid.clone(), k1.clone()]);
    issuer.advance_clock(Duration::from_secs(200));
    assert_eq!(jwks_kids(&issuer).await, vec![r.kid.clone()]);
}

#[tokio::test]
async fn rotation_requires_the_admin_key() {
    let issuer = TestIssuer::start().await;
    let r = with_auth(&issuer, Method::POST, "/v1/keys/rotate", None).await;
    assert_eq!(r.api_error(401), "unauthorized");
    let r = with_auth(&issuer, Method::POST, "/v1/keys/rotate", Some("Bearer x")).await;
    assert_eq!(r.api_error(401), "unauthorized");
    assert_eq!(jwks_kids(&issuer).await.len(), 1);
}

#[tokio::test]
async fn self_service_accepts_tokens_of_the_new_key_right_after_rotation() {
    let issuer = TestIssuer::start().await;
    let agent = issuer.provision("bot", &[]).await.unwrap();
    let first = issuer
        .token(&agent, None, Some(issuer.url()))
        .await
        .unwrap();
    let client = issuer.admin().as_agent(first.access_token);
    assert_eq!(client.me().await.unwrap().id, agent.id);
    issuer.admin().rotate_signing_key().await.unwrap();
    let second = issuer
        .token(&agent, None, Some(issuer.url()))
        .await
        .unwrap();
    let client = issuer.admin().as_agent(second.access_token);
    assert_eq!(client.me().await.unwrap().id, agent.id);
}
