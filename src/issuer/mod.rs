//! The bundled issuer: a minimal OAuth 2.0 authorization server for AI agents.
//!
//! It implements the management API (agents, secret verifiers, organizations and memberships,
//! audit events, webhooks, signing-key rotation; admin key over HTTP Basic), agent self-service
//! (the agent's own Bearer token, checked by this crate's middleware), the `client_credentials`
//! token endpoint, the JWKS and RFC 8414 metadata — the contract of DESIGN.md §3–§4. Tokens are 300-second EdDSA JWTs:
//!
//! ```text
//! header  {"alg":"EdDSA","kid":"…","typ":"at+jwt"}
//! claims  {"iss","sub":"agt_…","aud","exp":iat+300,"iat","jti","client_id","scope","dat":{"type":"agent"}}
//! ```
//!
//! # Testing your API against a real issuer
//!
//! [`TestIssuer`] is **the** way to write integration tests for an API protected by this crate:
//! it runs the real issuer in-process on `127.0.0.1:0`, hands you a typed admin client, and is
//! itself the issuer URL (`AsRef<str>`), so it plugs straight into the middleware:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use agent_auth::issuer::{CreateAgent, TestIssuer, TokenSpec};
//!
//! let issuer = TestIssuer::start().await;
//! // Your API under test: `AgentAuth::new(&issuer).audience("https://api.example.com")`.
//!
//! let agent = issuer
//!     .admin()
//!     .create_agent(&CreateAgent::new("triage bot").scopes(["tickets:read"]))
//!     .await?
//!     .data;
//! let secret = issuer.admin().add_secret(&agent.id, Some("primary")).await?.secret;
//! let token = issuer
//!     .admin()
//!     .token(&agent.id, secret.expose(), Some(&["tickets:read"]), Some("https://api.example.com"))
//!     .await?;
//! // Call your API with `Authorization: Bearer {token.access_token.expose()}` …
//!
//! // … and check that it refuses what it must: tokens signed by the issuer's real key but
//! // expired, for another audience, or not for an agent.
//! let expired = issuer.mint(TokenSpec::for_agent(&agent.id).audience("https://api.example.com").expired());
//! let human = issuer.mint(TokenSpec::for_agent(&agent.id).non_agent());
//! # Ok(()) }
//! ```
//!
//! Time is tested without sleeping: [`TestIssuer::advance_clock`] moves the issuer's clock (an
//! [`OffsetClock`]) forward, e.g. past an agent's `expires_at`; [`TestIssuer::rewind_clock`]
//! moves it back, so that the token endpoint issues a token whose `exp` has already passed for
//! your API's real clock.
//!
//! # Running it
//!
//! The `agent-auth-issuer` binary serves it (`--listen`, `--issuer-url`, `--db PATH` — SQLite,
//! the default — or `--in-memory`); in a program, build an [`Issuer`] (with a [`SqliteStore`]
//! for durability) and [`Issuer::serve`] it, or mount [`Issuer::router`] and run
//! [`Issuer::spawn_background`] (usage-counter flushes, webhook deliveries) yourself.
//!
//! # Webhooks
//!
//! Every audit event is also queued, in the same store transaction, for each webhook endpoint
//! subscribed to its type (the outbox); a background task delivers it per the Standard Webhooks
//! specification, retrying with exponential backoff ([`RetryPolicy`]), at least once, without
//! ever delaying the API call. Receivers check deliveries with [`crate::webhooks::verify`].
//!
//! # Module map
//!
//! - `store` — the async [`Store`] trait and its records; `records` — organizations,
//!   memberships, webhooks, the outbox, shared patch logic; `memory` — [`MemoryStore`];
//!   `sqlite` — [`SqliteStore`].
//! - `delivery` — the webhook delivery task.
//! - `keys` — Ed25519 signing keys, JWS signing, the JWKS document.
//! - `token` — `POST /token`.
//! - `routes` — router, admin guard, management handlers (agents, organizations, events,
//!   webhooks, keys), self-service (`me`), discovery endpoints.
//! - `api` — request/response wire types shared with [`AdminClient`] (`client`) and
//!   [`AgentClient`] (`agent_client`).
//! - `secrets` — CSPRNG ids and secrets, SHA-256 verifiers, constant-time compare, [`AdminKey`].
//! - `validate` — input bounds; `errors` — error types and wire shapes; `clock` — [`Clock`].
//! - `testing` — [`TestIssuer`] and [`TokenSpec`].
//!
//! Several replicas on one database are not supported yet: a key rotation is seen by the other
//! replicas only when they restart (the store is shared, the in-memory key ring is not).

mod agent_client;
mod api;
mod client;
mod clock;
mod delivery;
mod errors;
mod keys;
mod memory;
mod records;
mod routes;
mod secrets;
mod sqlite;
mod store;
mod testing;
mod token;
mod validate;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use tokio::net::TcpListener;

