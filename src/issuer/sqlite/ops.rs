//! The [`Store`] implementation of [`SqliteStore`]: one transaction per mutation, with its
//! audit events and their webhook deliveries.

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{SqliteStore, UsageBuffer, backend};
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

fn to_json(v: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(backend)
}

fn from_json<T: DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(backend)
}

fn sql(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict("conflicts with a stored object".into())
        }
        e => backend(e),
    }
}

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn before(cursor: Option<&str>, tag: char) -> Result<i64, StoreError> {
    match cursor {
        Some(c) => Ok(i64::try_from(decode_cursor(tag, c)?).unwrap_or(i64::MAX)),
        None => Ok(i64::MAX),
    }
}

/// A newest-first page from a query whose rows are `(seq, record JSON)` and which asks for
/// `limit + 1` rows.
fn page_rows<T: DeserializeOwned>(
    stmt: &mut rusqlite::CachedStatement<'_>,
    params: impl rusqlite::Params,
    limit: usize,
    tag: char,
) -> Result<Page<T>, StoreError> {
    let rows = stmt
        .query_map(params, |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(backend)?;
    let mut picked = Vec::new();
    for row in rows {
        let (seq, rec) = row.map_err(backend)?;
        picked.push((to_u64(seq), from_json(&rec)?));
    }
    Ok(page_of(picked, limit, tag))
}

/// Writes `event` and queues it for every webhook subscribed to its type.
fn insert_event(tx: &Transaction<'_>, event: &EventRecord) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO events (id, kind, agent_id, record) VALUES (?1, ?2, ?3, ?4)",
        params![
            event.id,
            event.kind.as_str(),
            event.agent_id,
            to_json(event)?
        ],
    )
    .map_err(sql)?;
    let mut stmt = tx
        .prepare_cached("SELECT id, record FROM webhooks ORDER BY seq")
        .map_err(backend)?;
    let hooks = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)?;
    let mut payload = None;
    for (id, record) in hooks {
        let hook: WebhookRecord = from_json(&record)?;
        if !hook.events.contains(&event.kind) {
            continue;
        }
        let body = match &payload {
            Some(p) => p,
            None => payload.insert(webhook_payload(event)?),
        };
        tx.execute(
            "INSERT INTO deliveries (webhook_id, message_id, payload, next_at) VALUES (?1, ?2, ?3, ?4)",
            params![id, event.id, body, event.created_at],
        )
        .map_err(backend)?;
    }
    Ok(())
}

fn agent_from(record: &str, count: i64, last: Option<i64>) -> Result<AgentRecord, StoreError> {
    let mut a: AgentRecord = from_json(record)?;
    a.token_count = to_u64(count);
    a.last_activity_at = last;
    Ok(a)
}

fn load_agent(c: &Connection, id: &str) -> Result<Option<AgentRecord>, StoreError> {
    c.query_row(
        "SELECT record, token_count, last_activity_at FROM agents WHERE id = ?1",
        [id],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        },
    )
    .optional()
    .map_err(backend)?
    .map(|(rec, n, last)| agent_from(&rec, n, last))
    .transpose()
}

fn load_verifiers(c: &Connection, agent_id: &str) -> Result<Vec<VerifierRecord>, StoreError> {
    let mut stmt = c
        .prepare_cached(
            "SELECT record, usage_count, last_used_at FROM verifiers WHERE agent_id = ?1 ORDER BY seq",
        )
        .map_err(backend)?;
    let rows = stmt
        .query_map([agent_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })
        .map_err(backend)?;
    let mut out = Vec::new();
    for row in rows {
        let (rec, n, last) = row.map_err(backend)?;
        let mut v: VerifierRecord = from_json(&rec)?;
        v.usage_count = to_u64(n);
        v.last_used_at = last;
        out.push(v);
    }
    Ok(out)
}

fn merge_agent(a: &mut AgentRecord, buf: &UsageBuffer) {
    if let Some((n, last)) = buf.agents.get(&a.id) {
        a.token_count = a.token_count.saturating_add(*n);
        a.last_activity_at = Some(a.last_activity_at.map_or(*last, |l| l.max(*last)));
    }
}

fn merge_verifier(v: &mut VerifierRecord, buf: &UsageBuffer) {
    if let Some((n, last)) = buf.verifiers.get(&v.id) {
        v.usage_count = v.usage_count.saturating_add(*n);
        v.last_used_at = Some(v.last_used_at.map_or(*last, |l| l.max(*last)));
    }
}

