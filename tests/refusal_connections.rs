//! Refusals sent before the request body was read, over raw HTTP/1.1 on 127.0.0.1.
//!
//! A layer that refuses a request (401, 403, 413…) without reading its body leaves the body's
//! bytes unread on the connection. The server cannot keep that connection: the next bytes are
//! the body, not a request. So the refusal must say `Connection: close`, or a client that
//! reuses the connection (sending the body it announced, then its next request) gets a broken
//! connection where it expected an answer. A request without a body keeps its connection.

mod support;

use std::net::SocketAddr;

use agent_auth::RequireScopes;
use axum::Router;
use axum::routing::post;
use serde_json::json;
use support::{JwksServer, TestKey, serve_router};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One HTTP/1.1 response read off a raw connection: status, lower-cased headers, body.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        let found = self.headers.iter().find(|(n, _)| n == name);
        found.map(|(_, v)| v.as_str())
    }

    fn closes(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// Reads exactly one response (head + `Content-Length` body) from `conn`, leaving the rest.
async fn read_response(conn: &mut TcpStream) -> Raw {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut chunk = [0u8; 1024];
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "connection closed before a response head: {buffer:?}"
        );
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buffer[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap().split(' ').nth(1).unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut raw = Raw {
        status: status.parse().unwrap(),
        headers,
        body: buffer[head_end..].to_vec(),
    };
    let length: usize = raw
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    while raw.body.len() < length {
        let mut chunk = [0u8; 1024];
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "connection closed inside a response body");
        raw.body.extend_from_slice(&chunk[..n]);
    }
    raw
}

/// Everything the server sends until it closes the connection.
async fn rest(conn: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    // A reset instead of a clean close is still a close; nothing more was sent either way.
    let _ = conn.read_to_end(&mut out).await;
    out
}

/// A server with the tickets guards, an open echo route, and the layer outside.
async fn server() -> (SocketAddr, TestKey, String) {
    let key = TestKey::ed25519("k1");
    let jwks = JwksServer::start(&[&key]).await;
    let auth = jwks.auth().build().unwrap();
    async fn echo(body: String) -> String {
        body
    }
    let app = Router::new()
        .route(
            "/tickets/{id}/triage",
            post(echo).layer(RequireScopes::all(["tickets:triage"])),
        )
        .route("/echo", post(echo))
        .layer(auth);
    let addr = serve_router(app).await;
    let issuer = jwks.issuer();
    (addr, key, issuer)
}

fn post_head(path: &str, authorization: Option<&str>, length: usize) -> String {
    let authorization = authorization
        .map(|value| format!("Authorization: {value}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{authorization}Content-Type: text/plain\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// Sends the head only, reads the refusal, then sends the body it announced and a second
/// request: the refusal must have said `Connection: close`, and nothing but the close follows.
async fn refused_before_the_body(addr: SocketAddr, head: &str, body: &str) -> Raw {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let refusal = read_response(&mut conn).await;
    assert!(
        refusal.closes(),
        "a refusal leaving a body unread must carry Connection: close: {refusal:?}"
    );
    // A client that ignored it would now send its body and reuse the connection.
    let next = "GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    let _ = conn.write_all(format!("{body}{next}").as_bytes()).await;
    let after = rest(&mut conn).await;
    assert!(
        after.is_empty(),
        "the server answered the unread body as a request: {:?}",
        String::from_utf8_lossy(&after)
    );
    refusal
}

#[tokio::test]
async fn a_401_before_the_body_closes_the_connection() {
    let (addr, _key, _) = server().await;
    let body = r#"{"jsonrpc":"2.0"}"#;
    let refusal = refused_before_the_body(addr, &post_head("/echo", None, body.len()), body).await;
    assert_eq!(refusal.status, 401);
    assert_eq!(
        refusal.header("www-authenticate"),
        Some(r#"Bearer realm="https://api.example.com/tickets""#)
    );

    let bad = post_head("/echo", Some("Bearer not.a.token"), body.len());
    let refusal = refused_before_the_body(addr, &bad, body).await;
    assert_eq!(refusal.status, 401);
    assert!(
        refusal
            .header("www-authenticate")
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
}

#[tokio::test]
async fn a_403_of_a_scope_guard_before_the_body_closes_the_connection() {
    let (addr, key, issuer) = server().await;
    let token = key.token(&issuer, json!({"scope": "tickets:read"}));
    let body = "triage it";
    let head = post_head(
        "/tickets/7/triage",
        Some(&format!("Bearer {token}")),
        body.len(),
    );
    let refusal = refused_before_the_body(addr, &head, body).await;
    assert_eq!(refusal.status, 403);
    let challenge = refusal.header("www-authenticate").unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(
        challenge.ends_with(r#"scope="tickets:triage""#),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_chunked_body_left_unread_closes_the_connection_too() {
    let (addr, _key, _) = server().await;
    let head = "POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let refusal = refused_before_the_body(addr, head, "5\r\nhello\r\n0\r\n\r\n").await;
    assert_eq!(refusal.status, 401);
}

#[tokio::test]
async fn refusals_without_a_body_and_accepted_requests_keep_the_connection() {
    let (addr, key, issuer) = server().await;
    let mut conn = TcpStream::connect(addr).await.unwrap();
    // No body: nothing is left unread, the connection serves the next request.
    conn.write_all(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let refusal = read_response(&mut conn).await;
    assert_eq!(refusal.status, 401);
    assert!(!refusal.closes(), "{refusal:?}");
    let empty = post_head("/echo", None, 0);
    conn.write_all(empty.as_bytes()).await.unwrap();
    let refusal = read_response(&mut conn).await;
    assert_eq!(refusal.status, 401);
    assert!(!refusal.closes(), "{refusal:?}");
    // An accepted request reads its body: the connection stays too.
    let token = key.token(&issuer, json!({"scope": "tickets:triage"}));
    let body = "hello";
    let head = post_head("/echo", Some(&format!("Bearer {token}")), body.len());
    conn.write_all(format!("{head}{body}").as_bytes())
        .await
        .unwrap();
    let accepted = read_response(&mut conn).await;
    assert_eq!(
        (accepted.status, accepted.body.as_slice()),
        (200, &b"hello"[..])
    );
    assert!(!accepted.closes(), "{accepted:?}");
}
