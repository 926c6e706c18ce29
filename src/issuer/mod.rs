//! The bundled issuer: a minimal OAuth 2.0 authorization server for AI agents.
//!
//! It implements the management API (agents, secret and public-key verifiers, organizations and
//! memberships, audit events, webhooks, signing-key rotation; admin key over HTTP Basic), agent
//! self-service (the agent's own Bearer token, checked by this crate's middleware), the
//! `client_credentials` token endpoint (client secrets, or `private_key_jwt` assertions signed
//! with a registered key), wallet verifiers (CAIP-10 accounts: a reverse lookup, and sign-in
//! with the wallet — EIP-4361 / CAIP-122 messages — as a grant of its own), the JWKS and RFC
//! 8414 metadata — as the README describes it. Tokens
//! are 300-second EdDSA JWTs:
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
//! the default — or `--in-memory`, SQLite in memory: the same code); in a program, build an
//! [`Issuer`] (with [`Database::Sqlite`] for durability) and [`Issuer::serve`] it, or mount
//! [`Issuer::router`] and run [`Issuer::spawn_background`] (usage-counter flushes, webhook
//! deliveries) yourself.
//!
//! # Webhooks
//!
//! Every audit event is also queued, in the same transaction as the change, for each webhook
//! endpoint subscribed to its type (the outbox); a background task delivers it per the Standard
//! Webhooks specification, retrying with exponential backoff ([`RetryPolicy`]), at least once,
//! without ever delaying the API call. Receivers check deliveries with
//! [`crate::webhooks::verify`].
//!
//! # Module map (each module imports only those below it)
//!
//! - `testing` — [`TestIssuer`] and [`TokenSpec`]; `client` — [`AdminClient`];
//!   `agent_client` — [`AgentClient`]; `api` — request/response wire types they share.
//! - `routes` — the router and one module per endpoint family, the token endpoint included;
//!   `routes::extract` — every HTTP extraction helper (Basic credentials, bounded bodies).
//! - `state` — what the handlers share; `delivery` — the webhook delivery task.
//! - `registry` — **the rules**: authentication, limits, events, cascades, self-service.
//! - `storage` — keeps and reads, decides nothing: the `Tx` interface, SQLite under it.
//! - `keys` — Ed25519 signing keys, JWS signing, the JWKS document; `agent_keys` — the agents'
//!   public keys (`jwk` verifiers): what may be registered, thumbprints, the stored form.
//! - `model` — the records; `validate` — input bounds; `errors` — error types and wire
//!   shapes; `secrets` — CSPRNG ids and secrets, SHA-256, [`AdminKey`]; `clock` — [`Clock`].
//!
//! Several replicas on one database are not supported yet: a key rotation is seen by the other
//! replicas only when they restart (the database is shared, the in-memory key ring is not).
//!
//! # Hardening
//!
//! Self-service tokens are checked with the in-process keys; a rotated key is published
//! [`DEFAULT_KEY_PUBLISH_DELAY`] before it signs (`{"immediate": true}` after a compromise);
//! retired keys leave the JWKS and storage once no unexpired token can carry them. SECURITY.md
//! lists every defence and the test that proves it.

mod admin_key;
mod agent_client;
mod agent_keys;
mod api;
mod client;
mod clock;
mod delivery;
mod errors;
mod key_encryption;
mod keys;
mod model;
mod registry;
mod routes;
mod secrets;
mod serve;
mod state;
mod storage;
#[cfg(feature = "postgres")]
mod test_postgres;
mod testing;
mod validate;
pub(crate) mod wallet;
mod webhook_target;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

