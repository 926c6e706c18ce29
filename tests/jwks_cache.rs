//! The JWKS cache the README describes, over real HTTP: a JWKS server on 127.0.0.1:0 that counts its
//! fetches, the tickets API behind the layer, and the issuer failing, hanging, redirecting,
//! rotating keys, sending `Cache-Control`, `ETag`s and oversized documents.
//!
//! Waiting is done on signals (`wait_for_fetches`, join handles). The only sleeps cross a time
//! bound on purpose (a short refetch cooldown, a 1 s freshness or staleness limit); none waits
//! for something to happen.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agent_auth::{AgentAuth, AgentAuthLayer};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};
use support::*;
use tokio::task::JoinSet;

const UNKNOWN_KEY: &str = "unknown signing key";
/// A short refetch cooldown, for the tests that must cross one.
const SHORT_COOLDOWN: Duration = Duration::from_millis(300);
/// Comfortably more than [`SHORT_COOLDOWN`].
const PAST_SHORT_COOLDOWN: Duration = Duration::from_millis(400);
/// How long a test waits for a fetch that must come (seconds after it is due): a guard against
/// hanging, with a margin no loaded machine exhausts, never the verdict on its timing.
const HANG_GUARD: Duration = Duration::from_secs(30);
/// A cooldown that the steps of a test never outrun, however loaded the machine.
const LONG_COOLDOWN: Duration = Duration::from_secs(120);
/// The default unknown-`kid` refetch cooldown (`AgentAuth::jwks_refetch_cooldown`).
const DEFAULT_COOLDOWN_SECS: u64 = 30;

/// A JWKS server publishing `key1`, and the tickets API behind `auth`.
struct Api {
    jwks: JwksServer,
    key1: TestKey,
    auth: AgentAuthLayer,
    url: String,
}

impl Api {
    async fn start(configure: impl FnOnce(AgentAuth) -> AgentAuth) -> Self {
        Self::start_with(|_| {}, configure).await
    }

    /// `prepare` runs on the JWKS server before anything is fetched.
    async fn start_with(
        prepare: impl FnOnce(&JwksServer),
        configure: impl FnOnce(AgentAuth) -> AgentAuth,
    ) -> Self {
        let key1 = TestKey::ed25519("key-1");
        let jwks = JwksServer::start(&[&key1]).await;
        prepare(&jwks);
        let auth = configure(jwks.auth()).build().unwrap();
        let url = serve_api(auth.clone()).await;
        Api {
            jwks,
            key1,
            auth,
            url,
        }
    }

    fn token(&self, key: &TestKey) -> String {
        key.token(&self.jwks.issuer(), json!({}))
    }

    async fn call(&self, token: &str) -> Outcome {
        get_with_token(&format!("{}/tickets", self.url), token).await
    }

    /// Asserts that a `key1` token is accepted.
    async fn assert_key1_accepted(&self, why: &str) {
        assert_accepted(&self.call(&self.token(&self.key1)).await, why);
    }
}

fn assert_accepted(outcome: &Outcome, why: &str) {
    assert_eq!(outcome.status, 200, "{why}: {outcome:?}");
    assert_eq!(outcome.json()["agent_id"], AGENT_ID, "{why}");
}

fn assert_invalid_token(outcome: &Outcome, description: &str, why: &str) {
    assert_eq!(outcome.status, 401, "{why}: {outcome:?}");
    assert_eq!(
        outcome.error().as_deref(),
        Some("invalid_token"),
        "{why}: {outcome:?}"
    );
    assert_eq!(
        outcome.error_description().as_deref(),
        Some(description),
        "{why}: {outcome:?}"
    );
}

/// `503` with a positive whole-seconds `Retry-After` of at most `max_secs`, and no
/// `invalid_token` (the token is not at fault).
fn assert_keys_unavailable(outcome: &Outcome, max_secs: u64, why: &str) {
    assert_eq!(outcome.status, 503, "{why}: {outcome:?}");
    let secs = outcome.retry_after_secs();
    assert!(
        (1..=max_secs).contains(&secs),
        "{why}: Retry-After {secs} not in 1..={max_secs}"
    );
    assert_eq!(outcome.error(), None, "{why}: {outcome:?}");
}

/// A token whose `kid` nobody publishes (random), signed by a key nobody trusts.
fn unknown_kid_token(issuer: &str, signer: &TestKey) -> String {
    let mut bytes = [0u8; 12];
    SystemRandom::new().fill(&mut bytes).unwrap();
    let kid = format!("unknown-{}", b64(bytes));
    signer.token_with(
        json!({ "alg": signer.alg(), "kid": kid, "typ": "at+jwt" }),
        agent_claims(issuer, json!({})),
    )
}

