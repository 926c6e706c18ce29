//! The [`Store`] implementation of [`SqliteStore`]: one transaction per mutation, with its
//! audit events and their webhook deliveries.

use async_trait::async_trait;

use super::rows::*;

#[async_trait]
impl Store for SqliteStore {
    async fn create_agent(
        &self,
        agent: AgentRecord,
        change: &Change,
    ) -> Result<CreateOutcome, StoreError> {
        let change = change.clone();
        let outcome = self
            .write(move |tx| {
                if let Some(ext) = &agent.external_id {
                    let existing: Option<String> = tx
                        .query_row("SELECT id FROM agents WHERE external_id = ?1", [ext], |r| {
                            r.get(0)
                        })
                        .optional()
                        .map_err(backend)?;
                    if let Some(id) = existing {
                        let a = load_agent(tx, &id)?.ok_or(StoreError::NotFound)?;
                        return Ok(CreateOutcome::Existing(a));
                    }
                }
                tx.execute(
                    "INSERT INTO agents (id, external_id, record) VALUES (?1, ?2, ?3)",
                    params![agent.id, agent.external_id, to_json(&agent)?],
                )
                .map_err(sql)?;
                let event = EventRecord::from_change(
                    &change,
                    EventType::AgentCreated,
                    &agent.id,
                    &agent,
                    Vec::new(),
                )?;
                insert_event(tx, &event)?;
                Ok(CreateOutcome::Created(agent))
            })
            .await?;
        Ok(match outcome {
            CreateOutcome::Existing(mut a) => {
                merge_agent(&mut a, &self.usage_snapshot());
                CreateOutcome::Existing(a)
            }
            created => created,
        })
    }

    async fn get_agent(&self, id: &str) -> Result<Option<AgentRecord>, StoreError> {
        let id = id.to_owned();
        self.read_with_usage(
            move |c| load_agent(c, &id),
            |a, buf| {
                if let Some(a) = a {
                    merge_agent(a, buf);
                }
            },
        )
        .await
    }

    async fn list_agents(&self, page: PageRequest) -> Result<Page<AgentRecord>, StoreError> {
        let before = before(page.cursor.as_deref(), 'a')?;
        let limit = page.limit;
        let mut page = self
            .read_with_usage(
                move |c| {
                    let mut stmt = c
                        .prepare_cached(
                            "SELECT seq, record, token_count, last_activity_at FROM agents
                             WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
                        )
                        .map_err(backend)?;
                    let rows = stmt
                        .query_map(params![before, to_i64(limit.saturating_add(1))], |r| {
                            Ok((
                                r.get::<_, i64>(0)?,
                                r.get::<_, String>(1)?,
                                r.get::<_, i64>(2)?,
                                r.get::<_, Option<i64>>(3)?,
                            ))
                        })
                        .map_err(backend)?;
                    let mut picked = Vec::new();
                    for row in rows {
                        let (seq, rec, n, last) = row.map_err(backend)?;
                        picked.push((to_u64(seq), agent_from(&rec, n, last)?));
                    }
                    Ok(page_of(picked, limit, 'a'))
                },
                |p, buf| p.items.iter_mut().for_each(|a| merge_agent(a, buf)),
            )
            .await?;
        page.items.shrink_to_fit();
        Ok(page)
    }

    async fn update_agent(
        &self,
        id: &str,
        patch: AgentPatch,
        change: &Change,
    ) -> Result<AgentRecord, StoreError> {
        let (id, change) = (id.to_owned(), change.clone());
        let mut agent = self
            .write(move |tx| {
                let mut r = load_agent(tx, &id)?.ok_or(StoreError::NotFound)?;
                let changed = apply_patch(&mut r, patch)?;
                if changed.is_empty() {
                    return Ok(r);
                }
                r.updated_at = change.at;
                tx.execute(
                    "UPDATE agents SET record = ?1, external_id = ?2 WHERE id = ?3",
                    params![to_json(&r)?, r.external_id, id],
                )
                .map_err(|e| match sql(e) {
                    StoreError::Conflict(_) => {
                        StoreError::Conflict("another agent has this external_id".into())
                    }
                    e => e,
                })?;
                let event =
                    EventRecord::from_change(&change, EventType::AgentUpdated, &id, &r, changed)?;
                insert_event(tx, &event)?;
                Ok(r)
            })
            .await?;
        merge_agent(&mut agent, &self.usage_snapshot());
        Ok(agent)
    }

