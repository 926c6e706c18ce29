//! Public discovery endpoints: the JWKS (`/jwks.json`, `/.well-known/jwks.json`) with
//! `Cache-Control` and `ETag`/`If-None-Match`, RFC 8414 authorization server metadata, and the
//! authorization endpoint it must name, which refuses everything (there is no interactive
//! grant).

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::issuer::agent_keys::ASSERTION_ALGS;
use crate::issuer::errors::OAuthError;
use crate::issuer::state::Shared;

/// JWKS and metadata may be cached for 5 minutes (a new signing key is published well before it
/// signs anything once rotation lands).
fn cache_control() -> HeaderValue {
    HeaderValue::from_static("public, max-age=300")
}

/// Whether `If-None-Match` matches `etag` (weak comparison, RFC 9110 §13.1.2).
fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    let ours = strip(etag);
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim() == "*" || strip(t) == ours)
}

/// `GET /jwks.json`.
pub(crate) async fn jwks(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let set = match s.keys.at(s.registry.now_ms()) {
        Ok(set) => set,
        Err(e) => {
            tracing::error!(error = %e, "the JWKS could not be rebuilt");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let etag = HeaderValue::from_str(set.etag());
    let mut res = if if_none_match(&headers, set.etag()) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut res = Response::new(Body::from(set.jwks_body()));
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        res
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, cache_control());
    if let Ok(etag) = etag {
        h.insert(header::ETAG, etag);
    }
    res
}

/// RFC 8414 authorization server metadata.
#[derive(Serialize)]
struct Metadata<'a> {
    /// Exactly the configured issuer URL (the tokens' `iss`), byte for byte.
    issuer: &'a str,
    /// Present because common clients (the Python `mcp` SDK's metadata model) require it;
    /// answers every request with an OAuth error.
    authorization_endpoint: &'a str,
    token_endpoint: &'a str,
    jwks_uri: &'a str,
    grant_types_supported: [&'static str; 1],
    token_endpoint_auth_methods_supported: [&'static str; 3],
    token_endpoint_auth_signing_alg_values_supported: [&'static str; 5],
    /// No interactive grant: no response types.
    response_types_supported: [&'static str; 0],
}

/// The RFC 8414 metadata document for `issuer`.
pub(crate) fn metadata_document(issuer: &str, token_endpoint: &str, jwks_uri: &str) -> Bytes {
    let authorization_endpoint = format!("{}/authorize", issuer.trim_end_matches('/'));
    let doc = Metadata {
        issuer,
        authorization_endpoint: &authorization_endpoint,
        token_endpoint,
        jwks_uri,
        grant_types_supported: ["client_credentials"],
        token_endpoint_auth_methods_supported: [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ],
        token_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGS,
        response_types_supported: [],
    };
    // Invariant: a struct of strings always serializes.
    Bytes::from(serde_json::to_vec(&doc).unwrap_or_default())
}

/// `GET`/`POST /authorize`: `400 unsupported_response_type` whatever is asked. The error is
/// answered here rather than redirected (RFC 6749 §4.1.2.1): no client has a registered
/// redirection URI, and an unchecked one would make this an open redirector.
pub(crate) async fn authorize() -> Response {
    OAuthError::unsupported_response_type().into_response()
}

/// `GET /.well-known/oauth-authorization-server`.
pub(crate) async fn metadata(State(s): State<Arc<Shared>>) -> Response {
    let mut res = Response::new(Body::from(s.metadata.clone()));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, cache_control());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_is_kept_byte_for_byte_and_endpoints_get_one_slash() {
        for (issuer, authorize) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080/authorize"),
            ("https://auth.example/", "https://auth.example/authorize"),
            (
                "https://auth.example/tenant",
                "https://auth.example/tenant/authorize",
            ),
        ] {
            let doc: serde_json::Value =
                serde_json::from_slice(&metadata_document(issuer, "t", "j")).unwrap();
            assert_eq!(doc["issuer"], issuer);
            assert_eq!(doc["authorization_endpoint"], authorize);
        }
    }

    #[test]
    fn if_none_match_forms() {
        let mut h = HeaderMap::new();
        assert!(!if_none_match(&h, "\"abc\""));
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"x\", W/\"abc\""),
        );
        assert!(if_none_match(&h, "\"abc\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match(&h, "\"abc\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("\"abd\""));
        assert!(!if_none_match(&h, "\"abc\""));
    }
}
