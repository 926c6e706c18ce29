//! The agent's side (feature `client`): what an agent runtime uses to obtain and reuse its
//! access token, and what an operator uses to provision agents.
//!
//! - [`TokenSource`]: the `client_credentials` grant against any RFC 8414 issuer, authenticating
//!   with a secret ([`ClientCredential::Secret`], `client_secret_basic`) or a private Ed25519 JWK
//!   ([`ClientCredential::PrivateKeyJwt`], RFC 7523 `private_key_jwt`). It hands out a cached
//!   token, renews it before `exp`, lets one request be in flight however many tasks ask,
//!   retries transport errors and `5xx` with capped, jittered backoff, and turns
//!   `invalid_client` into a typed error that is never retried (and replayed without asking the
//!   issuer again during a cooldown).
//! - [`AuthorizationLayer`]: a tower layer for outgoing `http::Request`s that adds
//!   `Authorization: Bearer …` and, on `401` with `error="invalid_token"`, renews once and
//!   retries once. [`AuthorizationMiddleware`] does the same for `reqwest-middleware` (feature
//!   `reqwest-middleware`).
//! - [`ManagementClient::provision`]: idempotent provisioning by `external_id`.
//!
//! ```no_run
//! use agent_auth::client::{ClientCredential, TokenSource};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let tokens = TokenSource::builder(
//!     "https://issuer.example.com",
//!     "agt_0123456789abcdef0123456789abcdef",
//!     ClientCredential::secret(std::env::var("AGENT_SECRET")?),
//! )
//! .scopes(["tickets:read"])
//! .resource("https://api.example.com/tickets")
//! .build()?;
//! let token = tokens.token().await?;
//! let response = reqwest::Client::new()
//!     .get("https://api.example.com/tickets")
//!     .bearer_auth(token.expose())
//!     .send()
//!     .await?;
//! # let _ = response;
//! # Ok(())
//! # }
//! ```

mod clock;
mod credential;
mod discovery;
mod error;
mod exchange;
mod http;
mod management;
mod retry;
mod token_source;
mod tower;

#[cfg(feature = "reqwest-middleware")]
mod reqwest;

pub use clock::{Clock, SystemClock};
pub use credential::{ClientCredential, ClientSecret, JwkError, PrivateJwk};
pub use error::{BuildError, TokenError, Transient};
pub use management::{AgentSpec, ManagementClient, ManagementError, Provisioned};
pub use retry::RetryPolicy;
pub use token_source::{
    AccessToken, DEFAULT_REFUSAL_COOLDOWN, DEFAULT_RENEW_MARGIN, DEFAULT_REQUEST_TIMEOUT,
    TokenSource, TokenSourceBuilder,
};
pub use tower::{AuthorizationError, AuthorizationLayer, AuthorizationService};

#[cfg(feature = "reqwest-middleware")]
pub use self::reqwest::AuthorizationMiddleware;
