//! Signature batching over real HTTP: concurrent requests with fresh EdDSA tokens reach the
//! layer together, their signatures are checked as one batch, and every request still gets the
//! verdict it would get alone.
//!
//! The API runs on a runtime of its own (current-thread or multi-thread) on 127.0.0.1:0. An
//! outer middleware holds every request of a wave at a barrier until the whole wave has
//! arrived, so the requests enter the layer together and batches form by construction, not by
//! luck of timing. A failed batch is observable through the crate's `debug` event
//! "signature batch failed; checking one by one" (field `batch`), captured on the API's
//! threads only.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_auth::{Agent, AgentAuthLayer};
use axum::extract::{Request, State};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use futures_util::future::join_all;
use serde_json::{Value, json};
use support::*;
use tokio::sync::{Barrier, oneshot};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt as _};

const BAD_SIGNATURE: &str = "signature verification failed";

#[derive(Clone, Copy, Debug)]
enum Flavor {
    CurrentThread,
    MultiThread,
}

/// Sizes of the failed batches the API reported (a `debug` event per failed batch).
#[derive(Clone, Default)]
struct FailedBatches(Arc<Mutex<Vec<u64>>>);

impl FailedBatches {
    fn sizes(&self) -> Vec<u64> {
        self.0.lock().unwrap().clone()
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for FailedBatches {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        #[derive(Default)]
        struct Fields {
            message: String,
            batch: Option<u64>,
        }
        impl Visit for Fields {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.message = format!("{value:?}");
                }
            }
            fn record_u64(&mut self, field: &Field, value: u64) {
                if field.name() == "batch" {
                    self.batch = Some(value);
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.message.starts_with("signature batch failed") {
            let size = fields.batch.expect("a failed batch reports its size");
            self.0.lock().unwrap().push(size);
        }
    }
}

/// The API behind `auth`, on its own runtime of `flavor`, holding requests until `wave` of
/// them have arrived.
struct Api {
    url: String,
    failed_batches: FailedBatches,
    /// Dropped with the test: the server shuts down.
    _shutdown: oneshot::Sender<()>,
}

async fn whoami(agent: Agent) -> Json<Value> {
    Json(json!({ "agent_id": agent.id() }))
}

async fn gate(State(barrier): State<Arc<Barrier>>, request: Request, next: Next) -> Response {
    barrier.wait().await;
    next.run(request).await
}

async fn serve(flavor: Flavor, auth: &AgentAuthLayer, wave: usize) -> Api {
    // Keys first, so the wave's requests wait for nothing but each other.
    auth.refresh_keys().await.unwrap();
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(auth.clone())
        .layer(from_fn_with_state(Arc::new(Barrier::new(wave)), gate));
    let failed_batches = FailedBatches::default();
    let dispatch =
        tracing::Dispatch::new(tracing_subscriber::registry().with(failed_batches.clone()));
    let (addr_tx, addr_rx) = oneshot::channel();
    let (shutdown, shutdown_rx) = oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut builder = match flavor {
            Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
            Flavor::MultiThread => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                let dispatch = dispatch.clone();
                builder.worker_threads(4).on_thread_start(move || {
                    // The API's worker threads report to this test's collector, for good.
                    std::mem::forget(tracing::dispatcher::set_default(&dispatch));
                });
                builder
            }
        };
        let runtime = builder.enable_all().build().unwrap();
        let _default = tracing::dispatcher::set_default(&dispatch);
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = shutdown_rx.await;
                })
                .await
                .unwrap();
        });
    });
    Api {
        url: format!("http://{}/whoami", addr_rx.await.unwrap()),
        failed_batches,
        _shutdown: shutdown,
    }
}

