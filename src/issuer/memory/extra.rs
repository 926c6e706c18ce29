//! Signing keys, secret replacement, organizations, memberships, webhook endpoints and the outbox of [`MemoryStore`] (the
//! [`Store`](crate::issuer::Store) methods delegate here).

use super::*;

impl MemoryStore {
    pub(super) async fn x_add_signing_key(
        &self,
        key: StoredSigningKey,
    ) -> Result<Vec<StoredSigningKey>, StoreError> {
        let mut inner = self.write();
        inner.keys.push(key);
        Ok(inner.keys.clone())
    }

    pub(super) async fn x_replace_verifiers(
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
        let mut events = Vec::with_capacity(entry.verifiers.len() + 1);
        for old in &entry.verifiers {
            events.push(EventRecord::extra(
                change,
                EventType::VerifierRemoved,
                Some(&verifier.agent_id),
                &old.snapshot(),
            )?);
        }
        events.push(EventRecord::from_change(
            change,
            EventType::VerifierAdded,
            &verifier.agent_id,
            &verifier,
            Vec::new(),
        )?);
        if let Some(entry) = inner.agents.get_mut(&verifier.agent_id) {
            entry.verifiers = vec![VerifierEntry::new(verifier.clone(), secret_hash)];
        }
        for event in events {
            inner.push_event(event, self.max_events);
        }
        Ok(verifier)
    }

    pub(super) async fn x_create_organization(
        &self,
        org: OrganizationRecord,
        change: &Change,
    ) -> Result<OrganizationRecord, StoreError> {
        let mut inner = self.write();
        if inner.orgs.contains_key(&org.id) {
            return Err(StoreError::Conflict(
                "organization id already exists".into(),
            ));
        }
        let event = EventRecord::with_id(
            change.event_id.clone(),
            change,
            EventType::OrganizationCreated,
            None,
            &org,
            Vec::new(),
        )?;
        inner.orgs.insert(org.id.clone(), org.clone());
        inner.push_event(event, self.max_events);
        Ok(org)
    }

    pub(super) async fn x_get_organization(
        &self,
        id: &str,
    ) -> Result<Option<OrganizationRecord>, StoreError> {
        Ok(self.read().orgs.get(id).cloned())
    }

    pub(super) async fn x_add_membership(
        &self,
        membership: MembershipRecord,
        change: &Change,
    ) -> Result<MembershipRecord, StoreError> {
        let mut inner = self.write();
        if !inner.orgs.contains_key(&membership.organization_id)
            || !inner.agents.contains_key(&membership.member_id)
        {
            return Err(StoreError::NotFound);
        }
        if inner.members.values().any(|m| {
            m.organization_id == membership.organization_id && m.member_id == membership.member_id
        }) {
            return Err(StoreError::Conflict(
                "the agent is already a member of this organization".into(),
            ));
        }
        let event = EventRecord::from_change(
            change,
            EventType::MembershipCreated,
            &membership.member_id,
            &membership,
            Vec::new(),
        )?;
        let seq = inner.seq();
        inner.members.insert(seq, membership.clone());
        inner.push_event(event, self.max_events);
        Ok(membership)
    }

    pub(super) async fn x_list_memberships(
        &self,
        org_id: &str,
        page: PageRequest,
    ) -> Result<Page<MembershipRecord>, StoreError> {
        let before = match &page.cursor {
            Some(c) => decode_cursor('m', c)?,
            None => u64::MAX,
        };
        let inner = self.read();
        if !inner.orgs.contains_key(org_id) {
            return Err(StoreError::NotFound);
        }
        let picked = inner
            .members
            .range(..before)
            .rev()
            .filter(|(_, m)| m.organization_id == org_id)
            .take(page.limit.saturating_add(1))
            .map(|(seq, m)| (*seq, m.clone()))
            .collect();
        Ok(page_of(picked, page.limit, 'm'))
    }

    pub(super) async fn x_delete_membership(
        &self,
        org_id: &str,
        member_id: &str,
        change: &Change,
    ) -> Result<(), StoreError> {
        let mut inner = self.write();
        let (seq, m) = inner
            .members
            .iter()
            .find(|(_, m)| m.organization_id == org_id && m.member_id == member_id)
            .map(|(seq, m)| (*seq, m.clone()))
            .ok_or(StoreError::NotFound)?;
        let event = EventRecord::from_change(
            change,
            EventType::MembershipDeleted,
            member_id,
            &m,
            Vec::new(),
        )?;
        inner.members.remove(&seq);
        inner.push_event(event, self.max_events);
        Ok(())
    }

    pub(super) async fn x_create_webhook(
        &self,
        webhook: WebhookRecord,
        key: WebhookKey,
    ) -> Result<WebhookRecord, StoreError> {
        let mut inner = self.write();
        if inner.webhooks.len() >= MAX_WEBHOOKS {
            return Err(StoreError::LimitExceeded(format!(
                "at most {MAX_WEBHOOKS} webhooks"
            )));
        }
        inner.webhooks.push((webhook.clone(), key));
        Ok(webhook)
    }

    pub(super) async fn x_list_webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError> {
        Ok(self
            .read()
            .webhooks
            .iter()
            .map(|(w, _)| w.clone())
            .collect())
    }

    pub(super) async fn x_delete_webhook(&self, id: &str) -> Result<(), StoreError> {
        let mut inner = self.write();
        let pos = inner
            .webhooks
            .iter()
            .position(|(w, _)| w.id == id)
            .ok_or(StoreError::NotFound)?;
        inner.webhooks.remove(pos);
        inner.deliveries.retain(|_, d| d.webhook_id != id);
        Ok(())
    }

    pub(super) async fn x_due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        let inner = self.read();
        Ok(inner
            .deliveries
            .iter()
            .filter(|(_, d)| d.next_at <= now_ms)
            .filter_map(|(id, d)| {
                let (w, key) = inner.webhooks.iter().find(|(w, _)| w.id == d.webhook_id)?;
                Some(PendingDelivery {
                    id: *id,
                    webhook_id: w.id.clone(),
                    url: w.url.clone(),
                    key: key.clone(),
                    message_id: d.message_id.clone(),
                    payload: d.payload.clone(),
                    attempts: d.attempts,
                })
            })
            .take(limit)
            .collect())
    }

    pub(super) async fn x_next_delivery_at(&self) -> Result<Option<i64>, StoreError> {
        Ok(self.read().deliveries.values().map(|d| d.next_at).min())
    }

    pub(super) async fn x_finish_delivery(
        &self,
        id: i64,
        outcome: DeliveryOutcome,
    ) -> Result<(), StoreError> {
        let mut inner = self.write();
        match outcome {
            DeliveryOutcome::Delivered | DeliveryOutcome::GiveUp => {
                inner.deliveries.remove(&id);
            }
            DeliveryOutcome::RetryAt(at) => {
                if let Some(d) = inner.deliveries.get_mut(&id) {
                    d.attempts = d.attempts.saturating_add(1);
                    d.next_at = at;
                }
            }
        }
        Ok(())
    }
}
