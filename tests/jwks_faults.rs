//! JWKS fault injection against a real local server: a raw HTTP/1.1 server on 127.0.0.1:0 that
//! misbehaves on purpose (drips bytes, truncates, sends 10 MB, sends garbage, flaps, redirects to
//! another host), with the effect on the layer asserted each time: status codes, fetch counts,
//! and that the last good keys keep serving.
//!
//! What tests/jwks_cache.rs already covers is not repeated here (500 and hanging issuers, an
//! unreachable issuer from the start, oversized documents under a small limit, garbage JWKs
//! beside a good one, a redirect from the start, discovery). Waiting is on signals (the server's
//! connection counter, join handles); the only sleeps are the faults themselves (a slow drip).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agent_auth::{AgentAuth, AgentAuthLayer};
use serde_json::{Value, json};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const UNKNOWN_KEY: &str = "unknown signing key";
const BAD_SIGNATURE: &str = "signature verification failed";
/// A short HTTP timeout for the faults that stall.
const TIMEOUT: Duration = Duration::from_millis(800);

/// How the server answers the next requests.
#[derive(Clone)]
enum Fault {
    /// 200 with this document.
    Serve(Value),
    /// 200, `Content-Length` right, the body one byte per `every`.
    Drip { body: Vec<u8>, every: Duration },
    /// 200 with `Content-Length` larger than the body by `missing`, then the connection closes.
    Truncated { body: Vec<u8>, missing: usize },
    /// 200 with an endless body (chunked, or with this `Content-Length`), written until the
    /// client stops reading.
    Huge { content_length: Option<u64> },
    /// 200 with these bytes as a JSON body.
    Body(Vec<u8>),
    /// An empty answer with this status.
    Status(u16),
    /// A redirect with this status to `location`.
    Redirect(u16, String),
    /// These raw bytes instead of an HTTP response.
    Raw(Vec<u8>),
}

struct FaultState {
    fault: Mutex<Fault>,
    /// Faults to use for the next requests, one each, before `fault`.
    queue: Mutex<Vec<Fault>>,
    requests: watch::Sender<usize>,
    /// Body bytes written by `Huge` answers.
    huge_bytes: AtomicUsize,
}

/// A raw HTTP/1.1 server on 127.0.0.1:0; every connection is one request and `Connection:
/// close`.
#[derive(Clone)]
struct FaultServer {
    url: String,
    state: Arc<FaultState>,
}

impl FaultServer {
    async fn start(fault: Fault) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let (requests, _) = watch::channel(0);
        let state = Arc::new(FaultState {
            fault: Mutex::new(fault),
            queue: Mutex::new(Vec::new()),
            requests,
            huge_bytes: AtomicUsize::new(0),
        });
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let state = shared.clone();
                tokio::spawn(async move { answer(stream, &state).await });
            }
        });
        FaultServer { url, state }
    }

    fn set(&self, fault: Fault) {
        *self.state.fault.lock().unwrap() = fault;
    }

    /// Answers the next requests with `faults`, in order, then with the current fault.
    fn then(&self, faults: Vec<Fault>) {
        let mut queue = self.state.queue.lock().unwrap();
        *queue = faults;
        queue.reverse();
    }

    fn requests(&self) -> usize {
        *self.state.requests.borrow()
    }

    fn huge_bytes(&self) -> usize {
        self.state.huge_bytes.load(Ordering::SeqCst)
    }

    /// Waits (signalled) until the server has read `count` requests.
    async fn wait_for_requests(&self, count: usize) {
        let mut receiver = self.state.requests.subscribe();
        tokio::time::timeout(Duration::from_secs(30), receiver.wait_for(|n| *n >= count))
            .await
            .expect("timed out waiting for requests")
            .unwrap();
    }
}

