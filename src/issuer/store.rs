//! Storage: the [`Store`] trait every backend implements, and the records it keeps.
//!
//! The trait is async and assumes nothing about living in one process: each mutation is a single
//! call that a SQL backend runs in one transaction, *together with its audit event* (the event is
//! part of the call's [`Change`]). That is what later lets several replicas share one PostgreSQL
//! database, and lets webhooks be delivered from the event log (an outbox) without a rewrite.
//!
//! Validation of user input happens before the store is called; the store enforces only what
//! needs its own state to be atomic: `external_id` uniqueness, the verifier limit, and the
//! status/reason rules that depend on the current status.
//!
//! The token endpoint's hot path uses two calls, [`Store::authenticate_client`] and
//! [`Store::record_token_issued`]; backends must make both cheap (the in-memory store takes only a
//! read lock and bumps atomics; a SQL store would batch the counter writes).

use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::records::{
    DeliveryOutcome, MembershipRecord, OrganizationRecord, PendingDelivery, WebhookKey,
    WebhookRecord,
};
use super::secrets::SecretHash;

/// Most secret verifiers one agent can hold.
pub const MAX_VERIFIERS_PER_AGENT: usize = 20;

/// An agent's administrative status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    /// May obtain tokens (unless expired or without secrets).
    Active,
    /// Blocked by an administrator; `status_reason` says why.
    Suspended,
    /// Deactivated by the agent itself (self-service); only the agent's own `reactivate` or an
    /// administrator's `status: "active"` undoes it.
    Deactivated,
}

/// An agent, as the management API shows it.
///
/// Times are milliseconds since the epoch. `status` stays `active` after `expires_at` has
/// passed; an expired agent is refused tokens all the same (see [`AgentRecord::is_expired_at`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// `agt_` + 32 hex; also the OAuth `client_id` and the tokens' `sub`.
    pub id: String,
    /// Human-readable name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Descriptive: the model the agent runs (e.g. `claude-sonnet-4-5`).
    pub model: Option<String>,
    /// Descriptive: the model provider.
    pub provider: Option<String>,
    /// Descriptive: the agent's version.
    pub version: Option<String>,
    /// Administrative status.
    pub status: AgentStatus,
    /// Why the agent is suspended (set exactly when `status` is `suspended`).
    pub status_reason: Option<String>,
    /// The ceiling for the scopes its tokens can carry.
    pub scopes: Vec<String>,
    /// Caller-chosen unique key for idempotent provisioning.
    pub external_id: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last change through the management API (ms).
    pub updated_at: i64,
    /// After this instant (ms) the agent can no longer obtain tokens.
    pub expires_at: Option<i64>,
    /// Tokens issued to this agent.
    pub token_count: u64,
    /// Last token issued (ms).
    pub last_activity_at: Option<i64>,
}

impl AgentRecord {
    /// Whether the agent has expired at `now_ms`.
    pub fn is_expired_at(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|at| now_ms >= at)
    }

    /// Whether the agent may obtain tokens at `now_ms` (given a valid secret).
    pub fn may_authenticate_at(&self, now_ms: i64) -> bool {
        self.status == AgentStatus::Active && !self.is_expired_at(now_ms)
    }
}

/// Kind of verifier. Only secrets exist today.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifierKind {
    /// A shared secret, stored as its SHA-256.
    Secret,
}

/// Status of a verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifierStatus {
    /// Accepted by the token endpoint.
    Active,
}

/// How a verifier's credential is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialInfo {
    /// Always `sha256` for secrets.
    pub algorithm: String,
}

/// A secret verifier, as the management API shows it. Never contains the secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierRecord {
    /// `v_` + 32 hex.
    pub id: String,
    /// The agent it belongs to.
    pub agent_id: String,
    /// Always `secret` today.
    #[serde(rename = "type")]
    pub kind: VerifierKind,
    /// Always `active` today.
    pub status: VerifierStatus,
    /// Optional label (e.g. `rotation-2026-06`).
    pub name: Option<String>,
    /// `{"algorithm": "sha256"}`.
    pub credential: CredentialInfo,
    /// Tokens issued with this secret.
    pub usage_count: u64,
    /// Last token issued with this secret (ms).
    pub last_used_at: Option<i64>,
    /// Creation time (ms).
    pub created_at: i64,
}

