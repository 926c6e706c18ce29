//! Signing-key rotation of the bundled issuer (`POST /v1/keys/rotate`), over real HTTP on
//! 127.0.0.1, with the injectable clock instead of sleeps: publish before sign, immediate
//! rotation after a compromise, retired keys gone from the JWKS and the database.
#![cfg(feature = "issuer")]

mod issuer_support;
mod support;

use std::time::Duration;

use agent_auth::issuer::{
    AdminClient, AdminKey, AgentStatus, CreateAgent, DEFAULT_KEY_PUBLISH_DELAY, Database, Issuer,
    RETIRED_KEY_PUBLISHED_MS, TestIssuer,
};
use agent_auth::{AgentAuth, AuthError, InvalidToken};
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

/// Moves the issuer's clock to `at_ms` (which must not be in its past).
fn advance_to(issuer: &TestIssuer, at_ms: i64) {
    let by = u64::try_from(at_ms - issuer.now_ms()).expect("a moment ahead");
    issuer.advance_clock(Duration::from_millis(by));
}

/// Finding 6 of the hardening review: a new key signed at once while resource servers held
/// the old JWKS for up to its max-age, and each unknown `kid` armed their refetch cooldown.
#[tokio::test]
async fn a_rotated_key_is_published_for_the_delay_before_it_signs_so_no_resource_server_meets_an_unknown_kid()
 {
    let issuer = TestIssuer::start().await;
    let agent = issuer.provision("bot", &["tickets:read"]).await.unwrap();
    // A resource server with the default cooldown (one unknown kid would lock it out).
    let auth = AgentAuth::new(&issuer).audience(API).build().unwrap();
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
    let delay_ms = i64::try_from(DEFAULT_KEY_PUBLISH_DELAY.as_millis()).unwrap();
    assert!(
        (rotated.signs_from - issuer.now_ms() - delay_ms).abs() < 60_000,
        "signs after the publish delay: {rotated:?}"
    );
    // Published at once, not signing yet: the old key still signs.
    assert_eq!(rotated.published, [old_kid.clone(), rotated.kid.clone()]);
    assert_eq!(jwks_kids(&issuer).await, rotated.published);
    assert_eq!(issuer.issuer().signing_kid(), old_kid);
    let during = issuer.token(&agent, None, Some(API)).await.unwrap();
    assert_eq!(
        decode_jwt(during.access_token.expose()).0["kid"],
        old_kid.as_str()
    );

    // Within the delay (the JWKS max-age), the resource server refreshes on its schedule.
    auth.refresh_keys().await.unwrap();
    let fetches = auth.key_fetch_count();
    advance_to(&issuer, rotated.signs_from);
    assert_eq!(issuer.issuer().signing_kid(), rotated.kid);
    let after = issuer.token(&agent, None, Some(API)).await.unwrap();
    assert_eq!(
        decode_jwt(after.access_token.expose()).0["kid"],
        rotated.kid.as_str()
    );
    // The first token of the new key verifies without any fetch: its kid was known already.
    assert_eq!(
        auth.verify(after.access_token.expose()).await.unwrap().id(),
        agent.id
    );
    assert_eq!(auth.key_fetch_count(), fetches);
    assert_eq!(
        jwks_kids(&issuer).await,
        [rotated.kid.clone(), old_kid.clone()]
    );

    // The old key stays published until its last token expired (+ margin), then leaves.
    let retired_until = rotated.signs_from + RETIRED_KEY_PUBLISHED_MS;
    advance_to(&issuer, retired_until - 1_000);
    assert_eq!(jwks_kids(&issuer).await.len(), 2);
    advance_to(&issuer, retired_until);
    assert_eq!(jwks_kids(&issuer).await, vec![rotated.kid.clone()]);
}

