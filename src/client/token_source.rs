//! [`TokenSource`]: one agent's access token, minted when needed and reused until shortly
//! before it expires.
//!
//! The cache is read without waiting; minting happens under one async mutex, so however many
//! tasks find the token stale at once, one request goes to the issuer and the others take its
//! result. A refusal of the credentials (`invalid_client`) is remembered for a cooldown and
//! answered from memory: a suspended agent's runtime cannot hammer the issuer.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use url::Url;

use super::clock::{Clock, SystemClock};
use super::credential::ClientCredential;
use super::error::{BuildError, TokenError};
use super::exchange::{Exchange, TokenRequest};
use super::retry::RetryPolicy;

/// An access token with what the issuer said about it. Cheap to clone; `Debug` redacts the
/// token.
#[derive(Clone)]
pub struct AccessToken(Arc<TokenInner>);

struct TokenInner {
    token: String,
    expires_at: SystemTime,
    scope: Option<String>,
}

impl AccessToken {
    /// The token (for an `Authorization: Bearer` header). Do not log it.
    pub fn expose(&self) -> &str {
        &self.0.token
    }

    /// When it expires, by the source's clock (request time + `expires_in`).
    pub fn expires_at(&self) -> SystemTime {
        self.0.expires_at
    }

    /// The granted scopes (`scope` of the response), if the issuer named them.
    pub fn scope(&self) -> Option<&str> {
        self.0.scope.as_deref()
    }

    /// Whether both are the same minted token.
    pub fn same_as(&self, other: &AccessToken) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.0.expires_at)
            .field("scope", &self.0.scope)
            .finish()
    }
}

/// Default: a token is renewed this long before it expires.
pub const DEFAULT_RENEW_MARGIN: Duration = Duration::from_secs(30);
/// Default: how long an `invalid_client` refusal is answered from memory.
pub const DEFAULT_REFUSAL_COOLDOWN: Duration = Duration::from_secs(60);
/// Default: the timeout of one HTTP attempt.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime of a `private_key_jwt` assertion (`exp` - `iat`).
const ASSERTION_LIFETIME: Duration = Duration::from_secs(60);

/// Configures a [`TokenSource`]; see [`TokenSource::builder`].
#[derive(Debug)]
pub struct TokenSourceBuilder {
    issuer: String,
    client_id: String,
    credential: ClientCredential,
    scopes: Vec<String>,
    resource: Option<String>,
    token_endpoint: Option<String>,
    margin: Duration,
    cooldown: Duration,
    timeout: Duration,
    retry: RetryPolicy,
    clock: Arc<dyn Clock>,
    http: Option<reqwest::Client>,
}

impl TokenSourceBuilder {
    /// Scopes to ask for (none: the issuer grants the agent's default, all of them for the
    /// bundled issuer).
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// The resource (RFC 8707) the token is for: it becomes the token's `aud`.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Uses this token endpoint instead of discovering it from the issuer's metadata.
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.token_endpoint = Some(url.into());
        self
    }

    /// How long before `exp` a token is replaced (default [`DEFAULT_RENEW_MARGIN`]; at most
    /// half the token's lifetime is used, so a short-lived token is still reused).
    pub fn renew_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// How long an `invalid_client` refusal is answered without asking the issuer again
    /// (default [`DEFAULT_REFUSAL_COOLDOWN`]).
    pub fn refusal_cooldown(mut self, cooldown: Duration) -> Self {
        self.cooldown = cooldown;
        self
    }

    /// The timeout of one HTTP attempt (default [`DEFAULT_REQUEST_TIMEOUT`]).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Retries of transient failures (default [`RetryPolicy::default`]).
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The clock that judges expiry and cooldowns (default [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The HTTP client (default: one that follows no redirects and ignores proxy
    /// environment variables). Attempts are bounded by the request timeout either way.
    pub fn http_client(mut self, http: reqwest::Client) -> Self {
        self.http = Some(http);
        self
    }

    /// Checks the configuration.
    pub fn build(self) -> Result<TokenSource, BuildError> {
        let base = Url::parse(&self.issuer).map_err(|_| BuildError::IssuerUrl)?;
        if !matches!(base.scheme(), "http" | "https")
            || base.query().is_some()
            || base.fragment().is_some()
            || base.cannot_be_a_base()
        {
            return Err(BuildError::IssuerUrl);
        }
        if self.client_id.is_empty() || self.client_id.chars().any(char::is_control) {
            return Err(BuildError::ClientId);
        }
        if !self.scopes.iter().all(|s| is_scope_token(s)) {
            return Err(BuildError::Scope);
        }
        if let Some(resource) = &self.resource {
            let ok = Url::parse(resource).is_ok_and(|u| u.fragment().is_none());
            if !ok || resource.contains('#') {
                return Err(BuildError::Resource);
            }
        }
        let endpoint = match &self.token_endpoint {
            None => None,
            Some(raw) => {
                let url = Url::parse(raw).map_err(|_| BuildError::TokenEndpoint)?;
                super::discovery::check_endpoint(&self.issuer, &url)
                    .map_err(|()| BuildError::TokenEndpoint)?;
                Some(url)
            }
        };
        let http = match self.http {
            Some(http) => http,
            None => reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(self.timeout)
                .build()
                .map_err(BuildError::Http)?,
        };
        Ok(TokenSource {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                base,
                client_id: self.client_id,
                credential: self.credential,
                scopes: self.scopes,
                resource: self.resource,
                margin: self.margin,
                cooldown: self.cooldown,
                clock: self.clock,
                exchange: Exchange {
                    http,
                    retry: self.retry,
                    timeout: self.timeout,
                },
                cached: RwLock::new(None),
                mint: tokio::sync::Mutex::new(MintState {
                    endpoint,
                    refused: None,
                }),
            }),
        })
    }
}

