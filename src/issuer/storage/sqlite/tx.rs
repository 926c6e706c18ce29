//! The SQL of [`Tx`] for SQLite. Records are JSON columns beside the columns that are queried
//! (ids, `external_id`, event kind) and the counters, which are added to in place.

use rusqlite::{Connection, OptionalExtension, Params, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::issuer::model::{
    ActorKind, AgentRecord, EventFilter, EventRecord, MembershipRecord, OrganizationRecord, Page,
    PageRequest, VerifierRecord, WebhookRecord,
};
use crate::issuer::storage::{
    Credential, PendingDelivery, StorageError, StoredAdminKey, StoredSigningKey, Tx, UsageDelta,
    WalletOwner, WebhookKey, decode_cursor, page_of,
};

mod jtis;
mod verifiers;
mod wallets;

/// A transaction (or a read snapshot) on one connection.
pub(super) struct SqliteTx<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteTx<'c> {
    pub(super) fn new(conn: &'c Connection) -> Self {
        Self { conn }
    }
}

fn backend(e: rusqlite::Error) -> StorageError {
    StorageError::backend(e)
}

/// A constraint violation is the caller's `Duplicate`; anything else a backend failure.
fn write_err(e: rusqlite::Error) -> StorageError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StorageError::Duplicate
        }
        e => backend(e),
    }
}

fn to_json(v: &impl Serialize) -> Result<String, StorageError> {
    serde_json::to_string(v).map_err(StorageError::backend)
}

fn from_json<T: DeserializeOwned>(s: &str) -> Result<T, StorageError> {
    serde_json::from_str(s).map_err(StorageError::backend)
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// The `seq` to page before: everything for the first page.
fn before(page: &PageRequest, tag: char) -> Result<i64, StorageError> {
    match &page.cursor {
        Some(c) => Ok(to_i64(decode_cursor(tag, c)?)),
        None => Ok(i64::MAX),
    }
}

fn probe(page: &PageRequest) -> i64 {
    to_i64(page.limit.saturating_add(1) as u64)
}

fn agent_from(record: &str, count: i64, last: Option<i64>) -> Result<AgentRecord, StorageError> {
    let mut a: AgentRecord = from_json(record)?;
    a.token_count = to_u64(count);
    a.last_activity_at = last;
    Ok(a)
}

impl SqliteTx<'_> {
    /// Rows of `(record JSON)`, decoded.
    fn records<T: DeserializeOwned>(
        &self,
        sql: &str,
        p: impl Params,
    ) -> Result<Vec<T>, StorageError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(backend)?;
        let rows = stmt
            .query_map(p, |r| r.get::<_, String>(0))
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            out.push(from_json(&row.map_err(backend)?)?);
        }
        Ok(out)
    }

    /// One `(record JSON)` row, decoded.
    fn record<T: DeserializeOwned>(
        &self,
        sql: &str,
        p: impl Params,
    ) -> Result<Option<T>, StorageError> {
        self.conn
            .prepare_cached(sql)
            .map_err(backend)?
            .query_row(p, |r| r.get::<_, String>(0))
            .optional()
            .map_err(backend)?
            .map(|s| from_json(&s))
            .transpose()
    }

    /// A newest-first page from rows of `(seq, record JSON)` asked for with `limit + 1`.
    fn page<T: DeserializeOwned>(
        &self,
        sql: &str,
        p: impl Params,
        limit: usize,
        tag: char,
    ) -> Result<Page<T>, StorageError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(backend)?;
        let rows = stmt
            .query_map(p, |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))
            .map_err(backend)?;
        let mut picked = Vec::new();
        for row in rows {
            let (seq, rec) = row.map_err(backend)?;
            picked.push((to_u64(seq), from_json(&rec)?));
        }
        Ok(page_of(picked, limit, tag))
    }

    fn execute(&self, sql: &str, p: impl Params) -> Result<usize, StorageError> {
        self.conn
            .prepare_cached(sql)
            .map_err(backend)?
            .execute(p)
            .map_err(write_err)
    }

    fn agent_where(
        &self,
        column_sql: &str,
        value: &str,
    ) -> Result<Option<AgentRecord>, StorageError> {
        self.conn
            .prepare_cached(column_sql)
            .map_err(backend)?
            .query_row([value], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                ))
            })
            .optional()
            .map_err(backend)?
            .map(|(rec, n, last)| agent_from(&rec, n, last))
            .transpose()
    }
}

