//! The SQL of [`Tx`] for PostgreSQL: the same tables and JSON record columns as SQLite's, with
//! `$n` parameters. Each statement is prepared once per pooled connection.

mod outbox;
mod records;
mod wallets;

use deadpool_postgres::Client;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::runtime::Handle;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::issuer::model::{
    AgentRecord, EventFilter, EventRecord, MembershipRecord, OrganizationRecord, Page, PageRequest,
    VerifierRecord, WebhookRecord,
};
use crate::issuer::storage::{
    Credential, PendingDelivery, StorageError, StoredAdminKey, StoredSigningKey, Tx, UsageDelta,
    WalletOwner, WebhookKey, decode_cursor,
};

/// Query parameters.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// What a transaction met so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TxState {
    /// Every statement succeeded (or failed under a savepoint that undid it).
    Clean,
    /// A serialization failure or deadlock: the transaction must run again.
    Conflicted,
    /// A statement failed: PostgreSQL aborted the transaction.
    Failed,
}

/// A transaction on one pooled connection, driven on the issuer's runtime.
pub(super) struct PgTx<'c> {
    client: &'c Client,
    runtime: &'c Handle,
    state: TxState,
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

fn get<'r, T: tokio_postgres::types::FromSql<'r>>(
    row: &'r Row,
    i: usize,
) -> Result<T, StorageError> {
    row.try_get(i).map_err(StorageError::backend)
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

impl<'c> PgTx<'c> {
    pub(super) fn new(client: &'c Client, runtime: &'c Handle) -> Self {
        Self {
            client,
            runtime,
            state: TxState::Clean,
        }
    }

    pub(super) fn state(&self) -> TxState {
        self.state
    }

    /// Runs a statement without parameters (`BEGIN`, `COMMIT`, savepoints).
    pub(super) fn simple(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.runtime.block_on(self.client.batch_execute(sql))
    }

    /// Notes what a failed statement means for the transaction; maps it for the rules.
    fn failed(&mut self, e: tokio_postgres::Error, guarded: bool) -> StorageError {
        if super::is_conflict(&e) {
            self.state = TxState::Conflicted;
        } else if !guarded && self.state == TxState::Clean {
            self.state = TxState::Failed;
        }
        // Class 23: integrity constraint violations (unique, foreign key), as SQLite's
        // constraint violations.
        match e.code() {
            Some(c) if c.code().starts_with("23") => StorageError::Duplicate,
            _ => StorageError::backend(e),
        }
    }

    fn raw_query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, tokio_postgres::Error> {
        self.runtime.block_on(async {
            let stmt = self.client.prepare_cached(sql).await?;
            self.client.query(&stmt, params).await
        })
    }

    fn raw_execute(&self, sql: &str, params: Params<'_>) -> Result<u64, tokio_postgres::Error> {
        self.runtime.block_on(async {
            let stmt = self.client.prepare_cached(sql).await?;
            self.client.execute(&stmt, params).await
        })
    }

    pub(super) fn query(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<Row>, StorageError> {
        self.raw_query(sql, params)
            .map_err(|e| self.failed(e, false))
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<Row>, StorageError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    pub(super) fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64, StorageError> {
        self.raw_execute(sql, params)
            .map_err(|e| self.failed(e, false))
    }

    /// A write that may meet a constraint: under a savepoint, so that `Duplicate` leaves the
    /// transaction usable (as on SQLite).
    pub(super) fn guarded(&mut self, sql: &str, params: Params<'_>) -> Result<u64, StorageError> {
        self.simple("SAVEPOINT guarded")
            .map_err(|e| self.failed(e, false))?;
        match self.raw_execute(sql, params) {
            Ok(n) => {
                self.simple("RELEASE SAVEPOINT guarded")
                    .map_err(|e| self.failed(e, false))?;
                Ok(n)
            }
            Err(e) => {
                let mapped = self.failed(e, true);
                self.simple("ROLLBACK TO SAVEPOINT guarded")
                    .map_err(|e| self.failed(e, false))?;
                Err(mapped)
            }
        }
    }

    /// Rows of `(record JSON)`, decoded.
    pub(super) fn records<T: DeserializeOwned>(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Vec<T>, StorageError> {
        self.query(sql, params)?
            .iter()
            .map(|r| from_json(&get::<String>(r, 0)?))
            .collect()
    }

    /// One `(record JSON)` row, decoded.
    pub(super) fn record<T: DeserializeOwned>(
        &mut self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<Option<T>, StorageError> {
        self.query_opt(sql, params)?
            .map(|r| from_json(&get::<String>(&r, 0)?))
            .transpose()
    }

    /// A newest-first page from rows of `(seq, record JSON)` asked for with `limit + 1`.
    pub(super) fn page<T: DeserializeOwned>(
        &mut self,
        sql: &str,
        params: Params<'_>,
        limit: usize,
        tag: char,
    ) -> Result<Page<T>, StorageError> {
        let mut picked = Vec::new();
        for r in self.query(sql, params)? {
            picked.push((to_u64(get(&r, 0)?), from_json(&get::<String>(&r, 1)?)?));
        }
        Ok(crate::issuer::storage::page_of(picked, limit, tag))
    }
}

impl Tx for PgTx<'_> {
    fn agent(&mut self, id: &str) -> Result<Option<AgentRecord>, StorageError> {
        records::agent_where(self, "id", id)
    }

    fn agent_by_external_id(
        &mut self,
        external_id: &str,
    ) -> Result<Option<AgentRecord>, StorageError> {
        records::agent_where(self, "external_id", external_id)
    }

    fn agents(&mut self, page: &PageRequest) -> Result<Page<AgentRecord>, StorageError> {
        records::agents(self, page)
    }

    fn insert_agent(&mut self, agent: &AgentRecord) -> Result<(), StorageError> {
        self.guarded(
            "INSERT INTO agents (id, external_id, record) VALUES ($1, $2, $3)",
            &[&agent.id, &agent.external_id, &to_json(agent)?],
        )
        .map(drop)
    }

    fn update_agent(&mut self, agent: &AgentRecord) -> Result<(), StorageError> {
        self.guarded(
            "UPDATE agents SET record = $1, external_id = $2 WHERE id = $3",
            &[&to_json(agent)?, &agent.external_id, &agent.id],
        )
        .map(drop)
    }

    fn delete_agent(&mut self, id: &str) -> Result<bool, StorageError> {
        Ok(self.execute("DELETE FROM agents WHERE id = $1", &[&id])? > 0)
    }

    fn verifiers(&mut self, agent_id: &str) -> Result<Vec<VerifierRecord>, StorageError> {
        records::verifiers(self, agent_id)
    }

    fn credentials(&mut self, agent_id: &str) -> Result<Vec<(String, Credential)>, StorageError> {
        records::credentials(self, agent_id)
    }

    fn insert_verifier(
        &mut self,
        verifier: &VerifierRecord,
        credential: &Credential,
    ) -> Result<(), StorageError> {
        // A wallet has no hash: all zeros, whose preimage nobody knows (and `credentials`
        // reads the row as a wallet, never as a secret), as on SQLite.
        const NO_HASH: [u8; 32] = [0; 32];
        let (hash, jwk) = match credential {
            Credential::Secret(hash) => (hash.as_bytes(), None),
            Credential::Jwk { thumbprint, jwk } => (thumbprint, Some(jwk)),
            Credential::Wallet { .. } => (&NO_HASH, None),
        };
        self.guarded(
            "INSERT INTO verifiers (id, agent_id, hash, jwk, record) VALUES ($1, $2, $3, $4, $5)",
            &[
                &verifier.id,
                &verifier.agent_id,
                &hash.as_slice(),
                &jwk,
                &to_json(verifier)?,
            ],
        )?;
        if let Credential::Wallet { account } = credential {
            wallets::map(self, account, &verifier.id, &verifier.agent_id)?;
        }
        Ok(())
    }

    fn delete_verifier(&mut self, id: &str) -> Result<bool, StorageError> {
        // `wallet_accounts` follows by its foreign key's cascade.
        Ok(self.execute("DELETE FROM verifiers WHERE id = $1", &[&id])? > 0)
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

    fn purge_assertion_jtis(
        &mut self,
        agent_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        match agent_id {
            Some(id) => self.execute(
                "DELETE FROM assertion_jtis WHERE agent_id = $1 AND expires_at <= $2",
                &[&id, &now_ms],
            )?,
            None => self.execute(
                "DELETE FROM assertion_jtis WHERE expires_at <= $1",
                &[&now_ms],
            )?,
        };
        Ok(())
    }

    fn assertion_jti_count(&mut self, agent_id: &str) -> Result<u64, StorageError> {
        let rows = self.query(
            "SELECT count(*) FROM assertion_jtis WHERE agent_id = $1",
            &[&agent_id],
        )?;
        rows.first().map_or(Ok(0), |r| get::<i64>(r, 0).map(to_u64))
    }

    fn insert_assertion_jti(
        &mut self,
        agent_id: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<(), StorageError> {
        self.guarded(
            "INSERT INTO assertion_jtis (agent_id, jti, expires_at) VALUES ($1, $2, $3)",
            &[&agent_id, &jti, &expires_at],
        )
        .map(drop)
    }

    fn organization(&mut self, id: &str) -> Result<Option<OrganizationRecord>, StorageError> {
        self.record("SELECT record FROM organizations WHERE id = $1", &[&id])
    }

    fn insert_organization(&mut self, org: &OrganizationRecord) -> Result<(), StorageError> {
        self.guarded(
            "INSERT INTO organizations (id, record) VALUES ($1, $2)",
            &[&org.id, &to_json(org)?],
        )
        .map(drop)
    }

    fn membership(
        &mut self,
        org_id: &str,
        member_id: &str,
    ) -> Result<Option<MembershipRecord>, StorageError> {
        self.record(
            "SELECT record FROM memberships WHERE organization_id = $1 AND member_id = $2",
            &[&org_id, &member_id],
        )
    }

    fn memberships_of(&mut self, member_id: &str) -> Result<Vec<MembershipRecord>, StorageError> {
        self.records(
            "SELECT record FROM memberships WHERE member_id = $1 ORDER BY seq",
            &[&member_id],
        )
    }

    fn memberships(
        &mut self,
        org_id: &str,
        page: &PageRequest,
    ) -> Result<Page<MembershipRecord>, StorageError> {
        self.page(
            "SELECT seq, record FROM memberships WHERE organization_id = $1 AND seq < $2
             ORDER BY seq DESC LIMIT $3",
            &[&org_id, &before(page, 'm')?, &probe(page)],
            page.limit,
            'm',
        )
    }

    fn insert_membership(&mut self, m: &MembershipRecord) -> Result<(), StorageError> {
        self.guarded(
            "INSERT INTO memberships (organization_id, member_id, record) VALUES ($1, $2, $3)",
            &[&m.organization_id, &m.member_id, &to_json(m)?],
        )
        .map(drop)
    }

    fn delete_membership(&mut self, org_id: &str, member_id: &str) -> Result<bool, StorageError> {
        Ok(self.execute(
            "DELETE FROM memberships WHERE organization_id = $1 AND member_id = $2",
            &[&org_id, &member_id],
        )? > 0)
    }

    fn trim_agent_events(&mut self, keep: u64) -> Result<(), StorageError> {
        records::trim_agent_events(self, keep)
    }

    fn insert_event(&mut self, event: &EventRecord) -> Result<(), StorageError> {
        records::insert_event(self, event)
    }

    fn events(
        &mut self,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<Page<EventRecord>, StorageError> {
        records::events(self, filter, page)
    }

    fn pending_deliveries(&mut self, webhook_id: &str) -> Result<u64, StorageError> {
        outbox::pending(self, webhook_id)
    }

    fn dead_letter(
        &mut self,
        delivery_id: Option<i64>,
        webhook_id: &str,
        at: i64,
        keep: u64,
    ) -> Result<(), StorageError> {
        outbox::dead_letter(self, delivery_id, webhook_id, at, keep)
    }

    fn webhooks(&mut self) -> Result<Vec<WebhookRecord>, StorageError> {
        outbox::webhooks(self)
    }

    fn insert_webhook(
        &mut self,
        hook: &WebhookRecord,
        key: &WebhookKey,
    ) -> Result<(), StorageError> {
        self.guarded(
            "INSERT INTO webhooks (id, key, record) VALUES ($1, $2, $3)",
            &[&hook.id, &key.0, &to_json(hook)?],
        )
        .map(drop)
    }

    fn delete_webhook(&mut self, id: &str) -> Result<bool, StorageError> {
        self.execute("DELETE FROM deliveries WHERE webhook_id = $1", &[&id])?;
        Ok(self.execute("DELETE FROM webhooks WHERE id = $1", &[&id])? > 0)
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
             VALUES ($1, $2, $3, $4)",
            &[&webhook_id, &message_id, &payload, &due_at],
        )
        .map(drop)
    }

    fn due_deliveries(
        &mut self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<PendingDelivery>, StorageError> {
        outbox::due(self, now_ms, limit, None)
    }

    fn lease_deliveries(
        &mut self,
        now_ms: i64,
        limit: usize,
        lease_until: i64,
    ) -> Result<Vec<PendingDelivery>, StorageError> {
        outbox::due(self, now_ms, limit, Some(lease_until))
    }

    fn next_delivery_at(&mut self) -> Result<Option<i64>, StorageError> {
        let rows = self.query("SELECT min(next_at) FROM deliveries", &[])?;
        rows.first().map_or(Ok(None), |r| get(r, 0))
    }

    fn reschedule_delivery(&mut self, id: i64, at: i64) -> Result<(), StorageError> {
        self.execute(
            "UPDATE deliveries SET attempts = attempts + 1, next_at = $1 WHERE id = $2",
            &[&at, &id],
        )
        .map(drop)
    }

    fn delete_delivery(&mut self, id: i64) -> Result<(), StorageError> {
        self.execute("DELETE FROM deliveries WHERE id = $1", &[&id])
            .map(drop)
    }

    fn signing_keys(&mut self) -> Result<Vec<StoredSigningKey>, StorageError> {
        self.query(
            "SELECT kid, pkcs8, created_at, signs_from FROM signing_keys ORDER BY created_at",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(StoredSigningKey {
                kid: get(r, 0)?,
                pkcs8_der: get(r, 1)?,
                created_at: get(r, 2)?,
                signs_from: get(r, 3)?,
            })
        })
        .collect()
    }

    fn insert_signing_key(&mut self, key: &StoredSigningKey) -> Result<(), StorageError> {
        self.execute(
            "INSERT INTO signing_keys (kid, pkcs8, created_at, signs_from) VALUES ($1, $2, $3, $4)",
            &[&key.kid, &key.pkcs8_der, &key.created_at, &key.signs_from],
        )
        .map(drop)
    }

    fn delete_signing_key(&mut self, kid: &str) -> Result<(), StorageError> {
        self.execute("DELETE FROM signing_keys WHERE kid = $1", &[&kid])
            .map(drop)
    }

    fn admin_key(&mut self) -> Result<Option<StoredAdminKey>, StorageError> {
        records::admin_key(self)
    }

    fn put_admin_key(&mut self, key: &StoredAdminKey) -> Result<(), StorageError> {
        self.execute(
            "INSERT INTO admin_key (singleton, id, secret_hash, created_at) VALUES (1, $1, $2, $3)
             ON CONFLICT (singleton) DO UPDATE SET id = excluded.id,
             secret_hash = excluded.secret_hash, created_at = excluded.created_at",
            &[
                &key.id,
                &key.secret_hash.as_bytes().as_slice(),
                &key.created_at,
            ],
        )
        .map(drop)
    }

    fn add_agent_usage(&mut self, agent_id: &str, delta: UsageDelta) -> Result<(), StorageError> {
        self.execute(
            "UPDATE agents SET token_count = token_count + $1,
             last_activity_at = greatest(last_activity_at, $2) WHERE id = $3",
            &[&to_i64(delta.count), &delta.last_at, &agent_id],
        )
        .map(drop)
    }

    fn add_verifier_usage(
        &mut self,
        verifier_id: &str,
        delta: UsageDelta,
    ) -> Result<(), StorageError> {
        self.execute(
            "UPDATE verifiers SET usage_count = usage_count + $1,
             last_used_at = greatest(last_used_at, $2) WHERE id = $3",
            &[&to_i64(delta.count), &delta.last_at, &verifier_id],
        )
        .map(drop)
    }
}
