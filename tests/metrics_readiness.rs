//! What the layer reports (DESIGN §11): exact metric counts through a `metrics` debugging
//! recorder after a known mix of requests over real HTTP, and readiness / `refresh_keys` with
//! every issuer up, one down from the start, and one going down after a good fetch.
//!
//! The recorder is installed only while `build()` runs (`with_local_recorder`): every handle is
//! registered there and keeps counting from whichever thread increments it afterwards.

mod support;

use std::collections::BTreeMap;

use agent_auth::metrics::{
    JWKS_FETCHES, JWKS_KEYS, TOKEN_CACHE, VERIFICATION_SECONDS, VERIFICATIONS,
};
use agent_auth::{AgentAuth, AgentAuthLayer, Issuer, JwksFetchError};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use serde_json::json;
use support::*;

/// Builds `auth` with a fresh debugging recorder installed for the duration of `build()`.
fn build_recorded(auth: &AgentAuth) -> (AgentAuthLayer, Snapshotter) {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let layer = metrics::with_local_recorder(&recorder, || auth.build()).unwrap();
    (layer, snapshotter)
}

/// Every metric as `name{label=value,…}` → its value (a histogram as its number of samples).
fn snapshot(snapshotter: &Snapshotter) -> BTreeMap<String, f64> {
    snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let key = key.key();
            let mut labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            labels.sort();
            let name = format!("{}{{{}}}", key.name(), labels.join(","));
            let value = match value {
                DebugValue::Counter(count) => count as f64,
                DebugValue::Gauge(value) => value.into_inner(),
                DebugValue::Histogram(samples) => samples.len() as f64,
            };
            (name, value)
        })
        .collect()
}

fn raw_get(url: &str, authorization: &[&str]) -> reqwest::RequestBuilder {
    let mut request = client().get(url);
    for value in authorization {
        request = request.header("authorization", *value);
    }
    request
}

#[tokio::test]
async fn every_verification_fetch_and_cache_lookup_is_counted_exactly() {
    let k1 = TestKey::ed25519("k1");
    let k2 = TestKey::ed25519("k2");
    let a = JwksServer::start(&[&k1, &k2]).await;
    let key_b = TestKey::ed25519("k1");
    let b = JwksServer::start(&[&key_b]).await;
    b.set_mode(Mode::Status(500));
    let (layer, snapshotter) = build_recorded(&a.auth().issuer(Issuer::new(b.issuer())));
    let (a_url, b_url) = (a.issuer(), b.issuer());
    let api = serve_api(layer).await;
    let url = format!("{api}/whoami");
    let bearer = |token: &str| format!("Bearer {token}");

    // Accepted: three fresh tokens (cache misses, verified), one of them replayed twice (hits).
    let replayed = k1.token(&a_url, json!({}));
    let accepted = [
        replayed.clone(),
        replayed.clone(),
        replayed,
        k1.token(&a_url, json!({})),
        k2.token(&a_url, json!({})),
    ];
    for token in &accepted {
        assert_eq!(send(raw_get(&url, &[&bearer(token)])).await.status, 200);
    }

    // Refused before any cache lookup (status, error).
    let no_lookup: [(&[&str], u16, Option<&str>); 3] = [
        (&[], 401, None),
        (&["Bearer"], 400, Some("invalid_request")),
        (&["Bearer a", "Bearer b"], 400, Some("invalid_request")),
    ];
    for (authorization, status, error) in no_lookup {
        let outcome = send(raw_get(&url, authorization)).await;
        assert_eq!(
            (outcome.status, outcome.error().as_deref()),
            (status, error)
        );
    }
    // Refused after a cache miss: the `b64token` syntax, then five verified refusals and two
    // for B's missing keys (the second without a fetch, B cooling down).
    let impostor = TestKey::ed25519("k1");
    let unpublished = TestKey::ed25519("k9");
    let after_miss = [
        ("a b".to_owned(), 400, Some("invalid_request")),
        (
            impostor.token(&a_url, json!({})),
            401,
            Some("invalid_token"),
        ),
        (
            k1.token(&a_url, json!({ "exp": now() - 3600 })),
            401,
            Some("invalid_token"),
        ),
        (
            k1.token("https://elsewhere.example", json!({})),
            401,
            Some("invalid_token"),
        ),
        (
            unpublished.token(&a_url, json!({})),
            401,
            Some("invalid_token"),
        ),
        (key_b.token(&b_url, json!({})), 503, None),
        (key_b.token(&b_url, json!({})), 503, None),
    ];
    for (token, status, error) in &after_miss {
        let outcome = send(raw_get(&url, &[&bearer(token)])).await;
        assert_eq!(
            (outcome.status, outcome.error().as_deref()),
            (*status, *error)
        );
    }

    let verification = |outcome: &str, reason: &str| {
        format!("{VERIFICATIONS}{{outcome={outcome},reason={reason}}}")
    };
    let expected: BTreeMap<String, f64> = [
        (verification("accepted", "ok"), 5.0),
        (verification("rejected", "missing_token"), 1.0),
        (verification("rejected", "missing_bearer_token"), 1.0),
        (
            verification("rejected", "multiple_authorization_headers"),
            1.0,
        ),
        (verification("rejected", "bad_syntax"), 1.0),
        (verification("rejected", "bad_signature"), 1.0),
        (verification("rejected", "expired"), 1.0),
        (verification("rejected", "wrong_issuer"), 1.0),
        (verification("rejected", "unknown_key"), 1.0),
        (verification("unavailable", "keys_unavailable"), 2.0),
        (format!("{TOKEN_CACHE}{{result=hit}}"), 2.0),
        // 3 fresh accepted + 7 refused after a lookup.
        (format!("{TOKEN_CACHE}{{result=miss}}"), 10.0),
        // Every miss whose syntax held: 3 accepted, 6 refused.
        (format!("{VERIFICATION_SECONDS}{{}}"), 9.0),
        // A: the first keys, then the unknown `k9`.
        (format!("{JWKS_FETCHES}{{issuer={a_url},result=ok}}"), 2.0),
        (
            format!("{JWKS_FETCHES}{{issuer={b_url},result=error}}"),
            1.0,
        ),
        (format!("{JWKS_KEYS}{{issuer={a_url}}}"), 2.0),
    ]
    .into_iter()
    .collect();
    let all = snapshot(&snapshotter);
    let nonzero: BTreeMap<String, f64> = all
        .iter()
        .filter(|(_, value)| **value != 0.0)
        .map(|(name, value)| (name.clone(), *value))
        .collect();
    assert_eq!(nonzero, expected);
    // Registered at build, so present at zero before anything happens to them.
    for name in [
        verification("anonymous", "missing_token"),
        verification("rejected", "wrong_audience"),
        format!("{JWKS_FETCHES}{{issuer={b_url},result=ok}}"),
        format!("{JWKS_FETCHES}{{issuer={a_url},result=not_modified}}"),
        format!("{JWKS_KEYS}{{issuer={b_url}}}"),
    ] {
        assert_eq!(all.get(&name), Some(&0.0), "{name}");
    }
    assert_eq!((a.fetches(), b.fetches()), (2, 1));
}