/// Serves `body` as a JSON document at `/jwks.json` in many small chunks, without a
/// `Content-Length` (chunked transfer encoding). Returns the document's URL.
async fn serve_streamed_jwks(body: String) -> String {
    let app = Router::new().route(
        "/jwks.json",
        get(move || {
            let chunks: Vec<Result<Vec<u8>, std::convert::Infallible>> = body
                .as_bytes()
                .chunks(256)
                .map(|c| Ok(c.to_vec()))
                .collect();
            async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    axum::body::Body::from_stream(futures_util::stream::iter(chunks)),
                )
            }
        }),
    );
    format!("http://{}/jwks.json", serve_router(app).await)
}

// ---------------------------------------------------------------------------------------------
// Rotation: new keys, removed keys.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_new_kid_is_accepted_after_exactly_one_refetch() {
    let api = Api::start(|auth| auth.jwks_refetch_cooldown(SHORT_COOLDOWN)).await;
    api.assert_key1_accepted("before rotation").await;
    assert_eq!(api.jwks.fetches(), 1);

    let key2 = TestKey::ed25519("key-2");
    api.jwks.set_keys(&[&api.key1, &key2]);
    // The first fetch started the cooldown; cross it so the new kid may refetch.
    tokio::time::sleep(PAST_SHORT_COOLDOWN).await;
    assert_accepted(&api.call(&api.token(&key2)).await, "new kid");
    assert_eq!(api.jwks.fetches(), 2, "exactly one refetch for the new kid");

    // Both keys now come from the cache.
    assert_accepted(&api.call(&api.token(&key2)).await, "new kid, cached");
    api.assert_key1_accepted("old kid, cached").await;
    assert_eq!(api.jwks.fetches(), 2);
}

