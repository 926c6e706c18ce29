//! What the per-tool MCP scope layer (`McpToolScopes`) adds to a `tools/call` request over the
//! auth layer alone, measured side by side in one run (issue 14: at most 5 %).
//!
//! Two routers with the same handler, which reads the whole body as an MCP server does:
//!
//! * `layer`: `AgentAuth` only;
//! * `tools`: `AgentAuth`, then `McpToolScopes` (the body read with its bound, parsed strictly,
//!   the tool's scopes checked, the body handed on);
//!
//! each pair composed two ways: `stacked` (one `ServiceBuilder` stack nested at `/mcp`, as the
//! README and `examples/mcp_server.rs` do: the figure) and `layered` (`Router::layer`
//! once per layer, which boxes each layer in a `Route` of its own).
//!
//! Every request is the same `tools/call` (about 200 bytes of JSON-RPC) with the same token (a
//! verified-token cache hit, the steady state). Two settings: `http` (a keep-alive reqwest
//! client over loopback to `axum::serve`: what a request costs) and `in-process`
//! (`tower::ServiceExt::oneshot`, no network: the layers' own work, the worst case for the
//! ratio). Rounds alternate between the routers (`layer`, `tools`, `tools`, `layer`, …) so
//! that a change in the machine's load falls on both; the figure is the median of the rounds'
//! per-request times, and the ratio is `tools / layer − 1`.
//!
//! `cargo bench --bench mcp --features mcp` measures; `-- --test` (CI) is a smoke run: a few
//! requests of each kind, answered `200`, no figures.

use std::time::{Duration, Instant};

use agent_auth::mcp::McpToolScopes;
use agent_auth::{AgentAuth, AgentAuthLayer};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, StatusCode};
use serde_json::json;
use tower::{ServiceBuilder, ServiceExt as _};

const AUDIENCE: &str = "https://api.example.com/mcp";
const AGENT_ID: &str = "agt_7c1de2f3a4b5c6d7e8f9a0b1c2d3e4f5";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The handler both routers share: reads the body, as the MCP server would.
async fn handle(body: Bytes) -> String {
    body.len().to_string()
}

fn body() -> String {
    json!({
        "jsonrpc": "2.0", "id": 42, "method": "tools/call",
        "params": {"name": "triage_ticket", "arguments": {"id": "7", "priority": "high"},
                   "_meta": {"progressToken": "a1b2c3"}},
    })
    .to_string()
}

struct Setup {
    layer: AgentAuthLayer,
    token: String,
}

async fn setup() -> Setup {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let jwks = json!({ "keys": [{
        "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": "k1",
        "x": b64(key.public_key().as_ref()),
    }] });
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({ "alg": "EdDSA", "kid": "k1", "typ": "at+jwt" });
    let claims = json!({
        "iss": issuer, "sub": AGENT_ID, "aud": AUDIENCE, "exp": now + 3600, "iat": now,
        "jti": "bench", "client_id": AGENT_ID, "scope": "tickets:read tickets:triage",
        "dat": { "type": "agent" },
    });
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let token = format!("{input}.{}", b64(key.sign(input.as_bytes())));
    let layer = AgentAuth::new(&issuer).audience(AUDIENCE).build().unwrap();
    // Keys fetched and the token cached before anything is measured.
    layer.verify(&token).await.unwrap();
    Setup { layer, token }
}

/// The two compositions, each as (layer alone, layer + tools):
///
/// * `stacked`: one `ServiceBuilder` stack around the MCP endpoint, nested at `/mcp`, as
///   `examples/mcp_server.rs` and the README do;
/// * `layered`: `Router::layer` once per layer (axum boxes each layer's service in a `Route`
///   of its own, so the second layer also pays for one more box and clone per request).
fn routers(layer: &AgentAuthLayer) -> [(&'static str, [Router; 2]); 2] {
    let tools = McpToolScopes::new()
        .tool("list_tickets", ["tickets:read"])
        .tool("triage_ticket", ["tickets:triage"]);
    let route = || Router::new().route("/mcp", post(handle));
    let stacked = [
        Router::new().nest_service(
            "/mcp",
            ServiceBuilder::new()
                .layer(layer.clone())
                .service(post(handle)),
        ),
        Router::new().nest_service(
            "/mcp",
            ServiceBuilder::new()
                .layer(layer.clone())
                .layer(tools.clone())
                .service(post(handle)),
        ),
    ];
    let layered = [
        route().layer(layer.clone()),
        route().layer(tools).layer(layer.clone()),
    ];
    [("stacked", stacked), ("layered", layered)]
}

/// Sends `n` requests in process; the elapsed time.
async fn in_process(app: &Router, token: &str, body: &str, n: usize) -> Duration {
    let requests: Vec<Request<Body>> = (0..n)
        .map(|_| {
            Request::post("/mcp")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(body.to_owned()))
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    for request in requests {
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        std::hint::black_box(response);
    }
    started.elapsed()
}

/// Sends `n` requests over one keep-alive connection; the elapsed time.
async fn over_http(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &str,
    n: usize,
) -> Duration {
    let started = Instant::now();
    for _ in 0..n {
        let response = client
            .post(url)
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        std::hint::black_box(response.bytes().await.unwrap());
    }
    started.elapsed()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Per-request medians of `rounds` alternating rounds of `n` requests: (layer, tools).
async fn side_by_side<F, Fut>(rounds: usize, n: usize, mut run: F) -> (f64, f64)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Duration>,
{
    let (mut layer, mut tools) = (Vec::new(), Vec::new());
    run(0).await; // warm-up of both
    run(1).await;
    for round in 0..rounds {
        // ABBA order: neither router always goes first.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let per_request = run(which).await.as_secs_f64() / n as f64;
            match which {
                0 => layer.push(per_request),
                _ => tools.push(per_request),
            }
        }
    }
    (median(layer), median(tools))
}

fn report(setting: &str, (layer, tools): (f64, f64)) {
    println!(
        "mcp/{setting:<19}  layer {:>8.2} µs  layer+tools {:>8.2} µs  added {:+.1} %",
        layer * 1e6,
        tools * 1e6,
        (tools / layer - 1.0) * 100.0
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let smoke = std::env::args().any(|arg| arg == "--test");
    let setup = setup().await;
    let body = body();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = &setup.token;
    for (shape, apps) in routers(&setup.layer) {
        let mut urls = Vec::new();
        for app in apps.clone() {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            urls.push(format!("http://{}/mcp", listener.local_addr().unwrap()));
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }
        if smoke {
            for which in 0..2 {
                in_process(&apps[which], token, &body, 3).await;
                over_http(&client, &urls[which], token, &body, 3).await;
            }
            continue;
        }
        let local = side_by_side(41, 2000, |which| {
            in_process(&apps[which], token, &body, 2000)
        })
        .await;
        report(&format!("{shape} in-process"), local);
        let http = side_by_side(41, 500, |which| {
            over_http(&client, &urls[which], token, &body, 500)
        })
        .await;
        report(&format!("{shape} http"), http);
    }
    if smoke {
        println!("mcp: smoke run ok");
    }
}
