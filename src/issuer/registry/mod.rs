//! The registry: the one place where the issuer's rules are decided.
//!
//! Client authentication, the limits, which audit events each change writes, what a deletion
//! takes with it, the self-service rules: each is written here once, as synchronous code over a
//! storage [`Tx`], and every change runs as one transaction of [`Storage::write`]. The HTTP
//! handlers validate the shape of their input and call one method here; storage keeps and reads
//! and decides nothing. A new verifier type adds a `Credential` and its check beside
//! `grant` (as `assertion` does); a new backend adds a [`Tx`]; neither
//! touches a rule twice.
//!
//! Usage counters are the token endpoint's only write. They are buffered here (the same for
//! every backend) and written by [`Registry::flush`] in one transaction; reads add the buffered
//! increments, so a reader never sees a count go back.
//!
//! - `agents`: agents, their verifiers, self-service;
//! - `grant`: client authentication by secret, the agent-state rule every credential shares,
//!   and what a token may carry (audiences);
//! - `assertion`: client authentication by a signed JWT (`private_key_jwt`), its replay store;
//! - `directory`: organizations and memberships;
//! - `outbox`: audit events with their webhook deliveries, webhook endpoints;
//! - `signing`: stored signing keys;
//! - `throttle`: rate budgets (self-service writes, failed admin logins);
//! - `wallet`: the wallet reverse lookup, sign-in nonces and the wallet grant (EIP-4361 /
//!   CAIP-122 messages).

mod admin_key;
mod agents;
mod assertion;
mod directory;
mod grant;
mod outbox;
mod signing;
mod throttle;
mod wallet;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, Notify};

use super::clock::Clock;
use super::model::{Actor, AgentRecord, AgentStatus, VerifierRecord};
use super::secrets::RandomError;
use super::storage::{Storage, StorageError, Tx, UsageDelta};

pub(crate) use agents::{AgentPatch, Created};
pub use assertion::{
    ASSERTION_LEEWAY_SECS, MAX_ASSERTION_BYTES, MAX_ASSERTION_JTIS_PER_AGENT,
    MAX_ASSERTION_LIFETIME_SECS, MAX_JTI_CHARS,
};
pub(crate) use assertion::{AssertionAudience, JWT_BEARER_ASSERTION_TYPE};
use grant::AuthCache;
pub(crate) use grant::ClientGrant;
pub(crate) use outbox::DeliveryOutcome;
pub use outbox::{DELIVERY_LEASE_MS, MAX_AGENT_EVENTS, MAX_PENDING_DELIVERIES};
use throttle::RateBudget;
pub use throttle::{ADMIN_FAILURES_PER_MINUTE, SELF_SERVICE_WRITES_PER_MINUTE};
pub(crate) use wallet::WalletAudience;
pub use wallet::{
    MAX_WALLET_NONCES, WALLET_LEEWAY_SECS, WALLET_NONCE_LIFETIME_SECS, WALLET_NONCES_PER_MINUTE,
};

/// Most verifiers one agent can hold.
pub const MAX_VERIFIERS_PER_AGENT: usize = 20;
/// Most webhook endpoints one issuer holds.
pub const MAX_WEBHOOKS: usize = 20;
/// Most delivery attempts of one webhook message (the first included); then it is dropped.
pub const MAX_DELIVERY_ATTEMPTS: u32 = 12;

/// The objects a rule can find missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    Agent,
    Verifier,
    Organization,
    Membership,
    Webhook,
}

impl Object {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Verifier => "verifier",
            Self::Organization => "organization",
            Self::Membership => "membership",
            Self::Webhook => "webhook",
        }
    }
}