#[tokio::test]
async fn an_unknown_kid_within_the_cooldown_is_refused_without_a_fetch() {
    let api = Api::start(|auth| auth).await; // default cooldown: 30 s
    api.assert_key1_accepted("warm").await;
    // An unknown kid: at most one refetch, which starts the cooldown if the first fetch did not.
    let stranger = TestKey::ed25519("stranger");
    assert_invalid_token(
        &api.call(&api.token(&stranger)).await,
        UNKNOWN_KEY,
        "stranger",
    );
    let fetched = api.jwks.fetches();
    assert!(fetched <= 2, "{fetched} fetches");

    let key2 = TestKey::ed25519("key-2");
    api.jwks.set_keys(&[&api.key1, &key2]);
    assert_invalid_token(&api.call(&api.token(&key2)).await, UNKNOWN_KEY, "key2");
    assert_eq!(
        api.jwks.fetches(),
        fetched,
        "no refetch within the cooldown"
    );
    // An explicit refresh is not bound by the cooldown and brings key2 in.
    api.auth.refresh_keys().await.unwrap();
    assert_eq!(api.jwks.fetches(), fetched + 1);
    assert_accepted(&api.call(&api.token(&key2)).await, "key2 after refresh");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_unknown_kids_fetches_at_most_once_per_cooldown() {
    let api = Api::start(|auth| auth).await; // default cooldown: 30 s
    // Warm the cache with an explicit refresh, so the flood itself may trigger its one refetch.
    api.auth.refresh_keys().await.unwrap();
    let initial = api.jwks.fetches();
    assert_eq!(initial, 1);

    let http = client();
    let url = format!("{}/tickets", api.url);
    let attacker = TestKey::ed25519("attacker");
    let valid = api.token(&api.key1);
    let mut tasks = JoinSet::new();
    for i in 0..500 {
        let token = unknown_kid_token(&api.jwks.issuer(), &attacker);
        let request = http.get(&url).bearer_auth(token);
        tasks.spawn(async move { (false, send(request).await) });
        if i % 20 == 0 {
            let request = http.get(&url).bearer_auth(&valid);
            tasks.spawn(async move { (true, send(request).await) });
        }
    }
    let (mut unknown, mut valid_seen) = (0, 0);
    while let Some(joined) = tasks.join_next().await {
        let (is_valid, outcome) = joined.unwrap();
        if is_valid {
            assert_accepted(&outcome, "valid token during the flood");
            valid_seen += 1;
        } else {
            assert_invalid_token(&outcome, UNKNOWN_KEY, "unknown kid in the flood");
            unknown += 1;
        }
    }
    assert_eq!((unknown, valid_seen), (500, 25));
    let after_flood = api.jwks.fetches();
    assert!(
        after_flood <= initial + 1,
        "500 unknown kids caused {} fetches",
        after_flood - initial
    );

    // After the flood: valid tokens still pass, unknown kids are still refused, no new fetch.
    api.assert_key1_accepted("after the flood").await;
    assert_invalid_token(
        &api.call(&unknown_kid_token(&api.jwks.issuer(), &attacker))
            .await,
        UNKNOWN_KEY,
        "unknown kid after the flood",
    );
    assert_eq!(api.jwks.fetches(), after_flood);
    assert_eq!(api.auth.key_fetch_count(), after_flood as u64);
}

#[tokio::test]
async fn a_removed_key_stops_verifying_after_refresh_keys() {
    let api = Api::start(|auth| auth).await;
    let old_token = api.token(&api.key1);
    assert_accepted(&api.call(&old_token).await, "before rotation");

    let key2 = TestKey::ed25519("key-2");
    api.jwks.set_keys(&[&key2]);
    // Still cached until a refresh.
    assert_accepted(&api.call(&old_token).await, "before the refresh");
    api.auth.refresh_keys().await.unwrap();
    assert_eq!(api.jwks.fetches(), 2);

    assert_invalid_token(&api.call(&old_token).await, UNKNOWN_KEY, "removed key");
    assert_accepted(&api.call(&api.token(&key2)).await, "new key");
    assert_eq!(api.jwks.fetches(), 2);
}

#[tokio::test]
async fn a_removed_key_stops_verifying_after_a_refetch_for_the_new_kid() {
    // A cooldown no loaded machine outruns. The first fetch (getting keys at all) does not
    // start it, so the first unknown kid refetches at once.
    let api = Api::start(|auth| auth.jwks_refetch_cooldown(LONG_COOLDOWN)).await;
    let old_token = api.token(&api.key1);
    assert_accepted(&api.call(&old_token).await, "before rotation");

    let key2 = TestKey::ed25519("key-2");
    api.jwks.set_keys(&[&key2]);
    // The key2 token refetches; the new document no longer has key1.
    assert_accepted(&api.call(&api.token(&key2)).await, "new key");
    assert_eq!(api.jwks.fetches(), 2);
    assert_invalid_token(&api.call(&old_token).await, UNKNOWN_KEY, "removed key");
    assert_eq!(
        api.jwks.fetches(),
        2,
        "within the cooldown, no refetch for it"
    );
}

// ---------------------------------------------------------------------------------------------
// The issuer failing after keys were cached: the last good keys keep serving.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_issuer_answering_500_after_caching_does_not_break_valid_requests() {
    let api = Api::start(|auth| auth.jwks_refetch_cooldown(SHORT_COOLDOWN)).await;
    api.assert_key1_accepted("cached").await;
    api.jwks.set_mode(Mode::Status(500));

    api.assert_key1_accepted("issuer failing, no refresh yet")
        .await;
    assert_eq!(api.jwks.fetches(), 1);

    // An explicit refresh fails, and changes nothing for valid tokens.
    assert!(api.auth.refresh_keys().await.is_err());
    assert_eq!(api.jwks.fetches(), 2);
    api.assert_key1_accepted("after a failed refresh_keys")
        .await;

    // An unknown kid (past the cooldown) refetches, fails, and is refused as unknown.
    tokio::time::sleep(PAST_SHORT_COOLDOWN).await;
    let stranger = TestKey::ed25519("stranger");
    assert_invalid_token(
        &api.call(&api.token(&stranger)).await,
        UNKNOWN_KEY,
        "unknown kid while the issuer fails",
    );
    assert_eq!(api.jwks.fetches(), 3, "the unknown kid did try to refetch");
    api.assert_key1_accepted("after a failed on-demand refetch")
        .await;
}

