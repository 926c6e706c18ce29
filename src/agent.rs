//! The verified caller handed to handlers.

use std::fmt;
use std::sync::{Arc, OnceLock};

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
    /// The claims set as signed: valid JSON, at most 128 deep, no duplicate members (checked
    /// by the verifier with serde_json's own limits, so parsing it again cannot fail).
    pub(crate) claims_json: Box<str>,
    /// `claims_json` parsed, on first use: most handlers never ask.
    pub(crate) claims: OnceLock<Map<String, Value>>,
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

    /// The blockchain account (CAIP-10, e.g. `eip155:8453:0xAb…`) that signed in with its
    /// wallet for this token: the `wallet` claim of the bundled issuer's wallet grant, `None`
    /// for tokens without it. Read from [`claims`](Self::claims) on first use, so verification
    /// costs nothing more for tokens that never ask.
    pub fn wallet(&self) -> Option<&str> {
        self.claims().get("wallet").and_then(Value::as_str)
    }

    /// Every claim of the token, as JSON (parsed on the first call, then kept).
    pub fn claims(&self) -> &Map<String, Value> {
        self.0.claims.get_or_init(|| {
            // The verifier checked this exact text with `check_object`, whose visitor accepts
            // exactly what `parse_object`'s does (same walk, same limits; a unit test holds
            // them together), after `decode_object` found an object at the top.
            match crate::strict_json::parse_object(self.0.claims_json.as_bytes()) {
                Ok(Value::Object(claims)) => claims,
                _ => unreachable!("claims checked by the verifier no longer parse"),
            }
        })
    }

    /// Size of the claims JSON, for the token cache's byte bound.
    pub(crate) fn claims_len(&self) -> usize {
        self.0.claims_json.len()
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