#[tokio::test]
async fn several_rotations_publish_each_key_for_its_own_window() {
    let issuer = TestIssuer::start().await;
    let k0 = issuer.issuer().signing_kid();
    let r1 = issuer.admin().rotate_signing_key().await.unwrap();
    issuer.advance_clock(Duration::from_secs(200));
    let r2 = issuer.admin().rotate_signing_key().await.unwrap();
    // k0 signs; k1 and k2 wait their turn (the signing key first, then the newest).
    assert_eq!(r2.published, [k0.clone(), r2.kid.clone(), r1.kid.clone()]);
    advance_to(&issuer, r1.signs_from);
    assert_eq!(issuer.issuer().signing_kid(), r1.kid);
    advance_to(&issuer, r2.signs_from);
    assert_eq!(issuer.issuer().signing_kid(), r2.kid);
    assert_eq!(
        jwks_kids(&issuer).await,
        [r2.kid.clone(), r1.kid.clone(), k0.clone()]
    );
    // k0 leaves 360 s after k1 began to sign; k1 360 s after k2 did.
    advance_to(&issuer, r1.signs_from + RETIRED_KEY_PUBLISHED_MS);
    assert_eq!(jwks_kids(&issuer).await, [r2.kid.clone(), r1.kid.clone()]);
    advance_to(&issuer, r2.signs_from + RETIRED_KEY_PUBLISHED_MS);
    assert_eq!(jwks_kids(&issuer).await, vec![r2.kid.clone()]);
}

#[tokio::test]
async fn an_immediate_rotation_signs_at_once_and_drops_every_older_key() {
    let issuer = TestIssuer::start().await;
    let agent = issuer.provision("bot", &["tickets:read"]).await.unwrap();
    let auth = AgentAuth::new(&issuer).audience(API).build().unwrap();
    let old_kid = issuer.issuer().signing_kid();
    let before = issuer.token(&agent, None, Some(API)).await.unwrap();
    auth.verify(before.access_token.expose()).await.unwrap();

    let rotated = issuer
        .admin()
        .rotate_signing_key_immediately()
        .await
        .unwrap();
    assert_ne!(rotated.kid, old_kid);
    assert!(rotated.signs_from <= issuer.now_ms());
    assert_eq!(rotated.published, std::slice::from_ref(&rotated.kid));
    assert_eq!(jwks_kids(&issuer).await, std::slice::from_ref(&rotated.kid));
    assert_eq!(issuer.issuer().signing_kid(), rotated.kid);
    let after = issuer.token(&agent, None, Some(API)).await.unwrap();
    assert_eq!(
        decode_jwt(after.access_token.expose()).0["kid"],
        rotated.kid.as_str()
    );

    // Once the resource server has the new JWKS, the compromised key's token is refused, even
    // though it verified (and was cached) before.
    auth.refresh_keys().await.unwrap();
    assert_eq!(
        auth.verify(before.access_token.expose()).await.unwrap_err(),
        AuthError::InvalidToken(InvalidToken::UnknownKey)
    );
    assert_eq!(
        auth.verify(after.access_token.expose()).await.unwrap().id(),
        agent.id
    );
}

#[tokio::test]
async fn a_rotation_body_other_than_immediate_is_refused_and_rotates_nothing() {
    let issuer = TestIssuer::start().await;
    for body in [
        serde_json::json!({"immediate": "yes"}),
        serde_json::json!({"now": true}),
        serde_json::json!([true]),
    ] {
        let r = admin(&issuer, Method::POST, "/v1/keys/rotate", Some(body)).await;
        assert_eq!(r.api_error(422), "validation_error");
    }
    assert_eq!(jwks_kids(&issuer).await.len(), 1);
}