#[tokio::test]
async fn a_hanging_issuer_after_caching_does_not_break_or_delay_valid_requests() {
    // The hang lasts the HTTP timeout: long enough that the steps below, on any machine, run
    // while it is still in flight. The cooldown no loaded machine outruns (the first fetch
    // does not start it: the first unknown kid refetches at once).
    let timeout = Duration::from_secs(2);
    let api = Api::start(|auth| {
        auth.jwks_refetch_cooldown(LONG_COOLDOWN)
            .http_timeout(timeout)
    })
    .await;
    api.assert_key1_accepted("cached").await;
    api.jwks.set_mode(Mode::Hang);

    // An unknown kid starts a refetch that hangs until the HTTP timeout…
    let stranger = TestKey::ed25519("stranger");
    let unknown = {
        let url = format!("{}/tickets", api.url);
        let token = api.token(&stranger);
        tokio::spawn(async move { get_with_token(&url, &token).await })
    };
    api.jwks.wait_for_fetches(2).await;
    // …meanwhile valid requests are answered from the cache without waiting for it.
    api.assert_key1_accepted("while the refetch hangs").await;
    assert!(
        !unknown.is_finished(),
        "the hanging refetch should still be in flight"
    );
    // Another unknown kid meanwhile is refused at once (cooldown), without a second fetch.
    assert_invalid_token(
        &api.call(&api.token(&TestKey::ed25519("other"))).await,
        UNKNOWN_KEY,
        "second unknown kid",
    );
    let outcome = unknown.await.unwrap();
    assert_invalid_token(&outcome, UNKNOWN_KEY, "unknown kid after the timeout");
    assert_eq!(api.jwks.fetches(), 2);

    // An explicit refresh hangs as well; valid requests keep passing meanwhile.
    let refresh = {
        let auth = api.auth.clone();
        tokio::spawn(async move { auth.refresh_keys().await })
    };
    api.jwks.wait_for_fetches(3).await;
    api.assert_key1_accepted("while refresh_keys hangs").await;
    assert!(!refresh.is_finished(), "refresh_keys should still hang");
    assert!(refresh.await.unwrap().is_err(), "refresh_keys times out");
    api.assert_key1_accepted("after the timeouts").await;
}

#[tokio::test]
async fn last_good_keys_keep_serving_past_their_ttl_while_the_issuer_fails() {
    // Fresh for 1 s only, but trusted for up to 24 h (default max stale) when refreshes fail.
    let api = Api::start(|auth| {
        auth.jwks_ttl_bounds(Duration::from_secs(1), Duration::from_secs(1))
            .jwks_refetch_cooldown(SHORT_COOLDOWN)
    })
    .await;
    api.assert_key1_accepted("cached").await;
    let cached_at = Instant::now();
    api.jwks.set_mode(Mode::Status(500));
    // The background refresh at ~0.9 s fails…
    expect_fetches_within(&api.jwks, 2, HANG_GUARD, "background refresh").await;
    // …and once the 1 s freshness is over, the last good keys still verify.
    tokio::time::sleep_until((cached_at + Duration::from_millis(1200)).into()).await;
    api.assert_key1_accepted("stale but within max_stale").await;
}

#[tokio::test]
async fn last_good_keys_expire_after_max_stale() {
    let max_stale = Duration::from_secs(1);
    let api = Api::start(|auth| {
        auth.jwks_ttl_bounds(Duration::from_secs(1), Duration::from_secs(1))
            .jwks_max_stale(max_stale)
            .jwks_refetch_cooldown(SHORT_COOLDOWN)
    })
    .await;
    let token = api.token(&api.key1);
    assert_accepted(&api.call(&token).await, "cached");
    let cached_at = Instant::now();
    api.jwks.set_mode(Mode::Status(500));
    // Cross the staleness bound (the keys were fetched before `cached_at`).
    tokio::time::sleep_until((cached_at + max_stale + Duration::from_millis(200)).into()).await;
    assert_keys_unavailable(&api.call(&token).await, 1, "keys older than max_stale");
    // Once the issuer answers again (and the cooldown allows), keys are fetched anew.
    api.jwks.set_mode(Mode::Serve);
    tokio::time::sleep(PAST_SHORT_COOLDOWN).await;
    assert_accepted(&api.call(&token).await, "issuer back");
}

// ---------------------------------------------------------------------------------------------
// The issuer down from the start: 503 with Retry-After, at most one fetch per cooldown.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn an_issuer_answering_500_from_the_start_gives_503_with_retry_after() {
    let api = Api::start_with(|jwks| jwks.set_mode(Mode::Status(500)), |auth| auth).await;
    let token = api.token(&api.key1);
    assert_keys_unavailable(&api.call(&token).await, DEFAULT_COOLDOWN_SECS, "first");
    assert_eq!(api.jwks.fetches(), 1);
    assert_keys_unavailable(
        &api.call(&token).await,
        DEFAULT_COOLDOWN_SECS,
        "within cooldown",
    );
    assert_eq!(api.jwks.fetches(), 1, "no second fetch within the cooldown");
    assert_eq!(api.auth.key_fetch_count(), 1);
}

