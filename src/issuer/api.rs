//! Wire types of the management API and the token endpoint, shared by the server (which
//! deserializes requests) and [`AdminClient`](super::AdminClient) (which serializes them).

use serde::{Deserialize, Deserializer, Serialize};

use super::model::{AgentRecord, AgentStatus, VerifierKind, VerifierRecord};
use super::secrets::Secret;

/// `POST /v1/agents` body. Only `name` is required.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAgent {
    /// Human-readable name (required).
    pub name: String,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The model the agent runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The model provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// The agent's version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Scope ceiling (≤ 256 RFC 6749 scope tokens).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The audiences its tokens may carry (≤ 20 absolute URIs, the first is the default);
    /// empty: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Unique key for idempotent provisioning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    /// Lifetime in seconds; sets `expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
}

impl CreateAgent {
    /// A request with just a name.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Sets the scope ceiling.
    pub fn scopes<I, S>(mut self, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Limits the audiences its tokens may carry (the first is the default `aud`).
    pub fn resources<I, S>(mut self, resources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.resources = resources.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the external id (idempotent provisioning).
    pub fn external_id(mut self, external_id: impl Into<String>) -> Self {
        self.external_id = Some(external_id.into());
        self
    }

    /// Sets the lifetime in seconds.
    pub fn expires_in(mut self, seconds: u64) -> Self {
        self.expires_in = Some(seconds);
        self
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// Sets model, provider and version.
    pub fn model(
        mut self,
        model: impl Into<String>,
        provider: impl Into<String>,
        version: impl Into<String>,
    ) -> Self {
        self.model = Some(model.into());
        self.provider = Some(provider.into());
        self.version = Some(version.into());
        self
    }
}

/// Deserializes a present field (even `null`) as `Some`, so that a missing field stays `None`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// `PATCH /v1/agents/{id}` body. `None` leaves a field alone; for nullable fields `Some(None)`
/// (JSON `null`) clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateAgent {
    /// New name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// New or cleared description.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<Option<String>>,
    /// New or cleared model.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub model: Option<Option<String>>,
    /// New or cleared provider.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub provider: Option<Option<String>>,
    /// New or cleared version.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub version: Option<Option<String>>,
    /// New scope ceiling (replaces the old one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// New audience list (replaces the old one; `[]` lifts the limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<String>>,
    /// New or cleared external id.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub external_id: Option<Option<String>>,
    /// New lifetime in seconds from now, or `null` for no expiry.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_in: Option<Option<u64>>,
    /// `active` or `suspended`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AgentStatus>,
    /// Required with `status: "suspended"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
}

impl UpdateAgent {
    /// Suspends the agent with a reason.
    pub fn suspend(reason: impl Into<String>) -> Self {
        Self {
            status: Some(AgentStatus::Suspended),
            status_reason: Some(reason.into()),
            ..Self::default()
        }
    }

    /// Reactivates the agent.
    pub fn reactivate() -> Self {
        Self {
            status: Some(AgentStatus::Active),
            ..Self::default()
        }
    }
}

/// `POST /v1/agents/{id}/verifiers` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateVerifier {
    /// `secret` (the issuer generates one) or `jwk` (the agent's public key, in `jwk`).
    #[serde(rename = "type")]
    pub kind: VerifierKind,
    /// Optional label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// For `jwk`: the public JWK (OKP Ed25519, EC P-256, or RSA 2048–4096 bits; no private
    /// members). Absent for `secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwk: Option<serde_json::Value>,
    /// For `wallet`: the CAIP-10 account (`eip155:<chain>:0x…` or `solana:<ref>:<base58>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// `POST /wallet/nonce`: what to copy into the sign-in message (EIP-4361 / CAIP-122).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalletNonce {
    /// Single use, valid until `expiration_time`.
    pub nonce: String,
    /// The issuer URL's `host[:port]`: the message's domain.
    pub domain: String,
    /// The issuer URL: the message's `URI`.
    pub uri: String,
    /// RFC 3339: the message's `Issued At`.
    pub issued_at: String,
    /// RFC 3339: the message's `Expiration Time` (the nonce's end).
    pub expiration_time: String,
}

/// `{"data": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Data<T> {
    /// The object.
    pub data: T,
}

/// `{"data": [...], "next_cursor": …}`: one page of a list, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListPage<T> {
    /// The items.
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /v1/agents` response: the agent, and whether it already existed (idempotent
/// provisioning by `external_id`: `201` + `false` when created, `200` + `true` when found).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedAgent {
    /// The agent.
    pub data: AgentRecord,
    /// `true` if an agent with the same `external_id` existed and was returned unchanged.
    pub already_existed: bool,
}

/// A new secret verifier and its secret — the only time the secret is ever shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedSecret {
    /// The verifier.
    #[serde(flatten)]
    pub verifier: VerifierRecord,
    /// The 42-character secret (only its SHA-256 is stored).
    pub secret: Secret,
}

/// Successful token endpoint response (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The access token (a JWT). `Debug` redacts it.
    pub access_token: Secret,
    /// Always `Bearer`.
    pub token_type: String,
    /// Always 300.
    pub expires_in: u64,
    /// Granted scopes, space-separated.
    pub scope: String,
}

/// `POST /v1/organizations` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    /// The organization's name.
    pub name: String,
}

/// `POST /v1/organizations/{org}/members` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMembership {
    /// The member: an agent id (`agt_…`).
    pub member_id: String,
    /// The member's scopes within the organization (≤ 256 scope tokens; not put in tokens).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The member's title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_title: Option<String>,
}

/// `POST /v1/webhooks` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Absolute `http`/`https` URL deliveries are POSTed to.
    pub url: String,
    /// Event types to receive (at least one; see [`EventType`](super::EventType)).
    pub events: Vec<String>,
}

/// A new webhook endpoint and its signing secret — the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreatedWebhook {
    /// The endpoint.
    #[serde(flatten)]
    pub webhook: super::WebhookRecord,
    /// `whsec_` + base64 of the 32-byte HMAC key.
    pub secret: Secret,
}

/// `GET /v1/agents/me/usage` response data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentUsage {
    /// The agent.
    pub agent_id: String,
    /// Tokens issued to it.
    pub token_count: u64,
    /// Last token issued (ms).
    pub last_activity_at: Option<i64>,
    /// Per secret verifier: its usage.
    pub verifiers: Vec<VerifierRecord>,
}

/// `POST /v1/keys/rotate` response data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotatedKey {
    /// The new key's kid.
    pub kid: String,
    /// When the new key starts signing (ms): after the publish delay, or at once for an
    /// immediate rotation.
    pub signs_from: i64,
    /// The kids published in the JWKS now, the one signing now first.
    pub published: Vec<String>,
}

/// `POST /v1/keys/rotate` request body (optional: an empty body is `{}`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// After a compromise: sign with the new key at once and drop every older key from the
    /// JWKS (tokens they signed stop verifying once resource servers refetch).
    #[serde(default)]
    pub immediate: bool,
}