pub use admin_key::rotate_admin_key;
pub use agent_client::AgentClient;
pub use agent_keys::MAX_RSA_KEY_BITS;
pub use api::{
    AgentUsage, CreateAgent, CreateMembership, CreateOrganization, CreateVerifier, CreateWebhook,
    CreatedAgent, CreatedSecret, CreatedWebhook, Data, ListPage, RotateKey, RotatedKey,
    TokenResponse, UpdateAgent, WalletNonce,
};
pub use client::{AdminClient, ClientError, EventQuery};
pub use clock::{Clock, OffsetClock, SystemClock};
pub use delivery::RetryPolicy;
pub use errors::{IssuerError, IssuerUrlError};
pub use key_encryption::{KEY_ENCRYPTION_KEY_ENV, KeyEncryptionKey, KeyEncryptionKeyError};
pub use keys::{
    DEFAULT_KEY_PUBLISH_DELAY, KeyError, RETIRED_KEY_PUBLISHED_MS, TOKEN_LIFETIME_SECS,
};
pub use model::{
    Actor, ActorKind, AgentRecord, AgentStatus, CredentialInfo, EventRecord, EventType, MemberType,
    MembershipRecord, OrganizationRecord, VerifierKind, VerifierRecord, VerifierStatus,
    WalletRecord, WebhookRecord,
};
pub use registry::{
    ADMIN_FAILURES_PER_MINUTE, ASSERTION_LEEWAY_SECS, DELIVERY_LEASE_MS, MAX_AGENT_EVENTS,
    MAX_ASSERTION_BYTES, MAX_ASSERTION_JTIS_PER_AGENT, MAX_ASSERTION_LIFETIME_SECS,
    MAX_DELIVERY_ATTEMPTS, MAX_JTI_CHARS, MAX_PENDING_DELIVERIES, MAX_VERIFIERS_PER_AGENT,
    MAX_WALLET_NONCES, MAX_WEBHOOKS, OutboxBounds, SELF_SERVICE_WRITES_PER_MINUTE,
    WALLET_LEEWAY_SECS, WALLET_NONCE_LIFETIME_SECS, WALLET_NONCES_PER_MINUTE,
};
pub use routes::webhooks::MAX_WEBHOOK_URL_LEN;
pub use secrets::{AdminKey, RandomError, SECRET_LEN, Secret};
pub use serve::HttpLimits;
pub use state::MIN_SHARED_PUBLISH_DELAY;
pub use storage::{Database, StorageError};
#[cfg(feature = "postgres")]
pub use test_postgres::{POSTGRES_SKIPPED, TestPostgres, postgres_required};
pub use testing::{TestAgent, TestIssuer, TokenSpec};
pub use validate::{
    DEFAULT_PAGE_LIMIT, MAX_BODY_BYTES, MAX_DESCRIPTION_CHARS, MAX_EXPIRES_IN_SECS,
    MAX_EXTERNAL_ID_CHARS, MAX_LABEL_CHARS, MAX_NAME_CHARS, MAX_PAGE_LIMIT, MAX_REASON_CHARS,
    MAX_RESOURCE_LEN, MAX_RESOURCES, MAX_SCOPE_LEN, MAX_SCOPES, is_scope_token,
};
pub use wallet::{
    AccountError, MAX_ACCOUNT_CHARS, MAX_MESSAGE_BYTES, MAX_NONCE_CHARS, MessageError,
};
pub use webhook_target::WebhookPolicy;

use keys::{KeyRing, SigningKey};
use registry::Registry;
use state::Shared;
use storage::Storage;

/// The shortest admin key secret accepted (a generated one has [`SECRET_LEN`]).
pub const MIN_ADMIN_SECRET_CHARS: usize = 32;

/// How often buffered usage counters are written to storage (the durability window of the
/// counters on a crash).
pub const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Configures an [`Issuer`]. Required: [`issuer_url`](Self::issuer_url) and
/// [`admin_key`](Self::admin_key).
#[derive(Debug, Default)]
pub struct IssuerBuilder {
    issuer_url: Option<String>,
    admin_key: Option<AdminKey>,
    stored_admin_key: bool,
    database: Option<Database>,
    key_encryption: Option<KeyEncryptionKey>,
    durable_counters: bool,
    clock: Option<Arc<dyn Clock>>,
    retry: Option<RetryPolicy>,
    key_publish_delay: Option<std::time::Duration>,
    outbox_bounds: Option<OutboxBounds>,
    webhook_policy: WebhookPolicy,
    http_limits: HttpLimits,
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

    /// Uses the admin key kept in the database; at a first start (none kept yet), generates
    /// one, keeps its id and the SHA-256 of its secret, and hands it out once through
    /// [`Issuer::take_generated_admin_key`]. A running issuer picks up a key replaced by
    /// [`rotate_admin_key`] within [`FLUSH_INTERVAL`]. An [`admin_key`](Self::admin_key)
    /// given as well takes precedence (and is not stored).
    pub fn admin_key_from_database(mut self) -> Self {
        self.stored_admin_key = true;
        self
    }

    /// Where state is kept (default: [`Database::InMemory`]).
    pub fn database(mut self, database: Database) -> Self {
        self.database = Some(database);
        self
    }

    /// Encrypts the signing keys at rest (AES-256-GCM) with `key`: required for
    /// [`Database::Postgres`], used for SQLite when given (keys stored plain before are
    /// encrypted at this start). See [`KeyEncryptionKey::from_env`].
    pub fn key_encryption_key(mut self, key: KeyEncryptionKey) -> Self {
        self.key_encryption = Some(key);
        self
    }