#[tokio::test]
async fn an_unreachable_issuer_from_the_start_gives_503_with_retry_after() {
    let issuer = format!("http://127.0.0.1:{}", refused_port());
    let auth = AgentAuth::new(&issuer).audience(AUDIENCE).build().unwrap();
    let url = format!("{}/tickets", serve_api(auth.clone()).await);
    let token = TestKey::ed25519("key-1").token(&issuer, json!({}));

    assert_keys_unavailable(
        &get_with_token(&url, &token).await,
        DEFAULT_COOLDOWN_SECS,
        "first",
    );
    assert_eq!(auth.key_fetch_count(), 1);
    assert_keys_unavailable(
        &get_with_token(&url, &token).await,
        DEFAULT_COOLDOWN_SECS,
        "within cooldown",
    );
    assert_eq!(
        auth.key_fetch_count(),
        1,
        "no second fetch within the cooldown"
    );
}

#[tokio::test]
async fn keys_are_fetched_again_once_the_issuer_is_back_after_the_cooldown() {
    let api = Api::start_with(
        |jwks| jwks.set_mode(Mode::Status(500)),
        |auth| auth.jwks_refetch_cooldown(SHORT_COOLDOWN),
    )
    .await;
    let token = api.token(&api.key1);
    let outcome = api.call(&token).await;
    assert_keys_unavailable(&outcome, 1, "issuer down");
    api.jwks.set_mode(Mode::Serve);
    tokio::time::sleep(PAST_SHORT_COOLDOWN).await;
    assert_accepted(&api.call(&token).await, "issuer back");
    assert!(api.jwks.fetches() >= 2);
}

// ---------------------------------------------------------------------------------------------
// Cache-Control, within bounds; the background refresh.
// ---------------------------------------------------------------------------------------------

/// Waits for the JWKS server to have seen `count` fetches, failing after `within`.
async fn expect_fetches_within(jwks: &JwksServer, count: usize, within: Duration, why: &str) {
    if tokio::time::timeout(within, jwks.wait_for_fetches(count))
        .await
        .is_err()
    {
        panic!(
            "{why}: expected {count} JWKS fetches within {within:?}, saw {}",
            jwks.fetches()
        );
    }
}

#[tokio::test]
async fn the_background_task_refreshes_when_max_age_runs_out() {
    // Default cooldown (30 s); freshness from Cache-Control: 1 s, allowed by the bounds.
    let api = Api::start_with(
        |jwks| jwks.set_cache_control(Some("max-age=1")),
        |auth| auth.jwks_ttl_bounds(Duration::from_secs(1), Duration::from_secs(3600)),
    )
    .await;
    api.assert_key1_accepted("first request fetches").await;
    assert_eq!(api.jwks.fetches(), 1);
    // No further request: the background task must refresh on its own, about every 0.9 s.
    expect_fetches_within(
        &api.jwks,
        3,
        HANG_GUARD,
        "background refresh after max-age=1",
    )
    .await;
    api.assert_key1_accepted("after background refreshes").await;
}

#[tokio::test]
async fn the_background_task_refreshes_when_max_age_runs_out_after_a_warm_start() {
    // Keys warmed with refresh_keys() before the first request (which starts the task).
    let api = Api::start_with(
        |jwks| jwks.set_cache_control(Some("max-age=1")),
        |auth| auth.jwks_ttl_bounds(Duration::from_secs(1), Duration::from_secs(3600)),
    )
    .await;
    api.auth.refresh_keys().await.unwrap();
    api.assert_key1_accepted("cached").await;
    assert_eq!(api.jwks.fetches(), 1);
    expect_fetches_within(
        &api.jwks,
        3,
        HANG_GUARD,
        "background refresh after max-age=1",
    )
    .await;
    api.assert_key1_accepted("after background refreshes").await;
}

#[tokio::test]
async fn a_max_age_above_the_upper_bound_is_clamped() {
    // max-age=3600, but at most 1 s: a background refetch still comes about a second later.
    let api = Api::start_with(
        |jwks| jwks.set_cache_control(Some("public, max-age=3600")),
        |auth| auth.jwks_ttl_bounds(Duration::from_secs(1), Duration::from_secs(1)),
    )
    .await;
    api.auth.refresh_keys().await.unwrap();
    api.assert_key1_accepted("cached").await;
    expect_fetches_within(&api.jwks, 2, HANG_GUARD, "max-age clamped to 1 s").await;
    api.assert_key1_accepted("after the refetch").await;
}