async fn answer(mut stream: TcpStream, state: &FaultState) {
    // Read the request head; the body (none for GET) is ignored.
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let fault = state
        .queue
        .lock()
        .unwrap()
        .pop()
        .unwrap_or_else(|| state.fault.lock().unwrap().clone());
    state.requests.send_modify(|n| *n += 1);
    let ok_head = |len: Option<u64>| {
        let length = match len {
            Some(len) => format!("Content-Length: {len}\r\n"),
            None => "Transfer-Encoding: chunked\r\n".to_owned(),
        };
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{length}Connection: close\r\n\r\n"
        )
        .into_bytes()
    };
    let _ = match fault {
        Fault::Serve(document) => {
            let body = document.to_string().into_bytes();
            let mut out = ok_head(Some(body.len() as u64));
            out.extend_from_slice(&body);
            stream.write_all(&out).await
        }
        Fault::Body(body) => {
            let mut out = ok_head(Some(body.len() as u64));
            out.extend_from_slice(&body);
            stream.write_all(&out).await
        }
        Fault::Drip { body, every } => {
            if stream
                .write_all(&ok_head(Some(body.len() as u64)))
                .await
                .is_ok()
            {
                for byte in body {
                    tokio::time::sleep(every).await;
                    if stream.write_all(&[byte]).await.is_err() {
                        break;
                    }
                }
            }
            Ok(())
        }
        Fault::Truncated { body, missing } => {
            let mut out = ok_head(Some((body.len() + missing) as u64));
            out.extend_from_slice(&body);
            stream.write_all(&out).await
        }
        Fault::Huge { content_length } => {
            let chunk = vec![b' '; 64 * 1024];
            let mut result = stream.write_all(&ok_head(content_length)).await;
            if result.is_ok() {
                result = stream.write_all(b"{\"keys\":[").await;
            }
            // Whitespace inside the array: valid JSON for as long as it goes on.
            while result.is_ok() && state.huge_bytes.load(Ordering::SeqCst) < 512 << 20 {
                result = match content_length {
                    Some(_) => stream.write_all(&chunk).await,
                    None => {
                        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
                        framed.extend_from_slice(&chunk);
                        framed.extend_from_slice(b"\r\n");
                        stream.write_all(&framed).await
                    }
                };
                if result.is_ok() {
                    state.huge_bytes.fetch_add(chunk.len(), Ordering::SeqCst);
                }
            }
            result
        }
        Fault::Status(code) => {
            let out =
                format!("HTTP/1.1 {code} Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            stream.write_all(out.as_bytes()).await
        }
        Fault::Redirect(code, location) => {
            let out = format!(
                "HTTP/1.1 {code} Moved\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            stream.write_all(out.as_bytes()).await
        }
        Fault::Raw(bytes) => stream.write_all(&bytes).await,
    };
    let _ = stream.shutdown().await;
}

fn document(keys: &[&TestKey]) -> Value {
    json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() })
}

const ISSUER: &str = "https://issuer.example.com";

/// The tickets API trusting [`ISSUER`] with keys from `server`, configured by `configure`.
async fn api(
    server: &FaultServer,
    configure: impl FnOnce(AgentAuth) -> AgentAuth,
) -> (AgentAuthLayer, String) {
    let auth = configure(
        AgentAuth::new(ISSUER)
            .audience(AUDIENCE)
            .jwks_uri(&server.url)
            .http_timeout(TIMEOUT),
    )
    .build()
    .unwrap();
    let url = format!("{}/tickets", serve_api(auth.clone()).await);
    (auth, url)
}

fn token(key: &TestKey) -> String {
    key.token(ISSUER, json!({}))
}

fn assert_accepted(outcome: &Outcome, why: &str) {
    assert_eq!(outcome.status, 200, "{why}: {outcome:?}");
    assert_eq!(outcome.json()["agent_id"], AGENT_ID, "{why}");
}

fn assert_invalid(outcome: &Outcome, description: &str, why: &str) {
    assert_eq!(outcome.status, 401, "{why}: {outcome:?}");
    assert_eq!(outcome.error().as_deref(), Some("invalid_token"), "{why}");
    assert_eq!(
        outcome.error_description().as_deref(),
        Some(description),
        "{why}"
    );
}

fn assert_unavailable(outcome: &Outcome, why: &str) {
    assert_eq!(outcome.status, 503, "{why}: {outcome:?}");
    assert!(outcome.retry_after_secs() >= 1, "{why}");
    assert_eq!(outcome.error(), None, "{why}");
}

