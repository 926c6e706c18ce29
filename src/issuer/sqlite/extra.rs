//! Organizations, memberships, webhook endpoints and the outbox of [`SqliteStore`] (the
//! [`Store`](crate::issuer::Store) methods delegate here).

use super::rows::*;

impl SqliteStore {
    pub(super) async fn x_create_organization(
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

    pub(super) async fn x_get_organization(
        &self,
        id: &str,
    ) -> Result<Option<OrganizationRecord>, StoreError> {
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

    pub(super) async fn x_add_membership(
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

    pub(super) async fn x_list_memberships(
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

    pub(super) async fn x_delete_membership(
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

    pub(super) async fn x_create_webhook(
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

    pub(super) async fn x_list_webhooks(&self) -> Result<Vec<WebhookRecord>, StoreError> {
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

    pub(super) async fn x_delete_webhook(&self, id: &str) -> Result<(), StoreError> {
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

    pub(super) async fn x_due_deliveries(
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

    pub(super) async fn x_next_delivery_at(&self) -> Result<Option<i64>, StoreError> {
        self.read(|c| {
            c.query_row("SELECT min(next_at) FROM deliveries", [], |r| r.get(0))
                .map_err(backend)
        })
        .await
    }

    pub(super) async fn x_finish_delivery(
        &self,
        id: i64,
        outcome: DeliveryOutcome,
    ) -> Result<(), StoreError> {
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
}
