//! [`MemoryStore`]: the in-memory [`Store`], for tests, development and `--in-memory`.
//!
//! One `RwLock` guards all state. Mutations take the write lock; the token endpoint's hot path
//! takes only the read lock and bumps atomic usage counters, so concurrent token requests never
//! serialize on each other and never lose an increment.

mod extra;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::issuer::records::{
    DeliveryOutcome, MAX_WEBHOOKS, MembershipRecord, OrganizationRecord, PendingDelivery,
    WebhookKey, WebhookRecord, apply_patch, decode_cursor, page_of, webhook_payload,
};
use crate::issuer::secrets::SecretHash;
use crate::issuer::store::{
    AgentPatch, AgentRecord, Change, ClientGrant, CreateOutcome, EventFilter, EventRecord,
    EventType, MAX_VERIFIERS_PER_AGENT, Page, PageRequest, Store, StoreError, StoredSigningKey,
    VerifierRecord,
};
use async_trait::async_trait;

/// Default number of audit events kept in memory (the oldest are dropped beyond it).
pub const DEFAULT_MAX_EVENTS: usize = 100_000;

/// The in-memory store. All data is lost when it is dropped.
#[derive(Debug)]
pub struct MemoryStore {
    inner: RwLock<Inner>,
    max_events: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store keeping at most [`DEFAULT_MAX_EVENTS`] audit events.
    pub fn new() -> Self {
        Self::with_max_events(DEFAULT_MAX_EVENTS)
    }

    /// An empty store keeping at most `max_events` audit events (at least 1).
    pub fn with_max_events(max_events: usize) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            max_events: max_events.max(1),
        }
    }

    // A panic while holding the lock cannot leave state half-written: every mutation below
    // computes its result first and commits with infallible inserts. So a poisoned lock is safe
    // to keep using.
    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}

#[derive(Debug, Default)]
struct Inner {
    agents: HashMap<String, AgentEntry>,
    /// Creation sequence → agent id (pagination order).
    order: BTreeMap<u64, String>,
    by_external_id: HashMap<String, String>,
    /// (sequence, event), ascending.
    events: VecDeque<(u64, EventRecord)>,
    next_seq: u64,
    keys: Vec<StoredSigningKey>,
    orgs: HashMap<String, OrganizationRecord>,
    /// Sequence → membership (pagination order).
    members: BTreeMap<u64, MembershipRecord>,
    webhooks: Vec<(WebhookRecord, WebhookKey)>,
    /// Queue entry id → queued message (the outbox).
    deliveries: BTreeMap<i64, Queued>,
}

#[derive(Debug)]
struct Queued {
    webhook_id: String,
    message_id: String,
    payload: String,
    attempts: u32,
    next_at: i64,
}

impl Inner {
    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn push_event(&mut self, event: EventRecord, max: usize) {
        let targets: Vec<String> = self
            .webhooks
            .iter()
            .filter(|(w, _)| w.events.contains(&event.kind))
            .map(|(w, _)| w.id.clone())
            .collect();
        if !targets.is_empty() {
            match webhook_payload(&event) {
                Ok(payload) => {
                    for webhook_id in targets {
                        let id = i64::try_from(self.seq()).unwrap_or(i64::MAX);
                        self.deliveries.insert(
                            id,
                            Queued {
                                webhook_id,
                                message_id: event.id.clone(),
                                payload: payload.clone(),
                                attempts: 0,
                                next_at: event.created_at,
                            },
                        );
                    }
                }
                Err(e) => tracing::error!(error = %e, "webhook payload could not be built"),
            }
        }
        let seq = self.seq();
        self.events.push_back((seq, event));
        while self.events.len() > max {
            self.events.pop_front();
        }
    }
}

#[derive(Debug)]
struct AgentEntry {
    seq: u64,
    /// Everything but the counters, which live in `usage`.
    record: AgentRecord,
    usage: Usage,
    verifiers: Vec<VerifierEntry>,
}

impl AgentEntry {
    fn snapshot(&self) -> AgentRecord {
        let mut r = self.record.clone();
        r.token_count = self.usage.count();
        r.last_activity_at = self.usage.last();
        r
    }
}

#[derive(Debug)]
struct VerifierEntry {
    record: VerifierRecord,
    hash: SecretHash,
    usage: Usage,
}