#[tokio::test]
async fn an_optional_layer_counts_anonymous_requests_apart() {
    let key = TestKey::ed25519("k1");
    let issuer = JwksServer::start(&[&key]).await;
    let (layer, snapshotter) = build_recorded(&issuer.auth().optional());
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "hello" }))
        .layer(layer);
    let url = format!("http://{}/", serve_router(app).await);
    for authorization in [&[][..], &["Basic dXNlcjpwYXNz"]] {
        assert_eq!(send(raw_get(&url, authorization)).await.status, 200);
    }
    let token = key.token(&issuer.issuer(), json!({}));
    let outcome = send(raw_get(&url, &[&format!("Bearer {token}")])).await;
    assert_eq!(outcome.status, 200);
    let all = snapshot(&snapshotter);
    let count = |outcome: &str, reason: &str| {
        all[&format!("{VERIFICATIONS}{{outcome={outcome},reason={reason}}}")]
    };
    assert_eq!(count("anonymous", "missing_token"), 2.0);
    assert_eq!(count("rejected", "missing_token"), 0.0);
    assert_eq!(count("accepted", "ok"), 1.0);
}

#[tokio::test]
async fn layer_verify_is_counted_like_a_request() {
    let key = TestKey::ed25519("k1");
    let issuer = JwksServer::start(&[&key]).await;
    let (layer, snapshotter) = build_recorded(&issuer.auth());
    let token = key.token(&issuer.issuer(), json!({}));
    assert!(layer.verify(&token).await.is_ok());
    assert!(layer.verify(&token).await.is_ok());
    assert!(layer.verify("x.y.z").await.is_err());
    let all = snapshot(&snapshotter);
    assert_eq!(
        all[&format!("{VERIFICATIONS}{{outcome=accepted,reason=ok}}")],
        2.0
    );
    assert_eq!(
        all[&format!("{VERIFICATIONS}{{outcome=rejected,reason=malformed}}")],
        1.0
    );
    assert_eq!(all[&format!("{TOKEN_CACHE}{{result=hit}}")], 1.0);
    assert_eq!(all[&format!("{TOKEN_CACHE}{{result=miss}}")], 2.0);
    assert_eq!(all[&format!("{VERIFICATION_SECONDS}{{}}")], 2.0);
}

