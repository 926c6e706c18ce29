//! The per-tool MCP scope layer (`McpToolScopes`) over real HTTP on 127.0.0.1, behind a real
//! `AgentAuth` with real signatures: every refusal with its exact status and challenge, and the
//! MCP server behind it (here an echo that counts its calls) reached only when it may be.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agent_auth::mcp::McpToolScopes;
use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde_json::json;
use support::{AUDIENCE, JwksServer, Outcome, TestKey, client, send, serve_router};

const METADATA: &str = "https://api.example.com/.well-known/oauth-protected-resource/tickets";
const PREFIX: &str = r#"Bearer realm="https://api.example.com/tickets", resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/tickets""#;
const EVERY_SCOPE: &str = "tickets:read tickets:triage";
const MAX_BODY: usize = 4096;

struct Mcp {
    url: String,
    key: TestKey,
    issuer: String,
    /// Requests the MCP server behind the layers received.
    reached: Arc<AtomicUsize>,
}

impl Mcp {
    async fn start() -> Self {
        let key = TestKey::ed25519("k1");
        let jwks = JwksServer::start(&[&key]).await;
        let auth = jwks
            .auth()
            .resource_metadata(METADATA)
            .basic_scopes(["tickets:read"])
            .build()
            .unwrap();
        let scopes = McpToolScopes::new()
            .tool("list_tickets", ["tickets:read"])
            .tool("triage_ticket", ["tickets:triage"])
            .tool("ping", [] as [&str; 0])
            .max_body_bytes(MAX_BODY);
        let reached = Arc::new(AtomicUsize::new(0));
        async fn echo(State(reached): State<Arc<AtomicUsize>>, body: String) -> String {
            reached.fetch_add(1, Ordering::SeqCst);
            body
        }
        async fn stream(State(reached): State<Arc<AtomicUsize>>) -> &'static str {
            reached.fetch_add(1, Ordering::SeqCst);
            "stream"
        }
        let app = Router::new()
            .route("/mcp", post(echo).get(stream).delete(stream))
            .with_state(reached.clone())
            .layer(scopes)
            .layer(auth);
        let addr = serve_router(app).await;
        Mcp {
            url: format!("http://{addr}/mcp"),
            key,
            issuer: jwks.issuer(),
            reached,
        }
    }

    fn token(&self, scope: &str) -> String {
        self.key.token(&self.issuer, json!({ "scope": scope }))
    }

    async fn post(&self, scope: &str, body: impl Into<String>) -> Outcome {
        self.post_with(scope, body, &[]).await
    }

    async fn post_with(
        &self,
        scope: &str,
        body: impl Into<String>,
        headers: &[(&str, &str)],
    ) -> Outcome {
        let mut request = client()
            .post(&self.url)
            .bearer_auth(self.token(scope))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(body.into());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        send(request).await
    }

    fn reached(&self) -> usize {
        self.reached.load(Ordering::SeqCst)
    }
}

fn tool_call(id: u32, name: &str) -> serde_json::Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {"id": "7"}}})
}

/// Asserts `403 insufficient_scope` naming exactly `scopes`, with the resource metadata.
fn assert_insufficient(outcome: &Outcome, scopes: &str) {
    assert_eq!(outcome.status, 403, "{outcome:?}");
    assert_eq!(
        outcome.challenge.as_deref(),
        Some(&*format!(
            r#"{PREFIX}, error="insufficient_scope", error_description="missing required scope", scope="{scopes}""#
        ))
    );
}

#[tokio::test]
async fn a_tools_call_needs_exactly_its_tools_scopes() {
    let mcp = Mcp::start().await;
    let list = tool_call(1, "list_tickets").to_string();
    let allowed = mcp.post("tickets:read", list.clone()).await;
    assert_eq!(
        (allowed.status, allowed.body.as_str()),
        (200, list.as_str())
    );
    assert_eq!(mcp.reached(), 1);

    let refused = mcp
        .post("tickets:read", tool_call(2, "triage_ticket").to_string())
        .await;
    assert_insufficient(&refused, "tickets:triage");
    assert_eq!(
        mcp.reached(),
        1,
        "the refused call never reached the server"
    );

    let triage = mcp
        .post("tickets:triage", tool_call(3, "triage_ticket").to_string())
        .await;
    assert_eq!(triage.status, 200);
    // A tool mapped to no scope is open to every agent, even one with no scope at all.
    let ping = mcp.post("", tool_call(4, "ping").to_string()).await;
    assert_eq!(ping.status, 200);
    assert_eq!(mcp.reached(), 3);
}