/// From the start: the fault gives `503` within the timeout (not after the fault's own pace),
/// with exactly one fetch. After caching: a refresh under the fault fails, the last good key
/// keeps verifying, and a key only in the faulty answer is unknown.
async fn fault_from_start_and_after_caching(
    make_fault: impl Fn(&TestKey, &TestKey) -> Fault,
    what: &str,
) {
    let key1 = TestKey::ed25519("key-1");
    let key2 = TestKey::ed25519("key-2");

    let server = FaultServer::start(make_fault(&key1, &key2)).await;
    let (auth, url) = api(&server, |auth| auth).await;
    let started = Instant::now();
    assert_unavailable(
        &get_with_token(&url, &token(&key1)).await,
        &format!("{what}, from the start"),
    );
    // Bounded by the HTTP timeout (a hanging fault would hang forever without it), with a
    // margin a loaded machine keeps.
    assert!(
        started.elapsed() < TIMEOUT + Duration::from_secs(10),
        "{what}: bounded by the HTTP timeout"
    );
    assert_eq!(server.requests(), 1, "{what}");
    assert_eq!(auth.key_fetch_count(), 1, "{what}");

    let server = FaultServer::start(Fault::Serve(document(&[&key1]))).await;
    let (auth, url) = api(&server, |auth| auth).await;
    assert_accepted(&get_with_token(&url, &token(&key1)).await, what);
    server.set(make_fault(&key1, &key2));
    assert!(
        auth.refresh_keys().await.is_err(),
        "{what}: the refresh fails"
    );
    assert_eq!(server.requests(), 2, "{what}");
    assert_accepted(
        &get_with_token(&url, &token(&key1)).await,
        &format!("{what}: last good key"),
    );
    assert_invalid(
        &get_with_token(&url, &token(&key2)).await,
        UNKNOWN_KEY,
        &format!("{what}: a key only in the faulty answer"),
    );
    assert_eq!(
        server.requests(),
        2,
        "{what}: the unknown kid waited for the cooldown"
    );
}

#[tokio::test]
async fn a_slow_drip_times_out_and_keeps_the_last_good_keys() {
    fault_from_start_and_after_caching(
        |_, key2| Fault::Drip {
            body: document(&[key2]).to_string().into_bytes(),
            // ~200 bytes at 20 ms each: seconds, well past the 800 ms timeout.
            every: Duration::from_millis(20),
        },
        "slow drip",
    )
    .await;
}

#[tokio::test]
async fn a_truncated_body_is_never_used() {
    // The body sent is the complete, valid document; only Content-Length says more is coming.
    fault_from_start_and_after_caching(
        |_, key2| Fault::Truncated {
            body: document(&[key2]).to_string().into_bytes(),
            missing: 100,
        },
        "truncated body",
    )
    .await;
}

