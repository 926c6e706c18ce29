//! The SQL of the used client-assertion `jti`s (`assertion_jtis`: one row per agent and
//! `jti`, until the assertion expires).

use rusqlite::params;

use super::{SqliteTx, backend, to_u64};
use crate::issuer::storage::StorageError;

pub(super) fn purge(
    tx: &SqliteTx<'_>,
    agent_id: Option<&str>,
    now_ms: i64,
) -> Result<(), StorageError> {
    match agent_id {
        Some(id) => tx.execute(
            "DELETE FROM assertion_jtis WHERE agent_id = ?1 AND expires_at <= ?2",
            params![id, now_ms],
        )?,
        None => tx.execute(
            "DELETE FROM assertion_jtis WHERE expires_at <= ?1",
            [now_ms],
        )?,
    };
    Ok(())
}

pub(super) fn count(tx: &SqliteTx<'_>, agent_id: &str) -> Result<u64, StorageError> {
    tx.conn
        .prepare_cached("SELECT count(*) FROM assertion_jtis WHERE agent_id = ?1")
        .and_then(|mut stmt| stmt.query_row([agent_id], |r| r.get::<_, i64>(0)))
        .map(to_u64)
        .map_err(backend)
}

/// `Duplicate` when the `jti` is kept already (or the agent is gone: the reference fails).
pub(super) fn insert(
    tx: &SqliteTx<'_>,
    agent_id: &str,
    jti: &str,
    expires_at: i64,
) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO assertion_jtis (agent_id, jti, expires_at) VALUES (?1, ?2, ?3)",
        params![agent_id, jti, expires_at],
    )
    .map(drop)
}
