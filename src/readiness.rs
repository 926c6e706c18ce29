//! What the layer reports about its keys: readiness for health probes, and why a requested
//! refresh failed.

use std::time::Duration;

use crate::jwks::JwksFetchError;

/// The keys of every trusted issuer, for a readiness probe
/// ([`AgentAuthLayer::readiness`](crate::AgentAuthLayer::readiness)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Readiness {
    /// One entry per configured issuer, in configuration order.
    pub issuers: Vec<IssuerReadiness>,
}

impl Readiness {
    /// Every issuer's tokens can be verified now: each holds usable keys.
    pub fn is_ready(&self) -> bool {
        self.issuers.iter().all(|issuer| issuer.usable)
    }
}

/// One issuer's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IssuerReadiness {
    /// The issuer identifier.
    pub issuer: String,
    /// Usable signing keys held.
    pub keys: usize,
    /// Time since the keys were last fetched or confirmed unchanged; `None` before the first
    /// fetch.
    pub age: Option<Duration>,
    /// The keys may verify tokens: fetched at least once and not older than the configured
    /// maximum staleness. Until the first request or refresh, nothing has been fetched.
    pub usable: bool,
}

/// Why [`AgentAuthLayer::refresh_keys`](crate::AgentAuthLayer::refresh_keys) failed.
#[derive(Debug, thiserror::Error)]
#[error("JWKS refresh of {issuer} failed")]
pub struct KeyRefreshError {
    /// The issuer whose keys could not be fetched; its previous keys stay in use.
    pub issuer: String,
    /// Why.
    #[source]
    pub cause: JwksFetchError,
}
