//! [`AgentAuth`]: the builder users configure, the one place defaults live, and
//! [`build`](AgentAuth::build), the one place a configuration is checked.

use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::algorithm::{Algorithm, AlgorithmSet};
use crate::challenge::Challenge;
use crate::jwks::{JwksCache, JwksConfig, JwksSource};
use crate::layer::AgentAuthLayer;
use crate::metrics::VerifierMetrics;
use crate::signature_batch::SignatureBatcher;
use crate::token_cache::{TokenCache, TokenCacheLimits};
use crate::verify::{TokenTypeHeader, TrustedIssuer, Verifier};

/// The configuration of agent-token verification: build it into an [`AgentAuthLayer`], the
/// tower [`Layer`](tower::Layer) for axum routers and plain hyper services alike.
///
/// ```
/// use agent_auth::{AgentAuth, Issuer};
/// # fn main() -> Result<(), agent_auth::ConfigError> {
/// let auth = AgentAuth::new("https://issuer.example.com")
///     .audience("https://api.example.com/tickets")
///     // A second trusted issuer, with its own keys (and, here, its own audience).
///     .issuer(Issuer::new("https://partner.example.net").audience("https://api.example.com/partner"))
///     .build()?;
/// # Ok(()) }
/// ```
///
/// [`build`](Self::build) checks everything at once and reports every problem; the built layer
/// never panics and never meets a configuration error at request time. Clones of the built
/// layer share its JWKS caches and every other piece of state; each `build` starts afresh.
#[derive(Debug, Clone)]
pub struct AgentAuth {
    /// The issuer given to [`new`](Self::new) first, then those added with
    /// [`issuer`](Self::issuer).
    issuers: Vec<Issuer>,
    /// For issuers without audiences of their own.
    audiences: Vec<String>,
    leeway: Duration,
    algorithms: Vec<Algorithm>,
    typ: TokenTypeHeader,
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
    basic_scopes: Vec<String>,
    token_cache: Option<TokenCacheLimits>,
    signature_batching: bool,
    optional: bool,
}

/// One trusted issuer: a token whose `iss` equals its identifier exactly is checked with its
/// keys and audiences, and with no other issuer's.
///
/// Keys come from `{issuer}/jwks.json` unless [`jwks_uri`](Self::jwks_uri) or
/// [`discover`](Self::discover) says otherwise. Without audiences of its own, the
/// [`AgentAuth::audience`] values apply.
#[derive(Debug, Clone)]
pub struct Issuer {
    issuer: String,
    audiences: Vec<String>,
    jwks_uri: Option<String>,
    discover: bool,
}

impl Issuer {
    /// Trusts tokens whose `iss` is exactly `issuer`.
    pub fn new(issuer: impl AsRef<str>) -> Self {
        Issuer {
            issuer: issuer.as_ref().to_owned(),
            audiences: Vec::new(),
            jwks_uri: None,
            discover: false,
        }
    }

    /// Accepts this issuer's tokens for `audience` only (call again for several), instead of
    /// the layer's audiences.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Fetches this issuer's keys from `uri` instead of `{issuer}/jwks.json`.
    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self.discover = false;
        self
    }

    /// Reads `jwks_uri` from the issuer's RFC 8414 metadata
    /// (`/.well-known/oauth-authorization-server`), checking that it names this issuer.
    pub fn discover(mut self) -> Self {
        self.discover = true;
        self.jwks_uri = None;
        self
    }

    /// The identifier tokens must carry in `iss`.
    pub fn as_str(&self) -> &str {
        &self.issuer
    }
}

/// Why an [`AgentAuth`] configuration cannot work: every problem found, in the order of the
/// settings.
#[derive(Debug, thiserror::Error)]
#[error("AgentAuth configuration: {}", join(.problems))]
pub struct ConfigError {
    problems: Vec<ConfigProblem>,
}

impl ConfigError {
    /// The problems, at least one.
    pub fn problems(&self) -> &[ConfigProblem] {
        &self.problems
    }
}

fn join(problems: &[ConfigProblem]) -> String {
    let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
    messages.join("; ")
}

/// One problem of a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// An issuer has no audience (neither its own nor the layer's): every token would be refused.
    #[error("no audience for issuer {issuer}")]
    NoAudience {
        /// The issuer.
        issuer: String,
    },
    /// `.algorithms(…)` was given an empty list.
    #[error("no accepted algorithm")]
    NoAlgorithm,
    /// The same issuer was configured twice.
    #[error("issuer {issuer} is configured twice")]
    DuplicateIssuer {
        /// The issuer.
        issuer: String,
    },
    /// A URL setting is not an absolute http(s) URL.
    #[error("{setting} is not an absolute http(s) URL: {value}")]
    BadUrl {
        /// Which setting (`issuer`, `jwks_uri`, `resource_metadata`).
        setting: &'static str,
        /// The value given.
        value: String,
        /// What is wrong with it.
        #[source]
        reason: UrlProblem,
    },
    /// A size or time limit is zero: nothing could pass it.
    #[error("{setting} must be greater than zero")]
    Zero {
        /// Which setting.
        setting: &'static str,
    },
    /// A scope given to [`AgentAuth::basic_scopes`] is not an RFC 6749 §3.3 scope token.
    #[error("not a scope token: {scope:?}")]
    BadScope {
        /// The value given.
        scope: String,
    },
    /// The HTTP client for key fetching could not be built (TLS initialisation).
    #[error("HTTP client")]
    HttpClient(#[source] reqwest::Error),
}