    async fn delete_agent(&self, id: &str, change: &Change) -> Result<(), StoreError> {
        let (id, change) = (id.to_owned(), change.clone());
        self.write(move |tx| {
            let agent = load_agent(tx, &id)?.ok_or(StoreError::NotFound)?;
            let mut stmt = tx
                .prepare("SELECT record FROM memberships WHERE member_id = ?1 ORDER BY seq")
                .map_err(backend)?;
            let members = stmt
                .query_map([&id], |r| r.get::<_, String>(0))
                .map_err(backend)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(backend)?;
            for m in members {
                let m: MembershipRecord = from_json(&m)?;
                let event =
                    EventRecord::extra(&change, EventType::MembershipDeleted, Some(&id), &m)?;
                insert_event(tx, &event)?;
            }
            // Verifiers and memberships go with it (ON DELETE CASCADE).
            tx.execute("DELETE FROM agents WHERE id = ?1", [&id])
                .map_err(backend)?;
            let event = EventRecord::from_change(
                &change,
                EventType::AgentDeleted,
                &id,
                &agent,
                Vec::new(),
            )?;
            insert_event(tx, &event)
        })
        .await
    }

    async fn add_verifier(
        &self,
        verifier: VerifierRecord,
        secret_hash: SecretHash,
        change: &Change,
    ) -> Result<VerifierRecord, StoreError> {
        let change = change.clone();
        self.write(move |tx| {
            if !agent_exists(tx, &verifier.agent_id)? {
                return Err(StoreError::NotFound);
            }
            let n: i64 = tx
                .query_row(
                    "SELECT count(*) FROM verifiers WHERE agent_id = ?1",
                    [&verifier.agent_id],
                    |r| r.get(0),
                )
                .map_err(backend)?;
            if to_u64(n) >= MAX_VERIFIERS_PER_AGENT as u64 {
                return Err(StoreError::LimitExceeded(format!(
                    "an agent can hold at most {MAX_VERIFIERS_PER_AGENT} verifiers"
                )));
            }
            insert_verifier(tx, &verifier, &secret_hash)?;
            let event = EventRecord::from_change(
                &change,
                EventType::VerifierAdded,
                &verifier.agent_id,
                &verifier,
                Vec::new(),
            )?;
            insert_event(tx, &event)?;
            Ok(verifier)
        })
        .await
    }

    async fn list_verifiers(&self, agent_id: &str) -> Result<Vec<VerifierRecord>, StoreError> {
        let id = agent_id.to_owned();
        self.read_with_usage(
            move |c| {
                if !agent_exists(c, &id)? {
                    return Err(StoreError::NotFound);
                }
                load_verifiers(c, &id)
            },
            |vs, buf| vs.iter_mut().for_each(|v| merge_verifier(v, buf)),
        )
        .await
    }

    async fn delete_verifier(
        &self,
        agent_id: &str,
        verifier_id: &str,
        change: &Change,
    ) -> Result<(), StoreError> {
        let (agent_id, verifier_id, change) =
            (agent_id.to_owned(), verifier_id.to_owned(), change.clone());
        let snapshot = self.usage_snapshot();
        self.write(move |tx| {
            let mut v = load_verifiers(tx, &agent_id)?
                .into_iter()
                .find(|v| v.id == verifier_id)
                .ok_or(StoreError::NotFound)?;
            merge_verifier(&mut v, &snapshot);
            tx.execute("DELETE FROM verifiers WHERE id = ?1", [&verifier_id])
                .map_err(backend)?;
            let event = EventRecord::from_change(
                &change,
                EventType::VerifierRemoved,
                &agent_id,
                &v,
                Vec::new(),
            )?;
            insert_event(tx, &event)
        })
        .await
    }