#[tokio::test]
async fn a_max_age_below_the_lower_bound_is_raised() {
    // max-age=1 but at least 2 s: the background refetch comes at ~1.8 s, not ~0.9 s.
    let api = Api::start_with(
        |jwks| jwks.set_cache_control(Some("max-age=1")),
        |auth| auth.jwks_ttl_bounds(Duration::from_secs(2), Duration::from_secs(3600)),
    )
    .await;
    api.auth.refresh_keys().await.unwrap();
    let fetched_at = Instant::now();
    api.assert_key1_accepted("cached").await;
    expect_fetches_within(&api.jwks, 2, HANG_GUARD, "refetch").await;
    let elapsed = fetched_at.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1500),
        "refetched after {elapsed:?}, before the 2 s lower bound (less 10 %)"
    );
}

// ---------------------------------------------------------------------------------------------
// ETag revalidation.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn refreshes_revalidate_with_if_none_match_and_keep_the_keys_on_304() {
    let api = Api::start_with(|jwks| jwks.set_etag(Some("\"v1\"")), |auth| auth).await;
    api.assert_key1_accepted("first fetch").await;
    assert_eq!((api.jwks.fetches(), api.jwks.not_modified()), (1, 0));

    api.auth.refresh_keys().await.unwrap();
    assert_eq!(
        (api.jwks.fetches(), api.jwks.not_modified()),
        (2, 1),
        "the refresh sent If-None-Match: \"v1\" and got 304"
    );
    api.assert_key1_accepted("keys kept after 304").await;
    api.auth.refresh_keys().await.unwrap();
    assert_eq!(api.jwks.not_modified(), 2, "a second 304 after a 304");
    api.assert_key1_accepted("keys kept after two 304s").await;

    // A changed document with a new ETag is fetched in full and used.
    let key2 = TestKey::ed25519("key-2");
    api.jwks.set_keys(&[&api.key1, &key2]);
    api.jwks.set_etag(Some("\"v2\""));
    api.auth.refresh_keys().await.unwrap();
    assert_eq!((api.jwks.fetches(), api.jwks.not_modified()), (4, 2));
    assert_accepted(
        &api.call(&api.token(&key2)).await,
        "key2 from the v2 document",
    );
    api.auth.refresh_keys().await.unwrap();
    assert_eq!(
        api.jwks.not_modified(),
        3,
        "now revalidating against \"v2\""
    );
    assert_accepted(&api.call(&api.token(&key2)).await, "key2 after 304");
}

// ---------------------------------------------------------------------------------------------
// Response size limit.
// ---------------------------------------------------------------------------------------------

const SMALL_LIMIT: usize = 2048;

fn padded_document(key: &TestKey) -> Value {
    json!({ "keys": [key.jwk()], "padding": "x".repeat(4 * SMALL_LIMIT) })
}

#[tokio::test]
async fn a_small_document_is_used_under_a_small_size_limit() {
    let api = Api::start(|auth| auth.jwks_max_bytes(SMALL_LIMIT)).await;
    api.assert_key1_accepted("small document").await;
}

#[tokio::test]
async fn an_oversized_document_is_never_used() {
    let api = Api::start(|auth| auth.jwks_max_bytes(SMALL_LIMIT)).await;
    // The document carries key1 but is too large, so nothing is usable.
    api.jwks.set_document(padded_document(&api.key1));
    let outcome = api.call(&api.token(&api.key1)).await;
    assert_keys_unavailable(&outcome, DEFAULT_COOLDOWN_SECS, "oversized JWKS");
    assert_eq!(api.jwks.fetches(), 1);
}

#[tokio::test]
async fn an_oversized_document_without_content_length_is_never_used() {
    let key1 = TestKey::ed25519("key-1");
    let body = padded_document(&key1).to_string();
    assert!(body.len() > SMALL_LIMIT);
    let jwks_uri = serve_streamed_jwks(body).await;
    // The document really is streamed without a length, and really is a valid JWKS.
    let response = client().get(&jwks_uri).send().await.unwrap();
    assert_eq!(response.content_length(), None);
    let document: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
    assert_eq!(document["keys"][0]["kid"], "key-1");

    let issuer = "https://issuer.example.com";
    let limited = AgentAuth::new(issuer)
        .audience(AUDIENCE)
        .jwks_uri(&jwks_uri)
        .jwks_max_bytes(SMALL_LIMIT)
        .build()
        .unwrap();
    let url = serve_api(limited).await;
    let token = key1.token(issuer, json!({}));
    assert_keys_unavailable(
        &get_with_token(&format!("{url}/tickets"), &token).await,
        DEFAULT_COOLDOWN_SECS,
        "streamed oversized JWKS",
    );

    // The same stream under the default limit is fine.
    let unlimited = AgentAuth::new(issuer)
        .audience(AUDIENCE)
        .jwks_uri(&jwks_uri)
        .build()
        .unwrap();
    let url = serve_api(unlimited).await;
    assert_accepted(
        &get_with_token(&format!("{url}/tickets"), &token).await,
        "default limit",
    );
}

