//! Shared parts of the integration tests: real keys, real signatures, a real JWKS server on
//! 127.0.0.1:0 that counts its fetches, and a protected axum app served over real HTTP.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agent_auth::{Agent, AgentAuth, AgentAuthLayer, RequireScopes};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding, RsaKeyPair,
};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tokio::sync::watch;

pub const AUDIENCE: &str = "https://api.example.com/tickets";
pub const AGENT_ID: &str = "agt_7c1de2f3a4b5c6d7e8f9a0b1c2d3e4f5";

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A private key of one of the kinds we accept, with the JWK of its public half.
pub enum KeyKind {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
    P384(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn RsaEncoding, &'static str),
}

pub struct TestKey {
    pub kid: String,
    pub kind: KeyKind,
}

impl TestKey {
    pub fn ed25519(kid: &str) -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        TestKey {
            kid: kid.into(),
            kind: KeyKind::Ed25519(pair),
        }
    }

    pub fn p256(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        TestKey {
            kid: kid.into(),
            kind: KeyKind::P256(pair),
        }
    }

    pub fn p384(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        TestKey {
            kid: kid.into(),
            kind: KeyKind::P384(pair),
        }
    }

    pub fn rsa(kid: &str) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        TestKey {
            kid: kid.into(),
            kind: KeyKind::Rsa(pair, &RSA_PKCS1_SHA256, "RS256"),
        }
    }

    pub fn rsa_pss(kid: &str) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        TestKey {
            kid: kid.into(),
            kind: KeyKind::Rsa(pair, &RSA_PSS_SHA256, "PS256"),
        }
    }

    /// The `alg` this key signs with.
    pub fn alg(&self) -> &'static str {
        match &self.kind {
            KeyKind::Ed25519(_) => "EdDSA",
            KeyKind::P256(_) => "ES256",
            KeyKind::P384(_) => "ES384",
            KeyKind::Rsa(_, _, alg) => alg,
        }
    }

    /// The public JWK, with `kid`, `use` and `alg`.
    pub fn jwk(&self) -> Value {
        let mut jwk = self.jwk_without_alg();
        jwk["alg"] = json!(self.alg());
        jwk["use"] = json!("sig");
        jwk
    }

    /// The public JWK with only `kid` and key material (the algorithm bound by key type).
    pub fn jwk_without_alg(&self) -> Value {
        match &self.kind {
            KeyKind::Ed25519(pair) => json!({
                "kty": "OKP", "crv": "Ed25519", "kid": self.kid,
                "x": b64(pair.public_key().as_ref()),
            }),
            KeyKind::P256(pair) | KeyKind::P384(pair) => {
                let point = pair.public_key().as_ref();
                let len = (point.len() - 1) / 2;
                json!({
                    "kty": "EC",
                    "crv": if len == 32 { "P-256" } else { "P-384" },
                    "kid": self.kid,
                    "x": b64(&point[1..1 + len]),
                    "y": b64(&point[1 + len..]),
                })
            }
            KeyKind::Rsa(pair, _, _) => json!({
                "kty": "RSA", "kid": self.kid,
                "n": b64(pair.public_key().modulus().big_endian_without_leading_zero()),
                "e": b64(pair.public_key().exponent().big_endian_without_leading_zero()),
            }),
        }
    }

    /// Raw signature over `message`.
    pub fn sign_bytes(&self, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.kind {
            KeyKind::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            KeyKind::P256(pair) | KeyKind::P384(pair) => {
                pair.sign(&rng, message).unwrap().as_ref().to_vec()
            }
            KeyKind::Rsa(pair, encoding, _) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(*encoding, &rng, message, &mut signature).unwrap();
                signature
            }
        }
    }

    /// A valid agent token for `issuer`, signed by this key, with `changes` merged into the
    /// claims (a `null` value removes the claim).
    pub fn token(&self, issuer: &str, changes: Value) -> String {
        self.token_with(self.header(), agent_claims(issuer, changes))
    }

    /// The header this key would normally use.
    pub fn header(&self) -> Value {
        json!({ "alg": self.alg(), "kid": self.kid, "typ": "at+jwt" })
    }

    /// Signs arbitrary header and claims JSON values.
    pub fn token_with(&self, header: Value, claims: Value) -> String {
        self.token_raw(&header.to_string(), &claims.to_string())
    }

    /// Signs exact header and claims JSON texts (for duplicate keys and other oddities).
    pub fn token_raw(&self, header: &str, claims: &str) -> String {
        let signing_input = format!("{}.{}", b64(header), b64(claims));
        let signature = self.sign_bytes(signing_input.as_bytes());
        format!("{signing_input}.{}", b64(signature))
    }
}