impl VerifierEntry {
    fn new(record: VerifierRecord, hash: SecretHash) -> Self {
        Self {
            usage: Usage::new(record.usage_count, record.last_used_at),
            record,
            hash,
        }
    }

    fn snapshot(&self) -> VerifierRecord {
        let mut r = self.record.clone();
        r.usage_count = self.usage.count();
        r.last_used_at = self.usage.last();
        r
    }
}

/// Lock-free usage counter: a count and the latest use (ms; `i64::MIN` = never).
#[derive(Debug)]
struct Usage {
    count: AtomicU64,
    last: AtomicI64,
}

impl Usage {
    fn new(count: u64, last: Option<i64>) -> Self {
        Self {
            count: AtomicU64::new(count),
            last: AtomicI64::new(last.unwrap_or(i64::MIN)),
        }
    }

    fn bump(&self, now_ms: i64) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.last.fetch_max(now_ms, Ordering::Relaxed);
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn last(&self) -> Option<i64> {
        Some(self.last.load(Ordering::Relaxed)).filter(|&t| t != i64::MIN)
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_agent(
        &self,
        agent: AgentRecord,
        change: &Change,
    ) -> Result<CreateOutcome, StoreError> {
        let mut inner = self.write();
        if let Some(ext) = &agent.external_id {
            if let Some(existing) = inner
                .by_external_id
                .get(ext)
                .and_then(|id| inner.agents.get(id))
            {
                return Ok(CreateOutcome::Existing(existing.snapshot()));
            }
        }
        if inner.agents.contains_key(&agent.id) {
            return Err(StoreError::Conflict("agent id already exists".into()));
        }
        let event = EventRecord::from_change(
            change,
            EventType::AgentCreated,
            &agent.id,
            &agent,
            Vec::new(),
        )?;
        let seq = inner.seq();
        if let Some(ext) = &agent.external_id {
            inner.by_external_id.insert(ext.clone(), agent.id.clone());
        }
        inner.order.insert(seq, agent.id.clone());
        let entry = AgentEntry {
            seq,
            usage: Usage::new(agent.token_count, agent.last_activity_at),
            record: agent.clone(),
            verifiers: Vec::new(),
        };
        inner.agents.insert(agent.id.clone(), entry);
        inner.push_event(event, self.max_events);
        Ok(CreateOutcome::Created(agent))
    }

    async fn get_agent(&self, id: &str) -> Result<Option<AgentRecord>, StoreError> {
        Ok(self.read().agents.get(id).map(AgentEntry::snapshot))
    }

    async fn list_agents(&self, page: PageRequest) -> Result<Page<AgentRecord>, StoreError> {
        let before = match &page.cursor {
            Some(c) => decode_cursor('a', c)?,
            None => u64::MAX,
        };
        let inner = self.read();
        let picked = inner
            .order
            .range(..before)
            .rev()
            .filter_map(|(seq, id)| inner.agents.get(id).map(|e| (*seq, e.snapshot())))
            .take(page.limit.saturating_add(1))
            .collect();
        Ok(page_of(picked, page.limit, 'a'))
    }

    async fn update_agent(
        &self,
        id: &str,
        patch: AgentPatch,
        change: &Change,
    ) -> Result<AgentRecord, StoreError> {
        let mut guard = self.write();
        let inner = &mut *guard;
        let entry = inner.agents.get(id).ok_or(StoreError::NotFound)?;
        let mut r = entry.record.clone();
        if let Some(Some(ext)) = &patch.external_id {
            if inner
                .by_external_id
                .get(ext)
                .is_some_and(|other| other != id)
            {
                return Err(StoreError::Conflict(
                    "another agent has this external_id".into(),
                ));
            }
        }
        let old_ext = r.external_id.clone();
        let changed = apply_patch(&mut r, patch)?;
        if changed.is_empty() {
            return Ok(entry.snapshot());
        }
        r.updated_at = change.at;
        let mut snapshot = r.clone();
        snapshot.token_count = entry.usage.count();
        snapshot.last_activity_at = entry.usage.last();
        let event =
            EventRecord::from_change(change, EventType::AgentUpdated, id, &snapshot, changed)?;
        if old_ext != r.external_id {
            if let Some(old) = &old_ext {
                inner.by_external_id.remove(old);
            }
            if let Some(new) = &r.external_id {
                inner.by_external_id.insert(new.clone(), id.to_owned());
            }
        }
        if let Some(entry) = inner.agents.get_mut(id) {
            entry.record = r;
        }
        inner.push_event(event, self.max_events);
        Ok(snapshot)
    }

    async fn delete_agent(&self, id: &str, change: &Change) -> Result<(), StoreError> {
        let mut inner = self.write();
        let entry = inner.agents.get(id).ok_or(StoreError::NotFound)?;
        let event = EventRecord::from_change(
            change,
            EventType::AgentDeleted,
            id,
            &entry.snapshot(),
            Vec::new(),
        )?;
        let ended: Vec<u64> = inner
            .members
            .iter()
            .filter(|(_, m)| m.member_id == id)
            .map(|(seq, _)| *seq)
            .collect();
        let mut events = Vec::with_capacity(ended.len() + 1);
        for seq in &ended {
            if let Some(m) = inner.members.get(seq) {
                events.push(EventRecord::extra(
                    change,
                    EventType::MembershipDeleted,
                    Some(id),
                    m,
                )?);
            }
        }
        events.push(event);
        for seq in ended {
            inner.members.remove(&seq);
        }
        if let Some(entry) = inner.agents.remove(id) {
            inner.order.remove(&entry.seq);
            if let Some(ext) = &entry.record.external_id {
                inner.by_external_id.remove(ext);
            }
        }
        for event in events {
            inner.push_event(event, self.max_events);
        }
        Ok(())
    }

    async fn add_verifier(
        &self,
        verifier: VerifierRecord,
        secret_hash: SecretHash,
        change: &Change,
    ) -> Result<VerifierRecord, StoreError> {
        let mut inner = self.write();
        let entry = inner
            .agents
            .get(&verifier.agent_id)
            .ok_or(StoreError::NotFound)?;
        if entry.verifiers.len() >= MAX_VERIFIERS_PER_AGENT {
            return Err(StoreError::LimitExceeded(format!(
                "an agent can hold at most {MAX_VERIFIERS_PER_AGENT} verifiers"
            )));
        }
        let event = EventRecord::from_change(
            change,
            EventType::VerifierAdded,
            &verifier.agent_id,
            &verifier,
            Vec::new(),
        )?;
        if let Some(entry) = inner.agents.get_mut(&verifier.agent_id) {
            entry
                .verifiers
                .push(VerifierEntry::new(verifier.clone(), secret_hash));
        }
        inner.push_event(event, self.max_events);
        Ok(verifier)
    }

    async fn list_verifiers(&self, agent_id: &str) -> Result<Vec<VerifierRecord>, StoreError> {
        let inner = self.read();
        let entry = inner.agents.get(agent_id).ok_or(StoreError::NotFound)?;
        Ok(entry
            .verifiers
            .iter()
            .map(VerifierEntry::snapshot)
            .collect())
    }

    async fn delete_verifier(
        &self,
        agent_id: &str,
        verifier_id: &str,
        change: &Change,
    ) -> Result<(), StoreError> {
        let mut inner = self.write();
        let entry = inner.agents.get_mut(agent_id).ok_or(StoreError::NotFound)?;
        let pos = entry
            .verifiers
            .iter()
            .position(|v| v.record.id == verifier_id)
            .ok_or(StoreError::NotFound)?;
        let event = EventRecord::from_change(
            change,
            EventType::VerifierRemoved,
            agent_id,
            &entry.verifiers[pos].snapshot(),
            Vec::new(),
        )?;
        entry.verifiers.remove(pos);
        inner.push_event(event, self.max_events);
        Ok(())
    }

    async fn authenticate_client(
        &self,
        client_id: &str,
        secret_hash: &SecretHash,
        now_ms: i64,
    ) -> Result<Option<ClientGrant>, StoreError> {
        let inner = self.read();
        let Some(entry) = inner.agents.get(client_id) else {
            // Same work as a known agent with one verifier.
            let _ = SecretHash::from_bytes([0; 32]).ct_eq(secret_hash);
            return Ok(None);
        };
        // Compare against every verifier (no early exit on a match).
        let mut matched = None;
        for v in &entry.verifiers {
            if v.hash.ct_eq(secret_hash) && matched.is_none() {
                matched = Some(v);
            }
        }
        match matched {
            Some(v) if entry.record.may_authenticate_at(now_ms) => Ok(Some(ClientGrant {
                agent_id: entry.record.id.clone(),
                verifier_id: v.record.id.clone(),
                scopes: entry.record.scopes.clone(),
            })),
            _ => Ok(None),
        }
    }

    async fn record_token_issued(
        &self,
        grant: &ClientGrant,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let inner = self.read();
        if let Some(entry) = inner.agents.get(&grant.agent_id) {
            entry.usage.bump(now_ms);
            if let Some(v) = entry
                .verifiers
                .iter()
                .find(|v| v.record.id == grant.verifier_id)
            {
                v.usage.bump(now_ms);
            }
        }
        Ok(())
    }

    async fn list_events(
        &self,
        filter: EventFilter,
        page: PageRequest,
    ) -> Result<Page<EventRecord>, StoreError> {
        let before = match &page.cursor {
            Some(c) => decode_cursor('e', c)?,
            None => u64::MAX,
        };
        let inner = self.read();
        let end = inner.events.partition_point(|(seq, _)| *seq < before);
        let picked = inner
            .events
            .range(..end)
            .rev()
            .filter(|(_, e)| filter.kind.is_none_or(|k| e.kind == k))
            .filter(|(_, e)| {
                filter
                    .agent_id
                    .as_deref()
                    .is_none_or(|a| e.agent_id.as_deref() == Some(a))
            })
            .take(page.limit.saturating_add(1))
            .map(|(seq, e)| (*seq, e.clone()))
            .collect();
        Ok(page_of(picked, page.limit, 'e'))
    }

    async fn ensure_signing_key(
        &self,
        candidate: StoredSigningKey,
    ) -> Result<Vec<StoredSigningKey>, StoreError> {
        let mut inner = self.write();
        if inner.keys.is_empty() {
            inner.keys.push(candidate);
        }
        Ok(inner.keys.clone())
    }

    async fn add_signing_key(
        &self,
        key: StoredSigningKey,
    ) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.x_add_signing_key(key).await
    }

