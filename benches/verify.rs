//! The verification path against its limits, side by side in one run:
//!
//! * `verify`: bare aws-lc-rs Ed25519 verify of a token's signing input (the limit), the same
//!   signature under our rule alone (ed25519-zebra's cofactored check on a decoded key, what the
//!   cold path pays for the signature), our cold verify of the full agent token (token cache
//!   off), and a verified-token cache hit.
//! * Cold / bare interleaved (printed, full runs only): 21 rounds that each time a block of bare
//!   verifies and a block of cold verifies back to back (alternating which goes first), and the
//!   median of the rounds' ratios: criterion measures one function after the other, so a change
//!   of load on a shared machine between them moves its ratio; here both meet the same load.
//! * `scaling_keys`: cold verify with 1, 10, 100, 1,000 keys in the JWKS.
//! * `scaling_cached`: cache hits with 1, 1k, 100k distinct tokens cached.
//! * Memory (printed, full runs only): bytes per cached token, counted by a global allocator,
//!   and the cache's bound holding under 1,000,000 distinct tokens.
//!
//! `cargo bench --bench verify`; `-- --test` runs each once (CI smoke).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use agent_auth::{AgentAuth, AgentAuthLayer};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as lc, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BenchmarkId, Criterion, criterion_group};
use futures_util::FutureExt as _;
use serde_json::{Value, json};

/// Counts live heap bytes, for bytes-per-cached-token.
struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE_BYTES.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const AUDIENCE: &str = "https://api.example.com/tickets";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

struct Issuer {
    runtime: tokio::runtime::Runtime,
    url: String,
    keys: Vec<lc::Ed25519KeyPair>,
}

impl Issuer {
    /// A JWKS server on 127.0.0.1:0 publishing `key_count` Ed25519 keys (`k0`, `k1`, …).
    fn start(key_count: usize) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let keys: Vec<_> = (0..key_count)
            .map(|_| {
                let pkcs8 = lc::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
                lc::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
            })
            .collect();
        let jwks: Value = json!({ "keys": keys.iter().enumerate().map(|(i, key)| json!({
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": format!("k{i}"),
            "x": b64(key.public_key().as_ref()),
        })).collect::<Vec<_>>() });
        let url = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let app = axum::Router::new().route(
                "/jwks.json",
                axum::routing::get(move || {
                    let jwks = jwks.clone();
                    async move { axum::Json(jwks) }
                }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            url
        });
        Issuer { runtime, url, keys }
    }

    /// The signing input and full token of an agent token signed by key `index`.
    fn token(&self, index: usize, jti: usize) -> (String, String) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = json!({ "alg": "EdDSA", "kid": format!("k{index}"), "typ": "at+jwt" });
        let claims = json!({
            "iss": self.url, "sub": "agt_7c1de2f3a4b5c6d7e8f9a0b1c2d3e4f5", "aud": AUDIENCE,
            "exp": now + 3600, "iat": now, "jti": format!("{jti:032x}"),
            "client_id": "agt_7c1de2f3a4b5c6d7e8f9a0b1c2d3e4f5",
            "scope": "tickets:read tickets:triage", "dat": { "type": "agent" },
        });
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let token = format!("{input}.{}", b64(self.keys[index].sign(input.as_bytes())));
        (input, token)
    }

    /// A warmed-up layer configuration (keys fetched).
    fn auth(&self, configure: impl FnOnce(AgentAuth) -> AgentAuth) -> AgentAuthLayer {
        let auth = configure(AgentAuth::new(&self.url).audience(AUDIENCE))
            .build()
            .unwrap();
        let (_, token) = self.token(0, usize::MAX);
        self.runtime
            .block_on(auth.verify(&token))
            .expect("verifies");
        auth
    }
}

/// Verification without I/O completes on its first poll; anything else is a bench bug.
fn verify_now(auth: &AgentAuthLayer, token: &str) -> agent_auth::Agent {
    auth.verify(token)
        .now_or_never()
        .expect("keys are cached: no await")
        .expect("token verifies")
}