/// Claims of a valid agent token, with `changes` merged in (`null` removes a claim).
pub fn agent_claims(issuer: &str, changes: Value) -> Value {
    let now = now();
    let mut claims = json!({
        "iss": issuer,
        "sub": AGENT_ID,
        "aud": AUDIENCE,
        "exp": now + 300,
        "iat": now,
        "jti": format!("jti-{now}-{}", rand_suffix()),
        "client_id": AGENT_ID,
        "scope": "tickets:read tickets:triage",
        "dat": { "type": "agent" },
    });
    if let Value::Object(changes) = changes {
        for (name, value) in changes {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(&name);
            } else {
                claims[name] = value;
            }
        }
    }
    claims
}

fn rand_suffix() -> usize {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// How the JWKS server answers.
#[derive(Clone, Debug)]
pub enum Mode {
    /// 200 with the current document.
    Serve,
    /// This status, empty body.
    Status(u16),
    /// Accept the request and never answer.
    Hang,
}

struct JwksState {
    document: Mutex<Value>,
    mode: Mutex<Mode>,
    cache_control: Mutex<Option<String>>,
    etag: Mutex<Option<String>>,
    fetches: AtomicUsize,
    not_modified: AtomicUsize,
    fetched: watch::Sender<usize>,
    issuer: Mutex<String>,
}

/// A JWKS server on 127.0.0.1:0 (also serving RFC 8414 metadata) that counts every fetch.
#[derive(Clone)]
pub struct JwksServer {
    pub addr: SocketAddr,
    state: Arc<JwksState>,
}

impl JwksServer {
    pub async fn start(keys: &[&TestKey]) -> Self {
        let (fetched, _) = watch::channel(0);
        let state = Arc::new(JwksState {
            document: Mutex::new(
                json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }),
            ),
            mode: Mutex::new(Mode::Serve),
            cache_control: Mutex::new(None),
            etag: Mutex::new(None),
            fetches: AtomicUsize::new(0),
            not_modified: AtomicUsize::new(0),
            fetched,
            issuer: Mutex::new(String::new()),
        });
        let app = Router::new()
            .route("/jwks.json", get(serve_jwks))
            .route(
                "/.well-known/oauth-authorization-server",
                get(serve_metadata),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        *state.issuer.lock().unwrap() = format!("http://{addr}");
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        JwksServer { addr, state }
    }

    /// The issuer URL (`http://127.0.0.1:PORT`); the JWKS is at `{issuer}/jwks.json`.
    pub fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A layer for this issuer and [`AUDIENCE`].
    pub fn auth(&self) -> AgentAuth {
        AgentAuth::new(self.issuer()).audience(AUDIENCE)
    }

    pub fn set_keys(&self, keys: &[&TestKey]) {
        self.set_document(json!({ "keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>() }));
    }

    pub fn set_document(&self, document: Value) {
        *self.state.document.lock().unwrap() = document;
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap() = mode;
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        *self.state.cache_control.lock().unwrap() = value.map(Into::into);
    }

    pub fn set_etag(&self, value: Option<&str>) {
        *self.state.etag.lock().unwrap() = value.map(Into::into);
    }

    /// JWKS requests received so far (any outcome).
    pub fn fetches(&self) -> usize {
        self.state.fetches.load(Ordering::SeqCst)
    }

    /// Requests answered `304 Not Modified`.
    pub fn not_modified(&self) -> usize {
        self.state.not_modified.load(Ordering::SeqCst)
    }

    /// Waits (signalled, no polling) until at least `count` JWKS requests have arrived.
    pub async fn wait_for_fetches(&self, count: usize) {
        let mut receiver = self.state.fetched.subscribe();
        tokio::time::timeout(Duration::from_secs(30), receiver.wait_for(|n| *n >= count))
            .await
            .expect("timed out waiting for JWKS fetches")
            .unwrap();
    }
}

async fn serve_jwks(State(state): State<Arc<JwksState>>, headers: HeaderMap) -> Response {
    let mode = state.mode.lock().unwrap().clone();
    let count = state.fetches.fetch_add(1, Ordering::SeqCst) + 1;
    state.fetched.send_replace(count);
    match mode {
        Mode::Hang => std::future::pending().await,
        Mode::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Mode::Serve => {
            let etag = state.etag.lock().unwrap().clone();
            let mut response = match (&etag, headers.get(header::IF_NONE_MATCH)) {
                (Some(etag), Some(sent)) if sent.as_bytes() == etag.as_bytes() => {
                    state.not_modified.fetch_add(1, Ordering::SeqCst);
                    StatusCode::NOT_MODIFIED.into_response()
                }
                _ => Json(state.document.lock().unwrap().clone()).into_response(),
            };
            if let Some(etag) = etag {
                response
                    .headers_mut()
                    .insert(header::ETAG, HeaderValue::from_str(&etag).unwrap());
            }
            if let Some(cc) = state.cache_control.lock().unwrap().clone() {
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_str(&cc).unwrap());
            }
            response
        }
    }
}

async fn serve_metadata(State(state): State<Arc<JwksState>>) -> Json<Value> {
    let issuer = state.issuer.lock().unwrap().clone();
    Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/jwks.json"),
        "token_endpoint": format!("{issuer}/token"),
    }))
}

