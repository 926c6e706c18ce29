//! Why a request was not authenticated. Every variant maps to exactly one response in
//! [`challenge`](crate::challenge); descriptions are fixed strings and never contain token bytes.

use std::time::Duration;

/// Why a request carries no usable agent identity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No `Authorization: Bearer` credentials (absent, or another scheme such as `Basic`).
    #[error("no bearer token")]
    MissingToken,
    /// The request is malformed (RFC 6750 `invalid_request`, status 400).
    #[error("invalid request: {}", .0.description())]
    InvalidRequest(InvalidRequest),
    /// The token is not acceptable (RFC 6750 `invalid_token`, status 401).
    #[error("invalid token: {}", .0.description())]
    InvalidToken(InvalidToken),
    /// No signing keys could be obtained at all (issuer down and nothing cached): 503.
    #[error("signing keys unavailable; retry after {retry_after:?}")]
    KeysUnavailable {
        /// When a new attempt to fetch the keys will be made.
        retry_after: Duration,
    },
}

impl AuthError {
    /// A stable snake_case name for the reason: `missing_token`, `keys_unavailable`, or that
    /// of the [`InvalidRequest`] or [`InvalidToken`] inside. The `reason` label of the
    /// verification metrics.
    pub const fn reason(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::InvalidRequest(reason) => reason.reason(),
            AuthError::InvalidToken(reason) => reason.reason(),
            AuthError::KeysUnavailable { .. } => "keys_unavailable",
        }
    }
}

/// Ways a request can be malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// More than one `Authorization` header.
    MultipleAuthorizationHeaders,
    /// `Bearer` with no token after it.
    MissingBearerToken,
    /// The credentials do not follow the `Bearer <b64token>` syntax (RFC 6750 §2.1).
    BadSyntax,
}

impl InvalidRequest {
    /// A stable snake_case name, the `reason` label of the verification metrics.
    pub const fn reason(self) -> &'static str {
        match self {
            InvalidRequest::MultipleAuthorizationHeaders => "multiple_authorization_headers",
            InvalidRequest::MissingBearerToken => "missing_bearer_token",
            InvalidRequest::BadSyntax => "bad_syntax",
        }
    }

    /// A short, fixed explanation suitable for `error_description`.
    pub const fn description(self) -> &'static str {
        match self {
            InvalidRequest::MultipleAuthorizationHeaders => "more than one Authorization header",
            InvalidRequest::MissingBearerToken => "Bearer scheme without a token",
            InvalidRequest::BadSyntax => "malformed Bearer credentials",
        }
    }
}

macro_rules! invalid_token {
    ($($(#[$doc:meta])* $variant:ident => $description:literal, $reason:literal;)*) => {
        /// Ways a token can be invalid. Each has a fixed `error_description`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum InvalidToken {
            $($(#[$doc])* $variant,)*
        }

        impl InvalidToken {
            pub(crate) const ALL: &'static [InvalidToken] = &[$(InvalidToken::$variant,)*];

            /// A short, fixed explanation suitable for `error_description`.
            pub const fn description(self) -> &'static str {
                match self {
                    $(InvalidToken::$variant => $description,)*
                }
            }

            /// A stable snake_case name, the `reason` label of the verification metrics.
            pub const fn reason(self) -> &'static str {
                match self {
                    $(InvalidToken::$variant => $reason,)*
                }
            }
        }
    };
}

invalid_token! {
    /// Longer than the configured token size limit.
    TooLarge => "token too large", "too_large";
    /// Not a compact JWS with valid base64url and JSON.
    Malformed => "malformed token", "malformed";
    /// `alg` is not an accepted asymmetric algorithm (`none` and `HS*` included).
    UnsupportedAlgorithm => "unsupported algorithm", "unsupported_algorithm";
    /// `crit` names extensions this verifier does not understand.
    UnsupportedCritical => "unsupported critical header", "unsupported_critical";
    /// `typ` is present and not `at+jwt` / `JWT`.
    UnsupportedType => "unsupported token type", "unsupported_type";
    /// No published key matches the token's `kid`.
    UnknownKey => "unknown signing key", "unknown_key";
    /// The key under `kid` is for another algorithm than the token claims.
    KeyAlgorithmMismatch => "algorithm does not match the signing key", "key_algorithm_mismatch";
    /// No `kid` and several published keys could have signed it.
    AmbiguousKey => "token has no kid and several keys match", "ambiguous_key";
    /// The signature does not verify.
    BadSignature => "signature verification failed", "bad_signature";
    /// `iss`, `sub`, `aud` or `exp` is missing.
    MissingClaim => "required claim missing", "missing_claim";
    /// A claim has the wrong JSON type.
    InvalidClaim => "claim has an invalid type", "invalid_claim";
    /// `iss` names no configured issuer.
    WrongIssuer => "wrong issuer", "wrong_issuer";
    /// No `aud` value is an accepted audience.
    WrongAudience => "wrong audience", "wrong_audience";
    /// `exp` has passed (beyond the leeway).
    Expired => "token expired", "expired";
    /// `nbf` is in the future (beyond the leeway).
    NotYetValid => "token not yet valid", "not_yet_valid";
    /// The caller is not an agent: `dat.type` is not `"agent"` or `sub` lacks the `agt_` prefix.
    NotAnAgent => "not an agent token", "not_an_agent";
}

impl From<InvalidToken> for AuthError {
    fn from(reason: InvalidToken) -> Self {
        AuthError::InvalidToken(reason)
    }
}

impl From<InvalidRequest> for AuthError {
    fn from(reason: InvalidRequest) -> Self {
        AuthError::InvalidRequest(reason)
    }
}
