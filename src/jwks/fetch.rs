//! HTTP for key material: the JWKS document and RFC 8414 discovery.
//!
//! Every request here is bounded: a total timeout, a response-size limit enforced while reading,
//! no redirects, and no proxy picked up from the environment.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use url::Url;

/// Why keys could not be fetched from an issuer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksFetchError {
    /// The request failed: connection, TLS, timeout, or reading the body.
    #[error("request failed")]
    Http(#[from] reqwest::Error),
    /// The issuer answered with another status than `200` or `304`.
    #[error("unexpected status {0}")]
    Status(StatusCode),
    /// The response was larger than the configured limit (bytes).
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// The body is not the expected JSON document.
    #[error("invalid JSON")]
    Json(#[from] serde_json::Error),
    /// The RFC 8414 metadata names another issuer than the configured one.
    #[error("metadata issuer {found:?} is not the configured issuer")]
    IssuerMismatch {
        /// The `issuer` the document gave.
        found: String,
    },
    /// The metadata's `jwks_uri` is missing or not an absolute http(s) URL.
    #[error("metadata jwks_uri is not a valid URL")]
    BadJwksUri,
}

/// A response to a JWKS request.
pub(crate) enum JwksResponse {
    /// A new document, with its validators and freshness.
    Modified {
        body: Bytes,
        etag: Option<HeaderValue>,
        max_age: Option<Duration>,
    },
    /// `304`: the document we hold is still current.
    NotModified { max_age: Option<Duration> },
}

/// A bounded HTTP client for key material.
pub(crate) struct Fetcher {
    client: reqwest::Client,
    max_bytes: usize,
}

impl Fetcher {
    pub(crate) fn new(timeout: Duration, max_bytes: usize) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("agent-auth/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Fetcher { client, max_bytes })
    }

    /// GETs the JWKS, revalidating with `If-None-Match` when we hold an `ETag`.
    pub(crate) async fn jwks(
        &self,
        url: &Url,
        etag: Option<&HeaderValue>,
    ) -> Result<JwksResponse, JwksFetchError> {
        let mut request = self
            .client
            .get(url.clone())
            .header(header::ACCEPT, "application/jwk-set+json, application/json");
        if let Some(etag) = etag {
            request = request.header(header::IF_NONE_MATCH, etag.clone());
        }
        let response = request.send().await?;
        let max_age = freshness(response.headers());
        match response.status() {
            StatusCode::NOT_MODIFIED if etag.is_some() => Ok(JwksResponse::NotModified { max_age }),
            StatusCode::OK => {
                let etag = response.headers().get(header::ETAG).cloned();
                let body = self.read_limited(response).await?;
                Ok(JwksResponse::Modified {
                    body,
                    etag,
                    max_age,
                })
            }
            status => Err(JwksFetchError::Status(status)),
        }
    }

    /// Reads `jwks_uri` from the issuer's RFC 8414 metadata, checking that the metadata speaks
    /// for the configured issuer (RFC 8414 §3.3).
    pub(crate) async fn discover_jwks_uri(&self, issuer: &str) -> Result<Url, JwksFetchError> {
        #[derive(Deserialize)]
        struct Metadata {
            issuer: String,
            jwks_uri: String,
        }
        let url = metadata_url(issuer).ok_or(JwksFetchError::BadJwksUri)?;
        let response = self.client.get(url).send().await?;
        if response.status() != StatusCode::OK {
            return Err(JwksFetchError::Status(response.status()));
        }
        let body = self.read_limited(response).await?;
        let metadata: Metadata = serde_json::from_slice(&body)?;
        if metadata.issuer != issuer {
            return Err(JwksFetchError::IssuerMismatch {
                found: metadata.issuer,
            });
        }
        Url::parse(&metadata.jwks_uri).map_err(|_| JwksFetchError::BadJwksUri)
    }

    /// Reads the body, refusing to hold more than `max_bytes` at any point.
    async fn read_limited(&self, mut response: reqwest::Response) -> Result<Bytes, JwksFetchError> {
        if response
            .content_length()
            .is_some_and(|len| len > self.max_bytes as u64)
        {
            return Err(JwksFetchError::TooLarge(self.max_bytes));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > self.max_bytes {
                return Err(JwksFetchError::TooLarge(self.max_bytes));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }
}

/// RFC 8414 §3.1: the well-known suffix goes between the host and the issuer's path, so for an
/// issuer without a path it is simply `{issuer}/.well-known/oauth-authorization-server`.
pub(crate) fn metadata_url(issuer: &str) -> Option<Url> {
    let mut url = Url::parse(issuer).ok()?;
    let path = url.path().trim_end_matches('/').to_owned();
    url.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    Some(url)
}

/// How long the response may be reused, from `Cache-Control` (`max-age` less `Age`;
/// `no-cache`/`no-store` mean zero). `None` when the server does not say.
fn freshness(headers: &HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    for value in headers.get_all(header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            let (name, arg) = match directive.split_once('=') {
                Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age")
                && let Some(secs) = arg.and_then(|arg| arg.parse::<u64>().ok())
            {
                max_age = Some(secs);
            }
        }
    }
    let age = headers
        .get(header::AGE)
        .and_then(|age| age.to_str().ok())
        .and_then(|age| age.trim().parse::<u64>().ok())
        .unwrap_or(0);
    max_age.map(|secs| Duration::from_secs(secs.saturating_sub(age)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn max_age_is_read_and_age_subtracted() {
        assert_eq!(
            freshness(&headers(&[("cache-control", "public, max-age=600")])),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            freshness(&headers(&[
                ("cache-control", "max-age=600"),
                ("age", "100")
            ])),
            Some(Duration::from_secs(500))
        );
        assert_eq!(
            freshness(&headers(&[("cache-control", "no-cache, max-age=600")])),
            Some(Duration::ZERO)
        );
        assert_eq!(
            freshness(&headers(&[("cache-control", "max-age=oops")])),
            None
        );
        assert_eq!(freshness(&headers(&[])), None);
    }

    #[test]
    fn metadata_url_inserts_the_well_known_segment_before_the_path() {
        assert_eq!(
            metadata_url("http://127.0.0.1:8080").unwrap().as_str(),
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server"
        );
        assert_eq!(
            metadata_url("https://idp.example.com/tenant1")
                .unwrap()
                .as_str(),
            "https://idp.example.com/.well-known/oauth-authorization-server/tenant1"
        );
    }
}
