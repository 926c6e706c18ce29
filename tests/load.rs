//! Load: the layer on an axum app, and the issuer's token endpoint, under concurrent traffic on
//! a multi-thread runtime for a bounded time, over real HTTP on 127.0.0.1.
//!
//! * Every response is the right one for its token (valid, expired, forged, unknown kid,
//!   garbage), nothing panics, the JWKS is fetched exactly as the cooldown allows, and the heap
//!   (counted by this binary's global allocator) stays bounded.
//! * Every token the issuer mints under load verifies through the middleware, every `jti` is
//!   unique, and the usage counters are exact afterwards.
#![cfg(feature = "issuer")]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agent_auth::AgentAuth;
use agent_auth::issuer::TestIssuer;
use serde_json::{Value, json};
use support::*;
use tokio::task::JoinSet;

// ---------------------------------------------------------------------------------------------
// A counting allocator: live heap bytes of this test binary.
// ---------------------------------------------------------------------------------------------

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as ours.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) };
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as ours.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE_BYTES.fetch_add(
                new_size as isize - layout.size() as isize,
                Ordering::Relaxed,
            );
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_bytes() -> isize {
    LIVE_BYTES.load(Ordering::Relaxed)
}

/// The two tests share the allocator counter: they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---------------------------------------------------------------------------------------------
// The layer under mixed load.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// A valid token from a fixed pool (repeats: the verified-token cache path).
    ValidRepeated,
    /// A valid token minted for this request.
    ValidFresh,
    Expired,
    /// Signed by a key nobody trusts, under the trusted kid.
    Forged,
    /// A kid nobody publishes: each may ask for a refetch (the cooldown decides).
    UnknownKid,
    Garbage,
}

const KINDS: [Kind; 6] = [
    Kind::ValidRepeated,
    Kind::ValidFresh,
    Kind::Expired,
    Kind::Forged,
    Kind::UnknownKid,
    Kind::Garbage,
];

struct Traffic {
    issuer: String,
    key: TestKey,
    forger: TestKey,
    pool: Vec<String>,
    counter: AtomicUsize,
}

impl Traffic {
    fn token(&self, kind: Kind) -> String {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        match kind {
            Kind::ValidRepeated => self.pool[n % self.pool.len()].clone(),
            Kind::ValidFresh => self.key.token(&self.issuer, json!({})),
            Kind::Expired => self.key.token(&self.issuer, json!({ "exp": now() - 120 })),
            Kind::Forged => self.forger.token_with(
                json!({ "alg": "EdDSA", "kid": self.key.kid, "typ": "at+jwt" }),
                agent_claims(&self.issuer, json!({})),
            ),
            Kind::UnknownKid => self.key.token_with(
                json!({ "alg": "EdDSA", "kid": format!("unknown-{n}"), "typ": "at+jwt" }),
                agent_claims(&self.issuer, json!({})),
            ),
            Kind::Garbage => format!("{n}.not.a-token"),
        }
    }
}

/// Checks one answer against its token kind; `None` if right.
fn wrong_answer(kind: Kind, outcome: &Outcome) -> Option<String> {
    let expected = match kind {
        Kind::ValidRepeated | Kind::ValidFresh => None,
        Kind::Expired => Some("token expired"),
        Kind::Forged => Some("signature verification failed"),
        Kind::UnknownKid => Some("unknown signing key"),
        Kind::Garbage => Some("malformed token"),
    };
    let right = match expected {
        None => outcome.status == 200 && outcome.json()["agent_id"] == AGENT_ID,
        Some(description) => {
            outcome.status == 401
                && outcome.error().as_deref() == Some("invalid_token")
                && outcome.error_description().as_deref() == Some(description)
        }
    };
    (!right).then(|| format!("{kind:?}: {outcome:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_layer_under_mixed_concurrent_load_answers_every_request_right() {
    let _serial = SERIAL.lock().await;
    const TASKS: usize = 32;
    // Each task sends every kind of request this many times: a fixed amount of work, so that
    // the verdicts do not depend on how fast the machine is.
    const ROUNDS: usize = 4;
    let cooldown = Duration::from_millis(500);

    let key = TestKey::ed25519("key-1");
    let jwks = JwksServer::start(&[&key]).await;
    let auth = jwks.auth().jwks_refetch_cooldown(cooldown).build().unwrap();
    let url = format!("{}/tickets", serve_api(auth.clone()).await);
    let issuer = jwks.issuer();
    let traffic = Arc::new(Traffic {
        pool: (0..64).map(|_| key.token(&issuer, json!({}))).collect(),
        issuer,
        key,
        forger: TestKey::ed25519("key-1"),
        counter: AtomicUsize::new(0),
    });

    // Warm-up: the first fetch, connections, lazy statics; then the heap baseline.
    let warm = get_with_token(&url, &traffic.token(Kind::ValidRepeated)).await;
    assert!(
        wrong_answer(Kind::ValidRepeated, &warm).is_none(),
        "{warm:?}"
    );
    let started = Instant::now();
    assert_eq!(jwks.fetches(), 1);
    let baseline = live_bytes();

    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        let (traffic, url) = (traffic.clone(), url.clone());
        tasks.spawn(async move {
            let client = client();
            let mut counts = std::collections::HashMap::<Kind, usize>::new();
            let mut wrong = Vec::new();
            for i in task..task + ROUNDS * KINDS.len() {
                let kind = KINDS[i % KINDS.len()];
                let token = traffic.token(kind);
                let outcome = send(
                    client
                        .get(&url)
                        .header("authorization", format!("Bearer {token}")),
                )
                .await;
                if let Some(problem) = wrong_answer(kind, &outcome) {
                    wrong.push(problem);
                }
                *counts.entry(kind).or_default() += 1;
            }
            (counts, wrong)
        });
    }
    let mut totals = std::collections::HashMap::<Kind, usize>::new();
    let mut wrong = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (counts, problems) = joined.expect("no task panicked");
        for (kind, n) in counts {
            *totals.entry(kind).or_default() += n;
        }
        wrong.extend(problems);
    }
    let elapsed = started.elapsed();
    let requests: usize = totals.values().sum();
    println!("{requests} requests in {elapsed:?}: {totals:?}");
    assert!(
        wrong.is_empty(),
        "{} of {requests} wrong answers, e.g. {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    for kind in KINDS {
        assert_eq!(
            totals.get(&kind).copied().unwrap_or(0),
            TASKS * ROUNDS,
            "{kind:?}"
        );
    }

    // Unknown kids arrived all the time, yet the JWKS was fetched at most once per cooldown:
    // the first fetch (warm-up), the one refetch allowed at once after it (it starts the
    // cooldown; the first unknown kid always makes it), then one per cooldown elapsed.
    let fetches = jwks.fetches();
    let allowed = 2 + (elapsed.as_millis() / cooldown.as_millis()) as usize;
    println!("{fetches} JWKS fetches in {elapsed:?} (allowed at most {allowed})");
    assert!(
        (2..=allowed).contains(&fetches),
        "{fetches} JWKS fetches in {elapsed:?} (allowed 2..={allowed})"
    );
    assert_eq!(auth.key_fetch_count(), fetches as u64);

    // Heap: the verified-token cache and connection buffers may hold some memory, bounded; a
    // leak per request (thousands of requests, each a few KB of token and response) would not be.
    let grown = live_bytes() - baseline;
    println!("heap grew by {} KiB over {requests} requests", grown / 1024);
    assert!(
        grown < 16 << 20,
        "heap grew by {grown} bytes over {requests} requests"
    );
}

