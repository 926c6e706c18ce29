//! The verified-token cache over real HTTP: served until `exp` and never longer, never after
//! the key left the JWKS, exact-match only, scopes still checked, bounded.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

#[tokio::test]
async fn a_verified_token_is_remembered_and_served_again() {
    let ed = TestKey::ed25519("ed-1");
    let jwks = JwksServer::start(&[&ed]).await;
    let auth = jwks.auth().build().unwrap();
    let api = serve_api(auth.clone()).await;
    let token = ed.token(&jwks.issuer(), json!({}));
    assert_eq!(auth.token_cache_usage(), Some((0, 0)));
    for _ in 0..3 {
        assert_eq!(
            get_with_token(&format!("{api}/tickets"), &token)
                .await
                .status,
            200
        );
    }
    let (entries, bytes) = auth.token_cache_usage().unwrap();
    assert_eq!(entries, 1);
    assert!(
        bytes >= token.len() as u64,
        "{bytes} bytes for a {}-byte token",
        token.len()
    );
}

#[tokio::test]
async fn a_cached_token_is_refused_once_exp_plus_leeway_has_passed() {
    let ed = TestKey::ed25519("ed-1");
    let jwks = JwksServer::start(&[&ed]).await;
    let auth = jwks.auth().leeway(Duration::from_secs(1)).build().unwrap();
    let api = serve_api(auth.clone()).await;
    // Valid for about 2 more seconds (exp + leeway), verified and cached now.
    let exp = now() + 1;
    let token = ed.token(&jwks.issuer(), json!({ "exp": exp }));
    assert_eq!(
        get_with_token(&format!("{api}/tickets"), &token)
            .await
            .status,
        200
    );
    assert_eq!(auth.token_cache_usage().unwrap().0, 1);
    // Crossing a time bound has no signal to wait on: sleep past exp + leeway.
    let deadline = std::time::UNIX_EPOCH + Duration::from_secs((exp + 1) as u64);
    let wait = deadline
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(wait + Duration::from_millis(1100)).await;
    let outcome = get_with_token(&format!("{api}/tickets"), &token).await;
    assert_eq!(outcome.status, 401);
    assert!(outcome.challenge.unwrap().contains("token expired"));
}

#[tokio::test]
async fn one_byte_changed_a_shared_prefix_or_an_extension_misses() {
    let ed = TestKey::ed25519("ed-1");
    let jwks = JwksServer::start(&[&ed]).await;
    let auth = jwks.auth().build().unwrap();
    let api = serve_api(auth.clone()).await;
    let url = format!("{api}/tickets");
    let token = ed.token(&jwks.issuer(), json!({}));
    assert_eq!(get_with_token(&url, &token).await.status, 200);

    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let mut payload_flipped = token.clone().into_bytes();
    let middle = token.find('.').unwrap() + 10;
    payload_flipped[middle] = if payload_flipped[middle] == b'x' {
        b'y'
    } else {
        b'x'
    };
    let payload_flipped = String::from_utf8(payload_flipped).unwrap();
    for forged in [
        flipped,
        payload_flipped,
        token[..token.len() - 1].to_owned(),
        format!("{token}A"),
        format!("{token}.{}", "A".repeat(10)),
    ] {
        let outcome = get_with_token(&url, &forged).await;
        assert_eq!(outcome.status, 401, "{forged}");
        assert_eq!(outcome.error().as_deref(), Some("invalid_token"));
    }
    assert_eq!(
        auth.token_cache_usage().unwrap().0,
        1,
        "forgeries are never cached"
    );
}

#[tokio::test]
async fn a_cached_token_stops_verifying_once_its_key_left_the_jwks() {
    let old = TestKey::ed25519("old");
    let new = TestKey::ed25519("new");
    let jwks = JwksServer::start(&[&old]).await;
    let auth = jwks.auth().build().unwrap();
    let api = serve_api(auth.clone()).await;
    let url = format!("{api}/tickets");
    let old_token = ed_token(&old, &jwks);
    assert_eq!(get_with_token(&url, &old_token).await.status, 200);

    // A refresh that keeps the key keeps the cached verdict.
    jwks.set_keys(&[&old, &new]);
    auth.refresh_keys().await.unwrap();
    assert_eq!(get_with_token(&url, &old_token).await.status, 200);

    // A refresh that drops it revokes the cached verdict at once.
    jwks.set_keys(&[&new]);
    auth.refresh_keys().await.unwrap();
    let outcome = get_with_token(&url, &old_token).await;
    assert_eq!(outcome.status, 401);
    assert!(outcome.challenge.unwrap().contains("unknown signing key"));
    assert_eq!(
        get_with_token(&url, &ed_token(&new, &jwks)).await.status,
        200
    );
}