    async fn replace_verifiers(
        &self,
        verifier: VerifierRecord,
        secret_hash: SecretHash,
        change: &Change,
    ) -> Result<VerifierRecord, StoreError> {
        self.x_replace_verifiers(verifier, secret_hash, change)
            .await
    }

    async fn create_organization(
        &self,
        org: OrganizationRecord,
        change: &Change,
    ) -> Result<OrganizationRecord, StoreError> {
        self.x_create_organization(org, change).await
    }

    async fn get_organization(&self, id: &str) -> Result<Option<OrganizationRecord>, StoreError> {
        self.x_get_organization(id).await
    }

    async fn add_membership(
        &self,
        membership: MembershipRecord,
        change: &Change,
    ) -> Result<MembershipRecord, StoreError> {
        self.x_add_membership(membership, change).await
    }

    async fn list_memberships(
        &self,
        org_id: &str,
        page: PageRequest,
    ) -> Result<Page<MembershipRecord>, StoreError> {
        self.x_list_memberships(org_id, page).await
    }

    async fn delete_membership(
        &self,
        org_id: &str,
        member_id: &str,
        change: &Change,
    ) -> Result<(), StoreError> {
        self.x_delete_membership(org_id, member_id, change).await
    }

    async fn create_webhook(
        &self,
        webhook: WebhookRecord,
        key: WebhookKey,
    ) -> Result<WebhookRecord, StoreError> {
        self.x_create_webhook(webhook, key).await
    }

    async fn list_webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError> {
        self.x_list_webhooks().await
    }

    async fn delete_webhook(&self, id: &str) -> Result<(), StoreError> {
        self.x_delete_webhook(id).await
    }

    async fn due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        self.x_due_deliveries(now_ms, limit).await
    }

    async fn next_delivery_at(&self) -> Result<Option<i64>, StoreError> {
        self.x_next_delivery_at().await
    }

    async fn finish_delivery(&self, id: i64, outcome: DeliveryOutcome) -> Result<(), StoreError> {
        self.x_finish_delivery(id, outcome).await
    }
}