#[tokio::test]
async fn invalid_json_is_never_used() {
    for (what, body) in [
        ("not JSON", b"<html>502 Bad Gateway</html>".to_vec()),
        ("cut JSON", br#"{"keys":[{"kty":"OKP""#.to_vec()),
        ("JSON array", b"[]".to_vec()),
        ("keys not a list", br#"{"keys":{"kty":"OKP"}}"#.to_vec()),
        ("no keys member", br#"{"jwks":[]}"#.to_vec()),
        ("empty body", Vec::new()),
        ("invalid UTF-8", b"{\"keys\":[\"\xff\"]}".to_vec()),
    ] {
        fault_from_start_and_after_caching(move |_, _| Fault::Body(body.clone()), what).await;
    }
}

#[tokio::test]
async fn garbage_instead_of_http_is_a_failed_fetch() {
    for (what, bytes) in [
        ("not HTTP", b"SSH-2.0-OpenSSH_9.6\r\n".to_vec()),
        ("closed without a response", Vec::new()),
        (
            "a header line too long",
            format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "x".repeat(200_000)).into_bytes(),
        ),
    ] {
        fault_from_start_and_after_caching(move |_, _| Fault::Raw(bytes.clone()), what).await;
    }
}

#[tokio::test]
async fn a_10_mb_body_is_refused_while_streaming() {
    for (what, content_length) in [
        ("10 MB with Content-Length", Some(10u64 << 20)),
        ("endless chunked body", None),
    ] {
        // From the start.
        let key1 = TestKey::ed25519("key-1");
        let server = FaultServer::start(Fault::Huge { content_length }).await;
        let (_, url) = api(&server, |auth| auth).await;
        assert_unavailable(&get_with_token(&url, &token(&key1)).await, what);
        assert_eq!(server.requests(), 1, "{what}");

        // After caching, through an explicit refresh.
        let server = FaultServer::start(Fault::Serve(document(&[&key1]))).await;
        let (auth, url) = api(&server, |auth| auth).await;
        assert_accepted(&get_with_token(&url, &token(&key1)).await, what);
        server.set(Fault::Huge { content_length });
        assert!(auth.refresh_keys().await.is_err(), "{what}");
        assert_accepted(
            &get_with_token(&url, &token(&key1)).await,
            &format!("{what}: last good key"),
        );
    }
}

#[tokio::test]
async fn a_huge_chunked_body_is_abandoned_near_the_limit_not_read_to_the_end() {
    // With no Content-Length the limit can only be enforced while reading: the client must stop
    // (and drop the connection) soon after 256 KiB, however long the issuer keeps sending.
    let key1 = TestKey::ed25519("key-1");
    let server = FaultServer::start(Fault::Huge {
        content_length: None,
    })
    .await;
    let (_, url) = api(&server, |auth| auth.http_timeout(Duration::from_secs(20))).await;
    let started = Instant::now();
    assert_unavailable(&get_with_token(&url, &token(&key1)).await, "endless body");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "refused early, not at the timeout"
    );
    // The server writes until its writes fail; what it got through is bounded by the limit plus
    // the socket buffers, nowhere near the 512 MiB it would send to a reader that kept reading.
    let sent = server.huge_bytes();
    println!("endless body: the server got {sent} bytes out before the client hung up");
    assert!(
        sent < 64 << 20,
        "the client read {sent} bytes of an endless body"
    );
}

#[tokio::test]
async fn a_document_with_only_unknown_key_types_holds_no_keys() {
    let key1 = TestKey::ed25519("key-1");
    let unknown_only = json!({ "keys": [
        { "kty": "oct", "kid": "key-1", "k": "c2VjcmV0" },
        { "kty": "OKP", "crv": "X25519", "kid": "key-1", "x": key1.jwk()["x"] },
        { "kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": "AAAA" },
        { "kty": "EC", "crv": "P-521", "kid": "p521", "x": "AAAA", "y": "AAAA" },
        { "kty": "EC", "crv": "secp256k1", "kid": "k1", "x": "AAAA", "y": "AAAA" },
        { "kty": "PQC", "kid": "ml-dsa" },
        { "kid": "no-kty" },
    ] });

    // From the start: the issuer answered, with no usable key: the token's key is unknown (401,
    // not 503). The first fetch is not a refetch, so the next unknown kid may refetch once;
    // after that, nothing is fetched again within the cooldown.
    let server = FaultServer::start(Fault::Serve(unknown_only.clone())).await;
    let (auth, url) = api(&server, |auth| auth).await;
    for (round, fetches) in [(1, 1), (2, 2), (3, 2), (4, 2)] {
        assert_invalid(
            &get_with_token(&url, &token(&key1)).await,
            UNKNOWN_KEY,
            &format!("unusable keys only, request {round}"),
        );
        assert_eq!(server.requests(), fetches, "request {round}");
    }
    assert_eq!(auth.key_fetch_count(), 2);

    // After caching: the issuer's word is final; a set without key-1 retires key-1 (as a
    // rotation would), even though an X25519 key reuses its kid and x.
    let server = FaultServer::start(Fault::Serve(document(&[&key1]))).await;
    let (auth, url) = api(&server, |auth| auth).await;
    assert_accepted(&get_with_token(&url, &token(&key1)).await, "cached");
    server.set(Fault::Serve(unknown_only));
    auth.refresh_keys()
        .await
        .expect("a parseable document is a successful refresh");
    assert_invalid(
        &get_with_token(&url, &token(&key1)).await,
        UNKNOWN_KEY,
        "key-1 retired",
    );
}

#[tokio::test]
async fn duplicate_kids_keep_the_first_key() {
    let first = TestKey::ed25519("dup");
    let second = TestKey::ed25519("dup");
    let rsa = TestKey::rsa("dup");
    for (order, keys, winner, loser) in [
        ("first, second", vec![&first, &second], &first, &second),
        ("second, first", vec![&second, &first], &second, &first),
    ] {
        let server = FaultServer::start(Fault::Serve(document(&keys))).await;
        let (_, url) = api(&server, |auth| auth).await;
        assert_accepted(&get_with_token(&url, &token(winner)).await, order);
        assert_invalid(
            &get_with_token(&url, &token(loser)).await,
            BAD_SIGNATURE,
            order,
        );
    }
    // Another key type under the same kid does not replace the first either.
    let server = FaultServer::start(Fault::Serve(document(&[&first, &rsa]))).await;
    let (_, url) = api(&server, |auth| auth).await;
    assert_accepted(&get_with_token(&url, &token(&first)).await, "Ed25519 first");
    assert_invalid(
        &get_with_token(&url, &token(&rsa)).await,
        "algorithm does not match the signing key",
        "RSA under the same kid",
    );
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn a_flapping_issuer_never_breaks_valid_requests() {
    let key1 = TestKey::ed25519("key-1");
    let key2 = TestKey::ed25519("key-2");
    let server = FaultServer::start(Fault::Serve(document(&[&key1]))).await;
    let (auth, url) = api(&server, |auth| auth).await;
    assert_accepted(&get_with_token(&url, &token(&key1)).await, "cached");

    // 500, 200, 500, 200 … : every failure keeps the keys, every success replaces them.
    let flaps = 10;
    let mut expected_ok = 0;
    for round in 0..flaps {
        let ok = round % 2 == 1;
        let fault = if ok {
            // The successes publish key-2 as well, from the second success on.
            let keys: Vec<&TestKey> = if expected_ok == 0 {
                vec![&key1]
            } else {
                vec![&key1, &key2]
            };
            Fault::Serve(document(&keys))
        } else {
            Fault::Status(if round % 4 == 0 { 500 } else { 503 })
        };
        server.set(fault);
        assert_eq!(auth.refresh_keys().await.is_ok(), ok, "round {round}");
        if ok {
            expected_ok += 1;
        }
        for _ in 0..3 {
            assert_accepted(
                &get_with_token(&url, &token(&key1)).await,
                &format!("round {round}"),
            );
        }
    }
    assert_eq!(
        server.requests(),
        1 + flaps,
        "exactly one fetch per refresh"
    );
    assert_accepted(
        &get_with_token(&url, &token(&key2)).await,
        "key-2 from a successful fetch",
    );

    // Concurrent valid requests while refreshes alternate underneath them.
    server.then(
        (0..20)
            .map(|i| {
                if i % 2 == 0 {
                    Fault::Status(500)
                } else {
                    Fault::Serve(document(&[&key1, &key2]))
                }
            })
            .collect(),
    );
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (url, token) = (url.clone(), token(if i % 2 == 0 { &key1 } else { &key2 }));
        requests.spawn(async move { get_with_token(&url, &token).await });
    }
    let refresher = {
        let auth = auth.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                let _ = auth.refresh_keys().await;
            }
        })
    };
    while let Some(outcome) = requests.join_next().await {
        assert_accepted(&outcome.unwrap(), "during flapping refreshes");
    }
    refresher.await.unwrap();
    assert_eq!(server.requests(), 1 + flaps + 20);
}

