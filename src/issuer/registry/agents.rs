//! Rules for agents and their verifiers: creation (idempotent by `external_id`), updates and
//! their status rules, deletion with what it takes along, the verifier limit, and the
//! self-service changes an agent makes to itself (never while an administrator suspended it;
//! that check runs inside the change's own transaction).

use crate::issuer::model::{
    AgentRecord, AgentStatus, EventType, Page, PageRequest, VerifierKind, VerifierRecord,
};
use crate::issuer::storage::{Credential, StorageError, Tx};

use super::outbox::emit;
use super::{Change, MAX_VERIFIERS_PER_AGENT, Object, Registry, RuleError, UsageBuffer};

/// A validated partial update of an agent. `None` leaves a field alone; for nullable fields
/// `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub(crate) struct AgentPatch {
    pub(crate) name: Option<String>,
    pub(crate) description: Option<Option<String>>,
    pub(crate) model: Option<Option<String>>,
    pub(crate) provider: Option<Option<String>>,
    pub(crate) version: Option<Option<String>>,
    pub(crate) scopes: Option<Vec<String>>,
    pub(crate) resources: Option<Vec<String>>,
    pub(crate) external_id: Option<Option<String>>,
    pub(crate) expires_at: Option<Option<i64>>,
    /// `Suspended` requires `status_reason`; `Active` clears the reason.
    pub(crate) status: Option<AgentStatus>,
    /// Only with, or while, `suspended`.
    pub(crate) status_reason: Option<String>,
}

/// Whether a create stored a new agent or found the one with the same `external_id`.
#[derive(Debug, Clone)]
pub(crate) enum Created {
    New(AgentRecord),
    Existing(AgentRecord),
}

/// Sets `*field` to `new` if different, noting `name` in `changed`.
fn apply<T: PartialEq>(field: &mut T, new: Option<T>, name: &str, changed: &mut Vec<String>) {
    if let Some(new) = new {
        if *field != new {
            *field = new;
            changed.push(name.to_owned());
        }
    }
}

/// Applies `patch` to `r`, returning the names of the fields that changed.
fn apply_patch(r: &mut AgentRecord, patch: AgentPatch) -> Result<Vec<String>, RuleError> {
    let (status, reason) = match (patch.status, patch.status_reason) {
        (Some(AgentStatus::Suspended), Some(reason)) => {
            (Some(AgentStatus::Suspended), Some(Some(reason)))
        }
        (Some(AgentStatus::Suspended), None) => return Err(RuleError::ReasonRequired),
        (Some(s), None) => (Some(s), Some(None)),
        (Some(_), Some(_)) => return Err(RuleError::ReasonWithoutSuspension),
        (None, Some(reason)) if r.status == AgentStatus::Suspended => (None, Some(Some(reason))),
        (None, Some(_)) => return Err(RuleError::ReasonOnActiveAgent),
        (None, None) => (None, None),
    };
    let mut changed = Vec::new();
    let c = &mut changed;
    apply(&mut r.name, patch.name, "name", c);
    apply(&mut r.description, patch.description, "description", c);
    apply(&mut r.model, patch.model, "model", c);
    apply(&mut r.provider, patch.provider, "provider", c);
    apply(&mut r.version, patch.version, "version", c);
    apply(&mut r.scopes, patch.scopes, "scopes", c);
    apply(&mut r.resources, patch.resources, "resources", c);
    apply(&mut r.external_id, patch.external_id, "external_id", c);
    apply(&mut r.expires_at, patch.expires_at, "expires_at", c);
    apply(&mut r.status, status, "status", c);
    apply(&mut r.status_reason, reason, "status_reason", c);
    Ok(changed)
}

fn taken(e: StorageError) -> RuleError {
    match e {
        StorageError::Duplicate => RuleError::ExternalIdTaken,
        e => RuleError::Storage(e),
    }
}

fn load(tx: &mut dyn Tx, id: &str) -> Result<AgentRecord, RuleError> {
    tx.agent(id)?.ok_or(RuleError::NotFound(Object::Agent))
}

/// Applies `patch` and writes `agent.updated` if anything changed; the record returned (and
/// shown in the event) carries its exact counters.
fn update(
    tx: &mut dyn Tx,
    mut agent: AgentRecord,
    patch: AgentPatch,
    change: &Change,
    usage: &UsageBuffer,
) -> Result<AgentRecord, RuleError> {
    usage.add_to_agent(&mut agent);
    let changed = apply_patch(&mut agent, patch)?;
    if changed.is_empty() {
        return Ok(agent);
    }
    agent.updated_at = change.at;
    tx.update_agent(&agent).map_err(taken)?;
    emit(
        tx,
        change,
        EventType::AgentUpdated,
        Some(&agent.id),
        &agent,
        changed,
    )?;
    Ok(agent)
}