    async fn authenticate_client(
        &self,
        client_id: &str,
        secret_hash: &SecretHash,
        now_ms: i64,
    ) -> Result<Option<ClientGrant>, StoreError> {
        let (id, presented) = (client_id.to_owned(), *secret_hash);
        self.read(move |c| {
            let Some(agent) = load_agent(c, &id)? else {
                // Same work as a known agent with one verifier.
                let _ = SecretHash::from_bytes([0; 32]).ct_eq(&presented);
                return Ok(None);
            };
            let mut stmt = c
                .prepare_cached("SELECT id, hash FROM verifiers WHERE agent_id = ?1")
                .map_err(backend)?;
            let rows = stmt
                .query_map([&id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .map_err(backend)?;
            // Compare against every verifier (no early exit on a match).
            let mut matched = None;
            for row in rows {
                let (vid, hash) = row.map_err(backend)?;
                let hash: [u8; 32] = hash.try_into().unwrap_or([0; 32]);
                if SecretHash::from_bytes(hash).ct_eq(&presented) && matched.is_none() {
                    matched = Some(vid);
                }
            }
            Ok(match matched {
                Some(verifier_id) if agent.may_authenticate_at(now_ms) => Some(ClientGrant {
                    agent_id: agent.id,
                    verifier_id,
                    scopes: agent.scopes,
                }),
                _ => None,
            })
        })
        .await
    }

    async fn record_token_issued(
        &self,
        grant: &ClientGrant,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.bump_usage(&grant.agent_id, &grant.verifier_id, now_ms);
        Ok(())
    }

    async fn list_events(
        &self,
        filter: EventFilter,
        page: PageRequest,
    ) -> Result<Page<EventRecord>, StoreError> {
        let before = before(page.cursor.as_deref(), 'e')?;
        let limit = page.limit;
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, record FROM events WHERE seq < ?1
                     AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR agent_id = ?3)
                     ORDER BY seq DESC LIMIT ?4",
                )
                .map_err(backend)?;
            let kind = filter.kind.map(EventType::as_str);
            let probe = to_i64(limit.saturating_add(1));
            page_rows(
                &mut stmt,
                params![before, kind, filter.agent_id, probe],
                limit,
                'e',
            )
        })
        .await
    }

    async fn ensure_signing_key(
        &self,
        candidate: StoredSigningKey,
    ) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.write(move |tx| {
            if all_keys(tx)?.is_empty() {
                insert_key(tx, &candidate)?;
            }
            all_keys(tx)
        })
        .await
    }

    async fn add_signing_key(
        &self,
        key: StoredSigningKey,
    ) -> Result<Vec<StoredSigningKey>, StoreError> {
        self.write(move |tx| {
            insert_key(tx, &key)?;
            all_keys(tx)
        })
        .await
    }

    async fn replace_verifiers(
        &self,
        verifier: VerifierRecord,
        secret_hash: SecretHash,
        change: &Change,
    ) -> Result<VerifierRecord, StoreError> {
        let change = change.clone();
        let snapshot = self.usage_snapshot();
        self.write(move |tx| {
            if !agent_exists(tx, &verifier.agent_id)? {
                return Err(StoreError::NotFound);
            }
            for mut old in load_verifiers(tx, &verifier.agent_id)? {
                merge_verifier(&mut old, &snapshot);
                let event = EventRecord::extra(
                    &change,
                    EventType::VerifierRemoved,
                    Some(&verifier.agent_id),
                    &old,
                )?;
                insert_event(tx, &event)?;
            }
            tx.execute(
                "DELETE FROM verifiers WHERE agent_id = ?1",
                [&verifier.agent_id],
            )
            .map_err(backend)?;
            insert_verifier(tx, &verifier, &secret_hash)?;
            let event = EventRecord::from_change(
                &change,
                EventType::VerifierAdded,
                &verifier.agent_id,
                &verifier,
                Vec::new(),
            )?;
            insert_event(tx, &event)?;
            Ok(verifier)
        })
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

    async fn flush(&self) -> Result<(), StoreError> {
        self.flush_usage().await
    }
}
