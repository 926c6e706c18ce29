//! The verified caller handed to handlers.

use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::challenge::Challenge;

/// A verified agent: the caller of this request, as proven by its access token.
///
/// Cheap to clone (one `Arc`). The layer puts it into the request extensions; with the `axum`
/// feature it is also an extractor.
#[derive(Clone)]
pub struct Agent(Arc<AgentInner>);

pub(crate) struct AgentInner {
    pub(crate) id: Box<str>,
    pub(crate) scope: Box<str>,
    pub(crate) client_id: Option<Box<str>>,
    pub(crate) jwt_id: Option<Box<str>>,
    pub(crate) issuer: Box<str>,
    pub(crate) audience: Box<str>,
    pub(crate) expires_at: i64,
    pub(crate) issued_at: Option<i64>,
    /// Every claim, as verified.
    pub(crate) claims: Map<String, Value>,
    /// Size of the claims JSON, for the token cache's byte bound.
    pub(crate) claims_len: usize,
    /// How rejections further down (scope guards) must be phrased.
    pub(crate) challenge: Arc<Challenge>,
}

impl Agent {
    pub(crate) fn new(inner: AgentInner) -> Self {
        Agent(Arc::new(inner))
    }

    /// The agent id (`sub`, always starting with `agt_`).
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The granted scopes (`scope` split on spaces; none when the claim is absent).
    pub fn scopes(&self) -> impl Iterator<Item = &str> + '_ {
        self.0.scope.split(' ').filter(|scope| !scope.is_empty())
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        // Bytes, not `str::split`: every route guard asks, and scope lists are short.
        !scope.is_empty()
            && self
                .0
                .scope
                .as_bytes()
                .split(|&byte| byte == b' ')
                .any(|granted| granted == scope.as_bytes())
    }

    /// The OAuth client that obtained the token (`client_id`), when present.
    pub fn client_id(&self) -> Option<&str> {
        self.0.client_id.as_deref()
    }

    /// The token's unique id (`jti`), when present.
    pub fn jwt_id(&self) -> Option<&str> {
        self.0.jwt_id.as_deref()
    }

    /// The issuer (`iss`).
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }

    /// The accepted audience this token was issued for (the `aud` value that matched).
    pub fn audience(&self) -> &str {
        &self.0.audience
    }

    /// Expiry (`exp`), seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.0.expires_at
    }

    /// Issue time (`iat`), seconds since the Unix epoch, when present.
    pub fn issued_at(&self) -> Option<i64> {
        self.0.issued_at
    }

    /// Every claim of the token, as JSON.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.0.claims
    }

    /// Size of the claims JSON, for the token cache's byte bound.
    pub(crate) fn claims_len(&self) -> usize {
        self.0.claims_len
    }

    pub(crate) fn challenge(&self) -> &Challenge {
        &self.0.challenge
    }
}

impl fmt::Debug for Agent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Agent")
            .field("id", &self.id())
            .field("scope", &self.0.scope)
            .field("client_id", &self.client_id())
            .field("audience", &self.audience())
            .field("expires_at", &self.expires_at())
            .finish_non_exhaustive()
    }
}