/// Deletes the agent: its memberships end (one `organization.membership.deleted` each), its
/// verifiers go, then the agent (`agent.deleted`, showing its final counters).
fn delete(
    tx: &mut dyn Tx,
    id: &str,
    change: &Change,
    usage: &UsageBuffer,
) -> Result<(), RuleError> {
    let mut agent = load(tx, id)?;
    usage.add_to_agent(&mut agent);
    for m in tx.memberships_of(id)? {
        tx.delete_membership(&m.organization_id, &m.member_id)?;
        emit(
            tx,
            change,
            EventType::MembershipDeleted,
            Some(id),
            &m,
            Vec::new(),
        )?;
    }
    for v in tx.verifiers(id)? {
        tx.delete_verifier(&v.id)?;
    }
    tx.delete_agent(id)?;
    emit(
        tx,
        change,
        EventType::AgentDeleted,
        Some(id),
        &agent,
        Vec::new(),
    )
}

/// Refuses self-service changes by an agent an administrator suspended.
fn self_service_allowed(agent: &AgentRecord) -> Result<(), RuleError> {
    match agent.status {
        AgentStatus::Suspended => Err(RuleError::SuspendedByAdmin),
        AgentStatus::Active | AgentStatus::Deactivated => Ok(()),
    }
}

impl Registry {
    /// Stores a new agent (`agent.created`), or returns the one with the same `external_id`
    /// unchanged (idempotent provisioning; no event).
    pub(crate) async fn create_agent(
        &self,
        agent: AgentRecord,
        change: Change,
    ) -> Result<Created, RuleError> {
        self.write_counted(move |tx, usage| {
            if let Some(ext) = &agent.external_id {
                if let Some(mut existing) = tx.agent_by_external_id(ext)? {
                    usage.add_to_agent(&mut existing);
                    return Ok(Created::Existing(existing));
                }
            }
            tx.insert_agent(&agent).map_err(taken)?;
            let id = Some(agent.id.as_str());
            emit(tx, &change, EventType::AgentCreated, id, &agent, Vec::new())?;
            Ok(Created::New(agent.clone()))
        })
        .await
    }

    /// One agent.
    pub(crate) async fn agent(&self, id: &str) -> Result<Option<AgentRecord>, RuleError> {
        let id = id.to_owned();
        self.read_counted(move |tx| Ok(tx.agent(&id)?)).await
    }

    /// Agents, newest first.
    pub(crate) async fn agents(&self, page: PageRequest) -> Result<Page<AgentRecord>, RuleError> {
        let mut page = self
            .read_counted(move |tx| Ok(CountedPage(tx.agents(&page)?)))
            .await?
            .0;
        page.items.shrink_to_fit();
        Ok(page)
    }

    /// An administrator's update.
    pub(crate) async fn update_agent(
        &self,
        id: &str,
        patch: AgentPatch,
        change: Change,
    ) -> Result<AgentRecord, RuleError> {
        let id = id.to_owned();
        self.write_counted(move |tx, usage| {
            let agent = load(tx, &id)?;
            update(tx, agent, patch.clone(), &change, usage)
        })
        .await
    }

    /// An administrator's deletion.
    pub(crate) async fn delete_agent(&self, id: &str, change: Change) -> Result<(), RuleError> {
        let id = id.to_owned();
        self.write_counted(move |tx, usage| delete(tx, &id, &change, usage))
            .await
    }

    /// Adds a verifier (at most [`MAX_VERIFIERS_PER_AGENT`]); writes `agent.verifier.added`.
    pub(crate) async fn add_verifier(
        &self,
        verifier: VerifierRecord,
        credential: Credential,
        change: Change,
    ) -> Result<VerifierRecord, RuleError> {
        self.write(move |tx| {
            load(tx, &verifier.agent_id)?;
            if tx.verifiers(&verifier.agent_id)?.len() >= MAX_VERIFIERS_PER_AGENT {
                return Err(RuleError::TooManyVerifiers);
            }
            tx.insert_verifier(&verifier, &credential)
                .map_err(|e| match (e, &credential) {
                    // Only a key's thumbprint and a wallet's account are unique among
                    // verifiers.
                    (StorageError::Duplicate, Credential::Wallet { .. }) => RuleError::WalletTaken,
                    (StorageError::Duplicate, _) => RuleError::KeyTaken,
                    (e, _) => RuleError::Storage(e),
                })?;
            let agent_id = Some(verifier.agent_id.as_str());
            emit(
                tx,
                &change,
                EventType::VerifierAdded,
                agent_id,
                &verifier,
                Vec::new(),
            )?;
            Ok(verifier.clone())
        })
        .await
    }