    /// Writes the usage counters (`token_count`, `usage_count`, `last_used_at`,
    /// `last_activity_at`) with each token, so that a crash (even `SIGKILL`) loses none of
    /// them. Default `false`: they are buffered and written every [`FLUSH_INTERVAL`], and a
    /// crash loses at most that interval's counts (a clean shutdown loses none).
    pub fn durable_counters(mut self, durable: bool) -> Self {
        self.durable_counters = durable;
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

    /// How long a rotated key is published before it signs (default
    /// [`DEFAULT_KEY_PUBLISH_DELAY`], the JWKS `max-age`): resource servers that cache the JWKS
    /// then never meet a token whose `kid` they do not know.
    pub fn key_publish_delay(mut self, delay: std::time::Duration) -> Self {
        self.key_publish_delay = Some(delay);
        self
    }

    /// Which webhook URLs are accepted and which addresses deliveries may connect to (default:
    /// public `https` only; see [`WebhookPolicy`]).
    pub fn webhook_policy(mut self, policy: WebhookPolicy) -> Self {
        self.webhook_policy = policy;
        self
    }

    /// The HTTP server's deadlines and connection bound (default [`HttpLimits::default`]: 10 s
    /// for headers, 30 s for a body, 1,024 connections).
    pub fn http_limits(mut self, limits: HttpLimits) -> Self {
        self.http_limits = limits;
        self
    }

    /// How many events caused by agents, and queued messages per webhook, are kept (default
    /// [`OutboxBounds::default`]): a flood fills neither storage nor a webhook's queue.
    pub fn outbox_bounds(mut self, bounds: OutboxBounds) -> Self {
        self.outbox_bounds = Some(bounds);
        self
    }

    /// Validates the configuration, opens the database and loads (or, in an empty database,
    /// creates) the signing key.
    pub async fn build(self) -> Result<Issuer, IssuerError> {
        let issuer_url = self
            .issuer_url
            .ok_or(IssuerError::InvalidIssuerUrl(IssuerUrlError::Missing))?;
        check_issuer_url(&issuer_url)?;
        if let Some(key) = &self.admin_key {
            check_admin_key(key)?;
        } else if !self.stored_admin_key {
            return Err(IssuerError::MissingAdminKey);
        }
        let database = self.database.unwrap_or(Database::InMemory);
        if database.is_postgres() && self.key_encryption.is_none() {
            return Err(IssuerError::KeyEncryptionKeyRequired);
        }
        let storage = Storage::open(&database).await?;
        let clock = self
            .clock
            .unwrap_or_else(|| Arc::new(SystemClock) as Arc<dyn Clock>);
        let registry = Arc::new(
            Registry::new(
                storage,
                Arc::clone(&clock),
                self.outbox_bounds.unwrap_or_default(),
            )
            .with_key_encryption(self.key_encryption.map(Arc::new))
            .with_durable_counters(self.durable_counters),
        );

        // Self-service is verified by this crate's middleware with the issuer's own keys,
        // handed over in process by the key ring: never fetched from the public URL, which
        // whoever sits on the network path could answer.
        let self_auth = crate::AgentAuth::new(&issuer_url)
            .audience(issuer_url.clone())
            .build()
            .map_err(IssuerError::SelfService)?;
        // A built layer has the one issuer it was given.
        let self_keys = self_auth.verifier().issuers[0].keys.clone();
        let now = clock.now_ms();
        let (admin, admin_stored, generated) = match self.admin_key {
            Some(key) => (key.verifier(), false, None),
            None => {
                let candidate = AdminKey::generate()?;
                let (stored, created) = registry.ensure_admin_key(candidate.stored(now)).await?;
                if created {
                    tracing::info!(key_id = %stored.id, "admin key generated and stored");
                }
                let generated = created.then_some(candidate);
                (
                    secrets::AdminVerifier::from_stored(&stored),
                    true,
                    generated,
                )
            }
        };
        let candidate = SigningKey::generate(now, now)?;
        let stored = registry.ensure_signing_key(candidate).await?;
        let keys = KeyRing::new(stored, now, self_keys)?;

        let base = issuer_url.trim_end_matches('/');
        let token_endpoint = format!("{base}/token");
        let jwks_uri = format!("{base}/jwks.json");
        let metadata =
            routes::discovery::metadata_document(&issuer_url, &token_endpoint, &jwks_uri);
        let (wallet_scheme, wallet_domain) = wallet_domain(&issuer_url);
        tracing::info!(issuer = %issuer_url, kid = %keys.current().active().kid(), "issuer ready");
        Ok(Issuer {
            shared: Arc::new(Shared {
                token_endpoint,
                jwks_uri,
                issuer_url,
                wallet_scheme,
                wallet_domain,
                registry,
                keys,
                admin: arc_swap::ArcSwap::from_pointee(admin),
                admin_stored,
                generated_admin_key: std::sync::Mutex::new(generated),
                metadata,
                self_auth,
                retry: self.retry.unwrap_or_default(),
                key_publish_delay: self.key_publish_delay.unwrap_or(DEFAULT_KEY_PUBLISH_DELAY),
                key_changes: tokio::sync::Mutex::new(()),
                webhook_policy: self.webhook_policy,
                http_limits: self.http_limits,
            }),
        })
    }
}

/// The scheme and `host[:port]` of the issuer URL (checked by [`check_issuer_url`]): what a
/// wallet sign-in message must name. Empty if it had none, which no message matches.
fn wallet_domain(issuer_url: &str) -> (String, String) {
    let Ok(url) = url::Url::parse(issuer_url) else {
        return (String::new(), String::new());
    };
    let host = url.host_str().unwrap_or_default();
    let domain = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    (url.scheme().to_owned(), domain)
}

fn check_issuer_url(raw: &str) -> Result<(), IssuerError> {
    let bad = IssuerError::InvalidIssuerUrl;
    let url = url::Url::parse(raw).map_err(|e| bad(IssuerUrlError::Unparsable(e)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(IssuerUrlError::Scheme));
    }
    if url.query().is_some() || url.fragment().is_some() || raw.contains(['?', '#']) {
        return Err(bad(IssuerUrlError::QueryOrFragment));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad(IssuerUrlError::UserInfo));
    }
    Ok(())
}