#[tokio::test]
async fn a_batch_needs_the_union_of_its_calls_scopes() {
    let mcp = Mcp::start().await;
    let batch = json!([
        tool_call(1, "list_tickets"),
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        tool_call(3, "triage_ticket"),
    ])
    .to_string();
    for scope in ["tickets:read", "tickets:triage"] {
        let refused = mcp.post(scope, batch.clone()).await;
        assert_insufficient(&refused, EVERY_SCOPE);
    }
    assert_eq!(mcp.reached(), 0);
    let allowed = mcp.post(EVERY_SCOPE, batch.clone()).await;
    assert_eq!((allowed.status, allowed.body), (200, batch));
    assert_eq!(mcp.reached(), 1);
}

#[tokio::test]
async fn an_unclassifiable_body_needs_every_configured_scope() {
    let mcp = Mcp::start().await;
    let bodies = [
        "not json".to_owned(),
        tool_call(1, "unknown_tool").to_string(),
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}}"#.to_owned(),
        // Read one way here and another by a lenient server: refused as unclassifiable.
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_tickets","name":"triage_ticket"}}"#.to_owned(),
        "[]".to_owned(),
    ];
    for body in &bodies {
        let refused = mcp.post("tickets:read", body.clone()).await;
        assert_insufficient(&refused, EVERY_SCOPE);
    }
    assert_eq!(mcp.reached(), 0);
    // With every scope the server gets the body as sent (and answers it as it sees fit).
    for body in &bodies {
        let passed = mcp.post(EVERY_SCOPE, body.clone()).await;
        assert_eq!((passed.status, &passed.body), (200, body));
    }
    assert_eq!(mcp.reached(), bodies.len());
}

#[tokio::test]
async fn an_oversize_body_needs_every_scope_and_its_refusal_closes_the_connection() {
    let mcp = Mcp::start().await;
    // A tools/call of the open tool, padded past the bound: it cannot be classified.
    let padding = "x".repeat(MAX_BODY);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "ping", "arguments": {"pad": padding}}}).to_string();
    let response = client()
        .post(&mcp.url)
        .bearer_auth(mcp.token("tickets:read"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["connection"], "close");
    let refused = Outcome {
        status: response.status().as_u16(),
        challenge: response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_owned()),
        retry_after: None,
        body: response.text().await.unwrap(),
    };
    assert_insufficient(&refused, EVERY_SCOPE);
    assert_eq!(mcp.reached(), 0);
    // With every scope the server receives the whole body: what was read, then the rest.
    let passed = mcp.post(EVERY_SCOPE, body.clone()).await;
    assert_eq!(passed.status, 200);
    assert_eq!(passed.body.len(), body.len());
    assert_eq!(passed.body, body);
    // Exactly at the bound it is classified as usual.
    let fitting =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "ping"}})
            .to_string();
    let fitting = format!("{fitting:<MAX_BODY$}");
    assert_eq!(fitting.len(), MAX_BODY);
    assert_eq!(mcp.post("", fitting).await.status, 200);
}

#[tokio::test]
async fn an_mcp_name_header_never_lets_the_bodys_tool_run() {
    let mcp = Mcp::start().await;
    let triage = tool_call(1, "triage_ticket").to_string();
    for name in ["list_tickets", "ping", "triage_ticket"] {
        let refused = mcp
            .post_with(
                "tickets:read",
                triage.clone(),
                &[("mcp-name", name), ("mcp-method", "tools/call")],
            )
            .await;
        assert_insufficient(&refused, "tickets:triage");
    }
    assert_eq!(mcp.reached(), 0);
    // And a header naming a forbidden tool does not refuse an allowed body: the body decides.
    let list = tool_call(2, "list_tickets").to_string();
    let allowed = mcp
        .post_with("tickets:read", list, &[("mcp-name", "triage_ticket")])
        .await;
    assert_eq!(allowed.status, 200);
}