#[tokio::test]
async fn an_oversized_refresh_keeps_the_last_good_keys() {
    let api = Api::start(|auth| auth.jwks_max_bytes(SMALL_LIMIT)).await;
    api.assert_key1_accepted("small document").await;
    let key2 = TestKey::ed25519("key-2");
    api.jwks.set_document(padded_document(&key2));
    assert!(api.auth.refresh_keys().await.is_err(), "too large");
    assert_eq!(api.jwks.fetches(), 2);
    api.assert_key1_accepted("last good keys").await;
    assert_invalid_token(
        &api.call(&api.token(&key2)).await,
        UNKNOWN_KEY,
        "key only in the oversized document",
    );
}

// ---------------------------------------------------------------------------------------------
// Unusable JWKs, redirects.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn garbage_and_symmetric_jwks_are_skipped_and_the_good_key_verifies() {
    let api = Api::start(|auth| auth).await;
    api.jwks.set_document(json!({ "keys": [
        { "kty": "EC", "crv": "P-256", "kid": "garbage", "x": "not base64!", "y": 42 },
        { "kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ", "alg": "HS256" },
        api.key1.jwk(),
    ] }));
    api.assert_key1_accepted("good key next to bad ones").await;
    assert_eq!(api.jwks.fetches(), 1);
    // The skipped keys are not there: tokens naming them are refused as unknown.
    for kid in ["garbage", "hmac"] {
        let signer = TestKey::ed25519(kid);
        assert_invalid_token(&api.call(&api.token(&signer)).await, UNKNOWN_KEY, kid);
    }
}

#[tokio::test]
async fn redirects_from_the_jwks_uri_are_not_followed() {
    let key1 = TestKey::ed25519("key-1");
    let target = JwksServer::start(&[&key1]).await;
    let hits = Arc::new(AtomicUsize::new(0));
    let redirect = {
        let hits = hits.clone();
        let location = format!("{}/jwks.json", target.issuer());
        let app = Router::new().route(
            "/jwks.json",
            get(move || {
                hits.fetch_add(1, Ordering::SeqCst);
                let location = location.clone();
                async move { (StatusCode::FOUND, [(header::LOCATION, location)]).into_response() }
            }),
        );
        serve_router(app).await
    };
    let auth = target
        .auth()
        .jwks_uri(format!("http://{redirect}/jwks.json"))
        .build()
        .unwrap();
    let url = serve_api(auth).await;
    let token = key1.token(&target.issuer(), json!({}));
    assert_keys_unavailable(
        &get_with_token(&format!("{url}/tickets"), &token).await,
        DEFAULT_COOLDOWN_SECS,
        "redirected JWKS",
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the JWKS URI was asked");
    assert_eq!(target.fetches(), 0, "the redirect was not followed");

    // The redirect target itself serves good keys.
    let direct = serve_api(target.auth().build().unwrap()).await;
    assert_accepted(
        &get_with_token(&format!("{direct}/tickets"), &token).await,
        "direct",
    );
}

// ---------------------------------------------------------------------------------------------
// Where the keys come from: discovery, jwks_uri; clones share the cache.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn discovery_finds_the_jwks_uri_in_rfc8414_metadata() {
    let key1 = TestKey::ed25519("key-1");
    let jwks = JwksServer::start(&[&key1]).await;
    let auth = AgentAuth::new(jwks.issuer())
        .audience(AUDIENCE)
        .discover()
        .build()
        .unwrap();
    let url = serve_api(auth.clone()).await;
    let token = key1.token(&jwks.issuer(), json!({}));
    assert_accepted(
        &get_with_token(&format!("{url}/tickets"), &token).await,
        "discovered",
    );
    assert_eq!(jwks.fetches(), 1);
    assert_eq!(auth.key_fetch_count(), 2, "metadata, then the JWKS");
    assert_accepted(
        &get_with_token(&format!("{url}/tickets"), &token).await,
        "cached",
    );
    assert_eq!(auth.key_fetch_count(), 2);
}

