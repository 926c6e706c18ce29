//! One layer trusting several issuers (DESIGN §11), over real HTTP: an axum app with the layer
//! on 127.0.0.1:0, and one JWKS server per issuer on 127.0.0.1:0 counting its fetches. Each test
//! checks the exact status and error code, and how many times each issuer was asked for keys.
//!
//! Optional mode, metrics and readiness are in tests/optional_metrics_readiness.rs.

mod support;

use std::time::Duration;

use agent_auth::{AgentAuth, Issuer};
use serde_json::json;
use support::*;

const BAD_SIGNATURE: &str = "signature verification failed";
const UNKNOWN_KEY: &str = "unknown signing key";
const WRONG_ISSUER: &str = "wrong issuer";
const WRONG_AUDIENCE: &str = "wrong audience";

/// `status`, `error` and `error_description` of a response, for one-line comparisons.
fn verdict(outcome: &Outcome) -> (u16, Option<String>, Option<String>) {
    (outcome.status, outcome.error(), outcome.error_description())
}

fn ok() -> (u16, Option<String>, Option<String>) {
    (200, None, None)
}

fn invalid_token(description: &str) -> (u16, Option<String>, Option<String>) {
    (401, Some("invalid_token".into()), Some(description.into()))
}

/// Two issuers, A and B, each publishing its own key under the same `kid` "k1"; the layer
/// trusts both for [`AUDIENCE`].
struct TwoIssuers {
    a: JwksServer,
    b: JwksServer,
    key_a: TestKey,
    key_b: TestKey,
    api: String,
}

impl TwoIssuers {
    async fn start() -> Self {
        let key_a = TestKey::ed25519("k1");
        let key_b = TestKey::ed25519("k1");
        let a = JwksServer::start(&[&key_a]).await;
        let b = JwksServer::start(&[&key_b]).await;
        let layer = a.auth().issuer(Issuer::new(b.issuer())).build().unwrap();
        let api = serve_api(layer).await;
        TwoIssuers {
            a,
            b,
            key_a,
            key_b,
            api,
        }
    }

    async fn get(&self, token: &str) -> Outcome {
        get_with_token(&format!("{}/whoami", self.api), token).await
    }

    fn fetches(&self) -> (usize, usize) {
        (self.a.fetches(), self.b.fetches())
    }
}

#[tokio::test]
async fn a_key_of_one_issuer_never_verifies_a_token_claiming_another_under_the_same_kid() {
    let t = TwoIssuers::start().await;
    let (a, b) = (t.a.issuer(), t.b.issuer());

    // A's key, B's name: checked with B's "k1", which did not sign it.
    let forged = t.key_a.token(&b, json!({}));
    assert_eq!(verdict(&t.get(&forged).await), invalid_token(BAD_SIGNATURE));
    // And the other way round.
    let forged = t.key_b.token(&a, json!({}));
    assert_eq!(verdict(&t.get(&forged).await), invalid_token(BAD_SIGNATURE));
    assert_eq!(t.fetches(), (1, 1), "each issuer's keys fetched once");

    // Each key under its own issuer's name is accepted, and says which issuer vouched.
    for (key, issuer) in [(&t.key_a, &a), (&t.key_b, &b)] {
        let outcome = t.get(&key.token(issuer, json!({}))).await;
        assert_eq!(verdict(&outcome), ok(), "{issuer}");
        assert_eq!(outcome.json()["claims"]["iss"], **issuer);
    }
    // A forged token sent again is still refused: a refusal is never cached as a success.
    let forged = t.key_a.token(&b, json!({}));
    assert_eq!(verdict(&t.get(&forged).await), invalid_token(BAD_SIGNATURE));
    assert_eq!(t.fetches(), (1, 1));
}

#[tokio::test]
async fn a_kid_only_the_other_issuer_publishes_is_unknown_and_fetches_only_the_named_issuer() {
    let key_a = TestKey::ed25519("only-a");
    let key_b = TestKey::ed25519("only-b");
    let a = JwksServer::start(&[&key_a]).await;
    let b = JwksServer::start(&[&key_b]).await;
    let layer = a.auth().issuer(Issuer::new(b.issuer())).build().unwrap();
    let api = serve_api(layer).await;
    let get = |token: String| {
        let url = format!("{api}/whoami");
        async move { get_with_token(&url, &token).await }
    };
    assert_eq!(
        verdict(&get(key_b.token(&b.issuer(), json!({}))).await),
        ok()
    );
    // B's key and kid, A's name: A publishes no "only-b", whatever B does.
    let outcome = get(key_b.token(&a.issuer(), json!({}))).await;
    assert_eq!(verdict(&outcome), invalid_token(UNKNOWN_KEY));
    assert_eq!((a.fetches(), b.fetches()), (1, 1));
}