fn insert_verifier(
    tx: &Transaction<'_>,
    v: &VerifierRecord,
    hash: &SecretHash,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO verifiers (id, agent_id, hash, record) VALUES (?1, ?2, ?3, ?4)",
        params![v.id, v.agent_id, hash.as_bytes().as_slice(), to_json(v)?],
    )
    .map_err(sql)?;
    Ok(())
}

fn agent_exists(tx: &Connection, id: &str) -> Result<bool, StoreError> {
    tx.query_row("SELECT 1 FROM agents WHERE id = ?1", [id], |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
        .map_err(backend)
}

fn all_keys(c: &Connection) -> Result<Vec<StoredSigningKey>, StoreError> {
    let mut stmt = c
        .prepare("SELECT kid, pkcs8, created_at FROM signing_keys ORDER BY created_at")
        .map_err(backend)?;
    stmt.query_map([], |r| {
        Ok(StoredSigningKey {
            kid: r.get(0)?,
            pkcs8_der: r.get(1)?,
            created_at: r.get(2)?,
        })
    })
    .map_err(backend)?
    .collect::<Result<Vec<_>, _>>()
    .map_err(backend)
}

fn insert_key(tx: &Transaction<'_>, k: &StoredSigningKey) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO signing_keys (kid, pkcs8, created_at) VALUES (?1, ?2, ?3)",
        params![k.kid, k.pkcs8_der, k.created_at],
    )
    .map_err(sql)?;
    Ok(())
}

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
        let change = change.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO organizations (id, record) VALUES (?1, ?2)",
                params![org.id, to_json(&org)?],
            )
            .map_err(sql)?;
            let event = EventRecord::with_id(
                change.event_id.clone(),
                &change,
                EventType::OrganizationCreated,
                None,
                &org,
                Vec::new(),
            )?;
            insert_event(tx, &event)?;
            Ok(org)
        })
        .await
    }

    async fn get_organization(&self, id: &str) -> Result<Option<OrganizationRecord>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            c.query_row(
                "SELECT record FROM organizations WHERE id = ?1",
                [&id],
                |r| r.get::<_, String>(0),
            )
            .optional()
            .map_err(backend)?
            .map(|s| from_json(&s))
            .transpose()
        })
        .await
    }

    async fn add_membership(
        &self,
        membership: MembershipRecord,
        change: &Change,
    ) -> Result<MembershipRecord, StoreError> {
        let change = change.clone();
        self.write(move |tx| {
            let org = tx
                .query_row(
                    "SELECT 1 FROM organizations WHERE id = ?1",
                    [&membership.organization_id],
                    |_| Ok(()),
                )
                .optional()
                .map_err(backend)?;
            if org.is_none() || !agent_exists(tx, &membership.member_id)? {
                return Err(StoreError::NotFound);
            }
            tx.execute(
                "INSERT INTO memberships (organization_id, member_id, record) VALUES (?1, ?2, ?3)",
                params![
                    membership.organization_id,
                    membership.member_id,
                    to_json(&membership)?
                ],
            )
            .map_err(|e| match sql(e) {
                StoreError::Conflict(_) => StoreError::Conflict(
                    "the agent is already a member of this organization".into(),
                ),
                e => e,
            })?;
            let event = EventRecord::from_change(
                &change,
                EventType::MembershipCreated,
                &membership.member_id,
                &membership,
                Vec::new(),
            )?;
            insert_event(tx, &event)?;
            Ok(membership)
        })
        .await
    }

    async fn list_memberships(
        &self,
        org_id: &str,
        page: PageRequest,
    ) -> Result<Page<MembershipRecord>, StoreError> {
        let before = before(page.cursor.as_deref(), 'm')?;
        let (org_id, limit) = (org_id.to_owned(), page.limit);
        self.read(move |c| {
            let exists = c
                .query_row(
                    "SELECT 1 FROM organizations WHERE id = ?1",
                    [&org_id],
                    |_| Ok(()),
                )
                .optional()
                .map_err(backend)?;
            if exists.is_none() {
                return Err(StoreError::NotFound);
            }
            let mut stmt = c
                .prepare_cached(
                    "SELECT seq, record FROM memberships WHERE organization_id = ?1 AND seq < ?2
                     ORDER BY seq DESC LIMIT ?3",
                )
                .map_err(backend)?;
            let probe = to_i64(limit.saturating_add(1));
            page_rows(&mut stmt, params![org_id, before, probe], limit, 'm')
        })
        .await
    }

    async fn delete_membership(
        &self,
        org_id: &str,
        member_id: &str,
        change: &Change,
    ) -> Result<(), StoreError> {
        let (org_id, member_id, change) = (org_id.to_owned(), member_id.to_owned(), change.clone());
        self.write(move |tx| {
            let rec: String = tx
                .query_row(
                    "SELECT record FROM memberships WHERE organization_id = ?1 AND member_id = ?2",
                    [&org_id, &member_id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(backend)?
                .ok_or(StoreError::NotFound)?;
            let m: MembershipRecord = from_json(&rec)?;
            tx.execute(
                "DELETE FROM memberships WHERE organization_id = ?1 AND member_id = ?2",
                [&org_id, &member_id],
            )
            .map_err(backend)?;
            let event = EventRecord::from_change(
                &change,
                EventType::MembershipDeleted,
                &member_id,
                &m,
                Vec::new(),
            )?;
            insert_event(tx, &event)
        })
        .await
    }

    async fn create_webhook(
        &self,
        webhook: WebhookRecord,
        key: WebhookKey,
    ) -> Result<WebhookRecord, StoreError> {
        self.write(move |tx| {
            let n: i64 = tx
                .query_row("SELECT count(*) FROM webhooks", [], |r| r.get(0))
                .map_err(backend)?;
            if to_u64(n) >= MAX_WEBHOOKS as u64 {
                return Err(StoreError::LimitExceeded(format!(
                    "at most {MAX_WEBHOOKS} webhooks"
                )));
            }
            tx.execute(
                "INSERT INTO webhooks (id, key, record) VALUES (?1, ?2, ?3)",
                params![webhook.id, key.0, to_json(&webhook)?],
            )
            .map_err(sql)?;
            Ok(webhook)
        })
        .await
    }

    async fn list_webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError> {
        self.read(|c| {
            let mut stmt = c
                .prepare_cached("SELECT record FROM webhooks ORDER BY seq")
                .map_err(backend)?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(from_json(&row.map_err(backend)?)?);
            }
            Ok(out)
        })
        .await
    }

    async fn delete_webhook(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_owned();
        self.write(move |tx| {
            // Its queued messages go with it (ON DELETE CASCADE).
            match tx
                .execute("DELETE FROM webhooks WHERE id = ?1", [&id])
                .map_err(backend)?
            {
                0 => Err(StoreError::NotFound),
                _ => Ok(()),
            }
        })
        .await
    }

    async fn due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StoreError> {
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT d.id, d.webhook_id, w.record, w.key, d.message_id, d.payload, d.attempts
                     FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                     WHERE d.next_at <= ?1 ORDER BY d.next_at, d.id LIMIT ?2",
                )
                .map_err(backend)?;
            let rows = stmt
                .query_map(params![now_ms, to_i64(limit)], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                    ))
                })
                .map_err(backend)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, webhook_id, rec, key, message_id, payload, attempts) =
                    row.map_err(backend)?;
                let hook: WebhookRecord = from_json(&rec)?;
                out.push(PendingDelivery {
                    id,
                    webhook_id,
                    url: hook.url,
                    key: WebhookKey(key),
                    message_id,
                    payload,
                    attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn next_delivery_at(&self) -> Result<Option<i64>, StoreError> {
        self.read(|c| {
            c.query_row("SELECT min(next_at) FROM deliveries", [], |r| r.get(0))
                .map_err(backend)
        })
        .await
    }

    async fn finish_delivery(&self, id: i64, outcome: DeliveryOutcome) -> Result<(), StoreError> {
        self.write(move |tx| {
            match outcome {
                DeliveryOutcome::Delivered | DeliveryOutcome::GiveUp => {
                    tx.execute("DELETE FROM deliveries WHERE id = ?1", [id])
                }
                DeliveryOutcome::RetryAt(at) => tx.execute(
                    "UPDATE deliveries SET attempts = attempts + 1, next_at = ?1 WHERE id = ?2",
                    [at, id],
                ),
            }
            .map_err(backend)?;
            Ok(())
        })
        .await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.flush_usage().await
    }
}