/// Why the registry refused a change (or could not decide).
#[derive(Debug, thiserror::Error)]
pub(crate) enum RuleError {
    #[error("{} not found", .0.name())]
    NotFound(Object),
    #[error("another agent has this external_id")]
    ExternalIdTaken,
    #[error("the agent is already a member of this organization")]
    AlreadyMember,
    /// A public key registered already (to this agent or another: one key, one agent).
    #[error("this public key is already registered")]
    KeyTaken,
    /// A wallet account registered already (to this agent or another: one account, one
    /// agent).
    #[error("this wallet account is already registered")]
    WalletTaken,
    #[error("an agent can hold at most {MAX_VERIFIERS_PER_AGENT} verifiers")]
    TooManyVerifiers,
    #[error("at most {MAX_WEBHOOKS} webhooks")]
    TooManyWebhooks,
    #[error("status_reason is required to suspend an agent")]
    ReasonRequired,
    #[error("status_reason is only allowed with status \"suspended\"")]
    ReasonWithoutSuspension,
    #[error("status_reason can only be set on a suspended agent")]
    ReasonOnActiveAgent,
    /// A self-service change by an agent an administrator suspended.
    #[error("an administrator suspended this agent; only an administrator can reactivate it")]
    SuspendedByAdmin,
    /// A status change that requires another current status.
    #[error("the agent is {}, not {}", status_name(*.actual), status_name(*.required))]
    WrongStatus {
        actual: AgentStatus,
        required: AgentStatus,
    },
    /// The agent spent its self-service write budget; retry after this many seconds.
    #[error("at most {SELF_SERVICE_WRITES_PER_MINUTE} self-service changes per minute")]
    TooManyWrites { retry_after_secs: u64 },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Random(#[from] RandomError),
}

/// The wire name of a status.
pub(crate) fn status_name(s: AgentStatus) -> &'static str {
    match s {
        AgentStatus::Active => "active",
        AgentStatus::Suspended => "suspended",
        AgentStatus::Deactivated => "deactivated",
    }
}

/// Who makes a change, and when (ms).
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) actor: Actor,
    pub(crate) at: i64,
    /// The outbox's bounds in force for the events it writes.
    pub(crate) bounds: OutboxBounds,
}

/// How much the audit log and the webhook queues may hold (see `outbox`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxBounds {
    /// Most events caused by agents kept (default [`MAX_AGENT_EVENTS`]).
    pub agent_events: u64,
    /// Most messages queued per webhook (default [`MAX_PENDING_DELIVERIES`]).
    pub pending_per_webhook: u64,
}

impl Default for OutboxBounds {
    fn default() -> Self {
        Self {
            agent_events: MAX_AGENT_EVENTS,
            pending_per_webhook: MAX_PENDING_DELIVERIES,
        }
    }
}

/// Counter increments not yet written: id → delta.
#[derive(Debug, Default)]
struct UsageBuffer {
    agents: HashMap<String, UsageDelta>,
    verifiers: HashMap<String, UsageDelta>,
}

impl UsageBuffer {
    fn bump(map: &mut HashMap<String, UsageDelta>, id: &str, now_ms: i64) {
        match map.get_mut(id) {
            Some(d) => {
                d.count = d.count.saturating_add(1);
                d.last_at = d.last_at.max(now_ms);
            }
            None => {
                map.insert(
                    id.to_owned(),
                    UsageDelta {
                        count: 1,
                        last_at: now_ms,
                    },
                );
            }
        }
    }

    fn add_to_agent(&self, a: &mut AgentRecord) {
        if let Some(d) = self.agents.get(&a.id) {
            a.token_count = a.token_count.saturating_add(d.count);
            a.last_activity_at = Some(a.last_activity_at.map_or(d.last_at, |l| l.max(d.last_at)));
        }
    }

    fn add_to_verifier(&self, v: &mut VerifierRecord) {
        if let Some(d) = self.verifiers.get(&v.id) {
            v.usage_count = v.usage_count.saturating_add(d.count);
            v.last_used_at = Some(v.last_used_at.map_or(d.last_at, |l| l.max(d.last_at)));
        }
    }
}

/// Things whose counters a read must bring up to date.
trait Counted {
    fn add_usage(&mut self, usage: &UsageBuffer);
}

impl Counted for AgentRecord {
    fn add_usage(&mut self, usage: &UsageBuffer) {
        usage.add_to_agent(self);
    }
}

impl Counted for super::model::WalletRecord {
    fn add_usage(&mut self, usage: &UsageBuffer) {
        usage.add_to_agent(&mut self.agent);
    }
}

impl Counted for VerifierRecord {
    fn add_usage(&mut self, usage: &UsageBuffer) {
        usage.add_to_verifier(self);
    }
}