    /// An agent's verifiers, oldest first.
    pub(crate) async fn verifiers(&self, agent_id: &str) -> Result<Vec<VerifierRecord>, RuleError> {
        let id = agent_id.to_owned();
        self.read_counted(move |tx| {
            load(tx, &id)?;
            Ok(tx.verifiers(&id)?)
        })
        .await
    }

    /// Removes a verifier; writes `agent.verifier.removed` (with its final counters).
    pub(crate) async fn delete_verifier(
        &self,
        agent_id: &str,
        verifier_id: &str,
        change: Change,
    ) -> Result<(), RuleError> {
        let (agent_id, verifier_id) = (agent_id.to_owned(), verifier_id.to_owned());
        self.write_counted(move |tx, usage| {
            let mut found = tx
                .verifiers(&agent_id)?
                .into_iter()
                .find(|v| v.id == verifier_id)
                .ok_or(RuleError::NotFound(Object::Verifier))?;
            tx.delete_verifier(&found.id)?;
            usage.add_to_verifier(&mut found);
            emit(
                tx,
                &change,
                EventType::VerifierRemoved,
                Some(&agent_id),
                &found,
                Vec::new(),
            )
        })
        .await
    }

    /// One self-service write of `agent_id` (every attempt counts, refused ones included: an
    /// agent cannot buy writes by failing).
    fn spend_self_service_write(&self, agent_id: &str) -> Result<(), RuleError> {
        self.self_service_budget
            .spend(agent_id, self.clock.now_ms())
            .map_err(|retry_after_secs| {
                tracing::info!(
                    agent_id,
                    outcome = "throttled",
                    "self-service write refused"
                );
                RuleError::TooManyWrites { retry_after_secs }
            })
    }

    /// Self-service rotation: every old secret goes (`agent.verifier.removed` each) and
    /// `verifier` comes (`agent.verifier.added`), in one transaction. Public keys stay: the
    /// agent's private keys were never shared, rotating a secret does not concern them.
    pub(crate) async fn replace_own_verifiers(
        &self,
        verifier: VerifierRecord,
        credential: Credential,
        change: Change,
    ) -> Result<VerifierRecord, RuleError> {
        self.spend_self_service_write(&verifier.agent_id)?;
        self.write_counted(move |tx, usage| {
            let agent = load(tx, &verifier.agent_id)?;
            self_service_allowed(&agent)?;
            let id = Some(agent.id.as_str());
            let mut kept = 0;
            for mut old in tx.verifiers(&agent.id)? {
                if old.kind != VerifierKind::Secret {
                    kept += 1;
                    continue;
                }
                tx.delete_verifier(&old.id)?;
                usage.add_to_verifier(&mut old);
                emit(
                    tx,
                    &change,
                    EventType::VerifierRemoved,
                    id,
                    &old,
                    Vec::new(),
                )?;
            }
            if kept >= MAX_VERIFIERS_PER_AGENT {
                return Err(RuleError::TooManyVerifiers);
            }
            tx.insert_verifier(&verifier, &credential)?;
            emit(
                tx,
                &change,
                EventType::VerifierAdded,
                id,
                &verifier,
                Vec::new(),
            )?;
            Ok(verifier.clone())
        })
        .await
    }

    /// Self-service status change `from` → `to` (deactivate, reactivate).
    pub(crate) async fn set_own_status(
        &self,
        agent_id: &str,
        from: AgentStatus,
        to: AgentStatus,
        change: Change,
    ) -> Result<AgentRecord, RuleError> {
        self.spend_self_service_write(agent_id)?;
        let id = agent_id.to_owned();
        self.write_counted(move |tx, usage| {
            let agent = load(tx, &id)?;
            self_service_allowed(&agent)?;
            if agent.status != from {
                return Err(RuleError::WrongStatus {
                    actual: agent.status,
                    required: from,
                });
            }
            let patch = AgentPatch {
                status: Some(to),
                ..AgentPatch::default()
            };
            update(tx, agent, patch, &change, usage)
        })
        .await
    }

    /// Self-service deletion.
    pub(crate) async fn delete_self(
        &self,
        agent_id: &str,
        change: Change,
    ) -> Result<(), RuleError> {
        self.spend_self_service_write(agent_id)?;
        let id = agent_id.to_owned();
        self.write_counted(move |tx, usage| {
            self_service_allowed(&load(tx, &id)?)?;
            delete(tx, &id, &change, usage)
        })
        .await
    }
}

/// A page of agents, counted like any other read.
struct CountedPage(Page<AgentRecord>);

impl super::Counted for CountedPage {
    fn add_usage(&mut self, usage: &super::UsageBuffer) {
        self.0.items.add_usage(usage);
    }
}