/// Audit event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum EventType {
    /// An agent was created (not on an idempotent replay).
    #[serde(rename = "agent.created")]
    AgentCreated,
    /// An agent was changed (fields or status).
    #[serde(rename = "agent.updated")]
    AgentUpdated,
    /// An agent was deleted, with its verifiers.
    #[serde(rename = "agent.deleted")]
    AgentDeleted,
    /// A secret verifier was added.
    #[serde(rename = "agent.verifier.added")]
    VerifierAdded,
    /// A secret verifier was removed.
    #[serde(rename = "agent.verifier.removed")]
    VerifierRemoved,
    /// An organization was created.
    #[serde(rename = "organization.created")]
    OrganizationCreated,
    /// An agent joined an organization.
    #[serde(rename = "organization.membership.created")]
    MembershipCreated,
    /// An agent left an organization (removed, or deleted with its memberships).
    #[serde(rename = "organization.membership.deleted")]
    MembershipDeleted,
}

impl EventType {
    /// Every event type, in documentation order.
    pub const ALL: [EventType; 8] = [
        EventType::AgentCreated,
        EventType::AgentUpdated,
        EventType::AgentDeleted,
        EventType::VerifierAdded,
        EventType::VerifierRemoved,
        EventType::OrganizationCreated,
        EventType::MembershipCreated,
        EventType::MembershipDeleted,
    ];

    /// The wire name, e.g. `agent.created`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::AgentCreated => "agent.created",
            EventType::AgentUpdated => "agent.updated",
            EventType::AgentDeleted => "agent.deleted",
            EventType::VerifierAdded => "agent.verifier.added",
            EventType::VerifierRemoved => "agent.verifier.removed",
            EventType::OrganizationCreated => "organization.created",
            EventType::MembershipCreated => "organization.membership.created",
            EventType::MembershipDeleted => "organization.membership.deleted",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// `admin` (management API) or `agent` (self-service).
    #[serde(rename = "type")]
    pub kind: String,
    /// The admin key id, or the agent id.
    pub id: String,
}

impl Actor {
    /// The holder of the admin key `key_id`.
    pub fn admin(key_id: &str) -> Self {
        Self {
            kind: "admin".to_owned(),
            id: key_id.to_owned(),
        }
    }

    /// The agent `agent_id`, acting on itself with its own token.
    pub fn agent(agent_id: &str) -> Self {
        Self {
            kind: "agent".to_owned(),
            id: agent_id.to_owned(),
        }
    }
}

/// An audit event. `data` is the object after the change (the agent, or the verifier without
/// any secret); for `agent.updated` it also lists the `changed` fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    /// `evt_` + 32 hex.
    pub id: String,
    /// The event type.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When it happened (ms).
    pub created_at: i64,
    /// The agent concerned.
    pub agent_id: Option<String>,
    /// Who did it.
    pub actor: Actor,
    /// The object after the change.
    pub data: serde_json::Value,
    /// For `agent.updated`: the names of the fields that changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<String>,
}

impl EventRecord {
    /// The event a [`Change`] writes: `data` is `object` serialized.
    pub fn from_change(
        change: &Change,
        kind: EventType,
        agent_id: &str,
        object: &impl Serialize,
        changed: Vec<String>,
    ) -> Result<Self, StoreError> {
        Self::with_id(
            change.event_id.clone(),
            change,
            kind,
            Some(agent_id),
            object,
            changed,
        )
    }

    /// An event of `change` with its own `id` (when one change writes several events, such as
    /// a secret rotation, or a deletion that also ends memberships).
    pub fn with_id(
        id: String,
        change: &Change,
        kind: EventType,
        agent_id: Option<&str>,
        object: &impl Serialize,
        changed: Vec<String>,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            id,
            kind,
            created_at: change.at,
            agent_id: agent_id.map(str::to_owned),
            actor: change.actor.clone(),
            data: serde_json::to_value(object).map_err(|e| StoreError::Backend(Box::new(e)))?,
            changed,
        })
    }

    /// A further event of `change`, with a fresh `evt_` id.
    pub fn extra(
        change: &Change,
        kind: EventType,
        agent_id: Option<&str>,
        object: &impl Serialize,
    ) -> Result<Self, StoreError> {
        let id = super::secrets::new_id("evt_").map_err(|e| StoreError::Backend(Box::new(e)))?;
        Self::with_id(id, change, kind, agent_id, object, Vec::new())
    }
}

/// The context of one mutation: the id and time of the audit event it writes, and its author.
#[derive(Debug, Clone)]
pub struct Change {
    /// Id for the audit event this change writes.
    pub event_id: String,
    /// Time of the change (ms).
    pub at: i64,
    /// Who makes the change.
    pub actor: Actor,
}

