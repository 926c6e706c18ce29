//! The tower middleware: [`AgentAuthLayer`] (built by [`AgentAuth::build`](crate::AgentAuth::build)),
//! [`AgentAuthService`] and their [`ResponseFuture`]. It reads the Bearer credentials once,
//! has them verified, and puts the [`Agent`] into the request extensions or answers with the
//! challenge.
//!
//! A token found in the verified-token cache (the usual case) is accepted synchronously inside
//! `call`, and the future is the inner service's own. A fresh token gets a boxed future: its
//! signature waits for a batch (`signature_batch`), or its key for a JWKS fetch. With signature
//! batching off, a fresh token whose key is known is also verified inside `call`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::agent::Agent;
use crate::bearer::{self, Credentials};
use crate::challenge::{Challenge, bare_status, closing_if_body_unread};
use crate::error::AuthError;
use crate::metadata::ProtectedResourceMetadata;
use crate::readiness::{IssuerReadiness, KeyRefreshError, Readiness};
use crate::verify::{Now, Presented, Verifier};

/// The built middleware: a cheap clone (one `Arc`) of a checked configuration. Apply it to an
/// axum router or wrap any `Service<http::Request<B>>` with it.
#[derive(Clone)]
pub struct AgentAuthLayer {
    shared: Arc<Shared>,
}

struct Shared {
    verifier: Verifier,
    optional: bool,
    resource_metadata: Option<String>,
}

impl std::fmt::Debug for AgentAuthLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentAuthLayer")
            .field("verifier", &self.shared.verifier)
            .field("optional", &self.shared.optional)
            .finish_non_exhaustive()
    }
}

impl AgentAuthLayer {
    pub(crate) fn new(
        verifier: Verifier,
        optional: bool,
        resource_metadata: Option<String>,
    ) -> Self {
        AgentAuthLayer {
            shared: Arc::new(Shared {
                verifier,
                optional,
                resource_metadata,
            }),
        }
    }

    #[cfg(any(feature = "issuer", feature = "internals"))]
    pub(crate) fn verifier(&self) -> &Verifier {
        &self.shared.verifier
    }

    /// Verifies a token outside HTTP (a WebSocket message, a queue job): the same checks as
    /// the layer, minus scopes.
    pub async fn verify(&self, token: &str) -> Result<Agent, AuthError> {
        let verifier = &self.shared.verifier;
        match verifier.verify_now(Presented::Text(token)) {
            Now::Decided(outcome) => outcome,
            Now::MustWait(token) => verifier.verify_waiting(token).await,
        }
    }

    /// Fetches every issuer's JWKS now (for example after learning of a key rotation),
    /// whatever the cooldown. Requests keep using the current keys meanwhile. The first
    /// failure is reported; the other issuers are refreshed all the same.
    pub async fn refresh_keys(&self) -> Result<(), KeyRefreshError> {
        let refreshes = self
            .shared
            .verifier
            .issuers
            .iter()
            .map(|trusted| async move {
                trusted
                    .keys
                    .refresh()
                    .await
                    .map_err(|cause| KeyRefreshError {
                        issuer: trusted.issuer.to_string(),
                        cause,
                    })
            });
        futures_util::future::join_all(refreshes)
            .await
            .into_iter()
            .collect()
    }

    /// What a health probe needs: per issuer, the keys held and their age.
    pub fn readiness(&self) -> Readiness {
        let issuers = self.shared.verifier.issuers.iter().map(|trusted| {
            let status = trusted.keys.status();
            IssuerReadiness {
                issuer: trusted.issuer.to_string(),
                keys: status.keys,
                age: status.age,
                usable: status.usable,
            }
        });
        Readiness {
            issuers: issuers.collect(),
        }
    }

    /// JWKS and metadata requests sent so far, all issuers together (shared by clones).
    pub fn key_fetch_count(&self) -> u64 {
        let issuers = self.shared.verifier.issuers.iter();
        issuers.map(|trusted| trusted.keys.fetch_count()).sum()
    }

    /// Entries and weighted bytes in the verified-token cache (`None` when it is off).
    pub fn token_cache_usage(&self) -> Option<(u64, u64)> {
        let tokens = self.shared.verifier.tokens.as_ref()?;
        Some(tokens.usage())
    }

    /// The configured metadata URL, if any.
    pub fn resource_metadata_url(&self) -> Option<&str> {
        self.shared.resource_metadata.as_deref()
    }