#[tokio::test]
async fn every_other_method_needs_only_a_valid_agent() {
    let mcp = Mcp::start().await;
    for body in [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2026-07-28", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "server/discover"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 4, "result": {}}),
    ] {
        let outcome = mcp.post("", body.to_string()).await;
        assert_eq!(outcome.status, 200, "{body}");
    }
    let token = mcp.token("");
    let stream = send(client().get(&mcp.url).bearer_auth(&token)).await;
    assert_eq!((stream.status, stream.body.as_str()), (200, "stream"));
    let delete = send(client().delete(&mcp.url).bearer_auth(&token)).await;
    assert_eq!(delete.status, 200);
    assert_eq!(mcp.reached(), 7);
}

#[tokio::test]
async fn without_a_valid_token_the_auth_layer_answers_first() {
    let mcp = Mcp::start().await;
    let body = tool_call(1, "list_tickets").to_string();
    let missing = send(client().post(&mcp.url).body(body.clone())).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.challenge.as_deref(),
        Some(&*format!(r#"{PREFIX}, scope="tickets:read""#))
    );
    let other_audience = mcp
        .key
        .token(&mcp.issuer, json!({"aud": "https://elsewhere.example"}));
    let invalid = send(
        client()
            .post(&mcp.url)
            .bearer_auth(other_audience)
            .body(body),
    )
    .await;
    assert_eq!(invalid.status, 401);
    assert_eq!(invalid.error().as_deref(), Some("invalid_token"));
    assert!(invalid.challenge.unwrap().starts_with(PREFIX));
    assert_eq!(mcp.reached(), 0);
    assert_eq!(AUDIENCE, "https://api.example.com/tickets");
}

#[tokio::test]
async fn the_layer_without_agent_auth_outside_refuses_with_500() {
    let scopes = McpToolScopes::new().tool("list_tickets", ["tickets:read"]);
    let app = Router::new()
        .route("/mcp", post(|| async { "reached" }))
        .layer(scopes);
    let addr = serve_router(app).await;
    let body = tool_call(1, "list_tickets").to_string();
    let outcome = send(client().post(format!("http://{addr}/mcp")).body(body)).await;
    assert_eq!(outcome.status, 500);
    assert_eq!(outcome.body, "");
}

/// Sends a chunked `POST /mcp` whose second chunk-size line is not hexadecimal, so the body
/// fails after its first chunk; returns the response's head (status line and headers,
/// lowercased), read until the server closes.
async fn post_broken_chunked(mcp: &Mcp, scope: &str, first_chunk: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = mcp
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n\
         {len:x}\r\n{first_chunk}\r\nzz\r\n",
        token = mcp.token(scope),
        len = first_chunk.len(),
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    response
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase()
}

#[tokio::test]
async fn a_body_that_fails_mid_read_is_refused_and_its_connection_closed() {
    let mcp = Mcp::start().await;
    // The start of a call of the open tool: what arrived cannot be classified.
    let first_chunk = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"ping""#;

    // An agent with every scope: the body itself is bad, 400.
    let response = post_broken_chunked(&mcp, EVERY_SCOPE, first_chunk).await;
    let head = response
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 400 "), "{head}");
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(!head.contains("www-authenticate"), "{head}");

    // An agent without: refused for the scopes first (an unreadable body needs them all).
    let response = post_broken_chunked(&mcp, "tickets:read", first_chunk).await;
    let head = response
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 403 "), "{head}");
    assert!(head.contains("\r\nconnection: close"), "{head}");
    assert!(
        head.contains(r#"error="insufficient_scope""#)
            && head.contains(&format!(r#"scope="{EVERY_SCOPE}""#)),
        "{head}"
    );
    assert_eq!(mcp.reached(), 0, "the server never saw a broken body");
}
