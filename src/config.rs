//! [`AgentAuth`]: the builder users configure, and the one place defaults live.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use url::Url;

use crate::agent::Agent;
use crate::algorithm::{Algorithm, AlgorithmSet};
use crate::challenge::Challenge;
use crate::error::AuthError;
use crate::jwks::{JwksCache, JwksConfig, JwksSource};
use crate::metadata::ProtectedResourceMetadata;
use crate::signature_batch::SignatureBatcher;
use crate::token_cache::{TokenCache, TokenCacheLimits};
use crate::verify::{TypPolicy, Verifier};

/// Verifies agent access tokens on every request: a tower [`Layer`](tower::Layer) for axum
/// routers and plain hyper services alike.
///
/// Configure it with the builder methods, then apply it as a layer. Clones share one JWKS
/// cache and every other piece of state.
///
/// ```
/// use agent_auth::AgentAuth;
/// let auth = AgentAuth::new("https://issuer.example.com")
///     .audience("https://api.example.com/tickets");
/// ```
///
/// # Panics
///
/// Applying the layer (or [`check`](Self::check) failing) panics when the configuration cannot
/// work: no audience, an issuer or JWKS URI that is not an absolute `http(s)` URL, or no
/// algorithm accepted. Call [`check`](Self::check) at start-up to get the error instead.
#[derive(Clone)]
pub struct AgentAuth {
    options: Options,
    built: Arc<OnceLock<Result<Arc<Verifier>, ConfigError>>>,
}

#[derive(Debug, Clone)]
struct Options {
    issuer: String,
    audiences: Vec<String>,
    jwks_uri: Option<String>,
    discover: bool,
    leeway: Duration,
    algorithms: Vec<Algorithm>,
    typ: TypPolicy,
    max_token_bytes: usize,
    jwks_default_ttl: Duration,
    jwks_min_ttl: Duration,
    jwks_max_ttl: Duration,
    jwks_cooldown: Duration,
    jwks_max_stale: Duration,
    http_timeout: Duration,
    jwks_max_bytes: usize,
    realm: Option<String>,
    resource_metadata: Option<String>,
    token_cache: Option<TokenCacheLimits>,
    signature_batching: bool,
}

/// Why an [`AgentAuth`] configuration cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No `.audience(…)` was given: every token would be refused.
    #[error("AgentAuth needs at least one audience")]
    NoAudience,
    /// `.algorithms(…)` was given an empty list.
    #[error("AgentAuth needs at least one accepted algorithm")]
    NoAlgorithm,
    /// The issuer or JWKS URI is not an absolute http(s) URL.
    #[error("{what} is not an absolute http(s) URL: {value}")]
    BadUrl {
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: String,
    },
    /// The HTTP client could not be built (TLS initialisation).
    #[error("HTTP client: {0}")]
    HttpClient(String),
}

impl std::fmt::Debug for AgentAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentAuth")
            .field("issuer", &self.options.issuer)
            .field("audiences", &self.options.audiences)
            .finish_non_exhaustive()
    }
}

impl AgentAuth {
    /// Trusts tokens from `issuer`; a token's `iss` must equal it exactly. Keys come from
    /// `{issuer}/jwks.json` unless [`jwks_uri`](Self::jwks_uri) or
    /// [`discover`](Self::discover) says otherwise.
    ///
    /// Anything that is `AsRef<str>` works, such as the bundled issuer's test handle.
    pub fn new(issuer: impl AsRef<str>) -> Self {
        AgentAuth {
            options: Options {
                issuer: issuer.as_ref().to_owned(),
                audiences: Vec::new(),
                jwks_uri: None,
                discover: false,
                leeway: Duration::from_secs(5),
                algorithms: Algorithm::ALL.to_vec(),
                typ: TypPolicy::default(),
                max_token_bytes: 8 * 1024,
                jwks_default_ttl: Duration::from_secs(10 * 60),
                jwks_min_ttl: Duration::from_secs(30),
                jwks_max_ttl: Duration::from_secs(24 * 60 * 60),
                jwks_cooldown: Duration::from_secs(30),
                jwks_max_stale: Duration::from_secs(24 * 60 * 60),
                http_timeout: Duration::from_secs(5),
                jwks_max_bytes: 256 * 1024,
                realm: None,
                resource_metadata: None,
                signature_batching: true,
                token_cache: Some(TokenCacheLimits {
                    max_entries: 10_000,
                    max_bytes: 32 * 1024 * 1024,
                }),
            },
            built: Arc::default(),
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Options)) -> Self {
        change(&mut self.options);
        // A changed configuration gets its own shared state.
        self.built = Arc::default();
        self
    }

    /// Accepts tokens whose `aud` contains `audience` (call again to accept several).
    pub fn audience(self, audience: impl Into<String>) -> Self {
        let audience = audience.into();
        self.with(|o| o.audiences.push(audience))
    }

