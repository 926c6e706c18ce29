//! [`TestIssuer`]: the real issuer in-process on `127.0.0.1:0`, for integration tests of APIs
//! that use this crate; and [`TokenSpec`], for minting deliberately bad tokens with the issuer's
//! real signing key.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::Issuer;
use super::api::{CreateAgent, TokenResponse};
use super::client::{AdminClient, ClientError};
use super::clock::{Clock, OffsetClock};
use super::delivery::RetryPolicy;
use super::errors::IssuerError;
use super::keys::TOKEN_LIFETIME_SECS;
use super::secrets::{AdminKey, Secret, new_id};
use super::storage::Database;
use super::webhook_target::WebhookPolicy;

/// A running in-process issuer for tests. See the [module docs](super) for a walk-through.
///
/// It listens on `127.0.0.1` on an ephemeral port, keeps its data in SQLite in memory (the
/// code `--db` runs; in a fresh SQLite file instead when `AGENT_AUTH_TEST_STORE=sqlite`, to run a
/// suite on the file's WAL mode and reader connections too; in a fresh PostgreSQL database on a
/// [`TestPostgres`](super::TestPostgres) server when `AGENT_AUTH_TEST_STORE=postgres`, feature
/// `postgres`), uses a fresh
/// admin key, accepts webhooks to plain-http loopback receivers (a [`WebhookPolicy`] with both
/// allowances), retries webhook deliveries quickly (50 ms, doubling, at most 1 s apart), and runs
/// on an [`OffsetClock`] that [`advance_clock`](Self::advance_clock) moves.
/// It derefs to nothing but implements `AsRef<str>` (the issuer URL), so
/// `AgentAuth::new(&issuer)` works. Dropping it shuts the server down.
#[derive(Debug)]
pub struct TestIssuer {
    issuer: Issuer,
    admin: AdminClient,
    admin_key: AdminKey,
    clock: Arc<OffsetClock>,
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), IssuerError>>>,
    temp_db: Option<std::path::PathBuf>,
}

/// An agent created by [`TestIssuer::provision`], with its one secret.
#[derive(Debug, Clone)]
pub struct TestAgent {
    /// `agt_…`: the client id.
    pub id: String,
    /// The id of its secret verifier.
    pub verifier_id: String,
    /// Its secret.
    pub secret: Secret,
}

impl TestIssuer {
    /// Starts an issuer on `127.0.0.1:0`.
    ///
    /// # Panics
    ///
    /// If it cannot start (no loopback socket, no OS randomness): a test cannot go on then.
    /// Use [`try_start`](Self::try_start) to handle the error.
    pub async fn start() -> Self {
        match Self::try_start().await {
            Ok(issuer) => issuer,
            Err(e) => panic!("TestIssuer could not start: {e}"),
        }
    }

    /// Starts an issuer on `127.0.0.1:0`. Must be called within a Tokio runtime.
    pub async fn try_start() -> Result<Self, IssuerError> {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        if std::env::var("AGENT_AUTH_TEST_STORE").as_deref() == Ok("sqlite") {
            // Runs a whole test suite on SQLite (a fresh file, removed on drop).
            let path = std::env::temp_dir().join(format!("agent-auth-test-{}.db", new_id("")?));
            let mut issuer = Self::try_start_on(addr, Database::Sqlite(path.clone())).await?;
            issuer.temp_db = Some(path);
            return Ok(issuer);
        }
        #[cfg(feature = "postgres")]
        if std::env::var("AGENT_AUTH_TEST_STORE").as_deref() == Ok("postgres") {
            // Runs a whole test suite on PostgreSQL: a fresh database on a throwaway server
            // shared by the test process.
            let url = super::test_postgres::shared()
                .await?
                .create_database()
                .await?;
            return Self::try_start_on(addr, Database::Postgres(url)).await;
        }
        Self::try_start_on(addr, Database::InMemory).await
    }

    /// Starts an issuer on `addr` (use `127.0.0.1:0` for a free port) on `database`: e.g. a
    /// [`Database::Sqlite`] file, restarted on the same address and file to test that state and
    /// signing keys survive a restart.
    ///
    /// # Panics
    ///
    /// If it cannot start; use [`try_start_on`](Self::try_start_on) to handle the error.
    pub async fn start_on(addr: SocketAddr, database: Database) -> Self {
        match Self::try_start_on(addr, database).await {
            Ok(issuer) => issuer,
            Err(e) => panic!("TestIssuer could not start: {e}"),
        }
    }