#[cfg(unix)]
#[tokio::test]
async fn a_retired_key_leaves_the_database_once_no_unexpired_token_can_carry_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("issuer.db");
    let stored_kids = || -> Vec<String> {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mut stmt = conn
            .prepare("SELECT kid FROM signing_keys ORDER BY created_at")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let issuer =
        TestIssuer::start_on("127.0.0.1:0".parse().unwrap(), Database::Sqlite(db.clone())).await;
    let k0 = issuer.issuer().signing_kid();
    let rotated = issuer.admin().rotate_signing_key().await.unwrap();
    advance_to(
        &issuer,
        rotated.signs_from + RETIRED_KEY_PUBLISHED_MS - 1_000,
    );
    issuer.issuer().flush().await.unwrap();
    assert_eq!(
        stored_kids(),
        [k0.clone(), rotated.kid.clone()],
        "still published"
    );
    advance_to(&issuer, rotated.signs_from + RETIRED_KEY_PUBLISHED_MS);
    issuer.issuer().flush().await.unwrap();
    assert_eq!(stored_kids(), std::slice::from_ref(&rotated.kid));
    assert_eq!(jwks_kids(&issuer).await, std::slice::from_ref(&rotated.kid));
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
async fn self_service_accepts_tokens_of_the_new_key_as_soon_as_it_signs() {
    let issuer = TestIssuer::start().await;
    let agent = issuer.provision("bot", &[]).await.unwrap();
    let first = issuer
        .token(&agent, None, Some(issuer.url()))
        .await
        .unwrap();
    let client = issuer.admin().as_agent(first.access_token);
    assert_eq!(client.me().await.unwrap().id, agent.id);
    for immediate in [false, true] {
        let rotated = if immediate {
            issuer
                .admin()
                .rotate_signing_key_immediately()
                .await
                .unwrap()
        } else {
            issuer.admin().rotate_signing_key().await.unwrap()
        };
        if !immediate {
            advance_to(&issuer, rotated.signs_from);
        }
        let token = issuer
            .token(&agent, None, Some(issuer.url()))
            .await
            .unwrap();
        assert_eq!(
            decode_jwt(token.access_token.expose()).0["kid"],
            rotated.kid.as_str()
        );
        let client = issuer.admin().as_agent(token.access_token);
        assert_eq!(client.me().await.unwrap().id, agent.id);
    }
}

/// Finding 1 of the hardening review: self-service verified tokens with keys fetched from the
/// issuer's public URL, so whoever answered there (a proxy, DNS, a plain-http hop) could forge
/// a token that rotated a victim's secret; an issuer that could not reach its own URL answered
/// self-service with 503.
#[tokio::test]
async fn self_service_checks_tokens_with_the_issuers_own_keys_never_with_whoever_answers_at_its_url()
 {
    // The attacker answers at the issuer's public URL, with its own JWKS and metadata.
    let forger = support::TestKey::ed25519("forged");
    let public_url = support::JwksServer::start(&[&forger]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let real = format!("http://{}", listener.local_addr().unwrap());
    let key = AdminKey::generate().unwrap();
    let issuer = Issuer::builder()
        .issuer_url(public_url.issuer())
        .admin_key(key.clone())
        .build()
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(issuer.serve(listener, async move {
        let _ = stopped.await;
    }));
    let admin = AdminClient::new(&real, key).unwrap();
    let victim = admin
        .create_agent(&CreateAgent::new("victim"))
        .await
        .unwrap()
        .data;
    let secret = admin.add_secret(&victim.id, None).await.unwrap().secret;

    let forged = forger.token(
        &public_url.issuer(),
        serde_json::json!({"sub": victim.id, "client_id": victim.id, "aud": public_url.issuer()}),
    );
    for (method, path) in [
        (Method::POST, "/v1/agents/me/rotate"),
        (Method::POST, "/v1/agents/me/deactivate"),
        (Method::DELETE, "/v1/agents/me"),
        (Method::GET, "/v1/agents/me"),
    ] {
        let r = read(
            http()
                .request(method, format!("{real}{path}"))
                .bearer_auth(&forged)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(r.status, 401, "{path}: {}", r.text);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|h| h.contains("error=\"invalid_token\"")),
            "{path}: {:?}",
            r.headers
        );
    }
    // Nothing changed, and the issuer never asked the public URL for keys.
    let verifiers = admin.list_verifiers(&victim.id).await.unwrap();
    assert_eq!(verifiers.len(), 1);
    assert_eq!(
        admin.get_agent(&victim.id).await.unwrap().status,
        AgentStatus::Active
    );
    assert_eq!(public_url.fetches(), 0);

    // The victim's own token works although its public URL does not lead back to it.
    let token = admin
        .token(
            &victim.id,
            secret.expose(),
            None,
            Some(&public_url.issuer()),
        )
        .await
        .unwrap();
    let me = read(
        http()
            .get(format!("{real}/v1/agents/me"))
            .bearer_auth(token.access_token.expose())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.json()["data"]["id"], victim.id.as_str());
    assert_eq!(public_url.fetches(), 0);
    stop.send(()).unwrap();
    served.await.unwrap().unwrap();
}
