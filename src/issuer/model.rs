//! The issuer's records: what the management API shows and the storage keeps (agents,
//! verifiers, audit events, organizations and memberships, webhook endpoints), and the page
//! shapes of its lists. Plain data: the rules that change them live in `registry`, the SQL
//! that keeps them in `storage`.

use std::fmt;

use serde::{Deserialize, Serialize};

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
    /// The audiences its tokens may carry (exact absolute URIs; the first is the default).
    /// Empty: any `resource`. The issuer's own URL (self-service) is always allowed.
    #[serde(default)]
    pub resources: Vec<String>,
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
}

/// Kind of verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifierKind {
    /// A shared secret, stored as its SHA-256.
    Secret,
    /// The agent's public key (a JWK), for `private_key_jwt` client authentication
    /// (RFC 7523): the agent holds the private key, the issuer no secret at all.
    Jwk,
    /// A blockchain account (CAIP-10, `eip155` or `solana`): found by the reverse lookup
    /// (`GET /v1/wallets/{account}`, x402 payments) and used to sign in with the wallet.
    Wallet,
}

/// Status of a verifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifierStatus {
    /// Accepted by the token endpoint.
    Active,
}

/// What the API shows of a verifier's credential: for a secret `{"algorithm": "sha256"}`
/// (how it is stored), for a key `{"kty", "crv"?, "alg", "thumbprint"}`, for a wallet
/// `{"account"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialInfo {
    /// Secrets: always `sha256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// Keys: the JWK `kty` (`OKP`, `EC`, `RSA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kty: Option<String>,
    /// Keys: the JWK `crv` (`Ed25519`, `P-256`); none for RSA.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Keys: the one JWS algorithm the key verifies (`EdDSA`, `ES256`, `RS256`, `PS256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Keys: the RFC 7638 SHA-256 thumbprint (base64url).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
    /// Wallets: the CAIP-10 account in its canonical form (EIP-55 checksum for EVM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// A verifier (a secret or a public key), as the management API shows it. Never contains a
/// secret or its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifierRecord {
    /// `v_` + 32 hex.
    pub id: String,
    /// The agent it belongs to.
    pub agent_id: String,
    /// `secret`, `jwk` or `wallet`.
    #[serde(rename = "type")]
    pub kind: VerifierKind,
    /// Always `active` today.
    pub status: VerifierStatus,
    /// Optional label (e.g. `rotation-2026-06`).
    pub name: Option<String>,
    /// `{"algorithm": "sha256"}` for a secret; `{"kty", "crv"?, "alg", "thumbprint"}` for a key.
    pub credential: CredentialInfo,
    /// Tokens issued with this verifier.
    pub usage_count: u64,
    /// Last token issued with this verifier (ms).
    pub last_used_at: Option<i64>,
    /// Creation time (ms).
    pub created_at: i64,
}

/// A wallet account's owner, as the reverse lookup (`GET /v1/wallets/{account}`) shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletRecord {
    /// The CAIP-10 account in its canonical form.
    pub account: String,
    /// The agent whose `wallet` verifier holds it.
    pub agent_id: String,
    /// That verifier.
    pub verifier_id: String,
    /// The agent.
    pub agent: AgentRecord,
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

/// Who made a change: the closed set of authors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActorKind {
    /// The holder of the admin key (management API).
    Admin,
    /// An agent acting on itself with its own token (self-service).
    Agent,
}

impl ActorKind {
    /// The wire name: `admin` or `agent`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Agent => "agent",
        }
    }
}

impl fmt::Display for ActorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who made a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Admin or agent.
    #[serde(rename = "type")]
    pub kind: ActorKind,
    /// The admin key id, or the agent id.
    pub id: String,
}

impl Actor {
    /// The holder of the admin key `key_id`.
    pub fn admin(key_id: &str) -> Self {
        Self {
            kind: ActorKind::Admin,
            id: key_id.to_owned(),
        }
    }

    /// The agent `agent_id`, acting on itself with its own token.
    pub fn agent(agent_id: &str) -> Self {
        Self {
            kind: ActorKind::Agent,
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

/// The kind of a member of an organization (only agents are members in this issuer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberType {
    /// An agent (`agt_…` id).
    Agent,
}

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationRecord {
    /// `org_` + 25 lowercase base36 characters.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Creation time (ms).
    pub created_at: i64,
}

/// A member of an organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipRecord {
    /// The organization.
    pub organization_id: String,
    /// The member's id (`agt_…`).
    pub member_id: String,
    /// `agent` for `agt_` ids.
    pub member_type: MemberType,
    /// The member's scopes within the organization (not put in tokens).
    pub scopes: Vec<String>,
    /// The member's title.
    pub user_title: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
}

/// A webhook endpoint, as the management API shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRecord {
    /// `wh_` + 32 hex.
    pub id: String,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types it receives.
    pub events: Vec<EventType>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Messages dropped undelivered: the oldest when more than `MAX_PENDING_DELIVERIES` were
    /// queued, and those that failed every attempt.
    #[serde(default)]
    pub dropped_deliveries: u64,
}

/// A page request. `cursor` is an opaque string the same storage returned as `next_cursor`.
#[derive(Debug, Clone)]
pub(crate) struct PageRequest {
    /// Most items to return (the API bounds it to 1..=100).
    pub(crate) limit: usize,
    /// Where to continue.
    pub(crate) cursor: Option<String>,
}

/// One page of results, newest first.
#[derive(Debug, Clone)]
pub(crate) struct Page<T> {
    /// The items.
    pub(crate) items: Vec<T>,
    /// Cursor for the next page; `None` on the last page.
    pub(crate) next_cursor: Option<String>,
}

/// Filter of the audit log.
#[derive(Debug, Clone, Default)]
pub(crate) struct EventFilter {
    /// Only events of this type.
    pub(crate) kind: Option<EventType>,
    /// Only events about this agent.
    pub(crate) agent_id: Option<String>,
}
