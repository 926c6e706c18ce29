//! The SQL of wallets on PostgreSQL, as on SQLite (`storage/sqlite/tx/wallets.rs`):
//! `wallet_accounts` (account → verifier, removed by the foreign keys' cascade with its verifier
//! or agent) and `wallet_nonces` (the sign-in nonces, until used or expired).

use super::{PgTx, get, to_u64};
use crate::issuer::storage::{StorageError, WalletOwner};

/// Maps `account` to the verifier just stored; `Duplicate` when another verifier holds it.
pub(super) fn map(
    tx: &mut PgTx<'_>,
    account: &str,
    verifier_id: &str,
    agent_id: &str,
) -> Result<(), StorageError> {
    tx.guarded(
        "INSERT INTO wallet_accounts (account, verifier_id, agent_id) VALUES ($1, $2, $3)",
        &[&account, &verifier_id, &agent_id],
    )
    .map(drop)
}

pub(super) fn owner(tx: &mut PgTx<'_>, account: &str) -> Result<Option<WalletOwner>, StorageError> {
    let rows = tx.query(
        "SELECT agent_id, verifier_id FROM wallet_accounts WHERE account = $1",
        &[&account],
    )?;
    rows.first()
        .map(|r| {
            Ok(WalletOwner {
                agent_id: get(r, 0)?,
                verifier_id: get(r, 1)?,
            })
        })
        .transpose()
}

pub(super) fn nonce_count(tx: &mut PgTx<'_>) -> Result<u64, StorageError> {
    let rows = tx.query("SELECT count(*) FROM wallet_nonces", &[])?;
    rows.first().map_or(Ok(0), |r| get::<i64>(r, 0).map(to_u64))
}

pub(super) fn insert_nonce(
    tx: &mut PgTx<'_>,
    nonce: &str,
    expires_at: i64,
) -> Result<(), StorageError> {
    tx.guarded(
        "INSERT INTO wallet_nonces (nonce, expires_at) VALUES ($1, $2)",
        &[&nonce, &expires_at],
    )
    .map(drop)
}

/// Under SERIALIZABLE, of two transactions deleting one nonce one commits and the other is
/// retried, then finds it gone: exactly one `true`.
pub(super) fn take_nonce(
    tx: &mut PgTx<'_>,
    nonce: &str,
    now_ms: i64,
) -> Result<bool, StorageError> {
    Ok(tx.execute(
        "DELETE FROM wallet_nonces WHERE nonce = $1 AND expires_at > $2",
        &[&nonce, &now_ms],
    )? > 0)
}

pub(super) fn purge_nonces(tx: &mut PgTx<'_>, now_ms: i64) -> Result<(), StorageError> {
    tx.execute(
        "DELETE FROM wallet_nonces WHERE expires_at <= $1",
        &[&now_ms],
    )
    .map(drop)
}