pub use agent_client::AgentClient;
pub use api::{
    AgentUsage, CreateAgent, CreateMembership, CreateOrganization, CreateVerifier, CreateWebhook,
    CreatedAgent, CreatedSecret, CreatedWebhook, Data, ListPage, RotatedKey, TokenResponse,
    UpdateAgent,
};
pub use client::{AdminClient, ClientError, EventQuery};
pub use clock::{Clock, OffsetClock, SystemClock};
pub use delivery::RetryPolicy;
pub use errors::IssuerError;
pub use keys::{KeyError, RETIRED_KEY_PUBLISHED_MS};
pub use memory::{DEFAULT_MAX_EVENTS, MemoryStore};
pub use records::{
    DeliveryOutcome, MAX_DELIVERY_ATTEMPTS, MAX_WEBHOOKS, MembershipRecord, OrganizationRecord,
    PendingDelivery, WebhookKey, WebhookRecord, apply_patch, webhook_payload,
};
pub use routes::webhooks::MAX_WEBHOOK_URL_LEN;
pub use secrets::{AdminKey, RandomError, SECRET_LEN, Secret, SecretHash};
pub use sqlite::{MIGRATIONS, SqliteStore};
pub use store::{
    Actor, AgentPatch, AgentRecord, AgentStatus, Change, ClientGrant, CreateOutcome,
    CredentialInfo, EventFilter, EventRecord, EventType, MAX_VERIFIERS_PER_AGENT, Page,
    PageRequest, Store, StoreError, StoredSigningKey, VerifierKind, VerifierRecord, VerifierStatus,
};
pub use testing::{TestAgent, TestIssuer, TokenSpec};
pub use token::TOKEN_LIFETIME_SECS;
pub use validate::{
    DEFAULT_PAGE_LIMIT, MAX_BODY_BYTES, MAX_DESCRIPTION_CHARS, MAX_EXPIRES_IN_SECS,
    MAX_EXTERNAL_ID_CHARS, MAX_LABEL_CHARS, MAX_NAME_CHARS, MAX_PAGE_LIMIT, MAX_REASON_CHARS,
    MAX_RESOURCE_LEN, MAX_SCOPE_LEN, MAX_SCOPES, is_scope_token,
};

use errors::ApiError;
use keys::{KeyRing, SigningKey};
use secrets::{AdminVerifier, new_id};

/// How often buffered usage counters are written to the store (the durability window of the
/// counters on a crash).
pub const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// State shared by every handler.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) issuer_url: String,
    pub(crate) token_endpoint: String,
    pub(crate) jwks_uri: String,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) keys: KeyRing,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) admin: AdminVerifier,
    pub(crate) metadata: Bytes,
    /// Wakes the webhook delivery task after a mutation.
    pub(crate) outbox: Arc<tokio::sync::Notify>,
    /// Webhook retry schedule.
    pub(crate) retry: RetryPolicy,
    /// The middleware guarding self-service: the agent's token for the audience "this issuer".
    pub(crate) self_auth: crate::AgentAuth,
}

impl Shared {
    /// The context of an admin mutation at `now`.
    pub(crate) fn change(&self, now: i64) -> Result<Change, ApiError> {
        self.change_by(now, Actor::admin(self.admin.id()))
    }

    /// The context of a mutation by `actor` at `now`.
    pub(crate) fn change_by(&self, now: i64, actor: Actor) -> Result<Change, ApiError> {
        Ok(Change {
            event_id: new_id("evt_")?,
            at: now,
            actor,
        })
    }
}

/// Configures an [`Issuer`]. Required: [`issuer_url`](Self::issuer_url) and
/// [`admin_key`](Self::admin_key).
#[derive(Debug, Default)]
pub struct IssuerBuilder {
    issuer_url: Option<String>,
    admin_key: Option<AdminKey>,
    store: Option<Arc<dyn Store>>,
    clock: Option<Arc<dyn Clock>>,
    retry: Option<RetryPolicy>,
}

impl IssuerBuilder {
    /// The issuer URL: the tokens' `iss`, exactly as given, and the base of the endpoint URLs
    /// (`{url}/token`, `{url}/jwks.json`). Absolute `http`/`https`, no query or fragment.
    pub fn issuer_url(mut self, url: impl Into<String>) -> Self {
        self.issuer_url = Some(url.into());
        self
    }

    /// The management API's admin key.
    pub fn admin_key(mut self, key: AdminKey) -> Self {
        self.admin_key = Some(key);
        self
    }

    /// The storage backend (default: a fresh [`MemoryStore`]).
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// The clock (default: [`SystemClock`]).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }

    /// The webhook retry schedule (default: [`RetryPolicy::default`]).
    pub fn webhook_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Validates the configuration and loads (or, in an empty store, creates) the signing key.
    pub async fn build(self) -> Result<Issuer, IssuerError> {
        let issuer_url = self
            .issuer_url
            .ok_or_else(|| IssuerError::InvalidIssuerUrl("no issuer URL configured".to_owned()))?;
        check_issuer_url(&issuer_url)?;
        let admin_key = self.admin_key.ok_or(IssuerError::MissingAdminKey)?;
        check_admin_key(&admin_key)?;
        let store = self
            .store
            .unwrap_or_else(|| Arc::new(MemoryStore::new()) as Arc<dyn Store>);
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(SystemClock) as Arc<dyn Clock>);