/// A validated partial update of an agent. `None` leaves a field alone; for nullable fields
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct AgentPatch {
    /// New name.
    pub name: Option<String>,
    /// New or cleared description.
    pub description: Option<Option<String>>,
    /// New or cleared model.
    pub model: Option<Option<String>>,
    /// New or cleared provider.
    pub provider: Option<Option<String>>,
    /// New or cleared version.
    pub version: Option<Option<String>>,
    /// New scope ceiling.
    pub scopes: Option<Vec<String>>,
    /// New or cleared external id (must stay unique).
    pub external_id: Option<Option<String>>,
    /// New or cleared expiry instant (ms).
    pub expires_at: Option<Option<i64>>,
    /// New status. `Suspended` requires `status_reason`; `Active` clears the reason.
    pub status: Option<AgentStatus>,
    /// New reason (only with, or while, `suspended`).
    pub status_reason: Option<String>,
    /// Precondition: the change applies only if the agent's current status is this one
    /// (otherwise [`StoreError::Conflict`]); e.g. self-reactivation requires `deactivated`.
    pub require_status: Option<AgentStatus>,
}

/// Outcome of [`Store::create_agent`].
#[derive(Debug, Clone)]
pub enum CreateOutcome {
    /// A new agent was stored.
    Created(AgentRecord),
    /// An agent with the same `external_id` already existed; it is returned unchanged.
    Existing(AgentRecord),
}

/// A page request. `cursor` is an opaque string the same store returned as `next_cursor`.
#[derive(Debug, Clone)]
pub struct PageRequest {
    /// Most items to return (the API bounds it to 1..=100).
    pub limit: usize,
    /// Where to continue.
    pub cursor: Option<String>,
}

/// One page of results, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// Filter for [`Store::list_events`].
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events of this type.
    pub kind: Option<EventType>,
    /// Only events about this agent.
    pub agent_id: Option<String>,
}

/// A client that presented a valid secret for an agent that may obtain tokens.
#[derive(Debug, Clone)]
pub struct ClientGrant {
    /// The agent (`client_id`).
    pub agent_id: String,
    /// The verifier whose secret matched.
    pub verifier_id: String,
    /// The agent's scope ceiling.
    pub scopes: Vec<String>,
}

/// A signing key as stored: PKCS#8 (v2) Ed25519 private key. `Debug` redacts the key.
#[derive(Clone)]
pub struct StoredSigningKey {
    /// JWK thumbprint (RFC 7638) of the public key.
    pub kid: String,
    /// PKCS#8 DER of the private key.
    pub pkcs8_der: Vec<u8>,
    /// Creation time (ms).
    pub created_at: i64,
}

