//! `POST /token` of the bundled issuer, in-process: the real axum router through
//! `tower::ServiceExt::oneshot`, no sockets. (The form parser, `TokenForm::parse` in
//! src/issuer/token.rs, is private; the router is the narrowest public way in.)
//!
//! Input: one flag byte, then the form body. In the body, `@ID@` and `@SECRET@` are replaced by
//! a real agent's client id and secret (generated per run), so seeds can reach the success path.
//! Flag bits: 0 → HTTP Basic with the real credentials; 1 → a JSON content type instead of a
//! form; 2 → a second Authorization header; 3 → Basic with the flag-free body's first line as
//! the raw credentials.
//!
//! Oracle: never a 5xx; every answer is JSON with the RFC 6749 shape; a 200 carries a token
//! that the resource-server verifier accepts for the agent.
#![no_main]

#[path = "common.rs"]
mod common;

use std::sync::OnceLock;

use agent_auth::AgentAuth;
use agent_auth::internals::OfflineVerifier;
use agent_auth::issuer::{AdminKey, Issuer};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http_body_util::BodyExt as _;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tower::ServiceExt as _;

const ADMIN_ID: &str = "fuzz-admin";
const ADMIN_SECRET: &str = "fuzz-admin-secret-0123456789abcdef";
const ISSUER_URL: &str = "http://127.0.0.1:9";

struct World {
    runtime: tokio::runtime::Runtime,
    router: Router,
    agent_id: String,
    secret: String,
    /// Verifies tokens whose `aud` is the agent id (no `resource`).
    for_agent: OfflineVerifier,
    /// Verifies tokens whose `aud` is [`common::AUDIENCE`].
    for_api: OfflineVerifier,
}

fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

async fn call(
    router: &Router,
    request: Request<Body>,
) -> (StatusCode, Vec<(String, String)>, Vec<u8>) {
    let response = router.clone().oneshot(request).await.expect("infallible");
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let (router, agent_id, secret, jwks) = runtime.block_on(async {
            let issuer = Issuer::builder()
                .issuer_url(ISSUER_URL)
                .admin_key(AdminKey::new(ADMIN_ID, ADMIN_SECRET))
                .build()
                .await
                .expect("issuer");
            let router = issuer.router();
            let admin = |method: &str, path: &str, body: Value| {
                Request::builder()
                    .method(method)
                    .uri(path)
                    .header(header::AUTHORIZATION, basic(ADMIN_ID, ADMIN_SECRET))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_string()))
                    .unwrap()
            };
            let (status, _, body) = call(
                &router,
                admin(
                    "POST",
                    "/v1/agents",
                    json!({"name": "fuzz", "scopes": ["tickets:read", "tickets:triage"]}),
                ),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED);
            let agent: Value = serde_json::from_slice(&body).unwrap();
            let agent_id = agent["data"]["id"].as_str().unwrap().to_owned();
            let (status, _, body) = call(
                &router,
                admin(
                    "POST",
                    &format!("/v1/agents/{agent_id}/verifiers"),
                    json!({"type": "secret"}),
                ),
            )
            .await;
            assert_eq!(status, StatusCode::CREATED);
            let created: Value = serde_json::from_slice(&body).unwrap();
            let secret = created["data"]["secret"].as_str().unwrap().to_owned();
            let get = Request::get("/jwks.json").body(Body::empty()).unwrap();
            let (_, _, jwks) = call(&router, get).await;
            (router, agent_id, secret, jwks)
        });
        let offline = |aud: &str| {
            OfflineVerifier::new(AgentAuth::new(ISSUER_URL).audience(aud), &jwks).expect("jwks")
        };
        World {
            for_agent: offline(&agent_id),
            for_api: offline(common::AUDIENCE),
            runtime,
            router,
            agent_id,
            secret,
        }
    })
}

/// Replaces `needle` by `with` in `haystack`, bytewise.
fn replace(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, body)) = data.split_first() else {
        return;
    };
    let w = world();
    let body = replace(body, b"@ID@", w.agent_id.as_bytes());
    let body = replace(&body, b"@SECRET@", w.secret.as_bytes());
    let mut request = Request::post("/token").header(
        header::CONTENT_TYPE,
        if flags & 2 == 0 {
            "application/x-www-form-urlencoded"
        } else {
            "application/json"
        },
    );
    if flags & 1 != 0 {
        request = request.header(header::AUTHORIZATION, basic(&w.agent_id, &w.secret));
    }
    if flags & 4 != 0 {
        request = request.header(header::AUTHORIZATION, basic("agt_x", "y"));
    }
    if flags & 8 != 0 {
        let line = body.split(|&b| b == b'\n').next().unwrap_or_default();
        if let Ok(value) = axum::http::HeaderValue::from_bytes(line) {
            request = request.header(header::AUTHORIZATION, value);
        }
    }
    let request = request.body(Body::from(body)).expect("request");
    let (status, headers, bytes) = w.runtime.block_on(call(&w.router, request));
    assert!(
        !status.is_server_error(),
        "{status}: {}",
        String::from_utf8_lossy(&bytes)
    );
    let has = |name: &str, value: &str| headers.iter().any(|(k, v)| k == name && v == value);
    assert!(has("cache-control", "no-store"), "{headers:?}");
    let reply: Value = serde_json::from_slice(&bytes).expect("JSON body");
    if status == StatusCode::OK {
        assert_eq!(reply["token_type"], "Bearer");
        assert_eq!(reply["expires_in"], 300);
        let token = reply["access_token"].as_str().expect("access_token");
        let for_agent = w.for_agent.verify(token);
        let for_api = w.for_api.verify(token);
        let agent = for_agent.or(for_api);
        // Tokens for other resources are refused by both (wrong audience), which is right.
        if let Ok(agent) = agent {
            assert_eq!(agent.id(), w.agent_id);
            assert_eq!(reply["scope"], agent.scopes().collect::<Vec<_>>().join(" "));
        }
    } else {
        assert!(status.is_client_error(), "{status}");
        let error = reply["error"].as_str().expect("error code");
        assert!(
            [
                "invalid_request",
                "invalid_client",
                "unsupported_grant_type",
                "invalid_scope",
                "invalid_target",
            ]
            .contains(&error),
            "{reply}"
        );
        assert!(reply["error_description"].is_string(), "{reply}");
    }
});