fn verify(c: &mut Criterion) {
    let issuer = Issuer::start(1);
    let (input, token) = issuer.token(0, 1);
    let signature = URL_SAFE_NO_PAD
        .decode(token.rsplit('.').next().unwrap())
        .unwrap();
    let public = issuer.keys[0].public_key().as_ref().to_vec();
    let cold = issuer.auth(AgentAuth::no_token_cache);
    let cached = issuer.auth(|auth| auth);
    verify_now(&cached, &token);

    let mut group = c.benchmark_group("verify");
    group.bench_function("bare_ed25519", |b| {
        b.iter(|| {
            lc::UnparsedPublicKey::new(&lc::ED25519, black_box(&public))
                .verify(black_box(input.as_bytes()), black_box(&signature))
                .unwrap()
        })
    });
    let zebra_key =
        ed25519_zebra::VerificationKey::try_from(<[u8; 32]>::try_from(public.as_slice()).unwrap())
            .unwrap();
    let zebra_signature =
        ed25519_zebra::Signature::from_bytes(&<[u8; 64]>::try_from(signature.as_slice()).unwrap());
    group.bench_function("our_rule_ed25519", |b| {
        b.iter(|| {
            black_box(&zebra_key)
                .verify(black_box(&zebra_signature), black_box(input.as_bytes()))
                .unwrap()
        })
    });
    group.bench_function("cold", |b| b.iter(|| verify_now(&cold, black_box(&token))));
    if !smoke_only() {
        interleaved_cold_over_bare(&public, &input, &signature, &cold, &token);
    }
    group.bench_function("cached", |b| {
        b.iter(|| verify_now(&cached, black_box(&token)))
    });
    // 32 fresh tokens verified concurrently on one thread: one signature batch (cache off, so
    // every iteration verifies them again). Divide by 32 for a token.
    let tokens: Vec<String> = (0..BATCH).map(|jti| issuer.token(0, jti + 1).1).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    group.bench_function("cold_batch_of_32", |b| {
        b.iter(|| {
            let verdicts = runtime.block_on(futures_util::future::join_all(
                tokens.iter().map(|token| cold.verify(black_box(token))),
            ));
            assert!(verdicts.iter().all(Result::is_ok));
        })
    });
    group.finish();
}

/// Fresh tokens verified together in `verify/cold_batch_of_32`.
const BATCH: usize = 32;

fn scaling_keys(c: &mut Criterion) {
    let mut group = c.benchmark_group("scaling_keys");
    for keys in [1usize, 10, 100, 1000] {
        let issuer = Issuer::start(keys);
        let cold = issuer.auth(|auth| auth.no_token_cache());
        let (_, token) = issuer.token(keys - 1, 1);
        group.bench_with_input(BenchmarkId::from_parameter(keys), &token, |b, token| {
            b.iter(|| verify_now(&cold, black_box(token)))
        });
    }
    group.finish();
}

fn smoke_only() -> bool {
    std::env::args().any(|arg| arg == "--test")
}

fn scaling_cached(c: &mut Criterion) {
    let issuer = Issuer::start(1);
    let mut group = c.benchmark_group("scaling_cached");
    let sizes: &[usize] = if smoke_only() {
        &[1, 1000]
    } else {
        &[1, 1000, 100_000]
    };
    for &cached in sizes {
        let auth = issuer.auth(|auth| auth.token_cache(cached as u64 + 10, 1 << 30));
        let tokens: Vec<String> = (0..cached).map(|i| issuer.token(0, i).1).collect();
        for token in &tokens {
            verify_now(&auth, token);
        }
        let probe = &tokens[cached / 2];
        group.bench_with_input(BenchmarkId::from_parameter(cached), probe, |b, token| {
            b.iter(|| verify_now(&auth, black_box(token)))
        });
    }
    group.finish();
}

/// Bytes per cached token and the bound under 1,000,000 distinct tokens (printed).
fn memory() {
    let issuer = Issuer::start(1);
    let (count, distinct) = if smoke_only() {
        (1_000, 5_000)
    } else {
        (10_000, 1_000_000)
    };
    let tokens: Vec<String> = (0..count).map(|i| issuer.token(0, i).1).collect();
    let auth = issuer.auth(|auth| auth.token_cache(count as u64 * 2, 1 << 32));
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    for token in &tokens {
        verify_now(&auth, token);
    }
    let (entries, _) = auth.token_cache_usage().unwrap();
    let after = LIVE_BYTES.load(Ordering::Relaxed);
    let per_token = (after - before) as f64 / entries as f64;
    println!(
        "memory: {entries} cached tokens of {} bytes: {per_token:.0} heap bytes per cached token",
        tokens[0].len(),
    );

    let bound = 10_000u64;
    let bounded = issuer.auth(|auth| auth.token_cache(bound, 1 << 32));
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    let mut max_entries = 0;
    for i in 0..distinct {
        // Build, verify and drop each token so only the cache holds memory.
        let (_, token) = issuer.token(0, 10_000_000 + i);
        verify_now(&bounded, &token);
        if i % 50_000 == 0 || i + 1 == distinct {
            max_entries = max_entries.max(bounded.token_cache_usage().unwrap().0);
        }
    }
    let held = LIVE_BYTES.load(Ordering::Relaxed) - before;
    println!(
        "memory: {distinct} distinct tokens through a {bound}-entry cache: at most {max_entries} entries seen, {:.1} MiB held at the end",
        held as f64 / (1024.0 * 1024.0)
    );
    assert!(max_entries <= bound, "cache exceeded its bound");
}

