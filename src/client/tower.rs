//! [`AuthorizationLayer`]: adds the [`TokenSource`]'s token to outgoing `http::Request`s
//! (any tower HTTP client, e.g. `hyper_util`'s), and on a `401` whose challenge says
//! `error="invalid_token"` renews the token once and sends the request once more.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};

use super::error::TokenError;
use super::token_source::{AccessToken, TokenSource};

/// Whether a response is a Bearer `401` with `error="invalid_token"` (RFC 6750 §3.1): the
/// token was refused, so a new one may succeed.
pub(crate) fn says_invalid_token(status: StatusCode, headers: &HeaderMap) -> bool {
    status == StatusCode::UNAUTHORIZED
        && headers.get_all(WWW_AUTHENTICATE).iter().any(|value| {
            let Ok(text) = value.to_str() else {
                return false;
            };
            let lower = text.to_ascii_lowercase();
            lower.trim_start().starts_with("bearer")
                && (lower.contains("error=\"invalid_token\"")
                    || lower.contains("error=invalid_token"))
        })
}

/// `Bearer <token>`, marked sensitive (never logged by `http`-aware tooling).
pub(crate) fn bearer(token: &AccessToken) -> Result<HeaderValue, TokenError> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose())).map_err(|_| {
        // The exchange checked that the token fits in a header.
        TokenError::InvalidResponse {
            status: 200,
            detail: "access_token is not usable in a header",
        }
    })?;
    value.set_sensitive(true);
    Ok(value)
}

/// A tower layer that authorizes outgoing requests with a [`TokenSource`].
///
/// The request body must be `Clone` (e.g. `String`, `Bytes`, `http_body_util::Full`), since a
/// refused request is sent again.
#[derive(Debug, Clone)]
pub struct AuthorizationLayer {
    source: TokenSource,
}

impl AuthorizationLayer {
    /// A layer over `source`.
    pub fn new(source: TokenSource) -> Self {
        Self { source }
    }
}

impl<S> tower::Layer<S> for AuthorizationLayer {
    type Service = AuthorizationService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthorizationService {
            inner,
            source: self.source.clone(),
        }
    }
}

/// The service of [`AuthorizationLayer`].
#[derive(Debug, Clone)]
pub struct AuthorizationService<S> {
    inner: S,
    source: TokenSource,
}

/// Why an authorized request failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthorizationError<E> {
    /// No token could be had.
    #[error("no access token")]
    Token(#[source] TokenError),
    /// The inner service failed.
    #[error("the request failed")]
    Service(#[source] E),
}

impl<S, B, RB> tower::Service<Request<B>> for AuthorizationService<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send,
    B: Clone + Send + 'static,
    RB: Send,
{
    type Response = Response<RB>;
    type Error = AuthorizationError<S::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(AuthorizationError::Service)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The ready service serves this call; a clone takes its place for the next one.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let source = self.source.clone();
        Box::pin(async move {
            let token = source.token().await.map_err(AuthorizationError::Token)?;
            let again = req.clone();
            req.headers_mut().insert(
                AUTHORIZATION,
                bearer(&token).map_err(AuthorizationError::Token)?,
            );
            let res = inner.call(req).await.map_err(AuthorizationError::Service)?;
            if !says_invalid_token(res.status(), res.headers()) {
                return Ok(res);
            }
            tracing::debug!(client_id = %source.client_id(), "token refused by the resource server; renewing once");
            source.invalidate(&token);
            let renewed = source.token().await.map_err(AuthorizationError::Token)?;
            let mut again = again;
            again.headers_mut().insert(
                AUTHORIZATION,
                bearer(&renewed).map_err(AuthorizationError::Token)?,
            );
            std::future::poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(AuthorizationError::Service)?;
            inner.call(again).await.map_err(AuthorizationError::Service)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bearer_invalid_token_challenges_count() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(WWW_AUTHENTICATE, HeaderValue::from_str(v).unwrap());
            h
        };
        let yes = with(r#"Bearer realm="api", error="invalid_token", error_description="expired""#);
        assert!(says_invalid_token(StatusCode::UNAUTHORIZED, &yes));
        assert!(says_invalid_token(
            StatusCode::UNAUTHORIZED,
            &with("bearer error=invalid_token")
        ));
        assert!(!says_invalid_token(StatusCode::FORBIDDEN, &yes));
        assert!(!says_invalid_token(
            StatusCode::UNAUTHORIZED,
            &with(r#"Bearer realm="api""#)
        ));
        assert!(!says_invalid_token(
            StatusCode::UNAUTHORIZED,
            &with(r#"Bearer error="insufficient_scope""#)
        ));
        assert!(!says_invalid_token(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new()
        ));
    }
}
