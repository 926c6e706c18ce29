//! The errors of the agent's side. None of them carries a secret or a token.

/// Why a [`TokenSource`](super::TokenSource) could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The issuer URL is not an absolute `http`/`https` URL without query or fragment.
    #[error("invalid issuer URL")]
    IssuerUrl,
    /// The configured token endpoint is not an absolute `http`/`https` URL.
    #[error("invalid token endpoint URL")]
    TokenEndpoint,
    /// A scope is not an RFC 6749 scope token.
    #[error("invalid scope token")]
    Scope,
    /// The `resource` is not an absolute URI without fragment (RFC 8707).
    #[error("invalid resource indicator")]
    Resource,
    /// The client id is empty or contains control characters.
    #[error("invalid client id")]
    ClientId,
    /// The HTTP client could not be set up.
    #[error("HTTP client could not be built")]
    Http(#[source] reqwest::Error),
}

/// What went wrong in the last attempt of a request that was retried and still failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Transient {
    /// Connecting, sending or reading failed.
    #[error("transport error")]
    Transport(#[source] reqwest::Error),
    /// The attempt took longer than the configured request timeout.
    #[error("request timed out")]
    Timeout,
    /// The server answered `5xx` (or `429`).
    #[error("server answered {0}")]
    Status(u16),
}

/// Why [`TokenSource::token`](super::TokenSource::token) gave no token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The issuer refused the client's credentials (`invalid_client`): a wrong or removed
    /// secret or key, or a suspended, deleted or expired agent. Never retried; during the
    /// refusal cooldown it is returned again without asking the issuer.
    #[error("the issuer refused the client credentials (invalid_client)")]
    InvalidClient {
        /// The issuer's `error_description` (may be empty).
        description: String,
    },
    /// The issuer refused the request with another RFC 6749 §5.2 error (`invalid_scope`,
    /// `invalid_target`, `unauthorized_client`, …). Not retried.
    #[error("the issuer refused the token request ({code})")]
    Refused {
        /// The `error` code.
        code: String,
        /// The `error_description` (may be empty).
        description: String,
    },
    /// The issuer could not be reached or kept failing; every allowed attempt was made.
    #[error("the issuer is unavailable after {attempts} attempts")]
    Unavailable {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's failure.
        #[source]
        last: Transient,
    },
    /// The issuer's RFC 8414 metadata is unusable (its `issuer` differs from the configured
    /// URL, no usable `token_endpoint`, not JSON).
    #[error("unusable authorization server metadata: {0}")]
    Metadata(&'static str),
    /// The issuer answered something that is not a token response of RFC 6749 §5.1 (or a
    /// token type other than `Bearer`), or an error body without the RFC 6749 §5.2 shape.
    #[error("unexpected response from the issuer ({status}): {detail}")]
    InvalidResponse {
        /// HTTP status.
        status: u16,
        /// What was wrong.
        detail: &'static str,
    },
    /// The client assertion could not be made (the operating system's random source failed).
    #[error("the client assertion could not be created")]
    Assertion,
}

impl TokenError {
    /// The OAuth error code, when the issuer refused (`invalid_client`, `invalid_scope`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::InvalidClient { .. } => Some("invalid_client"),
            Self::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}
