//! Error types: [`IssuerError`] (starting the issuer), and the two wire error shapes — the
//! management API's `{"error":{"code","message"}}` and the token endpoint's RFC 6749 §5.2
//! `{"error","error_description"}`.
//!
//! Messages are fixed texts or describe the input's shape; they never echo a secret or a token.

use std::borrow::Cow;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::client::ClientError;
use super::keys::KeyError;
use super::registry::{Object, RuleError};
use super::secrets::RandomError;
use super::storage::StorageError;

/// What is wrong with a configured issuer URL.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerUrlError {
    /// None was configured.
    #[error("no issuer URL configured")]
    Missing,
    /// Not a URL.
    #[error(transparent)]
    Unparsable(#[from] url::ParseError),
    /// Not `http` or `https`.
    #[error("the scheme must be http or https")]
    Scheme,
    /// It has a query or a fragment.
    #[error("no query or fragment allowed")]
    QueryOrFragment,
    /// It has a user name or password.
    #[error("no user info allowed")]
    UserInfo,
}

/// Why the issuer could not be built or served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssuerError {
    /// The issuer URL is not an absolute `http`/`https` URL without query or fragment.
    #[error("invalid issuer URL: {0}")]
    InvalidIssuerUrl(#[source] IssuerUrlError),
    /// No admin key was configured.
    #[error("no admin key configured")]
    MissingAdminKey,
    /// The admin key id or secret is empty or contains `:` / control characters.
    #[error("invalid admin key: {0}")]
    InvalidAdminKey(&'static str),
    /// PostgreSQL storage without a key-encryption key (`AGENT_AUTH_KEY_ENCRYPTION_KEY`).
    #[error(
        "PostgreSQL storage requires AGENT_AUTH_KEY_ENCRYPTION_KEY (base64 of 32 random bytes) to encrypt the signing keys"
    )]
    KeyEncryptionKeyRequired,
    /// The database could not be opened or failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Signing keys could not be loaded or generated.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The OS random number generator failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// Binding or serving failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The admin client could not be built.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The middleware guarding self-service could not be configured from the issuer URL.
    #[error("self-service verification could not be configured: {0}")]
    SelfService(#[source] crate::ConfigError),
}

impl IssuerError {
    /// A rule failure outside a request (only storage and randomness can fail there).
    pub(crate) fn from_rule(e: RuleError) -> Self {
        match e {
            RuleError::Storage(e) => Self::Storage(e),
            RuleError::Random(e) => Self::Random(e),
            other => Self::Storage(StorageError::backend(other)),
        }
    }
}

/// A management API error: `{"error": {"code": …, "message": …}}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    /// `Retry-After` seconds (429).
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// `408 request_timeout`: the body did not arrive in time; the connection is closed.
    pub(crate) fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        )
    }

    /// `429 rate_limited` with `Retry-After`.
    pub(crate) fn too_many_requests(
        message: impl Into<Cow<'static, str>>,
        retry_after_secs: u64,
    ) -> Self {
        Self {
            retry_after: Some(retry_after_secs),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
        }
    }

    pub(crate) fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub(crate) fn invalid_json(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    pub(crate) fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            message,
        )
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid admin key is required (HTTP Basic)",
        )
    }

    pub(crate) fn not_found(what: &'static str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} not found"),
        )
    }

    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body exceeds {limit} bytes"),
        )
    }

    pub(crate) fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be application/json",
        )
    }

    pub(crate) fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this path",
        )
    }

    pub(crate) fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
    }
}

impl From<RuleError> for ApiError {
    fn from(err: RuleError) -> Self {
        let message = err.to_string();
        match err {
            RuleError::NotFound(Object::Membership) => Self::not_found("membership"),
            RuleError::NotFound(o) => Self::not_found(o.name()),
            RuleError::ExternalIdTaken
            | RuleError::KeyTaken
            | RuleError::WalletTaken
            | RuleError::AlreadyMember
            | RuleError::WrongStatus { .. } => Self::new(StatusCode::CONFLICT, "conflict", message),
            RuleError::TooManyVerifiers | RuleError::TooManyWebhooks => {
                Self::new(StatusCode::CONFLICT, "limit_exceeded", message)
            }
            RuleError::ReasonRequired
            | RuleError::ReasonWithoutSuspension
            | RuleError::ReasonOnActiveAgent => Self::validation(message),
            RuleError::SuspendedByAdmin => {
                Self::new(StatusCode::FORBIDDEN, "agent_suspended", message)
            }
            RuleError::Storage(StorageError::InvalidCursor) => Self::bad_request("invalid cursor"),
            RuleError::Storage(e) => {
                tracing::error!(error = %e, "issuer storage failed");
                Self::internal()
            }
            RuleError::TooManyWrites { retry_after_secs } => {
                Self::too_many_requests(message, retry_after_secs)
            }
            RuleError::Random(e) => e.into(),
        }
    }
}

impl From<RandomError> for ApiError {
    fn from(_: RandomError) -> Self {
        tracing::error!("OS random number generator failed");
        Self::internal()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        let mut res = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"agent-auth admin\""),
            );
        }
        if self.status == StatusCode::REQUEST_TIMEOUT {
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// A token endpoint error (RFC 6749 §5.2).
#[derive(Debug)]
pub(crate) struct OAuthError {
    status: StatusCode,
    error: &'static str,
    description: Cow<'static, str>,
    basic_challenge: bool,
}

impl OAuthError {
    fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
        }
    }

    pub(crate) fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// `invalid_client` (401); `basic` adds `WWW-Authenticate: Basic` (the client used Basic).
    pub(crate) fn invalid_client(basic: bool) -> Self {
        Self {
            basic_challenge: basic,
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            )
        }
    }

    pub(crate) fn unsupported_grant_type() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "supported grant types: client_credentials, urn:agent-auth:params:oauth:grant-type:wallet",
        )
    }

    /// `unsupported_response_type` (400): the authorization endpoint grants nothing.
    pub(crate) fn unsupported_response_type() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_response_type",
            "this authorization server has no interactive grant; use the token endpoint (client_credentials)",
        )
    }

    /// `invalid_grant` (400): the wallet sign-in message or its signature is not acceptable.
    pub(crate) fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    pub(crate) fn invalid_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    pub(crate) fn invalid_target(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", description)
    }

    /// The body did not arrive in time (`408`, `invalid_request`); the connection is closed.
    pub(crate) fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "invalid_request",
            "the request body did not arrive in time",
        )
    }

    pub(crate) fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal error",
        )
    }

    pub(crate) fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!("the request body exceeds {limit} bytes"),
        )
    }

    /// The `error` code (for tracing).
    pub(crate) fn code(&self) -> &'static str {
        self.error
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": self.error, "error_description": self.description}));
        let mut res = (self.status, body).into_response();
        let headers = res.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.status == StatusCode::REQUEST_TIMEOUT {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if self.basic_challenge {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"agent-auth\""),
            );
        }
        res
    }
}