#[tokio::test]
async fn an_issuer_that_went_away_keeps_the_last_good_keys() {
    // Connection refused after caching (an IP literal: no DNS involved at any point).
    let key1 = TestKey::ed25519("key-1");
    let server = FaultServer::start(Fault::Serve(document(&[&key1]))).await;
    let refused = format!("http://127.0.0.1:{}/jwks.json", refused_port());
    // Keys cached, then the issuer closes every connection without a word.
    let (auth, url) = api(&server, |auth| auth).await;
    assert_accepted(&get_with_token(&url, &token(&key1)).await, "cached");
    server.set(Fault::Raw(Vec::new()));
    assert!(auth.refresh_keys().await.is_err());
    assert_accepted(&get_with_token(&url, &token(&key1)).await, "last good keys");

    // Nothing listening at all: refused at connect.
    // With a long HTTP timeout, so that "fails fast" means "did not wait for the timeout",
    // with a margin a loaded machine keeps.
    let long_timeout = Duration::from_secs(60);
    let (auth, url) = api(&server, |auth| {
        auth.jwks_uri(&refused).http_timeout(long_timeout)
    })
    .await;
    let started = Instant::now();
    assert_unavailable(
        &get_with_token(&url, &token(&key1)).await,
        "connection refused",
    );
    assert!(
        started.elapsed() < long_timeout / 4,
        "a refused connection fails fast"
    );
    assert!(auth.refresh_keys().await.is_err());
    assert_eq!(auth.key_fetch_count(), 2);
}

