//! Client authentication and what a granted token may carry: the token endpoint asks here
//! whether a credential is good, and for which audiences the agent may have tokens.
//!
//! - An active agent, unexpired: any `resource`, or, when it carries `resources`, one of them
//!   or the issuer itself (self-service); omitting `resource` gives the first.
//! - A self-deactivated agent, unexpired: only the issuer itself, so that it can reactivate.
//! - Suspended, expired, or deleted: nothing, answered exactly as a wrong secret.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Registry, RuleError};
use crate::issuer::agent_keys;
use crate::issuer::model::{AgentRecord, AgentStatus};
use crate::issuer::secrets::{SecretHash, is_id};
use crate::issuer::storage::Credential;
use crate::jwks::VerifyingKey;

/// Which audiences a grant's tokens may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Audiences {
    /// Any `resource`; without one, the agent's own id (as before `resources` existed).
    Any,
    /// One of these (the first is the default) or the issuer itself.
    Listed(Vec<String>),
    /// Only the issuer itself: a self-deactivated agent may only reactivate itself.
    IssuerOnly,
}

/// A client that presented a valid credential of an agent that may obtain tokens.
#[derive(Debug, Clone)]
pub(crate) struct ClientGrant {
    /// The agent (`client_id`).
    pub(crate) agent_id: String,
    /// The verifier whose credential matched.
    pub(crate) verifier_id: String,
    /// The agent's scope ceiling.
    pub(crate) scopes: Vec<String>,
    /// The audiences its tokens may carry.
    pub(crate) audiences: Audiences,
    /// The wallet account that signed in (the token's `wallet` claim), for the wallet grant.
    pub(crate) wallet: Option<String>,
}

/// Why a grant refuses the requested audience (`invalid_target`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AudienceRefusal {
    /// Not among the agent's `resources`.
    #[error("resource is not one of this client's resources")]
    NotListed,
    /// The agent deactivated itself: only self-service tokens.
    #[error("a deactivated client may only obtain tokens for the issuer itself")]
    Deactivated,
}

impl ClientGrant {
    /// The `aud` of a token asked for `requested` (RFC 8707 `resource`), the issuer being
    /// `issuer_url`.
    pub(crate) fn audience<'a>(
        &'a self,
        requested: Option<&'a str>,
        issuer_url: &'a str,
    ) -> Result<&'a str, AudienceRefusal> {
        match (&self.audiences, requested) {
            (Audiences::Any, requested) => Ok(requested.unwrap_or(&self.agent_id)),
            (Audiences::Listed(_), Some(r)) | (Audiences::IssuerOnly, Some(r))
                if r == issuer_url =>
            {
                Ok(r)
            }
            (Audiences::Listed(listed), Some(r)) if listed.iter().any(|l| l == r) => Ok(r),
            (Audiences::Listed(_), Some(_)) => Err(AudienceRefusal::NotListed),
            (Audiences::Listed(listed), None) => {
                Ok(listed.first().map_or(issuer_url, String::as_str))
            }
            (Audiences::IssuerOnly, None) => Ok(issuer_url),
            (Audiences::IssuerOnly, Some(_)) => Err(AudienceRefusal::Deactivated),
        }
    }
}

/// The audiences `agent` may obtain tokens for at `now_ms` (given a valid credential); `None`
/// when it may obtain none.
fn audiences(agent: &AgentRecord, now_ms: i64) -> Option<Audiences> {
    if agent.is_expired_at(now_ms) {
        return None;
    }
    match agent.status {
        AgentStatus::Active if agent.resources.is_empty() => Some(Audiences::Any),
        AgentStatus::Active => Some(Audiences::Listed(agent.resources.clone())),
        AgentStatus::Deactivated => Some(Audiences::IssuerOnly),
        AgentStatus::Suspended => None,
    }
}

/// Most agents whose credentials [`AuthCache`] keeps; when full it starts over (bounded
/// memory whatever the traffic).
const AUTH_CACHE_ENTRIES: usize = 10_000;

/// What authenticating a known agent reads, kept between token requests.
#[derive(Debug)]
pub(super) struct AuthEntry {
    pub(super) agent: AgentRecord,
    /// The secrets' hashes, by verifier id.
    secrets: Vec<(String, SecretHash)>,
    /// The public keys, by verifier id, loaded once (`agent_keys`).
    pub(super) keys: Vec<(String, Arc<VerifyingKey>)>,
}

impl AuthEntry {
    fn new(agent: AgentRecord, credentials: Vec<(String, Credential)>) -> Self {
        let (mut secrets, mut keys) = (Vec::new(), Vec::new());
        for (verifier_id, credential) in credentials {
            match credential {
                Credential::Secret(hash) => secrets.push((verifier_id, hash)),
                Credential::Jwk { jwk, .. } => match agent_keys::verifying_key(&jwk) {
                    Some(key) => keys.push((verifier_id, Arc::new(key))),
                    // Accepted at registration by the same loader: cannot happen unless the
                    // database was edited. Such a key verifies nothing.
                    None => tracing::error!(verifier_id, "a stored agent key does not load"),
                },
                // Wallets authenticate by a signed sign-in message (`wallet`), never here.
                Credential::Wallet { .. } => {}
            }
        }
        Self {
            agent,
            secrets,
            keys,
        }
    }
}

