//! The tower middleware: reads the Bearer credentials, verifies them, puts the [`Agent`] into
//! the request extensions or answers with the challenge.
//!
//! A token found in the verified-token cache (the usual case) is accepted synchronously inside
//! `call`, and the future is the inner service's own. A fresh token gets a boxed future: its
//! signature waits for a batch (`signature_batch`), or its key for a JWKS fetch. With signature
//! batching off, a fresh token whose key is known is also verified inside `call`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{HeaderMap, Request, Response, header};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::agent::Agent;
use crate::config::AgentAuth;
use crate::error::{AuthError, InvalidRequest};
use crate::verify::Verifier;

impl<S> Layer<S> for AgentAuth {
    type Service = AgentAuthService<S>;

    /// # Panics
    ///
    /// When the configuration cannot work; see [`AgentAuth::check`].
    fn layer(&self, inner: S) -> Self::Service {
        match self.verifier() {
            Ok(verifier) => AgentAuthService { inner, verifier },
            Err(error) => panic!("invalid AgentAuth configuration: {error}"),
        }
    }
}

/// The service [`AgentAuth`] wraps around yours.
#[derive(Clone)]
pub struct AgentAuthService<S> {
    inner: S,
    verifier: Arc<Verifier>,
}

impl<S> std::fmt::Debug for AgentAuthService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentAuthService")
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for AgentAuthService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // A token that verified before is answered from the cache before the full syntax
        // check: it passed that check when it was first verified.
        let outcome = match cached_candidate(request.headers())
            .and_then(|token| self.verifier.cached(token))
        {
            Some(agent) => Some(Ok(agent)),
            None => match bearer_token(request.headers()) {
                // A fresh token: checked below, where its signature can join a batch.
                Ok(_) if self.verifier.batches_signatures() => None,
                Ok(token) => self.verifier.verify_now_uncached(token),
                Err(error) => Some(Err(error)),
            },
        };
        match outcome {
            Some(Ok(agent)) => {
                accepted(&agent);
                request.extensions_mut().insert(agent);
                ResponseFuture::inner(self.inner.call(request))
            }
            Some(Err(error)) => ResponseFuture::rejected(self.reject(&error)),
            None => {
                // The key must be fetched first, or the signature waits for its batch. Take the
                // service that was made ready and leave a fresh clone behind (the tower idiom
                // for calling after an await).
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                let verifier = self.verifier.clone();
                ResponseFuture::boxed(Box::pin(async move {
                    let outcome = match bearer_token(request.headers()) {
                        Ok(token) => verifier.verify_uncached(token).await,
                        Err(error) => Err(error),
                    };
                    match outcome {
                        Ok(agent) => {
                            accepted(&agent);
                            request.extensions_mut().insert(agent);
                            inner.call(request).await
                        }
                        Err(error) => Ok(rejection(&verifier, &error)),
                    }
                }))
            }
        }
    }
}

impl<S> AgentAuthService<S> {
    fn reject<B: Default>(&self, error: &AuthError) -> Response<B> {
        rejection(&self.verifier, error)
    }
}

fn accepted(agent: &Agent) {
    tracing::debug!(
        agent_id = agent.id(),
        outcome = "accepted",
        "agent authenticated"
    );
}

fn rejection<B: Default>(verifier: &Verifier, error: &AuthError) -> Response<B> {
    tracing::debug!(outcome = "rejected", %error, "agent authentication failed");
    verifier.challenge.reject(error)
}

/// The token of a lone `Authorization: Bearer <token>` header, without the syntax checks, or
/// `None`: only good for a cache lookup, whose hits were fully checked before.
fn cached_candidate(headers: &HeaderMap) -> Option<&[u8]> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next()?.as_bytes();
    if values.next().is_some() {
        return None;
    }
    let (scheme, token) = value.split_at_checked(7)?;
    scheme.eq_ignore_ascii_case(b"bearer ").then_some(token)
}