/// What a request should get.
#[derive(Debug)]
enum Expect {
    /// 200, and the handler saw this agent.
    Agent(String),
    /// 401 `invalid_token` with this `error_description`.
    Refused(&'static str),
}

struct Case {
    token: String,
    expect: Expect,
}

/// How many tokens of each kind a wave carries; every token is distinct and fresh.
#[derive(Default)]
struct Mix {
    valid: usize,
    /// Header, kid and claims intact; one bit of the signature flipped.
    flipped: usize,
    /// Genuine signatures, each moved onto another token's signing input (an even number).
    swapped: usize,
    /// Validly signed, `exp` a minute ago (beyond the 5 s leeway).
    expired: usize,
    /// Validly signed, for another audience.
    wrong_audience: usize,
}

impl Mix {
    fn cases(&self, key: &TestKey, issuer: &str) -> Vec<Case> {
        let mut serial = 0;
        let mut token = |changes: Value| {
            serial += 1;
            let id = format!("agt_batch{serial:04}");
            let mut claims = json!({ "sub": id, "client_id": id });
            let changes = changes.as_object().unwrap().clone();
            claims.as_object_mut().unwrap().extend(changes);
            (key.token(issuer, claims), id)
        };
        let mut cases = Vec::new();
        let mut push = |token, expect| cases.push(Case { token, expect });
        for _ in 0..self.valid {
            let (token, id) = token(json!({}));
            push(token, Expect::Agent(id));
        }
        for n in 0..self.flipped {
            // Alternately a bit of R and a bit of S.
            let byte = if n % 2 == 0 { 5 } else { 40 };
            push(
                flip_signature_bit(&token(json!({})).0, byte),
                Expect::Refused(BAD_SIGNATURE),
            );
        }
        assert!(self.swapped % 2 == 0, "signatures are swapped pairwise");
        for _ in 0..self.swapped / 2 {
            let (first, second) = (token(json!({})).0, token(json!({})).0);
            let (first_input, first_sig) = first.rsplit_once('.').unwrap();
            let (second_input, second_sig) = second.rsplit_once('.').unwrap();
            push(
                format!("{first_input}.{second_sig}"),
                Expect::Refused(BAD_SIGNATURE),
            );
            push(
                format!("{second_input}.{first_sig}"),
                Expect::Refused(BAD_SIGNATURE),
            );
        }
        for _ in 0..self.expired {
            let (token, _) = token(json!({ "exp": now() - 60 }));
            push(token, Expect::Refused("token expired"));
        }
        for _ in 0..self.wrong_audience {
            let (token, _) = token(json!({ "aud": "https://other.example.com/api" }));
            push(token, Expect::Refused("wrong audience"));
        }
        // Spread the refusals through the wave: indices reordered by a stride.
        let len = cases.len();
        let mut indexed: Vec<_> = cases.into_iter().enumerate().collect();
        indexed.sort_by_key(|(i, _)| (i * 37) % len);
        indexed.into_iter().map(|(_, case)| case).collect()
    }
}

/// `token` with bit 0 of signature byte `byte` flipped: same length, same header, wrong.
fn flip_signature_bit(token: &str, byte: usize) -> String {
    use base64::Engine as _;
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(signature)
        .unwrap();
    assert_eq!(bytes.len(), 64, "an Ed25519 signature");
    bytes[byte] ^= 1;
    format!("{input}.{}", b64(bytes))
}

/// Sends every case at once over one client and returns the outcomes in order.
async fn wave(api: &Api, cases: &[Case]) -> Vec<Outcome> {
    let client = client();
    let requests = cases
        .iter()
        .map(|case| send(client.get(&api.url).bearer_auth(&case.token)));
    // A request that never reaches the barrier would hold the others forever: fail instead.
    tokio::time::timeout(Duration::from_secs(60), join_all(requests))
        .await
        .expect("the whole wave was answered")
}

/// Asserts every outcome is exactly what its case expects.
fn assert_verdicts(cases: &[Case], outcomes: &[Outcome]) {
    assert_eq!(cases.len(), outcomes.len());
    for (n, (case, outcome)) in cases.iter().zip(outcomes).enumerate() {
        match &case.expect {
            Expect::Agent(id) => {
                assert_eq!(outcome.status, 200, "request {n}: {outcome:?}");
                assert_eq!(outcome.json()["agent_id"], id.as_str(), "request {n}");
            }
            Expect::Refused(description) => {
                assert_eq!(outcome.status, 401, "request {n}: {outcome:?}");
                assert_eq!(
                    outcome.error().as_deref(),
                    Some("invalid_token"),
                    "request {n}: {outcome:?}"
                );
                assert_eq!(
                    outcome.error_description().as_deref(),
                    Some(*description),
                    "request {n}: {outcome:?}"
                );
            }
        }
    }
}

/// Status, error code, description and agent of each outcome: what two runs must agree on.
fn verdicts(outcomes: &[Outcome]) -> Vec<(u16, Option<String>, Option<String>, Value)> {
    outcomes
        .iter()
        .map(|o| {
            let agent = if o.status == 200 {
                o.json()["agent_id"].clone()
            } else {
                Value::Null
            };
            (o.status, o.error(), o.error_description(), agent)
        })
        .collect()
}

async fn bad_signatures_reject_only_their_own_requests(flavor: Flavor) {
    let ed = TestKey::ed25519("ed-1");
    let jwks = JwksServer::start(&[&ed]).await;
    let cases = Mix {
        valid: 56,
        flipped: 4,
        swapped: 4,
        ..Mix::default()
    }
    .cases(&ed, &jwks.issuer());
    assert_eq!(cases.len(), 64);
    let auth = jwks.auth().build().unwrap();
    let api = serve(flavor, &auth, cases.len()).await;

    assert_verdicts(&cases, &wave(&api, &cases).await);
    // The refusals came out of batches that failed and were checked one by one.
    let failed = api.failed_batches.sizes();
    assert!(
        failed.iter().any(|&size| size >= 2),
        "{flavor:?}: no batch of two or more failed: {failed:?}"
    );
    assert_eq!(jwks.fetches(), 1, "keys fetched once, before the wave");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_in_a_concurrent_wave_reject_only_their_own_requests_current_thread() {
    bad_signatures_reject_only_their_own_requests(Flavor::CurrentThread).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_signatures_in_a_concurrent_wave_reject_only_their_own_requests_multi_thread() {
    bad_signatures_reject_only_their_own_requests(Flavor::MultiThread).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_still_checked_after_a_batch_passes() {
    let ed = TestKey::ed25519("ed-1");
    let jwks = JwksServer::start(&[&ed]).await;
    let mix = Mix {
        valid: 28,
        expired: 2,
        wrong_audience: 2,
        ..Mix::default()
    };
    let cases = mix.cases(&ed, &jwks.issuer());
    let auth = jwks.auth().build().unwrap();
    let api = serve(Flavor::CurrentThread, &auth, cases.len()).await;

    assert_verdicts(&cases, &wave(&api, &cases).await);
    // Every signature was genuine: the batch passed, and the claims decided the refusals.
    assert_eq!(api.failed_batches.sizes(), Vec::<u64>::new());
    assert_eq!(auth.token_cache_usage().unwrap().0, 28);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_off_gives_identical_verdicts() {
    let ed = TestKey::ed25519("ed-1");
    let jwks = JwksServer::start(&[&ed]).await;
    let mix = Mix {
        valid: 40,
        flipped: 3,
        swapped: 4,
        expired: 3,
        wrong_audience: 3,
    };
    let cases = mix.cases(&ed, &jwks.issuer());
    let batched = serve(
        Flavor::CurrentThread,
        &jwks.auth().build().unwrap(),
        cases.len(),
    )
    .await;
    let single = serve(
        Flavor::CurrentThread,
        &jwks.auth().signature_batching(false).build().unwrap(),
        cases.len(),
    )
    .await;

    // The same tokens, fresh to each server.
    let with_batching = wave(&batched, &cases).await;
    let without_batching = wave(&single, &cases).await;
    assert_verdicts(&cases, &with_batching);
    assert_eq!(verdicts(&with_batching), verdicts(&without_batching));
    let statuses = |outcomes: &[Outcome]| outcomes.iter().map(|o| o.status).collect::<Vec<_>>();
    assert_eq!(statuses(&with_batching), statuses(&without_batching));
    // Only the batching server batched.
    assert!(
        !batched.failed_batches.sizes().is_empty(),
        "the batching server formed no failing batch"
    );
    assert_eq!(single.failed_batches.sizes(), Vec::<u64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_verified_in_a_batch_are_cached_and_refused_ones_are_not() {
    let ed = TestKey::ed25519("ed-1");
    let jwks = JwksServer::start(&[&ed]).await;
    let mix = Mix {
        valid: 48,
        flipped: 4,
        swapped: 4,
        expired: 2,
        wrong_audience: 2,
    };
    let cases = mix.cases(&ed, &jwks.issuer());
    let valid = 48;
    let auth = jwks.auth().build().unwrap();
    let api = serve(Flavor::CurrentThread, &auth, cases.len()).await;
    assert_eq!(auth.token_cache_usage(), Some((0, 0)));

    assert_verdicts(&cases, &wave(&api, &cases).await);
    assert!(
        !api.failed_batches.sizes().is_empty(),
        "the fresh wave was batched"
    );
    assert_eq!(
        auth.token_cache_usage().unwrap().0,
        valid,
        "exactly the accepted tokens are cached"
    );

    // Again: the accepted tokens come from the cache, so only the refused ones (still fresh)
    // can reach a batch, and the verdicts do not change.
    let failed_before = api.failed_batches.sizes().len();
    assert_verdicts(&cases, &wave(&api, &cases).await);
    let refused = cases.len() as u64 - valid;
    let again = api.failed_batches.sizes().split_off(failed_before);
    assert!(
        again.iter().all(|&size| size <= refused),
        "a cached token joined a batch: {again:?}"
    );
    assert_eq!(
        auth.token_cache_usage().unwrap().0,
        valid,
        "refused tokens never cached"
    );
    assert_eq!(jwks.fetches(), 1);
}
