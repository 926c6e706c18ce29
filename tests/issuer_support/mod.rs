//! Helpers shared by the `issuer_*` integration tests: a raw HTTP client (loopback only), form
//! posts to the token endpoint, JWT decoding.
#![allow(dead_code)]

pub mod keyed;
pub mod wallet;

use agent_auth::issuer::TestIssuer;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A plain client: no proxies, no redirects.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A response read in full.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts the management error shape and returns the code.
    pub fn api_error(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{}",
            self.text
        );
        let v = self.json();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 1, "{v}");
        let err = v["error"].as_object().unwrap();
        assert_eq!(err.len(), 2, "{v}");
        assert!(
            err["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        err["code"].as_str().unwrap().to_owned()
    }

    /// Asserts the RFC 6749 §5.2 error shape (and no-store) and returns `error`.
    pub fn oauth_error(&self, status: u16) -> String {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(self.header("cache-control"), Some("no-store"));
        assert_eq!(self.header("pragma"), Some("no-cache"));
        let v = self.json();
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), 2, "{v}");
        assert!(v["error_description"].is_string(), "{v}");
        v["error"].as_str().unwrap().to_owned()
    }
}

pub async fn read(res: reqwest::Response) -> Reply {
    Reply {
        status: res.status(),
        headers: res.headers().clone(),
        text: res.text().await.unwrap(),
    }
}

/// `Basic base64(user:password)` exactly as given.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// A management API call with the issuer's admin key.
pub async fn admin(issuer: &TestIssuer, method: Method, path: &str, body: Option<Value>) -> Reply {
    let key = issuer.admin_key();
    let mut req = http()
        .request(method, format!("{}{path}", issuer.url()))
        .header("authorization", basic(key.id(), key.secret().expose()));
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    read(req.send().await.unwrap()).await
}

/// A management API call with an arbitrary `Authorization` header (or none).
pub async fn with_auth(
    issuer: &TestIssuer,
    method: Method,
    path: &str,
    authorization: Option<&str>,
) -> Reply {
    let mut req = http().request(method, format!("{}{path}", issuer.url()));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    read(req.send().await.unwrap()).await
}

/// `POST /token` with a raw form body and optional `Authorization` header.
pub async fn token_raw(issuer: &TestIssuer, form: &str, authorization: Option<&str>) -> Reply {
    let mut req = http()
        .post(issuer.token_endpoint())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_owned());
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    read(req.send().await.unwrap()).await
}

/// Form-encodes pairs.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// `client_secret_post` token request.
pub async fn token_post(
    issuer: &TestIssuer,
    client_id: &str,
    secret: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("client_id", client_id),
        ("client_secret", secret),
    ];
    pairs.extend_from_slice(extra);
    token_raw(issuer, &form(&pairs), None).await
}

/// `client_secret_basic` token request (id and secret form-urlencoded first, RFC 6749 §2.3.1).
pub async fn token_basic(
    issuer: &TestIssuer,
    client_id: &str,
    secret: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut pairs = vec![("grant_type", "client_credentials")];
    pairs.extend_from_slice(extra);
    token_raw(
        issuer,
        &form(&pairs),
        Some(&basic(&enc(client_id), &enc(secret))),
    )
    .await
}

/// Header and claims of a compact JWS (no verification).
pub fn decode_jwt(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "not a compact JWS");
    let part =
        |p: &str| -> Value { serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap() };
    (part(parts[0]), part(parts[1]))
}

/// Current Unix time in seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Sends `head` (request line + headers, without the blank line) and `body` as a chunked body
/// over a raw TCP connection to the issuer; returns (status, body text). Write errors after the
/// server has answered early are ignored.
pub async fn chunked_request(issuer: &TestIssuer, head: &str, body: &[u8]) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(issuer.addr()).await.unwrap();
    let mut req = format!(
        "{head}\r\nHost: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        issuer.addr()
    )
    .into_bytes();
    for chunk in body.chunks(4096) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let _ = conn.write_all(&req).await;
    let mut out = Vec::new();
    let _ = conn.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