fn check_admin_key(key: &AdminKey) -> Result<(), IssuerError> {
    if key.id().is_empty() || key.secret().expose().is_empty() {
        return Err(IssuerError::InvalidAdminKey(
            "id and secret must be non-empty",
        ));
    }
    if key.secret().expose().chars().count() < MIN_ADMIN_SECRET_CHARS {
        return Err(IssuerError::InvalidAdminKey(
            "the secret must be at least 32 characters",
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

    /// The admin key generated by this start ([`IssuerBuilder::admin_key_from_database`] on
    /// a database that had none), once: later calls return `None`. Only its hash is kept.
    pub fn take_generated_admin_key(&self) -> Option<AdminKey> {
        self.shared
            .generated_admin_key
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// The kid of the key that signs new tokens now.
    pub fn signing_kid(&self) -> String {
        let now = self.shared.registry.now_ms();
        match self.shared.keys.at(now) {
            Ok(set) => set.active().kid().to_owned(),
            // The set could not be rebuilt: the token endpoint still signs with the last one.
            Err(_) => self.shared.keys.current().active().kid().to_owned(),
        }
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
        // Header and body deadlines, a connection bound, each request with its peer address
        // (failed admin logins are throttled per address).
        serve::serve(listener, self.router(), self.shared.http_limits, shutdown).await;
        background.abort();
        // Buffered usage counters reach the database before we return.
        self.flush().await
    }

    /// Starts the background work that [`serve`](Self::serve) runs: usage counters flushed
    /// every [`FLUSH_INTERVAL`], and webhook deliveries. Mounting [`router`](Self::router)
    /// elsewhere, run it yourself (and call [`flush`](Self::flush) at shutdown).
    pub fn spawn_background(&self) -> tokio::task::AbortHandle {
        let shared = Arc::clone(&self.shared);
        let flusher = async move {
            let mut tick = tokio::time::interval(FLUSH_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = shared.flush().await {
                    tracing::error!(error = %e, "buffered state could not be written");
                }
            }
        };
        let deliveries = delivery::run(
            Arc::clone(&self.shared.registry),
            self.shared.retry,
            self.shared.webhook_policy,
        );
        tokio::spawn(async move {
            tokio::join!(flusher, deliveries);
        })
        .abort_handle()
    }

    /// Writes buffered state (usage counters) to the database now, and removes the signing
    /// keys that left the JWKS for good (what [`spawn_background`](Self::spawn_background)
    /// does every [`FLUSH_INTERVAL`]).
    pub async fn flush(&self) -> Result<(), IssuerError> {
        self.shared.flush().await
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