#[tokio::test]
async fn a_key_replaced_under_the_same_kid_revokes_cached_tokens() {
    let original = TestKey::ed25519("k");
    let replacement = TestKey::ed25519("k");
    let jwks = JwksServer::start(&[&original]).await;
    let auth = jwks.auth().build().unwrap();
    let api = serve_api(auth.clone()).await;
    let url = format!("{api}/tickets");
    let token = ed_token(&original, &jwks);
    assert_eq!(get_with_token(&url, &token).await.status, 200);
    jwks.set_keys(&[&replacement]);
    auth.refresh_keys().await.unwrap();
    let outcome = get_with_token(&url, &token).await;
    assert_eq!(outcome.status, 401);
    assert!(
        outcome
            .challenge
            .unwrap()
            .contains("signature verification failed")
    );
}

fn ed_token(key: &TestKey, jwks: &JwksServer) -> String {
    key.token(&jwks.issuer(), json!({}))
}

#[tokio::test]
async fn cache_hits_still_check_each_routes_scopes() {
    let ed = TestKey::ed25519("ed-1");
    let jwks = JwksServer::start(&[&ed]).await;
    let api = serve_api(jwks.auth().build().unwrap()).await;
    let token = ed.token(&jwks.issuer(), json!({ "scope": "tickets:read" }));
    for _ in 0..2 {
        assert_eq!(
            get_with_token(&format!("{api}/tickets"), &token)
                .await
                .status,
            200
        );
        let outcome = send(
            client()
                .post(format!("{api}/tickets/T-1/triage"))
                .bearer_auth(&token),
        )
        .await;
        assert_eq!(outcome.status, 403);
        assert_eq!(outcome.error().as_deref(), Some("insufficient_scope"));
    }
}

#[tokio::test]
async fn the_cache_holds_its_entry_and_byte_bounds() {
    let ed = TestKey::ed25519("ed-1");
    let jwks = JwksServer::start(&[&ed]).await;
    let by_count = jwks.auth().token_cache(8, 1 << 30).build().unwrap();
    let by_bytes = jwks
        .auth()
        .token_cache(1_000_000, 8 * 1024)
        .build()
        .unwrap();
    let api_count = serve_api(by_count.clone()).await;
    let api_bytes = serve_api(by_bytes.clone()).await;
    for i in 0..40 {
        let token = ed.token(&jwks.issuer(), json!({ "jti": format!("distinct-{i}") }));
        assert_eq!(
            get_with_token(&format!("{api_count}/tickets"), &token)
                .await
                .status,
            200
        );
        assert_eq!(
            get_with_token(&format!("{api_bytes}/tickets"), &token)
                .await
                .status,
            200
        );
    }
    let (entries, _) = by_count.token_cache_usage().unwrap();
    assert!(entries <= 8, "{entries} entries for a bound of 8");
    let (entries, bytes) = by_bytes.token_cache_usage().unwrap();
    assert!(bytes <= 8 * 1024, "{bytes} bytes for a bound of 8 KiB");
    assert!(entries < 40);
}

#[tokio::test]
async fn without_the_cache_every_request_is_verified_afresh() {
    let old = TestKey::ed25519("old");
    let jwks = JwksServer::start(&[&old]).await;
    let auth = jwks.auth().no_token_cache().build().unwrap();
    let api = serve_api(auth.clone()).await;
    let token = ed_token(&old, &jwks);
    assert_eq!(
        get_with_token(&format!("{api}/tickets"), &token)
            .await
            .status,
        200
    );
    assert_eq!(auth.token_cache_usage(), None);
}

#[tokio::test]
async fn a_cached_token_in_a_malformed_request_is_still_refused() {
    let ed = TestKey::ed25519("ed-1");
    let jwks = JwksServer::start(&[&ed]).await;
    let api = serve_api(jwks.auth().build().unwrap()).await;
    let url = format!("{api}/tickets");
    let token = ed.token(&jwks.issuer(), json!({}));
    assert_eq!(get_with_token(&url, &token).await.status, 200);
    // The cache answers only a lone, well-formed header; everything else takes the full path.
    let twice = send(
        client()
            .get(&url)
            .header("authorization", format!("Bearer {token}"))
            .header("authorization", format!("Bearer {token}")),
    )
    .await;
    assert_eq!(twice.status, 400);
    assert_eq!(twice.error().as_deref(), Some("invalid_request"));
    let trailing = send(
        client()
            .get(&url)
            .header("authorization", format!("Bearer {token} x")),
    )
    .await;
    assert_eq!(trailing.status, 400);
    for header in [format!("bearer {token}"), format!("Bearer   {token}")] {
        assert_eq!(
            send(client().get(&url).header("authorization", header))
                .await
                .status,
            200
        );
    }
}