    /// Fetches keys from this URL instead of `{issuer}/jwks.json`.
    pub fn jwks_uri(self, uri: impl Into<String>) -> Self {
        let uri = uri.into();
        self.with(|o| {
            o.jwks_uri = Some(uri);
            o.discover = false;
        })
    }

    /// Reads `jwks_uri` from the issuer's RFC 8414 metadata
    /// (`/.well-known/oauth-authorization-server`), checking that it names this issuer.
    pub fn discover(self) -> Self {
        self.with(|o| {
            o.discover = true;
            o.jwks_uri = None;
        })
    }

    /// Clock skew tolerated on `exp` and `nbf` (default 5 s).
    pub fn leeway(self, leeway: Duration) -> Self {
        self.with(|o| o.leeway = leeway)
    }

    /// The algorithms accepted (default: all of [`Algorithm::ALL`]). A token's algorithm must
    /// also be the one its key is bound to.
    pub fn algorithms(self, algorithms: impl IntoIterator<Item = Algorithm>) -> Self {
        let algorithms = algorithms.into_iter().collect();
        self.with(|o| o.algorithms = algorithms)
    }

    /// What the `typ` header may say (default [`TypPolicy::AtJwtOrJwt`]).
    pub fn typ_policy(self, typ: TypPolicy) -> Self {
        self.with(|o| o.typ = typ)
    }

    /// Tokens longer than this are refused before any parsing (default 8 KiB).
    pub fn max_token_bytes(self, bytes: usize) -> Self {
        self.with(|o| o.max_token_bytes = bytes)
    }

    /// How long keys stay fresh when the JWKS response has no `Cache-Control: max-age`
    /// (default 10 min).
    pub fn jwks_default_ttl(self, ttl: Duration) -> Self {
        self.with(|o| o.jwks_default_ttl = ttl)
    }

    /// Bounds applied to the JWKS freshness, whatever `Cache-Control` says (default 30 s to
    /// 24 h; never below 1 s).
    pub fn jwks_ttl_bounds(self, min: Duration, max: Duration) -> Self {
        self.with(|o| {
            o.jwks_min_ttl = min.max(Duration::from_secs(1));
            o.jwks_max_ttl = max.max(o.jwks_min_ttl);
        })
    }

    /// Minimum time between two on-demand JWKS fetches (unknown `kid`, or no keys at all);
    /// default 30 s.
    pub fn jwks_refetch_cooldown(self, cooldown: Duration) -> Self {
        self.with(|o| o.jwks_cooldown = cooldown)
    }

    /// How long the last good keys keep verifying when the issuer stops answering (default
    /// 24 h).
    pub fn jwks_max_stale(self, max_stale: Duration) -> Self {
        self.with(|o| o.jwks_max_stale = max_stale)
    }

    /// Largest JWKS (or metadata) response read (default 256 KiB).
    pub fn jwks_max_bytes(self, bytes: usize) -> Self {
        self.with(|o| o.jwks_max_bytes = bytes)
    }

    /// Timeout for each key-fetching HTTP request, connect to last byte (default 5 s).
    pub fn http_timeout(self, timeout: Duration) -> Self {
        self.with(|o| o.http_timeout = timeout)
    }

    /// Bounds of the verified-token cache (default 10,000 tokens and 32 MiB, whichever comes
    /// first). A token that verified once is then accepted from memory until its `exp` (leeway
    /// included, never longer) as long as its key is still published; scopes are still checked
    /// per route on every request.
    pub fn token_cache(self, max_entries: u64, max_bytes: u64) -> Self {
        self.with(|o| {
            o.token_cache = Some(TokenCacheLimits {
                max_entries: max_entries.max(1),
                max_bytes: max_bytes.max(1),
            })
        })
    }

    /// Verifies every request's signature from scratch: no verified-token cache.
    pub fn no_token_cache(self) -> Self {
        self.with(|o| o.token_cache = None)
    }

    /// Whether the signatures of fresh EdDSA tokens that arrive together are checked as one
    /// batch (default on).
    ///
    /// A request with a fresh token yields to the scheduler once, and the requests that were
    /// ready meanwhile have their signatures checked together: under load this about halves
    /// the cost per signature; a lone request is checked alone. A bad signature never rejects
    /// another request, and after a failed batch batching pauses for a second. Off, every
    /// signature is checked alone, without the yield.
    pub fn signature_batching(self, enabled: bool) -> Self {
        self.with(|o| o.signature_batching = enabled)
    }

    /// Entries and weighted bytes in the verified-token cache (`None` when it is off).
    pub fn token_cache_usage(&self) -> Option<(u64, u64)> {
        let verifier = self.verifier().ok()?;
        verifier.tokens.as_ref().map(TokenCache::usage)
    }

    /// The `realm` of challenges (default: the first audience).
    pub fn realm(self, realm: impl Into<String>) -> Self {
        let realm = realm.into();
        self.with(|o| o.realm = Some(realm))
    }