/// The token endpoint's reads, in memory, while this process is storage's only writer (the
/// embedded SQLite): every rule write goes through [`Registry::write`], which clears it, so a
/// change is seen by the next token request after the change returned. With several writers
/// (replicas on one database) there is none: every request reads storage.
#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    inner: std::sync::Mutex<AuthCacheInner>,
}

#[derive(Debug, Default)]
struct AuthCacheInner {
    /// Bumped by every clear: a read that began before a write must not be kept.
    generation: u64,
    entries: HashMap<String, Arc<AuthEntry>>,
}

impl AuthCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, AuthCacheInner> {
        // Every critical section leaves the map consistent: a panic cannot poison its meaning.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, agent_id: &str) -> Result<Arc<AuthEntry>, u64> {
        let inner = self.lock();
        inner.entries.get(agent_id).cloned().ok_or(inner.generation)
    }

    /// Keeps `entry` unless a write cleared the cache since `generation` was read.
    fn keep(&self, generation: u64, entry: Arc<AuthEntry>) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        if inner.entries.len() >= AUTH_CACHE_ENTRIES {
            inner.entries.clear();
        }
        inner.entries.insert(entry.agent.id.clone(), entry);
    }

    /// Forgets everything (after a write).
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.entries.clear();
    }
}

impl Registry {
    /// The agent and its credentials, from the cache when it has them.
    pub(super) async fn auth_entry(
        &self,
        client_id: &str,
    ) -> Result<Option<Arc<AuthEntry>>, RuleError> {
        if !is_id(client_id, "agt_") {
            return Ok(None);
        }
        let generation = match self.auth_cache.as_ref().map(|c| c.get(client_id)) {
            Some(Ok(entry)) => return Ok(Some(entry)),
            Some(Err(generation)) => Some(generation),
            None => None,
        };
        let id = client_id.to_owned();
        let read = self
            .storage
            .read(move |tx| Ok::<_, RuleError>((tx.agent(&id)?, tx.credentials(&id)?)))
            .await?;
        let (Some(agent), credentials) = read else {
            // Unknown ids are not kept: they cannot crowd out the agents that exist.
            return Ok(None);
        };
        let entry = Arc::new(AuthEntry::new(agent, credentials));
        if let (Some(cache), Some(generation)) = (&self.auth_cache, generation) {
            cache.keep(generation, Arc::clone(&entry));
        }
        Ok(Some(entry))
    }

    /// Token endpoint: the grant of `client_id` if `presented` is the hash of one of its
    /// secrets and the agent may obtain tokens now (for which audiences: [`ClientGrant::audience`]).
    ///
    /// One constant-time comparison runs over every secret of the agent (no early exit), and
    /// over one stored-nothing stand-in for an unknown or malformed id, before the agent's state
    /// is looked at: the answer's timing tells neither which verifier matched nor why it failed.
    pub(crate) async fn authenticate_secret(
        &self,
        client_id: &str,
        presented: SecretHash,
    ) -> Result<Option<ClientGrant>, RuleError> {
        let entry = self.auth_entry(client_id).await?;
        let secrets = entry.as_ref().map_or(&[][..], |e| &e.secrets[..]);
        let stand_in = [(String::new(), SecretHash::from_bytes([0; 32]))];
        let candidates = if secrets.is_empty() {
            &stand_in[..]
        } else {
            secrets
        };
        let mut matched = None;
        for (verifier_id, hash) in candidates {
            if hash.ct_eq(&presented) && matched.is_none() {
                matched = Some(verifier_id);
            }
        }
        Ok(match (&entry, matched) {
            (Some(entry), Some(verifier_id)) if !secrets.is_empty() => {
                self.grant(entry, verifier_id)
            }
            _ => None,
        })
    }

    /// The grant of an agent whose verifier `verifier_id` authenticated the client, if the
    /// agent may obtain tokens now. The one rule on the agent's state, for every credential.
    pub(super) fn grant(&self, entry: &AuthEntry, verifier_id: &str) -> Option<ClientGrant> {
        grant_for(&entry.agent, verifier_id, self.clock.now_ms())
    }
}

/// The grant of `agent` authenticated by its verifier `verifier_id`, if it may obtain tokens
/// at `now_ms` (the state rule of the module docs).
pub(super) fn grant_for(
    agent: &AgentRecord,
    verifier_id: &str,
    now_ms: i64,
) -> Option<ClientGrant> {
    audiences(agent, now_ms).map(|audiences| ClientGrant {
        verifier_id: verifier_id.to_owned(),
        agent_id: agent.id.clone(),
        scopes: agent.scopes.clone(),
        audiences,
        wallet: None,
    })
}

impl Registry {}