#[tokio::test]
async fn an_unknown_kid_fetches_only_its_issuers_keys_with_a_cooldown_per_issuer() {
    let t = TwoIssuers::start().await;
    let (a, b) = (t.a.issuer(), t.b.issuer());
    // The first keys of each issuer (a first fetch starts no cooldown).
    assert_eq!(verdict(&t.get(&t.key_a.token(&a, json!({}))).await), ok());
    assert_eq!(verdict(&t.get(&t.key_b.token(&b, json!({}))).await), ok());
    assert_eq!(t.fetches(), (1, 1));

    // An unknown kid on A: A is asked again, B is not.
    let unpublished = TestKey::ed25519("k2");
    let outcome = t.get(&unpublished.token(&a, json!({}))).await;
    assert_eq!(verdict(&outcome), invalid_token(UNKNOWN_KEY));
    assert_eq!(t.fetches(), (2, 1));

    // Another unknown kid on A within A's cooldown (30 s by default): no fetch at all.
    let other = TestKey::ed25519("k3");
    let outcome = t.get(&other.token(&a, json!({}))).await;
    assert_eq!(verdict(&outcome), invalid_token(UNKNOWN_KEY));
    assert_eq!(t.fetches(), (2, 1));

    // B's cooldown is its own: B rotates in a key, and a token under it makes B (only) fetch
    // once, though A is cooling down.
    let rotated = TestKey::ed25519("k2-b");
    t.b.set_keys(&[&t.key_b, &rotated]);
    let outcome = t.get(&rotated.token(&b, json!({}))).await;
    assert_eq!(verdict(&outcome), ok());
    assert_eq!(t.fetches(), (2, 2));

    // Now B is cooling down too: its next unknown kid is refused without a fetch.
    let outcome = t.get(&other.token(&b, json!({}))).await;
    assert_eq!(verdict(&outcome), invalid_token(UNKNOWN_KEY));
    assert_eq!(t.fetches(), (2, 2));
}

#[tokio::test]
async fn an_issuer_that_is_down_does_not_disturb_the_others() {
    let key_a = TestKey::ed25519("k1");
    let key_b = TestKey::ed25519("k1");
    let key_c = TestKey::ed25519("k1");
    let a = JwksServer::start(&[&key_a]).await;
    // B answers 500; C's port refuses connections.
    let b = JwksServer::start(&[&key_b]).await;
    b.set_mode(Mode::Status(500));
    let c = format!("http://127.0.0.1:{}", refused_port());
    let layer = a
        .auth()
        .issuer(Issuer::new(b.issuer()))
        .issuer(Issuer::new(&c))
        .build()
        .unwrap();
    let api = serve_api(layer).await;
    let url = format!("{api}/whoami");

    assert_eq!(
        verdict(&get_with_token(&url, &key_a.token(&a.issuer(), json!({}))).await),
        ok()
    );
    for (key, issuer) in [(&key_b, b.issuer()), (&key_c, c.clone())] {
        for attempt in 0..2 {
            let outcome = get_with_token(&url, &key.token(&issuer, json!({}))).await;
            assert_eq!(outcome.status, 503, "{issuer} attempt {attempt}");
            assert_eq!(outcome.challenge, None, "503 is not a challenge");
            let retry_after = outcome.retry_after_secs();
            assert!((1..=30).contains(&retry_after), "Retry-After {retry_after}");
            // A's tokens, fresh each time, keep passing with A's keys.
            let outcome = get_with_token(&url, &key_a.token(&a.issuer(), json!({}))).await;
            assert_eq!(
                verdict(&outcome),
                ok(),
                "A after {issuer} attempt {attempt}"
            );
        }
    }
    // B was asked once (the second attempt fell in its cooldown); A only for its first keys.
    assert_eq!((a.fetches(), b.fetches()), (1, 1));
}