/// Readiness of A (two keys) and B (one key); B answers according to `b_mode`.
async fn two_issuers(b_mode: Mode) -> (JwksServer, JwksServer, AgentAuthLayer) {
    let (k1, k2, kb) = (
        TestKey::ed25519("k1"),
        TestKey::ed25519("k2"),
        TestKey::ed25519("k1"),
    );
    let a = JwksServer::start(&[&k1, &k2]).await;
    let b = JwksServer::start(&[&kb]).await;
    b.set_mode(b_mode);
    let layer = a.auth().issuer(Issuer::new(b.issuer())).build().unwrap();
    (a, b, layer)
}

/// `(issuer, keys, has an age, usable)` per issuer.
fn readiness(layer: &AgentAuthLayer) -> Vec<(String, usize, bool, bool)> {
    let readiness = layer.readiness();
    readiness
        .issuers
        .iter()
        .map(|i| (i.issuer.clone(), i.keys, i.age.is_some(), i.usable))
        .collect()
}

#[tokio::test]
async fn readiness_follows_refresh_keys_per_issuer() {
    let (a, b, layer) = two_issuers(Mode::Serve).await;
    assert!(!layer.readiness().is_ready());
    assert_eq!(
        readiness(&layer),
        [(a.issuer(), 0, false, false), (b.issuer(), 0, false, false)]
    );
    layer.refresh_keys().await.unwrap();
    assert!(layer.readiness().is_ready());
    assert_eq!(
        readiness(&layer),
        [(a.issuer(), 2, true, true), (b.issuer(), 1, true, true)]
    );
    assert_eq!((a.fetches(), b.fetches()), (1, 1));
}

#[tokio::test]
async fn an_issuer_down_from_the_start_is_unusable_and_named_by_refresh_keys() {
    let (a, b, layer) = two_issuers(Mode::Status(500)).await;
    let error = layer.refresh_keys().await.unwrap_err();
    assert_eq!(error.issuer, b.issuer());
    assert!(
        matches!(error.cause, JwksFetchError::Status(status) if status == 500),
        "{:?}",
        error.cause
    );
    assert_eq!(
        error.to_string(),
        format!("JWKS refresh of {} failed", b.issuer())
    );
    assert!(!layer.readiness().is_ready());
    assert_eq!(
        readiness(&layer),
        [(a.issuer(), 2, true, true), (b.issuer(), 0, false, false)]
    );

    // An issuer nobody listens for fails the same way, with the connection error as cause.
    let key = TestKey::ed25519("k1");
    let up = JwksServer::start(&[&key]).await;
    let closed = format!("http://127.0.0.1:{}", refused_port());
    let layer = up.auth().issuer(Issuer::new(&closed)).build().unwrap();
    let error = layer.refresh_keys().await.unwrap_err();
    assert_eq!(error.issuer, closed);
    assert!(
        matches!(error.cause, JwksFetchError::Http(_)),
        "{:?}",
        error.cause
    );
    assert_eq!(
        readiness(&layer),
        [(up.issuer(), 1, true, true), (closed, 0, false, false)]
    );
}

#[tokio::test]
async fn an_issuer_going_down_keeps_its_last_keys_and_is_named_by_refresh_keys() {
    let (a, b, layer) = two_issuers(Mode::Serve).await;
    layer.refresh_keys().await.unwrap();
    b.set_mode(Mode::Status(503));
    let error = layer.refresh_keys().await.unwrap_err();
    assert_eq!(error.issuer, b.issuer());
    // B's last good keys keep verifying (bounded staleness): still ready.
    assert!(layer.readiness().is_ready());
    assert_eq!(
        readiness(&layer),
        [(a.issuer(), 2, true, true), (b.issuer(), 1, true, true)]
    );
    assert_eq!((a.fetches(), b.fetches()), (2, 2));
}

#[tokio::test]
async fn with_every_issuer_down_refresh_keys_names_the_first_configured() {
    let (a, b, layer) = two_issuers(Mode::Status(500)).await;
    a.set_mode(Mode::Status(500));
    let error = layer.refresh_keys().await.unwrap_err();
    assert_eq!(error.issuer, a.issuer());
    // Both were tried all the same.
    assert_eq!((a.fetches(), b.fetches()), (1, 1));
    assert_eq!(
        readiness(&layer),
        [(a.issuer(), 0, false, false), (b.issuer(), 0, false, false)]
    );
}