/// RFC 6749 §3.3 `scope-token`: one or more of `%x21 / %x23-5B / %x5D-7E`.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// An agent's token, minted on demand and reused. Cheap to clone; clones share the cache.
///
/// See the [module docs](super) for an example.
#[derive(Clone)]
pub struct TokenSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSource")
            .field("issuer", &self.inner.issuer)
            .field("client_id", &self.inner.client_id)
            .field("scopes", &self.inner.scopes)
            .field("resource", &self.inner.resource)
            .finish_non_exhaustive()
    }
}

struct Inner {
    issuer: String,
    base: Url,
    client_id: String,
    credential: ClientCredential,
    scopes: Vec<String>,
    resource: Option<String>,
    margin: Duration,
    cooldown: Duration,
    clock: Arc<dyn Clock>,
    exchange: Exchange,
    cached: RwLock<Option<Cached>>,
    mint: tokio::sync::Mutex<MintState>,
}

struct Cached {
    token: AccessToken,
    renew_at: SystemTime,
}

struct MintState {
    endpoint: Option<Url>,
    refused: Option<Refusal>,
}

struct Refusal {
    until: SystemTime,
    description: String,
}

impl TokenSource {
    /// Starts configuring a source for `client_id` at the issuer `issuer_url` (its `iss`;
    /// the token endpoint comes from its RFC 8414 metadata).
    pub fn builder(
        issuer_url: impl Into<String>,
        client_id: impl Into<String>,
        credential: ClientCredential,
    ) -> TokenSourceBuilder {
        TokenSourceBuilder {
            issuer: issuer_url.into(),
            client_id: client_id.into(),
            credential,
            scopes: Vec::new(),
            resource: None,
            token_endpoint: None,
            margin: DEFAULT_RENEW_MARGIN,
            cooldown: DEFAULT_REFUSAL_COOLDOWN,
            timeout: DEFAULT_REQUEST_TIMEOUT,
            retry: RetryPolicy::default(),
            clock: Arc::new(SystemClock),
            http: None,
        }
    }

    /// The client id (agent id).
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// A token valid for at least the renew margin: the cached one, or a new one.
    pub async fn token(&self) -> Result<AccessToken, TokenError> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let mut state = self.inner.mint.lock().await;
        // Whoever held the lock before us may have minted already.
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let now = self.inner.clock.now();
        if let Some(refusal) = &state.refused {
            if now < refusal.until {
                return Err(TokenError::InvalidClient {
                    description: refusal.description.clone(),
                });
            }
            state.refused = None;
        }
        match self.mint(&mut state, now).await {
            Ok(token) => Ok(token),
            Err(TokenError::InvalidClient { description }) => {
                tracing::warn!(client_id = %self.inner.client_id, "the issuer refused the client credentials");
                state.refused = Some(Refusal {
                    until: now + self.inner.cooldown,
                    description: description.clone(),
                });
                // The agent may not mint any more: do not hand out what it minted before.
                self.clear();
                Err(TokenError::InvalidClient { description })
            }
            Err(e @ TokenError::Unavailable { .. }) => match self.unexpired(now) {
                // Renewal failed early, but the old token is still good: use it until then.
                Some(token) => {
                    tracing::warn!(client_id = %self.inner.client_id, error = %e, "renewal failed; the current token is still valid");
                    Ok(token)
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// Forgets `token` if it is the cached one (a resource server said `invalid_token`), so
    /// that the next [`token`](Self::token) mints a new one. A token already replaced is
    /// left alone: a hundred requests failing with one old token cause one renewal.
    pub fn invalidate(&self, token: &AccessToken) {
        let mut cached = self
            .inner
            .cached
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if cached.as_ref().is_some_and(|c| c.token.same_as(token)) {
            *cached = None;
        }
    }

    fn fresh(&self) -> Option<AccessToken> {
        let now = self.inner.clock.now();
        let cached = self
            .inner
            .cached
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        cached
            .as_ref()
            .filter(|c| now < c.renew_at)
            .map(|c| c.token.clone())
    }

    fn unexpired(&self, now: SystemTime) -> Option<AccessToken> {
        let cached = self
            .inner
            .cached
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        cached
            .as_ref()
            .filter(|c| now < c.token.expires_at())
            .map(|c| c.token.clone())
    }

    fn clear(&self) {
        *self
            .inner
            .cached
            .write()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    async fn mint(
        &self,
        state: &mut MintState,
        now: SystemTime,
    ) -> Result<AccessToken, TokenError> {
        let inner = &self.inner;
        let endpoint = match &state.endpoint {
            Some(endpoint) => endpoint.clone(),
            None => {
                let endpoint = inner.exchange.discover(&inner.issuer, &inner.base).await?;
                state.endpoint = Some(endpoint.clone());
                endpoint
            }
        };
        let minted = inner
            .exchange
            .mint(&TokenRequest {
                endpoint: &endpoint,
                client_id: &inner.client_id,
                credential: &inner.credential,
                scopes: &inner.scopes,
                resource: inner.resource.as_deref(),
                now,
                assertion_lifetime: ASSERTION_LIFETIME,
            })
            .await?;
        let expires_at = now + minted.expires_in;
        let renew_at = expires_at - inner.margin.min(minted.expires_in / 2);
        let token = AccessToken(Arc::new(TokenInner {
            token: minted.access_token,
            expires_at,
            scope: minted.scope,
        }));
        tracing::debug!(client_id = %inner.client_id, expires_in = minted.expires_in.as_secs(), "access token minted");
        *inner.cached.write().unwrap_or_else(PoisonError::into_inner) = Some(Cached {
            token: token.clone(),
            renew_at,
        });
        Ok(token)
    }
}