#[tokio::test]
async fn an_issuer_that_hangs_does_not_hold_up_another_issuers_requests() {
    let key_a = TestKey::ed25519("k1");
    let key_b = TestKey::ed25519("k1");
    let a = JwksServer::start(&[&key_a]).await;
    let b = JwksServer::start(&[&key_b]).await;
    b.set_mode(Mode::Hang);
    let layer = a
        .auth()
        .issuer(Issuer::new(b.issuer()))
        // Far longer than the test: B's request stays pending while A's are answered.
        .http_timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    let api = serve_api(layer).await;
    let url = format!("{api}/whoami");

    let token_b = key_b.token(&b.issuer(), json!({}));
    let pending = tokio::spawn({
        let url = url.clone();
        async move { get_with_token(&url, &token_b).await }
    });
    b.wait_for_fetches(1).await;
    // B's key fetch holds B's fetch lock, not A's: A's first fetch and its tokens go through.
    for _ in 0..3 {
        let outcome = get_with_token(&url, &key_a.token(&a.issuer(), json!({}))).await;
        assert_eq!(verdict(&outcome), ok());
    }
    assert!(!pending.is_finished(), "B's request waits for B's keys");
    pending.abort();
    assert_eq!((a.fetches(), b.fetches()), (1, 1));
}

#[tokio::test]
async fn an_unconfigured_iss_is_refused_without_contacting_anyone() {
    let key_a = TestKey::ed25519("k1");
    let key_b = TestKey::ed25519("k1");
    let key_c = TestKey::ed25519("k1");
    let a = JwksServer::start(&[&key_a]).await;
    let b = JwksServer::start(&[&key_b]).await;
    // C is a working issuer, only not configured.
    let c = JwksServer::start(&[&key_c]).await;
    let layer = a.auth().issuer(Issuer::new(b.issuer())).build().unwrap();
    let counter = layer.clone();
    let api = serve_api(layer).await;
    let url = format!("{api}/whoami");

    let near_misses = [
        key_c.token(&c.issuer(), json!({})),
        // Exact comparison: no trailing-slash, case or scheme leniency.
        key_a.token(&format!("{}/", a.issuer()), json!({})),
        key_a.token(&a.issuer().to_uppercase(), json!({})),
        key_a.token(&a.issuer().replace("http://", "https://"), json!({})),
        key_b.token(&format!("{} ", b.issuer()), json!({})),
    ];
    for token in &near_misses {
        let outcome = get_with_token(&url, token).await;
        assert_eq!(verdict(&outcome), invalid_token(WRONG_ISSUER));
    }
    assert_eq!((a.fetches(), b.fetches(), c.fetches()), (0, 0, 0));
    assert_eq!(counter.key_fetch_count(), 0);
}

#[tokio::test]
async fn each_issuer_is_held_to_its_own_audiences() {
    const AUD_A: &str = "https://api.example.com/a";
    const AUD_B: &str = "https://api.example.com/b";
    let key_a = TestKey::ed25519("k1");
    let key_b = TestKey::ed25519("k1");
    let key_c = TestKey::ed25519("k1");
    let a = JwksServer::start(&[&key_a]).await;
    let b = JwksServer::start(&[&key_b]).await;
    let c = JwksServer::start(&[&key_c]).await;
    // C has no audience of its own: the layer's applies to it, and only to it.
    let layer = AgentAuth::for_issuer(Issuer::new(a.issuer()).audience(AUD_A))
        .issuer(Issuer::new(b.issuer()).audience(AUD_B))
        .issuer(Issuer::new(c.issuer()))
        .audience(AUDIENCE)
        .build()
        .unwrap();
    let api = serve_api(layer).await;
    let url = format!("{api}/whoami");
    let cases = [
        (&key_a, a.issuer(), AUD_A, ok()),
        (&key_b, b.issuer(), AUD_B, ok()),
        (&key_c, c.issuer(), AUDIENCE, ok()),
        // An audience configured only for A, claimed by B (and C).
        (&key_b, b.issuer(), AUD_A, invalid_token(WRONG_AUDIENCE)),
        (&key_c, c.issuer(), AUD_A, invalid_token(WRONG_AUDIENCE)),
        (&key_a, a.issuer(), AUD_B, invalid_token(WRONG_AUDIENCE)),
        // The layer's audience does not apply to issuers that have their own.
        (&key_a, a.issuer(), AUDIENCE, invalid_token(WRONG_AUDIENCE)),
        (&key_b, b.issuer(), AUDIENCE, invalid_token(WRONG_AUDIENCE)),
    ];
    for (key, issuer, audience, expected) in cases {
        let token = key.token(&issuer, json!({ "aud": audience }));
        let outcome = get_with_token(&url, &token).await;
        assert_eq!(verdict(&outcome), expected, "{issuer} claiming {audience}");
        if outcome.status == 200 {
            assert_eq!(outcome.json()["claims"]["aud"], audience);
        }
    }
    // An `aud` array with one value good for B is good for B.
    let token = key_b.token(&b.issuer(), json!({ "aud": [AUD_A, AUD_B] }));
    assert_eq!(verdict(&get_with_token(&url, &token).await), ok());
}
