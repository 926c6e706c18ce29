//! Instructions per request, counted by callgrind (run it through `scripts/instructions.sh`).
//!
//! `instructions <route> <n>` sends `n` requests, in process (`tower::ServiceExt::oneshot`, no
//! network), through one of three routers with the same handler:
//!
//! * `open`: no layer;
//! * `noop`: a pass-through layer (`tower::layer::util::Identity`): what axum's `Router::layer`
//!   costs by itself, so that `reused − noop` is the layer's own work;
//! * `reused`: the layer, every request with the same token (a verified-token cache hit);
//! * `fresh`: the layer, a new token per request (signature verified, then cached).
//!
//! Everything else (keys, the JWKS fetch over loopback, token signing, building the requests,
//! one warm-up request per route) happens before [`measured`]; the script has callgrind count
//! only inside it (`--toggle-collect`) and takes `(I(2n) − I(n)) / n`, which also cancels what
//! `measured` pays once per run.
//!
//! Without a route (as `cargo bench -- --test` runs it in CI) it sends a few requests of each
//! route and checks they are answered `200`: a smoke run, no counting.

use std::hint::black_box;

use agent_auth::{AgentAuth, AgentAuthLayer};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use axum::Router;
use axum::body::Body;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, StatusCode};
use serde_json::json;
use tokio::runtime::Runtime;
use tower::ServiceExt as _;

const AUDIENCE: &str = "https://api.example.com/tickets";
const AGENT_ID: &str = "agt_7c1de2f3a4b5c6d7e8f9a0b1c2d3e4f5";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Route {
    Open,
    Noop,
    Reused,
    Fresh,
}

impl Route {
    fn parse(name: &str) -> Option<Route> {
        match name {
            "open" => Some(Route::Open),
            "noop" => Some(Route::Noop),
            "reused" => Some(Route::Reused),
            "fresh" => Some(Route::Fresh),
            _ => None,
        }
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An issuer's key, its JWKS served on 127.0.0.1:0 by a task of `runtime`, and a warmed-up
/// layer trusting it.
struct Setup {
    runtime: Runtime,
    issuer: String,
    key: Ed25519KeyPair,
    layer: AgentAuthLayer,
}

impl Setup {
    fn start() -> Setup {
        // One thread: everything callgrind counts runs on the thread that calls `measured`.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let jwks = json!({ "keys": [{
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1",
            "x": b64(key.public_key().as_ref()),
        }] });
        let issuer = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let issuer = format!("http://{}", listener.local_addr().unwrap());
            let app = Router::new().route(
                "/jwks.json",
                get(move || {
                    let jwks = jwks.clone();
                    async move { axum::Json(jwks) }
                }),
            );
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            issuer
        });
        let layer = AgentAuth::new(&issuer).audience(AUDIENCE).build().unwrap();
        let setup = Setup {
            runtime,
            issuer,
            key,
            layer,
        };
        // The keys are fetched here, not in the measured part.
        let warm = setup.token(u64::MAX);
        setup.runtime.block_on(setup.layer.verify(&warm)).unwrap();
        setup
    }

    /// A valid agent token, unique per `jti`.
    fn token(&self, jti: u64) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = json!({ "alg": "EdDSA", "kid": "k1", "typ": "at+jwt" });
        let claims = json!({
            "iss": self.issuer, "sub": AGENT_ID, "aud": AUDIENCE,
            "exp": now + 3600, "iat": now, "jti": format!("{jti:032x}"),
            "client_id": AGENT_ID, "scope": "tickets:read tickets:triage",
            "dat": { "type": "agent" },
        });
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        format!("{input}.{}", b64(self.key.sign(input.as_bytes())))
    }

    /// The router of `route`, and `n` requests for it (each with an `Authorization` header, so
    /// the open route's requests are built and dropped the same way).
    fn requests(&self, route: Route, n: usize) -> (Router, Vec<Request<Body>>) {
        let app = Router::new().route("/", get(hello));
        let app = match route {
            Route::Open => app,
            Route::Noop => app.layer(tower::layer::util::Identity::new()),
            Route::Reused | Route::Fresh => app.layer(self.layer.clone()),
        };
        let reused = self.token(0);
        let tokens: Vec<String> = match route {
            Route::Fresh => (1..=n as u64).map(|jti| self.token(jti)).collect(),
            Route::Open | Route::Noop | Route::Reused => vec![reused.clone(); n],
        };
        let request = |token: &str| {
            Request::get("/")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap()
        };
        // One request outside the count: the reused token enters the cache, and every route's
        // first-call work (lazy statics, allocator pools) is done.
        let warm_up = match route {
            Route::Fresh => self.token(u64::MAX - 1),
            Route::Open | Route::Noop | Route::Reused => reused,
        };
        self.runtime
            .block_on(send_all(&app, vec![request(&warm_up)]));
        (app, tokens.iter().map(|token| request(token)).collect())
    }
}

async fn hello() -> &'static str {
    "hello"
}

async fn send_all(app: &Router, requests: Vec<Request<Body>>) {
    for request in requests {
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        black_box(response);
    }
}

/// The only function callgrind counts (`--toggle-collect=instructions::measured`).
#[inline(never)]
fn measured(runtime: &Runtime, app: &Router, requests: Vec<Request<Body>>) {
    runtime.block_on(send_all(app, requests));
}

fn main() {
    let positional: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let setup = Setup::start();
    match positional.as_slice() {
        [route, n] => {
            let route = Route::parse(route).expect("route: open, noop, reused or fresh");
            let n: usize = n.parse().expect("n: a number of requests");
            let (app, requests) = setup.requests(route, n);
            measured(&setup.runtime, &app, requests);
        }
        [] => {
            // Smoke run (`cargo bench -- --test`, or a plain `cargo bench`): a few requests per
            // route, answered 200. The counting is done by scripts/instructions.sh.
            for route in [Route::Open, Route::Noop, Route::Reused, Route::Fresh] {
                let (app, requests) = setup.requests(route, 3);
                measured(&setup.runtime, &app, requests);
            }
            println!("instructions: smoke run ok; count with scripts/instructions.sh");
        }
        _ => panic!("usage: instructions [<open|noop|reused|fresh> <n>]"),
    }
}
