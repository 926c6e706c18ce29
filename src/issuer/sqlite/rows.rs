//! Row helpers of [`SqliteStore`](super::SqliteStore): JSON columns, pages, events with
//! their webhook deliveries, agents and verifiers with their counters, signing keys.

pub(super) use rusqlite::{Connection, OptionalExtension, Transaction, params};
pub(super) use serde::Serialize;
pub(super) use serde::de::DeserializeOwned;

pub(super) use super::{SqliteStore, UsageBuffer, backend};
pub(super) use crate::issuer::records::{
    DeliveryOutcome, MAX_WEBHOOKS, MembershipRecord, OrganizationRecord, PendingDelivery,
    WebhookKey, WebhookRecord, apply_patch, decode_cursor, page_of, webhook_payload,
};
pub(super) use crate::issuer::secrets::SecretHash;
pub(super) use crate::issuer::store::{
    AgentPatch, AgentRecord, Change, ClientGrant, CreateOutcome, EventFilter, EventRecord,
    EventType, MAX_VERIFIERS_PER_AGENT, Page, PageRequest, Store, StoreError, StoredSigningKey,
    VerifierRecord,
};

pub(super) fn to_json(v: &impl Serialize) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(backend)
}

pub(super) fn from_json<T: DeserializeOwned>(s: &str) -> Result<T, StoreError> {
    serde_json::from_str(s).map_err(backend)
}

pub(super) fn sql(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict("conflicts with a stored object".into())
        }
        e => backend(e),
    }
}

pub(super) fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

pub(super) fn before(cursor: Option<&str>, tag: char) -> Result<i64, StoreError> {
    match cursor {
        Some(c) => Ok(i64::try_from(decode_cursor(tag, c)?).unwrap_or(i64::MAX)),
        None => Ok(i64::MAX),
    }
}

/// A newest-first page from a query whose rows are `(seq, record JSON)` and which asks for
/// `limit + 1` rows.
pub(super) fn page_rows<T: DeserializeOwned>(
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
pub(super) fn insert_event(tx: &Transaction<'_>, event: &EventRecord) -> Result<(), StoreError> {
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

pub(super) fn agent_from(
    record: &str,
    count: i64,
    last: Option<i64>,
) -> Result<AgentRecord, StoreError> {
    let mut a: AgentRecord = from_json(record)?;
    a.token_count = to_u64(count);
    a.last_activity_at = last;
    Ok(a)
}

pub(super) fn load_agent(c: &Connection, id: &str) -> Result<Option<AgentRecord>, StoreError> {
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

pub(super) fn load_verifiers(
    c: &Connection,
    agent_id: &str,
) -> Result<Vec<VerifierRecord>, StoreError> {
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

pub(super) fn merge_agent(a: &mut AgentRecord, buf: &UsageBuffer) {
    if let Some((n, last)) = buf.agents.get(&a.id) {
        a.token_count = a.token_count.saturating_add(*n);
        a.last_activity_at = Some(a.last_activity_at.map_or(*last, |l| l.max(*last)));
    }
}

pub(super) fn merge_verifier(v: &mut VerifierRecord, buf: &UsageBuffer) {
    if let Some((n, last)) = buf.verifiers.get(&v.id) {
        v.usage_count = v.usage_count.saturating_add(*n);
        v.last_used_at = Some(v.last_used_at.map_or(*last, |l| l.max(*last)));
    }
}

pub(super) fn insert_verifier(
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

pub(super) fn agent_exists(tx: &Connection, id: &str) -> Result<bool, StoreError> {
    tx.query_row("SELECT 1 FROM agents WHERE id = ?1", [id], |_| Ok(()))
        .optional()
        .map(|o| o.is_some())
        .map_err(backend)
}

pub(super) fn all_keys(c: &Connection) -> Result<Vec<StoredSigningKey>, StoreError> {
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

pub(super) fn insert_key(tx: &Transaction<'_>, k: &StoredSigningKey) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO signing_keys (kid, pkcs8, created_at) VALUES (?1, ?2, ?3)",
        params![k.kid, k.pkcs8_der, k.created_at],
    )
    .map_err(sql)?;
    Ok(())
}