/// The tower stack per request, without HTTP: the handler alone, behind `AgentAuth` (cache
/// hit), and behind `AgentAuth` + `RequireScopes`.
fn layer(c: &mut Criterion) {
    use tower::{Layer as _, Service as _, ServiceExt as _};
    let issuer = Issuer::start(1);
    let (_, token) = issuer.token(0, 1);
    let auth = issuer.auth(|auth| auth);
    let handler = tower::service_fn(|_request: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
    });
    let request = || {
        http::Request::builder()
            .uri("/tickets")
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap()
    };
    let mut group = c.benchmark_group("layer");
    group.bench_function("handler_only", |b| {
        b.iter_batched(
            request,
            |req| handler.oneshot(req).now_or_never().unwrap().unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    let authed = auth.layer(handler);
    group.bench_function("agent_auth_cached", |b| {
        b.iter_batched(
            request,
            |req| authed.clone().oneshot(req).now_or_never().unwrap().unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    let scoped = auth.layer(agent_auth::RequireScopes::all(["tickets:read"]).layer(handler));
    group.bench_function("agent_auth_cached_and_scopes", |b| {
        b.iter_batched(
            request,
            |req| {
                let mut service = scoped.clone();
                service.call(req).now_or_never().unwrap().unwrap()
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, verify, scaling_keys, scaling_cached, layer);

/// Criterion's median for `group/bench` of this run, in nanoseconds.
fn median_ns(group: &str, bench: &str) -> Option<f64> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/criterion")
        .join(group)
        .join(bench)
        .join("new/estimates.json");
    let estimates: Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

/// The ratio table of BENCHMARKS.md, from this run's medians.
/// Cold over bare with both measured in the same rounds (see the module doc); printed.
fn interleaved_cold_over_bare(
    public: &[u8],
    input: &str,
    signature: &[u8],
    cold: &AgentAuthLayer,
    token: &str,
) {
    const ROUNDS: usize = 21;
    const BLOCK: u32 = 300;
    let bare = || {
        let start = std::time::Instant::now();
        for _ in 0..BLOCK {
            lc::UnparsedPublicKey::new(&lc::ED25519, black_box(public))
                .verify(black_box(input.as_bytes()), black_box(signature))
                .unwrap();
        }
        start.elapsed().as_secs_f64()
    };
    let full = || {
        let start = std::time::Instant::now();
        for _ in 0..BLOCK {
            black_box(verify_now(cold, black_box(token)));
        }
        start.elapsed().as_secs_f64()
    };
    let mut ratios: Vec<f64> = (0..ROUNDS)
        .map(|round| {
            let (b, c) = if round % 2 == 0 {
                let b = bare();
                (b, full())
            } else {
                let c = full();
                (bare(), c)
            };
            c / b
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    INTERLEAVED.with(|cell| {
        cell.set(Some((ratios[ROUNDS / 2], ratios[0], ratios[ROUNDS - 1])));
    });
}

thread_local! {
    /// Median, lowest and highest round of [`interleaved_cold_over_bare`].
    static INTERLEAVED: std::cell::Cell<Option<(f64, f64, f64)>> = const { std::cell::Cell::new(None) };
}

fn ratios() {
    let (Some(bare), Some(cold), Some(cached)) = (
        median_ns("verify", "bare_ed25519"),
        median_ns("verify", "cold"),
        median_ns("verify", "cached"),
    ) else {
        return;
    };
    println!("| measurement (medians, this run) | value | target |");
    println!("|---|---:|---|");
    println!(
        "| bare Ed25519 verify (aws-lc-rs) | {:.2} µs | |",
        bare / 1000.0
    );
    println!(
        "| cold verify, full agent token, cache off | {:.2} µs | |",
        cold / 1000.0
    );
    println!("| cold / bare | {:.3} | ≤ 1.1 |", cold / bare);
    if let Some(rule) = median_ns("verify", "our_rule_ed25519") {
        println!(
            "| our Ed25519 rule alone (zebra, decoded key) | {:.2} µs | |",
            rule / 1000.0
        );
        println!("| our rule / bare | {:.3} | |", rule / bare);
        println!(
            "| cold / our rule (the path around the signature) | {:.3} | |",
            cold / rule
        );
    }
    if let Some((median, low, high)) = INTERLEAVED.with(std::cell::Cell::get) {
        println!(
            "| cold / bare, interleaved rounds (median; lowest–highest) | {median:.3} ({low:.3}–{high:.3}) | ≤ 1.1 |"
        );
    }
    if let Some(batch) = median_ns("verify", "cold_batch_of_32") {
        let per_token = batch / BATCH as f64;
        println!(
            "| cold verify in a batch of {BATCH} concurrent fresh tokens, per token | {:.2} µs | |",
            per_token / 1000.0
        );
        println!("| batched per token / bare | {:.3} | |", per_token / bare);
    }
    println!("| cached verify | {cached:.0} ns | ≤ 500 ns |");
    println!("| cold / cached | {:.0} | ≥ 75 |", cold / cached);
    for keys in ["1", "10", "100", "1000"] {
        if let Some(t) = median_ns("scaling_keys", keys) {
            println!(
                "| cold verify, {keys} JWKS keys | {:.2} µs | flat |",
                t / 1000.0
            );
        }
    }
    for cached in ["1", "1000", "100000"] {
        if let Some(t) = median_ns("scaling_cached", cached) {
            println!("| cached verify, {cached} tokens cached | {t:.0} ns | flat |");
        }
    }
}

fn main() {
    benches();
    memory();
    Criterion::default().configure_from_args().final_summary();
    if !smoke_only() {
        ratios();
    }
}
