//! Per-route scope guards: [`RequireScopes`] layers that sit on single routes, inside
//! [`AgentAuth`](crate::AgentAuth).

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response, StatusCode};
use tower::{Layer, Service};

use crate::agent::Agent;
use crate::challenge::{bare_status, closing_if_body_unread};
use crate::error::AuthError;
use crate::layer::{Anonymous, ResponseFuture};

/// Requires scopes of the verified agent: `403 insufficient_scope` otherwise.
///
/// Put it on a route, with [`AgentAuth`](crate::AgentAuth) further out. A refusal leaves the
/// request body unread; on HTTP/1 it then carries `Connection: close`. A request that reaches
/// it without a verified [`Agent`] is refused: with `401` and the challenge when an
/// [`optional`](crate::AgentAuth::optional) layer let it through without credentials, with `500`
/// when the auth layer is missing. A guard never lets a request through that nobody
/// authenticated.
///
/// ```
/// use agent_auth::RequireScopes;
/// let read = RequireScopes::all(["tickets:read"]);
/// let either = RequireScopes::any(["tickets:triage", "tickets:admin"]);
/// ```
#[derive(Debug, Clone)]
pub struct RequireScopes {
    rule: Arc<Rule>,
}

#[derive(Debug)]
struct Rule {
    mode: Mode,
    scopes: Box<[Box<str>]>,
    /// The space-separated list for the challenge's `scope` attribute.
    joined: Box<str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    All,
    Any,
}

impl RequireScopes {
    /// The agent must hold every one of `scopes`.
    pub fn all<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(Mode::All, scopes)
    }

    /// The agent must hold at least one of `scopes` (an empty list admits nobody).
    pub fn any<I>(scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        Self::new(Mode::Any, scopes)
    }

    fn new<I>(mode: Mode, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let scopes: Box<[Box<str>]> = scopes
            .into_iter()
            .map(|scope| scope.into().into_boxed_str())
            .collect();
        let joined = scopes.join(" ").into_boxed_str();
        RequireScopes {
            rule: Arc::new(Rule {
                mode,
                scopes,
                joined,
            }),
        }
    }
}

impl Rule {
    fn admits(&self, agent: &Agent) -> bool {
        match self.mode {
            Mode::All => self.scopes.iter().all(|scope| agent.has_scope(scope)),
            Mode::Any => self.scopes.iter().any(|scope| agent.has_scope(scope)),
        }
    }
}

impl<S> Layer<S> for RequireScopes {
    type Service = RequireScopesService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireScopesService {
            inner,
            rule: self.rule.clone(),
        }
    }
}

/// The service [`RequireScopes`] wraps around a route.
#[derive(Debug, Clone)]
pub struct RequireScopesService<S> {
    inner: S,
    rule: Arc<Rule>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for RequireScopesService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let Some(agent) = request.extensions().get::<Agent>() else {
            if let Some(Anonymous(challenge)) = request.extensions().get::<Anonymous>() {
                tracing::debug!(required = %self.rule.joined, outcome = "rejected", reason = "missing_token", "scopes required, no credentials");
                let refusal = challenge.reject(&AuthError::MissingToken);
                return ResponseFuture::rejected(closing_if_body_unread(&request, refusal));
            }
            tracing::error!(
                "RequireScopes reached without a verified agent: is AgentAuth layered outside it?"
            );
            let response = bare_status(StatusCode::INTERNAL_SERVER_ERROR);
            return ResponseFuture::rejected(closing_if_body_unread(&request, response));
        };
        if self.rule.admits(agent) {
            return ResponseFuture::inner(self.inner.call(request));
        }
        tracing::debug!(agent_id = agent.id(), required = %self.rule.joined, outcome = "insufficient_scope", "scope check failed");
        let refusal = agent.challenge().insufficient_scope(&self.rule.joined);
        ResponseFuture::rejected(closing_if_body_unread(&request, refusal))
    }
}