impl fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("pkcs8_der", &"<redacted>")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The agent or verifier does not exist.
    #[error("not found")]
    NotFound,
    /// The change conflicts with stored state (e.g. a duplicate `external_id`).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A per-agent limit would be exceeded (e.g. more than 20 verifiers).
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The change is invalid given the current state (e.g. a reason for an active agent).
    #[error("invalid: {0}")]
    Invalid(String),
    /// The cursor was not issued by this store.
    #[error("invalid cursor")]
    InvalidCursor,
    /// The backend failed.
    #[error("storage backend failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A storage backend for the issuer. See the module docs for the contract.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug + 'static {
    /// Stores a new agent and its `agent.created` event, or returns the existing agent with the
    /// same `external_id` (writing no event).
    async fn create_agent(
        &self,
        agent: AgentRecord,
        change: &Change,
    ) -> Result<CreateOutcome, StoreError>;

    /// One agent, with its current counters.
    async fn get_agent(&self, id: &str) -> Result<Option<AgentRecord>, StoreError>;

    /// Agents, newest first.
    async fn list_agents(&self, page: PageRequest) -> Result<Page<AgentRecord>, StoreError>;

    /// Applies `patch`; writes `agent.updated` if anything changed (then `updated_at` = `change.at`).
    async fn update_agent(
        &self,
        id: &str,
        patch: AgentPatch,
        change: &Change,
    ) -> Result<AgentRecord, StoreError>;

    /// Deletes the agent, all its verifiers and memberships; writes `agent.deleted` (and an
    /// `organization.membership.deleted` per membership).
    async fn delete_agent(&self, id: &str, change: &Change) -> Result<(), StoreError>;

    /// Adds a verifier (at most [`MAX_VERIFIERS_PER_AGENT`]); writes `agent.verifier.added`.
    async fn add_verifier(
        &self,
        verifier: VerifierRecord,
        secret_hash: SecretHash,
        change: &Change,
    ) -> Result<VerifierRecord, StoreError>;

    /// The agent's verifiers, oldest first. `NotFound` if the agent does not exist.
    async fn list_verifiers(&self, agent_id: &str) -> Result<Vec<VerifierRecord>, StoreError>;

    /// Removes a verifier; writes `agent.verifier.removed`.
    async fn delete_verifier(
        &self,
        agent_id: &str,
        verifier_id: &str,
        change: &Change,
    ) -> Result<(), StoreError>;

    /// Token endpoint, hot path: `Some` only if the agent exists, is active, is not expired at
    /// `now_ms`, and one of its secret verifiers has `secret_hash` (compared in constant time).
    async fn authenticate_client(
        &self,
        client_id: &str,
        secret_hash: &SecretHash,
        now_ms: i64,
    ) -> Result<Option<ClientGrant>, StoreError>;

    /// Token endpoint, hot path: counts an issued token (agent `token_count` and
    /// `last_activity_at`, verifier `usage_count` and `last_used_at`). Must not lose increments
    /// under concurrency. A grant whose agent or verifier vanished meanwhile is ignored.
    async fn record_token_issued(&self, grant: &ClientGrant, now_ms: i64)
    -> Result<(), StoreError>;

    /// Audit events, newest first.
    async fn list_events(
        &self,
        filter: EventFilter,
        page: PageRequest,
    ) -> Result<Page<EventRecord>, StoreError>;

    /// Returns the stored signing keys, first storing `candidate` if there are none (atomically,
    /// so concurrent replicas agree on one key).
    async fn ensure_signing_key(
        &self,
        candidate: StoredSigningKey,
    ) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Stores a new signing key (rotation) and returns every stored key.
    async fn add_signing_key(
        &self,
        key: StoredSigningKey,
    ) -> Result<Vec<StoredSigningKey>, StoreError>;

    /// Self-service rotation: removes every verifier of the agent and adds `verifier`, in one
    /// step; writes `agent.verifier.removed` per old verifier and `agent.verifier.added`.
    async fn replace_verifiers(
        &self,
        verifier: VerifierRecord,
        secret_hash: SecretHash,
        change: &Change,
    ) -> Result<VerifierRecord, StoreError>;

    /// Stores an organization; writes `organization.created`.
    async fn create_organization(
        &self,
        org: OrganizationRecord,
        change: &Change,
    ) -> Result<OrganizationRecord, StoreError>;

    /// One organization.
    async fn get_organization(&self, id: &str) -> Result<Option<OrganizationRecord>, StoreError>;

    /// Adds a membership; `NotFound` if the organization or the agent does not exist,
    /// `Conflict` if it is already a member. Writes `organization.membership.created`.
    async fn add_membership(
        &self,
        membership: MembershipRecord,
        change: &Change,
    ) -> Result<MembershipRecord, StoreError>;

    /// An organization's members, newest first; `NotFound` if it does not exist.
    async fn list_memberships(
        &self,
        org_id: &str,
        page: PageRequest,
    ) -> Result<Page<MembershipRecord>, StoreError>;

    /// Removes a membership; writes `organization.membership.deleted`.
    async fn delete_membership(
        &self,
        org_id: &str,
        member_id: &str,
        change: &Change,
    ) -> Result<(), StoreError>;

    /// Stores a webhook endpoint (at most [`MAX_WEBHOOKS`](super::MAX_WEBHOOKS)); from now on
    /// every event of its types is queued for it, in the same step that writes the event.
    async fn create_webhook(
        &self,
        webhook: WebhookRecord,
        key: WebhookKey,
    ) -> Result<WebhookRecord, StoreError>;

    /// The webhook endpoints, oldest first.
    async fn list_webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError>;

    /// Removes a webhook endpoint and its queued messages.
    async fn delete_webhook(&self, id: &str) -> Result<(), StoreError>;

    /// Up to `limit` queued messages due at `now_ms`, oldest first.
    async fn due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError>;

    /// The earliest instant (ms) at which a queued message is due, if any.
    async fn next_delivery_at(&self) -> Result<Option<i64>, StoreError>;

    /// Records the outcome of an attempt at delivery `id`.
    async fn finish_delivery(&self, id: i64, outcome: DeliveryOutcome) -> Result<(), StoreError>;

    /// Persists buffered state (usage counters). Called periodically and on shutdown; the
    /// default does nothing (nothing is buffered).
    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}