/// What makes a URL setting unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UrlProblem {
    /// It does not parse as an absolute URL.
    #[error(transparent)]
    Parse(#[from] url::ParseError),
    /// Its scheme is not `http` or `https`.
    #[error("not http or https")]
    NotHttp,
    /// It has no host.
    #[error("no host")]
    NoHost,
}

impl AgentAuth {
    /// Trusts tokens from `issuer`; a token's `iss` must equal it exactly. Keys come from
    /// `{issuer}/jwks.json` unless [`jwks_uri`](Self::jwks_uri) or
    /// [`discover`](Self::discover) says otherwise. More issuers: [`issuer`](Self::issuer).
    ///
    /// Anything that is `AsRef<str>` works, such as the bundled issuer's test handle.
    pub fn new(issuer: impl AsRef<str>) -> Self {
        Self::for_issuer(Issuer::new(issuer))
    }

    /// Trusts `issuer`, with the settings it carries ([`Issuer::jwks_uri`], …).
    pub fn for_issuer(issuer: Issuer) -> Self {
        AgentAuth {
            issuers: vec![issuer],
            audiences: Vec::new(),
            leeway: Duration::from_secs(5),
            algorithms: Algorithm::ALL.to_vec(),
            typ: TokenTypeHeader::default(),
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
            basic_scopes: Vec::new(),
            signature_batching: true,
            token_cache: Some(TokenCacheLimits {
                max_entries: 10_000,
                max_bytes: 32 * 1024 * 1024,
            }),
            optional: false,
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Self)) -> Self {
        change(&mut self);
        self
    }

    fn with_first_issuer(mut self, change: impl FnOnce(Issuer) -> Issuer) -> Self {
        // `new` puts the first issuer in; nothing removes it.
        if let Some(first) = self.issuers.first_mut() {
            *first = change(first.clone());
        }
        self
    }

    /// Also trusts `issuer`, with its own keys (and audiences, if it has any).
    pub fn issuer(self, issuer: Issuer) -> Self {
        self.with(|o| o.issuers.push(issuer))
    }

    /// Accepts tokens whose `aud` contains `audience` (call again to accept several), from
    /// every issuer without audiences of its own.
    pub fn audience(self, audience: impl Into<String>) -> Self {
        let audience = audience.into();
        self.with(|o| o.audiences.push(audience))
    }

    /// Fetches the keys of the issuer given to [`new`](Self::new) from this URL instead of
    /// `{issuer}/jwks.json`.
    pub fn jwks_uri(self, uri: impl Into<String>) -> Self {
        self.with_first_issuer(|issuer| issuer.jwks_uri(uri))
    }

    /// Reads the `jwks_uri` of the issuer given to [`new`](Self::new) from its RFC 8414
    /// metadata (`/.well-known/oauth-authorization-server`), checking that it names this issuer.
    pub fn discover(self) -> Self {
        self.with_first_issuer(Issuer::discover)
    }