impl<T: Counted> Counted for Option<T> {
    fn add_usage(&mut self, usage: &UsageBuffer) {
        if let Some(t) = self {
            t.add_usage(usage);
        }
    }
}

impl<T: Counted> Counted for Vec<T> {
    fn add_usage(&mut self, usage: &UsageBuffer) {
        self.iter_mut().for_each(|t| t.add_usage(usage));
    }
}

impl<A: Counted, B: Counted> Counted for (A, B) {
    fn add_usage(&mut self, usage: &UsageBuffer) {
        self.0.add_usage(usage);
        self.1.add_usage(usage);
    }
}

/// The rules, over one storage. See the module docs.
#[derive(Debug)]
pub(crate) struct Registry {
    storage: Storage,
    clock: Arc<dyn Clock>,
    /// Held across a flush's write, so that a read sees each increment exactly once: in the
    /// buffer or in the database.
    usage: Mutex<UsageBuffer>,
    /// Bumped by every flush: a read that straddles one starts again.
    flushes: AtomicU64,
    /// Wakes the webhook delivery task after a change that queued deliveries.
    outbox: Arc<Notify>,
    /// The token endpoint's reads, while storage has no other writer.
    auth_cache: Option<AuthCache>,
    /// Self-service writes per agent.
    self_service_budget: RateBudget,
    /// Failed admin authentications per client address.
    admin_failures: RateBudget,
    /// Wallet sign-in nonces per client address.
    wallet_nonces: RateBudget,
    bounds: OutboxBounds,
    /// When used client-assertion `jti`s are next forgotten.
    jti_purge: assertion::JtiPurge,
    /// Counters written with each token instead of batched.
    durable_counters: bool,
    /// Seals signing keys at rest, when given.
    key_encryption: Option<Arc<super::key_encryption::KeyEncryptionKey>>,
}

impl Registry {
    pub(crate) fn new(storage: Storage, clock: Arc<dyn Clock>, bounds: OutboxBounds) -> Self {
        let storage_is_exclusive = storage.is_exclusive();
        Self {
            storage,
            clock,
            usage: Mutex::new(UsageBuffer::default()),
            flushes: AtomicU64::new(0),
            outbox: Arc::new(Notify::new()),
            auth_cache: storage_is_exclusive.then(AuthCache::default),
            self_service_budget: RateBudget::new(SELF_SERVICE_WRITES_PER_MINUTE),
            admin_failures: RateBudget::new(ADMIN_FAILURES_PER_MINUTE),
            wallet_nonces: RateBudget::new(WALLET_NONCES_PER_MINUTE),
            bounds,
            jti_purge: assertion::JtiPurge::default(),
            key_encryption: None,
            durable_counters: false,
        }
    }

    /// Writes usage counters with each token (`true`) instead of every [`FLUSH_INTERVAL`]
    /// (`false`, the default: a crash loses at most that interval's counts).
    ///
    /// [`FLUSH_INTERVAL`]: crate::issuer::FLUSH_INTERVAL
    pub(crate) fn with_durable_counters(mut self, durable: bool) -> Self {
        self.durable_counters = durable;
        self
    }

    /// Seals the signing keys it stores with `key` (and opens sealed ones with it).
    pub(crate) fn with_key_encryption(
        mut self,
        key: Option<Arc<super::key_encryption::KeyEncryptionKey>>,
    ) -> Self {
        self.key_encryption = key;
        self
    }

    /// Whether other processes (replicas) write the same storage.
    pub(crate) fn is_shared(&self) -> bool {
        !self.storage.is_exclusive()
    }

    /// The issuer's clock (ms since the epoch).
    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub(crate) fn outbox(&self) -> &Arc<Notify> {
        &self.outbox
    }

    /// Whether `client` (a client address) may try the admin key now: `Err(seconds)` after
    /// [`ADMIN_FAILURES_PER_MINUTE`] failures within a minute, whatever it presents then.
    pub(crate) fn admin_attempt_allowed(&self, client: &str) -> Result<(), u64> {
        self.admin_failures.check(client, self.clock.now_ms())
    }