// ---------------------------------------------------------------------------------------------
// The issuer's token endpoint under concurrent load.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_token_endpoint_under_concurrent_load_issues_valid_tokens_and_counts_exactly() {
    let _serial = SERIAL.lock().await;
    const TASKS: usize = 32;
    const PER_TASK: usize = 25;
    let issuer = TestIssuer::start().await;
    let agent = issuer
        .provision("load", &["tickets:read", "tickets:triage"])
        .await
        .unwrap();
    let second = issuer.admin().add_secret(&agent.id, None).await.unwrap();
    let events_before = issuer
        .admin()
        .events(&Default::default())
        .await
        .unwrap()
        .data
        .len();
    let api = format!(
        "{}/tickets",
        serve_api(AgentAuth::new(&issuer).audience(AUDIENCE).build().unwrap()).await
    );
    let token_endpoint = issuer.token_endpoint().to_owned();

    let mut tasks = JoinSet::new();
    for task in 0..TASKS {
        let secret = if task % 2 == 0 {
            agent.secret.clone()
        } else {
            second.secret.clone()
        };
        let (id, api, token_endpoint) = (agent.id.clone(), api.clone(), token_endpoint.clone());
        tasks.spawn(async move {
            let client = client();
            let form = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &id)
                .append_pair("client_secret", secret.expose())
                .append_pair("resource", AUDIENCE)
                .finish();
            let mut jtis = Vec::new();
            for _ in 0..PER_TASK {
                let response = client
                    .post(&token_endpoint)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                let body: Value = serde_json::from_str(&response.text().await.unwrap()).unwrap();
                let token = body["access_token"].as_str().unwrap().to_owned();
                // Through the middleware, over HTTP, right away.
                let outcome = send(
                    client
                        .get(&api)
                        .header("authorization", format!("Bearer {token}")),
                )
                .await;
                assert_eq!(outcome.status, 200, "{outcome:?}");
                assert_eq!(outcome.json()["agent_id"], id.as_str());
                jtis.push(outcome.json()["jti"].as_str().unwrap().to_owned());
            }
            jtis
        });
    }
    let mut jtis = HashSet::new();
    let mut issued = 0;
    while let Some(joined) = tasks.join_next().await {
        for jti in joined.expect("no task panicked") {
            issued += 1;
            assert!(jtis.insert(jti), "a jti was issued twice");
        }
    }
    assert_eq!(issued, TASKS * PER_TASK);

    let record = issuer.admin().get_agent(&agent.id).await.unwrap();
    assert_eq!(record.token_count, (TASKS * PER_TASK) as u64);
    let verifiers = issuer.admin().list_verifiers(&agent.id).await.unwrap();
    assert_eq!(verifiers.len(), 2);
    for verifier in &verifiers {
        assert_eq!(
            verifier.usage_count,
            (TASKS / 2 * PER_TASK) as u64,
            "{verifier:?}"
        );
    }
    assert_eq!(
        verifiers.iter().map(|v| v.usage_count).sum::<u64>(),
        record.token_count
    );
    // Issuing tokens writes no audit events.
    let events_after = issuer
        .admin()
        .events(&Default::default())
        .await
        .unwrap()
        .data
        .len();
    assert_eq!(events_after, events_before);
}