    /// Lets requests without credentials through, without an [`Agent`](crate::Agent) (handlers
    /// take `Option<Agent>`); a request with a bad token is still refused. "Without
    /// credentials" means no `Authorization` header, or one of another scheme (`Basic`).
    pub fn optional(self) -> Self {
        self.with(|o| o.optional = true)
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

    /// What the `typ` header may say (default [`TokenTypeHeader::AtJwtOrJwt`]).
    pub fn typ_header(self, typ: TokenTypeHeader) -> Self {
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

    /// The `realm` of challenges (default: the first audience).
    pub fn realm(self, realm: impl Into<String>) -> Self {
        let realm = realm.into();
        self.with(|o| o.realm = Some(realm))
    }

    /// Advertises this RFC 9728 metadata URL in every challenge (`resource_metadata="…"`).
    /// Serve the document with [`protected_resource_metadata`](crate::AgentAuthLayer::protected_resource_metadata).
    pub fn resource_metadata(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.with(|o| o.resource_metadata = Some(url))
    }

    /// The resource's basic scope set: a `401` for a request without a token names it
    /// (`scope="…"`), so that a client such as an MCP SDK knows what to ask the issuer for.
    pub fn basic_scopes<I>(self, scopes: I) -> Self
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        self.with(|o| o.basic_scopes = scopes)
    }

    /// Checks the whole configuration and builds the layer: its JWKS caches (one per issuer),
    /// token cache and challenges. Every problem is reported at once.
    ///
    /// Metrics handles are registered here, with the `metrics` recorder installed now.
    pub fn build(&self) -> Result<AgentAuthLayer, ConfigError> {
        let mut problems = Vec::new();
        if AlgorithmSet::from_iter(self.algorithms.iter().copied()).is_empty() {
            problems.push(ConfigProblem::NoAlgorithm);
        }
        for (setting, value) in [
            ("max_token_bytes", self.max_token_bytes),
            ("jwks_max_bytes", self.jwks_max_bytes),
            ("http_timeout", usize::from(!self.http_timeout.is_zero())),
        ] {
            if value == 0 {
                problems.push(ConfigProblem::Zero { setting });
            }
        }
        if let Some(url) = &self.resource_metadata
            && let Err(problem) = http_url("resource_metadata", url)
        {
            problems.push(problem);
        }
        for scope in &self.basic_scopes {
            // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
            let token_char =
                |b: u8| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b);
            if scope.is_empty() || !scope.bytes().all(token_char) {
                problems.push(ConfigProblem::BadScope {
                    scope: scope.clone(),
                });
            }
        }
        let mut sources = Vec::with_capacity(self.issuers.len());
        for (index, issuer) in self.issuers.iter().enumerate() {
            if self.issuers[..index]
                .iter()
                .any(|earlier| earlier.issuer == issuer.issuer)
            {
                problems.push(ConfigProblem::DuplicateIssuer {
                    issuer: issuer.issuer.clone(),
                });
            }
            if issuer.audiences.is_empty() && self.audiences.is_empty() {
                problems.push(ConfigProblem::NoAudience {
                    issuer: issuer.issuer.clone(),
                });
            }
            match self.source(issuer) {
                Ok(source) => sources.push(source),
                Err(problem) => problems.push(problem),
            }
        }
        if !problems.is_empty() {
            return Err(ConfigError { problems });
        }

        let mut issuers = Vec::with_capacity(self.issuers.len());
        for (issuer, source) in self.issuers.iter().zip(sources) {
            let keys =
                JwksCache::new(&issuer.issuer, self.jwks_config(source)).map_err(|error| {
                    ConfigError {
                        problems: vec![ConfigProblem::HttpClient(error)],
                    }
                })?;
            let audiences = match issuer.audiences.is_empty() {
                true => &self.audiences,
                false => &issuer.audiences,
            };
            issuers.push(TrustedIssuer {
                issuer: issuer.issuer.as_str().into(),
                audiences: audiences.iter().map(|a| a.as_str().into()).collect(),
                keys: Arc::new(keys),
            });
        }
        // Checked above: at least one issuer, each with at least one audience.
        let first_audience = issuers.first().and_then(|first| first.audiences.first());
        let realm = self
            .realm
            .as_deref()
            .or(first_audience.map(|audience| &**audience))
            .unwrap_or_default();
        let challenge = Arc::new(Challenge::new(
            realm,
            self.resource_metadata.as_deref(),
            &self.basic_scopes.join(" "),
        ));
        let verifier = Verifier {
            issuers: issuers.into(),
            algorithms: AlgorithmSet::from_iter(self.algorithms.iter().copied()),
            typ: self.typ,
            leeway_secs: i64::try_from(self.leeway.as_secs()).unwrap_or(i64::MAX),
            max_token_bytes: self.max_token_bytes,
            tokens: self.token_cache.map(TokenCache::new),
            batcher: self.signature_batching.then(SignatureBatcher::default),
            challenge,
            metrics: VerifierMetrics::register(),
        };
        Ok(AgentAuthLayer::new(
            verifier,
            self.optional,
            self.resource_metadata.clone(),
        ))
    }

    fn source(&self, issuer: &Issuer) -> Result<JwksSource, ConfigProblem> {
        http_url("issuer", &issuer.issuer)?;
        Ok(match (&issuer.jwks_uri, issuer.discover) {
            (Some(uri), _) => JwksSource::Uri(http_url("jwks_uri", uri)?),
            (None, true) => JwksSource::Discover,
            (None, false) => {
                let uri = format!("{}/jwks.json", issuer.issuer.trim_end_matches('/'));
                JwksSource::Uri(http_url("issuer", &uri)?)
            }
        })
    }

    fn jwks_config(&self, source: JwksSource) -> JwksConfig {
        JwksConfig {
            source,
            default_ttl: self.jwks_default_ttl,
            min_ttl: self.jwks_min_ttl,
            max_ttl: self.jwks_max_ttl,
            cooldown: self.jwks_cooldown,
            timeout: self.http_timeout,
            max_bytes: self.jwks_max_bytes,
            max_stale: self.jwks_max_stale,
        }
    }
}

fn http_url(setting: &'static str, value: &str) -> Result<Url, ConfigProblem> {
    let problem = |reason| ConfigProblem::BadUrl {
        setting,
        value: value.to_owned(),
        reason,
    };
    let url = Url::parse(value).map_err(|error| problem(UrlProblem::Parse(error)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(problem(UrlProblem::NotHttp));
    }
    if !url.has_host() {
        return Err(problem(UrlProblem::NoHost));
    }
    Ok(url)
}
