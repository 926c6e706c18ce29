//! The SQL of wallets: `wallet_accounts` (the reverse lookup: one row per `wallet` verifier,
//! removed by the foreign keys' cascade with its verifier or agent) and `wallet_nonces` (the
//! sign-in nonces, until used or expired).

use rusqlite::{OptionalExtension as _, params};

use super::{SqliteTx, backend, to_u64};
use crate::issuer::storage::{StorageError, WalletOwner};

/// Maps `account` to the verifier just stored; `Duplicate` when another verifier holds it.
pub(super) fn map(
    tx: &SqliteTx<'_>,
    account: &str,
    verifier_id: &str,
    agent_id: &str,
) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO wallet_accounts (account, verifier_id, agent_id) VALUES (?1, ?2, ?3)",
        params![account, verifier_id, agent_id],
    )
    .map(drop)
}

pub(super) fn owner(tx: &SqliteTx<'_>, account: &str) -> Result<Option<WalletOwner>, StorageError> {
    tx.conn
        .prepare_cached("SELECT agent_id, verifier_id FROM wallet_accounts WHERE account = ?1")
        .map_err(backend)?
        .query_row([account], |r| {
            Ok(WalletOwner {
                agent_id: r.get(0)?,
                verifier_id: r.get(1)?,
            })
        })
        .optional()
        .map_err(backend)
}

pub(super) fn nonce_count(tx: &SqliteTx<'_>) -> Result<u64, StorageError> {
    tx.conn
        .prepare_cached("SELECT count(*) FROM wallet_nonces")
        .and_then(|mut stmt| stmt.query_row([], |r| r.get::<_, i64>(0)))
        .map(to_u64)
        .map_err(backend)
}

pub(super) fn insert_nonce(
    tx: &SqliteTx<'_>,
    nonce: &str,
    expires_at: i64,
) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO wallet_nonces (nonce, expires_at) VALUES (?1, ?2)",
        params![nonce, expires_at],
    )
    .map(drop)
}

pub(super) fn take_nonce(
    tx: &SqliteTx<'_>,
    nonce: &str,
    now_ms: i64,
) -> Result<bool, StorageError> {
    Ok(tx.execute(
        "DELETE FROM wallet_nonces WHERE nonce = ?1 AND expires_at > ?2",
        params![nonce, now_ms],
    )? > 0)
}

pub(super) fn purge_nonces(tx: &SqliteTx<'_>, now_ms: i64) -> Result<(), StorageError> {
    tx.execute("DELETE FROM wallet_nonces WHERE expires_at <= ?1", [now_ms])
        .map(drop)
}