    /// Counts a failed admin authentication from `client`.
    pub(crate) fn admin_attempt_failed(&self, client: &str) {
        // Over budget already: nothing more to count.
        let _ = self.admin_failures.spend(client, self.clock.now_ms());
    }

    /// A change by `actor`, now.
    pub(crate) fn change(&self, actor: Actor) -> Change {
        Change {
            actor,
            at: self.clock.now_ms(),
            bounds: self.bounds,
        }
    }

    /// Runs `work` as one write transaction, then wakes the outbox (the work may have queued
    /// deliveries).
    async fn write<T, F>(&self, work: F) -> Result<T, RuleError>
    where
        T: Send + 'static,
        F: FnMut(&mut dyn Tx) -> Result<T, RuleError> + Send + 'static,
    {
        let out = self.storage.write(work).await;
        if let Some(cache) = &self.auth_cache {
            cache.clear();
        }
        self.outbox.notify_one();
        out
    }

    /// A read whose agents and verifiers carry their buffered counter increments.
    async fn read_counted<T, F>(&self, work: F) -> Result<T, RuleError>
    where
        T: Counted + Send + 'static,
        F: Fn(&mut dyn Tx) -> Result<T, RuleError> + Send + Sync + 'static,
    {
        let work = Arc::new(work);
        loop {
            let before = self.flushes.load(Ordering::SeqCst);
            let w = Arc::clone(&work);
            let mut value = self.storage.read(move |tx| w(tx)).await?;
            let usage = self.usage.lock().await;
            if self.flushes.load(Ordering::SeqCst) == before {
                value.add_usage(&usage);
                return Ok(value);
            }
        }
    }

    /// Token endpoint: counts an issued token (buffered, see the module docs; written at once
    /// with durable counters, and then `Err` if it could not be: the token is not handed out).
    pub(crate) async fn record_token_issued(
        &self,
        grant: &ClientGrant,
        now_ms: i64,
    ) -> Result<(), RuleError> {
        if self.durable_counters {
            let agent = grant.agent_id.clone();
            let verifier = grant.verifier_id.clone();
            let delta = UsageDelta {
                count: 1,
                last_at: now_ms,
            };
            return self
                .storage
                .write_read_committed(move |tx| {
                    tx.add_agent_usage(&agent, delta)?;
                    tx.add_verifier_usage(&verifier, delta)?;
                    Ok::<_, RuleError>(())
                })
                .await;
        }
        let mut usage = self.usage.lock().await;
        UsageBuffer::bump(&mut usage.agents, &grant.agent_id, now_ms);
        UsageBuffer::bump(&mut usage.verifiers, &grant.verifier_id, now_ms);
        Ok(())
    }

    /// Writes the buffered counters in one transaction.
    pub(crate) async fn flush(&self) -> Result<(), RuleError> {
        let mut usage = self.usage.lock().await;
        if usage.agents.is_empty() && usage.verifiers.is_empty() {
            return Ok(());
        }
        let agents: Vec<_> = usage.agents.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let verifiers: Vec<_> = usage
            .verifiers
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        self.storage
            .write_read_committed(move |tx| {
                for (id, delta) in &agents {
                    tx.add_agent_usage(id, *delta)?;
                }
                for (id, delta) in &verifiers {
                    tx.add_verifier_usage(id, *delta)?;
                }
                Ok::<_, RuleError>(())
            })
            .await?;
        *usage = UsageBuffer::default();
        self.flushes.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl Registry {
    /// [`write`](Self::write) for work whose events show counters: it gets the buffered
    /// increments, and no flush can move them to the database while it runs (each is counted
    /// once).
    async fn write_counted<T, F>(&self, mut work: F) -> Result<T, RuleError>
    where
        T: Send + 'static,
        F: FnMut(&mut dyn Tx, &UsageBuffer) -> Result<T, RuleError> + Send + 'static,
    {
        let usage = self.usage.lock().await;
        let snapshot = UsageBuffer {
            agents: usage.agents.clone(),
            verifiers: usage.verifiers.clone(),
        };
        let out = self.write(move |tx| work(tx, &snapshot)).await;
        drop(usage);
        out
    }
}
