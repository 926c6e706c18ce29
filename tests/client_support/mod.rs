//! Helpers of the client tests: a counting, fault-injecting proxy in front of a `TestIssuer`,
//! and a clock the tests move by hand.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use agent_auth::client::Clock;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// What the proxy does with token requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward to the issuer.
    Forward,
    /// Answer with this status (and a plain-text body).
    Fail(u16),
    /// Answer this status for the next `n` requests, then forward.
    FailFirst(u16, usize),
    /// Never answer.
    Hang,
}

struct ProxyState {
    upstream: String,
    own: String,
    mode: Mutex<Mode>,
    token_requests: AtomicUsize,
    metadata_requests: AtomicUsize,
    last_token_body: Mutex<String>,
    http: reqwest::Client,
}

/// A proxy on `127.0.0.1:0` that forwards to the issuer, presents itself as the issuer (its
/// metadata names the proxy's URLs), and counts and perturbs `/token` requests.
pub struct Proxy {
    state: Arc<ProxyState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let own = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(ProxyState {
            upstream: upstream.to_owned(),
            own,
            mode: Mutex::new(Mode::Forward),
            token_requests: AtomicUsize::new(0),
            metadata_requests: AtomicUsize::new(0),
            last_token_body: Mutex::new(String::new()),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { state, task }
    }

    /// The proxy's URL: the issuer URL to configure a token source with.
    pub fn url(&self) -> &str {
        &self.state.own
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    /// `/token` requests received so far.
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// Metadata requests received so far.
    pub fn metadata_requests(&self) -> usize {
        self.state.metadata_requests.load(Ordering::SeqCst)
    }

    /// The form body of the last `/token` request.
    pub fn last_token_body(&self) -> String {
        self.state.last_token_body.lock().unwrap().clone()
    }
}

async fn handle(
    State(state): State<Arc<ProxyState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    if path == "/token" {
        state.token_requests.fetch_add(1, Ordering::SeqCst);
        *state.last_token_body.lock().unwrap() = String::from_utf8_lossy(&body).into_owned();
        let mode = *state.mode.lock().unwrap();
        match mode {
            Mode::Forward => {}
            Mode::Fail(code) => return failure(code),
            Mode::FailFirst(code, n) => {
                if n > 0 {
                    *state.mode.lock().unwrap() = Mode::FailFirst(code, n - 1);
                    return failure(code);
                }
            }
            Mode::Hang => std::future::pending::<()>().await,
        }
    }
    if path.starts_with("/.well-known/oauth-authorization-server") {
        state.metadata_requests.fetch_add(1, Ordering::SeqCst);
    }
    let target = format!(
        "{}{}",
        state.upstream,
        uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
    );
    let mut req = state.http.request(method, target).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            req = req.header(name, value);
        }
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let headers = res.headers().clone();
    let mut text = res.text().await.unwrap();
    if path.starts_with("/.well-known/") {
        // The proxy presents itself as the issuer.
        text = text.replace(&state.upstream, &state.own);
    }
    let mut out = (status, text).into_response();
    for name in [
        "content-type",
        "www-authenticate",
        "cache-control",
        "retry-after",
    ] {
        if let Some(v) = headers.get(name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

fn failure(code: u16) -> Response {
    (StatusCode::from_u16(code).unwrap(), "injected failure").into_response()
}

/// A clock that stands still until the test moves it.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<SystemTime>,
}

impl ManualClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            now: Mutex::new(SystemTime::now()),
        })
    }

    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap()
    }
}