impl Tx for SqliteTx<'_> {
    fn agent(&mut self, id: &str) -> Result<Option<AgentRecord>, StorageError> {
        self.agent_where(
            "SELECT record, token_count, last_activity_at FROM agents WHERE id = ?1",
            id,
        )
    }

    fn agent_by_external_id(
        &mut self,
        external_id: &str,
    ) -> Result<Option<AgentRecord>, StorageError> {
        self.agent_where(
            "SELECT record, token_count, last_activity_at FROM agents WHERE external_id = ?1",
            external_id,
        )
    }

    fn agents(&mut self, page: &PageRequest) -> Result<Page<AgentRecord>, StorageError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, record, token_count, last_activity_at FROM agents
                 WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![before(page, 'a')?, probe(page)], |r| {
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
        Ok(page_of(picked, page.limit, 'a'))
    }

    fn insert_agent(&mut self, agent: &AgentRecord) -> Result<(), StorageError> {
        self.execute(
            "INSERT INTO agents (id, external_id, record) VALUES (?1, ?2, ?3)",
            params![agent.id, agent.external_id, to_json(agent)?],
        )
        .map(drop)
    }

    fn update_agent(&mut self, agent: &AgentRecord) -> Result<(), StorageError> {
        self.execute(
            "UPDATE agents SET record = ?1, external_id = ?2 WHERE id = ?3",
            params![to_json(agent)?, agent.external_id, agent.id],
        )
        .map(drop)
    }

    fn delete_agent(&mut self, id: &str) -> Result<bool, StorageError> {
        Ok(self.execute("DELETE FROM agents WHERE id = ?1", [id])? > 0)
    }

    fn verifiers(&mut self, agent_id: &str) -> Result<Vec<VerifierRecord>, StorageError> {
        verifiers::list(self, agent_id)
    }

    fn credentials(&mut self, agent_id: &str) -> Result<Vec<(String, Credential)>, StorageError> {
        verifiers::credentials(self, agent_id)
    }

    fn insert_verifier(
        &mut self,
        verifier: &VerifierRecord,
        credential: &Credential,
    ) -> Result<(), StorageError> {
        verifiers::insert(self, verifier, credential)
    }

    fn purge_assertion_jtis(
        &mut self,
        agent_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        jtis::purge(self, agent_id, now_ms)
    }

    fn assertion_jti_count(&mut self, agent_id: &str) -> Result<u64, StorageError> {
        jtis::count(self, agent_id)
    }

    fn insert_assertion_jti(
        &mut self,
        agent_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<(), StorageError> {
        jtis::insert(self, agent_id, jti, expires_at)
    }

    fn delete_verifier(&mut self, id: &str) -> Result<bool, StorageError> {
        // `wallet_accounts` follows by its foreign key's cascade.
        Ok(self.execute("DELETE FROM verifiers WHERE id = ?1", [id])? > 0)
    }

    fn wallet_owner(&mut self, account: &str) -> Result<Option<WalletOwner>, StorageError> {
        wallets::owner(self, account)
    }

    fn wallet_nonce_count(&mut self) -> Result<u64, StorageError> {
        wallets::nonce_count(self)
    }

    fn insert_wallet_nonce(&mut self, nonce: &str, expires_at: i64) -> Result<(), StorageError> {
        wallets::insert_nonce(self, nonce, expires_at)
    }

    fn take_wallet_nonce(&mut self, nonce: &str, now_ms: i64) -> Result<bool, StorageError> {
        wallets::take_nonce(self, nonce, now_ms)
    }

    fn purge_wallet_nonces(&mut self, now_ms: i64) -> Result<(), StorageError> {
        wallets::purge_nonces(self, now_ms)
    }

    fn organization(&mut self, id: &str) -> Result<Option<OrganizationRecord>, StorageError> {
        self.record("SELECT record FROM organizations WHERE id = ?1", [id])
    }

    fn insert_organization(&mut self, org: &OrganizationRecord) -> Result<(), StorageError> {
        self.execute(
            "INSERT INTO organizations (id, record) VALUES (?1, ?2)",
            params![org.id, to_json(org)?],
        )
        .map(drop)
    }

    fn membership(
        &mut self,
        org_id: &str,
        member_id: &str,
    ) -> Result<Option<MembershipRecord>, StorageError> {
        self.record(
            "SELECT record FROM memberships WHERE organization_id = ?1 AND member_id = ?2",
            [org_id, member_id],
        )
    }

    fn memberships_of(&mut self, member_id: &str) -> Result<Vec<MembershipRecord>, StorageError> {
        self.records(
            "SELECT record FROM memberships WHERE member_id = ?1 ORDER BY seq",
            [member_id],
        )
    }

    fn memberships(
        &mut self,
        org_id: &str,
        page: &PageRequest,
    ) -> Result<Page<MembershipRecord>, StorageError> {
        self.page(
            "SELECT seq, record FROM memberships WHERE organization_id = ?1 AND seq < ?2
             ORDER BY seq DESC LIMIT ?3",
            params![org_id, before(page, 'm')?, probe(page)],
            page.limit,
            'm',
        )
    }

    fn insert_membership(&mut self, m: &MembershipRecord) -> Result<(), StorageError> {
        self.execute(
            "INSERT INTO memberships (organization_id, member_id, record) VALUES (?1, ?2, ?3)",
            params![m.organization_id, m.member_id, to_json(m)?],
        )
        .map(drop)
    }

    fn delete_membership(&mut self, org_id: &str, member_id: &str) -> Result<bool, StorageError> {
        Ok(self.execute(
            "DELETE FROM memberships WHERE organization_id = ?1 AND member_id = ?2",
            [org_id, member_id],
        )? > 0)
    }

    fn insert_event(&mut self, event: &EventRecord) -> Result<(), StorageError> {
        self.execute(
            "INSERT INTO events (id, kind, agent_id, record, by_agent)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                event.id,
                event.kind.as_str(),
                event.agent_id,
                to_json(event)?,
                event.actor.kind == ActorKind::Agent,
            ],
        )
        .map(drop)
    }

    fn trim_agent_events(&mut self, keep: u64) -> Result<(), StorageError> {
        self.execute(
            "DELETE FROM events WHERE by_agent = 1 AND seq <= (
                 SELECT seq FROM events WHERE by_agent = 1 ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
            [to_i64(keep)],
        )
        .map(drop)
    }

    fn events(
        &mut self,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<Page<EventRecord>, StorageError> {
        self.page(
            "SELECT seq, record FROM events WHERE seq < ?1
             AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR agent_id = ?3)
             ORDER BY seq DESC LIMIT ?4",
            params![
                before(page, 'e')?,
                filter.kind.map(|k| k.as_str()),
                filter.agent_id,
                probe(page)
            ],
            page.limit,
            'e',
        )
    }

    fn webhooks(&mut self) -> Result<Vec<WebhookRecord>, StorageError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT record, dropped FROM webhooks ORDER BY seq")
            .map_err(backend)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (record, dropped) = row.map_err(backend)?;
            let mut hook: WebhookRecord = from_json(&record)?;
            hook.dropped_deliveries = u64::try_from(dropped).unwrap_or(0);
            out.push(hook);
        }
        Ok(out)
    }

    fn pending_deliveries(&mut self, webhook_id: &str) -> Result<u64, StorageError> {
        self.conn
            .prepare_cached("SELECT count(*) FROM deliveries WHERE webhook_id = ?1")
            .map_err(backend)?
            .query_row([webhook_id], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(backend)
    }

    fn dead_letter(
        &mut self,
        delivery_id: Option<i64>,
        webhook_id: &str,
        at: i64,
        keep: u64,
    ) -> Result<(), StorageError> {
        let target = "coalesce(?1, (SELECT min(id) FROM deliveries WHERE webhook_id = ?2))";
        let moved = self.execute(
            &format!(
                "INSERT INTO dead_letters (webhook_id, message_id, attempts, dropped_at)
                 SELECT webhook_id, message_id, attempts, ?3 FROM deliveries
                 WHERE webhook_id = ?2 AND id = {target}"
            ),
            params![delivery_id, webhook_id, at],
        )?;
        self.execute(
            &format!("DELETE FROM deliveries WHERE webhook_id = ?2 AND id = {target}"),
            params![delivery_id, webhook_id],
        )?;
        if moved > 0 {
            self.execute(
                "UPDATE webhooks SET dropped = dropped + 1 WHERE id = ?1",
                [webhook_id],
            )?;
            self.execute(
                "DELETE FROM dead_letters WHERE webhook_id = ?1 AND id <= (
                     SELECT id FROM dead_letters WHERE webhook_id = ?1
                     ORDER BY id DESC LIMIT 1 OFFSET ?2)",
                params![webhook_id, to_i64(keep)],
            )?;
        }
        Ok(())
    }

    fn insert_webhook(
        &mut self,
        hook: &WebhookRecord,
        key: &WebhookKey,
    ) -> Result<(), StorageError> {
        self.execute(
            "INSERT INTO webhooks (id, key, record) VALUES (?1, ?2, ?3)",
            params![hook.id, key.0, to_json(hook)?],
        )
        .map(drop)
    }

    fn delete_webhook(&mut self, id: &str) -> Result<bool, StorageError> {
        self.execute("DELETE FROM deliveries WHERE webhook_id = ?1", [id])?;
        Ok(self.execute("DELETE FROM webhooks WHERE id = ?1", [id])? > 0)
    }

    fn enqueue_delivery(
        &mut self,
        webhook_id: &str,
        message_id: &str,
        payload: &str,
        due_at: i64,
    ) -> Result<(), StorageError> {
        self.execute(
            "INSERT INTO deliveries (webhook_id, message_id, payload, next_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![webhook_id, message_id, payload, due_at],
        )
        .map(drop)
    }

    fn due_deliveries(
        &mut self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StorageError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT d.id, w.record, w.key, d.message_id, d.payload, d.attempts, d.webhook_id
                 FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
                 WHERE d.next_at <= ?1 ORDER BY d.next_at, d.id LIMIT ?2",
            )
            .map_err(backend)?;
        let rows = stmt
            .query_map(params![now_ms, to_i64(limit as u64)], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })
            .map_err(backend)?;
        let mut out = Vec::new();
        for row in rows {
            let (id, hook, key, message_id, payload, attempts, webhook_id) =
                row.map_err(backend)?;
            let hook: WebhookRecord = from_json(&hook)?;
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
    }

    fn lease_deliveries(
        &mut self,
        now_ms: i64,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<PendingDelivery>, StorageError> {
        // Inside the one writer's transaction: no other transaction can pick the same rows.
        let due = self.due_deliveries(now_ms, limit)?;
        for d in &due {
            self.execute(
                "UPDATE deliveries SET next_at = ?1 WHERE id = ?2",
                [lease_until, d.id],
            )?;
        }
        Ok(due)
    }

    fn next_delivery_at(&mut self) -> Result<Option<i64>, StorageError> {
        self.conn
            .query_row("SELECT min(next_at) FROM deliveries", [], |r| r.get(0))
            .map_err(backend)
    }

    fn reschedule_delivery(&mut self, id: i64, at: i64) -> Result<(), StorageError> {
        self.execute(
            "UPDATE deliveries SET attempts = attempts + 1, next_at = ?1 WHERE id = ?2",
            [at, id],
        )
        .map(drop)
    }

    fn delete_delivery(&mut self, id: i64) -> Result<(), StorageError> {
        self.execute("DELETE FROM deliveries WHERE id = ?1", [id])
            .map(drop)
    }

    fn signing_keys(&mut self) -> Result<Vec<StoredSigningKey>, StorageError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT kid, pkcs8, created_at, signs_from FROM signing_keys ORDER BY created_at",
            )
            .map_err(backend)?;
        stmt.query_map([], |r| {
            Ok(StoredSigningKey {
                kid: r.get(0)?,
                pkcs8_der: r.get(1)?,
                created_at: r.get(2)?,
                signs_from: r.get(3)?,
            })
        })
        .map_err(backend)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(backend)
    }

    fn insert_signing_key(&mut self, key: &StoredSigningKey) -> Result<(), StorageError> {
        self.execute(
            "INSERT INTO signing_keys (kid, pkcs8, created_at, signs_from) VALUES (?1, ?2, ?3, ?4)",
            params![key.kid, key.pkcs8_der, key.created_at, key.signs_from],
        )
        .map(drop)
    }

    fn delete_signing_key(&mut self, kid: &str) -> Result<(), StorageError> {
        self.execute("DELETE FROM signing_keys WHERE kid = ?1", [kid])
            .map(drop)
    }

    fn admin_key(&mut self) -> Result<Option<StoredAdminKey>, StorageError> {
        super::admin_key::load(self.conn)
    }

    fn put_admin_key(&mut self, key: &StoredAdminKey) -> Result<(), StorageError> {
        super::admin_key::store(self.conn, key)
    }

    fn add_agent_usage(&mut self, agent_id: &str, delta: UsageDelta) -> Result<(), StorageError> {
        self.execute(
            "UPDATE agents SET token_count = token_count + ?1,
             last_activity_at = max(coalesce(last_activity_at, ?2), ?2) WHERE id = ?3",
            params![to_i64(delta.count), delta.last_at, agent_id],
        )
        .map(drop)
    }

    fn add_verifier_usage(
        &mut self,
        verifier_id: &str,
        delta: UsageDelta,
    ) -> Result<(), StorageError> {
        self.execute(
            "UPDATE verifiers SET usage_count = usage_count + ?1,
             last_used_at = max(coalesce(last_used_at, ?2), ?2) WHERE id = ?3",
            params![to_i64(delta.count), delta.last_at, verifier_id],
        )
        .map(drop)
    }
}