    /// Advertises this RFC 9728 metadata URL in every challenge (`resource_metadata="…"`).
    /// Serve the document with [`protected_resource_metadata`](Self::protected_resource_metadata).
    pub fn resource_metadata(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.with(|o| o.resource_metadata = Some(url))
    }

    /// The configured metadata URL, if any.
    pub fn resource_metadata_url(&self) -> Option<&str> {
        self.options.resource_metadata.as_deref()
    }

    /// The RFC 9728 document describing this resource: its identifier (the first audience),
    /// its authorization server (the issuer) and that Bearer tokens go in the header.
    pub fn protected_resource_metadata(&self) -> ProtectedResourceMetadata {
        ProtectedResourceMetadata::new(
            self.options.audiences.first().cloned().unwrap_or_default(),
            self.options.issuer.clone(),
        )
    }

    /// Builds the shared state now, reporting a configuration that cannot work.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.verifier().map(drop)
    }

    /// Verifies a token outside HTTP (a WebSocket message, a queue job): the same checks as
    /// the layer, minus scopes.
    pub async fn verify(&self, token: &str) -> Result<Agent, AuthError> {
        let verifier = self.verifier_ref().map_err(|error| {
            tracing::error!(%error, "AgentAuth misconfigured; refusing every token");
            AuthError::KeysUnavailable {
                retry_after: Duration::from_secs(60),
            }
        })?;
        verifier.verify(token).await
    }

    /// Fetches the JWKS now (for example after learning of a key rotation), whatever the
    /// cooldown. Requests keep using the current keys meanwhile.
    pub async fn refresh_keys(&self) -> Result<(), KeyRefreshError> {
        let verifier = self.verifier().map_err(KeyRefreshError::Config)?;
        verifier
            .keys
            .refresh()
            .await
            .map_err(|error| KeyRefreshError::Fetch(error.to_string()))
    }

    /// JWKS and metadata requests sent so far by this configuration (shared by clones).
    pub fn key_fetch_count(&self) -> u64 {
        self.verifier().map(|v| v.keys.fetch_count()).unwrap_or(0)
    }

    pub(crate) fn verifier(&self) -> Result<Arc<Verifier>, ConfigError> {
        self.verifier_ref().cloned().map_err(Clone::clone)
    }

    fn verifier_ref(&self) -> Result<&Arc<Verifier>, &ConfigError> {
        self.built
            .get_or_init(|| self.options.build().map(Arc::new))
            .as_ref()
    }
}

/// Why [`AgentAuth::refresh_keys`] failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRefreshError {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(ConfigError),
    /// The JWKS could not be fetched or parsed; the previous keys stay in use.
    #[error("JWKS fetch failed: {0}")]
    Fetch(String),
}

impl Options {
    fn build(&self) -> Result<Verifier, ConfigError> {
        if self.audiences.is_empty() {
            return Err(ConfigError::NoAudience);
        }
        let algorithms = AlgorithmSet::from_iter(self.algorithms.iter().copied());
        if algorithms.is_empty() {
            return Err(ConfigError::NoAlgorithm);
        }
        http_url("issuer", &self.issuer)?;
        let source = match (&self.jwks_uri, self.discover) {
            (Some(uri), _) => JwksSource::Uri(http_url("jwks_uri", uri)?),
            (None, true) => JwksSource::Discover,
            (None, false) => {
                let uri = format!("{}/jwks.json", self.issuer.trim_end_matches('/'));
                JwksSource::Uri(http_url("issuer", &uri)?)
            }
        };
        let keys = JwksCache::new(
            &self.issuer,
            JwksConfig {
                source,
                default_ttl: self.jwks_default_ttl,
                min_ttl: self.jwks_min_ttl,
                max_ttl: self.jwks_max_ttl,
                cooldown: self.jwks_cooldown,
                timeout: self.http_timeout,
                max_bytes: self.jwks_max_bytes,
                max_stale: self.jwks_max_stale,
            },
        )
        .map_err(|error: reqwest::Error| ConfigError::HttpClient(error.to_string()))?;
        let realm = self.realm.as_deref().unwrap_or(&self.audiences[0]);
        Ok(Verifier {
            issuer: self.issuer.as_str().into(),
            audiences: self.audiences.iter().map(|a| a.as_str().into()).collect(),
            algorithms,
            typ: self.typ,
            leeway_secs: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
            max_token_bytes: self.max_token_bytes,
            keys: Arc::new(keys),
            tokens: self.token_cache.map(TokenCache::new),
            batcher: self.signature_batching.then(SignatureBatcher::default),
            challenge: Arc::new(Challenge::new(realm, self.resource_metadata.as_deref())),
        })
    }
}

fn http_url(what: &'static str, value: &str) -> Result<Url, ConfigError> {
    Url::parse(value)
        .ok()
        .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
        .ok_or_else(|| ConfigError::BadUrl {
            what,
            value: value.to_owned(),
        })
}