        let candidate = SigningKey::generate(clock.now_ms())?;
        let keys =
            KeyRing::from_stored(store.ensure_signing_key(candidate).await?, clock.now_ms())?;

        let base = issuer_url.trim_end_matches('/');
        let token_endpoint = format!("{base}/token");
        let jwks_uri = format!("{base}/jwks.json");
        let metadata =
            routes::discovery::metadata_document(&issuer_url, &token_endpoint, &jwks_uri);
        tracing::info!(issuer = %issuer_url, kid = %keys.current().active().kid(), "issuer ready");
        // Its own JWKS over HTTP (the middleware takes keys from a URL only); after a key
        // rotation the issuer refreshes it at once, so a short cooldown only bounds floods.
        let self_auth = crate::AgentAuth::new(&issuer_url)
            .audience(issuer_url.clone())
            .jwks_uri(jwks_uri.clone())
            .jwks_refetch_cooldown(std::time::Duration::from_secs(5));
        Ok(Issuer {
            shared: Arc::new(Shared {
                token_endpoint,
                jwks_uri,
                issuer_url,
                store,
                keys,
                clock,
                admin: admin_key.verifier(),
                metadata,
                self_auth,
                outbox: Arc::new(tokio::sync::Notify::new()),
                retry: self.retry.unwrap_or_default(),
            }),
        })
    }
}

fn check_issuer_url(raw: &str) -> Result<(), IssuerError> {
    let bad = |why: &str| IssuerError::InvalidIssuerUrl(why.to_owned());
    let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.query().is_some() || url.fragment().is_some() || raw.contains(['?', '#']) {
        return Err(bad("no query or fragment allowed"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("no user info allowed"));
    }
    Ok(())
}

fn check_admin_key(key: &AdminKey) -> Result<(), IssuerError> {
    if key.id().is_empty() || key.secret().expose().is_empty() {
        return Err(IssuerError::InvalidAdminKey(
            "id and secret must be non-empty",
        ));
    }
    if key.id().contains(':') {
        return Err(IssuerError::InvalidAdminKey("the id must not contain ':'"));
    }
    if key
        .id()
        .chars()
        .chain(key.secret().expose().chars())
        .any(char::is_control)
    {
        return Err(IssuerError::InvalidAdminKey(
            "id and secret must not contain control characters",
        ));
    }
    Ok(())
}

/// A configured issuer. Cheap to clone; all clones share state.
#[derive(Debug, Clone)]
pub struct Issuer {
    shared: Arc<Shared>,
}

impl Issuer {
    /// Starts configuring an issuer.
    pub fn builder() -> IssuerBuilder {
        IssuerBuilder::default()
    }

    /// The issuer URL (the tokens' `iss`).
    pub fn url(&self) -> &str {
        &self.shared.issuer_url
    }

    /// `{issuer}/token`.
    pub fn token_endpoint(&self) -> &str {
        &self.shared.token_endpoint
    }

    /// `{issuer}/jwks.json`.
    pub fn jwks_uri(&self) -> &str {
        &self.shared.jwks_uri
    }

    /// The kid of the key that signs new tokens.
    pub fn signing_kid(&self) -> String {
        self.shared.keys.current().active().kid().to_owned()
    }

    /// The axum router serving every endpoint (mount it at the root of the issuer URL).
    pub fn router(&self) -> Router {
        routes::router(Arc::clone(&self.shared))
    }

    /// Serves the issuer on `listener` until `shutdown` completes, then finishes in-flight
    /// requests (graceful shutdown).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), IssuerError> {
        let background = self.spawn_background();
        let served = axum::serve(listener, self.router())
            .with_graceful_shutdown(shutdown)
            .await;
        background.abort();
        // Buffered usage counters reach the store before we return.
        let flushed = self.shared.store.flush().await;
        served?;
        flushed?;
        Ok(())
    }

    /// Starts the background work that [`serve`](Self::serve) runs: usage counters flushed
    /// every [`FLUSH_INTERVAL`], and webhook deliveries. Mounting [`router`](Self::router)
    /// elsewhere, run it yourself (and call [`flush`](Self::flush) at shutdown).
    pub fn spawn_background(&self) -> tokio::task::AbortHandle {
        let store = Arc::clone(&self.shared.store);
        let flusher = async move {
            let mut tick = tokio::time::interval(FLUSH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = store.flush().await {
                    tracing::error!(error = %e, "usage counters could not be flushed");
                }
            }
        };
        let s = &self.shared;
        let deliveries = delivery::run(
            Arc::clone(&s.store),
            Arc::clone(&s.clock),
            Arc::clone(&s.outbox),
            s.retry,
        );
        tokio::spawn(async move {
            tokio::join!(flusher, deliveries);
        })
        .abort_handle()
    }

    /// Writes buffered state (usage counters) to the store now.
    pub async fn flush(&self) -> Result<(), IssuerError> {
        Ok(self.shared.store.flush().await?)
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }
}

impl AsRef<str> for Issuer {
    fn as_ref(&self) -> &str {
        self.url()
    }
}