    /// The RFC 9728 document describing this resource: its identifier (the first audience),
    /// its authorization servers (every trusted issuer) and that Bearer tokens go in the
    /// header.
    pub fn protected_resource_metadata(&self) -> ProtectedResourceMetadata {
        let issuers = &self.shared.verifier.issuers;
        let resource = issuers
            .first()
            .and_then(|first| first.audiences.first())
            .map(|audience| audience.to_string())
            .unwrap_or_default();
        let mut servers = issuers.iter().map(|trusted| trusted.issuer.to_string());
        let mut metadata =
            ProtectedResourceMetadata::new(resource, servers.next().unwrap_or_default());
        metadata.authorization_servers.extend(servers);
        metadata
    }
}

impl<S> Layer<S> for AgentAuthLayer {
    type Service = AgentAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AgentAuthService {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// The service [`AgentAuthLayer`] wraps around yours.
#[derive(Clone)]
pub struct AgentAuthService<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> std::fmt::Debug for AgentAuthService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentAuthService")
            .field("verifier", &self.shared.verifier)
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
        let verifier = &self.shared.verifier;
        let presented = match bearer::read(request.headers()) {
            Ok(Credentials::Bearer(bearer)) => Presented::Header(bearer),
            Ok(Credentials::None) if self.shared.optional => {
                verifier.metrics.anonymous();
                let anonymous = Anonymous(verifier.challenge.clone());
                request.extensions_mut().insert(anonymous);
                return ResponseFuture::inner(self.inner.call(request));
            }
            Ok(Credentials::None) => return refuse(verifier, &request, AuthError::MissingToken),
            Err(error) => return refuse(verifier, &request, error.into()),
        };
        let token: Box<str> = match verifier.verify_now(presented) {
            Now::Decided(Ok(agent)) => {
                accepted(&agent);
                request.extensions_mut().insert(agent);
                return ResponseFuture::inner(self.inner.call(request));
            }
            Now::Decided(Err(error)) => {
                let refusal = rejection(verifier, &error);
                return ResponseFuture::rejected(closing_if_body_unread(&request, refusal));
            }
            // Owned, so the request can move into the future.
            Now::MustWait(token) => token.into(),
        };
        // The key must be fetched first, or the signature waits for its batch. Take the
        // service that was made ready and leave a fresh clone behind (the tower idiom for
        // calling after an await).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let shared = self.shared.clone();
        ResponseFuture::boxed(Box::pin(async move {
            match shared.verifier.verify_waiting(&token).await {
                Ok(agent) => {
                    accepted(&agent);
                    request.extensions_mut().insert(agent);
                    inner.call(request).await
                }
                Err(error) => Ok(closing_if_body_unread(
                    &request,
                    rejection(&shared.verifier, &error),
                )),
            }
        }))
    }
}

/// Marks a request an optional layer let through without credentials, so that a
/// [`RequireScopes`](crate::RequireScopes) further in answers `401` with this layer's challenge
/// (credentials are needed there) instead of `500` (no auth layer at all).
#[derive(Clone)]
pub(crate) struct Anonymous(pub(crate) Arc<Challenge>);

/// A refusal decided before the verifier saw a token.
fn refuse<F, A, B: Default, E>(
    verifier: &Verifier,
    request: &Request<A>,
    error: AuthError,
) -> ResponseFuture<F, B, E> {
    verifier.metrics.refused(&error);
    ResponseFuture::rejected(closing_if_body_unread(request, rejection(verifier, &error)))
}

fn accepted(agent: &Agent) {
    tracing::debug!(
        agent_id = agent.id(),
        outcome = "accepted",
        "agent authenticated"
    );
}

fn rejection<B: Default>(verifier: &Verifier, error: &AuthError) -> Response<B> {
    tracing::debug!(
        outcome = "rejected",
        reason = error.reason(),
        "agent authentication failed"
    );
    verifier.challenge.reject(error)
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
                // Polled again after completion only by a broken executor: never a `200`.
                let response = response.take();
                Poll::Ready(Ok(
                    response.unwrap_or_else(|| bare_status(StatusCode::INTERNAL_SERVER_ERROR))
                ))
            }
            KindProj::Boxed { future } => Poll::Ready(ready!(future.as_mut().poll(cx))),
        }
    }
}
