//! What every handler shares: the issuer's identity and endpoints, the registry (the rules over
//! storage), the signing keys, the admin key's verifier, and the middleware that guards
//! self-service.

use std::sync::Arc;

use axum::body::Bytes;

use super::delivery::RetryPolicy;
use super::keys::KeyRing;
use super::model::Actor;
use super::registry::{Change, Registry};
use super::secrets::AdminVerifier;

/// State shared by every handler.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) issuer_url: String,
    pub(crate) token_endpoint: String,
    pub(crate) jwks_uri: String,
    pub(crate) registry: Arc<Registry>,
    pub(crate) keys: KeyRing,
    pub(crate) admin: AdminVerifier,
    /// The RFC 8414 document, serialized once.
    pub(crate) metadata: Bytes,
    /// Webhook retry schedule.
    pub(crate) retry: RetryPolicy,
    /// The middleware guarding self-service: the agent's token for the audience "this issuer".
    pub(crate) self_auth: crate::AgentAuth,
}

impl Shared {
    /// A change made now by the holder of the admin key.
    pub(crate) fn admin_change(&self) -> Change {
        self.registry.change(Actor::admin(self.admin.id()))
    }

    /// A change made now by the agent `agent_id` on itself.
    pub(crate) fn agent_change(&self, agent_id: &str) -> Change {
        self.registry.change(Actor::agent(agent_id))
    }
}