#[tokio::test]
async fn discovery_uses_the_jwks_uri_the_metadata_names() {
    // The issuer serves only metadata; its jwks_uri points at another server.
    let key1 = TestKey::ed25519("key-1");
    let keys = JwksServer::start(&[&key1]).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let metadata = json!({
        "issuer": issuer,
        "jwks_uri": format!("{}/jwks.json", keys.issuer()),
    });
    let app = Router::new().route(
        "/.well-known/oauth-authorization-server",
        get(move || {
            let metadata = metadata.clone();
            async move { axum::Json(metadata) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let url = serve_api(
        AgentAuth::new(&issuer)
            .audience(AUDIENCE)
            .discover()
            .build()
            .unwrap(),
    )
    .await;
    let token = key1.token(&issuer, json!({}));
    assert_accepted(
        &get_with_token(&format!("{url}/tickets"), &token).await,
        "discovered",
    );
    assert_eq!(keys.fetches(), 1);
}

#[tokio::test]
async fn discovery_refuses_metadata_for_another_issuer() {
    let key1 = TestKey::ed25519("key-1");
    let jwks = JwksServer::start(&[&key1]).await;
    // The metadata names another issuer (and a JWKS that would hold key1 on this server).
    jwks.set_metadata_issuer(&format!("http://{}/other-tenant", jwks.addr));
    let auth = AgentAuth::new(jwks.issuer())
        .audience(AUDIENCE)
        .discover()
        .build()
        .unwrap();
    let url = serve_api(auth.clone()).await;
    let token = key1.token(&jwks.issuer(), json!({}));
    assert_keys_unavailable(
        &get_with_token(&format!("{url}/tickets"), &token).await,
        DEFAULT_COOLDOWN_SECS,
        "mismatched metadata",
    );
    assert_eq!(jwks.fetches(), 0, "no JWKS fetched from untrusted metadata");
    assert_eq!(auth.key_fetch_count(), 1, "only the metadata");
}

#[tokio::test]
async fn clones_of_the_layer_share_one_cache() {
    let key1 = TestKey::ed25519("key-1");
    let jwks = JwksServer::start(&[&key1]).await;
    let auth = jwks.auth().build().unwrap();
    let first = serve_api(auth.clone()).await;
    let second = serve_api(auth.clone()).await;
    let token = key1.token(&jwks.issuer(), json!({}));
    for url in [&first, &second, &first, &second] {
        assert_accepted(
            &get_with_token(&format!("{url}/tickets"), &token).await,
            url,
        );
    }
    assert_eq!(jwks.fetches(), 1, "one fetch for both routers");
    assert_eq!(auth.key_fetch_count(), 1);
    assert_eq!(auth.clone().key_fetch_count(), 1);
}

#[tokio::test]
async fn a_configured_jwks_uri_is_used_instead_of_the_issuer_default() {
    let key1 = TestKey::ed25519("key-1");
    // The issuer's own /jwks.json has no keys; the configured URI has key1.
    let issuer = JwksServer::start(&[]).await;
    let elsewhere = JwksServer::start(&[&key1]).await;
    let auth = issuer
        .auth()
        .jwks_uri(format!("{}/jwks.json", elsewhere.issuer()))
        .build()
        .unwrap();
    let url = serve_api(auth).await;
    let token = key1.token(&issuer.issuer(), json!({}));
    assert_accepted(
        &get_with_token(&format!("{url}/tickets"), &token).await,
        "configured jwks_uri",
    );
    assert_eq!(elsewhere.fetches(), 1);
    assert_eq!(issuer.fetches(), 0, "the default location is never asked");
}

#[tokio::test]
async fn a_key_published_right_after_start_up_does_not_wait_out_a_cooldown() {
    // The first fetch gets the first keys; it is not a refetch, so the first unknown kid
    // after it may fetch once (and only once) at once.
    let key1 = TestKey::ed25519("key-1");
    let jwks = JwksServer::start(&[&key1]).await;
    let api = serve_api(jwks.auth().build().unwrap()).await;
    let url = format!("{api}/tickets");
    assert_eq!(
        get_with_token(&url, &key1.token(&jwks.issuer(), serde_json::json!({})))
            .await
            .status,
        200
    );
    let key2 = TestKey::ed25519("key-2");
    jwks.set_keys(&[&key1, &key2]);
    assert_eq!(
        get_with_token(&url, &key2.token(&jwks.issuer(), serde_json::json!({})))
            .await
            .status,
        200
    );
    assert_eq!(jwks.fetches(), 2);
    // That refetch starts the cooldown: a third kid is refused without a fetch.
    let key3 = TestKey::ed25519("key-3");
    jwks.set_keys(&[&key1, &key2, &key3]);
    let outcome = get_with_token(&url, &key3.token(&jwks.issuer(), serde_json::json!({}))).await;
    assert_eq!(outcome.status, 401);
    assert_eq!(jwks.fetches(), 2);
}