/// The tickets routes of `examples/tickets.rs` behind `auth`, served on 127.0.0.1:0. Returns the base URL.
pub async fn serve_api(auth: AgentAuthLayer) -> String {
    async fn list(agent: Agent) -> Json<Value> {
        Json(json!({
            "agent_id": agent.id(),
            "scopes": agent.scopes().collect::<Vec<_>>(),
            "jti": agent.jwt_id(),
            "claims": agent.claims(),
        }))
    }
    async fn triage(agent: Agent) -> Json<Value> {
        Json(json!({ "agent_id": agent.id(), "status": "triaged" }))
    }
    let app = Router::new()
        .route(
            "/tickets",
            get(list).layer(RequireScopes::all(["tickets:read"])),
        )
        .route(
            "/tickets/{id}/triage",
            axum::routing::post(triage).layer(RequireScopes::all(["tickets:triage"])),
        )
        .route(
            "/either",
            get(list).layer(RequireScopes::any(["tickets:admin", "tickets:read"])),
        )
        .route("/whoami", get(list))
        .layer(auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// A reqwest client that never uses a proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// What a response said: status, and the `error` of its `WWW-Authenticate` challenge.
#[derive(Debug)]
pub struct Outcome {
    pub status: u16,
    pub challenge: Option<String>,
    pub retry_after: Option<String>,
    pub body: String,
}

impl Outcome {
    /// The `error="…"` parameter, if any.
    pub fn error(&self) -> Option<String> {
        let challenge = self.challenge.as_deref()?;
        let start = challenge.find("error=\"")? + 7;
        let end = challenge[start..].find('"')? + start;
        Some(challenge[start..end].to_owned())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// GETs `url` with `Authorization: Bearer {token}`.
pub async fn get_with_token(url: &str, token: &str) -> Outcome {
    send(
        client()
            .get(url)
            .header("authorization", format!("Bearer {token}")),
    )
    .await
}

pub async fn send(request: reqwest::RequestBuilder) -> Outcome {
    let response = request.send().await.unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &reqwest::header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let challenge = header("www-authenticate");
    let retry_after = header("retry-after");
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    Outcome {
        status,
        challenge,
        retry_after,
        body,
    }
}

// ---- Additions for the JWKS cache and plain-hyper tests (new items only). ----

impl JwksServer {
    /// Makes the RFC 8414 metadata speak for `issuer` (its `jwks_uri` becomes
    /// `{issuer}/jwks.json`), for discovery tests where the metadata does not match.
    pub fn set_metadata_issuer(&self, issuer: &str) {
        *self.state.issuer.lock().unwrap() = issuer.to_owned();
    }
}

impl Outcome {
    /// The `error_description="…"` parameter, if any.
    pub fn error_description(&self) -> Option<String> {
        let challenge = self.challenge.as_deref()?;
        let start = challenge.find("error_description=\"")? + 19;
        let end = challenge[start..].find('"')? + start;
        Some(challenge[start..end].to_owned())
    }

    /// `Retry-After` as whole seconds; panics unless it is a non-negative integer.
    pub fn retry_after_secs(&self) -> u64 {
        let value = self.retry_after.as_deref().expect("Retry-After header");
        value
            .parse()
            .unwrap_or_else(|_| panic!("Retry-After is not an integer: {value:?}"))
    }
}

/// Serves `app` on 127.0.0.1:0 and returns its address.
pub async fn serve_router(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// A loopback port nothing listens on (bound, then released): connections are refused.
pub fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
