//! What the layer counts, through the [`metrics`] facade: the application installs whichever
//! recorder (exporter) it likes; without one every handle is a no-op.
//!
//! Handles are registered once, when the layer is built, so a request pays an increment and
//! never a registry lookup: install the recorder before calling
//! [`AgentAuth::build`](crate::AgentAuth::build). The names and labels below are stable; new
//! label values may appear (a new rejection reason), none is renamed.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `agent_auth_verifications_total` | counter | `outcome` (`accepted`, `rejected`, `unavailable`, `anonymous`), `reason` (`ok` or [`AuthError::reason`]) |
//! | `agent_auth_token_cache_total` | counter | `result` (`hit`, `miss`) |
//! | `agent_auth_verification_seconds` | histogram | none: tokens that missed the cache, from the miss to the verdict, key fetches and signature batches included |
//! | `agent_auth_jwks_fetches_total` | counter | `issuer`, `result` (`ok`, `not_modified`, `error`) |
//! | `agent_auth_jwks_keys` | gauge | `issuer`: keys held after the last fetch |

use std::time::Instant;

use metrics::{Counter, Gauge, Histogram};

use crate::error::{AuthError, InvalidRequest, InvalidToken};

/// `agent_auth_verifications_total`.
pub const VERIFICATIONS: &str = "agent_auth_verifications_total";
/// `agent_auth_token_cache_total`.
pub const TOKEN_CACHE: &str = "agent_auth_token_cache_total";
/// `agent_auth_verification_seconds`.
pub const VERIFICATION_SECONDS: &str = "agent_auth_verification_seconds";
/// `agent_auth_jwks_fetches_total`.
pub const JWKS_FETCHES: &str = "agent_auth_jwks_fetches_total";
/// `agent_auth_jwks_keys`.
pub const JWKS_KEYS: &str = "agent_auth_jwks_keys";

const INVALID_REQUESTS: [InvalidRequest; 3] = [
    InvalidRequest::MultipleAuthorizationHeaders,
    InvalidRequest::MissingBearerToken,
    InvalidRequest::BadSyntax,
];

/// The verifier's handles, one per label set.
pub(crate) struct VerifierMetrics {
    accepted: Counter,
    anonymous: Counter,
    missing_token: Counter,
    keys_unavailable: Counter,
    /// Indexed like [`INVALID_REQUESTS`].
    invalid_request: [Counter; 3],
    /// Indexed like [`InvalidToken::ALL`].
    invalid_token: Box<[Counter]>,
    cache_hit: Counter,
    cache_miss: Counter,
    latency: Histogram,
}

impl VerifierMetrics {
    /// Registers every handle with the recorder installed now.
    pub(crate) fn register() -> Self {
        let outcome = |outcome: &'static str, reason: &'static str| metrics::counter!(VERIFICATIONS, "outcome" => outcome, "reason" => reason);
        let rejected = |error: AuthError| outcome("rejected", error.reason());
        VerifierMetrics {
            accepted: outcome("accepted", "ok"),
            anonymous: outcome("anonymous", AuthError::MissingToken.reason()),
            missing_token: rejected(AuthError::MissingToken),
            keys_unavailable: outcome(
                "unavailable",
                AuthError::KeysUnavailable {
                    retry_after: std::time::Duration::ZERO,
                }
                .reason(),
            ),
            invalid_request: INVALID_REQUESTS.map(|reason| rejected(reason.into())),
            invalid_token: InvalidToken::ALL
                .iter()
                .map(|&reason| rejected(reason.into()))
                .collect(),
            cache_hit: metrics::counter!(TOKEN_CACHE, "result" => "hit"),
            cache_miss: metrics::counter!(TOKEN_CACHE, "result" => "miss"),
            latency: metrics::histogram!(VERIFICATION_SECONDS),
        }
    }

    pub(crate) fn accepted(&self) {
        self.accepted.increment(1);
    }

    /// A request without credentials let through by an optional layer.
    pub(crate) fn anonymous(&self) {
        self.anonymous.increment(1);
    }

    pub(crate) fn refused(&self, error: &AuthError) {
        let counter = match error {
            AuthError::MissingToken => &self.missing_token,
            AuthError::KeysUnavailable { .. } => &self.keys_unavailable,
            AuthError::InvalidRequest(reason) => {
                match INVALID_REQUESTS.iter().position(|known| known == reason) {
                    Some(index) => &self.invalid_request[index],
                    None => return,
                }
            }
            AuthError::InvalidToken(reason) => match self.invalid_token.get(*reason as usize) {
                Some(counter) => counter,
                None => return,
            },
        };
        counter.increment(1);
    }

    pub(crate) fn outcome(&self, outcome: &Result<crate::Agent, AuthError>) {
        match outcome {
            Ok(_) => self.accepted(),
            Err(error) => self.refused(error),
        }
    }

    pub(crate) fn cache_hit(&self) {
        self.cache_hit.increment(1);
    }

    pub(crate) fn cache_miss(&self) {
        self.cache_miss.increment(1);
    }

    pub(crate) fn verified_in(&self, started: Instant) {
        self.latency.record(started.elapsed().as_secs_f64());
    }
}

/// One issuer's key-fetching handles.
pub(crate) struct JwksMetrics {
    pub(crate) fetched: Counter,
    pub(crate) not_modified: Counter,
    pub(crate) failed: Counter,
    pub(crate) keys: Gauge,
}

impl JwksMetrics {
    pub(crate) fn register(issuer: &str) -> Self {
        let fetches = |result: &'static str| metrics::counter!(JWKS_FETCHES, "issuer" => issuer.to_owned(), "result" => result);
        JwksMetrics {
            fetched: fetches("ok"),
            not_modified: fetches("not_modified"),
            failed: fetches("error"),
            keys: metrics::gauge!(JWKS_KEYS, "issuer" => issuer.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_invalid_token_has_its_counter_at_its_index() {
        for (index, reason) in InvalidToken::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, index, "{reason:?}");
        }
    }
}
