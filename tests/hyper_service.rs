//! The layer on a plain hyper service, no axum in the request path: a `tower::service_fn`
//! handler behind `ServiceBuilder::new().layer(auth)`, served with hyper's http1 connection
//! builder on 127.0.0.1:0. The handler reads the [`Agent`] from the request extensions.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use agent_auth::{Agent, AgentAuthLayer};
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use support::*;
use tower::ServiceBuilder;

/// Serves `auth` around a handler answering with the agent's id; counts handler calls.
async fn serve_plain_hyper(auth: AgentAuthLayer) -> (SocketAddr, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let handler = {
        let calls = calls.clone();
        tower::service_fn(move |request: http::Request<hyper::body::Incoming>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                let response = match request.extensions().get::<Agent>() {
                    Some(agent) => {
                        http::Response::new(Full::new(Bytes::from(agent.id().to_owned())))
                    }
                    None => http::Response::builder()
                        .status(500)
                        .body(Full::new(Bytes::from_static(b"no agent in extensions")))
                        .unwrap(),
                };
                Ok::<_, Infallible>(response)
            }
        })
    };
    let service = ServiceBuilder::new().layer(auth).service(handler);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                // Connection errors (a client hanging up) end only that connection.
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, calls)
}

struct Setup {
    jwks: JwksServer,
    key: TestKey,
    url: String,
    calls: Arc<AtomicUsize>,
}

async fn setup() -> Setup {
    let key = TestKey::ed25519("key-1");
    let jwks = JwksServer::start(&[&key]).await;
    let (addr, calls) = serve_plain_hyper(jwks.auth().build().unwrap()).await;
    Setup {
        jwks,
        key,
        url: format!("http://{addr}/anything"),
        calls,
    }
}

#[tokio::test]
async fn a_valid_token_reaches_the_plain_handler_with_the_agent() {
    let s = setup().await;
    let token = s.key.token(&s.jwks.issuer(), json!({}));
    // First request waits for the JWKS fetch; the second is verified from the cache.
    for round in ["fetching", "cached"] {
        let outcome = get_with_token(&s.url, &token).await;
        assert_eq!(outcome.status, 200, "{round}: {outcome:?}");
        assert_eq!(outcome.body, AGENT_ID, "{round}");
        assert_eq!(outcome.challenge, None, "{round}");
    }
    assert_eq!(s.calls.load(Ordering::SeqCst), 2);
    assert_eq!(s.jwks.fetches(), 1);
}

#[tokio::test]
async fn no_token_gets_a_bare_bearer_challenge() {
    let s = setup().await;
    let expected = format!("Bearer realm=\"{AUDIENCE}\"");
    let outcome = send(client().get(&s.url)).await;
    assert_eq!(outcome.status, 401, "{outcome:?}");
    assert_eq!(outcome.challenge.as_deref(), Some(expected.as_str()));
    assert_eq!(outcome.error(), None);
    // Another scheme counts as no token.
    let outcome = send(client().get(&s.url).basic_auth("agent", Some("secret"))).await;
    assert_eq!(outcome.status, 401, "{outcome:?}");
    assert_eq!(outcome.challenge.as_deref(), Some(expected.as_str()));
    assert_eq!(s.calls.load(Ordering::SeqCst), 0, "handler never called");
    assert_eq!(s.jwks.fetches(), 0, "no key needed to refuse");
}

#[tokio::test]
async fn a_bad_token_gets_invalid_token() {
    let s = setup().await;
    // Malformed: refused without any key.
    let outcome = get_with_token(&s.url, "not-a-jwt").await;
    assert_eq!(outcome.status, 401, "{outcome:?}");
    assert_eq!(outcome.error().as_deref(), Some("invalid_token"));
    assert_eq!(
        outcome.error_description().as_deref(),
        Some("malformed token")
    );
    // Well-formed, signed by a foreign key under the trusted kid (needs the JWKS fetch).
    let impostor = TestKey::ed25519("key-1");
    let outcome = get_with_token(&s.url, &impostor.token(&s.jwks.issuer(), json!({}))).await;
    assert_eq!(outcome.status, 401, "{outcome:?}");
    assert_eq!(outcome.error().as_deref(), Some("invalid_token"));
    assert_eq!(
        outcome.error_description().as_deref(),
        Some("signature verification failed")
    );
    // Expired, by the right key (from the cache).
    let expired = s
        .key
        .token(&s.jwks.issuer(), json!({ "exp": now() - 3600 }));
    let outcome = get_with_token(&s.url, &expired).await;
    assert_eq!(outcome.status, 401, "{outcome:?}");
    assert_eq!(
        outcome.error_description().as_deref(),
        Some("token expired")
    );
    assert_eq!(s.calls.load(Ordering::SeqCst), 0, "handler never called");
}

#[tokio::test]
async fn a_malformed_authorization_header_gets_400_invalid_request() {
    let s = setup().await;
    let outcome = send(client().get(&s.url).header("authorization", "Bearer ")).await;
    assert_eq!(outcome.status, 400, "{outcome:?}");
    assert_eq!(outcome.error().as_deref(), Some("invalid_request"));
    assert_eq!(s.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn keys_unavailable_gives_503_through_plain_hyper() {
    let s = setup().await;
    s.jwks.set_mode(Mode::Status(500));
    let outcome = get_with_token(&s.url, &s.key.token(&s.jwks.issuer(), json!({}))).await;
    assert_eq!(outcome.status, 503, "{outcome:?}");
    assert!(outcome.retry_after_secs() >= 1);
    assert_eq!(s.calls.load(Ordering::SeqCst), 0);
}
