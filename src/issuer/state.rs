//! What every handler shares: the issuer's identity and endpoints, the registry (the rules over
//! storage), the signing keys, the admin key's verifier, and the middleware that guards
//! self-service.

use std::sync::Arc;

use axum::body::Bytes;

use super::delivery::RetryPolicy;
use super::errors::IssuerError;
use super::keys::{KeyRing, KeySet, SigningKey};
use super::model::Actor;
use super::registry::{Change, Registry};
use super::secrets::AdminVerifier;
use super::storage::StoredSigningKey;

/// The shortest publish delay of a rotated key when replicas share the storage: each rereads the
/// keys every [`FLUSH_INTERVAL`](super::FLUSH_INTERVAL), so every replica publishes the key well
/// before any signs with it.
pub const MIN_SHARED_PUBLISH_DELAY: std::time::Duration = std::time::Duration::from_secs(10);

/// State shared by every handler.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) issuer_url: String,
    /// The issuer URL's scheme: a wallet sign-in message's scheme, when it has one.
    pub(crate) wallet_scheme: String,
    /// The issuer URL's `host[:port]`: a wallet sign-in message's domain.
    pub(crate) wallet_domain: String,
    pub(crate) token_endpoint: String,
    pub(crate) jwks_uri: String,
    pub(crate) registry: Arc<Registry>,
    pub(crate) keys: KeyRing,
    /// The admin key's verifier; replaced when the stored key is rotated (when `admin_stored`).
    pub(crate) admin: arc_swap::ArcSwap<AdminVerifier>,
    /// Whether the admin key is the one kept in the database (reread at every flush, so that
    /// `rotate-admin-key` takes effect on a running issuer within a flush interval).
    pub(crate) admin_stored: bool,
    /// The admin key generated at this start, until the caller takes it to show it once.
    pub(crate) generated_admin_key: std::sync::Mutex<Option<super::secrets::AdminKey>>,
    /// The RFC 8414 document, serialized once.
    pub(crate) metadata: Bytes,
    /// Webhook retry schedule.
    pub(crate) retry: RetryPolicy,
    /// The middleware guarding self-service: the agent's token for the audience "this issuer",
    /// checked with the key ring's keys (handed over in process).
    pub(crate) self_auth: crate::AgentAuthLayer,
    /// How long a rotated key is published before it signs.
    pub(crate) key_publish_delay: std::time::Duration,
    /// Held across each change of the stored keys and its republication, so that the key ring
    /// always ends on the newest stored state.
    pub(crate) key_changes: tokio::sync::Mutex<()>,
    /// Which webhook targets are accepted.
    pub(crate) webhook_policy: super::webhook_target::WebhookPolicy,
    /// The HTTP server's deadlines and connection bound.
    pub(crate) http_limits: super::serve::HttpLimits,
}

impl Shared {
    /// A change made now by the holder of the admin key.
    pub(crate) fn admin_change(&self) -> Change {
        self.registry.change(Actor::admin(self.admin.load().id()))
    }

    /// A change made now by the agent `agent_id` on itself.
    pub(crate) fn agent_change(&self, agent_id: &str) -> Change {
        self.registry.change(Actor::agent(agent_id))
    }

    /// A new signing key: published now, signing after the publish delay, or at once (and
    /// every older key dropped) when `immediate`. Returns the new key's stored form and the
    /// set published now.
    pub(crate) async fn rotate_keys(
        &self,
        immediate: bool,
    ) -> Result<(StoredSigningKey, Arc<KeySet>), IssuerError> {
        let _changing = self.key_changes.lock().await;
        let now = self.registry.now_ms();
        // Strictly newer than every stored key, whatever the clock did.
        let newest = self.keys.current().active().created_at();
        let created_at = now.max(newest.saturating_add(1));
        let delay = if immediate {
            0
        } else if self.registry.is_shared() {
            // Every replica rereads the keys each flush: none signs with the key before all
            // publish it.
            i64::try_from(
                self.key_publish_delay
                    .max(MIN_SHARED_PUBLISH_DELAY)
                    .as_millis(),
            )
            .unwrap_or(i64::MAX)
        } else {
            i64::try_from(self.key_publish_delay.as_millis()).unwrap_or(i64::MAX)
        };
        let key = SigningKey::generate(created_at, created_at.saturating_add(delay))?;
        let stored = self
            .registry
            .rotate_signing_key(key.clone(), immediate)
            .await?;
        let set = self.keys.replace(stored, now)?;
        Ok((key, set))
    }

    /// Usage counters to storage, then the expired signing keys out of it.
    pub(crate) async fn flush(&self) -> Result<(), IssuerError> {
        self.registry
            .flush()
            .await
            .map_err(IssuerError::from_rule)?;
        self.reload_admin_key().await?;
        self.reload_keys().await?;
        self.registry
            .purge_expired_jtis()
            .await
            .map_err(IssuerError::from_rule)?;
        self.forget_expired_keys().await
    }

    /// With replicas: picks up the signing keys another replica stored (a rotation, a pruning),
    /// so that every replica publishes a rotated key within a flush interval.
    async fn reload_keys(&self) -> Result<(), IssuerError> {
        if !self.registry.is_shared() {
            return Ok(());
        }
        let _changing = self.key_changes.lock().await;
        let stored = self.registry.signing_keys().await?;
        if self.keys.differs_from(&stored) {
            let kids: Vec<&str> = stored.iter().map(|k| k.kid.as_str()).collect();
            self.keys.replace(stored.clone(), self.registry.now_ms())?;
            tracing::info!(?kids, "signing keys reloaded from the database");
        }
        Ok(())
    }

    /// Picks up an admin key rotated in the database by another process.
    async fn reload_admin_key(&self) -> Result<(), IssuerError> {
        if !self.admin_stored {
            return Ok(());
        }
        if let Some(stored) = self.registry.stored_admin_key().await? {
            if !self.admin.load().is(&stored) {
                self.admin
                    .store(Arc::new(AdminVerifier::from_stored(&stored)));
                tracing::info!(key_id = %stored.id, "admin key replaced from the database");
            }
        }
        Ok(())
    }

    /// Removes from storage the signing keys that left the JWKS for good (a no-op, without
    /// I/O, while there are none).
    async fn forget_expired_keys(&self) -> Result<(), IssuerError> {
        if self.keys.at(self.registry.now_ms())?.expired().is_empty() {
            return Ok(());
        }
        let _changing = self.key_changes.lock().await;
        let now = self.registry.now_ms();
        let expired = self.keys.at(now)?.expired().to_vec();
        if expired.is_empty() {
            return Ok(());
        }
        let stored = self.registry.forget_signing_keys(expired).await?;
        self.keys.replace(stored, now)?;
        tracing::info!(outcome = "forgotten", "expired signing keys removed");
        Ok(())
    }
}