#[tokio::test]
async fn redirects_to_another_host_are_never_followed() {
    let key1 = TestKey::ed25519("key-1");
    let key2 = TestKey::ed25519("key-2");
    // The target: another host name (localhost, not 127.0.0.1) serving a key of its own.
    let target = FaultServer::start(Fault::Serve(document(&[&key1, &key2]))).await;
    let elsewhere = target.url.replace("127.0.0.1", "localhost");
    for code in [301, 302, 303, 307, 308] {
        // From the start.
        let server = FaultServer::start(Fault::Redirect(code, elsewhere.clone())).await;
        let (_, url) = api(&server, |auth| auth).await;
        assert_unavailable(
            &get_with_token(&url, &token(&key1)).await,
            &format!("{code} from the start"),
        );
        // After caching.
        let server = FaultServer::start(Fault::Serve(document(&[&key1]))).await;
        let (auth, url) = api(&server, |auth| auth).await;
        assert_accepted(&get_with_token(&url, &token(&key1)).await, "cached");
        server.set(Fault::Redirect(code, elsewhere.clone()));
        assert!(auth.refresh_keys().await.is_err(), "{code}");
        assert_accepted(
            &get_with_token(&url, &token(&key1)).await,
            &format!("{code}: last good key"),
        );
        assert_invalid(
            &get_with_token(&url, &token(&key2)).await,
            UNKNOWN_KEY,
            &format!("{code}: target's key"),
        );
    }
    assert_eq!(target.requests(), 0, "no redirect was followed");
}

#[tokio::test]
async fn discovery_metadata_pointing_outside_http_is_refused() {
    // RFC 8414 metadata whose jwks_uri is not an http(s) URL: nothing is fetched from it.
    let key1 = TestKey::ed25519("key-1");
    for jwks_uri in [
        "file:///etc/passwd",
        "ftp://127.0.0.1/jwks.json",
        "data:application/json,{\"keys\":[]}",
        "not a url",
    ] {
        let metadata =
            FaultServer::start(Fault::Serve(json!({ "issuer": "", "jwks_uri": jwks_uri }))).await;
        let issuer = metadata.url.trim_end_matches("/jwks.json").to_owned();
        metadata.set(Fault::Serve(
            json!({ "issuer": issuer, "jwks_uri": jwks_uri }),
        ));
        let auth = AgentAuth::new(&issuer)
            .audience(AUDIENCE)
            .discover()
            .http_timeout(TIMEOUT)
            .build()
            .unwrap();
        let url = format!("{}/tickets", serve_api(auth.clone()).await);
        assert_unavailable(
            &get_with_token(&url, &key1.token(&issuer, json!({}))).await,
            jwks_uri,
        );
        assert_eq!(
            metadata.requests(),
            1,
            "{jwks_uri}: only the metadata was asked"
        );
    }
}

#[tokio::test]
async fn a_drip_during_an_unknown_kid_refetch_does_not_delay_valid_requests() {
    let key1 = TestKey::ed25519("key-1");
    let key2 = TestKey::ed25519("key-2");
    let server = FaultServer::start(Fault::Serve(document(&[&key1]))).await;
    // The drip outlasts the HTTP timeout (the refetch ends by timing out), and the timeout is
    // long enough that the valid requests below finish first on any machine: the verdict is
    // their order, not their latency.
    let refetch_timeout = Duration::from_secs(2);
    let (_, url) = api(&server, |auth| auth.http_timeout(refetch_timeout)).await;
    assert_accepted(&get_with_token(&url, &token(&key1)).await, "cached");
    server.set(Fault::Drip {
        body: document(&[&key1, &key2]).to_string().into_bytes(),
        every: Duration::from_millis(100),
    });
    let pending = {
        let (url, token) = (url.clone(), token(&key2));
        tokio::spawn(async move { get_with_token(&url, &token).await })
    };
    server.wait_for_requests(2).await;
    for _ in 0..10 {
        assert_accepted(
            &get_with_token(&url, &token(&key1)).await,
            "during the drip",
        );
    }
    // All ten were answered while the refetch was still dripping: they did not wait for it.
    assert!(
        !pending.is_finished(),
        "valid requests waited for the dripping refetch"
    );
    assert_invalid(
        &pending.await.unwrap(),
        UNKNOWN_KEY,
        "the refetch timed out",
    );
}

#[tokio::test]
async fn a_jwks_that_is_a_json_array_is_invalid() {
    // RFC 7517 §5: a JWK Set is a JSON object with a "keys" member.
    fault_from_start_and_after_caching(
        |_, key2| Fault::Body(format!("[[{}]]", key2.jwk()).into_bytes()),
        "JWKS as a positional array",
    )
    .await;
}
