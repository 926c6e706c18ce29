//! Slow and many clients against the issuer's HTTP server (finding 7 of the hardening review:
//! partial requests were held open for 75 s and more), over raw TCP on 127.0.0.1 with short
//! configured deadlines. Verdicts are "the server closed the connection" and "served in
//! order", each under a generous hang guard, never a race with the deadline itself.
#![cfg(feature = "issuer")]

use std::time::Duration;

use agent_auth::issuer::{AdminKey, HttpLimits, Issuer};
use futures_util::FutureExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Far beyond every configured deadline: only a server that never closes reaches it.
const HANG_GUARD: Duration = Duration::from_secs(30);

async fn issuer_with(limits: HttpLimits) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let issuer = Issuer::builder()
        .issuer_url(format!("http://{addr}"))
        .admin_key(AdminKey::generate().unwrap())
        .http_limits(limits)
        .build()
        .await
        .unwrap();
    tokio::spawn(issuer.serve(listener, std::future::pending()));
    addr
}

/// Everything the server sends until it closes the connection.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(HANG_GUARD, stream.read_to_end(&mut out))
        .await
        .expect("the server closed the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

fn short() -> HttpLimits {
    HttpLimits {
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
        ..HttpLimits::default()
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let addr = issuer_with(short()).await;
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /jwks.json HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let answer = read_until_closed(&mut stream).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    // A client that sends nothing at all is disconnected too.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    let answer = read_until_closed(&mut idle).await;
    assert!(!answer.contains("200 OK"), "{answer}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_body_gets_408_and_is_disconnected() {
    let addr = issuer_with(short()).await;
    for (path, content_type) in [
        ("/token", "application/x-www-form-urlencoded"),
        ("/v1/agents", "application/json"),
    ] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n\
             Authorization: Basic eDp4\r\nContent-Length: 100\r\n\r\ngrant_type="
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let answer = read_until_closed(&mut stream).await;
        if path == "/token" {
            assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
            assert!(
                answer.to_ascii_lowercase().contains("connection: close"),
                "{answer}"
            );
        } else {
            // The admin guard answers first (wrong key): still a closed connection, never a
            // request held open.
            assert!(answer.starts_with("HTTP/1.1 "), "{path}: {answer}");
        }
    }
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let addr = issuer_with(HttpLimits {
        max_connections: 1,
        ..HttpLimits::default()
    })
    .await;
    let request = b"GET /jwks.json HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(request).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = first.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The first connection stays open (keep-alive): a second one is not served …
    let mut second = TcpStream::connect(addr).await.unwrap();
    second.write_all(request).await.unwrap();
    let mut answer = [0u8; 4096];
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        second.read(&mut answer).now_or_never().is_none(),
        "served beyond the connection limit"
    );
    // … until the first closes.
    drop(first);
    let n = tokio::time::timeout(HANG_GUARD, second.read(&mut answer))
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
}