    /// [`start_on`](Self::start_on), returning the error.
    pub async fn try_start_on(addr: SocketAddr, database: Database) -> Result<Self, IssuerError> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");
        let clock = Arc::new(OffsetClock::new());
        let admin_key = AdminKey::generate()?;
        let mut builder = Issuer::builder();
        if database.is_postgres() {
            builder = builder.key_encryption_key(super::KeyEncryptionKey::generate()?);
        }
        let issuer = builder
            .issuer_url(&url)
            .admin_key(admin_key.clone())
            .clock(Arc::clone(&clock) as Arc<dyn Clock>)
            .database(database)
            // Test receivers listen on loopback over plain http.
            .webhook_policy(WebhookPolicy {
                allow_insecure: true,
                allow_private: true,
            })
            .webhook_retry(RetryPolicy {
                base: Duration::from_millis(50),
                max: Duration::from_secs(1),
            })
            .build()
            .await?;
        let admin = AdminClient::new(&url, admin_key.clone())?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(issuer.clone().serve(listener, async move {
            let _ = rx.await;
        }));
        Ok(Self {
            issuer,
            admin,
            admin_key,
            clock,
            addr,
            shutdown: Some(tx),
            task: Some(task),
            temp_db: None,
        })
    }

    /// The issuer URL, `http://127.0.0.1:{port}` (the tokens' `iss`).
    pub fn url(&self) -> &str {
        self.issuer.url()
    }

    /// The socket address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `{url}/token`.
    pub fn token_endpoint(&self) -> &str {
        self.issuer.token_endpoint()
    }

    /// `{url}/jwks.json`.
    pub fn jwks_uri(&self) -> &str {
        self.issuer.jwks_uri()
    }

    /// The typed management-API client, authenticated with this issuer's admin key.
    pub fn admin(&self) -> &AdminClient {
        &self.admin
    }

    /// The admin key (for tests that call the management API by hand).
    pub fn admin_key(&self) -> &AdminKey {
        &self.admin_key
    }

    /// The underlying [`Issuer`].
    pub fn issuer(&self) -> &Issuer {
        &self.issuer
    }

    /// The issuer's current time (ms since the epoch), including any advance.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Moves the issuer's clock forward: agents whose `expires_at` is passed become expired,
    /// and tokens it issues from then on carry the later `iat`/`exp`.
    pub fn advance_clock(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// Moves the issuer's clock backward: tokens it issues then are already old by the real
    /// clock (for example past their `exp`), which tests a resource server's expiry check
    /// without sleeping.
    pub fn rewind_clock(&self, by: Duration) {
        self.clock.rewind(by);
    }

    /// Puts the issuer's clock back to real time.
    pub fn reset_clock(&self) {
        self.clock.reset();
    }

    /// Creates an agent with `scopes` and one secret.
    pub async fn provision(&self, name: &str, scopes: &[&str]) -> Result<TestAgent, ClientError> {
        let agent = self
            .admin
            .create_agent(&CreateAgent::new(name).scopes(scopes.iter().copied()))
            .await?
            .data;
        let created = self.admin.add_secret(&agent.id, Some("test")).await?;
        Ok(TestAgent {
            id: agent.id,
            verifier_id: created.verifier.id,
            secret: created.secret,
        })
    }

    /// A real token for `agent` from the token endpoint (`scopes: None` = all its scopes).
    pub async fn token(
        &self,
        agent: &TestAgent,
        scopes: Option<&[&str]>,
        resource: Option<&str>,
    ) -> Result<TokenResponse, ClientError> {
        self.admin
            .token(&agent.id, agent.secret.expose(), scopes, resource)
            .await
    }

    /// A token built from `spec`, signed with the issuer's real active key, bypassing every
    /// check of the token endpoint: for testing that a resource server refuses what it must.
    pub fn mint(&self, spec: TokenSpec) -> String {
        let shared = self.issuer.shared();
        let keys = shared.keys.current();
        let key = keys.active();
        let now = self.clock.now_ms().div_euclid(1000);
        let mut claims = Map::new();
        claims.insert("iss".into(), json!(self.url()));
        claims.insert("sub".into(), json!(spec.subject));
        claims.insert("aud".into(), json!(spec.subject));
        claims.insert("exp".into(), json!(now + TOKEN_LIFETIME_SECS));
        claims.insert("iat".into(), json!(now));
        // The OS RNG failing is not survivable in a test either; fall back to a fixed jti.
        claims.insert(
            "jti".into(),
            json!(new_id("").unwrap_or_else(|_| "0".repeat(32))),
        );
        claims.insert("client_id".into(), json!(spec.subject));
        claims.insert("scope".into(), json!(""));
        claims.insert("dat".into(), json!({"type": "agent"}));
        let mut header = Map::new();
        header.insert("alg".into(), json!("EdDSA"));
        header.insert("kid".into(), json!(key.kid()));
        header.insert("typ".into(), json!("at+jwt"));
        for op in spec.claims {
            op.apply(&mut claims, now);
        }
        for op in spec.header {
            op.apply(&mut header, now);
        }
        match key.sign_with_header(&Value::Object(header), &Value::Object(claims)) {
            Ok(jws) => jws,
            // Invariant: serializing a `serde_json::Value` cannot fail (string keys only).
            Err(e) => unreachable!("serializing a JSON value failed: {e}"),
        }
    }

    /// Stops the server gracefully and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for TestIssuer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(path) = self.temp_db.take() {
            for suffix in ["", "-wal", "-shm"] {
                let mut p = path.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

impl AsRef<str> for TestIssuer {
    fn as_ref(&self) -> &str {
        self.url()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Set(String, Value),
    /// Set to now + offset seconds.
    SetRelative(String, i64),
    Remove(String),
}

impl Op {
    fn apply(self, map: &mut Map<String, Value>, now: i64) {
        match self {
            Op::Set(k, v) => {
                map.insert(k, v);
            }
            Op::SetRelative(k, offset) => {
                map.insert(k, json!(now + offset));
            }
            Op::Remove(k) => {
                map.remove(&k);
            }
        }
    }
}

/// What [`TestIssuer::mint`] should sign. Starts as a valid agent token (exactly what the token
/// endpoint would issue, with audience = the agent id and no scopes); each method changes one
/// thing, in call order.
///
/// ```no_run
/// # use agent_auth::issuer::TokenSpec;
/// let expired = TokenSpec::for_agent("agt_0123456789abcdef0123456789abcdef")
///     .audience("https://api.example.com")
///     .scopes(["tickets:read"])
///     .expired();
/// let human = TokenSpec::for_agent("agt_0123456789abcdef0123456789abcdef").non_agent();
/// let user_sub = TokenSpec::for_agent("agt_0123456789abcdef0123456789abcdef").subject("usr_42");
/// ```
#[derive(Debug, Clone)]
pub struct TokenSpec {
    subject: String,
    claims: Vec<Op>,
    header: Vec<Op>,
}

impl TokenSpec {
    /// A valid token for `agent_id` (`sub`, `client_id` and default `aud`).
    pub fn for_agent(agent_id: impl Into<String>) -> Self {
        Self {
            subject: agent_id.into(),
            claims: Vec::new(),
            header: Vec::new(),
        }
    }

    /// Sets `aud` to one audience.
    pub fn audience(self, aud: impl Into<String>) -> Self {
        self.claim("aud", Value::String(aud.into()))
    }

    /// Sets `aud` to an array of audiences.
    pub fn audiences<I, S>(self, auds: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let list: Vec<Value> = auds.into_iter().map(|a| Value::String(a.into())).collect();
        self.claim("aud", Value::Array(list))
    }

    /// Sets `scope` (space-separated).
    pub fn scopes<I, S>(self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let joined: Vec<String> = scopes.into_iter().map(|s| s.as_ref().to_owned()).collect();
        self.claim("scope", Value::String(joined.join(" ")))
    }

    /// Issued 10 minutes ago, expired 5 minutes ago (well past any sane leeway).
    pub fn expired(self) -> Self {
        self.relative("iat", -600).relative("exp", -300)
    }

    /// Sets `exp` to now + `secs` (negative: in the past).
    pub fn expires_in(self, secs: i64) -> Self {
        self.relative("exp", secs)
    }

    /// Sets `iat` to now + `secs`.
    pub fn issued_in(self, secs: i64) -> Self {
        self.relative("iat", secs)
    }

    /// Sets `nbf` to now + `secs` (positive: not yet valid).
    pub fn not_before_in(self, secs: i64) -> Self {
        self.relative("nbf", secs)
    }

    /// Sets `iss`.
    pub fn issuer(self, iss: impl Into<String>) -> Self {
        self.claim("iss", Value::String(iss.into()))
    }

    /// Sets `sub` (e.g. a human `usr_…` id, which is not an agent).
    pub fn subject(self, sub: impl Into<String>) -> Self {
        self.claim("sub", Value::String(sub.into()))
    }

    /// Removes `dat`: the token no longer says it is an agent's.
    pub fn non_agent(self) -> Self {
        self.without_claim("dat")
    }

    /// Sets `dat` to `{"type": kind}` (e.g. `"user"`).
    pub fn dat_type(self, kind: impl Into<String>) -> Self {
        let kind: String = kind.into();
        self.claim("dat", json!({ "type": kind }))
    }

    /// Sets any claim.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.push(Op::Set(name.into(), value.into()));
        self
    }

    /// Removes a claim.
    pub fn without_claim(mut self, name: impl Into<String>) -> Self {
        self.claims.push(Op::Remove(name.into()));
        self
    }

    /// Sets a header parameter (e.g. `kid` to an unknown key, `alg`, `typ`, `crit`). The
    /// signature stays Ed25519 with the real key whatever `alg` says.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.header.push(Op::Set(name.into(), value.into()));
        self
    }

    /// Removes a header parameter.
    pub fn without_header(mut self, name: impl Into<String>) -> Self {
        self.header.push(Op::Remove(name.into()));
        self
    }

    fn relative(mut self, name: &str, offset_secs: i64) -> Self {
        self.claims
            .push(Op::SetRelative(name.to_owned(), offset_secs));
        self
    }
}