/// The token of `Authorization: Bearer <token>` (RFC 6750 §2.1, RFC 7235 §2.1).
///
/// Another scheme counts as no token (401 without an error code); a query-string or body token
/// is never looked at.
fn bearer_token(headers: &HeaderMap) -> Result<&str, AuthError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = values.next().ok_or(AuthError::MissingToken)?;
    if values.next().is_some() {
        return Err(InvalidRequest::MultipleAuthorizationHeaders.into());
    }
    let value = value.to_str().map_err(|_| InvalidRequest::BadSyntax)?;
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let token = rest.trim_start_matches(' ');
    if token.is_empty() {
        return Err(InvalidRequest::MissingBearerToken.into());
    }
    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = token.trim_end_matches('=');
    let is_b64token_char =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/');
    if body.is_empty() || !body.bytes().all(is_b64token_char) {
        return Err(InvalidRequest::BadSyntax.into());
    }
    Ok(token)
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// Response future of [`AgentAuthService`] and [`RequireScopesService`](crate::RequireScopesService).
    pub struct ResponseFuture<F, B, E> {
        #[pin]
        kind: Kind<F, B, E>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, B, E> {
        Inner { #[pin] future: F },
        Rejected { response: Option<Response<B>> },
        Boxed { future: BoxFuture<Result<Response<B>, E>> },
    }
}

impl<F, B, E> ResponseFuture<F, B, E> {
    pub(crate) fn inner(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Inner { future },
        }
    }

    pub(crate) fn rejected(response: Response<B>) -> Self {
        ResponseFuture {
            kind: Kind::Rejected {
                response: Some(response),
            },
        }
    }

    fn boxed(future: BoxFuture<Result<Response<B>, E>>) -> Self {
        ResponseFuture {
            kind: Kind::Boxed { future },
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B, E>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Default,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Rejected { response } => {
                // Polled again after completion only by a broken executor; answer the same way.
                Poll::Ready(Ok(response.take().unwrap_or_default()))
            }
            KindProj::Boxed { future } => Poll::Ready(ready!(future.as_mut().poll(cx))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn parse(values: &[&'static str]) -> Result<&'static str, AuthError> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::AUTHORIZATION, HeaderValue::from_static(value));
        }
        // Leak so the borrowed token can be returned from the test helper.
        let headers: &'static HeaderMap = Box::leak(Box::new(headers));
        bearer_token(headers)
    }

    #[test]
    fn bearer_syntax() {
        assert_eq!(parse(&["Bearer abc.def.ghi"]), Ok("abc.def.ghi"));
        assert_eq!(parse(&["bEaReR abc"]), Ok("abc"));
        assert_eq!(parse(&["Bearer  abc"]), Ok("abc"));
        assert_eq!(parse(&["Bearer abc=="]), Ok("abc=="));
        assert_eq!(parse(&[]), Err(AuthError::MissingToken));
        assert_eq!(parse(&["Basic dXNlcjpwYXNz"]), Err(AuthError::MissingToken));
        assert_eq!(parse(&["Bearerabc"]), Err(AuthError::MissingToken));
        assert_eq!(
            parse(&["Bearer"]),
            Err(InvalidRequest::MissingBearerToken.into())
        );
        assert_eq!(
            parse(&["Bearer "]),
            Err(InvalidRequest::MissingBearerToken.into())
        );
        assert_eq!(
            parse(&["Bearer a b"]),
            Err(InvalidRequest::BadSyntax.into())
        );
        assert_eq!(
            parse(&["Bearer a,b"]),
            Err(InvalidRequest::BadSyntax.into())
        );
        assert_eq!(
            parse(&["Bearer ==="]),
            Err(InvalidRequest::BadSyntax.into())
        );
        assert_eq!(
            parse(&["Bearer a", "Bearer b"]),
            Err(InvalidRequest::MultipleAuthorizationHeaders.into())
        );
    }
}
