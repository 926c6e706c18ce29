//! Agents, verifiers, audit events and the admin key: the reads that decode more than one
//! column.

use super::{PgTx, before, from_json, get, probe, to_i64, to_json, to_u64};
use crate::issuer::model::{
    ActorKind, AgentRecord, EventFilter, EventRecord, Page, PageRequest, VerifierRecord,
};
use crate::issuer::secrets::SecretHash;
use crate::issuer::storage::{Credential, StorageError, StoredAdminKey, page_of};

fn agent_from(row: &tokio_postgres::Row, first: usize) -> Result<AgentRecord, StorageError> {
    let mut a: AgentRecord = from_json(&get::<String>(row, first)?)?;
    a.token_count = to_u64(get(row, first + 1)?);
    a.last_activity_at = get(row, first + 2)?;
    Ok(a)
}

/// The agent whose `column` (`id` or `external_id`, never user input) is `value`.
pub(super) fn agent_where(
    tx: &mut PgTx<'_>,
    column: &'static str,
    value: &str,
) -> Result<Option<AgentRecord>, StorageError> {
    let sql = match column {
        "external_id" => {
            "SELECT record, token_count, last_activity_at FROM agents WHERE external_id = $1"
        }
        _ => "SELECT record, token_count, last_activity_at FROM agents WHERE id = $1",
    };
    tx.query_opt(sql, &[&value])?
        .map(|r| agent_from(&r, 0))
        .transpose()
}

pub(super) fn agents(
    tx: &mut PgTx<'_>,
    page: &PageRequest,
) -> Result<Page<AgentRecord>, StorageError> {
    let rows = tx.query(
        "SELECT seq, record, token_count, last_activity_at FROM agents
         WHERE seq < $1 ORDER BY seq DESC LIMIT $2",
        &[&before(page, 'a')?, &probe(page)],
    )?;
    let mut picked = Vec::with_capacity(rows.len());
    for r in &rows {
        picked.push((to_u64(get(r, 0)?), agent_from(r, 1)?));
    }
    Ok(page_of(picked, page.limit, 'a'))
}

pub(super) fn verifiers(
    tx: &mut PgTx<'_>,
    agent_id: &str,
) -> Result<Vec<VerifierRecord>, StorageError> {
    let rows = tx.query(
        "SELECT record, usage_count, last_used_at FROM verifiers
         WHERE agent_id = $1 ORDER BY seq",
        &[&agent_id],
    )?;
    rows.iter()
        .map(|r| {
            let mut v: VerifierRecord = from_json(&get::<String>(r, 0)?)?;
            v.usage_count = to_u64(get(r, 1)?);
            v.last_used_at = get(r, 2)?;
            Ok(v)
        })
        .collect()
}

pub(super) fn credentials(
    tx: &mut PgTx<'_>,
    agent_id: &str,
) -> Result<Vec<(String, Credential)>, StorageError> {
    let rows = tx.query(
        "SELECT v.id, v.hash, v.jwk, w.account FROM verifiers v
             LEFT JOIN wallet_accounts w ON w.verifier_id = v.id
             WHERE v.agent_id = $1 ORDER BY v.seq",
        &[&agent_id],
    )?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let id: String = get(r, 0)?;
        let hash: Vec<u8> = get(r, 1)?;
        let jwk: Option<String> = get(r, 2)?;
        let account: Option<String> = get(r, 3)?;
        // A hash of the wrong length cannot have come from this code: it matches nothing.
        let Ok(hash) = <[u8; 32]>::try_from(hash) else {
            continue;
        };
        let credential = match (jwk, account) {
            (_, Some(account)) => Credential::Wallet { account },
            (None, None) => Credential::Secret(SecretHash::from_bytes(hash)),
            (Some(jwk), None) => Credential::Jwk {
                thumbprint: hash,
                jwk,
            },
        };
        out.push((id, credential));
    }
    Ok(out)
}

pub(super) fn insert_event(tx: &mut PgTx<'_>, event: &EventRecord) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO events (id, kind, agent_id, record, by_agent) VALUES ($1, $2, $3, $4, $5)",
        &[
            &event.id,
            &event.kind.as_str(),
            &event.agent_id,
            &to_json(event)?,
            &(event.actor.kind == ActorKind::Agent),
        ],
    )
    .map(drop)
}

pub(super) fn trim_agent_events(tx: &mut PgTx<'_>, keep: u64) -> Result<(), StorageError> {
    tx.execute(
        "DELETE FROM events WHERE by_agent AND seq <= (
             SELECT seq FROM events WHERE by_agent ORDER BY seq DESC LIMIT 1 OFFSET $1)",
        &[&to_i64(keep)],
    )
    .map(drop)
}

pub(super) fn events(
    tx: &mut PgTx<'_>,
    filter: &EventFilter,
    page: &PageRequest,
) -> Result<Page<EventRecord>, StorageError> {
    let kind = filter.kind.map(|k| k.as_str());
    let agent_id = filter.agent_id.as_deref();
    tx.page(
        "SELECT seq, record FROM events WHERE seq < $1
         AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR agent_id = $3)
         ORDER BY seq DESC LIMIT $4",
        &[&before(page, 'e')?, &kind, &agent_id, &probe(page)],
        page.limit,
        'e',
    )
}

pub(super) fn admin_key(tx: &mut PgTx<'_>) -> Result<Option<StoredAdminKey>, StorageError> {
    let Some(r) = tx.query_opt(
        "SELECT id, secret_hash, created_at FROM admin_key WHERE singleton = 1",
        &[],
    )?
    else {
        return Ok(None);
    };
    let hash: Vec<u8> = get(&r, 1)?;
    let hash: [u8; 32] = hash.try_into().map_err(|_| {
        StorageError::backend(std::io::Error::other("admin key hash is not 32 bytes"))
    })?;
    Ok(Some(StoredAdminKey {
        id: get(&r, 0)?,
        secret_hash: SecretHash::from_bytes(hash),
        created_at: get(&r, 2)?,
    }))
}
